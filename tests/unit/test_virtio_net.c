/* virtio-net: the tx and rx chain handling on hand-built chains, then the
 * whole device in-process: a fake guest driver sets it up through the MMIO
 * registers, kicks it through the QueueNotify fallback (no KVM) and waits
 * for its interrupt eventfd; a fake backend records what the guest sent. */
#include <setjmp.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "devices/virtio_net.h"
#include "virtio_test_driver.h"

/* ---- chains by hand ---- */

static struct virtq_chain chain;

static void fill_frame(uint8_t *f, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		f[i] = (uint8_t)(seed + i * 3);
}

static void test_tx_frame(void **state)
{
	(void)state;
	static uint8_t out[VIRTIO_NET_MAX_FRAME];
	struct virtio_net_hdr_v1 hdr = { 0 };
	uint8_t frame[100];
	fill_frame(frame, sizeof(frame), 1);

	/* Header and frame in one buffer. */
	uint8_t one[VIRTIO_NET_HDR_LEN + sizeof(frame)];
	memcpy(one, &hdr, sizeof(hdr));
	memcpy(one + sizeof(hdr), frame, sizeof(frame));
	chain_clear(&chain);
	chain_add(&chain, one, sizeof(one), false);
	assert_int_equal(virtio_net_tx_frame(&chain, out), sizeof(frame));
	assert_memory_equal(out, frame, sizeof(frame));

	/* Header split over two buffers, frame over three. */
	memset(out, 0, sizeof(frame));
	chain_clear(&chain);
	chain_add(&chain, &hdr, 5, false);
	chain_add(&chain, (uint8_t *)&hdr + 5, sizeof(hdr) - 5, false);
	chain_add(&chain, frame, 14, false);
	chain_add(&chain, frame + 14, 1, false);
	chain_add(&chain, frame + 15, sizeof(frame) - 15, false);
	assert_int_equal(virtio_net_tx_frame(&chain, out), sizeof(frame));
	assert_memory_equal(out, frame, sizeof(frame));

	/* The smallest and the largest frame. */
	static uint8_t big[VIRTIO_NET_MAX_FRAME + 1];
	fill_frame(big, sizeof(big), 9);
	chain_clear(&chain);
	chain_add(&chain, &hdr, sizeof(hdr), false);
	chain_add(&chain, big, VIRTIO_NET_MIN_FRAME, false);
	assert_int_equal(virtio_net_tx_frame(&chain, out), VIRTIO_NET_MIN_FRAME);
	chain_clear(&chain);
	chain_add(&chain, &hdr, sizeof(hdr), false);
	chain_add(&chain, big, VIRTIO_NET_MAX_FRAME, false);
	assert_int_equal(virtio_net_tx_frame(&chain, out), VIRTIO_NET_MAX_FRAME);
	assert_memory_equal(out, big, VIRTIO_NET_MAX_FRAME);
}

static void test_tx_malformed(void **state)
{
	(void)state;
	static uint8_t out[VIRTIO_NET_MAX_FRAME];
	static uint8_t big[VIRTIO_NET_MAX_FRAME + 1];
	struct virtio_net_hdr_v1 hdr = { 0 };
	uint8_t frame[60] = { 0 }, spare[16];

	/* Empty chain, header only, short header, runt frame. */
	chain_clear(&chain);
	assert_int_equal(virtio_net_tx_frame(&chain, out), -1);
	chain_add(&chain, &hdr, sizeof(hdr), false);
	assert_int_equal(virtio_net_tx_frame(&chain, out), -1);
	chain_clear(&chain);
	chain_add(&chain, &hdr, 8, false);
	assert_int_equal(virtio_net_tx_frame(&chain, out), -1);
	chain_clear(&chain);
	chain_add(&chain, &hdr, sizeof(hdr), false);
	chain_add(&chain, frame, VIRTIO_NET_MIN_FRAME - 1, false);
	assert_int_equal(virtio_net_tx_frame(&chain, out), -1);

	/* One byte too many, and a huge chain of many buffers. */
	chain_clear(&chain);
	chain_add(&chain, &hdr, sizeof(hdr), false);
	chain_add(&chain, big, sizeof(big), false);
	assert_int_equal(virtio_net_tx_frame(&chain, out), -1);
	chain_clear(&chain);
	chain_add(&chain, &hdr, sizeof(hdr), false);
	for (unsigned i = 1; i < VIRTQ_MAX_SIZE; i++)
		chain_add(&chain, big, sizeof(big) / 4, false);
	assert_int_equal(virtio_net_tx_frame(&chain, out), -1);

	/* A writable buffer in a tx chain. */
	chain_clear(&chain);
	chain_add(&chain, &hdr, sizeof(hdr), false);
	chain_add(&chain, frame, sizeof(frame), false);
	chain_add(&chain, spare, sizeof(spare), true);
	assert_int_equal(virtio_net_tx_frame(&chain, out), -1);

	/* Offloads that were never offered. */
	hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	chain_clear(&chain);
	chain_add(&chain, &hdr, sizeof(hdr), false);
	chain_add(&chain, frame, sizeof(frame), false);
	assert_int_equal(virtio_net_tx_frame(&chain, out), -1);
	hdr.flags = 0;
	hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	assert_int_equal(virtio_net_tx_frame(&chain, out), -1);
	hdr.gso_type = VIRTIO_NET_HDR_GSO_NONE;
	assert_int_equal(virtio_net_tx_frame(&chain, out), sizeof(frame));
}

