/* The protocol between the host and the agent inside every capsa guest.
 *
 * Shared by the host library and the static guest init: plain C, no
 * host-only headers. The guest listens on vsock port CAPSA_AGENT_PORT; a
 * host program reaches it through the VM's vsock Unix socket
 * ("CONNECT 1024\n", "OK <n>\n", then this protocol).
 *
 * One request per connection: the host opens a connection, sends one
 * request frame and the frames that belong to it, and the connection ends
 * with the request. Many execs run side by side on separate connections,
 * so a chatty one never stalls another.
 *
 * A frame is an 8-byte little-endian header, then payload_len bytes:
 *
 *     u32 payload_len   at most AGENT_MAX_REQUEST for EXEC, AGENT_MAX_PAYLOAD otherwise
 *     u16 type          enum agent_msg_type
 *     u16 flags         reserved, 0
 *
 * Payload fields are little-endian, packed, in the order listed below. A
 * "string" is bytes ending with one NUL (no NUL inside); a "string list" is
 * u32 count, then count strings. A payload must be exactly as long as its
 * fields: trailing bytes make it malformed.
 *
 * Whoever receives a malformed frame or a type it does not expect at that
 * point replies ERROR (the agent) or gives up (the host) and closes the
 * connection.
 */
#ifndef CAPSA_AGENT_PROTO_H
#define CAPSA_AGENT_PROTO_H

#define CAPSA_AGENT_PORT 1024
#define AGENT_PROTOCOL_VERSION 1

#define AGENT_HEADER_SIZE 8
#define AGENT_MAX_REQUEST (1024 * 1024)  /* EXEC: argv + env + cwd + user */
#define AGENT_MAX_PAYLOAD (64 * 1024)    /* every other frame, data frames included */
#define AGENT_PATH_MAX 4096              /* path strings, NUL included */
#define AGENT_ERROR_MESSAGE_MAX 1024     /* ERROR's message, NUL included */
#define AGENT_SIGNAL_MAX 64              /* Linux's highest signal number */

/* A value for FILE_WRITE's uid or gid: leave it as the agent creates it (root). */
#define AGENT_ID_KEEP 0xffffffffu

enum agent_msg_type {
	/* ---- requests: the first frame of a connection, host to guest ---- */

	AGENT_PING = 1,            /* empty. Answered with PONG. */

	/* u32 flags (AGENT_EXEC_*), u16 rows, u16 cols (the tty's size; 0 = leave as is),
	 * u32 timeout_ms (0 = none), string list argv (at least one), string list env
	 * ("KEY=VALUE" put over the workload's environment, as `docker exec -e`; PATH
	 * and HOME are added when still missing), string cwd ("" = the workload's
	 * working directory), string user (docker's USER syntax, "" = the workload's
	 * user).
	 * Answered with STARTED or ERROR. After STARTED the host may send STDIN,
	 * STDIN_EOF, SIGNAL and RESIZE; the guest sends STDOUT and STDERR, then EXIT
	 * last. A command that cannot be found or run still starts: it exits 127
	 * (not found) or 126 with the reason on its stderr, as in a shell. If the
	 * connection goes away first, the agent kills the process group. */
	AGENT_EXEC = 2,

	/* u32 mode (permission bits), u32 uid, u32 gid (AGENT_ID_KEEP = leave),
	 * string path (absolute). Followed by DATA frames with the content and END.
	 * The file is written next to path and renamed over it: readers see the old
	 * or the new content, never a part. Answered with OK or ERROR (after END, or
	 * early when the frames are malformed). */
	AGENT_FILE_WRITE = 3,

	/* string path (absolute). Answered with DATA frames and END, or ERROR at any
	 * point (instead of END). */
	AGENT_FILE_READ = 4,

	/* string path (absolute; symlinks followed). Answered with STAT_RESULT or ERROR. */
	AGENT_STAT = 5,

