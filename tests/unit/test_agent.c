/* The guest agent built for the host, serving a Unix socket in a temporary
 * directory, driven through the host's client: execs (output, exit codes,
 * signals, timeouts, stdin, ptys, users, concurrency), files, the workload
 * signal, and hostile frames that must end only their own connection. */
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../guest/init/agent.h"
#include "agent/client.h"
#include "oci/digest.h"

#define OUTPUT_CAP (16u << 20)

struct fixture {
	char dir[64];
	char sock[128];
	pid_t agent;
	pid_t workload;   /* a process group WORKLOAD_SIGNAL may signal */
};

static const char *const test_env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", NULL };

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/capsa-agent-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->sock, sizeof(fx->sock), "%s/agent.sock", fx->dir);

	fx->workload = fork();
	assert_true(fx->workload >= 0);
	if (fx->workload == 0) {
		setsid();
		execl("/bin/sleep", "sleep", "1000", (char *)NULL);
		_exit(127);
	}
	/* Its process group must exist before anyone signals it. */
	while (getpgid(fx->workload) != fx->workload)
		poll(NULL, 0, 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	strcpy(addr.sun_path, fx->sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(fd, 64), 0);
	fx->agent = fork();
	assert_true(fx->agent >= 0);
	if (fx->agent == 0) {
		struct agent_workload workload = { .pid = fx->workload, .start_fd = -1, .started_fd = -1 };
		agent_serve(fd, &workload);
		_exit(1);
	}
	close(fd);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	kill(fx->agent, SIGKILL);
	waitpid(fx->agent, NULL, 0);
	kill(fx->workload, SIGKILL);
	waitpid(fx->workload, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static int connect_agent(const struct fixture *fx)
{
	capsa_error err = { 0 };
	int fd = agent_connect(fx->sock, CAPSA_AGENT_PORT, AGENT_CONNECT_DIRECT, 5000, &err);

	if (fd < 0)
		fail_msg("connect: %s", err.message);
	return fd;
}

static struct agent_exec_request request(const char *const *argv)
{
	return (struct agent_exec_request){ .argv = argv, .env = test_env };
}

/* Runs req to completion on a fresh connection; stdin from stdin_fd (-1: none). */
static void run(const struct fixture *fx, const struct agent_exec_request *req, int stdin_fd,
		struct agent_exec_output *out)
{
	capsa_error err = { 0 };
	int fd = connect_agent(fx);

	if (agent_exec_collect(fd, req, stdin_fd, OUTPUT_CAP, out, &err) < 0)
		fail_msg("exec %s: %s", req->argv[0], err.message);
	close(fd);
}

static void test_ping(void **state)
{
	struct fixture *fx = *state;
	capsa_error err = { 0 };
	int fd;

	assert_int_equal(agent_wait_ready(fx->sock, CAPSA_AGENT_PORT, AGENT_CONNECT_DIRECT, 5000, &err), 0);
	fd = connect_agent(fx);
	assert_int_equal(agent_ping(fd, 5000, &err), 0);
	close(fd);
}

static void test_output_separated(void **state)
{
	const char *argv[] = { "sh", "-c", "echo out; echo err >&2; printf x", NULL };
	struct agent_exec_request req = request(argv);
	struct agent_exec_output out;

	run(*state, &req, -1, &out);
	assert_string_equal(out.out, "out\nx");
	assert_string_equal(out.err, "err\n");
	assert_int_equal(out.exit.exit_code, 0);
	assert_int_equal(out.exit.signal, 0);
	assert_int_equal(out.exit.flags, 0);
	assert_true(out.exit.duration_us > 0);
	assert_true(out.exit.peak_rss_kib > 0);
	agent_exec_output_free(&out);
}

static void expect_exit(const struct fixture *fx, const char *const *argv, int code, int signal,
			const char *stderr_has)
{
	struct agent_exec_request req = request(argv);
	struct agent_exec_output out;

	run(fx, &req, -1, &out);
	assert_int_equal(out.exit.exit_code, code);
	assert_int_equal(out.exit.signal, signal);
	if (stderr_has && !strstr(out.err, stderr_has))
		fail_msg("stderr '%s' lacks '%s'", out.err, stderr_has);
	agent_exec_output_free(&out);
}

static void test_exit_codes(void **state)
{
	struct fixture *fx = *state;

	expect_exit(fx, (const char *[]){ "true", NULL }, 0, 0, NULL);
	expect_exit(fx, (const char *[]){ "sh", "-c", "exit 3", NULL }, 3, 0, NULL);
	expect_exit(fx, (const char *[]){ "capsa-no-such-command", NULL }, 127, 0, "command not found");
	expect_exit(fx, (const char *[]){ "/no/such/file", NULL }, 127, 0, "No such file");
	expect_exit(fx, (const char *[]){ "/etc/passwd", NULL }, 126, 0, "Permission denied");
	expect_exit(fx, (const char *[]){ "sh", "-c", "kill -KILL $$", NULL }, 137, 9, NULL);
	expect_exit(fx, (const char *[]){ "sh", "-c", "kill -USR1 $$", NULL }, 128 + SIGUSR1, SIGUSR1, NULL);
}

static void test_environment(void **state)
{
	struct fixture *fx = *state;
	const char *argv[] = { "sh", "-c", "echo \"$PATH|$HOME|$A|$(pwd)\"", NULL };
	const char *env[] = { "A=1", NULL };
	struct agent_exec_request req = request(argv);
	struct agent_exec_output out;

	/* PATH and HOME come from the agent when the host gives none. */
	req.env = env;
	req.cwd = "/tmp";
	run(fx, &req, -1, &out);
	assert_string_equal(out.out, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root|1|/tmp\n");
	agent_exec_output_free(&out);

	req.cwd = "/no/such/dir";
	run(fx, &req, -1, &out);
	assert_int_equal(out.exit.exit_code, 126);
	assert_non_null(strstr(out.err, "working directory"));
	agent_exec_output_free(&out);
}

static void test_user(void **state)
{
	struct fixture *fx = *state;
	const char *argv[] = { "sh", "-c", "id -u; id -g", NULL };
	struct agent_exec_request req = request(argv);
	struct agent_exec_output out;
	capsa_error err = { 0 };
	int fd;

	if (getuid() != 0)
		skip();
	req.user = "65534:65534";
	run(fx, &req, -1, &out);
	assert_string_equal(out.out, "65534\n65534\n");
	agent_exec_output_free(&out);

	req.user = "capsa-no-such-user";
	fd = connect_agent(fx);
	assert_int_equal(agent_exec_start(fd, &req, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.message, "capsa-no-such-user"));
	close(fd);
}

static void fill_random(uint8_t *buf, size_t len)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
}

static int write_temp_file(const struct fixture *fx, const char *name, const void *data, size_t len)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void test_stdin_big(void **state)
{
	struct fixture *fx = *state;
	const size_t size = 10u << 20;
	uint8_t *data = malloc(size);
	char digest[OCI_DIGEST_STRING_SIZE], expected[128];
	struct agent_exec_request req;
	struct agent_exec_output out;
	int fd;

	assert_non_null(data);
	fill_random(data, size);
	assert_int_equal(oci_digest_of_buffer(data, size, digest, NULL), 0);
	snprintf(expected, sizeof(expected), "%s  -\n", digest + strlen("sha256:"));
	fd = write_temp_file(fx, "stdin.bin", data, size);

	req = request((const char *[]){ "sha256sum", NULL });
	req.flags = AGENT_EXEC_STDIN;
	run(fx, &req, fd, &out);
	assert_string_equal(out.out, expected);
	assert_int_equal(out.exit.exit_code, 0);
	agent_exec_output_free(&out);

	/* Both directions at once: cat can only take more stdin as its
	 * output is read. */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	req = request((const char *[]){ "cat", NULL });
	req.flags = AGENT_EXEC_STDIN;
	run(fx, &req, fd, &out);
	assert_int_equal(out.out_len, size);
	assert_false(out.out_truncated);
	assert_memory_equal(out.out, data, size);
	agent_exec_output_free(&out);

	/* The process stops reading early: the rest of stdin is dropped. */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	req = request((const char *[]){ "head", "-c", "10", NULL });
	req.flags = AGENT_EXEC_STDIN;
	run(fx, &req, fd, &out);
	assert_int_equal(out.exit.exit_code, 0);
	assert_int_equal(out.out_len, 10);
	assert_memory_equal(out.out, data, 10);
	agent_exec_output_free(&out);

	close(fd);
	free(data);
}

static void test_output_cap(void **state)
{
	struct fixture *fx = *state;
	const char *argv[] = { "head", "-c", "300000", "/dev/zero", NULL };
	struct agent_exec_request req = request(argv);
	struct agent_exec_output out;
	capsa_error err = { 0 };
	int fd = connect_agent(fx);

	assert_int_equal(agent_exec_collect(fd, &req, -1, 1000, &out, &err), 0);
	assert_int_equal(out.out_len, 1000);
	assert_true(out.out_truncated);
	assert_false(out.err_truncated);
	assert_int_equal(out.exit.exit_code, 0);
	agent_exec_output_free(&out);
	close(fd);
}

static void test_concurrent(void **state)
{
	struct fixture *fx = *state;
	enum { N = 20 };
	int fds[N];
	char names[N][16], barrier[128];
	capsa_error err = { 0 };

	/* Each job waits until all have started: they only finish if they
	 * all run at once. */
	snprintf(barrier, sizeof(barrier), "%s/barrier", fx->dir);
	assert_int_equal(mkdir(barrier, 0755), 0);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "job-%d", i);
		const char *argv[] = { "sh", "-c", "touch \"$1/$0\"; until [ $(ls \"$1\" | wc -l) -ge 20 ]; do "
				       "sleep 0.05; done; echo $0", names[i], barrier, NULL };
		struct agent_exec_request req = request(argv);
		req.timeout_ms = 60000;
		fds[i] = connect_agent(fx);
		if (agent_exec_start(fds[i], &req, &err) <= 0)
			fail_msg("start %d: %s", i, err.message);
	}
	for (int i = 0; i < N; i++) {
		struct agent_exec_output out;
		size_t name_len = strlen(names[i]);
		if (agent_exec_wait(fds[i], -1, OUTPUT_CAP, &out, &err) < 0)
			fail_msg("wait %d: %s", i, err.message);
		/* Each exec printed its own name and a newline. */
		assert_int_equal(out.out_len, name_len + 1);
		assert_memory_equal(out.out, names[i], name_len);
		assert_int_equal(out.out[name_len], '\n');
		assert_int_equal(out.exit.exit_code, 0);
		agent_exec_output_free(&out);
		close(fds[i]);
	}
}

