#include "rootfs/tree_key.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "rootfs/dir_scan.h"
#include "rootfs/file_data.h"
#include "rootfs/squashfs_writer.h"
#include "util/cleanup.h"
#include "util/error.h"

/* Bump when the record layout below changes. */
#define KEY_VERSION "capsa root image key 1"

static int hash_file(fs_node *file, const char *path, int fd, void *opaque, capsa_error *err)
{
	const char *dir = opaque;

	if (file_data_read(fd, file->size, NULL, NULL, file->digest, err) < 0)
		return error_prefix(err, "'%s/%s'", dir, path);
	file->has_digest = true;
	return 0;
}

/* Every field is fixed-size little-endian or length-prefixed, so no two
 * different trees produce the same byte stream. */
static void put_bytes(EVP_MD_CTX *ctx, const void *data, size_t len)
{
	EVP_DigestUpdate(ctx, data, len);
}

static void put_u64(EVP_MD_CTX *ctx, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_bytes(ctx, b, sizeof(b));
}

static void put_blob(EVP_MD_CTX *ctx, const void *data, size_t len)
{
	put_u64(ctx, len);
	put_bytes(ctx, data, len);
}

static void put_str(EVP_MD_CTX *ctx, const char *s)
{
	put_blob(ctx, s, strlen(s));
}

static void put_inode(EVP_MD_CTX *ctx, const fs_node *node)
{
	put_u64(ctx, node->mode);
	put_u64(ctx, node->uid);
	put_u64(ctx, node->gid);
	if (S_ISREG(node->mode)) {
		put_u64(ctx, node->size);
		put_bytes(ctx, node->digest, sizeof(node->digest));
	} else if (S_ISLNK(node->mode)) {
		put_str(ctx, node->link_target);
	} else if (S_ISCHR(node->mode) || S_ISBLK(node->mode)) {
		put_u64(ctx, node->rdev_major);
		put_u64(ctx, node->rdev_minor);
	}
	put_u64(ctx, node->n_xattrs);
	for (size_t i = 0; i < node->n_xattrs; i++) {
		put_str(ctx, node->xattrs[i].key);
		put_blob(ctx, node->xattrs[i].value, node->xattrs[i].size);
	}
}

static int put_entry(EVP_MD_CTX *ctx, const fs_node *node, capsa_error *err)
{
	_cleanup_free_ char *path = fs_node_path(node, err);

	if (!path)
		return -1;
	put_str(ctx, path);
	if (node->hardlink_target) {
		_cleanup_free_ char *target = fs_node_path(node->hardlink_target, err);

		if (!target)
			return -1;
		put_str(ctx, "hard link");
		put_str(ctx, target);
		return 0;
	}
	put_str(ctx, "inode");
	put_inode(ctx, node);
	for (size_t i = 0; i < node->n_children; i++) {
		if (put_entry(ctx, node->children[i], err) < 0)
			return -1;
	}
	return 0;
}

static void md_ctx_freep(EVP_MD_CTX **ctx)
{
	EVP_MD_CTX_free(*ctx);
}

int tree_key_compute(const char *dir, fs_node *root, char hex[TREE_KEY_HEX_SIZE], capsa_error *err)
{
	__attribute__((cleanup(md_ctx_freep))) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t md[32];

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		return error_set_errno(err, ENOMEM, "setting up hashing");
	if (dir_for_each_file(dir, root, hash_file, (void *)dir, err) < 0)
		return -1;

	put_str(ctx, KEY_VERSION);
	put_str(ctx, squashfs_writer_format());
	if (put_entry(ctx, root, err) < 0)
		return -1;
	if (!EVP_DigestFinal_ex(ctx, md, NULL))
		return error_set(err, EIO, "hashing the directory tree failed");
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}
