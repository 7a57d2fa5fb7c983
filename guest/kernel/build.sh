#!/bin/bash
# Builds the capsa guest kernel: an uncompressed vmlinux from Debian's linux-source-6.1,
# configured as `make tinyconfig` + capsa.config, everything built in.
#
# The result is cached outside the tree, keyed by the source package version and a hash
# of capsa.config and this script:
#   ${XDG_CACHE_HOME:-~/.cache}/capsa/kernel/<version>-<hash>/vmlinux
#   ${XDG_CACHE_HOME:-~/.cache}/capsa/kernel/vmlinux -> the entry last built or used
# The only line on stdout is the path of the vmlinux; progress goes to stderr.
#
# Environment:
#   CAPSA_KERNEL_KEEP_WORK=1  keep the unpacked source and object tree after a successful
#                             build, so that the next fragment change rebuilds incrementally.
set -euo pipefail
export LC_ALL=C

script=$(readlink -f -- "${BASH_SOURCE[0]}")
here=$(dirname -- "$script")
fragment=$here/capsa.config
src_pkg=linux-source-6.1
src_tarball=/usr/src/linux-source-6.1.tar.xz
build_deps=(build-essential bc bison flex libelf-dev libssl-dev xz-utils perl)
cache_root=${XDG_CACHE_HOME:-${HOME:?set HOME or XDG_CACHE_HOME}/.cache}/capsa/kernel
# Roughly how many kbuild steps this configuration takes, for the progress percentage
# until a build has recorded the real figure in $cache_root/build-steps.
default_steps=1600

log() { printf 'kernel: %s\n' "$*" >&2; }
die() { printf 'kernel: error: %s\n' "$*" >&2; exit 1; }

pkg_installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

install_packages() {
	local sudo=()

	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || die "missing packages: $*; install them with apt-get as root"
		sudo=(sudo)
	fi
	log "installing $*"
	# apt output goes to stderr: stdout carries only the resulting path.
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2 ||
		die "could not install $*; try 'apt-get update' first"
}

ensure_build_deps() {
	local missing=() pkg

	for pkg in "$src_pkg" "${build_deps[@]}"; do
		pkg_installed "$pkg" || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] || install_packages "${missing[@]}"
	[ -r "$src_tarball" ] || die "$src_tarball is missing; reinstall $src_pkg"
}

# Points the stable name at an entry. rename(2) replaces the old link atomically, and
# the target is relative so the cache directory can be moved.
update_symlink() {
	local tmp=$cache_root/.vmlinux.$$

	ln -sfn -- "$1/vmlinux" "$tmp"
	mv -Tf -- "$tmp" "$cache_root/vmlinux"
}

cache_hit() {
	[ -f "$entry/vmlinux" ] || return 1
	update_symlink "$entry_name"
	printf '%s\n' "$entry/vmlinux"
}

# Checks that every option of the fragment has exactly the requested value in the final
# .config. Kconfig silently drops values that are misspelt or whose dependencies are not
# met; this turns those into a hard error.
verify_config() {
	local config=$1 line name value
	local -A have=() seen=()
	local problems=()

	while IFS= read -r line; do
		case $line in
		CONFIG_*=*) have[${line%%=*}]=${line#*=} ;;
		esac
	done <"$config"

	while IFS= read -r line; do
		case $line in
		CONFIG_*=*)
			name=${line%%=*}
			value=${line#*=}
			[ "$value" != n ] || value=
			;;
		"# CONFIG_"*" is not set")
			name=${line#\# }
			name=${name%% *}
			value=
			;;
		"# CONFIG_"* | CONFIG_*)
			problems+=("malformed line: '$line'")
			continue
			;;
		"" | "#"*)
			continue
			;;
		*)
			problems+=("malformed line: '$line'")
			continue
			;;
		esac
		if [ -n "${seen[$name]+x}" ]; then
			problems+=("$name is listed twice")
			continue
		fi
		seen[$name]=1
		if [ "${have[$name]-}" != "$value" ]; then
			problems+=("$name: wanted ${value:-not set}, got ${have[$name]:-not set}")
		fi
	done <"$fragment"

	[ ${#problems[@]} -eq 0 ] && return 0
	log "capsa.config does not match the resulting configuration:"
	printf 'kernel:   %s\n' "${problems[@]}" >&2
	log "check the spelling, the option's 'depends on' and who selects it:"
	log "  grep -rn -e 'config NAME\$' -e 'select NAME\b' --include='Kconfig*' $srcdir"
	log "the generated configuration is $config"
	return 1
}

# Reads kbuild's quiet output ("  CC      kernel/fork.o") and prints a line every 10%.
show_progress() {
	local expected=$1 line steps=0 percent next=10

	while IFS= read -r line; do
		case $line in
		"  "[A-Z]*) steps=$((steps + 1)) ;;
		*) continue ;;
		esac
		percent=$((steps * 100 / expected))
		[ $percent -le 99 ] || percent=99
		if [ $percent -ge $next ]; then
			log "building: ${percent}% ($steps steps, ${SECONDS}s)"
			next=$(((percent / 10 + 1) * 10))
		fi
	done
	printf '%s\n' "$steps" >"$workdir/steps"
}

run_logged() {
	"$@" >>"$build_log" 2>&1
}

fail_build() {
	log "$1 failed; last lines of the log:"
	tail -n 25 "$build_log" | sed 's/^/kernel: | /' >&2
	die "full log: $build_log"
}

