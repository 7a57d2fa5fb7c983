/* Reading untrusted JSON documents (manifests, indexes, image configs)
 * with jansson: one place for the size cap, the parser flags and the
 * type-checked field getters, so every parser refuses the same things
 * with the same kind of message. */
#ifndef CAPSA_OCI_JSON_UTIL_H
#define CAPSA_OCI_JSON_UTIL_H

#include <stddef.h>

#include <jansson.h>

#include "capsa.h"

static inline void cleanup_json_decrefp(json_t **p)
{
	json_decref(*p);
}
#define _cleanup_json_ __attribute__((cleanup(cleanup_json_decrefp)))

/* Parses len bytes of json, which must be at most OCI_MANIFEST_MAX_BYTES
 * and hold a JSON object; what ("manifest", "image config") names the
 * document in messages. Returns a new reference, or NULL with EINVAL
 * (EFBIG when too large). */
json_t *json_parse_object(const char *json, size_t len, const char *what, capsa_error *err);

/* *out = a copy of the string field key of obj, or NULL when the field is
 * absent or null. Any other type fails with EINVAL. */
int json_get_string(const json_t *obj, const char *key, char **out, capsa_error *err);

/* Like json_get_string, but the field must be present and a string. */
int json_require_string(const json_t *obj, const char *key, char **out, capsa_error *err);

/* *out = a NULL-terminated copy of the array of strings in field key (an
 * empty array gives a vector holding only NULL), or NULL when the field is
 * absent or null. Fails with EINVAL on another type, on a non-string
 * element or on more than max elements. */
int json_get_string_array(const json_t *obj, const char *key, size_t max, char ***out, capsa_error *err);


/* Frees a NULL-terminated string vector and the strings in it. */
void oci_strv_free(char **v);

#endif
