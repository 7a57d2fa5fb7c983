"""The standard test images, built from Debian's busybox-static (/bin/busybox).

Every image is an OCI image layout tagged TAG ("latest"):

  busybox    /bin/busybox and a /bin symlink per applet, /etc/passwd (root,
             nobody, app 1000:1000 home /home/app), /etc/group (root, staff 50
             with member app, app 1000, nogroup), /tmp 1777, /home/app owned
             by 1000:1000. Cmd ["sh"], Env PATH=DEFAULT_PATH.
  layers     busybox plus three layers that exercise layer semantics (see
             LAYERS_EXPECTED): whiteouts of a file and of a directory, an
             opaque directory, a name re-created after its whiteout, a file
             replaced by a directory and a directory by a symlink, a hard link
             pair, setuid/setgid files, a file owned by app, a user xattr, a
             character device, a fifo, and a zstd-compressed top layer. The
             image holds /expected.txt (see EXPECTED_TXT_FORMAT) so a guest can
             check its own tree: run guest_check_script() in it.
  user       busybox plus /home/app/work owned by app; User "app", WorkingDir
             /home/app/work, Env GREETING, Entrypoint ["/bin/sh", "-c"], Cmd
             ["echo $GREETING; id; pwd"], ExposedPorts 8080/tcp.
  multiarch  an image index: linux/amd64 (busybox plus /arch.txt "amd64"),
             linux/arm64/v8 (only /arch.txt "arm64" and /bin/, no runnable
             binary) and an attestation manifest for unknown/unknown.

build_all(cache_dir) writes them under cache_dir/<key>, where the key hashes
the busybox binary and the source of this module and of ociimage, so a
change to either rebuilds and an unchanged set is reused.
"""

import hashlib
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

from . import ociimage as oci

BUSYBOX = Path("/bin/busybox")
TAG = "latest"
IMAGE_NAMES = ("busybox", "layers", "user", "multiarch")
# Where the registry fixture pushes each image.
REGISTRY_REFS = {name: f"test/{name}:{TAG}" for name in IMAGE_NAMES}
DOCKER_SAVE_TAG = "capsa-test/busybox:saved"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APP_UID = APP_GID = 1000
STAFF_GID = 50

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
          "app:x:1000:1000:app:/home/app:/bin/sh\n")
GROUP = ("root:x:0:\n"
         "staff:x:50:app\n"
         "app:x:1000:\n"
         "nogroup:x:65534:\n")

BUSYBOX_CONFIG = {"Cmd": ["sh"], "Env": [f"PATH={DEFAULT_PATH}"]}

USER_CONFIG = {
    "User": "app",
    "WorkingDir": "/home/app/work",
    "Env": ["GREETING=hello from env", f"PATH={DEFAULT_PATH}"],
    "Entrypoint": ["/bin/sh", "-c"],
    "Cmd": ["echo $GREETING; id; pwd"],
    "ExposedPorts": {"8080/tcp": {}},
}
# What the user image prints when run without arguments: the greeting, then
# busybox `id` (uid=1000(app) gid=1000(app) and groups including
# 50(staff), in an order that depends on the guest), then the directory.
USER_OUTPUT_FIRST_LINE = "hello from env"
USER_OUTPUT_LAST_LINE = "/home/app/work"

MULTIARCH_FILE = "/arch.txt"
MULTIARCH_CONTENT = {"amd64": "amd64\n", "arm64": "arm64\n"}

# ---- the 'layers' image: what its final tree holds --------------------------------
#
# path -> None when the path must not exist, else a dict with
#   type     file, dir, symlink, char, block or fifo
#   mode     permission bits including setuid/setgid/sticky (not for symlinks)
#   uid, gid owner
#   content  bytes of a file (omitted: not checked)
#   target   of a symlink
#   rdev     (major, minor) of a device
#   same_inode_as   another path that must be the same inode (hard link)
#   xattrs   {name: bytes} that must be present (others may be too)
# Under LAYERS_COMPLETE_DIRS nothing else may exist.

def _f(content=None, mode=0o644, uid=0, gid=0, **extra):
    out = {"type": "file", "mode": mode, "uid": uid, "gid": gid}
    if content is not None:
        out["content"] = content.encode() if isinstance(content, str) else content
    out.update(extra)
    return out


def _d(mode=0o755, uid=0, gid=0):
    return {"type": "dir", "mode": mode, "uid": uid, "gid": gid}


