#include "rootfs/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"

/* Makes a completed rename durable. */
static void sync_parent_dir(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);
	if (!copy)
		return;
	_cleanup_close_ int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		fsync(fd);
}

int atomic_file_write(const char *path, atomic_fill_fn fill, void *opaque, capsa_error *err)
{
	_cleanup_free_ char *tmp = NULL;

	if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0) {
		tmp = NULL;
		return error_set_errno(err, ENOMEM, "building a path");
	}
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return error_set_errno(err, errno, "cannot create '%s'", tmp);

	int ret = fill(fd, opaque, err);
	if (ret == 0 && fsync(fd) < 0)
		ret = error_set_errno(err, errno, "syncing '%s'", tmp);
	if (close(fd) < 0 && ret == 0)
		ret = error_set_errno(err, errno, "writing '%s'", tmp);
	if (ret == 0 && rename(tmp, path) < 0)
		ret = error_set_errno(err, errno, "cannot rename '%s' to '%s'", tmp, path);
	if (ret < 0) {
		unlink(tmp);
		return -1;
	}
	sync_parent_dir(path);
	return 0;
}
