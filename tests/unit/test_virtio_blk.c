/* virtio-blk: request execution against a temporary file, then the whole
 * device in-process: a fake guest driver sets it up through the MMIO
 * registers, kicks it through the QueueNotify fallback (no KVM) and waits
 * for its interrupt eventfd. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "devices/virtio_blk.h"
#include "virtio_test_driver.h"

#define FILE_SIZE (64 * 1024 + 100) /* not a multiple of 512 on purpose */
#define SECTORS (64 * 1024 / 512)

static char disk_path[] = "/tmp/capsa-test-blk-XXXXXX";

static uint8_t pattern_byte(uint64_t offset)
{
	return (uint8_t)(offset * 7 + offset / 512);
}

static void write_pattern(void)
{
	int fd = open(disk_path, O_RDWR | O_TRUNC);
	assert_true(fd >= 0);
	static uint8_t buf[FILE_SIZE];
	for (uint64_t i = 0; i < FILE_SIZE; i++)
		buf[i] = pattern_byte(i);
	assert_int_equal(write(fd, buf, FILE_SIZE), FILE_SIZE);
	close(fd);
}

static void read_file(uint64_t offset, void *buf, size_t len)
{
	int fd = open(disk_path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)offset), (ssize_t)len);
	close(fd);
}

static int group_setup(void **state)
{
	(void)state;
	int fd = mkstemp(disk_path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	unlink(disk_path);
	return 0;
}

/* ---- request execution on hand-built chains ---- */

struct hand_chain {
	struct virtq_chain chain;
	struct virtio_blk_disk disk;
};

static int hand_setup(void **state)
{
	write_pattern();
	struct hand_chain *h = calloc(1, sizeof(*h));
	h->disk.fd = open(disk_path, O_RDWR);
	assert_true(h->disk.fd >= 0);
	h->disk.capacity = SECTORS;
	memcpy(h->disk.serial, "serial-number-0123\0\0", VIRTIO_BLK_ID_BYTES);
	*state = h;
	return 0;
}

static int hand_teardown(void **state)
{
	struct hand_chain *h = *state;
	close(h->disk.fd);
	free(h);
	return 0;
}

static struct virtio_blk_outhdr header(uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr hdr = { .type = type, .sector = sector };
	return hdr;
}

/* Runs one request: header, one data buffer (readable for OUT, writable
 * otherwise) unless data_len is 0, status. Returns the used length. */
static uint32_t run_simple(struct hand_chain *h, uint32_t type, uint64_t sector, void *data, size_t data_len,
			   uint8_t *status)
{
	struct virtio_blk_outhdr hdr = header(type, sector);
	chain_clear(&h->chain);
	chain_add(&h->chain, &hdr, sizeof(hdr), false);
	if (data_len)
		chain_add(&h->chain, data, data_len, type != VIRTIO_BLK_T_OUT);
	*status = 0xee;
	chain_add(&h->chain, status, 1, true);
	return virtio_blk_handle_request(&h->disk, &h->chain);
}

static void test_read(void **state)
{
	struct hand_chain *h = *state;
	uint8_t data[1024], status;
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_IN, 2, data, sizeof(data), &status), 1025);
	assert_int_equal(status, VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < sizeof(data); i++)
		assert_int_equal(data[i], pattern_byte(1024 + i));
	/* The last sector. */
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_IN, SECTORS - 1, data, 512, &status), 513);
	assert_int_equal(status, VIRTIO_BLK_S_OK);
	assert_int_equal(data[0], pattern_byte((SECTORS - 1) * 512));
}

