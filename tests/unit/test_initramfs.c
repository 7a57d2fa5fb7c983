/* The initramfs writer: archives are parsed back with a reader written here
 * from the newc format description (not from the writer), and, where GNU
 * cpio is installed, listed by it too. */
#include <errno.h>
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

#include "boot/initramfs.h"
#include "guest_abi.h"

struct cpio_entry {
	char name[4096];
	uint32_t ino, mode, uid, gid, nlink, mtime, size, rdev_major, rdev_minor;
	const uint8_t *data;
};

#define MAX_ENTRIES 32

struct cpio {
	struct cpio_entry entries[MAX_ENTRIES];
	size_t count;  /* without the trailer */
};

static uint32_t hex_field(const uint8_t *p)
{
	char buf[9];
	char *end;

	memcpy(buf, p, 8);
	buf[8] = '\0';
	unsigned long v = strtoul(buf, &end, 16);
	assert_ptr_equal(end, buf + 8);
	return (uint32_t)v;
}

static void assert_zeros(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(p[i], 0);
}

/* Parses a whole newc archive, checking magic, padding and the trailer,
 * and that nothing follows the trailer. */
static void parse_cpio(const uint8_t *data, size_t len, struct cpio *out)
{
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	for (;;) {
		struct cpio_entry e = { 0 };
		assert_true(off % 4 == 0);
		assert_true(off + 110 <= len);
		assert_memory_equal(data + off, "070701", 6);
		const uint8_t *f = data + off + 6;
		e.ino = hex_field(f);
		e.mode = hex_field(f + 8);
		e.uid = hex_field(f + 16);
		e.gid = hex_field(f + 24);
		e.nlink = hex_field(f + 32);
		e.mtime = hex_field(f + 40);
		e.size = hex_field(f + 48);
		assert_int_equal(hex_field(f + 56), 0);   /* devmajor */
		assert_int_equal(hex_field(f + 64), 0);   /* devminor */
		e.rdev_major = hex_field(f + 72);
		e.rdev_minor = hex_field(f + 80);
		uint32_t name_size = hex_field(f + 88);
		assert_int_equal(hex_field(f + 96), 0);   /* check */
		off += 110;

		assert_true(name_size >= 2 && name_size <= sizeof(e.name));
		assert_true(off + name_size <= len);
		assert_int_equal(data[off + name_size - 1], '\0');
		assert_int_equal(strlen((const char *)data + off), name_size - 1);
		memcpy(e.name, data + off, name_size);
		off += name_size;
		size_t pad = (4 - off % 4) % 4;
		assert_true(off + pad <= len);
		assert_zeros(data + off, pad);
		off += pad;

		assert_true(off + e.size <= len);
		e.data = data + off;
		off += e.size;
		pad = (4 - off % 4) % 4;
		assert_true(off + pad <= len);
		assert_zeros(data + off, pad);
		off += pad;

		if (strcmp(e.name, "TRAILER!!!") == 0) {
			assert_int_equal(e.size, 0);
			break;
		}
		assert_true(out->count < MAX_ENTRIES);
		out->entries[out->count++] = e;
	}
	assert_int_equal(off, len);
}

static void parse_archive(const struct initramfs *ird, struct cpio *out)
{
	size_t len;
	const uint8_t *data = initramfs_data(ird, &len);

	parse_cpio(data, len, out);
}

static const struct cpio_entry *find(const struct cpio *c, const char *name)
{
	for (size_t i = 0; i < c->count; i++)
		if (strcmp(c->entries[i].name, name) == 0)
			return &c->entries[i];
	return NULL;
}

static void assert_file(const struct cpio *c, const char *name, uint32_t mode, const void *data, size_t len)
{
	const struct cpio_entry *e = find(c, name);

	assert_non_null(e);
	assert_int_equal(e->mode, S_IFREG | mode);
	assert_int_equal(e->nlink, 1);
	assert_int_equal(e->size, len);
	if (len)
		assert_memory_equal(e->data, data, len);
}

static struct initramfs *sample_archive(void)
{
	capsa_error err = { 0 };
	struct initramfs *ird = initramfs_new(&err);

	assert_non_null(ird);
	assert_int_equal(initramfs_add_dir(ird, "/etc", 0755, &err), 0);
	assert_int_equal(initramfs_add_file(ird, "/etc/hello", 0644, "hi\n", 3, &err), 0);
	assert_int_equal(initramfs_add_file(ird, "empty", 0600, NULL, 0, &err), 0);
	assert_int_equal(initramfs_add_dir(ird, "etc/sub", 0700, &err), 0);
	assert_int_equal(initramfs_add_file(ird, "etc/sub/four", 0444, "1234", 4, &err), 0);
	assert_int_equal(initramfs_add_dir(ird, "dev", 0755, &err), 0);
	assert_int_equal(initramfs_add_node(ird, "/dev/console", S_IFCHR | 0600, 5, 1, &err), 0);
	assert_int_equal(initramfs_add_node(ird, "/dev/vda", S_IFBLK | 0660, 254, 0, &err), 0);
	assert_int_equal(initramfs_finish(ird, &err), 0);
	return ird;
}

