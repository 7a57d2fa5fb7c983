/* The FUSE server against a temporary directory: each opcode's success and
 * error cases, escape attempts (.., names with /, symlinks pointing out of
 * the tree, which must never be followed), read-only mode, guest-invented
 * nodeids and fhs, malformed requests and replies bounded by the buffer. */
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/fuse.h>

#include "fuse/fuse_server.h"
#include "test_tmpdir.h"

#define OUT_CAP (FUSE_SERVER_MAX_WRITE + 4096)

struct t {
	char dir[64];
	struct fuse_server *srv;
	uint8_t in[FUSE_SERVER_MAX_REQUEST];
	uint8_t out[OUT_CAP];
	size_t out_cap; /* per call; reset to OUT_CAP after each */
	const uint8_t *reply;
	size_t reply_len;
	uint64_t unique;
	uint32_t uid, gid; /* the requester in every header */
};

static struct t *T;

static void host_write(const char *rel, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", T->dir, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int host_stat(const char *rel, struct stat *st)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", T->dir, rel);
	return lstat(path, st);
}

/* Sends a raw request of in_len bytes from T->in; returns the reply's error. */
static int send_raw(size_t in_len)
{
	struct fuse_out_header oh;
	size_t out_len;

	assert_int_equal(fuse_server_handle(T->srv, T->in, in_len, T->out, T->out_cap, &out_len), 0);
	T->out_cap = OUT_CAP;
	if (out_len == 0)
		return 1; /* no reply */
	assert_true(out_len >= sizeof(oh));
	memcpy(&oh, T->out, sizeof(oh));
	assert_int_equal(oh.len, out_len);
	T->reply = T->out + sizeof(oh);
	T->reply_len = out_len - sizeof(oh);
	if (oh.error)
		assert_int_equal(T->reply_len, 0);
	return oh.error;
}

/* Builds opcode's request: arg, then s1 and s2 with their NULs, then data. */
static size_t build(uint32_t opcode, uint64_t nodeid, const void *arg, size_t arg_len, const char *s1,
		    const char *s2, const void *data, size_t data_len)
{
	struct fuse_in_header h = { .opcode = opcode, .nodeid = nodeid, .unique = ++T->unique, .uid = T->uid,
				    .gid = T->gid };
	size_t n = sizeof(h);

	if (arg_len)
		memcpy(T->in + n, arg, arg_len);
	n += arg_len;
	if (s1) {
		memcpy(T->in + n, s1, strlen(s1) + 1);
		n += strlen(s1) + 1;
	}
	if (s2) {
		memcpy(T->in + n, s2, strlen(s2) + 1);
		n += strlen(s2) + 1;
	}
	if (data_len)
		memcpy(T->in + n, data, data_len);
	n += data_len;
	h.len = (uint32_t)n;
	memcpy(T->in, &h, sizeof(h));
	return n;
}

static int call(uint32_t opcode, uint64_t nodeid, const void *arg, size_t arg_len, const char *s1,
		const char *s2)
{
	return send_raw(build(opcode, nodeid, arg, arg_len, s1, s2, NULL, 0));
}

static int do_init(uint32_t minor, struct fuse_init_out *out)
{
	struct fuse_init_in in = { .major = 7, .minor = minor, .max_readahead = 1 << 24,
				   .flags = FUSE_ASYNC_READ | FUSE_MAX_PAGES | FUSE_POSIX_LOCKS | FUSE_DO_READDIRPLUS };
	int err = call(FUSE_INIT, 0, &in, sizeof(in), NULL, NULL);

	if (err == 0 && out) {
		memset(out, 0, sizeof(*out));
		memcpy(out, T->reply, T->reply_len);
	}
	return err;
}

static void start(bool read_only)
{
	struct fuse_server_config cfg = { .read_only = read_only };
	capsa_error err = { 0 };

	T = calloc(1, sizeof(*T));
	assert_non_null(T);
	T->out_cap = OUT_CAP;
	assert_int_equal(tmpdir_create(T->dir, sizeof(T->dir), "fuse"), 0);
	host_write("hello", "hello world\n");
	cfg.root_dir = T->dir;
	T->srv = fuse_server_new(&cfg, &err);
	assert_non_null(T->srv);
	assert_int_equal(do_init(38, NULL), 0);
}

static void stop(void)
{
	fuse_server_free(T->srv);
	remove_tree(T->dir);
	free(T);
	T = NULL;
}

static int setup(void **state)
{
	(void)state;
	start(false);
	return 0;
}

static int setup_ro(void **state)
{
	(void)state;
	start(true);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	stop();
	return 0;
}

static uint64_t lookup(uint64_t parent, const char *name, struct fuse_entry_out *e)
{
	struct fuse_entry_out tmp;
	int err = call(FUSE_LOOKUP, parent, NULL, 0, name, NULL);

	assert_int_equal(err, 0);
	assert_int_equal(T->reply_len, sizeof(tmp));
	memcpy(e ? e : &tmp, T->reply, sizeof(tmp));
	return (e ? e : &tmp)->nodeid;
}

