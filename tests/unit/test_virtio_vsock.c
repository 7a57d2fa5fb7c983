/* virtio-vsock: the packet relay driven directly with hand-built chains
 * against real Unix sockets (connections both ways, data and credit,
 * shutdown, reset, hostile packets, limits), then the whole device
 * in-process: a fake guest driver sets up its queues through the MMIO
 * registers, kicks through the QueueNotify fallback and waits for the
 * interrupt eventfd. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_vsock.h>

#include "devices/virtio_vsock.h"
#include "devices/vsock_relay.h"
#include "virtio_test_driver.h"

#define GUEST_CID 3
#define PORT 1000       /* host port the guest connects to */
#define GPORT 5000      /* guest's ephemeral port */
#define BUF VSOCK_CONN_BUF_SIZE

/* ---- host-side socket helpers ---- */

static int make_listener(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(fd, 2048), 0);
	return fd;
}

static int connect_to(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	return fd;
}

static bool readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	return poll(&pfd, 1, timeout_ms) == 1;
}

/* Reads exactly len bytes (waiting up to 5 s for each piece). */
static void read_exact(int fd, void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		assert_true(readable(fd, 5000));
		ssize_t n = read(fd, (uint8_t *)buf + done, len - done);
		assert_true(n > 0);
		done += (size_t)n;
	}
}

static void expect_eof(int fd)
{
	char c;
	assert_true(readable(fd, 5000));
	assert_int_equal(read(fd, &c, 1), 0);
}

/* End of file, or a reset when it closed with our bytes unread. */
static void expect_closed(int fd)
{
	char c;
	assert_true(readable(fd, 5000));
	ssize_t n = read(fd, &c, 1);
	if (n < 0)
		assert_int_equal(errno, ECONNRESET);
	else
		assert_int_equal(n, 0);
}

static void write_all(int fd, const void *buf, size_t len)
{
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* ---- relay fixture: a fake guest on hand-built chains ---- */

struct fx {
	char dir[64];
	char path[128];          /* the relay's listening socket */
	char port_path[160];     /* the host listener guests reach on PORT */
	struct vsock_relay *r;
	int listener;
	struct virtq_chain chain;
	uint8_t hdr_buf[VSOCK_HDR_SIZE];
	uint8_t payload[VSOCK_MAX_PAYLOAD + 16];
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/capsa-test-vsock-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/vsock", f->dir);
	snprintf(f->port_path, sizeof(f->port_path), "%s_%u", f->path, PORT);
	capsa_error err = { 0 };
	f->r = vsock_relay_create(GUEST_CID, f->path, &err);
	if (!f->r)
		fail_msg("vsock_relay_create: %s", err.message);
	f->listener = make_listener(f->port_path);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	vsock_relay_destroy(f->r);
	close(f->listener);
	unlink(f->port_path);
	assert_int_equal(rmdir(f->dir), 0); /* the relay removed its socket */
	free(f);
	return 0;
}

static void encode(const struct vsock_hdr *h, uint8_t out[VSOCK_HDR_SIZE])
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
	memcpy(out, &le, sizeof(le));
}

static struct vsock_hdr decode(const uint8_t in[VSOCK_HDR_SIZE])
{
	struct virtio_vsock_hdr le;
	memcpy(&le, in, sizeof(le));
	return (struct vsock_hdr){
		.src_cid = le64toh(le.src_cid),
		.dst_cid = le64toh(le.dst_cid),
		.src_port = le32toh(le.src_port),
		.dst_port = le32toh(le.dst_port),
		.len = le32toh(le.len),
		.type = le16toh(le.type),
		.op = le16toh(le.op),
		.flags = le32toh(le.flags),
		.buf_alloc = le32toh(le.buf_alloc),
		.fwd_cnt = le32toh(le.fwd_cnt),
	};
}

/* A packet from the guest's GPORT (or src_port) to the host's port. */
static struct vsock_hdr pkt(uint16_t op, uint32_t src_port, uint32_t dst_port)
{
	return (struct vsock_hdr){
		.src_cid = GUEST_CID,
		.dst_cid = VSOCK_HOST_CID,
		.src_port = src_port,
		.dst_port = dst_port,
		.type = VIRTIO_VSOCK_TYPE_STREAM,
		.op = op,
		.buf_alloc = 64 * 1024,
	};
}

/* Sends h (len set from the payload) as header + payload descriptors. */
static void tx(struct fx *f, struct vsock_hdr h, const void *payload, size_t len)
{
	h.len = (uint32_t)len;
	encode(&h, f->hdr_buf);
	chain_clear(&f->chain);
	chain_add(&f->chain, f->hdr_buf, sizeof(f->hdr_buf), false);
	if (len)
		chain_add(&f->chain, (void *)payload, len, false);
	vsock_relay_handle_tx(f->r, &f->chain);
}

static void tx_op(struct fx *f, uint16_t op)
{
	tx(f, pkt(op, GPORT, PORT), NULL, 0);
}

/* Offers an rx chain like Linux does (header, then a buffer of cap bytes)
 * and returns the used length, with the header decoded into *h. */
static uint32_t rx(struct fx *f, struct vsock_hdr *h, size_t cap)
{
	memset(f->hdr_buf, 0xee, sizeof(f->hdr_buf));
	chain_clear(&f->chain);
	chain_add(&f->chain, f->hdr_buf, sizeof(f->hdr_buf), true);
	if (cap)
		chain_add(&f->chain, f->payload, cap, true);
	uint32_t len = vsock_relay_fill_rx(f->r, &f->chain);
	if (len >= VSOCK_HDR_SIZE)
		*h = decode(f->hdr_buf);
	return len;
}

