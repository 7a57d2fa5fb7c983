#include "oci/manifest.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oci/digest.h"
#include "oci/json_util.h"
#include "util/error.h"

/* Platforms in one index: real ones carry a handful; the cap only stops a
 * hostile index from making us allocate for hundreds of thousands. */
#define INDEX_MAX_ENTRIES 4096
#define PLATFORM_PART_MAX 64
#define PLATFORM_LIST_MAX 600

typedef enum media_class {
	MEDIA_UNKNOWN,
	MEDIA_MANIFEST,
	MEDIA_INDEX,
	MEDIA_SCHEMA1,
} media_class;

static const struct {
	const char *type;
	media_class cls;
} manifest_media[] = {
	{ OCI_MEDIA_MANIFEST, MEDIA_MANIFEST },
	{ DOCKER_MEDIA_MANIFEST, MEDIA_MANIFEST },
	{ OCI_MEDIA_INDEX, MEDIA_INDEX },
	{ DOCKER_MEDIA_MANIFEST_LIST, MEDIA_INDEX },
	{ "application/vnd.docker.distribution.manifest.v1+json", MEDIA_SCHEMA1 },
	{ "application/vnd.docker.distribution.manifest.v1+prettyjws", MEDIA_SCHEMA1 },
};

static const char *const layer_media[] = {
	OCI_MEDIA_LAYER_TAR,
	OCI_MEDIA_LAYER_GZIP,
	OCI_MEDIA_LAYER_ZSTD,
	"application/vnd.oci.image.layer.nondistributable.v1.tar",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
	DOCKER_MEDIA_LAYER_GZIP,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
};

/* Names people type for the same architecture as `uname -m` prints it. */
static const struct {
	const char *alias, *arch;
} arch_aliases[] = {
	{ "x86_64", "amd64" },
	{ "x86-64", "amd64" },
	{ "aarch64", "arm64" },
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static media_class classify(const char *type, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(manifest_media); i++)
		if (strlen(manifest_media[i].type) == len && !strncasecmp(type, manifest_media[i].type, len))
			return manifest_media[i].cls;
	return MEDIA_UNKNOWN;
}

static int refuse_schema1(capsa_error *err)
{
	return error_set(err, ENOTSUP,
			 "the image has a Docker v2 schema 1 manifest, a format no longer supported; re-push it "
			 "with a current docker, buildah or skopeo (schema 2 or OCI)");
}

/* The media type of an HTTP Content-Type value, without parameters. */
static media_class classify_content_type(const char *content_type)
{
	while (*content_type == ' ' || *content_type == '\t')
		content_type++;
	size_t len = strcspn(content_type, ";");
	while (len && (content_type[len - 1] == ' ' || content_type[len - 1] == '\t'))
		len--;
	return classify(content_type, len);
}

static bool is_schema1(const json_t *root)
{
	const json_t *v = json_object_get(root, "schemaVersion");
	return json_is_integer(v) && json_integer_value(v) == 1;
}

/* The class of the mediaType field; MEDIA_UNKNOWN when absent. */
static int media_type_field(const json_t *root, media_class *cls, capsa_error *err)
{
	const json_t *mt = json_object_get(root, "mediaType");

	*cls = MEDIA_UNKNOWN;
	if (!mt)
		return 0;
	if (!json_is_string(mt))
		return error_set(err, EINVAL, "manifest field \"mediaType\" must be a string");
	*cls = classify(json_string_value(mt), strlen(json_string_value(mt)));
	if (*cls == MEDIA_UNKNOWN)
		return error_set(err, ENOTSUP,
				 "unsupported manifest media type '%.200s'; expected an OCI or Docker image manifest "
				 "or index",
				 json_string_value(mt));
	return 0;
}

