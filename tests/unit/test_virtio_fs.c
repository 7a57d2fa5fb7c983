/* virtio-fs: chain execution against a temporary directory (requests and
 * replies split over descriptors, oversized and reply-less chains,
 * read-only mode), then the whole device in-process: a fake guest driver
 * sets it up through the MMIO registers, kicks both queues through the
 * QueueNotify fallback (no KVM) and waits for its interrupt eventfd. */
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/fuse.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "devices/virtio_fs.h"
#include "fuse/dax_window.h"
#include "virtio_test_driver.h"

#define CONTENT "hello world\n"

static char dir_path[] = "/tmp/capsa-test-fs-XXXXXX";
static char file_path[sizeof(dir_path) + 16];

static void write_file(void)
{
	int fd = open(file_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, CONTENT, strlen(CONTENT)), (ssize_t)strlen(CONTENT));
	close(fd);
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir_path))
		return -1;
	snprintf(file_path, sizeof(file_path), "%s/hello", dir_path);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	unlink(file_path);
	rmdir(dir_path);
	return 0;
}

/* Builds a request: header, body, then extra (a name) in buf; returns its length. */
static size_t make_req(uint8_t *buf, uint32_t opcode, uint64_t unique, uint64_t nodeid, const void *body,
		       size_t body_len, const void *extra, size_t extra_len)
{
	struct fuse_in_header h = {
		.len = (uint32_t)(sizeof(h) + body_len + extra_len),
		.opcode = opcode,
		.unique = unique,
		.nodeid = nodeid,
		.uid = getuid(),
		.gid = getgid(),
		.pid = 1,
	};
	memcpy(buf, &h, sizeof(h));
	if (body_len)
		memcpy(buf + sizeof(h), body, body_len);
	if (extra_len)
		memcpy(buf + sizeof(h) + body_len, extra, extra_len);
	return h.len;
}

static size_t init_req(uint8_t *buf, uint64_t unique)
{
	struct fuse_init_in init = { .major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION,
				     .max_readahead = 65536 };
	return make_req(buf, FUSE_INIT, unique, 0, &init, sizeof(init), NULL, 0);
}

/* ---- chain execution on hand-built chains ---- */

struct hand {
	struct virtio_fs_backend be;
	struct virtq_chain chain;
	uint8_t req[8192];
	uint8_t reply[8192];
	uint64_t unique;
};

/* Runs the request in h->req (len bytes) as one readable descriptor with
 * h->reply as one writable one; returns the used length. */
static uint32_t run(struct hand *h, size_t len)
{
	chain_clear(&h->chain);
	chain_add(&h->chain, h->req, len, false);
	memset(h->reply, 0xee, sizeof(h->reply));
	chain_add(&h->chain, h->reply, sizeof(h->reply), true);
	return virtio_fs_handle_request(&h->be, &h->chain);
}

/* Checks the reply header in h->reply against used length len and returns its error. */
static int reply_error(struct hand *h, uint32_t len)
{
	struct fuse_out_header oh;
	assert_true(len >= sizeof(oh));
	memcpy(&oh, h->reply, sizeof(oh));
	assert_int_equal(oh.len, len);
	assert_int_equal(oh.unique, h->unique);
	return oh.error;
}

static int call(struct hand *h, uint32_t opcode, uint64_t nodeid, const void *body, size_t body_len,
		const void *extra, size_t extra_len)
{
	h->unique++;
	size_t len = make_req(h->req, opcode, h->unique, nodeid, body, body_len, extra, extra_len);
	return reply_error(h, run(h, len));
}

static void *body(struct hand *h)
{
	return h->reply + sizeof(struct fuse_out_header);
}

static int hand_setup_mode(void **state, bool read_only)
{
	write_file();
	struct hand *h = calloc(1, sizeof(*h));
	capsa_error err = { 0 };
	if (virtio_fs_backend_init(&h->be, dir_path, read_only, NULL, &err) < 0)
		fail_msg("virtio_fs_backend_init: %s", err.message);
	h->unique = 1;
	assert_int_equal(reply_error(h, run(h, init_req(h->req, h->unique))), 0);
	*state = h;
	return 0;
}

