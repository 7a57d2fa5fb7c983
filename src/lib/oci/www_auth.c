#include "oci/www_auth.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oci/json_util.h"
#include "util/cleanup.h"
#include "util/error.h"

/* Real challenges are a few hundred bytes. */
#define WWW_AUTH_MAX 8192

static bool is_tchar(char c)
{
	return c && ((isascii((unsigned char)c) && isalnum((unsigned char)c)) || strchr("!#$%&'*+-.^_`|~", c));
}

static size_t token_len(const char *p)
{
	size_t n = 0;

	while (is_tchar(p[n]))
		n++;
	return n;
}

static const char *skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static bool token_is(const char *p, size_t len, const char *word)
{
	return strlen(word) == len && !strncasecmp(p, word, len);
}

static int malformed(const char *at, capsa_error *err)
{
	return error_set(err, EPROTO, "malformed WWW-Authenticate header from the registry near '%.40s'", at);
}

/* Quoted-string content may hold tabs, spaces, visible and non-ASCII
 * bytes; a backslash escapes any of those. */
static bool is_qdtext(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Reads a token or a quoted-string at *pp into a new string (escapes
 * removed) and moves *pp past it. */
static int read_value(const char **pp, char **out, capsa_error *err)
{
	const char *p = *pp;

	if (*p != '"') {
		size_t n = token_len(p);
		if (n == 0)
			return malformed(p, err);
		*out = strndup(p, n);
		if (!*out)
			return error_set_errno(err, ENOMEM, "parsing WWW-Authenticate");
		*pp = p + n;
		return 0;
	}
	_cleanup_free_ char *value = malloc(strlen(p));
	if (!value)
		return error_set_errno(err, ENOMEM, "parsing WWW-Authenticate");
	size_t len = 0;
	for (p++; *p != '"'; p++) {
		if (*p == '\\')
			p++;
		if (!is_qdtext((unsigned char)*p))
			return malformed(*pp, err);
		value[len++] = *p;
	}
	value[len] = '\0';
	*out = steal_pointer(&value);
	*pp = p + 1;
	return 0;
}

static int set_param(www_auth_challenge *c, const char *name, size_t len, char *value, capsa_error *err)
{
	_cleanup_free_ char *owned = value;
	const struct {
		const char *name;
		char **slot;
	} params[] = { { "realm", &c->realm }, { "service", &c->service }, { "scope", &c->scope } };
	char **slot = NULL;
	const char *canonical = NULL;

	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]) && !slot; i++)
		if (token_is(name, len, params[i].name)) {
			slot = params[i].slot;
			canonical = params[i].name;
		}
	if (!slot)
		return 0;
	if (*slot)
		return error_set(err, EPROTO, "WWW-Authenticate challenge from the registry repeats its %s parameter",
				 canonical);
	*slot = steal_pointer(&owned);
	return 0;
}

/* Parses the auth-params following a scheme at *pp into c, and leaves *pp
 * at the next challenge's scheme or at the end. */
static int parse_params(const char **pp, www_auth_challenge *c, capsa_error *err)
{
	const char *p = *pp;

	for (bool first = true;; first = false) {
		const char *q = skip_ows(p);
		bool comma = false;
		while (*q == ',') {
			comma = true;
			q = skip_ows(q + 1);
		}
		if (!*q) {
			*pp = q;
			return 0;
		}
		size_t n = token_len(q);
		const char *eq = skip_ows(q + n);
		if (n == 0)
			return malformed(q, err);
		if (*eq != '=') {
			/* Not a parameter: the next challenge, which a comma must separate. */
			if (!comma)
				return malformed(q, err);
			*pp = q;
			return 0;
		}
		/* The scheme's own check made sure a space or comma precedes the first. */
		if (!first && !comma)
			return malformed(q, err);
		char *value;
		const char *v = skip_ows(eq + 1);
		if (read_value(&v, &value, err) < 0 || set_param(c, q, n, value, err) < 0)
			return -1;
		p = v;
	}
}

static bool is_http_url(const char *s)
{
	return !strncasecmp(s, "https://", 8) || !strncasecmp(s, "http://", 7);
}

static int parse(const char *header, www_auth_challenge *bearer, www_auth_challenge *basic, capsa_error *err)
{
	const char *p = header;
	bool have_bearer = false, have_basic = false;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		size_t n = token_len(p);
		if (n == 0 || (p[n] && p[n] != ' ' && p[n] != '\t' && p[n] != ','))
			return malformed(p, err);
		/* Only the first challenge of each scheme counts; the others
		 * (and unknown schemes) are parsed to find where they end. */
		www_auth_challenge scratch = { 0 };
		www_auth_challenge *c = &scratch;
		bool is_bearer = token_is(p, n, "Bearer"), is_basic = token_is(p, n, "Basic");
		if (is_bearer && !have_bearer)
			c = bearer;
		else if (is_basic && !have_basic)
			c = basic;
		p += n;
		int ret = parse_params(&p, c, err);
		www_auth_clear(&scratch);
		if (ret < 0)
			return -1;
		if (c == bearer) {
			have_bearer = true;
			if (!bearer->realm)
				return error_set(err, EPROTO, "the registry's Bearer challenge has no realm");
			if (!is_http_url(bearer->realm))
				return error_set(err, EPROTO, "the registry's Bearer realm '%.200s' is not an http(s) URL",
						 bearer->realm);
		} else if (c == basic) {
			have_basic = true;
		}
	}
	if (!have_bearer && !have_basic)
		return error_set(err, EPROTO,
				 "the registry's WWW-Authenticate header '%.200s' offers neither Bearer nor Basic "
				 "authentication", header);
	return have_bearer ? 0 : 1;
}

int www_auth_parse(const char *header, www_auth_challenge *out, capsa_error *err)
{
	www_auth_challenge bearer = { .scheme = WWW_AUTH_BEARER }, basic = { .scheme = WWW_AUTH_BASIC };
	int ret;

	memset(out, 0, sizeof(*out));
	if (!header || strlen(header) > WWW_AUTH_MAX)
		ret = error_set(err, EPROTO, "the registry's WWW-Authenticate header is %s",
				header ? "too long" : "missing");
	else
		ret = parse(header, &bearer, &basic, err);
	if (ret < 0) {
		www_auth_clear(&bearer);
		www_auth_clear(&basic);
		return -1;
	}
	/* Bearer is preferred: Basic would send the password to every request. */
	*out = ret == 0 ? bearer : basic;
	www_auth_clear(ret == 0 ? &basic : &bearer);
	return 0;
}

void www_auth_clear(www_auth_challenge *c)
{
	free(c->realm);
	free(c->service);
	free(c->scope);
	memset(c, 0, sizeof(*c));
}
