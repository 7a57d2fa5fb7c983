/* FUSE_SETUPMAPPING / FUSE_REMOVEMAPPING through the real FUSE server with
 * a DAX window mapped in this process, against a temporary directory:
 * stores through the window land in the host file and host changes show
 * through it, removed ranges read as zero pages again, every bad request
 * gets its errno and changes nothing, INIT announces the map alignment,
 * and the window caps how many pieces a guest can cut it into. */
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/fuse.h>

#include "fuse/dax_window.h"
#include "fuse/fuse_server.h"
#include "test_tmpdir.h"

#define WINDOW_SIZE (4 * DAX_WINDOW_CHUNK)
#define FLAG_R FUSE_SETUPMAPPING_FLAG_READ
#define FLAG_W FUSE_SETUPMAPPING_FLAG_WRITE
#define NO_FH UINT64_MAX

struct t {
	char dir[64];
	char *file;             /* "data": three pages of a known pattern */
	struct dax_window *win;
	struct fuse_server *srv;
	uint8_t in[8192];
	uint8_t out[8192];
	const uint8_t *reply;
	size_t reply_len;
	uint64_t unique;
	uint64_t page;
	uint64_t data;          /* nodeid of "data" */
};

static struct t *T;

static int send_raw(size_t in_len)
{
	struct fuse_out_header oh;
	size_t out_len;

	assert_int_equal(fuse_server_handle(T->srv, T->in, in_len, T->out, sizeof(T->out), &out_len), 0);
	assert_true(out_len >= sizeof(oh));
	memcpy(&oh, T->out, sizeof(oh));
	assert_int_equal(oh.len, out_len);
	T->reply = T->out + sizeof(oh);
	T->reply_len = out_len - sizeof(oh);
	return oh.error;
}

/* opcode's request: arg, then extra. */
static size_t build(uint32_t opcode, uint64_t nodeid, const void *arg, size_t arg_len, const void *extra,
		    size_t extra_len)
{
	struct fuse_in_header h = { .opcode = opcode, .nodeid = nodeid, .unique = ++T->unique };
	size_t n = sizeof(h);

	assert_true(n + arg_len + extra_len <= sizeof(T->in));
	if (arg_len)
		memcpy(T->in + n, arg, arg_len);
	n += arg_len;
	if (extra_len)
		memcpy(T->in + n, extra, extra_len);
	n += extra_len;
	h.len = (uint32_t)n;
	memcpy(T->in, &h, sizeof(h));
	return n;
}

static int call(uint32_t opcode, uint64_t nodeid, const void *arg, size_t arg_len, const char *name)
{
	return send_raw(build(opcode, nodeid, arg, arg_len, name, name ? strlen(name) + 1 : 0));
}

static int init(struct fuse_init_out *out)
{
	struct fuse_init_in in = { .major = 7, .minor = FUSE_KERNEL_MINOR_VERSION, .max_readahead = 65536,
				   .flags = FUSE_MAX_PAGES | FUSE_MAP_ALIGNMENT };
	int err = call(FUSE_INIT, 0, &in, sizeof(in), NULL);

	if (err == 0 && out) {
		memset(out, 0, sizeof(*out));
		memcpy(out, T->reply, T->reply_len);
	}
	return err;
}

static uint64_t lookup(const char *name)
{
	struct fuse_entry_out e;

	assert_int_equal(call(FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 0, name), 0);
	memcpy(&e, T->reply, sizeof(e));
	return e.nodeid;
}

static uint64_t open_fh(uint64_t nodeid, uint32_t flags)
{
	struct fuse_open_in in = { .flags = flags };
	struct fuse_open_out out;

	assert_int_equal(call(FUSE_OPEN, nodeid, &in, sizeof(in), NULL), 0);
	memcpy(&out, T->reply, sizeof(out));
	return out.fh;
}