static int hand_setup(void **state)
{
	return hand_setup_mode(state, false);
}

static int hand_setup_ro(void **state)
{
	return hand_setup_mode(state, true);
}

static int hand_teardown(void **state)
{
	struct hand *h = *state;
	virtio_fs_backend_cleanup(&h->be);
	free(h);
	return 0;
}

static uint64_t lookup(struct hand *h, const char *name, struct fuse_attr *attr)
{
	assert_int_equal(call(h, FUSE_LOOKUP, FUSE_ROOT_ID, name, strlen(name) + 1, NULL, 0), 0);
	struct fuse_entry_out e;
	memcpy(&e, body(h), sizeof(e));
	if (attr)
		*attr = e.attr;
	return e.nodeid;
}

static uint64_t open_file(struct hand *h, uint64_t nodeid, uint32_t flags, int *error)
{
	struct fuse_open_in in = { .flags = flags };
	*error = call(h, FUSE_OPEN, nodeid, &in, sizeof(in), NULL, 0);
	struct fuse_open_out out;
	memcpy(&out, body(h), sizeof(out));
	return out.fh;
}

static void test_init_lookup_getattr_read(void **state)
{
	struct hand *h = *state;
	/* INIT went through in the setup; a second one is refused. */
	assert_int_equal(call(h, FUSE_INIT, 0, &(struct fuse_init_in){ .major = 7, .minor = 31 },
			      sizeof(struct fuse_init_in), NULL, 0), -EIO);

	struct fuse_attr attr;
	uint64_t node = lookup(h, "hello", &attr);
	assert_true(node != 0);
	assert_int_equal(attr.size, strlen(CONTENT));

	struct fuse_getattr_in gin = { 0 };
	assert_int_equal(call(h, FUSE_GETATTR, node, &gin, sizeof(gin), NULL, 0), 0);
	struct fuse_attr_out aout;
	memcpy(&aout, body(h), sizeof(aout));
	assert_int_equal(aout.attr.size, strlen(CONTENT));
	assert_int_equal(aout.attr.ino, attr.ino);

	int error;
	uint64_t fh = open_file(h, node, O_RDONLY, &error);
	assert_int_equal(error, 0);
	struct fuse_read_in rin = { .fh = fh, .offset = 6, .size = 4096 };
	h->unique++;
	uint32_t len = run(h, make_req(h->req, FUSE_READ, h->unique, node, &rin, sizeof(rin), NULL, 0));
	assert_int_equal(reply_error(h, len), 0);
	assert_int_equal(len, sizeof(struct fuse_out_header) + strlen(CONTENT) - 6);
	assert_memory_equal(body(h), CONTENT + 6, strlen(CONTENT) - 6);
	/* The bytes after the reply are untouched. */
	assert_int_equal(h->reply[len], 0xee);

	assert_int_equal(call(h, FUSE_LOOKUP, FUSE_ROOT_ID, "missing", 8, NULL, 0), -ENOENT);
}

static void test_write(void **state)
{
	struct hand *h = *state;
	uint64_t node = lookup(h, "hello", NULL);
	int error;
	uint64_t fh = open_file(h, node, O_RDWR, &error);
	assert_int_equal(error, 0);
	struct fuse_write_in win = { .fh = fh, .offset = 0, .size = 5 };
	assert_int_equal(call(h, FUSE_WRITE, node, &win, sizeof(win), "HELLO", 5), 0);
	struct fuse_write_out wout;
	memcpy(&wout, body(h), sizeof(wout));
	assert_int_equal(wout.size, 5);

	char back[32] = { 0 };
	int fd = open(file_path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, back, sizeof(back)), (ssize_t)strlen(CONTENT));
	close(fd);
	assert_string_equal(back, "HELLO world\n");
}

