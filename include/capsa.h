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
/* The same with options (flags, 0 or more of these): */
#define CAPSA_VOLUME_READ_ONLY (1u << 0)
/* DAX: the guest maps pages of the host's files straight into its memory
 * (a virtio-fs DAX window of 1 GiB of guest-physical address space per such
 * volume, mounted with dax=always) instead of copying them into its page
 * cache: reads and mmap go to the host's page cache, whose pages the guest
 * then shares with the host and with other guests. Needs a guest kernel
 * with CONFIG_FUSE_DAX; mounting fails without one. */
#define CAPSA_VOLUME_DAX (1u << 1)
CAPSA_API int capsa_vm_config_add_volume_flags(capsa_vm_config *cfg, const char *host_dir, const char *guest_path,
					       uint32_t flags, capsa_error *err);
/* A persistent named disk (see capsa_volume_list): the ext4 image of volume
 * name in the store directory's volumes/ folder, mounted read-write at
 * guest_path (absolute). The image is created on first use with size_bytes
 * (0: 8 GiB; sparse, so it takes only what is written); an existing
 * volume keeps its size. A volume is attached to one VM at a time: starting
 * a second VM with it fails with EBUSY. Names: [a-zA-Z0-9][a-zA-Z0-9_.-]*,
 * at most 64 characters. */
CAPSA_API int capsa_vm_config_add_named_disk(capsa_vm_config *cfg, const char *name, const char *guest_path,
					     uint64_t size_bytes, capsa_error *err);
/* Networking. "nat" (the default): user-mode NAT with no host setup and
 * no privileges; the guest is 10.0.2.15/24 behind the gateway 10.0.2.2
 * (which is the host's loopback) with DNS at 10.0.2.3 (the host's
 * resolver, or $CAPSA_DNS_SERVER="IPV4[:PORT]" when set). "none": no
 * network device, loopback only. "tap:NAME": an existing host TAP device
 * (needs CAP_NET_ADMIN or a TAP device owned by the caller); the guest's
 * interface is then left unconfigured. */
CAPSA_API int capsa_vm_config_set_network(capsa_vm_config *cfg, const char *mode, capsa_error *err);
/* Publishes a guest port on the host (NAT only):
 * "[HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp]"; HOSTIP defaults to 0.0.0.0. */
CAPSA_API int capsa_vm_config_add_port(capsa_vm_config *cfg, const char *spec, capsa_error *err);
/* Where the guest may send traffic, judged on the host before it leaves:
 * "allow_all" (the default), "deny_private" (no RFC 1918, loopback,
 * link-local incl. 169.254.169.254, CGNAT, multicast or their IPv6
 * equivalents; this includes the host's loopback behind the gateway),
 * "allow:CIDR[,CIDR...]" or "deny:CIDR[,CIDR...]". DNS through 10.0.2.3
 * and replies on published ports always pass. */
CAPSA_API int capsa_vm_config_set_egress(capsa_vm_config *cfg, const char *policy, capsa_error *err);
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

/* ---- snapshots ---------------------------------------------------------
 * A snapshot is a paused VM on disk (<data dir>/snapshots/NAME: its state,
 * and its RAM as a sparse file). Restoring maps the RAM copy-on-write, so
 * it costs the same at any memory size and clones of one snapshot share
 * the pages none of them changed. A snapshot made by baking holds a guest
 * that has booted and waits for its workload: any command, environment,
 * working directory or user can then be run from it. Snapshots need an
 * image, and cannot hold shared directories or disks. */

/* Restore snapshot NAME instead of booting: the workload (the config's
 * settings over the image's defaults) starts in it, unless the snapshot
 * caught a running workload, which then simply runs on. The image may be
 * left unset: the snapshot's is used. */
CAPSA_API int capsa_vm_config_set_snapshot(capsa_vm_config *cfg, const char *name, capsa_error *err);
/* Snapshot automatically: the first start of an image (for this kernel,
 * init, memory size, vCPU count and network setting) boots it, snapshots
 * it before the workload starts, and goes on; later starts restore that
 * snapshot. Runs with shared directories or disks always boot. */