LAYERS_EXPECTED = {
    # from the busybox base layer
    "/bin/busybox": _f(mode=0o755),
    "/bin/sh": {"type": "symlink", "target": "busybox"},
    "/etc/passwd": _f(PASSWD),
    "/etc/group": _f(GROUP),
    "/tmp": _d(0o1777),
    "/home/app": _d(0o755, APP_UID, APP_GID),
    # layer 2 (gzip), changed by layers 3 (gzip) and 4 (zstd)
    "/data": _d(),
    "/data/keep.txt": _f("kept from layer 2\n"),
    "/data/modified.txt": _f("version 2 (layer 3)\n"),
    "/data/delete-me.txt": None,                         # whiteout in layer 3
    "/data/dir-gone": None,                              # directory whiteout in layer 3
    "/data/dir-gone/a.txt": None,
    "/data/dir-gone/sub/b.txt": None,
    "/data/opaque": _d(0o750),                           # opaque in layer 3
    "/data/opaque/old.txt": None,
    "/data/opaque/old-sub": None,
    "/data/opaque/new.txt": _f("new in layer 3\n"),
    "/data/opaque/new-sub": _d(),
    "/data/opaque/new-sub/new2.txt": _f("also new in layer 3\n"),
    "/data/recreated.txt": _f("second version (layer 4)\n", 0o600),  # whiteout in 3, back in 4
    "/data/file-to-dir": _d(0o711),                      # file in 2, directory in 4
    "/data/file-to-dir/inside.txt": _f("inside the directory (layer 4)\n"),
    "/data/dir-to-link": {"type": "symlink", "target": "keep.txt"},  # directory in 2, symlink in 4
    "/data/dir-to-link/x.txt": None,
    "/data/hard-a": _f("hard linked\n"),
    "/data/hard-b": _f("hard linked\n", same_inode_as="/data/hard-a"),
    "/data/setuid": _f("#!/bin/sh\necho setuid\n", 0o4755),
    "/data/setgid": _f("#!/bin/sh\necho setgid\n", 0o2755, 0, STAFF_GID),
    "/data/owned-by-app": _f("belongs to app\n", 0o640, APP_UID, APP_GID),
    "/data/xattr.txt": _f("has an xattr\n", xattrs={"user.capsa.test": b"hello xattr"}),
    "/data/null": {"type": "char", "mode": 0o666, "uid": 0, "gid": 0, "rdev": (1, 3)},
    "/data/fifo": {"type": "fifo", "mode": 0o600, "uid": 0, "gid": 0},
    "/data/zstd.txt": _f("from the zstd layer\n"),
    "/data/link-to-gone": {"type": "symlink", "target": "/data/dir-gone/a.txt"},  # dangling
    "/expected.txt": _f(),
}
LAYERS_COMPLETE_DIRS = ("/data",)


def layers_image_layers(base, top_compression="zstd"):
    """The layers of the 'layers' image: base (the busybox layer) and the three
    it adds. top_compression changes the last layer's (for tools without zstd)."""
    populate = oci.Layer([
        oci.directory("data"),
        oci.file("data/keep.txt", "kept from layer 2\n"),
        oci.file("data/modified.txt", "version 1 (layer 2)\n"),
        oci.file("data/delete-me.txt", "deleted in layer 3\n"),
        oci.directory("data/dir-gone"),
        oci.file("data/dir-gone/a.txt", "a\n"),
        oci.directory("data/dir-gone/sub"),
        oci.file("data/dir-gone/sub/b.txt", "b\n"),
        oci.directory("data/opaque"),
        oci.file("data/opaque/old.txt", "hidden by the opaque marker\n"),
        oci.directory("data/opaque/old-sub"),
        oci.file("data/opaque/old-sub/old2.txt", "hidden too\n"),
        oci.file("data/recreated.txt", "first version (layer 2)\n"),
        oci.file("data/file-to-dir", "a file in layer 2\n"),
        oci.directory("data/dir-to-link"),
        oci.file("data/dir-to-link/x.txt", "gone with its directory\n"),
        oci.file("data/hard-a", "hard linked\n"),
        oci.hardlink("data/hard-b", "data/hard-a"),
        oci.file("data/setuid", "#!/bin/sh\necho setuid\n", 0o4755),
        oci.file("data/setgid", "#!/bin/sh\necho setgid\n", 0o2755, 0, STAFF_GID),
        oci.file("data/owned-by-app", "belongs to app\n", 0o640, APP_UID, APP_GID),
        oci.file("data/xattr.txt", "has an xattr\n", xattrs={"user.capsa.test": b"hello xattr"}),
        oci.chardev("data/null", 1, 3, 0o666),
        oci.fifo("data/fifo", 0o600),
        oci.symlink("data/link-to-gone", "/data/dir-gone/a.txt"),
    ], compression="gzip", comment="layers: populate /data")
    delete = oci.Layer([
        oci.whiteout("data/delete-me.txt"),
        oci.whiteout("data/dir-gone"),
        oci.directory("data/opaque", 0o750),
        oci.opaque("data/opaque"),
        oci.file("data/opaque/new.txt", "new in layer 3\n"),
        oci.directory("data/opaque/new-sub"),
        oci.file("data/opaque/new-sub/new2.txt", "also new in layer 3\n"),
        oci.whiteout("data/recreated.txt"),
        oci.file("data/modified.txt", "version 2 (layer 3)\n"),
    ], compression="gzip", comment="layers: whiteouts and an opaque directory")
    replace = oci.Layer([
        oci.file("data/recreated.txt", "second version (layer 4)\n", 0o600),
        oci.directory("data/file-to-dir", 0o711),
        oci.file("data/file-to-dir/inside.txt", "inside the directory (layer 4)\n"),
        oci.symlink("data/dir-to-link", "keep.txt"),
        oci.file("data/zstd.txt", "from the zstd layer\n"),
        oci.file("expected.txt", expected_txt(LAYERS_EXPECTED)),
    ], compression=top_compression, comment=f"layers: replacements, {top_compression}")
    return [base, populate, delete, replace]