static void test_reply_split(void **state)
{
	struct hand *h = *state;
	uint64_t node = lookup(h, "hello", NULL);
	int error;
	uint64_t fh = open_file(h, node, O_RDONLY, &error);
	assert_int_equal(error, 0);

	/* The reply header itself straddles two descriptors. */
	uint8_t a[10], b[7], c[100];
	memset(c, 0xee, sizeof(c));
	struct fuse_read_in rin = { .fh = fh, .offset = 0, .size = 4096 };
	h->unique++;
	size_t len = make_req(h->req, FUSE_READ, h->unique, node, &rin, sizeof(rin), NULL, 0);
	chain_clear(&h->chain);
	chain_add(&h->chain, h->req, len, false);
	chain_add(&h->chain, a, sizeof(a), true);
	chain_add(&h->chain, b, sizeof(b), true);
	chain_add(&h->chain, c, sizeof(c), true);
	uint32_t used = virtio_fs_handle_request(&h->be, &h->chain);
	assert_int_equal(used, sizeof(struct fuse_out_header) + strlen(CONTENT));
	memcpy(h->reply, a, sizeof(a));
	memcpy(h->reply + sizeof(a), b, sizeof(b));
	memcpy(h->reply + sizeof(a) + sizeof(b), c, sizeof(c));
	assert_int_equal(reply_error(h, used), 0);
	assert_memory_equal(body(h), CONTENT, strlen(CONTENT));

	/* Less room than the data: the read is cut to what fits. */
	rin.size = 4096;
	h->unique++;
	len = make_req(h->req, FUSE_READ, h->unique, node, &rin, sizeof(rin), NULL, 0);
	chain_clear(&h->chain);
	chain_add(&h->chain, h->req, len, false);
	chain_add(&h->chain, a, sizeof(a), true);
	chain_add(&h->chain, b, sizeof(b), true);
	chain_add(&h->chain, c, 3, true);
	used = virtio_fs_handle_request(&h->be, &h->chain);
	assert_true(used <= sizeof(a) + sizeof(b) + 3);
}

static void test_request_split(void **state)
{
	struct hand *h = *state;
	/* LOOKUP "hello" in four pieces: inside the header, at its end and
	 * inside the name. */
	h->unique++;
	size_t len = make_req(h->req, FUSE_LOOKUP, h->unique, FUSE_ROOT_ID, "hello", 6, NULL, 0);
	uint8_t p1[3], p2[37], p3[2], p4[4];
	memcpy(p1, h->req, 3);
	memcpy(p2, h->req + 3, 37);
	memcpy(p3, h->req + 40, 2);
	memcpy(p4, h->req + 42, 4);
	assert_int_equal(len, 46);
	memset(h->req, 0, sizeof(h->req));
	chain_clear(&h->chain);
	chain_add(&h->chain, p1, sizeof(p1), false);
	chain_add(&h->chain, p2, sizeof(p2), false);
	chain_add(&h->chain, p3, sizeof(p3), false);
	chain_add(&h->chain, p4, sizeof(p4), false);
	chain_add(&h->chain, h->reply, sizeof(h->reply), true);
	uint32_t used = virtio_fs_handle_request(&h->be, &h->chain);
	assert_int_equal(reply_error(h, used), 0);
	assert_int_equal(used, sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out));
}

