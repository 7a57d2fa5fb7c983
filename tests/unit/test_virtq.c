/* Split virtqueue walking against a fake guest: a heap buffer standing in
 * for guest RAM, in which each test lays out rings and descriptors the way
 * a (sometimes hostile) driver would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/virtio/virtq.h"
#include "virtio_test_driver.h"

#define RAM_SIZE (1024 * 1024)
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define TABLE_GPA 0x4000 /* indirect tables */
#define BUF_GPA 0x10000
#define QNUM 8

struct fixture {
	struct guest_mem mem;
	struct virtq q;
	struct virtq_chain chain;
	uint16_t avail_idx;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	test_ram_init(&f->mem, RAM_SIZE);
	f->q.max_size = 16;
	virtq_reset(&f->q);
	f->q.num = QNUM;
	f->q.desc_addr = DESC_GPA;
	f->q.avail_addr = AVAIL_GPA;
	f->q.used_addr = USED_GPA;
	assert_int_equal(virtq_enable(&f->q, &f->mem), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	test_ram_free(&f->mem);
	free(f);
	return 0;
}

static void put_desc(struct fixture *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	test_ring_put_desc(&f->mem, DESC_GPA, i, addr, len, flags, next);
}

static void make_available(struct fixture *f, uint16_t head)
{
	test_ring_publish(&f->mem, AVAIL_GPA, QNUM, &f->avail_idx, head);
}

static struct vring_used *used_ring(struct fixture *f)
{
	return test_ram_at(&f->mem, USED_GPA);
}

/* ---- enabling a queue ---- */

static void try_enable(struct fixture *f, uint16_t num, uint64_t desc, uint64_t avail, uint64_t used, int expect)
{
	virtq_reset(&f->q);
	f->q.num = num;
	f->q.desc_addr = desc;
	f->q.avail_addr = avail;
	f->q.used_addr = used;
	assert_int_equal(virtq_enable(&f->q, &f->mem), expect);
	assert_int_equal(f->q.ready, expect == 0);
}

static void test_enable_checks(void **state)
{
	struct fixture *f = *state;
	try_enable(f, 8, DESC_GPA, AVAIL_GPA, USED_GPA, 0);
	try_enable(f, 16, DESC_GPA, AVAIL_GPA, USED_GPA, 0);
	try_enable(f, 1, DESC_GPA, AVAIL_GPA, USED_GPA, 0);
	/* Sizes: zero, not a power of two, above the device maximum. */
	try_enable(f, 0, DESC_GPA, AVAIL_GPA, USED_GPA, -1);
	try_enable(f, 6, DESC_GPA, AVAIL_GPA, USED_GPA, -1);
	try_enable(f, 32, DESC_GPA, AVAIL_GPA, USED_GPA, -1);
	/* Misaligned rings. */
	try_enable(f, 8, DESC_GPA + 8, AVAIL_GPA, USED_GPA, -1);
	try_enable(f, 8, DESC_GPA, AVAIL_GPA + 1, USED_GPA, -1);
	try_enable(f, 8, DESC_GPA, AVAIL_GPA, USED_GPA + 2, -1);
	/* Rings running past the end of RAM, or nowhere near it. */
	try_enable(f, 8, RAM_SIZE - 16 * 4, AVAIL_GPA, USED_GPA, -1);
	try_enable(f, 8, DESC_GPA, RAM_SIZE - 8, USED_GPA, -1);
	try_enable(f, 8, DESC_GPA, AVAIL_GPA, RAM_SIZE - 8 * 8, -1);
	try_enable(f, 8, UINT64_MAX - 15, AVAIL_GPA, USED_GPA, -1);
	try_enable(f, 8, DESC_GPA, AVAIL_GPA, 0xfffffffffffff000ULL, -1);
	try_enable(f, 8, GUEST_MEM_HOLE_START, AVAIL_GPA, USED_GPA, -1);
	/* Exactly at the end of RAM is fine. */
	try_enable(f, 8, RAM_SIZE - 16 * 8, RAM_SIZE - 128 - 32, RAM_SIZE - 256 - 256, 0);
}

/* ---- normal operation ---- */

static void test_simple_chain(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, 5);
	put_desc(f, 5, BUF_GPA + 0x1000, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	put_desc(f, 2, BUF_GPA + 0x2000, 1, VRING_DESC_F_WRITE, 0);

	assert_int_equal(virtq_pop(&f->q, &f->chain), 0);
	make_available(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	assert_int_equal(f->chain.head, 0);
	assert_int_equal(f->chain.num_readable, 1);
	assert_int_equal(f->chain.num_writable, 2);
	assert_int_equal(f->chain.readable_len, 16);
	assert_int_equal(f->chain.writable_len, 513);
	assert_ptr_equal(f->chain.iov[0].iov_base, test_ram_at(&f->mem, BUF_GPA));
	assert_ptr_equal(f->chain.iov[1].iov_base, test_ram_at(&f->mem, BUF_GPA + 0x1000));
	assert_int_equal(f->chain.iov[1].iov_len, 512);
	assert_ptr_equal(f->chain.iov[2].iov_base, test_ram_at(&f->mem, BUF_GPA + 0x2000));
	assert_int_equal(virtq_pop(&f->q, &f->chain), 0);

	assert_true(virtq_push(&f->q, 0, 513));
	struct vring_used *used = used_ring(f);
	assert_int_equal(used->idx, 1);
	assert_int_equal(used->ring[0].id, 0);
	assert_int_equal(used->ring[0].len, 513);

	/* The driver asked for no interrupts. */
	struct vring_avail *avail = test_ram_at(&f->mem, AVAIL_GPA);
	avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	make_available(f, 2);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	assert_int_equal(f->chain.head, 2);
	assert_int_equal(f->chain.num_readable, 0);
	assert_int_equal(f->chain.num_writable, 1);
	assert_false(virtq_push(&f->q, 2, 1));
	assert_int_equal(used->idx, 2);
	assert_int_equal(used->ring[1].id, 2);
	assert_false(f->q.broken);
}

static void test_full_length_chain(void **state)
{
	struct fixture *f = *state;
	for (uint16_t i = 0; i < QNUM; i++)
		put_desc(f, i, BUF_GPA + i * 0x100, 0x100, i + 1 < QNUM ? VRING_DESC_F_NEXT : 0, i + 1);
	make_available(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	assert_int_equal(f->chain.num_readable, QNUM);
	assert_int_equal(f->chain.readable_len, QNUM * 0x100);
}

static void test_index_wraparound(void **state)
{
	struct fixture *f = *state;
	/* Indices are free-running 16-bit counters: start just below the
	 * wrap, as after 65534 requests. */
	f->avail_idx = 0xfffe;
	f->q.last_avail_idx = 0xfffe;
	f->q.used_idx = 0xfffe;
	put_desc(f, 3, BUF_GPA, 4, VRING_DESC_F_WRITE, 0);
	for (int i = 0; i < 4; i++) {
		make_available(f, 3);
		assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
		assert_int_equal(f->chain.head, 3);
		virtq_push(&f->q, 3, 4);
	}
	assert_int_equal(used_ring(f)->idx, 2);
	assert_int_equal(used_ring(f)->ring[1].id, 3);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 0);
}

static void test_chain_copy_helpers(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, BUF_GPA, 3, VRING_DESC_F_NEXT, 1);
	put_desc(f, 1, BUF_GPA + 0x100, 5, VRING_DESC_F_NEXT, 2);
	put_desc(f, 2, BUF_GPA + 0x200, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
	put_desc(f, 3, BUF_GPA + 0x300, 4, VRING_DESC_F_WRITE, 0);
	memcpy(test_ram_at(&f->mem, BUF_GPA), "abc", 3);
	memcpy(test_ram_at(&f->mem, BUF_GPA + 0x100), "defgh", 5);
	make_available(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);

	char buf[16] = { 0 };
	assert_int_equal(virtq_chain_read(&f->chain, 0, buf, sizeof(buf)), 8);
	assert_string_equal(buf, "abcdefgh");
	memset(buf, 0, sizeof(buf));
	assert_int_equal(virtq_chain_read(&f->chain, 2, buf, 4), 4);
	assert_string_equal(buf, "cdef");
	assert_int_equal(virtq_chain_read(&f->chain, 8, buf, 4), 0);

	assert_int_equal(virtq_chain_write(&f->chain, 2, "WXYZ!!!!", 8), 6);
	assert_memory_equal(test_ram_at(&f->mem, BUF_GPA + 0x200), "\0\0WX", 4);
	assert_memory_equal(test_ram_at(&f->mem, BUF_GPA + 0x300), "YZ!!", 4);

	struct iovec out[VIRTQ_MAX_SIZE];
	assert_int_equal(virtq_chain_slice(&f->chain, false, 1, 6, out), 2);
	assert_ptr_equal(out[0].iov_base, test_ram_at(&f->mem, BUF_GPA + 1));
	assert_int_equal(out[0].iov_len, 2);
	assert_ptr_equal(out[1].iov_base, test_ram_at(&f->mem, BUF_GPA + 0x100));
	assert_int_equal(out[1].iov_len, 4);
	assert_int_equal(virtq_chain_slice(&f->chain, true, 4, 3, out), 1);
	assert_ptr_equal(out[0].iov_base, test_ram_at(&f->mem, BUF_GPA + 0x300));
	assert_int_equal(out[0].iov_len, 3);
}

/* ---- hostile rings ---- */

static void expect_broken(struct fixture *f)
{
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
	assert_true(f->q.broken);
	assert_non_null(f->q.broken_reason);
	/* A broken queue is left alone until reset. */
	assert_int_equal(virtq_pop(&f->q, &f->chain), 0);
	assert_false(virtq_push(&f->q, 0, 0));
	assert_int_equal(used_ring(f)->idx, 0);
}

static void test_chain_loop(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, 1);
	put_desc(f, 1, BUF_GPA, 16, VRING_DESC_F_NEXT, 0);
	make_available(f, 0);
	expect_broken(f);
}

static void test_self_loop(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 4, BUF_GPA, 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 4);
	make_available(f, 4);
	expect_broken(f);
}

