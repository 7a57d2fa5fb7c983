/* Manifests and indexes as registries serve them (OCI manifest, Docker
 * v2 schema 2 manifest, a buildx OCI index with an attestation entry, a
 * Docker manifest list), kind detection, platform parsing and selection,
 * and a table of malformed documents that must be refused cleanly. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oci/manifest.h"

#define R8(s) s s s s s s s s
#define DIG(ch) "sha256:" R8(R8(ch))
#define Q(s) "\"" s "\""
#define DESC(mt, digest, size) "{\"mediaType\":" Q(mt) ",\"digest\":" Q(digest) ",\"size\":" #size "}"
#define PDESC(mt, digest, size, platform) \
	"{\"mediaType\":" Q(mt) ",\"digest\":" Q(digest) ",\"size\":" #size ",\"platform\":" platform "}"

static const char oci_manifest_json[] =
	"{\n"
	"  \"schemaVersion\": 2,\n"
	"  \"mediaType\": \"" OCI_MEDIA_MANIFEST "\",\n"
	"  \"config\": " DESC(OCI_MEDIA_CONFIG, DIG("c"), 1469) ",\n"
	"  \"layers\": [\n"
	"    " DESC(OCI_MEDIA_LAYER_GZIP, DIG("1"), 3623807) ",\n"
	"    {\"mediaType\": \"" OCI_MEDIA_LAYER_ZSTD "\", \"digest\": \"" DIG("2") "\", \"size\": 0,\n"
	"     \"annotations\": {\"org.opencontainers.image.title\": \"x\"}, \"urls\": []}\n"
	"  ],\n"
	"  \"annotations\": {\"org.opencontainers.image.created\": \"2024-05-01T00:00:00Z\"}\n"
	"}\n";

static const char docker_manifest[] =
	"{\"schemaVersion\":2,\"mediaType\":\"" DOCKER_MEDIA_MANIFEST "\","
	"\"config\":" DESC(DOCKER_MEDIA_CONFIG, DIG("d"), 1457) ","
	"\"layers\":[" DESC(DOCKER_MEDIA_LAYER_GZIP, DIG("e"), 2152262) "]}";

static const char oci_index_json[] =
	"{\"schemaVersion\":2,\"mediaType\":\"" OCI_MEDIA_INDEX "\",\"manifests\":["
	PDESC(OCI_MEDIA_MANIFEST, DIG("a"), 1234, "{\"architecture\":\"amd64\",\"os\":\"linux\"}") ","
	PDESC(OCI_MEDIA_MANIFEST, DIG("b"), 1235, "{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}") ","
	"{\"mediaType\":\"" OCI_MEDIA_MANIFEST "\",\"digest\":\"" DIG("f") "\",\"size\":566,"
	"\"annotations\":{\"vnd.docker.reference.digest\":\"" DIG("a") "\","
	"\"vnd.docker.reference.type\":\"attestation-manifest\"},"
	"\"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"}}"
	"]}";

static const char docker_list[] =
	"{\"schemaVersion\":2,\"mediaType\":\"" DOCKER_MEDIA_MANIFEST_LIST "\",\"manifests\":["
	PDESC(DOCKER_MEDIA_MANIFEST, DIG("1"), 527, "{\"architecture\":\"amd64\",\"os\":\"linux\"}") ","
	PDESC(DOCKER_MEDIA_MANIFEST, DIG("2"), 527, "{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v6\"}") ","
	PDESC(DOCKER_MEDIA_MANIFEST, DIG("3"), 527, "{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\"}") ","
	PDESC(DOCKER_MEDIA_MANIFEST, DIG("4"), 527, "{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}") ","
	PDESC(DOCKER_MEDIA_MANIFEST, DIG("5"), 527, "{\"architecture\":\"s390x\",\"os\":\"linux\"}")
	"]}";

static void test_oci_manifest(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	oci_manifest_kind kind = OCI_KIND_INDEX;
	oci_manifest m;

	assert_int_equal(oci_manifest_kind_of(oci_manifest_json, strlen(oci_manifest_json), NULL, &kind, &err), 0);
	assert_int_equal(kind, OCI_KIND_MANIFEST);
	if (oci_manifest_parse(oci_manifest_json, strlen(oci_manifest_json), &m, &err) < 0)
		fail_msg("%s", err.message);
	assert_string_equal(m.config.media_type, OCI_MEDIA_CONFIG);
	assert_string_equal(m.config.digest, DIG("c"));
	assert_int_equal(m.config.size, 1469);
	assert_int_equal(m.n_layers, 2);
	assert_string_equal(m.layers[0].media_type, OCI_MEDIA_LAYER_GZIP);
	assert_string_equal(m.layers[0].digest, DIG("1"));
	assert_int_equal(m.layers[0].size, 3623807);
	assert_null(m.layers[0].platform.os);
	assert_string_equal(m.layers[1].media_type, OCI_MEDIA_LAYER_ZSTD);
	assert_int_equal(m.layers[1].size, 0);
	oci_manifest_clear(&m);
	assert_null(m.layers);

	/* An image manifest is not an index. */
	oci_index idx;
	assert_int_equal(oci_index_parse(oci_manifest_json, strlen(oci_manifest_json), &idx, &err), -1);
	assert_non_null(strstr(err.message, "not an image index"));
	assert_null(idx.manifests);
}

