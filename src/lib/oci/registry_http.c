#include "oci/registry_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "oci/docker_auth.h"
#include "oci/json_util.h"
#include "oci/www_auth.h"
#include "util/cleanup.h"
#include "util/error.h"

/* Header values longer than this are ignored (none we read is near it). */
#define HEADER_VALUE_MAX (16 * 1024)
/* Bodies of error answers and redirects are thrown away; past this the
 * transfer is cut short. */
#define DISCARD_BODY_MAX (1024 * 1024)
#define MAX_REDIRECTS 10

enum scheme { SCHEME_UNKNOWN, SCHEME_HTTPS, SCHEME_HTTP };

struct registry_client {
	char *registry;        /* as in the reference: names the registry in messages and config.json */
	char *api_host;
	char *repository;
	char *name;            /* registry/repository */
	bool allow_http;
	docker_credentials creds;
	char *auth_file;       /* config.json as messages name it; NULL: ~/.docker/config.json */

	pthread_mutex_t lock;  /* scheme */
	enum scheme scheme;

	pthread_mutex_t auth_lock; /* held while a token is fetched, so threads wait for one token */
	char *authorization;   /* "Bearer ..." or "Basic ...", or NULL */
	unsigned auth_generation;

	atomic_bool cancelled;
};

struct registry_conn {
	registry_client *client;
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
	/* The transfer in progress. */
	registry_response resp;
	const registry_sink *sink;
	int sink_ret;
	capsa_error sink_err;
	uint64_t body_bytes;   /* taken by the sink in this attempt */
	size_t discarded;
};

/* What one request_run() asks for. */
struct request {
	const char *path;          /* registry API path after /v2/<repository>/, or NULL */
	const char *url;           /* an absolute URL instead (token server) */
	const char *label;         /* "registry X" or "token server X", for messages */
	const char *accept;
	const char *post_fields;   /* POST these form fields instead of GET */
	const char *authorization; /* fixed Authorization value; registry requests use the client's */
	const registry_sink *sink;
};

