/* virtio-mmio register behaviour, driven through the MMIO bus as a vCPU
 * would, with a fake device and a heap buffer as guest RAM (no KVM: the
 * notification and interrupt eventfds are signalled directly). */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/virtio_config.h>

#include "virtio_test_driver.h"

#define RAM_SIZE (1024 * 1024)
#define BASE 0xd0000000ULL
#define DEVICE_ID 42
#define DEVICE_FEATURE_BITS ((1ULL << 3) | (1ULL << 33))
#define NUM_QUEUES 2
#define QMAX 16

struct fixture {
	struct test_guest vm;
	struct virtio_mmio m;
	uint8_t config[12];
	uint8_t config_written[12];
	unsigned resets;
};

static void fake_config_read(void *opaque, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct fixture *f = opaque;
	memcpy(data, f->config + offset, len);
}

static void fake_config_write(void *opaque, uint32_t offset, const uint8_t *data, uint32_t len)
{
	struct fixture *f = opaque;
	memcpy(f->config_written + offset, data, len);
}

static void fake_reset(void *opaque)
{
	struct fixture *f = opaque;
	f->resets++;
}

static struct virtio_mmio_device fake_device(struct fixture *f)
{
	struct virtio_mmio_device dev = {
		.device_id = DEVICE_ID,
		.features = DEVICE_FEATURE_BITS,
		.num_queues = NUM_QUEUES,
		.queue_max_size = QMAX,
		.config_size = sizeof(f->config),
		.opaque = f,
		.config_read = fake_config_read,
		.config_write = fake_config_write,
		.reset = fake_reset,
	};
	return dev;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	test_guest_init(&f->vm, RAM_SIZE, BASE);
	for (unsigned i = 0; i < sizeof(f->config); i++)
		f->config[i] = 0x10 + i;
	struct virtio_mmio_device dev = fake_device(f);
	capsa_error err = { 0 };
	assert_int_equal(virtio_mmio_init(&f->m, &f->vm.env, BASE, 5, &dev, &err), 0);
	assert_int_equal(virtio_mmio_register(&f->m, &f->vm.bus, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	virtio_mmio_cleanup(&f->m);
	test_guest_cleanup(&f->vm);
	free(f);
	return 0;
}

/* True if fd was signalled; consumes the signal. */
static bool fd_signalled(int fd)
{
	uint64_t count;
	return read(fd, &count, sizeof(count)) == sizeof(count);
}

static const uint64_t all_features =
	DEVICE_FEATURE_BITS | (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC);

/* Negotiated and running, queue 0 at 0x1000/0x2000/0x3000 of size 8. */
static void bring_up(struct fixture *f)
{
	driver_negotiate(&f->vm, all_features);
	driver_setup_queue(&f->vm, 0, 8, 0x1000, 0x2000, 0x3000);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_QUEUE_READY), 1);
	mmio_wr(&f->vm, VIRTIO_MMIO_STATUS, mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_DRIVER_OK);
}

static void test_identity(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_DEVICE_ID), DEVICE_ID);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(mmio_rd(&f->vm, 0x0f0), 0);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff);
	/* Registers take 32-bit accesses only. */
	uint16_t half = 0x1234;
	assert_true(bus_read(&f->vm.bus, BASE + VIRTIO_MMIO_MAGIC_VALUE, (uint8_t *)&half, 2));
	assert_int_equal(half, 0);
	assert_true(bus_read(&f->vm.bus, BASE + VIRTIO_MMIO_VERSION + 1, (uint8_t *)&half, 2));
	assert_int_equal(half, 0);
	/* The window is VIRTIO_MMIO_WINDOW_SIZE bytes. */
	uint32_t v;
	assert_false(bus_read(&f->vm.bus, BASE + VIRTIO_MMIO_WINDOW_SIZE, (uint8_t *)&v, 4));
}

