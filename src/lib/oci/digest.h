/* Content digests as OCI writes them: "sha256:" followed by 64 lowercase
 * hex digits. Other algorithms are refused: every registry and image
 * builder in use writes sha256, and accepting one we cannot verify would
 * mean trusting unverified content. */
#ifndef CAPSA_OCI_DIGEST_H
#define CAPSA_OCI_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "capsa.h"

#define OCI_DIGEST_PREFIX "sha256:"
#define OCI_DIGEST_HEX_LEN 64
/* "sha256:" + 64 hex + NUL */
#define OCI_DIGEST_STRING_SIZE (sizeof(OCI_DIGEST_PREFIX) - 1 + OCI_DIGEST_HEX_LEN + 1)

/* 0 when digest is a well-formed sha256 digest; otherwise -1 with EINVAL
 * (ENOTSUP for a well-formed digest of another algorithm). */
int oci_digest_validate(const char *digest, capsa_error *err);

/* The 64 hex digits of a validated digest. */
static inline const char *oci_digest_hex(const char *digest)
{
	return digest + sizeof(OCI_DIGEST_PREFIX) - 1;
}

/* Incremental hashing of a stream. */
typedef struct oci_hasher oci_hasher;

oci_hasher *oci_hasher_new(capsa_error *err);
void oci_hasher_free(oci_hasher *h);
int oci_hasher_update(oci_hasher *h, const void *data, size_t len, capsa_error *err);
/* Writes the digest string of everything hashed so far; the hasher can
 * not be updated afterwards. */
int oci_hasher_finish(oci_hasher *h, char out[OCI_DIGEST_STRING_SIZE], capsa_error *err);

int oci_digest_of_buffer(const void *data, size_t len, char out[OCI_DIGEST_STRING_SIZE], capsa_error *err);

#endif
