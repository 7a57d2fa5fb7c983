#include "rootfs/layers_image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "oci/digest.h"
#include "util/atomic_file.h"
#include "rootfs/fs_tree.h"
#include "rootfs/layer_path.h"
#include "rootfs/layer_tree.h"
#include "rootfs/squashfs_writer.h"
#include "util/cleanup.h"
#include "util/error.h"

#define BLOB_CHUNK (128 * 1024)
#define LAYER_MAX_ENTRIES 1000000
#define ENTRY_XATTRS_MAX 256
#define ENTRY_XATTR_NAME_MAX 255                /* as Linux */
#define ENTRY_XATTR_VALUE_MAX (64 * 1024)       /* as Linux */
#define ENTRY_XATTR_NAMES_MAX (64 * 1024)       /* all names together, as Linux's listxattr */
/* Sparse entries (GNU tar --sparse; image builders do not write them) are
 * expanded to their full size with zeros: their holes are what a small
 * layer could otherwise inflate without bound. */
#define HOLES_MAX ((uint64_t)4 << 30)
/* Device numbers as squashfs encodes them. */
#define DEV_MAJOR_MAX 0xfff
#define DEV_MINOR_MAX 0xfffff

/* What pass one saw of a layer, for pass two to compare with. */
typedef struct layer_stats {
	uint64_t entries;
	uint64_t fingerprint;
	bool has_data;          /* some entry's data ended up in the image */
} layer_stats;

typedef struct build {
	const layer_blob *layers;
	size_t n_layers;
	layer_tree *tree;
	layer_stats *stats;
	fs_node **files;        /* sorted by where their data is */
	size_t n_files, next_file;
	uint64_t holes;
} build;

/* ---- reading a blob ------------------------------------------------------ */

/* libarchive reads the blob through here, so every byte it sees is hashed,
 * and only the bytes it sees. */
typedef struct blob_reader {
	const char *path;
	int fd;
	oci_hasher *hasher;
	struct archive *ar;
	int read_errno;
	uint64_t entries;       /* headers read so far */
	uint64_t fingerprint;   /* of the headers read so far */
	uint8_t buf[BLOB_CHUNK];
} blob_reader;

static la_ssize_t blob_read(struct archive *ar, void *opaque, const void **out)
{
	blob_reader *r = opaque;
	ssize_t n;

	do
		n = read(r->fd, r->buf, sizeof(r->buf));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		r->read_errno = errno;
		archive_set_error(ar, errno, "reading the blob");
		return -1;
	}
	if (oci_hasher_update(r->hasher, r->buf, (size_t)n, NULL) < 0) {
		r->read_errno = EIO;
		archive_set_error(ar, EIO, "hashing the blob");
		return -1;
	}
	*out = r->buf;
	return n;
}

