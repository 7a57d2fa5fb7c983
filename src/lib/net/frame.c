#include "net/frame.h"

#include <netinet/in.h>
#include <string.h>

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

bool frame_parse_ipv4(const uint8_t *frame, size_t len, struct frame_ipv4 *out)
{
	if (len < FRAME_ETH_LEN + FRAME_IPV4_LEN || be16(frame + 12) != 0x0800)
		return false;
	const uint8_t *ip = frame + FRAME_ETH_LEN;
	size_t ip_avail = len - FRAME_ETH_LEN;
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
	size_t total = be16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < FRAME_IPV4_LEN || total < ihl || total > ip_avail)
		return false;
	if (be16(ip + 6) & 0x1fff)  /* a later fragment: no ports */
		return false;
	uint8_t proto = ip[9];
	const uint8_t *l4 = ip + ihl;
	size_t l4_len = total - ihl;
	memset(out, 0, sizeof(*out));
	if (proto == IPPROTO_TCP) {
		if (l4_len < 14)
			return false;
		out->tcp_flags = l4[13];
	} else if (proto == IPPROTO_UDP) {
		if (l4_len < FRAME_UDP_LEN)
			return false;
		size_t udp_len = be16(l4 + 4);
		if (udp_len < FRAME_UDP_LEN || udp_len > l4_len)
			return false;
		out->payload = l4 + FRAME_UDP_LEN;
		out->payload_len = udp_len - FRAME_UDP_LEN;
	} else {
		return false;
	}
	memcpy(out->dst_mac, frame, 6);
	memcpy(out->src_mac, frame + 6, 6);
	memcpy(out->src, ip + 12, 4);
	memcpy(out->dst, ip + 16, 4);
	out->proto = proto;
	out->src_port = be16(l4);
	out->dst_port = be16(l4 + 2);
	return true;
}

static uint16_t ipv4_checksum(const uint8_t *header, size_t len)
{
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += be16(header + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

size_t frame_build_udp(uint8_t *buf, const uint8_t dst_mac[6], const uint8_t src_mac[6], const uint8_t src[4],
		       uint16_t src_port, const uint8_t dst[4], uint16_t dst_port, const uint8_t *payload,
		       size_t payload_len)
{
	uint8_t *ip = buf + FRAME_ETH_LEN, *udp = ip + FRAME_IPV4_LEN;
	memcpy(buf, dst_mac, 6);
	memcpy(buf + 6, src_mac, 6);
	put_be16(buf + 12, 0x0800);
	memset(ip, 0, FRAME_IPV4_LEN);
	ip[0] = 0x45;
	put_be16(ip + 2, (uint16_t)(FRAME_IPV4_LEN + FRAME_UDP_LEN + payload_len));
	put_be16(ip + 6, 0x4000);  /* don't fragment */
	ip[8] = 64;
	ip[9] = IPPROTO_UDP;
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	put_be16(ip + 10, ipv4_checksum(ip, FRAME_IPV4_LEN));
	put_be16(udp, src_port);
	put_be16(udp + 2, dst_port);
	put_be16(udp + 4, (uint16_t)(FRAME_UDP_LEN + payload_len));
	put_be16(udp + 6, 0);  /* no checksum, which IPv4 allows */
	memcpy(udp + FRAME_UDP_LEN, payload, payload_len);
	return FRAME_ETH_LEN + FRAME_IPV4_LEN + FRAME_UDP_LEN + payload_len;
}
