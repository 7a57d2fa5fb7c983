/* The content key of a scanned host directory: what decides whether a
 * cached root image can be reused. */
#ifndef CAPSA_ROOTFS_TREE_KEY_H
#define CAPSA_ROOTFS_TREE_KEY_H

#include "capsa.h"
#include "rootfs/fs_tree.h"

#define TREE_KEY_HEX_SIZE 65    /* 64 hex digits and a NUL */

/* SHA-256 over the image format (squashfs_writer_format()) and, for every
 * entry in tree order, its path, type and permission bits, uid, gid,
 * device numbers, symlink target, xattrs, hard-link target, and for
 * regular files the size and SHA-256 of the data (read from dir, and kept
 * in each node for the writer to check against). Modification times are
 * left out on purpose: touching files must not cost a rebuild. */
int tree_key_compute(const char *dir, fs_node *root, char hex[TREE_KEY_HEX_SIZE], capsa_error *err);

#endif