# ---- /expected.txt ------------------------------------------------------------------

EXPECTED_TXT_FORMAT = """\
# What this image's final tree must contain. One path a line:
#   PATH absent
#   PATH TYPE MODE UID GID [KEY=VALUE...]
# TYPE: file dir symlink char block fifo. MODE: permission bits in octal with a
# leading 0, setuid/setgid/sticky included (0 for symlinks: not checked). KEY:
# sha256 (of a file's content), target (of a symlink), rdev (MAJOR,MINOR), inode
# (another PATH that must be the same inode). Paths contain no spaces. Nothing
# else may exist under the directories on "complete DIR" lines (only the host-side
# check enforces that).
"""


def expected_txt(expected, complete_dirs=LAYERS_COMPLETE_DIRS):
    lines = [EXPECTED_TXT_FORMAT]
    for path in sorted(expected):
        want = expected[path]
        if want is None:
            lines.append(f"{path} absent\n")
            continue
        mode = 0 if want["type"] == "symlink" else want["mode"]
        fields = [path, want["type"], f"0{mode:o}", str(want.get("uid", 0)), str(want.get("gid", 0))]
        if "content" in want:
            fields.append("sha256=" + hashlib.sha256(want["content"]).hexdigest())
        if "target" in want:
            fields.append("target=" + want["target"])
        if "rdev" in want:
            fields.append("rdev=%d,%d" % want["rdev"])
        if "same_inode_as" in want:
            fields.append("inode=" + want["same_inode_as"])
        lines.append(" ".join(fields) + "\n")
    lines += [f"complete {d}\n" for d in complete_dirs]
    return "".join(lines)


def guest_check_script():
    """A busybox sh script that checks the tree against /expected.txt (or,
    with a first argument ROOT, ROOT/... against ROOT/expected.txt). Prints a
    "MISMATCH ..." line per difference and, when there is none, "TREE OK"."""
    return r'''
root="${1:-}"
fail=0
mismatch() { echo "MISMATCH $*"; fail=1; }
while read -r path type mode uid gid extra; do
	case "$path" in ''|'#'*|complete) continue ;; esac
	p="$root$path"
	if [ "$type" = absent ]; then
		if [ -e "$p" ] || [ -L "$p" ]; then mismatch "$path: exists, should not"; fi
		continue
	fi
	if [ ! -e "$p" ] && [ ! -L "$p" ]; then mismatch "$path: missing"; continue; fi
	set -- $(stat -c '%f %a %u %g %i %t %T' "$p")
	fmt=$(( 0x$1 & 0170000 ))
	case $fmt in
	$((0100000))) got=file ;; $((0040000))) got=dir ;; $((0120000))) got=symlink ;;
	$((0020000))) got=char ;; $((0060000))) got=block ;; $((0010000))) got=fifo ;; *) got="mode-$1" ;;
	esac
	if [ "$got" != "$type" ]; then mismatch "$path: is $got, want $type"; continue; fi
	if [ "$type" != symlink ] && [ $(( 0$2 )) -ne $(( 0$mode )) ]; then mismatch "$path: mode $2, want $mode"; fi
	if [ "$type" != symlink ] && { [ "$3" != "$uid" ] || [ "$4" != "$gid" ]; }; then
		mismatch "$path: owner $3:$4, want $uid:$gid"
	fi
	ino=$5; major=$(( 0x$6 )); minor=$(( 0x$7 ))
	for kv in $extra; do
		key=${kv%%=*}; val=${kv#*=}
		case $key in
		sha256) sum=$(sha256sum < "$p"); sum=${sum%% *}
			[ "$sum" = "$val" ] || mismatch "$path: content sha256 $sum, want $val" ;;
		target) t=$(readlink "$p"); [ "$t" = "$val" ] || mismatch "$path: points to $t, want $val" ;;
		rdev) [ "$major,$minor" = "$val" ] || mismatch "$path: device $major,$minor, want $val" ;;
		inode) other=$(stat -c %i "$root$val" 2>/dev/null)
			[ "$other" = "$ino" ] || mismatch "$path: not a hard link of $val" ;;
		esac
	done
done < "$root/expected.txt"
[ $fail = 0 ] && echo "TREE OK"
exit $fail
'''


