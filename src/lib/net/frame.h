/* Just enough Ethernet/IPv4 to look at the guest's TCP and UDP traffic
 * (which flow a frame belongs to) and to build UDP frames for it. Frames
 * are hostile: read strictly within their length. */
#ifndef CAPSA_NET_FRAME_H
#define CAPSA_NET_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_ETH_LEN 14
#define FRAME_IPV4_LEN 20
#define FRAME_UDP_LEN 8
#define FRAME_TCP_SYN 0x02
#define FRAME_TCP_ACK 0x10

struct frame_ipv4 {
	uint8_t dst_mac[6], src_mac[6];
	uint8_t src[4], dst[4];      /* network byte order */
	uint8_t proto;               /* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t src_port, dst_port; /* host byte order */
	uint8_t tcp_flags;
	const uint8_t *payload;      /* UDP only: the datagram's data */
	size_t payload_len;
};

/* Parses an untagged IPv4 frame carrying TCP or UDP with its ports (an
 * unfragmented packet or a first fragment). False for anything else. */
bool frame_parse_ipv4(const uint8_t *frame, size_t len, struct frame_ipv4 *out);

/* Writes an Ethernet + IPv4 + UDP frame carrying payload into buf (room
 * for FRAME_ETH_LEN + FRAME_IPV4_LEN + FRAME_UDP_LEN + payload_len).
 * Returns the frame's length. */
size_t frame_build_udp(uint8_t *buf, const uint8_t dst_mac[6], const uint8_t src_mac[6], const uint8_t src[4],
		       uint16_t src_port, const uint8_t dst[4], uint16_t dst_port, const uint8_t *payload,
		       size_t payload_len);

#endif
