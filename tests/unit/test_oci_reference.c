/* Image reference parsing: a table of references docker accepts (with
 * the canonical parts it normalizes them to) and ones it refuses (with
 * the part the message must name), plus formatting and the API host. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oci/reference.h"

#define HEX "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST "sha256:" HEX

struct valid_case {
	const char *text;
	const char *registry, *repository, *tag, *digest;
};

static const struct valid_case valid[] = {
	{ "busybox", "docker.io", "library/busybox", "latest", NULL },
	{ "nginx:1.27", "docker.io", "library/nginx", "1.27", NULL },
	{ "library/nginx", "docker.io", "library/nginx", "latest", NULL },
	{ "docker.io/busybox", "docker.io", "library/busybox", "latest", NULL },
	{ "docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", NULL },
	{ "index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", NULL },
	{ "registry-1.docker.io/busybox:musl", "docker.io", "library/busybox", "musl", NULL },
	{ "bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", NULL },
	{ "ghcr.io/org/app@" DIGEST, "ghcr.io", "org/app", NULL, DIGEST },
	{ "localhost:5000/x/y:tag", "localhost:5000", "x/y", "tag", NULL },
	{ "localhost/app", "localhost", "app", "latest", NULL },
	{ "registry.example.com:8443/team/project/app:v1.2.3-rc_1", "registry.example.com:8443",
	  "team/project/app", "v1.2.3-rc_1", NULL },
	{ "127.0.0.1:5000/test:latest", "127.0.0.1:5000", "test", "latest", NULL },
	{ "quay.io/a.b_c__d-e--f/app", "quay.io", "a.b_c__d-e--f/app", "latest", NULL },
	{ "docker.io/library/alpine:3.19@" DIGEST, "docker.io", "library/alpine", "3.19", DIGEST },
	{ "alpine@" DIGEST, "docker.io", "library/alpine", NULL, DIGEST },
	{ "localhost:5000/app:1@" DIGEST, "localhost:5000", "app", "1", DIGEST },
	{ "[::1]:5000/img", "[::1]:5000", "img", "latest", NULL },
	{ "localhost:5000", "docker.io", "library/localhost", "5000", NULL },
	{ "app:V1_X", "docker.io", "library/app", "V1_X", NULL },
	{ "Registry.Example.com/app", "Registry.Example.com", "app", "latest", NULL },
	{ "my-registry.local:1/a0/b-1", "my-registry.local:1", "a0/b-1", "latest", NULL },
	{ "busybox:_underscore.first", "docker.io", "library/busybox", "_underscore.first", NULL },
};

struct invalid_case {
	const char *text;
	const char *message_part;
};

static const struct invalid_case invalid[] = {
	{ "", "empty image reference" },
	{ "Busybox", "repository 'Busybox' must be lowercase" },
	{ "ghcr.io/Org/app", "repository 'Org/app' must be lowercase" },
	{ "ghcr.io//app", "empty path component" },
	{ "ghcr.io/app/", "empty path component" },
	{ "busybox:", "bad tag ''" },
	{ "busybox:-x", "bad tag '-x'" },
	{ "busybox:.x", "bad tag '.x'" },
	{ "busybox:tag:tag2", "bad tag 'tag:tag2'" },
	{ "busybox:a/b", "bad registry 'busybox:a'" },
	{ "busybox@sha256:abc", "bad digest" },
	{ "busybox@md5:" HEX, "bad digest" },
	{ "busybox@", "bad digest" },
	{ "ghcr.io/app:tag@", "bad digest" },
	{ "busybox@" DIGEST "x", "bad digest" },
	{ "localhost:99999/app", "bad registry 'localhost:99999'" },
	{ "localhost:/app", "bad registry 'localhost:'" },
	{ "my_registry.com:5000/app", "bad registry 'my_registry.com:5000'" },
	{ "a..b/app", "bad registry 'a..b'" },
	{ "-host.com/app", "bad registry '-host.com'" },
	{ "app__", "does not start and end" },
	{ "a___b", "may only contain" },
	{ "a.-b", "may only contain" },
	{ "a b", "may only contain" },
	{ "busybox:" "0123456789012345678901234567890123456789012345678901234567890123"
	  "45678901234567890123456789012345678901234567890123456789012345678", "bad tag" },
	{ HEX, "looks like an image ID" },
	{ "@" DIGEST, "repository name is empty" },
	{ ":tag", "repository name is empty" },
	{ "host.com:5000/", "empty path component" },
	{ "ghcr.io/org/app\n", "does not start and end" },
	{ "ghcr.io/org/a\tb", "may only contain" },
};

static void test_valid_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const struct valid_case *c = &valid[i];
		capsa_error err = { 0 };
		oci_reference ref;

		if (oci_reference_parse(c->text, &ref, &err) < 0)
			fail_msg("'%s' refused: %s", c->text, err.message);
		assert_string_equal(ref.registry, c->registry);
		assert_string_equal(ref.repository, c->repository);
		if (c->tag)
			assert_string_equal(ref.tag, c->tag);
		else
			assert_null(ref.tag);
		if (c->digest)
			assert_string_equal(ref.digest, c->digest);
		else
			assert_null(ref.digest);
		oci_reference_clear(&ref);
		assert_null(ref.registry);
	}
}

static void test_invalid_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		const struct invalid_case *c = &invalid[i];
		capsa_error err = { 0 };
		oci_reference ref;

		if (oci_reference_parse(c->text, &ref, &err) == 0)
			fail_msg("'%s' accepted as %s/%s", c->text, ref.registry, ref.repository);
		assert_int_equal(err.code, EINVAL);
		if (!strstr(err.message, c->message_part))
			fail_msg("'%s': message '%s' lacks '%s'", c->text, err.message, c->message_part);
		assert_null(strchr(err.message, '\n'));
		assert_null(ref.registry);
		assert_null(ref.repository);
		assert_null(ref.tag);
		assert_null(ref.digest);
	}
}

static void test_too_long(void **state)
{
	(void)state;
	size_t len = OCI_REFERENCE_MAX + 1;
	char *text = malloc(len + 1);
	capsa_error err = { 0 };
	oci_reference ref;

	assert_non_null(text);
	memset(text, 'a', len);
	text[len] = '\0';
	assert_int_equal(oci_reference_parse(text, &ref, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_non_null(strstr(err.message, "longer than"));
	/* Just under the cap is fine. */
	text[OCI_REFERENCE_MAX] = '\0';
	assert_int_equal(oci_reference_parse(text, &ref, &err), 0);
	oci_reference_clear(&ref);
	free(text);
	assert_int_equal(oci_reference_parse(NULL, &ref, NULL), -1);
}