/* asprintf that returns the string, or NULL. */
static char *format_string(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format_string(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void registry_response_clear(registry_response *r)
{
	free(r->content_type);
	free(r->docker_content_digest);
	free(r->content_range);
	free(r->www_authenticate);
	*r = (registry_response){ 0 };
}

bool registry_host_is_insecure(const char *host, const char *const *insecure)
{
	const char *start = host;
	char name[256];
	size_t len;

	if (host[0] == '[') {
		const char *end = strchr(host, ']');
		if (!end)
			return false;
		start = host + 1;
		len = (size_t)(end - start);
	} else {
		len = strcspn(host, ":");
	}
	if (len >= sizeof(name))
		return false;
	memcpy(name, start, len);
	name[len] = '\0';

	struct in_addr v4;
	struct in6_addr v6;
	if (strcasecmp(name, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, name, &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127)
		return true;
	if (inet_pton(AF_INET6, name, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6))
		return true;
	/* An entry without a port covers every port of the host. */
	for (size_t i = 0; insecure && insecure[i]; i++)
		if (strcasecmp(insecure[i], host) == 0 || strcasecmp(insecure[i], name) == 0)
			return true;
	return false;
}

registry_client *registry_client_new(const oci_reference *ref, const char *const *insecure, const char *auth_file,
				     capsa_error *err)
{
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_result != CURLE_OK) {
		error_set(err, EIO, "cannot initialize libcurl: %s", curl_easy_strerror(curl_init_result));
		return NULL;
	}
	registry_client *c = calloc(1, sizeof(*c));
	if (!c) {
		error_set_errno(err, ENOMEM, "creating a registry client");
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->auth_lock, NULL);
	c->registry = strdup(ref->registry);
	c->api_host = strdup(oci_reference_api_host(ref));
	c->repository = strdup(ref->repository);
	const char *docker_config = getenv("DOCKER_CONFIG");
	if (auth_file || (docker_config && docker_config[0]))
		c->auth_file = auth_file ? strdup(auth_file) : docker_auth_default_path(NULL);
	if (!c->registry || !c->api_host || !c->repository ||
	    ((auth_file || (docker_config && docker_config[0])) && !c->auth_file)) {
		error_set_errno(err, ENOMEM, "creating a registry client");
		goto fail;
	}
	if (!(c->name = oci_reference_name(ref, err)))
		goto fail;
	c->allow_http = registry_host_is_insecure(c->api_host, insecure);
	c->scheme = c->allow_http ? SCHEME_UNKNOWN : SCHEME_HTTPS;
	if (docker_auth_lookup(auth_file, c->registry, &c->creds, err) < 0)
		goto fail;
	return c;
fail:
	registry_client_free(c);
	return NULL;
}

void registry_client_free(registry_client *c)
{
	if (!c)
		return;
	docker_credentials_clear(&c->creds);
	if (c->authorization)
		explicit_bzero(c->authorization, strlen(c->authorization));
	free(c->authorization);
	free(c->registry);
	free(c->api_host);
	free(c->repository);
	free(c->name);
	free(c->auth_file);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->auth_lock);
	free(c);
}

void registry_client_cancel(registry_client *c)
{
	atomic_store(&c->cancelled, true);
}

/* Where messages tell people to put credentials. */
static const char *auth_file_name(const registry_client *c)
{
	return c->auth_file ? c->auth_file : "~/.docker/config.json";
}

const char *registry_client_registry(const registry_client *c)
{
	return c->registry;
}

const char *registry_client_name(const registry_client *c)
{
	return c->name;
}

registry_conn *registry_conn_new(registry_client *c, capsa_error *err)
{
	registry_conn *conn = calloc(1, sizeof(*conn));

	if (!conn || !(conn->curl = curl_easy_init())) {
		free(conn);
		error_set(err, ENOMEM, "cannot create a libcurl handle");
		return NULL;
	}
	conn->client = c;
	return conn;
}

void registry_conn_free(registry_conn *conn)
{
	if (!conn)
		return;
	curl_easy_cleanup(conn->curl);
	registry_response_clear(&conn->resp);
	free(conn);
}

/* ---- one transfer ---- */

static void set_header_value(char **slot, const char *value, size_t len)
{
	char *copy = strndup(value, len);

	if (!copy)
		return;
	free(*slot);
	*slot = copy;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	registry_conn *conn = userdata;
	size_t len = size * nmemb;

	/* A new answer (after a redirect or 100): its headers replace the
	 * earlier ones. */
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		registry_response_clear(&conn->resp);
		return len;
	}
	const char *colon = memchr(data, ':', len);
	if (!colon)
		return len;
	size_t name_len = (size_t)(colon - data);
	const char *value = colon + 1;
	size_t value_len = len - name_len - 1;
	while (value_len > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		value_len--;
	}
	while (value_len > 0 && (value[value_len - 1] == '\r' || value[value_len - 1] == '\n' ||
				 value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
		value_len--;
	if (value_len > HEADER_VALUE_MAX || memchr(value, '\0', value_len))
		return len;

	static const struct {
		const char *name;
		size_t offset;
	} wanted[] = {
		{ "content-type", offsetof(registry_response, content_type) },
		{ "docker-content-digest", offsetof(registry_response, docker_content_digest) },
		{ "content-range", offsetof(registry_response, content_range) },
		{ "www-authenticate", offsetof(registry_response, www_authenticate) },
	};
	for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
		if (strlen(wanted[i].name) != name_len || strncasecmp(data, wanted[i].name, name_len) != 0)
			continue;
		char **slot = (char **)((char *)&conn->resp + wanted[i].offset);
		/* Several challenges may come in separate headers: keep a
		 * Bearer one, which is what we prefer. */
		if (slot == &conn->resp.www_authenticate && *slot && strncasecmp(*slot, "bearer", 6) == 0)
			break;
		set_header_value(slot, value, value_len);
		break;
	}
	return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	registry_conn *conn = userdata;
	size_t len = size * nmemb;
	long status = 0;

	curl_easy_getinfo(conn->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200 && status != 206) {
		conn->discarded += len;
		return conn->discarded > DISCARD_BODY_MAX ? 0 : len;
	}
	conn->resp.status = status;
	if (!conn->sink)
		return len;
	int r = conn->sink->write(conn->sink->ctx, &conn->resp, data, len, &conn->sink_err);
	if (r != 0) {
		conn->sink_ret = r;
		return 0;
	}
	conn->body_bytes += len;
	return len;
}

static int on_xferinfo(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	registry_conn *conn = userdata;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return atomic_load(&conn->client->cancelled) ? 1 : 0;
}

static CURLcode perform_once(registry_conn *conn, const char *url, const struct curl_slist *headers,
			     const char *post_fields, uint64_t range_from, bool https_only_redirects)
{
	CURL *h = conn->curl;
	char range[32];

	/* Keeps the connection cache: requests on this handle reuse connections. */
	curl_easy_reset(h);
	registry_response_clear(&conn->resp);
	conn->errbuf[0] = '\0';
	conn->sink_ret = 0;
	conn->body_bytes = 0;
	conn->discarded = 0;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, conn->errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "capsa/" CAPSA_VERSION);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	/* Blob storage behind an HTTPS registry is reached over HTTPS too. */
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, https_only_redirects ? "https" : "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
	/* Stays the default (0): the Authorization header is not sent to
	 * another host, port or scheme a redirect leads to. */
	curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)REGISTRY_CONNECT_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)REGISTRY_LOW_SPEED_TIME_S);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, conn);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, conn);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, conn);
	if (post_fields)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, post_fields);
	if (range_from > 0) {
		snprintf(range, sizeof(range), "%llu-", (unsigned long long)range_from);
		curl_easy_setopt(h, CURLOPT_RANGE, range);
	}

	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	conn->resp.status = status;
	if (!conn->errbuf[0])
		snprintf(conn->errbuf, sizeof(conn->errbuf), "%s", curl_easy_strerror(rc));
	return rc;
}

