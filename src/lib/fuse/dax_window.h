/* The DAX window of a virtio-fs device, host side: one fixed host mapping
 * the guest sees as a shared memory region, into which FUSE_SETUPMAPPING
 * maps pieces of host files so the guest reads and writes them in place
 * (no copy through the virtqueues). Where nothing is mapped the window is
 * anonymous private memory: a guest touching it gets zero pages of its own,
 * never a fault and never other host memory.
 *
 * Only the host mapping lives here; putting it in front of the guest (a
 * KVM memory slot) is the VM's business, and the window's host address
 * never changes, because pieces are replaced in place with MAP_FIXED.
 * Nothing in the host process may read or write the window: file pages past
 * a file's end would raise SIGBUS, and read-only shares map files without
 * write access.
 *
 * Every mapping call changes how many pieces (VMAs) the window is made of;
 * their number is capped so a guest cannot exhaust the process's map count
 * (vm.max_map_count), which every other mapping in the process shares. One
 * caller at a time (the FUSE server's thread). */
#ifndef CAPSA_FUSE_DAX_WINDOW_H
#define CAPSA_FUSE_DAX_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa.h"

/* What FUSE_SETUPMAPPING must align to: the guest kernel maps 2 MiB
 * chunks, and a window size must be a whole number of them. */
#define DAX_WINDOW_CHUNK (2ULL << 20)

struct dax_window {
	uint8_t *host;       /* start of the host mapping; fixed */
	uint64_t size;       /* bytes, a multiple of DAX_WINDOW_CHUNK */
	uint64_t page;       /* host page size: the granularity of mappings */
	uint64_t *edges;     /* bit i set: a piece may begin at page i (0 < i < pages) */
	size_t edge_count;   /* bits set in edges */
	size_t edge_max;     /* cap on edge_count */
};

/* Reserves a window of size bytes (a non-zero multiple of
 * DAX_WINDOW_CHUNK), all anonymous. */
struct dax_window *dax_window_new(uint64_t size, capsa_error *err);
/* Unmaps the window; NULL is fine. Any KVM memory slot over it must be
 * gone (or the VM not running) by then. */
void dax_window_free(struct dax_window *w);

/* Whether [moffset, moffset + len) is a non-empty, page-aligned range
 * inside the window. */
bool dax_window_range_ok(const struct dax_window *w, uint64_t moffset, uint64_t len);
/* The same, and foffset a page-aligned file offset the range can start at:
 * what dax_window_map accepts. */
bool dax_window_map_ok(const struct dax_window *w, uint64_t moffset, uint64_t len, uint64_t foffset);

/* Maps [foffset, foffset + len) of fd at window offset moffset, replacing
 * what was there: a shared mapping of the file's pages, writable (fd open
 * for reading and writing; the guest's stores reach the file) or read-only
 * (fd open for reading). A guest store into a read-only mapping cannot be
 * served: KVM_RUN fails with EFAULT and that guest's VM ends. The Linux
 * driver asks for a writable mapping before it writes. (A private mapping
 * would absorb such stores, but under KVM its pages stop following the
 * file: the guest would read stale data.) Returns 0 or -errno (EINVAL for a
 * bad range or offset, ENOMEM when the window would be made of too many
 * pieces); a failed mmap leaves the range anonymous. fd stays the
 * caller's. */
int dax_window_map(struct dax_window *w, uint64_t moffset, uint64_t len, int fd, uint64_t foffset,
		   bool writable);
/* Puts anonymous memory back over [moffset, moffset + len). */
int dax_window_unmap(struct dax_window *w, uint64_t moffset, uint64_t len);
/* Makes the whole window anonymous again (a new FUSE session). */
int dax_window_reset(struct dax_window *w);

#endif
