#include "util/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/error.h"

/* Makes a completed rename durable. */
static int sync_parent_dir(const char *path, capsa_error *err)
{
	_cleanup_free_ char *copy = strdup(path);
	if (!copy)
		return error_set(err, ENOMEM, "out of memory");
	return fs_sync_dir(dirname(copy), err);
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
	return sync_parent_dir(path, err);
}

struct data_fill {
	const void *data;
	size_t len;
	mode_t mode;
};

static int fill_with_data(int fd, void *opaque, capsa_error *err)
{
	const struct data_fill *d = opaque;

	if (fchmod(fd, d->mode) < 0 || fs_write_all(fd, d->data, d->len) < 0)
		return error_set_errno(err, errno, "writing");
	return 0;
}

int atomic_file_write_data(const char *path, const void *data, size_t len, mode_t mode, capsa_error *err)
{
	struct data_fill d = { data, len, mode };

	return atomic_file_write(path, fill_with_data, &d, err);
}
