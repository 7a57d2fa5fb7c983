/* The initramfs capsa hands the guest kernel: an uncompressed cpio archive
 * in the "newc" format, built in memory and then copied into guest RAM.
 *
 * Entries are written in the order they are added; a directory must be
 * added before anything inside it (the kernel extracts in one pass). Paths
 * are absolute or relative to the archive root, without "." or ".."
 * components. Owners are root, times are 0: the same inputs always give
 * the same bytes. */
#ifndef CAPSA_BOOT_INITRAMFS_H
#define CAPSA_BOOT_INITRAMFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "capsa.h"

/* Largest single file the archive accepts (the init binary is far smaller). */
#define INITRAMFS_MAX_FILE_SIZE (64u * 1024 * 1024)

struct initramfs;

struct initramfs *initramfs_new(capsa_error *err);
void initramfs_free(struct initramfs *ird);

/* mode holds permission bits only (e.g. 0755). */
int initramfs_add_dir(struct initramfs *ird, const char *path, mode_t mode, capsa_error *err);
int initramfs_add_file(struct initramfs *ird, const char *path, mode_t mode, const void *data, size_t len,
		       capsa_error *err);
int initramfs_add_file_from_host(struct initramfs *ird, const char *guest_path, mode_t mode,
				 const char *host_path, capsa_error *err);
/* A device node: mode is S_IFCHR or S_IFBLK plus permission bits. */
int initramfs_add_node(struct initramfs *ird, const char *path, mode_t mode, unsigned int major,
		       unsigned int minor, capsa_error *err);

/* Writes the trailer; nothing can be added afterwards. */
int initramfs_finish(struct initramfs *ird, capsa_error *err);

/* The archive bytes, valid until initramfs_free(). Complete only after
 * initramfs_finish(). */
const uint8_t *initramfs_data(const struct initramfs *ird, size_t *len);

/* What guest init is told to run: the /capsa/ config files of guest_abi.h. */
struct guest_workload {
	const char *const *argv;  /* NULL-terminated, argv[0] non-empty */
	const char *const *env;   /* "KEY=VALUE", NULL-terminated; NULL for none */
	const char *workdir;      /* NULL or "" for init's defaults, here and below */
	const char *hostname;
	const char *user;         /* "name", "uid", "name:group", "uid:gid"; root by default */
	bool hold;                /* init only starts the agent: see CAPSA_CFG_HOLD */
	/* CAPSA_CFG_VOLUMES triples (tag, guest path, "ro"/"rw"), NULL-terminated; NULL for none */
	const char *const *volumes;
	/* CAPSA_CFG_DISK_MOUNTS pairs (device, guest path), NULL-terminated; NULL for none */
	const char *const *disk_mounts;
	bool standby;             /* init waits for START (CAPSA_CFG_STANDBY); argv, env, workdir,
				   * hostname and user come with it and may be NULL here */
};

/* Builds the finished initramfs for one capsa run: the guest init binary
 * at init_path as /init, /dev/console, and the workload's config files. */
int initramfs_build_capsa(struct initramfs **out, const char *init_path, const struct guest_workload *w,
			  capsa_error *err);

#endif