static void test_oversized(void **state)
{
	struct hand *h = *state;
	size_t big = VIRTIO_FS_MAX_MESSAGE + 1;
	uint8_t *data = calloc(1, big);
	h->unique++;
	struct fuse_write_in win = { .size = (uint32_t)(big - 80) };
	make_req(data, FUSE_WRITE, h->unique, 2, &win, sizeof(win), NULL, 0);
	/* Split in two so neither descriptor alone is too long. */
	chain_clear(&h->chain);
	chain_add(&h->chain, data, 4096, false);
	chain_add(&h->chain, data + 4096, big - 4096, false);
	memset(h->reply, 0xee, sizeof(h->reply));
	chain_add(&h->chain, h->reply, sizeof(h->reply), true);
	uint32_t used = virtio_fs_handle_request(&h->be, &h->chain);
	assert_int_equal(used, sizeof(struct fuse_out_header));
	assert_int_equal(reply_error(h, used), -E2BIG);

	/* No room for an error: returned untouched. */
	uint8_t small[8];
	memset(small, 0xee, sizeof(small));
	chain_clear(&h->chain);
	chain_add(&h->chain, data, big, false);
	chain_add(&h->chain, small, sizeof(small), true);
	assert_int_equal(virtio_fs_handle_request(&h->be, &h->chain), 0);
	assert_int_equal(small[0], 0xee);
	free(data);

	/* The server still works. */
	lookup(h, "hello", NULL);
}

static void test_no_writable(void **state)
{
	struct hand *h = *state;
	uint64_t node = lookup(h, "hello", NULL);
	size_t inodes = fuse_server_inode_count(h->be.server);
	assert_true(inodes >= 2);

	/* A LOOKUP with nowhere to reply: nothing is done, length 0. */
	h->unique++;
	size_t len = make_req(h->req, FUSE_LOOKUP, h->unique, FUSE_ROOT_ID, "hello", 6, NULL, 0);
	chain_clear(&h->chain);
	chain_add(&h->chain, h->req, len, false);
	assert_int_equal(virtio_fs_handle_request(&h->be, &h->chain), 0);
	assert_int_equal(fuse_server_inode_count(h->be.server), inodes);

	/* FORGET takes no reply and is executed all the same. */
	struct fuse_forget_in fin = { .nlookup = 1 };
	h->unique++;
	len = make_req(h->req, FUSE_FORGET, h->unique, node, &fin, sizeof(fin), NULL, 0);
	chain_clear(&h->chain);
	chain_add(&h->chain, h->req, len, false);
	assert_int_equal(virtio_fs_handle_request(&h->be, &h->chain), 0);
	assert_int_equal(fuse_server_inode_count(h->be.server), inodes - 1);

	/* With room for a reply it still gets none. */
	node = lookup(h, "hello", NULL);
	h->unique++;
	len = make_req(h->req, FUSE_FORGET, h->unique, node, &fin, sizeof(fin), NULL, 0);
	assert_int_equal(run(h, len), 0);
	assert_int_equal(h->reply[0], 0xee);
	assert_int_equal(fuse_server_inode_count(h->be.server), inodes - 1);
}

static void test_malformed(void **state)
{
	struct hand *h = *state;
	/* Shorter than a fuse_in_header. */
	memset(h->req, 0, 64);
	assert_int_equal(run(h, 20), 0);
	assert_int_equal(run(h, 0), 0);
	/* Writable part shorter than a fuse_out_header. */
	uint8_t small[15];
	h->unique++;
	size_t len = make_req(h->req, FUSE_LOOKUP, h->unique, FUSE_ROOT_ID, "hello", 6, NULL, 0);
	chain_clear(&h->chain);
	chain_add(&h->chain, h->req, len, false);
	chain_add(&h->chain, small, sizeof(small), true);
	assert_int_equal(virtio_fs_handle_request(&h->be, &h->chain), 0);
	/* A header claiming more than the chain holds. */
	struct fuse_in_header hdr;
	memcpy(&hdr, h->req, sizeof(hdr));
	hdr.len = 4000;
	memcpy(h->req, &hdr, sizeof(hdr));
	assert_int_equal(reply_error(h, run(h, len)), -EINVAL);
	/* An unknown opcode. */
	assert_int_equal(call(h, 9999, FUSE_ROOT_ID, NULL, 0, NULL, 0), -ENOSYS);
	/* Writable descriptors only. */
	chain_clear(&h->chain);
	chain_add(&h->chain, h->reply, sizeof(h->reply), true);
	assert_int_equal(virtio_fs_handle_request(&h->be, &h->chain), 0);
}

