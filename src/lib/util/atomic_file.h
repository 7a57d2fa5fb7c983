/* Files that appear under their final name complete or not at all: root
 * images and the image store's index are written to a temporary file next
 * to the destination and renamed into place, so a crash or a failed write
 * never leaves a partial file where a reader would take it for a good one. */
#ifndef CAPSA_UTIL_ATOMIC_FILE_H
#define CAPSA_UTIL_ATOMIC_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "capsa.h"

/* Writes the whole content to fd (empty, open for reading and writing). */
typedef int (*atomic_fill_fn)(int fd, void *opaque, capsa_error *err);

/* Creates "<path>.tmp-XXXXXX", lets fill write it, fsyncs it, renames it to
 * path and syncs the directory. On failure the temporary file is removed
 * and path is left as it was. */
int atomic_file_write(const char *path, atomic_fill_fn fill, void *opaque, capsa_error *err);

/* The same with a buffer as the content; the file gets mode. */
int atomic_file_write_data(const char *path, const void *data, size_t len, mode_t mode, capsa_error *err);

#endif
