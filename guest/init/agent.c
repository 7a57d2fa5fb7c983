/* The guest agent: one process per host connection, each serving one
 * request (agent_proto.h). An exec is relayed by a poll loop that never
 * blocks: it reads the process's output only when the previous frame has
 * gone out, and the host's next frame only once the last stdin data has
 * gone in, so a slow reader on either side holds back its own stream and
 * memory stays at one frame per direction.
 *
 * Everything from the connection is untrusted: frames are bounds-checked
 * by agent_codec.c, and a malformed one ends that connection with an
 * ERROR, never the agent. */
#include "agent.h"

#include "agent_codec.h"
#include "user.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* A connection that sends no request within this long is dropped, so idle
 * connections cannot pile up processes. */
#define REQUEST_TIMEOUT_MS 30000
/* Bounded waits for replies on a failing connection. */
#define REPLY_TIMEOUT_MS 2000
/* After the process exits, output still open is relayed until it has been
 * quiet this long, and for this long at most: a background child may hold
 * the pipes open and keep writing. */
#define DRAIN_IDLE_MS 100
#define DRAIN_MAX_MS 2000

/* ---- plain I/O ------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Milliseconds left until deadline (-1: none) in poll's terms. */
static int ms_left(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Waits until fd is ready for events; 0, or -1 with ETIMEDOUT or poll's errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int n = poll(&pfd, 1, ms_left(deadline));
		if (n > 0)
			return 0;
		if (n == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

/* Writes everything, blocking or not; -1 with errno on error or timeout. */
static int send_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN || wait_fd(fd, POLLOUT, deadline) < 0)
				return -1;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads len bytes; returns how many arrived before end of file, or -1. */
static ssize_t recv_exact(int fd, void *buf, size_t len, int64_t deadline)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		if (wait_fd(fd, POLLIN, deadline) < 0)
			return -1;
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Reads one frame into *h and buf (which holds cap bytes). Returns 1, 0 at
 * end of file before the frame, or -1 with errno (EPROTO: malformed or
 * larger than cap; ETIMEDOUT). */
static int read_frame(int fd, struct agent_header *h, uint8_t *buf, size_t cap, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	uint8_t raw[AGENT_HEADER_SIZE];
	ssize_t n = recv_exact(fd, raw, sizeof(raw), deadline);

	if (n <= 0)
		return (int)n;
	if (n < (ssize_t)sizeof(raw) || agent_decode_header(raw, h) < 0 || h->len > cap) {
		errno = EPROTO;
		return -1;
	}
	n = recv_exact(fd, buf, h->len, deadline);
	if (n < 0)
		return -1;
	if ((size_t)n < h->len) {
		errno = EPROTO;  /* cut off in the middle of a frame */
		return -1;
	}
	return 1;
}

static int send_frame(int fd, const void *frame, size_t len)
{
	if (len == 0) {
		errno = EINVAL;  /* the encoder refused it: a bug here, not the host's */
		return -1;
	}
	return send_all(fd, frame, len, -1);
}

__attribute__((format(printf, 3, 4))) static void send_error(int fd, int code, const char *fmt, ...)
{
	uint8_t frame[AGENT_HEADER_SIZE + 4 + AGENT_ERROR_MESSAGE_MAX];
	char msg[AGENT_ERROR_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_all(fd, frame, agent_encode_error(frame, sizeof(frame), code, msg), REPLY_TIMEOUT_MS);
}

static void send_empty(int fd, uint16_t type)
{
	uint8_t frame[AGENT_HEADER_SIZE];

	send_frame(fd, frame, agent_encode_empty(frame, sizeof(frame), type));
}

/* ---- one exec --------------------------------------------------------------- */

struct exec {
	int conn;
	pid_t pid;
	int sfd;             /* signalfd for SIGCHLD */
	bool tty;
	int master;          /* the pty's master, -1 without a tty */
	int in_fd;           /* the process's stdin (pipe or master), -1 once closed */
	int out_fd, err_fd;  /* its output (err_fd -1 with a tty), -1 at end of file */

	/* host -> guest: the frame being received; a complete STDIN frame stays
	 * here until the process took all of it */
	uint8_t in_buf[AGENT_HEADER_SIZE + AGENT_MAX_PAYLOAD];
	size_t in_len;
	struct agent_header in_hdr;
	const uint8_t *stdin_data;  /* pending stdin bytes, or NULL */
	size_t stdin_left;
	uint8_t veof;               /* the tty's EOF character */

	/* guest -> host: one frame at a time */
	uint8_t out_buf[AGENT_HEADER_SIZE + AGENT_MAX_PAYLOAD];
	size_t out_len, out_off;
	bool exit_queued;

	int64_t start_us;
	int64_t deadline_ms;        /* the timeout; -1 for none */
	bool timed_out;
	bool exited;
	int status;
	struct rusage rusage;
	int64_t exit_ms;
	int64_t quiet_since_ms;     /* after the exit: when output last moved */
};

/* The exec's state is too big for the stack and there is one exec per
 * process. */
static struct exec exec_state;
static struct agent_workload the_workload;
static uint8_t request_buf[AGENT_MAX_REQUEST];
static uint8_t data_buf[AGENT_HEADER_SIZE + AGENT_MAX_PAYLOAD];

static void set_nonblocking(int fd)
{
	if (fd >= 0)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The host is gone or broke the protocol: nobody will see the result, so
 * the process group goes too. */
__attribute__((noreturn)) static void exec_abandon(struct exec *e)
{
	if (!e->exited) {
		kill(-e->pid, SIGKILL);
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
	}
	_exit(1);
}

/* The host sent something it must not: say so (after the frame being sent,
 * so the stream stays well-formed) and give up. */
__attribute__((noreturn, format(printf, 2, 3))) static void exec_protocol_error(struct exec *e, const char *fmt, ...)
{
	char msg[AGENT_ERROR_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (send_all(e->conn, e->out_buf + e->out_off, e->out_len - e->out_off, REPLY_TIMEOUT_MS) == 0)
		send_error(e->conn, EPROTO, "%s", msg);
	exec_abandon(e);
}

static void exec_reap(struct exec *e)
{
	struct signalfd_siginfo si;
	int status;

	while (read(e->sfd, &si, sizeof(si)) > 0)
		;
	if (wait4(e->pid, &status, WNOHANG, &e->rusage) != e->pid)
		return;
	e->exited = true;
	e->status = status;
	e->exit_ms = e->quiet_since_ms = now_ms();
	/* Nobody reads stdin any more: drop the frame waiting for it. */
	if (e->stdin_data) {
		e->stdin_data = NULL;
		e->stdin_left = 0;
		e->in_len = 0;
	}
	if (!e->tty)
		close_fd(&e->in_fd);
}

static void exec_queue_exit(struct exec *e)
{
	int64_t duration = now_us() - e->start_us;
	struct agent_exit ex = {
		.exit_code = WIFEXITED(e->status) ? WEXITSTATUS(e->status) : 128 + WTERMSIG(e->status),
		.signal = WIFSIGNALED(e->status) ? (uint32_t)WTERMSIG(e->status) : 0,
		.duration_us = duration > 0 ? (uint64_t)duration : 0,
		.peak_rss_kib = e->rusage.ru_maxrss > 0 ? (uint64_t)e->rusage.ru_maxrss : 0,
		/* Not if it exited on its own just as the time ran out. */
		.flags = e->timed_out && WIFSIGNALED(e->status) && WTERMSIG(e->status) == SIGKILL
				 ? AGENT_EXIT_TIMED_OUT : 0,
	};

	e->out_len = agent_encode_exit(e->out_buf, sizeof(e->out_buf), &ex);
	e->out_off = 0;
	e->exit_queued = true;
}

/* Sends what it can of the pending frame. */
static void exec_flush(struct exec *e)
{
	ssize_t n = write(e->conn, e->out_buf + e->out_off, e->out_len - e->out_off);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		exec_abandon(e);
	}
	e->out_off += (size_t)n;
	if (e->out_off == e->out_len) {
		e->out_len = e->out_off = 0;
		e->quiet_since_ms = now_ms();  /* waiting on the host was not quiet output */
	}
}

/* Turns what is waiting on one of the process's outputs into a frame. */
static void exec_read_output(struct exec *e, int *fd, uint16_t type)
{
	ssize_t n = read(*fd, e->out_buf + AGENT_HEADER_SIZE, AGENT_MAX_PAYLOAD);

	if (n > 0) {
		agent_encode_header(e->out_buf, AGENT_HEADER_SIZE, type, (size_t)n);
		e->out_len = AGENT_HEADER_SIZE + (size_t)n;
		e->out_off = 0;
		e->quiet_since_ms = now_ms();
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* End of file; a pty's master reads EIO once every slave is closed. */
	if (e->tty)
		*fd = -1;
	else
		close_fd(fd);
}

static void exec_write_stdin(struct exec *e)
{
	ssize_t n = write(e->in_fd, e->stdin_data, e->stdin_left);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		/* EPIPE: the process closed its stdin; the rest has no reader. */
		e->stdin_left = 0;
		if (!e->tty)
			close_fd(&e->in_fd);
	} else {
		e->stdin_data += n;
		e->stdin_left -= (size_t)n;
	}
	if (e->stdin_left == 0) {
		e->stdin_data = NULL;
		e->in_len = 0;  /* the frame is done: take the next */
	}
}

static void exec_handle_frame(struct exec *e)
{
	const uint8_t *payload = e->in_buf + AGENT_HEADER_SIZE;
	size_t len = e->in_hdr.len;
	uint16_t rows, cols;
	int signo;

	switch (e->in_hdr.type) {
	case AGENT_STDIN:
		if (e->in_fd >= 0 && len > 0 && !e->exited) {
			e->stdin_data = payload;
			e->stdin_left = len;
			return;  /* in_buf stays busy until it is written */
		}
		break;
	case AGENT_STDIN_EOF:
		if (agent_decode_empty(payload, len) < 0)
			exec_protocol_error(e, "malformed STDIN_EOF");
		if (e->tty && e->in_fd >= 0 && !e->exited) {
			e->stdin_data = &e->veof;
			e->stdin_left = 1;
			return;
		}
		if (!e->tty)
			close_fd(&e->in_fd);
		break;
	case AGENT_SIGNAL:
		if (agent_decode_signal(payload, len, &signo) < 0)
			exec_protocol_error(e, "malformed SIGNAL");
		/* The process itself if it has not made its group yet. */
		if (!e->exited && kill(-e->pid, signo) < 0 && errno == ESRCH)
			kill(e->pid, signo);
		break;
	case AGENT_RESIZE:
		if (agent_decode_resize(payload, len, &rows, &cols) < 0)
			exec_protocol_error(e, "malformed RESIZE");
		if (e->tty) {
			struct winsize ws = { .ws_row = rows, .ws_col = cols };
			ioctl(e->master, TIOCSWINSZ, &ws);
		}
		break;
	default:
		exec_protocol_error(e, "unexpected %s frame during an exec", agent_msg_name(e->in_hdr.type));
	}
	e->in_len = 0;
}

/* Takes in more of the host's current frame. */
static void exec_receive(struct exec *e)
{
	size_t want = e->in_len < AGENT_HEADER_SIZE ? AGENT_HEADER_SIZE - e->in_len
						    : AGENT_HEADER_SIZE + e->in_hdr.len - e->in_len;
	ssize_t n = read(e->conn, e->in_buf + e->in_len, want);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		exec_abandon(e);  /* the host went away */
	e->in_len += (size_t)n;
	if (e->in_len == AGENT_HEADER_SIZE) {
		if (agent_decode_header(e->in_buf, &e->in_hdr) < 0 || e->in_hdr.len > AGENT_MAX_PAYLOAD)
			exec_protocol_error(e, "malformed frame header");
	}
	if (e->in_len >= AGENT_HEADER_SIZE && e->in_len == AGENT_HEADER_SIZE + e->in_hdr.len)
		exec_handle_frame(e);
}

static bool exec_output_done(const struct exec *e)
{
	int64_t now = now_ms();

	if (e->out_fd < 0 && e->err_fd < 0)
		return true;
	return now - e->quiet_since_ms >= DRAIN_IDLE_MS || now - e->exit_ms >= DRAIN_MAX_MS;
}

static int exec_poll_timeout(const struct exec *e)
{
	int64_t idle_end, hard_end;

	if (!e->exited)
		return e->timed_out ? -1 : ms_left(e->deadline_ms);
	/* Waiting for the host to take a frame needs no timer; waiting for
	 * output after the exit does (the drain bounds). */
	if (e->out_len > 0 || e->exit_queued)
		return -1;
	idle_end = e->quiet_since_ms + DRAIN_IDLE_MS;
	hard_end = e->exit_ms + DRAIN_MAX_MS;
	return ms_left(idle_end < hard_end ? idle_end : hard_end);
}

/* Relays until the exit is reported; the process has started. */
__attribute__((noreturn)) static void exec_relay(struct exec *e)
{
	enum { P_CONN, P_STDIN, P_OUT, P_ERR, P_CHILD, P_COUNT };
	struct pollfd pfd[P_COUNT];
	bool stderr_first = false;

	set_nonblocking(e->conn);
	for (;;) {
		bool out_free = e->out_len == 0 && !e->exit_queued;

		if (e->exited && e->out_len == 0) {
			if (e->exit_queued)
				break;  /* EXIT went out */
			if (exec_output_done(e)) {
				exec_queue_exit(e);
				continue;
			}
		}
		pfd[P_CONN] = (struct pollfd){ .fd = e->conn, .events = (e->stdin_data ? 0 : POLLIN) |
									 (e->out_len ? POLLOUT : 0) };
		pfd[P_STDIN] = (struct pollfd){ .fd = e->stdin_data ? e->in_fd : -1, .events = POLLOUT };
		pfd[P_OUT] = (struct pollfd){ .fd = out_free ? e->out_fd : -1, .events = POLLIN };
		pfd[P_ERR] = (struct pollfd){ .fd = out_free ? e->err_fd : -1, .events = POLLIN };
		pfd[P_CHILD] = (struct pollfd){ .fd = e->exited ? -1 : e->sfd, .events = POLLIN };

		if (poll(pfd, P_COUNT, exec_poll_timeout(e)) < 0) {
			if (errno == EINTR)
				continue;
			exec_abandon(e);
		}
		if (pfd[P_CHILD].revents)
			exec_reap(e);
		/* Hang-up: the host closed both directions and will not read the
		 * result. */
		if (pfd[P_CONN].revents & (POLLHUP | POLLERR))
			exec_abandon(e);
		if (pfd[P_CONN].revents & POLLOUT)
			exec_flush(e);
		if (pfd[P_CONN].revents & POLLIN && !e->stdin_data)
			exec_receive(e);
		if (pfd[P_STDIN].revents && e->stdin_data)
			exec_write_stdin(e);
		/* Take turns, so a busy stdout cannot starve stderr or the reverse. */
		stderr_first = !stderr_first;
		for (int i = 0; i < 2; i++) {
			bool err = stderr_first == (i == 0);
			if (pfd[err ? P_ERR : P_OUT].revents && e->out_len == 0)
				exec_read_output(e, err ? &e->err_fd : &e->out_fd, err ? AGENT_STDERR : AGENT_STDOUT);
		}

		if (!e->exited && !e->timed_out && e->deadline_ms >= 0 && now_ms() >= e->deadline_ms) {
			kill(-e->pid, SIGKILL);
			kill(e->pid, SIGKILL);  /* in case it has not made its group yet */
			e->timed_out = true;
		}
	}
	_exit(0);
}

/* ---- starting the process ------------------------------------------------- */

static bool env_has(const char *const *env, const char *key)
{
	size_t n = strlen(key);

	for (; *env; env++)
		if (strncmp(*env, key, n) == 0 && (*env)[n] == '=')
			return true;
	return false;
}

/* Replaces the entry of env (n entries) with entry's KEY, else appends. */
static void env_put(char **env, size_t *n, char *entry)
{
	size_t key_len = strcspn(entry, "=") + 1;

	if (entry[key_len - 1] != '=' || key_len == 1)
		return;
	for (size_t i = 0; i < *n; i++) {
		if (strncmp(env[i], entry, key_len) == 0) {
			env[i] = entry;
			return;
		}
	}
	env[(*n)++] = entry;
}

/* The workload's environment, the request's entries over it, then PATH
 * and HOME if still missing, as init gives the workload. */
static char **exec_environment(const struct agent_exec_request *req, const struct workload_user *user)
{
	static char path[] = "PATH=" DEFAULT_PATH;
	static char home[sizeof(user->home) + 8];
	size_t n_workload = 0, n_req = 0, n = 0;
	char **env;

	while (the_workload.env && the_workload.env[n_workload])
		n_workload++;
	while (req->env[n_req])
		n_req++;
	env = calloc(n_workload + n_req + 3, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n_workload; i++)
		env_put(env, &n, the_workload.env[i]);
	for (size_t i = 0; i < n_req; i++)
		env_put(env, &n, (char *)req->env[i]);
	if (!env_has((const char *const *)env, "PATH"))
		env[n++] = path;
	if (!env_has((const char *const *)env, "HOME")) {
		snprintf(home, sizeof(home), "HOME=%s", user->home);
		env[n++] = home;
	}
	return env;
}

/* Moves fds to 0, 1 and 2 without one clobbering another that is already
 * there: copy all above 2 first. */
static int set_stdio(int in, int out, int err)
{
	int src[3] = { in, out, err };

	for (int i = 0; i < 3; i++)
		if ((src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3)) < 0)
			return -1;
	for (int i = 0; i < 3; i++)
		if (dup2(src[i], i) < 0)
			return -1;
	return 0;
}

/* In the child: become the process. Exit codes follow the shell's (127 not
 * found, 126 found but not runnable), like init's for the workload. */
__attribute__((noreturn)) static void exec_child(const struct agent_exec_request *req, char **env,
						 const struct workload_user *user, int in, int out, int err,
						 bool tty)
{
	const char *cwd = req->cwd[0] ? req->cwd : the_workload.workdir ? the_workload.workdir : "/";
	sigset_t none;
	int e;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	setsid();
	if (tty && ioctl(in, TIOCSCTTY, 0) < 0)
		_exit(126);
	if (set_stdio(in, out, err) < 0)
		_exit(126);

	if (chdir(cwd) < 0) {
		dprintf(2, "capsa: cannot enter working directory %s: %s\n", cwd, strerror(errno));
		_exit(126);
	}
	e = user_become(user);
	if (e) {
		dprintf(2, "capsa: cannot become user %u:%u: %s\n", (unsigned)user->uid, (unsigned)user->gid,
			strerror(e));
		_exit(126);
	}
	/* execvp searches the PATH of environ: the process's own. */
	environ = env;
	execvp(req->argv[0], (char *const *)req->argv);
	e = errno;
	if (e == ENOENT && !strchr(req->argv[0], '/'))
		dprintf(2, "capsa: %s: command not found\n", req->argv[0]);
	else
		dprintf(2, "capsa: %s: %s\n", req->argv[0], strerror(e));
	_exit(e == ENOENT ? 127 : 126);
}

/* A new pty of the requested size: *master for us, *slave for the process. */
static int open_pty(const struct agent_exec_request *req, const struct workload_user *user, int *master,
		    int *slave)
{
	char name[64];
	struct termios t;

	*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*master < 0)
		return -1;
	if (grantpt(*master) < 0 || unlockpt(*master) < 0 || ptsname_r(*master, name, sizeof(name)) != 0)
		return -1;
	*slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*slave < 0)
		return -1;
	if (req->rows && req->cols) {
		struct winsize ws = { .ws_row = req->rows, .ws_col = req->cols };
		if (ioctl(*master, TIOCSWINSZ, &ws) < 0)
			return -1;
	}
	/* The process's own terminal, as a login would have it. */
	if (fchown(*slave, user->uid, (gid_t)-1) < 0)
		return -1;
	exec_state.veof = tcgetattr(*slave, &t) == 0 ? t.c_cc[VEOF] : 4;
	return 0;
}