CAPSA_API int capsa_vm_config_set_auto_snapshot(capsa_vm_config *cfg, bool enabled, capsa_error *err);

typedef struct capsa_bake_options {
	const char *name;                   /* NULL: the automatic snapshot capsa_vm_config_set_auto_snapshot
					     * would use for this config */
	const char *const *const *warmups;  /* argv vectors run in the guest before the snapshot, each
					     * NULL-terminated, the list too; each must exit 0. They get
					     * the config's environment entries. May be NULL. */
	uint16_t ready_port;                /* 0: snapshot before the workload starts (any command can be
					     * run from it). Else start the config's workload and snapshot
					     * once it listens on this TCP port: runs of the snapshot then
					     * continue that workload */
	uint32_t ready_timeout_ms;          /* how long to wait for ready_port (0: 120000) */
	bool replace;                       /* replace a snapshot of that name */
} capsa_bake_options;

/* Boots the config's image, waits for its agent, runs the warm-up commands,
 * and saves the VM as a snapshot (see capsa_bake_options). The VM is then
 * stopped. */
CAPSA_API int capsa_bake(const capsa_vm_config *cfg, const capsa_bake_options *opts, capsa_error *err);

typedef struct capsa_snapshot_info {
	char *name;
	char *image;            /* the image the snapshot was made from */
	uint32_t memory_mib;
	uint32_t cpus;
	bool workload_started;  /* made from a running workload (capsa_vm_snapshot) */
	int64_t created;        /* Unix time */
	uint64_t disk_bytes;    /* space its files take */
} capsa_snapshot_info;

/* The snapshots in data_dir (NULL: the default data directory). */
CAPSA_API int capsa_snapshot_list(const char *data_dir, capsa_snapshot_info **list, size_t *count, capsa_error *err);
CAPSA_API void capsa_snapshot_list_free(capsa_snapshot_info *list, size_t count);
CAPSA_API int capsa_snapshot_remove(const char *data_dir, const char *name, capsa_error *err);
/* Whether data_dir (NULL: the default) holds a snapshot called name; false
 * for anything that cannot be a snapshot name, such as an image reference. */
CAPSA_API bool capsa_snapshot_exists(const char *data_dir, const char *name);

/* Boots the VM, runs the workload to completion and powers the VM off.
 * On success returns 0 and stores the workload's exit status in
 * *exit_status (0..255; 128+N when killed by signal N). */
CAPSA_API int capsa_vm_run(const capsa_vm_config *cfg, int *exit_status, capsa_error *err);

/* ---- VMs that keep running ------------------------------------------ */

typedef struct capsa_vm capsa_vm;
typedef struct capsa_exec capsa_exec;

/* Snapshots a running VM as NAME (live: it runs on afterwards), replacing
 * one of that name when replace is set. Restoring it continues its
 * workload where it was. */
CAPSA_API int capsa_vm_snapshot(capsa_vm *vm, const char *name, bool replace, capsa_error *err);

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
/* Publishes one more guest port on the host while the VM runs (spec as
 * for capsa_vm_config_add_port). */
CAPSA_API int capsa_vm_expose_port(capsa_vm *vm, const char *spec, capsa_error *err);

/* ---- pools -------------------------------------------------------------
 * VMs restored ahead of time from one snapshot, handed out and taken back:
 * for a VM per request without waiting for a restore. The pool's config
 * names the snapshot (capsa_vm_config_set_snapshot) or an image with
 * automatic snapshots; its workload (say, a server, or `sleep infinity`
 * for exec-only use) starts in each VM. */

typedef struct capsa_pool capsa_pool;

typedef struct capsa_pool_options {
	uint32_t min_idle;        /* VMs kept started and ready (default 0) */
	uint32_t max_vms;         /* VMs at most, idle, in use and starting (default 16) */
	uint32_t max_starting;    /* restores or boots in flight at once (default 2) */
	uint32_t idle_timeout_ms; /* idle VMs beyond min_idle are stopped after this long (0: never) */
} capsa_pool_options;

