/* newc cpio writer for the guest initramfs (see initramfs.h).
 *
 * Each entry is a 110-byte ASCII header ("070701" and 13 eight-digit hex
 * fields), the NUL-terminated name padded to a multiple of 4 bytes
 * (counting from the header's start), then the data padded to 4 bytes. The
 * archive ends with an entry named "TRAILER!!!". */
#include "boot/initramfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest_abi.h"
#include "util/cleanup.h"
#include "util/error.h"

#define NEWC_MAGIC "070701"
#define NEWC_HEADER_SIZE 110
#define NEWC_TRAILER "TRAILER!!!"

/* Linux's limit on one argv or environment string, NUL included
 * (MAX_ARG_STRLEN): a longer one would make init's execve fail. */
#define ARG_STRING_MAX (32 * 4096)
#define HOSTNAME_MAX 64
/* "name:group" of at most two 32-character names; room for long numeric ids too. */
#define USER_SPEC_MAX 256

struct initramfs_name {
	char *name;   /* as stored: no leading '/' */
	bool is_dir;
};

struct initramfs {
	uint8_t *data;
	size_t len;
	size_t cap;
	uint32_t next_ino;
	bool finished;
	/* Every name added so far, to refuse duplicates and entries whose
	 * directory is missing; archives hold a handful of entries. */
	struct initramfs_name *names;
	size_t name_count;
};

struct initramfs *initramfs_new(capsa_error *err)
{
	struct initramfs *ird = calloc(1, sizeof(*ird));

	if (!ird) {
		error_set(err, ENOMEM, "initramfs: out of memory");
		return NULL;
	}
	ird->next_ino = 1;
	return ird;
}

void initramfs_free(struct initramfs *ird)
{
	if (!ird)
		return;
	for (size_t i = 0; i < ird->name_count; i++)
		free(ird->names[i].name);
	free(ird->names);
	free(ird->data);
	free(ird);
}

const uint8_t *initramfs_data(const struct initramfs *ird, size_t *len)
{
	*len = ird->len;
	return ird->data;
}

static int reserve(struct initramfs *ird, size_t more, capsa_error *err)
{
	size_t want, cap;
	uint8_t *grown;

	if (more > SIZE_MAX - ird->len)
		return error_set(err, EOVERFLOW, "initramfs: archive too large");
	want = ird->len + more;
	if (want <= ird->cap)
		return 0;
	cap = ird->cap ? ird->cap : 4096;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	grown = realloc(ird->data, cap);
	if (!grown)
		return error_set(err, ENOMEM, "initramfs: out of memory for a %zu-byte archive", want);
	ird->data = grown;
	ird->cap = cap;
	return 0;
}

/* Appends len bytes (zeros if data is NULL); the space is reserved. */
static void append(struct initramfs *ird, const void *data, size_t len)
{
	if (data)
		memcpy(ird->data + ird->len, data, len);
	else
		memset(ird->data + ird->len, 0, len);
	ird->len += len;
}

static size_t pad4(size_t n)
{
	return (4 - (n & 3)) & 3;
}

/* Writes one complete entry. name is already validated. */
static int write_entry(struct initramfs *ird, const char *name, uint32_t ino, uint32_t mode, uint32_t nlink,
		       uint32_t rdev_major, uint32_t rdev_minor, const void *data, size_t len, capsa_error *err)
{
	char header[NEWC_HEADER_SIZE + 1];
	size_t name_size = strlen(name) + 1;
	size_t name_pad = pad4(NEWC_HEADER_SIZE + name_size);
	size_t data_pad = pad4(len);

	if (len > UINT32_MAX || name_size > UINT32_MAX)
		return error_set(err, EFBIG, "initramfs: entry '%s' too large for the cpio format", name);
	/* Fields: ino mode uid gid nlink mtime filesize devmajor devminor
	 * rdevmajor rdevminor namesize check. Owner root, time 0. */
	snprintf(header, sizeof(header), NEWC_MAGIC "%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino,
		 mode, 0u, 0u, nlink, 0u, (uint32_t)len, 0u, 0u, rdev_major, rdev_minor, (uint32_t)name_size, 0u);

	if (reserve(ird, NEWC_HEADER_SIZE + name_size + name_pad + len + data_pad, err) < 0)
		return -1;
	append(ird, header, NEWC_HEADER_SIZE);
	append(ird, name, name_size);
	append(ird, NULL, name_pad);
	if (len)
		append(ird, data, len);
	append(ird, NULL, data_pad);
	return 0;
}

