/* FUSE request dispatcher: checks every length and name in a request before
 * the passthrough backend sees it, and keeps replies within the caller's
 * buffer. Protocol structs and opcodes come from <linux/fuse.h>. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <linux/xattr.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuse/dax_window.h"
#include "fuse/fuse_server.h"
#include "fuse/passthrough.h"
#include "util/error.h"

/* Oldest protocol minor we speak: 7.12 fixed the sizes of every request
 * and reply struct used here (all later changes are appended fields). */
#define OLDEST_MINOR 12
#define MAX_READAHEAD (1u << 20)
#define OUR_INIT_FLAGS \
	(FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_MAX_PAGES)

struct fuse_server {
	struct passthrough *pt;
	struct dax_window *dax;
	bool read_only;
	bool initialized;
	uint32_t minor;
};

/* One request being handled: its body and the room left for the reply's. */
struct req {
	const struct fuse_in_header *h;
	const uint8_t *body;
	size_t len;
	size_t pos; /* parse position in body */
	uint8_t *out;
	size_t room;
	size_t out_len;
};

typedef int (*op_fn)(struct fuse_server *srv, struct req *r);

struct op {
	op_fn fn;
	size_t in_size;	 /* fixed struct at the start of the body */
	size_t out_size; /* fixed reply body, checked against room up front */
	bool modifies;	 /* EROFS in read-only mode */
	bool no_reply;
};

static void take(struct req *r, void *dst, size_t size)
{
	memcpy(dst, r->body, size);
	r->pos = size;
}

static void reply(struct req *r, const void *data, size_t size)
{
	memcpy(r->out + r->out_len, data, size);
	r->out_len += size;
}

/* The next NUL-terminated string in the body, of 1..max bytes. */
static int take_string(struct req *r, const char **s, size_t max)
{
	const uint8_t *start = r->body + r->pos, *nul;
	size_t n;

	if (r->pos >= r->len)
		return -EINVAL;
	nul = memchr(start, '\0', r->len - r->pos);
	if (!nul)
		return -EINVAL;
	n = (size_t)(nul - start);
	if (n == 0)
		return -EINVAL;
	if (n > max)
		return -ENAMETOOLONG;
	*s = (const char *)start;
	r->pos += n + 1;
	return 0;
}

/* A directory entry name: one component that stays where it is. */
static int take_name(struct req *r, const char **name)
{
	int ret = take_string(r, name, NAME_MAX);

	if (ret < 0)
		return ret;
	if (strchr(*name, '/') || !strcmp(*name, ".") || !strcmp(*name, ".."))
		return -EINVAL;
	return 0;
}

static int do_init(struct fuse_server *srv, struct req *r)
{
	struct fuse_init_in in;
	struct fuse_init_out out = { 0 };
	size_t size;

	take(r, &in, offsetof(struct fuse_init_in, flags2));
	if (srv->initialized)
		return -EIO;
	if (in.major != FUSE_KERNEL_VERSION || in.minor < OLDEST_MINOR)
		return -EPROTO;
	size = in.minor < 23 ? FUSE_COMPAT_22_INIT_OUT_SIZE : sizeof(out);
	if (r->room < size)
		return -ERANGE;
	srv->minor = in.minor < FUSE_KERNEL_MINOR_VERSION ? in.minor : FUSE_KERNEL_MINOR_VERSION;
	out.major = FUSE_KERNEL_VERSION;
	out.minor = srv->minor;
	out.max_readahead = in.max_readahead < MAX_READAHEAD ? in.max_readahead : MAX_READAHEAD;
	out.flags = in.flags & OUR_INIT_FLAGS;
	/* The guest's mappings must start on our pages (the guest kernel maps
	 * 2 MiB chunks, which always do). */
	if (srv->dax && (in.flags & FUSE_MAP_ALIGNMENT)) {
		out.flags |= FUSE_MAP_ALIGNMENT;
		out.map_alignment = (uint16_t)__builtin_ctzll(srv->dax->page);
	}
	out.max_background = 64;
	out.congestion_threshold = 48;
	out.max_write = FUSE_SERVER_MAX_WRITE;
	out.time_gran = 1;
	if (out.flags & FUSE_MAX_PAGES)
		out.max_pages = FUSE_SERVER_MAX_WRITE / 4096;
	srv->initialized = true;
	reply(r, &out, size);
	return 0;
}

