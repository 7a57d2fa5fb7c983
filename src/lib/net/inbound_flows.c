#include "net/inbound_flows.h"

#include <netinet/in.h>
#include <string.h>

static bool same_flow(const struct inbound_flow *fl, uint8_t proto, uint16_t guest_port, const uint8_t peer[4],
		      uint16_t peer_port)
{
	return fl->last_ns && fl->proto == proto && fl->guest_port == guest_port && fl->peer_port == peer_port &&
	       !memcmp(fl->peer, peer, 4);
}

void inbound_flows_note(struct inbound_flows *t, const struct frame_ipv4 *f, bool published, uint64_t now_ns)
{
	if (!published)
		return;
	struct inbound_flow *slot = NULL;
	for (unsigned i = 0; i < INBOUND_FLOWS_MAX; i++) {
		struct inbound_flow *fl = &t->flows[i];
		if (same_flow(fl, f->proto, f->dst_port, f->src, f->src_port)) {
			fl->last_ns = now_ns ? now_ns : 1;
			return;
		}
		/* A free slot, else the one idle longest. */
		if (!slot || (slot->last_ns && fl->last_ns < slot->last_ns))
			slot = fl;
	}
	*slot = (struct inbound_flow){
		.proto = f->proto,
		.guest_port = f->dst_port,
		.peer_port = f->src_port,
		.last_ns = now_ns ? now_ns : 1,
	};
	memcpy(slot->peer, f->src, 4);
}

bool inbound_flows_match(struct inbound_flows *t, const struct frame_ipv4 *f, uint64_t now_ns)
{
	if (f->proto == IPPROTO_TCP && (f->tcp_flags & (FRAME_TCP_SYN | FRAME_TCP_ACK)) == FRAME_TCP_SYN)
		return false;
	for (unsigned i = 0; i < INBOUND_FLOWS_MAX; i++) {
		struct inbound_flow *fl = &t->flows[i];
		if (!same_flow(fl, f->proto, f->src_port, f->dst, f->dst_port))
			continue;
		if (now_ns - fl->last_ns > INBOUND_FLOW_IDLE_NS) {
			fl->last_ns = 0;
			return false;
		}
		fl->last_ns = now_ns ? now_ns : 1;
		return true;
	}
	return false;
}
