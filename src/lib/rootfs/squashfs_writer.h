/* Writes an fs_node tree as a squashfs 4.0 image (the format Linux mounts)
 * using libsquashfs.
 *
 * Usage: squashfs_writer_new() on an empty, writable fd; then, for every
 * regular-file inode of the tree (not for hard-link aliases), in any order,
 * stream its data with begin_file / append / end_file; then
 * squashfs_writer_finish() with the prepared tree (fs_tree_prepare()).
 * Data is cut into blocks and compressed on worker threads as it arrives,
 * so files are never held in memory whole. Free the writer before the tree.
 *
 * The image stores each inode's mode, uid/gid, mtime, xattrs (user.,
 * trusted., security. only: squashfs has no encoding for other prefixes),
 * device numbers, symlink targets and hard links as given in the tree. */
#ifndef CAPSA_ROOTFS_SQUASHFS_WRITER_H
#define CAPSA_ROOTFS_SQUASHFS_WRITER_H

#include <stddef.h>

#include "capsa.h"
#include "rootfs/fs_tree.h"

typedef struct squashfs_writer squashfs_writer;

squashfs_writer *squashfs_writer_new(int fd, capsa_error *err);
void squashfs_writer_free(squashfs_writer *w);

int squashfs_writer_begin_file(squashfs_writer *w, fs_node *file, capsa_error *err);
int squashfs_writer_append(squashfs_writer *w, const void *data, size_t len, capsa_error *err);
int squashfs_writer_end_file(squashfs_writer *w, capsa_error *err);

/* Writes inodes, directories and tables and the final super block, and
 * pads the image to a multiple of 4 KiB (block devices expose whole
 * sectors only). Does not fsync. */
int squashfs_writer_finish(squashfs_writer *w, fs_node *root, capsa_error *err);

/* One line naming everything besides the tree that decides the image's
 * bytes (compressor, level, block size, writer revision). Content keys
 * include it, so changing any of these gives new keys. */
const char *squashfs_writer_format(void);

#endif
