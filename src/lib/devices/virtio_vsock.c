#include "devices/virtio_vsock.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_ids.h>
#include <linux/virtio_vsock.h>

#include "devices/virtio/mmio.h"
#include "devices/vsock_relay.h"
#include "util/deadline.h"
#include "util/error.h"

enum { QUEUE_RX, QUEUE_TX, QUEUE_EVENT, NUM_QUEUES };

/* What woke the worker (epoll data). */
enum { SOURCE_QUEUE = 0, SOURCE_STOP = NUM_QUEUES, SOURCE_WAKE, SOURCE_RELAY };

/* Chains handled per pass before the worker looks at its other fds. */
#define PUMP_BUDGET (2 * VIRTIO_VSOCK_QUEUE_SIZE)

struct virtio_vsock {
	struct virtio_mmio mmio;
	struct virtio_vsock_config config; /* little-endian, fixed after create */
	struct vsock_relay *relay;         /* the worker's alone once it runs */
	int stop_fd;
	int wake_fd;                       /* a reset to apply, or more work queued */
	int epoll_fd;
	bool reset_pending;                /* atomic: set on a vCPU, taken by the worker */
	bool transport_reset_pending;      /* atomic: tell the guest its streams are gone */
	/* After the reset event went out, the guest's next event-queue kick
	 * (it refills the buffer once it has dropped its streams) means done. */
	pthread_mutex_t reset_lock;
	pthread_cond_t reset_cond;
	enum { RESET_NONE, RESET_SENT, RESET_DONE } reset_state;
	pthread_t worker;
	bool worker_running;
	struct virtq_chain chain;          /* the worker's; too big for its stack frame */
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

/* ---- worker thread ---- */

static bool reset_requested(struct virtio_vsock *v)
{
	return __atomic_load_n(&v->reset_pending, __ATOMIC_ACQUIRE);
}

/* Moves packets both ways until neither queue makes progress: replies to
 * the guest first (tx stops while too many of them wait for rx buffers),
 * then the guest's packets. A reset stops it, so that no chain of the
 * driver's next life meets the streams of its last one (vsock_reset has
 * signalled wake_fd: the worker applies the reset and comes back). */
static void vsock_pump(struct virtio_vsock *v)
{
	unsigned budget = PUMP_BUDGET;
	bool irq = false;
	bool progress = true;

	while (progress && budget && !reset_requested(v)) {
		progress = false;
		while (budget && vsock_relay_rx_pending(v->relay) && !reset_requested(v) &&
		       virtio_mmio_pop(&v->mmio, QUEUE_RX, &v->chain) > 0) {
			uint32_t len = vsock_relay_fill_rx(v->relay, &v->chain);
			irq |= virtio_mmio_push(&v->mmio, QUEUE_RX, &v->chain, len);
			budget--;
			progress = true;
		}
		while (budget && !vsock_relay_tx_blocked(v->relay) && !reset_requested(v) &&
		       virtio_mmio_pop(&v->mmio, QUEUE_TX, &v->chain) > 0) {
			vsock_relay_handle_tx(v->relay, &v->chain);
			irq |= virtio_mmio_push(&v->mmio, QUEUE_TX, &v->chain, 0);
			budget--;
			progress = true;
		}
	}
	if (irq)
		virtio_mmio_interrupt(&v->mmio, VIRTIO_MMIO_INT_VRING);
	/* A busy guest must not keep the worker from a stop request or
	 * from the host sockets: come back after one epoll round. */
	if (!budget)
		signal_eventfd(v->wake_fd);
}

/* A restored guest still holds the streams of the VMM it was snapshotted
 * in; the event makes it drop them all (its listening sockets stay). If
 * the driver has no event buffer posted yet, this is tried again at its
 * next kick. */
static void send_transport_reset(struct virtio_vsock *v)
{
	if (virtio_mmio_pop(&v->mmio, QUEUE_EVENT, &v->chain) <= 0)
		return;
	struct virtio_vsock_event event = { .id = htole32(VIRTIO_VSOCK_EVENT_TRANSPORT_RESET) };
	uint32_t len = (uint32_t)virtq_chain_write(&v->chain, 0, &event, sizeof(event));
	__atomic_store_n(&v->transport_reset_pending, false, __ATOMIC_RELEASE);
	pthread_mutex_lock(&v->reset_lock);
	v->reset_state = RESET_SENT;
	pthread_mutex_unlock(&v->reset_lock);
	if (virtio_mmio_push(&v->mmio, QUEUE_EVENT, &v->chain, len))
		virtio_mmio_interrupt(&v->mmio, VIRTIO_MMIO_INT_VRING);
}

static void event_queue_kicked(struct virtio_vsock *v)
{
	pthread_mutex_lock(&v->reset_lock);
	if (v->reset_state == RESET_SENT) {
		v->reset_state = RESET_DONE;
		pthread_cond_broadcast(&v->reset_cond);
	}
	pthread_mutex_unlock(&v->reset_lock);
}

static int source_fd(const struct virtio_vsock *v, uint32_t source)
{
	if (source < NUM_QUEUES)
		return virtio_mmio_notify_fd(&v->mmio, source);
	return source == SOURCE_WAKE ? v->wake_fd : -1;
}

static void *vsock_worker(void *opaque)
{
	struct virtio_vsock *v = opaque;
	struct epoll_event events[NUM_QUEUES + 3];

	for (;;) {
		int n = epoll_wait(v->epoll_fd, events, sizeof(events) / sizeof(events[0]), -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		bool poll_relay = false;
		for (int i = 0; i < n; i++) {
			uint32_t source = events[i].data.u32;
			if (source == SOURCE_STOP)
				return NULL;
			if (source == SOURCE_RELAY)
				poll_relay = true;
			else
				drain_eventfd(source_fd(v, source));
			if (source == SOURCE_QUEUE + QUEUE_EVENT)
				event_queue_kicked(v);
		}
		if (__atomic_exchange_n(&v->reset_pending, false, __ATOMIC_ACQ_REL))
			vsock_relay_reset(v->relay);
		if (poll_relay)
			vsock_relay_poll(v->relay);
		/* The event queue only matters for TRANSPORT_RESET, sent
		 * after a snapshot restore: its buffers stay with us until then. */
		if (__atomic_load_n(&v->transport_reset_pending, __ATOMIC_ACQUIRE))
			send_transport_reset(v);
		vsock_pump(v);
	}
	return NULL;
}

/* ---- device setup ---- */

static void vsock_config_read(void *opaque, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct virtio_vsock *v = opaque;
	memcpy(data, (const uint8_t *)&v->config + offset, len);
}

/* Runs on a vCPU with the transport lock held: the streams belong to the
 * worker, which drops them before it takes another chain. */
static void vsock_reset(void *opaque)
{
	struct virtio_vsock *v = opaque;
	__atomic_store_n(&v->reset_pending, true, __ATOMIC_RELEASE);
	signal_eventfd(v->wake_fd);
}

static int watch(struct virtio_vsock *v, int fd, uint32_t source, capsa_error *err)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = source };
	if (epoll_ctl(v->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return error_set_errno(err, errno, "vsock device: epoll");
	return 0;
}

static int start_worker(struct virtio_vsock *v, capsa_error *err)
{
	v->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	v->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	v->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (v->stop_fd < 0 || v->wake_fd < 0 || v->epoll_fd < 0)
		return error_set_errno(err, errno, "vsock device: creating the worker's eventfds");
	for (unsigned q = 0; q < NUM_QUEUES; q++)
		if (watch(v, virtio_mmio_notify_fd(&v->mmio, q), SOURCE_QUEUE + q, err) < 0)
			return -1;
	if (watch(v, v->stop_fd, SOURCE_STOP, err) < 0 || watch(v, v->wake_fd, SOURCE_WAKE, err) < 0 ||
	    watch(v, vsock_relay_epoll_fd(v->relay), SOURCE_RELAY, err) < 0)
		return -1;

	/* Signals are for the threads that expect them (vCPUs, the caller):
	 * the worker starts with all of them blocked. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int ret = pthread_create(&v->worker, NULL, vsock_worker, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0)
		return error_set_errno(err, ret, "vsock device: starting the worker thread");
	v->worker_running = true;
	pthread_setname_np(v->worker, "capsa-vsock");
	return 0;
}

struct virtio_vsock *virtio_vsock_create(const struct vm_device_env *env, uint64_t mmio_base, uint32_t gsi,
					 uint64_t guest_cid, const char *uds_path, capsa_error *err)
{
	struct virtio_vsock *v = calloc(1, sizeof(*v));
	if (!v) {
		error_set_errno(err, ENOMEM, "vsock device");
		return NULL;
	}
	v->stop_fd = -1;
	v->wake_fd = -1;
	v->epoll_fd = -1;
	pthread_mutex_init(&v->reset_lock, NULL);
	pthread_cond_init(&v->reset_cond, NULL);

	v->relay = vsock_relay_create(guest_cid, uds_path, err);
	if (!v->relay)
		goto fail;
	v->config.guest_cid = htole64(guest_cid);

	struct virtio_mmio_device dev = {
		.device_id = VIRTIO_ID_VSOCK,
		.features = 0, /* stream sockets only: no SEQPACKET */
		.num_queues = NUM_QUEUES,
		.queue_max_size = VIRTIO_VSOCK_QUEUE_SIZE,
		.config_size = sizeof(v->config),
		.opaque = v,
		.config_read = vsock_config_read,
		.reset = vsock_reset,
	};
	if (virtio_mmio_init(&v->mmio, env, mmio_base, gsi, &dev, err) < 0) {
		error_prefix(err, "vsock device");
		goto fail;
	}
	if (start_worker(v, err) < 0)
		goto fail;
	if (virtio_mmio_register(&v->mmio, env->mmio_bus, err) < 0) {
		error_prefix(err, "vsock device");
		goto fail;
	}
	return v;

fail:
	virtio_vsock_destroy(v);
	return NULL;
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
	if (!v)
		return;
	if (v->worker_running) {
		signal_eventfd(v->stop_fd);
		pthread_join(v->worker, NULL);
	}
	virtio_mmio_cleanup(&v->mmio);
	vsock_relay_destroy(v->relay);
	if (v->epoll_fd >= 0)
		close(v->epoll_fd);
	if (v->wake_fd >= 0)
		close(v->wake_fd);
	if (v->stop_fd >= 0)
		close(v->stop_fd);
	pthread_cond_destroy(&v->reset_cond);
	pthread_mutex_destroy(&v->reset_lock);
	free(v);
}

int virtio_vsock_irq_fd(const struct virtio_vsock *v)
{
	return virtio_mmio_irq_fd(&v->mmio);
}

struct virtio_mmio *virtio_vsock_transport(struct virtio_vsock *dev)
{
	return &dev->mmio;
}

void virtio_vsock_transport_reset(struct virtio_vsock *v)
{
	__atomic_store_n(&v->transport_reset_pending, true, __ATOMIC_RELEASE);
	signal_eventfd(v->wake_fd);
}

int virtio_vsock_wait_transport_reset(struct virtio_vsock *v, int timeout_ms)
{
	struct timespec deadline = realtime_deadline_ms(timeout_ms);
	pthread_mutex_lock(&v->reset_lock);
	while (v->reset_state != RESET_DONE) {
		if (pthread_cond_timedwait(&v->reset_cond, &v->reset_lock, &deadline) == ETIMEDOUT)
			break;
	}
	bool done = v->reset_state == RESET_DONE;
	pthread_mutex_unlock(&v->reset_lock);
	return done ? 0 : -1;
}