static int open_node(uint32_t opcode, uint64_t nodeid, uint32_t flags, uint64_t *fh)
{
	struct fuse_open_in in = { .flags = flags };
	struct fuse_open_out out;
	int err = call(opcode, nodeid, &in, sizeof(in), NULL, NULL);

	if (err == 0) {
		memcpy(&out, T->reply, sizeof(out));
		*fh = out.fh;
	}
	return err;
}

static int release(uint32_t opcode, uint64_t fh)
{
	struct fuse_release_in in = { .fh = fh };

	return call(opcode, 1, &in, sizeof(in), NULL, NULL);
}

static int read_fh(uint64_t fh, uint64_t off, uint32_t size)
{
	struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };

	return call(FUSE_READ, 1, &in, sizeof(in), NULL, NULL);
}

static int write_fh(uint64_t fh, uint64_t off, const char *data)
{
	struct fuse_write_in in = { .fh = fh, .offset = off, .size = (uint32_t)strlen(data) };

	return send_raw(build(FUSE_WRITE, 1, &in, sizeof(in), NULL, NULL, data, strlen(data)));
}

static void test_init(void **state)
{
	struct fuse_init_out out;

	(void)state;
	assert_int_equal(do_init(38, NULL), -EIO); /* already initialized */
	assert_int_equal(call(FUSE_DESTROY, 1, NULL, 0, NULL, NULL), 0);
	assert_int_equal(call(FUSE_GETATTR, 1, &(struct fuse_getattr_in){ 0 }, sizeof(struct fuse_getattr_in),
			      NULL, NULL),
			 -EIO);
	assert_int_equal(do_init(11, NULL), -EPROTO);
	assert_int_equal(do_init(99, &out), 0);
	assert_int_equal(out.major, 7);
	assert_int_equal(out.minor, FUSE_KERNEL_MINOR_VERSION);
	assert_int_equal(out.max_write, FUSE_SERVER_MAX_WRITE);
	assert_int_equal(out.max_readahead, 1 << 20);
	assert_int_equal(out.max_pages, 256);
	/* Only flags both sides know; locks were offered but are not ours. */
	assert_int_equal(out.flags, FUSE_ASYNC_READ | FUSE_MAX_PAGES | FUSE_DO_READDIRPLUS);
	assert_int_equal(call(FUSE_DESTROY, 1, NULL, 0, NULL, NULL), 0);
	assert_int_equal(do_init(20, &out), 0);
	assert_int_equal(out.minor, 20);
	assert_int_equal(T->reply_len, FUSE_COMPAT_22_INIT_OUT_SIZE);
}

static void test_lookup_forget(void **state)
{
	struct fuse_entry_out e;
	struct fuse_forget_in fin = { .nlookup = 2 };
	char longname[300];
	uint64_t id;

	(void)state;
	id = lookup(1, "hello", &e);
	assert_true(S_ISREG(e.attr.mode));
	assert_int_equal(e.attr.size, 12);
	assert_int_equal(lookup(1, "hello", NULL), id);
	assert_int_equal(fuse_server_inode_count(T->srv), 2);
	assert_int_equal(call(FUSE_LOOKUP, 1, NULL, 0, "missing", NULL), -ENOENT);
	assert_int_equal(call(FUSE_LOOKUP, 1, NULL, 0, "..", NULL), -EINVAL);
	assert_int_equal(call(FUSE_LOOKUP, 1, NULL, 0, ".", NULL), -EINVAL);
	assert_int_equal(call(FUSE_LOOKUP, 1, NULL, 0, "../etc", NULL), -EINVAL);
	assert_int_equal(call(FUSE_LOOKUP, 1, NULL, 0, "", NULL), -EINVAL);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	assert_int_equal(call(FUSE_LOOKUP, 1, NULL, 0, longname, NULL), -ENAMETOOLONG);
	/* Name without its NUL. */
	assert_int_equal(send_raw(build(FUSE_LOOKUP, 1, "hello", 5, NULL, NULL, NULL, 0)), -EINVAL);
	/* Bogus parents. */
	assert_int_equal(call(FUSE_LOOKUP, 0, NULL, 0, "hello", NULL), -ESTALE);
	assert_int_equal(call(FUSE_LOOKUP, 12345, NULL, 0, "hello", NULL), -ESTALE);
	assert_int_equal(call(FUSE_LOOKUP, ~0ull, NULL, 0, "hello", NULL), -ESTALE);
	assert_int_equal(call(FUSE_LOOKUP, id, NULL, 0, "x", NULL), -ENOTDIR);
	/* FORGET takes no reply and drops the inode at zero lookups. */
	assert_int_equal(call(FUSE_FORGET, id, &fin, sizeof(fin), NULL, NULL), 1);
	assert_int_equal(fuse_server_inode_count(T->srv), 1);
	assert_int_equal(call(FUSE_GETATTR, id, &(struct fuse_getattr_in){ 0 }, sizeof(struct fuse_getattr_in),
			      NULL, NULL),
			 -ESTALE);
	/* The root is never forgotten; unknown ids are ignored. */
	assert_int_equal(call(FUSE_FORGET, 1, &fin, sizeof(fin), NULL, NULL), 1);
	assert_int_equal(call(FUSE_FORGET, 999, &fin, sizeof(fin), NULL, NULL), 1);
}