# ---- checking an unpacked tree on the host ---------------------------------------------

_FORMAT_NAMES = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFCHR: "char",
                 stat.S_IFBLK: "block", stat.S_IFIFO: "fifo"}


def check_tree(root, expected=None, complete_dirs=LAYERS_COMPLETE_DIRS, owners=True, xattrs=True):
    """Compares the tree under root (an unpacked or unsquashed image) with
    expected (default LAYERS_EXPECTED). Returns a list of differences, empty
    when it matches. owners=False skips uid/gid (trees unpacked without
    root); xattrs=False skips extended attributes."""
    expected = LAYERS_EXPECTED if expected is None else expected
    root = Path(root)
    problems = []
    for path, want in sorted(expected.items()):
        host = root / path.lstrip("/")
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            if want is not None:
                problems.append(f"{path}: missing")
            continue
        except NotADirectoryError:
            if want is not None:
                problems.append(f"{path}: missing (a parent is not a directory)")
            continue
        if want is None:
            problems.append(f"{path}: exists, should not")
            continue
        got = _FORMAT_NAMES.get(stat.S_IFMT(st.st_mode), oct(stat.S_IFMT(st.st_mode)))
        if got != want["type"]:
            problems.append(f"{path}: is {got}, want {want['type']}")
            continue
        if got != "symlink" and stat.S_IMODE(st.st_mode) != want["mode"]:
            problems.append(f"{path}: mode {stat.S_IMODE(st.st_mode):04o}, want {want['mode']:04o}")
        if owners and got != "symlink" and (st.st_uid, st.st_gid) != (want["uid"], want["gid"]):
            problems.append(f"{path}: owner {st.st_uid}:{st.st_gid}, want {want['uid']}:{want['gid']}")
        if "content" in want and host.read_bytes() != want["content"]:
            problems.append(f"{path}: content {host.read_bytes()[:80]!r}, want {want['content'][:80]!r}")
        if "target" in want and os.readlink(host) != want["target"]:
            problems.append(f"{path}: points to {os.readlink(host)!r}, want {want['target']!r}")
        if "rdev" in want and (os.major(st.st_rdev), os.minor(st.st_rdev)) != tuple(want["rdev"]):
            problems.append(f"{path}: device {os.major(st.st_rdev)},{os.minor(st.st_rdev)}, want "
                            "%d,%d" % tuple(want["rdev"]))
        if "same_inode_as" in want:
            other = os.lstat(root / want["same_inode_as"].lstrip("/"))
            if (other.st_dev, other.st_ino) != (st.st_dev, st.st_ino):
                problems.append(f"{path}: not a hard link of {want['same_inode_as']}")
        if xattrs:
            for name, value in want.get("xattrs", {}).items():
                try:
                    got_value = os.getxattr(host, name, follow_symlinks=False)
                except OSError as e:
                    problems.append(f"{path}: xattr {name} missing ({e.strerror})")
                    continue
                if got_value != value:
                    problems.append(f"{path}: xattr {name} is {got_value!r}, want {value!r}")
    for top in complete_dirs:
        top_host = root / top.lstrip("/")
        for dirpath, dirnames, filenames in os.walk(top_host):
            for name in dirnames + filenames:
                rel = "/" + os.path.relpath(os.path.join(dirpath, name), root)
                if rel not in expected:
                    problems.append(f"{rel}: exists, should not (not in the expected tree)")
    return problems


# ---- building --------------------------------------------------------------------------

def busybox_applets(busybox=BUSYBOX):
    out = subprocess.run([str(busybox), "--list"], stdout=subprocess.PIPE, check=True).stdout.decode()
    return sorted({a for a in out.split() if a and "/" not in a and a != "busybox"})


