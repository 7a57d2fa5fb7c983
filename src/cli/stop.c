/* capsa stop: end detached VMs, gracefully first. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "instances.h"

/* How long a VM's process gets to go away after SIGKILL. */
#define KILL_WAIT_MS 5000

#define DEFAULT_STOP_SECONDS 10

static bool has_exit_status(const struct instance *inst)
{
	char *path = instance_path(inst, INSTANCE_EXIT);
	struct stat st;
	bool has = path && stat(path, &st) == 0;

	free(path);
	return has;
}

int instance_stop(struct instance *inst, const char *ref, int timeout_ms)
{
	capsa_error err = { 0 };

	if (!instance_is_running(inst))
		goto stopped;
	if (timeout_ms > 0) {
		char *socket = instance_path(inst, INSTANCE_SOCKET);
		int r = socket ? capsa_workload_signal(socket, SIGTERM, &err) : -1;
		free(socket);
		/* An agent that does not answer: the VM's process stops the VM
		 * itself on SIGTERM. The lock says the pid is still that process. */
		if (r < 0 && inst->pid > 0 && instance_is_running(inst))
			kill(inst->pid, SIGTERM);
		if (instance_wait_stopped(inst, timeout_ms))
			goto stopped;
	}
	if (inst->pid > 0 && instance_is_running(inst)) {
		kill(inst->pid, SIGKILL);
		if (instance_wait_stopped(inst, KILL_WAIT_MS)) {
			if (!has_exit_status(inst) && instance_write_exit(inst->dir, 128 + SIGKILL) < 0)
				cli_error("cannot record the exit status of '%s': %s", ref, strerror(errno));
			goto stopped;
		}
	}
	if (instance_is_running(inst)) {
		cli_error("VM '%s' did not stop (its process is %ld)", ref, (long)inst->pid);
		return -1;
	}
stopped:
	instance_remove_stale_socket(inst);
	instance_refresh_state(inst);
	return 0;
}

static int parse_seconds(const char *text, int *seconds)
{
	char *end;

	errno = 0;
	long value = strtol(text, &end, 10);
	if (errno || end == text || *end || value < 0 || value > 24 * 3600)
		return -1;
	*seconds = (int)value;
	return 0;
}

int cmd_stop(int argc, char **argv)
{
	static const struct option options[] = {
		{ "time", required_argument, NULL, 't' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int seconds = DEFAULT_STOP_SECONDS;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+t:h", options, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_seconds(optarg, &seconds) < 0) {
				cli_error("--time '%s' is not a number of seconds", optarg);
				return CLI_EXIT_FAILURE;
			}
			break;
		case 'h':
			printf("Usage: capsa stop [-t SECONDS] VM...\n\n"
			       "Stop VMs started with 'capsa run -d': send their workload SIGTERM, and\n"
			       "after SECONDS (default %d) stop them by force.\n\n"
			       "Options:\n"
			       "  -t, --time SECONDS  how long to wait before stopping by force\n"
			       "  -h, --help          show this help\n",
			       DEFAULT_STOP_SECONDS);
			return 0;
		default:
			fprintf(stderr, "Run 'capsa stop --help' for the options.\n");
			return CLI_EXIT_FAILURE;
		}
	}
	if (optind >= argc) {
		cli_error("stop needs at least one VM, e.g. capsa stop myvm");
		return CLI_EXIT_FAILURE;
	}
	int status = 0;
	for (int i = optind; i < argc; i++) {
		struct instance inst;
		if (instance_find(argv[i], &inst) < 0) {
			status = CLI_EXIT_FAILURE;
			continue;
		}
		if (instance_stop(&inst, argv[i], seconds * 1000) < 0)
			status = CLI_EXIT_FAILURE;
		else
			printf("%s\n", argv[i]);
		fflush(stdout);
		instance_clear(&inst);
	}
	return status;
}