static void serve_exec(int conn, const uint8_t *payload, size_t len)
{
	struct exec *e = &exec_state;
	struct agent_exec_request req;
	struct workload_user user;
	int child_in = -1, child_out = -1, child_err = -1;
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
	uint8_t started[AGENT_HEADER_SIZE + 4];
	char why[512];
	sigset_t sigchld;
	char **env;
	int err;

	if (agent_decode_exec(payload, len, &req) < 0) {
		send_error(conn, errno, "malformed EXEC request");
		return;
	}
	err = user_resolve(req.user[0] ? req.user : the_workload.user, &user, why, sizeof(why));
	if (err) {
		send_error(conn, err, "%s", why);
		return;
	}
	env = exec_environment(&req, &user);
	if (!env) {
		send_error(conn, ENOMEM, "building the environment");
		return;
	}

	e->conn = conn;
	e->tty = req.flags & AGENT_EXEC_TTY;
	e->master = e->in_fd = e->out_fd = e->err_fd = -1;
	if (e->tty) {
		if (open_pty(&req, &user, &e->master, &child_in) < 0) {
			send_error(conn, errno, "cannot open a pty: %s", strerror(errno));
			return;
		}
		child_out = child_err = child_in;
		e->in_fd = e->out_fd = e->master;
	} else {
		if (req.flags & AGENT_EXEC_STDIN ? pipe2(in_pipe, O_CLOEXEC) < 0
						 : (in_pipe[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
			send_error(conn, errno, "stdin: %s", strerror(errno));
			return;
		}
		if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) {
			send_error(conn, errno, "pipe: %s", strerror(errno));
			return;
		}
		child_in = in_pipe[0];
		child_out = out_pipe[1];
		child_err = err_pipe[1];
		e->in_fd = in_pipe[1];
		e->out_fd = out_pipe[0];
		e->err_fd = err_pipe[0];
	}

	sigemptyset(&sigchld);
	sigaddset(&sigchld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &sigchld, NULL);
	e->sfd = signalfd(-1, &sigchld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (e->sfd < 0) {
		send_error(conn, errno, "signalfd: %s", strerror(errno));
		return;
	}

	e->start_us = now_us();
	/* Rounded up, so the process gets at least its full timeout. */
	e->deadline_ms = req.timeout_ms ? (e->start_us + (int64_t)req.timeout_ms * 1000 + 999) / 1000 : -1;
	e->pid = fork();
	if (e->pid < 0) {
		send_error(conn, errno, "fork: %s", strerror(errno));
		return;
	}
	if (e->pid == 0)
		exec_child(&req, env, &user, child_in, child_out, child_err, e->tty);

	/* Our copies of the child's ends would hide its end of file. */
	close(child_in);
	if (!e->tty) {
		close(child_out);
		close(child_err);
	}
	set_nonblocking(e->in_fd);
	set_nonblocking(e->out_fd);
	set_nonblocking(e->err_fd);

	if (send_frame(conn, started, agent_encode_u32(started, sizeof(started), AGENT_STARTED,
						       (uint32_t)e->pid)) < 0)
		exec_abandon(e);
	exec_relay(e);
}

/* ---- files ------------------------------------------------------------------ */

/* Reads DATA frames into fd (-1: discard them) up to END. Returns 0, or an
 * errno value for a write error (the frames are still read to END); -1 if
 * the connection failed or broke the protocol (an ERROR is sent). */
static int receive_file_data(int conn, int fd)
{
	struct agent_header h;
	int err = 0;

	for (;;) {
		int r = read_frame(conn, &h, data_buf, AGENT_MAX_PAYLOAD, -1);
		if (r <= 0) {
			if (r < 0 && errno == EPROTO)
				send_error(conn, EPROTO, "malformed frame in the file's data");
			return -1;
		}
		if (h.type == AGENT_END && h.len == 0)
			return err;
		if (h.type != AGENT_DATA) {
			send_error(conn, EPROTO, "expected DATA or END, got %s", agent_msg_name(h.type));
			return -1;
		}
		if (fd >= 0 && !err && send_all(fd, data_buf, h.len, -1) < 0)
			err = errno;
	}
}

static void serve_file_write(int conn, const uint8_t *payload, size_t len)
{
	struct agent_file_write req;
	char tmp[PATH_MAX], dir[PATH_MAX], base[PATH_MAX];
	int fd = -1, err = 0, r;

	if (agent_decode_file_write(payload, len, &req) < 0) {
		send_error(conn, EPROTO, "malformed FILE_WRITE request");
		return;
	}
	snprintf(dir, sizeof(dir), "%s", req.path);
	snprintf(base, sizeof(base), "%s", req.path);
	/* Next to the target, so the rename stays in one file system. */
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.capsa-XXXXXX", dirname(dir), basename(base)) >= (int)sizeof(tmp))
		err = ENAMETOOLONG;
	else if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		err = errno;

	r = receive_file_data(conn, fd);
	if (r == 0 && !err) {
		if ((req.uid != AGENT_ID_KEEP || req.gid != AGENT_ID_KEEP) && fchown(fd, req.uid, req.gid) < 0)
			err = errno;
		else if (fchmod(fd, req.mode) < 0)  /* after chown, which drops set-id bits */
			err = errno;
	} else if (r > 0) {
		err = r;
	}
	if (fd >= 0 && close(fd) < 0 && !err)
		err = errno;
	if (r >= 0 && !err && rename(tmp, req.path) < 0)
		err = errno;
	if (fd >= 0 && (r < 0 || err))
		unlink(tmp);
	if (r < 0)
		return;
	if (err)
		send_error(conn, err, "write %s: %s", req.path, strerror(err));
	else
		send_empty(conn, AGENT_OK);
}

static void serve_file_read(int conn, const uint8_t *payload, size_t len)
{
	const char *path;
	struct stat st;
	int fd;

	if (agent_decode_path(payload, len, &path) < 0) {
		send_error(conn, EPROTO, "malformed FILE_READ request");
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		send_error(conn, errno, "open %s: %s", path, strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0) {
		send_error(conn, errno, "stat %s: %s", path, strerror(errno));
		close(fd);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		send_error(conn, S_ISDIR(st.st_mode) ? EISDIR : EINVAL, "%s is not a regular file", path);
		close(fd);
		return;
	}
	for (;;) {
		ssize_t n = read(fd, data_buf + AGENT_HEADER_SIZE, AGENT_MAX_PAYLOAD);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			send_error(conn, errno, "read %s: %s", path, strerror(errno));
			break;
		}
		if (n == 0) {
			send_empty(conn, AGENT_END);
			break;
		}
		agent_encode_header(data_buf, AGENT_HEADER_SIZE, AGENT_DATA, (size_t)n);
		if (send_frame(conn, data_buf, AGENT_HEADER_SIZE + (size_t)n) < 0)
			break;
	}
	close(fd);
}

static void serve_stat(int conn, const uint8_t *payload, size_t len)
{
	uint8_t frame[AGENT_SMALL_FRAME_MAX];
	const char *path;
	struct stat st;

	if (agent_decode_path(payload, len, &path) < 0) {
		send_error(conn, EPROTO, "malformed STAT request");
		return;
	}
	if (stat(path, &st) < 0) {
		send_error(conn, errno, "stat %s: %s", path, strerror(errno));
		return;
	}
	struct agent_stat_result res = {
		.mode = st.st_mode,
		.uid = st.st_uid,
		.gid = st.st_gid,
		.size = (uint64_t)st.st_size,
		.mtime_sec = st.st_mtim.tv_sec,
		.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec,
	};
	send_frame(conn, frame, agent_encode_stat_result(frame, sizeof(frame), &res));
}

/* ---- the server ---------------------------------------------------------------- */

static void serve_workload_signal(int conn, const uint8_t *payload, size_t len, pid_t workload_pid)
{
	int signo;

	if (agent_decode_signal(payload, len, &signo) < 0) {
		send_error(conn, EPROTO, "malformed WORKLOAD_SIGNAL request");
		return;
	}
	if (workload_pid <= 0) {
		send_error(conn, ESRCH, "there is no workload to signal");
		return;
	}
	if (kill(-workload_pid, signo) < 0) {
		send_error(conn, errno, "signal %d to the workload: %s", signo, strerror(errno));
		return;
	}
	send_empty(conn, AGENT_OK);
}

/* Standby: hands START to init, which starts the workload and, before it
 * answers, replaces this agent with one that knows the workload. */
static void serve_start(int conn, const uint8_t *payload, size_t len)
{
	struct agent_start_request req;
	uint32_t len32 = (uint32_t)len;
	int32_t result;
	uint8_t frame[AGENT_HEADER_SIZE + 4];

	if (the_workload.start_fd < 0) {
		send_error(conn, EALREADY, "the workload has already been started");
		return;
	}
	if (agent_decode_start(payload, len, &req) < 0) {
		send_error(conn, EPROTO, "malformed START request");
		return;
	}
	agent_start_request_free(&req);
	if (send_all(the_workload.start_fd, &len32, sizeof(len32), -1) < 0 ||
	    send_all(the_workload.start_fd, payload, len, -1) < 0) {
		send_error(conn, EIO, "cannot hand the workload to init: %s", strerror(errno));
		return;
	}
	if (recv_exact(the_workload.started_fd, &result, sizeof(result), -1) != (ssize_t)sizeof(result)) {
		send_error(conn, EIO, "init did not say whether the workload started");
		return;
	}
	if (result < 0) {
		send_error(conn, -result, "starting the workload: %s", strerror(-result));
		return;
	}
	send_frame(conn, frame, agent_encode_u32(frame, sizeof(frame), AGENT_STARTED, (uint32_t)result));
}

/* struct rand_pool_info and the ioctls of <linux/random.h>, which musl's
 * headers lack. */
struct agent_rand_pool {
	int entropy_count;
	int buf_size;
	uint8_t buf[AGENT_ENTROPY_BYTES];
};
#define AGENT_RNDADDENTROPY _IOW('R', 0x03, int[2])
#define AGENT_RNDRESEEDCRNG _IO('R', 0x07)

/* After a restore: the clock stood still while the snapshot sat on disk,
 * and every clone of it holds the same random state. */
static void serve_restored(int conn, const uint8_t *payload, size_t len)
{
	struct agent_restored restored;
	struct agent_rand_pool pool = { .entropy_count = 8 * AGENT_ENTROPY_BYTES, .buf_size = AGENT_ENTROPY_BYTES };
	struct timespec now;
	int fd;

	if (agent_decode_restored(payload, len, &restored) < 0) {
		send_error(conn, EPROTO, "malformed RESTORED request");
		return;
	}
	now.tv_sec = (time_t)restored.realtime_sec;
	now.tv_nsec = (long)restored.realtime_nsec;
	if (clock_settime(CLOCK_REALTIME, &now) < 0) {
		send_error(conn, errno, "set the clock: %s", strerror(errno));
		return;
	}
	memcpy(pool.buf, restored.entropy, sizeof(pool.buf));
	fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, AGENT_RNDADDENTROPY, &pool) < 0 || ioctl(fd, AGENT_RNDRESEEDCRNG) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		send_error(conn, e, "reseed the random number generator: %s", strerror(e));
		return;
	}
	close(fd);
	send_empty(conn, AGENT_OK);
}