static void test_read_only(void **state)
{
	struct hand *h = *state;
	uint64_t node = lookup(h, "hello", NULL);
	int error;
	open_file(h, node, O_RDWR, &error);
	assert_int_equal(error, -EROFS);
	struct fuse_mkdir_in min = { .mode = 0755 };
	assert_int_equal(call(h, FUSE_MKDIR, FUSE_ROOT_ID, &min, sizeof(min), "sub", 4), -EROFS);
	uint64_t fh = open_file(h, node, O_RDONLY, &error);
	assert_int_equal(error, 0);
	struct fuse_write_in win = { .fh = fh, .size = 1 };
	assert_int_equal(call(h, FUSE_WRITE, node, &win, sizeof(win), "x", 1), -EROFS);
}

/* ---- the whole device, driven like a guest ---- */

#define RAM_SIZE (1024 * 1024)
#define BASE 0xd0000000ULL
#define QSIZE 256
#define REQ_GPA 0x10000
#define REPLY_GPA 0x20000
#define REPLY_LEN 0x1000

static const uint64_t desc_gpa[2] = { 0x1000, 0x4000 };
static const uint64_t avail_gpa[2] = { 0x2000, 0x5000 };
static const uint64_t used_gpa[2] = { 0x3000, 0x6000 };

struct guest {
	struct test_guest vm;
	struct virtio_fs *fs;
	struct dax_window *window;
};

static int guest_setup(void **state)
{
	write_file();
	struct guest *g = calloc(1, sizeof(*g));
	test_guest_init(&g->vm, RAM_SIZE, BASE);
	*state = g;
	return 0;
}

static int guest_teardown(void **state)
{
	struct guest *g = *state;
	virtio_fs_destroy(g->fs);
	dax_window_free(g->window);
	test_guest_cleanup(&g->vm);
	free(g);
	return 0;
}

static void driver_init(struct test_guest *vm)
{
	driver_start(vm, VIRTIO_ID_FS, driver_device_features(vm));
	for (unsigned q = 0; q < 2; q++) {
		memset(gpa(vm, desc_gpa[q]), 0, 0x3000);
		assert_int_equal(driver_queue_max(vm, q), QSIZE);
		driver_setup_queue(vm, q, QSIZE, desc_gpa[q], avail_gpa[q], used_gpa[q]);
	}
	/* No third queue. */
	assert_int_equal(driver_queue_max(vm, 2), 0);
	driver_ok(vm);
}

/* Sends the request at REQ_GPA (len bytes) on queue q with REPLY_LEN bytes
 * of room at REPLY_GPA (none if !reply) and returns the used length. */
static uint32_t submit(struct guest *g, unsigned q, size_t len, bool reply)
{
	memset(gpa(&g->vm, REPLY_GPA), 0xee, REPLY_LEN);
	driver_put_desc(&g->vm, q, 0, REQ_GPA, (uint32_t)len, reply ? VRING_DESC_F_NEXT : 0, 1);
	driver_put_desc(&g->vm, q, 1, REPLY_GPA, REPLY_LEN, VRING_DESC_F_WRITE, 0);
	return driver_submit(&g->vm, q, 0);
}

static struct fuse_out_header reply_header(struct guest *g)
{
	struct fuse_out_header oh;
	memcpy(&oh, gpa(&g->vm, REPLY_GPA), sizeof(oh));
	return oh;
}

static void create(struct guest *g, const char *tag, bool read_only)
{
	capsa_error err = { 0 };
	g->fs = virtio_fs_create(&g->vm.env, BASE, 5, tag, dir_path, read_only, NULL, &err);
	if (!g->fs)
		fail_msg("virtio_fs_create: %s", err.message);
	g->vm.irq_fd = virtio_fs_irq_fd(g->fs);
}

