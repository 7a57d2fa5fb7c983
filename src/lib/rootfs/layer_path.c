#include "rootfs/layer_path.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

char *layer_path_normalize(const char *path, capsa_error *err)
{
	char shown[128];
	size_t len = strnlen(path, LAYER_PATH_MAX + 1);

	if (len > LAYER_PATH_MAX) {
		error_set(err, EINVAL, "name '%s' is longer than %d bytes",
			  layer_path_printable(path, shown, sizeof(shown)), LAYER_PATH_MAX);
		return NULL;
	}
	/* The result is never longer than the input. */
	char *out = malloc(len + 1);
	if (!out) {
		error_set_errno(err, ENOMEM, "normalizing a name");
		return NULL;
	}
	size_t used = 0;
	for (const char *p = path; *p;) {
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			/* Back to the slash before the last component, or to the root. */
			while (used > 0 && out[used - 1] != '/')
				used--;
			if (used > 0)
				used--;
		} else if (n > LAYER_NAME_MAX) {
			error_set(err, EINVAL, "name '%s' has a component longer than %d bytes",
				  layer_path_printable(path, shown, sizeof(shown)), LAYER_NAME_MAX);
			free(out);
			return NULL;
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (used > 0)
				out[used++] = '/';
			memcpy(out + used, p, n);
			used += n;
		}
		p = *end ? end + 1 : end;
	}
	out[used] = '\0';
	return out;
}

const char *layer_path_printable(const char *s, char *buf, size_t size)
{
	size_t i = 0;

	if (size == 0)
		return "";
	for (; s[i] && i + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[i] = '\0';
	if (s[i] && size > 4)
		memcpy(buf + size - 4, "...", 4);
	return buf;
}
