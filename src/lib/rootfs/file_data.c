#include "rootfs/file_data.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util/cleanup.h"
#include "util/error.h"

/* A few squashfs blocks per read keeps syscalls few and memory small. */
#define CHUNK_SIZE (512 * 1024)

static void md_ctx_freep(EVP_MD_CTX **ctx)
{
	EVP_MD_CTX_free(*ctx);
}

static ssize_t read_retrying(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

int file_data_read(int fd, uint64_t expected_size, file_chunk_fn fn, void *opaque,
		   uint8_t digest[FILE_DIGEST_SIZE], capsa_error *err)
{
	__attribute__((cleanup(md_ctx_freep))) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	_cleanup_free_ char *buf = malloc(CHUNK_SIZE);
	uint64_t total = 0;

	if (!ctx || !buf || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		return error_set_errno(err, ENOMEM, "setting up file hashing");

	for (;;) {
		ssize_t n = read_retrying(fd, buf, CHUNK_SIZE);

		if (n < 0)
			return error_set_errno(err, errno, "read failed");
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > expected_size)
			break;
		if (!EVP_DigestUpdate(ctx, buf, (size_t)n))
			return error_set(err, EIO, "hashing file data failed");
		if (fn && fn(buf, (size_t)n, opaque, err) < 0)
			return -1;
	}
	if (total != expected_size)
		return error_set(err, ESTALE, "its size changed while the image was being built; try again");
	if (!EVP_DigestFinal_ex(ctx, digest, NULL))
		return error_set(err, EIO, "hashing file data failed");
	return 0;
}
