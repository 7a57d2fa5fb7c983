#include "util/strv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

void strv_clear(struct strv *v)
{
	for (size_t i = 0; i < v->count; i++)
		free(v->items[i]);
	free(v->items);
	v->items = NULL;
	v->count = 0;
}

int strv_push(struct strv *v, const char *s, capsa_error *err)
{
	if (v->count >= STRV_MAX_ITEMS)
		return error_set(err, E2BIG, "too many entries (the limit is %d)", STRV_MAX_ITEMS);
	char **items = realloc(v->items, (v->count + 2) * sizeof(*items));
	if (!items)
		return error_set(err, ENOMEM, "out of memory");
	v->items = items;
	v->items[v->count] = strdup(s);
	if (!v->items[v->count])
		return error_set(err, ENOMEM, "out of memory");
	v->items[++v->count] = NULL;
	return 0;
}

int strv_push_all(struct strv *v, const char *const *list, capsa_error *err)
{
	for (size_t i = 0; list && list[i]; i++)
		if (strv_push(v, list[i], err) < 0)
			return -1;
	return 0;
}

int strv_set_env(struct strv *v, const char *key_value, capsa_error *err)
{
	const char *eq = key_value ? strchr(key_value, '=') : NULL;
	if (!eq || eq == key_value)
		return error_set(err, EINVAL, "environment entry '%s' is not of the form KEY=VALUE",
				 key_value ? key_value : "");
	size_t key_len = (size_t)(eq - key_value) + 1;
	for (size_t i = 0; i < v->count; i++) {
		if (strncmp(v->items[i], key_value, key_len) == 0) {
			char *copy = strdup(key_value);
			if (!copy)
				return error_set(err, ENOMEM, "out of memory");
			free(v->items[i]);
			v->items[i] = copy;
			return 0;
		}
	}
	return strv_push(v, key_value, err);
}
