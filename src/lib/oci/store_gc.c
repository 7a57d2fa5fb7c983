/* Garbage collection: blobs no record reaches, root images of manifests
 * no record names, and abandoned partial files. Runs with the store lock
 * exclusive, so no pull or load is between storing blobs and naming them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci/manifest.h"
#include "oci/store.h"
#include "oci/store_internal.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"

typedef struct hex_set {
	char (*v)[OCI_DIGEST_HEX_LEN + 1];
	size_t n, cap;
} hex_set;

static int hex_set_add(hex_set *set, const char *digest, capsa_error *err)
{
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 64;
		void *v = realloc(set->v, cap * sizeof(*set->v));
		if (!v)
			return error_set_errno(err, ENOMEM, "collecting garbage");
		set->v = v;
		set->cap = cap;
	}
	memcpy(set->v[set->n++], oci_digest_hex(digest), OCI_DIGEST_HEX_LEN + 1);
	return 0;
}

static int compare_hex(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void hex_set_sort(hex_set *set)
{
	if (set->n)
		qsort(set->v, set->n, sizeof(*set->v), compare_hex);
}

static bool hex_set_has(const hex_set *set, const char *hex)
{
	return set->n && bsearch(hex, set->v, set->n, sizeof(*set->v), compare_hex) != NULL;
}

/* Adds the manifest's config and layers. false when the manifest cannot
 * be read: then nothing it might reference can be told from garbage. */
static bool add_manifest_blobs(oci_store *s, const char *digest, hex_set *reachable, capsa_error *err, int *ret)
{
	_cleanup_free_ char *json = NULL;
	oci_manifest m = { 0 };
	size_t len;

	if (oci_store_read_blob(s, digest, OCI_MANIFEST_MAX_BYTES, &json, &len, NULL) < 0 ||
	    oci_manifest_parse(json, len, &m, NULL) < 0)
		return false;
	*ret = hex_set_add(reachable, m.config.digest, err);
	for (size_t i = 0; *ret == 0 && i < m.n_layers; i++)
		*ret = hex_set_add(reachable, m.layers[i].digest, err);
	oci_manifest_clear(&m);
	return true;
}

static bool is_hex_name(const char *name, size_t *hex_len)
{
	size_t n = strspn(name, "0123456789abcdef");

	*hex_len = n;
	return n == OCI_DIGEST_HEX_LEN;
}

static bool is_stale(const struct stat *st)
{
	return time(NULL) - st->st_mtime >= STORE_STALE_SECONDS;
}

static void count_removed(oci_gc_stats *stats, size_t *counter, const struct stat *st)
{
	(*counter)++;
	stats->bytes_freed += (uint64_t)st->st_size;
}

static int remove_blobs(oci_store *s, const hex_set *reachable, oci_gc_stats *stats, capsa_error *err)
{
	DIR *dir = opendir(s->blobs_dir);
	struct dirent *de;
	size_t hex_len;

	if (!dir)
		return error_set_errno(err, errno, "cannot open '%s'", s->blobs_dir);
	while ((de = readdir(dir))) {
		struct stat st;

		if (!is_hex_name(de->d_name, &hex_len) || de->d_name[hex_len] != '\0' ||
		    hex_set_has(reachable, de->d_name))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (unlinkat(dirfd(dir), de->d_name, 0) == 0)
			count_removed(stats, &stats->blobs_removed, &st);
	}
	closedir(dir);
	return fs_sync_dir(s->blobs_dir, err);
}

static int remove_root_images(oci_store *s, const hex_set *named, oci_gc_stats *stats, capsa_error *err)
{
	DIR *dir = opendir(s->rootfs_dir);
	struct dirent *de;
	size_t hex_len;

	if (!dir)
		return error_set_errno(err, errno, "cannot open '%s'", s->rootfs_dir);
	while ((de = readdir(dir))) {
		struct stat st;

		if (!is_hex_name(de->d_name, &hex_len) || strncmp(de->d_name + hex_len, ".sqfs", 5) != 0)
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		bool image = de->d_name[hex_len + 5] == '\0';
		char hex[OCI_DIGEST_HEX_LEN + 1];
		memcpy(hex, de->d_name, OCI_DIGEST_HEX_LEN);
		hex[OCI_DIGEST_HEX_LEN] = '\0';
		/* "<hex>.sqfs.<anything>" is a builder's temporary file. */
		if (image ? hex_set_has(named, hex) : !is_stale(&st))
			continue;
		if (unlinkat(dirfd(dir), de->d_name, 0) == 0)
			count_removed(stats, image ? &stats->rootfs_removed : &stats->partials_removed, &st);
	}
	closedir(dir);
	return fs_sync_dir(s->rootfs_dir, err);
}