static void test_layout(void **state)
{
	(void)state;
	struct initramfs *ird = sample_archive();
	static struct cpio c;
	size_t len;
	const uint8_t *data = initramfs_data(ird, &len);

	parse_cpio(data, len, &c);
	assert_int_equal(c.count, 8);
	assert_string_equal(c.entries[0].name, "etc");
	assert_int_equal(c.entries[0].mode, S_IFDIR | 0755);
	assert_int_equal(c.entries[0].nlink, 2);
	assert_int_equal(c.entries[0].size, 0);
	assert_file(&c, "etc/hello", 0644, "hi\n", 3);
	assert_file(&c, "empty", 0600, NULL, 0);
	assert_int_equal(find(&c, "etc/sub")->mode, S_IFDIR | 0700);
	assert_file(&c, "etc/sub/four", 0444, "1234", 4);

	const struct cpio_entry *con = find(&c, "dev/console");
	assert_non_null(con);
	assert_int_equal(con->mode, S_IFCHR | 0600);
	assert_int_equal(con->rdev_major, 5);
	assert_int_equal(con->rdev_minor, 1);
	const struct cpio_entry *vda = find(&c, "dev/vda");
	assert_int_equal(vda->mode, S_IFBLK | 0660);
	assert_int_equal(vda->rdev_major, 254);

	/* Owner root, time 0, distinct non-zero inode numbers. */
	for (size_t i = 0; i < c.count; i++) {
		assert_int_equal(c.entries[i].uid, 0);
		assert_int_equal(c.entries[i].gid, 0);
		assert_int_equal(c.entries[i].mtime, 0);
		assert_int_not_equal(c.entries[i].ino, 0);
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(c.entries[i].ino, c.entries[j].ino);
	}
	initramfs_free(ird);
}

static void test_reproducible(void **state)
{
	(void)state;
	struct initramfs *a = sample_archive(), *b = sample_archive();
	size_t len_a, len_b;
	const uint8_t *da = initramfs_data(a, &len_a), *db = initramfs_data(b, &len_b);

	assert_int_equal(len_a, len_b);
	assert_memory_equal(da, db, len_a);
	initramfs_free(a);
	initramfs_free(b);
}

static void test_large_file_grows_buffer(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	struct initramfs *ird = initramfs_new(&err);
	size_t big = 3 * 1024 * 1024 + 1;
	uint8_t *blob = malloc(big);
	static struct cpio c;

	for (size_t i = 0; i < big; i++)
		blob[i] = (uint8_t)(i * 7);
	assert_int_equal(initramfs_add_file(ird, "blob", 0644, blob, big, &err), 0);
	assert_int_equal(initramfs_finish(ird, &err), 0);
	parse_archive(ird, &c);
	assert_file(&c, "blob", 0644, blob, big);
	free(blob);
	initramfs_free(ird);
}

static void expect_path_error(struct initramfs *ird, const char *path, int code)
{
	capsa_error err = { 0 };

	assert_int_equal(initramfs_add_file(ird, path, 0644, "x", 1, &err), -1);
	assert_int_equal(err.code, code);
	assert_true(strlen(err.message) > 0);
}

