/* The public exec, file and signal calls: each opens its own connection to
 * the guest agent through a VM's control socket (agent/client.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/client.h"
#include "agent_proto.h"
#include "capsa.h"
#include "util/error.h"

/* Connecting to an agent that is up takes a round trip through the guest;
 * more than this means the VM is gone or stuck. */
#define CONNECT_TIMEOUT_MS 30000

struct capsa_exec {
	int fd;
	bool exited;
	struct agent_frame frame;
};

static int connect_agent(const char *control_socket, capsa_error *err)
{
	if (!control_socket || !*control_socket) {
		error_set(err, EINVAL, "no control socket given");
		return -1;
	}
	int fd = agent_connect(control_socket, CAPSA_AGENT_PORT, 0, CONNECT_TIMEOUT_MS, err);
	if (fd < 0)
		error_prefix(err, "cannot reach the VM's agent at %s", control_socket);
	return fd;
}

static void to_request(const capsa_exec_options *o, struct agent_exec_request *req)
{
	*req = (struct agent_exec_request){
		.argv = o->argv,
		.env = o->env,
		.cwd = o->workdir,
		.user = o->user,
		.flags = (o->tty ? AGENT_EXEC_TTY : 0) | (o->stdin_open ? AGENT_EXEC_STDIN : 0),
		.rows = o->rows,
		.cols = o->cols,
		.timeout_ms = o->timeout_ms,
	};
}

static void to_result(const struct agent_exit *ex, capsa_exec_result *r)
{
	*r = (capsa_exec_result){
		.exit_status = ex->exit_code,
		.signal = (int)ex->signal,
		.timed_out = (ex->flags & AGENT_EXIT_TIMED_OUT) != 0,
		.duration_us = ex->duration_us,
		.peak_rss_kib = ex->peak_rss_kib,
	};
}

static int check_options(const capsa_exec_options *o, capsa_error *err)
{
	if (!o || !o->argv || !o->argv[0] || !o->argv[0][0])
		return error_set(err, EINVAL, "no command to run");
	return 0;
}

CAPSA_API capsa_exec *capsa_exec_start(const char *control_socket, const capsa_exec_options *opts,
				       capsa_error *err)
{
	struct agent_exec_request req;

	if (check_options(opts, err) < 0)
		return NULL;
	capsa_exec *ex = calloc(1, sizeof(*ex));
	if (!ex) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	ex->fd = connect_agent(control_socket, err);
	to_request(opts, &req);
	if (ex->fd < 0 || agent_exec_start(ex->fd, &req, err) < 0) {
		capsa_exec_free(ex);
		return NULL;
	}
	return ex;
}

CAPSA_API int capsa_exec_fd(const capsa_exec *ex)
{
	return ex->fd;
}

CAPSA_API int capsa_exec_write(capsa_exec *ex, const void *data, size_t len, capsa_error *err)
{
	return agent_send_stdin(ex->fd, data, len, err);
}

CAPSA_API int capsa_exec_close_stdin(capsa_exec *ex, capsa_error *err)
{
	return agent_send_stdin_eof(ex->fd, err);
}

CAPSA_API int capsa_exec_signal(capsa_exec *ex, int signo, capsa_error *err)
{
	return agent_send_signal(ex->fd, signo, err);
}

CAPSA_API int capsa_exec_resize(capsa_exec *ex, uint16_t rows, uint16_t cols, capsa_error *err)
{
	return agent_send_resize(ex->fd, rows, cols, err);
}

CAPSA_API int capsa_exec_next(capsa_exec *ex, capsa_exec_event *ev, capsa_error *err)
{
	struct agent_exit exit_info;

	memset(ev, 0, sizeof(*ev));
	if (ex->exited)
		return error_set(err, EINVAL, "the process has already exited");
	if (agent_read_frame(ex->fd, &ex->frame, -1, err) < 0)
		return error_prefix(err, "reading from the guest agent");
	switch (ex->frame.hdr.type) {
	case AGENT_STDOUT:
	case AGENT_STDERR:
		ev->kind = ex->frame.hdr.type == AGENT_STDOUT ? CAPSA_EXEC_STDOUT : CAPSA_EXEC_STDERR;
		ev->data = ex->frame.payload;
		ev->len = ex->frame.hdr.len;
		return 0;
	case AGENT_EXIT:
		if (agent_decode_exit(ex->frame.payload, ex->frame.hdr.len, &exit_info) < 0)
			return error_set(err, EPROTO, "the guest agent sent a malformed exit report");
		ev->kind = CAPSA_EXEC_EXIT;
		to_result(&exit_info, &ev->result);
		ex->exited = true;
		return 0;
	default:
		return error_set(err, EPROTO, "the guest agent sent an unexpected message (type %u)",
				 (unsigned)ex->frame.hdr.type);
	}
}

