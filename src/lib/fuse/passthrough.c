/* Passthrough backend: see passthrough.h for the safety model. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fuse/passthrough.h"
#include "util/cleanup.h"
#include "util/error.h"

#define PT_HASH_BUCKETS (1u << 14)
#define PT_NONE UINT32_MAX
/* The guest revalidates after this long; one second keeps host changes
 * visible soon while sparing a round trip per path component. */
#define PT_TIMEOUT_SEC 1
/* One COPY_FILE_RANGE request must not hold the server for minutes. */
#define PT_MAX_COPY (64u << 20)

struct pt_inode {
	int fd; /* O_PATH, or -1 when the slot is free */
	dev_t dev;
	ino_t ino;
	mode_t type;
	uint64_t nlookup;
	uint32_t hash_next; /* next inode in the same bucket */
	uint32_t free_next; /* next free slot */
};

struct pt_handle {
	int fd; /* -1 when free */
	bool dir;
};

struct passthrough {
	struct pt_inode *inodes; /* index = nodeid; slot 0 unused */
	uint32_t inodes_len, inodes_cap, free_head;
	size_t inode_count;
	uint32_t *buckets;
	struct pt_handle handles[PT_MAX_HANDLES];
	size_t handle_count;
};

static uint32_t hash_key(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4full;
	return (uint32_t)(h >> 40) & (PT_HASH_BUCKETS - 1);
}

/* Opens one name component below dirfd without following any symlink and
 * without leaving dirfd's tree. */
static int open_beneath(int dirfd, const char *name, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));

	if (fd < 0 && errno == ENOSYS)
		fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	return fd;
}

static void proc_path(char *buf, size_t cap, int fd)
{
	snprintf(buf, cap, "/proc/self/fd/%d", fd);
}

static struct pt_inode *get_inode(struct passthrough *pt, uint64_t nodeid)
{
	if (nodeid == 0 || nodeid >= pt->inodes_len || pt->inodes[nodeid].fd < 0)
		return NULL;
	return &pt->inodes[nodeid];
}

static struct pt_handle *get_handle(struct passthrough *pt, uint64_t fh, bool dir)
{
	struct pt_handle *h;

	if (fh == 0 || fh > PT_MAX_HANDLES)
		return NULL;
	h = &pt->handles[fh - 1];
	if (h->fd < 0 || h->dir != dir)
		return NULL;
	return h;
}

static void fill_attr(struct fuse_attr *a, const struct stat *st)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->size = (uint64_t)st->st_size;
	a->blocks = (uint64_t)st->st_blocks;
	a->atime = (uint64_t)st->st_atim.tv_sec;
	a->mtime = (uint64_t)st->st_mtim.tv_sec;
	a->ctime = (uint64_t)st->st_ctim.tv_sec;
	a->atimensec = (uint32_t)st->st_atim.tv_nsec;
	a->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
	a->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = (uint32_t)st->st_rdev;
	a->blksize = (uint32_t)st->st_blksize;
}

