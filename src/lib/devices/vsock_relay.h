/* The host end of virtio-vsock streams (virtio 1.2, 5.10): turns the
 * guest's packets into host Unix socket connections and back, without
 * threads or virtqueues of its own, so that tests and fuzzers drive it
 * directly and the device (virtio_vsock.c) only moves chains.
 *
 * Host Unix sockets, Firecracker's convention:
 *  - the guest connecting to host port P reaches the listener at
 *    "<uds_path>_<P>"; no listener there means an RST;
 *  - host programs connect to "<uds_path>", write "CONNECT <port>\n" and,
 *    once the guest accepted, read "OK <host port>\n" and then talk to the
 *    guest's port; if nothing listens there they see end of file.
 *
 * Every packet from the guest is hostile: malformed ones are dropped or
 * answered with RST, a guest that sends past its credit loses the stream,
 * and memory stays bounded (VSOCK_CONN_MAX streams, each buffering at most
 * VSOCK_CONN_BUF_SIZE bytes, VSOCK_RELAY_RST_BACKLOG pending replies). */
#ifndef CAPSA_DEVICES_VSOCK_RELAY_H
#define CAPSA_DEVICES_VSOCK_RELAY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "capsa.h"
#include "devices/virtio/virtq.h"
#include "devices/vsock_conn.h"

#define VSOCK_HOST_CID 2
#define VSOCK_HDR_SIZE 44
/* Largest payload we accept in one packet (what Linux sends at most). */
#define VSOCK_MAX_PAYLOAD (64 * 1024)
/* Local ports of host-initiated streams count up from here, above the
 * ports guests usually connect to. */
#define VSOCK_HOST_PORT_FIRST (1u << 30)
/* RSTs owed to the guest for packets that match no stream. Once this many
 * wait for rx buffers the device stops taking tx packets. */
#define VSOCK_RELAY_RST_BACKLOG 64

/* struct virtio_vsock_hdr in host byte order. */
struct vsock_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
};

struct vsock_relay;

/* A relay for the guest at guest_cid (3 .. 0xfffffffe). With uds_path it
 * listens there (replacing a stale socket nobody listens on); NULL means
 * no host sockets at all: the guest's connections are refused. */
struct vsock_relay *vsock_relay_create(uint64_t guest_cid, const char *uds_path, capsa_error *err);

/* Closes every stream and the listener and removes the listening socket;
 * NULL is fine. */
void vsock_relay_destroy(struct vsock_relay *r);

/* Readable when a host socket needs attention: then call vsock_relay_poll. */
int vsock_relay_epoll_fd(const struct vsock_relay *r);

/* Handles whatever the host sockets have to say, without blocking. */
void vsock_relay_poll(struct vsock_relay *r);

/* Handles one chain from the tx queue: the packet header, then len bytes of
 * payload, in its readable part. Never writes to the chain. */
void vsock_relay_handle_tx(struct vsock_relay *r, const struct virtq_chain *chain);

/* Handles one validated packet: hdr->len payload bytes in payload[0..n). */
void vsock_relay_handle_packet(struct vsock_relay *r, const struct vsock_hdr *hdr,
			       const struct iovec *payload, unsigned n);

/* True when enough replies wait for rx buffers that taking more tx
 * packets would have to queue without bound. */
bool vsock_relay_tx_blocked(const struct vsock_relay *r);

/* True if vsock_relay_fill_rx has a packet for the next rx chain. */
bool vsock_relay_rx_pending(struct vsock_relay *r);

/* Writes one packet into an rx chain's writable part and returns the bytes
 * written (0 if the chain cannot hold a header or nothing is pending). */
uint32_t vsock_relay_fill_rx(struct vsock_relay *r, const struct virtq_chain *chain);

/* The driver reset the device: every stream is forgotten (host sockets
 * closed); the listener stays. */
void vsock_relay_reset(struct vsock_relay *r);

/* Streams in the table, for tests. */
unsigned vsock_relay_conn_count(const struct vsock_relay *r);

#endif
