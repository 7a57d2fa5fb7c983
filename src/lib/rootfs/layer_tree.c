#include "rootfs/layer_tree.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rootfs/layer_index.h"
#include "rootfs/layer_path.h"
#include "util/cleanup.h"
#include "util/error.h"

#define WHITEOUT_PREFIX ".wh."
#define OPAQUE_MARKER ".wh..wh..opq"
/* Other AUFS bookkeeping names (".wh..wh.plnk", ".wh..wh.aufs"): they
 * describe nothing in the image. */
#define AUFS_META_PREFIX ".wh..wh."

struct layer_tree {
	fs_node *root;
	layer_index index;
	size_t n_nodes;
	uint32_t layer;         /* the layer being applied */
};

enum {
	WALK_CREATE = 1,        /* create missing directories */
	WALK_TOUCH = 2,         /* the directories passed belong to the current layer too */
};

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- the names of an inode (hard links) ------------------------------ */

/* Every inode's names form a ring through the owner (the node with the
 * data, hardlink_target NULL) and its aliases, so that removing any name
 * takes constant time. */

static void ring_init(fs_node *n)
{
	n->layers.link_next = n->layers.link_prev = n;
}

static bool ring_alone(const fs_node *n)
{
	return n->layers.link_next == n;
}

static void ring_insert(fs_node *owner, fs_node *alias)
{
	alias->layers.link_next = owner->layers.link_next;
	alias->layers.link_prev = owner;
	owner->layers.link_next->layers.link_prev = alias;
	owner->layers.link_next = alias;
}

static void ring_remove(fs_node *n)
{
	n->layers.link_prev->layers.link_next = n->layers.link_next;
	n->layers.link_next->layers.link_prev = n->layers.link_prev;
	ring_init(n);
}

/* ---- adding and removing entries -------------------------------------- */

static fs_node *lookup(layer_tree *t, const fs_node *dir, const char *name)
{
	return layer_index_find(&t->index, dir, name);
}

/* A new entry in dir, declared by the current layer. */
static fs_node *add_node(layer_tree *t, fs_node *dir, const char *name, uint32_t mode, capsa_error *err)
{
	if (t->n_nodes >= LAYER_MAX_NODES) {
		error_set(err, EINVAL, "the image would have more than %d entries", LAYER_MAX_NODES);
		return NULL;
	}
	/* Tree walks recurse once per level. */
	if (dir->layers.depth >= LAYER_MAX_DEPTH) {
		error_set(err, EINVAL, "directories nested more than %d deep", LAYER_MAX_DEPTH);
		return NULL;
	}
	fs_node *node = fs_node_new(name, mode, err);
	if (!node)
		return NULL;
	node->layers.layer = t->layer;
	node->layers.depth = dir->layers.depth + 1;
	ring_init(node);
	if (fs_node_add_child(dir, node, err) < 0) {
		fs_node_free(node);
		return NULL;
	}
	node->layers.index = dir->n_children - 1;
	if (layer_index_add(&t->index, node, err) < 0) {
		dir->n_children--;
		fs_node_free(node);
		return NULL;
	}
	t->n_nodes++;
	return node;
}

/* Takes node out of its directory (children are unordered until
 * fs_tree_prepare() sorts them, so the last one fills the gap). */
static void detach(layer_tree *t, fs_node *node)
{
	fs_node *dir = node->parent;
	fs_node *last = dir->children[--dir->n_children];

	layer_index_remove(&t->index, node);
	if (last != node) {
		dir->children[node->layers.index] = last;
		last->layers.index = node->layers.index;
	}
	node->parent = NULL;
}

static void unindex_below(layer_tree *t, fs_node *dir)
{
	for (size_t i = 0; i < dir->n_children; i++) {
		layer_index_remove(&t->index, dir->children[i]);
		unindex_below(t, dir->children[i]);
		t->n_nodes--;
	}
}

/* Aliases below node (or node itself) stop being names of their inodes. */
static void unlink_aliases(fs_node *node)
{
	if (node->hardlink_target) {
		ring_remove(node);
		return;
	}
	for (size_t i = 0; i < node->n_children; i++)
		unlink_aliases(node->children[i]);
}

