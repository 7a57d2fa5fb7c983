/* capsa run -d: start a VM that keeps running after capsa returns.
 *
 * capsa forks the process that runs the VM (the VMM process). It starts a
 * session of its own, holds the VM's lock for its whole life, writes the
 * workload's output and the console to bounded log files, and reports to
 * the waiting parent once the guest agent answers (or why it failed). The
 * parent then prints the VM's id and returns. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "instances.h"
#include "vmm_control.h"

/* How long a SIGTERM to the VMM process gives the workload before the VM
 * is stopped by force. */
#define STOP_TIMEOUT_MS 10000

/* The one-message report from the VMM process to the parent: READY, or
 * FAILED followed by the error line. */
#define REPORT_READY 'R'
#define REPORT_FAILED 'E'

/* ---- bounded logs ----------------------------------------------------------- */

/* A log file that rotates to NAME.1 when it would grow past INSTANCE_LOG_MAX. */
struct log_sink {
	const char *dir;
	const char *name;
	int fd;
	uint64_t size;
	int mirror_fd;  /* kept pointing at the current file (-1: none) */
};

static int log_open(struct log_sink *log)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", log->dir, log->name);
	log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log->fd < 0)
		return -1;
	log->size = fstat(log->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	if (log->mirror_fd >= 0)
		dup2(log->fd, log->mirror_fd);
	return 0;
}

static void log_rotate(struct log_sink *log)
{
	char path[4096], old[4096];

	snprintf(path, sizeof(path), "%s/%s", log->dir, log->name);
	snprintf(old, sizeof(old), "%s/%s.1", log->dir, log->name);
	if (rename(path, old) < 0)
		return;  /* keep appending rather than lose output */
	close(log->fd);
	if (log_open(log) < 0)
		log->fd = -1;
}