static void serve_ping(int conn, size_t len)
{
	uint8_t frame[AGENT_HEADER_SIZE + 4];

	if (agent_decode_empty(NULL, len) < 0) {
		send_error(conn, EPROTO, "malformed PING");
		return;
	}
	send_frame(conn, frame, agent_encode_u32(frame, sizeof(frame), AGENT_PONG, AGENT_PROTOCOL_VERSION));
}

static void serve_connection(int conn, pid_t workload_pid)
{
	struct agent_header h;
	int r = read_frame(conn, &h, request_buf, sizeof(request_buf), REQUEST_TIMEOUT_MS);

	if (r <= 0) {
		if (r < 0 && errno == EPROTO)
			send_error(conn, EPROTO, "malformed frame header");
		return;
	}
	switch (h.type) {
	case AGENT_PING:
		serve_ping(conn, h.len);
		break;
	case AGENT_EXEC:
		serve_exec(conn, request_buf, h.len);
		break;
	case AGENT_FILE_WRITE:
		serve_file_write(conn, request_buf, h.len);
		break;
	case AGENT_FILE_READ:
		serve_file_read(conn, request_buf, h.len);
		break;
	case AGENT_STAT:
		serve_stat(conn, request_buf, h.len);
		break;
	case AGENT_WORKLOAD_SIGNAL:
		serve_workload_signal(conn, request_buf, h.len, workload_pid);
		break;
	case AGENT_START:
		serve_start(conn, request_buf, h.len);
		break;
	case AGENT_RESTORED:
		serve_restored(conn, request_buf, h.len);
		break;
	default:
		send_error(conn, EPROTO, "%s is not a request", agent_msg_name(h.type));
	}
}

int agent_serve(int listen_fd, const struct agent_workload *workload)
{
	the_workload = *workload;
	/* Connection processes are reaped by the kernel; a host that goes
	 * away must not kill whoever writes to it. */
	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);

	for (;;) {
		int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				poll(NULL, 0, 100);  /* out of something: let connections end */
				continue;
			}
			return -1;
		}
		pid = fork();
		if (pid == 0) {
			close(listen_fd);
			signal(SIGCHLD, SIG_DFL);  /* the exec handler waits for its child */
			serve_connection(conn, workload->pid);
			_exit(0);
		}
		close(conn);  /* without a process (fork failed) the host sees it close */
	}
}

/* struct sockaddr_vm from <linux/vm_sockets.h>, which musl's headers lack. */
struct agent_sockaddr_vm {
	sa_family_t svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_flags;
	unsigned char svm_zero[3];
};
#define AGENT_VMADDR_CID_ANY 0xffffffffu

int agent_listen_vsock(unsigned int port)
{
	struct agent_sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_port = port, .svm_cid = AGENT_VMADDR_CID_ANY };
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 64) < 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}
