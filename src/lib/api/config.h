/* The contents of the public capsa_vm_config handle. */
#ifndef CAPSA_API_CONFIG_H
#define CAPSA_API_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa.h"
#include "net/net_config.h"
#include "util/strv.h"

#define CONFIG_MAX_DISKS 16
#define CONFIG_MAX_VOLUMES 16
#define CONFIG_DEFAULT_MEMORY_MIB 512
#define CONFIG_MIN_MEMORY_MIB 64
#define CONFIG_MAX_MEMORY_MIB (1024 * 1024)
#define CONFIG_DEFAULT_START_TIMEOUT_MS 120000

struct config_disk {
	char *path;
	bool read_only;
};

struct config_volume {
	char *host_dir;
	char *guest_path;
	bool read_only;
	bool dax;               /* with a DAX window (CAPSA_VOLUME_DAX) */
};

/* A persistent named disk (capsa_vm_config_add_named_disk). */
struct config_named_disk {
	char *name;
	char *guest_path;
	uint64_t size;          /* for its creation; 0: the default */
};


/* Pointers in here are owned by the config: config_copy (config.c)
 * duplicates each one, so a new one needs a line there too. */
struct capsa_vm_config {
	char *kernel_path;
	char *init_path;
	char *rootfs_dir;
	char *image;            /* as the caller typed it; rootfs_dir or image, not both */
	char *store_dir;
	char *cache_dir;
	struct strv argv;       /* with an image: replaces its Cmd */
	struct strv entrypoint; /* replaces the image's Entrypoint when entrypoint_set */
	bool entrypoint_set;
	char *user;
	char *control_socket;
	bool interactive, interactive_tty;
	uint16_t tty_rows, tty_cols;
	uint32_t start_timeout_ms;
	struct strv env;
	char *workdir;
	char *hostname;
	uint32_t memory_mib;
	uint32_t cpus;
	struct config_disk disks[CONFIG_MAX_DISKS];
	unsigned disk_count;
	struct config_volume volumes[CONFIG_MAX_VOLUMES];
	unsigned volume_count;
	struct config_named_disk named_disks[CONFIG_MAX_DISKS];  /* share CONFIG_MAX_DISKS with disks */
	unsigned named_disk_count;
	int stdout_fd, stderr_fd, console_fd;
	char *snapshot_name;    /* restore this snapshot instead of booting */
	bool auto_snapshot;     /* bake on first use, restore afterwards */
	struct net_config net;
};

/* A deep copy of cfg (file descriptors are copied as numbers: they stay
 * the caller's). Free with capsa_vm_config_free. */
capsa_vm_config *config_copy(const capsa_vm_config *cfg, capsa_error *err);

#endif
