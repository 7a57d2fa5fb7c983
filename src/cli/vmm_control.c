#include "vmm_control.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

#define LINE_MAX_BYTES 512
/* A snapshot writes the guest's RAM to disk: give it time. */
#define SNAPSHOT_TIMEOUT_MS (10 * 60 * 1000)

struct server {
	int fd;
	vmm_snapshot_fn snapshot;
	void *opaque;
};

static int unix_address(const char *path, struct sockaddr_un *addr, capsa_error *err)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr->sun_path)) {
		snprintf(err->message, sizeof(err->message), "socket path %s is too long", path);
		err->code = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr->sun_path, path);
	return 0;
}

static void set_error(capsa_error *err, int code, const char *what)
{
	err->code = code;
	size_t len = strnlen(what, sizeof(err->message) - 1);
	memcpy(err->message, what, len);
	err->message[len] = '\0';
}

/* Reads one line (without its newline) within timeout_ms; -1 otherwise. */
static int read_line(int fd, char *buf, size_t size, int timeout_ms)
{
	size_t len = 0;
	while (len + 1 < size) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) <= 0)
			return -1;
		ssize_t n = read(fd, buf + len, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (buf[len] == '\n') {
			buf[len] = '\0';
			return 0;
		}
		len++;
	}
	return -1;
}

static void reply(int fd, const char *line)
{
	size_t len = strlen(line);
	while (len) {
		ssize_t n = write(fd, line, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		line += n;
		len -= (size_t)n;
	}
}

static void serve_one(struct server *s, int conn)
{
	char line[LINE_MAX_BYTES], name[LINE_MAX_BYTES], out[CAPSA_ERROR_MESSAGE_MAX + 16];
	int replace;
	char extra;
	capsa_error err = { 0 };

	if (read_line(conn, line, sizeof(line), 5000) < 0)
		return;
	if (sscanf(line, "SNAPSHOT %511s %d %c", name, &replace, &extra) != 2 || (replace != 0 && replace != 1)) {
		reply(conn, "ERROR malformed request\n");
		return;
	}
	if (s->snapshot(s->opaque, name, replace == 1, &err) < 0) {
		/* capsa_error messages are one line already. */
		snprintf(out, sizeof(out), "ERROR %s\n", err.message);
		reply(conn, out);
		return;
	}
	reply(conn, "OK\n");
}

static void *serve(void *opaque)
{
	struct server *s = opaque;
	for (;;) {
		int conn = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			poll(NULL, 0, 100);
			continue;
		}
		serve_one(s, conn);
		close(conn);
	}
	return NULL;
}

int vmm_control_serve(const char *path, vmm_snapshot_fn snapshot, void *opaque, capsa_error *err)
{
	struct sockaddr_un addr;
	if (unix_address(path, &addr, err) < 0)
		return -1;
	struct server *s = calloc(1, sizeof(*s));
	if (!s) {
		set_error(err, ENOMEM, "out of memory");
		return -1;
	}
	s->snapshot = snapshot;
	s->opaque = opaque;
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(path);
	mode_t old = umask(077);
	int bound = s->fd >= 0 && bind(s->fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 && listen(s->fd, 4) == 0;
	umask(old);
	pthread_t thread;
	if (!bound || pthread_create(&thread, NULL, serve, s) != 0) {
		err->code = errno;
		snprintf(err->message, sizeof(err->message), "cannot listen on %s: %s", path, strerror(errno));
		if (s->fd >= 0)
			close(s->fd);
		free(s);
		return -1;
	}
	pthread_detach(thread);
	return 0;
}

int vmm_control_snapshot(const char *path, const char *name, bool replace, capsa_error *err)
{
	struct sockaddr_un addr;
	char line[CAPSA_ERROR_MESSAGE_MAX + 16];
	if (unix_address(path, &addr, err) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err->code = errno;
		snprintf(err->message, sizeof(err->message), "cannot reach the VM's process (%s): %s", path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	snprintf(line, sizeof(line), "SNAPSHOT %s %d\n", name, replace ? 1 : 0);
	reply(fd, line);
	int r = read_line(fd, line, sizeof(line), SNAPSHOT_TIMEOUT_MS);
	close(fd);
	if (r < 0) {
		set_error(err, EIO, "the VM's process did not answer (did the VM stop?)");
		return -1;
	}
	if (strcmp(line, "OK") == 0)
		return 0;
	set_error(err, EIO, strncmp(line, "ERROR ", 6) == 0 ? line + 6 : "unexpected answer from the VM's process");
	return -1;
}
