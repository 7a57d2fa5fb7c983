/* The host's side of the guest agent protocol (src/common/agent_proto.h).
 *
 * One request per connection: connect with agent_connect, make one
 * request on the fd, close it. Several connections may be open at once
 * (an exec's stream never holds up another's).
 *
 * Everything the guest sends is untrusted: frames are checked by the
 * codec, and its error messages are reduced to one printable line. An
 * ERROR from the agent fails the call with the guest's errno and message.
 * Functions block; those waiting for an answer that should come at once
 * (not an exec's end) give up after AGENT_REPLY_TIMEOUT_MS.
 */
#ifndef CAPSA_AGENT_CLIENT_H
#define CAPSA_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa.h"
#include "agent_codec.h"

#define AGENT_REPLY_TIMEOUT_MS 30000

enum {
	/* socket_path is the agent's own listening socket (a host build of the
	 * agent, in tests), not a VM's vsock socket: no CONNECT handshake. */
	AGENT_CONNECT_DIRECT = 1 << 0,
};

/* Connects to the guest's vsock port through the VM's vsock Unix socket:
 * "CONNECT <port>\n", then "OK <n>\n" back. Fails with ECONNREFUSED if
 * nothing listens on that port in the guest (yet), ETIMEDOUT if no answer
 * comes within timeout_ms (< 0: wait as long as it takes). Returns the
 * connected fd (blocking, close-on-exec). */
int agent_connect(const char *socket_path, uint32_t port, unsigned flags, int timeout_ms, capsa_error *err);

/* Sends PING on a fresh connection fd and waits for PONG. */
int agent_ping(int fd, int timeout_ms, capsa_error *err);

/* Connects and pings until the agent answers (it starts with the guest) or
 * timeout_ms pass. */
int agent_wait_ready(const char *socket_path, uint32_t port, unsigned flags, int timeout_ms, capsa_error *err);

/* ---- exec ---- */

struct agent_frame {
	struct agent_header hdr;
	uint8_t payload[AGENT_MAX_PAYLOAD];
};

/* Sends EXEC and waits for STARTED; returns the process's pid in the guest.
 * Then the fd carries the exec's frames: send with the agent_send_*
 * functions, read with agent_read_frame until EXIT (agent_decode_exit), or
 * let agent_exec_wait do both. */
int agent_exec_start(int fd, const struct agent_exec_request *req, capsa_error *err);

/* len bytes of stdin, in as many frames as it takes. */
int agent_send_stdin(int fd, const void *data, size_t len, capsa_error *err);
int agent_send_stdin_eof(int fd, capsa_error *err);
/* To the process group. */
int agent_send_signal(int fd, int signo, capsa_error *err);
int agent_send_resize(int fd, uint16_t rows, uint16_t cols, capsa_error *err);

/* Reads the next frame (timeout_ms < 0: no limit). The header is checked;
 * the payload is for the caller to decode. */
int agent_read_frame(int fd, struct agent_frame *f, int timeout_ms, capsa_error *err);

struct agent_exec_output {
	struct agent_exit exit;
	char *out, *err;            /* NUL-terminated after out_len / err_len bytes */
	size_t out_len, err_len;
	bool out_truncated, err_truncated;  /* more came than output_cap */
};

/* After agent_exec_start: copies stdin_fd (-1: none) to the process's stdin
 * (then STDIN_EOF) while collecting its stdout and stderr, up to output_cap
 * bytes each (the rest is read and dropped), until EXIT. The fd's blocking
 * mode is restored on return. Free out with agent_exec_output_free, also
 * after a failure. */
int agent_exec_wait(int fd, int stdin_fd, size_t output_cap, struct agent_exec_output *out, capsa_error *err);

/* agent_exec_start + agent_exec_wait. */
int agent_exec_collect(int fd, const struct agent_exec_request *req, int stdin_fd, size_t output_cap,
		       struct agent_exec_output *out, capsa_error *err);

void agent_exec_output_free(struct agent_exec_output *out);

/* ---- files and the workload ---- */

/* Writes the guest file req->path from src_fd (read to its end) or from
 * data[0..len), atomically (agent_proto.h, FILE_WRITE). */
int agent_file_write_fd(int fd, const struct agent_file_write *req, int src_fd, capsa_error *err);
int agent_file_write_buf(int fd, const struct agent_file_write *req, const void *data, size_t len,
			 capsa_error *err);

/* Copies the guest's regular file path to dst_fd; *size (may be NULL) gets
 * the bytes copied. On failure dst_fd may hold part of the file. */
int agent_file_read(int fd, const char *path, int dst_fd, uint64_t *size, capsa_error *err);

int agent_stat(int fd, const char *path, struct agent_stat_result *st, capsa_error *err);

/* Sends signo to the workload's process group. */
int agent_signal_workload(int fd, int signo, capsa_error *err);
/* Only sends the request: for a signal that may end the VM before the
 * agent's answer can leave it. */
int agent_send_workload_signal(int fd, int signo, capsa_error *err);
/* Waits for the answer to agent_send_workload_signal. */
int agent_read_workload_signal_reply(int fd, capsa_error *err);

/* Sends START to a guest in standby; returns the workload's pid (0 for a
 * held workload) or -1. While waiting for the answer, gives up as soon as
 * give_up(opaque) returns true (may be NULL). */
int agent_start_workload(int fd, const struct agent_start_request *req, bool (*give_up)(void *), void *opaque,
			 capsa_error *err);

/* Sends RESTORED (clock and entropy) to a guest just restored. */
int agent_restored(int fd, const struct agent_restored *restored, capsa_error *err);

#endif
