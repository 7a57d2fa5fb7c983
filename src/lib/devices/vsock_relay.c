#include "devices/vsock_relay.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/virtio_vsock.h>

#include "util/cleanup.h"
#include "util/error.h"

_Static_assert(sizeof(struct virtio_vsock_hdr) == VSOCK_HDR_SIZE, "virtio_vsock_hdr is 44 bytes");

/* "_4294967295": what a guest port appends to the socket path. */
#define PORT_SUFFIX_MAX 11
#define LISTEN_BACKLOG 128
#define POLL_BATCH 64

struct vsock_relay {
	uint64_t guest_cid;
	char *uds_path;
	int listen_fd;
	bool listen_paused;
	bool listen_bound;          /* we created the socket file: remove it at the end */
	int epoll_fd;               /* the listener (data.ptr NULL) and every stream's socket */
	struct vsock_conn_table table;
	/* Streams with something for the guest, served in turn. */
	struct vsock_conn *rx_head, *rx_tail;
	struct vsock_hdr rst[VSOCK_RELAY_RST_BACKLOG];
	unsigned rst_head, rst_count;
	uint32_t next_host_port;
	struct iovec iov[VIRTQ_MAX_SIZE];
};

/* ---- headers ---- */

static struct vsock_hdr hdr_from_le(const struct virtio_vsock_hdr *le)
{
	return (struct vsock_hdr){
		.src_cid = le64toh(le->src_cid),
		.dst_cid = le64toh(le->dst_cid),
		.src_port = le32toh(le->src_port),
		.dst_port = le32toh(le->dst_port),
		.len = le32toh(le->len),
		.type = le16toh(le->type),
		.op = le16toh(le->op),
		.flags = le32toh(le->flags),
		.buf_alloc = le32toh(le->buf_alloc),
		.fwd_cnt = le32toh(le->fwd_cnt),
	};
}

static void put_hdr(const struct virtq_chain *chain, const struct vsock_hdr *h)
{
	struct virtio_vsock_hdr le = {
		.src_cid = htole64(h->src_cid),
		.dst_cid = htole64(h->dst_cid),
		.src_port = htole32(h->src_port),
		.dst_port = htole32(h->dst_port),
		.len = htole32(h->len),
		.type = htole16(h->type),
		.op = htole16(h->op),
		.flags = htole32(h->flags),
		.buf_alloc = htole32(h->buf_alloc),
		.fwd_cnt = htole32(h->fwd_cnt),
	};
	virtq_chain_write(chain, 0, &le, sizeof(le));
}

/* ---- stream bookkeeping ---- */

/* Whether the next rx chain would carry something for c. */
static bool conn_wants_data(const struct vsock_conn *c)
{
	return c->state == VSOCK_CONN_ESTABLISHED && c->host_readable && !c->host_eof && !c->guest_no_rcv &&
	       vsock_conn_peer_credit(c) > 0;
}

static bool conn_has_rx(const struct vsock_conn *c)
{
	return c->send || conn_wants_data(c);
}

/* Whether the guest knows of the stream, i.e. it is more than a host
 * client whose REQUEST has not gone out yet. */
static bool guest_knows(const struct vsock_conn *c)
{
	return c->state != VSOCK_CONN_HANDSHAKE && !(c->send & VSOCK_SEND_REQUEST);
}

static void rx_list_remove(struct vsock_relay *r, struct vsock_conn *c)
{
	if (!c->in_rx_list)
		return;
	if (c->rx_prev)
		c->rx_prev->rx_next = c->rx_next;
	else
		r->rx_head = c->rx_next;
	if (c->rx_next)
		c->rx_next->rx_prev = c->rx_prev;
	else
		r->rx_tail = c->rx_prev;
	c->rx_prev = c->rx_next = NULL;
	c->in_rx_list = false;
}

/* Queues c for the guest if it has something to send and is not queued. */
static void rx_list_add(struct vsock_relay *r, struct vsock_conn *c)
{
	if (c->in_rx_list || !conn_has_rx(c))
		return;
	c->rx_prev = r->rx_tail;
	c->rx_next = NULL;
	if (r->rx_tail)
		r->rx_tail->rx_next = c;
	else
		r->rx_head = c;
	r->rx_tail = c;
	c->in_rx_list = true;
}

