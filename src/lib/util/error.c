#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void format_into(char *buf, size_t size, const char *fmt, va_list ap)
{
	vsnprintf(buf, size, fmt, ap);
}

/* Messages quote untrusted text (registry replies, archive member names,
 * JSON parser errors): keep them one printable line whatever it holds. */
static void sanitize(char *message)
{
	for (char *p = message; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

int error_set(capsa_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	format_into(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	sanitize(err->message);
	err->code = code;
	return -1;
}

int error_set_errno(capsa_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return -1;
	char what[CAPSA_ERROR_MESSAGE_MAX];
	va_list ap;
	va_start(ap, fmt);
	format_into(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err->message, sizeof(err->message), "%.*s: %s", (int)(sizeof(what) - 64), what, strerror(code));
	sanitize(err->message);
	err->code = code;
	return -1;
}

int error_prefix(capsa_error *err, const char *fmt, ...)
{
	if (!err)
		return -1;
	char context[CAPSA_ERROR_MESSAGE_MAX];
	char old[CAPSA_ERROR_MESSAGE_MAX];
	va_list ap;
	va_start(ap, fmt);
	format_into(context, sizeof(context), fmt, ap);
	va_end(ap);
	memcpy(old, err->message, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	snprintf(err->message, sizeof(err->message), "%.300s: %.700s", context, old);
	sanitize(err->message);
	return -1;
}