static void check_format(const char *text, const char *full, const char *name, const char *api_host)
{
	oci_reference ref;
	capsa_error err = { 0 };

	assert_int_equal(oci_reference_parse(text, &ref, &err), 0);
	char *f = oci_reference_format(&ref, &err);
	char *n = oci_reference_name(&ref, &err);
	assert_string_equal(f, full);
	assert_string_equal(n, name);
	assert_string_equal(oci_reference_api_host(&ref), api_host);
	/* The canonical form parses back to itself. */
	oci_reference again;
	assert_int_equal(oci_reference_parse(f, &again, &err), 0);
	char *f2 = oci_reference_format(&again, &err);
	assert_string_equal(f2, full);
	free(f2);
	oci_reference_clear(&again);
	free(f);
	free(n);
	oci_reference_clear(&ref);
}

static void test_format(void **state)
{
	(void)state;
	check_format("busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox",
		     "registry-1.docker.io");
	check_format("index.docker.io/org/x:1", "docker.io/org/x:1", "docker.io/org/x", "registry-1.docker.io");
	check_format("ghcr.io/org/app@" DIGEST, "ghcr.io/org/app@" DIGEST, "ghcr.io/org/app", "ghcr.io");
	check_format("localhost:5000/x/y:tag@" DIGEST, "localhost:5000/x/y:tag@" DIGEST, "localhost:5000/x/y",
		     "localhost:5000");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_table),
		cmocka_unit_test(test_invalid_table),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
