/* capsa load: import images from a `docker save` archive. */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static void load_usage(FILE *out)
{
	fprintf(out,
		"Usage: capsa load -i ARCHIVE\n\n"
		"Store the images of a `docker save` archive (tar, optionally gzip or zstd\n"
		"compressed) in the local image store, under the names it records.\n\n"
		"Options:\n"
		"  -i, --input ARCHIVE  the archive to read\n"
		"  -h, --help           show this help\n");
}

static const struct option load_options[] = {
	{ "input", required_argument, NULL, 'i' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

int cmd_load(int argc, char **argv)
{
	const char *archive = NULL;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+i:h", load_options, NULL)) != -1) {
		switch (c) {
		case 'i':
			archive = optarg;
			break;
		case 'h':
			load_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "Run 'capsa load --help' for the options.\n");
			return CLI_EXIT_FAILURE;
		}
	}
	if (!archive || optind != argc) {
		cli_error("load needs exactly one archive: capsa load -i ARCHIVE");
		return CLI_EXIT_FAILURE;
	}
	capsa_image_store *store = cli_open_store();
	if (!store)
		return CLI_EXIT_FAILURE;
	capsa_error err = { 0 };
	char **names = NULL;
	int status = 0;
	if (capsa_image_load(store, archive, &names, &err) < 0) {
		cli_error_from(&err);
		status = CLI_EXIT_FAILURE;
	}
	for (size_t i = 0; names && names[i]; i++)
		printf("Loaded image: %s\n", names[i]);
	capsa_strv_free(names);
	capsa_image_store_close(store);
	return status;
}
