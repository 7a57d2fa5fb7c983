/* The public image API: a thin layer over the store, pull and import
 * code in oci/ that turns user-typed names into stored ones. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capsa.h"
#include "api/snapshot_store.h"
#include "oci/image.h"
#include "oci/import.h"
#include "oci/pull.h"
#include "oci/reference.h"
#include "oci/store.h"
#include "util/cleanup.h"
#include "util/error.h"

struct capsa_image_store {
	oci_store *store;
};

CAPSA_API capsa_image_store *capsa_image_store_open(const char *dir, capsa_error *err)
{
	capsa_image_store *s = calloc(1, sizeof(*s));

	if (!s) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	s->store = oci_store_open(dir, err);
	if (!s->store) {
		free(s);
		error_prefix(err, "opening the image store");
		return NULL;
	}
	return s;
}

CAPSA_API void capsa_image_store_close(capsa_image_store *s)
{
	if (!s)
		return;
	oci_store_close(s->store);
	free(s);
}

static int pull_layout(capsa_image_store *s, const char *ref, const oci_platform *platform, char **name,
		       capsa_error *err)
{
	_cleanup_free_ char *dir = NULL, *tag = NULL;
	_cleanup_free_ char *store_name = oci_image_store_name(ref, err);
	char digest[OCI_DIGEST_STRING_SIZE];

	if (!store_name || oci_layout_ref_parse(ref, &dir, &tag, err) < 0)
		return -1;
	if (oci_import_layout(s->store, dir, tag, store_name, platform, digest, err) < 0)
		return -1;  /* the importer names the layout */
	if (name)
		*name = steal_pointer(&store_name);
	return 0;
}

static int pull_registry(capsa_image_store *s, const char *text, const capsa_pull_options *opts,
			 const oci_platform *platform, char **name, capsa_error *err)
{
	oci_reference ref = { 0 };
	char digest[OCI_DIGEST_STRING_SIZE];
	oci_pull_options o = {
		.platform = platform,
		.insecure_registries = opts ? opts->insecure_registries : NULL,
		.progress = opts ? opts->progress : NULL,
	};

	if (oci_reference_parse(text, &ref, err) < 0)
		return -1;
	int r = oci_pull(s->store, &ref, &o, digest, err);
	if (r == 0 && name) {
		*name = oci_reference_format(&ref, err);
		if (!*name)
			r = -1;
	}
	oci_reference_clear(&ref);
	return r;
}

CAPSA_API int capsa_image_pull(capsa_image_store *s, const char *ref, const capsa_pull_options *opts, char **name,
			       capsa_error *err)
{
	oci_platform platform = { 0 };
	const oci_platform *want = NULL;

	if (name)
		*name = NULL;
	if (!ref || !*ref)
		return error_set(err, EINVAL, "no image reference given");
	if (opts && opts->platform) {
		if (oci_platform_parse(opts->platform, &platform, err) < 0)
			return -1;
		want = &platform;
	}
	int r = !strncmp(ref, OCI_LAYOUT_REF_PREFIX, strlen(OCI_LAYOUT_REF_PREFIX))
			? pull_layout(s, ref, want, name, err)
			: pull_registry(s, ref, opts, want, name, err);
	oci_platform_clear(&platform);
	return r;
}

CAPSA_API int capsa_image_load(capsa_image_store *s, const char *archive, char ***names, capsa_error *err)
{
	oci_loaded_image *images = NULL;
	size_t n = 0;

	if (names)
		*names = NULL;
	/* The importer's messages name the archive already. */
	if (oci_import_archive(s->store, archive, NULL, &images, &n, err) < 0)
		return -1;
	int r = 0;
	if (names) {
		char **list = calloc(n + 1, sizeof(*list));
		for (size_t i = 0; list && i < n; i++) {
			list[i] = strdup(images[i].name ? images[i].name : images[i].manifest_digest);
			if (!list[i]) {
				capsa_strv_free(list);
				list = NULL;
			}
		}
		if (list)
			*names = list;
		else
			r = error_set(err, ENOMEM, "out of memory");
	}
	oci_loaded_images_free(images, n);
	return r;
}

