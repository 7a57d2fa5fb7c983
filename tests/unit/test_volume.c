/* Named persistent disks without a VM: name checks, creation with mke2fs
 * (a real ext4 image, sparse), listing, the one-VM-at-a-time lock, and
 * removal. Each test gets a fresh data directory. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/config.h"
#include "api/volume.h"
#include "capsa.h"
#include "test_tmpdir.h"

static char root[64];

static int setup(void **state)
{
	(void)state;
	return tmpdir_create(root, sizeof(root), "volume");
}

static int teardown(void **state)
{
	(void)state;
	return remove_tree(root);
}

static void test_names(void **state)
{
	(void)state;
	static const char *const good[] = { "a", "data", "Data_1.v-2", "0x",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	static const char *const bad[] = { "", ".", "..", ".hidden", "-x", "_x", "a/b", "a b", "a:b", "ä",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	capsa_error err = { 0 };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(volume_name_check(good[i], &err), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(volume_name_check(bad[i], &err), -1);
		assert_int_equal(err.code, EINVAL);
	}
	assert_int_equal(volume_name_check(NULL, &err), -1);
}

static void test_create_list_remove(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	capsa_volume_info *list;
	size_t n;

	/* No volumes directory yet: an empty list, not an error. */
	assert_int_equal(capsa_volume_list(root, &list, &n, &err), 0);
	assert_int_equal(n, 0);
	capsa_volume_list_free(list, n);

	assert_int_equal(capsa_volume_create(root, "zeta", 64 << 20, &err), 0);
	assert_int_equal(capsa_volume_create(root, "alpha", 0, &err), 0);
	assert_int_equal(capsa_volume_create(root, "alpha", 0, &err), -1);
	assert_int_equal(err.code, EEXIST);
	assert_int_equal(capsa_volume_create(root, "tiny", 1 << 20, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_int_equal(capsa_volume_create(root, "../x", 0, &err), -1);
	assert_int_equal(err.code, EINVAL);

	/* A real ext4 file system, which e2fsck accepts. */
	char *path = pathf("%s/volumes/zeta.ext4", root);
	assert_int_equal(run("PATH=$PATH:/usr/sbin:/sbin e2fsck -fn %s >/dev/null 2>&1", path), 0);
	free(path);
	/* Strays in the directory are not volumes. */
	char *stray = pathf("%s/volumes/.half.ext4.abc", root);
	write_file(stray, "x", 1);
	free(stray);
	stray = pathf("%s/volumes/notes.txt", root);
	write_file(stray, "x", 1);
	free(stray);

	assert_int_equal(capsa_volume_list(root, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "alpha");
	assert_int_equal(list[0].size, VOLUME_DEFAULT_SIZE);
	assert_string_equal(list[1].name, "zeta");
	assert_int_equal(list[1].size, 64 << 20);
	/* Sparse: the 8 GiB default takes a few MiB. */
	assert_true(list[0].disk_usage < 64ULL << 20);
	assert_false(list[0].in_use);
	capsa_volume_list_free(list, n);

	assert_int_equal(capsa_volume_remove(root, "alpha", &err), 0);
	assert_int_equal(capsa_volume_remove(root, "alpha", &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_int_equal(capsa_volume_list(root, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, "zeta");
	capsa_volume_list_free(list, n);
}

static void test_one_user_at_a_time(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	char *path = NULL, *path2 = NULL;
	capsa_volume_info *list;
	size_t n;

	/* Created on first use, with the size asked for. */
	int fd = volume_attach(root, "data", 32 << 20, &path, &err);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 32 << 20);

	assert_int_equal(volume_attach(root, "data", 0, &path2, &err), -1);
	assert_int_equal(err.code, EBUSY);
	assert_non_null(strstr(err.message, "in use"));
	assert_null(strchr(err.message, '\n'));
	assert_int_equal(capsa_volume_remove(root, "data", &err), -1);
	assert_int_equal(err.code, EBUSY);
	assert_int_equal(capsa_volume_list(root, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_true(list[0].in_use);
	capsa_volume_list_free(list, n);

	/* Listing took no lock: the owner's lock is still the only one. */
	close(fd);
	free(path);
	path = NULL;
	fd = volume_attach(root, "data", 0, &path, &err);
	assert_true(fd >= 0);
	close(fd);

	/* An existing volume keeps its size. */
	fd = volume_attach(root, "data", 64 << 20, &path2, &err);
	assert_true(fd >= 0);
	assert_int_equal(stat(path2, &st), 0);
	assert_int_equal(st.st_size, 32 << 20);
	close(fd);
	free(path);
	free(path2);
	assert_int_equal(capsa_volume_remove(root, "data", &err), 0);
}

static void test_config(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	capsa_vm_config *cfg = capsa_vm_config_new(&err);
	assert_non_null(cfg);
	assert_int_equal(capsa_vm_config_add_named_disk(cfg, "data", "/data", 0, &err), 0);
	assert_int_equal(capsa_vm_config_add_named_disk(cfg, "data", "/other", 0, &err), -1);
	assert_int_equal(err.code, EEXIST);
	assert_int_equal(capsa_vm_config_add_named_disk(cfg, "more", "/data", 0, &err), -1);
	assert_int_equal(err.code, EEXIST);
	assert_int_equal(capsa_vm_config_add_named_disk(cfg, "more", "data", 0, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_int_equal(capsa_vm_config_add_named_disk(cfg, "more", "/", 0, &err), -1);
	assert_int_equal(capsa_vm_config_add_named_disk(cfg, "a/b", "/m", 0, &err), -1);
	assert_int_equal(capsa_vm_config_add_named_disk(cfg, "more", "/m", 1024, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_int_equal(capsa_vm_config_add_volume(cfg, "/tmp", "/data", false, &err), -1);
	assert_int_equal(err.code, EEXIST);
	assert_int_equal(capsa_vm_config_add_named_disk(cfg, "more", "/more", 1ULL << 30, &err), 0);
	assert_int_equal(cfg->named_disk_count, 2);
	/* Named and raw disks share one limit. */
	for (int i = 2; i < CONFIG_MAX_DISKS; i++)
		assert_int_equal(capsa_vm_config_add_disk(cfg, "/dev/null", true, &err), 0);
	assert_int_equal(capsa_vm_config_add_named_disk(cfg, "last", "/last", 0, &err), -1);
	assert_int_equal(err.code, E2BIG);
	capsa_vm_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_create_list_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_user_at_a_time, setup, teardown),
		cmocka_unit_test(test_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
