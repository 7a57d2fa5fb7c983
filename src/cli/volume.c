/* capsa volume: the persistent named disks that `capsa run --disk
 * NAME:/path` attaches (ls, create, rm). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void volume_usage(FILE *out)
{
	fprintf(out, "Usage: capsa volume ls [-q]\n"
		     "       capsa volume create [--size SIZE] NAME\n"
		     "       capsa volume rm NAME...\n\n"
		     "Persistent disks: 'capsa run --disk NAME:/path[:SIZE] ...' mounts volume NAME\n"
		     "(an ext4 file system) at /path in the guest, creating it on first use (default\n"
		     "size 8G; the image is sparse and takes only what is written). Its data stays\n"
		     "until 'capsa volume rm'. One VM at a time can use a volume. Volumes are kept\n"
		     "in $XDG_DATA_HOME/capsa/volumes.\n\n"
		     "Commands:\n"
		     "  ls       list volumes: size, space taken on the host, whether a VM uses it\n"
		     "  create   create an empty volume now rather than on first use\n"
		     "  rm       delete volumes and their data (not while a VM uses them)\n\n"
		     "Options:\n"
		     "  -q, --quiet    ls: only the names\n"
		     "  --size SIZE    create: the size, e.g. 512M or 20G (default 8G)\n"
		     "  -h, --help     show this help\n");
}

int cli_parse_size(const char *text, uint64_t *bytes)
{
	char *end;
	errno = 0;
	unsigned long long value = strtoull(text, &end, 10);
	if (errno || end == text || text[0] == '-')
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	}
	if (shift) {
		end++;
		if (*end == 'i')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
	}
	if (*end != '\0' || value > (UINT64_MAX >> shift))
		return -1;
	*bytes = (uint64_t)value << shift;
	return 0;
}

static int volume_ls(bool quiet)
{
	capsa_error err = { 0 };
	capsa_volume_info *list;
	size_t n;
	if (capsa_volume_list(NULL, &list, &n, &err) < 0) {
		cli_error_from(&err);
		return CLI_EXIT_FAILURE;
	}
	if (!quiet)
		printf("%-40s %-10s %-10s %s\n", "NAME", "SIZE", "ON DISK", "IN USE");
	for (size_t i = 0; i < n; i++) {
		if (quiet) {
			printf("%s\n", list[i].name);
			continue;
		}
		char size[32], used[32];
		cli_format_size(list[i].size, size, sizeof(size));
		cli_format_size(list[i].disk_usage, used, sizeof(used));
		printf("%-40s %-10s %-10s %s\n", list[i].name, size, used, list[i].in_use ? "yes" : "no");
	}
	capsa_volume_list_free(list, n);
	return 0;
}

int cmd_volume(int argc, char **argv)
{
	static const struct option options[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "size", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	if (argc < 2) {
		volume_usage(stderr);
		return CLI_EXIT_FAILURE;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
		volume_usage(stdout);
		return 0;
	}
	bool ls = !strcmp(sub, "ls") || !strcmp(sub, "list");
	bool rm = !strcmp(sub, "rm") || !strcmp(sub, "remove");
	bool create = !strcmp(sub, "create");
	if (!ls && !rm && !create) {
		cli_error("unknown volume command '%s'; use ls, create or rm (capsa volume --help)", sub);
		return CLI_EXIT_FAILURE;
	}
	bool quiet = false;
	uint64_t size = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "qh", options, NULL)) != -1) {
		switch (c) {
		case 'q':
			quiet = true;
			break;
		case 's':
			if (cli_parse_size(optarg, &size) < 0) {
				cli_error("--size '%s' is not a size such as 512M or 20G", optarg);
				return CLI_EXIT_FAILURE;
			}
			break;
		case 'h':
			volume_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "Run 'capsa volume --help' for the options.\n");
			return CLI_EXIT_FAILURE;
		}
	}
	int first = optind + 1, last = argc;
	if (ls) {
		if (first < last) {
			cli_error("volume ls takes no arguments");
			return CLI_EXIT_FAILURE;
		}
		return volume_ls(quiet);
	}
	if (first >= last) {
		cli_error("volume %s needs a volume name, e.g. capsa volume %s data", sub, sub);
		return CLI_EXIT_FAILURE;
	}
	if (create && last - first > 1) {
		cli_error("volume create takes one name");
		return CLI_EXIT_FAILURE;
	}
	int status = 0;
	for (int i = first; i < last; i++) {
		capsa_error err = { 0 };
		int r = create ? capsa_volume_create(NULL, argv[i], size, &err)
			       : capsa_volume_remove(NULL, argv[i], &err);
		if (r < 0) {
			cli_error_from(&err);
			status = CLI_EXIT_FAILURE;
			continue;
		}
		printf("%s\n", argv[i]);
		fflush(stdout);
	}
	return status;
}
