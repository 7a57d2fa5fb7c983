#!/usr/bin/env python3
"""Writes seed inputs for fuzz_layer_tar into a directory: one or two
small layers (plain tar, gzip, zstd when the zstd tool is there) with every
entry type, whiteouts, an opaque directory, hard links, symlinks on the
way to entries, xattrs, sparse files and hostile names, so the fuzzer
starts from archives that get through to the tree and the image writer.
Each input is the first layer's length (4 bytes, little endian), the first
layer, then the second layer if any."""
import gzip
import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=None, link="", pax=None, uid=0, gid=0, dev=(0, 0)):
    if mode is None:
        mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return (name, kind, data, mode, link, pax or {}, uid, gid, dev)


def tar(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, data, mode, link, pax, uid, gid, dev in entries:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.linkname, ti.uid, ti.gid = kind, mode, link, uid, gid
            ti.devmajor, ti.devminor = dev
            ti.mtime = 1700000000
            ti.pax_headers = pax
            ti.size = len(data) if kind in (tarfile.REGTYPE, tarfile.LNKTYPE) else 0
            t.addfile(ti, io.BytesIO(data) if ti.size else None)
    # Drop the zero padding to a 10 KiB record past the end marker:
    # inputs stay small and libarchive does not need it.
    raw = buf.getvalue()
    end = len(raw)
    while end >= 1024 and raw[end - 1024:end] == bytes(1024) and raw[end - 2048:end - 1024] == bytes(1024):
        end -= 512
    return raw[:end]


def zstd(data):
    if not shutil.which("zstd"):
        return None
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, stdout=subprocess.PIPE, check=True).stdout


BASE = [
    entry("etc/", tarfile.DIRTYPE, mode=0o755),
    entry("etc/hostname", data=b"capsa\n"),
    entry("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n", uid=0, gid=0),
    entry("usr/bin/tool", data=b"\x7fELF" + bytes(300), mode=0o4755, uid=1000, gid=1000),
    entry("usr/lib/", tarfile.DIRTYPE),
    entry("lib", tarfile.SYMTYPE, link="usr/lib"),
    entry("lib/libc.so", data=b"libc"),
    entry("bin/sh", tarfile.LNKTYPE, link="usr/bin/tool"),
    entry("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
    entry("dev/sda", tarfile.BLKTYPE, mode=0o660, dev=(8, 0)),
    entry("run/fifo", tarfile.FIFOTYPE),
    entry("tmp/", tarfile.DIRTYPE, mode=0o1777),
    entry("var/lib/data", data=b"lower data", pax={"SCHILY.xattr.user.note": "v",
                                                  "SCHILY.xattr.security.capability": "\x01\x00"}),
    entry("opaque/old", data=b"old"),
    entry("gone", data=b"gone"),
]

UPPER = [
    entry(".wh.gone"),
    entry("opaque/", tarfile.DIRTYPE),
    entry("opaque/.wh..wh..opq"),
    entry("opaque/new", data=b"new"),
    entry("etc/hostname", data=b"upper\n"),
    entry("usr/bin/.wh.tool"),
    entry("bin/sh2", tarfile.LNKTYPE, link="bin/sh"),
    entry("lib/libm.so", data=b"libm"),
]

HOSTILE = [
    entry("/abs/file", data=b"abs"),
    entry("../../etc/shadow", data=b"inside"),
    entry("esc", tarfile.SYMTYPE, link="/../../"),
    entry("esc/x", data=b"x"),
    entry("/etc/passwd", data=b"root"),
    entry("loop", tarfile.SYMTYPE, link="loop/"),
    entry("hl", tarfile.LNKTYPE, link="../../../etc/passwd"),
]

LOOP = [
    entry("a", tarfile.SYMTYPE, link="b"),
    entry("b", tarfile.SYMTYPE, link="a"),
    entry("a/x", data=b"x"),
]

HARDLINK_DATA = [
    entry("a", data=b"first"),
    entry("b", tarfile.LNKTYPE, link="a", data=b"second", pax={"size": "6"}),
]


def sparse_gnu():
    # GNU tar's old sparse format, written by hand: 'S' entry with one
    # data region at 4096 and a real size of 8192.
    header = bytearray(512)
    header[0:6] = b"sparse"
    header[100:108] = b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"00000001000\0"      # 512 bytes stored
    header[136:148] = b"14567016400\0"
    header[156:157] = b"S"
    header[257:265] = b"ustar  \0"
    header[386:398] = b"00000010000\0"       # sparse[0].offset = 4096
    header[398:410] = b"00000001000\0"       # sparse[0].numbytes = 512
    header[483:495] = b"00000020000\0"       # realsize = 8192
    header[148:156] = b"        "
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + b"s" * 512 + bytes(1024)


def write(directory, name, first, second=None):
    with open(os.path.join(directory, name), "wb") as f:
        f.write(struct.pack("<I", len(first)) + first + (second or b""))


def main():
    out = sys.argv[1]
    base, upper = tar(BASE), tar(UPPER)
    write(out, "base", base)
    write(out, "base-gnu", tar(BASE, tarfile.GNU_FORMAT))
    write(out, "base-gzip", gzip.compress(base, mtime=0))
    write(out, "two-layers", base, upper)
    write(out, "two-layers-gzip", gzip.compress(base, mtime=0), gzip.compress(upper, mtime=0))
    write(out, "hostile", tar(HOSTILE))
    write(out, "loop", tar(LOOP))
    write(out, "hardlink-data", tar(HARDLINK_DATA))
    write(out, "sparse", sparse_gnu())
    compressed = zstd(upper)
    if compressed:
        write(out, "two-layers-zstd", base, compressed)


if __name__ == "__main__":
    main()