typedef enum capsa_pool_release_mode {
	CAPSA_POOL_RELEASE_CLEAN = 0, /* stop the VM; a fresh one from the snapshot takes its place */
	CAPSA_POOL_RELEASE_KEEP = 1,  /* put it back as it is, for the next acquire */
} capsa_pool_release_mode;

typedef struct capsa_pool_stats {
	uint32_t idle, in_use, starting;
	uint64_t acquired;        /* successful acquires */
	uint64_t timed_out;       /* acquires that gave up */
	uint64_t started, stopped, failed_starts;
	uint64_t acquire_wait_us_total; /* time acquires spent waiting, summed */
} capsa_pool_stats;

/* Copies cfg; opts may be NULL for the defaults. Starts min_idle VMs in
 * the background. */
CAPSA_API capsa_pool *capsa_pool_new(const capsa_vm_config *cfg, const capsa_pool_options *opts, capsa_error *err);
/* An idle VM, or a new one if the caps allow, waiting at most timeout_ms
 * (0: do not wait) for one. Fails with ETIMEDOUT, or with the error of
 * the last failed start when every start fails. */
CAPSA_API capsa_vm *capsa_pool_acquire(capsa_pool *pool, uint32_t timeout_ms, capsa_error *err);
/* Hands an acquired VM back. A VM whose workload ended is stopped,
 * whatever the mode. */
CAPSA_API void capsa_pool_release(capsa_pool *pool, capsa_vm *vm, capsa_pool_release_mode mode);
CAPSA_API void capsa_pool_get_stats(capsa_pool *pool, capsa_pool_stats *stats);
/* Stops every VM, acquired ones included (release them first). */
CAPSA_API void capsa_pool_free(capsa_pool *pool);

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
/* The ports a stored image declares (its ExposedPorts), e.g. "80/tcp",
 * as a NULL-terminated list (free with capsa_strv_free); an empty list
 * when it declares none. */
CAPSA_API int capsa_image_exposed_ports(capsa_image_store *store, const char *ref, char ***ports,
					capsa_error *err);

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
/* Deletes blobs and root images no stored name needs, and the automatic
 * snapshots (capsa_vm_config_set_auto_snapshot) made from root images that
 * are gone. */
CAPSA_API int capsa_image_prune(capsa_image_store *store, uint64_t *bytes_freed, capsa_error *err);

CAPSA_API void capsa_strv_free(char **strv);

/* ---- volumes: persistent named disks ---------------------------------
 * data_dir is the image store directory (NULL: $XDG_DATA_HOME/capsa);
 * volumes live in its volumes/ folder as NAME.ext4. */

typedef struct capsa_volume_info {
	char *name;
	uint64_t size;        /* apparent size: what the guest sees */
	uint64_t disk_usage;  /* bytes the sparse image takes on the host */
	bool in_use;          /* attached to a running VM */
} capsa_volume_info;

/* Creates an empty volume of size_bytes (0: 8 GiB); EEXIST if it exists. */
CAPSA_API int capsa_volume_create(const char *data_dir, const char *name, uint64_t size_bytes, capsa_error *err);
/* The volumes sorted by name (free with capsa_volume_list_free). */
CAPSA_API int capsa_volume_list(const char *data_dir, capsa_volume_info **list, size_t *count, capsa_error *err);
CAPSA_API void capsa_volume_list_free(capsa_volume_info *list, size_t count);
/* Deletes a volume and its data; EBUSY while a VM uses it. */
CAPSA_API int capsa_volume_remove(const char *data_dir, const char *name, capsa_error *err);

/* Checks that /dev/kvm can run a normal Linux guest on this host.
 * Returns 0 if it can, <0 with a message naming the fix if it cannot. */
CAPSA_API int capsa_check_kvm(capsa_error *err);

CAPSA_API const char *capsa_version(void);

#ifdef __cplusplus
}
#endif

#endif
