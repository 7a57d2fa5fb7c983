#include "rootfs/dir_scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"

typedef struct linked_entry {
	fs_node *node;
	size_t order;           /* position in tree order */
} linked_entry;

typedef struct scan {
	const char *dir;
	/* Non-directories with more than one link. */
	linked_entry *linked;
	size_t n_linked, cap_linked;
} scan;

/* err = "<what> '<dir>/<path of node>': strerror(code)"; returns -1. */
static int path_error(const char *dir, const fs_node *node, int code, const char *what, capsa_error *err)
{
	_cleanup_free_ char *rel = fs_node_path(node, NULL);

	return error_set_errno(err, code, "%s '%s%s%s'", what, dir, rel && rel[0] ? "/" : "", rel ? rel : "");
}

static int changed_error(const char *dir, const fs_node *node, capsa_error *err)
{
	_cleanup_free_ char *rel = fs_node_path(node, NULL);

	return error_set(err, ESTALE, "'%s%s%s' changed while the image was being built; try again", dir,
			 rel && rel[0] ? "/" : "", rel ? rel : "");
}

static bool is_storable_xattr(const char *key)
{
	return strncmp(key, "user.", 5) == 0 || strncmp(key, "trusted.", 8) == 0 ||
	       strncmp(key, "security.", 9) == 0;
}

/* ---- xattrs --------------------------------------------------------- */

/* The xattr calls take either an fd (for the root) or a path: entries are
 * named through /proc/self/fd/<parent>/<name>, which resolves the parent
 * exactly and, with the l* calls, does not follow the entry itself. */
typedef struct xattr_target {
	int fd;
	const char *path;
} xattr_target;

static ssize_t list_xattrs(const xattr_target *t, char *buf, size_t size)
{
	return t->path ? llistxattr(t->path, buf, size) : flistxattr(t->fd, buf, size);
}

static ssize_t get_xattr(const xattr_target *t, const char *key, void *buf, size_t size)
{
	return t->path ? lgetxattr(t->path, key, buf, size) : fgetxattr(t->fd, key, buf, size);
}

/* Reads a list or value whose size may change between the size query and
 * the read (ERANGE): retries. *out is malloc'd; returns its length, or -1
 * with errno set. */
static ssize_t read_sized(const xattr_target *t, const char *key, char **out)
{
	for (int tries = 0; tries < 8; tries++) {
		ssize_t size = key ? get_xattr(t, key, NULL, 0) : list_xattrs(t, NULL, 0);

		if (size < 0)
			return -1;
		char *buf = malloc((size_t)size + 1);
		if (!buf)
			return -1;
		ssize_t n = key ? get_xattr(t, key, buf, (size_t)size) : list_xattrs(t, buf, (size_t)size);
		if (n >= 0) {
			*out = buf;
			return n;
		}
		int saved = errno;
		free(buf);
		if (saved != ERANGE) {
			errno = saved;
			return -1;
		}
	}
	errno = ERANGE;
	return -1;
}

