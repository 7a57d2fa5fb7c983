/* The parts of importing shared by archives and layout directories. */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci/import.h"
#include "oci/import_internal.h"
#include "oci/json_util.h"
#include "oci/reference.h"
#include "util/cleanup.h"
#include "util/error.h"

/* An index naming an index naming ... an image manifest: real images
 * nest one level (a platform index under index.json); this bounds loops. */
#define INDEX_MAX_DEPTH 4

void oci_loaded_images_free(oci_loaded_image *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		free(list[i].name);
	free(list);
}

char *import_canonical_name(const char *text, capsa_error *err)
{
	oci_reference ref = { 0 };
	char *name = NULL;

	if (oci_reference_parse(text, &ref, err) == 0)
		name = oci_reference_format(&ref, err);
	oci_reference_clear(&ref);
	return name;
}

int import_check_layout_file(const char *json, size_t len, capsa_error *err)
{
	_cleanup_json_ json_t *root = json_parse_object(json, len, "oci-layout", err);
	_cleanup_free_ char *version = NULL;

	if (!root || json_require_string(root, "imageLayoutVersion", &version, err) < 0)
		return error_prefix(err, "oci-layout");
	if (strncmp(version, "1.", 2) != 0)
		return error_set(err, ENOTSUP, "unsupported OCI image layout version '%.40s' (expected 1.0.0)", version);
	return 0;
}

void import_entries_free(import_entry *entries, size_t n)
{
	for (size_t i = 0; entries && i < n; i++) {
		oci_descriptor_clear(&entries[i].desc);
		free(entries[i].ref_name);
		free(entries[i].image_name);
	}
	free(entries);
}

static int parse_annotations(const json_t *item, import_entry *e, capsa_error *err)
{
	const json_t *ann = json_object_get(item, "annotations");

	if (!ann || json_is_null(ann))
		return 0;
	if (!json_is_object(ann))
		return error_set(err, EINVAL, "field \"annotations\" must be an object");
	if (json_get_string(ann, ANNOTATION_REF_NAME, &e->ref_name, err) < 0 ||
	    json_get_string(ann, ANNOTATION_CONTAINERD_NAME, &e->image_name, err) < 0)
		return -1;
	return 0;
}

int import_parse_layout_index(const char *json, size_t len, import_entry **entries, size_t *n, capsa_error *err)
{
	oci_index idx = { 0 };

	*entries = NULL;
	*n = 0;
	/* The descriptors are checked by the index parser; only the
	 * annotations, which it does not keep, are read here. */
	if (oci_index_parse(json, len, &idx, err) < 0)
		return error_prefix(err, "index.json");
	_cleanup_json_ json_t *root = json_parse_object(json, len, "index.json", err);
	const json_t *arr = json_object_get(root, "manifests");
	if (!root || json_array_size(arr) != idx.n_manifests) {
		oci_index_clear(&idx);
		return root ? error_set(err, EINVAL, "index.json: unexpected \"manifests\" array") : -1;
	}
	import_entry *v = calloc(idx.n_manifests ? idx.n_manifests : 1, sizeof(*v));
	if (!v) {
		oci_index_clear(&idx);
		return error_set_errno(err, ENOMEM, "reading index.json");
	}
	for (size_t i = 0; i < idx.n_manifests; i++) {
		v[i].desc = idx.manifests[i];
		memset(&idx.manifests[i], 0, sizeof(idx.manifests[i]));
	}
	size_t count = idx.n_manifests;
	oci_index_clear(&idx);
	for (size_t i = 0; i < count; i++) {
		if (parse_annotations(json_array_get(arr, i), &v[i], err) < 0) {
			import_entries_free(v, count);
			return error_prefix(err, "index.json manifests[%zu]", i);
		}
	}
	*entries = v;
	*n = count;
	return 0;
}

static uint64_t add_size(uint64_t total, int64_t size)
{
	return (uint64_t)size > UINT64_MAX - total ? UINT64_MAX : total + (uint64_t)size;
}

static int store_manifest(oci_store *s, const import_source *src, const oci_descriptor *d, const char *json,
			  size_t len, char out_digest[OCI_DIGEST_STRING_SIZE], uint64_t *out_size, capsa_error *err)
{
	oci_manifest m = { 0 };
	char what[64];

	if (oci_manifest_parse(json, len, &m, err) < 0)
		return -1;
	int ret = src->store_blob(src->opaque, &m.config, "config", err);
	uint64_t size = add_size(0, m.config.size);
	for (size_t i = 0; ret == 0 && i < m.n_layers; i++) {
		snprintf(what, sizeof(what), "layer %zu of %zu", i + 1, m.n_layers);
		ret = src->store_blob(src->opaque, &m.layers[i], what, err);
		size = add_size(size, m.layers[i].size);
	}
	oci_manifest_clear(&m);
	if (ret == 0)
		ret = oci_store_put_blob(s, json, len, d->digest, out_digest, err);
	if (ret == 0)
		*out_size = size;
	return ret;
}

/* One step: the manifest d names is stored (*done), or d becomes the
 * entry of the index it names that is for platform. */
static int resolve_step(oci_store *s, const import_source *src, oci_descriptor *d, const oci_platform *platform,
			int depth, bool *done, char out_digest[OCI_DIGEST_STRING_SIZE], uint64_t *out_size,
			capsa_error *err)
{
	_cleanup_free_ char *json = NULL;
	oci_manifest_kind kind;
	oci_index idx = { 0 };
	size_t len = 0, pick;

	if (src->read_blob(src->opaque, d->digest, OCI_MANIFEST_MAX_BYTES, &json, &len, err) < 0)
		return -1;
	if ((uint64_t)d->size != len)
		return error_set(err, EBADMSG, "blob %s is %zu bytes, but its descriptor says %" PRId64, d->digest, len,
				 d->size);
	if (oci_manifest_kind_of(json, len, d->media_type, &kind, err) < 0)
		return error_prefix(err, "%s", d->digest);
	if (kind == OCI_KIND_MANIFEST) {
		*done = true;
		if (store_manifest(s, src, d, json, len, out_digest, out_size, err) < 0)
			return error_prefix(err, "image manifest %s", d->digest);
		return 0;
	}
	if (depth == INDEX_MAX_DEPTH)
		return error_set(err, ELOOP, "image indexes are nested more than %d deep", INDEX_MAX_DEPTH);
	if (oci_index_parse(json, len, &idx, err) < 0 || oci_index_select(&idx, platform, &pick, err) < 0) {
		oci_index_clear(&idx);
		return error_prefix(err, "image index %s", d->digest);
	}
	oci_descriptor_clear(d);
	int ret = oci_descriptor_copy(d, &idx.manifests[pick], err);
	oci_index_clear(&idx);
	return ret;
}

int import_resolve_image(oci_store *s, const import_source *src, const oci_descriptor *d,
			 const oci_platform *platform, char out_digest[OCI_DIGEST_STRING_SIZE], uint64_t *out_size,
			 capsa_error *err)
{
	oci_descriptor cur = { 0 };
	bool done = false;
	int ret = oci_descriptor_copy(&cur, d, err);

	for (int depth = 0; ret == 0 && !done; depth++)
		ret = resolve_step(s, src, &cur, platform, depth, &done, out_digest, out_size, err);
	oci_descriptor_clear(&cur);
	return ret;
}
