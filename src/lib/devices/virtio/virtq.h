/* Split virtqueue (virtio 1.x, 2.7), device side.
 *
 * The driver in the guest owns the rings and may change any byte of them
 * at any time, so everything read from guest memory is copied once and
 * validated before use: queue geometry when the queue is enabled, every
 * descriptor while a chain is walked. A queue that breaks a rule is marked
 * broken and never touched again until it is reset; the transport then
 * tells the driver with DEVICE_NEEDS_RESET.
 *
 * A virtq has no lock of its own: the transport serializes access. */
#ifndef CAPSA_DEVICES_VIRTIO_VIRTQ_H
#define CAPSA_DEVICES_VIRTIO_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <linux/virtio_ring.h>

#include "vm/guest_mem.h"

/* Largest queue size any device offers; bounds the chain length too. */
#define VIRTQ_MAX_SIZE 1024

struct virtq {
	/* Programmed by the driver through the transport. */
	uint16_t num;         /* queue size; valid only once virtq_enable() accepted it */
	uint16_t max_size;    /* device limit, a power of two <= VIRTQ_MAX_SIZE */
	uint64_t desc_addr;   /* guest physical addresses of the three rings */
	uint64_t avail_addr;
	uint64_t used_addr;
	bool indirect;        /* VIRTIO_RING_F_INDIRECT_DESC was negotiated */

	/* Device state. */
	bool ready;
	bool broken;
	const char *broken_reason; /* static string, for diagnostics */
	const struct guest_mem *mem;
	struct vring_desc *desc;   /* host views of the rings, valid while ready */
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail_idx;   /* next avail ring slot to consume */
	uint16_t used_idx;         /* next used ring slot to fill */
};

/* One popped request: device-readable buffers first, then device-writable
 * ones, each a host view of guest RAM. */
struct virtq_chain {
	uint16_t head;             /* descriptor index handed back in the used ring */
	unsigned num_readable;     /* iov[0 .. num_readable) */
	unsigned num_writable;     /* iov[num_readable .. num_readable+num_writable) */
	uint64_t readable_len;     /* total bytes in each part */
	uint64_t writable_len;
	struct iovec iov[VIRTQ_MAX_SIZE];
};

/* Forgets the driver's settings and the device state; keeps max_size. */
void virtq_reset(struct virtq *q);

/* Checks the driver's queue size and ring addresses (power-of-two size no
 * larger than max_size, natural alignment, every ring entirely in RAM) and
 * makes the queue ready. Returns -1 and leaves the queue not ready if any
 * check fails. */
int virtq_enable(struct virtq *q, const struct guest_mem *mem);

/* Takes the next available chain. Returns 1 with *chain filled, 0 when
 * nothing is available (or the queue is not ready or broken), -1 when the
 * driver broke the ring rules: the queue is then broken. */
int virtq_pop(struct virtq *q, struct virtq_chain *chain);

/* Returns a chain to the driver with len bytes written into its writable
 * buffers. Returns true if the driver wants an interrupt for it. */
bool virtq_push(struct virtq *q, uint16_t head, uint32_t len);

/* Copies up to len bytes starting offset bytes into the chain's readable
 * part to buf; returns the number copied. */
size_t virtq_chain_read(const struct virtq_chain *chain, uint64_t offset, void *buf, size_t len);

/* Copies up to len bytes from buf into the chain's writable part starting
 * offset bytes into it; returns the number copied. */
size_t virtq_chain_write(const struct virtq_chain *chain, uint64_t offset, const void *buf, size_t len);

/* Fills out[] (room for VIRTQ_MAX_SIZE entries) with the views of bytes
 * [offset, offset+len) of the readable (writable == false) or writable part
 * and returns how many entries it used. The range must lie within the part. */
unsigned virtq_chain_slice(const struct virtq_chain *chain, bool writable, uint64_t offset, uint64_t len,
			   struct iovec *out);

#endif
