/* Reads a file's data in chunks, hashing it on the way: both the content
 * key and the image writer read files through here, so the writer can
 * check it is storing exactly the data the key was computed from. */
#ifndef CAPSA_ROOTFS_FILE_DATA_H
#define CAPSA_ROOTFS_FILE_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "capsa.h"

#define FILE_DIGEST_SIZE 32     /* SHA-256 */

typedef int (*file_chunk_fn)(const void *data, size_t len, void *opaque, capsa_error *err);

/* Reads fd to its end, passing every chunk to fn (when non-NULL), and
 * stores the SHA-256 of the data in digest. Fails with ESTALE when the
 * length differs from expected_size: the file changed since it was
 * scanned. Never holds more than one chunk in memory. */
int file_data_read(int fd, uint64_t expected_size, file_chunk_fn fn, void *opaque,
		   uint8_t digest[FILE_DIGEST_SIZE], capsa_error *err);

#endif
