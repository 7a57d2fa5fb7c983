#include "oci/docker_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "oci/json_util.h"
#include "util/cleanup.h"
#include "util/error.h"

char *docker_auth_default_path(capsa_error *err)
{
	const char *dir = getenv("DOCKER_CONFIG");
	char *path = NULL;
	int n;

	if (dir && dir[0]) {
		n = asprintf(&path, "%s/config.json", dir);
	} else {
		const char *home = getenv("HOME");
		if (!home || !home[0]) {
			error_set(err, ENOENT, "cannot find docker's config.json: set HOME or DOCKER_CONFIG");
			return NULL;
		}
		n = asprintf(&path, "%s/.docker/config.json", home);
	}
	if (n < 0) {
		error_set_errno(err, ENOMEM, "building the path of docker's config.json");
		return NULL;
	}
	return path;
}

void docker_credentials_clear(docker_credentials *c)
{
	free(c->username);
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	free(c->password);
	free(c->identity_token);
	*c = (docker_credentials){ 0 };
}

static int base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict standard base64 (padding optional): NULL on any other byte or
 * on a truncated quantum. The result is NUL-terminated and refused when
 * it holds a NUL itself. */
static char *base64_decode(const char *in)
{
	size_t len = strlen(in);

	while (len > 0 && in[len - 1] == '=')
		len--;
	if (strlen(in) - len > 2 || len % 4 == 1)
		return NULL;
	char *out = malloc(len / 4 * 3 + 3);
	if (!out)
		return NULL;
	size_t o = 0;
	uint32_t acc = 0;
	for (size_t i = 0; i < len; i++) {
		int v = base64_value(in[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		if (i % 4 == 3) {
			out[o++] = (char)(acc >> 16);
			out[o++] = (char)(acc >> 8);
			out[o++] = (char)acc;
			acc = 0;
		}
	}
	if (len % 4 == 2) {
		out[o++] = (char)(acc >> 4);
	} else if (len % 4 == 3) {
		out[o++] = (char)(acc >> 10);
		out[o++] = (char)(acc >> 2);
	}
	out[o] = '\0';
	if (strlen(out) != o) {
		free(out);
		return NULL;
	}
	return out;
}

static char *base64_encode(const char *in, size_t len)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((len + 2) / 3 * 4 + 1);

	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t acc = (uint32_t)(unsigned char)in[i] << 16;
		if (i + 1 < len)
			acc |= (uint32_t)(unsigned char)in[i + 1] << 8;
		if (i + 2 < len)
			acc |= (unsigned char)in[i + 2];
		out[o++] = alphabet[acc >> 18 & 63];
		out[o++] = alphabet[acc >> 12 & 63];
		out[o++] = i + 1 < len ? alphabet[acc >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? alphabet[acc & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

char *docker_credentials_basic_header(const docker_credentials *c, capsa_error *err)
{
	_cleanup_free_ char *pair = NULL;
	_cleanup_free_ char *encoded = NULL;
	char *header = NULL;

	if (asprintf(&pair, "%s:%s", c->username ? c->username : "", c->password ? c->password : "") < 0) {
		pair = NULL;
		goto oom;
	}
	encoded = base64_encode(pair, strlen(pair));
	explicit_bzero(pair, strlen(pair));
	if (!encoded || asprintf(&header, "Basic %s", encoded) < 0)
		goto oom;
	explicit_bzero(encoded, strlen(encoded));
	return header;
oom:
	error_set_errno(err, ENOMEM, "encoding registry credentials");
	return NULL;
}

/* The host[:port] an "auths" key names: docker has written them as bare
 * hosts and as URLs ("https://host/v1/") over the years. */
static size_t key_host(const char *key, const char **host)
{
	if (strncasecmp(key, "https://", 8) == 0)
		key += 8;
	else if (strncasecmp(key, "http://", 7) == 0)
		key += 7;
	*host = key;
	return strcspn(key, "/");
}

static bool is_docker_hub(const char *host, size_t len)
{
	static const char *const names[] = { "docker.io", "index.docker.io", "registry-1.docker.io" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (len == strlen(names[i]) && strncasecmp(host, names[i], len) == 0)
			return true;
	return false;
}

static bool key_matches(const char *key, const char *registry)
{
	const char *host;
	size_t len = key_host(key, &host);

	if (is_docker_hub(registry, strlen(registry)))
		return is_docker_hub(host, len);
	return len == strlen(registry) && strncasecmp(host, registry, len) == 0;
}

static int read_capped(const char *path, char **data, size_t *len, capsa_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	*data = NULL;
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return error_set_errno(err, errno, "cannot open '%s'", path);
	}
	if (fstat(fd, &st) < 0)
		return error_set_errno(err, errno, "cannot stat '%s'", path);
	if (!S_ISREG(st.st_mode) || st.st_size > DOCKER_AUTH_FILE_MAX)
		return error_set(err, EINVAL, "'%s' is not a regular file of at most %d bytes", path,
				 DOCKER_AUTH_FILE_MAX);
	_cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return error_set_errno(err, ENOMEM, "reading '%s'", path);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set_errno(err, errno, "cannot read '%s'", path);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*len = got;
	*data = steal_pointer(&buf);
	return 0;
}

static int entry_credentials(const json_t *entry, docker_credentials *out, capsa_error *err)
{
	_cleanup_free_ char *auth = NULL;

	if (!json_is_object(entry))
		return error_set(err, EINVAL, "the entry is not an object");
	if (json_get_string(entry, "auth", &auth, err) < 0 ||
	    json_get_string(entry, "identitytoken", &out->identity_token, err) < 0)
		return -1;
	if (out->identity_token && !out->identity_token[0]) {
		free(out->identity_token);
		out->identity_token = NULL;
	}
	if (auth && auth[0]) {
		_cleanup_free_ char *pair = base64_decode(auth);
		char *colon = pair ? strchr(pair, ':') : NULL;

		explicit_bzero(auth, strlen(auth));
		if (!colon) {
			if (pair)
				explicit_bzero(pair, strlen(pair));
			return error_set(err, EINVAL,
					 "\"auth\" is not base64 of user:password; run docker login again");
		}
		*colon = '\0';
		out->username = strdup(pair);
		out->password = strdup(colon + 1);
		explicit_bzero(colon + 1, strlen(colon + 1));
		if (!out->username || !out->password)
			return error_set_errno(err, ENOMEM, "copying credentials");
		return 0;
	}
	/* Entries written by hand sometimes carry the fields separately. */
	if (json_get_string(entry, "username", &out->username, err) < 0 ||
	    json_get_string(entry, "password", &out->password, err) < 0)
		return -1;
	if (!out->username != !out->password)
		return error_set(err, EINVAL, "\"username\" and \"password\" must be given together");
	return 0;
}

int docker_auth_lookup(const char *path, const char *registry, docker_credentials *out, capsa_error *err)
{
	_cleanup_free_ char *default_path = NULL;
	_cleanup_free_ char *data = NULL;
	size_t len = 0;

	*out = (docker_credentials){ 0 };
	if (!path) {
		/* Without HOME nor DOCKER_CONFIG there simply are no credentials. */
		path = default_path = docker_auth_default_path(NULL);
		if (!path)
			return 0;
	}
	if (read_capped(path, &data, &len, err) < 0)
		return -1;
	if (!data)
		return 0;

	json_error_t jerr;
	_cleanup_json_ json_t *root = json_loadb(data, len, 0, &jerr);
	explicit_bzero(data, len);
	if (!root)
		return error_set(err, EINVAL, "'%s' is not valid JSON: %s (line %d)", path, jerr.text, jerr.line);
	if (!json_is_object(root))
		return error_set(err, EINVAL, "'%s' is not a JSON object", path);
	const json_t *auths = json_object_get(root, "auths");
	if (!auths || json_is_null(auths))
		return 0;
	if (!json_is_object(auths))
		return error_set(err, EINVAL, "'%s': \"auths\" is not an object", path);

	/* An exact key wins over one that only names the same host. */
	const char *key, *found = NULL;
	const json_t *entry, *found_entry = NULL;
	json_object_foreach((json_t *)auths, key, entry) {
		if (strcmp(key, registry) == 0) {
			found = key;
			found_entry = entry;
			break;
		}
		if (!found && key_matches(key, registry)) {
			found = key;
			found_entry = entry;
		}
	}
	if (!found)
		return 0;
	if (entry_credentials(found_entry, out, err) < 0) {
		docker_credentials_clear(out);
		return error_prefix(err, "'%s': credentials for \"%.200s\"", path, found);
	}
	return 0;
}
