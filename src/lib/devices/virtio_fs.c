#include "devices/virtio_fs.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/fuse.h>
#include <linux/virtio_ids.h>

#include "devices/virtio/mmio.h"
#include "fuse/dax_window.h"
#include "util/error.h"

struct virtio_fs {
	struct virtio_mmio mmio;
	struct virtio_fs_backend backend;
	struct virtio_fs_config config; /* little-endian, fixed after create */
	int stop_fd;
	pthread_t worker;
	bool worker_running;
	struct virtq_chain chain;       /* the worker's; too big for its stack frame */
};

/* ---- request execution ---- */

int virtio_fs_backend_init(struct virtio_fs_backend *be, const char *host_dir, bool read_only,
			   struct dax_window *dax_window, capsa_error *err)
{
	struct fuse_server_config cfg = { .root_dir = host_dir, .read_only = read_only, .dax = dax_window };

	memset(be, 0, sizeof(*be));
	be->request = malloc(VIRTIO_FS_MAX_MESSAGE);
	be->reply = malloc(VIRTIO_FS_MAX_MESSAGE);
	if (!be->request || !be->reply) {
		virtio_fs_backend_cleanup(be);
		return error_set(err, ENOMEM, "out of memory for the virtio-fs message buffers");
	}
	be->server = fuse_server_new(&cfg, err);
	if (!be->server) {
		virtio_fs_backend_cleanup(be);
		return -1;
	}
	return 0;
}

void virtio_fs_backend_cleanup(struct virtio_fs_backend *be)
{
	fuse_server_free(be->server);
	free(be->request);
	free(be->reply);
	memset(be, 0, sizeof(*be));
}

static bool takes_no_reply(uint32_t opcode)
{
	return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET;
}

/* A request we will not gather still deserves an answer the driver can
 * match to it, so it does not wait forever. */
static uint32_t refuse_oversized(const struct virtq_chain *chain)
{
	struct fuse_in_header h;
	if (virtq_chain_read(chain, 0, &h, sizeof(h)) < sizeof(h) || takes_no_reply(h.opcode))
		return 0;
	struct fuse_out_header oh = { .len = sizeof(oh), .error = -E2BIG, .unique = h.unique };
	if (chain->writable_len < sizeof(oh))
		return 0;
	virtq_chain_write(chain, 0, &oh, sizeof(oh));
	return sizeof(oh);
}

uint32_t virtio_fs_handle_request(struct virtio_fs_backend *be, const struct virtq_chain *chain)
{
	if (chain->readable_len > VIRTIO_FS_MAX_MESSAGE)
		return refuse_oversized(chain);

	size_t in_len = virtq_chain_read(chain, 0, be->request, (size_t)chain->readable_len);
	size_t out_cap = chain->writable_len < VIRTIO_FS_MAX_MESSAGE ? (size_t)chain->writable_len
								      : VIRTIO_FS_MAX_MESSAGE;
	size_t out_len = 0;
	/* With no room for a reply the server refuses before looking at the
	 * request; a FORGET must still be executed, so it gets a scratch
	 * reply buffer it never fills. */
	if (out_cap < sizeof(struct fuse_out_header)) {
		struct fuse_in_header h;
		if (in_len < sizeof(h))
			return 0;
		memcpy(&h, be->request, sizeof(h));
		if (takes_no_reply(h.opcode))
			fuse_server_handle(be->server, be->request, in_len, be->reply, VIRTIO_FS_MAX_MESSAGE,
					   &out_len);
		return 0;
	}
	if (fuse_server_handle(be->server, be->request, in_len, be->reply, out_cap, &out_len) < 0)
		return 0;
	if (out_len > out_cap)
		out_len = out_cap; /* never more than the guest gave us */
	return (uint32_t)virtq_chain_write(chain, 0, be->reply, out_len);
}

/* ---- worker thread ---- */

/* Serves what the driver made available on queue q; returns whether the
 * driver wants an interrupt. A driver that keeps the ring full must not
 * keep the worker from its other queue or from a stop request, so after
 * one queue's worth the worker kicks itself and polls again. */
static bool fs_process_queue(struct virtio_fs *fs, unsigned q)
{
	bool irq = false;
	for (unsigned i = 0; i < VIRTIO_FS_QUEUE_SIZE; i++) {
		if (virtio_mmio_pop(&fs->mmio, q, &fs->chain) <= 0)
			return irq;
		uint32_t len = virtio_fs_handle_request(&fs->backend, &fs->chain);
		irq |= virtio_mmio_push(&fs->mmio, q, &fs->chain, len);
	}
	uint64_t one = 1;
	ssize_t n = write(virtio_mmio_notify_fd(&fs->mmio, q), &one, sizeof(one));
	(void)n;
	return irq;
}