static void test_docker_manifest(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	oci_manifest_kind kind = OCI_KIND_INDEX;
	oci_manifest m;

	assert_int_equal(oci_manifest_kind_of(docker_manifest, strlen(docker_manifest), NULL, &kind, &err), 0);
	assert_int_equal(kind, OCI_KIND_MANIFEST);
	assert_int_equal(oci_manifest_parse(docker_manifest, strlen(docker_manifest), &m, &err), 0);
	assert_string_equal(m.config.media_type, DOCKER_MEDIA_CONFIG);
	assert_int_equal(m.n_layers, 1);
	assert_string_equal(m.layers[0].media_type, DOCKER_MEDIA_LAYER_GZIP);
	assert_int_equal(m.layers[0].size, 2152262);
	assert_true(oci_layer_media_supported(m.layers[0].media_type));
	oci_manifest_clear(&m);
}

static void select_ok(const oci_index *idx, const char *platform, size_t want_index)
{
	capsa_error err = { 0 };
	oci_platform p;
	size_t got = 999;

	assert_int_equal(oci_platform_parse(platform, &p, &err), 0);
	if (oci_index_select(idx, &p, &got, &err) < 0)
		fail_msg("%s: %s", platform, err.message);
	assert_int_equal(got, want_index);
	oci_platform_clear(&p);
}

static void select_fails(const oci_index *idx, const char *platform, const char *message)
{
	capsa_error err = { 0 };
	oci_platform p;
	size_t got = 999;

	assert_int_equal(oci_platform_parse(platform, &p, &err), 0);
	assert_int_equal(oci_index_select(idx, &p, &got, &err), -1);
	assert_int_equal(err.code, ENOENT);
	if (!strstr(err.message, message))
		fail_msg("%s: message '%s' lacks '%s'", platform, err.message, message);
	assert_int_equal(got, 999);
	oci_platform_clear(&p);
}

static void test_oci_index(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	oci_manifest_kind kind = OCI_KIND_MANIFEST;
	oci_index idx;
	size_t i = 999;

	assert_int_equal(oci_manifest_kind_of(oci_index_json, strlen(oci_index_json), NULL, &kind, &err), 0);
	assert_int_equal(kind, OCI_KIND_INDEX);
	if (oci_index_parse(oci_index_json, strlen(oci_index_json), &idx, &err) < 0)
		fail_msg("%s", err.message);
	assert_int_equal(idx.n_manifests, 3);
	assert_string_equal(idx.manifests[1].platform.os, "linux");
	assert_string_equal(idx.manifests[1].platform.architecture, "arm64");
	assert_string_equal(idx.manifests[1].platform.variant, "v8");
	assert_null(idx.manifests[0].platform.variant);

	assert_int_equal(oci_index_select(&idx, NULL, &i, &err), 0);
	assert_int_equal(i, 0);
	select_ok(&idx, "linux/amd64", 0);
	select_ok(&idx, "linux/arm64", 1);
	select_ok(&idx, "linux/arm64/v8", 1);
	select_ok(&idx, "linux/aarch64", 1);
	select_fails(&idx, "linux/arm64/v9", "linux/arm64/v9; it offers: linux/amd64, linux/arm64/v8");
	/* The attestation is never picked, nor offered. */
	select_fails(&idx, "unknown/unknown", "it offers: linux/amd64, linux/arm64/v8");
	select_fails(&idx, "linux/s390x", "no manifest for platform linux/s390x");

	/* An index is not an image manifest. */
	oci_manifest m;
	assert_int_equal(oci_manifest_parse(oci_index_json, strlen(oci_index_json), &m, &err), -1);
	assert_non_null(strstr(err.message, "not an image manifest"));
	oci_index_clear(&idx);
	assert_null(idx.manifests);
}

