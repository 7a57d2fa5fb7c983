#include "net/egress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define ETH_HEADER_LEN 14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88a8
#define ETHERTYPE_QINQ_OLD 0x9100
#define IPV6_MAX_EXT_HEADERS 8
#define DHCP_SERVER_PORT 67

/* ---- address ranges ---- */

#define V4(a, b, c, d, len) { AF_INET, len, { a, b, c, d } }
#define V6(len, ...) { AF_INET6, len, { __VA_ARGS__ } }

static const struct egress_cidr private_v4[] = {
	V4(0, 0, 0, 0, 8),         /* "this network" */
	V4(10, 0, 0, 0, 8),
	V4(100, 64, 0, 0, 10),     /* carrier-grade NAT */
	V4(127, 0, 0, 0, 8),
	V4(169, 254, 0, 0, 16),    /* link-local, cloud metadata services */
	V4(172, 16, 0, 0, 12),
	V4(192, 168, 0, 0, 16),
	V4(224, 0, 0, 0, 4),       /* multicast */
	V4(255, 255, 255, 255, 32),
};

static const struct egress_cidr private_v6[] = {
	V6(96, 0),                 /* ::, ::1 and the deprecated IPv4-compatible range */
	V6(7, 0xfc),               /* unique local */
	V6(10, 0xfe, 0x80),        /* link-local */
	V6(8, 0xff),               /* multicast */
};

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
static const uint8_t nat64_prefix[12] = { 0, 0x64, 0xff, 0x9b };

static bool prefix_matches(const uint8_t *addr, const uint8_t *net, unsigned prefix)
{
	unsigned bytes = prefix / 8, bits = prefix % 8;
	if (memcmp(addr, net, bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - bits));
	return (addr[bytes] & mask) == (net[bytes] & mask);
}

static bool in_list(const struct egress_cidr *list, size_t n, int family, const uint8_t *addr)
{
	for (size_t i = 0; i < n; i++)
		if (list[i].family == family && prefix_matches(addr, list[i].addr, list[i].prefix))
			return true;
	return false;
}

static bool is_private(int family, const uint8_t *addr)
{
	if (family == AF_INET)
		return in_list(private_v4, sizeof(private_v4) / sizeof(private_v4[0]), AF_INET, addr);
	/* A NAT64 gateway on the host's network would turn these into IPv4. */
	if (memcmp(addr, nat64_prefix, sizeof(nat64_prefix)) == 0)
		return is_private(AF_INET, addr + 12);
	return in_list(private_v6, sizeof(private_v6) / sizeof(private_v6[0]), AF_INET6, addr);
}

bool egress_allows(const struct egress_policy *policy, int family, const void *addr, uint16_t port, int proto)
{
	(void)port;
	(void)proto;
	const uint8_t *a = addr;
	if (family != AF_INET && family != AF_INET6)
		return false;
	/* The host's stack sends to ::ffff:a.b.c.d over IPv4. */
	if (family == AF_INET6 && memcmp(a, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
		family = AF_INET;
		a += 12;
	}
	if (in_list(policy->local, policy->num_local, family, a))
		return true;
	switch (policy->mode) {
	case EGRESS_ALLOW_ALL:
		return true;
	case EGRESS_DENY_PRIVATE:
		return !is_private(family, a);
	case EGRESS_ALLOW_LIST:
		return in_list(policy->cidrs, policy->num_cidrs, family, a);
	case EGRESS_DENY_LIST:
		return !in_list(policy->cidrs, policy->num_cidrs, family, a);
	}
	return false;
}

/* ---- spec parsing ---- */

/* "1.2.3.4:80": what someone expecting port rules would write. */
static bool looks_like_host_port(const char *text)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strchr(text, ':');
	uint8_t addr[4];
	if (!colon || (size_t)(colon - text) >= sizeof(host))
		return false;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	return inet_pton(AF_INET, host, addr) == 1;
}

