/* capsa pull: fetch an image from a registry, or import an OCI layout. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void pull_usage(FILE *out)
{
	fprintf(out,
		"Usage: capsa pull [OPTIONS] IMAGE\n\n"
		"Download IMAGE into the local image store ($XDG_DATA_HOME/capsa).\n\n"
		"IMAGE is a reference such as busybox, nginx:1.27, ghcr.io/org/app@sha256:...\n"
		"or localhost:5000/team/app:tag (Docker Hub and the tag 'latest' by default),\n"
		"or oci:DIR[:TAG] to import from an OCI image layout directory.\n"
		"Credentials come from $DOCKER_CONFIG/config.json or ~/.docker/config.json.\n\n"
		"Options:\n"
		"  --platform OS/ARCH[/VARIANT]  platform to pick from a multi-platform image\n"
		"                                (default linux/amd64)\n"
		"  --insecure-registry HOST[:PORT]  allow plain HTTP to this registry (repeatable;\n"
		"                                localhost and 127.0.0.1 always may)\n"
		"  -q, --quiet                   no progress display\n"
		"  -h, --help                    show this help\n");
}

void cli_pull_options_free(struct cli_pull_options *o)
{
	free(o->insecure);
	memset(o, 0, sizeof(*o));
}

int cli_pull_options_add_insecure(struct cli_pull_options *o, const char *host)
{
	const char **grown = realloc(o->insecure, (o->n_insecure + 2) * sizeof(*grown));
	if (!grown) {
		cli_error("out of memory");
		return -1;
	}
	grown[o->n_insecure++] = host;
	grown[o->n_insecure] = NULL;
	o->insecure = grown;
	return 0;
}

int cli_pull(capsa_image_store *store, const char *ref, const struct cli_pull_options *o, char **name)
{
	capsa_error err = { 0 };
	capsa_pull_options opts = {
		.platform = o->platform,
		.insecure_registries = o->insecure,
		.progress = o->quiet ? NULL : stderr,
	};

	if (!o->quiet)
		fprintf(stderr, "Pulling %s\n", ref);
	char *stored = NULL;
	if (capsa_image_pull(store, ref, &opts, &stored, &err) < 0) {
		cli_error_from(&err);
		return -1;
	}
	/* Unpacking belongs to the pull, as with docker: the first run then
	 * starts without that wait. */
	if (!o->quiet)
		fprintf(stderr, "Building the root image of %s\n", stored);
	if (capsa_image_prepare(store, stored, &err) < 0) {
		cli_error_from(&err);
		free(stored);
		return -1;
	}
	if (name)
		*name = stored;
	else
		free(stored);
	return 0;
}

static const struct option pull_options[] = {
	{ "platform", required_argument, NULL, 'p' },
	{ "insecure-registry", required_argument, NULL, 'k' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

int cmd_pull(int argc, char **argv)
{
	struct cli_pull_options o = { 0 };
	int status = CLI_EXIT_FAILURE, c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+qh", pull_options, NULL)) != -1) {
		switch (c) {
		case 'p':
			o.platform = optarg;
			break;
		case 'k':
			if (cli_pull_options_add_insecure(&o, optarg) < 0)
				goto out;
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'h':
			pull_usage(stdout);
			status = 0;
			goto out;
		default:
			fprintf(stderr, "Run 'capsa pull --help' for the options.\n");
			goto out;
		}
	}
	if (optind != argc - 1) {
		cli_error(optind >= argc ? "pull needs an image, e.g. capsa pull busybox"
					 : "pull takes one image; run 'capsa pull --help'");
		goto out;
	}
	capsa_image_store *store = cli_open_store();
	if (!store)
		goto out;
	char *name = NULL;
	if (cli_pull(store, argv[optind], &o, &name) == 0) {
		printf("%s\n", name);
		status = 0;
	}
	free(name);
	capsa_image_store_close(store);
out:
	cli_pull_options_free(&o);
	return status;
}
