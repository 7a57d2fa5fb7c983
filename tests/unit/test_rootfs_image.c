/* Root images from host directories: a sample tree (files of every size
 * class, a sparse file, dirs, symlinks, a hard link, a fifo, special modes,
 * xattrs, and as root: owners and a device node) is built into an image,
 * which is then read back by the kernel (loop mount, as root) or else by
 * unsquashfs, and compared entry by entry with the source. Also covers the
 * content-keyed cache, atomic writes and error reporting. */
#include <dirent.h>
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
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rootfs/rootfs_image.h"
#include "test_tmpdir.h"

/* Present when built with LeakSanitizer: lets a forked child check for
 * leaks before _exit(), which skips the exit-time check. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static char base[64];           /* per-run scratch directory */
static char mounted_at[256];    /* set while an image is mounted */
static bool as_root;
static bool have_xattrs;

/* ---- helpers -------------------------------------------------------- */

static void write_file_mode(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);     /* beyond the umask */
	close(fd);
}

static void fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
	/* Poorly compressible, reproducible bytes. */
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

static void set_mtime(const char *path, time_t when)
{
	struct timespec ts[2] = { { .tv_sec = when }, { .tv_sec = when } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* Builds the sample tree at dir. */
static void make_tree(const char *dir)
{
	char *p;
	uint8_t *big = malloc(300000);

	assert_int_equal(mkdir(dir, 0755), 0);
#define AT(rel) (free(p), p = pathf("%s/%s", dir, rel))
	p = NULL;

	write_file_mode(AT("hello"), "hello, world\n", 13, 0644);
	write_file_mode(AT("empty"), "", 0, 0600);
	fill_pattern(big, 300000, 7);
	assert_int_equal(mkdir(AT("usr"), 0755), 0);
	assert_int_equal(mkdir(AT("usr/bin"), 0755), 0);
	write_file_mode(AT("usr/bin/tool"), big, 300000, 04755);    /* > 2 blocks, setuid */
	free(big);

	/* 3 MiB, mostly a hole, with data at both ends. */
	write_file_mode(AT("usr/sparse"), "start", 5, 0644);
	int fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "end", 3, 3 * 1024 * 1024 - 3), 3);
	close(fd);

	assert_int_equal(mkdir(AT("tmp"), 01777), 0);
	assert_int_equal(chmod(p, 01777), 0);
	assert_int_equal(mkdir(AT("shared"), 02775), 0);
	assert_int_equal(chmod(p, 02775), 0);
	assert_int_equal(mkdir(AT("empty-dir"), 0700), 0);
	assert_int_equal(symlink("usr/bin/tool", AT("link-rel")), 0);
	assert_int_equal(symlink("/does/not/exist", AT("link-dangling")), 0);
	assert_int_equal(symlink("usr", AT("link-dir")), 0);
	char *again = pathf("%s/usr/hello-again", dir);
	assert_int_equal(link(AT("hello"), again), 0);
	free(again);
	assert_int_equal(mkfifo(AT("fifo"), 0640), 0);

	have_xattrs = setxattr(AT("hello"), "user.note", "a value", 7, 0) == 0;
	if (have_xattrs) {
		assert_int_equal(setxattr(AT("usr"), "user.dir", "d", 1, 0), 0);
		/* Same value on another inode: stored once. */
		assert_int_equal(setxattr(AT("usr/sparse"), "user.note", "a value", 7, 0), 0);
	}
	if (as_root) {
		assert_int_equal(lchown(AT("hello"), 1000, 1001), 0);
		assert_int_equal(lchown(AT("link-rel"), 70000, 70001), 0);
		assert_int_equal(chown(AT("shared"), 0, 50), 0);
		assert_int_equal(chmod(p, 02775), 0);          /* chown clears setgid */
		assert_int_equal(mknod(AT("null"), S_IFCHR | 0666, makedev(1, 3)), 0);
		assert_int_equal(mknod(AT("disk"), S_IFBLK | 0660, makedev(259, 70000)), 0);
		if (have_xattrs)
			assert_int_equal(setxattr(AT("tmp"), "trusted.overlay.opaque", "y", 1, 0), 0);
	}
	set_mtime(AT("hello"), 1000000000);
	set_mtime(AT("link-rel"), 1100000000);
	free(p);
#undef AT
}

