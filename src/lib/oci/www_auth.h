/* WWW-Authenticate challenges (RFC 7235) as registries send them:
 *   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"
 *   Basic realm="Registry Realm"
 * The header is untrusted: quoted strings with backslash escapes, any
 * parameter order, unknown parameters ignored, length capped. */
#ifndef CAPSA_OCI_WWW_AUTH_H
#define CAPSA_OCI_WWW_AUTH_H

#include "capsa.h"

typedef enum www_auth_scheme {
	WWW_AUTH_BASIC,
	WWW_AUTH_BEARER,
} www_auth_scheme;

typedef struct www_auth_challenge {
	www_auth_scheme scheme;
	char *realm;     /* Bearer: the token server URL (required); Basic: may be NULL */
	char *service;   /* may be NULL */
	char *scope;     /* may be NULL */
} www_auth_challenge;

/* Parses the value of one WWW-Authenticate header. When it holds several
 * challenges, Bearer is preferred over Basic. Unknown schemes alone, a
 * Bearer challenge without realm, or malformed syntax fail with EPROTO. */
int www_auth_parse(const char *header, www_auth_challenge *out, capsa_error *err);
void www_auth_clear(www_auth_challenge *c);

#endif