static void reader_free(blob_reader *r)
{
	if (!r)
		return;
	archive_read_free(r->ar);
	oci_hasher_free(r->hasher);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

/* libarchive's last error, as ours. */
static int archive_fail(blob_reader *r, capsa_error *err, const char *what)
{
	const char *msg = archive_error_string(r->ar);
	char shown[256];

	if (r->read_errno)
		return error_set_errno(err, r->read_errno, "%s: reading '%s'", what, r->path);
	/* Messages may quote names from the archive. */
	return error_set(err, archive_errno(r->ar) == ENOMEM ? ENOMEM : EINVAL, "%s: %s", what,
			 msg ? layer_path_printable(msg, shown, sizeof(shown)) : "corrupt or unsupported data");
}

static blob_reader *reader_open(const char *path, capsa_error *err)
{
	blob_reader *r = calloc(1, sizeof(*r));
	struct stat st;

	if (!r) {
		error_set_errno(err, ENOMEM, "allocating a layer reader");
		return NULL;
	}
	r->path = path;
	/* A FIFO in a blob's place must not hang the open (regular files
	 * ignore O_NONBLOCK). */
	r->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (r->fd < 0) {
		error_set_errno(err, errno, "cannot open '%s'", path);
		goto fail;
	}
	if (fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		error_set(err, EINVAL, "'%s' is not a regular file", path);
		goto fail;
	}
	r->hasher = oci_hasher_new(err);
	if (!r->hasher)
		goto fail;
	r->ar = archive_read_new();
	if (!r->ar) {
		error_set_errno(err, ENOMEM, "setting up libarchive");
		goto fail;
	}
	/* Only what layers use, built into libarchive: "all" filters would
	 * also hand other formats to external programs. An empty blob is an
	 * empty layer. */
	if (archive_read_support_filter_gzip(r->ar) != ARCHIVE_OK ||
	    archive_read_support_filter_zstd(r->ar) != ARCHIVE_OK ||
	    archive_read_support_format_tar(r->ar) != ARCHIVE_OK ||
	    archive_read_support_format_empty(r->ar) != ARCHIVE_OK) {
		error_set(err, ENOTSUP, "this libarchive cannot read tar with built-in gzip and zstd: %s",
			  archive_error_string(r->ar) ? archive_error_string(r->ar) : "unknown");
		goto fail;
	}
	return r;
fail:
	reader_free(r);
	return NULL;
}

/* Separate from reader_open(): when the start of a blob is not an
 * archive, the digest may explain why. */
static int reader_start(blob_reader *r, capsa_error *err)
{
	if (archive_read_open(r->ar, r, NULL, blob_read, NULL) != ARCHIVE_OK)
		return archive_fail(r, err, "not a tar archive (plain, gzip or zstd)");
	return 0;
}

static const char *entry_name(struct archive_entry *ae)
{
	const char *p = archive_entry_pathname(ae);

	return p ? p : archive_entry_pathname_utf8(ae);
}

static const char *entry_hardlink(struct archive_entry *ae)
{
	const char *p = archive_entry_hardlink(ae);

	return p ? p : archive_entry_hardlink_utf8(ae);
}

static const char *entry_symlink(struct archive_entry *ae)
{
	const char *p = archive_entry_symlink(ae);

	return p ? p : archive_entry_symlink_utf8(ae);
}

/* FNV-1a: tells pass two whether it sees the headers pass one saw. */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t fingerprint(uint64_t h, struct archive_entry *ae)
{
	const char *name = entry_name(ae), *link = entry_hardlink(ae);
	uint64_t fields[2] = { (uint64_t)archive_entry_filetype(ae), (uint64_t)archive_entry_size(ae) };

	h = fnv(h, name ? name : "", name ? strlen(name) + 1 : 1);
	h = fnv(h, link ? link : "", link ? strlen(link) + 1 : 1);
	return fnv(h, fields, sizeof(fields));
}

/* 1 with *ae set, 0 at the end, -1 on error. */
static int reader_next(blob_reader *r, struct archive_entry **ae, capsa_error *err)
{
	int ret = archive_read_next_header(r->ar, ae);

	if (ret == ARCHIVE_EOF)
		return 0;
	/* A warning (a name not in the locale's charset) leaves a usable entry. */
	if (ret != ARCHIVE_OK && ret != ARCHIVE_WARN)
		return archive_fail(r, err, "reading the archive");
	if (++r->entries > LAYER_MAX_ENTRIES)
		return error_set(err, EINVAL, "more than %d entries", LAYER_MAX_ENTRIES);
	r->fingerprint = fingerprint(r->fingerprint, *ae);
	return 1;
}

/* Hashes what libarchive left unread (padding, a compressed stream's
 * trailer) and compares the blob's hash with its digest: 1 when they
 * match, 0 when not (EBADMSG in err), -1 on error. */
static int reader_digest_matches(blob_reader *r, const char *digest, capsa_error *err)
{
	char actual[OCI_DIGEST_STRING_SIZE];

	for (;;) {
		ssize_t n = read(r->fd, r->buf, sizeof(r->buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set_errno(err, errno, "reading '%s'", r->path);
		if (n == 0)
			break;
		if (oci_hasher_update(r->hasher, r->buf, (size_t)n, err) < 0)
			return -1;
	}
	if (oci_hasher_finish(r->hasher, actual, err) < 0)
		return -1;
	if (strcmp(actual, digest) != 0) {
		error_set(err, EBADMSG, "'%s' hashes to %.19s..., not to its digest: the blob is corrupt or "
			  "was modified; fetch the image again", r->path, actual);
		return 0;
	}
	return 1;
}

/* After a failure part way through a blob: a blob that does not match
 * its digest explains any failure better, so that is reported instead. */
static void blame_digest(blob_reader *r, const char *digest, capsa_error *err)
{
	capsa_error digest_err = { 0 };

	if (reader_digest_matches(r, digest, &digest_err) == 0 && err)
		*err = digest_err;
}

static int layer_fail(const build *b, size_t i, capsa_error *err)
{
	return error_prefix(err, "layer %zu of %zu (%.19s)", i + 1, b->n_layers, b->layers[i].digest);
}

static int entry_fail(struct archive_entry *ae, capsa_error *err)
{
	const char *name = entry_name(ae);
	char shown[160];

	return error_prefix(err, "entry '%s'", name ? layer_path_printable(name, shown, sizeof(shown)) : "?");
}

/* ---- pass one: headers into the tree ---------------------------------- */

typedef struct entry_buf {
	layer_entry e;
	layer_xattr xattrs[ENTRY_XATTRS_MAX];
} entry_buf;

static int convert_xattrs(struct archive_entry *ae, entry_buf *b, capsa_error *err)
{
	const char *name;
	const void *value;
	size_t size, names = 0;

	if (archive_entry_xattr_reset(ae) > ENTRY_XATTRS_MAX)
		return error_set(err, EINVAL, "more than %d extended attributes", ENTRY_XATTRS_MAX);
	while (archive_entry_xattr_next(ae, &name, &value, &size) == ARCHIVE_OK) {
		size_t len = name ? strlen(name) : 0;

		if (len == 0 || len > ENTRY_XATTR_NAME_MAX)
			return error_set(err, EINVAL, "an extended attribute name is empty or longer than "
					 "%d bytes", ENTRY_XATTR_NAME_MAX);
		if (size > ENTRY_XATTR_VALUE_MAX)
			return error_set(err, EINVAL, "extended attribute value larger than %d bytes",
					 ENTRY_XATTR_VALUE_MAX);
		names += len + 1;
		if (names > ENTRY_XATTR_NAMES_MAX)
			return error_set(err, EINVAL, "extended attribute names longer than %d bytes together",
					 ENTRY_XATTR_NAMES_MAX);
		if (b->e.n_xattrs == ENTRY_XATTRS_MAX)
			return error_set(err, EINVAL, "more than %d extended attributes", ENTRY_XATTRS_MAX);
		b->xattrs[b->e.n_xattrs++] = (layer_xattr){
			.key = name, .value = value ? value : "", .size = size,
		};
	}
	b->e.xattrs = b->xattrs;
	return 0;
}

static int convert_entry(struct archive_entry *ae, entry_buf *b, capsa_error *err)
{
	layer_entry *e = &b->e;
	int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);

	memset(e, 0, sizeof(*e));
	e->path = entry_name(ae);
	if (!e->path)
		return error_set(err, EINVAL, "an entry has no name");
	if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX)
		return error_set(err, EINVAL, "owner %lld:%lld is out of range", (long long)uid,
				 (long long)gid);
	e->uid = (uint32_t)uid;
	e->gid = (uint32_t)gid;
	/* squashfs keeps unsigned 32-bit seconds. */
	int64_t mtime = archive_entry_mtime_is_set(ae) ? (int64_t)archive_entry_mtime(ae) : 0;
	e->mtime = mtime < 0 ? 0 : mtime > UINT32_MAX ? UINT32_MAX : (uint32_t)mtime;
	e->mode = (uint32_t)archive_entry_filetype(ae) | ((uint32_t)archive_entry_perm(ae) & 07777);
	if (archive_entry_size(ae) < 0)
		return error_set(err, EINVAL, "negative size");
	e->size = (uint64_t)archive_entry_size(ae);

	e->hardlink = entry_hardlink(ae);
	if (!e->hardlink) {
		switch (archive_entry_filetype(ae)) {
		case AE_IFLNK:
			e->symlink = entry_symlink(ae);
			if (!e->symlink || !*e->symlink)
				return error_set(err, EINVAL, "symbolic link without a target");
			if (strnlen(e->symlink, LAYER_PATH_MAX + 1) > LAYER_PATH_MAX)
				return error_set(err, EINVAL, "symbolic link target longer than %d bytes",
						 LAYER_PATH_MAX);
			break;
		case AE_IFCHR:
		case AE_IFBLK: {
			unsigned long long major = archive_entry_rdevmajor(ae);
			unsigned long long minor = archive_entry_rdevminor(ae);

			if (major > DEV_MAJOR_MAX || minor > DEV_MINOR_MAX)
				return error_set(err, EINVAL, "device number %llu:%llu does not fit squashfs",
						 major, minor);
			e->rdev_major = (uint32_t)major;
			e->rdev_minor = (uint32_t)minor;
			break;
		}
		default:
			break;
		}
	}
	return convert_xattrs(ae, b, err);
}

static int apply_entries(build *b, size_t i, blob_reader *r, capsa_error *err)
{
	_cleanup_free_ entry_buf *buf = malloc(sizeof(*buf));
	struct archive_entry *ae;
	int ret;

	if (!buf)
		return error_set_errno(err, ENOMEM, "reading layer headers");
	if (reader_start(r, err) < 0)
		return -1;
	while ((ret = reader_next(r, &ae, err)) > 0) {
		if (convert_entry(ae, buf, err) < 0 ||
		    layer_tree_apply(b->tree, &buf->e, (uint32_t)i, r->entries - 1, err) < 0)
			return entry_fail(ae, err);
	}
	return ret;
}

static int read_headers(build *b, size_t i, capsa_error *err)
{
	const layer_blob *blob = &b->layers[i];
	blob_reader *r = reader_open(blob->path, err);

	if (!r)
		return -1;
	int ret = apply_entries(b, i, r, err);
	if (ret == 0 && reader_digest_matches(r, blob->digest, err) != 1)
		ret = -1;
	else if (ret < 0)
		blame_digest(r, blob->digest, err);
	b->stats[i].entries = r->entries;
	b->stats[i].fingerprint = r->fingerprint;
	reader_free(r);
	return ret;
}

/* ---- pass two: file data into the image ---------------------------------- */

static int append_zeros(build *b, squashfs_writer *w, uint64_t n, capsa_error *err)
{
	static const uint8_t zeros[64 * 1024];

	if (n > HOLES_MAX - b->holes)
		return error_set(err, EINVAL, "sparse files have more than %llu GiB of holes in all",
				 (unsigned long long)(HOLES_MAX >> 30));
	b->holes += n;
	while (n > 0) {
		size_t len = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);

		if (squashfs_writer_append(w, zeros, len, err) < 0)
			return -1;
		n -= len;
	}
	return 0;
}