static void test_read_scattered(void **state)
{
	struct hand_chain *h = *state;
	/* Header split over two buffers, data over three uneven ones. */
	struct virtio_blk_outhdr hdr = header(VIRTIO_BLK_T_IN, 1);
	uint8_t a[100], b[700], c[224], status;
	chain_clear(&h->chain);
	chain_add(&h->chain, &hdr, 5, false);
	chain_add(&h->chain, (uint8_t *)&hdr + 5, sizeof(hdr) - 5, false);
	chain_add(&h->chain, a, sizeof(a), true);
	chain_add(&h->chain, b, sizeof(b), true);
	chain_add(&h->chain, c, sizeof(c), true);
	chain_add(&h->chain, &status, 1, true);
	assert_int_equal(virtio_blk_handle_request(&h->disk, &h->chain), 1025);
	assert_int_equal(status, VIRTIO_BLK_S_OK);
	assert_int_equal(a[0], pattern_byte(512));
	assert_int_equal(b[0], pattern_byte(612));
	assert_int_equal(c[223], pattern_byte(1535));
}

static void test_write(void **state)
{
	struct hand_chain *h = *state;
	uint8_t data[1536], status, back[1536];
	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i ^ 0x5a);
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_OUT, 3, data, sizeof(data), &status), 1);
	assert_int_equal(status, VIRTIO_BLK_S_OK);
	read_file(3 * 512, back, sizeof(back));
	assert_memory_equal(back, data, sizeof(data));
	uint8_t before;
	read_file(3 * 512 - 1, &before, 1);
	assert_int_equal(before, pattern_byte(3 * 512 - 1));
}

static void test_flush(void **state)
{
	struct hand_chain *h = *state;
	uint8_t status;
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &status), 1);
	assert_int_equal(status, VIRTIO_BLK_S_OK);
}

static void test_get_id(void **state)
{
	struct hand_chain *h = *state;
	uint8_t id[VIRTIO_BLK_ID_BYTES], status;
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_GET_ID, 0, id, sizeof(id), &status), 21);
	assert_int_equal(status, VIRTIO_BLK_S_OK);
	assert_memory_equal(id, h->disk.serial, VIRTIO_BLK_ID_BYTES);
	/* A short buffer gets what fits. */
	uint8_t small[8] = { 0 };
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_GET_ID, 0, small, sizeof(small), &status), 9);
	assert_memory_equal(small, "serial-n", 8);
}

static void test_unsupported(void **state)
{
	struct hand_chain *h = *state;
	uint8_t data[512], status;
	const uint32_t types[] = { VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_T_SCSI_CMD,
				   0x12345678, VIRTIO_BLK_T_OUT | VIRTIO_BLK_T_BARRIER };
	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		assert_int_equal(run_simple(h, types[i], 0, data, sizeof(data), &status), 1);
		assert_int_equal(status, VIRTIO_BLK_S_UNSUPP);
	}
}

static void test_out_of_range(void **state)
{
	struct hand_chain *h = *state;
	uint8_t data[1024], status;
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_IN, SECTORS, data, 512, &status), 1);
	assert_int_equal(status, VIRTIO_BLK_S_IOERR);
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_IN, SECTORS - 1, data, 1024, &status), 1);
	assert_int_equal(status, VIRTIO_BLK_S_IOERR);
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_OUT, SECTORS - 1, data, 1024, &status), 1);
	assert_int_equal(status, VIRTIO_BLK_S_IOERR);
	/* sector * 512 would wrap. */
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_IN, UINT64_MAX / 256, data, 512, &status), 1);
	assert_int_equal(status, VIRTIO_BLK_S_IOERR);
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_OUT, UINT64_MAX, data, 512, &status), 1);
	assert_int_equal(status, VIRTIO_BLK_S_IOERR);
	/* The 100 bytes past the last whole sector are not part of the disk. */
	uint8_t tail[100];
	read_file(SECTORS * 512, tail, sizeof(tail));
	assert_int_equal(tail[0], pattern_byte(SECTORS * 512));
}

