/* DNS for the guest through a chosen server instead of the host's
 * resolver: the guest's UDP queries to the virtual network's DNS address
 * are sent on to the server from a host socket, and its answers come back
 * to the guest as if from that address. The server comes from
 * $CAPSA_DNS_SERVER ("IPV4[:PORT]", port 53 by default); without it the
 * NAT's own forwarder answers with the host's resolver. */
#ifndef CAPSA_NET_DNS_FORWARD_H
#define CAPSA_NET_DNS_FORWARD_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa.h"
#include "net/frame.h"

#define DNS_FORWARD_MAX_PENDING 32
#define DNS_FORWARD_TIMEOUT_NS (5ull * 1000000000ull)

struct dns_forward;

typedef void (*dns_forward_deliver_fn)(void *opaque, const uint8_t *frame, size_t len);

/* server: "IPV4[:PORT]". */
struct dns_forward *dns_forward_create(const char *server, capsa_error *err);
void dns_forward_free(struct dns_forward *d);

/* Sends a guest's query on (dropped when too many are pending). */
void dns_forward_query(struct dns_forward *d, const struct frame_ipv4 *query, uint64_t now_ns);

/* Fills fds with the sockets waiting for answers; returns how many (at
 * most DNS_FORWARD_MAX_PENDING). */
size_t dns_forward_poll_fill(struct dns_forward *d, struct pollfd *fds);

/* After poll: delivers the answers that arrived (fds as filled, with
 * revents) and forgets queries that timed out. */
void dns_forward_poll_done(struct dns_forward *d, const struct pollfd *fds, size_t n, uint64_t now_ns,
			   dns_forward_deliver_fn deliver, void *opaque);

#endif
