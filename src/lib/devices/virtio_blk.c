#include "devices/virtio_blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/virtio_ids.h>

#include "devices/virtio/mmio.h"
#include "util/cleanup.h"
#include "util/error.h"

struct virtio_blk {
	struct virtio_mmio mmio;
	struct virtio_blk_disk disk;
	struct virtio_blk_config config; /* little-endian, fixed after create */
	int stop_fd;
	pthread_t worker;
	bool worker_running;
	struct virtq_chain chain;        /* the worker's; too big for its stack frame */
};

/* ---- request execution ---- */

static bool in_capacity(const struct virtio_blk_disk *disk, uint64_t sector, uint64_t len)
{
	return sector <= disk->capacity && len / VIRTIO_BLK_SECTOR_SIZE <= disk->capacity - sector;
}

/* Reads or writes all of iov at offset, resuming after short transfers.
 * Fails on a short read at end of file: the backing file shrank. */
static int transfer_all(int fd, struct iovec *iov, unsigned n, off_t offset, bool write)
{
	while (n > 0) {
		ssize_t done = write ? pwritev(fd, iov, (int)n, offset) : preadv(fd, iov, (int)n, offset);
		if (done < 0 && errno == EINTR)
			continue;
		if (done <= 0)
			return -1;
		offset += done;
		size_t left = (size_t)done;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

/* Moves len bytes between the disk at sector and the chain's data part,
 * which starts offset bytes into the readable (write) or writable (read)
 * part of the chain. */
static uint8_t blk_rw(const struct virtio_blk_disk *disk, const struct virtq_chain *chain, uint64_t sector,
		      uint64_t offset, uint64_t len, bool write)
{
	if (write && disk->read_only)
		return VIRTIO_BLK_S_IOERR;
	if (len % VIRTIO_BLK_SECTOR_SIZE || len > VIRTIO_BLK_MAX_REQUEST || !in_capacity(disk, sector, len))
		return VIRTIO_BLK_S_IOERR;
	if (len == 0)
		return VIRTIO_BLK_S_OK;
	struct iovec iov[VIRTQ_MAX_SIZE];
	unsigned n = virtq_chain_slice(chain, !write, offset, len, iov);
	/* capacity <= file size / 512, so the offset fits in off_t. */
	if (transfer_all(disk->fd, iov, n, (off_t)(sector * VIRTIO_BLK_SECTOR_SIZE), write) < 0)
		return VIRTIO_BLK_S_IOERR;
	return VIRTIO_BLK_S_OK;
}

uint32_t virtio_blk_handle_request(const struct virtio_blk_disk *disk, const struct virtq_chain *chain)
{
	if (chain->writable_len == 0)
		return 0;
	/* The status byte is the last writable byte (5.2.6); what precedes
	 * it in the writable part is the data a read fills. The header is
	 * copied once: the guest may change it under us. */
	uint64_t data_in_len = chain->writable_len - 1;
	struct virtio_blk_outhdr hdr;
	uint8_t status;
	uint64_t written = 0;

	if (virtq_chain_read(chain, 0, &hdr, sizeof(hdr)) < sizeof(hdr)) {
		status = VIRTIO_BLK_S_IOERR;
	} else {
		uint32_t type = le32toh(hdr.type);
		uint64_t sector = le64toh(hdr.sector);
		switch (type) {
		case VIRTIO_BLK_T_IN:
			status = blk_rw(disk, chain, sector, 0, data_in_len, false);
			if (status == VIRTIO_BLK_S_OK)
				written = data_in_len;
			break;
		case VIRTIO_BLK_T_OUT:
			status = blk_rw(disk, chain, sector, sizeof(hdr), chain->readable_len - sizeof(hdr), true);
			break;
		case VIRTIO_BLK_T_FLUSH:
			status = fdatasync(disk->fd) == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
			break;
		case VIRTIO_BLK_T_GET_ID:
			written = data_in_len < sizeof(disk->serial) ? data_in_len : sizeof(disk->serial);
			virtq_chain_write(chain, 0, disk->serial, written);
			status = VIRTIO_BLK_S_OK;
			break;
		default:
			status = VIRTIO_BLK_S_UNSUPP;
			break;
		}
	}
	virtq_chain_write(chain, data_in_len, &status, 1);
	return (uint32_t)written + 1;
}

/* ---- worker thread ---- */

/* Serves what the driver made available. A driver that keeps the ring
 * full must not keep the worker from noticing a stop request, so after
 * one queue's worth the worker kicks itself and polls again. */
static void blk_process_queue(struct virtio_blk *blk)
{
	bool irq = false;
	for (unsigned i = 0; i < VIRTIO_BLK_QUEUE_SIZE; i++) {
		if (virtio_mmio_pop(&blk->mmio, 0, &blk->chain) <= 0) {
			if (irq)
				virtio_mmio_interrupt(&blk->mmio, VIRTIO_MMIO_INT_VRING);
			return;
		}
		uint32_t len = virtio_blk_handle_request(&blk->disk, &blk->chain);
		irq |= virtio_mmio_push(&blk->mmio, 0, &blk->chain, len);
	}
	if (irq)
		virtio_mmio_interrupt(&blk->mmio, VIRTIO_MMIO_INT_VRING);
	uint64_t one = 1;
	ssize_t n = write(virtio_mmio_notify_fd(&blk->mmio, 0), &one, sizeof(one));
	(void)n;
}

static void *blk_worker(void *opaque)
{
	struct virtio_blk *blk = opaque;
	int notify_fd = virtio_mmio_notify_fd(&blk->mmio, 0);
	struct pollfd fds[2] = {
		{ .fd = blk->stop_fd, .events = POLLIN },
		{ .fd = notify_fd, .events = POLLIN },
	};

	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[0].revents)
			break;
		if (fds[1].revents & POLLIN) {
			uint64_t count;
			ssize_t n = read(notify_fd, &count, sizeof(count));
			(void)n;
			blk_process_queue(blk);
		}
	}
	return NULL;
}