static void test_batch_forget(void **state)
{
	struct {
		struct fuse_batch_forget_in in;
		struct fuse_forget_one one[2];
	} b = { .in = { .count = 2 } };

	(void)state;
	host_write("other", "x");
	b.one[0] = (struct fuse_forget_one){ .nodeid = lookup(1, "hello", NULL), .nlookup = 1 };
	b.one[1] = (struct fuse_forget_one){ .nodeid = lookup(1, "other", NULL), .nlookup = 5 };
	assert_int_equal(fuse_server_inode_count(T->srv), 3);
	b.in.count = 1000; /* more than the body holds: ignored whole */
	assert_int_equal(call(FUSE_BATCH_FORGET, 0, &b, sizeof(b), NULL, NULL), 1);
	assert_int_equal(fuse_server_inode_count(T->srv), 3);
	b.in.count = 2;
	assert_int_equal(call(FUSE_BATCH_FORGET, 0, &b, sizeof(b), NULL, NULL), 1);
	assert_int_equal(fuse_server_inode_count(T->srv), 1);
}

static void test_symlinks_not_followed(void **state)
{
	char path[256];
	struct fuse_entry_out e;
	uint64_t abs, rel, fh;

	(void)state;
	snprintf(path, sizeof(path), "%s/abs", T->dir);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	snprintf(path, sizeof(path), "%s/rel", T->dir);
	assert_int_equal(symlink("../../../../etc", path), 0);
	abs = lookup(1, "abs", &e);
	assert_true(S_ISLNK(e.attr.mode));
	assert_int_equal(call(FUSE_READLINK, abs, NULL, 0, NULL, NULL), 0);
	assert_int_equal(T->reply_len, strlen("/etc/passwd"));
	assert_memory_equal(T->reply, "/etc/passwd", T->reply_len);
	assert_int_equal(open_node(FUSE_OPEN, abs, O_RDONLY, &fh), -ELOOP);
	rel = lookup(1, "rel", &e);
	assert_true(S_ISLNK(e.attr.mode));
	assert_int_equal(open_node(FUSE_OPENDIR, rel, O_RDONLY, &fh), -ENOTDIR);
	/* ".." from a subdirectory is refused like from the root. */
	snprintf(path, sizeof(path), "%s/sub", T->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(call(FUSE_LOOKUP, lookup(1, "sub", NULL), NULL, 0, "..", NULL), -EINVAL);
	/* Looking up below a symlink does not go through it. */
	assert_int_equal(call(FUSE_LOOKUP, rel, NULL, 0, "passwd", NULL), -ENOTDIR);
	/* Creating through a symlink's name does not follow it either. */
	assert_int_equal(call(FUSE_MKDIR, rel, &(struct fuse_mkdir_in){ .mode = 0755 }, sizeof(struct fuse_mkdir_in),
			      "x", NULL),
			 -ENOTDIR);
	struct fuse_create_in cin = { .flags = O_WRONLY, .mode = 0644 };
	assert_int_equal(call(FUSE_CREATE, 1, &cin, sizeof(cin), "abs", NULL), -ELOOP);
	/* Setattr on a symlink must not reach its target. */
	struct fuse_setattr_in sin = { .valid = FATTR_SIZE, .size = 0 };
	assert_int_equal(call(FUSE_SETATTR, abs, &sin, sizeof(sin), NULL, NULL), -EOPNOTSUPP);
	/* READLINK of a non-symlink, and a reply buffer too small for the target. */
	assert_int_equal(call(FUSE_READLINK, 1, NULL, 0, NULL, NULL), -EINVAL);
	T->out_cap = sizeof(struct fuse_out_header) + 4;
	assert_int_equal(call(FUSE_READLINK, abs, NULL, 0, NULL, NULL), -ENAMETOOLONG);
	/* A symlink made by the guest is stored as text. */
	assert_int_equal(call(FUSE_SYMLINK, 1, NULL, 0, "made", "/"), 0);
	assert_int_equal(readlink((snprintf(path, sizeof(path), "%s/made", T->dir), path), (char[8]){ 0 }, 8), 1);
}

static void test_open_read_write(void **state)
{
	uint64_t id, dir, fh, dfh;
	struct fuse_create_in cin = { .flags = O_RDWR, .mode = 0640 };
	struct fuse_entry_out e;
	struct fuse_open_out o;

	(void)state;
	id = lookup(1, "hello", NULL);
	assert_int_equal(open_node(FUSE_OPEN, id, O_RDONLY, &fh), 0);
	assert_int_equal(read_fh(fh, 0, 100), 0);
	assert_int_equal(T->reply_len, 12);
	assert_memory_equal(T->reply, "hello world\n", 12);
	assert_int_equal(read_fh(fh, 6, 5), 0);
	assert_memory_equal(T->reply, "world", 5);
	/* The reply buffer caps a read however big its size. */
	T->out_cap = sizeof(struct fuse_out_header) + 3;
	assert_int_equal(read_fh(fh, 0, 100), 0);
	assert_int_equal(T->reply_len, 3);
	assert_int_equal(read_fh(fh + 1, 0, 100), -EBADF);
	assert_int_equal(read_fh(0, 0, 100), -EBADF);
	assert_int_equal(read_fh(~0ull, 0, 100), -EBADF);
	assert_int_equal(read_fh(fh, 1ull << 63, 100), -EINVAL);
	assert_int_equal(write_fh(fh, 0, "x"), -EBADF); /* opened read-only */
	assert_int_equal(open_node(FUSE_OPEN, 1, O_RDONLY, &dfh), -EISDIR);
	assert_int_equal(open_node(FUSE_OPENDIR, id, O_RDONLY, &dfh), -ENOTDIR);
	assert_int_equal(open_node(FUSE_OPEN, 777, O_RDONLY, &dfh), -ESTALE);
	assert_int_equal(open_node(FUSE_OPENDIR, 1, O_RDONLY, &dfh), 0);
	/* A directory handle is no file handle and the other way round. */
	assert_int_equal(read_fh(dfh, 0, 10), -EBADF);
	assert_int_equal(release(FUSE_RELEASE, dfh), -EBADF);
	assert_int_equal(release(FUSE_RELEASEDIR, fh), -EBADF);
	assert_int_equal(release(FUSE_RELEASEDIR, dfh), 0);
	assert_int_equal(release(FUSE_RELEASE, fh), 0);
	assert_int_equal(release(FUSE_RELEASE, fh), -EBADF);
	assert_int_equal(fuse_server_handle_count(T->srv), 0);

	assert_int_equal(call(FUSE_CREATE, 1, &cin, sizeof(cin), "new", NULL), 0);
	assert_int_equal(T->reply_len, sizeof(e) + sizeof(o));
	memcpy(&e, T->reply, sizeof(e));
	memcpy(&o, T->reply + sizeof(e), sizeof(o));
	assert_true(S_ISREG(e.attr.mode));
	assert_int_equal(e.attr.mode & 0777, 0640);
	assert_int_equal(write_fh(o.fh, 0, "abcdef"), 0);
	assert_int_equal(((struct fuse_write_out *)T->reply)->size, 6);
	/* A WRITE whose size claims more than the request holds. */
	struct fuse_write_in win = { .fh = o.fh, .size = 100 };
	assert_int_equal(send_raw(build(FUSE_WRITE, 1, &win, sizeof(win), NULL, NULL, "abc", 3)), -EINVAL);
	assert_int_equal(read_fh(o.fh, 2, 10), 0);
	assert_int_equal(T->reply_len, 4);
	assert_memory_equal(T->reply, "cdef", 4);
	assert_int_equal(call(FUSE_FLUSH, 1, &(struct fuse_flush_in){ .fh = o.fh }, sizeof(struct fuse_flush_in),
			      NULL, NULL),
			 0);
	assert_int_equal(call(FUSE_FLUSH, 1, &(struct fuse_flush_in){ .fh = 99 }, sizeof(struct fuse_flush_in), NULL,
			      NULL),
			 -EBADF);
	assert_int_equal(call(FUSE_FSYNC, 1, &(struct fuse_fsync_in){ .fh = o.fh, .fsync_flags = 1 },
			      sizeof(struct fuse_fsync_in), NULL, NULL),
			 0);
	struct fuse_lseek_in lin = { .fh = o.fh, .offset = 0, .whence = SEEK_END };
	assert_int_equal(call(FUSE_LSEEK, 1, &lin, sizeof(lin), NULL, NULL), 0);
	assert_int_equal(((struct fuse_lseek_out *)T->reply)->offset, 6);
	lin.whence = 77;
	assert_int_equal(call(FUSE_LSEEK, 1, &lin, sizeof(lin), NULL, NULL), -EINVAL);
	struct fuse_fallocate_in fin = { .fh = o.fh, .offset = 0, .length = 4096 };
	assert_int_equal(call(FUSE_FALLOCATE, 1, &fin, sizeof(fin), NULL, NULL), 0);
	/* Copy within the file, from the start to 8192. */
	struct fuse_copy_file_range_in cr = { .fh_in = o.fh, .fh_out = o.fh, .off_out = 8192, .len = 6 };
	assert_int_equal(call(FUSE_COPY_FILE_RANGE, 1, &cr, sizeof(cr), NULL, NULL), 0);
	assert_int_equal(((struct fuse_write_out *)T->reply)->size, 6);
	cr.fh_out = 4000;
	assert_int_equal(call(FUSE_COPY_FILE_RANGE, 1, &cr, sizeof(cr), NULL, NULL), -EBADF);
	/* CREATE of an existing name with O_EXCL, and of bad names. */
	cin.flags = O_RDWR | O_EXCL;
	assert_int_equal(call(FUSE_CREATE, 1, &cin, sizeof(cin), "new", NULL), -EEXIST);
	assert_int_equal(call(FUSE_CREATE, 1, &cin, sizeof(cin), "..", NULL), -EINVAL);
	assert_int_equal(call(FUSE_CREATE, 1, &cin, sizeof(cin), "a/b", NULL), -EINVAL);
	dir = e.nodeid;
	assert_int_equal(call(FUSE_CREATE, dir, &cin, sizeof(cin), "x", NULL), -ENOTDIR);
	/* DESTROY drops everything the guest held. */
	assert_int_equal(call(FUSE_DESTROY, 1, NULL, 0, NULL, NULL), 0);
	assert_int_equal(fuse_server_handle_count(T->srv), 0);
	assert_int_equal(fuse_server_inode_count(T->srv), 1);
}

static void test_setattr(void **state)
{
	struct fuse_setattr_in in = { 0 };
	struct fuse_attr_out out;
	struct stat st;
	uint64_t id;

	(void)state;
	id = lookup(1, "hello", NULL);
	in.valid = FATTR_MODE | FATTR_SIZE | FATTR_MTIME | FATTR_ATIME;
	if (geteuid() == 0)
		in.valid |= FATTR_UID | FATTR_GID;
	in.mode = S_IFREG | 0600;
	in.size = 5;
	in.mtime = 1000000;
	in.atime = 2000000;
	in.uid = 1234;
	in.gid = 5678;
	assert_int_equal(call(FUSE_SETATTR, id, &in, sizeof(in), NULL, NULL), 0);
	memcpy(&out, T->reply, sizeof(out));
	assert_int_equal(out.attr.size, 5);
	assert_int_equal(host_stat("hello", &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 5);
	assert_int_equal(st.st_mtime, 1000000);
	assert_int_equal(st.st_atime, 2000000);
	if (geteuid() == 0) {
		assert_int_equal(st.st_uid, 1234);
		assert_int_equal(st.st_gid, 5678);
	}
	in.valid = FATTR_MTIME;
	in.mtimensec = 2000000000u;
	assert_int_equal(call(FUSE_SETATTR, id, &in, sizeof(in), NULL, NULL), -EINVAL);
	in.valid = FATTR_SIZE | FATTR_FH;
	in.fh = 42;
	assert_int_equal(call(FUSE_SETATTR, id, &in, sizeof(in), NULL, NULL), -EBADF);
	in.valid = FATTR_SIZE;
	assert_int_equal(call(FUSE_SETATTR, 1, &in, sizeof(in), NULL, NULL), -EISDIR);
	/* A short SETATTR. */
	assert_int_equal(call(FUSE_SETATTR, id, &in, sizeof(in) - 1, NULL, NULL), -EINVAL);
}

/* What a request creates belongs to its requester; what exists stays. */
static void test_owner(void **state)
{
	struct fuse_mkdir_in min = { .mode = 0755 };
	struct fuse_create_in cin = { .flags = O_RDWR, .mode = 0644 };
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip();
	T->uid = 1000;
	T->gid = 2000;
	assert_int_equal(call(FUSE_MKDIR, 1, &min, sizeof(min), "d", NULL), 0);
	assert_int_equal(((struct fuse_entry_out *)T->reply)->attr.uid, 1000);
	assert_int_equal(call(FUSE_SYMLINK, 1, NULL, 0, "s", "target"), 0);
	assert_int_equal(call(FUSE_CREATE, 1, &cin, sizeof(cin), "f", NULL), 0);
	assert_int_equal(call(FUSE_CREATE, 1, &cin, sizeof(cin), "hello", NULL), 0);
	assert_int_equal(host_stat("d", &st), 0);
	assert_true(st.st_uid == 1000 && st.st_gid == 2000);
	assert_int_equal(host_stat("s", &st), 0);
	assert_true(st.st_uid == 1000 && st.st_gid == 2000);
	assert_int_equal(host_stat("f", &st), 0);
	assert_true(st.st_uid == 1000 && st.st_gid == 2000);
	assert_int_equal(host_stat("hello", &st), 0);
	assert_true(st.st_uid == 0);
	assert_int_equal(call(FUSE_DESTROY, 1, NULL, 0, NULL, NULL), 0);
}

static void test_namespace_ops(void **state)
{
	struct fuse_mkdir_in min = { .mode = 0755 };
	struct fuse_entry_out a, b, e;
	struct stat st;
	uint64_t hello;

	(void)state;
	assert_int_equal(call(FUSE_MKDIR, 1, &min, sizeof(min), "a", NULL), 0);
	memcpy(&a, T->reply, sizeof(a));
	assert_true(S_ISDIR(a.attr.mode));
	assert_int_equal(call(FUSE_MKDIR, 1, &min, sizeof(min), "b", NULL), 0);
	memcpy(&b, T->reply, sizeof(b));
	assert_int_equal(call(FUSE_MKDIR, 1, &min, sizeof(min), "a", NULL), -EEXIST);
	assert_int_equal(call(FUSE_MKDIR, 1, &min, sizeof(min), "..", NULL), -EINVAL);
	/* Rename across directories. */
	assert_int_equal(call(FUSE_RENAME, 1, &(struct fuse_rename_in){ .newdir = a.nodeid },
			      sizeof(struct fuse_rename_in), "hello", "moved"),
			 0);
	assert_int_equal(host_stat("a/moved", &st), 0);
	assert_int_equal(call(FUSE_RENAME, a.nodeid, &(struct fuse_rename_in){ .newdir = b.nodeid },
			      sizeof(struct fuse_rename_in), "moved", ".."),
			 -EINVAL);
	assert_int_equal(call(FUSE_RENAME, a.nodeid, &(struct fuse_rename_in){ .newdir = 4242 },
			      sizeof(struct fuse_rename_in), "moved", "x"),
			 -ESTALE);
	/* Second name missing its NUL. */
	assert_int_equal(send_raw(build(FUSE_RENAME, a.nodeid, &(struct fuse_rename_in){ .newdir = b.nodeid },
					sizeof(struct fuse_rename_in), "moved", NULL, "x", 1)),
			 -EINVAL);
	struct fuse_rename2_in r2 = { .newdir = b.nodeid, .flags = RENAME_NOREPLACE };
	assert_int_equal(call(FUSE_RENAME2, a.nodeid, &r2, sizeof(r2), "moved", "hello2"), 0);
	host_write("b/taken", "");
	assert_int_equal(call(FUSE_RENAME2, b.nodeid, &r2, sizeof(r2), "hello2", "taken"), -EEXIST);
	r2.flags = RENAME_WHITEOUT;
	assert_int_equal(call(FUSE_RENAME2, b.nodeid, &r2, sizeof(r2), "hello2", "taken"), -EINVAL);
	/* Hard link into another directory. */
	hello = lookup(b.nodeid, "hello2", NULL);
	assert_int_equal(call(FUSE_LINK, a.nodeid, &(struct fuse_link_in){ .oldnodeid = hello },
			      sizeof(struct fuse_link_in), "linked", NULL),
			 0);
	memcpy(&e, T->reply, sizeof(e));
	assert_int_equal(e.nodeid, hello); /* same host inode, same nodeid */
	assert_int_equal(e.attr.nlink, 2);
	assert_int_equal(call(FUSE_LINK, a.nodeid, &(struct fuse_link_in){ .oldnodeid = b.nodeid },
			      sizeof(struct fuse_link_in), "dirlink", NULL),
			 -EPERM);
	/* mknod: FIFOs yes, devices no. */
	struct fuse_mknod_in kin = { .mode = S_IFIFO | 0644 };
	assert_int_equal(call(FUSE_MKNOD, 1, &kin, sizeof(kin), "fifo", NULL), 0);
	/* CREATE of an existing FIFO or directory opens neither. */
	struct fuse_create_in cin = { .flags = O_RDWR, .mode = 0644 };
	assert_int_equal(call(FUSE_CREATE, 1, &cin, sizeof(cin), "fifo", NULL), -EACCES);
	assert_int_equal(call(FUSE_CREATE, 1, &cin, sizeof(cin), "b", NULL), -EISDIR);
	assert_int_equal(fuse_server_handle_count(T->srv), 0);
	kin.mode = S_IFCHR | 0644;
	kin.rdev = makedev(1, 3);
	assert_int_equal(call(FUSE_MKNOD, 1, &kin, sizeof(kin), "null", NULL), -EPERM);
	/* unlink / rmdir. */
	assert_int_equal(call(FUSE_UNLINK, a.nodeid, NULL, 0, "linked", NULL), 0);
	assert_int_equal(call(FUSE_UNLINK, a.nodeid, NULL, 0, "linked", NULL), -ENOENT);
	assert_int_equal(call(FUSE_RMDIR, 1, NULL, 0, "b", NULL), -ENOTEMPTY);
	assert_int_equal(call(FUSE_RMDIR, 1, NULL, 0, "a", NULL), 0);
	assert_int_equal(call(FUSE_RMDIR, 1, NULL, 0, "..", NULL), -EINVAL);
	assert_int_equal(call(FUSE_UNLINK, 1, NULL, 0, "/etc/passwd", NULL), -EINVAL);
	/* STATFS. */
	assert_int_equal(call(FUSE_STATFS, 1, NULL, 0, NULL, NULL), 0);
	assert_int_equal(T->reply_len, sizeof(struct fuse_statfs_out));
	assert_true(((struct fuse_statfs_out *)T->reply)->st.bsize > 0);
}

/* Reads the whole root directory in requests of size bytes, following the
 * offsets; returns how many entries named f<N> were seen, each once. */
static int read_dir(uint32_t opcode, uint32_t size)
{
	struct fuse_read_in in = { .size = size };
	bool seen[64] = { 0 };
	uint64_t fh;
	int count = 0, rounds = 0;

	assert_int_equal(open_node(FUSE_OPENDIR, 1, O_RDONLY, &fh), 0);
	in.fh = fh;
	for (;;) {
		size_t pos = 0;

		assert_int_equal(call(opcode, 1, &in, sizeof(in), NULL, NULL), 0);
		assert_true(T->reply_len <= size);
		if (T->reply_len == 0)
			break;
		assert_true(++rounds < 1000);
		while (pos < T->reply_len) {
			struct fuse_dirent d;
			size_t head = opcode == FUSE_READDIRPLUS ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
			struct fuse_entry_out e;
			char name[256] = { 0 };
			int n;

			memcpy(&e, T->reply + pos, sizeof(e));
			memcpy(&d, T->reply + pos + head - FUSE_NAME_OFFSET, sizeof(d));
			memcpy(name, T->reply + pos + head, d.namelen);
			if (sscanf(name, "f%d", &n) == 1) {
				assert_false(seen[n]);
				seen[n] = true;
				count++;
				if (opcode == FUSE_READDIRPLUS) {
					assert_int_not_equal(e.nodeid, 0);
					assert_int_equal(e.attr.size, (uint64_t)n);
				}
			}
			in.offset = d.off;
			pos += FUSE_DIRENT_ALIGN(head + d.namelen);
		}
	}
	assert_int_equal(release(FUSE_RELEASEDIR, fh), 0);
	return count;
}

static void test_readdir(void **state)
{
	char name[16], text[64];

	(void)state;
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		memset(text, 'x', sizeof(text));
		text[i] = 0;
		host_write(name, text);
	}
	assert_int_equal(read_dir(FUSE_READDIR, 4096), 40);
	assert_int_equal(read_dir(FUSE_READDIR, 40), 40); /* one entry at a time */
	assert_int_equal(read_dir(FUSE_READDIRPLUS, 200), 40);
	/* The root, the 40 files and "hello", whatever the repeats. */
	assert_int_equal(fuse_server_inode_count(T->srv), 42);
	assert_int_equal(read_dir(FUSE_READDIRPLUS, 65536), 40);
	assert_int_equal(fuse_server_inode_count(T->srv), 42);
	/* Too small for any entry: nothing, not an overflow. */
	struct fuse_read_in in = { .size = 8 };
	uint64_t fh;
	assert_int_equal(open_node(FUSE_OPENDIR, 1, O_RDONLY, &fh), 0);
	in.fh = fh;
	assert_int_equal(call(FUSE_READDIR, 1, &in, sizeof(in), NULL, NULL), 0);
	assert_int_equal(T->reply_len, 0);
	in.size = 4096;
	T->out_cap = sizeof(struct fuse_out_header) + 30;
	assert_int_equal(call(FUSE_READDIR, 1, &in, sizeof(in), NULL, NULL), 0);
	assert_true(T->reply_len <= 30);
	in.fh = 1234;
	assert_int_equal(call(FUSE_READDIR, 1, &in, sizeof(in), NULL, NULL), -EBADF);
	assert_int_equal(call(FUSE_FSYNCDIR, 1, &(struct fuse_fsync_in){ .fh = fh }, sizeof(struct fuse_fsync_in),
			      NULL, NULL),
			 0);
	assert_int_equal(release(FUSE_RELEASEDIR, fh), 0);
}

static void test_xattr(void **state)
{
	struct fuse_setxattr_in sin = { .size = 3 };
	struct fuse_getxattr_in gin = { .size = 0 };
	uint64_t id;
	int err;

	(void)state;
	id = lookup(1, "hello", NULL);
	err = send_raw(build(FUSE_SETXATTR, id, &sin, FUSE_COMPAT_SETXATTR_IN_SIZE, "user.k", NULL, "abc", 3));
	if (err == -EOPNOTSUPP)
		skip();
	assert_int_equal(err, 0);
	assert_int_equal(call(FUSE_GETXATTR, id, &gin, sizeof(gin), "user.k", NULL), 0);
	assert_int_equal(((struct fuse_getxattr_out *)T->reply)->size, 3);
	gin.size = 2;
	assert_int_equal(call(FUSE_GETXATTR, id, &gin, sizeof(gin), "user.k", NULL), -ERANGE);
	gin.size = 100;
	assert_int_equal(call(FUSE_GETXATTR, id, &gin, sizeof(gin), "user.k", NULL), 0);
	assert_int_equal(T->reply_len, 3);
	assert_memory_equal(T->reply, "abc", 3);
	assert_int_equal(call(FUSE_LISTXATTR, id, &gin, sizeof(gin), NULL, NULL), 0);
	assert_int_equal(T->reply_len, 7);
	assert_memory_equal(T->reply, "user.k", 7);
	/* A value buffer the reply cannot hold, for either kind: ERANGE, never
	 * a reply longer than the room (found by fuzzing). */
	T->out_cap = sizeof(struct fuse_out_header);  /* for the next call only */
	assert_int_equal(call(FUSE_LISTXATTR, id, &gin, sizeof(gin), NULL, NULL), -ERANGE);
	T->out_cap = sizeof(struct fuse_out_header);
	assert_int_equal(call(FUSE_GETXATTR, id, &gin, sizeof(gin), "user.k", NULL), -ERANGE);
	T->out_cap = sizeof(struct fuse_out_header) + 4;
	assert_int_equal(call(FUSE_LISTXATTR, id, &gin, sizeof(gin), NULL, NULL), -ERANGE);
	/* Value size beyond the body; forbidden namespaces. */
	sin.size = 50;
	assert_int_equal(send_raw(build(FUSE_SETXATTR, id, &sin, FUSE_COMPAT_SETXATTR_IN_SIZE, "user.k", NULL, "abc",
					3)),
			 -EINVAL);
	sin.size = 1;
	assert_int_equal(send_raw(build(FUSE_SETXATTR, id, &sin, FUSE_COMPAT_SETXATTR_IN_SIZE, "security.capability",
					NULL, "a", 1)),
			 -EOPNOTSUPP);
	assert_int_equal(call(FUSE_REMOVEXATTR, id, NULL, 0, "trusted.x", NULL), -EOPNOTSUPP);
	assert_int_equal(call(FUSE_REMOVEXATTR, id, NULL, 0, "user.k", NULL), 0);
	gin.size = 0;
	assert_int_equal(call(FUSE_GETXATTR, id, &gin, sizeof(gin), "user.k", NULL), -ENODATA);
}

static void test_read_only(void **state)
{
	struct fuse_mkdir_in min = { .mode = 0755 };
	struct fuse_create_in cin = { .flags = O_RDWR, .mode = 0644 };
	struct fuse_setattr_in sin = { .valid = FATTR_SIZE };
	uint64_t id, fh;

	(void)state;
	id = lookup(1, "hello", NULL);
	assert_int_equal(open_node(FUSE_OPEN, id, O_RDWR, &fh), -EROFS);
	assert_int_equal(open_node(FUSE_OPEN, id, O_WRONLY, &fh), -EROFS);
	assert_int_equal(open_node(FUSE_OPEN, id, O_RDONLY | O_TRUNC, &fh), -EROFS);
	assert_int_equal(call(FUSE_CREATE, 1, &cin, sizeof(cin), "n", NULL), -EROFS);
	assert_int_equal(call(FUSE_MKDIR, 1, &min, sizeof(min), "d", NULL), -EROFS);
	assert_int_equal(call(FUSE_SETATTR, id, &sin, sizeof(sin), NULL, NULL), -EROFS);
	assert_int_equal(call(FUSE_UNLINK, 1, NULL, 0, "hello", NULL), -EROFS);
	assert_int_equal(call(FUSE_SYMLINK, 1, NULL, 0, "s", "t"), -EROFS);
	assert_int_equal(call(FUSE_RENAME, 1, &(struct fuse_rename_in){ .newdir = 1 }, sizeof(struct fuse_rename_in),
			      "hello", "x"),
			 -EROFS);
	assert_int_equal(open_node(FUSE_OPEN, id, O_RDONLY, &fh), 0);
	assert_int_equal(write_fh(fh, 0, "x"), -EROFS);
	assert_int_equal(read_fh(fh, 0, 5), 0);
	assert_memory_equal(T->reply, "hello", 5);
	assert_int_equal(release(FUSE_RELEASE, fh), 0);
}

static void test_malformed(void **state)
{
	struct fuse_in_header h = { .len = sizeof(h), .opcode = FUSE_STATFS, .nodeid = 1, .unique = 7 };
	size_t out_len;

	(void)state;
	/* No reply possible. */
	assert_int_equal(fuse_server_handle(T->srv, &h, sizeof(h) - 1, T->out, OUT_CAP, &out_len), -1);
	assert_int_equal(fuse_server_handle(T->srv, &h, sizeof(h), T->out, 15, &out_len), -1);
	/* Header length beyond the buffer, below a header, above the cap. */
	h.len = sizeof(h) + 1;
	memcpy(T->in, &h, sizeof(h));
	assert_int_equal(send_raw(sizeof(h)), -EINVAL);
	h.len = 3;
	memcpy(T->in, &h, sizeof(h));
	assert_int_equal(send_raw(sizeof(h)), -EINVAL);
	h.len = FUSE_SERVER_MAX_REQUEST + 1;
	memcpy(T->in, &h, sizeof(h));
	assert_int_equal(send_raw(FUSE_SERVER_MAX_REQUEST), -EINVAL);
	/* A longer buffer than the header says is fine. */
	h.len = sizeof(h);
	memcpy(T->in, &h, sizeof(h));
	assert_int_equal(send_raw(sizeof(h) + 100), 0);
	/* Unknown opcodes. */
	h.opcode = 9999;
	memcpy(T->in, &h, sizeof(h));
	assert_int_equal(send_raw(sizeof(h)), -ENOSYS);
	h.opcode = FUSE_SETLK;
	memcpy(T->in, &h, sizeof(h));
	assert_int_equal(send_raw(sizeof(h)), -ENOSYS);
	assert_int_equal(((struct fuse_out_header *)T->out)->unique, 7);
	/* Truncated fixed structs. */
	assert_int_equal(call(FUSE_INIT, 0, &(struct fuse_init_in){ .major = 7, .minor = 38 }, 12, NULL, NULL),
			 -EINVAL);
	assert_int_equal(call(FUSE_READ, 1, &(struct fuse_read_in){ 0 }, sizeof(struct fuse_read_in) - 1, NULL, NULL),
			 -EINVAL);
	assert_int_equal(call(FUSE_GETATTR, 1, NULL, 0, NULL, NULL), -EINVAL);
	/* A fixed-size reply that does not fit. */
	T->out_cap = sizeof(struct fuse_out_header) + 8;
	assert_int_equal(call(FUSE_GETATTR, 1, &(struct fuse_getattr_in){ 0 }, sizeof(struct fuse_getattr_in), NULL,
			      NULL),
			 -ERANGE);
	T->out_cap = sizeof(struct fuse_out_header) + 8;
	assert_int_equal(call(FUSE_LOOKUP, 1, NULL, 0, "hello", NULL), -ERANGE);
	assert_int_equal(fuse_server_inode_count(T->srv), 1); /* no reference taken */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_forget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_forget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks_not_followed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_read_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setattr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_namespace_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readdir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xattr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup_ro, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
