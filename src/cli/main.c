/* capsa: the command-line front end. Each verb lives in its own file and
 * only talks to libcapsa through capsa.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} verbs[] = {
	{ "run", cmd_run, "run an image (or a root filesystem) in a new microVM" },
	{ "exec", cmd_exec, "run a command in a running VM (started with run -d)" },
	{ "ps", cmd_ps, "list VMs started with run -d" },
	{ "logs", cmd_logs, "print a detached VM's output" },
	{ "stop", cmd_stop, "stop running VMs" },
	{ "rm", cmd_rm, "remove ended VMs" },
	{ "cp", cmd_cp, "copy a file between the host and a running VM" },
	{ "pull", cmd_pull, "download an image from a registry or an OCI layout" },
	{ "load", cmd_load, "load images from a docker save archive" },
	{ "images", cmd_images, "list stored images" },
	{ "rmi", cmd_rmi, "remove stored images" },
	{ "prune", cmd_prune, "free the space of images no longer named" },
	{ "bake", cmd_bake, "boot an image and save it as a snapshot, for fast starts" },
	{ "snapshot", cmd_snapshot, "save a running VM (started with run -d) as a snapshot" },
	{ "snapshots", cmd_snapshots, "list and remove snapshots" },
	{ "volume", cmd_volume, "list, create and remove persistent disks (run --disk NAME:/path)" },
};

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("capsa: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void cli_error_from(const capsa_error *err)
{
	cli_error("%s", err->message[0] ? err->message : "unknown error");
}

static void usage(FILE *out)
{
	fprintf(out, "Usage: capsa COMMAND [OPTIONS] [ARGS...]\n\n"
		     "Run root filesystems and container images as hardware-isolated microVMs.\n\n"
		     "Commands:\n");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(out, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(out, "\nRun 'capsa COMMAND --help' for a command's options.\n"
		     "Options:\n  -h, --help     show this help\n  --version      show the version\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_FAILURE;
	}
	const char *verb = argv[1];
	if (!strcmp(verb, "-h") || !strcmp(verb, "--help") || !strcmp(verb, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(verb, "--version") || !strcmp(verb, "version")) {
		printf("capsa %s\n", capsa_version());
		return 0;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (!strcmp(verb, verbs[i].name))
			return verbs[i].run(argc - 1, argv + 1);
	}
	cli_error("unknown command '%s'; run 'capsa --help' for the list", verb);
	return CLI_EXIT_FAILURE;
}
