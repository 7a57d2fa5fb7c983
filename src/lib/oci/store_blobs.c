/* Content-addressed blobs: verified reads, and writes through a temporary
 * file that only gets the blob's name once its sha256 checked out. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/store.h"
#include "oci/store_internal.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"

#define COPY_CHUNK (64 * 1024)

struct oci_blob_writer {
	oci_store *s;
	char digest[OCI_DIGEST_STRING_SIZE]; /* "" when computed on commit */
	int64_t expected_size;               /* -1: unknown */
	char *tmp_path;                      /* <hex>.partial, or blob-XXXXXX for unknown digests */
	char *lock_path;                     /* <hex>.lock, known digests only */
	int lock_fd;
	int fd;
	oci_hasher *hasher;
	uint64_t offset;                     /* bytes found from an earlier attempt */
	uint64_t written;                    /* bytes in the file, all hashed */
	bool out_of_step;                    /* a failed write left file and hasher apart: restart or discard */
	bool done;                           /* committed or discarded: nothing left to clean up */
};

static int corrupt_error(capsa_error *err, const char *expected, const char *got)
{
	return error_set(err, EBADMSG, "blob " STORE_SHORT_DIGEST_FMT " is corrupt: expected %s got %s", expected,
			 expected, got);
}

static const char *writer_name(const oci_blob_writer *w)
{
	return w->digest[0] ? w->digest : w->tmp_path;
}