static void test_next_out_of_range(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, QNUM);
	make_available(f, 0);
	expect_broken(f);
}

static void test_head_out_of_range(void **state)
{
	struct fixture *f = *state;
	make_available(f, QNUM);
	expect_broken(f);
}

static void test_buffer_past_ram_end(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, RAM_SIZE - 4, 8, 0, 0);
	make_available(f, 0);
	expect_broken(f);
}

static void test_buffer_address_wraps(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, UINT64_MAX - 1, 16, VRING_DESC_F_WRITE, 0);
	make_available(f, 0);
	expect_broken(f);
}

static void test_buffer_in_hole(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, GUEST_MEM_HOLE_START + 0x1000, 16, 0, 0);
	make_available(f, 0);
	expect_broken(f);
}

static void test_oversized_length(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, BUF_GPA, 0xffffffff, VRING_DESC_F_WRITE, 0);
	make_available(f, 0);
	expect_broken(f);
}

static void test_avail_idx_jump(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, BUF_GPA, 16, 0, 0);
	struct vring_avail *avail = test_ram_at(&f->mem, AVAIL_GPA);
	__atomic_store_n(&avail->idx, QNUM + 1, __ATOMIC_RELEASE);
	expect_broken(f);
}

static void test_avail_idx_full_ring_ok(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, BUF_GPA, 16, 0, 0);
	for (int i = 0; i < QNUM; i++)
		make_available(f, 0);
	for (int i = 0; i < QNUM; i++)
		assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 0);
}