static uint32_t wanted_events(const struct vsock_conn *c)
{
	uint32_t events = 0;
	switch (c->state) {
	case VSOCK_CONN_HANDSHAKE:
		events = EPOLLIN;
		break;
	case VSOCK_CONN_ESTABLISHED:
		/* Once readable, the socket stays so until we read: asking
		 * again would only spin while the guest has no credit. */
		if (!c->host_readable && !c->host_eof && !c->guest_no_rcv)
			events |= EPOLLIN;
		if (vsock_conn_buffered(c))
			events |= EPOLLOUT;
		break;
	default:
		break;
	}
	return events;
}

static void close_host(struct vsock_conn *c)
{
	/* Closing the only descriptor also takes it off the epoll set. */
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->registered = false;
	free(c->buf);
	c->buf = NULL;
	c->fwd_cnt = c->rx_cnt;
}

static void pause_listener(struct vsock_relay *r, bool pause)
{
	if (r->listen_fd < 0 || r->listen_paused == pause)
		return;
	struct epoll_event ev = { .events = pause ? 0 : EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(r->epoll_fd, EPOLL_CTL_MOD, r->listen_fd, &ev) == 0)
		r->listen_paused = pause;
}

/* Forgets c without telling the guest. */
static void drop_conn(struct vsock_relay *r, struct vsock_conn *c)
{
	close_host(c);
	rx_list_remove(r, c);
	vsock_conn_free(&r->table, c);
	pause_listener(r, false);
}

/* Closes c's host socket; what is left to send the guest is an RST. */
static void abort_host(struct vsock_conn *c)
{
	close_host(c);
	c->state = VSOCK_CONN_CLOSED;
	c->send = VSOCK_SEND_RST;
}

/* Aborts c: its host socket closes now and the guest gets an RST, after
 * which c is freed. A stream the guest never heard of just goes. */
static void reset_conn(struct vsock_relay *r, struct vsock_conn *c)
{
	if (!guest_knows(c)) {
		drop_conn(r, c);
		return;
	}
	abort_host(c);
	rx_list_add(r, c);
}

/* Brings the epoll interest for c's socket in line with its state.
 * Returns false if that failed and c was reset. */
