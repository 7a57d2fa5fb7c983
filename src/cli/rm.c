/* capsa rm: forget detached VMs that have ended (or end them first with -f). */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "instances.h"

int cmd_rm(int argc, char **argv)
{
	static const struct option options[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool force = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+fh", options, NULL)) != -1) {
		switch (c) {
		case 'f':
			force = true;
			break;
		case 'h':
			printf("Usage: capsa rm [-f] VM...\n\n"
			       "Remove VMs started with 'capsa run -d' that have ended: their state and logs.\n\n"
			       "Options:\n"
			       "  -f, --force  stop running ones by force first\n"
			       "  -h, --help   show this help\n");
			return 0;
		default:
			fprintf(stderr, "Run 'capsa rm --help' for the options.\n");
			return CLI_EXIT_FAILURE;
		}
	}
	if (optind >= argc) {
		cli_error("rm needs at least one VM, e.g. capsa rm myvm");
		return CLI_EXIT_FAILURE;
	}
	int status = 0;
	for (int i = optind; i < argc; i++) {
		struct instance inst;
		if (instance_find(argv[i], &inst) < 0) {
			status = CLI_EXIT_FAILURE;
			continue;
		}
		int r = 0;
		if (inst.state == INSTANCE_RUNNING && !force) {
			cli_error("VM '%s' is running; stop it first or use rm -f", argv[i]);
			r = -1;
		} else if (inst.state == INSTANCE_RUNNING) {
			r = instance_stop(&inst, argv[i], 0);
		}
		if (r == 0)
			r = instance_remove_dir(&inst);
		if (r == 0)
			printf("%s\n", argv[i]);
		else
			status = CLI_EXIT_FAILURE;
		fflush(stdout);
		instance_clear(&inst);
	}
	return status;
}