def busybox_base_layer(busybox=BUSYBOX):
    entries = [oci.directory(d) for d in ("bin", "dev", "etc", "home", "run", "sbin", "usr", "usr/bin",
                                          "usr/sbin", "var")]
    entries += [
        oci.directory("proc", 0o555),
        oci.directory("sys", 0o555),
        oci.directory("root", 0o700),
        oci.directory("tmp", 0o1777),
        oci.directory("home/app", 0o755, APP_UID, APP_GID),
        oci.file("bin/busybox", Path(busybox).read_bytes(), 0o755),
        oci.file("etc/passwd", PASSWD),
        oci.file("etc/group", GROUP),
    ]
    entries += [oci.symlink(f"bin/{applet}", "busybox") for applet in busybox_applets(busybox)]
    return oci.Layer(entries, compression="gzip", comment="busybox base")


def _write_images(out_dir, busybox):
    out_dir = Path(out_dir)
    base = busybox_base_layer(busybox)

    oci.write_layout(out_dir / "busybox", [base], BUSYBOX_CONFIG, TAG)
    oci.write_layout(out_dir / "layers", layers_image_layers(base), BUSYBOX_CONFIG, TAG)
    work = oci.Layer([
        oci.directory("home/app/work", 0o755, APP_UID, APP_GID),
        oci.file("home/app/work/hello.txt", "hello from the work directory\n", 0o644, APP_UID, APP_GID),
    ], compression="gzip", comment="user: work directory")
    oci.write_layout(out_dir / "user", [base, work], USER_CONFIG, TAG)

    amd64 = [base, oci.Layer([oci.file("arch.txt", MULTIARCH_CONTENT["amd64"])], comment="arch amd64")]
    arm64 = [oci.Layer([oci.directory("bin"), oci.file("arch.txt", MULTIARCH_CONTENT["arm64"])],
                       comment="arch arm64")]
    oci.write_index_layout(out_dir / "multiarch", [
        (("linux", "amd64"), amd64, BUSYBOX_CONFIG),
        (("linux", "arm64", "v8"), arm64, {"Cmd": ["/bin/cat", MULTIARCH_FILE]}),
    ], TAG)

    for gz in (False, True):
        oci.write_docker_save(out_dir / _docker_save_name(gz), [base], BUSYBOX_CONFIG, [DOCKER_SAVE_TAG],
                              gzip=gz)


def _docker_save_name(gz):
    return "busybox-saved.tar.gz" if gz else "busybox-saved.tar"


def cache_key(busybox=BUSYBOX):
    h = hashlib.sha256()
    h.update(Path(busybox).read_bytes())
    for source in (Path(__file__), Path(oci.__file__)):
        h.update(source.read_bytes())
    return h.hexdigest()[:16]


def default_cache_dir():
    """~/.cache/capsa/test-images (XDG_CACHE_HOME respected, as read now)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "capsa" / "test-images"


def build_all(cache_dir, busybox=BUSYBOX):
    """Builds every image into cache_dir/<key> (or reuses what an earlier run
    built for the same inputs) and returns {name: layout directory}."""
    if not Path(busybox).is_file():
        raise RuntimeError(f"{busybox} is missing: apt-get install busybox-static")
    cache_dir = Path(cache_dir)
    final = cache_dir / cache_key(busybox)
    if not (final / "complete").exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _write_images(tmp, busybox)
            (tmp / "complete").write_text("")
            if final.exists() and not (final / "complete").exists():
                shutil.rmtree(final)   # an interrupted build of an older version of this code
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / "complete").exists():
                    raise
                # Another process built the same set meanwhile: use that one.
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.utime(final / "complete")
    _prune_stale(cache_dir, keep=final.name)
    return {name: final / name for name in IMAGE_NAMES}


STALE_SECONDS = 7 * 24 * 3600


def _prune_stale(cache_dir, keep):
    """Removes sets built for other inputs that nothing used for a week (a set
    in use is touched on every build_all)."""
    now = time.time()
    for child in cache_dir.iterdir():
        if child.name == keep or not re.fullmatch(r"[0-9a-f]{16}", child.name):
            continue
        try:
            if now - (child / "complete").stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(child, ignore_errors=True)
        except FileNotFoundError:
            pass


def docker_save_archive(cache_dir, gzip=False, busybox=BUSYBOX):
    """A `docker save` archive of the busybox image tagged DOCKER_SAVE_TAG
    (gzip: the whole archive gzip-compressed)."""
    layouts = build_all(cache_dir, busybox)
    return layouts["busybox"].parent / _docker_save_name(gzip)