static void *fs_worker(void *opaque)
{
	struct virtio_fs *fs = opaque;
	struct pollfd fds[1 + VIRTIO_FS_NUM_QUEUES] = { { .fd = fs->stop_fd, .events = POLLIN } };
	for (unsigned q = 0; q < VIRTIO_FS_NUM_QUEUES; q++)
		fds[1 + q] = (struct pollfd){ .fd = virtio_mmio_notify_fd(&fs->mmio, q), .events = POLLIN };

	for (;;) {
		if (poll(fds, 1 + VIRTIO_FS_NUM_QUEUES, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[0].revents)
			break;
		bool irq = false;
		for (unsigned q = 0; q < VIRTIO_FS_NUM_QUEUES; q++) {
			if (!(fds[1 + q].revents & POLLIN))
				continue;
			uint64_t count;
			ssize_t n = read(fds[1 + q].fd, &count, sizeof(count));
			(void)n;
			irq |= fs_process_queue(fs, q);
		}
		if (irq)
			virtio_mmio_interrupt(&fs->mmio, VIRTIO_MMIO_INT_VRING);
	}
	return NULL;
}

/* ---- device setup ---- */

static void fs_config_read(void *opaque, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct virtio_fs *fs = opaque;
	memcpy(data, (const uint8_t *)&fs->config + offset, len);
}

/* A driver that resets the device starts a new FUSE session with INIT:
 * end the old one as a DESTROY would, dropping the inodes and handles it
 * held. No chain is in flight during a reset, so the worker is not using
 * the server. */
static void fs_reset(void *opaque)
{
	struct virtio_fs *fs = opaque;
	struct fuse_in_header h = { .len = sizeof(h), .opcode = FUSE_DESTROY };
	struct fuse_out_header oh;
	size_t out_len;
	fuse_server_handle(fs->backend.server, &h, sizeof(h), &oh, sizeof(oh), &out_len);
}

/* The tag ends up on mount command lines and in the kernel's list of
 * tags, so it is kept to what needs no quoting anywhere. */
static int check_tag(const char *tag, capsa_error *err)
{
	size_t len = strlen(tag);
	if (len == 0 || len > VIRTIO_FS_TAG_MAX)
		return error_set(err, EINVAL, "virtio-fs tag \"%s\": must be 1 to %d characters long", tag,
				 VIRTIO_FS_TAG_MAX);
	for (size_t i = 0; i < len; i++) {
		if (tag[i] <= ' ' || tag[i] > '~')
			return error_set(err, EINVAL,
					 "virtio-fs tag \"%s\": use printable ASCII characters without spaces",
					 tag);
	}
	return 0;
}

struct virtio_fs *virtio_fs_create(const struct vm_device_env *env, uint64_t mmio_base, uint32_t gsi,
				   const char *tag, const char *host_dir, bool read_only,
				   const struct virtio_fs_dax *dax, capsa_error *err)
{
	if (check_tag(tag, err) < 0)
		return NULL;
	struct virtio_fs *fs = calloc(1, sizeof(*fs));
	if (!fs) {
		error_set_errno(err, ENOMEM, "virtio-fs %s", tag);
		return NULL;
	}
	fs->stop_fd = -1;

	if (virtio_fs_backend_init(&fs->backend, host_dir, read_only, dax ? dax->window : NULL, err) < 0) {
		error_prefix(err, "virtio-fs %s", tag);
		goto fail;
	}
	memcpy(fs->config.tag, tag, strlen(tag)); /* the rest stays NUL */
	fs->config.num_request_queues = htole32(1);

	struct virtio_mmio_device dev = {
		.device_id = VIRTIO_ID_FS,
		.features = 0, /* VERSION_1 comes from the transport */
		.num_queues = VIRTIO_FS_NUM_QUEUES,
		.queue_max_size = VIRTIO_FS_QUEUE_SIZE,
		.config_size = sizeof(fs->config),
		.opaque = fs,
		.config_read = fs_config_read,
		.reset = fs_reset,
	};
	if (dax) {
		dev.shm[0] = (struct virtio_mmio_shm_region){
			.id = VIRTIO_FS_SHMCAP_ID_CACHE,
			.base = dax->gpa,
			.len = dax->window->size,
		};
		dev.shm_count = 1;
	}
	if (virtio_mmio_init(&fs->mmio, env, mmio_base, gsi, &dev, err) < 0) {
		error_prefix(err, "virtio-fs %s", tag);
		goto fail;
	}

	fs->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fs->stop_fd < 0) {
		error_set_errno(err, errno, "virtio-fs %s: creating the stop eventfd", tag);
		goto fail;
	}
	/* Signals are for the threads that expect them (vCPUs, the caller):
	 * the worker starts with all of them blocked. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int ret = pthread_create(&fs->worker, NULL, fs_worker, fs);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0) {
		error_set_errno(err, ret, "virtio-fs %s: starting the worker thread", tag);
		goto fail;
	}
	fs->worker_running = true;
	pthread_setname_np(fs->worker, "capsa-fs");

	if (virtio_mmio_register(&fs->mmio, env->mmio_bus, err) < 0) {
		error_prefix(err, "virtio-fs %s", tag);
		goto fail;
	}
	return fs;

fail:
	virtio_fs_destroy(fs);
	return NULL;
}

void virtio_fs_destroy(struct virtio_fs *fs)
{
	if (!fs)
		return;
	if (fs->worker_running) {
		uint64_t one = 1;
		ssize_t n = write(fs->stop_fd, &one, sizeof(one));
		(void)n;
		pthread_join(fs->worker, NULL);
	}
	virtio_mmio_cleanup(&fs->mmio);
	if (fs->stop_fd >= 0)
		close(fs->stop_fd);
	virtio_fs_backend_cleanup(&fs->backend);
	free(fs);
}

int virtio_fs_irq_fd(const struct virtio_fs *fs)
{
	return virtio_mmio_irq_fd(&fs->mmio);
}

struct virtio_mmio *virtio_fs_transport(struct virtio_fs *dev)
{
	return &dev->mmio;
}