static void test_partial_sector(void **state)
{
	struct hand_chain *h = *state;
	uint8_t data[700], status;
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_IN, 0, data, sizeof(data), &status), 1);
	assert_int_equal(status, VIRTIO_BLK_S_IOERR);
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_OUT, 0, data, 100, &status), 1);
	assert_int_equal(status, VIRTIO_BLK_S_IOERR);
	uint8_t first;
	read_file(0, &first, 1);
	assert_int_equal(first, pattern_byte(0));
}

static void test_read_only_write_refused(void **state)
{
	struct hand_chain *h = *state;
	h->disk.read_only = true;
	uint8_t data[512], status, back[512];
	memset(data, 0xcc, sizeof(data));
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_OUT, 0, data, sizeof(data), &status), 1);
	assert_int_equal(status, VIRTIO_BLK_S_IOERR);
	read_file(0, back, sizeof(back));
	assert_int_equal(back[0], pattern_byte(0));
	assert_int_equal(back[511], pattern_byte(511));
	/* Reads still work. */
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_IN, 0, data, sizeof(data), &status), 513);
	assert_int_equal(status, VIRTIO_BLK_S_OK);
}

static void test_oversized_request(void **state)
{
	struct hand_chain *h = *state;
	size_t len = VIRTIO_BLK_MAX_REQUEST + 512;
	uint8_t *data = malloc(len), status;
	h->disk.capacity = UINT64_MAX / 512;
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_IN, 0, data, len, &status), 1);
	assert_int_equal(status, VIRTIO_BLK_S_IOERR);
	free(data);
}

static void test_file_shrank(void **state)
{
	struct hand_chain *h = *state;
	/* The capacity says more than the file now holds. */
	h->disk.capacity = SECTORS * 4;
	uint8_t data[512], status;
	assert_int_equal(run_simple(h, VIRTIO_BLK_T_IN, SECTORS + 8, data, sizeof(data), &status), 1);
	assert_int_equal(status, VIRTIO_BLK_S_IOERR);
}

static void test_malformed(void **state)
{
	struct hand_chain *h = *state;
	uint8_t status = 0xee, data[512];

	/* Header shorter than 16 bytes. */
	struct virtio_blk_outhdr hdr = header(VIRTIO_BLK_T_IN, 0);
	chain_clear(&h->chain);
	chain_add(&h->chain, &hdr, 8, false);
	chain_add(&h->chain, data, sizeof(data), true);
	chain_add(&h->chain, &status, 1, true);
	assert_int_equal(virtio_blk_handle_request(&h->disk, &h->chain), 1);
	assert_int_equal(status, VIRTIO_BLK_S_IOERR);

	/* Nowhere to put the status: untouched, length 0. */
	memset(data, 0x77, sizeof(data));
	hdr = header(VIRTIO_BLK_T_OUT, 0);
	chain_clear(&h->chain);
	chain_add(&h->chain, &hdr, sizeof(hdr), false);
	chain_add(&h->chain, data, sizeof(data), false);
	assert_int_equal(virtio_blk_handle_request(&h->disk, &h->chain), 0);
	uint8_t first;
	read_file(0, &first, 1);
	assert_int_equal(first, pattern_byte(0));

	/* Status only, no header at all. */
	chain_clear(&h->chain);
	chain_add(&h->chain, &status, 1, true);
	status = 0xee;
	assert_int_equal(virtio_blk_handle_request(&h->disk, &h->chain), 1);
	assert_int_equal(status, VIRTIO_BLK_S_IOERR);
}

/* ---- the whole device, driven like a guest ---- */

#define RAM_SIZE (1024 * 1024)
#define BASE 0xd0000000ULL
#define QSIZE 256
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define TABLE_GPA 0x4000
#define HDR_GPA 0x8000
#define STATUS_GPA 0x8100
#define DATA_GPA 0x10000

struct guest {
	struct test_guest vm;
	struct virtio_blk *blk;
};

static int guest_setup(void **state)
{
	write_pattern();
	struct guest *g = calloc(1, sizeof(*g));
	test_guest_init(&g->vm, RAM_SIZE, BASE);
	*state = g;
	return 0;
}

