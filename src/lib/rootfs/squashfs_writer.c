#include "rootfs/squashfs_writer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqfs/block.h>
#include <sqfs/block_processor.h>
#include <sqfs/block_writer.h>
#include <sqfs/compressor.h>
#include <sqfs/dir_writer.h>
#include <sqfs/error.h>
#include <sqfs/frag_table.h>
#include <sqfs/id_table.h>
#include <sqfs/inode.h>
#include <sqfs/io.h>
#include <sqfs/meta_writer.h>
#include <sqfs/super.h>
#include <sqfs/xattr.h>
#include <sqfs/xattr_writer.h>

#include "util/cleanup.h"
#include "util/error.h"

#define BLOCK_SIZE (128 * 1024)
/* Images are padded to this, and it is the alignment unit the block
 * writer would use for aligned files. */
#define DEVICE_BLOCK_SIZE 4096
/* zstd decompresses equally fast at every level, so the level only trades
 * build time (which a first run waits for) against size. Measured on 1.3 GB
 * of shared libraries: level 3 took 21 s for 440 MB, 6 took 47 s for 412 MB,
 * 15 (mksquashfs' default) took 590 s for 381 MB. */
#define ZSTD_LEVEL 3
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
/* Bump when the writer's output changes for the same tree. */
#define WRITER_REVISION "1"

#define NO_XATTRS 0xFFFFFFFFu

/* sqfs_file_t on top of a plain fd, so that errno from a failed write
 * (ENOSPC, EIO) survives and the caller keeps the fd for fsync. */
typedef struct fd_file {
	sqfs_file_t base;
	int fd;
	sqfs_u64 size;
	int io_errno;
} fd_file;

struct squashfs_writer {
	fd_file out;
	sqfs_super_t super;
	sqfs_compressor_t *cmp;
	sqfs_block_writer_t *blocks;
	sqfs_frag_table_t *frags;
	sqfs_block_processor_t *data;
	sqfs_id_table_t *ids;
	sqfs_xattr_writer_t *xattrs;
	sqfs_meta_writer_t *inode_table;
	sqfs_meta_writer_t *dir_table;
	sqfs_dir_writer_t *dirs;

	/* Files whose inode the block processor owns until finish. */
	fs_node **files;
	size_t n_files, cap_files;
	fs_node *current;
	bool finished;          /* the block processor has been drained */

	unsigned pass;          /* marks nodes visited by the current tree walk */
	uint32_t inode_count;
	uint32_t newest_mtime;
};

/* ---- output file ---------------------------------------------------- */

static void fd_file_destroy(sqfs_object_t *obj)
{
	(void)obj;      /* embedded in the writer, which owns the fd's lifetime */
}

static int fd_file_read_at(sqfs_file_t *file, sqfs_u64 offset, void *buffer, size_t size)
{
	fd_file *f = (fd_file *)file;

	while (size > 0) {
		ssize_t n = pread(f->fd, buffer, size, (off_t)offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			f->io_errno = errno;
			return SQFS_ERROR_IO;
		}
		if (n == 0)
			return SQFS_ERROR_OUT_OF_BOUNDS;
		buffer = (char *)buffer + n;
		size -= (size_t)n;
		offset += (sqfs_u64)n;
	}
	return 0;
}

static int fd_file_write_at(sqfs_file_t *file, sqfs_u64 offset, const void *buffer, size_t size)
{
	fd_file *f = (fd_file *)file;

	while (size > 0) {
		ssize_t n = pwrite(f->fd, buffer, size, (off_t)offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			f->io_errno = n < 0 ? errno : EIO;
			return SQFS_ERROR_IO;
		}
		buffer = (const char *)buffer + n;
		size -= (size_t)n;
		offset += (sqfs_u64)n;
		if (offset > f->size)
			f->size = offset;
	}
	return 0;
}

