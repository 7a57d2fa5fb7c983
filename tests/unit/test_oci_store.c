/* The image store: blobs (verified reads and writes, corruption on disk,
 * resumed and restarted writes, two processes writing one blob), image
 * names in images.json, and garbage collection. Each test gets a fresh
 * store in a temporary directory. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/digest.h"
#include "oci/manifest.h"
#include "oci/store.h"
#include "test_tmpdir.h"

/* Present when built with LeakSanitizer: lets a forked child check for
 * leaks before _exit(), which skips the exit-time check. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static char root[64];

/* ---- helpers -------------------------------------------------------- */

static void age_file(const char *path, int seconds)
{
	struct timespec times[2];
	clock_gettime(CLOCK_REALTIME, &times[0]);
	times[0].tv_sec -= seconds;
	times[1] = times[0];
	assert_int_equal(utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW), 0);
}

static void digest_of(const void *data, size_t len, char out[OCI_DIGEST_STRING_SIZE])
{
	assert_int_equal(oci_digest_of_buffer(data, len, out, NULL), 0);
}

static char *blob_file(oci_store *s, const char *digest)
{
	char *path = oci_store_blob_path(s, digest, NULL);
	assert_non_null(path);
	return path;
}

static char *partial_file(const char *digest)
{
	return pathf("%s/tmp/%s.partial", root, oci_digest_hex(digest));
}

static size_t count_dir(const char *dir)
{
	char *cmd = pathf("test $(ls -A '%s' | wc -l) -eq 0", dir);
	int empty = system(cmd) == 0;
	free(cmd);
	return empty ? 0 : 1;
}

static void fill_pattern(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 131 + seed) ^ (i >> 8));
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(tmpdir_create(root, sizeof(root), "store"), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(remove_tree(root), 0);
	return 0;
}

static oci_store *open_store(void)
{
	capsa_error err = { 0 };
	oci_store *s = oci_store_open(root, &err);
	if (!s)
		fail_msg("%s", err.message);
	return s;
}

/* ---- blobs ---------------------------------------------------------- */

static void test_open_creates_layout(void **state)
{
	(void)state;
	oci_store *s = open_store();
	const char *dirs[] = { "blobs/sha256", "tmp", "rootfs" };
	for (size_t i = 0; i < 3; i++) {
		char *p = pathf("%s/%s", root, dirs[i]);
		assert_true(exists(p));
		free(p);
	}
	assert_string_equal(oci_store_root(s), root);
	oci_store_close(s);
}

static void test_default_root(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	char *saved_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;

	setenv("XDG_DATA_HOME", "/data/home", 1);
	char *r = oci_store_default_root(&err);
	assert_string_equal(r, "/data/home/capsa");
	free(r);
	setenv("XDG_DATA_HOME", "relative", 1);
	r = oci_store_default_root(&err);
	assert_non_null(r);
	assert_non_null(strstr(r, "/.local/share/capsa"));
	free(r);
	if (saved_xdg)
		setenv("XDG_DATA_HOME", saved_xdg, 1);
	else
		unsetenv("XDG_DATA_HOME");
	free(saved_xdg);
}