static int stream_file(build *b, squashfs_writer *w, blob_reader *r, fs_node *file, struct archive_entry *ae,
		       capsa_error *err)
{
	uint64_t written = 0;

	if ((uint64_t)archive_entry_size(ae) != file->size)
		return error_set(err, ESTALE, "the size changed since the first pass; try again");
	if (squashfs_writer_begin_file(w, file, err) < 0)
		return -1;
	for (;;) {
		const void *data;
		size_t len;
		la_int64_t offset;
		int ret = archive_read_data_block(r->ar, &data, &len, &offset);

		if (ret == ARCHIVE_EOF)
			break;
		if (ret != ARCHIVE_OK && ret != ARCHIVE_WARN)
			return archive_fail(r, err, "reading file data");
		if (offset < 0 || (uint64_t)offset < written || (uint64_t)offset > file->size ||
		    len > file->size - (uint64_t)offset)
			return error_set(err, EINVAL, "data outside the size its header gives");
		if (append_zeros(b, w, (uint64_t)offset - written, err) < 0)
			return -1;
		if (len > 0 && squashfs_writer_append(w, data, len, err) < 0)
			return -1;
		written = (uint64_t)offset + len;
	}
	if (written < file->size) {
		/* A sparse file may end in a hole; anything else is short. */
		if (archive_entry_sparse_count(ae) == 0)
			return error_set(err, EINVAL, "data ends before the size its header gives");
		if (append_zeros(b, w, file->size - written, err) < 0)
			return -1;
	}
	return squashfs_writer_end_file(w, err);
}

