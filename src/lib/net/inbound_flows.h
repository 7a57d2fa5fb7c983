/* Replies to connections made to published ports. A restrictive egress
 * policy would drop them: the peer is often private (the host's loopback
 * shows up as the gateway address). So the frames the network delivers to
 * a published guest port record their peer, and the guest may answer that
 * peer from that port, and nothing else through this door: a TCP segment
 * that opens a connection (SYN without ACK) never counts as an answer.
 * Not thread-safe: the caller serializes. */
#ifndef CAPSA_NET_INBOUND_FLOWS_H
#define CAPSA_NET_INBOUND_FLOWS_H

#include <stdbool.h>
#include <stdint.h>

#include "net/frame.h"

#define INBOUND_FLOWS_MAX 256
#define INBOUND_FLOW_IDLE_NS (300ull * 1000000000ull)

struct inbound_flow {
	uint8_t proto;
	uint16_t guest_port, peer_port;
	uint8_t peer[4];
	uint64_t last_ns;  /* 0: free slot */
};

struct inbound_flows {
	struct inbound_flow flows[INBOUND_FLOWS_MAX];
};

/* A frame the network delivers to the guest, published when its
 * destination port is a published guest port; now_ns is a monotonic clock. */
void inbound_flows_note(struct inbound_flows *t, const struct frame_ipv4 *f, bool published, uint64_t now_ns);

/* Is this frame from the guest an answer to a recorded peer? */
bool inbound_flows_match(struct inbound_flows *t, const struct frame_ipv4 *f, uint64_t now_ns);

#endif
