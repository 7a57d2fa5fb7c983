#!/usr/bin/env python3
"""Writes seed inputs for fuzz_virtio_fs into a directory: rings holding
well-formed FUSE requests (INIT, LOOKUP, GETATTR, OPEN, READ, WRITE, MKDIR,
FORGET), requests and replies split over descriptors and an indirect table,
so the fuzzer starts from inputs that get past queue validation and into
the FUSE server, and mutates from there."""
import os
import struct
import sys

NUM = 16
DESC, AVAIL, USED = 0x1000, 0x2000, 0x3000
REQ, INDIRECT = 0x4000, 0x7000
REPLY, REPLY_LEN = 0x9000, 0x1000  # beyond the input: zero-filled guest RAM
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
LOOKUP, FORGET, GETATTR, MKDIR, OPEN, READ, WRITE, INIT = 1, 2, 3, 9, 14, 15, 16, 26
ROOT = 1


def desc(addr, length, flags, nxt):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def fuse(opcode, unique, nodeid, body=b""):
    return struct.pack("<IIQQIIII", 40 + len(body), opcode, unique, nodeid, 0, 0, 1, 0) + body


def init():
    return fuse(INIT, 1, 0, struct.pack("<IIII", 7, 31, 65536, 0) + bytes(48))


class Ring:
    def __init__(self):
        self.mem = bytearray(INDIRECT + 0x1000)
        self.ndesc = 0
        self.heads = []
        self.req_at = REQ
        self.reply_at = REPLY

    def put_req(self, data):
        addr = self.req_at
        self.mem[addr:addr + len(data)] = data
        self.req_at += (len(data) + 15) // 16 * 16
        return addr

    def add(self, request, read_cuts=(), write_parts=(REPLY_LEN,)):
        """One chain: the request cut at read_cuts, then writable parts."""
        addr = self.put_req(request)
        pieces, start = [], 0
        for cut in list(read_cuts) + [len(request)]:
            pieces.append((addr + start, cut - start, 0))
            start = cut
        for length in write_parts:
            pieces.append((self.reply_at, length, F_WRITE))
            self.reply_at += length
        head = self.ndesc
        for i, (a, length, flags) in enumerate(pieces):
            last = i == len(pieces) - 1
            self.mem[DESC + 16 * self.ndesc:DESC + 16 * self.ndesc + 16] = desc(
                a, length, flags | (0 if last else F_NEXT), 0 if last else self.ndesc + 1)
            self.ndesc += 1
        self.heads.append(head)

    def add_indirect(self, request):
        addr = self.put_req(request)
        table = desc(addr, len(request), F_NEXT, 1) + desc(self.reply_at, REPLY_LEN, F_WRITE, 0)
        self.mem[INDIRECT:INDIRECT + len(table)] = table
        self.mem[DESC + 16 * self.ndesc:DESC + 16 * self.ndesc + 16] = desc(INDIRECT, len(table), F_INDIRECT, 0)
        self.heads.append(self.ndesc)
        self.ndesc += 1

    def blob(self, flags=0, indirect=False):
        avail = struct.pack("<HH", 0, len(self.heads)) + b"".join(struct.pack("<H", h) for h in self.heads)
        self.mem[AVAIL:AVAIL + len(avail)] = avail
        geometry = struct.pack("<HHHHBB", NUM, DESC // 16, AVAIL // 2, USED // 4, int(indirect), flags)
        end = max(self.req_at, INDIRECT + 0x100 if indirect else 0)
        return geometry + bytes(self.mem[:end])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "corpus"
    os.makedirs(out, exist_ok=True)
    seeds = {}

    r = Ring()
    r.add(init())
    r.add(fuse(LOOKUP, 2, ROOT, b"file\0"))
    seeds["init_lookup"] = r.blob(flags=2)

    r = Ring()
    r.add(fuse(LOOKUP, 2, ROOT, b"file\0"))
    r.add(fuse(GETATTR, 3, 2, bytes(16)))
    r.add(fuse(OPEN, 4, 2, struct.pack("<II", 2, 0)))  # O_RDWR
    r.add(fuse(READ, 5, 2, struct.pack("<QQIIQII", 1, 0, 4096, 0, 0, 0, 0)))
    r.add(fuse(WRITE, 6, 2, struct.pack("<QQIIQII", 1, 0, 5, 0, 0, 0, 0) + b"hello"))
    r.add(fuse(FORGET, 7, 2, struct.pack("<Q", 1)), write_parts=())
    seeds["file_ops"] = r.blob()
    seeds["file_ops_ro"] = r.blob(flags=1)

    r = Ring()
    r.add(fuse(LOOKUP, 2, ROOT, b"dir\0"), read_cuts=(3, 40, 42), write_parts=(10, 7, 200))
    r.add(fuse(MKDIR, 3, ROOT, struct.pack("<II", 0o755, 0o22) + b"sub\0"), write_parts=(8,))
    r.add(fuse(LOOKUP, 4, ROOT, b"file\0"), write_parts=())
    seeds["split"] = r.blob()

    r = Ring()
    r.add_indirect(fuse(LOOKUP, 2, ROOT, b"file\0"))
    seeds["indirect"] = r.blob(indirect=True)

    for name, blob in seeds.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
