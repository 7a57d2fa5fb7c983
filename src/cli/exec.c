/* capsa exec: run a command in a running VM, relaying its stdin, output,
 * signals and terminal size, and exit with its status. */
#include <errno.h>
#include <getopt.h>
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
#include "instances.h"

static void exec_usage(FILE *out)
{
	fprintf(out,
		"Usage: capsa exec [OPTIONS] VM COMMAND [ARG...]\n\n"
		"Run COMMAND in the running VM (an id, a name or a unique id prefix; see\n"
		"'capsa ps') and exit with its exit status (capsa's own errors exit with %d).\n\n"
		"Options:\n"
		"  -i, --interactive    pass this stdin to the command (otherwise it reads /dev/null)\n"
		"  -t, --tty            run the command on a terminal (stdout and stderr merged)\n"
		"  -e, --env KEY=VALUE  set an environment variable; KEY alone takes this one's value\n"
		"  -w, --workdir DIR    working directory (default: the workload's)\n"
		"  -u, --user USER      user to run as: name, uid, name:group or uid:gid\n"
		"  -h, --help           show this help\n",
		CLI_EXIT_FAILURE);
}

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
		if (!s->done)
			r = n > 0 ? capsa_exec_write(s->ex, buf, (size_t)n, &err) : capsa_exec_close_stdin(s->ex, &err);
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

static void window_size(uint16_t *rows, uint16_t *cols)
{
	struct winsize ws;

	*rows = *cols = 0;
	if (ioctl(0, TIOCGWINSZ, &ws) == 0 || ioctl(1, TIOCGWINSZ, &ws) == 0) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

/* -e KEY takes the value from this environment, or is skipped, as with docker. */
static int add_env(char ***env, size_t *n, const char *spec)
{
	char *entry;

	if (strchr(spec, '=')) {
		entry = strdup(spec);
	} else {
		const char *value = getenv(spec);
		if (!value)
			return 0;
		if (asprintf(&entry, "%s=%s", spec, value) < 0)
			entry = NULL;
	}
	char **grown = entry ? realloc(*env, (*n + 2) * sizeof(**env)) : NULL;
	if (!grown) {
		free(entry);
		cli_error("out of memory");
		return -1;
	}
	grown[(*n)++] = entry;
	grown[*n] = NULL;
	*env = grown;
	return 0;
}

static void free_env(char **env)
{
	for (char **e = env; e && *e; e++)
		free(*e);
	free(env);
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
				window_size(&rows, &cols);
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
			return ev.result.exit_status;
		}
	}
}

enum { OPT_HELP = 'h' };

int cmd_exec(int argc, char **argv)
{
	static const struct option options[] = {
		{ "interactive", no_argument, NULL, 'i' },
		{ "tty", no_argument, NULL, 't' },
		{ "env", required_argument, NULL, 'e' },
		{ "workdir", required_argument, NULL, 'w' },
		{ "user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ 0 },
	};
	capsa_exec_options opts = { 0 };
	char **env = NULL;
	size_t n_env = 0;
	bool interactive = false;
	int status = CLI_EXIT_FAILURE;
	int c;

	optind = 1;
	/* '+': options end at the VM, so the command keeps its own. */
	while ((c = getopt_long(argc, argv, "+ite:w:u:h", options, NULL)) != -1) {
		switch (c) {
		case 'i':
			interactive = true;
			break;
		case 't':
			opts.tty = true;
			break;
		case 'e':
			if (add_env(&env, &n_env, optarg) < 0)
				goto out_env;
			break;
		case 'w':
			opts.workdir = optarg;
			break;
		case 'u':
			opts.user = optarg;
			break;
		case 'h':
			exec_usage(stdout);
			status = 0;
			goto out_env;
		default:
			fprintf(stderr, "Run 'capsa exec --help' for the options.\n");
			goto out_env;
		}
	}
	if (argc - optind < 2) {
		cli_error(optind < argc ? "exec needs a command to run in the VM, e.g. capsa exec %s sh"
					: "exec needs a VM and a command, e.g. capsa exec myvm sh",
			  optind < argc ? argv[optind] : "");
		goto out_env;
	}
	const char *ref = argv[optind];
	opts.argv = (const char *const *)argv + optind + 1;
	opts.env = (const char *const *)env;
	opts.stdin_open = interactive;
	if (opts.tty)
		window_size(&opts.rows, &opts.cols);

	struct instance inst;
	char *socket;
	if (instance_find_running(ref, &inst, &socket) < 0)
		goto out_env;

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
	if (signal_fd < 0) {
		cli_error("signalfd: %s", strerror(errno));
		goto out_instance;
	}

	capsa_error err = { 0 };
	struct session s = { .send_lock = PTHREAD_MUTEX_INITIALIZER, .tty = opts.tty };
	s.ex = capsa_exec_start(socket, &opts, &err);
	if (!s.ex) {
		cli_error_from(&err);
		goto out_signal_fd;
	}

	struct termios saved_termios;
	bool raw = opts.tty && interactive && isatty(0) && tcgetattr(0, &saved_termios) == 0;
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
	/* The stdin thread may still wait for input; it must not touch the
	 * handle once it is freed. */
	pthread_mutex_lock(&s.send_lock);
	s.done = true;
	pthread_mutex_unlock(&s.send_lock);
	capsa_exec_free(s.ex);
out_signal_fd:
	close(signal_fd);
out_instance:
	free(socket);
	instance_clear(&inst);
out_env:
	free_env(env);
	return status;
}