/* Exchanges the places of two non-directories in the tree: each takes the
 * other's name, directory and what belongs to the name (its layer). */
static void swap_places(layer_tree *t, fs_node *a, fs_node *b)
{
	layer_index_remove(&t->index, a);
	layer_index_remove(&t->index, b);

	fs_node *parent = a->parent;
	char *name = a->name;
	uint32_t layer = a->layers.layer, depth = a->layers.depth;
	size_t index = a->layers.index;

	a->parent = b->parent;
	a->name = b->name;
	a->layers.layer = b->layers.layer;
	a->layers.depth = b->layers.depth;
	a->layers.index = b->layers.index;
	b->parent = parent;
	b->name = name;
	b->layers.layer = layer;
	b->layers.depth = depth;
	b->layers.index = index;
	a->parent->children[a->layers.index] = a;
	b->parent->children[b->layers.index] = b;

	/* Same count as before the removals: the table does not grow. */
	layer_index_add(&t->index, a, NULL);
	layer_index_add(&t->index, b, NULL);
}

/* Inodes below node (or node itself) that still have names elsewhere move
 * to one of those names, which would otherwise be an alias of a removed
 * node: the inode node keeps its data origin, and the other aliases keep
 * pointing at it. */
static void hand_over_inodes(layer_tree *t, fs_node *node)
{
	if (node->hardlink_target)
		return;
	if (S_ISDIR(node->mode)) {
		for (size_t i = 0; i < node->n_children; i++)
			hand_over_inodes(t, node->children[i]);
		return;
	}
	if (!ring_alone(node)) {
		fs_node *heir = node->layers.link_next;

		swap_places(t, node, heir);
		ring_remove(heir);
	}
}

/* Removes node and everything below it. Aliases elsewhere of inodes below
 * it were unlinked first, so every alias left in the ring is outside. */
static void remove_entry(layer_tree *t, fs_node *node)
{
	fs_node *dir = node->parent;
	size_t index = node->layers.index;

	unlink_aliases(node);
	hand_over_inodes(t, node);
	/* node itself may have moved away, an alias taking its place. */
	fs_node *gone = dir->children[index];
	detach(t, gone);
	unindex_below(t, gone);
	t->n_nodes--;
	fs_node_free(gone);
}

/* Removes what lower layers left below dir: every entry not declared by
 * the current layer, and below those that were, the same again. Each
 * directory is cleaned once per layer: afterwards nothing below it can
 * come from a lower layer, so repeated markers cost nothing. */
static void make_opaque(layer_tree *t, fs_node *dir)
{
	if (dir->layers.opaque_done == t->layer + 1)
		return;
	dir->layers.opaque_done = t->layer + 1;
	for (size_t i = 0; i < dir->n_children;) {
		fs_node *child = dir->children[i];

		if (child->layers.layer < t->layer) {
			remove_entry(t, child);         /* another child fills slot i */
			continue;
		}
		if (S_ISDIR(child->mode) && !child->hardlink_target)
			make_opaque(t, child);
		i++;
	}
}

/* ---- names -------------------------------------------------------------- */

static int walk(layer_tree *t, fs_node *dir, const char *path, size_t len, unsigned flags, unsigned *hops,
		fs_node **out, capsa_error *err);

/* One step of walk(): from dir to its entry name, a directory or a
 * symlink that resolves to one. */