static int do_destroy(struct fuse_server *srv, struct req *r)
{
	(void)r;
	/* The next session's driver knows nothing of this one's mappings;
	 * they would only keep files open and show stale data. */
	if (srv->dax)
		dax_window_reset(srv->dax);
	passthrough_reset(srv->pt);
	srv->initialized = false;
	return 0;
}

static int do_lookup(struct fuse_server *srv, struct req *r)
{
	struct fuse_entry_out out;
	const char *name;
	int ret;

	if ((ret = take_name(r, &name)) < 0 || (ret = pt_lookup(srv->pt, r->h->nodeid, name, &out)) < 0)
		return ret;
	reply(r, &out, sizeof(out));
	return 0;
}

static int do_forget(struct fuse_server *srv, struct req *r)
{
	struct fuse_forget_in in;

	take(r, &in, sizeof(in));
	pt_forget(srv->pt, r->h->nodeid, in.nlookup);
	return 0;
}

static int do_batch_forget(struct fuse_server *srv, struct req *r)
{
	struct fuse_batch_forget_in in;
	struct fuse_forget_one one;

	take(r, &in, sizeof(in));
	if (in.count > (r->len - r->pos) / sizeof(one))
		return -EINVAL;
	for (uint32_t i = 0; i < in.count; i++) {
		memcpy(&one, r->body + r->pos + i * sizeof(one), sizeof(one));
		pt_forget(srv->pt, one.nodeid, one.nlookup);
	}
	return 0;
}

static int do_getattr(struct fuse_server *srv, struct req *r)
{
	struct fuse_attr_out out;
	int ret = pt_getattr(srv->pt, r->h->nodeid, &out);

	if (ret == 0)
		reply(r, &out, sizeof(out));
	return ret;
}

static int do_setattr(struct fuse_server *srv, struct req *r)
{
	struct fuse_setattr_in in;
	struct fuse_attr_out out;
	int ret;

	take(r, &in, sizeof(in));
	if ((ret = pt_setattr(srv->pt, r->h->nodeid, &in, &out)) == 0)
		reply(r, &out, sizeof(out));
	return ret;
}

static int open_common(struct fuse_server *srv, struct req *r, bool dir)
{
	struct fuse_open_in in;
	struct fuse_open_out out = { 0 };
	int ret;

	take(r, &in, sizeof(in));
	if (srv->read_only && ((in.flags & O_ACCMODE) != O_RDONLY || (in.flags & O_TRUNC)))
		return -EROFS;
	if ((ret = pt_open(srv->pt, r->h->nodeid, in.flags, dir, &out.fh)) == 0)
		reply(r, &out, sizeof(out));
	return ret;
}

static int do_open(struct fuse_server *srv, struct req *r)
{
	return open_common(srv, r, false);
}

