"""Host directories shared with -v HOST:GUEST:dax: virtio-fs with a DAX window,
so the guest maps pages of the host's files instead of copying them. The
mount really is DAX (dax=always in /proc/mounts, STATX_ATTR_DAX on its
files), the guest reads host files, its writes (write(2) and stores through
mmap) reach the host file, a host change shows at once in a guest mapping
(no revalidation: the guest maps the host's very page), :ro,dax refuses
writes, and fsx's random operations find the mount consistent."""

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

# A static helper for what busybox cannot do: mmap a file and store into or
# watch the mapping, and report whether the kernel calls a file DAX.
DAXMAP_SOURCE = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif

static char *map(const char *path, int prot, size_t *len)
{
	int fd = open(path, (prot & PROT_WRITE) ? O_RDWR : O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(path);
		exit(1);
	}
	*len = (size_t)st.st_size;
	char *p = mmap(NULL, *len, prot, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	close(fd);
	return p;
}

int main(int argc, char **argv)
{
	size_t len;
	if (argc == 3 && !strcmp(argv[1], "isdax")) {
		struct statx stx;
		if (statx(AT_FDCWD, argv[2], 0, STATX_BASIC_STATS, &stx) < 0) {
			perror("statx");
			return 1;
		}
		puts(stx.stx_attributes_mask & STATX_ATTR_DAX ? (stx.stx_attributes & STATX_ATTR_DAX ? "dax" : "nodax")
							       : "unknown");
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "write")) {
		size_t off = strtoul(argv[3], NULL, 0), n = strlen(argv[4]);
		char *p = map(argv[2], PROT_READ | PROT_WRITE, &len);
		if (off + n > len)
			return 2;
		memcpy(p + off, argv[4], n);
		return msync(p, len, MS_SYNC) < 0 ? 1 : 0;
	}
	if (argc == 5 && !strcmp(argv[1], "read")) {
		size_t off = strtoul(argv[3], NULL, 0), n = strtoul(argv[4], NULL, 0);
		char *p = map(argv[2], PROT_READ, &len);
		if (off + n > len)
			return 2;
		fwrite(p + off, 1, n, stdout);
		putchar('\n');
		return 0;
	}
	/* Watches the mapping only: no system call that could make the
	 * kernel look at the file again. waitw maps it writable and stores
	 * into its first byte before, so the mapping is a writable one. */
	if (argc == 6 && (!strcmp(argv[1], "wait") || !strcmp(argv[1], "waitw"))) {
		size_t off = strtoul(argv[3], NULL, 0), n = strlen(argv[4]);
		int w = argv[1][4] == 'w';
		char *p = map(argv[2], w ? PROT_READ | PROT_WRITE : PROT_READ, &len);
		if (off + n > len)
			return 2;
		if (w)
			*(volatile char *)p = p[0];
		const volatile char *v = p + off;
		time_t end = time(NULL) + atoi(argv[5]);
		for (size_t i = 0; i < n;) {
			if (v[i] == argv[4][i]) {
				i++;
				continue;
			}
			if (time(NULL) > end) {
				puts("timeout");
				return 1;
			}
			i = 0;
		}
		puts("seen");
		return 0;
	}
	fprintf(stderr, "usage: daxmap isdax|write|read|wait ...\n");
	return 2;
}
"""


def build_static(source, dest):
    """A static binary, so it runs on any guest root filesystem."""
    proc = subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(dest), str(source)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")


def build_daxmap(dest):
    src = dest.parent / "daxmap.c"
    src.write_text(DAXMAP_SOURCE)
    build_static(src, dest)
    src.unlink()


PAGE = 4096


@pytest.fixture
def share(tmp_path):
    d = tmp_path / "share"
    d.mkdir()
    (d / "hello.txt").write_text("hello from the host\n")
    # Three pages, then the guest writes into the second and watches the third.
    (d / "data.bin").write_bytes(b"a" * PAGE + b"b" * PAGE + b"c" * PAGE)
    build_daxmap(d / "daxmap")
    return d


def test_dax_mount_reads_and_writes(capsa, share):
    script = ("grep ' /work ' /proc/mounts; cat /work/hello.txt; /work/daxmap isdax /work/hello.txt; "
              "/work/daxmap read /work/data.bin 4090 12; "
              "echo from-guest > /work/new.txt && "
              "printf dd-write | dd of=/work/data.bin bs=1 seek=100 conv=notrunc 2>/dev/null && "
              "/work/daxmap write /work/data.bin 5000 mmap-store && "
              "/work/daxmap read /work/data.bin 5000 10 && sync")
    result = capsa.run("sh", "-c", script, options=["-v", f"{share}:/work:dax"])
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert "virtiofs" in lines[0] and "dax=always" in lines[0], result
    assert lines[1] == "hello from the host", result
    assert lines[2] == "dax", result
    assert lines[3] == "aaaaaabbbbbb", result
    assert lines[4] == "mmap-store", result
    assert (share / "new.txt").read_text() == "from-guest\n"
    data = (share / "data.bin").read_bytes()
    assert len(data) == 3 * PAGE
    assert data[100:108] == b"dd-write"
    assert data[5000:5010] == b"mmap-store"
    assert data[:100] == b"a" * 100 and data[5010:] == b"b" * (2 * PAGE - 5010) + b"c" * PAGE


def test_host_change_shows_in_a_guest_mapping(capsa_bin, capsa, vm_env, share, rootfs):
    """The guest maps a file read-only and another one writable and watches
    a page of each; the host writes there once the guest says it is
    watching. Only the same page, not a copy, changes under a mapping
    without the guest asking the host again."""
    (share / "other.bin").write_bytes(b"d" * (3 * PAGE))
    marker = secrets.token_hex(8)
    off = 2 * PAGE + 7
    script = ("touch /work/ready && "
              f"(/work/daxmap wait /work/data.bin {off} {marker} 120 | sed s/^/ro:/) & "
              f"(/work/daxmap waitw /work/other.bin {off} {marker} 120 | sed s/^/rw:/) & wait")
    args = [str(capsa_bin), "run", "--rootfs", str(rootfs), "-v", f"{share}:/work:dax", "--", "sh", "-c", script]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=vm_env)
    try:
        deadline = time.monotonic() + 300
        while not (share / "ready").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the guest never got ready"
            time.sleep(0.2)
        time.sleep(5)  # let the guest map the files and start watching
        for name in ("data.bin", "other.bin"):
            fd = os.open(share / name, os.O_WRONLY)
            try:
                os.pwrite(fd, marker.encode(), off)
            finally:
                os.close(fd)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert sorted(out.decode().split()) == ["ro:seen", "rw:seen"], (out, err)
    assert proc.returncode == 0, (out, err)


def test_read_only_dax_refuses_writes(capsa, share):
    script = ("grep ' /work ' /proc/mounts; /work/daxmap read /work/data.bin 0 4; "
              "/work/daxmap write /work/data.bin 0 x; echo x > /work/y")
    result = capsa.run("sh", "-c", script, options=["-v", f"{share}:/work:ro,dax"])
    assert result.returncode != 0, result
    lines = result.stdout.splitlines()
    assert "dax=always" in lines[0] and " ro," in lines[0], result
    assert lines[1] == "aaaa", result
    assert "Read-only file system" in result.stderr, result
    assert not (share / "y").exists()
    assert (share / "data.bin").read_bytes()[:1] == b"a"


def test_fsx_on_a_dax_mount(capsa, share):
    build_static(Path(__file__).resolve().parent / "fsx.c", share / "fsx")
    seed = secrets.randbelow(1 << 48)
    result = capsa.run("sh", "-c", f"/work/fsx -N 2000 -S {seed} -l 0x40000 -o 0x8000 /work/fsx.file",
                       options=["-v", f"{share}:/work:dax"])
    print("\n".join(line for line in result.stdout.splitlines() if line.startswith("fsx:")))
    assert result.returncode == 0, result
    assert "fsx: all 2000 operations checked out" in result.stdout, result
