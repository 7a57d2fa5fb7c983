/* What the store's files share: the handle, lock files and atomic file
 * writes. Not for use outside src/lib/oci/store*.c. */
#ifndef CAPSA_OCI_STORE_INTERNAL_H
#define CAPSA_OCI_STORE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "capsa.h"
#include "oci/store.h"

struct oci_store {
	char *root;
	char *blobs_dir;     /* <root>/blobs/sha256 */
	char *tmp_dir;       /* <root>/tmp */
	char *rootfs_dir;    /* <root>/rootfs */
	char *images_path;   /* <root>/images.json */
	char *images_lock;   /* <root>/images.lock */
	int store_lock_fd;   /* <root>/store.lock, open for the handle's lifetime */
	pthread_mutex_t use_mutex;
	unsigned use_depth;  /* oci_store_use_begin() nesting on this handle */
};

/* Partial downloads and temporary files untouched for this long are
 * considered abandoned by gc. */
#define STORE_STALE_SECONDS (60 * 60)

/* malloc'd "<a>/<b>", or NULL with ENOMEM in err. */
char *store_path_join(const char *a, const char *b, capsa_error *err);

/* Opens (creating) the lock file path and flock()s it with op (LOCK_SH,
 * LOCK_EX, optionally | LOCK_NB). Lock files that may be unlinked while
 * held (per-blob locks) are re-checked after locking, so a lock taken on
 * a file somebody just removed is retried on the new one. Returns the fd;
 * -1 with EWOULDBLOCK in err when LOCK_NB and the lock is busy. */
int store_lock_path(const char *path, int op, capsa_error *err);

/* "sha256:" and the first 12 hex digits of a validated digest, the way
 * ids are shown to people. */
#define STORE_SHORT_DIGEST_FMT "%.19s…"

#endif
