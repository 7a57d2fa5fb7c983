/* An in-memory file system tree: what a root image will contain, independent
 * of where it came from (a host directory, later tar layers). File data is
 * not held here; writers stream it in separately. */
#ifndef CAPSA_ROOTFS_FS_TREE_H
#define CAPSA_ROOTFS_FS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "capsa.h"

typedef struct fs_xattr {
	char *key;              /* full name, e.g. "user.comment" */
	void *value;
	size_t size;
} fs_xattr;

typedef struct fs_node fs_node;

struct fs_node {
	char *name;             /* "" for the root */
	fs_node *parent;

	/* Set when this entry is another name for an inode that already has
	 * an entry in the tree (a hard link); the other fields below that
	 * describe the inode are then unused and `target`'s apply. */
	fs_node *hardlink_target;

	uint32_t mode;          /* type and permission bits, as st_mode */
	uint32_t uid, gid;
	uint32_t mtime;         /* seconds since the epoch */
	uint32_t nlink;         /* names of this inode in the tree, see fs_tree_prepare() */
	uint64_t size;          /* regular files: data length */
	uint32_t rdev_major, rdev_minor;
	char *link_target;      /* symlinks */

	fs_node **children;     /* directories; sorted by fs_tree_prepare() */
	size_t n_children, cap_children;

	fs_xattr *xattrs;
	size_t n_xattrs;

	/* Identity of the host object it was scanned from, so that a later
	 * pass can tell whether it was replaced in between. */
	uint64_t host_dev, host_ino;
	/* SHA-256 of the file data, when it has been computed. */
	uint8_t digest[32];
	bool has_digest;

	/* Bookkeeping while the tree is built from image layers, private
	 * to layer_tree.c. */
	struct {
		uint32_t layer;         /* the last layer that declared this name */
		uint32_t opaque_done;   /* 1 + the layer that already made it opaque */
		uint32_t depth;         /* the root is 0 */
		uint32_t data_layer;    /* regular files: the entry holding the data */
		uint64_t data_entry;
		size_t index;           /* position in parent->children */
		fs_node *link_next, *link_prev; /* ring of an inode's names */
	} layers;

	/* Image writer state, private to squashfs_writer.c (which also
	 * releases `inode`: free the writer before the tree). */
	struct {
		struct sqfs_inode_generic_t *inode;
		uint64_t inode_ref;
		uint32_t inode_num;
		unsigned pass;
	} out;
};

/* A new node with a copy of name; NULL with err set on allocation failure. */
fs_node *fs_node_new(const char *name, uint32_t mode, capsa_error *err);
/* Frees node and everything below it. */
void fs_node_free(fs_node *node);

/* Appends child (taking ownership) to dir. */
int fs_node_add_child(fs_node *dir, fs_node *child, capsa_error *err);
int fs_node_add_xattr(fs_node *node, const char *key, const void *value, size_t size, capsa_error *err);

/* The inode a directory entry names: itself, or its hard-link target. */
static inline fs_node *fs_node_inode(fs_node *node)
{
	return node->hardlink_target ? node->hardlink_target : node;
}

/* "a/b/c" relative to the root ("" for the root itself), malloc'd; NULL
 * with err set on allocation failure. */
char *fs_node_path(const fs_node *node, capsa_error *err);

/* Readies a finished tree for hashing and writing: sorts every directory
 * by name (byte order, as squashfs lookups require) and xattrs by key,
 * rejects duplicate names, and counts links (a directory has 2 plus one
 * per subdirectory; any other inode one per name). */
int fs_tree_prepare(fs_node *root, capsa_error *err);

#endif