/* ---- comparing a tree with its image's contents ----------------------- */

static void assert_same_data(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	char ba[65536], bb[65536];

	assert_non_null(fa);
	assert_non_null(fb);
	for (;;) {
		size_t na = fread(ba, 1, sizeof(ba), fa), nb = fread(bb, 1, sizeof(bb), fb);

		assert_int_equal(na, nb);
		assert_memory_equal(ba, bb, na);
		if (na == 0)
			break;
	}
	fclose(fa);
	fclose(fb);
}

static void assert_same_xattrs(const char *a, const char *b)
{
	char la[1024], lb[1024], va[256], vb[256];
	ssize_t na = llistxattr(a, la, sizeof(la)), nb = llistxattr(b, lb, sizeof(lb));

	/* A squashfs without an xattr table has no xattr support at all. */
	if (na < 0 && errno == ENOTSUP)
		na = 0;
	if (nb < 0 && errno == ENOTSUP)
		nb = 0;
	assert_true(na >= 0 && nb >= 0);
	assert_int_equal(na, nb);
	for (ssize_t off = 0; off < na; off += (ssize_t)strlen(la + off) + 1) {
		ssize_t sa = lgetxattr(a, la + off, va, sizeof(va)), sb = lgetxattr(b, la + off, vb, sizeof(vb));

		assert_true(sa >= 0);
		assert_int_equal(sa, sb);
		assert_memory_equal(va, vb, (size_t)sa);
	}
}

static void assert_same_entry(const char *src, const char *img, bool kernel)
{
	struct stat s, i;

	assert_int_equal(lstat(src, &s), 0);
	if (lstat(img, &i) != 0)
		fail_msg("missing in image: %s", img);
	/* unsquashfs drops setuid/setgid when not run as root (the listing
	 * check in test_image_matches_tree covers them then). */
	mode_t mask = kernel || as_root ? ~(mode_t)0 : ~(mode_t)06000;
	if ((s.st_mode & mask) != (i.st_mode & mask))
		fail_msg("%s: mode %o, image has %o", src, s.st_mode, i.st_mode);
	assert_int_equal(s.st_uid, i.st_uid);
	assert_int_equal(s.st_gid, i.st_gid);
	if (kernel || !S_ISLNK(s.st_mode))      /* unsquashfs leaves symlink times */
		assert_int_equal(s.st_mtim.tv_sec, i.st_mtim.tv_sec);
	if (S_ISREG(s.st_mode)) {
		assert_int_equal(s.st_size, i.st_size);
		assert_same_data(src, img);
	}
	if (S_ISCHR(s.st_mode) || S_ISBLK(s.st_mode))
		assert_int_equal(s.st_rdev, i.st_rdev);
	if (S_ISLNK(s.st_mode)) {
		char ts[256] = "", ti[256] = "";

		assert_true(readlink(src, ts, sizeof(ts) - 1) > 0);
		assert_true(readlink(img, ti, sizeof(ti) - 1) > 0);
		assert_string_equal(ts, ti);
	} else {
		assert_same_xattrs(src, img);
	}
	/* The kernel reports link counts as stored; unsquashfs recreates them. */
	if (kernel || !S_ISDIR(s.st_mode))
		assert_int_equal(s.st_nlink, i.st_nlink);
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;

	assert_non_null(d);
	for (struct dirent *de; (de = readdir(d));)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

static void assert_same_tree(const char *src, const char *img, bool kernel)
{
	DIR *d = opendir(src);

	assert_non_null(d);
	assert_same_entry(src, img, kernel);
	assert_int_equal(count_entries(src), count_entries(img));
	for (struct dirent *de; (de = readdir(d));) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *s = pathf("%s/%s", src, de->d_name), *i = pathf("%s/%s", img, de->d_name);
		struct stat st;

		assert_int_equal(lstat(s, &st), 0);
		if (S_ISDIR(st.st_mode))
			assert_same_tree(s, i, kernel);
		else
			assert_same_entry(s, i, kernel);
		free(s);
		free(i);
	}
	closedir(d);
}

