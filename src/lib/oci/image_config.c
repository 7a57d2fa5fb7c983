#include "oci/image_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "oci/digest.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "util/error.h"

/* Far beyond any real image; bounds what a hostile config makes us copy. */
#define CONFIG_LIST_MAX 65536

static int parse_exposed_ports(const json_t *config, char ***out, capsa_error *err)
{
	const json_t *ports = json_object_get(config, "ExposedPorts");

	*out = NULL;
	if (!ports || json_is_null(ports))
		return 0;
	if (!json_is_object(ports))
		return error_set(err, EINVAL, "field \"ExposedPorts\" must be an object");
	size_t n = json_object_size(ports);
	if (n > CONFIG_LIST_MAX)
		return error_set(err, EINVAL, "field \"ExposedPorts\" has %zu entries, more than the %d allowed", n,
				 CONFIG_LIST_MAX);
	char **strv = calloc(n + 1, sizeof(*strv));
	if (!strv)
		return error_set_errno(err, ENOMEM, "reading ExposedPorts");
	size_t i = 0;
	const char *key;
	const json_t *value;
	json_object_foreach((json_t *)ports, key, value) {
		strv[i] = strdup(key);
		if (!strv[i]) {
			oci_strv_free(strv);
			return error_set_errno(err, ENOMEM, "reading ExposedPorts");
		}
		i++;
	}
	*out = strv;
	return 0;
}

static int parse_run_config(const json_t *config, oci_image_config *c, capsa_error *err)
{
	if (!config || json_is_null(config))
		return 0;
	if (!json_is_object(config))
		return error_set(err, EINVAL, "field \"config\" must be an object");
	if (json_get_string_array(config, "Entrypoint", CONFIG_LIST_MAX, &c->entrypoint, err) < 0 ||
	    json_get_string_array(config, "Cmd", CONFIG_LIST_MAX, &c->cmd, err) < 0 ||
	    json_get_string_array(config, "Env", CONFIG_LIST_MAX, &c->env, err) < 0 ||
	    json_get_string(config, "WorkingDir", &c->working_dir, err) < 0 ||
	    json_get_string(config, "User", &c->user, err) < 0 ||
	    parse_exposed_ports(config, &c->exposed_ports, err) < 0)
		return -1;
	return 0;
}

static int parse_rootfs(const json_t *rootfs, oci_image_config *c, capsa_error *err)
{
	if (!rootfs || json_is_null(rootfs))
		return 0;
	if (!json_is_object(rootfs))
		return error_set(err, EINVAL, "field \"rootfs\" must be an object");
	if (json_get_string_array(rootfs, "diff_ids", OCI_MAX_LAYERS, &c->diff_ids, err) < 0)
		return error_prefix(err, "rootfs");
	for (size_t i = 0; c->diff_ids && c->diff_ids[i]; i++)
		if (oci_digest_validate(c->diff_ids[i], err) < 0)
			return error_prefix(err, "rootfs diff_ids[%zu]", i);
	return 0;
}

static int parse_config(const json_t *root, oci_image_config *c, capsa_error *err)
{
	if (json_get_string(root, "os", &c->os, err) < 0 ||
	    json_get_string(root, "architecture", &c->architecture, err) < 0)
		return -1;
	if (parse_run_config(json_object_get(root, "config"), c, err) < 0)
		return -1;
	return parse_rootfs(json_object_get(root, "rootfs"), c, err);
}

int oci_image_config_parse(const char *json, size_t len, oci_image_config *out, capsa_error *err)
{
	_cleanup_json_ json_t *root = json_parse_object(json, len, "image config", err);

	memset(out, 0, sizeof(*out));
	if (!root) {
		return -1;
	}
	if (parse_config(root, out, err) < 0) {
		oci_image_config_clear(out);
		error_prefix(err, "image config");
		return -1;
	}
	return 0;
}

void oci_image_config_clear(oci_image_config *c)
{
	free(c->os);
	free(c->architecture);
	oci_strv_free(c->entrypoint);
	oci_strv_free(c->cmd);
	oci_strv_free(c->env);
	free(c->working_dir);
	free(c->user);
	oci_strv_free(c->exposed_ports);
	oci_strv_free(c->diff_ids);
	memset(c, 0, sizeof(*c));
}
