/* capsa bake, snapshot and snapshots: make, list and remove snapshots. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "guest_files.h"
#include "instances.h"
#include "vmm_control.h"

#define MAX_WARMUPS 32

/* ---- bake ---- */

static void bake_usage(FILE *out)
{
	fprintf(out, "Usage: capsa bake [OPTIONS] IMAGE [COMMAND [ARG...]]\n\n"
		     "Boot IMAGE (pulled first if it is not stored), wait until its guest is up, run\n"
		     "the warm-up commands and save the guest as a snapshot, before any workload\n"
		     "starts. 'capsa run NAME [COMMAND]' then restores it instead of booting and\n"
		     "starts the command (or the image's) in it. Without --name, bake makes the\n"
		     "snapshot 'capsa run IMAGE' would make on its first run with the same memory\n"
		     "and vCPU settings.\n\n"
		     "With --ready-port, the workload (COMMAND, or the image's) starts before the\n"
		     "snapshot, which is taken once it listens on that TCP port: 'capsa run NAME'\n"
		     "then continues the running server, e.g.\n"
		     "  capsa bake --name web --ready-port 80 IMAGE httpd -f -p 80\n"
		     "  capsa run -d -p 8080:80 web\n\n"
		     "Options:\n"
		     "  --name NAME         the snapshot's name\n"
		     "  --replace           replace a snapshot of that name\n"
		     "  --warmup CMD        run CMD with /bin/sh -c in the guest before saving it; it\n"
		     "                      must exit 0 (repeatable, in order)\n"
		     "  --ready-port PORT   start the workload and snapshot it once it listens on PORT\n"
		     "  --ready-timeout S   how long to wait for PORT (default 120 s)\n"
		     "  -e, --env KEY=VALUE environment of the warm-up commands and, with --ready-port,\n"
		     "                      of the workload (repeatable)\n"
		     "  -m, --memory SIZE   guest memory, e.g. 512M or 2G (default 512M)\n"
		     "  -c, --cpus N        number of vCPUs (default 1)\n"
		     "  --network MODE      nat (default) or none; runs of the snapshot must match\n"
		     "  --kernel FILE       guest kernel (as for capsa run)\n"
		     "  --init FILE         guest init binary (as for capsa run)\n"
		     "  --console           show the kernel's and init's messages on stderr\n"
		     "  -q, --quiet         no pull progress\n"
		     "  -h, --help          show this help\n");
}

enum { OPT_NAME = 256, OPT_REPLACE, OPT_WARMUP, OPT_NETWORK, OPT_KERNEL, OPT_INIT, OPT_READY_PORT, OPT_READY_TIMEOUT,
       OPT_CONSOLE };

static const struct option bake_options[] = {
	{ "name", required_argument, NULL, OPT_NAME },
	{ "replace", no_argument, NULL, OPT_REPLACE },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "ready-port", required_argument, NULL, OPT_READY_PORT },
	{ "ready-timeout", required_argument, NULL, OPT_READY_TIMEOUT },
	{ "env", required_argument, NULL, 'e' },
	{ "memory", required_argument, NULL, 'm' },
	{ "cpus", required_argument, NULL, 'c' },
	{ "network", required_argument, NULL, OPT_NETWORK },
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "init", required_argument, NULL, OPT_INIT },
	{ "console", no_argument, NULL, OPT_CONSOLE },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int set_guest_files(capsa_vm_config *cfg, const char *kernel_option, const char *init_option)
{
	capsa_error err = { 0 };
	char *kernel = guest_kernel_path(kernel_option);
	char *init = guest_init_path(init_option);
	int r = -1;
	if (!kernel)
		cli_error("no guest kernel found: build it with guest/kernel/build.sh (or 'make kernel'), or pass "
			  "--kernel FILE");
	else if (!init)
		cli_error("no guest init found next to capsa: rebuild capsa, or pass --init FILE");
	else if (capsa_vm_config_set_kernel(cfg, kernel, &err) < 0 || capsa_vm_config_set_init(cfg, init, &err) < 0)
		cli_error_from(&err);
	else
		r = 0;
	free(kernel);
	free(init);
	return r;
}

