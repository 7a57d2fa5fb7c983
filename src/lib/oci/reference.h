/* Image references, parsed the way docker parses them:
 *
 *   busybox                         docker.io/library/busybox:latest
 *   nginx:1.27                      docker.io/library/nginx:1.27
 *   library/nginx                   docker.io/library/nginx:latest
 *   ghcr.io/org/app@sha256:<hex>    ghcr.io/org/app@sha256:<hex>
 *   localhost:5000/x/y:tag          localhost:5000/x/y:tag
 *
 * The first path component names a registry when it contains '.' or ':'
 * or is "localhost"; otherwise the reference is on Docker Hub. Repository
 * paths are lowercase components of [a-z0-9] joined by '.', '_', '__' or
 * '-' runs, separated by '/'; tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,127};
 * a digest must pass oci_digest_validate(). A reference may carry both a
 * tag and a digest ("name:tag@sha256:..."): the digest then decides. */
#ifndef CAPSA_OCI_REFERENCE_H
#define CAPSA_OCI_REFERENCE_H

#include "capsa.h"

#define OCI_DOCKER_HUB "docker.io"
/* Where Docker Hub's registry API is actually served. */
#define OCI_DOCKER_HUB_API_HOST "registry-1.docker.io"
#define OCI_DEFAULT_TAG "latest"
#define OCI_REFERENCE_MAX 4096

typedef struct oci_reference {
	char *registry;    /* "docker.io", "ghcr.io", "localhost:5000" (host[:port]) */
	char *repository;  /* "library/busybox", "org/app" */
	char *tag;         /* "latest" when neither tag nor digest was given; NULL if only a digest */
	char *digest;      /* "sha256:..." or NULL */
} oci_reference;

/* Parses text into *ref (which the caller clears with oci_reference_clear).
 * Fails with EINVAL and a message naming the offending part. */
int oci_reference_parse(const char *text, oci_reference *ref, capsa_error *err);
void oci_reference_clear(oci_reference *ref);

/* The canonical full name, malloc'd: "docker.io/library/busybox:latest",
 * "ghcr.io/org/app@sha256:..." (with both: "name:tag@digest"). */
char *oci_reference_format(const oci_reference *ref, capsa_error *err);
/* registry/repository without tag or digest, malloc'd. */
char *oci_reference_name(const oci_reference *ref, capsa_error *err);

/* Host[:port] to send API requests to: OCI_DOCKER_HUB_API_HOST for
 * Docker Hub, the registry itself otherwise. */
const char *oci_reference_api_host(const oci_reference *ref);

#endif