static int setup_mapping(uint64_t nodeid, uint64_t fh, uint64_t foffset, uint64_t len, uint64_t flags,
			 uint64_t moffset)
{
	struct fuse_setupmapping_in in = { .fh = fh, .foffset = foffset, .len = len, .flags = flags,
					   .moffset = moffset };

	return call(FUSE_SETUPMAPPING, nodeid, &in, sizeof(in), NULL);
}

/* REMOVEMAPPING with count announced and n ranges actually sent. */
static int remove_mappings(uint32_t count, const struct fuse_removemapping_one *ranges, size_t n)
{
	struct fuse_removemapping_in in = { .count = count };

	return send_raw(build(FUSE_REMOVEMAPPING, FUSE_ROOT_ID, &in, sizeof(in), ranges, n * sizeof(*ranges)));
}

static int remove_mapping(uint64_t moffset, uint64_t len)
{
	struct fuse_removemapping_one one = { .moffset = moffset, .len = len };

	return remove_mappings(1, &one, 1);
}

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static uint8_t *window(uint64_t moffset)
{
	return T->win->host + moffset;
}

static bool all_zero(uint64_t moffset, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (window(moffset)[i])
			return false;
	return true;
}

static void host_pread(uint64_t off, void *buf, size_t len)
{
	int fd = open(T->file, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void host_pwrite(uint64_t off, const void *buf, size_t len)
{
	int fd = open(T->file, O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void start(bool read_only, bool dax)
{
	capsa_error err = { 0 };

	T = calloc(1, sizeof(*T));
	assert_non_null(T);
	T->page = (uint64_t)sysconf(_SC_PAGESIZE);
	assert_int_equal(tmpdir_create(T->dir, sizeof(T->dir), "fuse-dax"), 0);
	T->file = pathf("%s/data", T->dir);
	uint8_t *content = malloc(3 * T->page);
	assert_non_null(content);
	for (uint64_t i = 0; i < 3 * T->page; i++)
		content[i] = pattern(i);
	write_file(T->file, content, 3 * T->page);
	free(content);
	if (dax) {
		T->win = dax_window_new(WINDOW_SIZE, &err);
		assert_non_null(T->win);
	}
	struct fuse_server_config cfg = { .root_dir = T->dir, .read_only = read_only, .dax = T->win };
	T->srv = fuse_server_new(&cfg, &err);
	assert_non_null(T->srv);
	assert_int_equal(init(NULL), 0);
	T->data = lookup("data");
}

static int setup(void **state)
{
	(void)state;
	start(false, true);
	return 0;
}

static int setup_ro(void **state)
{
	(void)state;
	start(true, true);
	return 0;
}

static int setup_no_dax(void **state)
{
	(void)state;
	start(false, false);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fuse_server_free(T->srv);
	dax_window_free(T->win);
	remove_tree(T->dir);
	free(T->file);
	free(T);
	T = NULL;
	return 0;
}

static void test_init_announces_alignment(void **state)
{
	struct fuse_init_out out;

	(void)state;
	assert_int_equal(call(FUSE_DESTROY, 1, NULL, 0, NULL), 0);
	assert_int_equal(init(&out), 0);
	assert_true(out.flags & FUSE_MAP_ALIGNMENT);
	assert_int_equal(1ULL << out.map_alignment, T->page);
}

static void test_without_dax_window(void **state)
{
	struct fuse_init_out out;

	(void)state;
	assert_int_equal(call(FUSE_DESTROY, 1, NULL, 0, NULL), 0);
	assert_int_equal(init(&out), 0);
	assert_false(out.flags & FUSE_MAP_ALIGNMENT);
	assert_int_equal(out.map_alignment, 0);
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, T->page, FLAG_R, 0), -ENOSYS);
	assert_int_equal(remove_mapping(0, T->page), -ENOSYS);
}

static void test_window_starts_empty(void **state)
{
	(void)state;
	assert_true(all_zero(0, WINDOW_SIZE));
	/* A guest store where nothing is mapped stays its own. */
	window(T->page)[5] = 0xab;
	assert_int_equal(remove_mapping(0, 2 * T->page), 0);
	assert_true(all_zero(0, 2 * T->page));
}

/* The Linux driver's way: nodeid, no fh, a whole chunk past the file's end. */
static void test_write_mapping_reaches_the_file(void **state)
{
	uint64_t moffset = DAX_WINDOW_CHUNK;
	uint8_t buf[16];

	(void)state;
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, DAX_WINDOW_CHUNK, FLAG_R | FLAG_W, moffset), 0);
	assert_int_equal(T->reply_len, 0);
	for (uint64_t i = 0; i < 3 * T->page; i += 997)
		assert_int_equal(window(moffset)[i], pattern(i));
	/* The guest writes through the window: the host file has it. */
	memcpy(window(moffset + T->page + 10), "through DAX", 11);
	host_pread(T->page + 10, buf, 11);
	assert_memory_equal(buf, "through DAX", 11);
	/* A host change shows in the window. */
	host_pwrite(2 * T->page + 1, "host side", 9);
	assert_memory_equal(window(moffset + 2 * T->page + 1), "host side", 9);
	/* Unmapped: zero pages, and the file keeps what was written. */
	assert_int_equal(remove_mapping(moffset, DAX_WINDOW_CHUNK), 0);
	assert_true(all_zero(moffset, DAX_WINDOW_CHUNK));
	host_pread(T->page + 10, buf, 11);
	assert_memory_equal(buf, "through DAX", 11);
}

