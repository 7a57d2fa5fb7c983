/* libFuzzer target: a hostile guest's view of virtio-blk. The input is a
 * guest memory image plus the queue geometry the "driver" programmed; the
 * device enables the queue, pops every chain it can and executes each as a
 * block request against a small in-memory disk. Nothing may crash, leak or
 * touch memory outside the guest image (ASan checks the latter). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/virtio/virtq.h"
#include "devices/virtio_blk.h"

#define GUEST_SIZE (64 * 1024)
#define DISK_SECTORS 64

struct geometry {
	uint16_t num;
	uint16_t desc_page;
	uint16_t avail_page;
	uint16_t used_page;
	uint8_t indirect;
	uint8_t read_only;
} __attribute__((packed));

static int disk_fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct geometry g;
	if (size < sizeof(g))
		return 0;
	memcpy(&g, data, sizeof(g));
	data += sizeof(g);
	size -= sizeof(g);

	if (disk_fd < 0) {
		disk_fd = memfd_create("fuzz-disk", 0);
		if (disk_fd < 0 || ftruncate(disk_fd, DISK_SECTORS * 512) < 0)
			abort();
	}

	/* The image is exactly GUEST_SIZE bytes so ASan sees any overrun. */
	uint8_t *image = calloc(1, GUEST_SIZE);
	memcpy(image, data, size < GUEST_SIZE ? size : GUEST_SIZE);
	struct guest_mem mem = { .host = image, .size = GUEST_SIZE };

	struct virtq q;
	memset(&q, 0, sizeof(q));
	q.max_size = VIRTIO_BLK_QUEUE_SIZE;
	virtq_reset(&q);
	q.num = g.num;
	/* Page numbers keep most inputs plausible; any address is still possible. */
	q.desc_addr = (uint64_t)g.desc_page * 16;
	q.avail_addr = (uint64_t)g.avail_page * 2;
	q.used_addr = (uint64_t)g.used_page * 4;
	q.indirect = g.indirect & 1;

	struct virtio_blk_disk disk = { .fd = disk_fd, .capacity = DISK_SECTORS, .read_only = g.read_only & 1 };
	memcpy(disk.serial, "fuzz", 4);

	static struct virtq_chain chain;
	if (virtq_enable(&q, &mem) == 0) {
		for (int i = 0; i < 2 * VIRTIO_BLK_QUEUE_SIZE; i++) {
			int r = virtq_pop(&q, &chain);
			if (r <= 0)
				break;
			uint32_t len = virtio_blk_handle_request(&disk, &chain);
			if (len > chain.writable_len)
				abort(); /* the device claimed more than the guest gave it */
			virtq_push(&q, chain.head, len);
		}
	}
	free(image);
	return 0;
}
