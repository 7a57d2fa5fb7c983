#!/usr/bin/env python3
"""Writes seed inputs for fuzz_state_file into a directory: a few valid
snapshot state files (layout in src/lib/snapshot/state_file.h), with empty,
odd-length and padded sections, plus a couple of near misses."""
import hashlib
import os
import struct
import sys

META, VM_CLOCK, VM_PIT, VM_IRQCHIP, VCPU_REGS, VCPU_SREGS = range(1, 7)
DEVICE = 15


def section(tag, instance, data):
    return struct.pack("<IIQ", tag, instance, len(data)) + data + b"\0" * (-len(data) % 8)


def state_file(sections, version=1):
    body = b"".join(section(*s) for s in sections)
    return (b"CAPSASNP" + struct.pack("<IIQ", version, len(sections), len(body))
            + hashlib.sha256(body).digest() + body)


SMALL = [(VCPU_REGS, 0, bytes(range(144))), (DEVICE, 3, b"seven!\0"), (VCPU_REGS, 1, b"")]
VM = [(META, 0, b"capsa-snapshot\0\0"), (VM_CLOCK, 0, struct.pack("<QIIQ", 123456789, 2, 0, 0)),
      (VM_PIT, 0, b"\x01" * 112), (VM_IRQCHIP, 0, b"\x02" * 520), (VM_IRQCHIP, 1, b"\x03" * 520)]
for cpu in range(2):
    VM += [(VCPU_REGS, cpu, struct.pack("<18Q", *range(cpu, cpu + 18))), (VCPU_SREGS, cpu, b"\x04" * 312)]
VM += [(DEVICE, 0, b"blk"), (DEVICE, 1, b"net-state"), (99, 0, b"unknown tag")]

SEEDS = {
    "small": state_file(SMALL),
    "vm": state_file(VM),
    "empty": state_file([]),
    "version2": state_file(SMALL, version=2),
    "duplicate": state_file([(DEVICE, 0, b"a"), (DEVICE, 0, b"b")]),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
