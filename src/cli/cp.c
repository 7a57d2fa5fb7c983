/* capsa cp: copy a file between the host and a running VM. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "instances.h"

static void cp_usage(FILE *out)
{
	fprintf(out,
		"Usage: capsa cp [OPTIONS] VM:PATH HOSTPATH|-\n"
		"       capsa cp [OPTIONS] HOSTPATH|- VM:PATH\n\n"
		"Copy a regular file between the host and a running VM (an id, a name or a\n"
		"unique id prefix). PATH in the VM is absolute. A HOSTPATH that is a\n"
		"directory, or a VM PATH ending in '/', receives the file under its own name.\n"
		"'-' reads the file from stdin or writes it to stdout. A file copied into the\n"
		"VM keeps its permission bits and replaces the old one at once.\n\n"
		"Options:\n"
		"  -h, --help  show this help\n");
}

/* "VM:PATH" (no '/' before the first ':', as docker tells them apart). */
static bool split_vm_path(const char *arg, char **ref, const char **path)
{
	const char *colon = strchr(arg, ':');

	if (!colon || colon == arg || memchr(arg, '/', (size_t)(colon - arg)))
		return false;
	*ref = strndup(arg, (size_t)(colon - arg));
	*path = colon + 1;
	return true;
}

static const char *last_component(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static int copy_in(const char *socket, const char *host, const char *ref, const char *guest)
{
	capsa_error err = { 0 };
	char *target = NULL;
	uint32_t mode = 0644;
	int fd = 0, status = CLI_EXIT_FAILURE;

	if (strcmp(host, "-") != 0) {
		struct stat st;
		fd = open(host, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			cli_error("cannot read %s: %s", host, strerror(errno));
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			cli_error("%s is a directory; capsa cp copies regular files only", host);
			goto out;
		}
		if (!S_ISREG(st.st_mode)) {
			cli_error("%s is not a regular file; capsa cp copies regular files only (use - for a stream)",
				  host);
			goto out;
		}
		mode = st.st_mode & 07777;
	}
	size_t len = strlen(guest);
	if (guest[len - 1] == '/') {
		char *copy = strdup(host);
		const char *base = copy ? last_component(copy) : NULL;
		if (!strcmp(host, "-") || !base || !base[0] || !strcmp(base, ".") || !strcmp(base, "..")) {
			cli_error("name the file to write in the VM: %s:%sNAME", ref, guest);
			free(copy);
			goto out;
		}
		int r = asprintf(&target, "%s%s", guest, base);
		free(copy);
		if (r < 0) {
			target = NULL;
			cli_error("out of memory");
			goto out;
		}
		guest = target;
	}
	if (capsa_file_write(socket, guest, mode, fd, &err) < 0) {
		cli_error_from(&err);
		goto out;
	}
	status = 0;
out:
	if (fd > 0)
		close(fd);
	free(target);
	return status;
}

static int copy_out(const char *socket, const char *ref, const char *guest, const char *host)
{
	capsa_error err = { 0 };
	char *target = NULL, *tmp = NULL;
	int status = CLI_EXIT_FAILURE;
	struct stat st;

	if (guest[strlen(guest) - 1] == '/') {
		cli_error("%s:%s is a directory; capsa cp copies regular files only", ref, guest);
		return CLI_EXIT_FAILURE;
	}
	if (!strcmp(host, "-")) {
		if (capsa_file_read(socket, guest, 1, &err) < 0) {
			cli_error_from(&err);
			return CLI_EXIT_FAILURE;
		}
		return 0;
	}
	/* Into a directory: under the file's own name. */
	size_t len = strlen(host);
	if (host[len - 1] == '/' || (stat(host, &st) == 0 && S_ISDIR(st.st_mode))) {
		if (asprintf(&target, "%s%s%s", host, host[len - 1] == '/' ? "" : "/", last_component(guest)) < 0) {
			cli_error("out of memory");
			return CLI_EXIT_FAILURE;
		}
		host = target;
	}
	/* Written next to the target and renamed over it, so a failed copy
	 * leaves the old file as it was. */
	char *dir_copy = strdup(host);
	if (!dir_copy || asprintf(&tmp, "%s/.capsa-cp-XXXXXX", dirname(dir_copy)) < 0) {
		free(dir_copy);
		cli_error("out of memory");
		free(target);
		return CLI_EXIT_FAILURE;
	}
	free(dir_copy);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		cli_error("cannot create a file next to %s: %s", host, strerror(errno));
		goto out;
	}
	mode_t mask = umask(0);
	umask(mask);
	mode_t mode = 0666 & ~mask;
	if (stat(host, &st) == 0 && S_ISREG(st.st_mode))
		mode = st.st_mode & 07777;
	bool ok = false;
	if (capsa_file_read(socket, guest, fd, &err) < 0)
		cli_error_from(&err);
	else if (fchmod(fd, mode) < 0)
		cli_error("cannot write %s: %s", tmp, strerror(errno));
	else
		ok = true;
	if (close(fd) < 0 && ok) {
		cli_error("cannot write %s: %s", tmp, strerror(errno));
		ok = false;
	}
	if (ok && rename(tmp, host) < 0) {
		cli_error("cannot write %s: %s", host, strerror(errno));
		ok = false;
	}
	if (ok)
		status = 0;
	else
		unlink(tmp);
out:
	free(tmp);
	free(target);
	return status;
}

int cmd_cp(int argc, char **argv)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
		if (c == 'h') {
			cp_usage(stdout);
			return 0;
		}
		fprintf(stderr, "Run 'capsa cp --help' for the options.\n");
		return CLI_EXIT_FAILURE;
	}
	if (argc - optind != 2) {
		cli_error("cp needs a source and a destination, e.g. capsa cp myvm:/etc/hosts hosts");
		return CLI_EXIT_FAILURE;
	}
	const char *src = argv[optind], *dst = argv[optind + 1];
	char *src_ref = NULL, *dst_ref = NULL;
	const char *src_path = NULL, *dst_path = NULL;
	bool from_vm = split_vm_path(src, &src_ref, &src_path);
	bool to_vm = split_vm_path(dst, &dst_ref, &dst_path);
	int status = CLI_EXIT_FAILURE;

	if ((from_vm && !src_ref) || (to_vm && !dst_ref)) {
		cli_error("out of memory");
		goto out;
	}
	if (from_vm == to_vm) {
		cli_error(from_vm ? "cp copies between the host and a VM, not between VMs"
				  : "cp needs one side in a VM, written VM:PATH (e.g. myvm:/tmp/file)");
		goto out;
	}
	const char *ref = from_vm ? src_ref : dst_ref;
	const char *guest = from_vm ? src_path : dst_path;
	const char *host = from_vm ? dst : src;
	if (guest[0] != '/') {
		cli_error("the path in the VM must be absolute: %s:/%s", ref, guest);
		goto out;
	}
	if (!host[0]) {
		cli_error("the host path is empty");
		goto out;
	}
	struct instance inst;
	char *socket;
	if (instance_find_running(ref, &inst, &socket) < 0)
		goto out;
	status = from_vm ? copy_out(socket, ref, guest, host) : copy_in(socket, host, ref, guest);
	free(socket);
	instance_clear(&inst);
out:
	free(src_ref);
	free(dst_ref);
	return status;
}