static int detect_kind(const json_t *root, const char *content_type, oci_manifest_kind *kind, capsa_error *err)
{
	media_class cls;

	if (is_schema1(root))
		return refuse_schema1(err);
	if (media_type_field(root, &cls, err) < 0)
		return -1;
	if (cls == MEDIA_UNKNOWN && content_type)
		cls = classify_content_type(content_type);
	if (cls == MEDIA_UNKNOWN) {
		if (json_is_array(json_object_get(root, "manifests")))
			cls = MEDIA_INDEX;
		else if (json_is_array(json_object_get(root, "layers")))
			cls = MEDIA_MANIFEST;
		else if (json_object_get(root, "fsLayers"))
			cls = MEDIA_SCHEMA1;
	}
	switch (cls) {
	case MEDIA_MANIFEST:
		*kind = OCI_KIND_MANIFEST;
		return 0;
	case MEDIA_INDEX:
		*kind = OCI_KIND_INDEX;
		return 0;
	case MEDIA_SCHEMA1:
		return refuse_schema1(err);
	case MEDIA_UNKNOWN:
		break;
	}
	return error_set(err, EPROTO,
			 "document is neither an image manifest nor an image index (no known mediaType, no "
			 "\"layers\" or \"manifests\" array)");
}

int oci_manifest_kind_of(const char *json, size_t len, const char *content_type, oci_manifest_kind *kind,
			 capsa_error *err)
{
	_cleanup_json_ json_t *root = json_parse_object(json, len, "manifest", err);

	if (!root || detect_kind(root, content_type, kind, err) < 0) {
		return -1;
	}
	return 0;
}

/* schemaVersion 2 and, when a mediaType is given, one of class want. */
static int check_header(const json_t *root, media_class want, const char *what, capsa_error *err)
{
	const json_t *v = json_object_get(root, "schemaVersion");
	media_class cls;

	if (is_schema1(root))
		return refuse_schema1(err);
	if (!v)
		return error_set(err, EINVAL, "%s has no \"schemaVersion\" field", what);
	if (!json_is_integer(v) || json_integer_value(v) != 2)
		return error_set(err, EINVAL, "%s has an unsupported schemaVersion (expected 2)", what);
	if (media_type_field(root, &cls, err) < 0)
		return -1;
	if (cls == MEDIA_SCHEMA1)
		return refuse_schema1(err);
	if (cls != MEDIA_UNKNOWN && cls != want)
		return error_set(err, EINVAL, "%s has media type '%.200s', which is not an image %s", what,
				 json_string_value(json_object_get(root, "mediaType")), what);
	return 0;
}

static int parse_platform(const json_t *obj, oci_platform *p, capsa_error *err)
{
	const json_t *pj = json_object_get(obj, "platform");

	if (!pj || json_is_null(pj))
		return 0;
	if (!json_is_object(pj))
		return error_set(err, EINVAL, "field \"platform\" must be an object");
	if (json_require_string(pj, "os", &p->os, err) < 0 ||
	    json_require_string(pj, "architecture", &p->architecture, err) < 0 ||
	    json_get_string(pj, "variant", &p->variant, err) < 0)
		return error_prefix(err, "platform");
	return 0;
}

static int parse_descriptor(const json_t *obj, oci_descriptor *d, capsa_error *err)
{
	if (!json_is_object(obj))
		return error_set(err, EINVAL, "descriptor is not a JSON object");
	if (json_require_string(obj, "mediaType", &d->media_type, err) < 0 ||
	    json_require_string(obj, "digest", &d->digest, err) < 0 || oci_digest_validate(d->digest, err) < 0)
		return -1;
	const json_t *size = json_object_get(obj, "size");
	if (!json_is_integer(size))
		return error_set(err, EINVAL, "field \"size\" must be an integer");
	d->size = json_integer_value(size);
	if (d->size < 0)
		return error_set(err, EINVAL, "field \"size\" is negative (%" PRId64 ")", d->size);
	return parse_platform(obj, &d->platform, err);
}

/* Parses the array field key of root into *out (n entries, at most max). */
static int parse_descriptors(const json_t *root, const char *key, size_t max, const char *what,
			     oci_descriptor **out, size_t *n_out, capsa_error *err)
{
	const json_t *arr = json_object_get(root, key);

	if (!json_is_array(arr))
		return error_set(err, EINVAL, "%s has no \"%s\" array", what, key);
	size_t n = json_array_size(arr);
	if (n > max)
		return error_set(err, EINVAL, "%s has %zu %s, more than the %zu allowed", what, n, key, max);
	*out = calloc(n ? n : 1, sizeof(**out));
	if (!*out)
		return error_set_errno(err, ENOMEM, "reading %s", what);
	*n_out = n;
	for (size_t i = 0; i < n; i++)
		if (parse_descriptor(json_array_get(arr, i), &(*out)[i], err) < 0)
			return error_prefix(err, "%s %s[%zu]", what, key, i);
	return 0;
}