static void test_tty(void **state)
{
	struct fixture *fx = *state;
	struct agent_exec_request req;
	struct agent_exec_output out;
	int fd;

	req = request((const char *[]){ "tty", NULL });
	req.flags = AGENT_EXEC_TTY;
	run(fx, &req, -1, &out);
	assert_int_equal(out.exit.exit_code, 0);
	if (strncmp(out.out, "/dev/pts/", 9) != 0)
		fail_msg("tty printed '%s'", out.out);
	agent_exec_output_free(&out);

	req = request((const char *[]){ "stty", "size", NULL });
	req.flags = AGENT_EXEC_TTY;
	req.rows = 33;
	req.cols = 101;
	run(fx, &req, -1, &out);
	assert_string_equal(out.out, "33 101\r\n");
	agent_exec_output_free(&out);

	/* Everything on the one terminal, stderr included. */
	req = request((const char *[]){ "sh", "-c", "echo to-stderr >&2", NULL });
	req.flags = AGENT_EXEC_TTY;
	run(fx, &req, -1, &out);
	assert_string_equal(out.out, "to-stderr\r\n");
	assert_string_equal(out.err, "");
	agent_exec_output_free(&out);

	/* STDIN_EOF on a tty types the EOF character: cat ends. */
	fd = write_temp_file(fx, "tty-stdin", "hello\n", 6);
	req = request((const char *[]){ "cat", NULL });
	req.flags = AGENT_EXEC_TTY | AGENT_EXEC_STDIN;
	run(fx, &req, fd, &out);
	assert_int_equal(out.exit.exit_code, 0);
	assert_non_null(strstr(out.out, "hello"));
	agent_exec_output_free(&out);
	close(fd);
}

