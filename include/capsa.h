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
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
 * guest sees it through an overlay with a writable tmpfs upper layer.
 * Either this or an image is needed. */
CAPSA_API int capsa_vm_config_set_rootfs_dir(capsa_vm_config *cfg, const char *dir, capsa_error *err);
/* An image from the image store (see capsa_image_pull): a reference
 * ("busybox", "localhost:5000/app:1"), a stored name, or an image id.
 * Its root filesystem, Entrypoint, Cmd, Env, WorkingDir and User apply;
 * the settings below override them as `docker run` does. The image must
 * already be stored; capsa_vm_run never pulls. */
CAPSA_API int capsa_vm_config_set_image(capsa_vm_config *cfg, const char *image, capsa_error *err);
/* The image store to look the image up in (default: $XDG_DATA_HOME/capsa). */
CAPSA_API int capsa_vm_config_set_store_dir(capsa_vm_config *cfg, const char *dir, capsa_error *err);
/* Replaces the image's Entrypoint; an empty argv (just NULL) clears it.
 * As with docker, giving an entrypoint also drops the image's Cmd. */
CAPSA_API int capsa_vm_config_set_entrypoint(capsa_vm_config *cfg, const char *const *argv, capsa_error *err);
/* The workload's user: "name", "uid", "name:group" or "uid:gid", resolved
 * in the guest against the root filesystem's /etc/passwd and /etc/group. */
CAPSA_API int capsa_vm_config_set_user(capsa_vm_config *cfg, const char *user, capsa_error *err);
/* Where built root images are cached (default: $XDG_CACHE_HOME/capsa/rootfs). */
CAPSA_API int capsa_vm_config_set_cache_dir(capsa_vm_config *cfg, const char *dir, capsa_error *err);
/* The workload: argv[0] is looked up in the guest's PATH. argv ends with NULL.
 * With an image, this replaces the image's Cmd (and follows its Entrypoint). */
CAPSA_API int capsa_vm_config_set_command(capsa_vm_config *cfg, const char *const *argv, capsa_error *err);
/* "KEY=VALUE"; a later value for the same KEY replaces the earlier one. */
CAPSA_API int capsa_vm_config_add_env(capsa_vm_config *cfg, const char *key_value, capsa_error *err);
CAPSA_API int capsa_vm_config_set_workdir(capsa_vm_config *cfg, const char *dir, capsa_error *err);
CAPSA_API int capsa_vm_config_set_hostname(capsa_vm_config *cfg, const char *name, capsa_error *err);
CAPSA_API int capsa_vm_config_set_memory_mib(capsa_vm_config *cfg, uint32_t mib, capsa_error *err);
CAPSA_API int capsa_vm_config_set_cpus(capsa_vm_config *cfg, uint32_t cpus, capsa_error *err);
/* An extra virtio-blk disk backed by a host file: /dev/vdb, /dev/vdc, ... */
CAPSA_API int capsa_vm_config_add_disk(capsa_vm_config *cfg, const char *path, bool read_only, capsa_error *err);
/* Shares the host directory host_dir with the guest at guest_path (absolute)
 * over virtio-fs, read-only or read-write. Nothing outside host_dir can be
 * reached through it; symlinks in it are never followed on the host. */
CAPSA_API int capsa_vm_config_add_volume(capsa_vm_config *cfg, const char *host_dir, const char *guest_path,
					 bool read_only, capsa_error *err);
/* File descriptors the workload's stdout and stderr are copied to
 * (default 1 and 2). console_fd receives kernel and init messages; -1
 * (the default) discards them. */
CAPSA_API int capsa_vm_config_set_output(capsa_vm_config *cfg, int stdout_fd, int stderr_fd, int console_fd,
					 capsa_error *err);

/* Where a started VM's control socket goes: the Unix socket through which
 * any process reaches the guest's agent (capsa_exec_start and friends).
 * Default: "control.sock" in a private directory under $XDG_RUNTIME_DIR
 * (or /tmp), removed with the VM. */
CAPSA_API int capsa_vm_config_set_control_socket(capsa_vm_config *cfg, const char *path, capsa_error *err);
/* How long capsa_vm_start waits for the guest agent (default 120000 ms:
 * emulated hardware boots slowly). */
CAPSA_API int capsa_vm_config_set_start_timeout_ms(capsa_vm_config *cfg, uint32_t ms, capsa_error *err);

/* Boots the VM, runs the workload to completion and powers the VM off.
 * On success returns 0 and stores the workload's exit status in
 * *exit_status (0..255; 128+N when killed by signal N). */
