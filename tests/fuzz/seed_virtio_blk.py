#!/usr/bin/env python3
"""Writes seed inputs for fuzz_virtio_blk into a directory: well-formed
read, write, flush, get-id and indirect requests, so the fuzzer starts from
inputs that get past queue validation and mutates from there."""
import os
import struct
import sys

GUEST = 64 * 1024
NUM = 8
DESC, AVAIL, USED = 0x1000, 0x2000, 0x3000
HDR, DATA, STATUS, INDIRECT = 0x4000, 0x5000, 0x6000, 0x7000
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
IN, OUT, FLUSH, GET_ID = 0, 1, 4, 8


def desc(addr, length, flags, nxt):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def seed(req_type, data_len, data_writable, indirect=False, read_only=False):
    mem = bytearray(GUEST)
    chain = [desc(HDR, 16, F_NEXT, 1)]
    if data_len:
        chain.append(desc(DATA, data_len, F_NEXT | (F_WRITE if data_writable else 0), 2))
    chain.append(desc(STATUS, 1, F_WRITE, 0))
    if data_len == 0:
        chain[0] = desc(HDR, 16, F_NEXT, 1)
        chain[1] = desc(STATUS, 1, F_WRITE, 0)
    table = b"".join(chain)
    if indirect:
        mem[INDIRECT:INDIRECT + len(table)] = table
        mem[DESC:DESC + 16] = desc(INDIRECT, len(table), F_INDIRECT, 0)
    else:
        mem[DESC:DESC + len(table)] = table
    mem[AVAIL:AVAIL + 6] = struct.pack("<HHH", 0, 1, 0)  # flags, idx=1, ring[0]=0
    mem[HDR:HDR + 16] = struct.pack("<IIQ", req_type, 0, 3)
    geometry = struct.pack("<HHHHBB", NUM, DESC // 16, AVAIL // 2, USED // 4, int(indirect), int(read_only))
    return geometry + bytes(mem[:0x8000])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "corpus"
    os.makedirs(out, exist_ok=True)
    seeds = {
        "read": seed(IN, 1024, True),
        "write": seed(OUT, 512, False),
        "write_ro": seed(OUT, 512, False, read_only=True),
        "flush": seed(FLUSH, 0, False),
        "get_id": seed(GET_ID, 20, True),
        "read_indirect": seed(IN, 512, True, indirect=True),
    }
    for name, blob in seeds.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
