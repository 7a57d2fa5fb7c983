#include "standby.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

static int read_exact(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int standby_wait_for_start(int listen_fd, struct agent_start_request *req, uint8_t **payload, int *reply_fd,
			   char *why, size_t why_len)
{
	int to_init[2], to_agent[2];
	uint32_t len;
	pid_t agent;
	int err;

	if (pipe2(to_init, O_CLOEXEC) < 0 || pipe2(to_agent, O_CLOEXEC) < 0) {
		err = errno;
		snprintf(why, why_len, "standby: pipe: %s", strerror(err));
		return err;
	}
	agent = fork();
	if (agent < 0) {
		err = errno;
		snprintf(why, why_len, "standby: fork the agent: %s", strerror(err));
		return err;
	}
	if (agent == 0) {
		struct agent_workload none = { .start_fd = to_init[1], .started_fd = to_agent[0] };
		sigset_t all;

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		close(to_init[0]);
		close(to_agent[1]);
		agent_serve(listen_fd, &none);
		_exit(1);
	}
	close(to_init[1]);
	close(to_agent[0]);

	/* The agent's connection process writes the length and the request
	 * in one go; it stays alive to relay the answer. */
	if (read_exact(to_init[0], &len, sizeof(len)) < 0 || len > AGENT_MAX_REQUEST) {
		snprintf(why, why_len, "standby: the agent stopped before the workload was started");
		return EIO;
	}
	*payload = malloc(len ? len : 1);
	if (!*payload) {
		snprintf(why, why_len, "standby: out of memory");
		return ENOMEM;
	}
	if (read_exact(to_init[0], *payload, len) < 0) {
		snprintf(why, why_len, "standby: the START request was cut short");
		return EIO;
	}
	close(to_init[0]);
	if (agent_decode_start(*payload, len, req) < 0) {
		snprintf(why, why_len, "standby: malformed START request");
		return EPROTO;
	}
	/* From here on execs must inherit the workload: the agent that knew
	 * none goes before anything else can connect to it. */
	kill(agent, SIGKILL);
	while (waitpid(agent, NULL, 0) < 0 && errno == EINTR)
		;
	*reply_fd = to_agent[1];
	return 0;
}