static void test_read_mapping(void **state)
{
	uint64_t fh = open_fh(T->data, O_RDONLY);
	uint8_t buf[8];

	(void)state;
	/* Through the guest's read-only handle, from the second page on. */
	assert_int_equal(setup_mapping(T->data, fh, T->page, 2 * T->page, FLAG_R, 0), 0);
	for (uint64_t i = 0; i < 2 * T->page; i += 331)
		assert_int_equal(window(0)[i], pattern(T->page + i));
	host_pwrite(T->page + 3, "new", 3);
	assert_memory_equal(window(3), "new", 3);
	/* Upgraded in place to a writable mapping: now stores land. */
	assert_int_equal(setup_mapping(T->data, NO_FH, T->page, 2 * T->page, FLAG_R | FLAG_W, 0), 0);
	assert_int_equal(window(T->page)[0], pattern(2 * T->page));
	memcpy(window(T->page), "landed", 6);
	host_pread(2 * T->page, buf, 6);
	assert_memory_equal(buf, "landed", 6);
	assert_int_equal(remove_mapping(0, 2 * T->page), 0);
	assert_true(all_zero(0, 2 * T->page));
}

static void test_setupmapping_errors(void **state)
{
	uint64_t ro_fh = open_fh(T->data, O_RDONLY), wo_fh = open_fh(T->data, O_WRONLY);
	uint64_t P = T->page, dir_fh;
	struct fuse_open_in oin = { .flags = O_RDONLY };

	(void)state;
	assert_int_equal(call(FUSE_OPENDIR, FUSE_ROOT_ID, &oin, sizeof(oin), NULL), 0);
	memcpy(&dir_fh, T->reply, sizeof(dir_fh));
	/* Handles: unknown, a directory's, not readable, not writable. */
	assert_int_equal(setup_mapping(T->data, 77, 0, P, FLAG_R, 0), -EBADF);
	assert_int_equal(setup_mapping(T->data, 0, 0, P, FLAG_R, 0), -EBADF);
	assert_int_equal(setup_mapping(T->data, dir_fh, 0, P, FLAG_R, 0), -EBADF);
	assert_int_equal(setup_mapping(T->data, wo_fh, 0, P, FLAG_R, 0), -EACCES);
	assert_int_equal(setup_mapping(T->data, ro_fh, 0, P, FLAG_R | FLAG_W, 0), -EACCES);
	/* Nodes: unknown, a directory. */
	assert_int_equal(setup_mapping(999, NO_FH, 0, P, FLAG_R, 0), -ESTALE);
	assert_int_equal(setup_mapping(0, NO_FH, 0, P, FLAG_R, 0), -ESTALE);
	assert_int_equal(setup_mapping(FUSE_ROOT_ID, NO_FH, 0, P, FLAG_R, 0), -EISDIR);
	/* Flags nobody defined. */
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, P, FLAG_R | 4, 0), -EINVAL);
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, P, 1ULL << 63, 0), -EINVAL);
	/* Misaligned or empty. */
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, P, FLAG_R, 100), -EINVAL);
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, P + 1, FLAG_R, 0), -EINVAL);
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, 0, FLAG_R, 0), -EINVAL);
	assert_int_equal(setup_mapping(T->data, NO_FH, 512, P, FLAG_R, 0), -EINVAL);
	/* Outside the window, or wrapping around. */
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, P, FLAG_R, WINDOW_SIZE), -EINVAL);
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, 2 * P, FLAG_R, WINDOW_SIZE - P), -EINVAL);
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, WINDOW_SIZE + P, FLAG_R, 0), -EINVAL);
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, 2 * P, FLAG_R, UINT64_MAX - P + 1), -EINVAL);
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, UINT64_MAX - P + 1, FLAG_R, 2 * P), -EINVAL);
	assert_int_equal(setup_mapping(T->data, NO_FH, UINT64_MAX - P + 1, 2 * P, FLAG_R, 0), -EINVAL);
	assert_int_equal(setup_mapping(T->data, NO_FH, ((uint64_t)INT64_MAX + 1) - P, 2 * P, FLAG_R, 0), -EINVAL);
	/* Too short to hold the request. */
	assert_int_equal(send_raw(build(FUSE_SETUPMAPPING, T->data, &(uint64_t){ 0 }, 8, NULL, 0)), -EINVAL);
	/* None of it left anything behind. */
	assert_true(all_zero(0, WINDOW_SIZE));
	/* The good ones next to them work. */
	assert_int_equal(setup_mapping(T->data, ro_fh, 0, P, FLAG_R, WINDOW_SIZE - P), 0);
	assert_int_equal(window(WINDOW_SIZE - P)[1], pattern(1));
}

