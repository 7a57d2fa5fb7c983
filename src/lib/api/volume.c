/* Named persistent disks (capsa run --disk NAME:/path): one sparse ext4
 * image per name in <data dir>/volumes, made by e2fsprogs' mke2fs on first
 * use.
 *
 * A VM holds an exclusive open-file-description lock (F_OFD_SETLK) on the
 * image for as long as it runs: like flock it belongs to the open file, so
 * it goes away with the VM process however that ends, and unlike flock it
 * can be queried (F_OFD_GETLK) without taking it, so listing volumes never
 * makes a starting VM fail. */
#include "api/volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci/store.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"

#define IMAGE_SUFFIX ".ext4"

extern char **environ;

static bool name_char_ok(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return !first && (c == '_' || c == '.' || c == '-');
}

static bool name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > VOLUME_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char_ok(name[i], i == 0))
			return false;
	return true;
}

int volume_name_check(const char *name, capsa_error *err)
{
	if (!name || !name_ok(name))
		return error_set(err, EINVAL,
				 "volume name '%.80s' is not valid: use up to %d letters, digits and _.- starting "
				 "with a letter or digit",
				 name ? name : "", VOLUME_NAME_MAX);
	return 0;
}

static int size_check(uint64_t size, capsa_error *err)
{
	if (size < VOLUME_MIN_SIZE || size > VOLUME_MAX_SIZE)
		return error_set(err, EINVAL, "a volume size of %llu bytes is out of range: use %llu MiB to %llu TiB",
				 (unsigned long long)size, VOLUME_MIN_SIZE >> 20, VOLUME_MAX_SIZE >> 40);
	return 0;
}