static sqfs_u64 fd_file_get_size(const sqfs_file_t *file)
{
	return ((const fd_file *)file)->size;
}

static int fd_file_truncate(sqfs_file_t *file, sqfs_u64 size)
{
	fd_file *f = (fd_file *)file;

	if (ftruncate(f->fd, (off_t)size) < 0) {
		f->io_errno = errno;
		return SQFS_ERROR_IO;
	}
	f->size = size;
	return 0;
}

static int fd_file_init(fd_file *f, int fd, capsa_error *err)
{
	if (ftruncate(fd, 0) < 0)
		return error_set_errno(err, errno, "truncating the image file");
	f->base.base.destroy = fd_file_destroy;
	f->base.base.copy = NULL;
	f->base.read_at = fd_file_read_at;
	f->base.write_at = fd_file_write_at;
	f->base.get_size = fd_file_get_size;
	f->base.truncate = fd_file_truncate;
	f->fd = fd;
	f->size = 0;
	return 0;
}

/* ---- errors --------------------------------------------------------- */

static const char *sqfs_error_text(int ret)
{
	switch (ret) {
	case SQFS_ERROR_COMPRESSOR: return "compressor failed";
	case SQFS_ERROR_INTERNAL: return "internal libsquashfs error";
	case SQFS_ERROR_CORRUPTED: return "inconsistent data";
	case SQFS_ERROR_UNSUPPORTED: return "not supported by squashfs";
	case SQFS_ERROR_OVERFLOW: return "value too large for squashfs";
	case SQFS_ERROR_OUT_OF_BOUNDS: return "read beyond the end of the image";
	case SQFS_ERROR_ARG_INVALID: return "invalid argument";
	case SQFS_ERROR_SEQUENCE: return "calls out of order";
	default: return "libsquashfs error";
	}
}

/* Turns a libsquashfs error code into err; returns -1. */
static int sqfs_fail(squashfs_writer *w, int ret, capsa_error *err, const char *what)
{
	if (ret == SQFS_ERROR_ALLOC)
		return error_set_errno(err, ENOMEM, "%s", what);
	if (ret == SQFS_ERROR_IO)
		return error_set_errno(err, w->out.io_errno ? w->out.io_errno : EIO, "%s: writing the image",
				       what);
	return error_set(err, EIO, "%s: %s (%d)", what, sqfs_error_text(ret), ret);
}

/* ---- setup ---------------------------------------------------------- */

static int compressor_new(SQFS_COMPRESSOR id, sqfs_compressor_t **out)
{
	sqfs_compressor_config_t cfg;
	int ret = sqfs_compressor_config_init(&cfg, id, BLOCK_SIZE, 0);

	if (ret)
		return ret;
	if (id == SQFS_COMP_ZSTD)
		cfg.level = ZSTD_LEVEL;
	return sqfs_compressor_create(&cfg, out);
}

/* zstd when this libsquashfs was built with it, else gzip (always there). */
static SQFS_COMPRESSOR pick_compressor(void)
{
	sqfs_compressor_t *probe = NULL;

	if (compressor_new(SQFS_COMP_ZSTD, &probe) == 0) {
		sqfs_destroy(probe);
		return SQFS_COMP_ZSTD;
	}
	return SQFS_COMP_GZIP;
}

const char *squashfs_writer_format(void)
{
	if (pick_compressor() == SQFS_COMP_ZSTD)
		return "squashfs 4.0, zstd level " STRINGIFY(ZSTD_LEVEL) ", block " STRINGIFY(BLOCK_SIZE)
		       ", writer " WRITER_REVISION;
	return "squashfs 4.0, gzip, block " STRINGIFY(BLOCK_SIZE) ", writer " WRITER_REVISION;
}

static unsigned worker_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > 16 ? 16 : (unsigned)n;
}

/* Writes a provisional super block (rewritten at the end) and the
 * compressor options that follow it. */