static void test_put_read_verify(void **state)
{
	(void)state;
	oci_store *s = open_store();
	capsa_error err = { 0 };
	char digest[OCI_DIGEST_STRING_SIZE];
	char *data = NULL;
	size_t len = 0;

	assert_int_equal(oci_store_put_blob(s, "hello", 5, NULL, digest, &err), 0);
	assert_string_equal(digest, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
	assert_true(oci_store_has_blob(s, digest));
	char *path = blob_file(s, digest);
	char *want = pathf("%s/blobs/sha256/%s", root, oci_digest_hex(digest));
	assert_string_equal(path, want);
	assert_true(exists(path));
	free(want);
	free(path);

	assert_int_equal(oci_store_read_blob(s, digest, 100, &data, &len, &err), 0);
	assert_int_equal(len, 5);
	assert_string_equal(data, "hello");
	free(data);

	/* Again, and with the right expected digest: fine, nothing changes. */
	assert_int_equal(oci_store_put_blob(s, "hello", 5, digest, NULL, &err), 0);

	/* Too large for the caller's cap. */
	assert_int_equal(oci_store_read_blob(s, digest, 4, &data, &len, &err), -1);
	assert_int_equal(err.code, EFBIG);

	/* Wrong expected digest: refused and not stored under either name. */
	char other[OCI_DIGEST_STRING_SIZE];
	digest_of("world", 5, other);
	assert_int_equal(oci_store_put_blob(s, "hello!", 6, other, NULL, &err), -1);
	assert_int_equal(err.code, EBADMSG);
	assert_non_null(strstr(err.message, "is corrupt"));
	assert_false(oci_store_has_blob(s, other));

	/* Absent, and malformed digests. */
	assert_int_equal(oci_store_read_blob(s, other, 100, &data, &len, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_false(oci_store_has_blob(s, "sha256:xyz"));
	assert_null(oci_store_blob_path(s, "md5:abc", &err));
	assert_int_equal(oci_store_put_blob(s, "x", 1, "sha256:1234", NULL, &err), -1);
	assert_int_equal(err.code, EINVAL);

	/* The empty blob is a blob too. */
	assert_int_equal(oci_store_put_blob(s, "", 0, NULL, digest, &err), 0);
	assert_int_equal(oci_store_read_blob(s, digest, 10, &data, &len, &err), 0);
	assert_int_equal(len, 0);
	free(data);

	char *rootfs = oci_store_rootfs_path(s, digest, &err);
	want = pathf("%s/rootfs/%s.sqfs", root, oci_digest_hex(digest));
	assert_string_equal(rootfs, want);
	free(want);
	free(rootfs);
	oci_store_close(s);
}

static void test_corrupt_blob_on_disk(void **state)
{
	(void)state;
	oci_store *s = open_store();
	capsa_error err = { 0 };
	char digest[OCI_DIGEST_STRING_SIZE];
	char *data = NULL;
	size_t len;

	assert_int_equal(oci_store_put_blob(s, "original", 8, NULL, digest, &err), 0);
	char *path = blob_file(s, digest);
	write_file(path, "0riginal", 8);
	assert_int_equal(oci_store_read_blob(s, digest, 100, &data, &len, &err), -1);
	assert_int_equal(err.code, EBADMSG);
	assert_non_null(strstr(err.message, "is corrupt: expected sha256:"));
	assert_non_null(strstr(err.message, " got sha256:"));
	assert_null(data);
	/* Gone, so that the next pull fetches it again. */
	assert_false(oci_store_has_blob(s, digest));
	free(path);
	oci_store_close(s);
}

static void test_commit_mismatch(void **state)
{
	(void)state;
	oci_store *s = open_store();
	capsa_error err = { 0 };
	char digest[OCI_DIGEST_STRING_SIZE], got[OCI_DIGEST_STRING_SIZE];
	oci_blob_writer *w = NULL;

	digest_of("abc", 3, digest);
	char *partial = partial_file(digest);

	/* Wrong content, right size. */
	assert_int_equal(oci_store_blob_begin(s, digest, 3, &w, &err), 0);
	assert_non_null(w);
	assert_int_equal(oci_blob_writer_write(w, "abd", 3, &err), 0);
	assert_int_equal(oci_blob_writer_commit(w, got, &err), -1);
	assert_int_equal(err.code, EBADMSG);
	char *want = pathf("blob %.19s… is corrupt: expected %s got sha256:", digest, digest);
	assert_non_null(strstr(err.message, want));
	free(want);
	oci_blob_writer_free(w);
	assert_false(oci_store_has_blob(s, digest));
	assert_false(exists(partial));

	/* Right prefix, too short. */
	assert_int_equal(oci_store_blob_begin(s, digest, 3, &w, &err), 0);
	assert_int_equal(oci_blob_writer_offset(w), 0);
	assert_int_equal(oci_blob_writer_write(w, "ab", 2, &err), 0);
	assert_int_equal(oci_blob_writer_commit(w, NULL, &err), -1);
	assert_int_equal(err.code, EBADMSG);
	assert_non_null(strstr(err.message, "expected 3 bytes got 2"));
	oci_blob_writer_free(w);
	assert_false(oci_store_has_blob(s, digest));
	assert_false(exists(partial));

	/* More than announced is refused as it arrives. */
	assert_int_equal(oci_store_blob_begin(s, digest, 3, &w, &err), 0);
	assert_int_equal(oci_blob_writer_write(w, "abcd", 4, &err), -1);
	assert_int_equal(err.code, EBADMSG);
	/* ... and the writer still takes the right bytes. */
	assert_int_equal(oci_blob_writer_write(w, "abc", 3, &err), 0);
	assert_int_equal(oci_blob_writer_commit(w, got, &err), 0);
	assert_string_equal(got, digest);
	oci_blob_writer_free(w);
	assert_true(oci_store_has_blob(s, digest));
	assert_false(exists(partial));

	/* Already stored: begin says so. */
	assert_int_equal(oci_store_blob_begin(s, digest, 3, &w, &err), 1);
	assert_null(w);

	/* A writer of an unknown digest that mismatches its size. */
	assert_int_equal(oci_store_blob_begin(s, NULL, 10, &w, &err), 0);
	assert_int_equal(oci_blob_writer_write(w, "abc", 3, &err), 0);
	assert_int_equal(oci_blob_writer_commit(w, NULL, &err), -1);
	assert_int_equal(err.code, EBADMSG);
	oci_blob_writer_free(w);
	char *tmp = pathf("%s/tmp", root);
	assert_int_equal(count_dir(tmp), 0);
	free(tmp);
	free(partial);
	oci_store_close(s);
}

static void test_resume(void **state)
{
	(void)state;
	enum { SIZE = 300 * 1000 };
	unsigned char *data = malloc(SIZE);
	oci_store *s = open_store();
	capsa_error err = { 0 };
	char digest[OCI_DIGEST_STRING_SIZE], got[OCI_DIGEST_STRING_SIZE];
	oci_blob_writer *w = NULL;

	fill_pattern(data, SIZE, 7);
	digest_of(data, SIZE, digest);
	char *partial = partial_file(digest);

	assert_int_equal(oci_store_blob_begin(s, digest, SIZE, &w, &err), 0);
	assert_int_equal(oci_blob_writer_offset(w), 0);
	assert_int_equal(oci_blob_writer_write(w, data, 1000, &err), 0);
	assert_int_equal(oci_blob_writer_write(w, data + 1000, SIZE / 2 - 1000, &err), 0);
	oci_blob_writer_free(w);  /* interrupted */
	assert_true(exists(partial));
	assert_false(oci_store_has_blob(s, digest));

	/* Another handle, as a later process would. */
	oci_store_close(s);
	s = open_store();
	assert_int_equal(oci_store_blob_begin(s, digest, SIZE, &w, &err), 0);
	assert_int_equal(oci_blob_writer_offset(w), SIZE / 2);
	assert_int_equal(oci_blob_writer_write(w, data + SIZE / 2, SIZE - SIZE / 2, &err), 0);
	assert_int_equal(oci_blob_writer_commit(w, got, &err), 0);
	oci_blob_writer_free(w);
	assert_string_equal(got, digest);
	assert_false(exists(partial));

	char *back = NULL;
	size_t len;
	assert_int_equal(oci_store_read_blob(s, digest, SIZE, &back, &len, &err), 0);
	assert_int_equal(len, SIZE);
	assert_memory_equal(back, data, SIZE);
	free(back);

	/* A partial longer than the blob can be is dropped, not resumed. */
	char d2[OCI_DIGEST_STRING_SIZE];
	digest_of(data, 100, d2);
	char *p2 = partial_file(d2);
	write_file(p2, data, 200);
	assert_int_equal(oci_store_blob_begin(s, d2, 100, &w, &err), 0);
	assert_int_equal(oci_blob_writer_offset(w), 0);
	oci_blob_writer_free(w);
	free(p2);

	free(partial);
	free(data);
	oci_store_close(s);
}

static void test_restart(void **state)
{
	(void)state;
	oci_store *s = open_store();
	capsa_error err = { 0 };
	char digest[OCI_DIGEST_STRING_SIZE];
	oci_blob_writer *w = NULL;
	const char *text = "the quick brown fox jumps over the lazy dog";
	size_t len = strlen(text);

	digest_of(text, len, digest);
	assert_int_equal(oci_store_blob_begin(s, digest, (int64_t)len, &w, &err), 0);
	assert_int_equal(oci_blob_writer_write(w, "garbage", 7, &err), 0);
	oci_blob_writer_free(w);

	assert_int_equal(oci_store_blob_begin(s, digest, (int64_t)len, &w, &err), 0);
	assert_int_equal(oci_blob_writer_offset(w), 7);
	/* The server ignored the Range request: start over. */
	assert_int_equal(oci_blob_writer_restart(w, &err), 0);
	assert_int_equal(oci_blob_writer_offset(w), 0);
	assert_int_equal(oci_blob_writer_write(w, text, len, &err), 0);
	assert_int_equal(oci_blob_writer_commit(w, NULL, &err), 0);
	oci_blob_writer_free(w);
	assert_true(oci_store_has_blob(s, digest));
	oci_store_close(s);
}

static void test_unknown_digest_writer(void **state)
{
	(void)state;
	oci_store *s = open_store();
	capsa_error err = { 0 };
	char digest[OCI_DIGEST_STRING_SIZE], want[OCI_DIGEST_STRING_SIZE];
	oci_blob_writer *w = NULL;
	char *tmp = pathf("%s/tmp", root);

	digest_of("streamed", 8, want);
	assert_int_equal(oci_store_blob_begin(s, NULL, -1, &w, &err), 0);
	assert_int_equal(oci_blob_writer_write(w, "stream", 6, &err), 0);
	assert_int_equal(oci_blob_writer_write(w, "ed", 2, &err), 0);
	assert_int_equal(oci_blob_writer_commit(w, digest, &err), 0);
	oci_blob_writer_free(w);
	assert_string_equal(digest, want);
	assert_true(oci_store_has_blob(s, digest));

	/* The same bytes again: fine, already there. */
	assert_int_equal(oci_store_blob_begin(s, NULL, 8, &w, &err), 0);
	assert_int_equal(oci_blob_writer_write(w, "streamed", 8, &err), 0);
	assert_int_equal(oci_blob_writer_commit(w, digest, &err), 0);
	oci_blob_writer_free(w);

	/* Abandoned: nothing is left behind. */
	assert_int_equal(oci_store_blob_begin(s, NULL, -1, &w, &err), 0);
	assert_int_equal(oci_blob_writer_write(w, "junk", 4, &err), 0);
	oci_blob_writer_free(w);
	assert_int_equal(count_dir(tmp), 0);
	free(tmp);
	oci_store_close(s);
}

/* The first process holds the blob while the second begins it: the second
 * waits, then finds it stored. */
static void test_two_writers(void **state)
{
	(void)state;
	enum { SIZE = 64 * 1024 };
	static unsigned char data[SIZE];
	char digest[OCI_DIGEST_STRING_SIZE];
	int ready[2];

	fill_pattern(data, SIZE, 3);
	digest_of(data, SIZE, digest);
	assert_int_equal(pipe(ready), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		capsa_error err = { 0 };
		oci_blob_writer *w = NULL;
		oci_store *s = oci_store_open(root, &err);
		int ok = s && oci_store_blob_begin(s, digest, SIZE, &w, &err) == 0;
		ok = ok && oci_blob_writer_write(w, data, SIZE / 2, &err) == 0;
		ok = ok && write(ready[1], "x", 1) == 1;
		usleep(300 * 1000);
		ok = ok && oci_blob_writer_write(w, data + SIZE / 2, SIZE - SIZE / 2, &err) == 0;
		ok = ok && oci_blob_writer_commit(w, NULL, &err) == 0;
		oci_blob_writer_free(w);
		oci_store_close(s);
		if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check())
			ok = 0;
		_exit(ok ? 0 : 1);
	}
	close(ready[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);

	oci_store *s = open_store();
	capsa_error err = { 0 };
	oci_blob_writer *w = NULL;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int ret = oci_store_blob_begin(s, digest, SIZE, &w, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(ret, 1);
	assert_null(w);
	/* It waited for the other writer rather than racing it. */
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 200);

	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(oci_store_has_blob(s, digest));
	char *partial = partial_file(digest);
	assert_false(exists(partial));
	free(partial);
	oci_store_close(s);
}

/* ---- names ---------------------------------------------------------- */

static const char *D1 = "sha256:aaaa1111bbbbccccddddeeeeffff000011112222333344445555666677778888";
static const char *D2 = "sha256:aaaa2222bbbbccccddddeeeeffff000011112222333344445555666677778888";
static const char *D3 = "sha256:1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef";

static void test_names(void **state)
{
	(void)state;
	oci_store *s = open_store();
	capsa_error err = { 0 };
	oci_image_record r = { 0 };
	oci_image_record *list = NULL;
	size_t n = 99;

	assert_int_equal(oci_store_list(s, &list, &n, &err), 0);
	assert_int_equal(n, 0);
	oci_image_records_free(list, n);
	assert_int_equal(oci_store_lookup(s, "docker.io/library/busybox:latest", &r, &err), -1);
	assert_int_equal(err.code, ENOENT);

	time_t before = time(NULL);
	assert_int_equal(oci_store_tag(s, "docker.io/library/busybox:latest", D1, 1000, &err), 0);
	assert_int_equal(oci_store_tag(s, "docker.io/library/alpine:3", D2, 2000, &err), 0);
	assert_int_equal(oci_store_tag(s, "docker.io/library/busybox:1", D1, 1000, &err), 0);
	assert_int_equal(oci_store_tag(s, D3, D3, 3, &err), 0);

	assert_int_equal(oci_store_lookup(s, "docker.io/library/busybox:latest", &r, &err), 0);
	assert_string_equal(r.name, "docker.io/library/busybox:latest");
	assert_string_equal(r.manifest_digest, D1);
	assert_int_equal(r.size, 1000);
	assert_true(r.created >= before && r.created <= time(NULL));
	oci_image_record_clear(&r);

	assert_int_equal(oci_store_list(s, &list, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(list[0].name, "docker.io/library/alpine:3");
	assert_string_equal(list[1].name, "docker.io/library/busybox:1");
	assert_string_equal(list[2].name, "docker.io/library/busybox:latest");
	assert_string_equal(list[3].name, D3);
	oci_image_records_free(list, n);

	/* Ids: digest prefixes, "sha256:" optional, at least 4 digits. Two
	 * names of one image are not ambiguous; two images are. */
	assert_int_equal(oci_store_lookup(s, "aaaa1", &r, &err), 0);
	assert_string_equal(r.manifest_digest, D1);
	oci_image_record_clear(&r);
	assert_int_equal(oci_store_lookup(s, "sha256:aaaa22", &r, &err), 0);
	assert_string_equal(r.name, "docker.io/library/alpine:3");
	oci_image_record_clear(&r);
	assert_int_equal(oci_store_lookup(s, "aaaa", &r, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_non_null(strstr(err.message, "ambiguous"));
	assert_int_equal(oci_store_lookup(s, "123", &r, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_int_equal(oci_store_lookup(s, "1234", &r, &err), 0);
	assert_string_equal(r.name, D3);
	oci_image_record_clear(&r);
	assert_int_equal(oci_store_lookup(s, D3, &r, &err), 0);
	oci_image_record_clear(&r);
	assert_int_equal(oci_store_lookup(s, "AAAA1", &r, &err), -1);
	assert_int_equal(err.code, ENOENT);

	/* Re-pointing a name. */
	assert_int_equal(oci_store_tag(s, "docker.io/library/busybox:1", D2, 2000, &err), 0);
	assert_int_equal(oci_store_lookup(s, "docker.io/library/busybox:1", &r, &err), 0);
	assert_string_equal(r.manifest_digest, D2);
	oci_image_record_clear(&r);

	/* Untagging. */
	assert_int_equal(oci_store_untag(s, "docker.io/library/busybox:latest", &err), 0);
	assert_int_equal(oci_store_untag(s, "docker.io/library/busybox:latest", &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_int_equal(oci_store_lookup(s, "docker.io/library/busybox:latest", &r, &err), -1);
	assert_int_equal(err.code, ENOENT);
	/* Now D1 is gone, "aaaa" names only D2. */
	assert_int_equal(oci_store_lookup(s, "aaaa", &r, &err), 0);
	assert_string_equal(r.manifest_digest, D2);
	oci_image_record_clear(&r);

	/* Bad input. */
	assert_int_equal(oci_store_tag(s, "", D1, 0, &err), -1);
	assert_int_equal(err.code, EINVAL);
	assert_int_equal(oci_store_tag(s, "x\ny", D1, 0, &err), -1);
	assert_int_equal(oci_store_tag(s, "x", "sha256:nope", 0, &err), -1);

	/* Persisted: another handle sees the same. */
	oci_store_close(s);
	s = open_store();
	assert_int_equal(oci_store_list(s, &list, &n, &err), 0);
	assert_int_equal(n, 3);
	oci_image_records_free(list, n);
	oci_store_close(s);
}

static void test_corrupt_images_json(void **state)
{
	(void)state;
	oci_store *s = open_store();
	capsa_error err = { 0 };
	oci_image_record *list = NULL;
	oci_image_record r;
	size_t n;
	char *path = pathf("%s/images.json", root);
	const char *garbage = "{\"version\": 1, \"images\": [ {\"name\": \"a\"";

	write_file(path, garbage, strlen(garbage));
	assert_int_equal(oci_store_list(s, &list, &n, &err), -1);
	assert_int_equal(err.code, EBADMSG);
	assert_non_null(strstr(err.message, path));
	assert_non_null(strstr(err.message, "corrupt"));
	assert_int_equal(oci_store_lookup(s, "a", &r, &err), -1);
	assert_int_equal(err.code, EBADMSG);
	/* Writers refuse too, so no name is silently dropped. */
	assert_int_equal(oci_store_tag(s, "b", D1, 1, &err), -1);
	assert_int_equal(err.code, EBADMSG);
	char buf[256] = { 0 };
	int fd = open(path, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), (ssize_t)strlen(garbage));
	close(fd);
	assert_string_equal(buf, garbage);

	/* Well-formed JSON with a bad record. */
	const char *bad = "{\"version\": 1, \"images\": [ {\"name\": \"a\", \"manifest\": \"sha256:0\", "
			  "\"created\": 1, \"size\": 2} ]}";
	write_file(path, bad, strlen(bad));
	assert_int_equal(oci_store_list(s, &list, &n, &err), -1);
	assert_int_equal(err.code, EBADMSG);
	assert_non_null(strstr(err.message, path));
	free(path);
	oci_store_close(s);
}

/* ---- garbage collection --------------------------------------------- */

static void put(oci_store *s, const char *text, char digest[OCI_DIGEST_STRING_SIZE])
{
	capsa_error err = { 0 };
	if (oci_store_put_blob(s, text, strlen(text), NULL, digest, &err) < 0)
		fail_msg("%s", err.message);
}

static void put_manifest(oci_store *s, const char *config, const char *layer, char digest[OCI_DIGEST_STRING_SIZE])
{
	char *json = pathf("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
			   "\"digest\":\"%s\",\"size\":2},\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
			   "\"size\":5}]}",
			   OCI_MEDIA_MANIFEST, OCI_MEDIA_CONFIG, config, OCI_MEDIA_LAYER_TAR, layer);
	put(s, json, digest);
	free(json);
}

static void touch_rootfs(oci_store *s, const char *digest)
{
	char *path = oci_store_rootfs_path(s, digest, NULL);
	write_file(path, "sqfs", 4);
	free(path);
}

static void test_gc(void **state)
{
	(void)state;
	oci_store *s = open_store();
	capsa_error err = { 0 };
	char config[OCI_DIGEST_STRING_SIZE], layer[OCI_DIGEST_STRING_SIZE], manifest[OCI_DIGEST_STRING_SIZE];
	char orphan[OCI_DIGEST_STRING_SIZE], old_config[OCI_DIGEST_STRING_SIZE], old_manifest[OCI_DIGEST_STRING_SIZE];
	oci_gc_stats stats;

	put(s, "{}", config);
	put(s, "layer", layer);
	put_manifest(s, config, layer, manifest);
	put(s, "orphan blob", orphan);
	put(s, "[]", old_config);
	put_manifest(s, old_config, layer, old_manifest);  /* shares the layer */
	assert_int_equal(oci_store_tag(s, "docker.io/library/app:1", manifest, 7, &err), 0);
	assert_int_equal(oci_store_tag(s, "docker.io/library/app:old", old_manifest, 7, &err), 0);
	assert_int_equal(oci_store_untag(s, "docker.io/library/app:old", &err), 0);
	touch_rootfs(s, manifest);
	touch_rootfs(s, old_manifest);
	char *builder_tmp = pathf("%s/rootfs/%s.sqfs.tmp-abcdef", root, oci_digest_hex(old_manifest));
	write_file(builder_tmp, "half", 4);
	age_file(builder_tmp, 2 * 3600);

	/* Partials: stale, fresh, stale but being written; a stale
	 * temporary file of another kind. */
	char stale[OCI_DIGEST_STRING_SIZE], fresh[OCI_DIGEST_STRING_SIZE], busy[OCI_DIGEST_STRING_SIZE];
	digest_of("stale", 5, stale);
	digest_of("fresh", 5, fresh);
	digest_of("busy", 4, busy);
	char *stale_p = partial_file(stale), *fresh_p = partial_file(fresh), *busy_p = partial_file(busy);
	write_file(stale_p, "sta", 3);
	age_file(stale_p, 2 * 3600);
	write_file(fresh_p, "fre", 3);
	write_file(busy_p, "bu", 2);
	age_file(busy_p, 2 * 3600);
	char *busy_lock = pathf("%s/tmp/%s.lock", root, oci_digest_hex(busy));
	int lock_fd = open(busy_lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	assert_true(lock_fd >= 0);
	assert_int_equal(flock(lock_fd, LOCK_EX), 0);
	char *stray_lock = pathf("%s/tmp/%s.lock", root, oci_digest_hex(stale));
	write_file(stray_lock, "", 0);
	char *old_tmp = pathf("%s/tmp/blob-123456", root);
	write_file(old_tmp, "abandoned", 9);
	age_file(old_tmp, 2 * 3600);

	struct stat old_manifest_st;
	char *old_manifest_path = blob_file(s, old_manifest);
	assert_int_equal(stat(old_manifest_path, &old_manifest_st), 0);
	free(old_manifest_path);

	/* Not while this handle uses the store. */
	assert_int_equal(oci_store_use_begin(s, &err), 0);
	assert_int_equal(oci_store_use_begin(s, &err), 0);
	oci_store_use_end(s);
	assert_int_equal(oci_store_gc(s, &stats, &err), -1);
	assert_int_equal(err.code, EBUSY);
	oci_store_use_end(s);

	assert_int_equal(oci_store_gc(s, &stats, &err), 0);
	assert_int_equal(stats.blobs_removed, 3);  /* orphan, old manifest, old config */
	assert_int_equal(stats.rootfs_removed, 1);
	assert_int_equal(stats.partials_removed, 3);  /* stale partial, old temporary, builder's file */
	/* blobs, root image, builder's file, stale partial, old temporary */
	assert_int_equal(stats.bytes_freed, strlen("orphan blob") + 2 + (uint64_t)old_manifest_st.st_size + 4 + 4 +
				   3 + 9);

	assert_true(oci_store_has_blob(s, config));
	assert_true(oci_store_has_blob(s, layer));
	assert_true(oci_store_has_blob(s, manifest));
	assert_false(oci_store_has_blob(s, orphan));
	assert_false(oci_store_has_blob(s, old_config));
	assert_false(oci_store_has_blob(s, old_manifest));
	char *kept = oci_store_rootfs_path(s, manifest, NULL), *gone = oci_store_rootfs_path(s, old_manifest, NULL);
	assert_true(exists(kept));
	assert_false(exists(gone));
	assert_false(exists(builder_tmp));
	assert_false(exists(stale_p));
	assert_true(exists(fresh_p));
	assert_true(exists(busy_p));
	assert_true(exists(busy_lock));
	assert_false(exists(stray_lock));
	assert_false(exists(old_tmp));
	close(lock_fd);

	/* A second run finds nothing more. */
	assert_int_equal(oci_store_gc(s, &stats, &err), 0);
	assert_int_equal(stats.blobs_removed + stats.rootfs_removed, 0);

	free(kept);
	free(gone);
	free(builder_tmp);
	free(stale_p);
	free(fresh_p);
	free(busy_p);
	free(busy_lock);
	free(stray_lock);
	free(old_tmp);
	oci_store_close(s);
}

/* A record whose manifest cannot be read: its blobs cannot be told from
 * garbage, so no blob is removed. */
static void test_gc_unreadable_manifest(void **state)
{
	(void)state;
	oci_store *s = open_store();
	capsa_error err = { 0 };
	char orphan[OCI_DIGEST_STRING_SIZE], broken[OCI_DIGEST_STRING_SIZE];
	oci_gc_stats stats;

	put(s, "orphan blob", orphan);
	put(s, "not a manifest", broken);
	assert_int_equal(oci_store_tag(s, "docker.io/library/broken:1", broken, 1, &err), 0);
	assert_int_equal(oci_store_tag(s, "docker.io/library/missing:1", D3, 1, &err), 0);
	touch_rootfs(s, orphan);
	assert_int_equal(oci_store_gc(s, &stats, &err), 0);
	assert_int_equal(stats.blobs_removed, 0);
	assert_int_equal(stats.rootfs_removed, 1);
	assert_true(oci_store_has_blob(s, orphan));
	assert_true(oci_store_has_blob(s, broken));
	oci_store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_layout, setup, teardown),
		cmocka_unit_test(test_default_root),
		cmocka_unit_test_setup_teardown(test_put_read_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_blob_on_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_digest_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_images_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_unreadable_manifest, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