/* Expects the next packet to the guest to be op on our stream. */
static struct vsock_hdr expect_rx(struct fx *f, uint16_t op)
{
	struct vsock_hdr h;
	assert_true(vsock_relay_rx_pending(f->r));
	uint32_t len = rx(f, &h, 4096);
	assert_true(len >= VSOCK_HDR_SIZE);
	assert_int_equal(h.op, op);
	assert_int_equal(len, VSOCK_HDR_SIZE + h.len);
	assert_int_equal(h.src_cid, VSOCK_HOST_CID);
	assert_int_equal(h.dst_cid, GUEST_CID);
	assert_int_equal(h.type, VIRTIO_VSOCK_TYPE_STREAM);
	return h;
}

static void expect_stream_rx(struct fx *f, uint16_t op)
{
	struct vsock_hdr h = expect_rx(f, op);
	assert_int_equal(h.src_port, PORT);
	assert_int_equal(h.dst_port, GPORT);
}

/* Connects GPORT to PORT; returns the host end. */
static int establish(struct fx *f, uint32_t guest_buf_alloc)
{
	struct vsock_hdr h = pkt(VIRTIO_VSOCK_OP_REQUEST, GPORT, PORT);
	h.buf_alloc = guest_buf_alloc;
	tx(f, h, NULL, 0);
	int host = accept4(f->listener, NULL, NULL, SOCK_CLOEXEC);
	assert_true(host >= 0);
	struct vsock_hdr resp = expect_rx(f, VIRTIO_VSOCK_OP_RESPONSE);
	assert_int_equal(resp.src_port, PORT);
	assert_int_equal(resp.dst_port, GPORT);
	assert_int_equal(resp.buf_alloc, BUF);
	assert_int_equal(resp.fwd_cnt, 0);
	assert_false(vsock_relay_rx_pending(f->r));
	assert_int_equal(vsock_relay_conn_count(f->r), 1);
	return host;
}

/* Lets the relay see what the host sockets did. */
static void poll_relay(struct fx *f)
{
	assert_true(readable(vsock_relay_epoll_fd(f->r), 5000));
	vsock_relay_poll(f->r);
}

/* ---- guest-initiated streams ---- */

static void test_connect_refused(void **state)
{
	struct fx *f = *state;
	tx(f, pkt(VIRTIO_VSOCK_OP_REQUEST, GPORT, 1001), NULL, 0);
	struct vsock_hdr h = expect_rx(f, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(h.src_port, 1001);
	assert_int_equal(h.dst_port, GPORT);
	assert_false(vsock_relay_rx_pending(f->r));
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
}

static void test_data_both_ways(void **state)
{
	struct fx *f = *state;
	int host = establish(f, 64 * 1024);

	tx(f, pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT), "hello", 5);
	char buf[16];
	read_exact(host, buf, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_false(vsock_relay_rx_pending(f->r));

	write_all(host, "world!", 6);
	poll_relay(f);
	struct vsock_hdr h = expect_rx(f, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.src_port, PORT);
	assert_int_equal(h.dst_port, GPORT);
	assert_int_equal(h.len, 6);
	assert_int_equal(h.fwd_cnt, 5);
	assert_int_equal(h.buf_alloc, BUF);
	assert_memory_equal(f->payload, "world!", 6);
	assert_false(vsock_relay_rx_pending(f->r));

	/* Two streams at once, told apart by the guest port. */
	tx(f, pkt(VIRTIO_VSOCK_OP_REQUEST, GPORT + 1, PORT), NULL, 0);
	int host2 = accept4(f->listener, NULL, NULL, SOCK_CLOEXEC);
	assert_true(host2 >= 0);
	h = expect_rx(f, VIRTIO_VSOCK_OP_RESPONSE);
	assert_int_equal(h.dst_port, GPORT + 1);
	tx(f, pkt(VIRTIO_VSOCK_OP_RW, GPORT + 1, PORT), "two", 3);
	tx(f, pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT), "one", 3);
	read_exact(host2, buf, 3);
	assert_memory_equal(buf, "two", 3);
	read_exact(host, buf, 3);
	assert_memory_equal(buf, "one", 3);
	assert_int_equal(vsock_relay_conn_count(f->r), 2);
	close(host);
	close(host2);
}

static void test_host_credit(void **state)
{
	struct fx *f = *state;
	int host = establish(f, 10);
	uint8_t data[100];
	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	write_all(host, data, sizeof(data));
	poll_relay(f);

	/* The guest has room for 10 bytes. */
	struct vsock_hdr h = expect_rx(f, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.len, 10);
	assert_memory_equal(f->payload, data, 10);
	assert_false(vsock_relay_rx_pending(f->r));
	vsock_relay_poll(f->r);
	assert_false(vsock_relay_rx_pending(f->r));

	/* It consumed them: 10 more. */
	struct vsock_hdr up = pkt(VIRTIO_VSOCK_OP_CREDIT_UPDATE, GPORT, PORT);
	up.buf_alloc = 10;
	up.fwd_cnt = 10;
	tx(f, up, NULL, 0);
	h = expect_rx(f, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.len, 10);
	assert_memory_equal(f->payload, data + 10, 10);
	assert_false(vsock_relay_rx_pending(f->r));

	/* A small rx buffer limits the packet too. */
	up.buf_alloc = 1000;
	up.fwd_cnt = 20;
	tx(f, up, NULL, 0);
	assert_true(vsock_relay_rx_pending(f->r));
	assert_int_equal(rx(f, &h, 7), VSOCK_HDR_SIZE + 7);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_memory_equal(f->payload, data + 20, 7);
	h = expect_rx(f, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.len, 73);
	assert_memory_equal(f->payload, data + 27, 73);

	/* A guest claiming it consumed more than we sent gets nothing. */
	write_all(host, data, 5);
	up.fwd_cnt = 500;
	tx(f, up, NULL, 0);
	poll_relay(f);
	assert_false(vsock_relay_rx_pending(f->r));
	close(host);
}

/* A conforming guest sends as much as the credit it knows of allows;
 * returns the bytes sent, with the host not reading at all. */