static int write_image_header(squashfs_writer *w, SQFS_COMPRESSOR comp, capsa_error *err)
{
	int ret = sqfs_super_init(&w->super, BLOCK_SIZE, 0, comp);

	if (ret)
		return sqfs_fail(w, ret, err, "initializing the super block");
	ret = sqfs_super_write(&w->super, &w->out.base);
	if (ret)
		return sqfs_fail(w, ret, err, "writing the super block");
	ret = w->cmp->write_options(w->cmp, &w->out.base);
	if (ret < 0)
		return sqfs_fail(w, ret, err, "writing compressor options");
	if (ret > 0)
		w->super.flags |= SQFS_FLAG_COMPRESSOR_OPTIONS;
	return 0;
}

static int create_writers(squashfs_writer *w, capsa_error *err)
{
	unsigned workers = worker_count();

	w->blocks = sqfs_block_writer_create(&w->out.base, DEVICE_BLOCK_SIZE, 0);
	w->frags = sqfs_frag_table_create(0);
	if (!w->blocks || !w->frags)
		return error_set_errno(err, ENOMEM, "creating the squashfs block writer");
	w->data = sqfs_block_processor_create(BLOCK_SIZE, w->cmp, workers, 8 * workers, w->blocks, w->frags);
	w->ids = sqfs_id_table_create(0);
	w->xattrs = sqfs_xattr_writer_create(0);
	if (!w->data || !w->ids || !w->xattrs)
		return error_set_errno(err, ENOMEM, "creating the squashfs data writer");
	/* Inodes go straight to the file once the data is written; the
	 * directory table follows the inode table but is produced at the
	 * same time, so it is kept in memory until then. */
	w->inode_table = sqfs_meta_writer_create(&w->out.base, w->cmp, 0);
	w->dir_table = sqfs_meta_writer_create(&w->out.base, w->cmp, SQFS_META_WRITER_KEEP_IN_MEMORY);
	if (!w->inode_table || !w->dir_table)
		return error_set_errno(err, ENOMEM, "creating the squashfs table writers");
	w->dirs = sqfs_dir_writer_create(w->dir_table, 0);
	if (!w->dirs)
		return error_set_errno(err, ENOMEM, "creating the squashfs directory writer");
	return 0;
}

squashfs_writer *squashfs_writer_new(int fd, capsa_error *err)
{
	squashfs_writer *w = calloc(1, sizeof(*w));

	if (!w) {
		error_set_errno(err, ENOMEM, "creating the squashfs writer");
		return NULL;
	}
	if (fd_file_init(&w->out, fd, err) < 0)
		goto fail;

	SQFS_COMPRESSOR comp = pick_compressor();
	int ret = compressor_new(comp, &w->cmp);
	if (ret) {
		sqfs_fail(w, ret, err, "creating the compressor");
		goto fail;
	}
	if (write_image_header(w, comp, err) < 0 || create_writers(w, err) < 0)
		goto fail;
	return w;
fail:
	squashfs_writer_free(w);
	return NULL;
}

void squashfs_writer_free(squashfs_writer *w)
{
	if (!w)
		return;
	/* Abandoned half way: let blocks in flight land (in the file that is
	 * being thrown away), since libsquashfs does not free those still
	 * queued when destroyed. Errors do not matter any more. */
	if (w->data && !w->finished) {
		if (w->current)
			sqfs_block_processor_end_file(w->data);
		sqfs_block_processor_sync(w->data);
	}
	/* The block processor may still update file inodes: stop it first. */
	sqfs_destroy(w->data);
	for (size_t i = 0; i < w->n_files; i++) {
		sqfs_free(w->files[i]->out.inode);
		w->files[i]->out.inode = NULL;
	}
	free(w->files);
	sqfs_destroy(w->dirs);
	sqfs_destroy(w->dir_table);
	sqfs_destroy(w->inode_table);
	sqfs_destroy(w->xattrs);
	sqfs_destroy(w->ids);
	sqfs_destroy(w->frags);
	sqfs_destroy(w->blocks);
	sqfs_destroy(w->cmp);
	free(w);
}

