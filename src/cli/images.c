/* capsa images, rmi and prune: look after the local image store. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

capsa_image_store *cli_open_store(void)
{
	capsa_error err = { 0 };
	capsa_image_store *store = capsa_image_store_open(NULL, &err);

	if (!store)
		cli_error_from(&err);
	return store;
}

void cli_format_size(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* An id as docker shows one: the first 12 hex digits of the digest. */
static const char *short_id(const char *digest)
{
	const char *colon = strchr(digest, ':');
	static char id[13];

	snprintf(id, sizeof(id), "%s", colon ? colon + 1 : digest);
	return id;
}

int cmd_images(int argc, char **argv)
{
	bool quiet = false;
	int c;
	static const struct option options[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};

	optind = 1;
	while ((c = getopt_long(argc, argv, "+qh", options, NULL)) != -1) {
		if (c == 'q') {
			quiet = true;
		} else if (c == 'h') {
			printf("Usage: capsa images [-q]\n\nList the images in the local image store.\n\n"
			       "Options:\n  -q, --quiet  print image ids only\n  -h, --help   show this help\n");
			return 0;
		} else {
			fprintf(stderr, "Run 'capsa images --help' for the options.\n");
			return CLI_EXIT_FAILURE;
		}
	}
	if (optind != argc) {
		cli_error("images takes no arguments");
		return CLI_EXIT_FAILURE;
	}
	capsa_image_store *store = cli_open_store();
	if (!store)
		return CLI_EXIT_FAILURE;
	capsa_error err = { 0 };
	capsa_image_info *list;
	size_t n;
	int status = 0;
	if (capsa_image_list(store, &list, &n, &err) < 0) {
		cli_error_from(&err);
		status = CLI_EXIT_FAILURE;
	} else {
		if (!quiet)
			printf("%-60s %-12s %-20s %s\n", "NAME", "IMAGE ID", "STORED", "SIZE");
		for (size_t i = 0; i < n; i++) {
			char when[32] = "", size[32];
			time_t t = (time_t)list[i].created;
			struct tm tm;
			if (quiet) {
				printf("%s\n", short_id(list[i].id));
				continue;
			}
			if (localtime_r(&t, &tm))
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
			cli_format_size(list[i].size, size, sizeof(size));
			printf("%-60s %-12s %-20s %s\n", list[i].name, short_id(list[i].id), when, size);
		}
		capsa_image_list_free(list, n);
	}
	capsa_image_store_close(store);
	return status;
}

int cmd_rmi(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		FILE *out = argc < 2 ? stderr : stdout;
		fprintf(out, "Usage: capsa rmi IMAGE...\n\nRemove image names from the local image store "
			     "(by name or id);\n'capsa prune' then frees the space they used.\n");
		return argc < 2 ? CLI_EXIT_FAILURE : 0;
	}
	capsa_image_store *store = cli_open_store();
	if (!store)
		return CLI_EXIT_FAILURE;
	int status = 0;
	for (int i = 1; i < argc; i++) {
		capsa_error err = { 0 };
		if (capsa_image_remove(store, argv[i], &err) < 0) {
			cli_error_from(&err);
			status = CLI_EXIT_FAILURE;
		} else {
			printf("Untagged: %s\n", argv[i]);
		}
	}
	capsa_image_store_close(store);
	return status;
}

int cmd_prune(int argc, char **argv)
{
	if (argc > 1) {
		bool help = !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help");
		fprintf(help ? stdout : stderr,
			"Usage: capsa prune\n\nDelete layers, configs and root images that no stored image "
			"name needs,\nand the automatic snapshots made from root images that are gone.\n");
		return help ? 0 : CLI_EXIT_FAILURE;
	}
	capsa_image_store *store = cli_open_store();
	if (!store)
		return CLI_EXIT_FAILURE;
	capsa_error err = { 0 };
	uint64_t freed = 0;
	int status = 0;
	if (capsa_image_prune(store, &freed, &err) < 0) {
		cli_error_from(&err);
		status = CLI_EXIT_FAILURE;
	} else {
		char size[32];
		cli_format_size(freed, size, sizeof(size));
		printf("Freed %s\n", size);
	}
	capsa_image_store_close(store);
	return status;
}
