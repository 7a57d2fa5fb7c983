/* Pulling an image from a registry (OCI distribution spec) into the
 * store, over HTTPS with libcurl. */
#ifndef CAPSA_OCI_PULL_H
#define CAPSA_OCI_PULL_H

#include <stdbool.h>
#include <stdio.h>

#include "capsa.h"
#include "oci/digest.h"
#include "oci/manifest.h"
#include "oci/reference.h"
#include "oci/store.h"

typedef struct oci_pull_options {
	const oci_platform *platform;         /* NULL: linux/amd64 */
	/* host[:port] entries that may be reached over plain HTTP, NULL-
	 * terminated. localhost, 127.0.0.0/8 and [::1] always may. */
	const char *const *insecure_registries;
	const char *auth_file;                /* NULL: $DOCKER_CONFIG/config.json, else ~/.docker/config.json */
	FILE *progress;                       /* NULL: quiet; a TTY gets a redrawn display, else plain lines */
	unsigned max_concurrent;              /* blobs fetched at once; 0: 3 */
} oci_pull_options;

/* Resolves ref (tag or digest) to an image manifest for the platform,
 * fetches the config and layers not already stored (concurrently,
 * verified, resumed or restarted after interruptions, retried with
 * backoff), stores the manifest, and names it in the store as
 * oci_reference_format(ref). Writes the manifest's digest to
 * out_manifest_digest. */
int oci_pull(oci_store *s, const oci_reference *ref, const oci_pull_options *opts,
	     char out_manifest_digest[OCI_DIGEST_STRING_SIZE], capsa_error *err);

#endif