static void test_rx_fill(void **state)
{
	(void)state;
	uint8_t frame[300], buf[2048], hdr_buf[VIRTIO_NET_HDR_LEN], a[7], b[500];
	fill_frame(frame, sizeof(frame), 5);

	memset(buf, 0xee, sizeof(buf));
	chain_clear(&chain);
	chain_add(&chain, buf, sizeof(buf), true);
	assert_int_equal(virtio_net_rx_fill(&chain, frame, sizeof(frame)), VIRTIO_NET_HDR_LEN + sizeof(frame));
	struct virtio_net_hdr_v1 hdr;
	memcpy(&hdr, buf, sizeof(hdr));
	assert_int_equal(hdr.flags, 0);
	assert_int_equal(hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	assert_int_equal(hdr.num_buffers, 1);
	assert_memory_equal(buf + VIRTIO_NET_HDR_LEN, frame, sizeof(frame));
	assert_int_equal(buf[VIRTIO_NET_HDR_LEN + sizeof(frame)], 0xee);

	/* Scattered: header alone, then two uneven buffers. */
	chain_clear(&chain);
	chain_add(&chain, hdr_buf, sizeof(hdr_buf), true);
	chain_add(&chain, a, sizeof(a), true);
	chain_add(&chain, b, sizeof(b), true);
	assert_int_equal(virtio_net_rx_fill(&chain, frame, sizeof(frame)), VIRTIO_NET_HDR_LEN + sizeof(frame));
	assert_memory_equal(a, frame, sizeof(a));
	assert_memory_equal(b, frame + sizeof(a), sizeof(frame) - sizeof(a));

	/* Exactly big enough, one byte short, readable only. */
	chain_clear(&chain);
	chain_add(&chain, buf, VIRTIO_NET_HDR_LEN + sizeof(frame), true);
	assert_int_equal(virtio_net_rx_fill(&chain, frame, sizeof(frame)), VIRTIO_NET_HDR_LEN + sizeof(frame));
	chain_clear(&chain);
	memset(buf, 0xee, sizeof(buf));
	chain_add(&chain, buf, VIRTIO_NET_HDR_LEN + sizeof(frame) - 1, true);
	assert_int_equal(virtio_net_rx_fill(&chain, frame, sizeof(frame)), 0);
	assert_int_equal(buf[0], 0xee);
	chain_clear(&chain);
	chain_add(&chain, buf, sizeof(buf), false);
	assert_int_equal(virtio_net_rx_fill(&chain, frame, sizeof(frame)), 0);
}

/* ---- the whole device, driven like a guest ---- */

#define RAM_SIZE (1024 * 1024)
#define BASE 0xd0000000ULL
#define QSIZE 256
#define RX 0
#define TX 1
#define RX_BUF_GPA 0x20000
#define RX_BUF_SIZE 2048
#define TX_BUF_GPA 0x80000

static const uint64_t desc_gpa[2] = { 0x1000, 0x4000 };
static const uint64_t avail_gpa[2] = { 0x2000, 0x5000 };
static const uint64_t used_gpa[2] = { 0x3000, 0x6000 };
static const uint8_t test_mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };

struct sent {
	pthread_mutex_t lock;
	int fd;          /* eventfd, counts frames */
	unsigned count;
	uint8_t last[VIRTIO_NET_MAX_FRAME];
	size_t last_len;
};

struct guest {
	struct test_guest vm;
	struct virtio_net *net;
	struct sent sent;
};

