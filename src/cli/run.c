/* capsa run: boot a microVM from an image or a root filesystem directory,
 * run one command in it, exit with its status. */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "guest_files.h"
#include "publish.h"

static void run_usage(FILE *out)
{
	fprintf(out,
		"Usage: capsa run [OPTIONS] IMAGE|SNAPSHOT [COMMAND [ARG...]]\n"
		"       capsa run [OPTIONS] --rootfs DIR [--] COMMAND [ARG...]\n\n"
		"Boot a microVM from IMAGE (pulled first if it is not stored yet) or from the\n"
		"root filesystem in DIR, run the command in it and exit with the command's\n"
		"exit status (capsa's own errors exit with %d). With an image, COMMAND\n"
		"replaces the image's Cmd and follows its Entrypoint, as with docker run.\n\n"
		"The first run of an image boots it and saves a snapshot of the booted guest\n"
		"before the command starts; later runs restore that snapshot instead of booting\n"
		"(runs with -v or --disk always boot). A SNAPSHOT name (capsa bake, capsa\n"
		"snapshot; see capsa snapshots ls) is restored, and wins over an image of the\n"
		"same name.\n\n"
		"Options:\n"
		"  -d, --detach        start the VM in the background, print its id and return once\n"
		"                      it is ready (see capsa exec, ps, logs, stop, rm, cp)\n"
		"  --name NAME         a name for the detached VM, usable wherever its id is\n"
		"  -i, --interactive   pass this stdin to the command\n"
		"  -t, --tty           run the command on a terminal of this one's size (stdout\n"
		"                      and stderr merged); with -i, this terminal is in raw mode\n"
		"  --rootfs DIR        directory to use as the guest's root filesystem (read-only\n"
		"                      image; writes go to a throwaway overlay)\n"
		"  --entrypoint CMD    replace the image's Entrypoint ('' clears it)\n"
		"  -e, --env KEY=VALUE set an environment variable (repeatable)\n"
		"  --env-file FILE     read KEY=VALUE lines from FILE (repeatable)\n"
		"  -w, --workdir DIR   working directory inside the guest (default: the image's, or /)\n"
		"  -u, --user USER     user to run as: name, uid, name:group or uid:gid\n"
		"  --pull WHEN         pull the image: missing (default), always or never\n"
		"  --platform P        platform to pull, e.g. linux/amd64 (default)\n"
		"  --insecure-registry HOST  allow plain HTTP to this registry when pulling\n"
		"  -q, --quiet         no pull progress\n"
		"  -m, --memory SIZE   guest memory, e.g. 512M or 2G (default 512M)\n"
		"  -c, --cpus N        number of vCPUs (default 1)\n"
		"  --disk FILE[:ro]    attach FILE as a virtio disk (/dev/vdb, /dev/vdc, ...)\n"
		"  --disk NAME:/PATH[:SIZE]  mount the persistent volume NAME (ext4) at /PATH,\n"
		"                      creating it with SIZE (e.g. 512M, 2G; default 8G, sparse) on\n"
		"                      first use; one VM at a time (see capsa volume)\n"
		"  -v, --volume HOSTDIR:GUESTDIR[:OPTS]  share a host directory with the guest\n"
		"                      (virtio-fs). OPTS, comma-separated: ro (read-only; default\n"
		"                      rw), dax (the guest maps host file pages directly instead\n"
		"                      of copying them: 1 GiB DAX window, guest kernel needs\n"
		"                      CONFIG_FUSE_DAX), e.g. -v /data:/data:ro,dax\n"
		"  --network MODE      nat (default: user-mode NAT, guest 10.0.2.15, the host's\n"
		"                      loopback at 10.0.2.2), none (no network device) or\n"
		"                      tap:NAME (an existing host TAP device)\n"
		"  -p, --publish [HOSTIP:]HOSTPORT:GUESTPORT[/udp]  publish a guest port on the\n"
		"                      host (default HOSTIP 0.0.0.0; repeatable)\n"
		"  -P, --publish-all   publish every port the image exposes on a free host port\n"
		"                      and print the mapping\n"
		"  --egress POLICY     where the guest may send traffic: allow_all (default),\n"
		"                      deny_private (no private, loopback, link-local, metadata or\n"
		"                      multicast addresses, including the host via 10.0.2.2),\n"
		"                      allow:CIDR,... or deny:CIDR,...\n"
		"  --hostname NAME     guest hostname (default capsa)\n"
		"  --no-snapshot       boot the image, without using or saving a snapshot\n"
		"  --console           show the kernel's and init's messages on stderr\n"
		"  --kernel FILE       guest kernel (default: $CAPSA_KERNEL, then\n"
		"                      ~/.cache/capsa/kernel/vmlinux from guest/kernel/build.sh)\n"
		"  --init FILE         guest init binary (default: $CAPSA_INIT, then next to capsa)\n"
		"  -h, --help          show this help\n",
		CLI_EXIT_FAILURE);
}

