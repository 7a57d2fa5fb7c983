/* The contract between the VMM (host) and capsa's guest init: shared by
 * both sides and by nothing else. Keep it free of host-only headers: the
 * guest side is built with musl. */
#ifndef CAPSA_GUEST_ABI_H
#define CAPSA_GUEST_ABI_H

/* Guest init writes the workload's exit status (0..255) to this I/O port
 * as a 32-bit value, then powers off. The VMM treats the write as the end
 * of the run. A value above 255 reports an init failure (see below). */
#define CAPSA_EXIT_PORT 0x0600
#define CAPSA_EXIT_INIT_FAILED 0x100
/* In an init-failure report, the low byte is the errno of the step that
 * failed (0 if there was none); the step itself is named on the console
 * and on the workload's stderr. */
#define CAPSA_EXIT_INIT_ERRNO(value) ((value) & 0xff)

/* Files capsa writes into the initramfs for init to read. Lists are
 * NUL-terminated strings back to back; a file that is absent means "none"
 * or "the default". */
#define CAPSA_INIT_PATH     "/init"
#define CAPSA_CFG_ARGV      "/capsa/argv"     /* workload argv, argv[0] first */
#define CAPSA_CFG_ENV       "/capsa/env"      /* KEY=VALUE entries */
#define CAPSA_CFG_WORKDIR   "/capsa/workdir"  /* one path, no NUL needed */
#define CAPSA_CFG_HOSTNAME  "/capsa/hostname" /* one name, no NUL needed */
/* The workload's user as docker's USER gives it: "name", "uid", "name:group"
 * or "uid:gid", resolved by init against the image's /etc/passwd and
 * /etc/group. Absent: root. */
#define CAPSA_CFG_USER      "/capsa/user"
/* Present (empty): init starts no workload of its own, only the agent; the
 * host runs the workload through the agent (interactive runs, with a
 * terminal) and ends the VM when it is done. */
#define CAPSA_CFG_HOLD      "/capsa/hold"
/* Present (empty) when the guest boots for a snapshot: init starts the
 * agent and waits for the host's START (agent_proto.h) to learn the
 * workload; CAPSA_CFG_ARGV may then be missing. */
#define CAPSA_CFG_STANDBY   "/capsa/standby"
/* Host directories shared over virtio-fs: for each, three strings: the
 * device's tag, the absolute guest path to mount it on, and "ro" or "rw",
 * followed by ",dax" when the device has a DAX window to mount it with. */
#define CAPSA_CFG_VOLUMES   "/capsa/volumes"
/* Persistent disks (ext4) to mount read-write: for each, two strings: the
 * block device ("/dev/vdb") and the absolute guest path to mount it on. */
#define CAPSA_CFG_DISK_MOUNTS "/capsa/disk-mounts"
/* Largest config file init reads; the host refuses to write a bigger one. */
#define CAPSA_CFG_MAX_BYTES (1024 * 1024)

/* Devices as the guest sees them. */
#define CAPSA_ROOT_DEVICE   "/dev/vda"        /* read-only squashfs root image */
#define CAPSA_CONSOLE_TTY   "/dev/ttyS0"      /* kernel and init messages */
#define CAPSA_STDOUT_TTY    "/dev/ttyS1"      /* workload stdout */
#define CAPSA_STDERR_TTY    "/dev/ttyS2"      /* workload stderr */

#endif
