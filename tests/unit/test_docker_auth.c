/* Credentials from docker's config.json: the key spellings docker has
 * used, Docker Hub's legacy key, broken entries and missing files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/docker_auth.h"

static char dir[] = "/tmp/test_docker_auth.XXXXXX";
static char path[sizeof(dir) + 32];

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/config.json", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static void write_config(const char *json)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(json, f);
	fclose(f);
}

/* "alice:s3cret:with:colons" */
#define ALICE "YWxpY2U6czNjcmV0OndpdGg6Y29sb25z"
/* "bob:pw" */
#define BOB "Ym9iOnB3"

static void expect_user(const char *registry, const char *user, const char *password)
{
	docker_credentials c;
	capsa_error err = { 0 };

	assert_int_equal(docker_auth_lookup(path, registry, &c, &err), 0);
	if (!user) {
		assert_false(docker_credentials_present(&c));
	} else {
		assert_non_null(c.username);
		assert_string_equal(c.username, user);
		assert_string_equal(c.password, password);
	}
	docker_credentials_clear(&c);
}

static void test_key_spellings(void **state)
{
	(void)state;
	write_config("{\"auths\": {"
		     "\"registry.example.com\": {\"auth\": \"" ALICE "\"},"
		     "\"https://ghcr.example.org\": {\"auth\": \"" BOB "\"},"
		     "\"http://local.test:5000/v1/\": {\"auth\": \"" BOB "\"},"
		     "\"https://index.docker.io/v1/\": {\"auth\": \"" ALICE "\"}"
		     "}, \"credsStore\": \"desktop\"}");
	expect_user("registry.example.com", "alice", "s3cret:with:colons");
	expect_user("REGISTRY.example.com", "alice", "s3cret:with:colons");
	expect_user("ghcr.example.org", "bob", "pw");
	expect_user("local.test:5000", "bob", "pw");
	expect_user("docker.io", "alice", "s3cret:with:colons");
	/* Another port is another registry. */
	expect_user("local.test", NULL, NULL);
	expect_user("example.com", NULL, NULL);
	expect_user("registry.example.com:443", NULL, NULL);
}

static void test_exact_key_wins(void **state)
{
	(void)state;
	write_config("{\"auths\": {\"https://r.test\": {\"auth\": \"" ALICE "\"},"
		     "\"r.test\": {\"auth\": \"" BOB "\"}}}");
	expect_user("r.test", "bob", "pw");
}

static void test_docker_hub_aliases(void **state)
{
	(void)state;
	write_config("{\"auths\": {\"docker.io\": {\"auth\": \"" BOB "\"}}}");
	expect_user("docker.io", "bob", "pw");
	write_config("{\"auths\": {\"registry-1.docker.io\": {\"auth\": \"" BOB "\"}}}");
	expect_user("docker.io", "bob", "pw");
	expect_user("index.docker.io", "bob", "pw");
}

static void test_identity_token(void **state)
{
	(void)state;
	docker_credentials c;
	capsa_error err = { 0 };

	write_config("{\"auths\": {\"r.test\": {\"auth\": \"PHRva2VuPjo=\", \"identitytoken\": \"refresh-me\"}}}");
	assert_int_equal(docker_auth_lookup(path, "r.test", &c, &err), 0);
	assert_true(docker_credentials_present(&c));
	assert_string_equal(c.identity_token, "refresh-me");
	assert_string_equal(c.username, "<token>");
	assert_string_equal(c.password, "");
	docker_credentials_clear(&c);
}

static void test_separate_fields_and_empty_entry(void **state)
{
	(void)state;
	write_config("{\"auths\": {\"a.test\": {\"username\": \"u\", \"password\": \"p\"}, \"b.test\": {}}}");
	expect_user("a.test", "u", "p");
	expect_user("b.test", NULL, NULL);
}

