/* config_copy: every setting survives, nothing is shared with the
 * original (each is freed on its own, under ASan). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/config.h"

#define OK(call) assert_int_equal((call), 0)

static void assert_copied_string(const char *copy, const char *expected)
{
	assert_non_null(copy);
	assert_string_equal(copy, expected);
}

static void assert_copied_strv(const struct strv *v, const char *const *expected)
{
	size_t n = 0;
	while (expected[n])
		n++;
	assert_int_equal(v->count, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(v->items[i], expected[i]);
	assert_null(v->items[n]);
}

static capsa_vm_config *full_config(void)
{
	capsa_error err = { 0 };
	capsa_vm_config *cfg = capsa_vm_config_new(&err);
	assert_non_null(cfg);
	OK(capsa_vm_config_set_kernel(cfg, "/k/vmlinux", &err));
	OK(capsa_vm_config_set_init(cfg, "/k/init", &err));
	OK(capsa_vm_config_set_rootfs_dir(cfg, "/rootfs", &err));
	OK(capsa_vm_config_set_image(cfg, "busybox:1", &err));
	OK(capsa_vm_config_set_store_dir(cfg, "/store", &err));
	OK(capsa_vm_config_set_cache_dir(cfg, "/cache", &err));
	OK(capsa_vm_config_set_command(cfg, (const char *const[]){ "sleep", "infinity", NULL }, &err));
	OK(capsa_vm_config_set_entrypoint(cfg, (const char *const[]){ "/bin/sh", "-c", NULL }, &err));
	OK(capsa_vm_config_set_user(cfg, "1000:1000", &err));
	OK(capsa_vm_config_set_control_socket(cfg, "/run/c.sock", &err));
	OK(capsa_vm_config_set_interactive(cfg, true, 24, 80, &err));
	OK(capsa_vm_config_set_start_timeout_ms(cfg, 4321, &err));
	OK(capsa_vm_config_add_env(cfg, "A=1", &err));
	OK(capsa_vm_config_add_env(cfg, "B=two", &err));
	OK(capsa_vm_config_set_workdir(cfg, "/work", &err));
	OK(capsa_vm_config_set_hostname(cfg, "box", &err));
	OK(capsa_vm_config_set_memory_mib(cfg, 256, &err));
	OK(capsa_vm_config_set_cpus(cfg, 2, &err));
	OK(capsa_vm_config_add_disk(cfg, "/d1.img", true, &err));
	OK(capsa_vm_config_add_disk(cfg, "/d2.img", false, &err));
	OK(capsa_vm_config_add_volume(cfg, "/host/a", "/mnt/a", true, &err));
	OK(capsa_vm_config_add_named_disk(cfg, "data", "/data", 64ull << 20, &err));
	OK(capsa_vm_config_set_output(cfg, 5, 6, 7, &err));
	OK(capsa_vm_config_set_snapshot(cfg, "warm", &err));
	OK(capsa_vm_config_set_auto_snapshot(cfg, true, &err));
	OK(capsa_vm_config_add_port(cfg, "127.0.0.1:8080:80/tcp", &err));
	OK(capsa_vm_config_add_port(cfg, "5353:53/udp", &err));
	OK(capsa_vm_config_set_egress(cfg, "deny_private", &err));
	OK(capsa_vm_config_set_network(cfg, "tap:tap7", &err));
	return cfg;
}

static void test_every_field_survives(void **state)
{
	(void)state;
	capsa_vm_config *cfg = full_config();
	capsa_error err = { 0 };
	capsa_vm_config *c = config_copy(cfg, &err);
	assert_non_null(c);

	/* Nothing may point into the original once it is gone. */
	capsa_vm_config_free(cfg);

	assert_copied_string(c->kernel_path, "/k/vmlinux");
	assert_copied_string(c->init_path, "/k/init");
	assert_copied_string(c->rootfs_dir, "/rootfs");
	assert_copied_string(c->image, "busybox:1");
	assert_copied_string(c->store_dir, "/store");
	assert_copied_string(c->cache_dir, "/cache");
	assert_copied_strv(&c->argv, (const char *const[]){ "sleep", "infinity", NULL });
	assert_copied_strv(&c->entrypoint, (const char *const[]){ "/bin/sh", "-c", NULL });
	assert_true(c->entrypoint_set);
	assert_copied_string(c->user, "1000:1000");
	assert_copied_string(c->control_socket, "/run/c.sock");
	assert_true(c->interactive);
	assert_true(c->interactive_tty);
	assert_int_equal(c->tty_rows, 24);
	assert_int_equal(c->tty_cols, 80);
	assert_int_equal(c->start_timeout_ms, 4321);
	assert_copied_strv(&c->env, (const char *const[]){ "A=1", "B=two", NULL });
	assert_copied_string(c->workdir, "/work");
	assert_copied_string(c->hostname, "box");
	assert_int_equal(c->memory_mib, 256);
	assert_int_equal(c->cpus, 2);
	assert_int_equal(c->disk_count, 2);
	assert_copied_string(c->disks[0].path, "/d1.img");
	assert_true(c->disks[0].read_only);
	assert_copied_string(c->disks[1].path, "/d2.img");
	assert_false(c->disks[1].read_only);
	assert_int_equal(c->volume_count, 1);
	assert_copied_string(c->volumes[0].host_dir, "/host/a");
	assert_copied_string(c->volumes[0].guest_path, "/mnt/a");
	assert_true(c->volumes[0].read_only);
	assert_int_equal(c->named_disk_count, 1);
	assert_copied_string(c->named_disks[0].name, "data");
	assert_copied_string(c->named_disks[0].guest_path, "/data");
	assert_int_equal(c->named_disks[0].size, 64ull << 20);
	assert_int_equal(c->stdout_fd, 5);
	assert_int_equal(c->stderr_fd, 6);
	assert_int_equal(c->console_fd, 7);
	assert_copied_string(c->snapshot_name, "warm");
	assert_true(c->auto_snapshot);
	assert_int_equal(c->net.mode, NET_MODE_TAP);
	assert_string_equal(c->net.tap_name, "tap7");
	assert_int_equal(c->net.port_count, 2);
	assert_int_equal(c->net.ports[0].host_port, 8080);
	assert_int_equal(c->net.ports[0].guest_port, 80);
	assert_false(c->net.ports[0].udp);
	assert_int_equal(c->net.ports[1].host_port, 5353);
	assert_true(c->net.ports[1].udp);
	assert_copied_string(c->net.egress, "deny_private");

	/* A copy of the copy, freed in the other order. */
	capsa_vm_config *c2 = config_copy(c, &err);
	assert_non_null(c2);
	assert_ptr_not_equal(c2->kernel_path, c->kernel_path);
	assert_ptr_not_equal(c2->argv.items, c->argv.items);
	assert_ptr_not_equal(c2->net.egress, c->net.egress);
	capsa_vm_config_free(c2);
	assert_string_equal(c->net.egress, "deny_private");
	capsa_vm_config_free(c);
}

