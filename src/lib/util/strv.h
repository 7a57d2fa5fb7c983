/* Growable NULL-terminated string lists (argv, environments), capped so
 * that no input can make one grow without bound. */
#ifndef CAPSA_UTIL_STRV_H
#define CAPSA_UTIL_STRV_H

#include <stddef.h>

#include "capsa.h"

#define STRV_MAX_ITEMS 4096

/* items is NULL-terminated once anything was pushed; NULL when empty. */
struct strv {
	char **items;
	size_t count;
};

void strv_clear(struct strv *v);
/* Appends a copy of s. */
int strv_push(struct strv *v, const char *s, capsa_error *err);
/* Appends copies of a NULL-terminated list (NULL: nothing). */
int strv_push_all(struct strv *v, const char *const *list, capsa_error *err);
/* Sets "KEY=VALUE": replaces the entry with the same KEY, else appends.
 * EINVAL when the entry has no '=' or an empty KEY. */
int strv_set_env(struct strv *v, const char *key_value, capsa_error *err);

#endif
