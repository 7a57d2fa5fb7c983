/* Image manifests and image indexes (OCI image spec and Docker's v2
 * schema 2 manifest and manifest list), parsed with jansson. The JSON is
 * untrusted (from a registry or an archive): sizes are capped, every field
 * is type-checked, digests are validated, and unknown fields are ignored. */
#ifndef CAPSA_OCI_MANIFEST_H
#define CAPSA_OCI_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "capsa.h"

#define OCI_MEDIA_MANIFEST        "application/vnd.oci.image.manifest.v1+json"
#define OCI_MEDIA_INDEX           "application/vnd.oci.image.index.v1+json"
#define OCI_MEDIA_CONFIG          "application/vnd.oci.image.config.v1+json"
#define OCI_MEDIA_LAYER_TAR       "application/vnd.oci.image.layer.v1.tar"
#define OCI_MEDIA_LAYER_GZIP      "application/vnd.oci.image.layer.v1.tar+gzip"
#define OCI_MEDIA_LAYER_ZSTD      "application/vnd.oci.image.layer.v1.tar+zstd"
#define DOCKER_MEDIA_MANIFEST     "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_MEDIA_MANIFEST_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define DOCKER_MEDIA_CONFIG       "application/vnd.docker.container.image.v1+json"
#define DOCKER_MEDIA_LAYER_GZIP   "application/vnd.docker.image.rootfs.diff.tar.gzip"

/* The Accept header value listing every manifest type we understand. */
#define OCI_MANIFEST_ACCEPT OCI_MEDIA_MANIFEST ", " OCI_MEDIA_INDEX ", " DOCKER_MEDIA_MANIFEST ", " \
	DOCKER_MEDIA_MANIFEST_LIST

/* Manifests, indexes and configs larger than this are refused. */
#define OCI_MANIFEST_MAX_BYTES (4u * 1024 * 1024)
#define OCI_MAX_LAYERS 1024

typedef struct oci_platform {
	char *os;           /* "linux" */
	char *architecture; /* "amd64" */
	char *variant;      /* "v8" or NULL */
} oci_platform;

typedef struct oci_descriptor {
	char *media_type;
	char *digest;       /* validated */
	int64_t size;       /* >= 0 */
	oci_platform platform; /* index entries only; fields NULL when absent */
} oci_descriptor;

typedef enum oci_manifest_kind {
	OCI_KIND_MANIFEST,  /* OCI image manifest or Docker v2 schema 2 */
	OCI_KIND_INDEX,     /* OCI image index or Docker manifest list */
} oci_manifest_kind;

typedef struct oci_manifest {
	oci_descriptor config;
	oci_descriptor *layers;
	size_t n_layers;
} oci_manifest;

typedef struct oci_index {
	oci_descriptor *manifests;
	size_t n_manifests;
} oci_index;

/* Which kind the JSON is: from its mediaType field, else from the HTTP
 * Content-Type (may be NULL), else from its shape ("manifests" array vs
 * "layers" array). Schema 1 manifests are refused with a message saying
 * the image must be re-pushed in a current format. */
int oci_manifest_kind_of(const char *json, size_t len, const char *content_type, oci_manifest_kind *kind,
			 capsa_error *err);

int oci_manifest_parse(const char *json, size_t len, oci_manifest *out, capsa_error *err);
void oci_manifest_clear(oci_manifest *m);

int oci_index_parse(const char *json, size_t len, oci_index *out, capsa_error *err);
void oci_index_clear(oci_index *idx);

/* "linux/amd64", "linux/arm64/v8" into *out; EINVAL on anything else. */
int oci_platform_parse(const char *text, oci_platform *out, capsa_error *err);
void oci_platform_clear(oci_platform *p);
/* The platform this build runs guests of: linux/amd64. */
void oci_platform_default(oci_platform *out_static);

/* Index of the entry of idx that is a manifest for want (os and
 * architecture equal; variant equal when want has one, otherwise the
 * first matching entry), skipping attestation entries (platform
 * unknown/unknown). ENOENT with a message listing the platforms the index
 * offers when none matches. */
int oci_index_select(const oci_index *idx, const oci_platform *want, size_t *out_index, capsa_error *err);

/* True for the layer media types we can unpack (tar, tar+gzip, tar+zstd,
 * Docker's gzip and their "nondistributable" variants). */
bool oci_layer_media_supported(const char *media_type);

int oci_descriptor_copy(oci_descriptor *dst, const oci_descriptor *src, capsa_error *err);
void oci_descriptor_clear(oci_descriptor *d);

#endif