/* Parses text[0..len) as a CIDR. */
static int parse_cidr(const char *text, size_t len, struct egress_cidr *out, capsa_error *err)
{
	char buf[INET6_ADDRSTRLEN + 8];
	if (len == 0)
		return error_set(err, EINVAL, "empty CIDR (a stray comma?)");
	if (len >= sizeof(buf))
		return error_set(err, EINVAL, "\"%.*s\" is not a CIDR (too long)", (int)len, text);
	memcpy(buf, text, len);
	buf[len] = '\0';

	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(out, 0, sizeof(*out));
	unsigned max;
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else if (looks_like_host_port(buf)) {
		return error_set(err, EINVAL, "\"%.*s\": ports are not supported in egress rules, give CIDRs only",
				 (int)len, text);
	} else {
		return error_set(err, EINVAL, "\"%.*s\" is not an IPv4 or IPv6 address or CIDR", (int)len, text);
	}

	out->prefix = (uint8_t)max;
	if (slash) {
		const char *p = slash + 1;
		unsigned prefix = 0;
		if (!*p || strlen(p) > 3)
			return error_set(err, EINVAL, "\"%.*s\": bad prefix length", (int)len, text);
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return error_set(err, EINVAL, "\"%.*s\": bad prefix length", (int)len, text);
			prefix = prefix * 10 + (unsigned)(*p - '0');
		}
		if (prefix > max)
			return error_set(err, EINVAL, "\"%.*s\": prefix length %u is out of range (0-%u for %s)",
					 (int)len, text, prefix, max, max == 32 ? "IPv4" : "IPv6");
		out->prefix = (uint8_t)prefix;
	}
	/* "10.1.2.3/8" is more likely a typo than a wish for 10.0.0.0/8. */
	for (unsigned bit = out->prefix; bit < max; bit++) {
		if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
			return error_set(err, EINVAL, "\"%.*s\": host bits are set after the /%u prefix",
					 (int)len, text, out->prefix);
	}
	return 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static int parse_list(const char *list, struct egress_policy *policy, capsa_error *err)
{
	size_t n = 1;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	policy->cidrs = calloc(n, sizeof(*policy->cidrs));
	if (!policy->cidrs)
		return error_set_errno(err, ENOMEM, "parsing the CIDR list");
	const char *p = list;
	for (;;) {
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		const char *start = p;
		while (start < end && is_space(*start))
			start++;
		const char *stop = end;
		while (stop > start && is_space(stop[-1]))
			stop--;
		if (parse_cidr(start, (size_t)(stop - start), &policy->cidrs[policy->num_cidrs], err) < 0)
			return -1;
		policy->num_cidrs++;
		if (!*end)
			return 0;
		p = end + 1;
	}
}

struct egress_policy *egress_policy_parse(const char *spec, capsa_error *err)
{
	struct egress_policy *policy = calloc(1, sizeof(*policy));
	if (!policy) {
		error_set_errno(err, ENOMEM, "egress policy");
		return NULL;
	}
	const char *list = NULL;
	if (strcmp(spec, "allow_all") == 0) {
		policy->mode = EGRESS_ALLOW_ALL;
	} else if (strcmp(spec, "deny_private") == 0) {
		policy->mode = EGRESS_DENY_PRIVATE;
	} else if (strncmp(spec, "allow:", 6) == 0) {
		policy->mode = EGRESS_ALLOW_LIST;
		list = spec + 6;
	} else if (strncmp(spec, "deny:", 5) == 0) {
		policy->mode = EGRESS_DENY_LIST;
		list = spec + 5;
	} else {
		error_set(err, EINVAL,
			  "egress policy \"%s\" is unknown: use allow_all, deny_private, allow:CIDR[,CIDR...] or "
			  "deny:CIDR[,CIDR...]", spec);
		goto fail;
	}
	if (list) {
		if (!*list) {
			error_set(err, EINVAL, "egress policy \"%s\": the CIDR list is empty", spec);
			goto fail;
		}
		if (parse_list(list, policy, err) < 0) {
			error_prefix(err, "egress policy \"%s\"", spec);
			goto fail;
		}
	}
	return policy;

fail:
	egress_policy_free(policy);
	return NULL;
}

void egress_policy_free(struct egress_policy *policy)
{
	if (!policy)
		return;
	free(policy->cidrs);
	free(policy->local);
	free(policy);
}

int egress_policy_allow_local(struct egress_policy *policy, const char *cidr, capsa_error *err)
{
	struct egress_cidr c;
	if (parse_cidr(cidr, strlen(cidr), &c, err) < 0)
		return error_prefix(err, "local egress exemption");
	struct egress_cidr *local = realloc(policy->local, (policy->num_local + 1) * sizeof(*local));
	if (!local)
		return error_set_errno(err, ENOMEM, "local egress exemption");
	local[policy->num_local++] = c;
	policy->local = local;
	return 0;
}

