/* The guest agent: serves the host's requests (src/common/agent_proto.h)
 * inside the VM, over vsock port CAPSA_AGENT_PORT. It builds for the host
 * too (listening on a Unix socket), which is how the unit tests run it. */
#ifndef CAPSA_INIT_AGENT_H
#define CAPSA_INIT_AGENT_H

#include <sys/types.h>

/* The workload, as execs inherit it (like `docker exec`): an exec's
 * environment is the workload's with the request's entries over it, and
 * an empty cwd or user in a request means the workload's. */
struct agent_workload {
	pid_t pid;               /* the process group WORKLOAD_SIGNAL signals (<= 0: none) */
	char *const *env;        /* "KEY=VALUE", NULL-terminated; NULL: none */
	const char *workdir;     /* NULL: "/" */
	const char *user;        /* docker's USER syntax; NULL: root */
	/* Standby (before START): START's payload goes to init on start_fd as a
	 * u32 length and the bytes; init answers on started_fd with an i32,
	 * the workload's pid (0 with AGENT_START_HOLD) or -errno. -1 when the
	 * workload has started. */
	int start_fd;
	int started_fd;
};

/* Accepts connections on listen_fd forever, each served by a process of its
 * own, so a bad or stuck request never affects another. Call it in a
 * process of its own: it ignores SIGCHLD and SIGPIPE. Returns -1 (errno
 * set) only when accept fails in a way that retrying cannot fix. */
int agent_serve(int listen_fd, const struct agent_workload *workload);

/* A vsock stream socket listening on port for any CID, or -1 with errno
 * (EAFNOSUPPORT on a kernel without vsock). */
int agent_listen_vsock(unsigned int port);

#endif