static void test_device_features(void **state)
{
	struct fixture *f = *state;
	mmio_wr(&f->vm, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint32_t low = mmio_rd(&f->vm, VIRTIO_MMIO_DEVICE_FEATURES);
	mmio_wr(&f->vm, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	uint32_t high = mmio_rd(&f->vm, VIRTIO_MMIO_DEVICE_FEATURES);
	mmio_wr(&f->vm, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	uint64_t features = low | (uint64_t)high << 32;
	assert_true(features & (1ULL << VIRTIO_F_VERSION_1));
	assert_true(features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC));
	assert_int_equal(features & DEVICE_FEATURE_BITS, DEVICE_FEATURE_BITS);
	assert_false(features & (1ULL << VIRTIO_RING_F_EVENT_IDX));
}

static void test_negotiation_requires_version_1(void **state)
{
	struct fixture *f = *state;
	driver_negotiate(&f->vm, DEVICE_FEATURE_BITS);
	assert_false(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* The driver may try again with other features. */
	mmio_wr(&f->vm, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mmio_wr(&f->vm, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(all_features >> 32));
	mmio_wr(&f->vm, VIRTIO_MMIO_STATUS, mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_true(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
}

static void test_negotiation_refuses_unoffered(void **state)
{
	struct fixture *f = *state;
	driver_negotiate(&f->vm, all_features | (1ULL << 7));
	assert_false(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
}

static void test_negotiation_ok(void **state)
{
	struct fixture *f = *state;
	driver_negotiate(&f->vm, all_features);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
							    VIRTIO_CONFIG_S_FEATURES_OK);
	assert_int_equal(f->m.driver_features, all_features);
	/* Features are fixed once accepted. */
	mmio_wr(&f->vm, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	mmio_wr(&f->vm, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	assert_int_equal(f->m.driver_features, all_features);
	/* Status bits stay set until a reset. */
	mmio_wr(&f->vm, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	assert_true(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
}

static void test_queue_setup(void **state)
{
	struct fixture *f = *state;
	driver_negotiate(&f->vm, all_features);
	mmio_wr(&f->vm, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
	mmio_wr(&f->vm, VIRTIO_MMIO_QUEUE_SEL, NUM_QUEUES);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	mmio_wr(&f->vm, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_QUEUE_READY), 0);

	driver_setup_queue(&f->vm, 1, 16, 0x101000, 0x2000, 0x3000);
	/* 0x101000 is past the 1 MiB of RAM. */
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_true(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* No DRIVER_OK yet: no interrupt for it. */
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_INTERRUPT_STATUS), 0);

	mmio_wr(&f->vm, VIRTIO_MMIO_STATUS, 0);
	driver_negotiate(&f->vm, all_features);
	driver_setup_queue(&f->vm, 1, 16, 0x1000, 0x2000, 0x3000);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_QUEUE_READY), 1);
	assert_int_equal(f->m.queues[1].num, 16);
	assert_int_equal(f->m.queues[1].desc_addr, 0x1000);
	assert_true(f->m.queues[1].indirect);
	/* Layout registers are ignored while the queue is ready. */
	mmio_wr(&f->vm, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x5000);
	mmio_wr(&f->vm, VIRTIO_MMIO_QUEUE_NUM, 4);
	assert_int_equal(f->m.queues[1].desc_addr, 0x1000);
	assert_int_equal(f->m.queues[1].num, 16);
	mmio_wr(&f->vm, VIRTIO_MMIO_QUEUE_READY, 0);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_false(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_queue_without_indirect(void **state)
{
	struct fixture *f = *state;
	driver_negotiate(&f->vm, all_features & ~(1ULL << VIRTIO_RING_F_INDIRECT_DESC));
	assert_true(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	driver_setup_queue(&f->vm, 0, 8, 0x1000, 0x2000, 0x3000);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_QUEUE_READY), 1);
	assert_false(f->m.queues[0].indirect);
}

static void test_queue_bad_sizes(void **state)
{
	struct fixture *f = *state;
	const uint32_t bad[] = { 0, 3, 12, QMAX * 2, 0x10008 };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mmio_wr(&f->vm, VIRTIO_MMIO_STATUS, 0);
		driver_negotiate(&f->vm, all_features);
		driver_setup_queue(&f->vm, 0, bad[i], 0x1000, 0x2000, 0x3000);
		assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_QUEUE_READY), 0);
		assert_true(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	}
}

static void test_bad_queue_after_driver_ok_interrupts(void **state)
{
	struct fixture *f = *state;
	int irq_fd = virtio_mmio_irq_fd(&f->m);
	bring_up(f);
	assert_false(fd_signalled(irq_fd));
	driver_setup_queue(&f->vm, 1, 16, 0x1000, 0x2001, 0x3000);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_true(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	assert_true(fd_signalled(irq_fd));
}

static void test_reset(void **state)
{
	struct fixture *f = *state;
	bring_up(f);
	virtio_mmio_interrupt(&f->m, VIRTIO_MMIO_INT_VRING);
	mmio_wr(&f->vm, VIRTIO_MMIO_QUEUE_SEL, 1);
	mmio_wr(&f->vm, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(f->resets, 1);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(f->m.driver_features, 0);
	assert_int_equal(f->m.queue_sel, 0);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_int_equal(f->m.queues[0].num, 0);
	assert_int_equal(f->m.queues[0].max_size, QMAX);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
}

static void test_notify_fallback(void **state)
{
	struct fixture *f = *state;
	int fd0 = virtio_mmio_notify_fd(&f->m, 0), fd1 = virtio_mmio_notify_fd(&f->m, 1);
	assert_true(fd0 >= 0 && fd1 >= 0 && fd0 != fd1);
	assert_int_equal(virtio_mmio_notify_fd(&f->m, NUM_QUEUES), -1);
	mmio_wr(&f->vm, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_false(fd_signalled(fd0));
	assert_true(fd_signalled(fd1));
	mmio_wr(&f->vm, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(fd_signalled(fd0));
	mmio_wr(&f->vm, VIRTIO_MMIO_QUEUE_NOTIFY, NUM_QUEUES);
	mmio_wr(&f->vm, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);
	assert_false(fd_signalled(fd0));
	assert_false(fd_signalled(fd1));
}

static void test_driver_ok_kicks_ready_queues(void **state)
{
	struct fixture *f = *state;
	bring_up(f);
	assert_true(fd_signalled(virtio_mmio_notify_fd(&f->m, 0)));
	assert_false(fd_signalled(virtio_mmio_notify_fd(&f->m, 1)));
}

static void test_interrupt_ack(void **state)
{
	struct fixture *f = *state;
	int irq_fd = virtio_mmio_irq_fd(&f->m);
	virtio_mmio_interrupt(&f->m, VIRTIO_MMIO_INT_VRING);
	assert_true(fd_signalled(irq_fd));
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	bring_up(f);
	virtio_mmio_config_changed(&f->m);
	assert_true(fd_signalled(irq_fd));
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_CONFIG_GENERATION), 1);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	mmio_wr(&f->vm, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	mmio_wr(&f->vm, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
}

static void test_config_space(void **state)
{
	struct fixture *f = *state;
	uint8_t b;
	uint16_t w;
	uint32_t l;
	uint64_t q;
	assert_true(bus_read(&f->vm.bus, BASE + VIRTIO_MMIO_CONFIG + 3, &b, 1));
	assert_int_equal(b, 0x13);
	assert_true(bus_read(&f->vm.bus, BASE + VIRTIO_MMIO_CONFIG + 1, (uint8_t *)&w, 2));
	assert_int_equal(w, 0x1211);
	assert_true(bus_read(&f->vm.bus, BASE + VIRTIO_MMIO_CONFIG + 8, (uint8_t *)&l, 4));
	assert_int_equal(l, 0x1b1a1918);
	assert_true(bus_read(&f->vm.bus, BASE + VIRTIO_MMIO_CONFIG, (uint8_t *)&q, 8));
	assert_int_equal(q, 0x1716151413121110ULL);
	/* Past the config space (12 bytes), partly or wholly: zeros. */
	assert_true(bus_read(&f->vm.bus, BASE + VIRTIO_MMIO_CONFIG + 10, (uint8_t *)&l, 4));
	assert_int_equal(l, 0);
	assert_true(bus_read(&f->vm.bus, BASE + VIRTIO_MMIO_CONFIG + 0x80, (uint8_t *)&l, 4));
	assert_int_equal(l, 0);

	w = 0xbeef;
	assert_true(bus_write(&f->vm.bus, BASE + VIRTIO_MMIO_CONFIG + 4, (uint8_t *)&w, 2));
	assert_int_equal(f->config_written[4], 0xef);
	assert_int_equal(f->config_written[5], 0xbe);
	l = 0xffffffff;
	assert_true(bus_write(&f->vm.bus, BASE + VIRTIO_MMIO_CONFIG + 10, (uint8_t *)&l, 4));
	assert_int_equal(f->config_written[10], 0);
	assert_int_equal(f->config_written[11], 0);
}

static void put_desc(struct fixture *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	test_ring_put_desc(&f->vm.mem, 0x1000, i, addr, len, flags, next);
}

static void make_available(struct fixture *f, uint16_t head)
{
	struct vring_avail *avail = (struct vring_avail *)(f->vm.mem.host + 0x2000);
	uint16_t idx = avail->idx;
	avail->ring[idx % 8] = head;
	__atomic_store_n(&avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
}

static void test_pop_push(void **state)
{
	struct fixture *f = *state;
	static struct virtq_chain chain;
	driver_negotiate(&f->vm, all_features);
	driver_setup_queue(&f->vm, 0, 8, 0x1000, 0x2000, 0x3000);
	put_desc(f, 0, 0x10000, 64, VRING_DESC_F_WRITE, 0);
	make_available(f, 0);
	/* Not before DRIVER_OK. */
	assert_int_equal(virtio_mmio_pop(&f->m, 0, &chain), 0);
	mmio_wr(&f->vm, VIRTIO_MMIO_STATUS, mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(virtio_mmio_pop(&f->m, 1, &chain), 0);
	assert_int_equal(virtio_mmio_pop(&f->m, NUM_QUEUES, &chain), 0);
	assert_int_equal(virtio_mmio_pop(&f->m, 0, &chain), 1);
	assert_int_equal(f->m.in_flight, 1);
	assert_true(virtio_mmio_push(&f->m, 0, &chain, 64));
	assert_int_equal(f->m.in_flight, 0);
	struct vring_used *used = (struct vring_used *)(f->vm.mem.host + 0x3000);
	assert_int_equal(used->idx, 1);
	assert_int_equal(used->ring[0].len, 64);
}

static void test_broken_ring_needs_reset(void **state)
{
	struct fixture *f = *state;
	static struct virtq_chain chain;
	int irq_fd = virtio_mmio_irq_fd(&f->m);
	bring_up(f);
	put_desc(f, 0, 0x10000, 64, VRING_DESC_F_NEXT, 0);
	make_available(f, 0);
	assert_int_equal(virtio_mmio_pop(&f->m, 0, &chain), -1);
	assert_true(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	assert_true(fd_signalled(irq_fd));
	/* The whole device stops until the driver resets it. */
	assert_int_equal(virtio_mmio_pop(&f->m, 0, &chain), 0);
	/* Writing status cannot clear NEEDS_RESET; only a reset does. */
	mmio_wr(&f->vm, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	assert_true(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	mmio_wr(&f->vm, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS), 0);
}

struct reset_thread {
	struct fixture *f;
	bool done;
};

static void *do_reset(void *opaque)
{
	struct reset_thread *t = opaque;
	mmio_wr(&t->f->vm, VIRTIO_MMIO_STATUS, 0);
	__atomic_store_n(&t->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static void test_reset_waits_for_in_flight(void **state)
{
	struct fixture *f = *state;
	static struct virtq_chain chain;
	bring_up(f);
	put_desc(f, 0, 0x10000, 64, VRING_DESC_F_WRITE, 0);
	make_available(f, 0);
	assert_int_equal(virtio_mmio_pop(&f->m, 0, &chain), 1);

	struct reset_thread t = { .f = f };
	pthread_t thread;
	assert_int_equal(pthread_create(&thread, NULL, do_reset, &t), 0);
	usleep(50 * 1000);
	assert_false(__atomic_load_n(&t.done, __ATOMIC_ACQUIRE));
	virtio_mmio_push(&f->m, 0, &chain, 64);
	pthread_join(thread, NULL);
	assert_true(t.done);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_STATUS), 0);
	struct vring_used *used = (struct vring_used *)(f->vm.mem.host + 0x3000);
	assert_int_equal(used->idx, 1);
}

static void test_init_checks(void **state)
{
	struct fixture *f = *state;
	static struct virtio_mmio m;
	struct vm_device_env env = { .mem = &f->vm.mem, .mmio_bus = &f->vm.bus, .vm_fd = -1 };
	capsa_error err = { 0 };
	struct virtio_mmio_device dev = fake_device(f);

	dev.num_queues = 0;
	assert_int_equal(virtio_mmio_init(&m, &env, BASE + 0x1000, 6, &dev, &err), -1);
	assert_int_equal(err.code, EINVAL);
	dev = fake_device(f);
	dev.queue_max_size = 24;
	assert_int_equal(virtio_mmio_init(&m, &env, BASE + 0x1000, 6, &dev, &err), -1);
	dev = fake_device(f);
	dev.config_size = VIRTIO_MMIO_CONFIG_MAX + 1;
	assert_int_equal(virtio_mmio_init(&m, &env, BASE + 0x1000, 6, &dev, &err), -1);
	virtio_mmio_cleanup(&m);

	/* Overlapping the fixture's window. */
	dev = fake_device(f);
	assert_int_equal(virtio_mmio_init(&m, &env, BASE + 0x100, 6, &dev, &err), 0);
	assert_int_equal(virtio_mmio_register(&m, &f->vm.bus, &err), -1);
	assert_int_equal(err.code, EBUSY);
	assert_non_null(strstr(err.message, "overlaps"));
	virtio_mmio_cleanup(&m);
	virtio_mmio_cleanup(&m);
}

static uint64_t shm_reg64(struct test_guest *g, uint64_t low, uint64_t high)
{
	return mmio_rd(g, low) | (uint64_t)mmio_rd(g, high) << 32;
}

/* SHMSel picks a region by id; its length and base read back in halves,
 * an id the device lacks reads length (and base) -1 (virtio 1.2, 4.2.2). */
static void test_shared_memory_regions(void **state)
{
	struct fixture *f = *state;
	static struct virtio_mmio m;
	capsa_error err = { 0 };
	struct virtio_mmio_device dev = fake_device(f);
	const uint64_t base = 0x140000000ULL, len = 0x40000000ULL;

	dev.shm[0] = (struct virtio_mmio_shm_region){ .id = 0, .base = base, .len = len };
	dev.shm[1] = (struct virtio_mmio_shm_region){ .id = 7, .base = 0x1234567000ULL, .len = 0x200000 };
	dev.shm_count = 2;
	assert_int_equal(virtio_mmio_init(&m, &f->vm.env, BASE + 0x1000, 6, &dev, &err), 0);
	assert_int_equal(virtio_mmio_register(&m, &f->vm.bus, &err), 0);
	struct test_guest g = f->vm;
	g.base = BASE + 0x1000;

	/* SHMSel starts at 0. */
	assert_int_equal(shm_reg64(&g, VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_SHM_LEN_HIGH), len);
	assert_int_equal(shm_reg64(&g, VIRTIO_MMIO_SHM_BASE_LOW, VIRTIO_MMIO_SHM_BASE_HIGH), base);
	mmio_wr(&g, VIRTIO_MMIO_SHM_SEL, 7);
	assert_int_equal(shm_reg64(&g, VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_SHM_LEN_HIGH), 0x200000);
	assert_int_equal(shm_reg64(&g, VIRTIO_MMIO_SHM_BASE_LOW, VIRTIO_MMIO_SHM_BASE_HIGH), 0x1234567000ULL);
	/* Unknown ids, including one that only matches in its low byte. */
	const uint32_t unknown[] = { 1, 6, 255, 0x100, 0x107, 0xffffffff };
	for (unsigned i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		mmio_wr(&g, VIRTIO_MMIO_SHM_SEL, unknown[i]);
		assert_int_equal(mmio_rd(&g, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff);
		assert_int_equal(mmio_rd(&g, VIRTIO_MMIO_SHM_LEN_HIGH), 0xffffffff);
		assert_int_equal(shm_reg64(&g, VIRTIO_MMIO_SHM_BASE_LOW, VIRTIO_MMIO_SHM_BASE_HIGH), ~0ULL);
	}
	/* The registers are read-only; a reset selects region 0 again. */
	mmio_wr(&g, VIRTIO_MMIO_SHM_SEL, 7);
	mmio_wr(&g, VIRTIO_MMIO_SHM_LEN_LOW, 0);
	mmio_wr(&g, VIRTIO_MMIO_SHM_BASE_LOW, 0);
	assert_int_equal(shm_reg64(&g, VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_SHM_LEN_HIGH), 0x200000);
	mmio_wr(&g, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(shm_reg64(&g, VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_SHM_LEN_HIGH), len);
	/* The fixture's device has none. */
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff);
	assert_int_equal(mmio_rd(&f->vm, VIRTIO_MMIO_SHM_LEN_HIGH), 0xffffffff);
	virtio_mmio_cleanup(&m);
}

static void test_shared_memory_checks(void **state)
{
	struct fixture *f = *state;
	static struct virtio_mmio m;
	capsa_error err = { 0 };
	struct virtio_mmio_device dev = fake_device(f);

	dev.shm[0] = (struct virtio_mmio_shm_region){ .id = 0, .base = 0x100000000ULL, .len = 0 };
	dev.shm_count = 1;
	assert_int_equal(virtio_mmio_init(&m, &f->vm.env, BASE + 0x1000, 6, &dev, &err), -1);
	assert_int_equal(err.code, EINVAL);
	dev.shm[0].len = ~0ULL;
	assert_int_equal(virtio_mmio_init(&m, &f->vm.env, BASE + 0x1000, 6, &dev, &err), -1);
	dev.shm[0] = (struct virtio_mmio_shm_region){ .id = 0, .base = ~0ULL - 0xfff, .len = 0x2000 };
	assert_int_equal(virtio_mmio_init(&m, &f->vm.env, BASE + 0x1000, 6, &dev, &err), -1);
	dev.shm[0] = (struct virtio_mmio_shm_region){ .id = 3, .base = 0x100000000ULL, .len = 0x1000 };
	dev.shm[1] = dev.shm[0];
	dev.shm_count = 2;
	assert_int_equal(virtio_mmio_init(&m, &f->vm.env, BASE + 0x1000, 6, &dev, &err), -1);
	assert_non_null(strstr(err.message, "twice"));
	dev.shm_count = VIRTIO_MMIO_MAX_SHM_REGIONS + 1;
	assert_int_equal(virtio_mmio_init(&m, &f->vm.env, BASE + 0x1000, 6, &dev, &err), -1);
	virtio_mmio_cleanup(&m);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_device_features),
		T(test_negotiation_requires_version_1),
		T(test_negotiation_refuses_unoffered),
		T(test_negotiation_ok),
		T(test_queue_setup),
		T(test_queue_without_indirect),
		T(test_queue_bad_sizes),
		T(test_bad_queue_after_driver_ok_interrupts),
		T(test_reset),
		T(test_notify_fallback),
		T(test_driver_ok_kicks_ready_queues),
		T(test_interrupt_ack),
		T(test_config_space),
		T(test_pop_push),
		T(test_broken_ring_needs_reset),
		T(test_reset_waits_for_in_flight),
		T(test_init_checks),
		T(test_shared_memory_regions),
		T(test_shared_memory_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
