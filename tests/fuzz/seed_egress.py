#!/usr/bin/env python3
"""Writes seed inputs for fuzz_egress into a directory: a policy selector
byte followed by well-formed Ethernet frames (IPv4 and IPv6 TCP/UDP, with
options, extension headers and fragments, ARP, neighbour discovery), and
selector 0xff followed by --egress specs for the parser."""
import os
import socket
import struct
import sys

MACS = bytes.fromhex("525400123456525400654321")


def eth(ethertype, payload):
    return MACS + struct.pack(">H", ethertype) + payload


def ipv4(dst, proto, payload, frag=0, options=b""):
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(payload)
    hdr = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, frag, 64, proto, 0,
                      socket.inet_aton("10.0.2.15"), socket.inet_aton(dst))
    return eth(0x0800, hdr + options + payload)


def ipv6(dst, nxt, payload, hop_limit=64):
    hdr = struct.pack(">IHBB16s16s", 0x60000000, len(payload), nxt, hop_limit,
                      socket.inet_pton(socket.AF_INET6, "fec0::15"), socket.inet_pton(socket.AF_INET6, dst))
    return eth(0x86DD, hdr + payload)


def l4(port):
    return struct.pack(">HH", 40000, port) + bytes(16)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "corpus"
    os.makedirs(out, exist_ok=True)
    frames = {
        "v4_tcp": ipv4("8.8.8.8", 6, l4(443)),
        "v4_udp_private": ipv4("10.1.2.3", 17, l4(53)),
        "v4_options": ipv4("1.1.1.1", 17, l4(53), options=bytes([1, 1, 1, 0])),
        "v4_first_fragment": ipv4("8.8.4.4", 17, l4(53), frag=0x2000),
        "v4_later_fragment": ipv4("8.8.4.4", 17, bytes(8), frag=185),
        "v4_dhcp": ipv4("255.255.255.255", 17, l4(67)),
        "v4_icmp": ipv4("169.254.169.254", 1, bytes(8)),
        "v6_tcp": ipv6("2001:db8::1", 6, l4(443)),
        "v6_mapped": ipv6("::ffff:192.168.1.1", 17, l4(53)),
        "v6_ext": ipv6("2001:4860::8888", 0, bytes([60, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0]) + l4(80)),
        "v6_routing": ipv6("2001:4860::8888", 43, bytes([6, 0, 0, 1, 0, 0, 0, 0]) + l4(80)),
        "v6_fragment": ipv6("2001:db8::2", 44, bytes([17, 0, 0, 1, 0, 0, 0, 7]) + l4(53)),
        "v6_ndp": ipv6("ff02::1:ff00:2", 58, bytes([135, 0, 0, 0]) + bytes(20), hop_limit=255),
        "arp": eth(0x0806, bytes(28)),
        "vlan": eth(0x8100, bytes(46)),
    }
    for i, (name, frame) in enumerate(frames.items()):
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(bytes([i % 4]) + frame)
    specs = ["allow_all", "deny_private", "allow:10.0.0.0/8,2001:db8::/32", "deny:192.168.0.0/16, ::1",
             "allow:1.2.3.4:80", "deny:10.0.0.0/33"]
    for i, spec in enumerate(specs):
        with open(os.path.join(out, "seed-spec%d" % i), "wb") as f:
            f.write(b"\xff" + spec.encode())


if __name__ == "__main__":
    main()
