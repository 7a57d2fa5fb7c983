#include "oci/reference.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oci/digest.h"
#include "oci/json_util.h"
#include "util/error.h"

#define TAG_MAX 128
#define PORT_MAX 65535

/* Other names Docker Hub is reached by; docker writes them all as docker.io. */
static const char *const hub_aliases[] = { OCI_DOCKER_HUB, "index.docker.io", OCI_DOCKER_HUB_API_HOST };

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_word_char(char c)
{
	return isascii((unsigned char)c) && (isalnum((unsigned char)c) || c == '_');
}

static bool is_tag(const char *s, size_t len)
{
	if (len == 0 || len > TAG_MAX || !is_word_char(s[0]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!is_word_char(s[i]) && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

/* One label of a host name: [A-Za-z0-9] or [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]. */
static bool is_host_label(const char *s, size_t len)
{
	if (len == 0 || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isascii((unsigned char)s[i]) || (!isalnum((unsigned char)s[i]) && s[i] != '-'))
			return false;
	return true;
}

static bool is_host(const char *s, size_t len)
{
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']')
		return len > 2 && strspn(s + 1, "0123456789abcdefABCDEF:") == len - 2;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (!is_host_label(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

static bool is_port(const char *s, size_t len)
{
	if (len == 0 || len > 5 || strspn(s, "0123456789") < len)
		return false;
	unsigned long port = strtoul(s, NULL, 10);
	return port >= 1 && port <= PORT_MAX;
}

/* host[:port]; an IPv6 host is bracketed, so its port follows "]:". */
static bool is_registry(const char *s, size_t len)
{
	const char *colon = NULL;
	const char *close = memchr(s, ']', len);
	const char *from = close ? close : s;

	colon = memchr(from, ':', len - (size_t)(from - s));
	if (!colon)
		return is_host(s, len);
	size_t host_len = (size_t)(colon - s);
	return is_host(s, host_len) && is_port(colon + 1, len - host_len - 1);
}

/* A path component: runs of [a-z0-9] joined by '.', '_', '__' or any run
 * of '-'. Returns NULL when valid, else what is wrong with it. */
static const char *path_component_problem(const char *s, size_t len)
{
	if (len == 0)
		return "has an empty path component";
	for (size_t i = 0; i < len; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			return "must be lowercase";
	if (!is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
		return "has a path component that does not start and end with a letter or digit";
	for (size_t i = 1; i < len;) {
		if (is_lower_alnum(s[i])) {
			i++;
			continue;
		}
		size_t run = i;
		while (run < len && !is_lower_alnum(s[run]))
			run++;
		size_t sep_len = run - i;
		bool dashes = strspn(s + i, "-") >= sep_len;
		bool ok = dashes || (sep_len == 1 && (s[i] == '.' || s[i] == '_')) ||
			  (sep_len == 2 && s[i] == '_' && s[i + 1] == '_');
		if (!ok)
			return "may only contain [a-z0-9] separated by '.', '_', '__' or '-'";
		i = run;
	}
	return NULL;
}

static int check_repository(const char *text, const char *repo, size_t len, capsa_error *err)
{
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && repo[i] != '/')
			continue;
		const char *problem = path_component_problem(repo + start, i - start);
		if (problem)
			return error_set(err, EINVAL, "invalid image reference '%.300s': repository '%.*s' %s", text,
					 (int)(len > 300 ? 300 : len), repo, problem);
		start = i + 1;
	}
	return 0;
}

/* The first path component is a registry when it looks like a host name
 * ("a.b", "host:port") or is "localhost"; otherwise the name is on Hub. */
static bool first_component_is_registry(const char *name, size_t len)
{
	return memchr(name, '.', len) || memchr(name, ':', len) || (len == 9 && !memcmp(name, "localhost", 9));
}

static bool is_hub(const char *registry, size_t len)
{
	for (size_t i = 0; i < sizeof(hub_aliases) / sizeof(hub_aliases[0]); i++)
		if (strlen(hub_aliases[i]) == len && !strncasecmp(registry, hub_aliases[i], len))
			return true;
	return false;
}

static bool is_image_id(const char *text)
{
	return strlen(text) == OCI_DIGEST_HEX_LEN && strspn(text, "0123456789abcdef") == OCI_DIGEST_HEX_LEN;
}

/* Splits the first name_len bytes of text, "name[:tag]" without the
 * digest, and validates the parts. */
static int parse_name(const char *text, size_t name_len, oci_reference *ref, capsa_error *err)
{
	const char *name = text;

	/* A ':' after the last '/' starts the tag; an earlier one is a port. */
	const char *slash = memrchr(name, '/', name_len);
	const char *after_slash = slash ? slash + 1 : name;
	const char *colon = memchr(after_slash, ':', name_len - (size_t)(after_slash - name));
	if (colon) {
		size_t tag_len = name_len - (size_t)(colon + 1 - name);
		if (!is_tag(colon + 1, tag_len))
			return error_set(err, EINVAL,
					 "invalid image reference '%.300s': bad tag '%.*s' (expected up to 128 of "
					 "[A-Za-z0-9_.-], not starting with '.' or '-')",
					 text, (int)(tag_len > 200 ? 200 : tag_len), colon + 1);
		ref->tag = strndup(colon + 1, tag_len);
		if (!ref->tag)
			return error_set_errno(err, ENOMEM, "parsing image reference");
		name_len = (size_t)(colon - name);
	}
	if (name_len == 0)
		return error_set(err, EINVAL, "invalid image reference '%.300s': the repository name is empty", text);

	const char *repo = name;
	size_t repo_len = name_len;
	const char *first_slash = memchr(name, '/', name_len);
	bool hub = true;
	if (first_slash && first_component_is_registry(name, (size_t)(first_slash - name))) {
		size_t reg_len = (size_t)(first_slash - name);
		if (!is_registry(name, reg_len))
			return error_set(err, EINVAL,
					 "invalid image reference '%.300s': bad registry '%.*s' (expected host[:port])",
					 text, (int)(reg_len > 300 ? 300 : reg_len), name);
		hub = is_hub(name, reg_len);
		if (!hub)
			ref->registry = strndup(name, reg_len);
		repo = first_slash + 1;
		repo_len = name_len - reg_len - 1;
	}
	if (check_repository(text, repo, repo_len, err) < 0)
		return -1;

	if (hub) {
		ref->registry = strdup(OCI_DOCKER_HUB);
		/* Official images live under library/ on Hub. */
		bool official = !memchr(repo, '/', repo_len);
		if (asprintf(&ref->repository, "%s%.*s", official ? "library/" : "", (int)repo_len, repo) < 0)
			ref->repository = NULL;
	} else {
		ref->repository = strndup(repo, repo_len);
	}
	if (!ref->registry || !ref->repository)
		return error_set_errno(err, ENOMEM, "parsing image reference");
	return 0;
}

static int parse(const char *text, oci_reference *ref, capsa_error *err)
{
	if (!text || !*text)
		return error_set(err, EINVAL, "empty image reference");
	size_t len = strlen(text);
	if (len > OCI_REFERENCE_MAX)
		return error_set(err, EINVAL, "image reference '%.60s...' is longer than %d characters", text,
				 OCI_REFERENCE_MAX);
	if (is_image_id(text))
		return error_set(err, EINVAL,
				 "'%s' looks like an image ID, not a reference; use name@sha256:<digest> instead", text);

	const char *at = strchr(text, '@');
	size_t name_len = at ? (size_t)(at - text) : len;
	if (at) {
		if (oci_digest_validate(at + 1, err) < 0) {
			if (err)
				err->code = EINVAL;
			return error_prefix(err, "invalid image reference '%.300s': bad digest", text);
		}
		ref->digest = strdup(at + 1);
		if (!ref->digest)
			return error_set_errno(err, ENOMEM, "parsing image reference");
	}
	if (parse_name(text, name_len, ref, err) < 0)
		return -1;
	if (!ref->tag && !ref->digest) {
		ref->tag = strdup(OCI_DEFAULT_TAG);
		if (!ref->tag)
			return error_set_errno(err, ENOMEM, "parsing image reference");
	}
	return 0;
}

int oci_reference_parse(const char *text, oci_reference *ref, capsa_error *err)
{
	memset(ref, 0, sizeof(*ref));
	if (parse(text, ref, err) < 0) {
		oci_reference_clear(ref);
		return -1;
	}
	return 0;
}

void oci_reference_clear(oci_reference *ref)
{
	free(ref->registry);
	free(ref->repository);
	free(ref->tag);
	free(ref->digest);
	memset(ref, 0, sizeof(*ref));
}

char *oci_reference_format(const oci_reference *ref, capsa_error *err)
{
	char *s;

	if (asprintf(&s, "%s/%s%s%s%s%s", ref->registry, ref->repository, ref->tag ? ":" : "",
		     ref->tag ? ref->tag : "", ref->digest ? "@" : "", ref->digest ? ref->digest : "") < 0) {
		error_set_errno(err, ENOMEM, "formatting image reference");
		return NULL;
	}
	return s;
}

char *oci_reference_name(const oci_reference *ref, capsa_error *err)
{
	char *s;

	if (asprintf(&s, "%s/%s", ref->registry, ref->repository) < 0) {
		error_set_errno(err, ENOMEM, "formatting image name");
		return NULL;
	}
	return s;
}

const char *oci_reference_api_host(const oci_reference *ref)
{
	return strcmp(ref->registry, OCI_DOCKER_HUB) == 0 ? OCI_DOCKER_HUB_API_HOST : ref->registry;
}