static int guest_teardown(void **state)
{
	struct guest *g = *state;
	virtio_blk_destroy(g->blk);
	test_guest_cleanup(&g->vm);
	free(g);
	return 0;
}

static void driver_init(struct test_guest *vm)
{
	driver_start(vm, VIRTIO_ID_BLOCK, driver_device_features(vm));
	memset(gpa(vm, DESC_GPA), 0, 0x4000);
	assert_int_equal(driver_queue_max(vm, 0), QSIZE);
	assert_int_equal(mmio_rd(vm, VIRTIO_MMIO_QUEUE_READY), 0);
	driver_setup_queue(vm, 0, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA);
	assert_int_equal(mmio_rd(vm, VIRTIO_MMIO_QUEUE_READY), 1);
	driver_ok(vm);
}

static void put_desc(struct guest *g, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	driver_put_desc(&g->vm, 0, i, addr, len, flags, next);
}

static void put_header(struct guest *g, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr hdr = header(type, sector);
	memcpy(gpa(&g->vm, HDR_GPA), &hdr, sizeof(hdr));
	*(uint8_t *)gpa(&g->vm, STATUS_GPA) = 0xee;
}

static uint8_t status_byte(struct guest *g)
{
	return *(uint8_t *)gpa(&g->vm, STATUS_GPA);
}