bool oci_store_has_blob(oci_store *s, const char *digest)
{
	_cleanup_free_ char *path = oci_store_blob_path(s, digest, NULL);
	struct stat st;

	return path && lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int read_fully(int fd, char *buf, size_t size, size_t *got)
{
	size_t n = 0;

	while (n < size) {
		ssize_t r = read(fd, buf + n, size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*got = n;
	return 0;
}

int oci_store_read_blob(oci_store *s, const char *digest, size_t max_size, char **data, size_t *len,
			capsa_error *err)
{
	_cleanup_free_ char *path = oci_store_blob_path(s, digest, err);
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	char got[OCI_DIGEST_STRING_SIZE];
	struct stat st;
	size_t n;

	if (!path)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return error_set(err, ENOENT, "blob %s is not in the image store", digest);
	if (fd < 0)
		return error_set_errno(err, errno, "cannot open blob '%s'", path);
	if (fstat(fd, &st) < 0)
		return error_set_errno(err, errno, "cannot stat blob '%s'", path);
	if (!S_ISREG(st.st_mode))
		return error_set(err, EINVAL, "blob '%s' is not a regular file", path);
	if ((uint64_t)st.st_size > max_size)
		return error_set(err, EFBIG, "blob %s is %" PRIu64 " bytes, more than the %zu allowed", digest,
				 (uint64_t)st.st_size, max_size);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return error_set_errno(err, ENOMEM, "reading blob %s", digest);
	if (read_fully(fd, buf, (size_t)st.st_size, &n) < 0)
		return error_set_errno(err, errno, "cannot read blob '%s'", path);
	buf[n] = '\0';
	if (oci_digest_of_buffer(buf, n, got, err) < 0)
		return -1;
	if (strcmp(got, digest) != 0) {
		/* Removed so that the next pull or load fetches it again
		 * instead of finding it "present". */
		unlink(path);
		return error_set(err, EBADMSG, "blob " STORE_SHORT_DIGEST_FMT " is corrupt: expected %s got %s; removed it "
				 "from the store, pull or load the image again", digest, digest, got);
	}
	*data = steal_pointer(&buf);
	*len = n;
	return 0;
}

int oci_store_put_blob(oci_store *s, const void *data, size_t len, const char *expected_digest,
		       char out_digest[OCI_DIGEST_STRING_SIZE], capsa_error *err)
{
	char digest[OCI_DIGEST_STRING_SIZE];
	oci_blob_writer *w = NULL;

	if (expected_digest && oci_digest_validate(expected_digest, err) < 0)
		return -1;
	if (oci_digest_of_buffer(data, len, digest, err) < 0)
		return -1;
	if (expected_digest && strcmp(expected_digest, digest) != 0)
		return corrupt_error(err, expected_digest, digest);
	if (out_digest)
		memcpy(out_digest, digest, sizeof(digest));
	int ret = oci_store_blob_begin(s, digest, (int64_t)len, &w, err);
	if (ret != 0)
		return ret < 0 ? -1 : 0;
	if (oci_blob_writer_offset(w) > 0)
		ret = oci_blob_writer_restart(w, err);
	if (ret == 0)
		ret = oci_blob_writer_write(w, data, len, err);
	if (ret == 0)
		ret = oci_blob_writer_commit(w, NULL, err);
	oci_blob_writer_free(w);
	return ret;
}

/* ---- streaming writes ---- */

/* Restores the hasher from what an earlier attempt left in the partial
 * file, so the download continues where it stopped. */
static int writer_resume(oci_blob_writer *w, capsa_error *err)
{
	struct stat st;

	if (fstat(w->fd, &st) < 0)
		return error_set_errno(err, errno, "cannot stat '%s'", w->tmp_path);
	if (!S_ISREG(st.st_mode))
		return error_set(err, EINVAL, "'%s' is not a regular file", w->tmp_path);
	if (w->expected_size >= 0 && st.st_size > w->expected_size)
		return oci_blob_writer_restart(w, err);

	_cleanup_free_ char *buf = malloc(COPY_CHUNK);
	if (!buf)
		return error_set_errno(err, ENOMEM, "resuming blob %s", w->digest);
	for (;;) {
		ssize_t n = read(w->fd, buf, COPY_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set_errno(err, errno, "cannot read '%s'", w->tmp_path);
		if (n == 0)
			break;
		if (oci_hasher_update(w->hasher, buf, (size_t)n, err) < 0)
			return -1;
		w->written += (uint64_t)n;
	}
	w->offset = w->written;
	return 0;
}

static int writer_open_known(oci_blob_writer *w, const char *digest, capsa_error *err)
{
	oci_store *s = w->s;
	char name[OCI_DIGEST_HEX_LEN + sizeof(".partial")];

	memcpy(w->digest, digest, OCI_DIGEST_STRING_SIZE);
	snprintf(name, sizeof(name), "%s.lock", oci_digest_hex(digest));
	if (!(w->lock_path = store_path_join(s->tmp_dir, name, err)))
		return -1;
	w->lock_fd = store_lock_path(w->lock_path, LOCK_EX, err);
	if (w->lock_fd < 0)
		return -1;
	if (oci_store_has_blob(s, digest))
		return 1;
	snprintf(name, sizeof(name), "%s.partial", oci_digest_hex(digest));
	if (!(w->tmp_path = store_path_join(s->tmp_dir, name, err)))
		return -1;
	w->fd = open(w->tmp_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (w->fd < 0)
		return error_set_errno(err, errno, "cannot open '%s'", w->tmp_path);
	return writer_resume(w, err);
}

static int writer_open_anonymous(oci_blob_writer *w, capsa_error *err)
{
	if (asprintf(&w->tmp_path, "%s/blob-XXXXXX", w->s->tmp_dir) < 0) {
		w->tmp_path = NULL;
		return error_set_errno(err, ENOMEM, "building a path");
	}
	w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
	if (w->fd < 0) {
		int e = errno;
		free(w->tmp_path);
		w->tmp_path = NULL;
		return error_set_errno(err, e, "cannot create a temporary file in '%s'", w->s->tmp_dir);
	}
	/* Marks the file busy for gc (it removes only files it can lock). */
	if (fchmod(w->fd, 0644) < 0 || flock(w->fd, LOCK_EX | LOCK_NB) < 0)
		return error_set_errno(err, errno, "cannot set up '%s'", w->tmp_path);
	return 0;
}

int oci_store_blob_begin(oci_store *s, const char *digest, int64_t expected_size, oci_blob_writer **out,
			 capsa_error *err)
{
	*out = NULL;
	if (digest && oci_digest_validate(digest, err) < 0)
		return -1;

	oci_blob_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return error_set_errno(err, ENOMEM, "starting a blob write");
	w->s = s;
	w->expected_size = expected_size < 0 ? -1 : expected_size;
	w->fd = -1;
	w->lock_fd = -1;
	w->hasher = oci_hasher_new(err);
	int ret = -1;
	if (w->hasher)
		ret = digest ? writer_open_known(w, digest, err) : writer_open_anonymous(w, err);
	if (ret != 0) {
		if (ret < 0 && digest)
			error_prefix(err, "storing blob %s", digest);
		/* Nothing of a known blob is lost here: an opened partial
		 * file is kept as it was. */
		oci_blob_writer_free(w);
		return ret;
	}
	*out = w;
	return 0;
}

uint64_t oci_blob_writer_offset(const oci_blob_writer *w)
{
	return w->offset;
}

int oci_blob_writer_restart(oci_blob_writer *w, capsa_error *err)
{
	if (w->done)
		return error_set(err, EINVAL, "blob writer used after it finished");
	if (ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0)
		return error_set_errno(err, errno, "cannot truncate '%s'", w->tmp_path);
	oci_hasher *h = oci_hasher_new(err);
	if (!h)
		return -1;
	oci_hasher_free(w->hasher);
	w->hasher = h;
	w->offset = 0;
	w->written = 0;
	w->out_of_step = false;
	return 0;
}

int oci_blob_writer_write(oci_blob_writer *w, const void *data, size_t len, capsa_error *err)
{
	const char *p = data;
	size_t left = len;

	if (w->done)
		return error_set(err, EINVAL, "blob writer used after it finished");
	if (w->out_of_step)
		return error_set(err, EIO, "blob %s: an earlier write failed; restart it", writer_name(w));
	if (w->expected_size >= 0 && (uint64_t)w->expected_size - w->written < len)
		return error_set(err, EBADMSG, "blob %s is larger than the expected %" PRId64 " bytes", writer_name(w),
				 w->expected_size);
	while (left > 0) {
		ssize_t n = write(w->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			/* Keeps file and hasher in step, so the partial file
			 * stays resumable. */
			if (ftruncate(w->fd, (off_t)w->written) < 0 || lseek(w->fd, (off_t)w->written, SEEK_SET) < 0)
				w->out_of_step = true;
			return error_set_errno(err, e, "cannot write '%s'", w->tmp_path);
		}
		p += n;
		left -= (size_t)n;
	}
	if (oci_hasher_update(w->hasher, data, len, err) < 0) {
		w->out_of_step = true;
		return -1;
	}
	w->written += len;
	return 0;
}

static void writer_discard(oci_blob_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->tmp_path)
		unlink(w->tmp_path);
	w->done = true;
}

int oci_blob_writer_commit(oci_blob_writer *w, char out_digest[OCI_DIGEST_STRING_SIZE], capsa_error *err)
{
	char got[OCI_DIGEST_STRING_SIZE];

	if (w->done)
		return error_set(err, EINVAL, "blob writer used after it finished");
	if (w->out_of_step) {
		writer_discard(w);
		return error_set(err, EIO, "blob %s: an earlier write failed; download it again", writer_name(w));
	}
	if (w->expected_size >= 0 && w->written != (uint64_t)w->expected_size) {
		if (w->digest[0])
			error_set(err, EBADMSG, "blob " STORE_SHORT_DIGEST_FMT " is corrupt: expected %" PRId64
				  " bytes got %" PRIu64, w->digest, w->expected_size, w->written);
		else
			error_set(err, EBADMSG, "blob being stored is corrupt: expected %" PRId64 " bytes got %" PRIu64,
				  w->expected_size, w->written);
		writer_discard(w);
		return -1;
	}
	if (fsync(w->fd) < 0)
		return error_set_errno(err, errno, "cannot sync '%s'", w->tmp_path);
	if (oci_hasher_finish(w->hasher, got, err) < 0) {
		writer_discard(w);
		return -1;
	}
	if (w->digest[0] && strcmp(got, w->digest) != 0) {
		corrupt_error(err, w->digest, got);
		writer_discard(w);
		return -1;
	}

	_cleanup_free_ char *final = oci_store_blob_path(w->s, got, err);
	int ret = final ? 0 : -1;
	if (ret == 0 && !w->digest[0] && oci_store_has_blob(w->s, got))
		writer_discard(w);  /* stored meanwhile; same bytes */
	else if (ret == 0 && rename(w->tmp_path, final) < 0)
		ret = error_set_errno(err, errno, "cannot rename '%s' to '%s'", w->tmp_path, final);
	if (ret == 0)
		ret = fs_sync_dir(w->s->blobs_dir, err);
	if (ret < 0 && !w->digest[0])
		writer_discard(w);
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	/* The hasher is finished: even a failed rename leaves nothing to
	 * continue (a known blob's partial is re-hashed on the next begin). */
	w->done = true;
	if (ret == 0 && out_digest)
		memcpy(out_digest, got, sizeof(got));
	return ret;
}

void oci_blob_writer_free(oci_blob_writer *w)
{
	if (!w)
		return;
	if (!w->done && (!w->digest[0] || w->out_of_step))
		writer_discard(w);
	if (w->fd >= 0)
		close(w->fd);
	if (w->lock_fd >= 0) {
		/* Unlinked while held: a process waiting on this lock
		 * notices (store_lock_path) and locks the path afresh. */
		unlink(w->lock_path);
		close(w->lock_fd);
	}
	oci_hasher_free(w->hasher);
	free(w->tmp_path);
	free(w->lock_path);
	free(w);
}
