#!/usr/bin/env python3
"""Writes seed inputs for fuzz_fuse_server into a directory: request
sequences (as fuzz_fuse_server.c reads them: u16 reply room, then one FUSE
request) covering every opcode the server handles, against the scratch tree
the target lays out (file, dir/inner, out -> /etc/passwd, dir/up -> ../..).
Structs follow <linux/fuse.h>; the target sends INIT itself, so nodeid 2 is
the first name looked up and fh 1 the first handle opened. The target's DAX
window is one 2 MiB chunk."""
import os
import struct
import sys

(LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK, MKNOD, MKDIR, UNLINK, RMDIR, RENAME, LINK, OPEN,
 READ, WRITE, STATFS, RELEASE) = (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
FSYNC, SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR, FLUSH, INIT = 20, 21, 22, 23, 24, 25, 26
OPENDIR, READDIR, RELEASEDIR, FSYNCDIR, CREATE, DESTROY = 27, 28, 29, 30, 35, 38
BATCH_FORGET, FALLOCATE, READDIRPLUS, RENAME2, LSEEK, COPY_FILE_RANGE = 42, 43, 44, 45, 46, 47
SETUPMAPPING, REMOVEMAPPING = 48, 49
MAP_W, MAP_R, NO_FH, PAGE, CHUNK = 1, 2, (1 << 64) - 1, 4096, 2 << 20
ROOT = 1
unique = 0


def req(opcode, nodeid, body=b"", room=4096):
    global unique
    unique += 1
    head = struct.pack("<IIQQIIII", 40 + len(body), opcode, unique, nodeid, 0, 0, 0, 0)
    return struct.pack("<H", room) + head + body


def s(text):
    return text.encode() + b"\0"


def open_in(flags=0):
    return struct.pack("<II", flags, 0)


def read_in(fh, off=0, size=4096):
    return struct.pack("<QQIIQII", fh, off, size, 0, 0, 0, 0)


def release_in(fh):
    return struct.pack("<QIIQ", fh, 0, 0, 0)


def lookup(parent, name, room=4096):
    return req(LOOKUP, parent, s(name), room)


def setupmapping(nodeid, fh, foffset, length, flags, moffset):
    return req(SETUPMAPPING, nodeid, struct.pack("<QQQQQ", fh, foffset, length, flags, moffset))


def removemapping(ranges, count=None):
    body = struct.pack("<I", len(ranges) if count is None else count)
    return req(REMOVEMAPPING, ROOT, body + b"".join(struct.pack("<QQ", m, n) for m, n in ranges))


SEEDS = {
    "read": lookup(ROOT, "file") + req(OPEN, 2, open_in()) + req(READ, 2, read_in(1))
    + req(READ, 2, read_in(1, 5, 3), room=2) + req(FLUSH, 2, struct.pack("<QIIQ", 1, 0, 0, 0))
    + req(RELEASE, 2, release_in(1)) + req(FORGET, 2, struct.pack("<Q", 1)),
    "create_write": req(CREATE, ROOT, struct.pack("<IIII", 2, 0o644, 0o22, 0) + s("new"))
    + req(WRITE, 2, struct.pack("<QQIIQII", 1, 0, 5, 0, 0, 0, 0) + b"hello")
    + req(FSYNC, 2, struct.pack("<QII", 1, 1, 0))
    + req(FALLOCATE, 2, struct.pack("<QQQII", 1, 0, 8192, 0, 0))
    + req(LSEEK, 2, struct.pack("<QQII", 1, 0, 3, 0))
    + req(COPY_FILE_RANGE, 2, struct.pack("<QQQQQQQ", 1, 0, 2, 1, 100, 5, 0))
    + req(RELEASE, 2, release_in(1)),
    "setattr": lookup(ROOT, "file") + req(SETATTR, 2, struct.pack(
        "<IIQQQQQIIIIIIII", 1 | 8 | 16 | 32, 0, 0, 3, 0, 100, 200, 0, 0, 0, 0o600, 0, 0, 0, 0))
    + req(GETATTR, 2, struct.pack("<IIQ", 0, 0, 0)),
    "namespace": req(MKDIR, ROOT, struct.pack("<II", 0o755, 0o22) + s("d2"))
    + req(MKNOD, ROOT, struct.pack("<IIII", 0o10644, 0, 0o22, 0) + s("fifo"))
    + req(SYMLINK, ROOT, s("ln") + s("/etc"))
    + lookup(ROOT, "ln") + req(READLINK, 4)
    + lookup(ROOT, "file") + req(LINK, 2, struct.pack("<Q", 5) + s("hard"))
    + req(RENAME, ROOT, struct.pack("<Q", 2) + s("hard") + s("moved"))
    + req(RENAME2, 2, struct.pack("<QII", ROOT, 1, 0) + s("moved") + s("back"))
    + req(UNLINK, ROOT, s("back")) + req(RMDIR, ROOT, s("d2")) + req(STATFS, ROOT),
    "readdir": req(OPENDIR, ROOT, open_in()) + req(READDIR, ROOT, read_in(1, 0, 80))
    + req(READDIRPLUS, ROOT, read_in(1, 0, 4096)) + req(FSYNCDIR, ROOT, struct.pack("<QII", 1, 0, 0))
    + req(RELEASEDIR, ROOT, release_in(1)),
    "escape": lookup(ROOT, "..") + lookup(ROOT, "dir") + lookup(2, "up") + lookup(3, "etc")
    + lookup(ROOT, "out") + req(OPEN, 4, open_in()) + req(READLINK, 4) + req(OPENDIR, 3, open_in()),
    "xattr": lookup(ROOT, "file")
    + req(SETXATTR, 2, struct.pack("<II", 3, 0) + s("user.k") + b"abc")
    + req(GETXATTR, 2, struct.pack("<II", 0, 0) + s("user.k"))
    + req(GETXATTR, 2, struct.pack("<II", 2, 0) + s("user.k"))
    + req(LISTXATTR, 2, struct.pack("<II", 64, 0)) + req(REMOVEXATTR, 2, s("user.k")),
    "forget": lookup(ROOT, "file") + lookup(ROOT, "dir")
    + req(BATCH_FORGET, 0, struct.pack("<II", 2, 0) + struct.pack("<QQQQ", 2, 1, 3, 1)),
    "reinit": req(DESTROY, ROOT) + req(INIT, 0, struct.pack("<IIII", 7, 31, 65536, 0)) + lookup(ROOT, "file"),
    "dax_map": lookup(ROOT, "file") + setupmapping(2, NO_FH, 0, CHUNK, MAP_R | MAP_W, 0)
    + setupmapping(2, NO_FH, 0, PAGE, MAP_R, PAGE) + req(OPEN, 2, open_in(0))
    + setupmapping(2, 1, 0, 2 * PAGE, MAP_R, 4 * PAGE) + setupmapping(2, 1, 0, PAGE, MAP_R | MAP_W, 0)
    + removemapping([(0, PAGE), (4 * PAGE, 2 * PAGE)]) + removemapping([(0, CHUNK)])
    + setupmapping(2, NO_FH, 0, PAGE, MAP_R, 3 * PAGE) + req(DESTROY, ROOT)
    + req(INIT, 0, struct.pack("<IIII", 7, 38, 65536, 1 << 26)),
    "dax_bad": lookup(ROOT, "dir") + lookup(ROOT, "file") + setupmapping(2, NO_FH, 0, PAGE, MAP_R, 0)
    + setupmapping(3, 77, 0, PAGE, MAP_R, 0) + setupmapping(3, NO_FH, 100, PAGE, MAP_R, 0)
    + setupmapping(3, NO_FH, 0, PAGE, MAP_R, CHUNK) + setupmapping(3, NO_FH, 0, 2 * PAGE, MAP_R, CHUNK - PAGE)
    + setupmapping(3, NO_FH, 0, PAGE, MAP_R, (1 << 64) - PAGE) + setupmapping(3, NO_FH, 0, PAGE, 1 << 7, 0)
    + setupmapping(3, NO_FH, (1 << 63) - PAGE, 2 * PAGE, MAP_R, 0)
    + removemapping([(0, PAGE)], count=1000) + removemapping([(0, PAGE), (PAGE, CHUNK)])
    + req(REMOVEMAPPING, ROOT, b"\1"),
    "unknown": req(9999, ROOT) + req(LOOKUP, ROOT, b"noterm") + req(READ, ROOT, b"short"),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, blob in SEEDS.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