/* header, data (writable unless OUT), status at descriptors 10, 11, 12. */
static uint32_t simple_request(struct guest *g, uint32_t type, uint64_t sector, uint32_t len)
{
	put_header(g, type, sector);
	put_desc(g, 10, HDR_GPA, 16, VRING_DESC_F_NEXT, 11);
	put_desc(g, 11, DATA_GPA, len, VRING_DESC_F_NEXT | (type == VIRTIO_BLK_T_OUT ? 0 : VRING_DESC_F_WRITE),
		 12);
	put_desc(g, 12, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
	return driver_submit(&g->vm, 0, 10);
}

static void create(struct guest *g, bool read_only)
{
	capsa_error err = { 0 };
	g->blk = virtio_blk_create(&g->vm.env, g->vm.base, 5, disk_path, read_only, &err);
	if (!g->blk)
		fail_msg("virtio_blk_create: %s", err.message);
	g->vm.irq_fd = virtio_blk_irq_fd(g->blk);
}

static void test_device_config(void **state)
{
	struct guest *g = *state;
	create(g, false);
	uint64_t capacity;
	uint32_t v;
	assert_true(bus_read(&g->vm.bus, BASE + VIRTIO_MMIO_CONFIG, (uint8_t *)&capacity, 8));
	assert_int_equal(capacity, SECTORS);
	assert_true(bus_read(&g->vm.bus, BASE + VIRTIO_MMIO_CONFIG + 8, (uint8_t *)&v, 4));
	assert_int_equal(v, VIRTIO_BLK_SIZE_MAX);
	assert_true(bus_read(&g->vm.bus, BASE + VIRTIO_MMIO_CONFIG + 12, (uint8_t *)&v, 4));
	assert_int_equal(v, QSIZE - 2);
	assert_true(bus_read(&g->vm.bus, BASE + VIRTIO_MMIO_CONFIG + 20, (uint8_t *)&v, 4));
	assert_int_equal(v, 512);

	uint64_t features = driver_device_features(&g->vm);
	assert_true(features & (1ULL << VIRTIO_F_VERSION_1));
	assert_true(features & (1ULL << VIRTIO_BLK_F_FLUSH));
	assert_true(features & (1ULL << VIRTIO_BLK_F_SEG_MAX));
	assert_true(features & (1ULL << VIRTIO_BLK_F_BLK_SIZE));
	assert_false(features & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(features & (1ULL << VIRTIO_RING_F_EVENT_IDX));
}

static void test_device_io(void **state)
{
	struct guest *g = *state;
	create(g, false);
	driver_init(&g->vm);

	/* Write 2 sectors at sector 5. */
	for (unsigned i = 0; i < 1024; i++)
		((uint8_t *)gpa(&g->vm, DATA_GPA))[i] = (uint8_t)(i * 13);
	assert_int_equal(simple_request(g, VIRTIO_BLK_T_OUT, 5, 1024), 1);
	assert_int_equal(status_byte(g), VIRTIO_BLK_S_OK);
	uint8_t back[1024];
	read_file(5 * 512, back, sizeof(back));
	assert_memory_equal(back, gpa(&g->vm, DATA_GPA), sizeof(back));

	/* Read them back through an indirect table, into two buffers. */
	memset(gpa(&g->vm, DATA_GPA), 0, 0x2000);
	put_header(g, VIRTIO_BLK_T_IN, 5);
	test_ring_put_desc(&g->vm.mem, TABLE_GPA, 0, HDR_GPA, 16, VRING_DESC_F_NEXT, 1);
	test_ring_put_desc(&g->vm.mem, TABLE_GPA, 1, DATA_GPA, 600, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	test_ring_put_desc(&g->vm.mem, TABLE_GPA, 2, DATA_GPA + 0x1000, 424,
			   VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3);
	test_ring_put_desc(&g->vm.mem, TABLE_GPA, 3, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
	put_desc(g, 3, TABLE_GPA, 4 * 16, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(driver_submit(&g->vm, 0, 3), 1025);
	assert_int_equal(status_byte(g), VIRTIO_BLK_S_OK);
	assert_memory_equal(gpa(&g->vm, DATA_GPA), back, 600);
	assert_memory_equal(gpa(&g->vm, DATA_GPA + 0x1000), back + 600, 424);

	/* Flush, serial, an unknown request, a read past the end. */
	put_header(g, VIRTIO_BLK_T_FLUSH, 0);
	put_desc(g, 20, HDR_GPA, 16, VRING_DESC_F_NEXT, 21);
	put_desc(g, 21, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
	assert_int_equal(driver_submit(&g->vm, 0, 20), 1);
	assert_int_equal(status_byte(g), VIRTIO_BLK_S_OK);

	assert_int_equal(simple_request(g, VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES), 21);
	assert_int_equal(status_byte(g), VIRTIO_BLK_S_OK);
	assert_memory_equal(gpa(&g->vm, DATA_GPA), "capsa-", 6);

	assert_int_equal(simple_request(g, 99, 0, 512), 1);
	assert_int_equal(status_byte(g), VIRTIO_BLK_S_UNSUPP);

	assert_int_equal(simple_request(g, VIRTIO_BLK_T_IN, SECTORS, 512), 1);
	assert_int_equal(status_byte(g), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple_request(g, VIRTIO_BLK_T_IN, SECTORS - 1, 512), 513);
	assert_int_equal(status_byte(g), VIRTIO_BLK_S_OK);
}

static void test_device_batch(void **state)
{
	struct guest *g = *state;
	create(g, false);
	driver_init(&g->vm);

	/* A full ring of reads published at once, one kick. */
	struct vring_avail *avail = gpa(&g->vm, AVAIL_GPA);
	for (unsigned r = 0; r < QSIZE / 2; r++) {
		uint16_t d = (uint16_t)(r * 2);
		put_desc(g, d, HDR_GPA, 16, VRING_DESC_F_NEXT, d + 1);
		put_desc(g, d + 1, DATA_GPA + r * 512, 512, VRING_DESC_F_WRITE, 0);
		avail->ring[r] = d;
	}
	/* No status byte of their own: the last data byte takes it, and the
	 * read is then 511 bytes: an IOERR each time, which is what we check. */
	struct virtio_blk_outhdr hdr = header(VIRTIO_BLK_T_IN, 0);
	memcpy(gpa(&g->vm, HDR_GPA), &hdr, sizeof(hdr));
	g->vm.q[0].avail_idx = QSIZE / 2;
	__atomic_store_n(&avail->idx, g->vm.q[0].avail_idx, __ATOMIC_RELEASE);
	mmio_wr(&g->vm, VIRTIO_MMIO_QUEUE_NOTIFY, 0);

	struct vring_used *used = gpa(&g->vm, USED_GPA);
	for (int tries = 0; __atomic_load_n(&used->idx, __ATOMIC_ACQUIRE) != QSIZE / 2; tries++) {
		assert_true(tries < 100);
		driver_wait_interrupt(&g->vm);
	}
	for (unsigned r = 0; r < QSIZE / 2; r++) {
		assert_int_equal(used->ring[r].id, r * 2);
		assert_int_equal(*(uint8_t *)gpa(&g->vm, DATA_GPA + r * 512 + 511), VIRTIO_BLK_S_IOERR);
	}
}

static void test_device_read_only(void **state)
{
	struct guest *g = *state;
	create(g, true);
	assert_true(driver_device_features(&g->vm) & (1ULL << VIRTIO_BLK_F_RO));
	driver_init(&g->vm);
	memset(gpa(&g->vm, DATA_GPA), 0xcc, 512);
	assert_int_equal(simple_request(g, VIRTIO_BLK_T_OUT, 0, 512), 1);
	assert_int_equal(status_byte(g), VIRTIO_BLK_S_IOERR);
	uint8_t first;
	read_file(0, &first, 1);
	assert_int_equal(first, pattern_byte(0));
	assert_int_equal(simple_request(g, VIRTIO_BLK_T_IN, 0, 512), 513);
	assert_int_equal(status_byte(g), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)gpa(&g->vm, DATA_GPA + 1), pattern_byte(1));
}

static void test_device_hostile_ring(void **state)
{
	struct guest *g = *state;
	create(g, false);
	driver_init(&g->vm);

	/* A chain looping on itself: the device gives up on the queue and
	 * asks for a reset. */
	put_desc(g, 7, HDR_GPA, 16, VRING_DESC_F_NEXT, 7);
	struct vring_avail *avail = gpa(&g->vm, AVAIL_GPA);
	avail->ring[0] = 7;
	__atomic_store_n(&avail->idx, 1, __ATOMIC_RELEASE);
	mmio_wr(&g->vm, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(driver_wait_interrupt(&g->vm), VIRTIO_MMIO_INT_CONFIG);
	assert_true(mmio_rd(&g->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	struct vring_used *used = gpa(&g->vm, USED_GPA);
	assert_int_equal(used->idx, 0);

	/* After a reset the device works again. */
	driver_init(&g->vm);
	assert_false(mmio_rd(&g->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(simple_request(g, VIRTIO_BLK_T_IN, 1, 512), 513);
	assert_int_equal(status_byte(g), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)gpa(&g->vm, DATA_GPA), pattern_byte(512));

	/* An avail index far ahead of the ring. */
	__atomic_store_n(&avail->idx, (uint16_t)(g->vm.q[0].avail_idx + QSIZE + 1), __ATOMIC_RELEASE);
	mmio_wr(&g->vm, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(driver_wait_interrupt(&g->vm), VIRTIO_MMIO_INT_CONFIG);
	assert_true(mmio_rd(&g->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_create_errors(void **state)
{
	struct guest *g = *state;
	capsa_error err = { 0 };
	assert_null(virtio_blk_create(&g->vm.env, BASE, 5, "/nonexistent/disk.img", false, &err));
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.message, "/nonexistent/disk.img"));
	assert_null(virtio_blk_create(&g->vm.env, BASE, 5, "/tmp", true, &err));
	assert_int_equal(err.code, EINVAL);

	create(g, false);
	assert_null(virtio_blk_create(&g->vm.env, BASE + 0x100, 6, disk_path, false, &err));
	assert_int_equal(err.code, EBUSY);
	virtio_blk_destroy(NULL);
}

/* Snapshot and restore of the transport: a request published while the
 * device is paused stays in the avail ring, untouched; the device restored
 * from the saved state (in a new guest holding a copy of the RAM) serves
 * it and goes on numbering used entries where the first one stopped. */
static void test_device_snapshot(void **state)
{
	struct guest *g = *state;
	create(g, false);
	driver_init(&g->vm);
	for (unsigned i = 0; i < 512; i++)
		((uint8_t *)gpa(&g->vm, DATA_GPA))[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(simple_request(g, VIRTIO_BLK_T_OUT, 9, 512), 1);

	struct virtio_mmio *mmio = virtio_blk_transport(g->blk);
	virtio_mmio_pause(mmio);
	put_header(g, VIRTIO_BLK_T_IN, 9);
	memset(gpa(&g->vm, DATA_GPA), 0, 512);
	put_desc(g, 10, HDR_GPA, 16, VRING_DESC_F_NEXT, 11);
	put_desc(g, 11, DATA_GPA, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 12);
	put_desc(g, 12, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
	driver_publish(&g->vm, 0, 10);
	driver_kick(&g->vm, 0);
	usleep(100 * 1000);
	assert_false(driver_used_ready(&g->vm, 0));
	struct virtio_mmio_state saved;
	virtio_mmio_save(mmio, &saved);
	assert_int_equal(saved.queues[0].last_avail_idx, 1);
	assert_int_equal(saved.queues[0].used_idx, 1);

	struct guest *clone = calloc(1, sizeof(*clone));
	test_guest_init(&clone->vm, RAM_SIZE, BASE);
	memcpy(clone->vm.mem.host, g->vm.mem.host, RAM_SIZE);
	clone->vm.q[0] = g->vm.q[0];
	create(clone, false);
	capsa_error err = { 0 };
	assert_int_equal(virtio_mmio_load(virtio_blk_transport(clone->blk), &saved, &err), 0);
	assert_int_equal(mmio_rd(&clone->vm, VIRTIO_MMIO_QUEUE_READY), 1);
	assert_int_equal(driver_wait_interrupt(&clone->vm) & VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_INT_VRING);
	struct vring_used_elem used = driver_take_used(&clone->vm, 0);
	assert_int_equal(used.id, 10);
	assert_int_equal(used.len, 513);
	assert_int_equal(*(uint8_t *)gpa(&clone->vm, STATUS_GPA), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(((uint8_t *)gpa(&clone->vm, DATA_GPA))[i], (uint8_t)(i * 7 + 1));

	/* A state for another kind of device is refused. */
	struct virtio_mmio_state other = saved;
	other.device_id = 19;
	assert_int_equal(virtio_mmio_load(virtio_blk_transport(clone->blk), &other, &err), -1);
	assert_non_null(strstr(err.message, "virtio device"));

	virtio_mmio_resume(mmio);
	virtio_blk_destroy(clone->blk);
	test_guest_cleanup(&clone->vm);
	free(clone);
}

#define H(name) cmocka_unit_test_setup_teardown(name, hand_setup, hand_teardown)
#define G(name) cmocka_unit_test_setup_teardown(name, guest_setup, guest_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		H(test_read),
		H(test_read_scattered),
		H(test_write),
		H(test_flush),
		H(test_get_id),
		H(test_unsupported),
		H(test_out_of_range),
		H(test_partial_sector),
		H(test_read_only_write_refused),
		H(test_oversized_request),
		H(test_file_shrank),
		H(test_malformed),
		G(test_device_config),
		G(test_device_io),
		G(test_device_batch),
		G(test_device_read_only),
		G(test_device_hostile_ring),
		G(test_create_errors),
		G(test_device_snapshot),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