static void test_docker_list(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	oci_manifest_kind kind = OCI_KIND_MANIFEST;
	oci_index idx;

	assert_int_equal(oci_manifest_kind_of(docker_list, strlen(docker_list), NULL, &kind, &err), 0);
	assert_int_equal(kind, OCI_KIND_INDEX);
	assert_int_equal(oci_index_parse(docker_list, strlen(docker_list), &idx, &err), 0);
	assert_int_equal(idx.n_manifests, 5);
	select_ok(&idx, "linux/amd64", 0);
	select_ok(&idx, "linux/arm", 1);       /* without a variant: the first arm entry */
	select_ok(&idx, "linux/arm/v7", 2);
	select_ok(&idx, "linux/arm/v6", 1);
	select_ok(&idx, "linux/arm64", 3);
	select_ok(&idx, "linux/s390x", 4);
	select_fails(&idx, "linux/arm/v5",
		     "it offers: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8, linux/s390x");
	select_fails(&idx, "windows/amd64", "windows/amd64");
	oci_index_clear(&idx);

	/* An empty index offers nothing. */
	static const char empty[] = "{\"schemaVersion\":2,\"manifests\":[]}";
	size_t i;
	assert_int_equal(oci_index_parse(empty, strlen(empty), &idx, &err), 0);
	assert_int_equal(oci_index_select(&idx, NULL, &i, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.message, "no platforms"));
	oci_index_clear(&idx);
}

static void test_index_without_platforms(void **state)
{
	(void)state;
	/* OCI layouts often list manifests without a platform: never a match. */
	static const char json[] = "{\"schemaVersion\":2,\"manifests\":[" DESC(OCI_MEDIA_MANIFEST, DIG("a"), 10) ","
				   DESC(OCI_MEDIA_INDEX, DIG("b"), 10) "]}";
	capsa_error err = { 0 };
	oci_index idx;
	size_t i;

	assert_int_equal(oci_index_parse(json, strlen(json), &idx, &err), 0);
	assert_int_equal(oci_index_select(&idx, NULL, &i, &err), -1);
	assert_non_null(strstr(err.message, "it offers: (unspecified)"));
	oci_index_clear(&idx);
}

struct kind_case {
	const char *json;
	const char *content_type;
	int ret;
	oci_manifest_kind kind;
	int code;
	const char *message_part;
};

static const struct kind_case kind_cases[] = {
	{ "{\"schemaVersion\":2,\"config\":{},\"layers\":[]}", OCI_MEDIA_MANIFEST, 0, OCI_KIND_MANIFEST, 0, NULL },
	{ "{\"schemaVersion\":2}", OCI_MEDIA_INDEX, 0, OCI_KIND_INDEX, 0, NULL },
	{ "{\"schemaVersion\":2}", " " DOCKER_MEDIA_MANIFEST_LIST " ; charset=utf-8", 0, OCI_KIND_INDEX, 0, NULL },
	{ "{\"schemaVersion\":2}", "Application/VND.Docker.Distribution.Manifest.V2+JSON", 0, OCI_KIND_MANIFEST, 0,
	  NULL },
	/* The document's own mediaType wins over the header. */
	{ "{\"mediaType\":\"" OCI_MEDIA_INDEX "\"}", DOCKER_MEDIA_MANIFEST, 0, OCI_KIND_INDEX, 0, NULL },
	/* Shapes, when neither says. */
	{ "{\"schemaVersion\":2,\"manifests\":[]}", "application/json", 0, OCI_KIND_INDEX, 0, NULL },
	{ "{\"schemaVersion\":2,\"layers\":[]}", NULL, 0, OCI_KIND_MANIFEST, 0, NULL },
	{ "{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}", NULL, -1, 0, ENOTSUP, "schema 1" },
	{ "{\"name\":\"x\",\"fsLayers\":[]}", NULL, -1, 0, ENOTSUP, "re-push" },
	{ "{\"mediaType\":\"application/vnd.docker.distribution.manifest.v1+prettyjws\"}", NULL, -1, 0, ENOTSUP,
	  "schema 1" },
	{ "{}", "application/vnd.docker.distribution.manifest.v1+prettyjws", -1, 0, ENOTSUP, "schema 1" },
	{ "{\"mediaType\":\"application/vnd.oci.artifact.manifest.v1+json\"}", NULL, -1, 0, ENOTSUP,
	  "unsupported manifest media type" },
	{ "{\"mediaType\":7}", NULL, -1, 0, EINVAL, "must be a string" },
	{ "{\"schemaVersion\":2}", "text/plain", -1, 0, EPROTO, "neither an image manifest nor an image index" },
	{ "[1]", NULL, -1, 0, EINVAL, "not a JSON object" },
	{ "<html>", NULL, -1, 0, EINVAL, "not valid JSON" },
};

