#include "api/snapshot_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci/json_util.h"
#include "oci/store.h"
#include "util/atomic_file.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"

#define INFO_FORMAT_VERSION 1
#define INFO_MAX_BYTES (64 * 1024)
static const char *const snapshot_files[] = { "state", "memory", "info.json" };

void snapshot_info_clear(struct snapshot_info *info)
{
	free(info->name);
	free(info->image);
	free(info->manifest_digest);
	free(info->root_image);
	free(info->root_image_id);
	free(info->fingerprint);
	memset(info, 0, sizeof(*info));
}

int snapshot_name_check(const char *name, capsa_error *err)
{
	size_t len = strlen(name);
	if (len == 0 || len > SNAPSHOT_NAME_MAX)
		return error_set(err, EINVAL, "snapshot name '%.80s' must be 1 to %d characters", name, SNAPSHOT_NAME_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return error_set(err, EINVAL, "snapshot name '%.80s' may only hold letters, digits, '_', '.' and "
					 "'-', and must start with a letter or digit", name);
	}
	return 0;
}

char *snapshot_root(const char *data_dir, capsa_error *err)
{
	_cleanup_free_ char *root = data_dir ? strdup(data_dir) : oci_store_default_root(err);
	char *dir = NULL;
	if (!root) {
		if (data_dir)
			error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	if (asprintf(&dir, "%s/snapshots", root) < 0) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	return dir;
}

char *snapshot_file_identity(const char *path, capsa_error *err)
{
	struct stat st;
	char *id = NULL;
	if (stat(path, &st) < 0) {
		error_set_errno(err, errno, "%s", path);
		return NULL;
	}
	if (asprintf(&id, "%lld:%lld.%09ld:%llu", (long long)st.st_size, (long long)st.st_mtim.tv_sec,
		     st.st_mtim.tv_nsec, (unsigned long long)st.st_ino) < 0) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	return id;
}

/* ---- info.json ---- */

static int write_info(const char *dir, const struct snapshot_info *info, capsa_error *err)
{
	_cleanup_json_ json_t *root = json_pack(
		"{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:b, s:I}", "version", INFO_FORMAT_VERSION, "name",
		info->name, "image", info->image ? info->image : "", "manifest", info->manifest_digest ? info->manifest_digest : "",
		"root_image", info->root_image, "root_image_id", info->root_image_id, "fingerprint",
		info->fingerprint ? info->fingerprint : "", "memory_mib", (json_int_t)info->memory_mib, "cpus",
		(json_int_t)info->cpus, "network", info->network, "workload_started", info->workload_started, "created",
		(json_int_t)info->created);
	if (!root)
		return error_set(err, ENOMEM, "out of memory");
	_cleanup_free_ char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text)
		return error_set(err, ENOMEM, "out of memory");
	char path[4096];
	if (fs_path_join(path, sizeof(path), dir, "info.json", err) < 0)
		return -1;
	return atomic_file_write_data(path, text, strlen(text), 0600, err);
}

static int get_u32_field(json_t *root, const char *key, uint32_t *out)
{
	json_t *v = json_object_get(root, key);
	if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > UINT32_MAX)
		return -1;
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

