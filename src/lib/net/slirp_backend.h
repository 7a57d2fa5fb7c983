/* User-mode NAT for a virtio-net device: libslirp on a thread of its own.
 *
 * The guest sits at NAT_GUEST_ADDR in 10.0.2.0/24 behind the gateway
 * NAT_GATEWAY_ADDR, which the host's loopback answers for (as in QEMU's
 * -netdev user), with DNS at NAT_DNS_ADDR forwarded to the host's resolver
 * (or to $CAPSA_DNS_SERVER, see net/dns_forward.h). IPv4 only.
 *
 * The egress policy judges every frame the guest sends before libslirp
 * sees it. The gateway, being the host's loopback, is a private address:
 * deny_private refuses it; only the DNS address is always allowed.
 * Replies to connections made to published ports always pass (see
 * net/inbound_flows.h); libslirp's own switch for the loopback mapping
 * stays off, as it would also cut the replies to UDP clients on the
 * host's loopback.
 *
 * libslirp is not thread-safe: one mutex covers every call into it, from
 * the poll thread, the device's worker (frames from the guest) and callers
 * publishing ports. */
#ifndef CAPSA_NET_SLIRP_BACKEND_H
#define CAPSA_NET_SLIRP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "capsa.h"
#include "net/port_spec.h"

#define NAT_NETWORK "10.0.2.0"
#define NAT_NETMASK "255.255.255.0"
#define NAT_GATEWAY_ADDR "10.0.2.2"
#define NAT_DNS_ADDR "10.0.2.3"
#define NAT_GUEST_ADDR "10.0.2.15"
#define NAT_MAX_PORTS 128

struct slirp_backend;

struct slirp_backend_config {
	const struct port_spec *ports;
	unsigned port_count;
	const char *egress;      /* an --egress spec; NULL: allow_all */
	const char *dns_server;  /* "IPV4[:PORT]"; NULL: the host's resolver */
};

/* Sets up the NAT and publishes the ports; fails when a host port cannot
 * be bound. Nothing runs until slirp_backend_start. */
struct slirp_backend *slirp_backend_create(const struct slirp_backend_config *cfg, capsa_error *err);

/* Where frames for the guest go (virtio_net_receive, in a VM). Called
 * with the backend's lock held: it must not call back into the backend. */
typedef void (*slirp_backend_deliver_fn)(void *opaque, const uint8_t *frame, size_t len);

/* Starts the poll thread, delivering frames with deliver(opaque, ...). */
int slirp_backend_start(struct slirp_backend *b, slirp_backend_deliver_fn deliver, void *opaque, capsa_error *err);

/* The device's send_frame callback (opaque is the backend). */
void slirp_backend_send_frame(void *opaque, const uint8_t *frame, size_t len);

/* Publishes one more port, at any time. */
int slirp_backend_add_port(struct slirp_backend *b, const struct port_spec *p, capsa_error *err);

/* Stops the poll thread; frames from the guest are still taken until the
 * device is gone. */
void slirp_backend_stop(struct slirp_backend *b);

/* Frees everything; NULL is fine. Call once the device is destroyed. */
void slirp_backend_free(struct slirp_backend *b);

#endif