static int step(layer_tree *t, fs_node *dir, const char *name, unsigned flags, unsigned *hops, fs_node **out,
		capsa_error *err)
{
	char shown[128];
	fs_node *child = lookup(t, dir, name);

	layer_path_printable(name, shown, sizeof(shown));
	if (!child) {
		if (!(flags & WALK_CREATE))
			return 0;
		if (has_prefix(name, WHITEOUT_PREFIX))
			return error_set(err, EINVAL, "it needs a directory with the whiteout name '%s'",
					 shown);
		*out = add_node(t, dir, name, S_IFDIR | 0755, err);
		return *out ? 1 : -1;
	}

	fs_node *inode = fs_node_inode(child);
	if (S_ISDIR(inode->mode)) {
		*out = child;
		return 1;
	}
	if (!S_ISLNK(inode->mode)) {
		if (!(flags & WALK_CREATE))
			return 0;
		return error_set(err, EINVAL, "'%s' on the way is not a directory", shown);
	}
	if (++*hops > LAYER_MAX_SYMLINK_HOPS)
		return error_set(err, EINVAL, "more than %d symbolic links to follow at '%s'; is there a loop?",
				 LAYER_MAX_SYMLINK_HOPS, shown);
	const char *target = inode->link_target;
	return walk(t, target[0] == '/' ? t->root : dir, target, strlen(target), flags, hops, out, err);
}

/* Follows the components of path[0..len) from dir, resolving symlinks
 * inside the tree. Returns 1 with the directory reached in *out; 0 when a
 * component is missing or not a directory (only without WALK_CREATE);
 * -1 on error. */
static int walk(layer_tree *t, fs_node *dir, const char *path, size_t len, unsigned flags, unsigned *hops,
		fs_node **out, capsa_error *err)
{
	const char *end = path + len;
	char name[LAYER_NAME_MAX + 1];

	for (const char *p = path; p < end;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *comp = p;
		size_t n = (size_t)((slash ? slash : end) - p);

		p = slash ? slash + 1 : end;
		if (n == 0 || (n == 1 && comp[0] == '.'))
			continue;
		if (n == 2 && comp[0] == '.' && comp[1] == '.') {
			if (dir->parent)
				dir = dir->parent;
			continue;
		}
		if (n > LAYER_NAME_MAX) {
			/* Only a symlink target can get here: entry names were checked. */
			if (!(flags & WALK_CREATE))
				return 0;
			return error_set(err, EINVAL, "a symbolic link on the way has a component over %d bytes",
					 LAYER_NAME_MAX);
		}
		memcpy(name, comp, n);
		name[n] = '\0';

		int found = step(t, dir, name, flags, hops, &dir, err);
		if (found <= 0)
			return found;
		if (flags & WALK_TOUCH)
			dir->layers.layer = t->layer;
	}
	*out = dir;
	return 1;
}

/* The entry a normalized name refers to, its last component not followed:
 * 1 with *out set, 0 when there is none, -1 on error. */
static int find_entry(layer_tree *t, const char *path, fs_node **out, capsa_error *err)
{
	const char *slash = strrchr(path, '/');
	unsigned hops = 0;
	fs_node *dir;

	if (!*path) {
		*out = t->root;
		return 1;
	}
	int found = walk(t, t->root, path, slash ? (size_t)(slash - path) : 0, 0, &hops, &dir, err);
	if (found <= 0)
		return found;
	*out = lookup(t, dir, slash ? slash + 1 : path);
	return *out != NULL;
}

/* ---- entries -------------------------------------------------------------- */

static int set_xattrs(fs_node *node, const layer_entry *e, capsa_error *err)
{
	for (size_t i = 0; i < node->n_xattrs; i++) {
		free(node->xattrs[i].key);
		free(node->xattrs[i].value);
	}
	free(node->xattrs);
	node->xattrs = NULL;
	node->n_xattrs = 0;

	for (size_t i = 0; i < e->n_xattrs; i++) {
		const layer_xattr *x = &e->xattrs[i];
		size_t j = 0;

		while (j < node->n_xattrs && strcmp(node->xattrs[j].key, x->key) != 0)
			j++;
		if (j == node->n_xattrs) {
			if (fs_node_add_xattr(node, x->key, x->value, x->size, err) < 0)
				return -1;
			continue;
		}
		void *value = malloc(x->size ? x->size : 1);
		if (!value)
			return error_set_errno(err, ENOMEM, "adding an extended attribute");
		memcpy(value, x->value, x->size);
		free(node->xattrs[j].value);
		node->xattrs[j].value = value;
		node->xattrs[j].size = x->size;
	}
	return 0;
}