CAPSA_API void capsa_exec_free(capsa_exec *ex)
{
	if (!ex)
		return;
	/* Closing the connection makes the agent kill a process still running. */
	if (ex->fd >= 0)
		close(ex->fd);
	free(ex);
}

CAPSA_API int capsa_exec_run(const char *control_socket, const capsa_exec_options *opts, const void *stdin_data,
			     size_t stdin_len, size_t max_output, char **out, size_t *out_len, char **errout,
			     size_t *errout_len, capsa_exec_result *result, capsa_error *err)
{
	struct agent_exec_request req;
	struct agent_exec_output output = { 0 };
	int stdin_fd = -1;

	if (check_options(opts, err) < 0)
		return -1;
	if (opts->stdin_open && stdin_len) {
		/* The client streams stdin from an fd: a pipe fed by nothing
		 * else works for data that fits its buffer; larger data goes
		 * through a temporary file. */
		char path[] = "/tmp/capsa-stdin-XXXXXX";
		stdin_fd = mkstemp(path);
		if (stdin_fd < 0)
			return error_set_errno(err, errno, "creating a temporary file for stdin");
		unlink(path);
		const char *p = stdin_data;
		for (size_t done = 0; done < stdin_len;) {
			ssize_t n = write(stdin_fd, p + done, stdin_len - done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				int e = errno;
				close(stdin_fd);
				return error_set_errno(err, e, "buffering stdin");
			}
			done += (size_t)n;
		}
		lseek(stdin_fd, 0, SEEK_SET);
	}
	int fd = connect_agent(control_socket, err);
	to_request(opts, &req);
	int r = fd < 0 ? -1 : agent_exec_collect(fd, &req, stdin_fd, max_output, &output, err);
	if (fd >= 0)
		close(fd);
	if (stdin_fd >= 0)
		close(stdin_fd);
	if (r == 0) {
		if (result)
			to_result(&output.exit, result);
		if (out) {
			*out = output.out;
			output.out = NULL;
			*out_len = output.out_len;
		}
		if (errout) {
			*errout = output.err;
			output.err = NULL;
			*errout_len = output.err_len;
		}
	}
	agent_exec_output_free(&output);
	return r;
}

CAPSA_API int capsa_file_write(const char *control_socket, const char *guest_path, uint32_t mode, int src_fd,
			       capsa_error *err)
{
	struct agent_file_write req = { .path = guest_path, .mode = mode & 07777, .uid = AGENT_ID_KEEP,
					.gid = AGENT_ID_KEEP };
	int fd = connect_agent(control_socket, err);
	if (fd < 0)
		return -1;
	int r = agent_file_write_fd(fd, &req, src_fd, err);
	close(fd);
	return r < 0 ? error_prefix(err, "writing %s in the guest", guest_path) : 0;
}

CAPSA_API int capsa_file_read(const char *control_socket, const char *guest_path, int dst_fd, capsa_error *err)
{
	int fd = connect_agent(control_socket, err);
	if (fd < 0)
		return -1;
	int r = agent_file_read(fd, guest_path, dst_fd, NULL, err);
	close(fd);
	return r < 0 ? error_prefix(err, "reading %s in the guest", guest_path) : 0;
}

CAPSA_API int capsa_workload_signal(const char *control_socket, int signo, capsa_error *err)
{
	int fd = connect_agent(control_socket, err);
	if (fd < 0)
		return -1;
	capsa_error reply_err = { 0 };
	int r = agent_send_workload_signal(fd, signo, err);
	if (r == 0 && agent_read_workload_signal_reply(fd, &reply_err) < 0) {
		/* A signal that ends the workload ends the VM too, possibly before
		 * the agent's answer leaves it: a closed connection is that. */
		if (reply_err.code != ECONNRESET) {
			if (err)
				*err = reply_err;
			r = -1;
		}
	}
	close(fd);
	return r;
}
