#include "oci/image.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci/reference.h"
#include "rootfs/layers_image.h"
#include "util/cleanup.h"
#include "util/error.h"

int oci_layout_ref_parse(const char *text, char **dir, char **tag, capsa_error *err)
{
	const char *spec = text + strlen(OCI_LAYOUT_REF_PREFIX);
	_cleanup_free_ char *path = strdup(spec);

	*dir = *tag = NULL;
	if (strncmp(text, OCI_LAYOUT_REF_PREFIX, strlen(OCI_LAYOUT_REF_PREFIX)) != 0 || !*spec)
		return error_set(err, EINVAL, "'%s' is not an OCI layout reference (oci:DIR[:TAG])", text);
	if (!path)
		return error_set(err, ENOMEM, "out of memory");
	char *slash = strrchr(path, '/');
	char *colon = strrchr(slash ? slash : path, ':');
	if (colon) {
		*colon = '\0';
		if (!colon[1] || !path[0])
			return error_set(err, EINVAL, "'%s' is not an OCI layout reference (oci:DIR[:TAG])", text);
		*tag = strdup(colon + 1);
		if (!*tag)
			return error_set(err, ENOMEM, "out of memory");
	}
	char resolved[PATH_MAX];
	if (!realpath(path, resolved)) {
		int e = errno;
		free(*tag);
		*tag = NULL;
		return error_set_errno(err, e, "OCI layout directory %s", path);
	}
	*dir = strdup(resolved);
	if (!*dir) {
		free(*tag);
		*tag = NULL;
		return error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

char *oci_image_store_name(const char *text, capsa_error *err)
{
	char *name = NULL;

	if (!strncmp(text, OCI_LAYOUT_REF_PREFIX, strlen(OCI_LAYOUT_REF_PREFIX))) {
		_cleanup_free_ char *dir = NULL, *tag = NULL;
		if (oci_layout_ref_parse(text, &dir, &tag, err) < 0)
			return NULL;
		if (asprintf(&name, "%s%s%s%s", OCI_LAYOUT_REF_PREFIX, dir, tag ? ":" : "", tag ? tag : "") < 0)
			name = NULL;
	} else {
		oci_reference ref = { 0 };
		capsa_error parse_err = { 0 };
		/* Not a reference: an id or a name stored some other way. */
		if (oci_reference_parse(text, &ref, &parse_err) < 0)
			name = strdup(text);
		else
			name = oci_reference_format(&ref, err);
		oci_reference_clear(&ref);
	}
	if (!name && err && !err->message[0])
		error_set(err, ENOMEM, "out of memory");
	return name;
}

static int read_json_blob(oci_store *s, const char *digest, char **json, size_t *len, capsa_error *err)
{
	return oci_store_read_blob(s, digest, OCI_MANIFEST_MAX_BYTES, json, len, err);
}

int oci_image_open(oci_store *s, const char *text, oci_image *out, capsa_error *err)
{
	_cleanup_free_ char *name = oci_image_store_name(text, err);
	_cleanup_free_ char *manifest_json = NULL, *config_json = NULL;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (!name)
		return -1;
	if (oci_store_lookup(s, name, &out->record, err) < 0) {
		if (err && err->code == ENOENT)
			return error_set(err, ENOENT, "image '%s' is not stored here; pull it with 'capsa pull %s' "
					 "(or load it with 'capsa load -i ARCHIVE')", text, text);
		return -1;
	}
	if (read_json_blob(s, out->record.manifest_digest, &manifest_json, &len, err) < 0 ||
	    oci_manifest_parse(manifest_json, len, &out->manifest, err) < 0)
		goto fail;
	if (read_json_blob(s, out->manifest.config.digest, &config_json, &len, err) < 0 ||
	    oci_image_config_parse(config_json, len, &out->config, err) < 0)
		goto fail;
	if (out->config.os && strcmp(out->config.os, "linux") != 0) {
		error_set(err, ENOEXEC, "image '%s' is for %s, not linux", text, out->config.os);
		goto fail;
	}
	return 0;
fail:
	error_prefix(err, "image '%s'", text);
	oci_image_clear(out);
	return -1;
}

void oci_image_clear(oci_image *img)
{
	oci_image_record_clear(&img->record);
	oci_manifest_clear(&img->manifest);
	oci_image_config_clear(&img->config);
}

char *oci_image_rootfs(oci_store *s, const oci_image *img, capsa_error *err)
{
	_cleanup_free_ char *path = oci_store_rootfs_path(s, img->record.manifest_digest, err);
	size_t n = img->manifest.n_layers;
	char **blob_paths = NULL;
	layer_blob *layers = NULL;
	int ret = -1;

	if (!path)
		return NULL;
	if (access(path, F_OK) == 0)
		return steal_pointer(&path);
	if (oci_store_use_begin(s, err) < 0)
		return NULL;
	blob_paths = calloc(n ? n : 1, sizeof(*blob_paths));
	layers = calloc(n ? n : 1, sizeof(*layers));
	if (!blob_paths || !layers) {
		error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const oci_descriptor *d = &img->manifest.layers[i];
		if (!oci_layer_media_supported(d->media_type)) {
			error_set(err, ENOTSUP, "layer %zu has media type %s, which capsa cannot unpack", i + 1,
				  d->media_type);
			goto out;
		}
		blob_paths[i] = oci_store_blob_path(s, d->digest, err);
		if (!blob_paths[i])
			goto out;
		if (access(blob_paths[i], R_OK) < 0) {
			error_set(err, ENOENT, "layer %s is missing from the store; pull the image again",
				  d->digest);
			goto out;
		}
		layers[i] = (layer_blob){ .path = blob_paths[i], .digest = d->digest };
	}
	ret = rootfs_build_from_layers(layers, n, path, err);
out:
	for (size_t i = 0; blob_paths && i < n; i++)
		free(blob_paths[i]);
	free(blob_paths);
	free(layers);
	oci_store_use_end(s);
	if (ret < 0) {
		error_prefix(err, "building the root image of %s", img->record.name);
		return NULL;
	}
	return steal_pointer(&path);
}