static void test_kind_detection(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(kind_cases) / sizeof(kind_cases[0]); i++) {
		const struct kind_case *c = &kind_cases[i];
		capsa_error err = { 0 };
		oci_manifest_kind kind = 99;
		int ret = oci_manifest_kind_of(c->json, strlen(c->json), c->content_type, &kind, &err);

		if (ret != c->ret)
			fail_msg("case %zu (%s): returned %d: %s", i, c->json, ret, err.message);
		if (ret == 0) {
			assert_int_equal(kind, c->kind);
			continue;
		}
		assert_int_equal(err.code, c->code);
		if (!strstr(err.message, c->message_part))
			fail_msg("case %zu: message '%s' lacks '%s'", i, err.message, c->message_part);
	}
}

struct malformed_case {
	const char *json;
	int code;
	const char *message_part;
};

#define M_CONFIG DESC(OCI_MEDIA_CONFIG, DIG("c"), 2)
#define M_LAYER DESC(OCI_MEDIA_LAYER_GZIP, DIG("1"), 3)
#define MANIFEST_WITH(config, layers) "{\"schemaVersion\":2,\"config\":" config ",\"layers\":" layers "}"
#define MANIFEST_LAYER(layer) MANIFEST_WITH(M_CONFIG, "[" layer "]")

