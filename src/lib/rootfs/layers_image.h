/* Root images from image layers: tar streams (plain, gzip or zstd)
 * applied in order with OCI whiteouts, written as one squashfs image.
 *
 * Nothing is extracted to the host: pass one reads every layer's headers
 * into an fs_node tree (applying whiteouts, opaque directories,
 * replacements, hard links), pass two streams the data of the files that
 * survived into the image writer. Each layer blob is hashed on both passes
 * and must match its digest, so a blob changed on disk is never used.
 *
 * Layers are hostile input: names are normalized ("./a", "/a" -> "a"),
 * ".." can never climb above the root, symlinks in a path are resolved
 * inside the image (never on the host), hard links must name an earlier
 * entry, and path lengths, link targets, xattr sizes and entry counts are
 * capped. Violations fail with EINVAL and a message naming the layer and
 * entry. */
#ifndef CAPSA_ROOTFS_LAYERS_IMAGE_H
#define CAPSA_ROOTFS_LAYERS_IMAGE_H

#include <stddef.h>

#include "capsa.h"

typedef struct layer_blob {
	const char *path;    /* the blob file */
	const char *digest;  /* "sha256:..." it must hash to */
} layer_blob;

/* Writes the image to out_path atomically (temporary file + fsync +
 * rename). Compression is detected from the data, not the media type. */
int rootfs_build_from_layers(const layer_blob *layers, size_t n_layers, const char *out_path, capsa_error *err);

#endif