/* Reads frames until EXIT, appending STDOUT to buf. */
static void read_until_exit(int fd, char *buf, size_t cap, struct agent_exit *ex)
{
	struct agent_frame *f = malloc(sizeof(*f));
	capsa_error err = { 0 };
	size_t len = 0;

	assert_non_null(f);
	for (;;) {
		if (agent_read_frame(fd, f, 10000, &err) < 0)
			fail_msg("read: %s", err.message);
		if (f->hdr.type == AGENT_EXIT)
			break;
		assert_true(f->hdr.type == AGENT_STDOUT || f->hdr.type == AGENT_STDERR);
		if (f->hdr.type == AGENT_STDOUT && len + f->hdr.len < cap) {
			memcpy(buf + len, f->payload, f->hdr.len);
			len += f->hdr.len;
		}
	}
	buf[len] = '\0';
	assert_int_equal(agent_decode_exit(f->payload, f->hdr.len, ex), 0);
	free(f);
}

static void test_resize(void **state)
{
	struct fixture *fx = *state;
	const char *argv[] = { "sh", "-c", "read x; stty size", NULL };
	struct agent_exec_request req = request(argv);
	struct agent_exit ex;
	capsa_error err = { 0 };
	char buf[4096];
	int fd = connect_agent(fx);

	req.flags = AGENT_EXEC_TTY | AGENT_EXEC_STDIN;
	req.rows = 10;
	req.cols = 20;
	assert_true(agent_exec_start(fd, &req, &err) > 0);
	assert_int_equal(agent_send_resize(fd, 40, 120, &err), 0);
	assert_int_equal(agent_send_stdin(fd, "go\n", 3, &err), 0);
	read_until_exit(fd, buf, sizeof(buf), &ex);
	assert_int_equal(ex.exit_code, 0);
	if (!strstr(buf, "40 120\r\n"))
		fail_msg("output '%s'", buf);
	close(fd);
}