static bool name_is(const struct initramfs_name *n, const char *name, size_t len)
{
	return strlen(n->name) == len && memcmp(n->name, name, len) == 0;
}

/* Checks path and returns its archive name (path without leading '/'),
 * or NULL with err set. The entry's directory must already be in the
 * archive and the name must be new. */
static const char *check_path(const struct initramfs *ird, const char *path, capsa_error *err)
{
	const char *name, *comp, *slash = NULL;

	if (!path) {
		error_set(err, EINVAL, "initramfs: no path given");
		return NULL;
	}
	name = path + strspn(path, "/");
	if (*name == '\0') {
		error_set(err, EINVAL, "initramfs: path '%s' names the archive root, which always exists", path);
		return NULL;
	}
	if (strlen(name) + 1 > PATH_MAX) {
		error_set(err, ENAMETOOLONG, "initramfs: path '%.64s...' is longer than %d bytes", name,
			  PATH_MAX - 1);
		return NULL;
	}
	for (comp = name; ; ) {
		const char *end = strchrnul(comp, '/');
		size_t len = (size_t)(end - comp);
		if (len == 0 || (len == 1 && comp[0] == '.') || (len == 2 && comp[0] == '.' && comp[1] == '.')) {
			error_set(err, EINVAL, "initramfs: path '%s' has an empty, '.' or '..' component", path);
			return NULL;
		}
		if (*end == '\0')
			break;
		slash = end;
		comp = end + 1;
	}

	bool parent_found = slash == NULL;  /* top-level entries sit in the root */
	for (size_t i = 0; i < ird->name_count; i++) {
		const struct initramfs_name *n = &ird->names[i];
		if (strcmp(n->name, name) == 0) {
			error_set(err, EEXIST, "initramfs: '%s' is already in the archive", path);
			return NULL;
		}
		if (slash && n->is_dir && name_is(n, name, (size_t)(slash - name)))
			parent_found = true;
	}
	if (!parent_found) {
		error_set(err, ENOENT, "initramfs: add the directory of '%s' before it", path);
		return NULL;
	}
	return name;
}

static int add_entry(struct initramfs *ird, const char *path, uint32_t mode, uint32_t rdev_major,
		     uint32_t rdev_minor, const void *data, size_t len, capsa_error *err)
{
	struct initramfs_name *grown;
	bool is_dir = S_ISDIR(mode);
	const char *name;
	char *copy;

	if (ird->finished)
		return error_set(err, EINVAL, "initramfs: cannot add '%s' after the trailer", path ? path : "");
	name = check_path(ird, path, err);
	if (!name)
		return -1;
	if (len > INITRAMFS_MAX_FILE_SIZE)
		return error_set(err, EFBIG, "initramfs: '%s' is %zu bytes, more than the %u allowed", path, len,
				 INITRAMFS_MAX_FILE_SIZE);
	if (ird->next_ino == UINT32_MAX)
		return error_set(err, EOVERFLOW, "initramfs: too many entries");

	copy = strdup(name);
	grown = realloc(ird->names, (ird->name_count + 1) * sizeof(*grown));
	if (!copy || !grown) {
		free(copy);
		if (grown)
			ird->names = grown;
		return error_set(err, ENOMEM, "initramfs: out of memory");
	}
	ird->names = grown;

	uint32_t nlink = is_dir ? 2 : 1;
	if (write_entry(ird, name, ird->next_ino, mode, nlink, rdev_major, rdev_minor, data, len, err) < 0) {
		free(copy);
		return -1;
	}
	ird->next_ino++;
	ird->names[ird->name_count++] = (struct initramfs_name){ .name = copy, .is_dir = is_dir };
	return 0;
}

static int check_permissions(const char *path, mode_t mode, capsa_error *err)
{
	if (mode & ~(mode_t)07777)
		return error_set(err, EINVAL, "initramfs: mode %#o for '%s' has more than permission bits",
				 (unsigned int)mode, path ? path : "");
	return 0;
}

int initramfs_add_dir(struct initramfs *ird, const char *path, mode_t mode, capsa_error *err)
{
	if (check_permissions(path, mode, err) < 0)
		return -1;
	return add_entry(ird, path, S_IFDIR | mode, 0, 0, NULL, 0, err);
}

