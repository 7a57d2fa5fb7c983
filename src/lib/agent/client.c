#include "agent/client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"

/* ---- I/O with deadlines ---------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_after(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

static int ms_left(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Waits for events on fd until deadline (-1: none). */
static int wait_fd(int fd, short events, int64_t deadline, capsa_error *err)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int n = poll(&pfd, 1, ms_left(deadline));
		if (n > 0)
			return 0;
		if (n == 0)
			return error_set(err, ETIMEDOUT, "the guest agent did not answer in time");
		if (errno != EINTR)
			return error_set_errno(err, errno, "poll");
	}
}

/* Sends everything (the fd may be non-blocking); never raises SIGPIPE. */
static int send_all(int fd, const void *buf, size_t len, capsa_error *err)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				if (wait_fd(fd, POLLOUT, -1, err) < 0)
					return -1;
				continue;
			}
			return error_set_errno(err, errno, "sending to the guest agent");
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_exact(int fd, void *buf, size_t len, int64_t deadline, capsa_error *err)
{
	uint8_t *p = buf;

	while (len > 0) {
		if (wait_fd(fd, POLLIN, deadline, err) < 0)
			return -1;
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return error_set_errno(err, errno, "reading from the guest agent");
		}
		if (n == 0)
			return error_set(err, ECONNRESET, "the guest agent closed the connection");
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Sends a frame an encoder produced (0: it refused the message). */
static int send_frame(int fd, const void *frame, size_t len, capsa_error *err)
{
	if (len == 0)
		return error_set(err, EINVAL, "the request cannot be encoded (too large or invalid)");
	return send_all(fd, frame, len, err);
}

static int send_empty(int fd, uint16_t type, capsa_error *err)
{
	uint8_t frame[AGENT_HEADER_SIZE];

	return send_frame(fd, frame, agent_encode_empty(frame, sizeof(frame), type), err);
}

int agent_read_frame(int fd, struct agent_frame *f, int timeout_ms, capsa_error *err)
{
	int64_t deadline = deadline_after(timeout_ms);
	uint8_t raw[AGENT_HEADER_SIZE];

	if (recv_exact(fd, raw, sizeof(raw), deadline, err) < 0)
		return -1;
	if (agent_decode_header(raw, &f->hdr) < 0 || f->hdr.len > sizeof(f->payload))
		return error_set(err, EPROTO, "malformed frame header from the guest agent");
	return recv_exact(fd, f->payload, f->hdr.len, deadline, err);
}

/* A frame that is not what the request expects: the agent's ERROR becomes
 * err, anything else is a protocol error. */
static int unexpected_frame(const struct agent_frame *f, capsa_error *err)
{
	struct agent_error e;

	if (f->hdr.type != AGENT_ERROR)
		return error_set(err, EPROTO, "unexpected %s frame from the guest agent", agent_msg_name(f->hdr.type));
	if (agent_decode_error(f->payload, f->hdr.len, &e) < 0)
		return error_set(err, EPROTO, "malformed ERROR frame from the guest agent");
	return error_set(err, e.code, "%s", e.message);
}

/* Reads the answer to a request, which must be of type want. */
static int read_reply(int fd, struct agent_frame *f, uint16_t want, capsa_error *err)
{
	if (agent_read_frame(fd, f, AGENT_REPLY_TIMEOUT_MS, err) < 0)
		return -1;
	return f->hdr.type == want ? 0 : unexpected_frame(f, err);
}

static struct agent_frame *frame_new(capsa_error *err)
{
	struct agent_frame *f = malloc(sizeof(*f));

	if (!f)
		error_set(err, ENOMEM, "out of memory");
	return f;
}

/* ---- connecting ----------------------------------------------------------- */

/* Reads the vsock device's answer to CONNECT, a byte at a time: what
 * follows it belongs to the agent. */
static int read_connect_answer(int fd, uint32_t port, int64_t deadline, capsa_error *err)
{
	char line[32];
	size_t len = 0;

	for (;;) {
		char ch;
		if (wait_fd(fd, POLLIN, deadline, err) < 0)
			return -1;
		ssize_t n = read(fd, &ch, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set_errno(err, errno, "reading the answer to CONNECT %u", port);
		if (n == 0)
			return error_set(err, ECONNREFUSED, "nothing listens on vsock port %u in the guest (yet)", port);
		if (ch == '\n')
			break;
		if (len == sizeof(line) - 1)
			return error_set(err, EPROTO, "the answer to CONNECT %u is too long", port);
		line[len++] = ch;
	}
	line[len] = '\0';
	if (strncmp(line, "OK ", 3) != 0 || !line[3] || strspn(line + 3, "0123456789") != len - 3)
		return error_set(err, EPROTO, "unexpected answer to CONNECT %u: '%s'", port, line);
	return 0;
}

int agent_connect(const char *socket_path, uint32_t port, unsigned flags, int timeout_ms, capsa_error *err)
{
	int64_t deadline = deadline_after(timeout_ms);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	char request[32];

	if (strlen(socket_path) >= sizeof(addr.sun_path))
		return error_set(err, ENAMETOOLONG, "socket path %s is too long", socket_path);
	strcpy(addr.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_set_errno(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return error_set_errno(err, errno, "connect to %s", socket_path);
	if (!(flags & AGENT_CONNECT_DIRECT)) {
		snprintf(request, sizeof(request), "CONNECT %u\n", port);
		if (send_all(fd, request, strlen(request), err) < 0 ||
		    read_connect_answer(fd, port, deadline, err) < 0)
			return -1;
	}
	return steal_fd(&fd);
}

int agent_ping(int fd, int timeout_ms, capsa_error *err)
{
	_cleanup_free_ struct agent_frame *f = frame_new(err);
	uint32_t version;

	if (!f || send_empty(fd, AGENT_PING, err) < 0 || agent_read_frame(fd, f, timeout_ms, err) < 0)
		return -1;
	if (f->hdr.type != AGENT_PONG)
		return unexpected_frame(f, err);
	if (agent_decode_u32(f->payload, f->hdr.len, &version) < 0)
		return error_set(err, EPROTO, "malformed PONG from the guest agent");
	if (version != AGENT_PROTOCOL_VERSION)
		return error_set(err, EPROTO, "the guest agent speaks protocol version %u, this capsa %u: "
				 "use the guest init built with it", version, AGENT_PROTOCOL_VERSION);
	return 0;
}

int agent_wait_ready(const char *socket_path, uint32_t port, unsigned flags, int timeout_ms, capsa_error *err)
{
	int64_t deadline = deadline_after(timeout_ms);
	capsa_error last = { 0 };

	for (;;) {
		int fd = agent_connect(socket_path, port, flags, ms_left(deadline), &last);
		if (fd >= 0) {
			int r = agent_ping(fd, ms_left(deadline), &last);
			close(fd);
			if (r == 0)
				return 0;
			if (last.code == EPROTO)
				break;  /* it answers, wrongly: waiting will not help */
		}
		if (deadline >= 0 && ms_left(deadline) == 0)
			break;
		poll(NULL, 0, 10);
	}
	return error_set(err, last.code, "the guest agent did not become ready within %d ms: %s", timeout_ms,
			 last.message);
}

/* ---- exec --------------------------------------------------------------------- */

int agent_exec_start(int fd, const struct agent_exec_request *req, capsa_error *err)
{
	_cleanup_free_ struct agent_frame *f = frame_new(err);
	_cleanup_free_ uint8_t *frame = NULL;
	size_t len = agent_encode_exec(NULL, 0, req);
	uint32_t pid;

	if (!f)
		return -1;
	if (len == 0)
		return error_set(err, E2BIG, "the command cannot be sent: no argv, a relative working directory, "
				 "or argv and environment over %d bytes", AGENT_MAX_REQUEST);
	frame = malloc(len);
	if (!frame)
		return error_set(err, ENOMEM, "out of memory");
	agent_encode_exec(frame, len, req);
	if (send_all(fd, frame, len, err) < 0 || read_reply(fd, f, AGENT_STARTED, err) < 0)
		return -1;
	if (agent_decode_u32(f->payload, f->hdr.len, &pid) < 0 || pid == 0 || pid > INT32_MAX)
		return error_set(err, EPROTO, "malformed STARTED from the guest agent");
	return (int)pid;
}

/* ---- standby and restore ------------------------------------------------------- */

int agent_start_workload(int fd, const struct agent_start_request *req, bool (*give_up)(void *), void *opaque,
			 capsa_error *err)
{
	_cleanup_free_ struct agent_frame *f = frame_new(err);
	_cleanup_free_ uint8_t *frame = NULL;
	size_t len = agent_encode_start(NULL, 0, req);
	uint32_t pid;

	if (!f)
		return -1;
	if (len == 0)
		return error_set(err, E2BIG, "the workload cannot be sent: no command, a relative working directory, "
				 "or command and environment over %d bytes", AGENT_MAX_REQUEST);
	frame = malloc(len);
	if (!frame)
		return error_set(err, ENOMEM, "out of memory");
	agent_encode_start(frame, len, req);
	if (send_all(fd, frame, len, err) < 0)
		return -1;
	/* A workload that cannot start (an unknown user, say) ends the VM
	 * instead of answering: look for that while waiting. */
	struct pollfd p = { .fd = fd, .events = POLLIN };
	for (int waited = 0; poll(&p, 1, 200) == 0; waited += 200) {
		if ((give_up && give_up(opaque)) || waited >= AGENT_REPLY_TIMEOUT_MS)
			return error_set(err, ETIMEDOUT, "the guest agent did not answer START");
	}
	if (read_reply(fd, f, AGENT_STARTED, err) < 0)
		return -1;
	if (agent_decode_u32(f->payload, f->hdr.len, &pid) < 0 || pid > INT32_MAX)
		return error_set(err, EPROTO, "malformed STARTED from the guest agent");
	return (int)pid;
}

int agent_restored(int fd, const struct agent_restored *restored, capsa_error *err)
{
	_cleanup_free_ struct agent_frame *f = frame_new(err);
	uint8_t frame[AGENT_HEADER_SIZE + 12 + AGENT_ENTROPY_BYTES];
	size_t len = agent_encode_restored(frame, sizeof(frame), restored);

	if (!f)
		return -1;
	if (len == 0 || len > sizeof(frame))
		return error_set(err, EINVAL, "bad RESTORED request");
	if (send_all(fd, frame, len, err) < 0 || read_reply(fd, f, AGENT_OK, err) < 0)
		return -1;
	return 0;
}

int agent_send_stdin(int fd, const void *data, size_t len, capsa_error *err)
{
	const uint8_t *p = data;
	uint8_t header[AGENT_HEADER_SIZE];

	while (len > 0) {
		size_t n = len < AGENT_MAX_PAYLOAD ? len : AGENT_MAX_PAYLOAD;
		agent_encode_header(header, sizeof(header), AGENT_STDIN, n);
		if (send_all(fd, header, sizeof(header), err) < 0 || send_all(fd, p, n, err) < 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

int agent_send_stdin_eof(int fd, capsa_error *err)
{
	return send_empty(fd, AGENT_STDIN_EOF, err);
}

int agent_send_signal(int fd, int signo, capsa_error *err)
{
	uint8_t frame[AGENT_HEADER_SIZE + 4];

	if (signo < 1 || signo > AGENT_SIGNAL_MAX)
		return error_set(err, EINVAL, "%d is not a signal number", signo);
	return send_frame(fd, frame, agent_encode_u32(frame, sizeof(frame), AGENT_SIGNAL, (uint32_t)signo), err);
}

int agent_send_resize(int fd, uint16_t rows, uint16_t cols, capsa_error *err)
{
	uint8_t frame[AGENT_HEADER_SIZE + 4];

	return send_frame(fd, frame, agent_encode_resize(frame, sizeof(frame), rows, cols), err);
}

/* One output stream collected into a growing buffer, up to a cap. */
static int append_output(char **buf, size_t *len, bool *truncated, size_t cap, const uint8_t *data, size_t n,
			 capsa_error *err)
{
	size_t room = cap - *len;
	char *grown;

	if (n > room) {
		*truncated = true;
		n = room;
	}
	if (n == 0)
		return 0;
	grown = realloc(*buf, *len + n + 1);
	if (!grown)
		return error_set(err, ENOMEM, "out of memory collecting the command's output");
	memcpy(grown + *len, data, n);
	*len += n;
	grown[*len] = '\0';
	*buf = grown;
	return 0;
}

/* The relay of agent_exec_wait: both directions at once, neither blocking
 * the other, since the agent holds back output until we read and we must
 * keep reading while stdin waits for room. */
struct exec_wait {
	int fd;
	int stdin_fd;
	size_t cap;
	struct agent_exec_output *out;
	uint8_t in_raw[AGENT_HEADER_SIZE];
	struct agent_frame in;        /* the frame being received */
	size_t in_len;                /* bytes of it so far, header included */
	uint8_t pending[AGENT_HEADER_SIZE + AGENT_MAX_PAYLOAD];  /* the frame being sent */
	size_t pending_len, pending_off;
	bool stdin_done;
	bool exited;
};

/* Sends what it can of the pending frame. */
static int wait_flush(struct exec_wait *w, capsa_error *err)
{
	ssize_t n = send(w->fd, w->pending + w->pending_off, w->pending_len - w->pending_off, MSG_NOSIGNAL);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		if (errno != EPIPE && errno != ECONNRESET)
			return error_set_errno(err, errno, "sending stdin to the guest agent");
		/* The agent finished the exec and closed while stdin was still
		 * coming: the EXIT may be waiting to be read. */
		w->pending_len = w->pending_off = 0;
		w->stdin_done = true;
		return 0;
	}
	w->pending_off += (size_t)n;
	if (w->pending_off == w->pending_len)
		w->pending_len = w->pending_off = 0;
	return 0;
}

/* Turns the next piece of stdin (or its end) into the pending frame. */
static int wait_read_stdin(struct exec_wait *w, capsa_error *err)
{
	ssize_t n = read(w->stdin_fd, w->pending + AGENT_HEADER_SIZE, AGENT_MAX_PAYLOAD);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		return error_set_errno(err, errno, "reading the command's stdin");
	}
	if (n == 0) {
		w->pending_len = agent_encode_empty(w->pending, sizeof(w->pending), AGENT_STDIN_EOF);
		w->stdin_done = true;
	} else {
		agent_encode_header(w->pending, AGENT_HEADER_SIZE, AGENT_STDIN, (size_t)n);
		w->pending_len = AGENT_HEADER_SIZE + (size_t)n;
	}
	w->pending_off = 0;
	return 0;
}

static int wait_handle_frame(struct exec_wait *w, capsa_error *err)
{
	struct agent_exec_output *o = w->out;
	const struct agent_frame *f = &w->in;

	switch (f->hdr.type) {
	case AGENT_STDOUT:
		return append_output(&o->out, &o->out_len, &o->out_truncated, w->cap, f->payload, f->hdr.len, err);
	case AGENT_STDERR:
		return append_output(&o->err, &o->err_len, &o->err_truncated, w->cap, f->payload, f->hdr.len, err);
	case AGENT_EXIT:
		if (agent_decode_exit(f->payload, f->hdr.len, &o->exit) < 0)
			return error_set(err, EPROTO, "malformed EXIT from the guest agent");
		w->exited = true;
		return 0;
	}
	return unexpected_frame(f, err);
}

/* Takes in more of the agent's current frame. */
static int wait_receive(struct exec_wait *w, capsa_error *err)
{
	size_t want;
	ssize_t n;

	if (w->in_len < AGENT_HEADER_SIZE)
		want = AGENT_HEADER_SIZE - w->in_len;
	else
		want = AGENT_HEADER_SIZE + w->in.hdr.len - w->in_len;
	n = read(w->fd, w->in_len < AGENT_HEADER_SIZE ? w->in_raw + w->in_len
						   : w->in.payload + (w->in_len - AGENT_HEADER_SIZE), want);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		return error_set_errno(err, errno, "reading from the guest agent");
	}
	if (n == 0)
		return error_set(err, ECONNRESET, "the guest agent closed the connection before the command's exit");
	w->in_len += (size_t)n;
	if (w->in_len == AGENT_HEADER_SIZE &&
	    (agent_decode_header(w->in_raw, &w->in.hdr) < 0 || w->in.hdr.len > AGENT_MAX_PAYLOAD))
		return error_set(err, EPROTO, "malformed frame header from the guest agent");
	if (w->in_len >= AGENT_HEADER_SIZE && w->in_len == AGENT_HEADER_SIZE + w->in.hdr.len) {
		w->in_len = 0;
		return wait_handle_frame(w, err);
	}
	return 0;
}

static int exec_wait_loop(struct exec_wait *w, capsa_error *err)
{
	while (!w->exited) {
		bool want_stdin = w->stdin_fd >= 0 && !w->stdin_done && w->pending_len == 0;
		struct pollfd pfd[2] = {
			{ .fd = w->fd, .events = POLLIN | (w->pending_len ? POLLOUT : 0) },
			{ .fd = want_stdin ? w->stdin_fd : -1, .events = POLLIN },
		};

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return error_set_errno(err, errno, "poll");
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR) && wait_receive(w, err) < 0)
			return -1;
		if (w->exited)
			break;
		if (pfd[0].revents & POLLOUT && wait_flush(w, err) < 0)
			return -1;
		if (pfd[1].revents && wait_read_stdin(w, err) < 0)
			return -1;
	}
	return 0;
}

int agent_exec_wait(int fd, int stdin_fd, size_t output_cap, struct agent_exec_output *out, capsa_error *err)
{
	_cleanup_free_ struct exec_wait *w = calloc(1, sizeof(*w));
	int flags = fcntl(fd, F_GETFL);
	int r;

	memset(out, 0, sizeof(*out));
	if (!w)
		return error_set(err, ENOMEM, "out of memory");
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return error_set_errno(err, errno, "fcntl");
	w->fd = fd;
	w->stdin_fd = stdin_fd;
	w->cap = output_cap;
	w->out = out;
	r = exec_wait_loop(w, err);
	fcntl(fd, F_SETFL, flags);
	/* Empty strings rather than NULL for output that never came. */
	if (r == 0 && ((!out->out && !(out->out = calloc(1, 1))) || (!out->err && !(out->err = calloc(1, 1)))))
		return error_set(err, ENOMEM, "out of memory");
	return r;
}

int agent_exec_collect(int fd, const struct agent_exec_request *req, int stdin_fd, size_t output_cap,
		       struct agent_exec_output *out, capsa_error *err)
{
	memset(out, 0, sizeof(*out));
	if (agent_exec_start(fd, req, err) < 0)
		return -1;
	return agent_exec_wait(fd, stdin_fd, output_cap, out, err);
}

void agent_exec_output_free(struct agent_exec_output *out)
{
	free(out->out);
	free(out->err);
	out->out = out->err = NULL;
}

/* ---- files and the workload ---------------------------------------------------- */

static size_t encode_file_write(uint8_t frame[AGENT_SMALL_FRAME_MAX], const struct agent_file_write *req,
				capsa_error *err)
{
	size_t len = agent_encode_file_write(frame, AGENT_SMALL_FRAME_MAX, req);

	if (len == 0)
		error_set(err, EINVAL, "cannot write guest file '%s': the path must be absolute and "
			  "shorter than %d bytes, the mode at most 07777", req->path ? req->path : "", AGENT_PATH_MAX);
	return len;
}

static int send_data(int fd, const void *data, size_t len, capsa_error *err)
{
	uint8_t header[AGENT_HEADER_SIZE];

	agent_encode_header(header, sizeof(header), AGENT_DATA, len);
	if (send_all(fd, header, sizeof(header), err) < 0)
		return -1;
	return send_all(fd, data, len, err);
}

/* The agent's answer to a FILE_WRITE. If sending the data failed, the
 * agent may have refused the request early: its ERROR says why. */
static int file_write_result(int fd, int send_result, capsa_error *err)
{
	_cleanup_free_ struct agent_frame *f = frame_new(err);

	if (!f)
		return -1;
	if (send_result < 0) {
		capsa_error ignored;
		if (agent_read_frame(fd, f, 1000, &ignored) == 0 && f->hdr.type == AGENT_ERROR)
			return unexpected_frame(f, err);
		return -1;
	}
	return read_reply(fd, f, AGENT_OK, err);
}

int agent_file_write_fd(int fd, const struct agent_file_write *req, int src_fd, capsa_error *err)
{
	_cleanup_free_ uint8_t *buf = malloc(AGENT_MAX_PAYLOAD);
	uint8_t frame[AGENT_SMALL_FRAME_MAX];
	size_t len = encode_file_write(frame, req, err);
	int r;

	if (len == 0)
		return -1;
	if (!buf)
		return error_set(err, ENOMEM, "out of memory");
	if (send_all(fd, frame, len, err) < 0)
		return file_write_result(fd, -1, err);
	for (;;) {
		ssize_t n = read(src_fd, buf, AGENT_MAX_PAYLOAD);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set_errno(err, errno, "reading the data for guest file %s", req->path);
		if (n == 0)
			break;
		if ((r = send_data(fd, buf, (size_t)n, err)) < 0)
			return file_write_result(fd, r, err);
	}
	return file_write_result(fd, send_empty(fd, AGENT_END, err), err);
}

int agent_file_write_buf(int fd, const struct agent_file_write *req, const void *data, size_t len,
			 capsa_error *err)
{
	const uint8_t *p = data;
	uint8_t frame[AGENT_SMALL_FRAME_MAX];
	size_t frame_len = encode_file_write(frame, req, err);

	if (frame_len == 0)
		return -1;
	if (send_all(fd, frame, frame_len, err) < 0)
		return file_write_result(fd, -1, err);
	while (len > 0) {
		size_t n = len < AGENT_MAX_PAYLOAD ? len : AGENT_MAX_PAYLOAD;
		if (send_data(fd, p, n, err) < 0)
			return file_write_result(fd, -1, err);
		p += n;
		len -= n;
	}
	return file_write_result(fd, send_empty(fd, AGENT_END, err), err);
}

int agent_file_read(int fd, const char *path, int dst_fd, uint64_t *size, capsa_error *err)
{
	_cleanup_free_ struct agent_frame *f = frame_new(err);
	uint8_t frame[AGENT_SMALL_FRAME_MAX];
	uint64_t copied = 0;

	if (!f)
		return -1;
	if (send_frame(fd, frame, agent_encode_path(frame, sizeof(frame), AGENT_FILE_READ, path), err) < 0)
		return error_prefix(err, "read guest file %s", path);
	for (;;) {
		if (agent_read_frame(fd, f, AGENT_REPLY_TIMEOUT_MS, err) < 0)
			return -1;
		if (f->hdr.type == AGENT_END && f->hdr.len == 0)
			break;
		if (f->hdr.type != AGENT_DATA)
			return unexpected_frame(f, err);
		for (size_t off = 0; off < f->hdr.len;) {
			ssize_t n = write(dst_fd, f->payload + off, f->hdr.len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return error_set_errno(err, errno, "writing guest file %s out", path);
			off += (size_t)n;
		}
		copied += f->hdr.len;
	}
	if (size)
		*size = copied;
	return 0;
}

int agent_stat(int fd, const char *path, struct agent_stat_result *st, capsa_error *err)
{
	_cleanup_free_ struct agent_frame *f = frame_new(err);
	uint8_t frame[AGENT_SMALL_FRAME_MAX];

	if (!f)
		return -1;
	if (send_frame(fd, frame, agent_encode_path(frame, sizeof(frame), AGENT_STAT, path), err) < 0)
		return error_prefix(err, "stat guest file %s", path);
	if (read_reply(fd, f, AGENT_STAT_RESULT, err) < 0)
		return -1;
	if (agent_decode_stat_result(f->payload, f->hdr.len, st) < 0)
		return error_set(err, EPROTO, "malformed STAT_RESULT from the guest agent");
	return 0;
}

int agent_send_workload_signal(int fd, int signo, capsa_error *err)
{
	uint8_t frame[AGENT_HEADER_SIZE + 4];

	if (signo < 1 || signo > AGENT_SIGNAL_MAX)
		return error_set(err, EINVAL, "%d is not a signal number", signo);
	return send_frame(fd, frame, agent_encode_u32(frame, sizeof(frame), AGENT_WORKLOAD_SIGNAL, (uint32_t)signo),
			  err);
}

int agent_read_workload_signal_reply(int fd, capsa_error *err)
{
	_cleanup_free_ struct agent_frame *f = frame_new(err);

	return f ? read_reply(fd, f, AGENT_OK, err) : -1;
}

int agent_signal_workload(int fd, int signo, capsa_error *err)
{
	if (agent_send_workload_signal(fd, signo, err) < 0)
		return -1;
	return agent_read_workload_signal_reply(fd, err);
}
