#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vm/bus.h"

struct recorder {
	uint64_t offset;
	uint32_t len;
	uint8_t written[8];
	unsigned reads, writes;
	uint8_t fill;
};

static void rec_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct recorder *r = opaque;
	r->offset = offset;
	r->len = len;
	r->reads++;
	memset(data, r->fill, len);
}

static void rec_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct recorder *r = opaque;
	r->offset = offset;
	r->len = len;
	r->writes++;
	memcpy(r->written, data, len);
}

static struct bus_device dev_at(uint64_t base, uint64_t size, struct recorder *r)
{
	struct bus_device d = { .base = base, .size = size, .opaque = r, .read = rec_read, .write = rec_write };
	return d;
}

static void test_overlap_refused(void **state)
{
	(void)state;
	static struct bus bus;
	memset(&bus, 0, sizeof(bus));
	struct recorder r = { 0 };
	struct bus_device a = dev_at(0x1000, 0x100, &r);
	assert_int_equal(bus_register(&bus, &a), 0);

	struct bus_device same = dev_at(0x1000, 0x100, &r);
	struct bus_device inside = dev_at(0x1010, 0x10, &r);
	struct bus_device around = dev_at(0x0f00, 0x400, &r);
	struct bus_device tail = dev_at(0x10ff, 0x10, &r);
	struct bus_device head = dev_at(0x0f80, 0x81, &r);
	assert_int_equal(bus_register(&bus, &same), -1);
	assert_int_equal(bus_register(&bus, &inside), -1);
	assert_int_equal(bus_register(&bus, &around), -1);
	assert_int_equal(bus_register(&bus, &tail), -1);
	assert_int_equal(bus_register(&bus, &head), -1);

	/* Touching ranges are fine. */
	struct bus_device before = dev_at(0x0f00, 0x100, &r);
	struct bus_device after = dev_at(0x1100, 0x100, &r);
	assert_int_equal(bus_register(&bus, &before), 0);
	assert_int_equal(bus_register(&bus, &after), 0);
	assert_int_equal(bus.count, 3);
}

static void test_bad_ranges_refused(void **state)
{
	(void)state;
	static struct bus bus;
	memset(&bus, 0, sizeof(bus));
	struct recorder r = { 0 };
	struct bus_device empty = dev_at(0x1000, 0, &r);
	struct bus_device wraps = dev_at(UINT64_MAX - 0xf, 0x20, &r);
	struct bus_device at_end = dev_at(UINT64_MAX - 0xf, 0x10, &r);
	assert_int_equal(bus_register(&bus, &empty), -1);
	assert_int_equal(bus_register(&bus, &wraps), -1);
	/* Ends exactly at 2^64: base + size wraps to 0, refused too (the
	 * x86 MMIO space never reaches there). */
	assert_int_equal(bus_register(&bus, &at_end), -1);
	assert_int_equal(bus.count, 0);
}

static void test_full_bus(void **state)
{
	(void)state;
	static struct bus bus;
	memset(&bus, 0, sizeof(bus));
	struct recorder r = { 0 };
	for (unsigned i = 0; i < BUS_MAX_DEVICES; i++) {
		struct bus_device d = dev_at(0x10000 + i * 0x1000ULL, 0x1000, &r);
		assert_int_equal(bus_register(&bus, &d), 0);
	}
	struct bus_device extra = dev_at(0x1000000, 0x1000, &r);
	assert_int_equal(bus_register(&bus, &extra), -1);
}

static void test_dispatch(void **state)
{
	(void)state;
	static struct bus bus;
	memset(&bus, 0, sizeof(bus));
	struct recorder a = { .fill = 0xaa }, b = { .fill = 0xbb };
	struct bus_device da = dev_at(0xd0000000, 0x200, &a);
	struct bus_device db = dev_at(0xd0001000, 0x200, &b);
	assert_int_equal(bus_register(&bus, &da), 0);
	assert_int_equal(bus_register(&bus, &db), 0);

	uint8_t data[8];
	assert_true(bus_read(&bus, 0xd0001070, data, 4));
	assert_int_equal(b.reads, 1);
	assert_int_equal(b.offset, 0x70);
	assert_int_equal(b.len, 4);
	assert_int_equal(data[0], 0xbb);
	assert_int_equal(a.reads, 0);

	const uint8_t value[2] = { 1, 2 };
	assert_true(bus_write(&bus, 0xd00001fe, value, 2));
	assert_int_equal(a.writes, 1);
	assert_int_equal(a.offset, 0x1fe);
	assert_memory_equal(a.written, value, 2);

	/* Unclaimed: a gap, and accesses straddling a window's edges. */
	assert_false(bus_read(&bus, 0xd0000200, data, 4));
	assert_memory_equal(data, "\xff\xff\xff\xff", 4);
	assert_false(bus_read(&bus, 0xd00001fe, data, 4));
	assert_false(bus_read(&bus, 0xd0000ffe, data, 4));
	assert_false(bus_write(&bus, 0xcfffffff, value, 2));
	assert_false(bus_write(&bus, UINT64_MAX, value, 1));
	assert_int_equal(a.reads, 0);
	assert_int_equal(a.writes, 1);
	assert_int_equal(b.writes, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_overlap_refused),
		cmocka_unit_test(test_bad_ranges_refused),
		cmocka_unit_test(test_full_bus),
		cmocka_unit_test(test_dispatch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
