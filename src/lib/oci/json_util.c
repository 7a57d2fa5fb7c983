#include "oci/json_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "oci/manifest.h"
#include "util/error.h"

json_t *json_parse_object(const char *json, size_t len, const char *what, capsa_error *err)
{
	json_error_t jerr;

	if (len > OCI_MANIFEST_MAX_BYTES) {
		error_set(err, EFBIG, "%s is %zu bytes, more than the %u allowed", what, len,
			  OCI_MANIFEST_MAX_BYTES);
		return NULL;
	}
	/* Duplicate keys are refused: two parsers reading the same (digest-
	 * verified) bytes must never see different values. */
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		error_set(err, EINVAL, "%s is not valid JSON: %s (line %d, column %d)", what, jerr.text,
			  jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		error_set(err, EINVAL, "%s is not a JSON object", what);
		return NULL;
	}
	return root;
}

int json_get_string(const json_t *obj, const char *key, char **out, capsa_error *err)
{
	const json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return error_set(err, EINVAL, "field \"%s\" must be a string", key);
	*out = strdup(json_string_value(v));
	if (!*out)
		return error_set_errno(err, ENOMEM, "copying field \"%s\"", key);
	return 0;
}

int json_require_string(const json_t *obj, const char *key, char **out, capsa_error *err)
{
	if (json_get_string(obj, key, out, err) < 0)
		return -1;
	if (!*out)
		return error_set(err, EINVAL, "required field \"%s\" is missing", key);
	return 0;
}

int json_get_string_array(const json_t *obj, const char *key, size_t max, char ***out, capsa_error *err)
{
	const json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return error_set(err, EINVAL, "field \"%s\" must be an array of strings", key);
	size_t n = json_array_size(v);
	if (n > max)
		return error_set(err, EINVAL, "field \"%s\" has %zu entries, more than the %zu allowed", key, n,
				 max);
	char **strv = calloc(n + 1, sizeof(*strv));
	if (!strv)
		return error_set_errno(err, ENOMEM, "copying field \"%s\"", key);
	for (size_t i = 0; i < n; i++) {
		const json_t *item = json_array_get(v, i);
		if (!json_is_string(item)) {
			oci_strv_free(strv);
			return error_set(err, EINVAL, "field \"%s\" must be an array of strings (entry %zu is not)",
					 key, i);
		}
		strv[i] = strdup(json_string_value(item));
		if (!strv[i]) {
			oci_strv_free(strv);
			return error_set_errno(err, ENOMEM, "copying field \"%s\"", key);
		}
	}
	*out = strv;
	return 0;
}

void oci_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}
