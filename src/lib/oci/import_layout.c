/* Importing one image from an OCI image layout directory. Files are opened
 * relative to the layout with O_NOFOLLOW at every step, so a symlink in the
 * layout cannot make us read (or store) a file outside it, and every blob
 * is verified on its way into the store. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/import.h"
#include "oci/import_internal.h"
#include "oci/json_util.h"
#include "oci/store_internal.h"
#include "util/cleanup.h"
#include "util/error.h"

#define LAYOUT_FILE_MAX 4096
#define COPY_CHUNK (256 * 1024)

typedef struct layout {
	oci_store *s;
	const char *dir;     /* for messages */
	int dir_fd;
	int blobs_fd;        /* blobs/sha256, opened on first use; -1 before */
} layout;

/* Opens name (a single component) in dfd for reading: a regular file, no
 * symlink. missing (may be NULL) is the message when it does not exist. */
static int open_regular(int dfd, const char *name, const char *shown, const char *missing, struct stat *st,
			capsa_error *err)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 && errno == ENOENT && missing)
		return error_set(err, ENOENT, "%s", missing);
	if (fd < 0 && errno == ELOOP)
		return error_set(err, ELOOP, "'%s' is a symlink; a layout's files must be regular files", shown);
	if (fd < 0)
		return error_set_errno(err, errno, "cannot open '%s'", shown);
	if (fstat(fd, st) < 0)
		return error_set_errno(err, errno, "cannot stat '%s'", shown);
	if (!S_ISREG(st->st_mode))
		return error_set(err, EINVAL, "'%s' is not a regular file", shown);
	return steal_fd(&fd);
}