CAPSA_API int capsa_image_prepare(capsa_image_store *s, const char *ref, capsa_error *err)
{
	oci_image img;

	if (oci_image_open(s->store, ref, &img, err) < 0)
		return -1;
	char *path = oci_image_rootfs(s->store, &img, err);
	oci_image_clear(&img);
	free(path);
	return path ? 0 : -1;
}

CAPSA_API int capsa_image_exists(capsa_image_store *s, const char *ref, capsa_error *err)
{
	_cleanup_free_ char *name = oci_image_store_name(ref, err);
	oci_image_record rec = { 0 };
	capsa_error lookup_err = { 0 };

	if (!name)
		return -1;
	if (oci_store_lookup(s->store, name, &rec, &lookup_err) == 0) {
		oci_image_record_clear(&rec);
		return 1;
	}
	if (lookup_err.code == ENOENT)
		return 0;
	if (err)
		*err = lookup_err;
	return -1;
}

CAPSA_API int capsa_image_exposed_ports(capsa_image_store *s, const char *ref, char ***ports, capsa_error *err)
{
	oci_image img;
	size_t n = 0;

	if (oci_image_open(s->store, ref, &img, err) < 0)
		return -1;
	for (char **p = img.config.exposed_ports; p && *p; p++)
		n++;
	char **list = calloc(n + 1, sizeof(*list));
	for (size_t i = 0; list && i < n; i++) {
		list[i] = strdup(img.config.exposed_ports[i]);
		if (!list[i]) {
			capsa_strv_free(list);
			list = NULL;
		}
	}
	oci_image_clear(&img);
	if (!list)
		return error_set(err, ENOMEM, "out of memory");
	*ports = list;
	return 0;
}

CAPSA_API int capsa_image_list(capsa_image_store *s, capsa_image_info **out, size_t *count, capsa_error *err)
{
	oci_image_record *records = NULL;
	size_t n = 0;

	*out = NULL;
	*count = 0;
	if (oci_store_list(s->store, &records, &n, err) < 0)
		return -1;
	capsa_image_info *list = calloc(n ? n : 1, sizeof(*list));
	if (!list) {
		oci_image_records_free(records, n);
		return error_set(err, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		/* Ownership of the strings moves over. */
		list[i] = (capsa_image_info){
			.name = records[i].name,
			.id = records[i].manifest_digest,
			.created = records[i].created,
			.size = records[i].size,
		};
		records[i].name = records[i].manifest_digest = NULL;
	}
	oci_image_records_free(records, n);
	*out = list;
	*count = n;
	return 0;
}

CAPSA_API void capsa_image_list_free(capsa_image_info *list, size_t count)
{
	for (size_t i = 0; list && i < count; i++) {
		free(list[i].name);
		free(list[i].id);
	}
	free(list);
}

CAPSA_API int capsa_image_remove(capsa_image_store *s, const char *ref, capsa_error *err)
{
	_cleanup_free_ char *name = oci_image_store_name(ref, err);
	oci_image_record rec = { 0 };

	if (!name)
		return -1;
	/* Look up first, so an id or a short name removes the record it
	 * resolves to. */
	if (oci_store_lookup(s->store, name, &rec, err) < 0) {
		if (err && err->code == ENOENT)
			return error_set(err, ENOENT, "no image '%s' is stored; 'capsa images' lists them", ref);
		return -1;
	}
	int r = oci_store_untag(s->store, rec.name, err);
	oci_image_record_clear(&rec);
	return r;
}

CAPSA_API int capsa_image_prune(capsa_image_store *s, uint64_t *bytes_freed, capsa_error *err)
{
	oci_gc_stats stats = { 0 };

	uint64_t snapshot_bytes = 0;

	if (oci_store_gc(s->store, &stats, err) < 0)
		return -1;
	/* Automatic snapshots of the root images just deleted can never be restored again. */
	if (snapshot_prune_stale(oci_store_root(s->store), &snapshot_bytes, err) < 0)
		return -1;
	if (bytes_freed)
		*bytes_freed = stats.bytes_freed + snapshot_bytes;
	return 0;
}

CAPSA_API void capsa_strv_free(char **strv)
{
	for (size_t i = 0; strv && strv[i]; i++)
		free(strv[i]);
	free(strv);
}
