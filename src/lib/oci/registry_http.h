/* Requests to one repository of a registry (OCI distribution API) with
 * libcurl: HTTPS, or plain HTTP for local and insecure registries after
 * HTTPS failed; token (Bearer) and Basic authentication answering the
 * registry's 401 challenge; timeouts; retries with exponential backoff on
 * connection errors, 429 and 5xx. Redirects (to blob storage) are
 * followed; libcurl sends the Authorization header only to the host and
 * port the request started on.
 *
 * One registry_client per pull, shared by threads (it caches the scheme
 * and the token); one registry_conn per thread. */
#ifndef CAPSA_OCI_REGISTRY_HTTP_H
#define CAPSA_OCI_REGISTRY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa.h"
#include "oci/reference.h"

#define REGISTRY_CONNECT_TIMEOUT_S 15
/* A transfer slower than 1 byte/s for this long is abandoned (and retried). */
#define REGISTRY_LOW_SPEED_TIME_S 30
#define REGISTRY_MAX_ATTEMPTS 4
#define REGISTRY_FIRST_BACKOFF_MS 500
/* Attempts that moved a download forward do not count against
 * REGISTRY_MAX_ATTEMPTS, up to this many tries in all. */
#define REGISTRY_MAX_TRIES 20
/* Token server answers larger than this are refused. */
#define REGISTRY_TOKEN_MAX_BYTES (1024 * 1024)

typedef struct registry_client registry_client;
typedef struct registry_conn registry_conn;

/* The final answer's status and the headers the callers look at. */
typedef struct registry_response {
	long status;
	char *content_type;
	char *docker_content_digest;
	char *content_range;
	char *www_authenticate;
} registry_response;

void registry_response_clear(registry_response *r);

/* Receives the body of a request, attempt by attempt. */
typedef struct registry_sink {
	/* Before each attempt: *range_from = the offset to ask for with a
	 * Range request (0: all of it). */
	int (*begin)(void *ctx, uint64_t *range_from, capsa_error *err);
	/* Body bytes of a 200 or 206 answer, whose headers are in resp. 0 to
	 * go on, -1 (err set) to fail the request, 1 to abandon this attempt
	 * and retry. */
	int (*write)(void *ctx, const registry_response *resp, const void *data, size_t len, capsa_error *err);
	void *ctx;
} registry_sink;

/* insecure: host[:port] entries that may be reached over plain HTTP
 * (NULL-terminated, may be NULL); auth_file: docker's config.json (NULL:
 * the default place). */
registry_client *registry_client_new(const oci_reference *ref, const char *const *insecure, const char *auth_file,
				     capsa_error *err);
void registry_client_free(registry_client *c);
/* Makes every transfer in progress and every later request fail soon:
 * one blob failed and the others are no longer needed. */
void registry_client_cancel(registry_client *c);
/* "registry.example.com:5000", as the user named it (for messages). */
const char *registry_client_registry(const registry_client *c);
/* "registry.example.com:5000/org/app" (for messages). */
const char *registry_client_name(const registry_client *c);

registry_conn *registry_conn_new(registry_client *c, capsa_error *err);
void registry_conn_free(registry_conn *conn);

/* GET /v2/<repository>/<path> ("manifests/latest", "blobs/sha256:..."),
 * with accept as the Accept header (may be NULL). Returns 0 after a 200
 * or 206 answer, whose headers are in *resp. Otherwise -1 with a message
 * and resp->status the last HTTP status (0 when none came): ENOENT for
 * 404, EACCES for 401 and 403, EIO for other statuses and transfer
 * errors, EHOSTUNREACH when the registry could not be reached, ECANCELED
 * after registry_client_cancel; or what the sink failed with. */
int registry_get(registry_conn *conn, const char *path, const char *accept, const registry_sink *sink,
		 registry_response *resp, capsa_error *err);

/* registry_get() into memory: *data (malloc'd, NUL-terminated) holds the
 * body of at most max bytes (EFBIG beyond). */
int registry_fetch_to_memory(registry_conn *conn, const char *path, const char *accept, size_t max, char **data,
			     size_t *len, registry_response *resp, capsa_error *err);

/* Whether the host[:port] may be spoken to over plain HTTP: localhost,
 * 127.0.0.0/8, [::1], or an entry of insecure. */
bool registry_host_is_insecure(const char *host, const char *const *insecure);

#endif
