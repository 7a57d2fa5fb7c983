/* What importing from an archive and from a layout directory share: the
 * OCI layout's index.json, and following a descriptor through image
 * indexes to an image manifest whose blobs end up in the store. Not for use
 * outside src/lib/oci/import*.c. */
#ifndef CAPSA_OCI_IMPORT_INTERNAL_H
#define CAPSA_OCI_IMPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "capsa.h"
#include "oci/digest.h"
#include "oci/manifest.h"
#include "oci/store.h"

#define ANNOTATION_REF_NAME "org.opencontainers.image.ref.name"
#define ANNOTATION_CONTAINERD_NAME "io.containerd.image.name"

/* Where an image's blobs come from. */
typedef struct import_source {
	/* Reads a manifest or index of at most max bytes, sha256-verified
	 * against digest, NUL-terminated. */
	int (*read_blob)(void *opaque, const char *digest, size_t max, char **data, size_t *len, capsa_error *err);
	/* Makes sure the store holds d's blob, verified; what ("config",
	 * "layer 2") names it in messages. */
	int (*store_blob)(void *opaque, const oci_descriptor *d, const char *what, capsa_error *err);
	void *opaque;
} import_source;

/* One entry of an OCI layout's index.json, with the annotations that name it. */
typedef struct import_entry {
	oci_descriptor desc;
	char *ref_name;       /* org.opencontainers.image.ref.name, or NULL */
	char *image_name;     /* io.containerd.image.name, or NULL */
} import_entry;

/* Checks an oci-layout file: {"imageLayoutVersion": "1.x.y"}. */
int import_check_layout_file(const char *json, size_t len, capsa_error *err);

int import_parse_layout_index(const char *json, size_t len, import_entry **entries, size_t *n, capsa_error *err);
void import_entries_free(import_entry *entries, size_t n);

/* Follows d through image indexes (choosing platform; NULL: linux/amd64)
 * to an image manifest, has src store its config and layers, and stores
 * the manifest. Writes the manifest's digest and the image size (config
 * plus layers as stored). */
int import_resolve_image(oci_store *s, const import_source *src, const oci_descriptor *d,
			 const oci_platform *platform, char out_digest[OCI_DIGEST_STRING_SIZE], uint64_t *out_size,
			 capsa_error *err);

/* The canonical form of an image reference ("busybox" ->
 * "docker.io/library/busybox:latest"), malloc'd. */
char *import_canonical_name(const char *text, capsa_error *err);

#endif