static int set_metadata(fs_node *node, const layer_entry *e, capsa_error *err)
{
	node->mode = e->mode;
	node->uid = e->uid;
	node->gid = e->gid;
	node->mtime = e->mtime;
	return set_xattrs(node, e, err);
}

static int add_entry(layer_tree *t, fs_node *dir, const char *name, const layer_entry *e, uint64_t entry,
		     capsa_error *err)
{
	fs_node *node = add_node(t, dir, name, e->mode, err);

	if (!node || set_metadata(node, e, err) < 0)
		return -1;
	switch (e->mode & S_IFMT) {
	case S_IFREG:
		node->size = e->size;
		node->layers.data_layer = t->layer;
		node->layers.data_entry = entry;
		break;
	case S_IFLNK:
		node->link_target = strdup(e->symlink);
		if (!node->link_target)
			return error_set_errno(err, ENOMEM, "copying a symbolic link");
		break;
	case S_IFCHR:
	case S_IFBLK:
		node->rdev_major = e->rdev_major;
		node->rdev_minor = e->rdev_minor;
		break;
	default:
		break;
	}
	return 0;
}

static int add_hardlink(layer_tree *t, fs_node *dir, const char *name, const layer_entry *e, uint64_t entry,
			capsa_error *err)
{
	char shown[128];
	_cleanup_free_ char *path = layer_path_normalize(e->hardlink, err);
	fs_node *target;

	if (!path)
		return error_prefix(err, "hard link target");
	layer_path_printable(path, shown, sizeof(shown));
	int found = find_entry(t, path, &target, err);
	if (found < 0)
		return error_prefix(err, "hard link target '%s'", shown);
	if (found == 0)
		return error_set(err, EINVAL, "hard link to '%s', not an entry of this or a lower layer",
				 shown);

	fs_node *inode = fs_node_inode(target);
	if (S_ISDIR(inode->mode))
		return error_set(err, EINVAL, "hard link to the directory '%s'", shown);
	/* A hard link entry may carry data (pax allows it): it replaces the
	 * inode's, as extracting the archive would. */
	if (e->size > 0) {
		if (!S_ISREG(inode->mode))
			return error_set(err, EINVAL, "hard link with data to '%s', not a regular file", shown);
		inode->size = e->size;
		inode->layers.data_layer = t->layer;
		inode->layers.data_entry = entry;
	}
	fs_node *alias = add_node(t, dir, name, inode->mode, err);
	if (!alias)
		return -1;
	alias->hardlink_target = inode;
	ring_insert(inode, alias);
	return 0;
}

static int apply_whiteout(layer_tree *t, const char *path, size_t dir_len, const char *name, capsa_error *err)
{
	char shown[128];
	unsigned hops = 0;
	fs_node *dir;

	/* No directory there: nothing to hide. */
	int found = walk(t, t->root, path, dir_len, WALK_TOUCH, &hops, &dir, err);
	if (found <= 0)
		return found;
	if (strcmp(name, OPAQUE_MARKER) == 0) {
		make_opaque(t, dir);
		return 0;
	}
	if (has_prefix(name, AUFS_META_PREFIX))
		return 0;

	const char *hidden = name + strlen(WHITEOUT_PREFIX);
	if (!*hidden || strcmp(hidden, ".") == 0 || strcmp(hidden, "..") == 0)
		return error_set(err, EINVAL, "whiteout '%s' names no entry",
				 layer_path_printable(name, shown, sizeof(shown)));
	fs_node *victim = lookup(t, dir, hidden);
	if (!victim)
		return 0;
	/* A whiteout hides lower layers only. A directory its own layer
	 * declared before it stays, without what lower layers left in it. */
	if (victim->layers.layer < t->layer)
		remove_entry(t, victim);
	else if (S_ISDIR(victim->mode) && !victim->hardlink_target)
		make_opaque(t, victim);
	return 0;
}

static bool valid_type(const layer_entry *e)
{
	switch (e->mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFCHR: case S_IFBLK: case S_IFIFO:
		return true;
	case S_IFLNK:
		return e->symlink && *e->symlink;
	default:
		return false;
	}
}