static int stream_entries(build *b, squashfs_writer *w, size_t i, blob_reader *r, capsa_error *err)
{
	const layer_stats *st = &b->stats[i];
	struct archive_entry *ae;
	int ret;

	if (reader_start(r, err) < 0)
		return -1;
	while ((ret = reader_next(r, &ae, err)) > 0) {
		if (r->entries > st->entries)
			return error_set(err, ESTALE, "the blob has more entries than in the first pass; "
					 "try again");
		if (b->next_file == b->n_files)
			continue;
		fs_node *file = b->files[b->next_file];
		if (file->layers.data_layer != i || file->layers.data_entry != r->entries - 1)
			continue;
		if (stream_file(b, w, r, file, ae, err) < 0)
			return entry_fail(ae, err);
		b->next_file++;
	}
	if (ret < 0)
		return -1;
	if (r->entries != st->entries || r->fingerprint != st->fingerprint)
		return error_set(err, ESTALE, "the blob's entries changed since the first pass; try again");
	return 0;
}

static int stream_layer(build *b, squashfs_writer *w, size_t i, capsa_error *err)
{
	const layer_blob *blob = &b->layers[i];
	blob_reader *r = reader_open(blob->path, err);

	if (!r)
		return -1;
	int ret = stream_entries(b, w, i, r, err);
	if (ret == 0 && reader_digest_matches(r, blob->digest, err) != 1)
		ret = -1;
	else if (ret < 0 && err && err->code != ESTALE)
		blame_digest(r, blob->digest, err);
	reader_free(r);
	return ret;
}

