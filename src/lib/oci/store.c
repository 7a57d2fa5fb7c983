/* The store handle, its folders and locks, and the file helpers the other
 * store_*.c files share. Blobs: store_blobs.c, names: store_names.c,
 * garbage collection: store_gc.c. */
#include "oci/store.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/store_internal.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"

char *store_path_join(const char *a, const char *b, capsa_error *err)
{
	char *path;

	if (asprintf(&path, "%s/%s", a, b) < 0) {
		error_set_errno(err, ENOMEM, "building a path");
		return NULL;
	}
	return path;
}

int store_lock_path(const char *path, int op, capsa_error *err)
{
	for (;;) {
		_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		struct stat held, now;

		if (fd < 0)
			return error_set_errno(err, errno, "cannot open lock file '%s'", path);
		while (flock(fd, op) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EWOULDBLOCK)
				return error_set(err, EWOULDBLOCK, "'%s' is locked by another process", path);
			return error_set_errno(err, errno, "cannot lock '%s'", path);
		}
		if (fstat(fd, &held) < 0)
			return error_set_errno(err, errno, "cannot stat lock file '%s'", path);
		/* Removed (and maybe recreated) while we waited: the lock we
		 * hold protects nothing any more. */
		if (stat(path, &now) == 0) {
			if (now.st_ino == held.st_ino && now.st_dev == held.st_dev)
				return steal_fd(&fd);
		} else if (errno != ENOENT) {
			return error_set_errno(err, errno, "cannot stat lock file '%s'", path);
		}
	}
}

char *oci_store_default_root(capsa_error *err)
{
	const char *data_home = getenv("XDG_DATA_HOME");
	char *root;

	/* The XDG spec says relative values are invalid and to be ignored. */
	if (data_home && data_home[0] == '/') {
		if (asprintf(&root, "%s/capsa", data_home) < 0)
			goto oom;
		return root;
	}
	const char *home = getenv("HOME");
	if (!home || home[0] != '/') {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || home[0] != '/') {
		error_set(err, ENOENT, "cannot find a place for the image store: set HOME or XDG_DATA_HOME");
		return NULL;
	}
	if (asprintf(&root, "%s/.local/share/capsa", home) < 0)
		goto oom;
	return root;
oom:
	error_set_errno(err, ENOMEM, "building the image store path");
	return NULL;
}

void oci_store_close(oci_store *s)
{
	if (!s)
		return;
	if (s->store_lock_fd >= 0)
		close(s->store_lock_fd);
	pthread_mutex_destroy(&s->use_mutex);
	free(s->root);
	free(s->blobs_dir);
	free(s->tmp_dir);
	free(s->rootfs_dir);
	free(s->images_path);
	free(s->images_lock);
	free(s);
}

oci_store *oci_store_open(const char *root, capsa_error *err)
{
	_cleanup_free_ char *lock_path = NULL;
	oci_store *s = calloc(1, sizeof(*s));

	if (!s) {
		error_set_errno(err, ENOMEM, "opening the image store");
		return NULL;
	}
	s->store_lock_fd = -1;
	pthread_mutex_init(&s->use_mutex, NULL);
	s->root = root ? strdup(root) : oci_store_default_root(err);
	if (!s->root) {
		if (root)
			error_set_errno(err, ENOMEM, "opening the image store");
		goto fail;
	}
	if (!(s->blobs_dir = store_path_join(s->root, "blobs/sha256", err)) ||
	    !(s->tmp_dir = store_path_join(s->root, "tmp", err)) ||
	    !(s->rootfs_dir = store_path_join(s->root, "rootfs", err)) ||
	    !(s->images_path = store_path_join(s->root, "images.json", err)) ||
	    !(s->images_lock = store_path_join(s->root, "images.lock", err)))
		goto fail;
	if (fs_mkdir_p(s->blobs_dir, 0755, err) < 0 || fs_mkdir_p(s->tmp_dir, 0755, err) < 0 ||
	    fs_mkdir_p(s->rootfs_dir, 0755, err) < 0)
		goto fail;

	lock_path = store_path_join(s->root, "store.lock", err);
	if (!lock_path)
		goto fail;
	s->store_lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (s->store_lock_fd < 0) {
		error_set_errno(err, errno, "cannot open '%s'", lock_path);
		goto fail;
	}
	return s;
fail:
	error_prefix(err, "opening the image store%s%s", s->root ? " at " : "", s->root ? s->root : "");
	oci_store_close(s);
	return NULL;
}

const char *oci_store_root(const oci_store *s)
{
	return s->root;
}

int oci_store_use_begin(oci_store *s, capsa_error *err)
{
	int ret = 0;

	pthread_mutex_lock(&s->use_mutex);
	if (s->use_depth == 0) {
		while ((ret = flock(s->store_lock_fd, LOCK_SH)) < 0 && errno == EINTR)
			;
		if (ret < 0)
			error_set_errno(err, errno, "cannot lock the image store '%s'", s->root);
	}
	if (ret == 0)
		s->use_depth++;
	pthread_mutex_unlock(&s->use_mutex);
	return ret;
}

void oci_store_use_end(oci_store *s)
{
	pthread_mutex_lock(&s->use_mutex);
	if (s->use_depth > 0 && --s->use_depth == 0)
		flock(s->store_lock_fd, LOCK_UN);
	pthread_mutex_unlock(&s->use_mutex);
}

static char *digest_file_path(const char *dir, const char *digest, const char *suffix, capsa_error *err)
{
	char *path;

	if (oci_digest_validate(digest, err) < 0)
		return NULL;
	if (asprintf(&path, "%s/%s%s", dir, oci_digest_hex(digest), suffix) < 0) {
		error_set_errno(err, ENOMEM, "building a path");
		return NULL;
	}
	return path;
}

char *oci_store_blob_path(oci_store *s, const char *digest, capsa_error *err)
{
	return digest_file_path(s->blobs_dir, digest, "", err);
}

char *oci_store_rootfs_path(oci_store *s, const char *manifest_digest, capsa_error *err)
{
	return digest_file_path(s->rootfs_dir, manifest_digest, ".sqfs", err);
}
