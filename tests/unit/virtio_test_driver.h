/* A fake guest for the virtio unit tests: heap RAM standing in for guest
 * memory, an MMIO bus, and a minimal driver that brings a device up through
 * its registers as Linux's virtio_mmio does, kicks it through QueueNotify
 * (no KVM) and waits for its interrupt eventfd. Also chains built by hand
 * for the devices' request handlers. Failures are cmocka assertions, so
 * include <cmocka.h> before this header's users call anything. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_ring.h>

#include "devices/virtio/mmio.h"
#include "devices/virtio/virtq.h"
#include "vm/bus.h"

/* ---- chains by hand, for the request handlers ---- */

void chain_clear(struct virtq_chain *c);
/* Readable buffers must all come before the writable ones. */
void chain_add(struct virtq_chain *c, void *buf, size_t len, bool writable);

/* ---- guest RAM and rings ---- */

/* Zeroed, page-aligned RAM of size bytes at guest address 0. */
void test_ram_init(struct guest_mem *mem, size_t size);
void test_ram_free(struct guest_mem *mem);
void *test_ram_at(const struct guest_mem *mem, uint64_t addr);
/* Writes descriptor i of the table at guest address table; bytewise, as
 * tests place tables at odd addresses too. */
void test_ring_put_desc(struct guest_mem *mem, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next);
/* Makes head available in the ring at avail (size entries), *avail_idx
 * being the driver's next index. */
void test_ring_publish(struct guest_mem *mem, uint64_t avail, uint16_t size, uint16_t *avail_idx,
		       uint16_t head);

/* ---- the guest and its driver ---- */

#define TEST_GUEST_MAX_QUEUES 4

struct test_queue {
	uint16_t size;
	uint64_t desc, avail, used; /* guest addresses of the rings */
	uint16_t avail_idx;         /* the next avail index to publish */
	uint16_t used_seen;         /* used entries taken so far */
};

struct test_guest {
	struct guest_mem mem;
	struct bus bus;
	struct vm_device_env env; /* what devices are created with */
	uint64_t base;            /* the device's MMIO window */
	int irq_fd;               /* the device's interrupt eventfd, set once it exists */
	struct test_queue q[TEST_GUEST_MAX_QUEUES];
};

void test_guest_init(struct test_guest *g, size_t ram_size, uint64_t base);
void test_guest_cleanup(struct test_guest *g);

/* 32-bit accesses to the device's registers, as a vCPU would make them. */
uint32_t mmio_rd(struct test_guest *g, uint64_t offset);
void mmio_wr(struct test_guest *g, uint64_t offset, uint32_t v);
void *gpa(struct test_guest *g, uint64_t addr);

uint64_t driver_device_features(struct test_guest *g);
/* ACKNOWLEDGE, DRIVER, the driver's features, then FEATURES_OK; whether
 * the device kept FEATURES_OK is the caller's to check. */
void driver_negotiate(struct test_guest *g, uint64_t features);
/* Resets the device, checks it is a version 2 device_id and negotiates
 * features, which it must accept. */
void driver_start(struct test_guest *g, uint32_t device_id, uint64_t features);
/* Selects queue q and returns its QueueNumMax. */
uint32_t driver_queue_max(struct test_guest *g, unsigned q);
/* Selects queue q, gives it its size and rings and sets it ready. The size
 * is the register's 32 bits, so tests can offer sizes no ring may have. */
void driver_setup_queue(struct test_guest *g, unsigned q, uint32_t size, uint64_t desc, uint64_t avail,
			uint64_t used);
void driver_ok(struct test_guest *g);

void driver_put_desc(struct test_guest *g, unsigned q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next);
void driver_publish(struct test_guest *g, unsigned q, uint16_t head);
void driver_kick(struct test_guest *g, unsigned q);
/* Waits up to 10 s for the interrupt; returns InterruptStatus, acknowledged. */
uint32_t driver_wait_interrupt(struct test_guest *g);
bool driver_used_ready(struct test_guest *g, unsigned q);
/* Takes the next used entry of queue q, which must be there. */
struct vring_used_elem driver_take_used(struct test_guest *g, unsigned q);
/* Publishes head on queue q, kicks, expects one interrupt that hands back
 * exactly that chain and returns its used length. */
uint32_t driver_submit(struct test_guest *g, unsigned q, uint16_t head);
