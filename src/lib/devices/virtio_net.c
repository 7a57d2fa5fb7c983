#include "devices/virtio_net.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/virtio_ids.h>

#include "devices/virtio/mmio.h"
#include "util/error.h"

enum { QUEUE_RX, QUEUE_TX, NUM_QUEUES };

/* Chains handled per queue and wakeup before the worker polls again, so
 * that a busy guest cannot keep it from a stop request. */
#define BUDGET VIRTIO_NET_QUEUE_SIZE

_Static_assert(sizeof(struct virtio_net_hdr_v1) == VIRTIO_NET_HDR_LEN, "virtio-net header size");

struct rx_frame {
	uint8_t *data;
	size_t len;
};

struct virtio_net {
	struct virtio_mmio mmio;
	struct virtio_net_config config; /* fixed after create */
	virtio_net_send_fn send_frame;
	void *opaque;

	pthread_mutex_t backlog_lock;    /* guards the backlog ring */
	bool backlog_lock_ready;
	struct rx_frame backlog[VIRTIO_NET_RX_BACKLOG];
	unsigned backlog_head;           /* oldest frame */
	unsigned backlog_count;

	int stop_fd;
	int wake_fd;                     /* frames were queued, or more work waits */
	pthread_t worker;
	bool worker_running;
	struct virtq_chain chain;        /* the worker's; too big for its stack frame */
	uint8_t tx_buf[VIRTIO_NET_MAX_FRAME];
};

static void signal_eventfd(int fd)
{
	uint64_t one = 1;
	ssize_t n = write(fd, &one, sizeof(one));
	(void)n;
}

static void drain_eventfd(int fd)
{
	uint64_t count;
	ssize_t n = read(fd, &count, sizeof(count));
	(void)n;
}

/* ---- chains ---- */

