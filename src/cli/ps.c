/* capsa ps: list the VMs started with capsa run -d. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "instances.h"

#define ROW_FORMAT "%-12s  %-16s  %-24s  %-24s  %-16s  %s\n"

/* "3 minutes ago", as docker shows it. */
static void format_age(int64_t created, char *buf, size_t size)
{
	int64_t age = (int64_t)time(NULL) - created;
	static const struct {
		int64_t seconds;
		const char *unit;
	} units[] = { { 86400, "day" }, { 3600, "hour" }, { 60, "minute" }, { 1, "second" } };

	if (age < 1) {
		snprintf(buf, size, "just now");
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (age >= units[i].seconds) {
			int64_t n = age / units[i].seconds;
			snprintf(buf, size, "%lld %s%s ago", (long long)n, units[i].unit, n == 1 ? "" : "s");
			return;
		}
	}
}

/* Control characters (a command may hold newlines) would break the table. */
static void flatten(char *text)
{
	for (char *p = text; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
}

/* Fits text into width columns, ending a cut one with "...". */
static const char *clip(char *text, size_t width, bool truncate)
{
	flatten(text);
	if (truncate && strlen(text) > width) {
		size_t cut = width - 3;
		/* Not inside a UTF-8 sequence. */
		while (cut > 0 && ((unsigned char)text[cut] & 0xc0) == 0x80)
			cut--;
		strcpy(text + cut, "...");
	}
	return text;
}

int cmd_ps(int argc, char **argv)
{
	static const struct option options[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "no-trunc", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool all = false, quiet = false, truncate = true;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+aqh", options, NULL)) != -1) {
		switch (c) {
		case 'a':
			all = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'T':
			truncate = false;
			break;
		case 'h':
			printf("Usage: capsa ps [-a] [-q] [--no-trunc]\n\n"
			       "List the VMs started with 'capsa run -d' that are running.\n\n"
			       "Options:\n"
			       "  -a, --all    also those that have ended (\"exited (STATUS)\", or \"dead\" when\n"
			       "               the process running the VM died; 'capsa rm' removes them)\n"
			       "  -q, --quiet  print ids only\n"
			       "  --no-trunc   show names, images and commands in full\n"
			       "  -h, --help   show this help\n");
			return 0;
		default:
			fprintf(stderr, "Run 'capsa ps --help' for the options.\n");
			return CLI_EXIT_FAILURE;
		}
	}
	if (optind != argc) {
		cli_error("ps takes no arguments");
		return CLI_EXIT_FAILURE;
	}
	struct instance *list;
	size_t n;
	if (instance_list(&list, &n) < 0)
		return CLI_EXIT_FAILURE;
	if (!quiet)
		printf(ROW_FORMAT, "ID", "NAME", "IMAGE", "COMMAND", "CREATED", "STATUS");
	for (size_t i = 0; i < n; i++) {
		struct instance *inst = &list[i];
		if (inst->state != INSTANCE_RUNNING)
			instance_remove_stale_socket(inst);
		if (!all && inst->state != INSTANCE_RUNNING)
			continue;
		if (quiet) {
			printf("%s\n", inst->id);
			continue;
		}
		char age[32], state[32];
		format_age(inst->created, age, sizeof(age));
		instance_describe_state(inst, state, sizeof(state));
		printf(ROW_FORMAT, inst->id, clip(inst->name, 16, truncate),
		       clip(inst->image, 24, truncate), clip(inst->command, 24, truncate), age, state);
	}
	instance_list_free(list, n);
	return 0;
}