/* <data dir>/volumes, malloc'd. */
static char *volumes_dir(const char *data_dir, capsa_error *err)
{
	_cleanup_free_ char *root = data_dir ? strdup(data_dir) : oci_store_default_root(err);
	char *dir;
	if (!root) {
		if (data_dir)
			error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	if (asprintf(&dir, "%s/volumes", root) < 0) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	return dir;
}

static char *image_path(const char *dir, const char *name, capsa_error *err)
{
	char *path;
	if (asprintf(&path, "%s/%s" IMAGE_SUFFIX, dir, name) < 0) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	return path;
}

static int lock_image(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	return fcntl(fd, F_OFD_SETLK, &fl);
}

/* Whether some other open file holds the image's lock. */
static bool image_in_use(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	return fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

static int in_use_error(const char *name, capsa_error *err)
{
	return error_set(err, EBUSY, "volume '%s' is in use by another VM; stop that VM first (capsa ps lists them)",
			 name);
}

/* The first line of what mke2fs printed, for the error message. */
static void first_line(char *text)
{
	char *nl = strchr(text, '\n');
	if (nl)
		*nl = '\0';
}

/* mke2fs from e2fsprogs; it lives in sbin, which a user's PATH may lack. */
static const char *find_mke2fs(void)
{
	static const char *const candidates[] = { "/usr/sbin/mke2fs", "/sbin/mke2fs" };
	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
		if (access(candidates[i], X_OK) == 0)
			return candidates[i];
	return "mke2fs";
}

static int run_mke2fs(const char *path, capsa_error *err)
{
	/* Root owns the file system's root, whoever runs capsa: the guest's
	 * workload runs as root by default. No reserved blocks: the volume
	 * holds data, not a system. Lazy init and no discard keep the file
	 * sparse and the creation quick. */
	const char *mke2fs = find_mke2fs();
	char *const argv[] = { (char *)"mke2fs", (char *)"-q", (char *)"-F", (char *)"-t", (char *)"ext4",
			       (char *)"-m", (char *)"0", (char *)"-E",
			       (char *)"root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1,nodiscard",
			       (char *)path, NULL };
	int out[2];
	if (pipe2(out, O_CLOEXEC) < 0)
		return error_set_errno(err, errno, "cannot create a pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, out[1], 2);
	pid_t pid;
	int r = mke2fs[0] == '/' ? posix_spawn(&pid, mke2fs, &fa, NULL, argv, environ)
				 : posix_spawnp(&pid, mke2fs, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	if (r != 0) {
		close(out[0]);
		if (r == ENOENT)
			return error_set(err, ENOENT, "mke2fs not found: install e2fsprogs to create volumes");
		return error_set_errno(err, r, "cannot run %s", mke2fs);
	}
	char msg[512];
	size_t got = 0;
	for (;;) {
		char buf[512];
		ssize_t n = read(out[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t take = (size_t)n < sizeof(msg) - 1 - got ? (size_t)n : sizeof(msg) - 1 - got;
		memcpy(msg + got, buf, take);
		got += take;
	}
	msg[got] = '\0';
	close(out[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return error_set_errno(err, errno, "waiting for mke2fs");
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		first_line(msg);
		return error_set(err, EIO, "mke2fs failed%s%s", msg[0] ? ": " : "", msg);
	}
	return 0;
}

/* Makes the image under a temporary name and renames it into place, so no
 * one ever sees a half-made file system. Another process creating the same
 * volume at the same time is fine: the first rename wins and *created
 * tells the loser. */
static int create_image(const char *dir, const char *name, uint64_t size, bool *created, capsa_error *err)
{
	_cleanup_free_ char *path = image_path(dir, name, err);
	_cleanup_free_ char *tmp = NULL;
	if (!path)
		return -1;
	/* Names never start with '.', so a leftover temporary is never listed. */
	if (asprintf(&tmp, "%s/.%s" IMAGE_SUFFIX ".XXXXXX", dir, name) < 0)
		return error_set(err, ENOMEM, "out of memory");
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return error_set_errno(err, errno, "cannot create a file in %s", dir);
	int r = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	close(fd);
	if (r < 0) {
		unlink(tmp);
		return error_set_errno(err, -r, "cannot size the image of volume '%s'", name);
	}
	if (run_mke2fs(tmp, err) < 0) {
		unlink(tmp);
		return error_prefix(err, "creating volume '%s'", name);
	}
	*created = true;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		int e = errno;
		unlink(tmp);
		if (e != EEXIST)
			return error_set_errno(err, e, "cannot move the new image of volume '%s' into place", name);
		*created = false;
	}
	return fs_sync_dir(dir, err);
}

static int open_volumes_dir(const char *data_dir, bool create, char **dir, capsa_error *err)
{
	*dir = volumes_dir(data_dir, err);
	if (!*dir)
		return -1;
	if (create && fs_mkdir_p(*dir, 0700, err) < 0)
		return error_prefix(err, "volume directory");
	return 0;
}

int volume_attach(const char *data_dir, const char *name, uint64_t size, char **path_out, capsa_error *err)
{
	if (volume_name_check(name, err) < 0)
		return -1;
	if (size == 0)
		size = VOLUME_DEFAULT_SIZE;
	if (size_check(size, err) < 0)
		return -1;
	_cleanup_free_ char *dir = NULL;
	if (open_volumes_dir(data_dir, true, &dir, err) < 0)
		return -1;
	_cleanup_free_ char *path = image_path(dir, name, err);
	if (!path)
		return -1;
	/* A volume removed between our open and our lock would leave us with
	 * a deleted file: check the path still names what we locked. */
	for (int attempt = 0; attempt < 5; attempt++) {
		_cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno == ENOENT) {
			bool created = false;
			if (create_image(dir, name, size, &created, err) < 0)
				return -1;
			continue;
		}
		if (fd < 0)
			return error_set_errno(err, errno, "cannot open the image of volume '%s' (%s)", name, path);
		if (lock_image(fd) < 0) {
			if (errno == EAGAIN || errno == EACCES)
				return in_use_error(name, err);
			return error_set_errno(err, errno, "cannot lock the image of volume '%s'", name);
		}
		struct stat locked, named;
		if (fstat(fd, &locked) < 0)
			return error_set_errno(err, errno, "volume '%s'", name);
		if (!S_ISREG(locked.st_mode))
			return error_set(err, EINVAL, "the image of volume '%s' (%s) is not a regular file", name, path);
		if (stat(path, &named) < 0 || named.st_ino != locked.st_ino || named.st_dev != locked.st_dev)
			continue;
		*path_out = steal_pointer(&path);
		return steal_fd(&fd);
	}
	return error_set(err, EAGAIN, "volume '%s' keeps being removed and created; try again", name);
}

CAPSA_API int capsa_volume_create(const char *data_dir, const char *name, uint64_t size_bytes, capsa_error *err)
{
	if (volume_name_check(name, err) < 0)
		return -1;
	if (size_bytes == 0)
		size_bytes = VOLUME_DEFAULT_SIZE;
	if (size_check(size_bytes, err) < 0)
		return -1;
	_cleanup_free_ char *dir = NULL;
	if (open_volumes_dir(data_dir, true, &dir, err) < 0)
		return -1;
	_cleanup_free_ char *path = image_path(dir, name, err);
	if (!path)
		return -1;
	if (access(path, F_OK) == 0)
		return error_set(err, EEXIST, "volume '%s' already exists", name);
	bool created = false;
	if (create_image(dir, name, size_bytes, &created, err) < 0)
		return -1;
	if (!created)
		return error_set(err, EEXIST, "volume '%s' already exists", name);
	return 0;
}

static int compare_volumes(const void *a, const void *b)
{
	return strcmp(((const capsa_volume_info *)a)->name, ((const capsa_volume_info *)b)->name);
}

CAPSA_API void capsa_volume_list_free(capsa_volume_info *list, size_t count)
{
	if (!list)
		return;
	for (size_t i = 0; i < count; i++)
		free(list[i].name);
	free(list);
}

CAPSA_API int capsa_volume_list(const char *data_dir, capsa_volume_info **list_out, size_t *count_out,
				capsa_error *err)
{
	*list_out = NULL;
	*count_out = 0;
	_cleanup_free_ char *dir = NULL;
	if (open_volumes_dir(data_dir, false, &dir, err) < 0)
		return -1;
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;  /* no volume was ever made */
		return error_set_errno(err, errno, "cannot read the volume directory %s", dir);
	}
	capsa_volume_info *list = NULL;
	size_t count = 0, cap = 0;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len <= strlen(IMAGE_SUFFIX) || strcmp(de->d_name + len - strlen(IMAGE_SUFFIX), IMAGE_SUFFIX))
			continue;
		_cleanup_free_ char *name = strndup(de->d_name, len - strlen(IMAGE_SUFFIX));
		if (!name) {
			r = error_set(err, ENOMEM, "out of memory");
			break;
		}
		if (!name_ok(name))
			continue;
		_cleanup_close_ int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			continue;  /* removed meanwhile, or not ours */
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			capsa_volume_info *grown = realloc(list, ncap * sizeof(*grown));
			if (!grown) {
				r = error_set(err, ENOMEM, "out of memory");
				break;
			}
			list = grown;
			cap = ncap;
		}
		list[count++] = (capsa_volume_info){
			.name = steal_pointer(&name),
			.size = (uint64_t)st.st_size,
			.disk_usage = (uint64_t)st.st_blocks * 512,
			.in_use = image_in_use(fd),
		};
	}
	closedir(d);
	if (r < 0) {
		capsa_volume_list_free(list, count);
		return -1;
	}
	if (count > 1)
		qsort(list, count, sizeof(*list), compare_volumes);
	*list_out = list;
	*count_out = count;
	return 0;
}

CAPSA_API int capsa_volume_remove(const char *data_dir, const char *name, capsa_error *err)
{
	if (volume_name_check(name, err) < 0)
		return -1;
	_cleanup_free_ char *dir = NULL;
	if (open_volumes_dir(data_dir, false, &dir, err) < 0)
		return -1;
	_cleanup_free_ char *path = image_path(dir, name, err);
	if (!path)
		return -1;
	_cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return error_set(err, ENOENT, "no volume named '%s' (capsa volume ls lists them)", name);
		return error_set_errno(err, errno, "cannot open the image of volume '%s' (%s)", name, path);
	}
	/* Held across the unlink, so no VM can start on it in between. */
	if (lock_image(fd) < 0) {
		if (errno == EAGAIN || errno == EACCES)
			return in_use_error(name, err);
		return error_set_errno(err, errno, "cannot lock the image of volume '%s'", name);
	}
	if (unlink(path) < 0)
		return error_set_errno(err, errno, "cannot remove the image of volume '%s' (%s)", name, path);
	return fs_sync_dir(dir, err);
}