static void log_write(struct log_sink *log, const char *data, size_t len)
{
	if (log->fd >= 0 && log->size > 0 && log->size + len > INSTANCE_LOG_MAX)
		log_rotate(log);
	while (len > 0 && log->fd >= 0) {
		ssize_t n = write(log->fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;  /* a full disk loses output, it does not stop the VM */
		data += n;
		len -= (size_t)n;
		log->size += (uint64_t)n;
	}
}

/* ---- the VMM process ---------------------------------------------------------- */

struct vmm {
	struct log_sink log, console;
	int out_pipe[2], console_pipe[2];
	int quit_pipe[2];  /* written once the VM is gone: drain and stop */
	pthread_t logger;
	bool logger_started;

	pthread_mutex_t lock;
	pthread_cond_t stop_done;
	capsa_vm *vm;         /* set once started */
	bool stop_requested;  /* a signal came before the VM was up */
	bool stopping;        /* the signal thread is in capsa_vm_stop */
	bool finished;        /* the VM ended: no more stops */
};

/* Prints a line into console.log (this process's stderr). */
static void vmm_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void vmm_note(const char *fmt, ...)
{
	va_list ap;
	time_t now = time(NULL);
	struct tm tm;
	char when[32] = "";

	if (localtime_r(&now, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	va_start(ap, fmt);
	fprintf(stderr, "[%s] capsa: ", when);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void *logger_main(void *arg)
{
	struct vmm *m = arg;
	static char buf[64 * 1024];
	struct pollfd pfd[3] = {
		{ .fd = m->out_pipe[0], .events = POLLIN },
		{ .fd = m->console_pipe[0], .events = POLLIN },
		{ .fd = m->quit_pipe[0], .events = POLLIN },
	};
	struct log_sink *sinks[2] = { &m->log, &m->console };
	bool quitting = false;

	while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
		/* Once told to quit, take what is left without waiting for more. */
		int n = poll(pfd, 3, quitting ? 0 : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (pfd[2].revents) {
			quitting = true;
			pfd[2].fd = -1;
		}
		for (int i = 0; i < 2; i++) {
			if (!pfd[i].revents)
				continue;
			ssize_t len = read(pfd[i].fd, buf, sizeof(buf));
			if (len > 0)
				log_write(sinks[i], buf, (size_t)len);
			else if (len == 0 || errno != EINTR)
				pfd[i].fd = -1;
		}
	}
	return NULL;
}

static void *signal_main(void *arg)
{
	struct vmm *m = arg;
	sigset_t set;
	int signo;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		if (sigwait(&set, &signo) != 0)
			continue;
		pthread_mutex_lock(&m->lock);
		if (m->finished || m->stopping) {
			pthread_mutex_unlock(&m->lock);
			continue;
		}
		if (!m->vm) {
			m->stop_requested = true;
			pthread_mutex_unlock(&m->lock);
			continue;
		}
		m->stopping = true;
		capsa_vm *vm = m->vm;
		pthread_mutex_unlock(&m->lock);

		vmm_note("%s: stopping the VM", strsignal(signo));
		capsa_error err = { 0 };
		if (capsa_vm_stop(vm, STOP_TIMEOUT_MS, &err) < 0)
			vmm_note("stopping the VM: %s", err.message);

		pthread_mutex_lock(&m->lock);
		m->stopping = false;
		pthread_cond_broadcast(&m->stop_done);
		pthread_mutex_unlock(&m->lock);
	}
	return NULL;
}

static void report(int fd, char kind, const char *message)
{
	char buf[CAPSA_ERROR_MESSAGE_MAX + 2];
	int len = snprintf(buf, sizeof(buf), "%c%s", kind, message ? message : "");

	if (len > (int)sizeof(buf) - 1)
		len = (int)sizeof(buf) - 1;
	/* One write below PIPE_BUF: the parent gets all of it or nothing. */
	if (write(fd, buf, (size_t)len) < 0)
		vmm_note("cannot report to capsa run: %s", strerror(errno));
}

static int make_pipe(int p[2])
{
	return pipe2(p, O_CLOEXEC);
}

static void close_pair(int p[2])
{
	for (int i = 0; i < 2; i++) {
		if (p[i] >= 0)
			close(p[i]);
		p[i] = -1;
	}
}

/* Points stdin and stdout at /dev/null and stderr at console.log, so
 * nothing this process prints reaches the terminal or a pipe of whoever
 * ran capsa (which would then wait for it to close). */
static int redirect_stdio(struct vmm *m)
{
	int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0)
		return -1;
	close(null_fd);
	m->console.mirror_fd = 2;
	if (log_open(&m->console) < 0)
		return -1;
	setvbuf(stderr, NULL, _IOLBF, 0);
	return 0;
}

/* The VMM process: returns its exit status. */
/* `capsa snapshot`, through the VMM control socket. The lock keeps the VM
 * from being freed meanwhile. */
static int vmm_snapshot(void *opaque, const char *name, bool replace, capsa_error *err)
{
	struct vmm *m = opaque;
	int r;

	pthread_mutex_lock(&m->lock);
	if (!m->vm || m->finished || m->stopping) {
		err->code = ECHILD;
		snprintf(err->message, sizeof(err->message), "the VM is stopping");
		r = -1;
	} else {
		r = capsa_vm_snapshot(m->vm, name, replace, err);
	}
	pthread_mutex_unlock(&m->lock);
	if (r == 0)
		vmm_note("saved snapshot %s", name);
	else
		vmm_note("snapshot %s failed: %s", name, err->message);
	return r;
}

static int vmm_main(capsa_vm_config *cfg, const struct instance *inst, int report_fd)
{
	struct vmm m = {
		.log = { .dir = inst->dir, .name = INSTANCE_LOG, .fd = -1, .mirror_fd = -1 },
		.console = { .dir = inst->dir, .name = INSTANCE_CONSOLE_LOG, .fd = -1, .mirror_fd = -1 },
		.out_pipe = { -1, -1 },
		.console_pipe = { -1, -1 },
		.quit_pipe = { -1, -1 },
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.stop_done = PTHREAD_COND_INITIALIZER,
	};
	capsa_error err = { 0 };
	pthread_t signal_thread;
	int status = CLI_EXIT_FAILURE;
	char why[CAPSA_ERROR_MESSAGE_MAX];

	/* Out of the caller's session: its terminal's hang-up and ^C are not ours. */
	setsid();
	signal(SIGPIPE, SIG_IGN);
	if (redirect_stdio(&m) < 0 || log_open(&m.log) < 0) {
		snprintf(why, sizeof(why), "cannot set up the logs in %s: %s", inst->dir, strerror(errno));
		report(report_fd, REPORT_FAILED, why);
		return CLI_EXIT_FAILURE;
	}
	if (make_pipe(m.out_pipe) < 0 || make_pipe(m.console_pipe) < 0 || make_pipe(m.quit_pipe) < 0) {
		snprintf(why, sizeof(why), "cannot create pipes: %s", strerror(errno));
		report(report_fd, REPORT_FAILED, why);
		goto out;
	}
	if (capsa_vm_config_set_output(cfg, m.out_pipe[1], m.out_pipe[1], m.console_pipe[1], &err) < 0) {
		report(report_fd, REPORT_FAILED, err.message);
		goto out;
	}
	int e = pthread_create(&m.logger, NULL, logger_main, &m);
	if (e == 0) {
		m.logger_started = true;
		e = pthread_create(&signal_thread, NULL, signal_main, &m);
	}
	if (e != 0) {
		snprintf(why, sizeof(why), "cannot start a thread: %s", strerror(e));
		report(report_fd, REPORT_FAILED, why);
		goto out;
	}
	pthread_detach(signal_thread);

	capsa_vm *vm = capsa_vm_start(cfg, &err);
	if (!vm) {
		vmm_note("%s", err.message);
		report(report_fd, REPORT_FAILED, err.message);
		goto out;
	}
	pthread_mutex_lock(&m.lock);
	m.vm = vm;
	bool stop_now = m.stop_requested;
	pthread_mutex_unlock(&m.lock);
	char *control = instance_path(inst, INSTANCE_VMM_SOCKET);
	if (!control || vmm_control_serve(control, vmm_snapshot, &m, &err) < 0)
		vmm_note("no snapshots of this VM: %s", control ? err.message : "out of memory");
	free(control);
	report(report_fd, REPORT_READY, NULL);
	close(report_fd);
	report_fd = -1;
	vmm_note("VM %s is ready", inst->id);

	if (stop_now && capsa_vm_stop(vm, STOP_TIMEOUT_MS, &err) < 0)
		vmm_note("stopping the VM: %s", err.message);
	int exit_status;
	if (capsa_vm_wait(vm, &exit_status, &err) < 0) {
		/* No exit file: ps says "dead", and this says why. */
		vmm_note("%s", err.message);
	} else {
		vmm_note("the workload exited with status %d", exit_status);
		if (instance_write_exit(inst->dir, exit_status) < 0)
			vmm_note("cannot record the exit status: %s", strerror(errno));
		status = 0;
	}

	/* The signal thread may be inside capsa_vm_stop: the VM must outlive it. */
	pthread_mutex_lock(&m.lock);
	m.finished = true;
	while (m.stopping)
		pthread_cond_wait(&m.stop_done, &m.lock);
	m.vm = NULL;
	pthread_mutex_unlock(&m.lock);
	capsa_vm_free(vm);
out:
	close_pair(m.out_pipe);
	close_pair(m.console_pipe);
	if (m.logger_started) {
		if (write(m.quit_pipe[1], "q", 1) < 0)
			vmm_note("cannot stop the log writer: %s", strerror(errno));
		pthread_join(m.logger, NULL);
	}
	close_pair(m.quit_pipe);
	if (m.log.fd >= 0)
		close(m.log.fd);
	if (m.console.fd >= 0)
		close(m.console.fd);
	return status;
}

/* ---- the parent --------------------------------------------------------------- */

/* Waits for the VMM process's report; fills message. Returns the report's
 * kind, 0 when the process ended without one, or -signo when the user
 * interrupted the wait. */
static int wait_report(int fd, int signal_fd, char *message, size_t size)
{
	char buf[CAPSA_ERROR_MESSAGE_MAX + 2];
	size_t len = 0;

	for (;;) {
		struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN }, { .fd = signal_fd, .events = POLLIN } };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;
			if (read(signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				return -(int)si.ssi_signo;
		}
		if (!pfd[0].revents)
			continue;
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (len += (size_t)n) == sizeof(buf) - 1)
			break;
	}
	buf[len] = '\0';
	if (len == 0)
		return 0;
	size_t n = len - 1 < size - 1 ? len - 1 : size - 1;
	memcpy(message, buf + 1, n);
	message[n] = '\0';
	return buf[0];
}

