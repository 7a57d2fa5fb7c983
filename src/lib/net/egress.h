/* Per-VM egress policy: which destinations a guest may send IP traffic to.
 *
 * The --egress spec is one of
 *   allow_all                 everything goes
 *   deny_private              everything but the private, local and special ranges below
 *   allow:CIDR[,CIDR...]      nothing but the listed ranges
 *   deny:CIDR[,CIDR...]       everything but the listed ranges
 * A CIDR is an IPv4 or IPv6 address with an optional /prefix (a bare address
 * means that one host); its host bits must be zero. Ports are not part of a
 * spec: a rule covers every port, TCP and UDP (and other IP protocols) alike.
 *
 * deny_private refuses: 0/8, 10/8, 100.64/10, 127/8, 169.254/16 (with the
 * 169.254.169.254 metadata service), 172.16/12, 192.168/16, 224/4,
 * 255.255.255.255, and ::/96 (unspecified, loopback, IPv4-compatible),
 * fc00::/7, fe80::/10, ff00::/8. IPv4-mapped (::ffff:0:0/96) and NAT64
 * (64:ff9b::/96) addresses are judged by the IPv4 address they embed.
 * In allow:/deny: lists an IPv4-mapped IPv6 address also counts as its
 * IPv4 address, so "deny:10.0.0.0/8" covers ::ffff:10.1.2.3.
 *
 * The virtual network's own services (gateway, DNS) are reached at
 * addresses a policy may refuse; egress_policy_allow_local() exempts them.
 * Note that a user-mode network stack may map its gateway address to the
 * host's loopback: exempt it only when that mapping is off. */
#ifndef CAPSA_NET_EGRESS_H
#define CAPSA_NET_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa.h"

enum egress_mode {
	EGRESS_ALLOW_ALL,
	EGRESS_DENY_PRIVATE,
	EGRESS_ALLOW_LIST, /* default deny */
	EGRESS_DENY_LIST,  /* default allow */
};

struct egress_cidr {
	int family;        /* AF_INET or AF_INET6 */
	uint8_t prefix;    /* 0..32 or 0..128 */
	uint8_t addr[16];  /* network byte order; IPv4 in the first 4 bytes */
};

struct egress_policy {
	enum egress_mode mode;
	size_t num_cidrs;
	struct egress_cidr *cidrs;  /* the allow: or deny: list */
	size_t num_local;
	struct egress_cidr *local;  /* always allowed: the virtual network's services */
};

/* Parses a --egress spec. On error the message names the offending part. */
struct egress_policy *egress_policy_parse(const char *spec, capsa_error *err);

/* NULL is fine. */
void egress_policy_free(struct egress_policy *policy);

/* Allows cidr (same syntax as in a spec) whatever the mode. */
int egress_policy_allow_local(struct egress_policy *policy, const char *cidr, capsa_error *err);

/* May the guest send to addr (4 bytes for AF_INET, 16 for AF_INET6, network
 * byte order)? port and proto (IPPROTO_*) do not change the answer today;
 * they are there so that callers need not change when rules get ports.
 * An unknown family is refused. */
bool egress_allows(const struct egress_policy *policy, int family, const void *addr, uint16_t port, int proto);

/* Judges one Ethernet frame from the guest; true means pass it on. The
 * frame is hostile and read strictly within len.
 *  - Non-IP frames (ARP, ...) pass; VLAN-tagged frames are dropped, so
 *    that no IP packet hides behind a tag.
 *  - Malformed IPv4/IPv6 (short, bad version, IHL or lengths, more than 8
 *    extension headers, a routing header with segments left, jumbograms)
 *    is dropped.
 *  - Fragments: only the first carries the TCP/UDP ports. A first fragment
 *    too short to hold them is dropped (as is an IPv4 TCP fragment at
 *    offset 8, which could rewrite them); later fragments are judged by
 *    address alone, which decides the same way while rules have no ports.
 *  - DHCP discovery (UDP to 255.255.255.255:67) and ICMPv6 router and
 *    neighbour discovery pass: the virtual network answers them itself. */
bool egress_check_frame(const struct egress_policy *policy, const uint8_t *frame, size_t len);

#endif
