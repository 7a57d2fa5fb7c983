/* Reads a host directory into an fs_node tree, and walks its regular
 * files again later to read their data. Nothing is ever followed: every
 * entry is looked at with lstat semantics and opened relative to its
 * parent's fd with O_NOFOLLOW, so a symlink (or one swapped in meanwhile)
 * can never lead outside the directory. */
#ifndef CAPSA_ROOTFS_DIR_SCAN_H
#define CAPSA_ROOTFS_DIR_SCAN_H

#include "capsa.h"
#include "rootfs/fs_tree.h"

/* Scans dir (which itself may be reached through a symlink) into a tree
 * prepared with fs_tree_prepare(): ownership, modes, mtimes, device
 * numbers, symlink targets, xattrs that squashfs can store (user.,
 * trusted., security.; skipped silently where the host file system has
 * none), and hard links, detected by (st_dev, st_ino). */
int dir_scan(const char *dir, fs_node **root_out, capsa_error *err);

/* Called with a regular file's inode node (hard-link aliases are skipped),
 * its path relative to dir, and an fd open for reading that has been
 * checked to still be the same file that was scanned. */
typedef int (*dir_file_fn)(fs_node *file, const char *path, int fd, void *opaque, capsa_error *err);

/* Calls fn for every regular file in tree order. Errors name the path. */
int dir_for_each_file(const char *dir, fs_node *root, dir_file_fn fn, void *opaque, capsa_error *err);

#endif
