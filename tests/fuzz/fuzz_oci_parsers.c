/* libFuzzer target: what a hostile registry, archive or user can hand the
 * OCI parsers. The first input byte picks the parser (image reference,
 * manifest/index with kind detection and platform selection, image
 * config, WWW-Authenticate header, platform string); the rest is its
 * input. Nothing may crash, leak, or produce a multi-line error message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/image_config.h"
#include "oci/manifest.h"
#include "oci/reference.h"
#include "oci/www_auth.h"

enum { PARSE_REFERENCE, PARSE_MANIFEST, PARSE_IMAGE_CONFIG, PARSE_WWW_AUTH, PARSE_PLATFORM, PARSER_COUNT };

static void check_message(const capsa_error *err)
{
	if (strchr(err->message, '\n') || err->code == 0)
		abort();
}

static void fuzz_reference(const char *text)
{
	capsa_error err = { 0 };
	oci_reference ref;

	if (oci_reference_parse(text, &ref, &err) < 0) {
		check_message(&err);
		return;
	}
	/* The canonical form must parse back to the same reference. */
	char *full = oci_reference_format(&ref, &err);
	char *name = oci_reference_name(&ref, &err);
	oci_reference again;
	if (!full || !name || !oci_reference_api_host(&ref))
		abort();
	if (strlen(full) <= OCI_REFERENCE_MAX) {
		if (oci_reference_parse(full, &again, &err) < 0)
			abort();
		char *full2 = oci_reference_format(&again, &err);
		if (!full2 || strcmp(full, full2))
			abort();
		free(full2);
		oci_reference_clear(&again);
	}
	free(full);
	free(name);
	oci_reference_clear(&ref);
}

static void fuzz_manifest(const char *json, size_t len)
{
	capsa_error err = { 0 };
	oci_manifest_kind kind;
	/* The Content-Type a registry might send along, to reach that path too. */
	const char *content_type = len && (json[0] & 1) ? OCI_MEDIA_INDEX : NULL;

	if (oci_manifest_kind_of(json, len, content_type, &kind, &err) < 0)
		check_message(&err);

	oci_manifest m;
	if (oci_manifest_parse(json, len, &m, &err) == 0) {
		for (size_t i = 0; i < m.n_layers; i++)
			(void)oci_layer_media_supported(m.layers[i].media_type);
		oci_manifest_clear(&m);
	} else {
		check_message(&err);
	}

	oci_index idx;
	if (oci_index_parse(json, len, &idx, &err) < 0) {
		check_message(&err);
		return;
	}
	size_t chosen;
	oci_platform arm = { .os = (char *)"linux", .architecture = (char *)"arm", .variant = (char *)"v7" };
	if (oci_index_select(&idx, NULL, &chosen, &err) == 0) {
		oci_descriptor copy;
		if (chosen >= idx.n_manifests || oci_descriptor_copy(&copy, &idx.manifests[chosen], &err) < 0)
			abort();
		oci_descriptor_clear(&copy);
	} else {
		check_message(&err);
	}
	if (oci_index_select(&idx, &arm, &chosen, &err) < 0)
		check_message(&err);
	oci_index_clear(&idx);
}

static void fuzz_image_config(const char *json, size_t len)
{
	capsa_error err = { 0 };
	oci_image_config c;

	if (oci_image_config_parse(json, len, &c, &err) < 0) {
		check_message(&err);
		return;
	}
	oci_image_config_clear(&c);
}

static void fuzz_www_auth(const char *header)
{
	capsa_error err = { 0 };
	www_auth_challenge ch;

	if (www_auth_parse(header, &ch, &err) < 0) {
		check_message(&err);
		return;
	}
	if (ch.scheme == WWW_AUTH_BEARER && !ch.realm)
		abort();
	www_auth_clear(&ch);
}

static void fuzz_platform(const char *text)
{
	capsa_error err = { 0 };
	oci_platform p;

	if (oci_platform_parse(text, &p, &err) < 0) {
		check_message(&err);
		return;
	}
	oci_platform_clear(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned parser = data[0] % PARSER_COUNT;
	/* The string parsers take C strings: copy with a terminator, so a read
	 * past the input is still caught by ASan. */
	char *text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';

	switch (parser) {
	case PARSE_REFERENCE:
		fuzz_reference(text);
		break;
	case PARSE_MANIFEST:
		fuzz_manifest(text, size - 1);
		break;
	case PARSE_IMAGE_CONFIG:
		fuzz_image_config(text, size - 1);
		break;
	case PARSE_WWW_AUTH:
		fuzz_www_auth(text);
		break;
	case PARSE_PLATFORM:
		fuzz_platform(text);
		break;
	}
	free(text);
	return 0;
}