/* ---- device setup ---- */

static void blk_config_read(void *opaque, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct virtio_blk *blk = opaque;
	memcpy(data, (const uint8_t *)&blk->config + offset, len);
}

/* 20 bytes naming the disk without telling the guest the host path. */
static void make_serial(const char *path, char serial[VIRTIO_BLK_ID_BYTES])
{
	uint64_t hash = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (const char *p = path; *p; p++)
		hash = (hash ^ (uint8_t)*p) * 0x100000001b3ULL;
	char text[VIRTIO_BLK_ID_BYTES + 1];
	snprintf(text, sizeof(text), "capsa-%014llx", (unsigned long long)(hash & 0xffffffffffffffULL));
	memcpy(serial, text, VIRTIO_BLK_ID_BYTES);
}

static int disk_size(int fd, const char *path, uint64_t *size, capsa_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return error_set_errno(err, errno, "disk %s: stat", path);
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0)
			return error_set_errno(err, errno, "disk %s: reading the block device size", path);
		return 0;
	}
	return error_set(err, EINVAL, "disk %s: not a regular file or block device", path);
}

struct virtio_blk *virtio_blk_create(const struct vm_device_env *env, uint64_t mmio_base, uint32_t gsi,
				     const char *path, bool read_only, capsa_error *err)
{
	struct virtio_blk *blk = calloc(1, sizeof(*blk));
	if (!blk) {
		error_set_errno(err, ENOMEM, "disk %s", path);
		return NULL;
	}
	blk->disk.fd = -1;
	blk->stop_fd = -1;

	blk->disk.fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (blk->disk.fd < 0) {
		error_set_errno(err, errno, "opening disk %s%s", path,
				read_only ? "" : " for writing (pass it read-only if it cannot be written)");
		goto fail;
	}
	uint64_t size;
	if (disk_size(blk->disk.fd, path, &size, err) < 0)
		goto fail;
	blk->disk.capacity = size / VIRTIO_BLK_SECTOR_SIZE;
	blk->disk.read_only = read_only;
	make_serial(path, blk->disk.serial);

	blk->config.capacity = htole64(blk->disk.capacity);
	blk->config.size_max = htole32(VIRTIO_BLK_SIZE_MAX);
	/* Two descriptors of every chain hold the header and the status. */
	blk->config.seg_max = htole32(VIRTIO_BLK_QUEUE_SIZE - 2);
	blk->config.blk_size = htole32(VIRTIO_BLK_SECTOR_SIZE);

	uint64_t features = (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
			    (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH);
	if (read_only)
		features |= 1ULL << VIRTIO_BLK_F_RO;
	struct virtio_mmio_device dev = {
		.device_id = VIRTIO_ID_BLOCK,
		.features = features,
		.num_queues = 1,
		.queue_max_size = VIRTIO_BLK_QUEUE_SIZE,
		.config_size = sizeof(blk->config),
		.opaque = blk,
		.config_read = blk_config_read,
	};
	if (virtio_mmio_init(&blk->mmio, env, mmio_base, gsi, &dev, err) < 0) {
		error_prefix(err, "disk %s", path);
		goto fail;
	}

	blk->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (blk->stop_fd < 0) {
		error_set_errno(err, errno, "disk %s: creating the stop eventfd", path);
		goto fail;
	}
	/* Signals are for the threads that expect them (vCPUs, the caller):
	 * the worker starts with all of them blocked. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int ret = pthread_create(&blk->worker, NULL, blk_worker, blk);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0) {
		error_set_errno(err, ret, "disk %s: starting the worker thread", path);
		goto fail;
	}
	blk->worker_running = true;
	pthread_setname_np(blk->worker, "capsa-blk");

	if (virtio_mmio_register(&blk->mmio, env->mmio_bus, err) < 0) {
		error_prefix(err, "disk %s", path);
		goto fail;
	}
	return blk;

fail:
	virtio_blk_destroy(blk);
	return NULL;
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
	if (!blk)
		return;
	if (blk->worker_running) {
		uint64_t one = 1;
		ssize_t n = write(blk->stop_fd, &one, sizeof(one));
		(void)n;
		pthread_join(blk->worker, NULL);
	}
	virtio_mmio_cleanup(&blk->mmio);
	if (blk->stop_fd >= 0)
		close(blk->stop_fd);
	if (blk->disk.fd >= 0)
		close(blk->disk.fd);
	free(blk);
}

int virtio_blk_irq_fd(const struct virtio_blk *blk)
{
	return virtio_mmio_irq_fd(&blk->mmio);
}

struct virtio_mmio *virtio_blk_transport(struct virtio_blk *dev)
{
	return &dev->mmio;
}