/* "512", "512M", "2G" (MiB by default) to MiB. */
int cli_parse_memory(const char *text, uint32_t *mib)
{
	char *end;
	errno = 0;
	unsigned long long value = strtoull(text, &end, 10);
	if (errno || end == text || text[0] == '-')
		return -1;
	if (*end == 'G' || *end == 'g')
		value *= 1024, end++;
	else if (*end == 'M' || *end == 'm')
		end++;
	if ((*end == 'B' || *end == 'b' || *end == 'i') && end[1] == '\0')
		end++;
	if (*end != '\0' || value > UINT32_MAX)
		return -1;
	*mib = (uint32_t)value;
	return 0;
}

int cli_parse_cpus(const char *text, uint32_t *cpus)
{
	char *end;
	errno = 0;
	unsigned long value = strtoul(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || value > UINT32_MAX)
		return -1;
	*cpus = (uint32_t)value;
	return 0;
}

enum {
	OPT_ROOTFS = 256, OPT_DISK, OPT_HOSTNAME, OPT_CONSOLE, OPT_KERNEL, OPT_INIT, OPT_ENTRYPOINT, OPT_ENV_FILE,
	OPT_PULL, OPT_PLATFORM, OPT_INSECURE, OPT_NAME, OPT_NO_SNAPSHOT, OPT_NETWORK, OPT_EGRESS,
};