static int do_opendir(struct fuse_server *srv, struct req *r)
{
	return open_common(srv, r, true);
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

static int do_read(struct fuse_server *srv, struct req *r)
{
	struct fuse_read_in in;
	size_t n;
	int ret;

	take(r, &in, sizeof(in));
	ret = pt_read(srv->pt, in.fh, in.offset, r->out,
		      min_size(min_size(in.size, r->room), FUSE_SERVER_MAX_WRITE), &n);
	if (ret == 0)
		r->out_len = n;
	return ret;
}

static int do_write(struct fuse_server *srv, struct req *r)
{
	struct fuse_write_in in;
	struct fuse_write_out out = { 0 };
	size_t n;
	int ret;

	take(r, &in, sizeof(in));
	if (in.size > r->len - r->pos || in.size > FUSE_SERVER_MAX_WRITE)
		return -EINVAL;
	if ((ret = pt_write(srv->pt, in.fh, in.offset, r->body + r->pos, in.size, &n)) < 0)
		return ret;
	out.size = (uint32_t)n;
	reply(r, &out, sizeof(out));
	return 0;
}

static int release_common(struct fuse_server *srv, struct req *r, bool dir)
{
	struct fuse_release_in in;

	take(r, &in, sizeof(in));
	return pt_release(srv->pt, in.fh, dir);
}

static int do_release(struct fuse_server *srv, struct req *r)
{
	return release_common(srv, r, false);
}

static int do_releasedir(struct fuse_server *srv, struct req *r)
{
	return release_common(srv, r, true);
}

static int readdir_common(struct fuse_server *srv, struct req *r, bool plus)
{
	struct fuse_read_in in;

	take(r, &in, sizeof(in));
	return pt_readdir(srv->pt, in.fh, in.offset, plus, r->out,
			  min_size(min_size(in.size, r->room), FUSE_SERVER_MAX_WRITE), &r->out_len);
}

static int do_readdir(struct fuse_server *srv, struct req *r)
{
	return readdir_common(srv, r, false);
}

static int do_readdirplus(struct fuse_server *srv, struct req *r)
{
	return readdir_common(srv, r, true);
}

static int do_create(struct fuse_server *srv, struct req *r)
{
	struct pt_cred cred = { r->h->uid, r->h->gid };
	struct fuse_create_in in;
	struct fuse_entry_out entry;
	struct fuse_open_out open = { 0 };
	const char *name;
	int ret;

	take(r, &in, sizeof(in));
	if ((ret = take_name(r, &name)) < 0 ||
	    (ret = pt_create(srv->pt, &cred, r->h->nodeid, name, in.flags, in.mode, &entry, &open.fh)) < 0)
		return ret;
	reply(r, &entry, sizeof(entry));
	reply(r, &open, sizeof(open));
	return 0;
}

static int do_mknod(struct fuse_server *srv, struct req *r)
{
	struct pt_cred cred = { r->h->uid, r->h->gid };
	struct fuse_mknod_in in;
	struct fuse_entry_out out;
	const char *name;
	int ret;

	take(r, &in, sizeof(in));
	if ((ret = take_name(r, &name)) < 0 ||
	    (ret = pt_mknod(srv->pt, &cred, r->h->nodeid, name, in.mode, in.rdev, &out)) < 0)
		return ret;
	reply(r, &out, sizeof(out));
	return 0;
}

static int do_mkdir(struct fuse_server *srv, struct req *r)
{
	struct pt_cred cred = { r->h->uid, r->h->gid };
	struct fuse_mkdir_in in;
	struct fuse_entry_out out;
	const char *name;
	int ret;

	take(r, &in, sizeof(in));
	if ((ret = take_name(r, &name)) < 0 ||
	    (ret = pt_mkdir(srv->pt, &cred, r->h->nodeid, name, in.mode, &out)) < 0)
		return ret;
	reply(r, &out, sizeof(out));
	return 0;
}

static int do_symlink(struct fuse_server *srv, struct req *r)
{
	struct pt_cred cred = { r->h->uid, r->h->gid };
	struct fuse_entry_out out;
	const char *name, *target;
	int ret;

	if ((ret = take_name(r, &name)) < 0 || (ret = take_string(r, &target, PATH_MAX - 1)) < 0 ||
	    (ret = pt_symlink(srv->pt, &cred, r->h->nodeid, name, target, &out)) < 0)
		return ret;
	reply(r, &out, sizeof(out));
	return 0;
}

static int do_link(struct fuse_server *srv, struct req *r)
{
	struct fuse_link_in in;
	struct fuse_entry_out out;
	const char *name;
	int ret;

	take(r, &in, sizeof(in));
	if ((ret = take_name(r, &name)) < 0 ||
	    (ret = pt_link(srv->pt, in.oldnodeid, r->h->nodeid, name, &out)) < 0)
		return ret;
	reply(r, &out, sizeof(out));
	return 0;
}

static int do_unlink(struct fuse_server *srv, struct req *r)
{
	const char *name;
	int ret = take_name(r, &name);

	return ret < 0 ? ret : pt_unlink(srv->pt, r->h->nodeid, name, false);
}

static int do_rmdir(struct fuse_server *srv, struct req *r)
{
	const char *name;
	int ret = take_name(r, &name);

	return ret < 0 ? ret : pt_unlink(srv->pt, r->h->nodeid, name, true);
}

static int rename_names(struct fuse_server *srv, struct req *r, uint64_t newdir, uint32_t flags)
{
	const char *name, *newname;
	int ret;

	if ((ret = take_name(r, &name)) < 0 || (ret = take_name(r, &newname)) < 0)
		return ret;
	return pt_rename(srv->pt, r->h->nodeid, name, newdir, newname, flags);
}

static int do_rename(struct fuse_server *srv, struct req *r)
{
	struct fuse_rename_in in;

	take(r, &in, sizeof(in));
	return rename_names(srv, r, in.newdir, 0);
}

static int do_rename2(struct fuse_server *srv, struct req *r)
{
	struct fuse_rename2_in in;

	take(r, &in, sizeof(in));
	return rename_names(srv, r, in.newdir, in.flags);
}

static int do_readlink(struct fuse_server *srv, struct req *r)
{
	return pt_readlink(srv->pt, r->h->nodeid, (char *)r->out, min_size(r->room, PATH_MAX), &r->out_len);
}

static int do_statfs(struct fuse_server *srv, struct req *r)
{
	struct fuse_statfs_out out;
	int ret = pt_statfs(srv->pt, r->h->nodeid, &out.st);

	if (ret == 0)
		reply(r, &out, sizeof(out));
	return ret;
}

static int fsync_common(struct fuse_server *srv, struct req *r, bool dir)
{
	struct fuse_fsync_in in;

	take(r, &in, sizeof(in));
	return pt_fsync(srv->pt, in.fh, dir, in.fsync_flags & 1);
}

static int do_fsync(struct fuse_server *srv, struct req *r)
{
	return fsync_common(srv, r, false);
}

static int do_fsyncdir(struct fuse_server *srv, struct req *r)
{
	return fsync_common(srv, r, true);
}

static int do_flush(struct fuse_server *srv, struct req *r)
{
	struct fuse_flush_in in;

	take(r, &in, sizeof(in));
	/* Nothing is buffered here and locks are not supported: only the fh
	 * needs to be real. */
	return pt_check_fh(srv->pt, in.fh, false);
}

/* GETXATTR (name set) and LISTXATTR (name NULL): size 0 asks for the size;
 * otherwise the value must fit in size (and in the reply buffer) or the
 * answer is ERANGE. */
static int xattr_reply(struct fuse_server *srv, struct req *r, uint32_t size, const char *name)
{
	size_t cap = size ? min_size(size, r->room) : 0, n;
	void *buf = size ? r->out : NULL;
	struct fuse_getxattr_out out = { 0 };
	int ret;

	/* No room for the value, or none for the size: the guest's buffer is
	 * too small either way. A zero cap must not reach the backend, for
	 * which it means "how big?". */
	if ((size && cap == 0) || (!size && r->room < sizeof(out)))
		return -ERANGE;
	ret = name ? pt_getxattr(srv->pt, r->h->nodeid, name, buf, cap, &n)
		   : pt_listxattr(srv->pt, r->h->nodeid, buf, cap, &n);
	if (ret < 0)
		return ret;
	if (size) {
		if (n > cap)
			return -ERANGE;
		r->out_len = n;
		return 0;
	}
	out.size = (uint32_t)n;
	reply(r, &out, sizeof(out));
	return 0;
}

static int do_getxattr(struct fuse_server *srv, struct req *r)
{
	struct fuse_getxattr_in in;
	const char *name;
	int ret;

	take(r, &in, sizeof(in));
	if ((ret = take_string(r, &name, XATTR_NAME_MAX)) < 0)
		return ret;
	return xattr_reply(srv, r, in.size, name);
}

static int do_listxattr(struct fuse_server *srv, struct req *r)
{
	struct fuse_getxattr_in in;

	take(r, &in, sizeof(in));
	return xattr_reply(srv, r, in.size, NULL);
}

static int do_setxattr(struct fuse_server *srv, struct req *r)
{
	struct fuse_setxattr_in in;
	const char *name;
	int ret;

	/* FUSE_SETXATTR_EXT is not negotiated: the short struct is sent. */
	take(r, &in, FUSE_COMPAT_SETXATTR_IN_SIZE);
	if ((ret = take_string(r, &name, XATTR_NAME_MAX)) < 0)
		return ret;
	if (in.size > XATTR_SIZE_MAX || in.size > r->len - r->pos)
		return -EINVAL;
	return pt_setxattr(srv->pt, r->h->nodeid, name, r->body + r->pos, in.size, (int)in.flags);
}

static int do_removexattr(struct fuse_server *srv, struct req *r)
{
	const char *name;
	int ret = take_string(r, &name, XATTR_NAME_MAX);

	return ret < 0 ? ret : pt_removexattr(srv->pt, r->h->nodeid, name);
}

static int do_fallocate(struct fuse_server *srv, struct req *r)
{
	struct fuse_fallocate_in in;

	take(r, &in, sizeof(in));
	return pt_fallocate(srv->pt, in.fh, (int)in.mode, in.offset, in.length);
}

static int do_lseek(struct fuse_server *srv, struct req *r)
{
	struct fuse_lseek_in in;
	struct fuse_lseek_out out = { 0 };
	int ret;

	take(r, &in, sizeof(in));
	if ((ret = pt_lseek(srv->pt, in.fh, in.offset, in.whence, &out.offset)) == 0)
		reply(r, &out, sizeof(out));
	return ret;
}

static int do_copy_file_range(struct fuse_server *srv, struct req *r)
{
	struct fuse_copy_file_range_in in;
	struct fuse_write_out out = { 0 };
	size_t n;
	int ret;

	take(r, &in, sizeof(in));
	if (in.flags != 0)
		return -EINVAL;
	ret = pt_copy_file_range(srv->pt, in.fh_in, in.off_in, in.fh_out, in.off_out, in.len, &n);
	if (ret < 0)
		return ret;
	out.size = (uint32_t)n;
	reply(r, &out, sizeof(out));
	return 0;
}

static int do_setupmapping(struct fuse_server *srv, struct req *r)
{
	const uint64_t known = FUSE_SETUPMAPPING_FLAG_READ | FUSE_SETUPMAPPING_FLAG_WRITE;
	struct fuse_setupmapping_in in;
	int fd, ret;

	take(r, &in, sizeof(in));
	if (in.flags & ~known)
		return -EINVAL;
	bool writable = in.flags & FUSE_SETUPMAPPING_FLAG_WRITE;
	if (writable && srv->read_only)
		return -EROFS;
	/* Checked before the file is opened; dax_window_map checks again. */
	if (!dax_window_map_ok(srv->dax, in.moffset, in.len, in.foffset))
		return -EINVAL;
	if ((ret = pt_map_fd(srv->pt, r->h->nodeid, in.fh, writable, &fd)) < 0)
		return ret;
	ret = dax_window_map(srv->dax, in.moffset, in.len, fd, in.foffset, writable);
	close(fd);
	return ret;
}

/* Every range is checked before any is removed, so a bad request changes
 * nothing. */
static int do_removemapping(struct fuse_server *srv, struct req *r)
{
	struct fuse_removemapping_in in;
	struct fuse_removemapping_one one;
	int ret;

	take(r, &in, sizeof(in));
	if (in.count > (r->len - r->pos) / sizeof(one))
		return -EINVAL;
	for (uint32_t i = 0; i < in.count; i++) {
		memcpy(&one, r->body + r->pos + i * sizeof(one), sizeof(one));
		if (!dax_window_range_ok(srv->dax, one.moffset, one.len))
			return -EINVAL;
	}
	for (uint32_t i = 0; i < in.count; i++) {
		memcpy(&one, r->body + r->pos + i * sizeof(one), sizeof(one));
		if ((ret = dax_window_unmap(srv->dax, one.moffset, one.len)) < 0)
			return ret;
	}
	return 0;
}

#define ENTRY sizeof(struct fuse_entry_out)
static const struct op ops[] = {
	[FUSE_INIT] = { do_init, offsetof(struct fuse_init_in, flags2), 0, false, false },
	[FUSE_DESTROY] = { do_destroy, 0, 0, false, false },
	[FUSE_LOOKUP] = { do_lookup, 0, ENTRY, false, false },
	[FUSE_FORGET] = { do_forget, sizeof(struct fuse_forget_in), 0, false, true },
	[FUSE_BATCH_FORGET] = { do_batch_forget, sizeof(struct fuse_batch_forget_in), 0, false, true },
	[FUSE_GETATTR] = { do_getattr, sizeof(struct fuse_getattr_in), sizeof(struct fuse_attr_out), false, false },
	[FUSE_SETATTR] = { do_setattr, sizeof(struct fuse_setattr_in), sizeof(struct fuse_attr_out), true, false },
	[FUSE_OPEN] = { do_open, sizeof(struct fuse_open_in), sizeof(struct fuse_open_out), false, false },
	[FUSE_OPENDIR] = { do_opendir, sizeof(struct fuse_open_in), sizeof(struct fuse_open_out), false, false },
	[FUSE_READ] = { do_read, sizeof(struct fuse_read_in), 0, false, false },
	[FUSE_WRITE] = { do_write, sizeof(struct fuse_write_in), sizeof(struct fuse_write_out), true, false },
	[FUSE_RELEASE] = { do_release, sizeof(struct fuse_release_in), 0, false, false },
	[FUSE_RELEASEDIR] = { do_releasedir, sizeof(struct fuse_release_in), 0, false, false },
	[FUSE_READDIR] = { do_readdir, sizeof(struct fuse_read_in), 0, false, false },
	[FUSE_READDIRPLUS] = { do_readdirplus, sizeof(struct fuse_read_in), 0, false, false },
	[FUSE_CREATE] = { do_create, sizeof(struct fuse_create_in), ENTRY + sizeof(struct fuse_open_out), true,
			  false },
	[FUSE_MKNOD] = { do_mknod, sizeof(struct fuse_mknod_in), ENTRY, true, false },
	[FUSE_MKDIR] = { do_mkdir, sizeof(struct fuse_mkdir_in), ENTRY, true, false },
	[FUSE_SYMLINK] = { do_symlink, 0, ENTRY, true, false },
	[FUSE_LINK] = { do_link, sizeof(struct fuse_link_in), ENTRY, true, false },
	[FUSE_UNLINK] = { do_unlink, 0, 0, true, false },
	[FUSE_RMDIR] = { do_rmdir, 0, 0, true, false },
	[FUSE_RENAME] = { do_rename, sizeof(struct fuse_rename_in), 0, true, false },
	[FUSE_RENAME2] = { do_rename2, sizeof(struct fuse_rename2_in), 0, true, false },
	[FUSE_READLINK] = { do_readlink, 0, 0, false, false },
	[FUSE_STATFS] = { do_statfs, 0, sizeof(struct fuse_statfs_out), false, false },
	[FUSE_FSYNC] = { do_fsync, sizeof(struct fuse_fsync_in), 0, false, false },
	[FUSE_FSYNCDIR] = { do_fsyncdir, sizeof(struct fuse_fsync_in), 0, false, false },
	[FUSE_FLUSH] = { do_flush, sizeof(struct fuse_flush_in), 0, false, false },
	[FUSE_GETXATTR] = { do_getxattr, sizeof(struct fuse_getxattr_in), 0, false, false },
	[FUSE_LISTXATTR] = { do_listxattr, sizeof(struct fuse_getxattr_in), 0, false, false },
	[FUSE_SETXATTR] = { do_setxattr, FUSE_COMPAT_SETXATTR_IN_SIZE, 0, true, false },
	[FUSE_REMOVEXATTR] = { do_removexattr, 0, 0, true, false },
	[FUSE_FALLOCATE] = { do_fallocate, sizeof(struct fuse_fallocate_in), 0, true, false },
	[FUSE_LSEEK] = { do_lseek, sizeof(struct fuse_lseek_in), sizeof(struct fuse_lseek_out), false, false },
	[FUSE_COPY_FILE_RANGE] = { do_copy_file_range, sizeof(struct fuse_copy_file_range_in),
				   sizeof(struct fuse_write_out), true, false },
	/* A read-only share still maps files for reading: not "modifies". */
	[FUSE_SETUPMAPPING] = { do_setupmapping, sizeof(struct fuse_setupmapping_in), 0, false, false },
	[FUSE_REMOVEMAPPING] = { do_removemapping, sizeof(struct fuse_removemapping_in), 0, false, false },
};

/* Without a DAX window these are unknown opcodes, as to a server that
 * never heard of them. */
static bool is_dax_op(uint32_t opcode)
{
	return opcode == FUSE_SETUPMAPPING || opcode == FUSE_REMOVEMAPPING;
}

struct fuse_server *fuse_server_new(const struct fuse_server_config *cfg, capsa_error *err)
{
	struct fuse_server *srv = calloc(1, sizeof(*srv));

	if (!srv) {
		error_set(err, ENOMEM, "out of memory for the FUSE server");
		return NULL;
	}
	srv->pt = passthrough_new(cfg->root_dir, err);
	if (!srv->pt) {
		free(srv);
		return NULL;
	}
	srv->read_only = cfg->read_only;
	srv->dax = cfg->dax;
	return srv;
}

void fuse_server_free(struct fuse_server *srv)
{
	if (!srv)
		return;
	passthrough_free(srv->pt);
	free(srv);
}

size_t fuse_server_inode_count(const struct fuse_server *srv)
{
	return passthrough_inode_count(srv->pt);
}

size_t fuse_server_handle_count(const struct fuse_server *srv)
{
	return passthrough_handle_count(srv->pt);
}

static int dispatch(struct fuse_server *srv, const struct op *op, struct req *r)
{
	if (r->h->len < sizeof(*r->h) || r->h->len > FUSE_SERVER_MAX_REQUEST || r->len < op->in_size)
		return -EINVAL;
	if (!srv->initialized && r->h->opcode != FUSE_INIT)
		return -EIO;
	if (op->modifies && srv->read_only)
		return -EROFS;
	if (r->room < op->out_size)
		return -ERANGE;
	return op->fn(srv, r);
}

int fuse_server_handle(struct fuse_server *srv, const void *in, size_t in_len, void *out, size_t out_cap,
		       size_t *out_len)
{
	struct fuse_in_header h;
	struct fuse_out_header oh = { 0 };
	const struct op *op = NULL;
	struct req r;
	int ret;

	*out_len = 0;
	if (in_len < sizeof(h) || out_cap < sizeof(oh))
		return -1;
	memcpy(&h, in, sizeof(h));
	if (h.opcode < sizeof(ops) / sizeof(ops[0]) && ops[h.opcode].fn && (srv->dax || !is_dax_op(h.opcode)))
		op = &ops[h.opcode];
	/* The header's length is the request's; the buffer may be longer but
	 * never shorter. */
	r = (struct req){
		.h = &h,
		.body = (const uint8_t *)in + sizeof(h),
		.len = h.len >= sizeof(h) && h.len <= in_len ? h.len - sizeof(h) : 0,
		.out = (uint8_t *)out + sizeof(oh),
		.room = out_cap - sizeof(oh),
	};
	if (!op)
		ret = -ENOSYS;
	else if (h.len > in_len)
		ret = -EINVAL;
	else
		ret = dispatch(srv, op, &r);
	if (op && op->no_reply)
		return 0;
	if (ret < 0)
		r.out_len = 0;
	oh.len = (uint32_t)(sizeof(oh) + r.out_len);
	oh.error = ret;
	oh.unique = h.unique;
	memcpy(out, &oh, sizeof(oh));
	*out_len = oh.len;
	return 0;
}