static bool is_image_config_media(const char *type)
{
	return !strcmp(type, OCI_MEDIA_CONFIG) || !strcmp(type, DOCKER_MEDIA_CONFIG);
}

static int parse_manifest(const json_t *root, oci_manifest *m, capsa_error *err)
{
	if (check_header(root, MEDIA_MANIFEST, "manifest", err) < 0)
		return -1;
	const json_t *config = json_object_get(root, "config");
	if (!config)
		return error_set(err, EINVAL, "manifest has no \"config\" descriptor");
	if (parse_descriptor(config, &m->config, err) < 0)
		return error_prefix(err, "manifest config");
	if (!is_image_config_media(m->config.media_type))
		return error_set(err, ENOTSUP,
				 "manifest config has media type '%.200s', so this is not a container image (expected "
				 "%s or %s)",
				 m->config.media_type, OCI_MEDIA_CONFIG, DOCKER_MEDIA_CONFIG);
	return parse_descriptors(root, "layers", OCI_MAX_LAYERS, "manifest", &m->layers, &m->n_layers, err);
}

int oci_manifest_parse(const char *json, size_t len, oci_manifest *out, capsa_error *err)
{
	_cleanup_json_ json_t *root = json_parse_object(json, len, "manifest", err);

	memset(out, 0, sizeof(*out));
	if (!root || parse_manifest(root, out, err) < 0) {
		oci_manifest_clear(out);
		return -1;
	}
	return 0;
}

