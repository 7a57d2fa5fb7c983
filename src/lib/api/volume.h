/* Named persistent disks: sparse ext4 images under <data dir>/volumes,
 * created on first use and attached to one VM at a time. */
#ifndef CAPSA_API_VOLUME_H
#define CAPSA_API_VOLUME_H

#include <stdint.h>

#include "capsa.h"

#define VOLUME_NAME_MAX 64
#define VOLUME_DEFAULT_SIZE (8ULL << 30)
#define VOLUME_MIN_SIZE (16ULL << 20)  /* room for ext4's journal and metadata */
#define VOLUME_MAX_SIZE (16ULL << 40)

/* [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most VOLUME_NAME_MAX characters. */
int volume_name_check(const char *name, capsa_error *err);

/* Opens volume name's image in data_dir (NULL: the default data directory),
 * creating it with size bytes (0: the default) if it does not exist, and
 * locks it for this VM. Returns the descriptor holding the lock (close it
 * when the VM is gone) and stores the image path in *path (malloc'd); fails
 * with EBUSY while another VM uses the volume. */
int volume_attach(const char *data_dir, const char *name, uint64_t size, char **path, capsa_error *err);

#endif
