#!/usr/bin/env python3
"""Writes seed inputs for fuzz_virtio_mmio into a directory: the register
sequence a Linux driver uses to bring up the queue and kick it, followed by
guest memory holding well-formed requests (from seed_virtio_blk)."""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seed_virtio_blk as blk  # noqa: E402

WRITE, READ = 0x82, 0x02  # 32-bit accesses


def access(offset, value=0, kind=WRITE):
    return struct.pack("<HBBI", offset, kind, 0, value)


def driver_bring_up(num=8):
    return [
        access(0x000, kind=READ), access(0x004, kind=READ), access(0x008, kind=READ),
        access(0x070, 0), access(0x070, 1), access(0x070, 3),
        access(0x014, 1), access(0x010, kind=READ), access(0x024, 1), access(0x020, 1),
        access(0x024, 0), access(0x020, 0), access(0x070, 11), access(0x070, kind=READ),
        access(0x030, 0), access(0x034, kind=READ), access(0x038, num),
        access(0x080, blk.DESC), access(0x084, 0), access(0x090, blk.AVAIL), access(0x094, 0),
        access(0x0a0, blk.USED), access(0x0a4, 0), access(0x044, 1), access(0x070, 15),
        access(0x100, kind=READ), access(0x050, 0), access(0x060, kind=READ), access(0x064, 1),
    ]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "corpus"
    os.makedirs(out, exist_ok=True)
    ops = driver_bring_up()
    for name, req in {"read": (blk.IN, 1024, True), "write": (blk.OUT, 512, False),
                      "flush": (blk.FLUSH, 0, False)}.items():
        image = blk.seed(*req)[10:]  # drop seed_virtio_blk's geometry header
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(bytes([len(ops)]) + b"".join(ops) + image)


if __name__ == "__main__":
    main()