void oci_manifest_clear(oci_manifest *m)
{
	oci_descriptor_clear(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		oci_descriptor_clear(&m->layers[i]);
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

int oci_index_parse(const char *json, size_t len, oci_index *out, capsa_error *err)
{
	_cleanup_json_ json_t *root = json_parse_object(json, len, "image index", err);

	memset(out, 0, sizeof(*out));
	if (!root || check_header(root, MEDIA_INDEX, "index", err) < 0 ||
	    parse_descriptors(root, "manifests", INDEX_MAX_ENTRIES, "index", &out->manifests, &out->n_manifests,
			      err) < 0) {
		oci_index_clear(out);
		return -1;
	}
	return 0;
}

void oci_index_clear(oci_index *idx)
{
	for (size_t i = 0; i < idx->n_manifests; i++)
		oci_descriptor_clear(&idx->manifests[i]);
	free(idx->manifests);
	memset(idx, 0, sizeof(*idx));
}

static int parse_platform_text(const char *text, oci_platform *out, capsa_error *err)
{
	static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
	char **parts[] = { &out->os, &out->architecture, &out->variant };
	const char *p = text;
	size_t n = 0;

	for (;;) {
		size_t len = strcspn(p, "/");
		if (n == ARRAY_SIZE(parts) || len == 0 || len > PLATFORM_PART_MAX || strspn(p, allowed) < len)
			return error_set(err, EINVAL, "'%.100s' is not a platform (expected os/arch[/variant], "
					 "e.g. linux/amd64 or linux/arm64/v8)", text);
		*parts[n] = strndup(p, len);
		if (!*parts[n])
			return error_set_errno(err, ENOMEM, "parsing platform");
		for (char *c = *parts[n]; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		n++;
		if (!p[len])
			break;
		p += len + 1;
	}
	if (n < 2)
		return error_set(err, EINVAL, "'%.100s' is not a platform (expected os/arch[/variant], "
				 "e.g. linux/amd64 or linux/arm64/v8)", text);
	for (size_t i = 0; i < ARRAY_SIZE(arch_aliases); i++) {
		if (strcmp(out->architecture, arch_aliases[i].alias))
			continue;
		char *arch = strdup(arch_aliases[i].arch);
		if (!arch)
			return error_set_errno(err, ENOMEM, "parsing platform");
		free(out->architecture);
		out->architecture = arch;
		break;
	}
	return 0;
}

int oci_platform_parse(const char *text, oci_platform *out, capsa_error *err)
{
	memset(out, 0, sizeof(*out));
	if (parse_platform_text(text ? text : "", out, err) < 0) {
		oci_platform_clear(out);
		return -1;
	}
	return 0;
}

void oci_platform_clear(oci_platform *p)
{
	free(p->os);
	free(p->architecture);
	free(p->variant);
	memset(p, 0, sizeof(*p));
}

void oci_platform_default(oci_platform *out_static)
{
	/* Static strings: the result must not be passed to oci_platform_clear. */
	out_static->os = (char *)"linux";
	out_static->architecture = (char *)"amd64";
	out_static->variant = NULL;
}

/* Buildx stores provenance and SBOM attestations as index entries with the
 * platform unknown/unknown; they are not images. */
static bool is_attestation(const oci_descriptor *d)
{
	return d->platform.os && !strcmp(d->platform.os, "unknown") && d->platform.architecture &&
	       !strcmp(d->platform.architecture, "unknown");
}

static bool platform_matches(const oci_platform *have, const oci_platform *want)
{
	if (!have->os || !have->architecture || strcmp(have->os, want->os) ||
	    strcmp(have->architecture, want->architecture))
		return false;
	return !want->variant || (have->variant && !strcmp(have->variant, want->variant));
}

/* "linux/amd64, linux/arm64/v8" for the message of a failed selection. */
static void describe_platforms(const oci_index *idx, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < idx->n_manifests; i++) {
		const oci_descriptor *d = &idx->manifests[i];
		if (is_attestation(d) || classify(d->media_type, strlen(d->media_type)) != MEDIA_MANIFEST)
			continue;
		const oci_platform *p = &d->platform;
		char one[3 * PLATFORM_PART_MAX + 8];
		if (p->os && p->architecture)
			snprintf(one, sizeof(one), "%.*s/%.*s%s%.*s", PLATFORM_PART_MAX, p->os, PLATFORM_PART_MAX,
				 p->architecture, p->variant ? "/" : "", PLATFORM_PART_MAX,
				 p->variant ? p->variant : "");
		else
			snprintf(one, sizeof(one), "(unspecified)");
		if (used + strlen(one) + 8 >= size) {
			snprintf(buf + used, size - used, "%s...", used ? ", " : "");
			return;
		}
		used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? ", " : "", one);
	}
}

int oci_index_select(const oci_index *idx, const oci_platform *want, size_t *out_index, capsa_error *err)
{
	oci_platform fallback;

	if (!want) {
		oci_platform_default(&fallback);
		want = &fallback;
	}
	for (size_t i = 0; i < idx->n_manifests; i++) {
		const oci_descriptor *d = &idx->manifests[i];
		if (is_attestation(d) || classify(d->media_type, strlen(d->media_type)) != MEDIA_MANIFEST)
			continue;
		if (platform_matches(&d->platform, want)) {
			*out_index = i;
			return 0;
		}
	}
	char offered[PLATFORM_LIST_MAX];
	describe_platforms(idx, offered, sizeof(offered));
	error_set(err, ENOENT, "the image index has no manifest for platform %.64s/%.64s%s%.64s; it offers: %s",
		  want->os, want->architecture, want->variant ? "/" : "", want->variant ? want->variant : "",
		  offered[0] ? offered : "no platforms at all");
	return -1;
}

bool oci_layer_media_supported(const char *media_type)
{
	for (size_t i = 0; media_type && i < ARRAY_SIZE(layer_media); i++)
		if (!strcmp(media_type, layer_media[i]))
			return true;
	return false;
}

static int copy_string(char **dst, const char *src)
{
	*dst = NULL;
	if (src && !(*dst = strdup(src)))
		return -1;
	return 0;
}

int oci_descriptor_copy(oci_descriptor *dst, const oci_descriptor *src, capsa_error *err)
{
	memset(dst, 0, sizeof(*dst));
	dst->size = src->size;
	if (copy_string(&dst->media_type, src->media_type) < 0 || copy_string(&dst->digest, src->digest) < 0 ||
	    copy_string(&dst->platform.os, src->platform.os) < 0 ||
	    copy_string(&dst->platform.architecture, src->platform.architecture) < 0 ||
	    copy_string(&dst->platform.variant, src->platform.variant) < 0) {
		oci_descriptor_clear(dst);
		return error_set_errno(err, ENOMEM, "copying a descriptor");
	}
	return 0;
}

void oci_descriptor_clear(oci_descriptor *d)
{
	free(d->media_type);
	free(d->digest);
	oci_platform_clear(&d->platform);
	memset(d, 0, sizeof(*d));
}
