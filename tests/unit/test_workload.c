/* How an image's config and the caller's settings combine into the
 * workload, following docker run. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/config.h"
#include "api/workload.h"

static void assert_strv(const struct strv *v, const char *const *expected)
{
	size_t n = 0;
	while (expected[n])
		n++;
	assert_int_equal(v->count, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(v->items[i], expected[i]);
}

static char *ep_sh_c[] = { "/bin/sh", "-c", NULL };
static char *cmd_echo[] = { "echo $GREETING", NULL };
static char *image_env[] = { "PATH=/usr/bin:/bin", "GREETING=hello", "NOEQUALS", NULL };

static oci_image_config user_image(void)
{
	return (oci_image_config){
		.entrypoint = ep_sh_c,
		.cmd = cmd_echo,
		.env = image_env,
		.working_dir = "/home/app/work",
		.user = "app",
	};
}

static capsa_vm_config *new_config(void)
{
	capsa_vm_config *cfg = capsa_vm_config_new(NULL);
	assert_non_null(cfg);
	return cfg;
}

static void test_image_defaults(void **state)
{
	(void)state;
	oci_image_config img = user_image();
	capsa_vm_config *cfg = new_config();
	struct workload w;

	assert_int_equal(workload_resolve(cfg, &img, &w, NULL), 0);
	assert_strv(&w.argv, (const char *const[]){ "/bin/sh", "-c", "echo $GREETING", NULL });
	assert_strv(&w.env, (const char *const[]){ "PATH=/usr/bin:/bin", "GREETING=hello", NULL });
	assert_string_equal(w.workdir, "/home/app/work");
	assert_string_equal(w.user, "app");
	workload_clear(&w);
	capsa_vm_config_free(cfg);
}

static void test_command_replaces_cmd_only(void **state)
{
	(void)state;
	oci_image_config img = user_image();
	capsa_vm_config *cfg = new_config();
	struct workload w;

	assert_int_equal(capsa_vm_config_set_command(cfg, (const char *const[]){ "id -u", NULL }, NULL), 0);
	assert_int_equal(workload_resolve(cfg, &img, &w, NULL), 0);
	assert_strv(&w.argv, (const char *const[]){ "/bin/sh", "-c", "id -u", NULL });
	workload_clear(&w);
	capsa_vm_config_free(cfg);
}

static void test_entrypoint_drops_cmd(void **state)
{
	(void)state;
	oci_image_config img = user_image();
	capsa_vm_config *cfg = new_config();
	struct workload w;

	assert_int_equal(capsa_vm_config_set_entrypoint(cfg, (const char *const[]){ "/bin/env", NULL }, NULL), 0);
	assert_int_equal(workload_resolve(cfg, &img, &w, NULL), 0);
	assert_strv(&w.argv, (const char *const[]){ "/bin/env", NULL });
	workload_clear(&w);

	/* Entrypoint cleared and a command given: just the command. */
	assert_int_equal(capsa_vm_config_set_entrypoint(cfg, (const char *const[]){ NULL }, NULL), 0);
	assert_int_equal(capsa_vm_config_set_command(cfg, (const char *const[]){ "ls", "/", NULL }, NULL), 0);
	assert_int_equal(workload_resolve(cfg, &img, &w, NULL), 0);
	assert_strv(&w.argv, (const char *const[]){ "ls", "/", NULL });
	workload_clear(&w);
	capsa_vm_config_free(cfg);
}

static void test_overrides(void **state)
{
	(void)state;
	oci_image_config img = user_image();
	capsa_vm_config *cfg = new_config();
	struct workload w;

	assert_int_equal(capsa_vm_config_add_env(cfg, "GREETING=bye", NULL), 0);
	assert_int_equal(capsa_vm_config_add_env(cfg, "EXTRA=1", NULL), 0);
	assert_int_equal(capsa_vm_config_set_workdir(cfg, "/tmp", NULL), 0);
	assert_int_equal(capsa_vm_config_set_user(cfg, "0:0", NULL), 0);
	assert_int_equal(workload_resolve(cfg, &img, &w, NULL), 0);
	assert_strv(&w.env, (const char *const[]){ "PATH=/usr/bin:/bin", "GREETING=bye", "EXTRA=1", NULL });
	assert_string_equal(w.workdir, "/tmp");
	assert_string_equal(w.user, "0:0");
	workload_clear(&w);
	capsa_vm_config_free(cfg);
}

static void test_relative_workdir_and_no_command(void **state)
{
	(void)state;
	oci_image_config img = { .working_dir = "srv" };
	capsa_vm_config *cfg = new_config();
	capsa_error err = { 0 };
	struct workload w;

	/* Neither Entrypoint nor Cmd nor a command: nothing to run. */
	assert_int_equal(workload_resolve(cfg, &img, &w, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_non_null(strstr(err.message, "give a command"));

	assert_int_equal(capsa_vm_config_set_command(cfg, (const char *const[]){ "true", NULL }, NULL), 0);
	assert_int_equal(workload_resolve(cfg, &img, &w, NULL), 0);
	assert_string_equal(w.workdir, "/srv");
	assert_null(w.user);
	workload_clear(&w);
	capsa_vm_config_free(cfg);
}

static void test_rootfs_run_without_image(void **state)
{
	(void)state;
	capsa_vm_config *cfg = new_config();
	struct workload w;

	assert_int_equal(capsa_vm_config_set_command(cfg, (const char *const[]){ "/bin/true", NULL }, NULL), 0);
	assert_int_equal(workload_resolve(cfg, NULL, &w, NULL), 0);
	assert_strv(&w.argv, (const char *const[]){ "/bin/true", NULL });
	assert_int_equal(w.env.count, 0);
	assert_null(w.workdir);
	workload_clear(&w);
	capsa_vm_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_image_defaults),
		cmocka_unit_test(test_command_replaces_cmd_only),
		cmocka_unit_test(test_entrypoint_drops_cmd),
		cmocka_unit_test(test_overrides),
		cmocka_unit_test(test_relative_workdir_and_no_command),
		cmocka_unit_test(test_rootfs_run_without_image),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