/* Makes the image's contents visible at dir: the kernel's own squashfs
 * via a loop mount where allowed, else an unsquashfs extraction. Returns
 * true for a mount (to be unmounted). */
static bool open_image(const char *img, const char *dir)
{
	if (as_root) {
		assert_int_equal(mkdir(dir, 0755), 0);
		if (run("mount -t squashfs -o loop,ro '%s' '%s' 2>/dev/null", img, dir) == 0) {
			snprintf(mounted_at, sizeof(mounted_at), "%s", dir);
			return true;
		}
		fprintf(stderr, "note: loop mount unavailable, checking with unsquashfs\n");
		assert_int_equal(rmdir(dir), 0);
	}
	assert_int_equal(run("unsquashfs -n -q -d '%s' '%s' >/dev/null", dir, img), 0);
	return false;
}

static void close_image(const char *dir, bool mounted)
{
	if (mounted) {
		assert_int_equal(run("umount '%s'", dir), 0);
		mounted_at[0] = '\0';
	}
	assert_int_equal(run("rm -rf '%s'", dir), 0);
}

/* ---- tests ---------------------------------------------------------- */

static void test_image_matches_tree(void **state)
{
	(void)state;
	char *src = pathf("%s/tree", base), *img = pathf("%s/tree.sqfs", base), *view = pathf("%s/view", base);
	capsa_error err = { 0 };

	make_tree(src);
	if (rootfs_build_squashfs(src, img, &err) != 0)
		fail_msg("build failed: %s", err.message);

	/* squashfs-tools accepts the super block and tables. */
	assert_int_equal(run("unsquashfs -s '%s' >/dev/null", img), 0);
	assert_int_equal(run("unsquashfs -lln '%s' >/dev/null", img), 0);
	assert_int_equal(run("unsquashfs -lln '%s' | grep -q '^-rwsr-xr-x .*/usr/bin/tool$'", img), 0);
	assert_int_equal(run("unsquashfs -lln '%s' | grep -q '^drwxrwsr-x .*/shared$'", img), 0);
	assert_int_equal(run("unsquashfs -lln '%s' | grep -q '^drwxrwxrwt .*/tmp$'", img), 0);

	struct stat st;
	assert_int_equal(stat(img, &st), 0);
	assert_int_equal(st.st_size % 4096, 0);

	bool mounted = open_image(img, view);
	assert_same_tree(src, view, mounted);

	/* The hard link is one inode in the image too. */
	struct stat a, b;
	char *pa = pathf("%s/hello", view), *pb = pathf("%s/usr/hello-again", view);
	assert_int_equal(lstat(pa, &a), 0);
	assert_int_equal(lstat(pb, &b), 0);
	if (mounted)
		assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_nlink, 2);
	free(pa);
	free(pb);
	close_image(view, mounted);

	/* Same tree, same bytes, even with parallel compression. */
	char *again = pathf("%s/again.sqfs", base);
	assert_int_equal(rootfs_build_squashfs(src, again, &err), 0);
	assert_int_equal(run("cmp -s '%s' '%s'", img, again), 0);

	unlink(again);
	unlink(img);
	assert_int_equal(run("rm -rf '%s'", src), 0);
	free(again);
	free(src);
	free(img);
	free(view);
}

static size_t count_files_not_ending(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	size_t n = 0;

	assert_non_null(d);
	for (struct dirent *de; (de = readdir(d));) {
		size_t len = strlen(de->d_name), sl = strlen(suffix);

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n += len < sl || strcmp(de->d_name + len - sl, suffix) != 0;
	}
	closedir(d);
	return n;
}