static void test_bad_base64(void **state)
{
	(void)state;
	docker_credentials c;
	capsa_error err = { 0 };
	static const char *const bad[] = {
		"not base64!", "Ym9iOnB3X", "Ym9i", /* "bob": no colon */ "Ym9i=OnB3", "Y===",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char json[256];
		snprintf(json, sizeof(json),
			 "{\"auths\": {\"bad.test\": {\"auth\": \"%s\"}, \"ok.test\": {\"auth\": \"" BOB "\"}}}",
			 bad[i]);
		write_config(json);
		memset(&err, 0, sizeof(err));
		assert_int_equal(docker_auth_lookup(path, "bad.test", &c, &err), -1);
		assert_int_equal(err.code, EINVAL);
		assert_non_null(strstr(err.message, "bad.test"));
		assert_non_null(strstr(err.message, "docker login"));
		assert_false(docker_credentials_present(&c));
		/* A broken entry for another registry does not matter. */
		expect_user("ok.test", "bob", "pw");
	}
	/* Unpadded base64 is accepted. */
	write_config("{\"auths\": {\"r.test\": {\"auth\": \"YTpi\"}, \"s.test\": {\"auth\": \"YTpiYw\"}}}");
	expect_user("r.test", "a", "b");
	expect_user("s.test", "a", "bc");
}

static void test_missing_and_malformed_files(void **state)
{
	(void)state;
	docker_credentials c;
	capsa_error err = { 0 };

	unlink(path);
	assert_int_equal(docker_auth_lookup(path, "r.test", &c, &err), 0);
	assert_false(docker_credentials_present(&c));
	assert_int_equal(docker_auth_lookup("/nonexistent/dir/config.json", "r.test", &c, &err), 0);

	write_config("{\"credHelpers\": {\"r.test\": \"ecr-login\"}}");
	expect_user("r.test", NULL, NULL);

	write_config("{\"auths\": ");
	assert_int_equal(docker_auth_lookup(path, "r.test", &c, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_non_null(strstr(err.message, path));

	write_config("{\"auths\": [1]}");
	assert_int_equal(docker_auth_lookup(path, "r.test", &c, &err), -1);
	write_config("{\"auths\": {\"r.test\": {\"auth\": 7}}}");
	assert_int_equal(docker_auth_lookup(path, "r.test", &c, &err), -1);
}

static void test_default_path(void **state)
{
	(void)state;
	char *old_config = getenv("DOCKER_CONFIG") ? strdup(getenv("DOCKER_CONFIG")) : NULL;
	char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	docker_credentials c;
	capsa_error err = { 0 };

	setenv("DOCKER_CONFIG", dir, 1);
	char *p = docker_auth_default_path(&err);
	assert_string_equal(p, path);
	free(p);
	write_config("{\"auths\": {\"r.test\": {\"auth\": \"" BOB "\"}}}");
	assert_int_equal(docker_auth_lookup(NULL, "r.test", &c, &err), 0);
	assert_string_equal(c.username, "bob");
	docker_credentials_clear(&c);

	unsetenv("DOCKER_CONFIG");
	setenv("HOME", "/home/someone", 1);
	p = docker_auth_default_path(&err);
	assert_string_equal(p, "/home/someone/.docker/config.json");
	free(p);

	if (old_config)
		setenv("DOCKER_CONFIG", old_config, 1);
	if (old_home)
		setenv("HOME", old_home, 1);
	else
		unsetenv("HOME");
	free(old_config);
	free(old_home);
}

static void test_basic_header(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	docker_credentials c = { .username = "user", .password = "pass" };
	char *h = docker_credentials_basic_header(&c, &err);

	assert_string_equal(h, "Basic dXNlcjpwYXNz");
	free(h);
	c.password = "passw";
	h = docker_credentials_basic_header(&c, &err);
	assert_string_equal(h, "Basic dXNlcjpwYXNzdw==");
	free(h);
	c.password = "pas";
	h = docker_credentials_basic_header(&c, &err);
	assert_string_equal(h, "Basic dXNlcjpwYXM=");
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_spellings),
		cmocka_unit_test(test_exact_key_wins),
		cmocka_unit_test(test_docker_hub_aliases),
		cmocka_unit_test(test_identity_token),
		cmocka_unit_test(test_separate_fields_and_empty_entry),
		cmocka_unit_test(test_bad_base64),
		cmocka_unit_test(test_missing_and_malformed_files),
		cmocka_unit_test(test_default_path),
		cmocka_unit_test(test_basic_header),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