static bool update_interest(struct vsock_relay *r, struct vsock_conn *c)
{
	/* A hung-up socket is off the set: its HUP cannot be masked. */
	if (c->fd < 0 || c->host_hup)
		return true;
	uint32_t events = wanted_events(c);
	if (c->registered && events == c->epoll_events)
		return true;
	struct epoll_event ev = { .events = events, .data.ptr = c };
	if (epoll_ctl(r->epoll_fd, c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		reset_conn(r, c);
		return false;
	}
	c->registered = true;
	c->epoll_events = events;
	return true;
}

/* RST for a packet that matches no stream (never for an RST: two ends
 * that both know nothing must not bounce RSTs forever). */
static void reply_rst(struct vsock_relay *r, const struct vsock_hdr *h)
{
	if (h->op == VIRTIO_VSOCK_OP_RST || r->rst_count == VSOCK_RELAY_RST_BACKLOG)
		return;
	struct vsock_hdr *out = &r->rst[(r->rst_head + r->rst_count) % VSOCK_RELAY_RST_BACKLOG];
	*out = (struct vsock_hdr){
		.src_cid = h->dst_cid,
		.dst_cid = h->src_cid,
		.src_port = h->dst_port,
		.dst_port = h->src_port,
		.type = h->type,
		.op = VIRTIO_VSOCK_OP_RST,
	};
	r->rst_count++;
}

/* Guest bytes reached the host socket (or the guest shut down): tell the
 * guest about the room when it may be waiting for it, and finish the
 * shutdowns that waited for the buffer to drain. */
static void after_forward(struct vsock_relay *r, struct vsock_conn *c)
{
	if (vsock_conn_credit_update_due(c))
		c->send |= VSOCK_SEND_CREDIT_UPDATE;
	if (vsock_conn_buffered(c) == 0) {
		if (c->close_after_flush) {
			/* The RST is how a full shutdown is acknowledged. */
			reset_conn(r, c);
			return;
		}
		if (c->guest_no_send && !c->host_shut_wr) {
			shutdown(c->fd, SHUT_WR);
			c->host_shut_wr = true;
		}
	}
	if (update_interest(r, c))
		rx_list_add(r, c);
}

/* ---- packets from the guest ---- */

static int connect_host_port(const struct vsock_relay *r, uint32_t port)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int len = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s_%u", r->uds_path, port);
	if (len < 0 || (size_t)len >= sizeof(addr.sun_path))
		return -1;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* A Unix stream connect completes at once or fails (EAGAIN when
	 * the listener's backlog is full): never EINPROGRESS. */
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -1;
	return steal_fd(&fd);
}

static void guest_connect(struct vsock_relay *r, const struct vsock_hdr *h)
{
	if (!r->uds_path || r->table.count >= VSOCK_CONN_MAX) {
		reply_rst(r, h);
		return;
	}
	int fd = connect_host_port(r, h->dst_port);
	if (fd < 0) {
		reply_rst(r, h);
		return;
	}
	struct vsock_conn *c = vsock_conn_new(&r->table);
	if (!c) {
		close(fd);
		reply_rst(r, h);
		return;
	}
	c->fd = fd;
	vsock_conn_set_ports(&r->table, c, h->dst_port, h->src_port);
	c->state = VSOCK_CONN_ESTABLISHED;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->send = VSOCK_SEND_RESPONSE;
	if (update_interest(r, c))
		rx_list_add(r, c);
}

/* The guest accepted a host client's connection. */
static void guest_accepted(struct vsock_relay *r, struct vsock_conn *c)
{
	if (c->state != VSOCK_CONN_CONNECTING) {
		reset_conn(r, c);
		return;
	}
	char ok[32];
	int len = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
	/* The client has read nothing from us yet, so its socket has room
	 * for these few bytes unless it is gone. */
	if (send(c->fd, ok, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) != len) {
		reset_conn(r, c);
		return;
	}
	c->state = VSOCK_CONN_ESTABLISHED;
	if (update_interest(r, c))
		rx_list_add(r, c);
}

static void guest_data(struct vsock_relay *r, struct vsock_conn *c, uint32_t len, const struct iovec *payload,
		       unsigned n)
{
	/* Past its credit the guest would make us hold more than we said
	 * we would: it loses the stream instead. */
	if (c->state != VSOCK_CONN_ESTABLISHED || c->guest_no_send || !vsock_conn_guest_may_send(c, len) ||
	    vsock_conn_to_host(c, payload, n, len) < 0) {
		reset_conn(r, c);
		return;
	}
	after_forward(r, c);
}

static void guest_shutdown(struct vsock_relay *r, struct vsock_conn *c, uint32_t flags)
{
	if (c->state != VSOCK_CONN_ESTABLISHED) {
		reset_conn(r, c);
		return;
	}
	if ((flags & VIRTIO_VSOCK_SHUTDOWN_RCV) && !c->guest_no_rcv) {
		c->guest_no_rcv = true;
		shutdown(c->fd, SHUT_RD);
	}
	if (flags & VIRTIO_VSOCK_SHUTDOWN_SEND)
		c->guest_no_send = true;
	if (c->guest_no_rcv && c->guest_no_send)
		c->close_after_flush = true;
	after_forward(r, c);
}

void vsock_relay_handle_packet(struct vsock_relay *r, const struct vsock_hdr *h,
			       const struct iovec *payload, unsigned n)
{
	/* Not from the guest's own address: there is nobody to answer. */
	if (h->src_cid != r->guest_cid)
		return;
	if (h->dst_cid != VSOCK_HOST_CID || h->type != VIRTIO_VSOCK_TYPE_STREAM) {
		reply_rst(r, h);
		return;
	}
	struct vsock_conn *c = vsock_conn_find(&r->table, h->dst_port, h->src_port);
	if (c && !guest_knows(c)) {
		/* A host client's stream the guest was not offered yet. */
		reply_rst(r, h);
		return;
	}
	if (h->op == VIRTIO_VSOCK_OP_REQUEST) {
		/* The guest lost track of a stream it has: end both. */
		if (c)
			reset_conn(r, c);
		else
			guest_connect(r, h);
		return;
	}
	if (!c) {
		reply_rst(r, h);
		return;
	}
	if (c->state == VSOCK_CONN_CLOSED) {
		/* Our RST is on its way; the guest's own one settles it. */
		if (h->op == VIRTIO_VSOCK_OP_RST)
			drop_conn(r, c);
		return;
	}
	if (h->op == VIRTIO_VSOCK_OP_RST) {
		drop_conn(r, c);
		return;
	}
	if (c->state == VSOCK_CONN_CONNECTING && h->op != VIRTIO_VSOCK_OP_RESPONSE) {
		reset_conn(r, c);
		return;
	}
	/* Every packet carries the sender's credit. */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case VIRTIO_VSOCK_OP_RESPONSE:
		guest_accepted(r, c);
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		guest_shutdown(r, c, h->flags);
		break;
	case VIRTIO_VSOCK_OP_RW:
		guest_data(r, c, h->len, payload, n);
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->send |= VSOCK_SEND_CREDIT_UPDATE;
		break;
	default:
		reset_conn(r, c);
		break;
	}
	/* New credit may let queued host data go. */
	rx_list_add(r, c);
}

