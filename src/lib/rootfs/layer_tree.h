/* Applies image layer entries, one after another, to an fs_node tree, as
 * the OCI image spec's "Applying Changesets" describes:
 *
 *  - an entry replaces what its name held (a directory and everything
 *    below it included), except that a directory over a directory only
 *    takes the new metadata and keeps the children;
 *  - ".wh.NAME" removes NAME as lower layers left it; ".wh..wh..opq"
 *    removes every entry of lower layers below its directory (entries of
 *    its own layer stay, whether before or after it). Whiteouts never
 *    appear in the tree themselves;
 *  - missing parent directories are created (0755, owned by root,
 *    mtime 0);
 *  - a hard link names an existing non-directory and becomes another name
 *    of its inode. When the name that held the inode goes, one of the
 *    remaining names takes it over, data and all.
 *
 * Names are normalized (layer_path.h). A symlink met on the way to an
 * entry is resolved inside the tree: absolute targets start at the image
 * root, ".." stops there, at most LAYER_MAX_SYMLINK_HOPS links per name.
 * The last component of a name is never followed. Breaking a rule or a
 * cap fails with EINVAL. */
#ifndef CAPSA_ROOTFS_LAYER_TREE_H
#define CAPSA_ROOTFS_LAYER_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "capsa.h"
#include "rootfs/fs_tree.h"

#define LAYER_MAX_NODES 1000000         /* entries in the tree at any time */
#define LAYER_MAX_DEPTH 2048            /* directory nesting, as a 4096-byte name allows */
#define LAYER_MAX_SYMLINK_HOPS 40       /* as Linux's MAXSYMLINKS */

typedef struct layer_xattr {
	const char *key;
	const void *value;
	size_t size;
} layer_xattr;

/* One archive entry, as read from the layer. */
typedef struct layer_entry {
	const char *path;
	uint32_t mode;                  /* file type and permission bits */
	uint32_t uid, gid, mtime;
	uint64_t size;                  /* data length (regular files, hard links) */
	uint32_t rdev_major, rdev_minor;
	const char *symlink;            /* symlinks: the target */
	const char *hardlink;           /* hard links: the name of the earlier entry */
	const layer_xattr *xattrs;      /* later duplicates of a key win */
	size_t n_xattrs;
} layer_entry;

typedef struct layer_tree layer_tree;

layer_tree *layer_tree_new(capsa_error *err);
void layer_tree_free(layer_tree *t);

/* Applies entry number `entry` (counting from 0 in its layer) of layer
 * number `layer`; layers must be applied in order. A regular file keeps
 * (layer, entry) as the origin of its data, as does a hard link entry that
 * carries data (it replaces the data of the inode it names). */
int layer_tree_apply(layer_tree *t, const layer_entry *e, uint32_t layer, uint64_t entry, capsa_error *err);

fs_node *layer_tree_root(layer_tree *t);

/* Every regular-file inode in the tree (hard-link aliases left out),
 * sorted by the origin of its data: the order in which the layers hold
 * the data. *files is malloc'd. */
int layer_tree_files(layer_tree *t, fs_node ***files, size_t *n_files, capsa_error *err);

#endif