	/* u32 signo (1 .. AGENT_SIGNAL_MAX). Sent to the workload's process group.
	 * Answered with OK or ERROR. */
	AGENT_WORKLOAD_SIGNAL = 6,

	/* Only to a guest booted in standby (CAPSA_CFG_STANDBY), which is how
	 * snapshots are taken: init has everything up but the workload.
	 * u32 flags (AGENT_START_*), string hostname, string list argv (at least
	 * one), string list env (the workload's, as CAPSA_CFG_ENV), string workdir
	 * ("" = /), string user ("" = root). Init starts the workload as a cold
	 * boot would have; execs inherit it from then on. Answered with STARTED
	 * (pid; 0 with AGENT_START_HOLD) or ERROR. Only the first START counts. */
	AGENT_START = 7,

	/* u64 realtime_sec, u32 realtime_nsec, 64 bytes of entropy. Sent first to a
	 * guest restored from a snapshot: sets the wall clock and reseeds the
	 * kernel's random number generator, so clones of one snapshot neither
	 * live in the past nor share their random numbers. Answered with OK. */
	AGENT_RESTORED = 8,

	/* ---- during an exec, host to guest ---- */

	AGENT_STDIN = 16,          /* data for the process's stdin (ignored if it was not opened) */
	AGENT_STDIN_EOF = 17,      /* empty. Closes stdin; on a tty, types the EOF character. */
	AGENT_SIGNAL = 18,         /* u32 signo (1 .. AGENT_SIGNAL_MAX). Sent to the process group. */
	AGENT_RESIZE = 19,         /* u16 rows, u16 cols. The tty's new size (ignored without a tty). */

	/* ---- replies and data, guest to host ---- */

	AGENT_PONG = 32,           /* u32 protocol version (AGENT_PROTOCOL_VERSION) */
	AGENT_OK = 33,             /* empty */
	AGENT_ERROR = 34,          /* i32 errno value (> 0), string message (one line) */
	AGENT_STARTED = 35,        /* u32 pid (in the guest) */
	AGENT_STDOUT = 36,         /* data; with a tty, everything the process writes */
	AGENT_STDERR = 37,         /* data */

	/* i32 exit_code (the status, or 128 + signal), u32 signal (0 if it exited),
	 * u64 duration_us (start to exit), u64 peak_rss_kib (largest resident set of
	 * the process and its waited-for children), u32 flags (AGENT_EXIT_*).
	 * Sent once the process has exited and its output has been relayed (or has
	 * stayed open past a short grace: background children may hold it). */
	AGENT_EXIT = 38,

	/* u32 mode (type and permission bits), u32 uid, u32 gid, u64 size,
	 * i64 mtime_sec, u32 mtime_nsec */
	AGENT_STAT_RESULT = 39,

	/* ---- either direction ---- */

	AGENT_DATA = 48,           /* file content, up to AGENT_MAX_PAYLOAD bytes */
	AGENT_END = 49,            /* empty. The end of a file's DATA frames. */
};

enum {
	AGENT_EXEC_TTY = 1 << 0,   /* run on a new pty: stdin, stdout and stderr */
	AGENT_EXEC_STDIN = 1 << 1, /* the host sends stdin; otherwise stdin is /dev/null */
};
#define AGENT_EXEC_FLAGS_ALL (AGENT_EXEC_TTY | AGENT_EXEC_STDIN)

enum {
	AGENT_START_HOLD = 1 << 0, /* start no process: the workload comes as an exec (interactive runs) */
};
#define AGENT_START_FLAGS_ALL AGENT_START_HOLD
#define AGENT_ENTROPY_BYTES 64

enum {
	AGENT_EXIT_TIMED_OUT = 1 << 0,  /* killed (SIGKILL) because timeout_ms passed */
};
#define AGENT_EXIT_FLAGS_ALL AGENT_EXIT_TIMED_OUT

#endif
