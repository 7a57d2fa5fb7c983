#!/usr/bin/env python3
"""Writes seed inputs for fuzz_virtio_vsock into a directory: guest packet
sequences (connect to the host listener on port 1234, data, credit, shutdown,
reset; a host-initiated stream the guest accepts; refused and malformed
packets) on valid tx and rx queues, so the fuzzer starts past queue
validation and deep in the stream states."""
import os
import struct
import sys

NUM = 32
TX_DESC, TX_AVAIL, TX_USED = 0x1000, 0x1200, 0x1400
RX_DESC, RX_AVAIL, RX_USED = 0x2000, 0x2200, 0x2400
INDIRECT = 0x2800
PACKETS = 0x3000       # one packet per 0x100 bytes: header, then payload
RX_HDR, RX_DATA = 0x5000, 0x6000
IMAGE = 0x8000
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4

TX_INDIRECT, HOST_CLIENT, HOST_WRITES, HOST_SHUT_WR, HOST_CLOSE = 1, 4, 8, 16, 32
REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = 1, 2, 3, 4, 5, 6, 7
GUEST, HOST = 3, 2
HOST_PORT_FIRST = 1 << 30


def desc(addr, length, flags, nxt):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def hdr(op, src_port, dst_port, length=0, flags=0, src_cid=GUEST, dst_cid=HOST, typ=1,
        buf_alloc=65536, fwd_cnt=0):
    return struct.pack("<QQIIIHHIII", src_cid, dst_cid, src_port, dst_port, length, typ, op, flags,
                       buf_alloc, fwd_cnt)


def geometry(desc_addr, avail, used):
    return struct.pack("<HHHH", NUM, desc_addr // 16, avail // 2, used // 4)


def seed(packets, flags=0, client_port=0, split=True, indirect=False):
    """packets: list of (header, payload, declared_len or None)."""
    mem = bytearray(IMAGE)
    ring = []
    next_desc = 0
    for i, (h, payload) in enumerate(packets):
        at = PACKETS + i * 0x100
        mem[at:at + len(h)] = h
        if isinstance(payload, int):
            # That many bytes of payload read from guest memory at 0: big
            # packets from a small input.
            chain = [desc(at, 44, F_NEXT, 1), desc(0, payload, 0, 0)]
        elif split and payload:
            mem[at + 44:at + 44 + len(payload)] = payload
            chain = [desc(at, 44, F_NEXT, 1), desc(at + 44, len(payload), 0, 0)]
        else:
            mem[at + 44:at + 44 + len(payload)] = payload
            chain = [desc(at, 44 + len(payload), 0, 0)]
        if indirect:
            table = INDIRECT + i * 0x20
            mem[table:table + 16 * len(chain)] = b"".join(chain)
            mem[TX_DESC + 16 * next_desc:TX_DESC + 16 * next_desc + 16] = desc(table, 16 * len(chain),
                                                                              F_INDIRECT, 0)
            ring.append(next_desc)
            next_desc += 1
        else:
            head = next_desc
            for j, d in enumerate(chain):
                addr, length, fl, _ = struct.unpack("<QIHH", d)
                nxt = next_desc + 1 if fl & F_NEXT else 0
                mem[TX_DESC + 16 * next_desc:TX_DESC + 16 * next_desc + 16] = desc(addr, length, fl, nxt)
                next_desc += 1
            ring.append(head)
    mem[TX_AVAIL:TX_AVAIL + 4] = struct.pack("<HH", 0, len(ring))
    for i, head in enumerate(ring):
        mem[TX_AVAIL + 4 + 2 * i:TX_AVAIL + 6 + 2 * i] = struct.pack("<H", head)

    # rx: Linux's layout, a header descriptor and a data descriptor per buffer.
    for i in range(NUM // 2):
        mem[RX_DESC + 32 * i:RX_DESC + 32 * i + 32] = (
            desc(RX_HDR + 0x40 * i, 44, F_WRITE | F_NEXT, 2 * i + 1) +
            desc(RX_DATA + 0x200 * i, 0x200, F_WRITE, 0))
        mem[RX_AVAIL + 4 + 2 * i:RX_AVAIL + 6 + 2 * i] = struct.pack("<H", 2 * i)
    mem[RX_AVAIL:RX_AVAIL + 4] = struct.pack("<HH", 0, NUM // 2)

    header = (geometry(TX_DESC, TX_AVAIL, TX_USED) + geometry(RX_DESC, RX_AVAIL, RX_USED) +
              struct.pack("<BI", flags | (TX_INDIRECT if indirect else 0), client_port))
    return header + bytes(mem)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "corpus"
    os.makedirs(out, exist_ok=True)
    g, p = 5000, 1234
    seeds = {
        "connect_talk_close": seed([
            (hdr(REQUEST, g, p), b""),
            (hdr(RW, g, p, 5), b"hello"),
            (hdr(CREDIT_REQUEST, g, p), b""),
            (hdr(CREDIT_UPDATE, g, p, fwd_cnt=13), b""),
            (hdr(SHUTDOWN, g, p, flags=3), b""),
        ], flags=HOST_WRITES),
        "connect_half_close": seed([
            (hdr(REQUEST, g, p), b""),
            (hdr(RW, g, p, 4), b"data"),
            (hdr(SHUTDOWN, g, p, flags=2), b""),
            (hdr(RST, g, p), b""),
        ], flags=HOST_WRITES | HOST_SHUT_WR, split=False),
        "connect_indirect": seed([
            (hdr(REQUEST, g, p), b""),
            (hdr(RW, g, p, 3), b"abc"),
        ], flags=HOST_WRITES | HOST_CLOSE, indirect=True),
        "host_connect": seed([
            (hdr(RESPONSE, 7000, HOST_PORT_FIRST), b""),
            (hdr(RW, 7000, HOST_PORT_FIRST, 2), b"hi"),
            (hdr(SHUTDOWN, 7000, HOST_PORT_FIRST, flags=1), b""),
        ], flags=HOST_CLIENT | HOST_WRITES | HOST_CLOSE, client_port=7000),
        # More than the host socket and our buffer hold: buffering, then
        # the credit overrun that resets the stream; the host then drains.
        "fill_buffer": seed([(hdr(REQUEST, g, p), b"")] +
                            [(hdr(RW, g, p, 0x10000), 0x10000) for _ in range(12)]),
        "buffer_then_drain": seed([(hdr(REQUEST, g, p), b"")] +
                                  [(hdr(RW, g, p, 0x10000), 0x10000) for _ in range(5)] +
                                  [(hdr(SHUTDOWN, g, p, flags=3), b"")]),
        "refused_and_malformed": seed([
            (hdr(REQUEST, g, 999), b""),
            (hdr(REQUEST, g, p, dst_cid=5), b""),
            (hdr(REQUEST, g, p, typ=2), b""),
            (hdr(RW, g, p, 100), b"short"),
            (hdr(9, g, p), b""),
            (hdr(REQUEST, g, p), b""),
            (hdr(REQUEST, g, p), b""),
        ]),
    }
    for name, blob in seeds.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