static void test_removemapping_errors(void **state)
{
	uint64_t P = T->page;
	struct fuse_removemapping_one ranges[3] = {
		{ .moffset = 0, .len = P },
		{ .moffset = P, .len = P },
		{ .moffset = 2 * P, .len = P },
	};

	(void)state;
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, 3 * P, FLAG_R, 0), 0);
	/* More ranges announced than sent. */
	assert_int_equal(remove_mappings(4, ranges, 3), -EINVAL);
	assert_int_equal(remove_mappings(UINT32_MAX, ranges, 3), -EINVAL);
	assert_int_equal(remove_mappings(1, ranges, 0), -EINVAL);
	/* A bad range anywhere: nothing is removed. */
	ranges[2].moffset = 100;
	assert_int_equal(remove_mappings(3, ranges, 3), -EINVAL);
	ranges[2] = (struct fuse_removemapping_one){ .moffset = WINDOW_SIZE - P, .len = 2 * P };
	assert_int_equal(remove_mappings(3, ranges, 3), -EINVAL);
	ranges[2] = (struct fuse_removemapping_one){ .moffset = UINT64_MAX - P + 1, .len = 2 * P };
	assert_int_equal(remove_mappings(3, ranges, 3), -EINVAL);
	ranges[2] = (struct fuse_removemapping_one){ .moffset = 2 * P, .len = 0 };
	assert_int_equal(remove_mappings(3, ranges, 3), -EINVAL);
	assert_int_equal(window(0)[0], pattern(0));
	assert_int_equal(window(2 * P)[0], pattern(2 * P));
	/* No body at all. */
	assert_int_equal(send_raw(build(FUSE_REMOVEMAPPING, FUSE_ROOT_ID, NULL, 0, NULL, 0)), -EINVAL);
	/* Zero ranges is nothing to do; two good ones go. */
	assert_int_equal(remove_mappings(0, NULL, 0), 0);
	ranges[2] = (struct fuse_removemapping_one){ .moffset = 2 * P, .len = P };
	assert_int_equal(remove_mappings(2, ranges + 1, 2), 0);
	assert_true(all_zero(P, 2 * P));
	assert_int_equal(window(0)[0], pattern(0));
}

