/* FUSE server: decodes one FUSE request (as the guest's virtio-fs driver
 * sends it), checks it, runs it against the passthrough backend and encodes
 * the reply. Transport-free, so a virtio-fs device can feed it from a
 * virtqueue and tests can call it directly. Single-threaded: one caller at
 * a time. */
#ifndef CAPSA_FUSE_SERVER_H
#define CAPSA_FUSE_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "capsa.h"

/* Largest WRITE payload we accept (and announce in INIT). */
#define FUSE_SERVER_MAX_WRITE (1u << 20)
/* Largest request: a maximal WRITE and its headers. */
#define FUSE_SERVER_MAX_REQUEST (FUSE_SERVER_MAX_WRITE + 4096u)

struct fuse_server;
struct dax_window;

struct fuse_server_config {
	const char *root_dir; /* the shared host directory */
	bool read_only;	      /* every modifying request fails with EROFS */
	/* The device's DAX window (fuse/dax_window.h), or NULL: then
	 * FUSE_SETUPMAPPING and FUSE_REMOVEMAPPING fail with ENOSYS. The
	 * server maps files into it and empties it when a session ends; it
	 * stays the caller's and must outlive the server. */
	struct dax_window *dax;
};

struct fuse_server *fuse_server_new(const struct fuse_server_config *cfg, capsa_error *err);
void fuse_server_free(struct fuse_server *srv);

/* Handles the request in in[0..in_len) and writes its reply (fuse_out_header
 * and body, never more than out_cap bytes) to out; *out_len is the reply's
 * size, 0 for requests that take no reply (FORGET, BATCH_FORGET). Returns 0,
 * or -1 when no reply can be formed at all (in_len shorter than a
 * fuse_in_header, or out_cap shorter than a fuse_out_header); every other
 * problem with the request becomes an error reply. */
int fuse_server_handle(struct fuse_server *srv, const void *in, size_t in_len, void *out, size_t out_cap,
		       size_t *out_len);

/* For tests and leak checks: inodes the guest holds (root included) and
 * open file handles. */
size_t fuse_server_inode_count(const struct fuse_server *srv);
size_t fuse_server_handle_count(const struct fuse_server *srv);

#endif
