/* WWW-Authenticate parsing: challenges as registries send them, RFC 7235
 * syntax corners (escapes, token values, spacing, several challenges) and
 * headers that must be refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oci/www_auth.h"

struct good_case {
	const char *header;
	www_auth_scheme scheme;
	const char *realm, *service, *scope;
};

static const struct good_case good[] = {
	{ "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
	  "scope=\"repository:library/busybox:pull\"",
	  WWW_AUTH_BEARER, "https://auth.docker.io/token", "registry.docker.io", "repository:library/busybox:pull" },
	{ "Basic realm=\"Registry Realm\"", WWW_AUTH_BASIC, "Registry Realm", NULL, NULL },
	{ "Basic realm=x, Bearer realm=\"https://ghcr.io/token\",service=\"ghcr.io\"", WWW_AUTH_BEARER,
	  "https://ghcr.io/token", "ghcr.io", NULL },
	{ "Bearer realm=\"https://a.io/t\", Basic realm=\"x\"", WWW_AUTH_BEARER, "https://a.io/t", NULL, NULL },
	{ "Bearer realm=\"https://a.io/t\",scope=\"repo:\\\"x\\\"\\\\y\"", WWW_AUTH_BEARER, "https://a.io/t", NULL,
	  "repo:\"x\"\\y" },
	{ "Basic realm=myrealm", WWW_AUTH_BASIC, "myrealm", NULL, NULL },
	{ "Bearer realm=\"https://x.io/t\",service=registry.example.com,scope=pull", WWW_AUTH_BEARER,
	  "https://x.io/t", "registry.example.com", "pull" },
	{ "  Bearer   realm = \"https://x.io/t\" ,  service = \"svc\"  ", WWW_AUTH_BEARER, "https://x.io/t", "svc",
	  NULL },
	{ "bearer REALM=\"HTTPS://x.io/t\",Service=\"s\"", WWW_AUTH_BEARER, "HTTPS://x.io/t", "s", NULL },
	{ "Basic", WWW_AUTH_BASIC, NULL, NULL, NULL },
	{ "Bearer realm=\"https://x.io/t\",error=\"insufficient_scope\",foo=bar", WWW_AUTH_BEARER, "https://x.io/t",
	  NULL, NULL },
	{ "Bearer scope=\"s\",service=\"v\",realm=\"http://localhost:5001/auth\"", WWW_AUTH_BEARER,
	  "http://localhost:5001/auth", "v", "s" },
	{ "Negotiate, Bearer realm=\"https://x.io/t\"", WWW_AUTH_BEARER, "https://x.io/t", NULL, NULL },
	{ "Digest realm=\"x\", nonce=\"y\", qop=\"auth\", Basic realm=\"z\"", WWW_AUTH_BASIC, "z", NULL, NULL },
	{ "Bearer realm=\"https://x.io/t\",,service=\"v\",", WWW_AUTH_BEARER, "https://x.io/t", "v", NULL },
	{ "Bearer\trealm=\"https://x.io/t\"", WWW_AUTH_BEARER, "https://x.io/t", NULL, NULL },
	{ "Bearer realm=\"https://x.io/t\",scope=\"repository:a/b:pull,push\"", WWW_AUTH_BEARER, "https://x.io/t",
	  NULL, "repository:a/b:pull,push" },
	{ "Bearer realm=\"https://first.io/t\", Bearer realm=\"https://second.io/t\"", WWW_AUTH_BEARER,
	  "https://first.io/t", NULL, NULL },
	{ "Basic realm=\"caf\xc3\xa9\"", WWW_AUTH_BASIC, "caf\xc3\xa9", NULL, NULL },
	{ "Basic realm=\"\"", WWW_AUTH_BASIC, "", NULL, NULL },
};

struct bad_case {
	const char *header;
	const char *message_part;
};

static const struct bad_case bad[] = {
	{ "", "neither Bearer nor Basic" },
	{ "   ", "neither Bearer nor Basic" },
	{ "Negotiate", "neither Bearer nor Basic" },
	{ "Digest realm=\"x\", nonce=\"y\"", "neither Bearer nor Basic" },
	{ "Bearer", "Bearer challenge has no realm" },
	{ "Bearer service=\"x\",scope=\"y\"", "Bearer challenge has no realm" },
	{ "Basic realm=x, Bearer service=\"s\"", "Bearer challenge has no realm" },
	{ "Bearer realm=\"\"", "not an http(s) URL" },
	{ "Bearer realm=\"ftp://x.io/t\"", "not an http(s) URL" },
	{ "Bearer realm=\"file:///etc/passwd\"", "not an http(s) URL" },
	{ "Bearer realm=\"https://x.io/t", "malformed" },
	{ "Bearer realm=\"https://x.io/t\\", "malformed" },
	{ "Bearer realm=", "malformed" },
	{ "Bearer realm=https://x.io/t", "malformed" },
	{ "Bearer realm=\"a\"b", "malformed" },
	{ "Bearer realm=\"https://x.io/t\" service=\"v\"", "malformed" },
	{ "Bearer realm=\"https://x.io/t\",realm=\"https://y.io\"", "repeats its realm" },
	{ "Bearer realm=\"https://x.io/t\",Realm=\"https://y.io\"", "repeats its realm" },
	{ "=realm", "malformed" },
	{ "Bearer realm=\"x\001y\"", "malformed" },
	{ "Bearer realm=\"https://x.io/t\"\n", "malformed" },
	{ "\"Bearer\" realm=\"https://x.io/t\"", "malformed" },
	{ "Bearer=realm", "malformed" },
	{ "@@@@", "malformed" },
	{ "Basic realm=\"x\" Bearer realm=\"https://x.io/t\"", "malformed" },
	{ "Bearer abc==", "malformed" },
	{ "Bearer realm=\"https://x.io/t\";service=x", "malformed" },
};

static void test_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct good_case *c = &good[i];
		capsa_error err = { 0 };
		www_auth_challenge ch;

		if (www_auth_parse(c->header, &ch, &err) < 0)
			fail_msg("case %zu '%s' refused: %s", i, c->header, err.message);
		assert_int_equal(ch.scheme, c->scheme);
#define CHECK(field)                                                                                         \
	do {                                                                                                 \
		if (c->field)                                                                                \
			assert_string_equal(ch.field, c->field);                                             \
		else                                                                                         \
			assert_null(ch.field);                                                               \
	} while (0)
		CHECK(realm);
		CHECK(service);
		CHECK(scope);
#undef CHECK
		www_auth_clear(&ch);
		assert_null(ch.realm);
	}
}

static void test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct bad_case *c = &bad[i];
		capsa_error err = { 0 };
		www_auth_challenge ch;

		if (www_auth_parse(c->header, &ch, &err) == 0)
			fail_msg("case %zu '%s' accepted (realm %s)", i, c->header, ch.realm ? ch.realm : "-");
		assert_int_equal(err.code, EPROTO);
		if (!strstr(err.message, c->message_part))
			fail_msg("case %zu: message '%s' lacks '%s'", i, err.message, c->message_part);
		assert_null(strchr(err.message, '\n'));
		assert_null(strchr(err.message, '\001'));
		assert_null(ch.realm);
		assert_null(ch.service);
		assert_null(ch.scope);
	}
}

static void test_limits(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	www_auth_challenge ch;

	assert_int_equal(www_auth_parse(NULL, &ch, &err), -1);
	assert_int_equal(err.code, EPROTO);

	/* A long scope is fine up to the cap. */
	static const char head[] = "Bearer realm=\"https://x.io/t\",scope=\"";
	size_t len = 8192;
	char *header = malloc(len + 2);
	assert_non_null(header);
	memset(header, 'a', len + 1);
	memcpy(header, head, strlen(head));
	header[len - 1] = '"';
	header[len] = '\0';
	assert_int_equal(www_auth_parse(header, &ch, &err), 0);
	assert_int_equal(strlen(ch.scope), len - strlen(head) - 1);
	www_auth_clear(&ch);
	header[len - 1] = 'a';
	header[len] = '"';
	header[len + 1] = '\0';
	assert_int_equal(www_auth_parse(header, &ch, &err), -1);
	assert_non_null(strstr(err.message, "too long"));
	free(header);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
