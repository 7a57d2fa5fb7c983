/* Egress policy: spec parsing, address decisions for IPv4 and IPv6, and
 * frames as a hostile guest might send them. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "net/egress.h"

static struct egress_policy *parse_ok(const char *spec)
{
	capsa_error err = { 0 };
	struct egress_policy *p = egress_policy_parse(spec, &err);
	if (!p)
		fail_msg("parsing \"%s\": %s", spec, err.message);
	return p;
}

/* ---- specs ---- */

static void test_valid_specs(void **state)
{
	(void)state;
	static const struct {
		const char *spec;
		enum egress_mode mode;
		size_t num_cidrs;
	} cases[] = {
		{ "allow_all", EGRESS_ALLOW_ALL, 0 },
		{ "deny_private", EGRESS_DENY_PRIVATE, 0 },
		{ "allow:10.0.0.0/8", EGRESS_ALLOW_LIST, 1 },
		{ "allow:1.2.3.4", EGRESS_ALLOW_LIST, 1 },
		{ "allow:0.0.0.0/0", EGRESS_ALLOW_LIST, 1 },
		{ "allow:::/0", EGRESS_ALLOW_LIST, 1 },
		{ "deny:192.168.0.0/16,2001:db8::/32", EGRESS_DENY_LIST, 2 },
		{ "deny:10.0.0.0/8, 172.16.0.0/12 ,::1", EGRESS_DENY_LIST, 3 },
		{ "allow:2001:db8::1/128", EGRESS_ALLOW_LIST, 1 },
		{ "allow:::ffff:1.2.3.4", EGRESS_ALLOW_LIST, 1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct egress_policy *p = parse_ok(cases[i].spec);
		assert_int_equal(p->mode, cases[i].mode);
		assert_int_equal(p->num_cidrs, cases[i].num_cidrs);
		egress_policy_free(p);
	}
}

static void test_invalid_specs(void **state)
{
	(void)state;
	static const struct {
		const char *spec;
		const char *mentions; /* the bad part the message must name */
	} cases[] = {
		{ "", "unknown" },
		{ "allow", "unknown" },
		{ "deny_all", "unknown" },
		{ "ALLOW_ALL", "unknown" },
		{ "allow:", "empty" },
		{ "deny:", "empty" },
		{ "allow:10.0.0.0/33", "10.0.0.0/33" },
		{ "allow:::/129", "::/129" },
		{ "allow:10.0.0.0/", "10.0.0.0/" },
		{ "allow:10.0.0.0/8x", "10.0.0.0/8x" },
		{ "allow:10.0.0.0/-1", "10.0.0.0/-1" },
		{ "allow:10.0.0.0/0008", "10.0.0.0/0008" },
		{ "allow:10.1.2.3/8", "host bits" },
		{ "allow:2001:db8::1/32", "host bits" },
		{ "allow:1.2.3.4:80", "ports are not supported" },
		{ "allow:10.0.0.0/8,,1.2.3.4", "empty CIDR" },
		{ "allow:10.0.0.0/8,", "empty CIDR" },
		{ "deny:example.com", "example.com" },
		{ "deny:1.2.3", "1.2.3" },
		{ "deny:256.0.0.0/8", "256.0.0.0/8" },
		{ "deny:1.2.3.4,fe80::1%eth0", "fe80::1%eth0" },
		{ "deny:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "too long" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		capsa_error err = { 0 };
		struct egress_policy *p = egress_policy_parse(cases[i].spec, &err);
		if (p)
			fail_msg("\"%s\" was accepted", cases[i].spec);
		assert_int_equal(err.code, EINVAL);
		if (!strstr(err.message, cases[i].mentions))
			fail_msg("\"%s\": message \"%s\" does not mention \"%s\"", cases[i].spec, err.message,
				 cases[i].mentions);
		assert_null(strchr(err.message, '\n'));
	}
	egress_policy_free(NULL);
}

/* ---- address decisions ---- */

struct decision {
	const char *addr;
	bool allowed;
};

static void check_decisions(const char *spec, const struct decision *cases, size_t n)
{
	struct egress_policy *p = parse_ok(spec);
	for (size_t i = 0; i < n; i++) {
		uint8_t addr[16];
		int family = strchr(cases[i].addr, ':') ? AF_INET6 : AF_INET;
		assert_int_equal(inet_pton(family, cases[i].addr, addr), 1);
		static const struct {
			uint16_t port;
			int proto;
		} flows[] = { { 443, IPPROTO_TCP }, { 53, IPPROTO_UDP }, { 0, IPPROTO_ICMP } };
		for (size_t f = 0; f < sizeof(flows) / sizeof(flows[0]); f++) {
			bool got = egress_allows(p, family, addr, flows[f].port, flows[f].proto);
			if (got != cases[i].allowed)
				fail_msg("%s: %s port %u proto %d: got %s", spec, cases[i].addr, flows[f].port,
					 flows[f].proto, got ? "allowed" : "denied");
		}
	}
	egress_policy_free(p);
}

#define CHECK(spec, table) check_decisions(spec, table, sizeof(table) / sizeof(table[0]))

static void test_deny_private(void **state)
{
	(void)state;
	static const struct decision cases[] = {
		{ "0.0.0.0", false },
		{ "0.255.1.2", false },
		{ "10.0.0.1", false },
		{ "10.255.255.255", false },
		{ "11.0.0.1", true },
		{ "100.63.255.255", true },
		{ "100.64.0.1", false },
		{ "100.127.255.255", false },
		{ "100.128.0.0", true },
		{ "127.0.0.1", false },
		{ "127.255.0.1", false },
		{ "169.254.169.254", false },
		{ "169.254.0.1", false },
		{ "169.255.0.1", true },
		{ "172.15.255.255", true },
		{ "172.16.0.1", false },
		{ "172.31.255.255", false },
		{ "172.32.0.0", true },
		{ "192.168.1.1", false },
		{ "192.169.0.1", true },
		{ "224.0.0.1", false },
		{ "239.255.255.255", false },
		{ "255.255.255.255", false },
		{ "8.8.8.8", true },
		{ "1.1.1.1", true },
		{ "::", false },
		{ "::1", false },
		{ "::10.0.0.1", false },
		{ "fc00::1", false },
		{ "fdff:ffff::1", false },
		{ "fe80::1", false },
		{ "febf::1", false },
		{ "fec0::1", true },
		{ "ff02::1", false },
		{ "ff0e::1", false },
		{ "::ffff:10.0.0.1", false },
		{ "::ffff:127.0.0.1", false },
		{ "::ffff:169.254.169.254", false },
		{ "::ffff:8.8.8.8", true },
		{ "64:ff9b::10.0.0.1", false },
		{ "64:ff9b::8.8.8.8", true },
		{ "2001:4860:4860::8888", true },
		{ "2606:4700::1111", true },
	};
	CHECK("deny_private", cases);
}

static void test_allow_all(void **state)
{
	(void)state;
	static const struct decision cases[] = {
		{ "10.0.0.1", true }, { "127.0.0.1", true }, { "::1", true }, { "8.8.8.8", true },
	};
	CHECK("allow_all", cases);
}

static void test_allow_list(void **state)
{
	(void)state;
	static const struct decision cases[] = {
		{ "10.1.2.3", true },
		{ "10.255.255.255", true },
		{ "11.0.0.0", false },
		{ "9.255.255.255", false },
		{ "203.0.113.7", true },
		{ "203.0.113.8", false },
		{ "2001:db8::1", true },
		{ "2001:db8:ffff::1", true },
		{ "2001:db9::1", false },
		{ "::ffff:10.9.9.9", true },
		{ "::ffff:8.8.8.8", false },
		{ "8.8.8.8", false },
		{ "::1", false },
	};
	CHECK("allow:10.0.0.0/8,203.0.113.7,2001:db8::/32", cases);

	/* Odd prefix lengths. */
	static const struct decision odd[] = {
		{ "192.0.2.0", true }, { "192.0.2.31", true }, { "192.0.2.32", false },
		{ "2001:db8::", true }, { "2001:db8:0:1::", false }, { "2001:db8:0:0:7fff::", true },
		{ "2001:db8:0:0:8000::", false },
	};
	CHECK("allow:192.0.2.0/27,2001:db8::/65", odd);
}

static void test_deny_list(void **state)
{
	(void)state;
	static const struct decision cases[] = {
		{ "192.168.1.1", false },
		{ "192.169.1.1", true },
		{ "10.0.0.1", true },
		{ "::ffff:192.168.3.4", false },
		{ "fd00::1", false },
		{ "fe00::1", true },
		{ "8.8.8.8", true },
	};
	CHECK("deny:192.168.0.0/16,fd00::/8", cases);
}

static void test_allow_local_and_bad_family(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	struct egress_policy *p = parse_ok("deny_private");
	uint8_t dns[4] = { 10, 0, 2, 3 }, gw[4] = { 10, 0, 2, 2 };
	assert_false(egress_allows(p, AF_INET, dns, 53, IPPROTO_UDP));
	assert_int_equal(egress_policy_allow_local(p, "10.0.2.3", &err), 0);
	assert_true(egress_allows(p, AF_INET, dns, 53, IPPROTO_UDP));
	assert_false(egress_allows(p, AF_INET, gw, 80, IPPROTO_TCP));
	assert_int_equal(egress_policy_allow_local(p, "10.0.2.0/33", &err), -1);
	assert_non_null(strstr(err.message, "10.0.2.0/33"));
	assert_false(egress_allows(p, AF_UNIX, dns, 53, IPPROTO_UDP));
	egress_policy_free(p);
}

/* ---- frames ---- */

static size_t eth(uint8_t *f, uint16_t type)
{
	memset(f, 0, 14);
	memcpy(f, "\x52\x54\x00\x12\x34\x56", 6);
	memcpy(f + 6, "\x52\x54\x00\x65\x43\x21", 6);
	f[12] = (uint8_t)(type >> 8);
	f[13] = (uint8_t)type;
	return 14;
}

/* An IPv4 packet with an 8-byte TCP/UDP-like payload (ports first) after
 * an IHL-word header. Returns the frame length. */
static size_t ipv4_frame(uint8_t *f, const char *dst, uint8_t proto, uint16_t frag, unsigned ihl, uint16_t port)
{
	size_t off = eth(f, 0x0800);
	uint8_t *ip = f + off;
	size_t hlen = ihl * 4;
	memset(ip, 0, hlen + 8);
	ip[0] = (uint8_t)(0x40 | ihl);
	uint16_t total = (uint16_t)(hlen + 8);
	ip[2] = (uint8_t)(total >> 8);
	ip[3] = (uint8_t)total;
	ip[6] = (uint8_t)(frag >> 8);
	ip[7] = (uint8_t)frag;
	ip[8] = 64;
	ip[9] = proto;
	inet_pton(AF_INET, "10.0.2.15", ip + 12);
	assert_int_equal(inet_pton(AF_INET, dst, ip + 16), 1);
	ip[hlen] = 0x80;
	ip[hlen + 2] = (uint8_t)(port >> 8);
	ip[hlen + 3] = (uint8_t)port;
	return off + hlen + 8;
}

/* An IPv6 packet: fixed header, the extension headers in ext (chained by
 * the caller, first one's type in next), then an 8-byte payload. */
static size_t ipv6_frame(uint8_t *f, const char *dst, uint8_t next, const uint8_t *ext, size_t ext_len,
			 uint8_t hop_limit)
{
	size_t off = eth(f, 0x86dd);
	uint8_t *ip = f + off;
	memset(ip, 0, 40);
	ip[0] = 0x60;
	uint16_t payload = (uint16_t)(ext_len + 8);
	ip[4] = (uint8_t)(payload >> 8);
	ip[5] = (uint8_t)payload;
	ip[6] = next;
	ip[7] = hop_limit;
	inet_pton(AF_INET6, "fec0::15", ip + 8);
	assert_int_equal(inet_pton(AF_INET6, dst, ip + 24), 1);
	memcpy(ip + 40, ext, ext_len);
	memset(ip + 40 + ext_len, 0, 8);
	ip[40 + ext_len + 3] = 80;
	return off + 40 + ext_len + 8;
}

/* Runs the frame through the check with the frame copied to a buffer of
 * exactly len bytes, so that ASan catches any read past it. */
static bool check(const struct egress_policy *p, const uint8_t *frame, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	memcpy(copy, frame, len);
	bool ok = egress_check_frame(p, copy, len);
	free(copy);
	return ok;
}

static void test_frames_ipv4(void **state)
{
	(void)state;
	struct egress_policy *p = parse_ok("deny_private");
	uint8_t f[256];
	size_t n;

	n = ipv4_frame(f, "8.8.8.8", IPPROTO_TCP, 0, 5, 443);
	assert_true(check(p, f, n));
	n = ipv4_frame(f, "10.0.0.1", IPPROTO_TCP, 0, 5, 443);
	assert_false(check(p, f, n));
	n = ipv4_frame(f, "169.254.169.254", IPPROTO_UDP, 0, 5, 80);
	assert_false(check(p, f, n));
	n = ipv4_frame(f, "8.8.8.8", IPPROTO_UDP, 0, 6, 53); /* with options */
	assert_true(check(p, f, n));
	n = ipv4_frame(f, "8.8.8.8", IPPROTO_ICMP, 0, 5, 0);
	assert_true(check(p, f, n));
	n = ipv4_frame(f, "127.0.0.1", IPPROTO_ICMP, 0, 5, 0);
	assert_false(check(p, f, n));
	/* Ethernet padding after the packet is fine. */
	n = ipv4_frame(f, "8.8.8.8", IPPROTO_UDP, 0, 5, 53);
	memset(f + n, 0, 20);
	assert_true(check(p, f, n + 20));

	/* DHCP discovery goes to the broadcast address; other broadcasts do not. */
	n = ipv4_frame(f, "255.255.255.255", IPPROTO_UDP, 0, 5, 67);
	assert_true(check(p, f, n));
	n = ipv4_frame(f, "255.255.255.255", IPPROTO_UDP, 0, 5, 68);
	assert_false(check(p, f, n));
	n = ipv4_frame(f, "255.255.255.255", IPPROTO_TCP, 0, 5, 67);
	assert_false(check(p, f, n));

	/* Every truncation of a valid packet is dropped. */
	n = ipv4_frame(f, "8.8.8.8", IPPROTO_TCP, 0, 5, 443);
	for (size_t len = 14; len < n; len++)
		assert_false(check(p, f, len));

	/* Bad version, IHL below 5, IHL past the packet, total length past
	 * the frame or below the header. */
	n = ipv4_frame(f, "8.8.8.8", IPPROTO_TCP, 0, 5, 443);
	f[14] = 0x65;
	assert_false(check(p, f, n));
	f[14] = 0x44;
	assert_false(check(p, f, n));
	f[14] = 0x4f;
	assert_false(check(p, f, n));
	f[14] = 0x45;
	f[16] = 0x01;
	assert_false(check(p, f, n));
	f[16] = 0;
	f[17] = 19;
	assert_false(check(p, f, n));
	/* Total length 20: a TCP packet with no room for its ports. */
	f[17] = 20;
	assert_false(check(p, f, n));
	f[17] = 28;
	assert_true(check(p, f, n));
	egress_policy_free(p);
}

static void test_frames_ipv4_fragments(void **state)
{
	(void)state;
	struct egress_policy *p = parse_ok("deny_private");
	uint8_t f[256];
	size_t n;

	/* First fragment (MF set) has its ports. */
	n = ipv4_frame(f, "8.8.8.8", IPPROTO_UDP, 0x2000, 5, 53);
	assert_true(check(p, f, n));
	/* Later fragments: address only. */
	n = ipv4_frame(f, "8.8.8.8", IPPROTO_UDP, 0x2000 | 185, 5, 0);
	assert_true(check(p, f, n));
	n = ipv4_frame(f, "8.8.8.8", IPPROTO_UDP, 185, 5, 0);
	assert_true(check(p, f, n));
	n = ipv4_frame(f, "10.1.1.1", IPPROTO_UDP, 185, 5, 0);
	assert_false(check(p, f, n));
	/* A later fragment may be shorter than a port field. */
	n = ipv4_frame(f, "8.8.8.8", IPPROTO_UDP, 185, 5, 0);
	f[16] = 0;
	f[17] = 22;
	assert_true(check(p, f, n));
	/* A first fragment too short for the ports is dropped. */
	n = ipv4_frame(f, "8.8.8.8", IPPROTO_TCP, 0x2000, 5, 443);
	f[17] = 22;
	assert_false(check(p, f, n));
	/* A TCP fragment at offset 8 could rewrite the ports. */
	n = ipv4_frame(f, "8.8.8.8", IPPROTO_TCP, 1, 5, 0);
	assert_false(check(p, f, n));
	egress_policy_free(p);
}

static void test_frames_ipv6(void **state)
{
	(void)state;
	struct egress_policy *p = parse_ok("deny_private");
	uint8_t f[512];
	size_t n;

	n = ipv6_frame(f, "2001:4860:4860::8888", IPPROTO_TCP, NULL, 0, 64);
	assert_true(check(p, f, n));
	n = ipv6_frame(f, "fd00::1", IPPROTO_TCP, NULL, 0, 64);
	assert_false(check(p, f, n));
	n = ipv6_frame(f, "::ffff:192.168.0.1", IPPROTO_UDP, NULL, 0, 64);
	assert_false(check(p, f, n));
	n = ipv6_frame(f, "::ffff:8.8.4.4", IPPROTO_UDP, NULL, 0, 64);
	assert_true(check(p, f, n));
	n = ipv6_frame(f, "::1", IPPROTO_UDP, NULL, 0, 64);
	assert_false(check(p, f, n));

	/* Hop-by-hop then destination options, then TCP. */
	uint8_t ext[16] = { IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0, IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0 };
	n = ipv6_frame(f, "2001:4860:4860::8888", IPPROTO_HOPOPTS, ext, sizeof(ext), 64);
	assert_true(check(p, f, n));
	n = ipv6_frame(f, "fe80::1", IPPROTO_HOPOPTS, ext, sizeof(ext), 64);
	assert_false(check(p, f, n));
	/* An extension header longer than the payload. */
	ext[1] = 3;
	n = ipv6_frame(f, "2001:4860:4860::8888", IPPROTO_HOPOPTS, ext, sizeof(ext), 64);
	assert_false(check(p, f, n));
	ext[1] = 0;

	/* A routing header with segments left names another destination. */
	uint8_t rh[8] = { IPPROTO_TCP, 0, 0, 1, 0, 0, 0, 0 };
	n = ipv6_frame(f, "2001:4860:4860::8888", IPPROTO_ROUTING, rh, sizeof(rh), 64);
	assert_false(check(p, f, n));
	rh[3] = 0;
	n = ipv6_frame(f, "2001:4860:4860::8888", IPPROTO_ROUTING, rh, sizeof(rh), 64);
	assert_true(check(p, f, n));

	/* Too many extension headers. */
	uint8_t many[8 * 12];
	for (unsigned i = 0; i < 12; i++) {
		memset(many + i * 8, 0, 8);
		many[i * 8] = i == 11 ? IPPROTO_TCP : IPPROTO_DSTOPTS;
	}
	n = ipv6_frame(f, "2001:4860:4860::8888", IPPROTO_DSTOPTS, many, sizeof(many), 64);
	assert_false(check(p, f, n));

	/* Payload length past the frame, zero (jumbogram), or with Ethernet
	 * padding after it. */
	n = ipv6_frame(f, "2001:4860:4860::8888", IPPROTO_TCP, NULL, 0, 64);
	f[19] = 9;
	assert_false(check(p, f, n));
	f[19] = 0;
	assert_false(check(p, f, n));
	f[19] = 8;
	memset(f + n, 0, 10);
	assert_true(check(p, f, n + 10));
	/* Payload too short for the ports. */
	f[19] = 3;
	assert_false(check(p, f, n));
	/* Bad version. */
	f[19] = 8;
	f[14] = 0x40;
	assert_false(check(p, f, n));

	/* Every truncation is dropped. */
	n = ipv6_frame(f, "2001:4860:4860::8888", IPPROTO_HOPOPTS, ext, sizeof(ext), 64);
	for (size_t len = 14; len < n; len++)
		assert_false(check(p, f, len));
	egress_policy_free(p);
}

static void test_frames_ipv6_fragments_and_ndp(void **state)
{
	(void)state;
	struct egress_policy *p = parse_ok("allow:2001:db8::/32");
	uint8_t f[256];
	size_t n;

	/* First fragment: ports follow the fragment header. */
	uint8_t frag[8] = { IPPROTO_UDP, 0, 0, 1, 0, 0, 0, 1 }; /* offset 0, M set */
	n = ipv6_frame(f, "2001:db8::1", IPPROTO_FRAGMENT, frag, sizeof(frag), 64);
	assert_true(check(p, f, n));
	n = ipv6_frame(f, "2001:db9::1", IPPROTO_FRAGMENT, frag, sizeof(frag), 64);
	assert_false(check(p, f, n));
	/* A later fragment is judged by address, even without room for ports. */
	frag[2] = 0x01; /* offset 32 */
	n = ipv6_frame(f, "2001:db8::1", IPPROTO_FRAGMENT, frag, sizeof(frag), 64);
	f[19] = 10;
	assert_true(check(p, f, n - 6));
	n = ipv6_frame(f, "2001:db9::1", IPPROTO_FRAGMENT, frag, sizeof(frag), 64);
	assert_false(check(p, f, n));
	/* A truncated fragment header. */
	n = ipv6_frame(f, "2001:db8::1", IPPROTO_FRAGMENT, frag, 0, 64);
	f[19] = 4;
	assert_false(check(p, f, 14 + 44));

	/* Neighbour solicitation to a solicited-node address passes with
	 * hop limit 255 only; an echo request there does not. */
	n = ipv6_frame(f, "ff02::1:ff00:2", IPPROTO_ICMPV6, NULL, 0, 255);
	f[14 + 40] = 135;
	assert_true(check(p, f, n));
	n = ipv6_frame(f, "ff02::2", IPPROTO_ICMPV6, NULL, 0, 255);
	f[14 + 40] = 133;
	assert_true(check(p, f, n));
	n = ipv6_frame(f, "ff02::1:ff00:2", IPPROTO_ICMPV6, NULL, 0, 64);
	f[14 + 40] = 135;
	assert_false(check(p, f, n));
	n = ipv6_frame(f, "ff02::1", IPPROTO_ICMPV6, NULL, 0, 255);
	f[14 + 40] = 128;
	assert_false(check(p, f, n));
	egress_policy_free(p);
}

static void test_frames_other(void **state)
{
	(void)state;
	struct egress_policy *p = parse_ok("allow:192.0.2.0/24");
	uint8_t f[64] = { 0 };

	/* Shorter than an Ethernet header. */
	for (size_t len = 0; len < 14; len++)
		assert_false(check(p, f, len));
	/* ARP and other non-IP pass. */
	eth(f, 0x0806);
	assert_true(check(p, f, 42));
	assert_true(check(p, f, 14));
	eth(f, 0x88cc);
	assert_true(check(p, f, 60));
	/* A VLAN tag could hide an IP packet. */
	eth(f, 0x8100);
	assert_false(check(p, f, 60));
	eth(f, 0x88a8);
	assert_false(check(p, f, 60));
	/* An IP ethertype with nothing after it. */
	eth(f, 0x0800);
	assert_false(check(p, f, 14));
	eth(f, 0x86dd);
	assert_false(check(p, f, 14));
	egress_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_specs),
		cmocka_unit_test(test_invalid_specs),
		cmocka_unit_test(test_deny_private),
		cmocka_unit_test(test_allow_all),
		cmocka_unit_test(test_allow_list),
		cmocka_unit_test(test_deny_list),
		cmocka_unit_test(test_allow_local_and_bad_family),
		cmocka_unit_test(test_frames_ipv4),
		cmocka_unit_test(test_frames_ipv4_fragments),
		cmocka_unit_test(test_frames_ipv6),
		cmocka_unit_test(test_frames_ipv6_fragments_and_ndp),
		cmocka_unit_test(test_frames_other),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