CAPSA_API int capsa_vm_run(const capsa_vm_config *cfg, int *exit_status, capsa_error *err);

/* ---- VMs that keep running ------------------------------------------ */

typedef struct capsa_vm capsa_vm;
typedef struct capsa_exec capsa_exec;

/* An interactive workload (capsa run -i/-t): it gets stdin from the caller
 * and, with tty, a pseudo-terminal of rows x cols. capsa_vm_start then
 * returns with the workload started through the guest agent: talk to it
 * with capsa_vm_workload() and the capsa_exec_* calls, and once its EXIT
 * event came, end the VM with capsa_vm_stop (capsa_vm_wait would wait for
 * ever: the VM runs until it is stopped). */
CAPSA_API int capsa_vm_config_set_interactive(capsa_vm_config *cfg, bool tty, uint16_t rows, uint16_t cols,
					      capsa_error *err);

/* Boots the VM and starts its workload on threads of this process, and
 * returns once the guest agent answers: the VM is then ready for exec.
 * Fails if the guest ends or the agent stays silent past the start
 * timeout. The workload's output goes where capsa_vm_config_set_output
 * says, as with capsa_vm_run. */
CAPSA_API capsa_vm *capsa_vm_start(const capsa_vm_config *cfg, capsa_error *err);
/* The VM's control socket path (valid until capsa_vm_free). */
CAPSA_API const char *capsa_vm_control_socket(const capsa_vm *vm);
/* An interactive VM's workload (owned by the VM); NULL for other VMs. */
CAPSA_API capsa_exec *capsa_vm_workload(capsa_vm *vm);
/* Waits until the workload has ended and the VM is off; its status as for
 * capsa_vm_run. */
CAPSA_API int capsa_vm_wait(capsa_vm *vm, int *exit_status, capsa_error *err);
/* Sends the workload SIGTERM through the agent and waits up to timeout_ms
 * for the VM to end, then stops it by force. */
CAPSA_API int capsa_vm_stop(capsa_vm *vm, uint32_t timeout_ms, capsa_error *err);
/* Stops the VM by force if it still runs, and frees everything. */
CAPSA_API void capsa_vm_free(capsa_vm *vm);

/* ---- talking to a running VM's agent ---------------------------------
 * These take a control socket path, so any process can use them, not only
 * the one running the VM. */

typedef struct capsa_exec_options {
	const char *const *argv;  /* NULL-terminated, required */
	const char *const *env;   /* "KEY=VALUE" added to the workload's environment; may be NULL */
	const char *workdir;      /* NULL: the workload's */
	const char *user;         /* NULL: the workload's; else name, uid, name:group or uid:gid */
	bool tty;                 /* run on a new pseudo-terminal (stdout and stderr merged) */
	uint16_t rows, cols;      /* its size */
	bool stdin_open;          /* stdin comes from capsa_exec_write, else /dev/null */
	uint32_t timeout_ms;      /* killed after this long (0: never) */
} capsa_exec_options;

typedef struct capsa_exec_result {
	int exit_status;          /* 0..255; 128+N when killed by signal N */
	int signal;               /* N when killed by signal N, else 0 */
	bool timed_out;           /* killed because timeout_ms passed */
	uint64_t duration_us;
	uint64_t peak_rss_kib;
} capsa_exec_result;

typedef enum capsa_exec_event_kind {
	CAPSA_EXEC_STDOUT = 1,
	CAPSA_EXEC_STDERR = 2,
	CAPSA_EXEC_EXIT = 3,      /* the last event */
} capsa_exec_event_kind;

typedef struct capsa_exec_event {
	capsa_exec_event_kind kind;
	const void *data;         /* STDOUT/STDERR bytes, valid until the next call */
	size_t len;
	capsa_exec_result result; /* EXIT */
} capsa_exec_event;

/* Starts a process in the guest. Returns once it runs. */
CAPSA_API capsa_exec *capsa_exec_start(const char *control_socket, const capsa_exec_options *opts,
				       capsa_error *err);
/* Readable (poll) when capsa_exec_next has an event. */
CAPSA_API int capsa_exec_fd(const capsa_exec *ex);
CAPSA_API int capsa_exec_write(capsa_exec *ex, const void *data, size_t len, capsa_error *err);
CAPSA_API int capsa_exec_close_stdin(capsa_exec *ex, capsa_error *err);
CAPSA_API int capsa_exec_signal(capsa_exec *ex, int signo, capsa_error *err);
CAPSA_API int capsa_exec_resize(capsa_exec *ex, uint16_t rows, uint16_t cols, capsa_error *err);
/* Blocks for the next event. */
CAPSA_API int capsa_exec_next(capsa_exec *ex, capsa_exec_event *ev, capsa_error *err);
/* Frees the handle; a process still running in the guest is killed. */
CAPSA_API void capsa_exec_free(capsa_exec *ex);