static uint32_t fill_until_starved(struct fx *f, uint32_t *sent_io)
{
	uint32_t sent = *sent_io, fwd_seen = 0;
	for (int rounds = 0; rounds < 1000; rounds++) {
		tx_op(f, VIRTIO_VSOCK_OP_CREDIT_REQUEST);
		while (vsock_relay_rx_pending(f->r)) {
			struct vsock_hdr h = expect_rx(f, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
			assert_int_equal(h.buf_alloc, BUF);
			fwd_seen = h.fwd_cnt;
		}
		uint32_t credit = BUF - (sent - fwd_seen);
		if (credit == 0)
			break;
		uint32_t len = credit < VSOCK_MAX_PAYLOAD ? credit : VSOCK_MAX_PAYLOAD;
		for (uint32_t i = 0; i < len; i++)
			f->payload[i] = (uint8_t)((sent + i) * 7 + 1);
		tx(f, pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT), f->payload, len);
		sent += len;
		assert_int_equal(vsock_relay_conn_count(f->r), 1);
	}
	*sent_io = sent;
	return fwd_seen;
}

static void test_guest_credit_exhausted(void **state)
{
	struct fx *f = *state;
	int host = establish(f, 64 * 1024);
	uint32_t sent = 0;
	uint32_t fwd = fill_until_starved(f, &sent);
	/* The socket took some, we hold exactly our buffer's worth. */
	assert_int_equal(sent - fwd, BUF);

	/* One byte past the credit costs the stream. */
	tx(f, pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT), "x", 1);
	expect_stream_rx(f, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
	assert_false(vsock_relay_rx_pending(f->r));

	/* The host gets what the socket took, then end of file. */
	uint8_t buf[4096];
	uint32_t got = 0;
	for (;;) {
		assert_true(readable(host, 5000));
		ssize_t n = read(host, buf, sizeof(buf));
		assert_true(n >= 0);
		if (n == 0)
			break;
		got += (uint32_t)n;
	}
	assert_int_equal(got, fwd);
	close(host);
}

