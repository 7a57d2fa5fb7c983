/* virtio-fs (virtio 1.2, 5.11) over virtio-mmio: shares a host directory
 * with the guest through the in-process FUSE server. Two queues, hiprio (0,
 * FORGET and INTERRUPT) and one request queue (1), both served by one
 * worker thread, since the FUSE server takes one caller at a time.
 * Optionally a DAX window (5.11.5): shared memory region
 * VIRTIO_FS_SHMCAP_ID_CACHE, into which FUSE_SETUPMAPPING maps host files
 * for the guest to use in place. No notification queue. */
#ifndef CAPSA_DEVICES_VIRTIO_FS_H
#define CAPSA_DEVICES_VIRTIO_FS_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_fs.h>

#include "capsa.h"
#include "devices/device_env.h"
#include "devices/virtio/virtq.h"
#include "fuse/fuse_server.h"

#define VIRTIO_FS_QUEUE_SIZE 256
#define VIRTIO_FS_HIPRIO_QUEUE 0
#define VIRTIO_FS_REQUEST_QUEUE 1
#define VIRTIO_FS_NUM_QUEUES 2
/* Longest mount tag: the whole config field, then without a NUL. */
#define VIRTIO_FS_TAG_MAX 36
/* Bytes gathered from a chain's readable part and at most put into its
 * writable part: a maximal WRITE or READ with its headers. */
#define VIRTIO_FS_MAX_MESSAGE FUSE_SERVER_MAX_REQUEST

struct virtio_fs;
struct dax_window;

/* A DAX window for the device: window (fuse/dax_window.h) is the host
 * side, shown to the guest at guest-physical address gpa (see
 * vm_add_device_memory). It stays the caller's and must outlive the
 * device. */
struct virtio_fs_dax {
	struct dax_window *window;
	uint64_t gpa;
};

/* A file system named tag (what the guest mounts: `mount -t virtiofs tag
 * /mnt`; 1 to 36 printable ASCII characters, no spaces) showing host_dir,
 * at [mmio_base, mmio_base + VIRTIO_MMIO_WINDOW_SIZE) interrupting on gsi.
 * With read_only every modifying request fails with EROFS. dax: the
 * device's DAX window, or NULL for none. */
struct virtio_fs *virtio_fs_create(const struct vm_device_env *env, uint64_t mmio_base, uint32_t gsi,
				   const char *tag, const char *host_dir, bool read_only,
				   const struct virtio_fs_dax *dax, capsa_error *err);

/* Stops the worker thread and frees the FUSE server; NULL is fine. Call
 * once no vCPU runs: the MMIO window stays on the bus. */
void virtio_fs_destroy(struct virtio_fs *fs);

/* Written whenever the device raises its interrupt (for tests and for a
 * VMM without irqfd). */
int virtio_fs_irq_fd(const struct virtio_fs *fs);

/* What executing a chain needs: the server and two message buffers of
 * VIRTIO_FS_MAX_MESSAGE bytes, so guest memory is read once (the guest may
 * change it under us) and a request is handed over contiguous. */
struct virtio_fs_backend {
	struct fuse_server *server;
	uint8_t *request;
	uint8_t *reply;
};

/* dax_window: NULL, or the window the server maps files into. */
int virtio_fs_backend_init(struct virtio_fs_backend *be, const char *host_dir, bool read_only,
			   struct dax_window *dax_window, capsa_error *err);
void virtio_fs_backend_cleanup(struct virtio_fs_backend *be);

/* Executes one chain (FUSE request in the readable part, room for the
 * reply in the writable part) and returns the used length: the reply's
 * size, or 0 when there is no reply (FORGET, BATCH_FORGET, no room for
 * even a fuse_out_header, a request shorter than a fuse_in_header). A
 * request larger than VIRTIO_FS_MAX_MESSAGE gets an E2BIG reply. */
uint32_t virtio_fs_handle_request(struct virtio_fs_backend *be, const struct virtq_chain *chain);

struct virtio_mmio;
/* The device's transport, for snapshots (virtio/mmio.h). */
struct virtio_mmio *virtio_fs_transport(struct virtio_fs *dev);

#endif