/* ---- file data ------------------------------------------------------ */

int squashfs_writer_begin_file(squashfs_writer *w, fs_node *file, capsa_error *err)
{
	if (w->current)
		return error_set(err, EINVAL, "squashfs writer: a file is already open");
	if (!S_ISREG(file->mode) || file->hardlink_target || file->out.inode)
		return error_set(err, EINVAL, "squashfs writer: '%s' is not a regular file without data",
				 file->name);

	if (w->n_files == w->cap_files) {
		size_t cap = w->cap_files ? w->cap_files * 2 : 64;
		fs_node **grown = reallocarray(w->files, cap, sizeof(*grown));

		if (!grown)
			return error_set_errno(err, ENOMEM, "squashfs writer: tracking files");
		w->files = grown;
		w->cap_files = cap;
	}

	int ret = sqfs_block_processor_begin_file(w->data, &file->out.inode, NULL, 0);
	if (ret)
		return sqfs_fail(w, ret, err, "starting file data");
	w->files[w->n_files++] = file;
	w->current = file;
	return 0;
}

int squashfs_writer_append(squashfs_writer *w, const void *data, size_t len, capsa_error *err)
{
	if (!w->current)
		return error_set(err, EINVAL, "squashfs writer: no file is open");
	int ret = sqfs_block_processor_append(w->data, data, len);
	if (ret)
		return sqfs_fail(w, ret, err, "compressing file data");
	return 0;
}

int squashfs_writer_end_file(squashfs_writer *w, capsa_error *err)
{
	if (!w->current)
		return error_set(err, EINVAL, "squashfs writer: no file is open");
	w->current = NULL;
	int ret = sqfs_block_processor_end_file(w->data);
	if (ret)
		return sqfs_fail(w, ret, err, "finishing file data");
	return 0;
}

/* ---- tree walk ------------------------------------------------------ */

typedef int (*inode_fn)(squashfs_writer *w, fs_node *inode, capsa_error *err);

static int visit_inode(squashfs_writer *w, fs_node *node, inode_fn fn, capsa_error *err)
{
	node = fs_node_inode(node);
	if (node->out.pass == w->pass)
		return 0;       /* a hard link already reached it */
	node->out.pass = w->pass;
	return fn(w, node, err);
}

/* Visits everything below dir, children before their parent, and each
 * directory's entries one after another: a directory listing can then
 * refer to inodes already written, and consecutive inode numbers keep its
 * headers few. A hard link visits its target where it first appears. */
