/* Scratch directories, paths and files for the unit tests. Failures are
 * cmocka assertions where a helper returns nothing to check. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Creates a fresh /tmp/capsa-<name>-XXXXXX directory into dir (size
 * bytes); returns 0, or -1 with errno set. */
int tmpdir_create(char *dir, size_t size, const char *name);
/* Removes path and everything below it, without following symlinks;
 * a missing path is not an error. Returns 0, or -1 with errno set. */
int remove_tree(const char *path);

/* A formatted path (or any string), malloc'd. */
char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a shell command; returns its exit status, or -1 if it did not exit. */
int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool exists(const char *path);
/* Creates or truncates path with mode 0644 (less the umask) and writes data. */
void write_file(const char *path, const void *data, size_t len);