static void test_avail_idx_backwards(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, BUF_GPA, 16, 0, 0);
	make_available(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	/* Moving the index back looks like a jump of 65535 entries. */
	struct vring_avail *avail = test_ram_at(&f->mem, AVAIL_GPA);
	__atomic_store_n(&avail->idx, 0, __ATOMIC_RELEASE);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
}

static void test_readable_after_writable(void **state)
{
	struct fixture *f = *state;
	put_desc(f, 0, BUF_GPA, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	put_desc(f, 1, BUF_GPA, 16, 0, 0);
	make_available(f, 0);
	expect_broken(f);
}

static void test_reset_clears_broken(void **state)
{
	struct fixture *f = *state;
	make_available(f, QNUM);
	assert_int_equal(virtq_pop(&f->q, &f->chain), -1);
	virtq_reset(&f->q);
	assert_int_equal(f->q.max_size, 16);
	assert_false(f->q.broken);
	assert_false(f->q.ready);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 0);
}

/* ---- indirect descriptors ---- */

static void test_indirect_not_negotiated(void **state)
{
	struct fixture *f = *state;
	test_ring_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, 0, 0);
	put_desc(f, 0, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	make_available(f, 0);
	expect_broken(f);
}

static void test_indirect_chain(void **state)
{
	struct fixture *f = *state;
	f->q.indirect = true;
	test_ring_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, 2);
	test_ring_put_desc(&f->mem, TABLE_GPA, 2, BUF_GPA + 0x100, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
			   1);
	test_ring_put_desc(&f->mem, TABLE_GPA, 1, BUF_GPA + 0x2000, 1, VRING_DESC_F_WRITE, 0);
	put_desc(f, 6, TABLE_GPA, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	make_available(f, 6);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	assert_int_equal(f->chain.head, 6);
	assert_int_equal(f->chain.num_readable, 1);
	assert_int_equal(f->chain.num_writable, 2);
	assert_int_equal(f->chain.writable_len, 4097);
	assert_ptr_equal(f->chain.iov[2].iov_base, test_ram_at(&f->mem, BUF_GPA + 0x2000));
}

static void test_indirect_misaligned_table(void **state)
{
	struct fixture *f = *state;
	f->q.indirect = true;
	test_ring_put_desc(&f->mem, TABLE_GPA + 3, 0, BUF_GPA, 16, 0, 0);
	put_desc(f, 0, TABLE_GPA + 3, 16, VRING_DESC_F_INDIRECT, 0);
	make_available(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->chain), 1);
	assert_ptr_equal(f->chain.iov[0].iov_base, test_ram_at(&f->mem, BUF_GPA));
}