static void test_signal(void **state)
{
	struct fixture *fx = *state;
	const char *argv[] = { "sleep", "100", NULL };
	struct agent_exec_request req = request(argv);
	struct agent_exec_output out;
	capsa_error err = { 0 };
	int fd = connect_agent(fx);

	assert_true(agent_exec_start(fd, &req, &err) > 0);
	poll(NULL, 0, 100);  /* let it reach sleep */
	assert_int_equal(agent_send_signal(fd, SIGTERM, &err), 0);
	assert_int_equal(agent_exec_wait(fd, -1, OUTPUT_CAP, &out, &err), 0);
	assert_int_equal(out.exit.exit_code, 143);
	assert_int_equal(out.exit.signal, SIGTERM);
	assert_int_equal(out.exit.flags, 0);
	agent_exec_output_free(&out);
	close(fd);
}

static void test_timeout(void **state)
{
	struct fixture *fx = *state;
	const char *argv[] = { "sleep", "100", NULL };
	struct agent_exec_request req = request(argv);
	struct agent_exec_output out;
	int64_t start = now_ms();

	req.timeout_ms = 300;
	run(fx, &req, -1, &out);
	assert_int_equal(out.exit.exit_code, 137);
	assert_int_equal(out.exit.signal, SIGKILL);
	assert_int_equal(out.exit.flags, AGENT_EXIT_TIMED_OUT);
	assert_true(out.exit.duration_us >= 300000);
	assert_true(now_ms() - start < 5000);
	agent_exec_output_free(&out);
}

