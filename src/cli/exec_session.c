/* The terminal side of a process in a VM (capsa exec, capsa run -i/-t):
 * stdin relayed on a thread of its own, output, signals and window size
 * relayed by the caller's thread, raw mode while a terminal is attached. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

/* The exec handle is shared between the thread relaying stdin and the
 * main thread (events, signals): sends go through one lock so frames never
 * interleave. */
struct session {
	capsa_exec *ex;
	pthread_mutex_t send_lock;
	bool done;      /* the command ended: stop sending */
	bool tty;
};

static void *stdin_main(void *arg)
{
	struct session *s = arg;
	static char buf[64 * 1024];
	capsa_error err = { 0 };

	for (;;) {
		ssize_t n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		pthread_mutex_lock(&s->send_lock);
		int r = 0;
		if (!s->done && n > 0)
			r = capsa_exec_write(s->ex, buf, (size_t)n, &err);
		else if (!s->done)
			r = capsa_exec_close_stdin(s->ex, &err);
		bool stop = s->done || n <= 0 || r < 0;
		pthread_mutex_unlock(&s->send_lock);
		/* A command that stopped reading is no reason to fail: its exit
		 * status tells what happened. */
		if (stop)
			return NULL;
	}
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void cli_window_size(uint16_t *rows, uint16_t *cols)
{
	struct winsize ws;

	*rows = *cols = 0;
	if (ioctl(0, TIOCGWINSZ, &ws) == 0 || ioctl(1, TIOCGWINSZ, &ws) == 0) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

/* Relays events and signals until the command exits; returns its status. */
static int relay(struct session *s, int signal_fd)
{
	capsa_error err = { 0 };

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = capsa_exec_fd(s->ex), .events = POLLIN },
			{ .fd = signal_fd, .events = POLLIN },
		};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			cli_error("poll: %s", strerror(errno));
			return CLI_EXIT_FAILURE;
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;
			if (read(signal_fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
				continue;
			int signo = (int)si.ssi_signo;
			int r = 0;
			pthread_mutex_lock(&s->send_lock);
			if (signo == SIGWINCH) {
				uint16_t rows, cols;
				cli_window_size(&rows, &cols);
				if (s->tty && rows && cols)
					r = capsa_exec_resize(s->ex, rows, cols, &err);
			} else if (!s->tty) {
				r = capsa_exec_signal(s->ex, signo, &err);
			}
			pthread_mutex_unlock(&s->send_lock);
			/* On a terminal ^C is a byte for the command, so a signal
			 * here comes from elsewhere and means: give up. */
			if (signo != SIGWINCH && s->tty)
				return 128 + signo;
			if (r < 0) {
				cli_error_from(&err);
				return CLI_EXIT_FAILURE;
			}
		}
		if (!pfd[0].revents)
			continue;
		capsa_exec_event ev;
		if (capsa_exec_next(s->ex, &ev, &err) < 0) {
			cli_error_from(&err);
			return CLI_EXIT_FAILURE;
		}
		switch (ev.kind) {
		case CAPSA_EXEC_STDOUT:
			/* A reader that went away (| head) ends the command, as a pipe would. */
			if (write_all(1, ev.data, ev.len) < 0) {
				if (errno == EPIPE)
					return 128 + SIGPIPE;
				cli_error("cannot write the output: %s", strerror(errno));
				return CLI_EXIT_FAILURE;
			}
			break;
		case CAPSA_EXEC_STDERR:
			write_all(2, ev.data, ev.len);
			break;
		case CAPSA_EXEC_EXIT:
			if (ev.result.timed_out)
				cli_error("the command ran past its timeout and was killed");
			return ev.result.exit_status;
		}
	}
}

int cli_session_block_signals(void)
{
	/* Blocked before any thread exists, so only the signalfd sees them;
	 * they stay blocked until capsa exits, so one that arrives late cannot
	 * replace the command's exit status. */
	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGHUP);
	sigaddset(&signals, SIGWINCH);
	sigprocmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
	if (signal_fd < 0)
		cli_error("signalfd: %s", strerror(errno));
	return signal_fd;
}

int cli_session_run(capsa_exec *ex, int signal_fd, bool interactive, bool tty)
{
	/* The stdin thread may outlive this call, blocked in read(): the
	 * session it uses must too. One session per process. */
	static struct session s = { .send_lock = PTHREAD_MUTEX_INITIALIZER };
	int status = CLI_EXIT_FAILURE;

	s.ex = ex;
	s.tty = tty;
	s.done = false;
	struct termios saved_termios;
	bool raw = tty && interactive && isatty(0) && tcgetattr(0, &saved_termios) == 0;
	if (raw) {
		struct termios t = saved_termios;
		cfmakeraw(&t);
		raw = tcsetattr(0, TCSADRAIN, &t) == 0;
	}
	pthread_t stdin_thread;
	int e = interactive ? pthread_create(&stdin_thread, NULL, stdin_main, &s) : 0;
	if (e != 0) {
		cli_error("cannot start a thread: %s", strerror(e));
	} else {
		if (interactive)
			pthread_detach(stdin_thread);
		status = relay(&s, signal_fd);
	}
	if (raw)
		tcsetattr(0, TCSADRAIN, &saved_termios);
	/* From here on the stdin thread leaves the handle alone, so the
	 * caller may free it. */
	pthread_mutex_lock(&s.send_lock);
	s.done = true;
	pthread_mutex_unlock(&s.send_lock);
	return status;
}
