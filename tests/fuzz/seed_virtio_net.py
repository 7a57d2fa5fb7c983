#!/usr/bin/env python3
"""Writes seed inputs for fuzz_virtio_net into a directory: well-formed tx
chains (header and frame together or apart, indirect) and rx buffers, so
the fuzzer starts from inputs that get past queue validation."""
import os
import struct
import sys

GUEST = 64 * 1024
NUM = 8
DESC, AVAIL, USED = 0x1000, 0x2000, 0x3000
HDR, DATA, INDIRECT = 0x4000, 0x5000, 0x7000
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
HDR_LEN = 12


def desc(addr, length, flags, nxt):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def seed(chain, rx=False, rx_len=0, indirect=False):
    mem = bytearray(GUEST)
    table = b"".join(chain)
    if indirect:
        mem[INDIRECT:INDIRECT + len(table)] = table
        mem[DESC:DESC + 16] = desc(INDIRECT, len(table), F_INDIRECT, 0)
    else:
        mem[DESC:DESC + len(table)] = table
    mem[AVAIL:AVAIL + 6] = struct.pack("<HHH", 0, 1, 0)  # flags, idx=1, ring[0]=0
    mem[DATA:DATA + 14] = bytes.fromhex("ffffffffffff5254001234560806")
    geometry = struct.pack("<HHHHBBH", NUM, DESC // 16, AVAIL // 2, USED // 4, int(indirect), int(rx), rx_len)
    return geometry + bytes(mem[:0x8000])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "corpus"
    os.makedirs(out, exist_ok=True)
    seeds = {
        "tx_split": seed([desc(HDR, HDR_LEN, F_NEXT, 1), desc(DATA, 60, 0, 0)]),
        "tx_one": seed([desc(HDR, HDR_LEN + 60, 0, 0)]),
        "tx_indirect": seed([desc(HDR, HDR_LEN, F_NEXT, 1), desc(DATA, 1514, 0, 0)], indirect=True),
        "tx_writable": seed([desc(HDR, HDR_LEN, F_NEXT, 1), desc(DATA, 60, F_WRITE, 0)]),
        "rx_one": seed([desc(DATA, 2048, F_WRITE, 0)], rx=True, rx_len=1514),
        "rx_split": seed([desc(HDR, HDR_LEN, F_WRITE | F_NEXT, 1), desc(DATA, 1514, F_WRITE, 0)], rx=True,
                         rx_len=1514),
        "rx_small": seed([desc(DATA, 100, F_WRITE, 0)], rx=True, rx_len=1514),
    }
    for name, blob in seeds.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