/* Runs a process to completion: feeds it stdin_data (when opts->stdin_open)
 * and collects at most max_output bytes of stdout and of stderr into
 * malloc'd buffers (out/errout may be NULL to discard). */
CAPSA_API int capsa_exec_run(const char *control_socket, const capsa_exec_options *opts, const void *stdin_data,
			     size_t stdin_len, size_t max_output, char **out, size_t *out_len, char **errout,
			     size_t *errout_len, capsa_exec_result *result, capsa_error *err);

/* Writes the guest file guest_path (replaced atomically) with the content
 * read from src_fd up to its end, with permission bits mode. */
CAPSA_API int capsa_file_write(const char *control_socket, const char *guest_path, uint32_t mode, int src_fd,
			       capsa_error *err);
/* Copies the guest file guest_path to dst_fd. */
CAPSA_API int capsa_file_read(const char *control_socket, const char *guest_path, int dst_fd, capsa_error *err);
/* Sends signo to the workload's process group. */
CAPSA_API int capsa_workload_signal(const char *control_socket, int signo, capsa_error *err);

/* ---- images ----------------------------------------------------------- */

/* The local image store: content-addressed blobs, image names and the
 * root images built from them, in one directory. Safe to use from several
 * processes at once. */
typedef struct capsa_image_store capsa_image_store;

/* dir NULL: $XDG_DATA_HOME/capsa (default ~/.local/share/capsa). */
CAPSA_API capsa_image_store *capsa_image_store_open(const char *dir, capsa_error *err);
CAPSA_API void capsa_image_store_close(capsa_image_store *store);

typedef struct capsa_pull_options {
	const char *platform;                   /* "linux/amd64" (default), "linux/arm64/v8", ... */
	const char *const *insecure_registries; /* host[:port] allowed over plain HTTP, NULL-terminated */
	FILE *progress;                         /* progress display (a TTY is redrawn); NULL: quiet */
} capsa_pull_options;

/* Pulls an image from its registry, or imports one from an OCI image
 * layout when ref is "oci:DIR[:TAG]". opts may be NULL. On success
 * *name (may be NULL) receives the name the image is stored under
 * (malloc'd; free()). */
CAPSA_API int capsa_image_pull(capsa_image_store *store, const char *ref, const capsa_pull_options *opts,
			       char **name, capsa_error *err);
/* Loads a `docker save` archive (optionally gzip or zstd compressed).
 * *names (may be NULL) receives the stored names, NULL-terminated
 * (free with capsa_strv_free). */
CAPSA_API int capsa_image_load(capsa_image_store *store, const char *archive, char ***names, capsa_error *err);

/* Builds the image's root image now rather than on its first run (pull
 * and load leave that to the first run unless this is called). */
CAPSA_API int capsa_image_prepare(capsa_image_store *store, const char *ref, capsa_error *err);

/* Whether ref names a stored image (reference, name or id); 1 yes, 0 no. */
CAPSA_API int capsa_image_exists(capsa_image_store *store, const char *ref, capsa_error *err);

typedef struct capsa_image_info {
	char *name;     /* "docker.io/library/busybox:latest" */
	char *id;       /* manifest digest, "sha256:..." */
	int64_t created; /* when it was stored, unix seconds */
	uint64_t size;  /* bytes stored (compressed layers and config) */
} capsa_image_info;

CAPSA_API int capsa_image_list(capsa_image_store *store, capsa_image_info **list, size_t *count, capsa_error *err);
CAPSA_API void capsa_image_list_free(capsa_image_info *list, size_t count);
/* Removes a name (reference, name, or an id naming exactly one image).
 * Blobs are freed by capsa_image_prune. */
CAPSA_API int capsa_image_remove(capsa_image_store *store, const char *ref, capsa_error *err);
/* Deletes blobs and root images no stored name needs. */
CAPSA_API int capsa_image_prune(capsa_image_store *store, uint64_t *bytes_freed, capsa_error *err);

CAPSA_API void capsa_strv_free(char **strv);

/* Checks that /dev/kvm can run a normal Linux guest on this host.
 * Returns 0 if it can, <0 with a message naming the fix if it cannot. */
CAPSA_API int capsa_check_kvm(capsa_error *err);

CAPSA_API const char *capsa_version(void);

#ifdef __cplusplus
}
#endif

#endif