int layer_tree_apply(layer_tree *t, const layer_entry *e, uint32_t layer, uint64_t entry, capsa_error *err)
{
	_cleanup_free_ char *path = layer_path_normalize(e->path, err);
	unsigned hops = 0;
	fs_node *dir;

	if (!path)
		return -1;
	if (!e->hardlink && !valid_type(e))
		return error_set(err, EINVAL, "unsupported file type %#o", e->mode & S_IFMT);
	t->layer = layer;

	char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	size_t dir_len = slash ? (size_t)(slash - path) : 0;
	bool is_dir = S_ISDIR(e->mode) && !e->hardlink;

	if (has_prefix(name, WHITEOUT_PREFIX))
		return apply_whiteout(t, path, dir_len, name, err);
	if (!*name) {
		if (!is_dir)
			return error_set(err, EINVAL, "only a directory can stand for the image root");
		return set_metadata(t->root, e, err);
	}

	if (walk(t, t->root, path, dir_len, WALK_CREATE | WALK_TOUCH, &hops, &dir, err) < 0)
		return -1;
	fs_node *old = lookup(t, dir, name);
	if (is_dir && old && S_ISDIR(old->mode) && !old->hardlink_target) {
		old->layers.layer = layer;
		return set_metadata(old, e, err);
	}
	if (old)
		remove_entry(t, old);
	if (e->hardlink)
		return add_hardlink(t, dir, name, e, entry, err);
	return add_entry(t, dir, name, e, entry, err);
}

/* ---- the tree ------------------------------------------------------------ */

layer_tree *layer_tree_new(capsa_error *err)
{
	layer_tree *t = calloc(1, sizeof(*t));

	if (!t) {
		error_set_errno(err, ENOMEM, "allocating a file tree");
		return NULL;
	}
	t->root = fs_node_new("", S_IFDIR | 0755, err);
	if (!t->root || layer_index_init(&t->index, err) < 0) {
		fs_node_free(t->root);
		free(t);
		return NULL;
	}
	ring_init(t->root);
	return t;
}

void layer_tree_free(layer_tree *t)
{
	if (!t)
		return;
	fs_node_free(t->root);
	layer_index_free(&t->index);
	free(t);
}

fs_node *layer_tree_root(layer_tree *t)
{
	return t->root;
}

typedef struct file_list {
	fs_node **items;
	size_t n, cap;
} file_list;

static int collect_files(fs_node *node, file_list *list, capsa_error *err)
{
	if (node->hardlink_target)
		return 0;
	if (S_ISREG(node->mode)) {
		if (list->n == list->cap) {
			size_t cap = list->cap ? list->cap * 2 : 256;
			fs_node **grown = reallocarray(list->items, cap, sizeof(*grown));

			if (!grown)
				return error_set_errno(err, ENOMEM, "listing files");
			list->items = grown;
			list->cap = cap;
		}
		list->items[list->n++] = node;
		return 0;
	}
	for (size_t i = 0; i < node->n_children; i++) {
		if (collect_files(node->children[i], list, err) < 0)
			return -1;
	}
	return 0;
}

static int compare_origins(const void *a, const void *b)
{
	const fs_node *x = *(fs_node *const *)a, *y = *(fs_node *const *)b;

	if (x->layers.data_layer != y->layers.data_layer)
		return x->layers.data_layer < y->layers.data_layer ? -1 : 1;
	if (x->layers.data_entry != y->layers.data_entry)
		return x->layers.data_entry < y->layers.data_entry ? -1 : 1;
	return 0;
}

int layer_tree_files(layer_tree *t, fs_node ***files, size_t *n_files, capsa_error *err)
{
	file_list list = { 0 };

	if (collect_files(t->root, &list, err) < 0) {
		free(list.items);
		return -1;
	}
	if (list.n > 1)
		qsort(list.items, list.n, sizeof(*list.items), compare_origins);
	*files = list.items;
	*n_files = list.n;
	return 0;
}