/* ---- frames ---- */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static bool check_ipv4(const struct egress_policy *policy, const uint8_t *pkt, size_t len)
{
	if (len < 20 || pkt[0] >> 4 != 4)
		return false;
	size_t ihl = (size_t)(pkt[0] & 0xf) * 4;
	size_t total = be16(pkt + 2);
	/* Ethernet pads short packets: the frame may be longer than the packet. */
	if (ihl < 20 || total < ihl || total > len)
		return false;
	unsigned frag_offset = be16(pkt + 6) & 0x1fff;
	uint8_t proto = pkt[9];
	const uint8_t *dst = pkt + 16;
	uint16_t port = 0;

	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		if (frag_offset == 0) {
			if (total - ihl < 4)
				return false;
			port = be16(pkt + ihl + 2);
		} else if (frag_offset == 1 && proto == IPPROTO_TCP) {
			return false; /* RFC 1858: overlaps the ports and flags */
		}
	}
	static const uint8_t broadcast[4] = { 255, 255, 255, 255 };
	if (proto == IPPROTO_UDP && port == DHCP_SERVER_PORT && memcmp(dst, broadcast, 4) == 0)
		return true;
	return egress_allows(policy, AF_INET, dst, port, proto);
}

static bool is_ndp(uint8_t type)
{
	/* Router solicitation/advertisement, neighbour solicitation/advertisement. */
	return type >= 133 && type <= 136;
}

static bool check_ipv6(const struct egress_policy *policy, const uint8_t *pkt, size_t len)
{
	if (len < 40 || pkt[0] >> 4 != 6)
		return false;
	size_t payload = be16(pkt + 4);
	if (payload == 0 || payload > len - 40)
		return false; /* jumbograms (payload length 0) are not for a virtual Ethernet */
	size_t end = 40 + payload;
	size_t off = 40;
	uint8_t next = pkt[6];
	bool first_fragment = true;

	for (int i = 0;; i++) {
		if (i > IPV6_MAX_EXT_HEADERS)
			return false;
		if (next == IPPROTO_HOPOPTS || next == IPPROTO_DSTOPTS || next == IPPROTO_ROUTING) {
			if (end - off < 8)
				return false;
			size_t hlen = ((size_t)pkt[off + 1] + 1) * 8;
			if (hlen > end - off)
				return false;
			/* With segments left the destination is not the final one. */
			if (next == IPPROTO_ROUTING && pkt[off + 3] != 0)
				return false;
			next = pkt[off];
			off += hlen;
		} else if (next == IPPROTO_FRAGMENT) {
			if (end - off < 8)
				return false;
			if (be16(pkt + off + 2) >> 3 != 0)
				first_fragment = false;
			next = pkt[off];
			off += 8;
			if (!first_fragment)
				break;
		} else if (next == IPPROTO_AH) {
			if (end - off < 8)
				return false;
			size_t hlen = ((size_t)pkt[off + 1] + 2) * 4;
			if (hlen > end - off)
				return false;
			next = pkt[off];
			off += hlen;
		} else {
			break;
		}
	}

	const uint8_t *dst = pkt + 24;
	uint16_t port = 0;
	if (first_fragment) {
		if (next == IPPROTO_TCP || next == IPPROTO_UDP) {
			if (end - off < 4)
				return false;
			port = be16(pkt + off + 2);
		} else if (next == IPPROTO_ICMPV6 && end - off >= 1 && is_ndp(pkt[off]) && pkt[7] == 255) {
			return true; /* hop limit 255: cannot have been routed (RFC 4861) */
		}
	}
	return egress_allows(policy, AF_INET6, dst, port, next);
}

bool egress_check_frame(const struct egress_policy *policy, const uint8_t *frame, size_t len)
{
	if (len < ETH_HEADER_LEN)
		return false;
	uint16_t type = be16(frame + 12);
	const uint8_t *pkt = frame + ETH_HEADER_LEN;
	size_t pkt_len = len - ETH_HEADER_LEN;
	switch (type) {
	case ETHERTYPE_IPV4:
		return check_ipv4(policy, pkt, pkt_len);
	case ETHERTYPE_IPV6:
		return check_ipv6(policy, pkt, pkt_len);
	case ETHERTYPE_VLAN:
	case ETHERTYPE_QINQ:
	case ETHERTYPE_QINQ_OLD:
		return false;
	default:
		return true;
	}
}
