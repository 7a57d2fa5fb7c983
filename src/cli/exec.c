/* capsa exec: run a command in a running VM, relaying its stdin, output,
 * signals and terminal size, and exit with its status. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
		"  --timeout SECS       kill the command (exit status 137) if it runs longer\n"
		"  -h, --help           show this help\n",
		CLI_EXIT_FAILURE);
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

enum { OPT_HELP = 'h', OPT_TIMEOUT = 256 };

/* Whole seconds, 1 to a day: an exec timeout is a guard, not a schedule. */
static int parse_timeout(const char *text, uint32_t *ms)
{
	char *end;
	errno = 0;
	unsigned long secs = strtoul(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || secs < 1 || secs > 86400)
		return -1;
	*ms = (uint32_t)secs * 1000;
	return 0;
}

int cmd_exec(int argc, char **argv)
{
	static const struct option options[] = {
		{ "interactive", no_argument, NULL, 'i' },
		{ "tty", no_argument, NULL, 't' },
		{ "env", required_argument, NULL, 'e' },
		{ "workdir", required_argument, NULL, 'w' },
		{ "user", required_argument, NULL, 'u' },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
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
		case OPT_TIMEOUT:
			if (parse_timeout(optarg, &opts.timeout_ms) < 0) {
				cli_error("--timeout '%s' is not a number of seconds from 1 to 86400", optarg);
				goto out_env;
			}
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
		cli_window_size(&opts.rows, &opts.cols);

	struct instance inst;
	char *socket;
	if (instance_find_running(ref, &inst, &socket) < 0)
		goto out_env;

	int signal_fd = cli_session_block_signals();
	if (signal_fd < 0)
		goto out_instance;

	capsa_error err = { 0 };
	capsa_exec *ex = capsa_exec_start(socket, &opts, &err);
	if (!ex) {
		cli_error_from(&err);
		goto out_signal_fd;
	}
	status = cli_session_run(ex, signal_fd, interactive, opts.tty);
	capsa_exec_free(ex);
out_signal_fd:
	close(signal_fd);
out_instance:
	free(socket);
	instance_clear(&inst);
out_env:
	free_env(env);
	return status;
}
