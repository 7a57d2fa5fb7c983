/* Where snapshots live: <data dir>/snapshots/NAME/ holds `state` (the
 * state file), `memory` (guest RAM, sparse) and `info.json` (what the
 * snapshot was made from). A snapshot appears under its name complete or
 * not at all: it is written in a temporary directory and renamed. */
#ifndef CAPSA_API_SNAPSHOT_STORE_H
#define CAPSA_API_SNAPSHOT_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "capsa.h"

#define SNAPSHOT_NAME_MAX 64
/* Snapshots made by `capsa run` on first use are named by fingerprint. */
#define SNAPSHOT_AUTO_PREFIX "auto-"

struct snapshot_info {
	char *name;
	char *image;            /* the image reference the VM was started from */
	char *manifest_digest;
	char *root_image;       /* the root image file the guest has mounted */
	char *root_image_id;    /* its identity (size, mtime, inode) when snapshotted */
	char *fingerprint;      /* what decides whether an automatic snapshot fits a run */
	uint32_t memory_mib;
	uint32_t cpus;
	bool network;           /* the VM had a NIC */
	bool workload_started;  /* a running workload was snapshotted: restore continues it */
	int64_t created;        /* Unix time */
	uint64_t disk_bytes;    /* space the files take (filled when listing) */
};

void snapshot_info_clear(struct snapshot_info *info);

/* [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most SNAPSHOT_NAME_MAX characters. */
int snapshot_name_check(const char *name, capsa_error *err);

/* <data_dir or the default data directory>/snapshots, malloc'd. */
char *snapshot_root(const char *data_dir, capsa_error *err);

/* The directory of snapshot name (malloc'd); fails with ENOENT, saying
 * so, when there is none. Fills info from its info.json. */
char *snapshot_find(const char *data_dir, const char *name, struct snapshot_info *info, capsa_error *err);

/* Writes a snapshot: make a temporary directory, let write() fill it
 * (state and memory), add info.json, and rename it to info->name,
 * replacing an older snapshot of that name only when replace is set. */
typedef int (*snapshot_write_fn)(const char *dir, void *opaque, capsa_error *err);
int snapshot_publish(const char *data_dir, const struct snapshot_info *info, bool replace, snapshot_write_fn write,
		     void *opaque, capsa_error *err);

/* Whether a snapshot of that name exists: one stat, no reading. */
bool snapshot_exists(const char *data_dir, const char *name);
int snapshot_remove(const char *data_dir, const char *name, capsa_error *err);

/* Removes the automatic snapshots whose root image is gone or is another
 * file now: none can be restored again (a run makes a new one). Adds the
 * space their files took to *bytes_freed. Named snapshots stay. */
int snapshot_prune_stale(const char *data_dir, uint64_t *bytes_freed, capsa_error *err);

/* Every snapshot, sorted by name. */
int snapshot_list(const char *data_dir, struct snapshot_info **list, size_t *count, capsa_error *err);
void snapshot_list_free(struct snapshot_info *list, size_t count);

/* "size:mtime_ns:ino" of a file, malloc'd: a cheap check that it is still
 * the file a snapshot was made with. */
char *snapshot_file_identity(const char *path, capsa_error *err);

#endif