static void test_cache_by_content(void **state)
{
	(void)state;
	char *src = pathf("%s/cached", base), *cache = pathf("%s/cache/a/b", base);
	char *hello = pathf("%s/hello", src);
	capsa_error err = { 0 };
	struct stat s1, s2;

	make_tree(src);
	char *p1 = rootfs_image_for_dir(src, cache, &err);
	if (!p1)
		fail_msg("build failed: %s", err.message);
	assert_int_equal(strncmp(p1, cache, strlen(cache)), 0);
	assert_int_equal(strlen(p1), strlen(cache) + 1 + 64 + strlen(".sqfs"));
	assert_int_equal(stat(p1, &s1), 0);

	/* Same content: same image, not rewritten. */
	char *p2 = rootfs_image_for_dir(src, cache, &err);
	assert_non_null(p2);
	assert_string_equal(p1, p2);
	assert_int_equal(stat(p2, &s2), 0);
	assert_int_equal(s1.st_ino, s2.st_ino);
	assert_int_equal(s1.st_mtim.tv_sec, s2.st_mtim.tv_sec);
	assert_int_equal(s1.st_mtim.tv_nsec, s2.st_mtim.tv_nsec);
	free(p2);

	/* Only times differ: still the same key. */
	set_mtime(hello, 1234567890);
	p2 = rootfs_image_for_dir(src, cache, &err);
	assert_non_null(p2);
	assert_string_equal(p1, p2);
	free(p2);

	/* Changed data, then changed mode: new keys, old images kept. */
	write_file_mode(hello, "changed\n", 8, 0644);
	p2 = rootfs_image_for_dir(src, cache, &err);
	assert_non_null(p2);
	assert_string_not_equal(p1, p2);
	assert_int_equal(chmod(hello, 0600), 0);
	char *p3 = rootfs_image_for_dir(src, cache, &err);
	assert_non_null(p3);
	assert_string_not_equal(p2, p3);
	assert_string_not_equal(p1, p3);
	assert_int_equal(access(p1, R_OK), 0);
	assert_int_equal(access(p2, R_OK), 0);

	/* A damaged image under the final name is rebuilt. */
	assert_int_equal(truncate(p3, 100), 0);
	free(p3);
	p3 = rootfs_image_for_dir(src, cache, &err);
	assert_non_null(p3);
	assert_int_equal(run("unsquashfs -s '%s' >/dev/null", p3), 0);

	/* Nothing but finished images in the cache. */
	assert_int_equal(count_files_not_ending(cache, ".sqfs"), 0);
	assert_int_equal(count_entries(cache), 3);

	assert_int_equal(run("rm -rf '%s' '%s/cache'", src, base), 0);
	free(p1);
	free(p2);
	free(p3);
	free(hello);
	free(src);
	free(cache);
}

static void test_same_content_elsewhere_same_key(void **state)
{
	(void)state;
	char *a = pathf("%s/one", base), *b = pathf("%s/two", base), *cache = pathf("%s/cache2", base);
	capsa_error err = { 0 };

	make_tree(a);
	sleep(1);               /* different directory mtimes */
	make_tree(b);
	char *pa = rootfs_image_for_dir(a, cache, &err), *pb = rootfs_image_for_dir(b, cache, &err);
	assert_non_null(pa);
	assert_non_null(pb);
	assert_string_equal(pa, pb);

	assert_int_equal(run("rm -rf '%s' '%s' '%s'", a, b, cache), 0);
	free(pa);
	free(pb);
	free(a);
	free(b);
	free(cache);
}

/* Runs the unreadable-file checks; returns 0 when they pass. Forked and
 * unprivileged when the test runs as root, which can read anything. */
static int check_unreadable(const char *src, const char *cache, const char *out_dir)
{
	capsa_error err = { 0 };
	char *img = pathf("%s/out.sqfs", out_dir);
	int bad = 0;

	char *p = rootfs_image_for_dir(src, cache, &err);
	if (p || !strstr(err.message, "/secret") || !strstr(err.message, "Permission denied") ||
	    err.code != EACCES) {
		fprintf(stderr, "image_for_dir: unexpected result: %s\n", p ? p : err.message);
		bad = 1;
	}
	free(p);

	/* Here the failure comes while the image file is being written. */
	memset(&err, 0, sizeof(err));
	if (rootfs_build_squashfs(src, img, &err) == 0 || !strstr(err.message, "/secret")) {
		fprintf(stderr, "build: unexpected result: %s\n", err.message);
		bad = 1;
	}
	if (count_entries(out_dir) != 0 || count_entries(cache) != 0) {
		fprintf(stderr, "files left behind after a failed build\n");
		bad = 1;
	}
	free(img);
	return bad;
}

