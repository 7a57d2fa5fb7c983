#include "rootfs/rootfs_image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/atomic_file.h"
#include "rootfs/dir_scan.h"
#include "rootfs/file_data.h"
#include "rootfs/fs_tree.h"
#include "rootfs/squashfs_writer.h"
#include "rootfs/tree_key.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"

static void fs_node_freep(fs_node **node)
{
	fs_node_free(*node);
}
#define _cleanup_tree_ __attribute__((cleanup(fs_node_freep)))

/* ---- writing -------------------------------------------------------- */

typedef struct stream_ctx {
	const char *dir;
	squashfs_writer *w;
} stream_ctx;

static int append_chunk(const void *data, size_t len, void *opaque, capsa_error *err)
{
	return squashfs_writer_append(opaque, data, len, err);
}

static int stream_file(fs_node *file, const char *path, int fd, void *opaque, capsa_error *err)
{
	stream_ctx *ctx = opaque;
	uint8_t digest[FILE_DIGEST_SIZE];

	if (squashfs_writer_begin_file(ctx->w, file, err) < 0)
		return -1;
	if (file_data_read(fd, file->size, append_chunk, ctx->w, digest, err) < 0)
		return error_prefix(err, "'%s/%s'", ctx->dir, path);
	if (squashfs_writer_end_file(ctx->w, err) < 0)
		return -1;
	/* The key was computed from the data read earlier: refuse to store
	 * anything else under it. */
	if (file->has_digest && memcmp(digest, file->digest, sizeof(digest)) != 0)
		return error_set(err, ESTALE, "'%s/%s' changed while the image was being built; try again",
				 ctx->dir, path);
	return 0;
}

static int write_image(const char *dir, fs_node *root, int fd, capsa_error *err)
{
	squashfs_writer *w = squashfs_writer_new(fd, err);
	stream_ctx ctx = { .dir = dir, .w = w };

	if (!w)
		return -1;
	int ret = dir_for_each_file(dir, root, stream_file, &ctx, err);
	if (ret == 0)
		ret = squashfs_writer_finish(w, root, err);
	squashfs_writer_free(w);
	return ret;
}

typedef struct image_job {
	const char *dir;
	fs_node *root;
} image_job;

static int fill_image(int fd, void *opaque, capsa_error *err)
{
	image_job *job = opaque;

	return write_image(job->dir, job->root, fd, err);
}

/* path only ever holds complete images. */
static int write_image_atomically(const char *dir, fs_node *root, const char *path, capsa_error *err)
{
	image_job job = { .dir = dir, .root = root };

	return atomic_file_write(path, fill_image, &job, err);
}

int rootfs_build_squashfs(const char *dir, const char *out_path, capsa_error *err)
{
	_cleanup_tree_ fs_node *root = NULL;

	if (dir_scan(dir, &root, err) < 0 || write_image_atomically(dir, root, out_path, err) < 0)
		return error_prefix(err, "building a root image of '%s'", dir);
	return 0;
}

/* ---- cache ---------------------------------------------------------- */

static uint64_t le_bytes(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Images appear under their final name only once complete, so this only
 * guards against outside damage (truncation, a stray file): a squashfs
 * 4.0 super block whose recorded size fits the file. */
static bool cached_image_usable(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t super[96];
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (pread(fd, super, sizeof(super), 0) != (ssize_t)sizeof(super))
		return false;
	return le_bytes(super, 4) == 0x73717368 &&              /* "hsqs" */
	       le_bytes(super + 28, 2) == 4 && le_bytes(super + 30, 2) == 0 &&
	       le_bytes(super + 40, 8) <= (uint64_t)st.st_size;
}

static char *image_for_dir(const char *dir, const char *cache_dir, capsa_error *err)
{
	_cleanup_tree_ fs_node *root = NULL;
	char key[TREE_KEY_HEX_SIZE];
	char *path = NULL;

	if (fs_mkdir_p(cache_dir, 0777, err) < 0 || dir_scan(dir, &root, err) < 0 ||
	    tree_key_compute(dir, root, key, err) < 0)
		return NULL;
	if (asprintf(&path, "%s/%s.sqfs", cache_dir, key) < 0) {
		error_set_errno(err, ENOMEM, "building a path");
		return NULL;
	}
	if (cached_image_usable(path))
		return path;
	if (write_image_atomically(dir, root, path, err) < 0) {
		free(path);
		return NULL;
	}
	return path;
}

char *rootfs_image_for_dir(const char *dir, const char *cache_dir, capsa_error *err)
{
	char *path = image_for_dir(dir, cache_dir, err);

	if (!path)
		error_prefix(err, "building a root image of '%s'", dir);
	return path;
}