int cmd_bake(int argc, char **argv)
{
	capsa_error err = { 0 };
	capsa_vm_config *cfg = capsa_vm_config_new(&err);
	const char *name = NULL, *kernel_option = NULL, *init_option = NULL;
	const char *warmup_argv[MAX_WARMUPS][4];
	const char *const *warmups[MAX_WARMUPS + 1] = { NULL };
	size_t n_warmups = 0;
	bool replace = false, quiet = false;
	capsa_bake_options opts = { 0 };
	int status = CLI_EXIT_FAILURE, c;

	if (!cfg) {
		cli_error_from(&err);
		return CLI_EXIT_FAILURE;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "+e:m:c:qh", bake_options, NULL)) != -1) {
		int r = 0;
		uint32_t value;
		char *end;
		switch (c) {
		case OPT_READY_PORT: {
			unsigned long port = strtoul(optarg, &end, 10);
			if (*end || end == optarg || port == 0 || port > 65535) {
				cli_error("--ready-port '%s' is not a port number (1 to 65535)", optarg);
				goto out;
			}
			opts.ready_port = (uint16_t)port;
			break;
		}
		case OPT_READY_TIMEOUT: {
			unsigned long seconds = strtoul(optarg, &end, 10);
			if (*end || end == optarg || seconds == 0 || seconds > 86400) {
				cli_error("--ready-timeout '%s' is not a number of seconds (1 to 86400)", optarg);
				goto out;
			}
			opts.ready_timeout_ms = (uint32_t)seconds * 1000;
			break;
		}
		case 'e':
			r = capsa_vm_config_add_env(cfg, optarg, &err);
			break;
		case OPT_NAME:
			name = optarg;
			break;
		case OPT_REPLACE:
			replace = true;
			break;
		case OPT_WARMUP:
			if (n_warmups == MAX_WARMUPS) {
				cli_error("at most %d --warmup commands", MAX_WARMUPS);
				goto out;
			}
			warmup_argv[n_warmups][0] = "/bin/sh";
			warmup_argv[n_warmups][1] = "-c";
			warmup_argv[n_warmups][2] = optarg;
			warmup_argv[n_warmups][3] = NULL;
			warmups[n_warmups] = warmup_argv[n_warmups];
			n_warmups++;
			break;
		case 'm':
			if (cli_parse_memory(optarg, &value) < 0) {
				cli_error("--memory '%s' is not a size like 512M or 2G", optarg);
				goto out;
			}
			r = capsa_vm_config_set_memory_mib(cfg, value, &err);
			break;
		case 'c':
			if (cli_parse_cpus(optarg, &value) < 0) {
				cli_error("--cpus '%s' is not a number", optarg);
				goto out;
			}
			r = capsa_vm_config_set_cpus(cfg, value, &err);
			break;
		case OPT_NETWORK:
			r = capsa_vm_config_set_network(cfg, optarg, &err);
			break;
		case OPT_KERNEL:
			kernel_option = optarg;
			break;
		case OPT_INIT:
			init_option = optarg;
			break;
		case OPT_CONSOLE:
			r = capsa_vm_config_set_output(cfg, 1, 2, 2, &err);
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			bake_usage(stdout);
			status = 0;
			goto out;
		default:
			fprintf(stderr, "Run 'capsa bake --help' for the options.\n");
			goto out;
		}
		if (r < 0) {
			cli_error_from(&err);
			goto out;
		}
	}
	if (optind >= argc) {
		cli_error("bake needs an image, e.g. capsa bake busybox");
		goto out;
	}
	const char *image = argv[optind++];
	if (optind < argc && !opts.ready_port) {
		cli_error("a command after the image is the workload started with --ready-port; give warm-up "
			  "commands with --warmup");
		goto out;
	}
	if (capsa_vm_config_set_image(cfg, image, &err) < 0 ||
	    (optind < argc && capsa_vm_config_set_command(cfg, (const char *const *)argv + optind, &err) < 0)) {
		cli_error_from(&err);
		goto out;
	}
	if (set_guest_files(cfg, kernel_option, init_option) < 0)
		goto out;
	capsa_image_store *store = cli_open_store();
	if (!store)
		goto out;
	int exists = capsa_image_exists(store, image, &err);
	struct cli_pull_options pull = { .quiet = quiet };
	int pulled = exists > 0 ? 0 : exists < 0 ? -1 : cli_pull(store, image, &pull, NULL);
	if (exists < 0)
		cli_error_from(&err);
	capsa_image_store_close(store);
	if (pulled < 0)
		goto out;
	opts.name = name;
	opts.warmups = (const char *const *const *)warmups;
	opts.replace = replace;
	if (capsa_vm_config_set_output(cfg, -1, -1, -1, &err) < 0 ||
	    capsa_bake(cfg, &opts, &err) < 0) {
		cli_error_from(&err);
		goto out;
	}
	if (name)
		printf("%s\n", name);
	status = 0;
out:
	capsa_vm_config_free(cfg);
	return status;
}

/* ---- snapshot ---- */

static void snapshot_usage(FILE *out)
{
	fprintf(out, "Usage: capsa snapshot [--replace] VM NAME\n\n"
		     "Save the running VM (started with run -d) as snapshot NAME. The VM pauses while\n"
		     "its memory is written, then runs on. 'capsa run NAME' restores it with its\n"
		     "workload where it was.\n\n"
		     "Options:\n"
		     "  --replace    replace a snapshot of that name\n"
		     "  -h, --help   show this help\n");
}