static void test_device_config(void **state)
{
	struct guest *g = *state;
	create(g, "shared", false);
	assert_int_equal(mmio_rd(&g->vm, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_FS);
	uint8_t tag[36];
	for (unsigned i = 0; i < sizeof(tag); i++)
		assert_true(bus_read(&g->vm.bus, BASE + VIRTIO_MMIO_CONFIG + i, &tag[i], 1));
	assert_memory_equal(tag, "shared\0\0\0\0", 10);
	for (unsigned i = 6; i < sizeof(tag); i++)
		assert_int_equal(tag[i], 0);
	uint32_t v;
	assert_true(bus_read(&g->vm.bus, BASE + VIRTIO_MMIO_CONFIG + 36, (uint8_t *)&v, 4));
	assert_int_equal(v, 1);

	uint64_t features = driver_device_features(&g->vm);
	assert_true(features & (1ULL << VIRTIO_F_VERSION_1));
	assert_false(features & (1ULL << VIRTIO_RING_F_EVENT_IDX));
	assert_int_equal(features & 0xffffff, 0); /* no device-specific feature */
	/* No DAX window: no shared memory region. */
	assert_int_equal(mmio_rd(&g->vm, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff);
	assert_int_equal(mmio_rd(&g->vm, VIRTIO_MMIO_SHM_LEN_HIGH), 0xffffffff);
}

static void test_device_config_long_tag(void **state)
{
	struct guest *g = *state;
	const char *tag = "abcdefghijklmnopqrstuvwxyz0123456789"; /* exactly 36: no NUL */
	create(g, tag, false);
	uint8_t got[40];
	for (unsigned i = 0; i < sizeof(got); i += 4)
		assert_true(bus_read(&g->vm.bus, BASE + VIRTIO_MMIO_CONFIG + i, got + i, 4));
	assert_memory_equal(got, tag, 36);
	assert_int_equal(got[36], 1);
}

static void test_device_requests(void **state)
{
	struct guest *g = *state;
	create(g, "shared", false);
	driver_init(&g->vm);

	uint32_t len = submit(g, VIRTIO_FS_REQUEST_QUEUE, init_req(gpa(&g->vm, REQ_GPA), 1), true);
	assert_true(len > sizeof(struct fuse_out_header));
	assert_int_equal(reply_header(g).error, 0);
	assert_int_equal(reply_header(g).unique, 1);
	assert_int_equal(reply_header(g).len, len);

	size_t rlen = make_req(gpa(&g->vm, REQ_GPA), FUSE_LOOKUP, 2, FUSE_ROOT_ID, "hello", 6, NULL, 0);
	len = submit(g, VIRTIO_FS_REQUEST_QUEUE, rlen, true);
	assert_int_equal(len, sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out));
	assert_int_equal(reply_header(g).error, 0);
	struct fuse_entry_out e;
	memcpy(&e, (uint8_t *)gpa(&g->vm, REPLY_GPA) + sizeof(struct fuse_out_header), sizeof(e));
	assert_int_equal(e.attr.size, strlen(CONTENT));

	/* FORGET on the hiprio queue: no reply, length 0. */
	struct fuse_forget_in fin = { .nlookup = 1 };
	rlen = make_req(gpa(&g->vm, REQ_GPA), FUSE_FORGET, 3, e.nodeid, &fin, sizeof(fin), NULL, 0);
	assert_int_equal(submit(g, VIRTIO_FS_HIPRIO_QUEUE, rlen, false), 0);
	/* The node is gone. */
	struct fuse_getattr_in gin = { 0 };
	rlen = make_req(gpa(&g->vm, REQ_GPA), FUSE_GETATTR, 4, e.nodeid, &gin, sizeof(gin), NULL, 0);
	assert_int_equal(submit(g, VIRTIO_FS_REQUEST_QUEUE, rlen, true), sizeof(struct fuse_out_header));
	assert_true(reply_header(g).error < 0);

	/* A request with no room for its reply. */
	rlen = make_req(gpa(&g->vm, REQ_GPA), FUSE_LOOKUP, 5, FUSE_ROOT_ID, "hello", 6, NULL, 0);
	assert_int_equal(submit(g, VIRTIO_FS_REQUEST_QUEUE, rlen, false), 0);

	/* After a reset the driver starts over with INIT. */
	driver_init(&g->vm);
	submit(g, VIRTIO_FS_REQUEST_QUEUE, init_req(gpa(&g->vm, REQ_GPA), 6), true);
	assert_int_equal(reply_header(g).error, 0);
	rlen = make_req(gpa(&g->vm, REQ_GPA), FUSE_GETATTR, 7, FUSE_ROOT_ID, &gin, sizeof(gin), NULL, 0);
	assert_int_equal(submit(g, VIRTIO_FS_REQUEST_QUEUE, rlen, true),
			 sizeof(struct fuse_out_header) + sizeof(struct fuse_attr_out));
	assert_int_equal(reply_header(g).error, 0);
}

static void test_device_read_only(void **state)
{
	struct guest *g = *state;
	create(g, "ro", true);
	driver_init(&g->vm);
	submit(g, VIRTIO_FS_REQUEST_QUEUE, init_req(gpa(&g->vm, REQ_GPA), 1), true);
	struct fuse_mkdir_in min = { .mode = 0755 };
	size_t rlen = make_req(gpa(&g->vm, REQ_GPA), FUSE_MKDIR, 2, FUSE_ROOT_ID, &min, sizeof(min), "sub", 4);
	assert_int_equal(submit(g, VIRTIO_FS_REQUEST_QUEUE, rlen, true), sizeof(struct fuse_out_header));
	assert_int_equal(reply_header(g).error, -EROFS);
}

#define DAX_GPA 0x140000000ULL

/* With a DAX window the device shows it as shared memory region 0 (the
 * cache), and SETUPMAPPING through the request queue maps the file there.
 * The window is not guest RAM: a descriptor pointing into it is refused
 * like any address outside RAM, so the device never reads or writes it. */
static void test_device_dax(void **state)
{
	struct guest *g = *state;
	capsa_error err = { 0 };
	g->window = dax_window_new(DAX_WINDOW_CHUNK, &err);
	assert_non_null(g->window);
	struct virtio_fs_dax dax = { .window = g->window, .gpa = DAX_GPA };
	g->fs = virtio_fs_create(&g->vm.env, BASE, 5, "dax", dir_path, false, &dax, &err);
	assert_non_null(g->fs);
	g->vm.irq_fd = virtio_fs_irq_fd(g->fs);

	mmio_wr(&g->vm, VIRTIO_MMIO_SHM_SEL, VIRTIO_FS_SHMCAP_ID_CACHE);
	assert_int_equal(mmio_rd(&g->vm, VIRTIO_MMIO_SHM_LEN_LOW), (uint32_t)DAX_WINDOW_CHUNK);
	assert_int_equal(mmio_rd(&g->vm, VIRTIO_MMIO_SHM_LEN_HIGH), 0);
	assert_int_equal(mmio_rd(&g->vm, VIRTIO_MMIO_SHM_BASE_LOW), (uint32_t)DAX_GPA);
	assert_int_equal(mmio_rd(&g->vm, VIRTIO_MMIO_SHM_BASE_HIGH), (uint32_t)(DAX_GPA >> 32));
	mmio_wr(&g->vm, VIRTIO_MMIO_SHM_SEL, 1);
	assert_int_equal(mmio_rd(&g->vm, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff);

	driver_init(&g->vm);
	submit(g, VIRTIO_FS_REQUEST_QUEUE, init_req(gpa(&g->vm, REQ_GPA), 1), true);
	assert_int_equal(reply_header(g).error, 0);
	size_t rlen = make_req(gpa(&g->vm, REQ_GPA), FUSE_LOOKUP, 2, FUSE_ROOT_ID, "hello", 6, NULL, 0);
	submit(g, VIRTIO_FS_REQUEST_QUEUE, rlen, true);
	struct fuse_entry_out e;
	memcpy(&e, (uint8_t *)gpa(&g->vm, REPLY_GPA) + sizeof(struct fuse_out_header), sizeof(e));
	struct fuse_setupmapping_in sin = { .fh = UINT64_MAX, .len = DAX_WINDOW_CHUNK,
					    .flags = FUSE_SETUPMAPPING_FLAG_READ };
	rlen = make_req(gpa(&g->vm, REQ_GPA), FUSE_SETUPMAPPING, 3, e.nodeid, &sin, sizeof(sin), NULL, 0);
	assert_int_equal(submit(g, VIRTIO_FS_REQUEST_QUEUE, rlen, true), sizeof(struct fuse_out_header));
	assert_int_equal(reply_header(g).error, 0);
	assert_memory_equal(g->window->host, CONTENT, strlen(CONTENT));

	/* A reply buffer in the window: the chain is refused. */
	rlen = make_req(gpa(&g->vm, REQ_GPA), FUSE_GETATTR, 4, FUSE_ROOT_ID, &(struct fuse_getattr_in){ 0 },
			sizeof(struct fuse_getattr_in), NULL, 0);
	unsigned q = VIRTIO_FS_REQUEST_QUEUE;
	driver_put_desc(&g->vm, q, 0, REQ_GPA, (uint32_t)rlen, VRING_DESC_F_NEXT, 1);
	driver_put_desc(&g->vm, q, 1, DAX_GPA, REPLY_LEN, VRING_DESC_F_WRITE, 0);
	driver_publish(&g->vm, q, 0);
	driver_kick(&g->vm, q);
	assert_true(driver_wait_interrupt(&g->vm) & VIRTIO_MMIO_INT_CONFIG);
	assert_true(mmio_rd(&g->vm, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_false(driver_used_ready(&g->vm, q));
	assert_memory_equal(g->window->host, CONTENT, strlen(CONTENT));

	/* A reset ends the session: the window is empty again. */
	mmio_wr(&g->vm, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(g->window->host[0], 0);
}

static void test_create_errors(void **state)
{
	struct guest *g = *state;
	capsa_error err = { 0 };
	assert_null(virtio_fs_create(&g->vm.env, BASE, 5, "", dir_path, false, NULL, &err));
	assert_int_equal(err.code, EINVAL);
	assert_null(virtio_fs_create(&g->vm.env, BASE, 5, "abcdefghijklmnopqrstuvwxyz0123456789x", dir_path, false, NULL,
				     &err));
	assert_int_equal(err.code, EINVAL);
	assert_null(virtio_fs_create(&g->vm.env, BASE, 5, "with space", dir_path, false, NULL, &err));
	assert_int_equal(err.code, EINVAL);
	assert_null(virtio_fs_create(&g->vm.env, BASE, 5, "tag", "/nonexistent/dir", false, NULL, &err));
	assert_non_null(strstr(err.message, "tag"));

	create(g, "tag", false);
	assert_null(virtio_fs_create(&g->vm.env, BASE + 0x100, 6, "other", dir_path, false, NULL, &err));
	assert_int_equal(err.code, EBUSY);
	virtio_fs_destroy(NULL);
}

#define H(name) cmocka_unit_test_setup_teardown(name, hand_setup, hand_teardown)
#define G(name) cmocka_unit_test_setup_teardown(name, guest_setup, guest_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		H(test_init_lookup_getattr_read),
		H(test_write),
		H(test_reply_split),
		H(test_request_split),
		H(test_oversized),
		H(test_no_writable),
		H(test_malformed),
		cmocka_unit_test_setup_teardown(test_read_only, hand_setup_ro, hand_teardown),
		G(test_device_config),
		G(test_device_config_long_tag),
		G(test_device_requests),
		G(test_device_read_only),
		G(test_create_errors),
		G(test_device_dax),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