int initramfs_add_file(struct initramfs *ird, const char *path, mode_t mode, const void *data, size_t len,
		       capsa_error *err)
{
	if (check_permissions(path, mode, err) < 0)
		return -1;
	if (!data && len)
		return error_set(err, EINVAL, "initramfs: no data for '%s'", path ? path : "");
	return add_entry(ird, path, S_IFREG | mode, 0, 0, data, len, err);
}

int initramfs_add_node(struct initramfs *ird, const char *path, mode_t mode, unsigned int major,
		       unsigned int minor, capsa_error *err)
{
	mode_t type = mode & S_IFMT;

	if ((type != S_IFCHR && type != S_IFBLK) || check_permissions(path, mode & ~S_IFMT, err) < 0)
		return error_set(err, EINVAL, "initramfs: mode %#o for node '%s' is not a device type plus "
				 "permission bits", (unsigned int)mode, path ? path : "");
	/* The kernel's dev_t has 12 bits of major and 20 of minor. */
	if (major >= (1u << 12) || minor >= (1u << 20))
		return error_set(err, EINVAL, "initramfs: device number %u:%u for '%s' is out of range", major,
				 minor, path ? path : "");
	return add_entry(ird, path, mode, major, minor, NULL, 0, err);
}

/* Reads a whole regular host file of at most INITRAMFS_MAX_FILE_SIZE bytes. */
static int read_host_file(const char *host_path, uint8_t **out, size_t *out_len, capsa_error *err)
{
	_cleanup_close_ int fd = open(host_path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ uint8_t *buf = NULL;
	struct stat st;
	size_t size, got = 0;

	if (fd < 0)
		return error_set_errno(err, errno, "open %s", host_path);
	if (fstat(fd, &st) < 0)
		return error_set_errno(err, errno, "stat %s", host_path);
	if (!S_ISREG(st.st_mode))
		return error_set(err, EINVAL, "%s is not a regular file", host_path);
	if ((uint64_t)st.st_size > INITRAMFS_MAX_FILE_SIZE)
		return error_set(err, EFBIG, "%s is larger than the %u bytes an initramfs file may have",
				 host_path,
				 INITRAMFS_MAX_FILE_SIZE);
	size = (size_t)st.st_size;
	buf = malloc(size ? size : 1);
	if (!buf)
		return error_set(err, ENOMEM, "out of memory reading %s", host_path);
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set_errno(err, errno, "read %s", host_path);
		if (n == 0)
			return error_set(err, EIO, "%s shrank while being read", host_path);
		got += (size_t)n;
	}
	*out = steal_pointer(&buf);
	*out_len = size;
	return 0;
}

int initramfs_add_file_from_host(struct initramfs *ird, const char *guest_path, mode_t mode,
				 const char *host_path, capsa_error *err)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;

	if (read_host_file(host_path, &data, &len, err) < 0)
		return -1;
	return initramfs_add_file(ird, guest_path, mode, data, len, err);
}

int initramfs_finish(struct initramfs *ird, capsa_error *err)
{
	if (ird->finished)
		return error_set(err, EINVAL, "initramfs: already finished");
	if (write_entry(ird, NEWC_TRAILER, 0, 0, 1, 0, 0, NULL, 0, err) < 0)
		return -1;
	ird->finished = true;
	return 0;
}

/* ---- the capsa initramfs --------------------------------------------- */

/* Joins a NULL-terminated string list into "a\0b\0" (the guest_abi.h list
 * format), refusing strings the guest could not exec with. key_value
 * requires each string to be KEY=VALUE with a non-empty KEY. */
static int join_list(const char *what, const char *const *list, bool key_value, char **out, size_t *out_len,
		     capsa_error *err)
{
	size_t total = 0;
	char *buf, *p;

	for (const char *const *s = list; *s; s++) {
		size_t len = strlen(*s) + 1;
		if (len > ARG_STRING_MAX)
			return error_set(err, E2BIG, "%s entry '%.32s...' is longer than %d bytes", what, *s,
					 ARG_STRING_MAX - 1);
		if (key_value && (*s)[0] == '=')
			return error_set(err, EINVAL, "%s entry '%s' has an empty name", what, *s);
		if (key_value && !strchr(*s, '='))
			return error_set(err, EINVAL, "%s entry '%s' is not KEY=VALUE", what, *s);
		total += len;
		if (total > CAPSA_CFG_MAX_BYTES)
			return error_set(err, E2BIG, "%s is larger than %d bytes in total", what,
					 CAPSA_CFG_MAX_BYTES);
	}
	buf = malloc(total ? total : 1);
	if (!buf)
		return error_set(err, ENOMEM, "out of memory");
	p = buf;
	for (const char *const *s = list; *s; s++) {
		size_t len = strlen(*s) + 1;
		memcpy(p, *s, len);
		p += len;
	}
	*out = buf;
	*out_len = total;
	return 0;
}