static int visit_below(squashfs_writer *w, fs_node *dir, inode_fn fn, capsa_error *err)
{
	for (size_t i = 0; i < dir->n_children; i++) {
		fs_node *child = dir->children[i];

		if (S_ISDIR(child->mode) && !child->hardlink_target && visit_below(w, child, fn, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < dir->n_children; i++) {
		if (visit_inode(w, dir->children[i], fn, err) < 0)
			return -1;
	}
	return 0;
}

/* Clears marks a writer left in the tree (another writer may have
 * walked it), so that pass numbers count from zero again. */
static void reset_marks(fs_node *node)
{
	node->out.pass = 0;
	for (size_t i = 0; i < node->n_children; i++)
		reset_marks(node->children[i]);
}

static int visit_tree(squashfs_writer *w, fs_node *root, inode_fn fn, capsa_error *err)
{
	if (w->pass == 0)
		reset_marks(root);
	w->pass++;
	if (visit_below(w, root, fn, err) < 0)
		return -1;
	return visit_inode(w, root, fn, err);
}

/* ---- inodes --------------------------------------------------------- */

static int number_inode(squashfs_writer *w, fs_node *node, capsa_error *err)
{
	if (S_ISREG(node->mode) && !node->out.inode) {
		_cleanup_free_ char *path = fs_node_path(node, NULL);

		return error_set(err, EINVAL, "squashfs writer: no data was written for '%s'",
				 path ? path : node->name);
	}
	if (w->inode_count == UINT32_MAX - 1)
		return error_set(err, EOVERFLOW, "too many inodes for a squashfs image");
	node->out.inode_num = ++w->inode_count;
	if (node->mtime > w->newest_mtime)
		w->newest_mtime = node->mtime;
	return 0;
}

/* Linux's "new" dev_t encoding, which squashfs stores. */
static int encode_devno(const fs_node *node, sqfs_u32 *out, capsa_error *err)
{
	if (node->rdev_major > 0xfff || node->rdev_minor > 0xfffff)
		return error_set(err, EOVERFLOW, "device number %u:%u does not fit squashfs", node->rdev_major,
				 node->rdev_minor);
	*out = (node->rdev_minor & 0xff) | (node->rdev_major << 8) | ((node->rdev_minor & ~0xffu) << 12);
	return 0;
}

static sqfs_inode_generic_t *special_inode(const fs_node *node, capsa_error *err)
{
	size_t target_len = S_ISLNK(node->mode) ? strlen(node->link_target) : 0;
	sqfs_inode_generic_t *inode = calloc(1, sizeof(*inode) + target_len);

	if (!inode) {
		error_set_errno(err, ENOMEM, "allocating an inode");
		return NULL;
	}
	switch (node->mode & S_IFMT) {
	case S_IFLNK:
		inode->base.type = SQFS_INODE_SLINK;
		inode->data.slink.target_size = (sqfs_u32)target_len;
		inode->payload_bytes_available = inode->payload_bytes_used = (sqfs_u32)target_len;
		memcpy(inode->extra, node->link_target, target_len);
		return inode;
	case S_IFCHR:
	case S_IFBLK:
		inode->base.type = S_ISCHR(node->mode) ? SQFS_INODE_CDEV : SQFS_INODE_BDEV;
		if (encode_devno(node, &inode->data.dev.devno, err) < 0)
			break;
		return inode;
	case S_IFIFO:
		inode->base.type = SQFS_INODE_FIFO;
		return inode;
	case S_IFSOCK:
		inode->base.type = SQFS_INODE_SOCKET;
		return inode;
	default:
		error_set(err, EINVAL, "file type %#o cannot be stored in squashfs", node->mode & S_IFMT);
		break;
	}
	free(inode);
	return NULL;
}

/* Lists dir's entries into the directory table; returns its inode. */
static sqfs_inode_generic_t *dir_inode(squashfs_writer *w, fs_node *dir, sqfs_u32 xattr_idx,
				       capsa_error *err)
{
	int ret = sqfs_dir_writer_begin(w->dirs, 0);

	for (size_t i = 0; ret == 0 && i < dir->n_children; i++) {
		fs_node *child = dir->children[i];
		fs_node *inode = fs_node_inode(child);

		ret = sqfs_dir_writer_add_entry(w->dirs, child->name, inode->out.inode_num,
						inode->out.inode_ref, (sqfs_u16)inode->mode);
	}
	if (ret == 0)
		ret = sqfs_dir_writer_end(w->dirs);
	if (ret) {
		sqfs_fail(w, ret, err, "writing a directory listing");
		return NULL;
	}
	/* The root's ".." names one past the last inode, as mksquashfs does:
	 * some tools take inode number 0 for a deleted entry. */
	sqfs_u32 parent = dir->parent ? dir->parent->out.inode_num : w->inode_count + 1;
	sqfs_inode_generic_t *inode = sqfs_dir_writer_create_inode(w->dirs, 0, xattr_idx, parent);

	if (!inode)
		error_set_errno(err, ENOMEM, "allocating a directory inode");
	return inode;
}

/* The block processor's inode, now complete; ours to free. */
static sqfs_inode_generic_t *take_file_inode(fs_node *node)
{
	sqfs_inode_generic_t *inode = node->out.inode;

	node->out.inode = NULL;
	return inode;
}

/* Basic inodes other than files carry a link count; a basic file inode
 * implies one, so a hard-linked file needs the extended form. */
static void set_nlink(sqfs_inode_generic_t *inode, sqfs_u32 nlink)
{
	if (inode->base.type == SQFS_INODE_FILE && nlink > 1)
		sqfs_inode_make_extended(inode);

	switch (inode->base.type) {
	case SQFS_INODE_DIR: inode->data.dir.nlink = nlink; break;
	case SQFS_INODE_EXT_DIR: inode->data.dir_ext.nlink = nlink; break;
	case SQFS_INODE_EXT_FILE: inode->data.file_ext.nlink = nlink; break;
	case SQFS_INODE_SLINK: inode->data.slink.nlink = nlink; break;
	case SQFS_INODE_EXT_SLINK: inode->data.slink_ext.nlink = nlink; break;
	case SQFS_INODE_BDEV: case SQFS_INODE_CDEV: inode->data.dev.nlink = nlink; break;
	case SQFS_INODE_EXT_BDEV: case SQFS_INODE_EXT_CDEV: inode->data.dev_ext.nlink = nlink; break;
	case SQFS_INODE_FIFO: case SQFS_INODE_SOCKET: inode->data.ipc.nlink = nlink; break;
	case SQFS_INODE_EXT_FIFO: case SQFS_INODE_EXT_SOCKET: inode->data.ipc_ext.nlink = nlink; break;
	default: break;
	}
}

/* Records node's xattrs (deduplicated by libsquashfs); *idx is NO_XATTRS
 * when it has none squashfs can store. */
static int add_xattrs(squashfs_writer *w, const fs_node *node, sqfs_u32 *idx, capsa_error *err)
{
	size_t storable = 0;

	*idx = NO_XATTRS;
	for (size_t i = 0; i < node->n_xattrs; i++)
		storable += sqfs_get_xattr_prefix_id(node->xattrs[i].key) >= 0;
	if (storable == 0)
		return 0;

	int ret = sqfs_xattr_writer_begin(w->xattrs, 0);
	for (size_t i = 0; ret == 0 && i < node->n_xattrs; i++) {
		const fs_xattr *x = &node->xattrs[i];

		if (sqfs_get_xattr_prefix_id(x->key) >= 0)
			ret = sqfs_xattr_writer_add(w->xattrs, x->key, x->value, x->size);
	}
	if (ret == 0)
		ret = sqfs_xattr_writer_end(w->xattrs, idx);
	if (ret)
		return sqfs_fail(w, ret, err, "recording extended attributes");
	return 0;
}

static sqfs_inode_generic_t *make_inode(squashfs_writer *w, fs_node *node, capsa_error *err)
{
	sqfs_u32 xattr_idx;
	sqfs_inode_generic_t *inode;

	if (add_xattrs(w, node, &xattr_idx, err) < 0)
		return NULL;
	if (S_ISDIR(node->mode)) {
		inode = dir_inode(w, node, xattr_idx, err);
	} else {
		inode = S_ISREG(node->mode) ? take_file_inode(node) : special_inode(node, err);
		if (inode)
			sqfs_inode_set_xattr_index(inode, xattr_idx);
	}
	if (!inode)
		return NULL;
	/* After the xattr index: setting "none" may demote to a basic inode. */
	set_nlink(inode, node->nlink);

	inode->base.mode = (sqfs_u16)node->mode;
	inode->base.mod_time = node->mtime;
	inode->base.inode_number = node->out.inode_num;
	int ret = sqfs_id_table_id_to_index(w->ids, node->uid, &inode->base.uid_idx);
	if (ret == 0)
		ret = sqfs_id_table_id_to_index(w->ids, node->gid, &inode->base.gid_idx);
	if (ret) {
		sqfs_free(inode);
		sqfs_fail(w, ret, err, "recording owner ids");
		return NULL;
	}
	return inode;
}

static int write_inode(squashfs_writer *w, fs_node *node, capsa_error *err)
{
	sqfs_inode_generic_t *inode = make_inode(w, node, err);
	sqfs_u64 block;
	sqfs_u32 offset;

	if (!inode) {
		_cleanup_free_ char *path = fs_node_path(node, NULL);

		return error_prefix(err, "'%s'", path ? path : node->name);
	}
	sqfs_meta_writer_get_position(w->inode_table, &block, &offset);
	node->out.inode_ref = (block << 16) | offset;

	int ret = sqfs_meta_writer_write_inode(w->inode_table, inode);
	sqfs_free(inode);
	if (ret)
		return sqfs_fail(w, ret, err, "writing an inode");
	return 0;
}

/* ---- finishing ------------------------------------------------------ */

static int write_inode_and_dir_tables(squashfs_writer *w, fs_node *root, capsa_error *err)
{
	w->super.inode_table_start = w->out.size;
	if (visit_tree(w, root, write_inode, err) < 0)
		return -1;

	int ret = sqfs_meta_writer_flush(w->inode_table);
	if (ret == 0)
		ret = sqfs_meta_writer_flush(w->dir_table);
	if (ret)
		return sqfs_fail(w, ret, err, "writing the inode table");

	w->super.directory_table_start = w->out.size;
	ret = sqfs_meta_write_write_to_file(w->dir_table);
	if (ret)
		return sqfs_fail(w, ret, err, "writing the directory table");
	w->super.root_inode_ref = root->out.inode_ref;
	return 0;
}

static int write_lookup_tables(squashfs_writer *w, capsa_error *err)
{
	int ret = sqfs_frag_table_write(w->frags, &w->out.base, &w->super, w->cmp);

	if (ret)
		return sqfs_fail(w, ret, err, "writing the fragment table");
	ret = sqfs_id_table_write(w->ids, &w->out.base, &w->super, w->cmp);
	if (ret)
		return sqfs_fail(w, ret, err, "writing the id table");
	ret = sqfs_xattr_writer_flush(w->xattrs, &w->out.base, &w->super, w->cmp);
	if (ret)
		return sqfs_fail(w, ret, err, "writing the xattr table");
	return 0;
}

static int write_super_and_pad(squashfs_writer *w, capsa_error *err)
{
	static const char zeros[DEVICE_BLOCK_SIZE];

	w->super.inode_count = w->inode_count;
	w->super.modification_time = w->newest_mtime;
	w->super.bytes_used = w->out.size;
	int ret = sqfs_super_write(&w->super, &w->out.base);
	if (ret)
		return sqfs_fail(w, ret, err, "writing the super block");

	size_t tail = w->out.size % DEVICE_BLOCK_SIZE;
	if (tail) {
		ret = w->out.base.write_at(&w->out.base, w->out.size, zeros, DEVICE_BLOCK_SIZE - tail);
		if (ret)
			return sqfs_fail(w, ret, err, "padding the image");
	}
	return 0;
}

int squashfs_writer_finish(squashfs_writer *w, fs_node *root, capsa_error *err)
{
	if (w->current)
		return error_set(err, EINVAL, "squashfs writer: a file is still open");

	w->finished = true;
	int ret = sqfs_block_processor_finish(w->data);
	if (ret)
		return sqfs_fail(w, ret, err, "writing file data");

	w->inode_count = 0;
	if (visit_tree(w, root, number_inode, err) < 0)
		return -1;
	if (write_inode_and_dir_tables(w, root, err) < 0)
		return -1;
	if (write_lookup_tables(w, err) < 0)
		return -1;
	return write_super_and_pad(w, err);
}