/* A packet whose length does not fit: its stream, if any, is reset. */
static void malformed(struct vsock_relay *r, const struct vsock_hdr *h)
{
	if (h->src_cid != r->guest_cid)
		return;
	struct vsock_conn *c = NULL;
	if (h->dst_cid == VSOCK_HOST_CID && h->type == VIRTIO_VSOCK_TYPE_STREAM)
		c = vsock_conn_find(&r->table, h->dst_port, h->src_port);
	if (c && guest_knows(c)) {
		if (c->state != VSOCK_CONN_CLOSED)
			reset_conn(r, c);
	} else {
		reply_rst(r, h);
	}
}

void vsock_relay_handle_tx(struct vsock_relay *r, const struct virtq_chain *chain)
{
	struct virtio_vsock_hdr le;
	/* Copied once: the guest may change the chain while we look. */
	if (virtq_chain_read(chain, 0, &le, sizeof(le)) < sizeof(le))
		return;
	struct vsock_hdr h = hdr_from_le(&le);
	if (h.len > VSOCK_MAX_PAYLOAD || h.len > chain->readable_len - sizeof(le)) {
		malformed(r, &h);
		return;
	}
	unsigned n = h.len ? virtq_chain_slice(chain, false, sizeof(le), h.len, r->iov) : 0;
	vsock_relay_handle_packet(r, &h, r->iov, n);
}

bool vsock_relay_tx_blocked(const struct vsock_relay *r)
{
	return r->rst_count >= VSOCK_RELAY_RST_BACKLOG;
}

/* ---- packets to the guest ---- */

bool vsock_relay_rx_pending(struct vsock_relay *r)
{
	if (r->rst_count)
		return true;
	/* Streams queued earlier may have lost their reason (credit used up). */
	while (r->rx_head && !conn_has_rx(r->rx_head))
		rx_list_remove(r, r->rx_head);
	return r->rx_head != NULL;
}

/* Reads host bytes for c into the chain after the header. Returns the
 * count, 0 at end of file, -EAGAIN if there was nothing after all, or
 * another negative errno. */