static int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int grow_inodes(struct passthrough *pt)
{
	uint32_t cap = pt->inodes_cap ? pt->inodes_cap * 2 : 64;
	struct pt_inode *n;

	if (cap > PT_MAX_INODES + 1)
		cap = PT_MAX_INODES + 1;
	if (cap <= pt->inodes_cap)
		return -ENFILE;
	n = realloc(pt->inodes, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	pt->inodes = n;
	pt->inodes_cap = cap;
	return 0;
}

/* Adds fd (owned on success) as a new inode; returns its nodeid or -errno. */
static int64_t add_inode(struct passthrough *pt, int fd, const struct stat *st)
{
	uint32_t idx, b;
	int r;

	if (pt->inode_count >= PT_MAX_INODES)
		return -ENFILE;
	if (pt->free_head != PT_NONE) {
		idx = pt->free_head;
		pt->free_head = pt->inodes[idx].free_next;
	} else {
		if (pt->inodes_len == pt->inodes_cap && (r = grow_inodes(pt)) < 0)
			return r;
		idx = pt->inodes_len++;
	}
	b = hash_key(st->st_dev, st->st_ino);
	pt->inodes[idx] = (struct pt_inode){
		.fd = fd, .dev = st->st_dev, .ino = st->st_ino, .type = st->st_mode & S_IFMT,
		.nlookup = 1, .hash_next = pt->buckets[b], .free_next = PT_NONE,
	};
	pt->buckets[b] = idx;
	pt->inode_count++;
	return idx;
}

static void drop_inode(struct passthrough *pt, uint32_t idx)
{
	struct pt_inode *in = &pt->inodes[idx];
	uint32_t *link = &pt->buckets[hash_key(in->dev, in->ino)];

	while (*link != PT_NONE && *link != idx)
		link = &pt->inodes[*link].hash_next;
	if (*link == idx)
		*link = in->hash_next;
	close(in->fd);
	in->fd = -1;
	in->nlookup = 0;
	in->free_next = pt->free_head;
	pt->free_head = idx;
	pt->inode_count--;
}

static uint32_t find_inode(struct passthrough *pt, dev_t dev, ino_t ino)
{
	uint32_t i = pt->buckets[hash_key(dev, ino)];

	while (i != PT_NONE && (pt->inodes[i].dev != dev || pt->inodes[i].ino != ino))
		i = pt->inodes[i].hash_next;
	return i;
}

/* Looks name up below dirfd and takes a lookup reference. */
static int lookup_at(struct passthrough *pt, int dirfd, const char *name, struct fuse_entry_out *out)
{
	_cleanup_close_ int fd = open_beneath(dirfd, name, O_PATH, 0);
	struct stat st;
	int64_t id;
	uint32_t idx;
	int r;

	if (fd < 0)
		return -errno;
	if ((r = stat_fd(fd, &st)) < 0)
		return r;
	idx = find_inode(pt, st.st_dev, st.st_ino);
	if (idx != PT_NONE) {
		pt->inodes[idx].nlookup++;
		id = idx;
	} else {
		id = add_inode(pt, fd, &st);
		if (id < 0)
			return (int)id;
		steal_fd(&fd);
	}
	memset(out, 0, sizeof(*out));
	out->nodeid = (uint64_t)id;
	out->entry_valid = out->attr_valid = PT_TIMEOUT_SEC;
	fill_attr(&out->attr, &st);
	return 0;
}

struct passthrough *passthrough_new(const char *root_dir, capsa_error *err)
{
	_cleanup_close_ int fd = open(root_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct passthrough *pt;
	struct stat st;

	if (fd < 0) {
		error_set_errno(err, errno, "opening shared directory %s", root_dir);
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		error_set_errno(err, errno, "stat of shared directory %s", root_dir);
		return NULL;
	}
	pt = calloc(1, sizeof(*pt));
	if (pt)
		pt->buckets = malloc(PT_HASH_BUCKETS * sizeof(*pt->buckets));
	if (!pt || !pt->buckets || grow_inodes(pt) < 0) {
		if (pt) {
			free(pt->buckets);
			free(pt->inodes);
		}
		free(pt);
		error_set(err, ENOMEM, "out of memory for the shared directory's inode table");
		return NULL;
	}
	memset(pt->buckets, 0xff, PT_HASH_BUCKETS * sizeof(*pt->buckets));
	for (size_t i = 0; i < PT_MAX_HANDLES; i++)
		pt->handles[i].fd = -1;
	pt->free_head = PT_NONE;
	pt->inodes[0] = (struct pt_inode){ .fd = -1 };
	pt->inodes_len = 1;
	add_inode(pt, steal_fd(&fd), &st); /* becomes nodeid 1, PT_ROOT_NODEID */
	return pt;
}

void passthrough_reset(struct passthrough *pt)
{
	for (uint32_t i = PT_ROOT_NODEID + 1; i < pt->inodes_len; i++)
		if (pt->inodes[i].fd >= 0)
			drop_inode(pt, i);
	pt->inodes[PT_ROOT_NODEID].nlookup = 1;
	for (size_t i = 0; i < PT_MAX_HANDLES; i++)
		pt_release(pt, i + 1, pt->handles[i].dir);
}

void passthrough_free(struct passthrough *pt)
{
	if (!pt)
		return;
	passthrough_reset(pt);
	close(pt->inodes[PT_ROOT_NODEID].fd);
	free(pt->inodes);
	free(pt->buckets);
	free(pt);
}

size_t passthrough_inode_count(const struct passthrough *pt)
{
	return pt->inode_count;
}

size_t passthrough_handle_count(const struct passthrough *pt)
{
	return pt->handle_count;
}

int pt_lookup(struct passthrough *pt, uint64_t parent, const char *name, struct fuse_entry_out *out)
{
	struct pt_inode *p = get_inode(pt, parent);

	if (!p)
		return -ESTALE;
	return lookup_at(pt, p->fd, name, out);
}

void pt_forget(struct passthrough *pt, uint64_t nodeid, uint64_t nlookup)
{
	struct pt_inode *in = get_inode(pt, nodeid);

	if (!in || nodeid == PT_ROOT_NODEID)
		return;
	in->nlookup -= nlookup < in->nlookup ? nlookup : in->nlookup;
	if (in->nlookup == 0)
		drop_inode(pt, (uint32_t)nodeid);
}

int pt_getattr(struct passthrough *pt, uint64_t nodeid, struct fuse_attr_out *out)
{
	struct pt_inode *in = get_inode(pt, nodeid);
	struct stat st;
	int r;

	if (!in)
		return -ESTALE;
	if ((r = stat_fd(in->fd, &st)) < 0)
		return r;
	memset(out, 0, sizeof(*out));
	out->attr_valid = PT_TIMEOUT_SEC;
	fill_attr(&out->attr, &st);
	return 0;
}

static struct timespec attr_time(uint32_t valid, uint32_t set_bit, uint32_t now_bit, uint64_t sec,
				 uint32_t nsec)
{
	if (valid & now_bit)
		return (struct timespec){ .tv_nsec = UTIME_NOW };
	if (valid & set_bit)
		return (struct timespec){ .tv_sec = (time_t)sec, .tv_nsec = nsec };
	return (struct timespec){ .tv_nsec = UTIME_OMIT };
}

int pt_setattr(struct passthrough *pt, uint64_t nodeid, const struct fuse_setattr_in *in,
	       struct fuse_attr_out *out)
{
	struct pt_inode *ino = get_inode(pt, nodeid);
	struct pt_handle *h = NULL;
	uint32_t v = in->valid;
	char path[64];

	if (!ino)
		return -ESTALE;
	if (v & FATTR_FH) {
		h = get_handle(pt, in->fh, false);
		if (!h)
			return -EBADF;
	}
	/* Mode, size and times go through the inode itself; a symlink's own
	 * inode cannot be reached that way without following it. */
	if (ino->type == S_IFLNK && (v & (FATTR_MODE | FATTR_SIZE | FATTR_ATIME | FATTR_MTIME)))
		return -EOPNOTSUPP;
	proc_path(path, sizeof(path), ino->fd);
	if (v & FATTR_MODE) {
		if ((h ? fchmod(h->fd, in->mode & 07777) : chmod(path, in->mode & 07777)) < 0)
			return -errno;
	}
	if (v & (FATTR_UID | FATTR_GID)) {
		uid_t uid = (v & FATTR_UID) ? in->uid : (uid_t)-1;
		gid_t gid = (v & FATTR_GID) ? in->gid : (gid_t)-1;

		if (fchownat(ino->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (v & FATTR_SIZE) {
		if (in->size > INT64_MAX)
			return -EINVAL;
		if (!h && ino->type != S_IFREG)
			return ino->type == S_IFDIR ? -EISDIR : -EINVAL;
		if ((h ? ftruncate(h->fd, (off_t)in->size) : truncate(path, (off_t)in->size)) < 0)
			return -errno;
	}
	if (v & (FATTR_ATIME | FATTR_MTIME)) {
		struct timespec ts[2] = {
			attr_time(v, FATTR_ATIME, FATTR_ATIME_NOW, in->atime, in->atimensec),
			attr_time(v, FATTR_MTIME, FATTR_MTIME_NOW, in->mtime, in->mtimensec),
		};

		if ((v & FATTR_ATIME && !(v & FATTR_ATIME_NOW) && in->atimensec >= 1000000000u) ||
		    (v & FATTR_MTIME && !(v & FATTR_MTIME_NOW) && in->mtimensec >= 1000000000u))
			return -EINVAL;
		if (utimensat(AT_FDCWD, path, ts, 0) < 0)
			return -errno;
	}
	return pt_getattr(pt, nodeid, out);
}

int pt_readlink(struct passthrough *pt, uint64_t nodeid, char *buf, size_t cap, size_t *len)
{
	struct pt_inode *in = get_inode(pt, nodeid);
	ssize_t n;

	if (!in)
		return -ESTALE;
	if (in->type != S_IFLNK)
		return -EINVAL;
	n = readlinkat(in->fd, "", buf, cap);
	if (n < 0)
		return -errno;
	if ((size_t)n >= cap) /* may have been cut short */
		return -ENAMETOOLONG;
	*len = (size_t)n;
	return 0;
}

int pt_statfs(struct passthrough *pt, uint64_t nodeid, struct fuse_kstatfs *out)
{
	struct pt_inode *in = get_inode(pt, nodeid);
	struct statfs s;

	if (!in)
		return -ESTALE;
	if (fstatfs(in->fd, &s) < 0)
		return -errno;
	memset(out, 0, sizeof(*out));
	out->blocks = s.f_blocks;
	out->bfree = s.f_bfree;
	out->bavail = s.f_bavail;
	out->files = s.f_files;
	out->ffree = s.f_ffree;
	out->bsize = (uint32_t)s.f_bsize;
	out->namelen = (uint32_t)s.f_namelen;
	out->frsize = (uint32_t)s.f_frsize;
	return 0;
}

/* Stores fd (owned) as a new handle. */
static int add_handle(struct passthrough *pt, int fd, bool dir, uint64_t *fh)
{
	for (size_t i = 0; i < PT_MAX_HANDLES; i++) {
		if (pt->handles[i].fd < 0) {
			pt->handles[i] = (struct pt_handle){ .fd = fd, .dir = dir };
			pt->handle_count++;
			*fh = i + 1;
			return 0;
		}
	}
	close(fd);
	return -ENFILE;
}

/* The open flags the guest may choose; the rest differ between
 * architectures or would change how the host resolves the path. */
static int guest_open_flags(uint32_t flags)
{
	return (int)(flags & (O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC));
}

/* The /proc path through which a regular file's inode can be opened.
 * Device nodes would open host devices; the guest handles FIFOs and
 * sockets itself and never opens them here. */
static int regular_file_path(struct passthrough *pt, uint64_t nodeid, char path[64])
{
	struct pt_inode *in = get_inode(pt, nodeid);
	if (!in)
		return -ESTALE;
	if (in->type == S_IFDIR)
		return -EISDIR;
	if (in->type != S_IFREG)
		return in->type == S_IFLNK ? -ELOOP : -EACCES;
	proc_path(path, 64, in->fd);
	return 0;
}

int pt_open(struct passthrough *pt, uint64_t nodeid, uint32_t flags, bool dir, uint64_t *fh)
{
	char path[64];
	int fd, r;

	if (dir) {
		struct pt_inode *in = get_inode(pt, nodeid);
		if (!in)
			return -ESTALE;
		if (in->type != S_IFDIR)
			return -ENOTDIR;
		if ((flags & O_ACCMODE) == O_ACCMODE)
			return -EINVAL;
		proc_path(path, sizeof(path), in->fd);
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		if ((r = regular_file_path(pt, nodeid, path)) < 0)
			return r;
		if ((flags & O_ACCMODE) == O_ACCMODE)
			return -EINVAL;
		fd = open(path, guest_open_flags(flags) | O_CLOEXEC | O_NOCTTY);
	}
	if (fd < 0)
		return -errno;
	return add_handle(pt, fd, dir, fh);
}

int pt_release(struct passthrough *pt, uint64_t fh, bool dir)
{
	struct pt_handle *h = get_handle(pt, fh, dir);

	if (!h)
		return -EBADF;
	close(h->fd);
	h->fd = -1;
	pt->handle_count--;
	return 0;
}

int pt_check_fh(struct passthrough *pt, uint64_t fh, bool dir)
{
	return get_handle(pt, fh, dir) ? 0 : -EBADF;
}

int pt_read(struct passthrough *pt, uint64_t fh, uint64_t off, void *buf, size_t size, size_t *len)
{
	struct pt_handle *h = get_handle(pt, fh, false);
	ssize_t n;

	if (!h)
		return -EBADF;
	if (off > INT64_MAX)
		return -EINVAL;
	n = pread(h->fd, buf, size, (off_t)off);
	if (n < 0)
		return -errno;
	*len = (size_t)n;
	return 0;
}

int pt_write(struct passthrough *pt, uint64_t fh, uint64_t off, const void *buf, size_t size, size_t *len)
{
	struct pt_handle *h = get_handle(pt, fh, false);
	ssize_t n;

	if (!h)
		return -EBADF;
	if (off > INT64_MAX)
		return -EINVAL;
	n = pwrite(h->fd, buf, size, (off_t)off);
	if (n < 0)
		return -errno;
	*len = (size_t)n;
	return 0;
}

int pt_fsync(struct passthrough *pt, uint64_t fh, bool dir, bool datasync)
{
	struct pt_handle *h = get_handle(pt, fh, dir);

	if (!h)
		return -EBADF;
	return (datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0 ? -errno : 0;
}

int pt_fallocate(struct passthrough *pt, uint64_t fh, int mode, uint64_t off, uint64_t len)
{
	struct pt_handle *h = get_handle(pt, fh, false);

	if (!h)
		return -EBADF;
	if (off > INT64_MAX || len > INT64_MAX)
		return -EINVAL;
	return fallocate(h->fd, mode, (off_t)off, (off_t)len) < 0 ? -errno : 0;
}

int pt_lseek(struct passthrough *pt, uint64_t fh, uint64_t off, uint32_t whence, uint64_t *result)
{
	struct pt_handle *h = get_handle(pt, fh, false);
	off_t r;

	if (!h)
		return -EBADF;
	if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END && whence != SEEK_DATA &&
	    whence != SEEK_HOLE)
		return -EINVAL;
	r = lseek(h->fd, (off_t)off, (int)whence);
	if (r < 0)
		return -errno;
	*result = (uint64_t)r;
	return 0;
}

int pt_copy_file_range(struct passthrough *pt, uint64_t fh_in, uint64_t off_in, uint64_t fh_out,
		       uint64_t off_out, uint64_t len, size_t *copied)
{
	struct pt_handle *in = get_handle(pt, fh_in, false), *out = get_handle(pt, fh_out, false);
	off_t oi = (off_t)off_in, oo = (off_t)off_out;
	ssize_t n;

	if (!in || !out)
		return -EBADF;
	if (off_in > INT64_MAX || off_out > INT64_MAX)
		return -EINVAL;
	n = copy_file_range(in->fd, &oi, out->fd, &oo, len < PT_MAX_COPY ? len : PT_MAX_COPY, 0);
	if (n < 0)
		return -errno;
	*copied = (size_t)n;
	return 0;
}

int pt_map_fd(struct passthrough *pt, uint64_t nodeid, uint64_t fh, bool writable, int *fd)
{
	if (fh != PT_NO_FH) {
		struct pt_handle *h = get_handle(pt, fh, false);
		if (!h)
			return -EBADF;
		int mode = fcntl(h->fd, F_GETFL) & O_ACCMODE;
		if (writable ? mode != O_RDWR : mode == O_WRONLY)
			return -EACCES;
		*fd = fcntl(h->fd, F_DUPFD_CLOEXEC, 0);
		return *fd < 0 ? -errno : 0;
	}
	char path[64];
	int r = regular_file_path(pt, nodeid, path);
	if (r < 0)
		return r;
	*fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY);
	return *fd < 0 ? -errno : 0;
}

int pt_readdir(struct passthrough *pt, uint64_t fh, uint64_t off, bool plus, void *buf, size_t cap,
	       size_t *len)
{
	struct pt_handle *h = get_handle(pt, fh, true);
	char dents[16384] __attribute__((aligned(8)));
	uint8_t *out = buf;
	size_t used = 0;

	if (!h)
		return -EBADF;
	if (off > INT64_MAX)
		return -EINVAL;
	/* Offsets are the host's directory cookies; entries read but not
	 * fitting are read again by the next request from its offset. */
	if (lseek(h->fd, (off_t)off, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		ssize_t n = getdents64(h->fd, dents, sizeof(dents));

		if (n < 0)
			return used ? (*len = used, 0) : -errno;
		if (n == 0)
			break;
		for (ssize_t pos = 0; pos < n;) {
			struct dirent64 *d = (struct dirent64 *)(dents + pos);
			size_t namelen = strlen(d->d_name);
			size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
			size_t rec = FUSE_DIRENT_ALIGN(head + namelen);
			struct fuse_entry_out entry = { 0 };
			struct fuse_dirent dirent;
			bool dot = !strcmp(d->d_name, ".") || !strcmp(d->d_name, "..");

			pos += d->d_reclen;
			if (rec > cap - used) {
				*len = used;
				return 0;
			}
			/* A plus entry hands the guest a lookup reference; entries it
			 * cannot look up go without one (nodeid 0), as do . and .. */
			if (plus && !dot && lookup_at(pt, h->fd, d->d_name, &entry) < 0)
				memset(&entry, 0, sizeof(entry));
			dirent = (struct fuse_dirent){
				.ino = d->d_ino, .off = (uint64_t)d->d_off, .namelen = (uint32_t)namelen,
				.type = d->d_type,
			};
			memset(out + used, 0, rec);
			if (plus) {
				memcpy(out + used, &entry, sizeof(entry));
				memcpy(out + used + sizeof(entry), &dirent, sizeof(dirent));
			} else {
				memcpy(out + used, &dirent, sizeof(dirent));
			}
			memcpy(out + used + head, d->d_name, namelen);
			used += rec;
		}
	}
	*len = used;
	return 0;
}

static int parent_fd(struct passthrough *pt, uint64_t parent)
{
	struct pt_inode *p = get_inode(pt, parent);

	if (!p)
		return -ESTALE;
	return p->type == S_IFDIR ? p->fd : -ENOTDIR;
}

/* Gives a just created name to the requester. In a setgid directory the
 * group stays the one the host inherited. Failure leaves it as created. */
static void give_to(int dfd, const char *name, const struct pt_cred *cred)
{
	struct stat dir;
	gid_t gid = cred->gid;

	if (geteuid() != 0)
		return;
	if (fstatat(dfd, "", &dir, AT_EMPTY_PATH) == 0 && (dir.st_mode & S_ISGID))
		gid = (gid_t)-1;
	(void)fchownat(dfd, name, cred->uid, gid, AT_SYMLINK_NOFOLLOW);
}

int pt_create(struct passthrough *pt, const struct pt_cred *cred, uint64_t parent, const char *name,
	      uint32_t flags, uint32_t mode, struct fuse_entry_out *entry, uint64_t *fh)
{
	int dfd = parent_fd(pt, parent), fd, r, oflags;
	struct stat st = { 0 };
	bool created;

	if (dfd < 0)
		return dfd;
	if ((flags & O_ACCMODE) == O_ACCMODE)
		return -EINVAL;
	/* The name may exist already (then it is opened, unless the guest asked
	 * for O_EXCL, and keeps its owner): O_NONBLOCK keeps a FIFO from
	 * blocking the open, and only a regular file may stay open (no host
	 * devices). */
	oflags = guest_open_flags(flags) | O_NOCTTY | O_NONBLOCK;
	fd = open_beneath(dfd, name, oflags | O_CREAT | O_EXCL, (mode_t)(mode & 07777));
	created = fd >= 0;
	if (fd < 0 && errno == EEXIST && !(flags & O_EXCL))
		fd = open_beneath(dfd, name, oflags, 0);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    fcntl(fd, F_SETFL, guest_open_flags(flags) & ~O_ACCMODE) < 0) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EACCES;
		close(fd);
		return r;
	}
	if (created)
		give_to(dfd, name, cred);
	if ((r = add_handle(pt, fd, false, fh)) < 0)
		return r;
	if ((r = lookup_at(pt, dfd, name, entry)) < 0)
		pt_release(pt, *fh, false);
	return r;
}

int pt_mknod(struct passthrough *pt, const struct pt_cred *cred, uint64_t parent, const char *name,
	     uint32_t mode, uint32_t rdev, struct fuse_entry_out *out)
{
	int dfd = parent_fd(pt, parent);

	(void)rdev;
	if (dfd < 0)
		return dfd;
	/* No device nodes: they would give the guest the host's devices. */
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode))
		return -EPERM;
	if (mknodat(dfd, name, (mode_t)(mode & (S_IFMT | 07777)), 0) < 0)
		return -errno;
	give_to(dfd, name, cred);
	return lookup_at(pt, dfd, name, out);
}

int pt_mkdir(struct passthrough *pt, const struct pt_cred *cred, uint64_t parent, const char *name,
	     uint32_t mode, struct fuse_entry_out *out)
{
	int dfd = parent_fd(pt, parent);

	if (dfd < 0)
		return dfd;
	if (mkdirat(dfd, name, (mode_t)(mode & 07777)) < 0)
		return -errno;
	give_to(dfd, name, cred);
	return lookup_at(pt, dfd, name, out);
}

int pt_symlink(struct passthrough *pt, const struct pt_cred *cred, uint64_t parent, const char *name,
	       const char *target, struct fuse_entry_out *out)
{
	int dfd = parent_fd(pt, parent);

	if (dfd < 0)
		return dfd;
	if (symlinkat(target, dfd, name) < 0)
		return -errno;
	give_to(dfd, name, cred);
	return lookup_at(pt, dfd, name, out);
}

int pt_link(struct passthrough *pt, uint64_t nodeid, uint64_t newparent, const char *name,
	    struct fuse_entry_out *out)
{
	struct pt_inode *in = get_inode(pt, nodeid);
	int dfd = parent_fd(pt, newparent);
	char path[64];

	if (!in)
		return -ESTALE;
	if (dfd < 0)
		return dfd;
	if (in->type == S_IFDIR)
		return -EPERM;
	if (linkat(in->fd, "", dfd, name, AT_EMPTY_PATH) < 0) {
		if (errno != ENOENT && errno != EPERM)
			return -errno;
		/* Without CAP_DAC_READ_SEARCH: link the fd's inode via /proc. */
		proc_path(path, sizeof(path), in->fd);
		if (linkat(AT_FDCWD, path, dfd, name, AT_SYMLINK_FOLLOW) < 0)
			return -errno;
	}
	return lookup_at(pt, dfd, name, out);
}

int pt_unlink(struct passthrough *pt, uint64_t parent, const char *name, bool dir)
{
	int dfd = parent_fd(pt, parent);

	if (dfd < 0)
		return dfd;
	return unlinkat(dfd, name, dir ? AT_REMOVEDIR : 0) < 0 ? -errno : 0;
}

int pt_rename(struct passthrough *pt, uint64_t parent, const char *name, uint64_t newparent,
	      const char *newname, uint32_t flags)
{
	int dfd = parent_fd(pt, parent), ndfd = parent_fd(pt, newparent);

	if (dfd < 0)
		return dfd;
	if (ndfd < 0)
		return ndfd;
	if (flags & ~(uint32_t)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	return renameat2(dfd, name, ndfd, newname, flags) < 0 ? -errno : 0;
}

/* Extended attributes go through /proc/self/fd, which reaches the inode
 * itself; for a symlink that would follow it, so symlinks have none. */
static int xattr_path(struct passthrough *pt, uint64_t nodeid, char *path, size_t cap)
{
	struct pt_inode *in = get_inode(pt, nodeid);

	if (!in)
		return -ESTALE;
	if (in->type == S_IFLNK)
		return -EOPNOTSUPP;
	proc_path(path, cap, in->fd);
	return 0;
}

int pt_getxattr(struct passthrough *pt, uint64_t nodeid, const char *name, void *buf, size_t cap, size_t *len)
{
	char path[64];
	ssize_t n;
	int r = xattr_path(pt, nodeid, path, sizeof(path));

	if (r < 0)
		return r == -EOPNOTSUPP ? -ENODATA : r;
	n = getxattr(path, name, cap ? buf : NULL, cap);
	if (n < 0)
		return -errno;
	*len = (size_t)n;
	return 0;
}

int pt_listxattr(struct passthrough *pt, uint64_t nodeid, void *buf, size_t cap, size_t *len)
{
	char path[64];
	ssize_t n;
	int r = xattr_path(pt, nodeid, path, sizeof(path));

	if (r == -EOPNOTSUPP) {
		*len = 0;
		return 0;
	}
	if (r < 0)
		return r;
	n = listxattr(path, cap ? buf : NULL, cap);
	if (n < 0)
		return -errno;
	*len = (size_t)n;
	return 0;
}

/* The guest may only change user attributes and ACLs: security.* and
 * trusted.* would grant host capabilities or labels. */
static bool xattr_writable(const char *name)
{
	return !strncmp(name, "user.", 5) || !strcmp(name, "system.posix_acl_access") ||
	       !strcmp(name, "system.posix_acl_default");
}

int pt_setxattr(struct passthrough *pt, uint64_t nodeid, const char *name, const void *value, size_t size,
		int flags)
{
	char path[64];
	int r = xattr_path(pt, nodeid, path, sizeof(path));

	if (r < 0)
		return r;
	if (!xattr_writable(name))
		return -EOPNOTSUPP;
	if (flags & ~(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	return setxattr(path, name, value, size, flags) < 0 ? -errno : 0;
}

int pt_removexattr(struct passthrough *pt, uint64_t nodeid, const char *name)
{
	char path[64];
	int r = xattr_path(pt, nodeid, path, sizeof(path));

	if (r < 0)
		return r;
	if (!xattr_writable(name))
		return -EOPNOTSUPP;
	return removexattr(path, name) < 0 ? -errno : 0;
}