static int read_xattrs(const char *dir, fs_node *node, const xattr_target *t, capsa_error *err)
{
	_cleanup_free_ char *keys = NULL;
	ssize_t len = read_sized(t, NULL, &keys);

	if (len < 0) {
		if (errno == ENOTSUP)
			return 0;       /* the host file system has no xattrs */
		return path_error(dir, node, errno, "cannot list extended attributes of", err);
	}
	for (ssize_t off = 0; off < len; off += (ssize_t)strlen(keys + off) + 1) {
		const char *key = keys + off;
		_cleanup_free_ char *value = NULL;

		if (!is_storable_xattr(key))
			continue;
		ssize_t vlen = read_sized(t, key, &value);
		if (vlen < 0 && errno == ENODATA)
			continue;       /* removed since it was listed */
		if (vlen < 0)
			return path_error(dir, node, errno, "cannot read extended attributes of", err);
		if (fs_node_add_xattr(node, key, value, (size_t)vlen, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- entries -------------------------------------------------------- */

static void fill_from_stat(fs_node *node, const struct stat *st)
{
	node->mode = st->st_mode;
	node->uid = st->st_uid;
	node->gid = st->st_gid;
	/* squashfs keeps unsigned 32-bit seconds. */
	if (st->st_mtim.tv_sec < 0)
		node->mtime = 0;
	else if ((uint64_t)st->st_mtim.tv_sec > UINT32_MAX)
		node->mtime = UINT32_MAX;
	else
		node->mtime = (uint32_t)st->st_mtim.tv_sec;
	if (S_ISREG(st->st_mode))
		node->size = (uint64_t)st->st_size;
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
		node->rdev_major = major(st->st_rdev);
		node->rdev_minor = minor(st->st_rdev);
	}
	node->host_dev = st->st_dev;
	node->host_ino = st->st_ino;
}

static int read_link(const char *dir, int dirfd, fs_node *node, off_t size_hint, capsa_error *err)
{
	size_t size = size_hint > 0 ? (size_t)size_hint + 1 : 256;

	for (;;) {
		char *buf = malloc(size);

		if (!buf)
			return error_set_errno(err, ENOMEM, "reading a symlink");
		ssize_t n = readlinkat(dirfd, node->name, buf, size);
		if (n < 0) {
			int saved = errno;

			free(buf);
			return path_error(dir, node, saved, "cannot read symlink", err);
		}
		if ((size_t)n < size) {
			buf[n] = '\0';
			node->link_target = buf;
			return 0;
		}
		free(buf);      /* possibly truncated: it grew since lstat */
		if (size > 1 << 20)
			return path_error(dir, node, ENAMETOOLONG, "cannot read symlink", err);
		size *= 2;
	}
}

static int remember_if_linked(scan *s, fs_node *node, const struct stat *st, capsa_error *err)
{
	if (S_ISDIR(st->st_mode) || st->st_nlink < 2)
		return 0;
	if (s->n_linked == s->cap_linked) {
		size_t cap = s->cap_linked ? s->cap_linked * 2 : 64;
		linked_entry *grown = reallocarray(s->linked, cap, sizeof(*grown));

		if (!grown)
			return error_set_errno(err, ENOMEM, "tracking hard links");
		s->linked = grown;
		s->cap_linked = cap;
	}
	s->linked[s->n_linked] = (linked_entry){ .node = node, .order = s->n_linked };
	s->n_linked++;
	return 0;
}

static int scan_dir(scan *s, int dirfd, fs_node *dir_node, capsa_error *err);

static int scan_subdir(scan *s, int dirfd, fs_node *node, const struct stat *st, capsa_error *err)
{
	_cleanup_close_ int fd = openat(dirfd, node->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat now;

	if (fd < 0)
		return path_error(s->dir, node, errno, "cannot open directory", err);
	if (fstat(fd, &now) < 0)
		return path_error(s->dir, node, errno, "cannot stat", err);
	if (now.st_dev != st->st_dev || now.st_ino != st->st_ino)
		return changed_error(s->dir, node, err);
	return scan_dir(s, fd, node, err);
}

static int scan_entry(scan *s, int dirfd, fs_node *node, capsa_error *err)
{
	struct stat st;

	if (fstatat(dirfd, node->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return path_error(s->dir, node, errno, "cannot stat", err);
	fill_from_stat(node, &st);

	char proc_path[64 + NAME_MAX];
	snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d/%s", dirfd, node->name);
	xattr_target xt = { .fd = -1, .path = proc_path };
	if (read_xattrs(s->dir, node, &xt, err) < 0)
		return -1;

	if (S_ISLNK(st.st_mode))
		return read_link(s->dir, dirfd, node, st.st_size, err);
	if (S_ISDIR(st.st_mode))
		return scan_subdir(s, dirfd, node, &st, err);
	return remember_if_linked(s, node, &st, err);
}

static int compare_names(const void *a, const void *b)
{
	return strcmp((*(fs_node *const *)a)->name, (*(fs_node *const *)b)->name);
}

/* Adds a child node per entry of dirfd, sorted, so that the scan runs in
 * the tree's final order (which makes the choice of a hard link's primary
 * name deterministic). */
static int read_entries(scan *s, int dirfd, fs_node *dir_node, capsa_error *err)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return path_error(s->dir, dir_node, errno, "cannot read directory", err);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return path_error(s->dir, dir_node, errno, "cannot read directory", err);
	}
	rewinddir(d);           /* the dup shares dirfd's offset */

	int ret = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		fs_node *child = fs_node_new(de->d_name, 0, err);
		if (!child || fs_node_add_child(dir_node, child, err) < 0) {
			fs_node_free(child);
			ret = -1;
			break;
		}
		errno = 0;
	}
	if (ret == 0 && errno != 0)
		ret = path_error(s->dir, dir_node, errno, "cannot read directory", err);
	closedir(d);
	if (dir_node->n_children > 1)
		qsort(dir_node->children, dir_node->n_children, sizeof(*dir_node->children), compare_names);
	return ret;
}

static int scan_dir(scan *s, int dirfd, fs_node *dir_node, capsa_error *err)
{
	if (read_entries(s, dirfd, dir_node, err) < 0)
		return -1;
	for (size_t i = 0; i < dir_node->n_children; i++) {
		if (scan_entry(s, dirfd, dir_node->children[i], err) < 0)
			return -1;
	}
	return 0;
}

/* ---- hard links ----------------------------------------------------- */

static bool same_inode(const linked_entry *x, const linked_entry *y)
{
	return x->node->host_dev == y->node->host_dev && x->node->host_ino == y->node->host_ino;
}

/* By inode identity, then tree order. */
static int compare_linked(const void *a, const void *b)
{
	const linked_entry *x = a, *y = b;

	if (x->node->host_dev != y->node->host_dev)
		return x->node->host_dev < y->node->host_dev ? -1 : 1;
	if (x->node->host_ino != y->node->host_ino)
		return x->node->host_ino < y->node->host_ino ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Makes every later name of an inode (in tree order, which the scan
 * follows) a hard link to its first name. */
static void link_same_inodes(scan *s)
{
	if (s->n_linked > 1)
		qsort(s->linked, s->n_linked, sizeof(*s->linked), compare_linked);
	for (size_t i = 1; i < s->n_linked; i++) {
		const linked_entry *prev = &s->linked[i - 1];

		if (same_inode(prev, &s->linked[i]))
			s->linked[i].node->hardlink_target = fs_node_inode(prev->node);
	}
}

/* ---- entry points --------------------------------------------------- */

static int scan_root(scan *s, fs_node *root, capsa_error *err)
{
	_cleanup_close_ int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return error_set_errno(err, errno, "cannot open directory '%s'", s->dir);
	if (fstat(fd, &st) < 0)
		return error_set_errno(err, errno, "cannot stat '%s'", s->dir);
	if (access("/proc/self/fd", X_OK) < 0)
		return error_set_errno(err, errno, "reading extended attributes needs /proc mounted");
	fill_from_stat(root, &st);

	xattr_target xt = { .fd = fd, .path = NULL };
	if (read_xattrs(s->dir, root, &xt, err) < 0)
		return -1;
	return scan_dir(s, fd, root, err);
}

int dir_scan(const char *dir, fs_node **root_out, capsa_error *err)
{
	scan s = { .dir = dir };
	fs_node *root = fs_node_new("", S_IFDIR | 0755, err);

	if (!root)
		return -1;
	int ret = scan_root(&s, root, err);
	if (ret == 0) {
		link_same_inodes(&s);
		ret = fs_tree_prepare(root, err);
	}
	free(s.linked);
	if (ret < 0) {
		fs_node_free(root);
		return -1;
	}
	*root_out = root;
	return 0;
}

/* ---- second pass over the files --------------------------------------- */

/* Opens node relative to dirfd without following anything and checks it
 * is still the object that was scanned. */
static int open_scanned(const char *dir, int dirfd, const fs_node *node, int flags, capsa_error *err)
{
	_cleanup_close_ int fd = openat(dirfd, node->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | flags);
	struct stat st;

	if (fd < 0)
		return path_error(dir, node, errno, "cannot open", err);
	if (fstat(fd, &st) < 0)
		return path_error(dir, node, errno, "cannot stat", err);
	if (st.st_dev != node->host_dev || st.st_ino != node->host_ino ||
	    (st.st_mode & S_IFMT) != (node->mode & S_IFMT))
		return changed_error(dir, node, err);
	return steal_fd(&fd);
}

static int walk_files(const char *dir, int dirfd, fs_node *dir_node, dir_file_fn fn, void *opaque,
		      capsa_error *err)
{
	for (size_t i = 0; i < dir_node->n_children; i++) {
		fs_node *child = dir_node->children[i];

		if (child->hardlink_target)
			continue;
		if (S_ISDIR(child->mode)) {
			_cleanup_close_ int fd = open_scanned(dir, dirfd, child, O_DIRECTORY, err);

			if (fd < 0 || walk_files(dir, fd, child, fn, opaque, err) < 0)
				return -1;
		} else if (S_ISREG(child->mode)) {
			/* O_NONBLOCK: should a fifo have been swapped in, opening
			 * it must not hang; the identity check then rejects it. */
			_cleanup_close_ int fd = open_scanned(dir, dirfd, child, O_NONBLOCK, err);
			if (fd < 0)
				return -1;
			_cleanup_free_ char *path = fs_node_path(child, err);
			if (!path || fn(child, path, fd, opaque, err) < 0)
				return -1;
		}
	}
	return 0;
}

int dir_for_each_file(const char *dir, fs_node *root, dir_file_fn fn, void *opaque, capsa_error *err)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return error_set_errno(err, errno, "cannot open directory '%s'", dir);
	if (fstat(fd, &st) < 0)
		return error_set_errno(err, errno, "cannot stat '%s'", dir);
	if (st.st_dev != root->host_dev || st.st_ino != root->host_ino)
		return changed_error(dir, root, err);
	return walk_files(dir, fd, root, fn, opaque, err);
}
