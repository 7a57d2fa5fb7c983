/* The workload a run starts: an image's defaults with the caller's
 * settings applied over them, as `docker run` does. */
#ifndef CAPSA_API_WORKLOAD_H
#define CAPSA_API_WORKLOAD_H

#include "api/config.h"
#include "capsa.h"
#include "oci/image_config.h"
#include "util/strv.h"

struct workload {
	struct strv argv;
	struct strv env;
	char *workdir;  /* NULL: init's default, "/" */
	char *user;     /* NULL: root */
};

/* image is NULL when running a root filesystem directory. Rules:
 * argv = entrypoint + cmd, where entrypoint is the caller's when set, else
 * the image's; cmd is the caller's command when given, else the image's
 * Cmd unless the caller set an entrypoint (docker drops Cmd then). Env:
 * the image's, then the caller's entries replacing same-named ones.
 * WorkingDir and User: the caller's, else the image's. EINVAL when no
 * command results. */
int workload_resolve(const capsa_vm_config *cfg, const oci_image_config *image, struct workload *out,
		     capsa_error *err);
void workload_clear(struct workload *w);

#endif