static const struct malformed_case malformed_manifests[] = {
	{ "hello", EINVAL, "not valid JSON" },
	{ "", EINVAL, "not valid JSON" },
	{ "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_MEDIA_CONFIG "\",\"dig", EINVAL, "not valid JSON" },
	{ "[]", EINVAL, "not a JSON object" },
	{ "null", EINVAL, "not" },
	{ "{\"config\":" M_CONFIG ",\"layers\":[]}", EINVAL, "no \"schemaVersion\"" },
	{ "{\"schemaVersion\":\"2\",\"config\":" M_CONFIG ",\"layers\":[]}", EINVAL, "unsupported schemaVersion" },
	{ "{\"schemaVersion\":3,\"config\":" M_CONFIG ",\"layers\":[]}", EINVAL, "unsupported schemaVersion" },
	{ "{\"schemaVersion\":1,\"fsLayers\":[]}", ENOTSUP, "schema 1" },
	{ "{\"schemaVersion\":2,\"mediaType\":5,\"config\":" M_CONFIG ",\"layers\":[]}", EINVAL, "must be a string" },
	{ "{\"schemaVersion\":2,\"mediaType\":\"" DOCKER_MEDIA_MANIFEST_LIST "\",\"config\":" M_CONFIG
	  ",\"layers\":[]}", EINVAL, "not an image manifest" },
	{ "{\"schemaVersion\":2,\"layers\":[]}", EINVAL, "no \"config\"" },
	{ MANIFEST_WITH("\"config\"", "[]"), EINVAL, "manifest config: descriptor is not a JSON object" },
	{ MANIFEST_WITH(DESC("application/vnd.cncf.helm.config.v1+json", DIG("c"), 2), "[]"), ENOTSUP,
	  "not a container image" },
	{ "{\"schemaVersion\":2,\"config\":" M_CONFIG "}", EINVAL, "no \"layers\" array" },
	{ MANIFEST_WITH(M_CONFIG, "{}"), EINVAL, "no \"layers\" array" },
	{ MANIFEST_WITH(M_CONFIG, "null"), EINVAL, "no \"layers\" array" },
	{ MANIFEST_LAYER("7"), EINVAL, "layers[0]: descriptor is not a JSON object" },
	{ MANIFEST_LAYER(M_LAYER "," DESC(OCI_MEDIA_LAYER_GZIP, "sha256:1234", 3)), EINVAL,
	  "layers[1]: 'sha256:1234' is not a digest" },
	{ MANIFEST_LAYER(DESC(OCI_MEDIA_LAYER_GZIP, "sha256:" R8(R8("A")), 3)), EINVAL, "is not a digest" },
	{ MANIFEST_LAYER(DESC(OCI_MEDIA_LAYER_GZIP, "sha512:" R8(R8("a")), 3)), ENOTSUP, "unsupported algorithm" },
	{ MANIFEST_LAYER(DESC(OCI_MEDIA_LAYER_GZIP, "", 3)), EINVAL, "is not a digest" },
	{ MANIFEST_LAYER(DESC(OCI_MEDIA_LAYER_GZIP, DIG("1"), -1)), EINVAL, "\"size\" is negative (-1)" },
	{ MANIFEST_LAYER(DESC(OCI_MEDIA_LAYER_GZIP, DIG("1"), 1.5)), EINVAL, "\"size\" must be an integer" },
	{ MANIFEST_LAYER(DESC(OCI_MEDIA_LAYER_GZIP, DIG("1"), "3")), EINVAL, "\"size\" must be an integer" },
	{ MANIFEST_LAYER(DESC(OCI_MEDIA_LAYER_GZIP, DIG("1"), 1e30)), EINVAL, "\"size\" must be an integer" },
	{ MANIFEST_LAYER(DESC(OCI_MEDIA_LAYER_GZIP, DIG("1"), 99999999999999999999)), EINVAL, "not valid JSON" },
	{ MANIFEST_LAYER("{\"mediaType\":\"" OCI_MEDIA_LAYER_GZIP "\",\"digest\":\"" DIG("1") "\"}"), EINVAL,
	  "\"size\" must be an integer" },
	{ MANIFEST_LAYER("{\"digest\":\"" DIG("1") "\",\"size\":1}"), EINVAL, "required field \"mediaType\"" },
	{ MANIFEST_LAYER("{\"mediaType\":1,\"digest\":\"" DIG("1") "\",\"size\":1}"), EINVAL,
	  "field \"mediaType\" must be a string" },
	{ MANIFEST_LAYER("{\"mediaType\":\"x\",\"size\":1}"), EINVAL, "required field \"digest\"" },
	{ MANIFEST_LAYER("{\"mediaType\":\"x\",\"digest\":null,\"size\":1}"), EINVAL, "required field \"digest\"" },
	{ MANIFEST_LAYER("{\"mediaType\":\"x\",\"mediaType\":\"y\",\"digest\":\"" DIG("1") "\",\"size\":1}"),
	  EINVAL, "duplicate" },
	{ MANIFEST_LAYER("{\"mediaType\":\"x\\u0000y\",\"digest\":\"" DIG("1") "\",\"size\":1}"), EINVAL,
	  "not valid JSON" },
};

static void check_malformed(const char *json, size_t len, int code, const char *message_part, size_t i)
{
	capsa_error err = { 0 };
	oci_manifest m;

	if (oci_manifest_parse(json, len, &m, &err) == 0)
		fail_msg("case %zu accepted: %.200s", i, json);
	assert_int_equal(err.code, code);
	if (!strstr(err.message, message_part))
		fail_msg("case %zu: message '%s' lacks '%s'", i, err.message, message_part);
	assert_null(strchr(err.message, '\n'));
	assert_null(m.layers);
	assert_null(m.config.digest);
	assert_int_equal(m.n_layers, 0);
}