int cmd_snapshot(int argc, char **argv)
{
	static const struct option options[] = {
		{ "replace", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool replace = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
		if (c == 'r') {
			replace = true;
		} else if (c == 'h') {
			snapshot_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "Run 'capsa snapshot --help' for the options.\n");
			return CLI_EXIT_FAILURE;
		}
	}
	if (argc - optind != 2) {
		cli_error("snapshot needs a running VM and a name, e.g. capsa snapshot web web-warm");
		return CLI_EXIT_FAILURE;
	}
	struct instance inst;
	char *socket = NULL;
	if (instance_find_running(argv[optind], &inst, &socket) < 0)
		return CLI_EXIT_FAILURE;
	free(socket);
	char *control = instance_path(&inst, INSTANCE_VMM_SOCKET);
	capsa_error err = { 0 };
	int r = control ? vmm_control_snapshot(control, argv[optind + 1], replace, &err) : -1;
	free(control);
	instance_clear(&inst);
	if (r < 0) {
		cli_error("%s", err.message[0] ? err.message : "out of memory");
		return CLI_EXIT_FAILURE;
	}
	printf("%s\n", argv[optind + 1]);
	return 0;
}

/* ---- snapshots ls / rm ---- */

static void snapshots_usage(FILE *out)
{
	fprintf(out, "Usage: capsa snapshots ls [-q]\n"
		     "       capsa snapshots rm NAME...\n\n"
		     "Snapshots are kept in $XDG_DATA_HOME/capsa/snapshots: the ones 'capsa run'\n"
		     "makes on an image's first run (named auto-...), the ones 'capsa bake' and\n"
		     "'capsa snapshot' make.\n\n"
		     "Options:\n"
		     "  -q, --quiet   ls: only the names\n"
		     "  -h, --help    show this help\n");
}

static int snapshots_ls(bool quiet)
{
	capsa_snapshot_info *list;
	size_t n;
	capsa_error err = { 0 };

	if (capsa_snapshot_list(NULL, &list, &n, &err) < 0) {
		cli_error_from(&err);
		return CLI_EXIT_FAILURE;
	}
	if (!quiet)
		printf("%-30s %-40s %8s %4s %10s %-8s %s\n", "NAME", "IMAGE", "MEMORY", "CPUS", "DISK", "STATE",
		       "CREATED");
	for (size_t i = 0; i < n; i++) {
		if (quiet) {
			printf("%s\n", list[i].name);
			continue;
		}
		char disk[32], created[32] = "";
		time_t when = (time_t)list[i].created;
		struct tm tm;
		cli_format_size(list[i].disk_bytes, disk, sizeof(disk));
		if (localtime_r(&when, &tm))
			strftime(created, sizeof(created), "%Y-%m-%d %H:%M", &tm);
		printf("%-30s %-40s %6uMi %4u %10s %-8s %s\n", list[i].name, list[i].image, list[i].memory_mib,
		       list[i].cpus, disk, list[i].workload_started ? "running" : "booted", created);
	}
	capsa_snapshot_list_free(list, n);
	return 0;
}

int cmd_snapshots(int argc, char **argv)
{
	static const struct option options[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool quiet = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+qh", options, NULL)) != -1) {
		if (c == 'q') {
			quiet = true;
		} else if (c == 'h') {
			snapshots_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "Run 'capsa snapshots --help' for the options.\n");
			return CLI_EXIT_FAILURE;
		}
	}
	if (optind >= argc) {
		cli_error("snapshots needs a command: ls or rm (see capsa snapshots --help)");
		return CLI_EXIT_FAILURE;
	}
	const char *verb = argv[optind++];
	if (strcmp(verb, "ls") == 0 || strcmp(verb, "list") == 0) {
		if (optind < argc) {
			cli_error("snapshots ls takes no arguments");
			return CLI_EXIT_FAILURE;
		}
		return snapshots_ls(quiet);
	}
	if (strcmp(verb, "rm") == 0) {
		if (optind >= argc) {
			cli_error("snapshots rm needs a snapshot name (see capsa snapshots ls)");
			return CLI_EXIT_FAILURE;
		}
		int status = 0;
		for (; optind < argc; optind++) {
			capsa_error err = { 0 };
			if (capsa_snapshot_remove(NULL, argv[optind], &err) < 0) {
				cli_error_from(&err);
				status = CLI_EXIT_FAILURE;
			} else {
				printf("%s\n", argv[optind]);
			}
		}
		return status;
	}
	cli_error("unknown snapshots command '%s': use ls or rm", verb);
	return CLI_EXIT_FAILURE;
}
