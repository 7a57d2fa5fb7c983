/* Image configs as docker and buildkit write them (busybox, an nginx-like
 * image, an image without a "config" object) and malformed ones. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oci/image_config.h"
#include "oci/manifest.h"

#define R8(s) s s s s s s s s
#define DIG(ch) "sha256:" R8(R8(ch))

static const char busybox[] =
	"{\"architecture\":\"amd64\",\"config\":{\"Hostname\":\"\",\"Domainname\":\"\",\"User\":\"\","
	"\"AttachStdin\":false,\"AttachStdout\":false,\"AttachStderr\":false,\"Tty\":false,\"OpenStdin\":false,"
	"\"StdinOnce\":false,\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],"
	"\"Cmd\":[\"sh\"],\"Image\":\"" DIG("9") "\",\"Volumes\":null,\"WorkingDir\":\"\",\"Entrypoint\":null,"
	"\"OnBuild\":null,\"Labels\":null},\"container\":\"abc\",\"container_config\":{\"Cmd\":[\"/bin/sh\",\"-c\","
	"\"#(nop) CMD [\\\"sh\\\"]\"],\"Entrypoint\":\"not-an-array-but-ignored\"},\"created\":\"2023-05-19T20:19:22Z\","
	"\"docker_version\":\"20.10.23\",\"history\":[{\"created\":\"2023-05-19T20:19:22Z\","
	"\"created_by\":\"/bin/sh -c #(nop) ADD file:abc in / \"}],\"os\":\"linux\","
	"\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DIG("1") "\"]}}";

static const char nginx_like[] =
	"{\n"
	"  \"architecture\": \"amd64\",\n"
	"  \"os\": \"linux\",\n"
	"  \"config\": {\n"
	"    \"ExposedPorts\": {\"80/tcp\": {}, \"443/tcp\": {}},\n"
	"    \"Env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\n"
	"            \"NGINX_VERSION=1.27.0\", \"MSG=caf\\u00e9 \\\"quoted\\\"\"],\n"
	"    \"Entrypoint\": [\"/docker-entrypoint.sh\"],\n"
	"    \"Cmd\": [\"nginx\", \"-g\", \"daemon off;\"],\n"
	"    \"WorkingDir\": \"/usr/share/nginx\",\n"
	"    \"User\": \"101:101\",\n"
	"    \"Labels\": {\"maintainer\": \"NGINX Docker Maintainers\"},\n"
	"    \"StopSignal\": \"SIGQUIT\"\n"
	"  },\n"
	"  \"rootfs\": {\"type\": \"layers\", \"diff_ids\": [\"" DIG("1") "\", \"" DIG("2") "\", \"" DIG("3") "\"]},\n"
	"  \"history\": []\n"
	"}\n";

static size_t strv_len(char **v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

static void test_busybox(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	oci_image_config c;

	if (oci_image_config_parse(busybox, strlen(busybox), &c, &err) < 0)
		fail_msg("%s", err.message);
	assert_string_equal(c.os, "linux");
	assert_string_equal(c.architecture, "amd64");
	assert_null(c.entrypoint);
	assert_int_equal(strv_len(c.cmd), 1);
	assert_string_equal(c.cmd[0], "sh");
	assert_int_equal(strv_len(c.env), 1);
	assert_string_equal(c.env[0], "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	assert_string_equal(c.working_dir, "");
	assert_string_equal(c.user, "");
	assert_null(c.exposed_ports);
	assert_int_equal(strv_len(c.diff_ids), 1);
	assert_string_equal(c.diff_ids[0], DIG("1"));
	oci_image_config_clear(&c);
	assert_null(c.cmd);
}

static void test_nginx_like(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	oci_image_config c;

	if (oci_image_config_parse(nginx_like, strlen(nginx_like), &c, &err) < 0)
		fail_msg("%s", err.message);
	assert_int_equal(strv_len(c.entrypoint), 1);
	assert_string_equal(c.entrypoint[0], "/docker-entrypoint.sh");
	assert_int_equal(strv_len(c.cmd), 3);
	assert_string_equal(c.cmd[2], "daemon off;");
	assert_int_equal(strv_len(c.env), 3);
	assert_string_equal(c.env[1], "NGINX_VERSION=1.27.0");
	assert_string_equal(c.env[2], "MSG=caf\xc3\xa9 \"quoted\"");
	assert_string_equal(c.working_dir, "/usr/share/nginx");
	assert_string_equal(c.user, "101:101");
	assert_int_equal(strv_len(c.exposed_ports), 2);
	bool has80 = false, has443 = false;
	for (size_t i = 0; c.exposed_ports[i]; i++) {
		has80 |= !strcmp(c.exposed_ports[i], "80/tcp");
		has443 |= !strcmp(c.exposed_ports[i], "443/tcp");
	}
	assert_true(has80 && has443);
	assert_int_equal(strv_len(c.diff_ids), 3);
	assert_string_equal(c.diff_ids[2], DIG("3"));
	oci_image_config_clear(&c);
}

static void test_unset_fields(void **state)
{
	(void)state;
	static const char *const docs[] = {
		"{}",
		"{\"architecture\":\"arm64\",\"os\":\"linux\",\"config\":null,\"rootfs\":null}",
		"{\"config\":{}}",
		"{\"config\":{\"Entrypoint\":null,\"Cmd\":null,\"Env\":null,\"WorkingDir\":null,\"User\":null,"
		"\"ExposedPorts\":null},\"rootfs\":{\"type\":\"layers\"}}",
	};
	capsa_error err = { 0 };
	oci_image_config c;

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		if (oci_image_config_parse(docs[i], strlen(docs[i]), &c, &err) < 0)
			fail_msg("case %zu: %s", i, err.message);
		assert_null(c.entrypoint);
		assert_null(c.cmd);
		assert_null(c.env);
		assert_null(c.working_dir);
		assert_null(c.user);
		assert_null(c.exposed_ports);
		assert_null(c.diff_ids);
		oci_image_config_clear(&c);
	}

	/* An empty array is set, and empty: `ENTRYPOINT []` clears the base image's. */
	static const char empty[] = "{\"config\":{\"Entrypoint\":[],\"Cmd\":[\"\"],\"ExposedPorts\":{}}}";
	assert_int_equal(oci_image_config_parse(empty, strlen(empty), &c, &err), 0);
	assert_non_null(c.entrypoint);
	assert_null(c.entrypoint[0]);
	assert_int_equal(strv_len(c.cmd), 1);
	assert_string_equal(c.cmd[0], "");
	assert_non_null(c.exposed_ports);
	assert_null(c.exposed_ports[0]);
	oci_image_config_clear(&c);
}

