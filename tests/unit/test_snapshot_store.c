/* The snapshot store: publishing, finding by name, and pruning automatic
 * snapshots whose root image is gone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/snapshot_store.h"
#include "util/cleanup.h"
#include "test_tmpdir.h"

struct store {
	char dir[256];
	char *root_image;
};

static int setup(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	assert_int_equal(tmpdir_create(s->dir, sizeof(s->dir), "snapshot-store"), 0);
	s->root_image = pathf("%s/root.sqfs", s->dir);
	write_file(s->root_image, "hsqs", 4);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct store *s = *state;
	remove_tree(s->dir);
	free(s->root_image);
	free(s);
	return 0;
}

static int write_payload(const char *dir, void *opaque, capsa_error *err)
{
	(void)opaque;
	(void)err;
	_cleanup_free_ char *state = pathf("%s/state", dir);
	_cleanup_free_ char *memory = pathf("%s/memory", dir);
	write_file(state, "state", 5);
	write_file(memory, "memory", 6);
	return 0;
}

/* Publishes a snapshot of s->root_image; automatic ones have a fingerprint. */
static void publish(struct store *s, const char *name, bool automatic)
{
	capsa_error err = { 0 };
	char *id = snapshot_file_identity(s->root_image, &err);
	assert_non_null(id);
	struct snapshot_info info = {
		.name = (char *)name,
		.image = "busybox:latest",
		.root_image = s->root_image,
		.root_image_id = id,
		.fingerprint = automatic ? "0123456789abcdef01234567" : "",
		.memory_mib = 512,
		.cpus = 1,
		.created = 1,
	};
	assert_int_equal(snapshot_publish(s->dir, &info, false, write_payload, NULL, &err), 0);
	free(id);
}

static void test_exists_after_publish_only(void **state)
{
	struct store *s = *state;
	assert_false(snapshot_exists(s->dir, "web"));
	publish(s, "web", false);
	assert_true(snapshot_exists(s->dir, "web"));
	/* An image reference is never a snapshot name. */
	assert_false(snapshot_exists(s->dir, "docker.io/library/busybox:latest"));
	assert_false(snapshot_exists(s->dir, "../web"));
	assert_false(snapshot_exists(s->dir, ""));
}

static void test_prune_keeps_snapshots_whose_root_image_is_there(void **state)
{
	struct store *s = *state;
	capsa_error err = { 0 };
	uint64_t freed = 0;
	publish(s, "auto-0123456789abcdef01234567", true);
	publish(s, "web", false);
	assert_int_equal(snapshot_prune_stale(s->dir, &freed, &err), 0);
	assert_true(snapshot_exists(s->dir, "auto-0123456789abcdef01234567"));
	assert_true(snapshot_exists(s->dir, "web"));
	assert_int_equal(freed, 0);
}

static void test_prune_removes_automatic_snapshots_of_a_gone_root_image(void **state)
{
	struct store *s = *state;
	capsa_error err = { 0 };
	uint64_t freed = 0;
	publish(s, "auto-0123456789abcdef01234567", true);
	publish(s, "web", false);
	assert_int_equal(unlink(s->root_image), 0);
	assert_int_equal(snapshot_prune_stale(s->dir, &freed, &err), 0);
	assert_false(snapshot_exists(s->dir, "auto-0123456789abcdef01234567"));
	/* A named snapshot is the user's: it stays (and fails clearly if run). */
	assert_true(snapshot_exists(s->dir, "web"));
	assert_true(freed > 0);
}

static void test_prune_removes_automatic_snapshots_of_a_replaced_root_image(void **state)
{
	struct store *s = *state;
	capsa_error err = { 0 };
	publish(s, "auto-0123456789abcdef01234567", true);
	/* Another file under the same name: a different size and inode. */
	assert_int_equal(unlink(s->root_image), 0);
	write_file(s->root_image, "hsqs-other", 10);
	assert_int_equal(snapshot_prune_stale(s->dir, NULL, &err), 0);
	assert_false(snapshot_exists(s->dir, "auto-0123456789abcdef01234567"));
}

static void test_prune_of_an_empty_store(void **state)
{
	struct store *s = *state;
	capsa_error err = { 0 };
	uint64_t freed = 0;
	assert_int_equal(snapshot_prune_stale(s->dir, &freed, &err), 0);
	assert_int_equal(freed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_exists_after_publish_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_keeps_snapshots_whose_root_image_is_there, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_removes_automatic_snapshots_of_a_gone_root_image, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_prune_removes_automatic_snapshots_of_a_replaced_root_image, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_prune_of_an_empty_store, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
