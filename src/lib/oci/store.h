/* The local image store: content-addressed blobs, the names that point at
 * image manifests, and the root images built from them.
 *
 *   <root>/blobs/sha256/<hex>      blobs, named by the sha256 of their bytes
 *   <root>/tmp/                    blobs being written (<hex>.partial, kept
 *                                  for resuming an interrupted download)
 *   <root>/images.json             name -> manifest digest records
 *   <root>/rootfs/<hex>.sqfs       root image of the manifest <hex>
 *   <root>/{store,images}.lock     flock(2) files
 *
 * The root is $XDG_DATA_HOME/capsa (default ~/.local/share/capsa).
 *
 * Every blob is sha256-verified before it gets its final name and is
 * written to a temporary file, fsync'd and renamed, so a crash never leaves
 * a corrupt blob behind a valid name. Blobs read back (manifests, configs)
 * are verified again, so a blob damaged on disk is noticed, not used.
 *
 * Concurrency: two processes writing the same blob serialize on a lock of
 * that blob (the second finds it present); images.json is rewritten
 * atomically under a lock; operations that use blobs (pull, load, building
 * a root image) hold the store lock shared and garbage collection holds it
 * exclusive, so gc never removes what a concurrent pull is about to name. */
#ifndef CAPSA_OCI_STORE_H
#define CAPSA_OCI_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa.h"
#include "oci/digest.h"

typedef struct oci_store oci_store;

/* $XDG_DATA_HOME/capsa or $HOME/.local/share/capsa, malloc'd. */
char *oci_store_default_root(capsa_error *err);

/* Opens the store at root (NULL: the default), creating its folders. */
oci_store *oci_store_open(const char *root, capsa_error *err);
void oci_store_close(oci_store *s);
const char *oci_store_root(const oci_store *s);

/* Held around operations that read blobs and name them (pull, load, root
 * image builds): shared, so they run concurrently, and only gc waits.
 * Nesting is allowed; each use takes and drops it once. */
int oci_store_use_begin(oci_store *s, capsa_error *err);
void oci_store_use_end(oci_store *s);

/* ---- blobs ---- */

bool oci_store_has_blob(oci_store *s, const char *digest);
/* <root>/blobs/sha256/<hex>, malloc'd (whether or not it exists). */
char *oci_store_blob_path(oci_store *s, const char *digest, capsa_error *err);

/* Reads a whole blob of at most max_size bytes, checks its sha256 against
 * digest (EBADMSG "blob ... is corrupt" otherwise) and returns it
 * NUL-terminated in *data (malloc'd). ENOENT when absent. */
int oci_store_read_blob(oci_store *s, const char *digest, size_t max_size, char **data, size_t *len,
			capsa_error *err);

/* Stores data; when expected_digest is non-NULL it must match (EBADMSG).
 * The digest is written to out_digest (may be NULL). */
int oci_store_put_blob(oci_store *s, const void *data, size_t len, const char *expected_digest,
		       char out_digest[OCI_DIGEST_STRING_SIZE], capsa_error *err);

/* Streaming writes, for layers. */
typedef struct oci_blob_writer oci_blob_writer;

/* Starts writing the blob digest (NULL: not known in advance, computed on
 * commit) of expected_size bytes (-1: unknown). Waits while another
 * process writes the same blob. Returns 1 with *out = NULL when the blob
 * is already stored, 0 with a writer otherwise. A writer for a known
 * digest continues an earlier interrupted write when one was left: see
 * oci_blob_writer_offset(). */
int oci_store_blob_begin(oci_store *s, const char *digest, int64_t expected_size, oci_blob_writer **out,
			 capsa_error *err);
/* Bytes already written (a resumed partial blob, hashed already): ask the
 * server for the rest from here. */
uint64_t oci_blob_writer_offset(const oci_blob_writer *w);
/* Discards what was written, e.g. when the server ignored a Range request. */
int oci_blob_writer_restart(oci_blob_writer *w, capsa_error *err);
int oci_blob_writer_write(oci_blob_writer *w, const void *data, size_t len, capsa_error *err);
/* Checks size and digest (EBADMSG and the partial data discarded when they
 * differ), syncs and renames into place. out_digest may be NULL. */
int oci_blob_writer_commit(oci_blob_writer *w, char out_digest[OCI_DIGEST_STRING_SIZE], capsa_error *err);
/* Frees an uncommitted writer: partial data of a known digest is kept
 * for resuming, anything else removed. Releases the blob's lock. */
void oci_blob_writer_free(oci_blob_writer *w);

/* ---- image names ---- */

typedef struct oci_image_record {
	char *name;             /* canonical reference, e.g. "docker.io/library/busybox:latest",
				 * "oci:/abs/dir:tag", or the manifest digest for an unnamed image */
	char *manifest_digest;  /* of the image manifest (never an index) */
	int64_t created;        /* when it was stored, unix seconds */
	uint64_t size;          /* config + layers as stored (compressed) */
} oci_image_record;

void oci_image_record_clear(oci_image_record *r);
void oci_image_records_free(oci_image_record *list, size_t n);

/* Points name at manifest_digest (replacing an earlier target). */
int oci_store_tag(oci_store *s, const char *name, const char *manifest_digest, uint64_t size, capsa_error *err);
/* Finds the record called name, or else the one image whose manifest digest
 * starts with name ("sha256:" optional, at least 4 hex digits: ids as
 * `capsa images` prints them). ENOENT when none; EINVAL "ambiguous" when a
 * digest prefix matches several images. */
int oci_store_lookup(oci_store *s, const char *name, oci_image_record *out, capsa_error *err);
/* Every record, sorted by name. */
int oci_store_list(oci_store *s, oci_image_record **list, size_t *n, capsa_error *err);
/* Removes the record called name (ENOENT when absent). Blobs stay until gc. */
int oci_store_untag(oci_store *s, const char *name, capsa_error *err);

/* ---- root images ---- */

/* <root>/rootfs/<hex>.sqfs for a manifest digest, malloc'd. */
char *oci_store_rootfs_path(oci_store *s, const char *manifest_digest, capsa_error *err);

/* ---- garbage collection ---- */

typedef struct oci_gc_stats {
	size_t blobs_removed, rootfs_removed, partials_removed;
	uint64_t bytes_freed;
} oci_gc_stats;

/* Removes every blob not reachable from a record (through its manifest's
 * config and layers), root images of manifests no record names, and stale
 * partial downloads. Takes the store lock exclusive. */
int oci_store_gc(oci_store *s, oci_gc_stats *stats, capsa_error *err);

#endif