static const struct {
	const char *json;
	int code;
	const char *message_part;
} malformed[] = {
	{ "not json", EINVAL, "image config is not valid JSON" },
	{ "{\"config\":{\"Cmd\":[\"sh\"]", EINVAL, "not valid JSON" },
	{ "[\"sh\"]", EINVAL, "not a JSON object" },
	{ "{\"config\":[]}", EINVAL, "field \"config\" must be an object" },
	{ "{\"config\":{\"Cmd\":\"sh\"}}", EINVAL, "field \"Cmd\" must be an array of strings" },
	{ "{\"config\":{\"Entrypoint\":\"/bin/sh -c\"}}", EINVAL, "field \"Entrypoint\" must be an array of strings" },
	{ "{\"config\":{\"Cmd\":[\"sh\",1]}}", EINVAL, "entry 1 is not" },
	{ "{\"config\":{\"Cmd\":[null]}}", EINVAL, "entry 0 is not" },
	{ "{\"config\":{\"Env\":{\"A\":\"B\"}}}", EINVAL, "field \"Env\" must be an array of strings" },
	{ "{\"config\":{\"WorkingDir\":[\"/\"]}}", EINVAL, "field \"WorkingDir\" must be a string" },
	{ "{\"config\":{\"User\":0}}", EINVAL, "field \"User\" must be a string" },
	{ "{\"config\":{\"ExposedPorts\":[\"80/tcp\"]}}", EINVAL, "field \"ExposedPorts\" must be an object" },
	{ "{\"os\":1}", EINVAL, "field \"os\" must be a string" },
	{ "{\"architecture\":true}", EINVAL, "field \"architecture\" must be a string" },
	{ "{\"rootfs\":\"layers\"}", EINVAL, "field \"rootfs\" must be an object" },
	{ "{\"rootfs\":{\"diff_ids\":\"" DIG("1") "\"}}", EINVAL, "rootfs: field \"diff_ids\" must be an array" },
	{ "{\"rootfs\":{\"diff_ids\":[\"" DIG("1") "\",\"sha256:abc\"]}}", EINVAL,
	  "rootfs diff_ids[1]: 'sha256:abc' is not a digest" },
	{ "{\"config\":{\"Cmd\":[\"a\"],\"Cmd\":[\"b\"]}}", EINVAL, "duplicate" },
	{ "{\"config\":{\"Cmd\":[\"a\\u0000b\"]}}", EINVAL, "not valid JSON" },
	{ "{\"config\":{\"User\":\"\\ud800\"}}", EINVAL, "not valid JSON" },
};

static void test_malformed(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		capsa_error err = { 0 };
		oci_image_config c;

		if (oci_image_config_parse(malformed[i].json, strlen(malformed[i].json), &c, &err) == 0)
			fail_msg("case %zu accepted", i);
		assert_int_equal(err.code, malformed[i].code);
		if (!strstr(err.message, malformed[i].message_part))
			fail_msg("case %zu: message '%s' lacks '%s'", i, err.message, malformed[i].message_part);
		assert_null(strchr(err.message, '\n'));
		assert_null(c.os);
		assert_null(c.cmd);
		assert_null(c.diff_ids);
	}
}

static void test_limits(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	oci_image_config c;

	/* More diff_ids than a manifest may have layers. */
	size_t n = OCI_MAX_LAYERS + 1;
	static const char entry[] = "\"" DIG("1") "\"";
	char *json = malloc(64 + n * sizeof(entry));
	if (!json)
		abort();
	char *p = json + sprintf(json, "{\"rootfs\":{\"diff_ids\":[");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i ? "," : "", entry);
	strcpy(p, "]}}");
	assert_int_equal(oci_image_config_parse(json, strlen(json), &c, &err), -1);
	assert_non_null(strstr(err.message, "more than the 1024 allowed"));
	free(json);

	size_t big = OCI_MANIFEST_MAX_BYTES + 1;
	json = calloc(1, big);
	assert_non_null(json);
	memset(json, ' ', big);
	json[0] = '{';
	json[big - 1] = '}';
	assert_int_equal(oci_image_config_parse(json, big, &c, &err), -1);
	assert_int_equal(err.code, EFBIG);
	free(json);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_busybox),
		cmocka_unit_test(test_nginx_like),
		cmocka_unit_test(test_unset_fields),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
