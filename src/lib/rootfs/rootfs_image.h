/* Root images from host directories: a read-only squashfs image of a
 * directory, built once per distinct content and cached.
 *
 * The image keeps ownership (from lstat: building needs no root), modes
 * including setuid/setgid/sticky, symlinks, hard links, device nodes,
 * fifos, sockets, xattrs (user., trusted., security.) and the entries'
 * real mtimes. mtimes are not part of the cache key, so trees that differ
 * only in mtimes share the image built first; real mtimes are stored
 * rather than a fixed one because tools in the guest compare them (Python
 * checks .pyc files against their source's mtime, make, rsync). */
#ifndef CAPSA_ROOTFS_ROOTFS_IMAGE_H
#define CAPSA_ROOTFS_ROOTFS_IMAGE_H

#include "capsa.h"

/* Returns the path (malloc'd) of a squashfs image of dir,
 * <cache_dir>/<content key>.sqfs, building it if no image of the same
 * content exists yet (see tree_key.h for the key). cache_dir is created
 * if missing. The image is written to a temporary file, fsync'd and
 * renamed into place, so a crash never leaves a partial image under the
 * final name, and concurrent builders of one key each rename a complete
 * image. Fails, naming the path, if an entry cannot be read or the tree
 * changes while it is being read. */
char *rootfs_image_for_dir(const char *dir, const char *cache_dir, capsa_error *err);

/* Writes a squashfs image of dir to out_path (replacing it atomically),
 * without caching. */
int rootfs_build_squashfs(const char *dir, const char *out_path, capsa_error *err);

#endif
