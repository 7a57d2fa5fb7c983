/* Files that appear under their final name complete or not at all: root
 * images are written to a temporary file next to the destination and
 * renamed into place, so a crash or a failed build never leaves a partial
 * image where a reader (or a cache lookup) would take it for a good one. */
#ifndef CAPSA_ROOTFS_ATOMIC_FILE_H
#define CAPSA_ROOTFS_ATOMIC_FILE_H

#include "capsa.h"

/* Writes the whole content to fd (empty, open for reading and writing). */
typedef int (*atomic_fill_fn)(int fd, void *opaque, capsa_error *err);

/* Creates "<path>.tmp-XXXXXX", lets fill write it, fsyncs it, renames it to
 * path and syncs the directory. On failure the temporary file is removed
 * and path is left as it was. */
int atomic_file_write(const char *path, atomic_fill_fn fill, void *opaque, capsa_error *err);

#endif