static void test_read_only_share(void **state)
{
	(void)state;
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, T->page, FLAG_R | FLAG_W, 0), -EROFS);
	assert_true(all_zero(0, T->page));
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, T->page, FLAG_R, 0), 0);
	assert_int_equal(window(0)[9], pattern(9));
	assert_int_equal(remove_mapping(0, T->page), 0);
}

/* A new session's driver starts with an empty window. */
static void test_destroy_empties_the_window(void **state)
{
	(void)state;
	assert_int_equal(setup_mapping(T->data, NO_FH, 0, 2 * T->page, FLAG_R | FLAG_W, DAX_WINDOW_CHUNK), 0);
	assert_int_equal(call(FUSE_DESTROY, 1, NULL, 0, NULL), 0);
	assert_true(all_zero(DAX_WINDOW_CHUNK, 2 * T->page));
	assert_int_equal(init(NULL), 0);
}

/* Page-sized pieces at every other page cut the window into many VMAs; past
 * the cap the request fails with ENOMEM, while whole chunks (all a Linux
 * guest maps) always fit. */
static void test_piece_cap(void **state)
{
	uint64_t P = T->page, n = 0;
	int r = 0;

	(void)state;
	for (uint64_t off = P; off < WINDOW_SIZE && r == 0; off += 2 * P, n++)
		r = setup_mapping(T->data, NO_FH, 0, P, FLAG_R, off);
	assert_int_equal(r, -ENOMEM);
	assert_true(n > 4 && n < WINDOW_SIZE / P / 2);
	assert_true(T->win->edge_count <= T->win->edge_max);
	/* One range over all of them joins them again. */
	assert_int_equal(remove_mapping(0, WINDOW_SIZE), 0);
	assert_int_equal(T->win->edge_count, 0);
	assert_true(all_zero(0, WINDOW_SIZE));
	for (int round = 0; round < 3; round++)
		for (uint64_t off = 0; off < WINDOW_SIZE; off += DAX_WINDOW_CHUNK) {
			uint64_t flags = (off / DAX_WINDOW_CHUNK + (uint64_t)round) % 2 ? FLAG_R : FLAG_R | FLAG_W;
			assert_int_equal(setup_mapping(T->data, NO_FH, 0, DAX_WINDOW_CHUNK, flags, off), 0);
			if (round == 2)
				assert_int_equal(remove_mapping(off, DAX_WINDOW_CHUNK), 0);
		}
}

static void test_window_new_checks(void **state)
{
	capsa_error err = { 0 };

	(void)state;
	assert_null(dax_window_new(0, &err));
	assert_int_equal(err.code, EINVAL);
	assert_null(dax_window_new(DAX_WINDOW_CHUNK + 4096, &err));
	assert_null(dax_window_new(1ULL << 50, &err));
	dax_window_free(NULL);
}

#define D(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		D(test_init_announces_alignment),
		cmocka_unit_test_setup_teardown(test_without_dax_window, setup_no_dax, teardown),
		D(test_window_starts_empty),
		D(test_write_mapping_reaches_the_file),
		D(test_read_mapping),
		D(test_setupmapping_errors),
		D(test_removemapping_errors),
		cmocka_unit_test_setup_teardown(test_read_only_share, setup_ro, teardown),
		D(test_destroy_empties_the_window),
		D(test_piece_cap),
		cmocka_unit_test(test_window_new_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