/* Failures after which a local or insecure registry is tried over plain
 * HTTP: nothing answered HTTPS there. */
static bool https_failed_to_start(CURLcode rc)
{
	return rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_COULDNT_CONNECT || rc == CURLE_RECV_ERROR ||
	       rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING;
}

static bool retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
		return true;
	default:
		return false;
	}
}

static char *registry_url(const registry_client *c, enum scheme scheme, const char *path)
{
	return format_string("%s://%s/v2/%s/%s", scheme == SCHEME_HTTP ? "http" : "https", c->api_host,
			     c->repository, path);
}

static CURLcode perform_registry(registry_conn *conn, const char *path, const struct curl_slist *headers,
				 uint64_t range_from)
{
	registry_client *c = conn->client;

	pthread_mutex_lock(&c->lock);
	enum scheme scheme = c->scheme;
	pthread_mutex_unlock(&c->lock);

	_cleanup_free_ char *url = registry_url(c, scheme == SCHEME_HTTP ? SCHEME_HTTP : SCHEME_HTTPS, path);
	if (!url)
		return CURLE_OUT_OF_MEMORY;
	CURLcode rc = perform_once(conn, url, headers, NULL, range_from, scheme != SCHEME_HTTP);
	if (scheme != SCHEME_UNKNOWN)
		return rc;
	if (rc != CURLE_OK && conn->resp.status == 0 && https_failed_to_start(rc)) {
		free(url);
		if (!(url = registry_url(c, SCHEME_HTTP, path)))
			return CURLE_OUT_OF_MEMORY;
		rc = perform_once(conn, url, headers, NULL, range_from, false);
		scheme = SCHEME_HTTP;
	} else {
		scheme = SCHEME_HTTPS;
	}
	/* Whichever scheme got an answer is the one the registry speaks. */
	if (rc == CURLE_OK || conn->resp.status != 0) {
		pthread_mutex_lock(&c->lock);
		c->scheme = scheme;
		pthread_mutex_unlock(&c->lock);
	}
	return rc;
}