static int fill_image(int fd, void *opaque, capsa_error *err)
{
	build *b = opaque;
	squashfs_writer *w = squashfs_writer_new(fd, err);
	int ret = 0;

	if (!w)
		return -1;
	/* Layers whose data all went (removed or replaced later) were fully
	 * checked in pass one and add nothing now. */
	for (size_t i = 0; ret == 0 && i < b->n_layers; i++) {
		if (b->stats[i].has_data && stream_layer(b, w, i, err) < 0)
			ret = layer_fail(b, i, err);
	}
	if (ret == 0 && b->next_file != b->n_files)
		ret = error_set(err, ESTALE, "file data went missing since the first pass; try again");
	if (ret == 0)
		ret = squashfs_writer_finish(w, layer_tree_root(b->tree), err);
	squashfs_writer_free(w);
	return ret;
}

/* ---- the whole build ------------------------------------------------------ */

static int build_image(build *b, const char *out_path, capsa_error *err)
{
	if (b->n_layers >= UINT32_MAX)
		return error_set(err, EINVAL, "too many layers");
	for (size_t i = 0; i < b->n_layers; i++) {
		if (!b->layers[i].path || oci_digest_validate(b->layers[i].digest, err) < 0)
			return error_prefix(err, "layer %zu of %zu", i + 1, b->n_layers);
	}
	b->tree = layer_tree_new(err);
	b->stats = calloc(b->n_layers ? b->n_layers : 1, sizeof(*b->stats));
	if (!b->tree || !b->stats)
		return b->tree ? error_set_errno(err, ENOMEM, "allocating layer state") : -1;

	for (size_t i = 0; i < b->n_layers; i++) {
		if (read_headers(b, i, err) < 0)
			return layer_fail(b, i, err);
	}
	if (fs_tree_prepare(layer_tree_root(b->tree), err) < 0 ||
	    layer_tree_files(b->tree, &b->files, &b->n_files, err) < 0)
		return -1;
	for (size_t i = 0; i < b->n_files; i++)
		b->stats[b->files[i]->layers.data_layer].has_data = true;
	return atomic_file_write(out_path, fill_image, b, err);
}

int rootfs_build_from_layers(const layer_blob *layers, size_t n_layers, const char *out_path, capsa_error *err)
{
	build b = { .layers = layers, .n_layers = n_layers };
	int ret = build_image(&b, out_path, err);

	free(b.files);
	free(b.stats);
	layer_tree_free(b.tree);
	if (ret < 0)
		return error_prefix(err, "building a root image from layers");
	return 0;
}