static void test_bad_paths(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	struct initramfs *ird = initramfs_new(&err);
	char *long_path = malloc(5000);

	assert_int_equal(initramfs_add_dir(ird, "d", 0755, &err), 0);
	assert_int_equal(initramfs_add_file(ird, "d/f", 0644, "x", 1, &err), 0);

	expect_path_error(ird, "", EINVAL);
	expect_path_error(ird, "/", EINVAL);
	expect_path_error(ird, "//", EINVAL);
	expect_path_error(ird, "..", EINVAL);
	expect_path_error(ird, "/../etc", EINVAL);
	expect_path_error(ird, "d/../x", EINVAL);
	expect_path_error(ird, "d/..", EINVAL);
	expect_path_error(ird, "./x", EINVAL);
	expect_path_error(ird, "d//x", EINVAL);
	expect_path_error(ird, "d/x/", EINVAL);
	expect_path_error(ird, NULL, EINVAL);
	expect_path_error(ird, "missing/x", ENOENT);
	expect_path_error(ird, "d/f/x", ENOENT);   /* d/f is a file */
	expect_path_error(ird, "d/f", EEXIST);
	expect_path_error(ird, "/d", EEXIST);
	memset(long_path, 'a', 4999);
	long_path[4999] = '\0';
	expect_path_error(ird, long_path, ENAMETOOLONG);
	free(long_path);

	/* Modes: permission bits only, device types for nodes. */
	assert_int_equal(initramfs_add_file(ird, "m", S_IFREG | 0644, "x", 1, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_int_equal(initramfs_add_dir(ird, "m", 010755, &err), -1);
	assert_int_equal(initramfs_add_node(ird, "m", S_IFREG | 0644, 1, 3, &err), -1);
	assert_int_equal(initramfs_add_node(ird, "m", 0644, 1, 3, &err), -1);
	assert_int_equal(initramfs_add_node(ird, "m", S_IFCHR | 0644, 4096, 3, &err), -1);
	assert_int_equal(initramfs_add_node(ird, "m", S_IFCHR | 0644, 1, 1u << 20, &err), -1);
	assert_int_equal(initramfs_add_file(ird, "m", 0644, NULL, 5, &err), -1);
	assert_int_equal(initramfs_add_file(ird, "m", 0644, "x", INITRAMFS_MAX_FILE_SIZE + 1ul, &err), -1);
	assert_int_equal(err.code, EFBIG);

	/* Failed adds leave the archive as it was. */
	assert_int_equal(initramfs_finish(ird, &err), 0);
	static struct cpio c;
	parse_archive(ird, &c);
	assert_int_equal(c.count, 2);

	/* Nothing after the trailer. */
	assert_int_equal(initramfs_add_dir(ird, "late", 0755, &err), -1);
	assert_int_equal(initramfs_finish(ird, &err), -1);
	initramfs_free(ird);
}

static char *write_temp_file(const void *data, size_t len)
{
	char *path = strdup("/tmp/capsa-test-initramfs-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_file_from_host(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	struct initramfs *ird = initramfs_new(&err);
	char *path = write_temp_file("host data", 9);
	static struct cpio c;

	assert_int_equal(initramfs_add_file_from_host(ird, "/copied", 0755, path, &err), 0);
	assert_int_equal(initramfs_add_file_from_host(ird, "/nope", 0755, "/nonexistent/capsa", &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.message, "/nonexistent/capsa"));
	assert_int_equal(initramfs_add_file_from_host(ird, "/dir", 0755, "/tmp", &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_int_equal(initramfs_finish(ird, &err), 0);

	parse_archive(ird, &c);
	assert_int_equal(c.count, 1);
	assert_file(&c, "copied", 0755, "host data", 9);
	unlink(path);
	free(path);
	initramfs_free(ird);
}

static void test_capsa_layout(void **state)
{
	(void)state;
	static const char init_bytes[] = "\177ELF pretend init";
	char *init_path = write_temp_file(init_bytes, sizeof(init_bytes));
	const char *argv[] = { "sh", "-c", "echo hi", "", NULL };
	const char *env[] = { "A=1", "B=", "A=2", NULL };
	capsa_error err = { 0 };
	struct initramfs *ird = NULL;
	static struct cpio c;

	struct guest_workload w = {
		.argv = argv, .env = env, .workdir = "/srv/app", .hostname = "box", .user = "app:staff", .hold = true
	};
	assert_int_equal(initramfs_build_capsa(&ird, init_path, &w, &err), 0);
	parse_archive(ird, &c);

	assert_file(&c, "init", 0755, init_bytes, sizeof(init_bytes));
	assert_int_equal(find(&c, "dev")->mode, S_IFDIR | 0755);
	assert_int_equal(find(&c, "capsa")->mode, S_IFDIR | 0755);
	const struct cpio_entry *con = find(&c, "dev/console");
	assert_non_null(con);
	assert_int_equal(con->mode, S_IFCHR | 0600);
	assert_int_equal(con->rdev_major, 5);
	assert_int_equal(con->rdev_minor, 1);
	assert_file(&c, CAPSA_CFG_ARGV + 1, 0444, "sh\0-c\0echo hi\0", 15);
	assert_file(&c, CAPSA_CFG_ENV + 1, 0444, "A=1\0B=\0A=2", 11);
	assert_file(&c, CAPSA_CFG_WORKDIR + 1, 0444, "/srv/app", 8);
	assert_file(&c, CAPSA_CFG_HOSTNAME + 1, 0444, "box", 3);
	assert_file(&c, CAPSA_CFG_USER + 1, 0444, "app:staff", 9);
	assert_file(&c, CAPSA_CFG_HOLD + 1, 0444, "", 0);
	assert_int_equal(c.count, 10);
	initramfs_free(ird);

	/* Settings left out are files left out: init uses its defaults. */
	struct guest_workload bare = { .argv = argv, .hostname = "" };
	assert_int_equal(initramfs_build_capsa(&ird, init_path, &bare, &err), 0);
	parse_archive(ird, &c);
	assert_null(find(&c, CAPSA_CFG_ENV + 1));
	assert_null(find(&c, CAPSA_CFG_WORKDIR + 1));
	assert_null(find(&c, CAPSA_CFG_HOSTNAME + 1));
	assert_null(find(&c, CAPSA_CFG_USER + 1));
	assert_null(find(&c, CAPSA_CFG_HOLD + 1));
	assert_non_null(find(&c, CAPSA_CFG_ARGV + 1));
	initramfs_free(ird);

	unlink(init_path);
	free(init_path);
}

static void expect_build_error(const char *init_path, const char *const *argv, const char *const *env,
			       const char *workdir, const char *hostname, const char *user, int code)
{
	capsa_error err = { 0 };
	struct initramfs *ird = (struct initramfs *)&err;  /* must stay untouched */

	struct guest_workload w = { .argv = argv, .env = env, .workdir = workdir, .hostname = hostname, .user = user };
	assert_int_equal(initramfs_build_capsa(&ird, init_path, &w, &err), -1);
	assert_int_equal(err.code, code);
	assert_true(strlen(err.message) > 0);
	assert_ptr_equal(ird, (struct initramfs *)&err);
}

static void test_capsa_errors(void **state)
{
	(void)state;
	char *init_path = write_temp_file("x", 1);
	const char *ok[] = { "true", NULL };
	const char *none[] = { NULL };
	const char *empty_cmd[] = { "", NULL };
	const char *no_eq[] = { "A=1", "JUSTKEY", NULL };
	const char *no_key[] = { "=x", NULL };
	size_t huge_len = 200 * 1024;
	char *huge = malloc(huge_len + 1);
	memset(huge, 'x', huge_len);
	huge[huge_len] = '\0';
	const char *huge_argv[] = { huge, NULL };
	/* Many strings each under the per-string limit, over 1 MiB together. */
	const char *many[12] = { 0 };
	huge[100 * 1024] = '\0';
	for (int i = 0; i < 11; i++)
		many[i] = huge;
	char long_host[80];
	memset(long_host, 'h', sizeof(long_host) - 1);
	long_host[sizeof(long_host) - 1] = '\0';

	expect_build_error(init_path, NULL, NULL, NULL, NULL, NULL, EINVAL);
	expect_build_error(init_path, none, NULL, NULL, NULL, NULL, EINVAL);
	expect_build_error(init_path, empty_cmd, NULL, NULL, NULL, NULL, EINVAL);
	expect_build_error(init_path, ok, no_eq, NULL, NULL, NULL, EINVAL);
	expect_build_error(init_path, ok, no_key, NULL, NULL, NULL, EINVAL);
	expect_build_error(init_path, ok, NULL, "relative/dir", NULL, NULL, EINVAL);
	expect_build_error(init_path, ok, NULL, NULL, long_host, NULL, EINVAL);
	expect_build_error(init_path, ok, NULL, NULL, NULL, "app\nroot", EINVAL);
	expect_build_error(NULL, ok, NULL, NULL, NULL, NULL, EINVAL);
	expect_build_error("/nonexistent/capsa-init", ok, NULL, NULL, NULL, NULL, ENOENT);
	expect_build_error(init_path, many, NULL, NULL, NULL, NULL, E2BIG);
	huge[100 * 1024] = 'x';
	expect_build_error(init_path, huge_argv, NULL, NULL, NULL, NULL, E2BIG);
	expect_build_error(init_path, ok, huge_argv, NULL, NULL, NULL, E2BIG);

	free(huge);
	unlink(init_path);
	free(init_path);
}

/* GNU cpio, if present, must read the archive and list the same names. */
static void test_gnu_cpio_lists_archive(void **state)
{
	(void)state;
	if (access("/usr/bin/cpio", X_OK) != 0) {
		skip();
		return;
	}
	struct initramfs *ird = sample_archive();
	size_t len;
	const uint8_t *data = initramfs_data(ird, &len);
	char *path = write_temp_file(data, len);
	char cmd[256], listing[1024] = { 0 };

	snprintf(cmd, sizeof(cmd), "cpio -it --quiet < %s 2>&1", path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t got = fread(listing, 1, sizeof(listing) - 1, p);
	listing[got] = '\0';
	assert_int_equal(pclose(p), 0);
	assert_string_equal(listing, "etc\netc/hello\nempty\netc/sub\netc/sub/four\ndev\ndev/console\ndev/vda\n");

	unlink(path);
	free(path);
	initramfs_free(ird);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_reproducible),
		cmocka_unit_test(test_large_file_grows_buffer),
		cmocka_unit_test(test_bad_paths),
		cmocka_unit_test(test_file_from_host),
		cmocka_unit_test(test_capsa_layout),
		cmocka_unit_test(test_capsa_errors),
		cmocka_unit_test(test_gnu_cpio_lists_archive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
