/* libFuzzer target: a hostile guest's view of virtio-vsock. The input is
 * the geometry of a tx and an rx queue plus a guest memory image; a relay
 * with a real host listener on port 1234 handles every tx chain, answering
 * into the rx chains, while host sockets connect, write, half-close and go
 * away around it. Nothing may crash, leak, hang or touch memory outside the
 * guest image (ASan checks the latter). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/virtq.h"
#include "devices/virtio_vsock.h"
#include "devices/vsock_relay.h"

#define GUEST_SIZE (64 * 1024)
#define HOST_PORT 1234
#define MAX_HOST_FDS 16

struct queue_geometry {
	uint16_t num;
	uint16_t desc_page;
	uint16_t avail_page;
	uint16_t used_page;
} __attribute__((packed));

enum {
	TX_INDIRECT = 1 << 0,
	RX_INDIRECT = 1 << 1,
	HOST_CLIENT = 1 << 2,   /* a host program connects to the guest first */
	HOST_WRITES = 1 << 3,   /* host ends write to the guest */
	HOST_SHUT_WR = 1 << 4,  /* then half-close */
	HOST_CLOSE = 1 << 5,    /* then close before the end */
};

struct header {
	struct queue_geometry tx, rx;
	uint8_t flags;
	uint32_t client_port;
} __attribute__((packed));

static char dir[] = "/tmp/capsa-fuzz-vsock-XXXXXX";
static char relay_path[64];
static int port_listener = -1;
static struct virtq_chain chain;

static int unix_socket(const char *path, bool listen_on)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (fd < 0)
		abort();
	if (listen_on) {
		if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 4096) < 0)
			abort();
	} else if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static char port_path[96];

static void cleanup(void)
{
	unlink(port_path);
	rmdir(dir);
}

static void setup_once(void)
{
	if (port_listener >= 0)
		return;
	if (!mkdtemp(dir))
		abort();
	snprintf(relay_path, sizeof(relay_path), "%s/v", dir);
	snprintf(port_path, sizeof(port_path), "%s_%u", relay_path, HOST_PORT);
	port_listener = unix_socket(port_path, true);
	atexit(cleanup);
}

static bool enable(struct virtq *q, const struct queue_geometry *g, bool indirect,
		   const struct guest_mem *mem)
{
	memset(q, 0, sizeof(*q));
	q->max_size = VIRTIO_VSOCK_QUEUE_SIZE;
	q->num = g->num;
	/* Page numbers keep most inputs plausible; any address is still possible. */
	q->desc_addr = (uint64_t)g->desc_page * 16;
	q->avail_addr = (uint64_t)g->avail_page * 2;
	q->used_addr = (uint64_t)g->used_page * 4;
	q->indirect = indirect;
	return virtq_enable(q, mem) == 0;
}

/* Hands the guest what the relay has for it, as long as rx chains last. */
static void drain_rx(struct vsock_relay *r, struct virtq *rxq, bool rx_ok)
{
	for (int i = 0; rx_ok && i < 2 * VIRTIO_VSOCK_QUEUE_SIZE && vsock_relay_rx_pending(r); i++) {
		if (virtq_pop(rxq, &chain) <= 0)
			return;
		uint32_t len = vsock_relay_fill_rx(r, &chain);
		if (len > chain.writable_len)
			abort(); /* the device claimed more than the guest gave it */
		virtq_push(rxq, chain.head, len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct header h;
	if (size < sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	data += sizeof(h);
	size -= sizeof(h);
	setup_once();

	/* The image is exactly GUEST_SIZE bytes so ASan sees any overrun. */
	uint8_t *image = calloc(1, GUEST_SIZE);
	memcpy(image, data, size < GUEST_SIZE ? size : GUEST_SIZE);
	struct guest_mem mem = { .host = image, .size = GUEST_SIZE };

	/* A fresh relay each time keeps runs reproducible (host ports). */
	struct vsock_relay *r = vsock_relay_create(3, relay_path, NULL);
	if (!r)
		abort();
	int host_fds[MAX_HOST_FDS];
	unsigned nhost = 0;

	if (h.flags & HOST_CLIENT) {
		int fd = unix_socket(relay_path, false);
		if (fd < 0)
			abort();
		char line[32];
		int len = snprintf(line, sizeof(line), "CONNECT %u\n", h.client_port);
		if (write(fd, line, (size_t)len) != len)
			abort();
		host_fds[nhost++] = fd;
		vsock_relay_poll(r); /* accept */
		vsock_relay_poll(r); /* read the line */
	}

	struct virtq txq, rxq;
	bool tx_ok = enable(&txq, &h.tx, h.flags & TX_INDIRECT, &mem);
	bool rx_ok = enable(&rxq, &h.rx, h.flags & RX_INDIRECT, &mem);
	drain_rx(r, &rxq, rx_ok);

	for (int i = 0; tx_ok && i < 2 * VIRTIO_VSOCK_QUEUE_SIZE; i++) {
		if (vsock_relay_tx_blocked(r))
			break;
		if (virtq_pop(&txq, &chain) <= 0)
			break;
		vsock_relay_handle_tx(r, &chain);
		virtq_push(&txq, chain.head, 0);
		drain_rx(r, &rxq, rx_ok);
	}
	if (vsock_relay_conn_count(r) > VSOCK_CONN_MAX)
		abort();

	/* The host ends of the guest's connections act. */
	for (;;) {
		int fd = accept4(port_listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			break;
		if (nhost == MAX_HOST_FDS) {
			close(fd);
			continue;
		}
		host_fds[nhost++] = fd;
	}
	for (unsigned i = 0; i < nhost; i++) {
		if (h.flags & HOST_WRITES) {
			ssize_t n = send(host_fds[i], "from the host", 13, MSG_NOSIGNAL);
			(void)n;
		}
		if (h.flags & HOST_SHUT_WR)
			shutdown(host_fds[i], SHUT_WR);
		char buf[4096];
		while (read(host_fds[i], buf, sizeof(buf)) > 0)
			;
	}
	vsock_relay_poll(r);
	drain_rx(r, &rxq, rx_ok);
	vsock_relay_poll(r);
	drain_rx(r, &rxq, rx_ok);
	if (h.flags & HOST_CLOSE) {
		for (unsigned i = 0; i < nhost; i++)
			close(host_fds[i]);
		nhost = 0;
		vsock_relay_poll(r);
		drain_rx(r, &rxq, rx_ok);
	}

	vsock_relay_destroy(r);
	for (unsigned i = 0; i < nhost; i++)
		close(host_fds[i]);
	free(image);
	return 0;
}
