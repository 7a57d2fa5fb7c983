/* Importing images without a registry: `docker save` archives and OCI
 * image layouts (a directory, or a tar of one). Everything read is
 * untrusted: paths inside archives are never used to open host files,
 * sizes are capped, and every blob is verified or content-addressed on
 * the way into the store. */
#ifndef CAPSA_OCI_IMPORT_H
#define CAPSA_OCI_IMPORT_H

#include <stddef.h>

#include "capsa.h"
#include "oci/digest.h"
#include "oci/manifest.h"
#include "oci/store.h"

typedef struct oci_loaded_image {
	char *name;             /* as recorded in the store (canonical), or NULL for an untagged image */
	char manifest_digest[OCI_DIGEST_STRING_SIZE];
} oci_loaded_image;

void oci_loaded_images_free(oci_loaded_image *list, size_t n);

/* Loads a `docker save` archive (tar, optionally gzip or zstd compressed;
 * both the classic manifest.json layout and the OCI layout newer docker
 * versions write). Every image in it is stored; its RepoTags become
 * names (canonicalized: "busybox:latest" -> "docker.io/library/busybox:latest").
 * An image without tags is stored under its manifest digest. */
int oci_import_archive(oci_store *s, const char *path, const oci_platform *platform,
		       oci_loaded_image **images, size_t *n_images, capsa_error *err);

/* Imports one image from an OCI image layout directory: the manifest whose
 * org.opencontainers.image.ref.name annotation is tag (NULL: the only
 * manifest, or an error listing the tags), resolving an index for
 * platform (NULL: linux/amd64). Stored under store_name. */
int oci_import_layout(oci_store *s, const char *dir, const char *tag, const char *store_name,
		      const oci_platform *platform, char out_manifest_digest[OCI_DIGEST_STRING_SIZE],
		      capsa_error *err);

#endif