static ssize_t read_from_host(struct vsock_relay *r, struct vsock_conn *c, const struct virtq_chain *chain)
{
	uint64_t room = chain->writable_len - VSOCK_HDR_SIZE;
	uint32_t max = vsock_conn_peer_credit(c);
	if (max > VSOCK_MAX_PAYLOAD)
		max = VSOCK_MAX_PAYLOAD;
	if (max > room)
		max = (uint32_t)room;
	unsigned n = virtq_chain_slice(chain, true, VSOCK_HDR_SIZE, max, r->iov);
	ssize_t got;
	do
		got = readv(c->fd, r->iov, (int)n);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		got = errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (got > 0 && !c->host_hup) {
		/* Ask epoll again only once the socket is empty. */
		int left = 0;
		if (ioctl(c->fd, FIONREAD, &left) < 0 || left <= 0)
			c->host_readable = false;
	} else if (got == -EAGAIN) {
		c->host_readable = false;
	}
	return got;
}

/* Writes c's next packet into the chain; returns its length. */
static uint32_t send_to_guest(struct vsock_relay *r, struct vsock_conn *c, const struct virtq_chain *chain)
{
	struct vsock_hdr h = {
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = r->guest_cid,
		.src_port = c->local_port,
		.dst_port = c->peer_port,
		.type = VIRTIO_VSOCK_TYPE_STREAM,
		.buf_alloc = VSOCK_CONN_BUF_SIZE,
	};

	if (c->send & VSOCK_SEND_REQUEST) {
		h.op = VIRTIO_VSOCK_OP_REQUEST;
		c->send &= ~VSOCK_SEND_REQUEST;
	} else if (c->send & VSOCK_SEND_RESPONSE) {
		h.op = VIRTIO_VSOCK_OP_RESPONSE;
		c->send &= ~VSOCK_SEND_RESPONSE;
	} else if (!(c->send & VSOCK_SEND_RST) && conn_wants_data(c) &&
		   chain->writable_len > VSOCK_HDR_SIZE) {
		ssize_t got = read_from_host(r, c, chain);
		if (got > 0) {
			h.op = VIRTIO_VSOCK_OP_RW;
			h.len = (uint32_t)got;
			c->tx_cnt += (uint32_t)got;
		} else if (got == 0) {
			/* End of file comes after all the data, like the
			 * SHUTDOWN that says so. */
			c->host_eof = true;
			c->send |= VSOCK_SEND_SHUTDOWN;
			c->shutdown_flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
			if (c->host_hup)
				c->shutdown_flags |= VIRTIO_VSOCK_SHUTDOWN_RCV;
		} else if (got != -EAGAIN) {
			abort_host(c);
		}
		/* On failure this too leaves c closed with only the RST to send. */
		update_interest(r, c);
	}

	if (!h.op) {
		if (c->send & VSOCK_SEND_RST) {
			h.op = VIRTIO_VSOCK_OP_RST;
			put_hdr(chain, &h);
			drop_conn(r, c);
			return VSOCK_HDR_SIZE;
		}
		if (c->send & VSOCK_SEND_SHUTDOWN) {
			h.op = VIRTIO_VSOCK_OP_SHUTDOWN;
			h.flags = c->shutdown_flags;
			c->send &= ~VSOCK_SEND_SHUTDOWN;
		} else {
			/* Also what a stream whose data was not there after
			 * all sends: any header is a valid credit update. */
			h.op = VIRTIO_VSOCK_OP_CREDIT_UPDATE;
		}
	}
	/* Every header tells the guest our credit. */
	h.fwd_cnt = c->fwd_cnt;
	c->fwd_cnt_sent = c->fwd_cnt;
	c->send &= ~VSOCK_SEND_CREDIT_UPDATE;
	put_hdr(chain, &h);
	rx_list_add(r, c);
	return VSOCK_HDR_SIZE + h.len;
}

uint32_t vsock_relay_fill_rx(struct vsock_relay *r, const struct virtq_chain *chain)
{
	if (chain->writable_len < VSOCK_HDR_SIZE || !vsock_relay_rx_pending(r))
		return 0;
	if (r->rst_count) {
		put_hdr(chain, &r->rst[r->rst_head]);
		r->rst_head = (r->rst_head + 1) % VSOCK_RELAY_RST_BACKLOG;
		r->rst_count--;
		return VSOCK_HDR_SIZE;
	}
	struct vsock_conn *c = r->rx_head;
	rx_list_remove(r, c);
	return send_to_guest(r, c, chain);
}

