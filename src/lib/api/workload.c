#include "api/workload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/error.h"

static int copy_optional(char **dst, const char *preferred, const char *fallback, capsa_error *err)
{
	const char *value = preferred && *preferred ? preferred : fallback;

	*dst = NULL;
	if (!value || !*value)
		return 0;
	*dst = strdup(value);
	return *dst ? 0 : error_set(err, ENOMEM, "out of memory");
}

static int resolve_argv(const capsa_vm_config *cfg, const oci_image_config *image, struct strv *argv,
			capsa_error *err)
{
	const char *const *entrypoint = NULL, *const *cmd = NULL;

	if (cfg->entrypoint_set)
		entrypoint = (const char *const *)cfg->entrypoint.items;
	else if (image)
		entrypoint = (const char *const *)image->entrypoint;
	if (cfg->argv.count)
		cmd = (const char *const *)cfg->argv.items;
	else if (image && !cfg->entrypoint_set)
		cmd = (const char *const *)image->cmd;

	if (strv_push_all(argv, entrypoint, err) < 0 || strv_push_all(argv, cmd, err) < 0)
		return error_prefix(err, "command");
	if (!argv->count || !argv->items[0][0])
		return error_set(err, EINVAL, image ? "the image has no Entrypoint or Cmd: give a command after its name"
						    : "no command given");
	return 0;
}

/* OCI says WorkingDir is absolute; docker treats a relative one as
 * relative to /, and images built that way exist. */
static int resolve_workdir(const capsa_vm_config *cfg, const oci_image_config *image, char **out,
			   capsa_error *err)
{
	const char *dir = image ? image->working_dir : NULL;

	if (cfg->workdir)
		return copy_optional(out, cfg->workdir, NULL, err);
	*out = NULL;
	if (!dir || !*dir)
		return 0;
	if (asprintf(out, "%s%s", dir[0] == '/' ? "" : "/", dir) < 0) {
		*out = NULL;
		return error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

int workload_resolve(const capsa_vm_config *cfg, const oci_image_config *image, struct workload *out,
		     capsa_error *err)
{
	memset(out, 0, sizeof(*out));
	if (resolve_argv(cfg, image, &out->argv, err) < 0)
		goto fail;
	for (size_t i = 0; image && image->env && image->env[i]; i++) {
		/* An image entry without '=' means nothing in an environment. */
		if (!strchr(image->env[i], '=') || image->env[i][0] == '=')
			continue;
		if (strv_set_env(&out->env, image->env[i], err) < 0)
			goto fail;
	}
	for (size_t i = 0; i < cfg->env.count; i++)
		if (strv_set_env(&out->env, cfg->env.items[i], err) < 0)
			goto fail;
	if (resolve_workdir(cfg, image, &out->workdir, err) < 0 ||
	    copy_optional(&out->user, cfg->user, image ? image->user : NULL, err) < 0)
		goto fail;
	return 0;
fail:
	workload_clear(out);
	return -1;
}

void workload_clear(struct workload *w)
{
	strv_clear(&w->argv);
	strv_clear(&w->env);
	free(w->workdir);
	free(w->user);
	w->workdir = w->user = NULL;
}
