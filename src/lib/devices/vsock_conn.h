/* One vsock stream between the guest and a host Unix socket, its credit
 * accounting (virtio 1.2, 5.10.6.3), and the table that finds streams by
 * port pair.
 *
 * Counters are the spec's 32-bit wrapping byte counts. Guest → host:
 * rx_cnt counts bytes taken from the guest, fwd_cnt bytes written to the
 * host socket; the difference sits in a ring buffer of buf_alloc bytes
 * whose read and write positions are those counters modulo its size. The
 * guest may only send what that buffer can hold (buf_alloc - (its tx_cnt -
 * our fwd_cnt)); one that sends more is cut off. Host → guest: tx_cnt
 * counts bytes sent; the guest's buf_alloc and fwd_cnt bound what it can
 * take. */
#ifndef CAPSA_DEVICES_VSOCK_CONN_H
#define CAPSA_DEVICES_VSOCK_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* The buf_alloc we advertise: guest bytes held per stream at most. A power
 * of two, so the ring positions stay right when the counters wrap. */
#define VSOCK_CONN_BUF_SIZE (256 * 1024)
/* Streams (of either direction, handshakes included) at once. */
#define VSOCK_CONN_MAX 1024
#define VSOCK_CONN_BUCKETS 1024
/* Longest "CONNECT <port>" line a host client may send. */
#define VSOCK_CONN_LINE_MAX 32

enum vsock_conn_state {
	VSOCK_CONN_HANDSHAKE,   /* host client accepted, reading its CONNECT line; not in the hash yet */
	VSOCK_CONN_CONNECTING,  /* host-initiated: waiting for the guest's RESPONSE */
	VSOCK_CONN_ESTABLISHED,
	VSOCK_CONN_CLOSED,      /* host socket closed; only our RST to the guest is left to send */
};

/* Control packets owed to the guest. */
enum {
	VSOCK_SEND_RST = 1 << 0,
	VSOCK_SEND_REQUEST = 1 << 1,
	VSOCK_SEND_RESPONSE = 1 << 2,
	VSOCK_SEND_SHUTDOWN = 1 << 3,
	VSOCK_SEND_CREDIT_UPDATE = 1 << 4,
};

struct vsock_conn {
	enum vsock_conn_state state;
	uint32_t local_port;         /* host side of the stream */
	uint32_t peer_port;          /* guest side */
	bool hashed;
	int fd;                      /* host Unix socket, -1 once closed */
	bool registered;             /* fd is in the relay's epoll set */
	uint32_t epoll_events;       /* interest registered for it */
	unsigned send;               /* VSOCK_SEND_* */
	uint32_t shutdown_flags;     /* for the SHUTDOWN we owe */

	/* Host → guest. */
	uint32_t tx_cnt;
	uint32_t peer_buf_alloc;
	uint32_t peer_fwd_cnt;
	bool host_readable;          /* a read on fd will not block */
	bool host_eof;               /* the host client sends nothing more */
	bool host_hup;               /* the host client is gone both ways */
	bool guest_no_rcv;           /* the guest reads nothing more */

	/* Guest → host. */
	uint32_t rx_cnt;
	uint32_t fwd_cnt;
	uint32_t fwd_cnt_sent;       /* fwd_cnt as of the last header sent to the guest */
	uint8_t *buf;                /* VSOCK_CONN_BUF_SIZE bytes while anything is buffered */
	bool guest_no_send;          /* the guest sends nothing more */
	bool host_shut_wr;           /* shutdown(SHUT_WR) done on fd */
	bool close_after_flush;      /* the guest closed: RST once the buffer reached the host */

	char line[VSOCK_CONN_LINE_MAX];
	unsigned line_len;

	struct vsock_conn *hash_next;
	struct vsock_conn *all_prev, *all_next;
	struct vsock_conn *rx_prev, *rx_next;
	bool in_rx_list;
};

struct vsock_conn_table {
	struct vsock_conn *buckets[VSOCK_CONN_BUCKETS];
	struct vsock_conn *all;      /* every stream, hashed or not */
	unsigned count;
};

/* A new stream in state HANDSHAKE with fd -1, not hashed; NULL when the
 * table holds VSOCK_CONN_MAX streams already or memory is short. */
struct vsock_conn *vsock_conn_new(struct vsock_conn_table *t);

/* Gives c its port pair and makes it findable; the pair must be unused. */
void vsock_conn_set_ports(struct vsock_conn_table *t, struct vsock_conn *c, uint32_t local_port,
			  uint32_t peer_port);

struct vsock_conn *vsock_conn_find(const struct vsock_conn_table *t, uint32_t local_port, uint32_t peer_port);

/* True if a stream already uses local_port on the host side. */
bool vsock_conn_local_port_used(const struct vsock_conn_table *t, uint32_t local_port);

/* Unlinks and frees c (the caller closed its fd and took it off any list). */
void vsock_conn_free(struct vsock_conn_table *t, struct vsock_conn *c);

/* Bytes the guest can take from us now. */
uint32_t vsock_conn_peer_credit(const struct vsock_conn *c);

/* Guest bytes held, not yet written to the host socket. */
uint32_t vsock_conn_buffered(const struct vsock_conn *c);

/* True if len more guest bytes stay within the buf_alloc we advertised. */
bool vsock_conn_guest_may_send(const struct vsock_conn *c, uint32_t len);

/* True once the guest has not heard of half a buffer's worth of the bytes
 * we forwarded: it may be waiting for that credit. */
bool vsock_conn_credit_update_due(const struct vsock_conn *c);

/* Takes len guest bytes (iov, n) for the host socket: writes what the
 * socket accepts now and buffers the rest. The caller checked
 * vsock_conn_guest_may_send(). Returns -1 if the socket failed (the peer
 * is gone) or the buffer could not be allocated. */
int vsock_conn_to_host(struct vsock_conn *c, const struct iovec *iov, unsigned n, uint32_t len);

/* Writes buffered bytes to the host socket until it is empty or the
 * socket is full; frees the buffer once empty. Returns -1 if the socket
 * failed. */
int vsock_conn_flush(struct vsock_conn *c);

#endif