static void backoff_sleep(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int authenticate(registry_conn *conn, unsigned generation_sent, bool *fetched, capsa_error *err);

static int error_gave_up(capsa_error *err, unsigned tries)
{
	char suffix[64];

	if (!err)
		return -1;
	snprintf(suffix, sizeof(suffix), " (gave up after %u attempts)", tries);
	size_t len = strnlen(err->message, sizeof(err->message) - 1);
	if (len + strlen(suffix) < sizeof(err->message))
		memcpy(err->message + len, suffix, strlen(suffix) + 1);
	return -1;
}

/* Runs req to a 200 or 206 answer: retries, authentication, scheme. */
static int request_run(registry_conn *conn, const struct request *req, registry_response *out, capsa_error *err)
{
	registry_client *c = conn->client;
	unsigned failures = 0, tries = 0;
	bool authenticated = false;
	long delay_ms = REGISTRY_FIRST_BACKOFF_MS;

	*out = (registry_response){ 0 };
	for (;;) {
		uint64_t range_from = 0;
		_cleanup_free_ char *authorization = NULL;
		unsigned generation = 0;
		struct curl_slist *headers = NULL;

		if (atomic_load(&c->cancelled))
			return error_set(err, ECANCELED, "cancelled");
		if (req->sink && req->sink->begin && req->sink->begin(req->sink->ctx, &range_from, err) < 0)
			return -1;
		if (req->path) {
			pthread_mutex_lock(&c->auth_lock);
			generation = c->auth_generation;
			authorization = c->authorization ? strdup(c->authorization) : NULL;
			pthread_mutex_unlock(&c->auth_lock);
		} else if (req->authorization) {
			authorization = strdup(req->authorization);
		}

		_cleanup_free_ char *accept_line = NULL;
		_cleanup_free_ char *auth_line = NULL;
		bool oom = false;
		if (req->accept && (!(accept_line = format_string("Accept: %s", req->accept)) ||
				    !(headers = curl_slist_append(headers, accept_line))))
			oom = true;
		if (!oom && authorization) {
			struct curl_slist *more = NULL;
			if (!(auth_line = format_string("Authorization: %s", authorization)) ||
			    !(more = curl_slist_append(headers, auth_line)))
				oom = true;
			else
				headers = more;
		}
		if (oom) {
			curl_slist_free_all(headers);
			return error_set_errno(err, ENOMEM, "building request headers");
		}

		conn->sink = req->sink;
		CURLcode rc;
		if (req->path)
			rc = perform_registry(conn, req->path, headers, range_from);
		else
			rc = perform_once(conn, req->url, headers, req->post_fields, 0,
					  strncmp(req->url, "https:", 6) == 0);
		conn->sink = NULL;
		curl_slist_free_all(headers);
		if (auth_line)
			explicit_bzero(auth_line, strlen(auth_line));
		tries++;
		if (rc == CURLE_OUT_OF_MEMORY)
			return error_set_errno(err, ENOMEM, "talking to %s", req->label);

		long status = conn->resp.status;
		bool progressed = conn->body_bytes > 0;
		if (conn->sink_ret != 0 && err)
			*err = conn->sink_err;
		if (conn->sink_ret < 0)
			return -1;
		if (rc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&c->cancelled))
			return error_set(err, ECANCELED, "cancelled");
		if (conn->sink_ret > 0) {
			/* The sink asked for another attempt; err says why. */
		} else if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && conn->discarded > DISCARD_BODY_MAX)) {
			if (status == 0)
				error_set(err, EHOSTUNREACH, "cannot reach %s: %s", req->label, conn->errbuf);
			else
				error_set(err, EIO, "transfer from %s failed: %s", req->label, conn->errbuf);
			if (!retryable(rc))
				return -1;
		} else if (status == 200 || status == 206) {
			*out = conn->resp;
			conn->resp = (registry_response){ 0 };
			return 0;
		} else if (status == 401 && req->path) {
			bool fetched = false;
			if (authenticated) {
				*out = conn->resp;
				conn->resp = (registry_response){ 0 };
				return error_set(err, EACCES,
						 "access to %s denied: the repository does not exist or needs other "
						 "credentials (run docker login or add them to %s)",
						 c->name, auth_file_name(c));
			}
			if (authenticate(conn, generation, &fetched, err) < 0)
				return -1;
			authenticated = fetched;
			if (tries < REGISTRY_MAX_TRIES)
				continue;
			return error_set(err, EACCES, "access to %s denied", c->name);
		} else if (status == 429 || status >= 500) {
			error_set(err, EIO, "%s answered HTTP %ld%s", req->label, status,
				  status == 429 ? " (too many requests)" : " (server error)");
		} else {
			*out = conn->resp;
			conn->resp = (registry_response){ 0 };
			if (status == 404)
				return error_set(err, ENOENT, "%s has no %s", req->label,
						 req->path ? req->path : req->url);
			if (status == 401 || status == 403)
				return error_set(err, EACCES, "access to %s denied (HTTP %ld)", c->name, status);
			return error_set(err, EIO, "%s answered HTTP %ld", req->label, status);
		}

		/* A failed attempt that may succeed when repeated. */
		if (!progressed)
			failures++;
		if (failures >= REGISTRY_MAX_ATTEMPTS || tries >= REGISTRY_MAX_TRIES) {
			out->status = status;
			return error_gave_up(err, tries);
		}
		if (progressed)
			delay_ms = REGISTRY_FIRST_BACKOFF_MS;
		backoff_sleep(delay_ms);
		delay_ms *= 2;
	}
}

/* ---- bodies kept in memory (manifests, tokens) ---- */

typedef struct memory_sink {
	char *data;
	size_t len, allocated, max;
	const char *what;
} memory_sink;

static int memory_begin(void *ctx, uint64_t *range_from, capsa_error *err)
{
	memory_sink *m = ctx;

	(void)err;
	m->len = 0;
	*range_from = 0;
	return 0;
}