int virtio_net_tx_frame(const struct virtq_chain *chain, uint8_t *buf)
{
	/* The driver never hands tx buffers for the device to write. */
	if (chain->writable_len != 0)
		return -1;
	if (chain->readable_len < VIRTIO_NET_HDR_LEN + VIRTIO_NET_MIN_FRAME ||
	    chain->readable_len > VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_FRAME)
		return -1;
	struct virtio_net_hdr_v1 hdr;
	if (virtq_chain_read(chain, 0, &hdr, sizeof(hdr)) != sizeof(hdr))
		return -1;
	/* No checksum or segmentation offload was offered. */
	if ((hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE)
		return -1;
	size_t len = (size_t)(chain->readable_len - VIRTIO_NET_HDR_LEN);
	if (virtq_chain_read(chain, VIRTIO_NET_HDR_LEN, buf, len) != len)
		return -1;
	return (int)len;
}

uint32_t virtio_net_rx_fill(const struct virtq_chain *chain, const uint8_t *frame, size_t len)
{
	if (len > VIRTIO_NET_MAX_FRAME || chain->writable_len < VIRTIO_NET_HDR_LEN + len)
		return 0;
	/* Without MRG_RXBUF a frame always fits one buffer chain (5.1.6.3). */
	struct virtio_net_hdr_v1 hdr = { .flags = 0, .gso_type = VIRTIO_NET_HDR_GSO_NONE, .num_buffers = htole16(1) };
	if (virtq_chain_write(chain, 0, &hdr, sizeof(hdr)) != sizeof(hdr) ||
	    virtq_chain_write(chain, VIRTIO_NET_HDR_LEN, frame, len) != len)
		return 0;
	return (uint32_t)(VIRTIO_NET_HDR_LEN + len);
}

/* ---- backlog ---- */

int virtio_net_receive(struct virtio_net *net, const uint8_t *frame, size_t len)
{
	if (len == 0 || len > VIRTIO_NET_MAX_FRAME)
		return -1;
	pthread_mutex_lock(&net->backlog_lock);
	if (net->backlog_count == VIRTIO_NET_RX_BACKLOG) {
		pthread_mutex_unlock(&net->backlog_lock);
		return -1;
	}
	uint8_t *copy = malloc(len);
	if (!copy) {
		pthread_mutex_unlock(&net->backlog_lock);
		return -1;
	}
	memcpy(copy, frame, len);
	unsigned tail = (net->backlog_head + net->backlog_count) % VIRTIO_NET_RX_BACKLOG;
	net->backlog[tail] = (struct rx_frame){ .data = copy, .len = len };
	net->backlog_count++;
	pthread_mutex_unlock(&net->backlog_lock);
	signal_eventfd(net->wake_fd);
	return 0;
}

/* Takes the oldest queued frame; false if there is none. */
static bool backlog_take(struct virtio_net *net, struct rx_frame *out)
{
	pthread_mutex_lock(&net->backlog_lock);
	bool any = net->backlog_count > 0;
	if (any) {
		*out = net->backlog[net->backlog_head];
		net->backlog_head = (net->backlog_head + 1) % VIRTIO_NET_RX_BACKLOG;
		net->backlog_count--;
	}
	pthread_mutex_unlock(&net->backlog_lock);
	return any;
}

static bool backlog_empty(struct virtio_net *net)
{
	pthread_mutex_lock(&net->backlog_lock);
	bool empty = net->backlog_count == 0;
	pthread_mutex_unlock(&net->backlog_lock);
	return empty;
}

/* ---- worker thread ---- */

/* Fills rx buffers from the backlog. A frame too big for the buffer in
 * hand is dropped and the buffer tried with the next frame; one that found
 * no frame goes back empty, which the driver counts as a runt. */
static bool net_process_rx(struct virtio_net *net, bool *more)
{
	bool irq = false;
	for (unsigned i = 0; i < BUDGET; i++) {
		if (backlog_empty(net) || virtio_mmio_pop(&net->mmio, QUEUE_RX, &net->chain) <= 0)
			return irq;
		uint32_t used = 0;
		struct rx_frame frame;
		while (used == 0 && backlog_take(net, &frame)) {
			used = virtio_net_rx_fill(&net->chain, frame.data, frame.len);
			free(frame.data);
		}
		irq |= virtio_mmio_push(&net->mmio, QUEUE_RX, &net->chain, used);
	}
	*more = true;
	return irq;
}

static bool net_process_tx(struct virtio_net *net, bool *more)
{
	bool irq = false;
	for (unsigned i = 0; i < BUDGET; i++) {
		if (virtio_mmio_pop(&net->mmio, QUEUE_TX, &net->chain) <= 0)
			return irq;
		int len = virtio_net_tx_frame(&net->chain, net->tx_buf);
		/* The buffer goes back before the backend sees the frame: the
		 * copy is ours. */
		irq |= virtio_mmio_push(&net->mmio, QUEUE_TX, &net->chain, 0);
		if (len > 0)
			net->send_frame(net->opaque, net->tx_buf, (size_t)len);
	}
	*more = true;
	return irq;
}

static void *net_worker(void *opaque)
{
	struct virtio_net *net = opaque;
	struct pollfd fds[] = {
		{ .fd = net->stop_fd, .events = POLLIN },
		{ .fd = net->wake_fd, .events = POLLIN },
		{ .fd = virtio_mmio_notify_fd(&net->mmio, QUEUE_RX), .events = POLLIN },
		{ .fd = virtio_mmio_notify_fd(&net->mmio, QUEUE_TX), .events = POLLIN },
	};
	const unsigned nfds = sizeof(fds) / sizeof(fds[0]);

	for (;;) {
		if (poll(fds, nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[0].revents)
			break;
		for (unsigned i = 1; i < nfds; i++)
			if (fds[i].revents & POLLIN)
				drain_eventfd(fds[i].fd);
		bool more = false;
		bool irq = net_process_tx(net, &more);
		irq |= net_process_rx(net, &more);
		if (irq)
			virtio_mmio_interrupt(&net->mmio, VIRTIO_MMIO_INT_VRING);
		if (more)
			signal_eventfd(net->wake_fd);
	}
	return NULL;
}

/* ---- device setup ---- */

static void net_config_read(void *opaque, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct virtio_net *net = opaque;
	memcpy(data, (const uint8_t *)&net->config + offset, len);
}

struct virtio_net *virtio_net_create(const struct vm_device_env *env, uint64_t mmio_base, uint32_t gsi,
				     const uint8_t mac[6], virtio_net_send_fn send_frame, void *opaque,
				     capsa_error *err)
{
	struct virtio_net *net = calloc(1, sizeof(*net));
	if (!net) {
		error_set_errno(err, ENOMEM, "network device");
		return NULL;
	}
	net->stop_fd = -1;
	net->wake_fd = -1;
	net->send_frame = send_frame;
	net->opaque = opaque;
	memcpy(net->config.mac, mac, sizeof(net->config.mac));

	int ret = pthread_mutex_init(&net->backlog_lock, NULL);
	if (ret != 0) {
		error_set_errno(err, ret, "network device: creating the backlog lock");
		goto fail;
	}
	net->backlog_lock_ready = true;

	struct virtio_mmio_device dev = {
		.device_id = VIRTIO_ID_NET,
		.features = 1ULL << VIRTIO_NET_F_MAC,
		.num_queues = NUM_QUEUES,
		.queue_max_size = VIRTIO_NET_QUEUE_SIZE,
		.config_size = sizeof(net->config),
		.opaque = net,
		.config_read = net_config_read,
	};
	if (virtio_mmio_init(&net->mmio, env, mmio_base, gsi, &dev, err) < 0) {
		error_prefix(err, "network device");
		goto fail;
	}

	net->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	net->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (net->stop_fd < 0 || net->wake_fd < 0) {
		error_set_errno(err, errno, "network device: creating eventfds");
		goto fail;
	}
	/* Signals are for the threads that expect them (vCPUs, the caller):
	 * the worker starts with all of them blocked. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&net->worker, NULL, net_worker, net);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0) {
		error_set_errno(err, ret, "network device: starting the worker thread");
		goto fail;
	}
	net->worker_running = true;
	pthread_setname_np(net->worker, "capsa-net");

	if (virtio_mmio_register(&net->mmio, env->mmio_bus, err) < 0) {
		error_prefix(err, "network device");
		goto fail;
	}
	return net;

fail:
	virtio_net_destroy(net);
	return NULL;
}

void virtio_net_destroy(struct virtio_net *net)
{
	if (!net)
		return;
	if (net->worker_running) {
		signal_eventfd(net->stop_fd);
		pthread_join(net->worker, NULL);
	}
	virtio_mmio_cleanup(&net->mmio);
	if (net->stop_fd >= 0)
		close(net->stop_fd);
	if (net->wake_fd >= 0)
		close(net->wake_fd);
	if (net->backlog_lock_ready) {
		struct rx_frame frame;
		while (backlog_take(net, &frame))
			free(frame.data);
		pthread_mutex_destroy(&net->backlog_lock);
	}
	free(net);
}

int virtio_net_irq_fd(const struct virtio_net *net)
{
	return virtio_mmio_irq_fd(&net->mmio);
}

struct virtio_mmio *virtio_net_transport(struct virtio_net *dev)
{
	return &dev->mmio;
}
