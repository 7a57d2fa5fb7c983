/* virtio-blk (virtio 1.x, 5.2) over virtio-mmio, backed by a host file or
 * block device. One request queue served by one worker thread. */
#ifndef CAPSA_DEVICES_VIRTIO_BLK_H
#define CAPSA_DEVICES_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_blk.h>

#include "capsa.h"
#include "devices/device_env.h"
#include "devices/virtio/virtq.h"

#define VIRTIO_BLK_QUEUE_SIZE 256
#define VIRTIO_BLK_SECTOR_SIZE 512
/* Largest segment we tell the driver to build; with seg_max segments it
 * bounds a conforming driver's request below VIRTIO_BLK_MAX_REQUEST. */
#define VIRTIO_BLK_SIZE_MAX (128 * 1024)
/* Requests carrying more data than this fail with IOERR. */
#define VIRTIO_BLK_MAX_REQUEST (32 * 1024 * 1024)

struct virtio_blk;

/* A disk at [mmio_base, mmio_base + VIRTIO_MMIO_WINDOW_SIZE) interrupting
 * on gsi, backed by path (opened read-only if read_only). A file size that
 * is not a multiple of 512 is rounded down: the tail is not visible. */
struct virtio_blk *virtio_blk_create(const struct vm_device_env *env, uint64_t mmio_base, uint32_t gsi,
				     const char *path, bool read_only, capsa_error *err);

/* Stops the worker thread and closes the backing file; NULL is fine. Call
 * once no vCPU runs: the MMIO window stays on the bus. */
void virtio_blk_destroy(struct virtio_blk *blk);

/* Written whenever the device raises its interrupt (for tests and for a
 * VMM without irqfd). */
int virtio_blk_irq_fd(const struct virtio_blk *blk);

/* What executing a request needs, apart from the request itself. */
struct virtio_blk_disk {
	int fd;
	uint64_t capacity;                /* in 512-byte sectors */
	bool read_only;
	char serial[VIRTIO_BLK_ID_BYTES]; /* GET_ID answer, NUL-padded */
};

/* Executes one request chain (header, data, status byte) against disk,
 * writes the status byte and returns the used length: data bytes written
 * into the chain plus the status byte. A chain with no writable byte has
 * nowhere to report to and is returned untouched with length 0. */
uint32_t virtio_blk_handle_request(const struct virtio_blk_disk *disk, const struct virtq_chain *chain);

struct virtio_mmio;
/* The device's transport, for snapshots (virtio/mmio.h). */
struct virtio_mmio *virtio_blk_transport(struct virtio_blk *dev);

#endif