/* Characters a shell takes literally. */
#define SHELL_PLAIN "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%"

/* "sh -c 'echo hi'": the command as a shell would read it, for ps. */
static char *command_line(const char *entrypoint, const char *const *command)
{
	size_t cap = 1;
	const char *first[] = { entrypoint, NULL };
	const char *const *parts[] = { entrypoint && entrypoint[0] ? first : NULL, command };

	for (int p = 0; p < 2; p++)
		for (const char *const *a = parts[p]; a && *a; a++)
			cap += 4 * strlen(*a) + 3;
	char *line = malloc(cap), *out = line;
	if (!line)
		return NULL;
	for (int p = 0; p < 2; p++) {
		for (const char *const *a = parts[p]; a && *a; a++) {
			bool plain = (*a)[0] != '\0' && strspn(*a, SHELL_PLAIN) == strlen(*a);
			if (out != line)
				*out++ = ' ';
			if (plain) {
				out = stpcpy(out, *a);
				continue;
			}
			*out++ = '\'';
			for (const char *c = *a; *c; c++) {
				if (*c == '\'')
					out = stpcpy(out, "'\\''");
				else
					*out++ = *c;
			}
			*out++ = '\'';
		}
	}
	*out = '\0';
	return line;
}

int cli_detach_check(const struct cli_detach *d, bool detached)
{
	if (!d->name)
		return 0;
	if (!detached) {
		cli_error("--name names a detached VM: add -d");
		return -1;
	}
	if (!instance_name_valid(d->name)) {
		cli_error("--name '%s' is not a valid name: use letters, digits and _.- (starting with a letter "
			  "or digit)",
			  d->name);
		return -1;
	}
	return 0;
}

