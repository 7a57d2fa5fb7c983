/* Error reporting inside libcapsa: set a capsa_error and return -1, and add
 * context on the way up ("loading kernel: open /x: No such file"). */
#ifndef CAPSA_UTIL_ERROR_H
#define CAPSA_UTIL_ERROR_H

#include "capsa.h"

/* Fills err (if non-NULL) with code and a printf-style message; returns -1. */
int error_set(capsa_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Like error_set, with ": strerror(code)" appended. */
int error_set_errno(capsa_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to err's message; keeps the code; returns -1. */
int error_prefix(capsa_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