/* Lays out a one-entry indirect table and an indirect head with the
 * given length and flags, and expects the queue to break. */
static void indirect_expect_broken(struct fixture *f, uint64_t table, uint32_t len, uint16_t flags)
{
	f->q.indirect = true;
	put_desc(f, 0, table, len, flags, 1);
	put_desc(f, 1, BUF_GPA, 16, 0, 0);
	make_available(f, 0);
	expect_broken(f);
}

static void test_indirect_bad_length(void **state)
{
	struct fixture *f = *state;
	test_ring_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, 0, 0);
	indirect_expect_broken(f, TABLE_GPA, 24, VRING_DESC_F_INDIRECT);
}

static void test_indirect_empty(void **state)
{
	indirect_expect_broken(*state, TABLE_GPA, 0, VRING_DESC_F_INDIRECT);
}

static void test_indirect_longer_than_queue(void **state)
{
	struct fixture *f = *state;
	for (uint16_t i = 0; i <= QNUM; i++)
		test_ring_put_desc(&f->mem, TABLE_GPA, i, BUF_GPA, 16, i < QNUM ? VRING_DESC_F_NEXT : 0, i + 1);
	indirect_expect_broken(f, TABLE_GPA, (QNUM + 1) * 16, VRING_DESC_F_INDIRECT);
}

static void test_indirect_with_next(void **state)
{
	struct fixture *f = *state;
	test_ring_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, 0, 0);
	indirect_expect_broken(f, TABLE_GPA, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT);
}

static void test_indirect_table_outside_ram(void **state)
{
	indirect_expect_broken(*state, RAM_SIZE - 16, 32, VRING_DESC_F_INDIRECT);
}

static void test_indirect_table_wraps(void **state)
{
	indirect_expect_broken(*state, UINT64_MAX - 15, 32, VRING_DESC_F_INDIRECT);
}

static void test_indirect_nested(void **state)
{
	struct fixture *f = *state;
	test_ring_put_desc(&f->mem, TABLE_GPA, 0, TABLE_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	test_ring_put_desc(&f->mem, TABLE_GPA + 0x100, 0, BUF_GPA, 16, 0, 0);
	indirect_expect_broken(f, TABLE_GPA, 16, VRING_DESC_F_INDIRECT);
}

static void test_indirect_loop(void **state)
{
	struct fixture *f = *state;
	test_ring_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, 1);
	test_ring_put_desc(&f->mem, TABLE_GPA, 1, BUF_GPA, 16, VRING_DESC_F_NEXT, 0);
	indirect_expect_broken(f, TABLE_GPA, 32, VRING_DESC_F_INDIRECT);
}

static void test_indirect_next_out_of_table(void **state)
{
	struct fixture *f = *state;
	/* Entry 2 exists in memory but not in the 2-entry table. */
	test_ring_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, 2);
	test_ring_put_desc(&f->mem, TABLE_GPA, 2, BUF_GPA, 16, 0, 0);
	indirect_expect_broken(f, TABLE_GPA, 32, VRING_DESC_F_INDIRECT);
}

static void test_indirect_not_at_head(void **state)
{
	struct fixture *f = *state;
	f->q.indirect = true;
	test_ring_put_desc(&f->mem, TABLE_GPA, 0, BUF_GPA, 16, 0, 0);
	put_desc(f, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, 1);
	put_desc(f, 1, TABLE_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	make_available(f, 0);
	expect_broken(f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_enable_checks),
		T(test_simple_chain),
		T(test_full_length_chain),
		T(test_index_wraparound),
		T(test_chain_copy_helpers),
		T(test_chain_loop),
		T(test_self_loop),
		T(test_next_out_of_range),
		T(test_head_out_of_range),
		T(test_buffer_past_ram_end),
		T(test_buffer_address_wraps),
		T(test_buffer_in_hole),
		T(test_oversized_length),
		T(test_avail_idx_jump),
		T(test_avail_idx_full_ring_ok),
		T(test_avail_idx_backwards),
		T(test_readable_after_writable),
		T(test_reset_clears_broken),
		T(test_indirect_not_negotiated),
		T(test_indirect_chain),
		T(test_indirect_misaligned_table),
		T(test_indirect_bad_length),
		T(test_indirect_empty),
		T(test_indirect_longer_than_queue),
		T(test_indirect_with_next),
		T(test_indirect_table_outside_ram),
		T(test_indirect_table_wraps),
		T(test_indirect_nested),
		T(test_indirect_loop),
		T(test_indirect_next_out_of_table),
		T(test_indirect_not_at_head),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
