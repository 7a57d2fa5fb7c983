/* Registry credentials as `docker login` stores them in config.json:
 *
 *   { "auths": { "ghcr.io": { "auth": "<base64 user:password>" },
 *                "https://index.docker.io/v1/": { "auth": "...", "identitytoken": "..." } } }
 *
 * Only the "auths" map is read. Credential helpers ("credsStore",
 * "credHelpers") run external programs and are not supported: registries
 * configured that way are reached anonymously. */
#ifndef CAPSA_OCI_DOCKER_AUTH_H
#define CAPSA_OCI_DOCKER_AUTH_H

#include <stdbool.h>

#include "capsa.h"

/* config.json larger than this is refused. */
#define DOCKER_AUTH_FILE_MAX (1024 * 1024)

typedef struct docker_credentials {
	char *username;        /* NULL when none were found */
	char *password;
	char *identity_token;  /* OAuth2 refresh token, or NULL */
} docker_credentials;

/* $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json, malloc'd. */
char *docker_auth_default_path(capsa_error *err);

/* Fills *out with the credentials config.json at path (NULL: the default)
 * holds for registry (host[:port] as in image references; "docker.io"
 * also matches the keys docker uses for Docker Hub). A missing file or a
 * registry without an entry leaves *out empty and returns 0; unreadable
 * or malformed JSON, or an entry whose "auth" is not base64 of
 * "user:password", fails with EINVAL naming the file. */
int docker_auth_lookup(const char *path, const char *registry, docker_credentials *out, capsa_error *err);
void docker_credentials_clear(docker_credentials *c);

static inline bool docker_credentials_present(const docker_credentials *c)
{
	return c->username || c->identity_token;
}

/* "Basic <base64 user:password>", malloc'd. */
char *docker_credentials_basic_header(const docker_credentials *c, capsa_error *err);

#endif
