/* The image configuration blob (OCI image-spec config.json / Docker
 * container config): what a run of the image does by default. Untrusted
 * JSON: capped, type-checked, unknown fields ignored. */
#ifndef CAPSA_OCI_IMAGE_CONFIG_H
#define CAPSA_OCI_IMAGE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "capsa.h"

typedef struct oci_image_config {
	char *os, *architecture;   /* may be NULL */
	char **entrypoint;         /* NULL-terminated; NULL when unset */
	char **cmd;                /* NULL-terminated; NULL when unset */
	char **env;                /* NULL-terminated "K=V" list; NULL when unset */
	char *working_dir;         /* NULL or "" when unset */
	char *user;                /* NULL or "" when unset */
	char **exposed_ports;      /* NULL-terminated, e.g. "80/tcp"; NULL when none */
	char **diff_ids;           /* rootfs.diff_ids, NULL-terminated; NULL when absent */
} oci_image_config;

/* Parses the "config" object (Docker also writes "container_config", which
 * is ignored). An image without a "config" object parses with all fields
 * unset. */
int oci_image_config_parse(const char *json, size_t len, oci_image_config *out, capsa_error *err);
void oci_image_config_clear(oci_image_config *c);

#endif