/* ---- host sockets ---- */

static bool parse_connect(const char *line, uint32_t *port)
{
	const char *p = line + strlen("CONNECT ");
	if (strncmp(line, "CONNECT ", strlen("CONNECT ")) || *p < '0' || *p > '9')
		return false;
	uint64_t value = 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		value = value * 10 + (uint64_t)(*p - '0');
		if (value > UINT32_MAX)
			return false;
	}
	if (*p == '\r')
		p++;
	*port = (uint32_t)value;
	return *p == '\0';
}

/* A host port no stream uses, counting up from VSOCK_HOST_PORT_FIRST;
 * 0xffffffff is VMADDR_PORT_ANY. At most VSOCK_CONN_MAX are taken, so
 * one more try than that always finds one. */
static uint32_t alloc_host_port(struct vsock_relay *r)
{
	for (;;) {
		uint32_t port = r->next_host_port;
		r->next_host_port = port >= UINT32_MAX - 1 ? VSOCK_HOST_PORT_FIRST : port + 1;
		if (!vsock_conn_local_port_used(&r->table, port))
			return port;
	}
}

/* The client sent its CONNECT line: offer the stream to the guest. */
static void host_connect(struct vsock_relay *r, struct vsock_conn *c)
{
	uint32_t port;
	if (!parse_connect(c->line, &port)) {
		drop_conn(r, c);
		return;
	}
	vsock_conn_set_ports(&r->table, c, alloc_host_port(r), port);
	c->state = VSOCK_CONN_CONNECTING;
	c->send = VSOCK_SEND_REQUEST;
	/* Data the client sends early stays in its socket until the guest
	 * accepted. */
	if (update_interest(r, c))
		rx_list_add(r, c);
}

/* Reads the CONNECT line a byte at a time, so that nothing the client
 * sends after it is taken before the stream exists. */
static void read_handshake(struct vsock_relay *r, struct vsock_conn *c)
{
	while (c->line_len < sizeof(c->line) - 1) {
		char ch;
		ssize_t n = read(c->fd, &ch, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !c->host_hup)
			return;
		if (n <= 0)
			break;
		if (ch == '\n') {
			c->line[c->line_len] = '\0';
			host_connect(r, c);
			return;
		}
		c->line[c->line_len++] = ch;
	}
	drop_conn(r, c);
}

static void accept_clients(struct vsock_relay *r)
{
	for (;;) {
		/* At the limit, clients wait in the backlog until a stream
		 * ends (drop_conn resumes the listener). */
		if (r->table.count >= VSOCK_CONN_MAX) {
			pause_listener(r, true);
			return;
		}
		int fd = accept4(r->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/* Out of descriptors or memory: retrying at once would
			 * spin; wait for a stream to end. */
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				pause_listener(r, true);
			return;
		}
		struct vsock_conn *c = vsock_conn_new(&r->table);
		if (!c) {
			close(fd);
			pause_listener(r, true);
			return;
		}
		c->fd = fd;
		update_interest(r, c);
	}
}

/* Only c may be freed here: the rest of the event batch may point to any
 * other stream. */