[ -r "$fragment" ] || die "$fragment is missing"
command -v dpkg-query >/dev/null || die "this build uses Debian's $src_pkg package; dpkg-query was not found"
pkg_installed "$src_pkg" || ensure_build_deps
version=$(dpkg-query -W -f='${Version}' "$src_pkg")
# Debian versions may contain ':' or '~', which make cannot cope with in paths.
version_tag=$(printf '%s' "$version" | tr -c 'A-Za-z0-9.+_-' '_')
hash=$(cat -- "$fragment" "$script" | sha256sum | cut -c1-16)
entry_name=$version_tag-$hash
entry=$cache_root/$entry_name

mkdir -p -- "$cache_root"
cache_hit && exit 0

case $cache_root in
*[[:space:]:]*) die "kbuild cannot work under '$cache_root' (spaces or ':'); set XDG_CACHE_HOME elsewhere" ;;
esac

# One build at a time: a concurrent caller waits, then finds the finished entry.
exec 9>"$cache_root/.lock"
if ! flock -n 9; then
	log "waiting for another kernel build to finish"
	flock 9
fi
cache_hit && exit 0

ensure_build_deps
# Temporary directories are only created while holding the lock, so any left now belong
# to a killed run.
rm -rf -- "$cache_root"/.tmp-*
tmp=
trap '[ -z "$tmp" ] || rm -rf -- "$tmp"' EXIT

workdir=$cache_root/work/$version_tag
srcdir=$workdir/linux-source-6.1
objdir=$workdir/obj
build_log=$workdir/build-$hash.log
mkdir -p -- "$workdir"
: >"$build_log"
SECONDS=0

# The tree is renamed into place only once fully unpacked, so a killed unpack is
# redone instead of built from.
if [ ! -d "$srcdir" ]; then
	log "unpacking $src_tarball ($src_pkg $version)"
	tmp=$cache_root/.tmp-src
	mkdir -p -- "$tmp"
	tar -C "$tmp" -xf "$src_tarball"
	[ -d "$tmp/linux-source-6.1" ] || die "$src_tarball has no linux-source-6.1/ directory"
	mv -T -- "$tmp/linux-source-6.1" "$srcdir"
	rm -rf -- "$tmp"
	tmp=
fi

# The cache key covers only the source, capsa.config and this script, so nothing from
# the caller's environment may change the build: no extra flags, other compilers,
# verbosity (which would also defeat the progress counter) or a parent make's jobserver.
unset KCFLAGS KCPPFLAGS KAFLAGS KRUSTFLAGS CROSS_COMPILE LLVM LLVM_IAS KBUILD_VERBOSE \
	KBUILD_OUTPUT KBUILD_EXTMOD KCONFIG_CONFIG KCONFIG_ALLCONFIG MAKEFLAGS MFLAGS MAKELEVEL
# A fixed build identity makes the same inputs produce the same image.
export ARCH=x86_64
export KBUILD_BUILD_USER=capsa KBUILD_BUILD_HOST=capsa KBUILD_BUILD_VERSION=1
KBUILD_BUILD_TIMESTAMP=$(date -u -r "$src_tarball")
export KBUILD_BUILD_TIMESTAMP
kmake=(make -C "$srcdir" O="$objdir")

log "configuring (tinyconfig + capsa.config)"
# Only a build from scratch gives a step count worth remembering as the next estimate.
fresh=0
[ -f "$objdir/vmlinux" ] || fresh=1
mkdir -p -- "$objdir"
run_logged "${kmake[@]}" tinyconfig || fail_build "make tinyconfig"
# merge_config.sh puts its temporary files in the current directory.
(cd "$objdir" && run_logged "$srcdir/scripts/kconfig/merge_config.sh" -m -O "$objdir" \
	"$objdir/.config" "$fragment") || fail_build "merging capsa.config"
run_logged "${kmake[@]}" olddefconfig || fail_build "make olddefconfig"
verify_config "$objdir/.config" || exit 1

expected=$default_steps
if [ -r "$cache_root/build-steps" ]; then
	expected=$(cat "$cache_root/build-steps")
	[[ $expected =~ ^[1-9][0-9]*$ ]] || expected=$default_steps
fi
log "building vmlinux with $(nproc) jobs (log: $build_log)"
rm -f -- "$workdir/steps"
if ! "${kmake[@]}" -j"$(nproc)" vmlinux 2>&1 | tee -a "$build_log" | show_progress "$expected"; then
	fail_build "make vmlinux"
fi
[ -f "$objdir/vmlinux" ] || fail_build "make vmlinux (no vmlinux produced)"

# Assemble the entry under a temporary name and rename it into place: an entry that
# exists is complete.
tmp=$cache_root/.tmp-$entry_name
mkdir -p -- "$tmp"
cp -- "$objdir/vmlinux" "$tmp/vmlinux"
cp -- "$objdir/.config" "$tmp/config"
cp -- "$objdir/System.map" "$tmp/System.map"
cp -- "$build_log" "$tmp/build.log"
sync -- "$tmp"/*
mv -T -- "$tmp" "$entry"
tmp=
[ $fresh = 0 ] || cp -- "$workdir/steps" "$cache_root/build-steps" 2>/dev/null || true
update_symlink "$entry_name"

if [ "${CAPSA_KERNEL_KEEP_WORK:-0}" = 1 ]; then
	log "kept the build tree in $workdir"
else
	rm -rf -- "$workdir"
fi
log "built $entry/vmlinux ($(($(stat -c %s "$entry/vmlinux") / 1024 / 1024)) MiB, ${SECONDS}s)"
printf '%s\n' "$entry/vmlinux"