static int read_info(const char *dir, struct snapshot_info *info, capsa_error *err)
{
	char path[4096];
	if (fs_path_join(path, sizeof(path), dir, "info.json", err) < 0)
		return -1;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set_errno(err, errno, "snapshot %s", path);
	char buf[INFO_MAX_BYTES];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0)
		return error_set_errno(err, errno, "reading %s", path);
	json_error_t jerr;
	_cleanup_json_ json_t *root = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
	memset(info, 0, sizeof(*info));
	json_t *version = json_object_get(root, "version");
	json_t *network = json_object_get(root, "network");
	json_t *started = json_object_get(root, "workload_started");
	json_t *created = json_object_get(root, "created");
	if (!json_is_object(root) || !json_is_integer(version) || json_integer_value(version) != INFO_FORMAT_VERSION ||
	    json_require_string(root, "name", &info->name, err) < 0 ||
	    json_require_string(root, "image", &info->image, err) < 0 ||
	    json_require_string(root, "manifest", &info->manifest_digest, err) < 0 ||
	    json_require_string(root, "root_image", &info->root_image, err) < 0 ||
	    json_require_string(root, "root_image_id", &info->root_image_id, err) < 0 ||
	    json_require_string(root, "fingerprint", &info->fingerprint, err) < 0 ||
	    get_u32_field(root, "memory_mib", &info->memory_mib) < 0 || get_u32_field(root, "cpus", &info->cpus) < 0 ||
	    !json_is_boolean(network) || !json_is_boolean(started) || !json_is_integer(created)) {
		snapshot_info_clear(info);
		return error_set(err, EINVAL, "snapshot %s is damaged or from another capsa version (%s); remove it "
				 "(capsa snapshots rm) and make it again", path, n == sizeof(buf) ? "too large" : "bad info.json");
	}
	info->network = json_is_true(network);
	info->workload_started = json_is_true(started);
	info->created = (int64_t)json_integer_value(created);
	return 0;
}

/* ---- finding, writing, removing ---- */

static char *snapshot_dir(const char *data_dir, const char *name, capsa_error *err)
{
	if (snapshot_name_check(name, err) < 0)
		return NULL;
	_cleanup_free_ char *root = snapshot_root(data_dir, err);
	char *dir = NULL;
	if (!root)
		return NULL;
	if (asprintf(&dir, "%s/%s", root, name) < 0) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	return dir;
}

char *snapshot_find(const char *data_dir, const char *name, struct snapshot_info *info, capsa_error *err)
{
	_cleanup_free_ char *dir = snapshot_dir(data_dir, name, err);
	if (!dir)
		return NULL;
	struct stat st;
	if (stat(dir, &st) < 0) {
		if (errno == ENOENT)
			error_set(err, ENOENT, "no snapshot named '%s' (see capsa snapshots ls)", name);
		else
			error_set_errno(err, errno, "snapshot %s", dir);
		return NULL;
	}
	if (read_info(dir, info, err) < 0)
		return NULL;
	return steal_pointer(&dir);
}