static int memory_write(void *ctx, const registry_response *resp, const void *data, size_t len, capsa_error *err)
{
	memory_sink *m = ctx;

	if (resp->status != 200)
		return error_set(err, EPROTO, "unexpected HTTP %ld answer for %s", resp->status, m->what);
	if (len > m->max - m->len)
		return error_set(err, EFBIG, "%s is larger than %zu bytes", m->what, m->max);
	/* Grown as data comes: a Content-Length header is not trusted. */
	if (m->len + len + 1 > m->allocated) {
		size_t want = m->allocated ? m->allocated : 16384;
		while (want < m->len + len + 1)
			want *= 2;
		if (want > m->max + 1)
			want = m->max + 1;
		char *bigger = realloc(m->data, want);
		if (!bigger)
			return error_set_errno(err, ENOMEM, "receiving %s", m->what);
		m->data = bigger;
		m->allocated = want;
	}
	memcpy(m->data + m->len, data, len);
	m->len += len;
	m->data[m->len] = '\0';
	return 0;
}

/* ---- authentication ---- */

static bool is_token_char(char c)
{
	return c > ' ' && c < 0x7f;
}

static int token_from_json(const char *json, size_t len, char **out, capsa_error *err)
{
	json_error_t jerr;
	_cleanup_json_ json_t *root = json_loadb(json, len, 0, &jerr);
	_cleanup_free_ char *token = NULL;

	if (!root || !json_is_object(root))
		return error_set(err, EPROTO, "the token server's answer is not a JSON object");
	if (json_get_string(root, "token", &token, err) < 0 ||
	    (!token && json_get_string(root, "access_token", &token, err) < 0))
		return error_prefix(err, "the token server's answer");
	if (!token || !token[0])
		return error_set(err, EPROTO, "the token server's answer holds no token");
	for (const char *p = token; *p; p++)
		if (!is_token_char(*p))
			return error_set(err, EPROTO, "the token server's answer holds a malformed token");
	*out = steal_pointer(&token);
	return 0;
}

static char *escaped(CURL *h, const char *s)
{
	char *e = curl_easy_escape(h, s, 0);
	char *copy = e ? strdup(e) : NULL;

	curl_free(e);
	return copy;
}

/* A token for pulling from the repository: GET realm?service=..&scope=..
 * with the config.json user and password (or none), or with docker's
 * identity token, the OAuth2 refresh-token POST docker login leaves. */
static int fetch_token(registry_conn *conn, const www_auth_challenge *ch, char **out, capsa_error *err)
{
	registry_client *c = conn->client;
	bool realm_https = strncasecmp(ch->realm, "https://", 8) == 0;

	if (!realm_https && !(c->allow_http && strncasecmp(ch->realm, "http://", 7) == 0))
		return error_set(err, EPROTO, "registry %s sent a token server URL that is not https: '%.200s'",
				 c->registry, ch->realm);
	_cleanup_free_ char *scope_raw = NULL;
	_cleanup_free_ char *scope = NULL;
	_cleanup_free_ char *service = NULL;
	_cleanup_free_ char *url = NULL;
	_cleanup_free_ char *post = NULL;
	_cleanup_free_ char *refresh = NULL;
	_cleanup_free_ char *basic = NULL;
	_cleanup_free_ char *label = NULL;

	if (!(scope_raw = format_string("repository:%s:pull", c->repository)) ||
	    !(scope = escaped(conn->curl, scope_raw)) ||
	    (ch->service && !(service = escaped(conn->curl, ch->service))))
		return error_set_errno(err, ENOMEM, "building the token request");
	if (c->creds.identity_token) {
		if (!(refresh = escaped(conn->curl, c->creds.identity_token)) ||
		    !(post = format_string("grant_type=refresh_token&client_id=capsa&service=%s&scope=%s"
					   "&refresh_token=%s", service ? service : "", scope, refresh)) ||
		    !(url = strdup(ch->realm)))
			return error_set_errno(err, ENOMEM, "building the token request");
	} else {
		url = format_string("%s%sscope=%s%s%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?", scope,
				    service ? "&service=" : "", service ? service : "");
		if (!url)
			return error_set_errno(err, ENOMEM, "building the token request");
		if (c->creds.username && !(basic = docker_credentials_basic_header(&c->creds, err)))
			return -1;
	}
	if (!(label = format_string("token server %.200s", ch->realm)))
		return error_set_errno(err, ENOMEM, "building the token request");

	memory_sink m = { .max = REGISTRY_TOKEN_MAX_BYTES, .what = "the token server's answer" };
	registry_sink sink = { .begin = memory_begin, .write = memory_write, .ctx = &m };
	struct request req = {
		.url = url,
		.label = label,
		.accept = "application/json",
		.post_fields = post,
		.authorization = basic,
		.sink = &sink,
	};
	registry_response resp;
	int ret = request_run(conn, &req, &resp, err);
	if (post)
		explicit_bzero(post, strlen(post));
	if (basic)
		explicit_bzero(basic, strlen(basic));
	if (ret == 0)
		ret = token_from_json(m.data ? m.data : "", m.len, out, err);
	else if ((resp.status == 401 || resp.status == 403) && docker_credentials_present(&c->creds))
		ret = error_set(err, EACCES, "access to %s denied: the token server refused the credentials from %s; "
				"run docker login again", c->name, auth_file_name(c));
	else if (resp.status == 401 || resp.status == 403)
		ret = error_set(err, EACCES, "access to %s denied: the token server refused anonymous access; "
				"run docker login or add credentials to %s", c->name, auth_file_name(c));
	registry_response_clear(&resp);
	free(m.data);
	return ret;
}

