#include "util/fs.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"

int fs_mkdir_p(const char *path, mode_t mode, capsa_error *err)
{
	_cleanup_free_ char *copy = strdup(path);

	if (!copy)
		return error_set_errno(err, ENOMEM, "building a path");
	for (char *p = copy + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;

		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST)
			return error_set_errno(err, errno, "cannot create directory '%s'", copy);
		*p = saved;
		if (saved == '\0')
			break;
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return error_set_errno(err, errno, "cannot create directory '%s'", path);
	if (!S_ISDIR(st.st_mode))
		return error_set(err, ENOTDIR, "'%s' is not a directory", path);
	return 0;
}

int fs_sync_dir(const char *dir, capsa_error *err)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return error_set_errno(err, errno, "cannot open directory '%s'", dir);
	/* Some file systems cannot sync directories (EINVAL): nothing to do there. */
	if (fsync(fd) < 0 && errno != EINVAL)
		return error_set_errno(err, errno, "cannot sync directory '%s'", dir);
	return 0;
}

int fs_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fs_path_join(char *out, size_t size, const char *dir, const char *name, capsa_error *err)
{
	int n = snprintf(out, size, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= size)
		return error_set(err, ENAMETOOLONG, "path %s/%s is too long", dir, name);
	return 0;
}