bool snapshot_exists(const char *data_dir, const char *name)
{
	capsa_error err = { 0 };
	_cleanup_free_ char *dir = snapshot_dir(data_dir, name, &err);
	struct stat st;
	return dir && stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A snapshot directory holds only our files: remove them, then it. */
static int remove_snapshot_dir(const char *dir, capsa_error *err)
{
	for (size_t i = 0; i < sizeof(snapshot_files) / sizeof(snapshot_files[0]); i++) {
		char path[4096];
		if (fs_path_join(path, sizeof(path), dir, snapshot_files[i], err) < 0)
			return -1;
		if (unlink(path) < 0 && errno != ENOENT)
			return error_set_errno(err, errno, "removing %s", path);
	}
	if (rmdir(dir) < 0 && errno != ENOENT)
		return error_set_errno(err, errno, "removing %s", dir);
	return 0;
}

int snapshot_publish(const char *data_dir, const struct snapshot_info *info, bool replace, snapshot_write_fn write,
		     void *opaque, capsa_error *err)
{
	_cleanup_free_ char *final = snapshot_dir(data_dir, info->name, err);
	_cleanup_free_ char *root = snapshot_root(data_dir, err);
	_cleanup_free_ char *tmp = NULL, *old = NULL;
	if (!final || !root || fs_mkdir_p(root, 0700, err) < 0)
		return -1;
	if (asprintf(&tmp, "%s/.tmp-%s-XXXXXX", root, info->name) < 0 ||
	    asprintf(&old, "%s/.old-%s-%ld", root, info->name, (long)getpid()) < 0)
		return error_set(err, ENOMEM, "out of memory");
	if (!mkdtemp(tmp))
		return error_set_errno(err, errno, "creating %s", tmp);
	if (write(tmp, opaque, err) < 0 || write_info(tmp, info, err) < 0 || fs_sync_dir(tmp, err) < 0)
		goto fail;
	if (rename(tmp, final) == 0)
		return fs_sync_dir(root, err);
	if ((errno != EEXIST && errno != ENOTEMPTY) || !replace) {
		if (errno == EEXIST || errno == ENOTEMPTY)
			error_set(err, EEXIST, "a snapshot named '%s' exists already (remove it first)", info->name);
		else
			error_set_errno(err, errno, "renaming the snapshot to %s", final);
		goto fail;
	}
	/* Replace: move the old one aside, put the new one in, drop the old. */
	if (rename(final, old) < 0 || rename(tmp, final) < 0) {
		error_set_errno(err, errno, "replacing snapshot %s", final);
		goto fail;
	}
	remove_snapshot_dir(old, err);
	return fs_sync_dir(root, err);
fail:;
	capsa_error ignored;
	remove_snapshot_dir(tmp, &ignored);
	return -1;
}

int snapshot_remove(const char *data_dir, const char *name, capsa_error *err)
{
	_cleanup_free_ char *dir = snapshot_dir(data_dir, name, err);
	if (!dir)
		return -1;
	if (access(dir, F_OK) < 0)
		return error_set(err, ENOENT, "no snapshot named '%s' (see capsa snapshots ls)", name);
	return remove_snapshot_dir(dir, err);
}

int snapshot_prune_stale(const char *data_dir, uint64_t *bytes_freed, capsa_error *err)
{
	struct snapshot_info *list;
	size_t n;
	int r = 0;
	if (snapshot_list(data_dir, &list, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n && r == 0; i++) {
		const struct snapshot_info *s = &list[i];
		if (!s->fingerprint || !*s->fingerprint)
			continue; /* named: the user's to remove */
		capsa_error ignored;
		_cleanup_free_ char *id = s->root_image ? snapshot_file_identity(s->root_image, &ignored) : NULL;
		if (id && s->root_image_id && strcmp(id, s->root_image_id) == 0)
			continue;
		r = snapshot_remove(data_dir, s->name, err);
		if (r == 0 && bytes_freed)
			*bytes_freed += s->disk_bytes;
	}
	snapshot_list_free(list, n);
	return r;
}

static uint64_t dir_disk_bytes(const char *dir)
{
	uint64_t total = 0;
	for (size_t i = 0; i < sizeof(snapshot_files) / sizeof(snapshot_files[0]); i++) {
		char path[4096];
		struct stat st;
		capsa_error ignored;
		if (fs_path_join(path, sizeof(path), dir, snapshot_files[i], &ignored) == 0 && stat(path, &st) == 0)
			total += (uint64_t)st.st_blocks * 512;
	}
	return total;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(((const struct snapshot_info *)a)->name, ((const struct snapshot_info *)b)->name);
}

int snapshot_list(const char *data_dir, struct snapshot_info **list, size_t *count, capsa_error *err)
{
	_cleanup_free_ char *root = snapshot_root(data_dir, err);
	*list = NULL;
	*count = 0;
	if (!root)
		return -1;
	DIR *d = opendir(root);
	if (!d)
		return errno == ENOENT ? 0 : error_set_errno(err, errno, "listing %s", root);
	struct dirent *e;
	size_t n = 0, cap = 0;
	struct snapshot_info *items = NULL;
	while ((e = readdir(d))) {
		capsa_error skip;
		if (e->d_name[0] == '.' || snapshot_name_check(e->d_name, &skip) < 0)
			continue;
		char dir[4096];
		struct snapshot_info info;
		if (fs_path_join(dir, sizeof(dir), root, e->d_name, &skip) < 0 || read_info(dir, &info, &skip) < 0)
			continue; /* half-removed or foreign: not a snapshot to show */
		info.disk_bytes = dir_disk_bytes(dir);
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			struct snapshot_info *grown = realloc(items, cap * sizeof(*items));
			if (!grown) {
				snapshot_info_clear(&info);
				snapshot_list_free(items, n);
				closedir(d);
				return error_set(err, ENOMEM, "out of memory");
			}
			items = grown;
		}
		items[n++] = info;
	}
	closedir(d);
	if (n)
		qsort(items, n, sizeof(*items), compare_names);
	*list = items;
	*count = n;
	return 0;
}

void snapshot_list_free(struct snapshot_info *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		snapshot_info_clear(&list[i]);
	free(list);
}