static void test_unreadable_file(void **state)
{
	(void)state;
	char *src = pathf("%s/locked", base), *secret = pathf("%s/locked/usr/secret", base);
	char *cache = pathf("%s/cache3", base), *out = pathf("%s/out", base);

	char *usr = pathf("%s/usr", src), *readable = pathf("%s/readable", src);
	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(mkdir(usr, 0755), 0);
	write_file_mode(readable, "anyone", 6, 0644);
	write_file_mode(secret, "top secret", 10, 0600);
	free(usr);
	free(readable);
	assert_int_equal(mkdir(cache, 0777), 0);
	assert_int_equal(chmod(cache, 0777), 0);
	assert_int_equal(mkdir(out, 0777), 0);
	assert_int_equal(chmod(out, 0777), 0);

	if (!as_root) {
		assert_int_equal(chmod(secret, 0), 0);
		assert_int_equal(check_unreadable(src, cache, out), 0);
	} else {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
				_exit(2);
			int bad = check_unreadable(src, cache, out);
			if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check())
				bad = 1;
			_exit(bad);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}

	/* A missing directory is named too. */
	capsa_error err = { 0 };
	char *missing = pathf("%s/nope", base);
	assert_null(rootfs_image_for_dir(missing, cache, &err));
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.message, missing));

	assert_int_equal(run("rm -rf '%s' '%s' '%s'", src, cache, out), 0);
	free(missing);
	free(src);
	free(secret);
	free(cache);
	free(out);
}

static void test_empty_root(void **state)
{
	(void)state;
	char *src = pathf("%s/bare", base), *img = pathf("%s/bare.sqfs", base), *view = pathf("%s/bare-view", base);
	capsa_error err = { 0 };

	assert_int_equal(mkdir(src, 0751), 0);
	assert_int_equal(rootfs_build_squashfs(src, img, &err), 0);
	bool mounted = open_image(img, view);
	assert_same_tree(src, view, mounted);
	close_image(view, mounted);
	assert_int_equal(run("rm -rf '%s' '%s'", src, img), 0);
	free(src);
	free(img);
	free(view);
}

/* > 4 GiB needs extended inodes. Reads 4+ GiB of holes twice, so only on
 * request: CAPSA_SLOW_TESTS=1. */
static void test_huge_sparse_file(void **state)
{
	(void)state;
	if (!getenv("CAPSA_SLOW_TESTS"))
		skip();
	char *src = pathf("%s/huge", base), *file = pathf("%s/huge/big", base);
	char *img = pathf("%s/huge.sqfs", base), *view = pathf("%s/huge-view", base);
	const off_t size = (off_t)5 << 30;
	capsa_error err = { 0 };

	assert_int_equal(mkdir(src, 0755), 0);
	write_file_mode(file, "head", 4, 0644);
	int fd = open(file, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "tail", 4, size - 4), 4);
	close(fd);
	if (rootfs_build_squashfs(src, img, &err) != 0)
		fail_msg("build failed: %s", err.message);
	bool mounted = open_image(img, view);
	assert_same_tree(src, view, mounted);
	close_image(view, mounted);
	assert_int_equal(run("rm -rf '%s' '%s'", src, img), 0);
	free(src);
	free(file);
	free(img);
	free(view);
}

static int setup(void **state)
{
	(void)state;
	if (tmpdir_create(base, sizeof(base), "rootfs") < 0)
		return -1;
	/* Let an unprivileged child walk the scratch trees. */
	chmod(base, 0755);
	as_root = geteuid() == 0;
	umask(022);
	return 0;
}

/* A failed assertion skips close_image(): do not leave a mount behind. */
static int unmount_leftover(void **state)
{
	(void)state;
	if (mounted_at[0] && run("umount '%s'", mounted_at) != 0)
		return -1;
	mounted_at[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return remove_tree(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_image_matches_tree, unmount_leftover),
		cmocka_unit_test_teardown(test_cache_by_content, unmount_leftover),
		cmocka_unit_test_teardown(test_same_content_elsewhere_same_key, unmount_leftover),
		cmocka_unit_test_teardown(test_unreadable_file, unmount_leftover),
		cmocka_unit_test_teardown(test_empty_root, unmount_leftover),
		cmocka_unit_test_teardown(test_huge_sparse_file, unmount_leftover),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