int cli_run_detached(capsa_vm_config *cfg, const struct cli_detach *d)
{
	struct instance inst;
	capsa_error err = { 0 };
	int lock_fd, report_pipe[2] = { -1, -1 }, signal_fd = -1;
	int status = CLI_EXIT_FAILURE;
	sigset_t stop_signals, old_mask;
	bool remove = true;

	if (cli_detach_check(d, true) < 0)
		return CLI_EXIT_FAILURE;
	char *command = command_line(d->entrypoint, d->command);
	if (!command) {
		cli_error("out of memory");
		return CLI_EXIT_FAILURE;
	}
	int r = instance_create(&inst, d->name, d->image, command, &lock_fd);
	free(command);
	if (r < 0)
		return CLI_EXIT_FAILURE;

	char *socket = instance_path(&inst, INSTANCE_SOCKET);
	if (!socket || capsa_vm_config_set_control_socket(cfg, socket, &err) < 0) {
		cli_error_from(&err);
		free(socket);
		goto out;
	}
	free(socket);

	/* Blocked before the fork: the VMM process waits for them in a thread,
	 * this one on a signalfd while the VM boots. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop_signals, &old_mask);
	signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
	if (signal_fd < 0 || pipe2(report_pipe, O_CLOEXEC) < 0) {
		cli_error("cannot create a pipe: %s", strerror(errno));
		goto out_mask;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		cli_error("cannot fork: %s", strerror(errno));
		goto out_mask;
	}
	if (pid == 0) {
		/* The lock stays held through lock_fd, inherited from the parent. */
		close(signal_fd);
		close(report_pipe[0]);
		status = vmm_main(cfg, &inst, report_pipe[1]);
		instance_clear(&inst);
		return status;
	}
	close(report_pipe[1]);
	report_pipe[1] = -1;
	/* The child holds the lock now; it is released when the child ends. */
	close(lock_fd);
	lock_fd = -1;
	inst.pid = pid;
	instance_write_info(&inst);

	char message[CAPSA_ERROR_MESSAGE_MAX];
	int kind = wait_report(report_pipe[0], signal_fd, message, sizeof(message));
	if (kind == REPORT_READY) {
		printf("%s\n", inst.id);
		status = 0;
		remove = false;
		goto out_mask;
	}
	int child_status;
	if (kind < 0) {
		kill(pid, SIGKILL);
		status = 128 - kind;
	} else if (kind == REPORT_FAILED) {
		cli_error("%s", message);
	}
	while (waitpid(pid, &child_status, 0) < 0 && errno == EINTR)
		;
	if (kind == 0)
		cli_error("the VM process ended before the VM was ready (%s %d); run without -d to see why",
			  WIFSIGNALED(child_status) ? "signal" : "status",
			  WIFSIGNALED(child_status) ? WTERMSIG(child_status) : WEXITSTATUS(child_status));
out_mask:
	if (signal_fd >= 0)
		close(signal_fd);
	close_pair(report_pipe);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
out:
	if (lock_fd >= 0)
		close(lock_fd);
	if (remove)
		instance_remove_dir(&inst);
	instance_clear(&inst);
	return status;
}
