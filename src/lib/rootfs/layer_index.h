/* Finds a directory's entry by name in constant time while a tree is built
 * from layers: one hash table for the whole tree, keyed by (directory
 * node, name). The hash is keyed with random bytes per table, so a layer
 * cannot be crafted to make lookups collide and take quadratic time. */
#ifndef CAPSA_ROOTFS_LAYER_INDEX_H
#define CAPSA_ROOTFS_LAYER_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "capsa.h"
#include "rootfs/fs_tree.h"

typedef struct layer_index_slot {
	fs_node *node;          /* NULL: free */
	uint64_t hash;
} layer_index_slot;

typedef struct layer_index {
	layer_index_slot *slots;
	size_t mask;            /* slot count - 1, a power of two */
	size_t count;
	uint64_t key[2];
} layer_index;

int layer_index_init(layer_index *ix, capsa_error *err);
void layer_index_free(layer_index *ix);

fs_node *layer_index_find(const layer_index *ix, const fs_node *dir, const char *name);
/* Adds node under (node->parent, node->name), which must not be present.
 * Fails only when the table must grow, which it never has to right after
 * as many removals. */
int layer_index_add(layer_index *ix, fs_node *node, capsa_error *err);
/* Removes node, which must be present under its current parent and name. */
void layer_index_remove(layer_index *ix, fs_node *node);

#endif