static void backend_send(void *opaque, const uint8_t *frame, size_t len)
{
	struct sent *s = opaque;
	pthread_mutex_lock(&s->lock);
	memcpy(s->last, frame, len);
	s->last_len = len;
	s->count++;
	pthread_mutex_unlock(&s->lock);
	uint64_t one = 1;
	assert_int_equal(write(s->fd, &one, sizeof(one)), sizeof(one));
}

static int guest_setup(void **state)
{
	struct guest *g = calloc(1, sizeof(*g));
	test_guest_init(&g->vm, RAM_SIZE, BASE);
	pthread_mutex_init(&g->sent.lock, NULL);
	g->sent.fd = eventfd(0, EFD_CLOEXEC);
	capsa_error err = { 0 };
	g->net = virtio_net_create(&g->vm.env, BASE, 5, test_mac, backend_send, &g->sent, &err);
	if (!g->net)
		fail_msg("virtio_net_create: %s", err.message);
	g->vm.irq_fd = virtio_net_irq_fd(g->net);
	*state = g;
	return 0;
}

static int guest_teardown(void **state)
{
	struct guest *g = *state;
	virtio_net_destroy(g->net);
	close(g->sent.fd);
	pthread_mutex_destroy(&g->sent.lock);
	test_guest_cleanup(&g->vm);
	free(g);
	return 0;
}

static void driver_init(struct test_guest *vm)
{
	driver_start(vm, VIRTIO_ID_NET, driver_device_features(vm));
	memset(gpa(vm, 0x1000), 0, 0x6000);
	for (unsigned q = 0; q < 2; q++) {
		assert_int_equal(driver_queue_max(vm, q), QSIZE);
		driver_setup_queue(vm, q, QSIZE, desc_gpa[q], avail_gpa[q], used_gpa[q]);
	}
	driver_ok(vm);
}

/* Waits until queue q has handed back one more chain and returns its
 * used length. */
static uint32_t wait_used(struct guest *g, unsigned q, uint16_t head)
{
	for (int tries = 0; !driver_used_ready(&g->vm, q); tries++) {
		assert_true(tries < 100);
		assert_int_equal(driver_wait_interrupt(&g->vm) & VIRTIO_MMIO_INT_CONFIG, 0);
	}
	struct vring_used_elem elem = driver_take_used(&g->vm, q);
	assert_int_equal(elem.id, head);
	return elem.len;
}

static unsigned sent_count(struct guest *g)
{
	pthread_mutex_lock(&g->sent.lock);
	unsigned n = g->sent.count;
	pthread_mutex_unlock(&g->sent.lock);
	return n;
}

/* Sends header + frame of len bytes from descriptor head (two
 * descriptors); returns once the chain is back. */
static void guest_send(struct guest *g, uint16_t head, const struct virtio_net_hdr_v1 *hdr, uint32_t hdr_len,
		       uint32_t len, uint8_t seed)
{
	memcpy(gpa(&g->vm, TX_BUF_GPA), hdr, sizeof(*hdr));
	fill_frame(gpa(&g->vm, TX_BUF_GPA + 0x100), len, seed);
	driver_put_desc(&g->vm, TX, head, TX_BUF_GPA, hdr_len, VRING_DESC_F_NEXT, (uint16_t)(head + 1));
	driver_put_desc(&g->vm, TX, (uint16_t)(head + 1), TX_BUF_GPA + 0x100, len, 0, 0);
	driver_publish(&g->vm, TX, head);
	driver_kick(&g->vm, TX);
	assert_int_equal(wait_used(g, TX, head), 0);
}

static void test_device_config(void **state)
{
	struct guest *g = *state;
	uint8_t mac[6];
	for (unsigned i = 0; i < 6; i++)
		assert_true(bus_read(&g->vm.bus, BASE + VIRTIO_MMIO_CONFIG + i, &mac[i], 1));
	assert_memory_equal(mac, test_mac, 6);
	uint64_t features = driver_device_features(&g->vm);
	assert_true(features & (1ULL << VIRTIO_F_VERSION_1));
	assert_true(features & (1ULL << VIRTIO_NET_F_MAC));
	assert_false(features & (1ULL << VIRTIO_NET_F_CSUM));
	assert_false(features & (1ULL << VIRTIO_NET_F_GUEST_CSUM));
	assert_false(features & (1ULL << VIRTIO_NET_F_MRG_RXBUF));
	assert_false(features & (1ULL << VIRTIO_NET_F_HOST_TSO4));
}