/* Removes one file of tmp/ when it is stale and nobody holds its lock:
 * partial blobs are locked through <hex>.lock, other temporary files by
 * a lock on themselves. */
static void remove_temporary(oci_store *s, int dfd, const char *name, oci_gc_stats *stats)
{
	struct stat st;
	size_t hex_len;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return;
	bool hex = is_hex_name(name, &hex_len);
	_cleanup_free_ char *path = store_path_join(s->tmp_dir, name, NULL);
	if (!path)
		return;
	if (hex && strcmp(name + hex_len, ".lock") == 0) {
		int fd = store_lock_path(path, LOCK_EX | LOCK_NB, NULL);
		if (fd >= 0) {
			unlink(path);
			close(fd);
		}
		return;
	}
	if (!is_stale(&st))
		return;
	_cleanup_close_ int lock_fd = -1;
	_cleanup_free_ char *lock_path = NULL;
	if (hex && strcmp(name + hex_len, ".partial") == 0) {
		if (asprintf(&lock_path, "%s/%.*s.lock", s->tmp_dir, OCI_DIGEST_HEX_LEN, name) < 0) {
			lock_path = NULL;
			return;
		}
		lock_fd = store_lock_path(lock_path, LOCK_EX | LOCK_NB, NULL);
	} else {
		lock_fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) < 0)
			return;
	}
	if (lock_fd < 0)
		return;
	if (unlinkat(dfd, name, 0) == 0)
		count_removed(stats, &stats->partials_removed, &st);
	if (lock_path)
		unlink(lock_path);
}

static int remove_temporaries(oci_store *s, oci_gc_stats *stats, capsa_error *err)
{
	DIR *dir = opendir(s->tmp_dir);
	struct dirent *de;

	if (!dir)
		return error_set_errno(err, errno, "cannot open '%s'", s->tmp_dir);
	while ((de = readdir(dir)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			remove_temporary(s, dirfd(dir), de->d_name, stats);
	closedir(dir);
	return fs_sync_dir(s->tmp_dir, err);
}

static int collect(oci_store *s, oci_gc_stats *stats, capsa_error *err)
{
	oci_image_record *records = NULL;
	hex_set reachable = { 0 }, named = { 0 };
	bool all_known = true;
	size_t n = 0;

	int ret = oci_store_list(s, &records, &n, err);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		ret = hex_set_add(&named, records[i].manifest_digest, err);
		if (ret == 0)
			ret = hex_set_add(&reachable, records[i].manifest_digest, err);
		if (ret == 0 && !add_manifest_blobs(s, records[i].manifest_digest, &reachable, err, &ret))
			all_known = false;
	}
	hex_set_sort(&reachable);
	hex_set_sort(&named);
	if (ret == 0 && all_known)
		ret = remove_blobs(s, &reachable, stats, err);
	if (ret == 0)
		ret = remove_root_images(s, &named, stats, err);
	if (ret == 0)
		ret = remove_temporaries(s, stats, err);
	oci_image_records_free(records, n);
	free(reachable.v);
	free(named.v);
	return ret;
}

int oci_store_gc(oci_store *s, oci_gc_stats *stats, capsa_error *err)
{
	oci_gc_stats local;
	int ret;

	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	pthread_mutex_lock(&s->use_mutex);
	if (s->use_depth > 0) {
		pthread_mutex_unlock(&s->use_mutex);
		return error_set(err, EBUSY, "cannot collect garbage while this process is using the image store");
	}
	while ((ret = flock(s->store_lock_fd, LOCK_EX)) < 0 && errno == EINTR)
		;
	if (ret < 0)
		ret = error_set_errno(err, errno, "cannot lock the image store '%s'", s->root);
	else
		ret = collect(s, stats, err);
	flock(s->store_lock_fd, LOCK_UN);
	pthread_mutex_unlock(&s->use_mutex);
	if (ret < 0)
		return error_prefix(err, "collecting garbage in '%s'", s->root);
	return 0;
}
