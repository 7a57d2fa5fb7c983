/* What a pull shows while it downloads: on a terminal, one line per blob
 * (digest, bytes so far of the total, state) redrawn at most 10 times a
 * second; elsewhere (logs, pipes) one line per blob when it is done.
 * Every function is thread-safe and accepts a NULL progress (quiet). */
#ifndef CAPSA_OCI_PULL_PROGRESS_H
#define CAPSA_OCI_PULL_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum pull_blob_state {
	PULL_BLOB_WAITING,
	PULL_BLOB_DOWNLOADING,
	PULL_BLOB_RETRYING,
	PULL_BLOB_DONE,
	PULL_BLOB_PRESENT,  /* already in the store */
	PULL_BLOB_FAILED,
} pull_blob_state;

typedef struct pull_progress pull_progress;

/* NULL when out is NULL (or on allocation failure: progress is optional). */
pull_progress *pull_progress_new(FILE *out);
void pull_progress_free(pull_progress *p);

/* Adds a blob line before the downloads start; returns its index. */
size_t pull_progress_add(pull_progress *p, const char *digest, int64_t size, pull_blob_state state);
void pull_progress_set_bytes(pull_progress *p, size_t blob, uint64_t done);
void pull_progress_set_state(pull_progress *p, size_t blob, pull_blob_state state);
/* Draws the final state of every line (terminal display). */
void pull_progress_finish(pull_progress *p);

/* "512 B", "2.3 MiB": sizes as people read them. */
void pull_progress_format_size(uint64_t bytes, char *buf, size_t size);

#endif