static void test_device_tx(void **state)
{
	struct guest *g = *state;
	driver_init(&g->vm);
	struct virtio_net_hdr_v1 hdr = { 0 };

	guest_send(g, 0, &hdr, VIRTIO_NET_HDR_LEN, 60, 1);
	uint64_t count;
	assert_int_equal(read(g->sent.fd, &count, sizeof(count)), sizeof(count));
	pthread_mutex_lock(&g->sent.lock);
	assert_int_equal(g->sent.last_len, 60);
	assert_memory_equal(g->sent.last, gpa(&g->vm, TX_BUF_GPA + 0x100), 60);
	pthread_mutex_unlock(&g->sent.lock);

	/* Malformed chains come back and reach nobody. */
	guest_send(g, 2, &hdr, 6, 4, 2);              /* shorter than a header */
	guest_send(g, 4, &hdr, VIRTIO_NET_HDR_LEN, 10, 3); /* runt */
	hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	guest_send(g, 6, &hdr, VIRTIO_NET_HDR_LEN, 60, 4);
	hdr.gso_type = 0;
	/* Too big: one descriptor of 64 KiB + 1 after the header. */
	driver_put_desc(&g->vm, TX, 8, TX_BUF_GPA, VIRTIO_NET_HDR_LEN, VRING_DESC_F_NEXT, 9);
	driver_put_desc(&g->vm, TX, 9, TX_BUF_GPA + 0x100, VIRTIO_NET_MAX_FRAME + 1, 0, 0);
	driver_publish(&g->vm, TX, 8);
	driver_kick(&g->vm, TX);
	assert_int_equal(wait_used(g, TX, 8), 0);
	/* A device-writable buffer. */
	driver_put_desc(&g->vm, TX, 10, TX_BUF_GPA, VIRTIO_NET_HDR_LEN + 60, VRING_DESC_F_WRITE, 0);
	driver_publish(&g->vm, TX, 10);
	driver_kick(&g->vm, TX);
	assert_int_equal(wait_used(g, TX, 10), 0);
	assert_int_equal(sent_count(g), 1);

	/* And a good frame still goes through. */
	guest_send(g, 12, &hdr, VIRTIO_NET_HDR_LEN, 1514, 5);
	assert_int_equal(read(g->sent.fd, &count, sizeof(count)), sizeof(count));
	assert_int_equal(sent_count(g), 2);
	pthread_mutex_lock(&g->sent.lock);
	assert_int_equal(g->sent.last_len, 1514);
	assert_memory_equal(g->sent.last, gpa(&g->vm, TX_BUF_GPA + 0x100), 1514);
	pthread_mutex_unlock(&g->sent.lock);
}

static void post_rx(struct guest *g, uint16_t i, uint32_t size)
{
	memset(gpa(&g->vm, RX_BUF_GPA + i * RX_BUF_SIZE), 0xee, RX_BUF_SIZE);
	driver_put_desc(&g->vm, RX, i, RX_BUF_GPA + i * RX_BUF_SIZE, size, VRING_DESC_F_WRITE, 0);
	driver_publish(&g->vm, RX, i);
}