static const struct option run_options[] = {
	{ "rootfs", required_argument, NULL, OPT_ROOTFS },
	{ "env", required_argument, NULL, 'e' },
	{ "workdir", required_argument, NULL, 'w' },
	{ "memory", required_argument, NULL, 'm' },
	{ "cpus", required_argument, NULL, 'c' },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "volume", required_argument, NULL, 'v' },
	{ "hostname", required_argument, NULL, OPT_HOSTNAME },
	{ "network", required_argument, NULL, OPT_NETWORK },
	{ "publish", required_argument, NULL, 'p' },
	{ "publish-all", no_argument, NULL, 'P' },
	{ "egress", required_argument, NULL, OPT_EGRESS },
	{ "console", no_argument, NULL, OPT_CONSOLE },
	{ "no-snapshot", no_argument, NULL, OPT_NO_SNAPSHOT },
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "init", required_argument, NULL, OPT_INIT },
	{ "entrypoint", required_argument, NULL, OPT_ENTRYPOINT },
	{ "env-file", required_argument, NULL, OPT_ENV_FILE },
	{ "user", required_argument, NULL, 'u' },
	{ "pull", required_argument, NULL, OPT_PULL },
	{ "platform", required_argument, NULL, OPT_PLATFORM },
	{ "insecure-registry", required_argument, NULL, OPT_INSECURE },
	{ "quiet", no_argument, NULL, 'q' },
	{ "detach", no_argument, NULL, 'd' },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "interactive", no_argument, NULL, 'i' },
	{ "tty", no_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* The options after a volume's GUESTDIR: ro, rw, dax, comma-separated.
 * Prints its errors. */
static int parse_volume_options(const char *spec, char *opts, uint32_t *flags)
{
	if (!*opts) {
		cli_error("--volume '%s' ends with ':' but gives no options (ro, rw or dax)", spec);
		return -1;
	}
	for (char *save = NULL, *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		if (!strcmp(o, "ro"))
			*flags |= CAPSA_VOLUME_READ_ONLY;
		else if (!strcmp(o, "rw"))
			*flags &= ~CAPSA_VOLUME_READ_ONLY;
		else if (!strcmp(o, "dax"))
			*flags |= CAPSA_VOLUME_DAX;
		else {
			cli_error("--volume '%s': unknown option '%s' (use ro, rw or dax)", spec, o);
			return -1;
		}
	}
	return 0;
}

/* HOSTDIR:GUESTDIR[:OPTS]: guest paths are absolute and have no ':', so
 * a last part not starting with '/' holds the options; then the spec splits
 * at its last ':' (host paths might have some). HOSTDIR becomes absolute so
 * it means the same to a detached VM's process. Prints its errors. */
static int add_volume_option(capsa_vm_config *cfg, const char *spec)
{
	capsa_error err = { 0 };
	char *copy = strdup(spec);
	char resolved[PATH_MAX];
	uint32_t flags = 0;
	int r = -1;

	if (!copy) {
		cli_error("out of memory");
		return -1;
	}
	char *colon = strrchr(copy, ':'), *opts = NULL;
	if (colon && colon[1] != '/') {
		*colon = '\0';
		opts = colon + 1;
		colon = strrchr(copy, ':');
	}
	if (!colon || colon == copy || colon[1] != '/') {
		cli_error("--volume '%s' is not HOSTDIR:GUESTDIR[:OPTS] with an absolute GUESTDIR", spec);
		goto out;
	}
	if (opts && parse_volume_options(spec, opts, &flags) < 0)
		goto out;
	*colon = '\0';
	if (!realpath(copy, resolved)) {
		cli_error("--volume %s: %s", copy, strerror(errno));
		goto out;
	}
	r = capsa_vm_config_add_volume_flags(cfg, resolved, colon + 1, flags, &err);
	if (r < 0)
		cli_error_from(&err);
out:
	free(copy);
	return r;
}

/* NAME:/PATH[:SIZE], told from FILE[:ro] by the absolute path after a
 * first ':' that no '/' precedes. */
static int add_named_disk_option(capsa_vm_config *cfg, const char *spec, const char *colon, capsa_error *err)
{
	char *name = strndup(spec, (size_t)(colon - spec));
	char *path = strdup(colon + 1);
	uint64_t size = 0;
	int r = -1;

	if (!name || !path) {
		*err = (capsa_error){ .code = ENOMEM, .message = "out of memory" };
		goto out;
	}
	char *size_text = strchr(path, ':');
	if (size_text) {
		*size_text++ = '\0';
		if (cli_parse_size(size_text, &size) < 0) {
			err->code = EINVAL;
			snprintf(err->message, sizeof(err->message),
				 "--disk '%s': '%s' is not a size such as 512M or 2G", spec, size_text);
			goto out;
		}
	}
	r = capsa_vm_config_add_named_disk(cfg, name, path, size, err);
out:
	free(name);
	free(path);
	return r;
}

static int add_disk_option(capsa_vm_config *cfg, const char *spec, capsa_error *err)
{
	const char *colon = strchr(spec, ':');
	if (colon && colon != spec && colon[1] == '/' && !memchr(spec, '/', (size_t)(colon - spec)))
		return add_named_disk_option(cfg, spec, colon, err);
	char *path = strdup(spec);
	if (!path)
		return -1;
	bool read_only = false;
	size_t len = strlen(path);
	if (len > 3 && !strcmp(path + len - 3, ":ro")) {
		path[len - 3] = '\0';
		read_only = true;
	} else if (len > 3 && !strcmp(path + len - 3, ":rw")) {
		path[len - 3] = '\0';
	}
	int r = capsa_vm_config_add_disk(cfg, path, read_only, err);
	free(path);
	return r;
}

enum pull_policy { PULL_MISSING, PULL_ALWAYS, PULL_NEVER };

/* Makes sure the image is stored, as the pull policy says. */
static int ensure_image(const char *image, enum pull_policy policy, const struct cli_pull_options *pull)
{
	capsa_image_store *store = cli_open_store();
	capsa_error err = { 0 };
	int r = -1;

	if (!store)
		return -1;
	int exists = policy == PULL_ALWAYS ? 0 : capsa_image_exists(store, image, &err);
	if (exists < 0)
		cli_error_from(&err);
	else if (exists)
		r = 0;
	else if (policy == PULL_NEVER)
		cli_error("image '%s' is not stored and --pull never was given; pull it with 'capsa pull %s'", image,
			  image);
	else
		r = cli_pull(store, image, pull, NULL);
	capsa_image_store_close(store);
	return r;
}

/* -i/-t: the workload runs through the guest agent with this process's
 * stdin and, with -t, a terminal of this one's size; the VM ends with it. */
static int run_interactive(capsa_vm_config *cfg, bool interactive, bool tty)
{
	capsa_error err = { 0 };
	uint16_t rows = 0, cols = 0;

	if (tty)
		cli_window_size(&rows, &cols);
	if (capsa_vm_config_set_interactive(cfg, tty, rows, cols, &err) < 0) {
		cli_error_from(&err);
		return CLI_EXIT_FAILURE;
	}
	/* Before capsa_vm_start: its threads inherit the blocked signals. */
	int signal_fd = cli_session_block_signals();
	if (signal_fd < 0)
		return CLI_EXIT_FAILURE;
	int status = CLI_EXIT_FAILURE;
	capsa_vm *vm = capsa_vm_start(cfg, &err);
	if (!vm) {
		cli_error_from(&err);
	} else {
		status = cli_session_run(capsa_vm_workload(vm), signal_fd, interactive, tty);
		capsa_vm_stop(vm, 0, &err);
		capsa_vm_free(vm);
	}
	close(signal_fd);
	return status;
}

int cmd_run(int argc, char **argv)
{
	capsa_error err = { 0 };
	capsa_vm_config *cfg = capsa_vm_config_new(&err);
	if (!cfg) {
		cli_error_from(&err);
		return CLI_EXIT_FAILURE;
	}
	const char *kernel_option = NULL, *init_option = NULL;
	struct cli_pull_options pull = { 0 };
	enum pull_policy policy = PULL_MISSING;
	bool have_rootfs = false;
	struct cli_detach detach = { 0 };
	bool detached = false, interactive = false, tty = false, publish_all = false, use_snapshots = true;
	bool is_snapshot = false;
	int status = CLI_EXIT_FAILURE;
	int c;
	optind = 1;
	/* '+': options end at the first non-option, which starts the command. */
	while ((c = getopt_long(argc, argv, "+e:w:m:c:u:v:p:Pqdith", run_options, NULL)) != -1) {
		int r = 0;
		switch (c) {
		case OPT_ROOTFS:
			r = capsa_vm_config_set_rootfs_dir(cfg, optarg, &err);
			have_rootfs = true;
			detach.image = optarg;
			break;
		case 'e':
			r = capsa_vm_config_add_env(cfg, optarg, &err);
			break;
		case 'w':
			r = capsa_vm_config_set_workdir(cfg, optarg, &err);
			break;
		case 'm': {
			uint32_t mib;
			if (cli_parse_memory(optarg, &mib) < 0) {
				cli_error("--memory '%s' is not a size such as 512M or 2G", optarg);
				goto out;
			}
			r = capsa_vm_config_set_memory_mib(cfg, mib, &err);
			break;
		}
		case 'c': {
			uint32_t cpus;
			if (cli_parse_cpus(optarg, &cpus) < 0) {
				cli_error("--cpus '%s' is not a number", optarg);
				goto out;
			}
			r = capsa_vm_config_set_cpus(cfg, cpus, &err);
			break;
		}
		case OPT_DISK:
			r = add_disk_option(cfg, optarg, &err);
			break;
		case 'v':
			if (add_volume_option(cfg, optarg) < 0)
				goto out;
			break;
		case OPT_HOSTNAME:
			r = capsa_vm_config_set_hostname(cfg, optarg, &err);
			break;
		case OPT_NETWORK:
			r = capsa_vm_config_set_network(cfg, optarg, &err);
			break;
		case 'p':
			r = capsa_vm_config_add_port(cfg, optarg, &err);
			break;
		case 'P':
			publish_all = true;
			break;
		case OPT_EGRESS:
			r = capsa_vm_config_set_egress(cfg, optarg, &err);
			break;
		case OPT_NO_SNAPSHOT:
			use_snapshots = false;
			break;
		case OPT_CONSOLE:
			r = capsa_vm_config_set_output(cfg, 1, 2, 2, &err);
			break;
		case OPT_KERNEL:
			kernel_option = optarg;
			break;
		case OPT_INIT:
			init_option = optarg;
			break;
		case OPT_ENTRYPOINT: {
			/* docker takes one executable here, not a command line. */
			const char *ep[] = { optarg, NULL };
			r = capsa_vm_config_set_entrypoint(cfg, optarg[0] ? ep : ep + 1, &err);
			detach.entrypoint = optarg;
			break;
		}
		case OPT_ENV_FILE:
			if (cli_add_env_file(cfg, optarg) < 0)
				goto out;
			break;
		case 'u':
			r = capsa_vm_config_set_user(cfg, optarg, &err);
			break;
		case OPT_PULL:
			if (!strcmp(optarg, "missing"))
				policy = PULL_MISSING;
			else if (!strcmp(optarg, "always"))
				policy = PULL_ALWAYS;
			else if (!strcmp(optarg, "never"))
				policy = PULL_NEVER;
			else {
				cli_error("--pull '%s' is not one of missing, always, never", optarg);
				goto out;
			}
			break;
		case OPT_PLATFORM:
			pull.platform = optarg;
			break;
		case OPT_INSECURE:
			if (cli_pull_options_add_insecure(&pull, optarg) < 0)
				goto out;
			break;
		case 'q':
			pull.quiet = true;
			break;
		case 'd':
			detached = true;
			break;
		case OPT_NAME:
			detach.name = optarg;
			break;
		case 'i':
			interactive = true;
			break;
		case 't':
			tty = true;
			break;
		case 'h':
			run_usage(stdout);
			status = 0;
			goto out;
		default:
			fprintf(stderr, "Run 'capsa run --help' for the options.\n");
			goto out;
		}
		if (r < 0) {
			cli_error_from(&err);
			goto out;
		}
	}
	if (cli_detach_check(&detach, detached) < 0)
		goto out;
	if (detached && (interactive || tty)) {
		cli_error("run -d cannot be combined with -i or -t; use 'capsa exec -it VM COMMAND' on the running VM");
		goto out;
	}
	const char *image = NULL;
	if (!have_rootfs) {
		if (optind >= argc) {
			cli_error("run needs an image, e.g. capsa run busybox echo hi (or --rootfs DIR COMMAND)");
			goto out;
		}
		image = argv[optind++];
		is_snapshot = use_snapshots && capsa_snapshot_exists(NULL, image);
		if (is_snapshot ? capsa_vm_config_set_snapshot(cfg, image, &err) < 0
				: capsa_vm_config_set_image(cfg, image, &err) < 0) {
			cli_error_from(&err);
			goto out;
		}
	} else if (optind >= argc) {
		cli_error("run needs a command to run, e.g. capsa run --rootfs DIR -- /bin/sh -c 'echo hi'");
		goto out;
	}
	if (optind < argc)
		detach.command = (const char *const *)argv + optind;
	if (optind < argc && capsa_vm_config_set_command(cfg, (const char *const *)argv + optind, &err) < 0) {
		cli_error_from(&err);
		goto out;
	}

	char *kernel = guest_kernel_path(kernel_option);
	char *init = guest_init_path(init_option);
	if (!kernel)
		cli_error("no guest kernel found: build it with guest/kernel/build.sh (or 'make kernel'), or pass "
			  "--kernel FILE");
	else if (!init)
		cli_error("no guest init found next to capsa: rebuild capsa, or pass --init FILE");
	int ok = kernel && init && capsa_vm_config_set_kernel(cfg, kernel, &err) == 0 &&
		 capsa_vm_config_set_init(cfg, init, &err) == 0;
	free(kernel);
	free(init);
	if (!ok) {
		if (err.message[0])
			cli_error_from(&err);
		goto out;
	}

	if (image && !is_snapshot && ensure_image(image, policy, &pull) < 0)
		goto out;
	if (capsa_vm_config_set_auto_snapshot(cfg, use_snapshots, &err) < 0) {
		cli_error_from(&err);
		goto out;
	}
	if (publish_all && cli_publish_all(cfg, image) < 0)
		goto out;
	if (detached) {
		if (image)
			detach.image = image;
		status = cli_run_detached(cfg, &detach);
		goto out;
	}
	if (interactive || tty) {
		status = run_interactive(cfg, interactive, tty);
		goto out;
	}
	int exit_status;
	if (capsa_vm_run(cfg, &exit_status, &err) < 0) {
		cli_error_from(&err);
		goto out;
	}
	status = exit_status;
out:
	cli_pull_options_free(&pull);
	capsa_vm_config_free(cfg);
	return status;
}
