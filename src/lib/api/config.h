/* The contents of the public capsa_vm_config handle. */
#ifndef CAPSA_API_CONFIG_H
#define CAPSA_API_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa.h"

#define CONFIG_MAX_DISKS 16
#define CONFIG_DEFAULT_MEMORY_MIB 512
#define CONFIG_MIN_MEMORY_MIB 64
#define CONFIG_MAX_MEMORY_MIB (1024 * 1024)

struct config_disk {
	char *path;
	bool read_only;
};

/* NULL-terminated, heap-allocated string list. */
struct strv {
	char **items;
	size_t count;
};

struct capsa_vm_config {
	char *kernel_path;
	char *init_path;
	char *rootfs_dir;
	char *cache_dir;
	struct strv argv;
	struct strv env;
	char *workdir;
	char *hostname;
	uint32_t memory_mib;
	uint32_t cpus;
	struct config_disk disks[CONFIG_MAX_DISKS];
	unsigned disk_count;
	int stdout_fd, stderr_fd, console_fd;
};

#endif
