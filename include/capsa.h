/* capsa: run OCI images and root filesystems as KVM microVMs.
 *
 * This is the only public header of libcapsa. Every exported symbol is
 * declared here and carries the capsa_ prefix; handles are opaque.
 *
 * Errors: a function that can fail returns a negative value (or NULL) and,
 * when given a non-NULL capsa_error, fills it with an errno-style code and a
 * one-line message that says what went wrong and, where possible, what to do.
 */
#ifndef CAPSA_H
#define CAPSA_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CAPSA_API __attribute__((visibility("default")))

#define CAPSA_ERROR_MESSAGE_MAX 1024

typedef struct capsa_error {
	int code;                               /* errno value, e.g. ENOENT */
	char message[CAPSA_ERROR_MESSAGE_MAX];  /* one line, no trailing newline */
} capsa_error;

/* A description of one microVM to run. */
typedef struct capsa_vm_config capsa_vm_config;

CAPSA_API capsa_vm_config *capsa_vm_config_new(capsa_error *err);
CAPSA_API void capsa_vm_config_free(capsa_vm_config *cfg);

/* Guest kernel: an uncompressed x86_64 vmlinux (ELF) or a bzImage. */
CAPSA_API int capsa_vm_config_set_kernel(capsa_vm_config *cfg, const char *path, capsa_error *err);
/* Static guest init binary put into the generated initramfs as /init. */
CAPSA_API int capsa_vm_config_set_init(capsa_vm_config *cfg, const char *path, capsa_error *err);
/* A host directory that becomes the guest's read-only root image; the
 * guest sees it through an overlay with a writable tmpfs upper layer. */
CAPSA_API int capsa_vm_config_set_rootfs_dir(capsa_vm_config *cfg, const char *dir, capsa_error *err);
/* Where built root images are cached (default: $XDG_CACHE_HOME/capsa/rootfs). */
CAPSA_API int capsa_vm_config_set_cache_dir(capsa_vm_config *cfg, const char *dir, capsa_error *err);
/* The workload: argv[0] is looked up in the guest's PATH. argv ends with NULL. */
CAPSA_API int capsa_vm_config_set_command(capsa_vm_config *cfg, const char *const *argv, capsa_error *err);
/* "KEY=VALUE"; a later value for the same KEY replaces the earlier one. */
CAPSA_API int capsa_vm_config_add_env(capsa_vm_config *cfg, const char *key_value, capsa_error *err);
CAPSA_API int capsa_vm_config_set_workdir(capsa_vm_config *cfg, const char *dir, capsa_error *err);
CAPSA_API int capsa_vm_config_set_hostname(capsa_vm_config *cfg, const char *name, capsa_error *err);
CAPSA_API int capsa_vm_config_set_memory_mib(capsa_vm_config *cfg, uint32_t mib, capsa_error *err);
CAPSA_API int capsa_vm_config_set_cpus(capsa_vm_config *cfg, uint32_t cpus, capsa_error *err);
/* An extra virtio-blk disk backed by a host file: /dev/vdb, /dev/vdc, ... */
CAPSA_API int capsa_vm_config_add_disk(capsa_vm_config *cfg, const char *path, bool read_only, capsa_error *err);
/* File descriptors the workload's stdout and stderr are copied to
 * (default 1 and 2). console_fd receives kernel and init messages; -1
 * (the default) discards them. */
CAPSA_API int capsa_vm_config_set_output(capsa_vm_config *cfg, int stdout_fd, int stderr_fd, int console_fd,
					 capsa_error *err);

/* Boots the VM, runs the workload to completion and powers the VM off.
 * On success returns 0 and stores the workload's exit status in
 * *exit_status (0..255; 128+N when killed by signal N). */
CAPSA_API int capsa_vm_run(const capsa_vm_config *cfg, int *exit_status, capsa_error *err);

/* Checks that /dev/kvm can run a normal Linux guest on this host.
 * Returns 0 if it can, <0 with a message naming the fix if it cannot. */
CAPSA_API int capsa_check_kvm(capsa_error *err);

CAPSA_API const char *capsa_version(void);

#ifdef __cplusplus
}
#endif

#endif