static void test_malformed_manifests(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(malformed_manifests) / sizeof(malformed_manifests[0]); i++)
		check_malformed(malformed_manifests[i].json, strlen(malformed_manifests[i].json),
				malformed_manifests[i].code, malformed_manifests[i].message_part, i);
	/* Every prefix of a good manifest is truncated JSON. */
	for (size_t len = 0; len < strlen(docker_manifest); len++)
		check_malformed(docker_manifest, len, EINVAL, "not valid JSON", 1000 + len);
}

/* A manifest with n copies of one layer. */
static char *manifest_with_layers(size_t n)
{
	static const char head[] = "{\"schemaVersion\":2,\"config\":" M_CONFIG ",\"layers\":[";
	static const char layer[] = M_LAYER;
	size_t size = sizeof(head) + n * sizeof(layer) + 4;
	char *json = malloc(size);
	if (!json)
		abort();
	char *p = json + sprintf(json, "%s", head);
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i ? "," : "", layer);
	strcpy(p, "]}");
	return json;
}

static void test_limits(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	oci_manifest m;

	char *json = manifest_with_layers(OCI_MAX_LAYERS);
	assert_int_equal(oci_manifest_parse(json, strlen(json), &m, &err), 0);
	assert_int_equal(m.n_layers, OCI_MAX_LAYERS);
	oci_manifest_clear(&m);
	free(json);

	json = manifest_with_layers(OCI_MAX_LAYERS + 1);
	assert_int_equal(oci_manifest_parse(json, strlen(json), &m, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_non_null(strstr(err.message, "1025 layers, more than the 1024 allowed"));
	free(json);

	/* Too large is refused before parsing. */
	size_t big = OCI_MANIFEST_MAX_BYTES + 1;
	json = malloc(big);
	assert_non_null(json);
	memset(json, ' ', big);
	memcpy(json, docker_manifest, strlen(docker_manifest));
	assert_int_equal(oci_manifest_parse(json, big, &m, &err), -1);
	assert_int_equal(err.code, EFBIG);
	oci_manifest_kind kind;
	assert_int_equal(oci_manifest_kind_of(json, big, NULL, &kind, &err), -1);
	assert_int_equal(err.code, EFBIG);
	/* Trailing whitespace under the cap is fine. */
	assert_int_equal(oci_manifest_parse(json, big - 1, &m, &err), 0);
	oci_manifest_clear(&m);
	free(json);
}

static const struct malformed_case malformed_indexes[] = {
	{ "{\"schemaVersion\":2}", EINVAL, "no \"manifests\" array" },
	{ "{\"schemaVersion\":2,\"manifests\":{}}", EINVAL, "no \"manifests\" array" },
	{ "{\"manifests\":[]}", EINVAL, "no \"schemaVersion\"" },
	{ "{\"schemaVersion\":2,\"manifests\":[" PDESC(OCI_MEDIA_MANIFEST, DIG("a"), 1, "\"linux/amd64\"") "]}",
	  EINVAL, "index manifests[0]: field \"platform\" must be an object" },
	{ "{\"schemaVersion\":2,\"manifests\":[" PDESC(OCI_MEDIA_MANIFEST, DIG("a"), 1, "{\"os\":\"linux\"}") "]}",
	  EINVAL, "platform: required field \"architecture\"" },
	{ "{\"schemaVersion\":2,\"manifests\":[" PDESC(OCI_MEDIA_MANIFEST, DIG("a"), 1,
	  "{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":7}") "]}", EINVAL, "\"variant\" must be a string" },
	{ "{\"schemaVersion\":2,\"manifests\":[" DESC(OCI_MEDIA_MANIFEST, "sha256:zz", 1) "]}", EINVAL,
	  "is not a digest" },
	{ "{\"schemaVersion\":2,\"manifests\":[" DESC(OCI_MEDIA_MANIFEST, DIG("a"), -5) "]}", EINVAL, "negative" },
	{ "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MEDIA_MANIFEST "\",\"manifests\":[]}", EINVAL,
	  "not an image index" },
	{ "{\"schemaVersion\":2,\"manifests\":[", EINVAL, "not valid JSON" },
};

