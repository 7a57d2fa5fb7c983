#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/virtio_config.h>

#include "virtio_test_driver.h"

void chain_clear(struct virtq_chain *c)
{
	memset(c, 0, offsetof(struct virtq_chain, iov));
}

void chain_add(struct virtq_chain *c, void *buf, size_t len, bool writable)
{
	unsigned n = c->num_readable + c->num_writable;
	c->iov[n].iov_base = buf;
	c->iov[n].iov_len = len;
	if (writable) {
		c->num_writable++;
		c->writable_len += len;
	} else {
		assert_int_equal(c->num_writable, 0);
		c->num_readable++;
		c->readable_len += len;
	}
}

void test_ram_init(struct guest_mem *mem, size_t size)
{
	mem->host = aligned_alloc(4096, size);
	assert_non_null(mem->host);
	memset(mem->host, 0, size);
	mem->size = size;
}

void test_ram_free(struct guest_mem *mem)
{
	free(mem->host);
	mem->host = NULL;
}

void *test_ram_at(const struct guest_mem *mem, uint64_t addr)
{
	return mem->host + addr;
}

void test_ring_put_desc(struct guest_mem *mem, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next)
{
	struct vring_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };
	memcpy((uint8_t *)test_ram_at(mem, table) + i * sizeof(d), &d, sizeof(d));
}

void test_ring_publish(struct guest_mem *mem, uint64_t avail, uint16_t size, uint16_t *avail_idx, uint16_t head)
{
	struct vring_avail *ring = test_ram_at(mem, avail);
	ring->ring[*avail_idx % size] = head;
	(*avail_idx)++;
	__atomic_store_n(&ring->idx, *avail_idx, __ATOMIC_RELEASE);
}

void test_guest_init(struct test_guest *g, size_t ram_size, uint64_t base)
{
	memset(g, 0, sizeof(*g));
	test_ram_init(&g->mem, ram_size);
	g->env.mem = &g->mem;
	g->env.mmio_bus = &g->bus;
	g->env.vm_fd = -1;
	g->base = base;
	g->irq_fd = -1;
}

void test_guest_cleanup(struct test_guest *g)
{
	test_ram_free(&g->mem);
}

uint32_t mmio_rd(struct test_guest *g, uint64_t offset)
{
	uint32_t v;
	assert_true(bus_read(&g->bus, g->base + offset, (uint8_t *)&v, 4));
	return v;
}

void mmio_wr(struct test_guest *g, uint64_t offset, uint32_t v)
{
	assert_true(bus_write(&g->bus, g->base + offset, (const uint8_t *)&v, 4));
}

void *gpa(struct test_guest *g, uint64_t addr)
{
	return test_ram_at(&g->mem, addr);
}

uint64_t driver_device_features(struct test_guest *g)
{
	mmio_wr(g, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint64_t low = mmio_rd(g, VIRTIO_MMIO_DEVICE_FEATURES);
	mmio_wr(g, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	return low | (uint64_t)mmio_rd(g, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

void driver_negotiate(struct test_guest *g, uint64_t features)
{
	mmio_wr(g, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	mmio_wr(g, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	mmio_wr(g, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	mmio_wr(g, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	mmio_wr(g, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mmio_wr(g, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	mmio_wr(g, VIRTIO_MMIO_STATUS, mmio_rd(g, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_FEATURES_OK);
}

/* The Linux virtio_mmio probe sequence (3.1.1). */
void driver_start(struct test_guest *g, uint32_t device_id, uint64_t features)
{
	assert_int_equal(mmio_rd(g, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(mmio_rd(g, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(mmio_rd(g, VIRTIO_MMIO_DEVICE_ID), device_id);
	mmio_wr(g, VIRTIO_MMIO_STATUS, 0);
	driver_negotiate(g, features);
	assert_true(mmio_rd(g, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
}

uint32_t driver_queue_max(struct test_guest *g, unsigned q)
{
	mmio_wr(g, VIRTIO_MMIO_QUEUE_SEL, q);
	return mmio_rd(g, VIRTIO_MMIO_QUEUE_NUM_MAX);
}

void driver_setup_queue(struct test_guest *g, unsigned q, uint32_t size, uint64_t desc, uint64_t avail,
			uint64_t used)
{
	assert_true(q < TEST_GUEST_MAX_QUEUES);
	g->q[q] = (struct test_queue){ .size = (uint16_t)size, .desc = desc, .avail = avail, .used = used };
	mmio_wr(g, VIRTIO_MMIO_QUEUE_SEL, q);
	mmio_wr(g, VIRTIO_MMIO_QUEUE_NUM, size);
	mmio_wr(g, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	mmio_wr(g, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	mmio_wr(g, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
	mmio_wr(g, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
	mmio_wr(g, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)used);
	mmio_wr(g, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
	mmio_wr(g, VIRTIO_MMIO_QUEUE_READY, 1);
}

void driver_ok(struct test_guest *g)
{
	mmio_wr(g, VIRTIO_MMIO_STATUS, mmio_rd(g, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_DRIVER_OK);
}

void driver_put_desc(struct test_guest *g, unsigned q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	test_ring_put_desc(&g->mem, g->q[q].desc, i, addr, len, flags, next);
}

void driver_publish(struct test_guest *g, unsigned q, uint16_t head)
{
	test_ring_publish(&g->mem, g->q[q].avail, g->q[q].size, &g->q[q].avail_idx, head);
}

void driver_kick(struct test_guest *g, unsigned q)
{
	mmio_wr(g, VIRTIO_MMIO_QUEUE_NOTIFY, q);
}

uint32_t driver_wait_interrupt(struct test_guest *g)
{
	struct pollfd pfd = { .fd = g->irq_fd, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	uint64_t count;
	assert_int_equal(read(pfd.fd, &count, sizeof(count)), sizeof(count));
	uint32_t isr = mmio_rd(g, VIRTIO_MMIO_INTERRUPT_STATUS);
	mmio_wr(g, VIRTIO_MMIO_INTERRUPT_ACK, isr);
	return isr;
}

static struct vring_used *used_ring(struct test_guest *g, unsigned q)
{
	return gpa(g, g->q[q].used);
}

bool driver_used_ready(struct test_guest *g, unsigned q)
{
	return __atomic_load_n(&used_ring(g, q)->idx, __ATOMIC_ACQUIRE) != g->q[q].used_seen;
}

struct vring_used_elem driver_take_used(struct test_guest *g, unsigned q)
{
	assert_true(driver_used_ready(g, q));
	struct test_queue *tq = &g->q[q];
	struct vring_used_elem e = used_ring(g, q)->ring[tq->used_seen % tq->size];
	tq->used_seen++;
	return e;
}

uint32_t driver_submit(struct test_guest *g, unsigned q, uint16_t head)
{
	driver_publish(g, q, head);
	driver_kick(g, q);
	assert_int_equal(driver_wait_interrupt(g), VIRTIO_MMIO_INT_VRING);
	assert_int_equal(__atomic_load_n(&used_ring(g, q)->idx, __ATOMIC_ACQUIRE),
			 (uint16_t)(g->q[q].used_seen + 1));
	struct vring_used_elem e = driver_take_used(g, q);
	assert_int_equal(e.id, head);
	return e.len;
}