static void conn_event(struct vsock_relay *r, struct vsock_conn *c, uint32_t events)
{
	if (c->fd < 0)
		return;
	if (events & (EPOLLHUP | EPOLLERR)) {
		/* Level-triggered and not maskable: off the set, and reads
		 * (which no longer block) tell the rest. */
		epoll_ctl(r->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
		c->registered = false;
		c->host_hup = true;
		c->host_readable = true;
	}
	switch (c->state) {
	case VSOCK_CONN_HANDSHAKE:
		read_handshake(r, c);
		return;
	case VSOCK_CONN_ESTABLISHED:
		if (events & EPOLLIN)
			c->host_readable = true;
		if (vsock_conn_buffered(c) && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
			if (vsock_conn_flush(c) < 0) {
				reset_conn(r, c);
				return;
			}
			after_forward(r, c);
			return;
		}
		if (update_interest(r, c))
			rx_list_add(r, c);
		return;
	default:
		return;
	}
}

void vsock_relay_poll(struct vsock_relay *r)
{
	struct epoll_event events[POLL_BATCH];
	int n = epoll_wait(r->epoll_fd, events, POLL_BATCH, 0);
	for (int i = 0; i < n; i++) {
		if (events[i].data.ptr)
			conn_event(r, events[i].data.ptr, events[i].events);
		else
			accept_clients(r);
	}
}

/* ---- setup ---- */

/* A socket file nobody listens on is left over from an earlier run. */
static bool stale_socket(const struct sockaddr_un *addr)
{
	struct stat st;
	if (lstat(addr->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	return connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 && errno == ECONNREFUSED;
}

static int listen_on(struct vsock_relay *r, capsa_error *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", r->uds_path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_set_errno(err, errno, "vsock socket %s", r->uds_path);
	int ret = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	if (ret < 0 && errno == EADDRINUSE && stale_socket(&addr) && unlink(addr.sun_path) == 0)
		ret = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	if (ret < 0) {
		if (errno == EADDRINUSE)
			return error_set(err, EADDRINUSE,
					 "vsock socket %s already exists and is not a stale socket: "
					 "remove it or choose another path",
					 r->uds_path);
		return error_set_errno(err, errno, "binding the vsock socket %s", r->uds_path);
	}
	r->listen_bound = true;
	if (listen(fd, LISTEN_BACKLOG) < 0)
		return error_set_errno(err, errno, "listening on the vsock socket %s", r->uds_path);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return error_set_errno(err, errno, "vsock socket %s: epoll", r->uds_path);
	r->listen_fd = steal_fd(&fd);
	return 0;
}

struct vsock_relay *vsock_relay_create(uint64_t guest_cid, const char *uds_path, capsa_error *err)
{
	/* 0, 1 and 2 are the hypervisor, local and host; 0xffffffff is
	 * VMADDR_CID_ANY, and Linux keeps CIDs to 32 bits. */
	if (guest_cid < 3 || guest_cid >= UINT32_MAX) {
		error_set(err, EINVAL, "vsock guest CID %llu is reserved or too large: use 3 to %u",
			  (unsigned long long)guest_cid, UINT32_MAX - 1);
		return NULL;
	}
	if (uds_path && strlen(uds_path) + PORT_SUFFIX_MAX >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		error_set(err, ENAMETOOLONG,
			  "vsock socket path %s is too long: with a port appended it must fit in %zu bytes",
			  uds_path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return NULL;
	}
	struct vsock_relay *r = calloc(1, sizeof(*r));
	if (!r) {
		error_set_errno(err, ENOMEM, "vsock relay");
		return NULL;
	}
	r->guest_cid = guest_cid;
	r->listen_fd = -1;
	r->next_host_port = VSOCK_HOST_PORT_FIRST;
	r->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epoll_fd < 0) {
		error_set_errno(err, errno, "vsock relay: epoll");
		goto fail;
	}
	if (uds_path) {
		r->uds_path = strdup(uds_path);
		if (!r->uds_path) {
			error_set_errno(err, ENOMEM, "vsock relay");
			goto fail;
		}
		if (listen_on(r, err) < 0)
			goto fail;
	}
	return r;

fail:
	vsock_relay_destroy(r);
	return NULL;
}

void vsock_relay_reset(struct vsock_relay *r)
{
	while (r->table.all)
		drop_conn(r, r->table.all);
	r->rx_head = r->rx_tail = NULL;
	r->rst_head = 0;
	r->rst_count = 0;
}

void vsock_relay_destroy(struct vsock_relay *r)
{
	if (!r)
		return;
	vsock_relay_reset(r);
	if (r->listen_fd >= 0)
		close(r->listen_fd);
	if (r->listen_bound)
		unlink(r->uds_path);
	if (r->epoll_fd >= 0)
		close(r->epoll_fd);
	free(r->uds_path);
	free(r);
}

int vsock_relay_epoll_fd(const struct vsock_relay *r)
{
	return r->epoll_fd;
}

unsigned vsock_relay_conn_count(const struct vsock_relay *r)
{
	return r->table.count;
}