static int read_file(int fd, const char *shown, size_t size, char **data, size_t *len, capsa_error *err)
{
	_cleanup_free_ char *buf = malloc(size + 1);
	size_t n = 0;

	if (!buf)
		return error_set_errno(err, ENOMEM, "reading '%s'", shown);
	while (n < size) {
		ssize_t r = read(fd, buf + n, size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return error_set_errno(err, errno, "cannot read '%s'", shown);
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*data = steal_pointer(&buf);
	*len = n;
	return 0;
}

static int read_layout_file(layout *l, const char *name, size_t max, char **data, size_t *len, capsa_error *err)
{
	_cleanup_free_ char *shown = NULL;
	struct stat st;

	if (asprintf(&shown, "%s/%s", l->dir, name) < 0) {
		shown = NULL;
		return error_set_errno(err, ENOMEM, "building a path");
	}
	_cleanup_close_ int fd = open_regular(l->dir_fd, name, shown, NULL, &st, err);
	if (fd < 0)
		return -1;
	if ((uint64_t)st.st_size > max)
		return error_set(err, EFBIG, "'%s' is %" PRIu64 " bytes, more than the %zu allowed", shown,
				 (uint64_t)st.st_size, max);
	return read_file(fd, shown, (size_t)st.st_size, data, len, err);
}

static int open_dir_nofollow(int dfd, const char *name, const char *shown, capsa_error *err)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
		return error_set(err, EINVAL, "'%s' is not a directory (symlinks are refused)", shown);
	if (fd < 0)
		return error_set_errno(err, errno, "cannot open '%s'", shown);
	return fd;
}

/* Opens the blob of digest: ENOENT names the blob as missing. */
static int open_blob(layout *l, const char *digest, const char *what, struct stat *st, capsa_error *err)
{
	char shown[4096], missing[256];

	if (l->blobs_fd < 0) {
		snprintf(shown, sizeof(shown), "%s/blobs", l->dir);
		_cleanup_close_ int blobs = open_dir_nofollow(l->dir_fd, "blobs", shown, err);
		if (blobs < 0)
			return -1;
		snprintf(shown, sizeof(shown), "%s/blobs/sha256", l->dir);
		l->blobs_fd = open_dir_nofollow(blobs, "sha256", shown, err);
		if (l->blobs_fd < 0)
			return -1;
	}
	snprintf(shown, sizeof(shown), "%s/blobs/sha256/%s", l->dir, oci_digest_hex(digest));
	snprintf(missing, sizeof(missing), "the layout lacks blob %s (%s)", digest, what);
	return open_regular(l->blobs_fd, oci_digest_hex(digest), shown, missing, st, err);
}

static int layout_read_blob(void *opaque, const char *digest, size_t max, char **data, size_t *len,
			    capsa_error *err)
{
	layout *l = opaque;
	_cleanup_free_ char *buf = NULL;
	char got[OCI_DIGEST_STRING_SIZE];
	struct stat st;
	size_t n;

	_cleanup_close_ int fd = open_blob(l, digest, "manifest", &st, err);
	if (fd < 0)
		return -1;
	if ((uint64_t)st.st_size > max)
		return error_set(err, EFBIG, "blob %s is %" PRIu64 " bytes, more than the %zu allowed", digest,
				 (uint64_t)st.st_size, max);
	if (read_file(fd, digest, (size_t)st.st_size, &buf, &n, err) < 0 || oci_digest_of_buffer(buf, n, got, err) < 0)
		return -1;
	if (strcmp(got, digest) != 0)
		return error_set(err, EBADMSG, "blob " STORE_SHORT_DIGEST_FMT " is corrupt: expected %s got %s", digest,
				 digest, got);
	*data = steal_pointer(&buf);
	*len = n;
	return 0;
}

static int copy_into(oci_blob_writer *w, int fd, capsa_error *err)
{
	_cleanup_free_ char *buf = malloc(COPY_CHUNK);

	if (!buf)
		return error_set_errno(err, ENOMEM, "copying a blob");
	for (;;) {
		ssize_t n = read(fd, buf, COPY_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set_errno(err, errno, "cannot read");
		if (n == 0)
			return 0;
		if (oci_blob_writer_write(w, buf, (size_t)n, err) < 0)
			return -1;
	}
}

static int layout_store_blob(void *opaque, const oci_descriptor *d, const char *what, capsa_error *err)
{
	layout *l = opaque;
	oci_blob_writer *w = NULL;
	struct stat st;

	if (oci_store_has_blob(l->s, d->digest))
		return 0;
	_cleanup_close_ int fd = open_blob(l, d->digest, what, &st, err);
	if (fd < 0)
		return -1;
	int ret = oci_store_blob_begin(l->s, d->digest, d->size, &w, err);
	if (ret == 1)
		return 0;
	/* Local files: copying afresh is cheaper than re-reading a partial. */
	if (ret == 0 && oci_blob_writer_offset(w) > 0)
		ret = oci_blob_writer_restart(w, err);
	if (ret == 0)
		ret = copy_into(w, fd, err);
	if (ret == 0)
		ret = oci_blob_writer_commit(w, NULL, err);
	oci_blob_writer_free(w);
	if (ret < 0)
		return error_prefix(err, "%s", what);
	return 0;
}

/* Appends "a, b, c" (the entries' tags) to buf. */
static void describe_tags(const import_entry *entries, size_t n, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && used + 1 < size; i++) {
		const char *tag = entries[i].ref_name ? entries[i].ref_name : "(untagged)";
		int w = snprintf(buf + used, size - used, "%s%.100s", used ? ", " : "", tag);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	if (used >= size && size > 4)
		strcpy(buf + size - 4, "...");
}

/* The entry for tag: the one entry with that ref.name (or the only entry
 * when tag is NULL); several of them are told apart by platform. */
static int select_entry(const import_entry *entries, size_t n, const char *tag, const oci_platform *platform,
			size_t *out, capsa_error *err)
{
	_cleanup_free_ size_t *match = calloc(n ? n : 1, sizeof(*match));
	_cleanup_free_ oci_descriptor *descs = calloc(n ? n : 1, sizeof(*descs));
	char tags[512];
	size_t m = 0;

	if (!match || !descs)
		return error_set_errno(err, ENOMEM, "reading index.json");
	for (size_t i = 0; i < n; i++)
		if (!tag || (entries[i].ref_name && strcmp(entries[i].ref_name, tag) == 0))
			match[m++] = i;
	describe_tags(entries, n, tags, sizeof(tags));
	if (m == 0 && tag)
		return error_set(err, ENOENT, "the layout has no image tagged '%s'; its tags: %s", tag,
				 n ? tags : "none");
	if (m == 0)
		return error_set(err, ENOENT, "the layout holds no image");
	if (m == 1) {
		*out = match[0];
		return 0;
	}
	/* Several manifests under one tag (or no tag given): a platform per
	 * entry lets the index selection choose. */
	bool all_have_platform = true;
	for (size_t i = 0; i < m; i++) {
		descs[i] = entries[match[i]].desc;
		all_have_platform &= descs[i].platform.os != NULL;
	}
	if (!all_have_platform)
		return error_set(err, EINVAL, "the layout holds several images; name one of its tags: %s", tags);
	oci_index idx = { .manifests = descs, .n_manifests = m };
	size_t pick;
	if (oci_index_select(&idx, platform, &pick, err) < 0)
		return -1;
	*out = match[pick];
	return 0;
}

static int import_layout(layout *l, const char *tag, const char *store_name, const oci_platform *platform,
			 char out_manifest_digest[OCI_DIGEST_STRING_SIZE], capsa_error *err)
{
	_cleanup_free_ char *layout_json = NULL, *index_json = NULL;
	import_entry *entries = NULL;
	size_t len, n = 0, pick = 0;
	uint64_t size = 0;

	if (read_layout_file(l, "oci-layout", LAYOUT_FILE_MAX, &layout_json, &len, err) < 0)
		return error_prefix(err, "not an OCI image layout");
	if (import_check_layout_file(layout_json, len, err) < 0 ||
	    read_layout_file(l, "index.json", OCI_MANIFEST_MAX_BYTES, &index_json, &len, err) < 0 ||
	    import_parse_layout_index(index_json, len, &entries, &n, err) < 0)
		return -1;

	import_source src = { .read_blob = layout_read_blob, .store_blob = layout_store_blob, .opaque = l };
	int ret = select_entry(entries, n, tag, platform, &pick, err);
	if (ret == 0)
		ret = oci_store_use_begin(l->s, err);
	if (ret == 0) {
		ret = import_resolve_image(l->s, &src, &entries[pick].desc, platform, out_manifest_digest, &size, err);
		if (ret == 0)
			ret = oci_store_tag(l->s, store_name, out_manifest_digest, size, err);
		oci_store_use_end(l->s);
	}
	import_entries_free(entries, n);
	return ret;
}

int oci_import_layout(oci_store *s, const char *dir, const char *tag, const char *store_name,
		      const oci_platform *platform, char out_manifest_digest[OCI_DIGEST_STRING_SIZE],
		      capsa_error *err)
{
	layout l = { .s = s, .dir = dir, .dir_fd = -1, .blobs_fd = -1 };
	int ret;

	l.dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l.dir_fd < 0)
		ret = error_set_errno(err, errno, "cannot open OCI layout '%s'", dir);
	else
		ret = import_layout(&l, tag, store_name, platform, out_manifest_digest, err);
	if (l.dir_fd >= 0)
		close(l.dir_fd);
	if (l.blobs_fd >= 0)
		close(l.blobs_fd);
	if (ret < 0) {
		error_prefix(err, "importing '%s'", dir);
	}
	return ret;
}