static void test_defaults_survive(void **state)
{
	(void)state;
	capsa_vm_config *cfg = capsa_vm_config_new(NULL);
	assert_non_null(cfg);
	capsa_vm_config *c = config_copy(cfg, NULL);
	assert_non_null(c);
	assert_null(c->kernel_path);
	assert_null(c->image);
	assert_null(c->argv.items);
	assert_null(c->net.egress);
	assert_false(c->entrypoint_set);
	assert_int_equal(c->memory_mib, cfg->memory_mib);
	assert_int_equal(c->stdout_fd, 1);
	assert_int_equal(c->console_fd, -1);
	assert_int_equal(c->start_timeout_ms, cfg->start_timeout_ms);
	assert_int_equal(c->net.mode, NET_MODE_NAT);
	capsa_vm_config_free(cfg);
	capsa_vm_config_free(c);
}

static void test_empty_entrypoint(void **state)
{
	(void)state;
	capsa_vm_config *cfg = capsa_vm_config_new(NULL);
	assert_non_null(cfg);
	OK(capsa_vm_config_set_entrypoint(cfg, (const char *const[]){ NULL }, NULL));
	capsa_vm_config *c = config_copy(cfg, NULL);
	assert_non_null(c);
	assert_true(c->entrypoint_set);
	assert_int_equal(c->entrypoint.count, 0);
	capsa_vm_config_free(cfg);
	capsa_vm_config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_field_survives),
		cmocka_unit_test(test_defaults_survive),
		cmocka_unit_test(test_empty_entrypoint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