static void test_guest_credit_flush(void **state)
{
	struct fx *f = *state;
	int host = establish(f, 64 * 1024);
	uint32_t sent = 0;
	fill_until_starved(f, &sent);

	/* The host reads; the buffer drains into its socket, and the guest
	 * hears about the room. Everything arrives in order. */
	static uint8_t buf[64 * 1024];
	uint32_t got = 0, credit_updates = 0, fwd_seen = 0;
	fcntl(host, F_SETFL, O_NONBLOCK);
	while (got < sent) {
		ssize_t n = read(host, buf, sizeof(buf));
		if (n > 0) {
			for (ssize_t i = 0; i < n; i++)
				if (buf[i] != (uint8_t)((got + (uint32_t)i) * 7 + 1))
					fail_msg("byte %u differs", got + (unsigned)i);
			got += (uint32_t)n;
			continue;
		}
		assert_true(n < 0 && errno == EAGAIN);
		poll_relay(f);
		while (vsock_relay_rx_pending(f->r)) {
			struct vsock_hdr h = expect_rx(f, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
			assert_true(h.fwd_cnt - fwd_seen >= BUF / 2 || h.fwd_cnt == sent);
			fwd_seen = h.fwd_cnt;
			credit_updates++;
		}
	}
	assert_true(credit_updates >= 1);
	/* Whatever is left to report comes on request. */
	tx_op(f, VIRTIO_VSOCK_OP_CREDIT_REQUEST);
	struct vsock_hdr h = expect_rx(f, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(h.fwd_cnt, sent);
	assert_int_equal(vsock_relay_conn_count(f->r), 1);
	close(host);
}

static void test_credit_request(void **state)
{
	struct fx *f = *state;
	int host = establish(f, 64 * 1024);
	tx(f, pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT), "abc", 3);
	/* Many requests, one answer. */
	tx_op(f, VIRTIO_VSOCK_OP_CREDIT_REQUEST);
	tx_op(f, VIRTIO_VSOCK_OP_CREDIT_REQUEST);
	struct vsock_hdr h = expect_rx(f, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(h.src_port, PORT);
	assert_int_equal(h.buf_alloc, BUF);
	assert_int_equal(h.fwd_cnt, 3);
	assert_false(vsock_relay_rx_pending(f->r));
	close(host);
}

static void test_guest_shutdown(void **state)
{
	struct fx *f = *state;
	int host = establish(f, 64 * 1024);
	tx(f, pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT), "last", 4);
	struct vsock_hdr sh = pkt(VIRTIO_VSOCK_OP_SHUTDOWN, GPORT, PORT);
	sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
	tx(f, sh, NULL, 0);
	char buf[8];
	read_exact(host, buf, 4);
	expect_eof(host);
	assert_int_equal(vsock_relay_conn_count(f->r), 1);
	assert_false(vsock_relay_rx_pending(f->r));

	/* Half closed: the other way still works. */
	write_all(host, "reply", 5);
	poll_relay(f);
	struct vsock_hdr h = expect_rx(f, VIRTIO_VSOCK_OP_RW);
	assert_memory_equal(f->payload, "reply", 5);

	/* Data after its own SHUTDOWN costs the guest the stream. */
	tx(f, pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT), "more", 4);
	expect_stream_rx(f, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
	close(host);

	/* A full shutdown is acknowledged with RST and closes the host end. */
	host = establish(f, 64 * 1024);
	sh.flags = VIRTIO_VSOCK_SHUTDOWN_RCV;
	tx(f, sh, NULL, 0);
	assert_false(vsock_relay_rx_pending(f->r));
	assert_int_equal(send(host, "x", 1, MSG_NOSIGNAL), -1); /* nobody reads any more */
	assert_int_equal(errno, EPIPE);
	sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
	tx(f, sh, NULL, 0);
	h = expect_rx(f, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(h.dst_port, GPORT);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
	expect_eof(host);
	close(host);
}

static void test_host_eof(void **state)
{
	struct fx *f = *state;
	int host = establish(f, 64 * 1024);
	write_all(host, "bye", 3);
	shutdown(host, SHUT_WR);
	poll_relay(f);
	struct vsock_hdr h = expect_rx(f, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.len, 3);
	/* The relay finds the end of file when it reads on. */
	if (!vsock_relay_rx_pending(f->r))
		poll_relay(f);
	h = expect_rx(f, VIRTIO_VSOCK_OP_SHUTDOWN);
	assert_int_equal(h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
	assert_false(vsock_relay_rx_pending(f->r));
	vsock_relay_poll(f->r);
	assert_false(vsock_relay_rx_pending(f->r));

	/* The host still reads what the guest sends. */
	tx(f, pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT), "ok", 2);
	char buf[2];
	read_exact(host, buf, 2);

	/* The guest closes: RST, stream gone. */
	struct vsock_hdr sh = pkt(VIRTIO_VSOCK_OP_SHUTDOWN, GPORT, PORT);
	sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV;
	tx(f, sh, NULL, 0);
	expect_stream_rx(f, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
	close(host);

	/* A host that closes outright: its data, then SHUTDOWN both ways. */
	host = establish(f, 64 * 1024);
	write_all(host, "gone", 4);
	close(host);
	poll_relay(f);
	h = expect_rx(f, VIRTIO_VSOCK_OP_RW);
	assert_memory_equal(f->payload, "gone", 4);
	h = expect_rx(f, VIRTIO_VSOCK_OP_SHUTDOWN);
	assert_int_equal(h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV);
	assert_false(vsock_relay_rx_pending(f->r));
	tx_op(f, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
	assert_false(vsock_relay_rx_pending(f->r));
}

static void test_guest_rst(void **state)
{
	struct fx *f = *state;
	int host = establish(f, 64 * 1024);
	tx_op(f, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
	assert_false(vsock_relay_rx_pending(f->r));
	expect_eof(host);
	close(host);
	/* A second RST matches nothing and gets no answer. */
	tx_op(f, VIRTIO_VSOCK_OP_RST);
	assert_false(vsock_relay_rx_pending(f->r));
}

/* ---- hostile packets ---- */

static void test_malformed(void **state)
{
	struct fx *f = *state;
	struct vsock_hdr h;

	/* Shorter than a header: nothing to answer. */
	encode(&(struct vsock_hdr){ .src_cid = GUEST_CID, .dst_cid = 2, .op = 1, .type = 1 }, f->hdr_buf);
	chain_clear(&f->chain);
	chain_add(&f->chain, f->hdr_buf, 20, false);
	vsock_relay_handle_tx(f->r, &f->chain);
	chain_clear(&f->chain);
	vsock_relay_handle_tx(f->r, &f->chain);
	assert_false(vsock_relay_rx_pending(f->r));

	/* Not from the guest's CID: dropped. */
	h = pkt(VIRTIO_VSOCK_OP_REQUEST, GPORT, PORT);
	h.src_cid = 7;
	tx(f, h, NULL, 0);
	assert_false(vsock_relay_rx_pending(f->r));
	assert_int_equal(vsock_relay_conn_count(f->r), 0);

	/* To another CID: RST from that CID. */
	h = pkt(VIRTIO_VSOCK_OP_REQUEST, GPORT, PORT);
	h.dst_cid = 5;
	tx(f, h, NULL, 0);
	assert_int_equal(rx(f, &h, 0), VSOCK_HDR_SIZE);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(h.src_cid, 5);
	assert_int_equal(h.dst_cid, GUEST_CID);

	/* Not a stream. */
	h = pkt(VIRTIO_VSOCK_OP_REQUEST, GPORT, PORT);
	h.type = VIRTIO_VSOCK_TYPE_SEQPACKET;
	tx(f, h, NULL, 0);
	assert_int_equal(rx(f, &h, 0), VSOCK_HDR_SIZE);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);

	/* Stream packets that match no stream. */
	tx(f, pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT), "x", 1);
	expect_stream_rx(f, VIRTIO_VSOCK_OP_RST);
	tx_op(f, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	expect_stream_rx(f, VIRTIO_VSOCK_OP_RST);
	tx_op(f, 99);
	expect_stream_rx(f, VIRTIO_VSOCK_OP_RST);

	/* Oversized, with the bytes really there: refused. */
	memset(f->payload, 'p', VSOCK_MAX_PAYLOAD + 1);
	tx(f, pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT), f->payload, VSOCK_MAX_PAYLOAD + 1);
	expect_stream_rx(f, VIRTIO_VSOCK_OP_RST);
	assert_false(vsock_relay_rx_pending(f->r));

	/* On a stream: a length beyond the descriptors resets it. */
	int host = establish(f, 64 * 1024);
	h = pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT);
	h.len = 100;
	encode(&h, f->hdr_buf);
	chain_clear(&f->chain);
	chain_add(&f->chain, f->hdr_buf, sizeof(f->hdr_buf), false);
	chain_add(&f->chain, f->payload, 99, false);
	chain_add(&f->chain, f->payload + 200, 50, true); /* writable: not payload */
	vsock_relay_handle_tx(f->r, &f->chain);
	expect_stream_rx(f, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
	expect_eof(host);
	close(host);

	/* An unknown op resets it too. */
	host = establish(f, 64 * 1024);
	tx_op(f, 42);
	expect_stream_rx(f, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
	close(host);

	/* A RESPONSE on an established stream as well. */
	host = establish(f, 64 * 1024);
	tx_op(f, VIRTIO_VSOCK_OP_RESPONSE);
	expect_stream_rx(f, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
	close(host);

	/* The largest payload, split over descriptors, header and payload
	 * sharing one: fine. */
	host = establish(f, 64 * 1024);
	h = pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT);
	h.len = VSOCK_MAX_PAYLOAD;
	static uint8_t packet[VSOCK_HDR_SIZE + VSOCK_MAX_PAYLOAD];
	encode(&h, packet);
	for (unsigned i = 0; i < VSOCK_MAX_PAYLOAD; i++)
		packet[VSOCK_HDR_SIZE + i] = (uint8_t)(i % 251);
	chain_clear(&f->chain);
	chain_add(&f->chain, packet, 30, false);
	chain_add(&f->chain, packet + 30, 1000, false);
	chain_add(&f->chain, packet + 1030, sizeof(packet) - 1030, false);
	vsock_relay_handle_tx(f->r, &f->chain);
	static uint8_t back[VSOCK_MAX_PAYLOAD];
	read_exact(host, back, sizeof(back));
	assert_memory_equal(back, packet + VSOCK_HDR_SIZE, sizeof(back));
	assert_int_equal(vsock_relay_conn_count(f->r), 1);
	close(host);
}

static void test_request_existing(void **state)
{
	struct fx *f = *state;
	int host = establish(f, 64 * 1024);
	tx_op(f, VIRTIO_VSOCK_OP_REQUEST);
	expect_stream_rx(f, VIRTIO_VSOCK_OP_RST);
	assert_false(vsock_relay_rx_pending(f->r));
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
	expect_eof(host);
	close(host);
}

static void test_conn_cap(void **state)
{
	struct fx *f = *state;
	struct vsock_hdr h;
	for (uint32_t i = 0; i < VSOCK_CONN_MAX; i++) {
		tx(f, pkt(VIRTIO_VSOCK_OP_REQUEST, 10000 + i, PORT), NULL, 0);
		h = expect_rx(f, VIRTIO_VSOCK_OP_RESPONSE);
		assert_int_equal(h.dst_port, 10000 + i);
	}
	assert_int_equal(vsock_relay_conn_count(f->r), VSOCK_CONN_MAX);
	tx(f, pkt(VIRTIO_VSOCK_OP_REQUEST, 9999, PORT), NULL, 0);
	h = expect_rx(f, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(h.dst_port, 9999);

	/* Host clients wait too. */
	int client = connect_to(f->path);
	write_all(client, "CONNECT 1\n", 10);
	vsock_relay_poll(f->r);
	assert_false(vsock_relay_rx_pending(f->r));

	/* One stream ends: room for the waiting client. */
	tx(f, pkt(VIRTIO_VSOCK_OP_RST, 10000, PORT), NULL, 0);
	assert_int_equal(vsock_relay_conn_count(f->r), VSOCK_CONN_MAX - 1);
	for (int i = 0; i < 3 && !vsock_relay_rx_pending(f->r); i++)
		poll_relay(f);
	h = expect_rx(f, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 1);
	assert_int_equal(vsock_relay_conn_count(f->r), VSOCK_CONN_MAX);
	close(client);
	/* Drain the backlog of the listener so teardown is quick. */
	vsock_relay_reset(f->r);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
}

static void test_rst_backlog(void **state)
{
	struct fx *f = *state;
	/* Packets for no stream pile up RSTs until the guest offers rx
	 * buffers: the device must stop taking tx packets. */
	for (uint32_t i = 0; i < VSOCK_RELAY_RST_BACKLOG; i++) {
		assert_false(vsock_relay_tx_blocked(f->r));
		tx(f, pkt(VIRTIO_VSOCK_OP_RW, 20000 + i, PORT), "x", 1);
	}
	assert_true(vsock_relay_tx_blocked(f->r));
	/* Were one taken anyway, it would get no answer rather than memory. */
	tx(f, pkt(VIRTIO_VSOCK_OP_RW, 30000, PORT), "x", 1);
	struct vsock_hdr h;
	assert_int_equal(rx(f, &h, 0), VSOCK_HDR_SIZE);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(h.dst_port, 20000);
	assert_false(vsock_relay_tx_blocked(f->r));
	for (uint32_t i = 1; i < VSOCK_RELAY_RST_BACKLOG; i++) {
		assert_int_equal(rx(f, &h, 0), VSOCK_HDR_SIZE);
		assert_int_equal(h.dst_port, 20000 + i);
	}
	assert_false(vsock_relay_rx_pending(f->r));

	/* An rx chain too small for a header is left empty. */
	tx_op(f, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	chain_clear(&f->chain);
	chain_add(&f->chain, f->hdr_buf, 40, true);
	assert_int_equal(vsock_relay_fill_rx(f->r, &f->chain), 0);
	assert_true(vsock_relay_rx_pending(f->r));
}

/* ---- the stream's counters and ring, across the 32-bit wrap ---- */

static void test_conn_counters_wrap(void **state)
{
	(void)state;
	struct vsock_conn_table *t = calloc(1, sizeof(*t));
	struct vsock_conn *c = vsock_conn_new(t);
	assert_non_null(c);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	c->fd = sv[0];

	/* Credit towards the guest with its fwd_cnt on the far side of 0. */
	c->peer_buf_alloc = 1000;
	c->tx_cnt = 5;
	c->peer_fwd_cnt = UINT32_MAX - 4;
	assert_int_equal(vsock_conn_peer_credit(c), 990);
	c->peer_fwd_cnt = 6; /* more than we sent: nothing */
	assert_int_equal(vsock_conn_peer_credit(c), 0);

	/* Fill the socket so that what follows is buffered. */
	static uint8_t junk[4096];
	size_t junk_len = 0;
	for (ssize_t n; (n = write(sv[0], junk, sizeof(junk))) > 0;)
		junk_len += (size_t)n;

	/* Counters just below the wrap and a ring position just below its
	 * end: the bytes go around both. */
	uint32_t start = UINT32_MAX - 100;
	c->rx_cnt = c->fwd_cnt = c->fwd_cnt_sent = start;
	static uint8_t data[3 * 64 * 1024];
	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 5);
	uint32_t sent = 0;
	while (sent < sizeof(data)) {
		uint32_t len = sizeof(data) - sent < 60000 ? sizeof(data) - sent : 60000;
		struct iovec iov[2] = { { data + sent, 7 }, { data + sent + 7, len - 7 } };
		assert_true(vsock_conn_guest_may_send(c, len));
		assert_int_equal(vsock_conn_to_host(c, iov, 2, len), 0);
		sent += len;
	}
	assert_int_equal(vsock_conn_buffered(c), sizeof(data));
	assert_int_equal(c->rx_cnt, (uint32_t)(start + sizeof(data)));
	assert_false(vsock_conn_guest_may_send(c, BUF - sizeof(data) + 1));
	assert_true(vsock_conn_guest_may_send(c, BUF - sizeof(data)));

	/* Drain the peer while flushing: junk first, then the data in order. */
	static uint8_t back[sizeof(data)];
	size_t got = 0, skipped = 0;
	while (got < sizeof(data)) {
		assert_int_equal(vsock_conn_flush(c), 0);
		uint8_t buf[8192];
		ssize_t n = read(sv[1], buf, sizeof(buf));
		assert_true(n > 0);
		size_t off = 0;
		if (skipped < junk_len) {
			off = junk_len - skipped < (size_t)n ? junk_len - skipped : (size_t)n;
			skipped += off;
		}
		memcpy(back + got, buf + off, (size_t)n - off);
		got += (size_t)n - off;
	}
	assert_memory_equal(back, data, sizeof(data));
	assert_int_equal(vsock_conn_buffered(c), 0);
	assert_null(c->buf);
	assert_true(vsock_conn_credit_update_due(c));

	close(sv[0]);
	close(sv[1]);
	c->fd = -1;
	vsock_conn_free(t, c);
	assert_int_equal(t->count, 0);
	free(t);
}

/* ---- host-initiated streams ---- */

static int host_client(struct fx *f, const char *line)
{
	int client = connect_to(f->path);
	write_all(client, line, strlen(line));
	poll_relay(f);
	if (!vsock_relay_rx_pending(f->r))
		poll_relay(f);
	return client;
}

static void test_host_connect(void **state)
{
	struct fx *f = *state;
	int client = host_client(f, "CONNECT 7000\nearly");
	struct vsock_hdr h = expect_rx(f, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(h.src_port, VSOCK_HOST_PORT_FIRST);
	assert_int_equal(h.dst_port, 7000);
	assert_int_equal(h.buf_alloc, BUF);
	assert_false(vsock_relay_rx_pending(f->r));

	/* Nothing but a RESPONSE or RST is expected from the guest yet... */
	struct vsock_hdr resp = pkt(VIRTIO_VSOCK_OP_RESPONSE, 7000, VSOCK_HOST_PORT_FIRST);
	resp.buf_alloc = 4096;
	tx(f, resp, NULL, 0);
	char ok[32] = { 0 };
	read_exact(client, ok, 14);
	assert_string_equal(ok, "OK 1073741824\n");

	/* ...then bytes flow, starting with what the client sent early. */
	poll_relay(f);
	h = expect_rx(f, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.src_port, VSOCK_HOST_PORT_FIRST);
	assert_int_equal(h.dst_port, 7000);
	assert_int_equal(h.len, 5);
	assert_memory_equal(f->payload, "early", 5);
	tx(f, pkt(VIRTIO_VSOCK_OP_RW, 7000, VSOCK_HOST_PORT_FIRST), "hi", 2);
	char buf[2];
	read_exact(client, buf, 2);
	assert_memory_equal(buf, "hi", 2);

	/* A second client gets the next port; nobody listens on 7001. */
	int client2 = host_client(f, "CONNECT 7001\r\n");
	h = expect_rx(f, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(h.src_port, VSOCK_HOST_PORT_FIRST + 1);
	assert_int_equal(h.dst_port, 7001);
	tx(f, pkt(VIRTIO_VSOCK_OP_RST, 7001, VSOCK_HOST_PORT_FIRST + 1), NULL, 0);
	expect_eof(client2);
	close(client2);
	assert_int_equal(vsock_relay_conn_count(f->r), 1);

	/* Anything else than RESPONSE while connecting resets. */
	client2 = host_client(f, "CONNECT 7002\n");
	h = expect_rx(f, VIRTIO_VSOCK_OP_REQUEST);
	tx(f, pkt(VIRTIO_VSOCK_OP_RW, 7002, h.src_port), "z", 1);
	h = expect_rx(f, VIRTIO_VSOCK_OP_RST);
	expect_eof(client2);
	close(client2);

	/* Client hangs up: the guest hears SHUTDOWN. */
	close(client);
	poll_relay(f);
	h = expect_rx(f, VIRTIO_VSOCK_OP_SHUTDOWN);
	assert_int_equal(h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV);
}

static void test_host_bad_handshake(void **state)
{
	struct fx *f = *state;
	const char *lines[] = {
		"HELLO\n", "CONNECT\n", "CONNECT x\n", "CONNECT 4294967296\n", "CONNECT 5 6\n",
		"CONNECT 99999999999999999999999999999999999999",
	};
	for (unsigned i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		int client = connect_to(f->path);
		write_all(client, lines[i], strlen(lines[i]));
		poll_relay(f);
		if (vsock_relay_conn_count(f->r))
			poll_relay(f);
		expect_closed(client);
		close(client);
		assert_false(vsock_relay_rx_pending(f->r));
		assert_int_equal(vsock_relay_conn_count(f->r), 0);
	}
	/* A client that leaves before finishing its line. */
	int client = connect_to(f->path);
	write_all(client, "CONN", 4);
	poll_relay(f);
	assert_int_equal(vsock_relay_conn_count(f->r), 1);
	close(client);
	poll_relay(f);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
}

static void test_reset(void **state)
{
	struct fx *f = *state;
	int host = establish(f, 64 * 1024);
	int client = host_client(f, "CONNECT 1\n");
	assert_int_equal(vsock_relay_conn_count(f->r), 2);
	vsock_relay_reset(f->r);
	assert_int_equal(vsock_relay_conn_count(f->r), 0);
	assert_false(vsock_relay_rx_pending(f->r));
	expect_eof(host);
	expect_eof(client);
	close(host);
	close(client);
	/* Works as before. */
	host = establish(f, 64 * 1024);
	close(host);
}

static void test_create_errors(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	assert_null(vsock_relay_create(2, NULL, &err));
	assert_int_equal(err.code, EINVAL);
	assert_null(vsock_relay_create(0xffffffffULL, NULL, &err));
	assert_null(vsock_relay_create(1ULL << 32, NULL, &err));
	char path[200];
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[100] = '\0';
	assert_null(vsock_relay_create(3, path, &err));
	assert_int_equal(err.code, ENAMETOOLONG);

	char dir[] = "/tmp/capsa-test-vsock-XXXXXX";
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/file", dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	assert_null(vsock_relay_create(3, path, &err));
	assert_int_equal(err.code, EADDRINUSE);
	assert_non_null(strstr(err.message, path));
	unlink(path);

	/* A live listener is not taken over; a stale one is. */
	snprintf(path, sizeof(path), "%s/sock", dir);
	int live = make_listener(path);
	assert_null(vsock_relay_create(3, path, &err));
	assert_int_equal(err.code, EADDRINUSE);
	close(live);
	struct vsock_relay *r = vsock_relay_create(3, path, &err);
	assert_non_null(r);
	vsock_relay_destroy(r);
	struct stat st;
	assert_int_equal(lstat(path, &st), -1);

	/* Without a socket path, every connection is refused. */
	r = vsock_relay_create(3, NULL, &err);
	assert_non_null(r);
	struct fx f = { .r = r };
	tx(&f, pkt(VIRTIO_VSOCK_OP_REQUEST, GPORT, PORT), NULL, 0);
	expect_rx(&f, VIRTIO_VSOCK_OP_RST);
	vsock_relay_destroy(r);
	assert_int_equal(rmdir(dir), 0);
}

/* ---- the whole device, driven like a guest ---- */

#define RAM_SIZE (1024 * 1024)
#define BASE 0xd0000000ULL
#define QSIZE VIRTIO_VSOCK_QUEUE_SIZE
#define QUEUE_GPA(q) (0x10000 + (q) * 0x10000)  /* desc, then avail +0x1000, used +0x2000 */
#define RX_BUFS 16
#define RX_HDR_GPA 0x40000                      /* RX_BUFS headers of 64 bytes */
#define RX_DATA_GPA 0x50000                     /* RX_BUFS buffers of 4 KiB */
#define TX_HDR_GPA 0x70000
#define TX_DATA_GPA 0x71000

enum { RXQ, TXQ, EVQ };

struct guest {
	struct test_guest vm;
	struct virtio_vsock *dev;
	char dir[64];
	char path[128];
	char port_path[160];
	int listener;
};

static int guest_setup(void **state)
{
	struct guest *g = calloc(1, sizeof(*g));
	test_guest_init(&g->vm, RAM_SIZE, BASE);
	snprintf(g->dir, sizeof(g->dir), "/tmp/capsa-test-vsock-XXXXXX");
	assert_non_null(mkdtemp(g->dir));
	snprintf(g->path, sizeof(g->path), "%s/vsock", g->dir);
	snprintf(g->port_path, sizeof(g->port_path), "%s_%u", g->path, PORT);
	g->listener = make_listener(g->port_path);
	capsa_error err = { 0 };
	g->dev = virtio_vsock_create(&g->vm.env, BASE, 5, GUEST_CID, g->path, &err);
	if (!g->dev)
		fail_msg("virtio_vsock_create: %s", err.message);
	g->vm.irq_fd = virtio_vsock_irq_fd(g->dev);
	*state = g;
	return 0;
}

static int guest_teardown(void **state)
{
	struct guest *g = *state;
	virtio_vsock_destroy(g->dev);
	close(g->listener);
	unlink(g->port_path);
	assert_int_equal(rmdir(g->dir), 0);
	test_guest_cleanup(&g->vm);
	free(g);
	return 0;
}

static void driver_init(struct test_guest *vm)
{
	driver_start(vm, VIRTIO_ID_VSOCK, 1ULL << VIRTIO_F_VERSION_1);
	memset(gpa(vm, QUEUE_GPA(0)), 0, 0x30000);
	for (unsigned q = 0; q < 3; q++) {
		assert_int_equal(driver_queue_max(vm, q), QSIZE);
		driver_setup_queue(vm, q, QSIZE, QUEUE_GPA(q), QUEUE_GPA(q) + 0x1000, QUEUE_GPA(q) + 0x2000);
	}
	/* Linux's rx buffers: a header descriptor and a 4 KiB one. */
	for (uint16_t i = 0; i < RX_BUFS; i++) {
		driver_put_desc(vm, RXQ, 2 * i, RX_HDR_GPA + i * 64, VSOCK_HDR_SIZE,
				VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2 * i + 1);
		driver_put_desc(vm, RXQ, 2 * i + 1, RX_DATA_GPA + i * 4096, 4096, VRING_DESC_F_WRITE, 0);
		driver_publish(vm, RXQ, 2 * i);
	}
	driver_ok(vm);
}

/* Waits for the next used rx buffer, returns its header and hands the
 * buffer straight back to the device. */
static struct vsock_hdr guest_recv(struct guest *g, void *data)
{
	while (!driver_used_ready(&g->vm, RXQ))
		driver_wait_interrupt(&g->vm);
	struct vring_used_elem e = driver_take_used(&g->vm, RXQ);
	unsigned buf = e.id / 2;
	struct vsock_hdr h = decode(gpa(&g->vm, RX_HDR_GPA + buf * 64));
	assert_int_equal(e.len, VSOCK_HDR_SIZE + h.len);
	if (data)
		memcpy(data, gpa(&g->vm, RX_DATA_GPA + buf * 4096), h.len);
	driver_publish(&g->vm, RXQ, (uint16_t)e.id);
	driver_kick(&g->vm, RXQ);
	return h;
}

static void guest_send(struct guest *g, struct vsock_hdr h, const void *data, uint32_t len)
{
	h.len = len;
	encode(&h, gpa(&g->vm, TX_HDR_GPA));
	if (len)
		memcpy(gpa(&g->vm, TX_DATA_GPA), data, len);
	driver_put_desc(&g->vm, TXQ, 0, TX_HDR_GPA, VSOCK_HDR_SIZE, len ? VRING_DESC_F_NEXT : 0, 1);
	driver_put_desc(&g->vm, TXQ, 1, TX_DATA_GPA, len, 0, 0);
	driver_publish(&g->vm, TXQ, 0);
	driver_kick(&g->vm, TXQ);
	while (!driver_used_ready(&g->vm, TXQ))
		driver_wait_interrupt(&g->vm);
	driver_take_used(&g->vm, TXQ);
}

static void test_device(void **state)
{
	struct guest *g = *state;
	uint64_t cid;
	assert_true(bus_read(&g->vm.bus, BASE + VIRTIO_MMIO_CONFIG, (uint8_t *)&cid, 8));
	assert_int_equal(cid, GUEST_CID);
	driver_init(&g->vm);

	/* Guest connects to the host listener and talks. */
	guest_send(g, pkt(VIRTIO_VSOCK_OP_REQUEST, GPORT, PORT), NULL, 0);
	struct vsock_hdr h = guest_recv(g, NULL);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RESPONSE);
	assert_int_equal(h.dst_port, GPORT);
	int host = accept4(g->listener, NULL, NULL, SOCK_CLOEXEC);
	assert_true(host >= 0);
	guest_send(g, pkt(VIRTIO_VSOCK_OP_RW, GPORT, PORT), "ping", 4);
	char buf[4096];
	read_exact(host, buf, 4);
	assert_memory_equal(buf, "ping", 4);
	write_all(host, "pong", 4);
	h = guest_recv(g, buf);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.len, 4);
	assert_memory_equal(buf, "pong", 4);

	/* More than the rx buffers and the guest's credit hold at once: the
	 * device waits for buffers and credit updates, as Linux sends them. */
	static uint8_t big[100 * 1024];
	for (unsigned i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 3);
	write_all(host, big, sizeof(big));
	uint32_t got = 0, told = 0;
	while (got < sizeof(big)) {
		h = guest_recv(g, buf);
		assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
		assert_true(h.len <= 4096);
		assert_memory_equal(buf, big + got, h.len);
		got += h.len;
		if (got - told >= 16 * 1024) {
			struct vsock_hdr up = pkt(VIRTIO_VSOCK_OP_CREDIT_UPDATE, GPORT, PORT);
			up.fwd_cnt = 4 + got; /* "pong" too */
			guest_send(g, up, NULL, 0);
			told = got;
		}
	}

	/* A host client connects to the guest's port 7000. */
	int client = connect_to(g->path);
	write_all(client, "CONNECT 7000\n", 13);
	h = guest_recv(g, NULL);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 7000);
	guest_send(g, pkt(VIRTIO_VSOCK_OP_RESPONSE, 7000, h.src_port), NULL, 0);
	char ok[15] = { 0 };
	read_exact(client, ok, 14);
	assert_string_equal(ok, "OK 1073741824\n");

	/* A driver reset drops every stream. */
	mmio_wr(&g->vm, VIRTIO_MMIO_STATUS, 0);
	expect_eof(host);
	expect_eof(client);
	close(host);
	close(client);

	/* And the device works again after it. */
	driver_init(&g->vm);
	guest_send(g, pkt(VIRTIO_VSOCK_OP_REQUEST, GPORT, 1001), NULL, 0);
	h = guest_recv(g, NULL);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
}

static void test_device_create_errors(void **state)
{
	(void)state;
	struct guest_mem mem = { 0 };
	struct bus bus = { 0 };
	struct vm_device_env env = { .mem = &mem, .mmio_bus = &bus, .vm_fd = -1 };
	capsa_error err = { 0 };
	assert_null(virtio_vsock_create(&env, BASE, 5, 2, NULL, &err));
	assert_int_equal(err.code, EINVAL);
	struct virtio_vsock *v = virtio_vsock_create(&env, BASE, 5, 3, NULL, &err);
	assert_non_null(v);
	assert_null(virtio_vsock_create(&env, BASE, 6, 4, NULL, &err));
	assert_int_equal(err.code, EBUSY);
	virtio_vsock_destroy(v);
	virtio_vsock_destroy(NULL);
}

#define F(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
#define G(name) cmocka_unit_test_setup_teardown(name, guest_setup, guest_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		F(test_connect_refused),
		F(test_data_both_ways),
		F(test_host_credit),
		F(test_guest_credit_exhausted),
		F(test_guest_credit_flush),
		F(test_credit_request),
		F(test_guest_shutdown),
		F(test_host_eof),
		F(test_guest_rst),
		F(test_malformed),
		F(test_request_existing),
		F(test_conn_cap),
		F(test_rst_backlog),
		cmocka_unit_test(test_conn_counters_wrap),
		F(test_host_connect),
		F(test_host_bad_handshake),
		F(test_reset),
		cmocka_unit_test(test_create_errors),
		G(test_device),
		cmocka_unit_test(test_device_create_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
