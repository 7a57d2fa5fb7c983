/* A stored image, as a run needs it: found by whatever name the user
 * typed, with its manifest and configuration read (and verified) from the
 * store, and its root image built on first use. */
#ifndef CAPSA_OCI_IMAGE_H
#define CAPSA_OCI_IMAGE_H

#include "capsa.h"
#include "oci/image_config.h"
#include "oci/manifest.h"
#include "oci/store.h"

#define OCI_LAYOUT_REF_PREFIX "oci:"

typedef struct oci_image {
	oci_image_record record;
	oci_manifest manifest;
	oci_image_config config;
} oci_image;

/* The name an image given as text is stored under: a reference in its
 * canonical form ("busybox" -> "docker.io/library/busybox:latest"), an
 * OCI layout reference with an absolute directory ("oci:./d:t" ->
 * "oci:/abs/d:t"), or the text itself (an id). malloc'd. */
char *oci_image_store_name(const char *text, capsa_error *err);

/* Splits "oci:DIR[:TAG]" into an absolute directory and a tag (NULL when
 * none). The tag is what follows the last ':' after the last '/'. */
int oci_layout_ref_parse(const char *text, char **dir, char **tag, capsa_error *err);

/* Finds text (reference, stored name or id prefix) in the store and
 * reads its manifest and config. ENOENT says how to get the image. */
int oci_image_open(oci_store *s, const char *text, oci_image *out, capsa_error *err);
void oci_image_clear(oci_image *img);

/* Path of the image's squashfs root image (malloc'd), built from its
 * layers the first time. Concurrent first runs each build and rename
 * a complete image. */
char *oci_image_rootfs(oci_store *s, const oci_image *img, capsa_error *err);

#endif
