/* capsa logs: print what a detached VM's workload wrote (stdout and
 * stderr), optionally following it while the VM runs. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "instances.h"

#define FOLLOW_INTERVAL_US (200 * 1000)

/* Copies fd from its current offset to its end; -1 if stdout fails. */
static int drain(int fd)
{
	static char buf[64 * 1024];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(1, buf + done, (size_t)(n - done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				cli_error("cannot write the log: %s", strerror(errno));
				return -1;
			}
			done += w;
		}
	}
}

static int open_log(const struct instance *inst, const char *file)
{
	char *path = instance_path(inst, file);
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;

	free(path);
	return fd;
}

/* Whether the log file was rotated away from under fd (or appeared). */
static bool log_replaced(const struct instance *inst, int fd)
{
	char *path = instance_path(inst, INSTANCE_LOG);
	struct stat now, ours;
	bool replaced = false;

	if (path && stat(path, &now) == 0)
		replaced = fd < 0 || fstat(fd, &ours) < 0 || now.st_ino != ours.st_ino || now.st_dev != ours.st_dev;
	free(path);
	return replaced;
}

static int follow(const struct instance *inst, int fd)
{
	for (;;) {
		/* Looked at before draining: once the VM is gone, one more pass
		 * takes everything it wrote. */
		bool running = instance_is_running(inst);
		if (fd >= 0 && drain(fd) < 0) {
			close(fd);
			return -1;
		}
		if (log_replaced(inst, fd)) {
			/* The old file is drained; go on with the new one. */
			if (fd >= 0)
				close(fd);
			fd = open_log(inst, INSTANCE_LOG);
			continue;
		}
		if (!running)
			break;
		usleep(FOLLOW_INTERVAL_US);
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

int cmd_logs(int argc, char **argv)
{
	static const struct option options[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool follow_output = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+fh", options, NULL)) != -1) {
		switch (c) {
		case 'f':
			follow_output = true;
			break;
		case 'h':
			printf("Usage: capsa logs [-f] VM\n\n"
			       "Print what the workload of a VM started with 'capsa run -d' wrote to its\n"
			       "stdout and stderr (the last %u MiB or more).\n\n"
			       "Options:\n"
			       "  -f, --follow  keep printing new output until the VM ends\n"
			       "  -h, --help    show this help\n",
			       INSTANCE_LOG_MAX / (1024 * 1024));
			return 0;
		default:
			fprintf(stderr, "Run 'capsa logs --help' for the options.\n");
			return CLI_EXIT_FAILURE;
		}
	}
	if (argc - optind != 1) {
		cli_error("logs needs one VM, e.g. capsa logs myvm");
		return CLI_EXIT_FAILURE;
	}
	struct instance inst;
	if (instance_find(argv[optind], &inst) < 0)
		return CLI_EXIT_FAILURE;

	int status = 0;
	int old = open_log(&inst, INSTANCE_LOG ".1");
	int fd = open_log(&inst, INSTANCE_LOG);
	if (old >= 0) {
		if (drain(old) < 0)
			status = CLI_EXIT_FAILURE;
		close(old);
	}
	if (status == 0 && fd >= 0 && drain(fd) < 0)
		status = CLI_EXIT_FAILURE;
	if (status == 0 && follow_output) {
		if (follow(&inst, fd) < 0)
			status = CLI_EXIT_FAILURE;
		fd = -1;
	}
	if (fd >= 0)
		close(fd);
	instance_clear(&inst);
	return status;
}