static void test_device_rx(void **state)
{
	struct guest *g = *state;
	uint8_t frame[1514];
	fill_frame(frame, sizeof(frame), 7);

	/* Before the driver is up the frame waits. */
	assert_int_equal(virtio_net_receive(g->net, frame, 60), 0);
	driver_init(&g->vm);
	post_rx(g, 0, RX_BUF_SIZE);
	driver_kick(&g->vm, RX);
	assert_int_equal(wait_used(g, RX, 0), VIRTIO_NET_HDR_LEN + 60);
	uint8_t *buf = gpa(&g->vm, RX_BUF_GPA);
	struct virtio_net_hdr_v1 hdr;
	memcpy(&hdr, buf, sizeof(hdr));
	assert_int_equal(hdr.num_buffers, 1);
	assert_int_equal(hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	assert_memory_equal(buf + VIRTIO_NET_HDR_LEN, frame, 60);

	/* Buffers posted first, frames afterwards. */
	post_rx(g, 1, RX_BUF_SIZE);
	driver_kick(&g->vm, RX);
	assert_int_equal(virtio_net_receive(g->net, frame, sizeof(frame)), 0);
	assert_int_equal(wait_used(g, RX, 1), VIRTIO_NET_HDR_LEN + sizeof(frame));
	assert_memory_equal((uint8_t *)gpa(&g->vm, RX_BUF_GPA + RX_BUF_SIZE) + VIRTIO_NET_HDR_LEN, frame,
			    sizeof(frame));

	/* A frame that does not fit the next buffer is dropped; the buffer
	 * takes the frame after it. */
	static uint8_t jumbo[9000];
	assert_int_equal(virtio_net_receive(g->net, jumbo, sizeof(jumbo)), 0);
	assert_int_equal(virtio_net_receive(g->net, frame + 1, 100), 0);
	post_rx(g, 2, RX_BUF_SIZE);
	driver_kick(&g->vm, RX);
	assert_int_equal(wait_used(g, RX, 2), VIRTIO_NET_HDR_LEN + 100);
	assert_memory_equal((uint8_t *)gpa(&g->vm, RX_BUF_GPA + 2 * RX_BUF_SIZE) + VIRTIO_NET_HDR_LEN, frame + 1,
			    100);

	/* Lengths the backend may not hand over. */
	assert_int_equal(virtio_net_receive(g->net, frame, 0), -1);
	static uint8_t huge[VIRTIO_NET_MAX_FRAME + 1];
	assert_int_equal(virtio_net_receive(g->net, huge, sizeof(huge)), -1);
}

static void test_device_rx_backlog(void **state)
{
	struct guest *g = *state;
	driver_init(&g->vm);
	uint8_t frame[64];

	/* With no rx buffers the backlog fills up, then frames are dropped. */
	for (unsigned i = 0; i < VIRTIO_NET_RX_BACKLOG; i++) {
		fill_frame(frame, sizeof(frame), (uint8_t)i);
		assert_int_equal(virtio_net_receive(g->net, frame, sizeof(frame)), 0);
	}
	assert_int_equal(virtio_net_receive(g->net, frame, sizeof(frame)), -1);

	/* Buffers arrive: the queued frames come out in order. */
	for (uint16_t i = 0; i < 16; i++)
		post_rx(g, i, RX_BUF_SIZE);
	driver_kick(&g->vm, RX);
	for (uint16_t i = 0; i < 16; i++) {
		assert_int_equal(wait_used(g, RX, i), VIRTIO_NET_HDR_LEN + sizeof(frame));
		fill_frame(frame, sizeof(frame), (uint8_t)i);
		assert_memory_equal((uint8_t *)gpa(&g->vm, RX_BUF_GPA + i * RX_BUF_SIZE) + VIRTIO_NET_HDR_LEN, frame,
				    sizeof(frame));
	}
	/* Room again. */
	assert_int_equal(virtio_net_receive(g->net, frame, sizeof(frame)), 0);
	/* Destroy with frames still queued: LSan checks they are freed. */
}

static void test_device_hostile_ring(void **state)
{
	struct guest *g = *state;
	driver_init(&g->vm);
	/* A tx chain looping on itself breaks the queue; the device asks for
	 * a reset and works again after it. */
	driver_put_desc(&g->vm, TX, 7, TX_BUF_GPA, 16, VRING_DESC_F_NEXT, 7);
	driver_publish(&g->vm, TX, 7);
	driver_kick(&g->vm, TX);
	assert_int_equal(driver_wait_interrupt(&g->vm), VIRTIO_MMIO_INT_CONFIG);
	assert_true(mmio_rd(&g->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);

	driver_init(&g->vm);
	struct virtio_net_hdr_v1 hdr = { 0 };
	guest_send(g, 0, &hdr, VIRTIO_NET_HDR_LEN, 60, 1);
	uint64_t count;
	assert_int_equal(read(g->sent.fd, &count, sizeof(count)), sizeof(count));
	assert_int_equal(sent_count(g), 1);
}

static void test_create_errors(void **state)
{
	struct guest *g = *state;
	capsa_error err = { 0 };
	/* The window is taken by the device the setup created. */
	assert_null(virtio_net_create(&g->vm.env, BASE + 0x100, 6, test_mac, backend_send, &g->sent, &err));
	assert_int_equal(err.code, EBUSY);
	virtio_net_destroy(NULL);
}

#define G(name) cmocka_unit_test_setup_teardown(name, guest_setup, guest_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tx_frame),
		cmocka_unit_test(test_tx_malformed),
		cmocka_unit_test(test_rx_fill),
		G(test_device_config),
		G(test_device_tx),
		G(test_device_rx),
		G(test_device_rx_backlog),
		G(test_device_hostile_ring),
		G(test_create_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
