/* Small file system helpers shared across libcapsa. */
#ifndef CAPSA_UTIL_FS_H
#define CAPSA_UTIL_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "capsa.h"

/* mkdir -p: creates path and its missing parents with mode; an existing
 * directory is fine, anything else at path is ENOTDIR. */
int fs_mkdir_p(const char *path, mode_t mode, capsa_error *err);

/* fsync of a directory, making renames and creations in it durable. */
int fs_sync_dir(const char *dir, capsa_error *err);

/* write(2) until everything is written, retrying on EINTR; -1 with errno. */
int fs_write_all(int fd, const void *data, size_t len);

/* out = "dir/name" in a buffer of size bytes; ENAMETOOLONG if it does not fit. */
int fs_path_join(char *out, size_t size, const char *dir, const char *name, capsa_error *err);

#endif
