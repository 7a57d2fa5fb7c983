/* libFuzzer target: a hostile guest's view of virtio-net. The input is a
 * guest memory image plus the queue geometry the "driver" programmed; the
 * device enables the queue, pops every chain it can and treats each as a
 * tx chain (frame extraction) and, when rx is set, as an rx buffer (frame
 * delivery). Nothing may crash, leak or touch memory outside the guest
 * image (ASan checks the latter). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/virtq.h"
#include "devices/virtio_net.h"

#define GUEST_SIZE (64 * 1024)

struct geometry {
	uint16_t num;
	uint16_t desc_page;
	uint16_t avail_page;
	uint16_t used_page;
	uint8_t indirect;
	uint8_t rx;
	uint16_t rx_len;
} __attribute__((packed));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct geometry g;
	if (size < sizeof(g))
		return 0;
	memcpy(&g, data, sizeof(g));
	data += sizeof(g);
	size -= sizeof(g);

	/* The image is exactly GUEST_SIZE bytes so ASan sees any overrun. */
	uint8_t *image = calloc(1, GUEST_SIZE);
	memcpy(image, data, size < GUEST_SIZE ? size : GUEST_SIZE);
	struct guest_mem mem = { .host = image, .size = GUEST_SIZE };

	struct virtq q;
	memset(&q, 0, sizeof(q));
	q.max_size = VIRTIO_NET_QUEUE_SIZE;
	virtq_reset(&q);
	q.num = g.num;
	/* Page numbers keep most inputs plausible; any address is still possible. */
	q.desc_addr = (uint64_t)g.desc_page * 16;
	q.avail_addr = (uint64_t)g.avail_page * 2;
	q.used_addr = (uint64_t)g.used_page * 4;
	q.indirect = g.indirect & 1;

	static struct virtq_chain chain;
	static uint8_t frame[VIRTIO_NET_MAX_FRAME];
	static uint8_t rx_frame[VIRTIO_NET_MAX_FRAME];
	if (virtq_enable(&q, &mem) == 0) {
		for (int i = 0; i < 2 * VIRTIO_NET_QUEUE_SIZE; i++) {
			int r = virtq_pop(&q, &chain);
			if (r <= 0)
				break;
			uint32_t used = 0;
			if (g.rx & 1) {
				size_t len = g.rx_len % (VIRTIO_NET_MAX_FRAME + 1);
				used = virtio_net_rx_fill(&chain, rx_frame, len);
				if (used > chain.writable_len || (used && used != VIRTIO_NET_HDR_LEN + len))
					abort(); /* claimed more than the guest gave, or a partial frame */
			} else {
				int len = virtio_net_tx_frame(&chain, frame);
				if (len > VIRTIO_NET_MAX_FRAME ||
				    (len >= 0 && (uint64_t)len + VIRTIO_NET_HDR_LEN != chain.readable_len))
					abort();
			}
			virtq_push(&q, chain.head, used);
		}
	}
	free(image);
	return 0;
}