static int authenticate(registry_conn *conn, unsigned generation_sent, bool *fetched, capsa_error *err)
{
	registry_client *c = conn->client;
	www_auth_challenge ch = { 0 };
	char *authorization = NULL;
	int ret = 0;

	*fetched = false;
	if (!conn->resp.www_authenticate)
		return error_set(err, EPROTO, "registry %s answered 401 without a WWW-Authenticate challenge",
				 c->registry);
	_cleanup_free_ char *challenge = strdup(conn->resp.www_authenticate);
	if (!challenge)
		return error_set_errno(err, ENOMEM, "reading the registry's challenge");

	pthread_mutex_lock(&c->auth_lock);
	/* Another thread got a new token since this request was sent: use it. */
	if (c->auth_generation != generation_sent)
		goto out;
	if (www_auth_parse(challenge, &ch, err) < 0) {
		ret = error_prefix(err, "registry %s", c->registry);
		goto out;
	}
	if (ch.scheme == WWW_AUTH_BASIC) {
		if (!c->creds.username) {
			ret = error_set(err, EACCES,
					"registry %s requires credentials; run docker login or add them to %s",
					c->registry, auth_file_name(c));
			goto out;
		}
		if (!(authorization = docker_credentials_basic_header(&c->creds, err))) {
			ret = -1;
			goto out;
		}
	} else {
		_cleanup_free_ char *token = NULL;
		if (fetch_token(conn, &ch, &token, err) < 0) {
			ret = -1;
			goto out;
		}
		if (!(authorization = format_string("Bearer %s", token))) {
			ret = error_set_errno(err, ENOMEM, "storing the registry token");
			goto out;
		}
		explicit_bzero(token, strlen(token));
	}
	if (c->authorization)
		explicit_bzero(c->authorization, strlen(c->authorization));
	free(c->authorization);
	c->authorization = authorization;
	c->auth_generation++;
	*fetched = true;
out:
	pthread_mutex_unlock(&c->auth_lock);
	www_auth_clear(&ch);
	return ret;
}

/* ---- the API ---- */

int registry_get(registry_conn *conn, const char *path, const char *accept, const registry_sink *sink,
		 registry_response *resp, capsa_error *err)
{
	_cleanup_free_ char *label = format_string("registry %s", conn->client->registry);

	if (!label)
		return error_set_errno(err, ENOMEM, "building a request");
	struct request req = { .path = path, .label = label, .accept = accept, .sink = sink };
	return request_run(conn, &req, resp, err);
}

int registry_fetch_to_memory(registry_conn *conn, const char *path, const char *accept, size_t max, char **data,
			     size_t *len, registry_response *resp, capsa_error *err)
{
	memory_sink m = { .max = max, .what = path };
	registry_sink sink = { .begin = memory_begin, .write = memory_write, .ctx = &m };

	*data = NULL;
	*len = 0;
	if (registry_get(conn, path, accept, &sink, resp, err) < 0) {
		free(m.data);
		return -1;
	}
	if (!m.data && !(m.data = strdup(""))) {
		registry_response_clear(resp);
		return error_set_errno(err, ENOMEM, "receiving %s", path);
	}
	*data = m.data;
	*len = m.len;
	return 0;
}
