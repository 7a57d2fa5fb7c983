#include "rootfs/fs_tree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/error.h"

fs_node *fs_node_new(const char *name, uint32_t mode, capsa_error *err)
{
	fs_node *node = calloc(1, sizeof(*node));

	if (!node) {
		error_set_errno(err, ENOMEM, "allocating a file tree node");
		return NULL;
	}
	node->name = strdup(name);
	if (!node->name) {
		free(node);
		error_set_errno(err, ENOMEM, "allocating a file tree node");
		return NULL;
	}
	node->mode = mode;
	return node;
}

void fs_node_free(fs_node *node)
{
	if (!node)
		return;
	for (size_t i = 0; i < node->n_children; i++)
		fs_node_free(node->children[i]);
	for (size_t i = 0; i < node->n_xattrs; i++) {
		free(node->xattrs[i].key);
		free(node->xattrs[i].value);
	}
	free(node->xattrs);
	free(node->children);
	free(node->link_target);
	free(node->name);
	free(node);
}

int fs_node_add_child(fs_node *dir, fs_node *child, capsa_error *err)
{
	if (dir->n_children == dir->cap_children) {
		size_t cap = dir->cap_children ? dir->cap_children * 2 : 8;
		fs_node **grown = reallocarray(dir->children, cap, sizeof(*grown));

		if (!grown)
			return error_set_errno(err, ENOMEM, "adding a directory entry");
		dir->children = grown;
		dir->cap_children = cap;
	}
	dir->children[dir->n_children++] = child;
	child->parent = dir;
	return 0;
}

int fs_node_add_xattr(fs_node *node, const char *key, const void *value, size_t size, capsa_error *err)
{
	fs_xattr *grown = reallocarray(node->xattrs, node->n_xattrs + 1, sizeof(*grown));

	if (!grown)
		return error_set_errno(err, ENOMEM, "adding an extended attribute");
	node->xattrs = grown;

	fs_xattr *x = &node->xattrs[node->n_xattrs];
	x->key = strdup(key);
	x->value = malloc(size ? size : 1);
	if (!x->key || !x->value) {
		free(x->key);
		free(x->value);
		return error_set_errno(err, ENOMEM, "adding an extended attribute");
	}
	memcpy(x->value, value, size);
	x->size = size;
	node->n_xattrs++;
	return 0;
}

char *fs_node_path(const fs_node *node, capsa_error *err)
{
	size_t len = 0;

	for (const fs_node *n = node; n->parent; n = n->parent)
		len += strlen(n->name) + 1;
	if (len > 0)
		len--;          /* no separator before the first component */

	char *path = malloc(len + 1);
	if (!path) {
		error_set_errno(err, ENOMEM, "building a path");
		return NULL;
	}
	path[len] = '\0';
	/* Fill from the end: the leaf's name first, then its ancestors'. */
	size_t end = len;
	for (const fs_node *n = node; n->parent; n = n->parent) {
		size_t l = strlen(n->name);

		end -= l;
		memcpy(path + end, n->name, l);
		if (end > 0)
			path[--end] = '/';
	}
	return path;
}

static int compare_nodes(const void *a, const void *b)
{
	const fs_node *x = *(fs_node *const *)a, *y = *(fs_node *const *)b;

	return strcmp(x->name, y->name);
}

static int compare_xattrs(const void *a, const void *b)
{
	return strcmp(((const fs_xattr *)a)->key, ((const fs_xattr *)b)->key);
}

static int sort_node(fs_node *node, capsa_error *err)
{
	if (node->n_xattrs > 1)
		qsort(node->xattrs, node->n_xattrs, sizeof(*node->xattrs), compare_xattrs);
	if (!S_ISDIR(node->mode) || node->hardlink_target)
		return 0;

	if (node->n_children > 1)
		qsort(node->children, node->n_children, sizeof(*node->children), compare_nodes);
	for (size_t i = 0; i < node->n_children; i++) {
		if (i > 0 && strcmp(node->children[i - 1]->name, node->children[i]->name) == 0) {
			_cleanup_free_ char *path = fs_node_path(node->children[i], NULL);

			return error_set(err, EEXIST, "two entries named '%s' in the file tree",
					 path ? path : node->children[i]->name);
		}
		if (sort_node(node->children[i], err) < 0)
			return -1;
	}
	return 0;
}

static void reset_links(fs_node *node)
{
	node->nlink = 0;
	for (size_t i = 0; i < node->n_children; i++)
		reset_links(node->children[i]);
}

static void count_links(fs_node *node)
{
	if (node->hardlink_target) {
		node->hardlink_target->nlink++;
		return;
	}
	if (!S_ISDIR(node->mode)) {
		node->nlink++;
		return;
	}
	/* "." and the entry in the parent, plus each subdirectory's "..". */
	node->nlink += 2;
	for (size_t i = 0; i < node->n_children; i++) {
		fs_node *child = node->children[i];

		if (S_ISDIR(child->mode) && !child->hardlink_target)
			node->nlink++;
		count_links(child);
	}
}

int fs_tree_prepare(fs_node *root, capsa_error *err)
{
	if (!S_ISDIR(root->mode))
		return error_set(err, ENOTDIR, "the root of a file tree must be a directory");
	if (sort_node(root, err) < 0)
		return -1;
	reset_links(root);
	count_links(root);
	return 0;
}