static int add_list(struct initramfs *ird, const char *path, const char *what, const char *const *list,
		    bool key_value, capsa_error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;

	if (join_list(what, list, key_value, &buf, &len, err) < 0)
		return -1;
	return initramfs_add_file(ird, path, 0444, buf, len, err);
}

/* Writes value as a config file unless it is unset (NULL or ""). */
static int add_setting(struct initramfs *ird, const char *path, const char *value, capsa_error *err)
{
	if (!value || value[0] == '\0')
		return 0;
	return initramfs_add_file(ird, path, 0444, value, strlen(value), err);
}

static int add_capsa_entries(struct initramfs *ird, const char *init_path, const struct guest_workload *w,
			     capsa_error *err)
{
	const char *const *argv = w->argv, *const *env = w->env;
	const char *workdir = w->workdir, *hostname = w->hostname, *user = w->user;

	if (!init_path)
		return error_set(err, EINVAL, "no guest init binary given");
	if (!w->standby && (!argv || !argv[0] || argv[0][0] == '\0'))
		return error_set(err, EINVAL, "no command to run: give at least a program name");
	if (workdir && workdir[0] != '\0') {
		if (workdir[0] != '/')
			return error_set(err, EINVAL, "working directory '%s' is not an absolute path", workdir);
		if (strlen(workdir) >= PATH_MAX)
			return error_set(err, ENAMETOOLONG, "working directory is longer than %d bytes",
					 PATH_MAX - 1);
	}
	if (user && (strlen(user) > USER_SPEC_MAX || strchr(user, '\n')))
		return error_set(err, EINVAL, "user '%.80s' is not a user name or uid[:gid]", user);
	if (hostname && strlen(hostname) > HOSTNAME_MAX)
		return error_set(err, EINVAL, "hostname '%.80s' is longer than %d characters", hostname,
				 HOSTNAME_MAX);

	/* /dev/console lets the kernel give init stdin/stdout/stderr before
	 * init mounts devtmpfs; init makes its own mount points. */
	if (initramfs_add_dir(ird, "/dev", 0755, err) < 0 ||
	    initramfs_add_node(ird, "/dev/console", S_IFCHR | 0600, 5, 1, err) < 0 ||
	    initramfs_add_dir(ird, "/capsa", 0755, err) < 0)
		return -1;
	if (argv && argv[0] && add_list(ird, CAPSA_CFG_ARGV, "command", argv, false, err) < 0)
		return -1;
	if (w->standby && initramfs_add_file(ird, CAPSA_CFG_STANDBY, 0444, "", 0, err) < 0)
		return -1;
	if (initramfs_add_file_from_host(ird, CAPSA_INIT_PATH, 0755, init_path, err) < 0)
		return error_prefix(err, "guest init binary");
	if (env && add_list(ird, CAPSA_CFG_ENV, "environment", env, true, err) < 0)
		return -1;
	if (w->hold && initramfs_add_file(ird, CAPSA_CFG_HOLD, 0444, "", 0, err) < 0)
		return -1;
	if (w->volumes && w->volumes[0] && add_list(ird, CAPSA_CFG_VOLUMES, "volumes", w->volumes, false, err) < 0)
		return -1;
	if (w->disk_mounts && w->disk_mounts[0] &&
	    add_list(ird, CAPSA_CFG_DISK_MOUNTS, "disk mounts", w->disk_mounts, false, err) < 0)
		return -1;
	if (add_setting(ird, CAPSA_CFG_WORKDIR, workdir, err) < 0 ||
	    add_setting(ird, CAPSA_CFG_HOSTNAME, hostname, err) < 0 || add_setting(ird, CAPSA_CFG_USER, user, err) < 0)
		return -1;
	return initramfs_finish(ird, err);
}

int initramfs_build_capsa(struct initramfs **out, const char *init_path, const struct guest_workload *w,
			  capsa_error *err)
{
	struct initramfs *ird = initramfs_new(err);

	if (!ird)
		return -1;
	if (add_capsa_entries(ird, init_path, w, err) < 0) {
		initramfs_free(ird);
		return -1;
	}
	*out = ird;
	return 0;
}