static void test_background_child(void **state)
{
	struct fixture *fx = *state;
	const char *argv[] = { "sh", "-c", "sleep 30 & echo $!", NULL };
	struct agent_exec_request req = request(argv);
	struct agent_exec_output out;
	int64_t start = now_ms();
	int background;

	/* The background sleep holds the output pipes: EXIT must not wait for it. */
	run(fx, &req, -1, &out);
	assert_int_equal(out.exit.exit_code, 0);
	assert_true(now_ms() - start < 10000);
	background = atoi(out.out);
	assert_true(background > 0);
	kill(background, SIGKILL);
	agent_exec_output_free(&out);
}

static bool process_gone(pid_t pid)
{
	for (int i = 0; i < 200; i++) {
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		poll(NULL, 0, 10);
	}
	return false;
}

static void test_disconnect_kills(void **state)
{
	struct fixture *fx = *state;
	const char *argv[] = { "sleep", "100", NULL };
	struct agent_exec_request req = request(argv);
	capsa_error err = { 0 };
	int fd = connect_agent(fx);
	int pid = agent_exec_start(fd, &req, &err);

	assert_true(pid > 0);
	close(fd);
	assert_true(process_gone(pid));
}

static void test_files(void **state)
{
	struct fixture *fx = *state;
	const size_t size = 200000;
	uint8_t *data = malloc(size);
	char path[256], back_path[256];
	struct agent_file_write fw = { .path = path, .mode = 0640, .uid = AGENT_ID_KEEP, .gid = AGENT_ID_KEEP };
	struct agent_stat_result st;
	capsa_error err = { 0 };
	uint64_t copied = 0;
	struct stat host_st;
	int fd, out_fd;

	assert_non_null(data);
	for (size_t i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	snprintf(path, sizeof(path), "%s/dir/file.bin", fx->dir);

	/* No parent directory: refused, nothing left behind. */
	fd = connect_agent(fx);
	assert_int_equal(agent_file_write_buf(fd, &fw, data, size, &err), -1);
	assert_int_equal(err.code, ENOENT);
	close(fd);

	snprintf(back_path, sizeof(back_path), "%s/dir", fx->dir);
	assert_int_equal(mkdir(back_path, 0755), 0);
	if (getuid() == 0)
		fw.uid = fw.gid = 65534;
	fd = connect_agent(fx);
	if (agent_file_write_buf(fd, &fw, data, size, &err) < 0)
		fail_msg("write: %s", err.message);
	close(fd);

	fd = connect_agent(fx);
	assert_int_equal(agent_stat(fd, path, &st, &err), 0);
	close(fd);
	assert_int_equal(st.mode, S_IFREG | 0640);
	assert_int_equal(st.size, size);
	assert_int_equal(st.uid, getuid() == 0 ? 65534 : getuid());
	assert_int_equal(stat(path, &host_st), 0);
	assert_int_equal(st.mtime_sec, host_st.st_mtim.tv_sec);
	assert_int_equal(st.mtime_nsec, host_st.st_mtim.tv_nsec);

	snprintf(back_path, sizeof(back_path), "%s/back.bin", fx->dir);
	out_fd = open(back_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(out_fd >= 0);
	fd = connect_agent(fx);
	if (agent_file_read(fd, path, out_fd, &copied, &err) < 0)
		fail_msg("read: %s", err.message);
	close(fd);
	assert_int_equal(copied, size);
	uint8_t *back = malloc(size + 1);
	assert_non_null(back);
	assert_int_equal(pread(out_fd, back, size + 1, 0), (ssize_t)size);
	assert_memory_equal(back, data, size);
	close(out_fd);

	/* Replace it from an fd: the new content, whole, and no temporary
	 * file left in the directory. */
	int src = write_temp_file(fx, "src.txt", "new content", 11);
	fw.mode = 0755;
	fw.uid = fw.gid = AGENT_ID_KEEP;
	fd = connect_agent(fx);
	if (agent_file_write_fd(fd, &fw, src, &err) < 0)
		fail_msg("write from fd: %s", err.message);
	close(fd);
	close(src);
	assert_int_equal(stat(path, &host_st), 0);
	assert_int_equal(host_st.st_size, 11);
	assert_int_equal(host_st.st_mode & 07777, 0755);
	snprintf(back_path, sizeof(back_path), "%s/dir", fx->dir);
	DIR *d = opendir(back_path);
	struct dirent *de;
	int entries = 0;
	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
			entries++;
	closedir(d);
	assert_int_equal(entries, 1);

	/* Errors carry the guest's errno. */
	fd = connect_agent(fx);
	assert_int_equal(agent_file_read(fd, "/no/such/file", STDOUT_FILENO, NULL, &err), -1);
	assert_int_equal(err.code, ENOENT);
	close(fd);
	fd = connect_agent(fx);
	assert_int_equal(agent_file_read(fd, fx->dir, STDOUT_FILENO, NULL, &err), -1);
	assert_int_equal(err.code, EISDIR);
	close(fd);
	fd = connect_agent(fx);
	assert_int_equal(agent_stat(fd, "/no/such/file", &st, &err), -1);
	assert_int_equal(err.code, ENOENT);
	close(fd);
	fd = connect_agent(fx);
	assert_int_equal(agent_stat(fd, "relative", &st, &err), -1);
	assert_int_equal(err.code, EINVAL);
	close(fd);

	free(back);
	free(data);
}

static void test_workload_signal(void **state)
{
	struct fixture *fx = *state;
	capsa_error err = { 0 };
	int fd = connect_agent(fx), status;

	assert_int_equal(agent_signal_workload(fd, SIGTERM, &err), 0);
	close(fd);
	assert_int_equal(waitpid(fx->workload, &status, 0), fx->workload);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGTERM);

	/* Nothing left to signal: the guest's errno comes back. */
	fd = connect_agent(fx);
	assert_int_equal(agent_signal_workload(fd, SIGTERM, &err), -1);
	assert_int_equal(err.code, ESRCH);
	close(fd);
}

/* Sends raw bytes and expects an ERROR (EPROTO) followed by the end of the
 * connection; then the agent still answers a PING on a new one. */
static void expect_rejected(const struct fixture *fx, const void *bytes, size_t len)
{
	struct agent_frame *f = malloc(sizeof(*f));
	struct agent_error e;
	capsa_error err = { 0 };
	int fd = connect_agent(fx);

	assert_non_null(f);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	if (agent_read_frame(fd, f, 5000, &err) < 0)
		fail_msg("no ERROR: %s", err.message);
	assert_int_equal(f->hdr.type, AGENT_ERROR);
	assert_int_equal(agent_decode_error(f->payload, f->hdr.len, &e), 0);
	assert_int_equal(e.code, EPROTO);
	assert_int_equal(agent_read_frame(fd, f, 5000, &err), -1);
	assert_int_equal(err.code, ECONNRESET);
	close(fd);
	free(f);

	fd = connect_agent(fx);
	assert_int_equal(agent_ping(fd, 5000, &err), 0);
	close(fd);
}

static void test_malformed(void **state)
{
	struct fixture *fx = *state;
	static const uint8_t unknown_type[] = { 0, 0, 0, 0, 0xe7, 0x03, 0, 0 };
	static const uint8_t oversized[] = { 1, 0, 0x10, 0, AGENT_EXEC, 0, 0, 0 };
	static const uint8_t flags_set[] = { 0, 0, 0, 0, AGENT_PING, 0, 1, 0 };
	static const uint8_t ping_payload[] = { 1, 0, 0, 0, AGENT_PING, 0, 0, 0, 'x' };
	static const uint8_t not_request[] = { 0, 0, 0, 0, AGENT_OK, 0, 0, 0 };
	/* EXEC whose argc promises more strings than the payload holds */
	static const uint8_t bad_exec[] = { 20, 0, 0, 0, AGENT_EXEC, 0, 0, 0,
					    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 'l', 's', 0, 0 };
	static const uint8_t bad_stat[] = { 2, 0, 0, 0, AGENT_STAT, 0, 0, 0, '/', 'x' };
	capsa_error err = { 0 };
	int fd;

	expect_rejected(fx, unknown_type, sizeof(unknown_type));
	expect_rejected(fx, oversized, sizeof(oversized));
	expect_rejected(fx, flags_set, sizeof(flags_set));
	expect_rejected(fx, ping_payload, sizeof(ping_payload));
	expect_rejected(fx, not_request, sizeof(not_request));
	expect_rejected(fx, bad_exec, sizeof(bad_exec));
	expect_rejected(fx, bad_stat, sizeof(bad_stat));

	/* A frame cut short, then silence: only that connection ends. */
	fd = connect_agent(fx);
	assert_int_equal(write(fd, "\x10\0\0\0", 4), 4);
	close(fd);
	fd = connect_agent(fx);
	assert_int_equal(agent_ping(fd, 5000, &err), 0);
	close(fd);

	/* Garbage during an exec: ERROR, the process killed, the agent fine. */
	const char *argv[] = { "sleep", "100", NULL };
	struct agent_exec_request req = request(argv);
	fd = connect_agent(fx);
	int pid = agent_exec_start(fd, &req, &err);
	assert_true(pid > 0);
	struct agent_frame *f = malloc(sizeof(*f));
	assert_non_null(f);
	assert_int_equal(write(fd, unknown_type, sizeof(unknown_type)), (ssize_t)sizeof(unknown_type));
	assert_int_equal(agent_read_frame(fd, f, 5000, &err), 0);
	assert_int_equal(f->hdr.type, AGENT_ERROR);
	assert_int_equal(agent_read_frame(fd, f, 5000, &err), -1);
	close(fd);
	assert_true(process_gone(pid));

	/* A request frame in the middle of an exec is just as wrong. */
	fd = connect_agent(fx);
	assert_true(agent_exec_start(fd, &req, &err) > 0);
	assert_int_equal(write(fd, not_request, sizeof(not_request)), (ssize_t)sizeof(not_request));
	assert_int_equal(agent_read_frame(fd, f, 5000, &err), 0);
	assert_int_equal(f->hdr.type, AGENT_ERROR);
	close(fd);
	free(f);

	fd = connect_agent(fx);
	assert_int_equal(agent_ping(fd, 5000, &err), 0);
	close(fd);
}

static void test_connect_handshake(void **state)
{
	struct fixture *fx = *state;
	capsa_error err = { 0 };
	int fd;

	/* The agent is no vsock device: it takes "CONNECT 1024\n" for a
	 * malformed frame, and the client sees no OK. */
	fd = agent_connect(fx->sock, CAPSA_AGENT_PORT, 0, 5000, &err);
	assert_int_equal(fd, -1);
	assert_true(err.code == EPROTO || err.code == ECONNREFUSED);

	assert_int_equal(agent_connect("/nonexistent/capsa.sock", CAPSA_AGENT_PORT, 0, 1000, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_int_equal(agent_wait_ready("/nonexistent/capsa.sock", CAPSA_AGENT_PORT, 0, 100, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.message, "did not become ready"));
}

#define F(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		F(test_ping),
		F(test_output_separated),
		F(test_exit_codes),
		F(test_environment),
		F(test_user),
		F(test_stdin_big),
		F(test_output_cap),
		F(test_concurrent),
		F(test_tty),
		F(test_resize),
		F(test_signal),
		F(test_timeout),
		F(test_background_child),
		F(test_disconnect_kills),
		F(test_files),
		F(test_workload_signal),
		F(test_malformed),
		F(test_connect_handshake),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
