#include "devices/vsock_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

_Static_assert((VSOCK_CONN_BUF_SIZE & (VSOCK_CONN_BUF_SIZE - 1)) == 0, "ring size must be a power of two");

static unsigned bucket_of(uint32_t local_port, uint32_t peer_port)
{
	uint32_t h = local_port * 0x9e3779b1u ^ peer_port * 0x85ebca6bu;
	return (h ^ (h >> 16)) % VSOCK_CONN_BUCKETS;
}

struct vsock_conn *vsock_conn_new(struct vsock_conn_table *t)
{
	if (t->count >= VSOCK_CONN_MAX)
		return NULL;
	struct vsock_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fd = -1;
	c->state = VSOCK_CONN_HANDSHAKE;
	c->all_next = t->all;
	if (t->all)
		t->all->all_prev = c;
	t->all = c;
	t->count++;
	return c;
}

void vsock_conn_set_ports(struct vsock_conn_table *t, struct vsock_conn *c, uint32_t local_port,
			  uint32_t peer_port)
{
	c->local_port = local_port;
	c->peer_port = peer_port;
	unsigned b = bucket_of(local_port, peer_port);
	c->hash_next = t->buckets[b];
	t->buckets[b] = c;
	c->hashed = true;
}

struct vsock_conn *vsock_conn_find(const struct vsock_conn_table *t, uint32_t local_port, uint32_t peer_port)
{
	for (struct vsock_conn *c = t->buckets[bucket_of(local_port, peer_port)]; c; c = c->hash_next)
		if (c->local_port == local_port && c->peer_port == peer_port)
			return c;
	return NULL;
}

bool vsock_conn_local_port_used(const struct vsock_conn_table *t, uint32_t local_port)
{
	for (const struct vsock_conn *c = t->all; c; c = c->all_next)
		if (c->hashed && c->local_port == local_port)
			return true;
	return false;
}

void vsock_conn_free(struct vsock_conn_table *t, struct vsock_conn *c)
{
	if (c->hashed) {
		struct vsock_conn **p = &t->buckets[bucket_of(c->local_port, c->peer_port)];
		while (*p != c)
			p = &(*p)->hash_next;
		*p = c->hash_next;
	}
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		t->all = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	t->count--;
	free(c->buf);
	free(c);
}

uint32_t vsock_conn_peer_credit(const struct vsock_conn *c)
{
	/* A guest that reports having consumed more than we sent, or a
	 * buffer smaller than what is in flight, simply gets nothing. */
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
	return in_flight < c->peer_buf_alloc ? c->peer_buf_alloc - in_flight : 0;
}

uint32_t vsock_conn_buffered(const struct vsock_conn *c)
{
	return c->rx_cnt - c->fwd_cnt;
}

bool vsock_conn_guest_may_send(const struct vsock_conn *c, uint32_t len)
{
	return len <= VSOCK_CONN_BUF_SIZE - vsock_conn_buffered(c);
}

bool vsock_conn_credit_update_due(const struct vsock_conn *c)
{
	return c->fwd_cnt - c->fwd_cnt_sent >= VSOCK_CONN_BUF_SIZE / 2;
}

/* Non-blocking write that reports a vanished peer as EPIPE rather than
 * with SIGPIPE. Returns bytes written, 0 if the socket is full, -1 on
 * failure. */
static ssize_t send_iov(int fd, const struct iovec *iov, size_t n)
{
	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = n };
	for (;;) {
		ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w >= 0)
			return w;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	}
}

/* Appends bytes [skip, len) of the iovecs to the ring. */
static void ring_append(struct vsock_conn *c, const struct iovec *iov, unsigned n, uint32_t skip,
			uint32_t len)
{
	uint32_t left = len - skip;
	for (unsigned i = 0; i < n && left; i++) {
		const uint8_t *src = iov[i].iov_base;
		size_t avail = iov[i].iov_len;
		if (skip >= avail) {
			skip -= avail;
			continue;
		}
		src += skip;
		avail -= skip;
		skip = 0;
		if (avail > left)
			avail = left;
		while (avail) {
			uint32_t pos = c->rx_cnt & (VSOCK_CONN_BUF_SIZE - 1);
			uint32_t take = VSOCK_CONN_BUF_SIZE - pos;
			if (take > avail)
				take = (uint32_t)avail;
			memcpy(c->buf + pos, src, take);
			c->rx_cnt += take;
			src += take;
			avail -= take;
			left -= take;
		}
	}
}

int vsock_conn_to_host(struct vsock_conn *c, const struct iovec *iov, unsigned n, uint32_t len)
{
	uint32_t done = 0;
	if (len == 0)
		return 0;
	if (vsock_conn_buffered(c) == 0) {
		ssize_t w = send_iov(c->fd, iov, n);
		if (w < 0)
			return -1;
		/* The socket cannot take more than it was given. */
		done = (uint32_t)w;
		c->rx_cnt += done;
		c->fwd_cnt += done;
		if (done >= len)
			return 0;
	}
	if (!c->buf) {
		c->buf = malloc(VSOCK_CONN_BUF_SIZE);
		if (!c->buf)
			return -1;
	}
	ring_append(c, iov, n, done, len);
	return 0;
}

int vsock_conn_flush(struct vsock_conn *c)
{
	while (vsock_conn_buffered(c)) {
		uint32_t left = vsock_conn_buffered(c);
		uint32_t pos = c->fwd_cnt & (VSOCK_CONN_BUF_SIZE - 1);
		uint32_t first = VSOCK_CONN_BUF_SIZE - pos;
		if (first > left)
			first = left;
		struct iovec iov[2] = {
			{ .iov_base = c->buf + pos, .iov_len = first },
			{ .iov_base = c->buf, .iov_len = left - first },
		};
		ssize_t w = send_iov(c->fd, iov, left > first ? 2 : 1);
		if (w < 0)
			return -1;
		if (w == 0)
			return 0;
		c->fwd_cnt += (uint32_t)w;
	}
	free(c->buf);
	c->buf = NULL;
	return 0;
}