static void test_malformed_indexes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(malformed_indexes) / sizeof(malformed_indexes[0]); i++) {
		const struct malformed_case *c = &malformed_indexes[i];
		capsa_error err = { 0 };
		oci_index idx;

		if (oci_index_parse(c->json, strlen(c->json), &idx, &err) == 0)
			fail_msg("case %zu accepted", i);
		assert_int_equal(err.code, c->code);
		if (!strstr(err.message, c->message_part))
			fail_msg("case %zu: message '%s' lacks '%s'", i, err.message, c->message_part);
		assert_null(idx.manifests);
		assert_int_equal(idx.n_manifests, 0);
	}
}

static void test_platforms(void **state)
{
	(void)state;
	static const struct {
		const char *text, *os, *arch, *variant;
	} good[] = {
		{ "linux/amd64", "linux", "amd64", NULL },
		{ "linux/arm64/v8", "linux", "arm64", "v8" },
		{ "Linux/X86_64", "linux", "amd64", NULL },
		{ "linux/aarch64", "linux", "arm64", NULL },
		{ "linux/ppc64le", "linux", "ppc64le", NULL },
		{ "windows/amd64", "windows", "amd64", NULL },
	};
	static const char *const bad[] = { "", "linux", "linux/", "/amd64", "linux//amd64", "linux/amd64/",
					   "linux/arm/v7/x", "linux amd64", "linux/amd64\n", "linux/am:d64" };
	capsa_error err = { 0 };
	oci_platform p;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (oci_platform_parse(good[i].text, &p, &err) < 0)
			fail_msg("%s: %s", good[i].text, err.message);
		assert_string_equal(p.os, good[i].os);
		assert_string_equal(p.architecture, good[i].arch);
		if (good[i].variant)
			assert_string_equal(p.variant, good[i].variant);
		else
			assert_null(p.variant);
		oci_platform_clear(&p);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (oci_platform_parse(bad[i], &p, &err) == 0)
			fail_msg("'%s' accepted", bad[i]);
		assert_int_equal(err.code, EINVAL);
		assert_non_null(strstr(err.message, "is not a platform"));
		assert_null(strchr(err.message, '\n'));
		assert_null(p.os);
		assert_null(p.architecture);
	}
	oci_platform_default(&p);
	assert_string_equal(p.os, "linux");
	assert_string_equal(p.architecture, "amd64");
	assert_null(p.variant);
}

static void test_layer_media(void **state)
{
	(void)state;
	assert_true(oci_layer_media_supported(OCI_MEDIA_LAYER_TAR));
	assert_true(oci_layer_media_supported(OCI_MEDIA_LAYER_GZIP));
	assert_true(oci_layer_media_supported(OCI_MEDIA_LAYER_ZSTD));
	assert_true(oci_layer_media_supported(DOCKER_MEDIA_LAYER_GZIP));
	assert_true(oci_layer_media_supported("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"));
	assert_true(oci_layer_media_supported("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"));
	assert_false(oci_layer_media_supported("application/vnd.oci.image.layer.v1.tar+bzip2"));
	assert_false(oci_layer_media_supported("application/vnd.in-toto+json"));
	assert_false(oci_layer_media_supported(""));
	assert_false(oci_layer_media_supported(NULL));
}

static void test_descriptor_copy(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	oci_index idx;
	oci_descriptor d;

	assert_int_equal(oci_index_parse(oci_index_json, strlen(oci_index_json), &idx, &err), 0);
	assert_int_equal(oci_descriptor_copy(&d, &idx.manifests[1], &err), 0);
	oci_index_clear(&idx);
	assert_string_equal(d.media_type, OCI_MEDIA_MANIFEST);
	assert_string_equal(d.digest, DIG("b"));
	assert_int_equal(d.size, 1235);
	assert_string_equal(d.platform.os, "linux");
	assert_string_equal(d.platform.architecture, "arm64");
	assert_string_equal(d.platform.variant, "v8");
	oci_descriptor_clear(&d);
	assert_null(d.digest);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oci_manifest),
		cmocka_unit_test(test_docker_manifest),
		cmocka_unit_test(test_oci_index),
		cmocka_unit_test(test_docker_list),
		cmocka_unit_test(test_index_without_platforms),
		cmocka_unit_test(test_kind_detection),
		cmocka_unit_test(test_malformed_manifests),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_malformed_indexes),
		cmocka_unit_test(test_platforms),
		cmocka_unit_test(test_layer_media),
		cmocka_unit_test(test_descriptor_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
