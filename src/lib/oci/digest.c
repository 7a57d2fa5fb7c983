#include "oci/digest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "util/error.h"

struct oci_hasher {
	EVP_MD_CTX *ctx;
	bool finished;
};

int oci_digest_validate(const char *digest, capsa_error *err)
{
	const char *colon = digest ? strchr(digest, ':') : NULL;

	if (!colon || colon == digest)
		return error_set(err, EINVAL, "'%s' is not a digest (expected sha256:<64 hex digits>)",
				 digest ? digest : "");
	if ((size_t)(colon - digest) != strlen("sha256") || strncmp(digest, "sha256", 6) != 0)
		return error_set(err, ENOTSUP, "digest '%.80s' uses an unsupported algorithm; only sha256 is supported",
				 digest);
	const char *hex = colon + 1;
	size_t n = strlen(hex);
	if (n != OCI_DIGEST_HEX_LEN || strspn(hex, "0123456789abcdef") != n)
		return error_set(err, EINVAL, "'%.80s' is not a digest (expected sha256:<64 lowercase hex digits>)",
				 digest);
	return 0;
}

oci_hasher *oci_hasher_new(capsa_error *err)
{
	oci_hasher *h = calloc(1, sizeof(*h));

	if (h)
		h->ctx = EVP_MD_CTX_new();
	if (!h || !h->ctx || !EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL)) {
		oci_hasher_free(h);
		error_set_errno(err, ENOMEM, "setting up sha256 hashing");
		return NULL;
	}
	return h;
}

void oci_hasher_free(oci_hasher *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int oci_hasher_update(oci_hasher *h, const void *data, size_t len, capsa_error *err)
{
	if (h->finished)
		return error_set(err, EINVAL, "sha256 hasher used after it finished");
	if (len && !EVP_DigestUpdate(h->ctx, data, len))
		return error_set(err, EIO, "sha256 hashing failed");
	return 0;
}

int oci_hasher_finish(oci_hasher *h, char out[OCI_DIGEST_STRING_SIZE], capsa_error *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (h->finished || !EVP_DigestFinal_ex(h->ctx, md, &md_len) || md_len != OCI_DIGEST_HEX_LEN / 2)
		return error_set(err, EIO, "sha256 hashing failed");
	h->finished = true;
	char *p = out + sprintf(out, "%s", OCI_DIGEST_PREFIX);
	for (unsigned i = 0; i < md_len; i++)
		p += sprintf(p, "%02x", md[i]);
	return 0;
}

int oci_digest_of_buffer(const void *data, size_t len, char out[OCI_DIGEST_STRING_SIZE], capsa_error *err)
{
	oci_hasher *h = oci_hasher_new(err);

	if (!h)
		return -1;
	int ret = oci_hasher_update(h, data, len, err);
	if (ret == 0)
		ret = oci_hasher_finish(h, out, err);
	oci_hasher_free(h);
	return ret;
}
