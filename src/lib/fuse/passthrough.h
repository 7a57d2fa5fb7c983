/* The passthrough backend of the FUSE server: serves a host directory tree.
 *
 * Every inode the guest knows is an O_PATH fd in a table keyed by the host
 * (dev, ino), with the guest's lookup count; its index is the nodeid. All
 * host access goes through those fds with *at() calls on one already
 * validated name component and O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, so nothing
 * resolves outside the root and no symlink is ever followed on the host.
 * Open files and directories are fds in a second table; the fh the guest
 * gets is an index into it, checked on every use.
 *
 * Functions return 0 or a negative errno, which the dispatcher sends back
 * as the reply's error. Names given here have been validated already
 * (one component, not "." or ".."). */
#ifndef CAPSA_FUSE_PASSTHROUGH_H
#define CAPSA_FUSE_PASSTHROUGH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/fuse.h>

#include "capsa.h"

#define PT_ROOT_NODEID FUSE_ROOT_ID
#define PT_MAX_INODES (1u << 20)
#define PT_MAX_HANDLES 4096u

struct passthrough;

/* Who asks (fuse_in_header uid/gid): when the server runs as root, what a
 * request creates is given to them, as the guest kernel expects. */
struct pt_cred {
	uint32_t uid, gid;
};

/* Opens root_dir (must be a directory) as the tree's root. */
struct passthrough *passthrough_new(const char *root_dir, capsa_error *err);
void passthrough_free(struct passthrough *pt);

/* Drops every inode but the root and closes every handle (FUSE_DESTROY). */
void passthrough_reset(struct passthrough *pt);

size_t passthrough_inode_count(const struct passthrough *pt);
size_t passthrough_handle_count(const struct passthrough *pt);

/* Looks name up in parent, taking one lookup reference on the result. */
int pt_lookup(struct passthrough *pt, uint64_t parent, const char *name, struct fuse_entry_out *out);
void pt_forget(struct passthrough *pt, uint64_t nodeid, uint64_t nlookup);
int pt_getattr(struct passthrough *pt, uint64_t nodeid, struct fuse_attr_out *out);
int pt_setattr(struct passthrough *pt, uint64_t nodeid, const struct fuse_setattr_in *in,
	       struct fuse_attr_out *out);
int pt_readlink(struct passthrough *pt, uint64_t nodeid, char *buf, size_t cap, size_t *len);
int pt_statfs(struct passthrough *pt, uint64_t nodeid, struct fuse_kstatfs *out);

/* flags are the guest's open flags; only the architecture independent ones
 * (access mode, O_APPEND, O_TRUNC, O_EXCL, O_SYNC) are honoured. */
int pt_open(struct passthrough *pt, uint64_t nodeid, uint32_t flags, bool dir, uint64_t *fh);
int pt_release(struct passthrough *pt, uint64_t fh, bool dir);
int pt_check_fh(struct passthrough *pt, uint64_t fh, bool dir);
int pt_read(struct passthrough *pt, uint64_t fh, uint64_t off, void *buf, size_t size, size_t *len);
int pt_write(struct passthrough *pt, uint64_t fh, uint64_t off, const void *buf, size_t size, size_t *len);
int pt_fsync(struct passthrough *pt, uint64_t fh, bool dir, bool datasync);
int pt_fallocate(struct passthrough *pt, uint64_t fh, int mode, uint64_t off, uint64_t len);
int pt_lseek(struct passthrough *pt, uint64_t fh, uint64_t off, uint32_t whence, uint64_t *result);
int pt_copy_file_range(struct passthrough *pt, uint64_t fh_in, uint64_t off_in, uint64_t fh_out,
		       uint64_t off_out, uint64_t len, size_t *copied);

/* The fh of a FUSE_SETUPMAPPING that names no handle (Linux sends this). */
#define PT_NO_FH UINT64_MAX
/* A descriptor of a regular file to map into the DAX window, owned by the
 * caller: a duplicate of handle fh, or with PT_NO_FH nodeid's file opened
 * afresh. It must allow reading, and writing too when writable; a handle
 * that does not gives EACCES. */
int pt_map_fd(struct passthrough *pt, uint64_t nodeid, uint64_t fh, bool writable, int *fd);

/* Fills buf with fuse_dirent (plus: fuse_direntplus) records from directory
 * cookie off on, as many as fit in cap; *len is the bytes used. */
int pt_readdir(struct passthrough *pt, uint64_t fh, uint64_t off, bool plus, void *buf, size_t cap,
	       size_t *len);

int pt_create(struct passthrough *pt, const struct pt_cred *cred, uint64_t parent, const char *name,
	      uint32_t flags, uint32_t mode, struct fuse_entry_out *entry, uint64_t *fh);
int pt_mknod(struct passthrough *pt, const struct pt_cred *cred, uint64_t parent, const char *name,
	     uint32_t mode, uint32_t rdev, struct fuse_entry_out *out);
int pt_mkdir(struct passthrough *pt, const struct pt_cred *cred, uint64_t parent, const char *name,
	     uint32_t mode, struct fuse_entry_out *out);
int pt_symlink(struct passthrough *pt, const struct pt_cred *cred, uint64_t parent, const char *name,
	       const char *target, struct fuse_entry_out *out);
int pt_link(struct passthrough *pt, uint64_t nodeid, uint64_t newparent, const char *name,
	    struct fuse_entry_out *out);
int pt_unlink(struct passthrough *pt, uint64_t parent, const char *name, bool dir);
int pt_rename(struct passthrough *pt, uint64_t parent, const char *name, uint64_t newparent,
	      const char *newname, uint32_t flags);

/* Extended attributes: cap 0 asks for the size only (*len). */
int pt_getxattr(struct passthrough *pt, uint64_t nodeid, const char *name, void *buf, size_t cap, size_t *len);
int pt_listxattr(struct passthrough *pt, uint64_t nodeid, void *buf, size_t cap, size_t *len);
int pt_setxattr(struct passthrough *pt, uint64_t nodeid, const char *name, const void *value, size_t size,
		int flags);
int pt_removexattr(struct passthrough *pt, uint64_t nodeid, const char *name);

#endif
