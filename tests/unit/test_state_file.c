/* The snapshot state file: round trips through the writer and reader, and
 * every kind of damaged or foreign file refused with a message that names
 * the file and what is wrong. Damage that a checksum would catch anyway is
 * also tested with the checksum recomputed, so the layout checks behind it
 * are exercised too. */
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
#include <openssl/evp.h>

#include "snapshot/state_file.h"

#define HEADER STATE_FILE_HEADER_SIZE
#define OFF_VERSION 8
#define OFF_COUNT 12
#define OFF_BODY_LEN 16
#define OFF_CHECKSUM 24

/* ---- helpers -------------------------------------------------------- */

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("message \"%s\" lacks \"%s\"", haystack, needle);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

/* Makes the header's checksum match the body again after a test damaged it. */
static void rehash(uint8_t *buf, size_t len)
{
	unsigned int md_len = 0;
	assert_true(EVP_Digest(buf + HEADER, len - HEADER, buf + OFF_CHECKSUM, &md_len, EVP_sha256(), NULL));
	assert_int_equal(md_len, 32);
}

static const uint8_t regs[144] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
static const char odd[] = "seven!"; /* 7 bytes with the NUL: needs one padding byte */

/* Three sections: vCPU registers #0 (144 bytes), device #3 (7 bytes),
 * vCPU registers #1 (empty). */
static void encode_small(uint8_t **buf, size_t *len)
{
	capsa_error err = { 0 };
	struct state_writer *w = state_writer_new(&err);

	assert_non_null(w);
	assert_int_equal(state_writer_add(w, STATE_VCPU_REGS, 0, regs, sizeof(regs), &err), 0);
	assert_int_equal(state_writer_add(w, STATE_DEVICE, 3, odd, sizeof(odd), &err), 0);
	assert_int_equal(state_writer_add(w, STATE_VCPU_REGS, 1, NULL, 0, &err), 0);
	assert_int_equal(state_writer_encode(w, buf, len, &err), 0);
	state_writer_free(w);
}

/* Offsets in encode_small's file. */
#define SEC0 HEADER
#define SEC1 (SEC0 + 16 + 144)
#define SEC2 (SEC1 + 16 + 8)
#define SMALL_LEN (SEC2 + 16)

/* from_buffer must refuse buf with a message holding "<buffer>" and word. */
static void assert_refused(const uint8_t *buf, size_t len, const char *word)
{
	capsa_error err = { 0 };
	struct state_reader *r = state_reader_from_buffer(buf, len, &err);

	if (r) {
		state_reader_free(r);
		fail_msg("accepted a file that should fail with \"%s\"", word);
	}
	assert_contains(err.message, "snapshot state <buffer>: ");
	assert_contains(err.message, word);
	assert_int_not_equal(err.code, 0);
}

/* ---- tests ---------------------------------------------------------- */

static void test_round_trip(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	uint8_t *buf;
	size_t len;

	encode_small(&buf, &len);
	assert_int_equal(len, SMALL_LEN);
	assert_memory_equal(buf, "CAPSASNP", 8);
	assert_int_equal(get32(buf + OFF_VERSION), STATE_FILE_VERSION);
	assert_int_equal(get32(buf + OFF_COUNT), 3);
	assert_int_equal(get32(buf + OFF_BODY_LEN), SMALL_LEN - HEADER);
	assert_int_equal(get32(buf + SEC1), STATE_DEVICE);
	assert_int_equal(get32(buf + SEC1 + 4), 3);
	assert_int_equal(get32(buf + SEC1 + 8), sizeof(odd));
	assert_int_equal(buf[SEC1 + 16 + 7], 0);

	struct state_reader *r = state_reader_from_buffer(buf, len, &err);
	assert_non_null(r);
	free(buf); /* the reader keeps its own copy */

	uint8_t got[144];
	assert_int_equal(state_reader_get(r, STATE_VCPU_REGS, 0, got, sizeof(got), &err), 0);
	assert_memory_equal(got, regs, sizeof(regs));
	assert_int_equal(state_reader_get(r, STATE_VCPU_REGS, 1, got, 0, &err), 0);

	size_t n = 99;
	const char *dev = state_reader_find(r, STATE_DEVICE, 3, &n);
	assert_non_null(dev);
	assert_int_equal(n, sizeof(odd));
	assert_string_equal(dev, odd);
	assert_int_equal((uintptr_t)dev % 8, 0);
	assert_non_null(state_reader_find(r, STATE_VCPU_REGS, 1, &n));
	assert_int_equal(n, 0);
	assert_null(state_reader_find(r, STATE_DEVICE, 0, &n));
	assert_null(state_reader_find(r, STATE_META, 0, NULL));
	state_reader_free(r);
}

static void test_empty_file_round_trip(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	struct state_writer *w = state_writer_new(&err);
	uint8_t *buf;
	size_t len;

	assert_non_null(w);
	assert_int_equal(state_writer_encode(w, &buf, &len, &err), 0);
	state_writer_free(w);
	assert_int_equal(len, HEADER);
	struct state_reader *r = state_reader_from_buffer(buf, len, &err);
	assert_non_null(r);
	assert_int_equal(state_reader_count(r, STATE_VCPU_REGS), 0);
	state_reader_free(r);
	free(buf);
}

static void test_count(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	struct state_writer *w = state_writer_new(&err);
	uint8_t *buf;
	size_t len;
	uint64_t v = 42;

	assert_non_null(w);
	for (uint32_t i = 0; i < 5; i++)
		assert_int_equal(state_writer_add(w, STATE_VCPU_SREGS, i * 7, &v, sizeof(v), &err), 0);
	assert_int_equal(state_writer_add(w, STATE_META, 0, &v, sizeof(v), &err), 0);
	assert_int_equal(state_writer_add(w, 999, 0, &v, 3, &err), 0); /* tags from newer builds pass through */
	assert_int_equal(state_writer_encode(w, &buf, &len, &err), 0);
	state_writer_free(w);

	struct state_reader *r = state_reader_from_buffer(buf, len, &err);
	free(buf);
	assert_non_null(r);
	assert_int_equal(state_reader_count(r, STATE_VCPU_SREGS), 5);
	assert_int_equal(state_reader_count(r, STATE_META), 1);
	assert_int_equal(state_reader_count(r, STATE_VCPU_REGS), 0);
	assert_int_equal(state_reader_count(r, 999), 1);
	assert_non_null(state_reader_find(r, STATE_VCPU_SREGS, 28, NULL));
	state_reader_free(r);
}

static void test_truncated_at_every_length(void **state)
{
	(void)state;
	uint8_t *buf;
	size_t len;

	encode_small(&buf, &len);
	for (size_t n = 0; n < len; n++)
		assert_refused(buf, n, "truncated");
	free(buf);
}

static void test_bad_magic(void **state)
{
	(void)state;
	uint8_t *buf;
	size_t len;

	encode_small(&buf, &len);
	buf[3] = 'X';
	assert_refused(buf, len, "bad magic");
	assert_refused(buf, 5, "bad magic");
	free(buf);
}

static void test_wrong_version(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	uint8_t *buf;
	size_t len;

	encode_small(&buf, &len);
	put32(buf + OFF_VERSION, 2);
	assert_null(state_reader_from_buffer(buf, len, &err));
	assert_string_equal(err.message, "snapshot state <buffer>: format version 2, this capsa reads version 1 "
			    "(bake the snapshot again)");
	free(buf);
}

static void test_flipped_body_byte(void **state)
{
	(void)state;
	uint8_t *buf;
	size_t len;

	encode_small(&buf, &len);
	for (size_t i = HEADER; i < len; i++) {
		buf[i] ^= 0x10;
		assert_refused(buf, len, "checksum mismatch");
		buf[i] ^= 0x10;
	}
	buf[OFF_CHECKSUM + 5] ^= 1;
	assert_refused(buf, len, "checksum mismatch");
	free(buf);
}

static void test_flipped_header_sizes(void **state)
{
	(void)state;
	uint8_t *buf;
	size_t len;

	encode_small(&buf, &len);
	put32(buf + OFF_COUNT, 4);
	assert_refused(buf, len, "announces 4 sections, the file holds 3");
	put32(buf + OFF_COUNT, 2);
	assert_refused(buf, len, "trailing bytes");
	put32(buf + OFF_COUNT, 0x01000003);
	assert_refused(buf, len, "more than the 4096 allowed");
	put32(buf + OFF_COUNT, 3);

	put64(buf + OFF_BODY_LEN, len - HEADER + 8);
	assert_refused(buf, len, "truncated");
	put64(buf + OFF_BODY_LEN, (uint64_t)1 << 63);
	assert_refused(buf, len, "truncated");
	put64(buf + OFF_BODY_LEN, len - HEADER - 8);
	assert_refused(buf, len, "trailing bytes");
	free(buf);
}

/* Damage inside the body with the checksum made to match again: what a
 * buggy writer could produce. */
static void test_section_length_past_end(void **state)
{
	(void)state;
	uint8_t *buf;
	size_t len;

	encode_small(&buf, &len);
	put64(buf + SEC2 + 8, 1);
	rehash(buf, len);
	assert_refused(buf, len, "section 'vCPU registers' #1 (1 bytes) runs past the end");
	put64(buf + SEC2 + 8, UINT64_MAX);
	rehash(buf, len);
	assert_refused(buf, len, "runs past the end");
	free(buf);

	/* The data fits but its padding does not. */
	capsa_error err = { 0 };
	struct state_writer *w = state_writer_new(&err);
	assert_non_null(w);
	assert_int_equal(state_writer_add(w, STATE_DEVICE, 1, odd, sizeof(odd), &err), 0);
	assert_int_equal(state_writer_encode(w, &buf, &len, &err), 0);
	state_writer_free(w);
	assert_int_equal(len, HEADER + 16 + 8);
	len--;
	put64(buf + OFF_BODY_LEN, len - HEADER);
	rehash(buf, len);
	assert_refused(buf, len, "section 'device' #1 (7 bytes) runs past the end");
	free(buf);
}

static void test_section_changes(void **state)
{
	(void)state;
	uint8_t *buf;
	size_t len;

	/* Growing device #3 from 7 to 8 bytes swallows its padding, so the
	 * file decodes and shows the extra zero byte. */
	encode_small(&buf, &len);
	put64(buf + SEC1 + 8, 8);
	rehash(buf, len);
	capsa_error err = { 0 };
	struct state_reader *r = state_reader_from_buffer(buf, len, &err);
	assert_non_null(r);
	size_t n;
	assert_non_null(state_reader_find(r, STATE_DEVICE, 3, &n));
	assert_int_equal(n, 8);
	state_reader_free(r);
	put64(buf + SEC1 + 8, 7);

	buf[SEC1 + 16 + 7] = 1;
	rehash(buf, len);
	assert_refused(buf, len, "section 'device' #3 has nonzero padding");
	buf[SEC1 + 16 + 7] = 0;

	put32(buf + SEC2 + 4, 0);
	rehash(buf, len);
	assert_refused(buf, len, "section 'vCPU registers' #0 appears twice");
	free(buf);
}

static void test_trailing_bytes_in_body(void **state)
{
	(void)state;
	uint8_t *buf;
	size_t len;

	encode_small(&buf, &len);
	buf = realloc(buf, len + 16);
	assert_non_null(buf);
	memset(buf + len, 0, 16);
	put64(buf + OFF_BODY_LEN, len + 16 - HEADER);
	rehash(buf, len + 16);
	assert_refused(buf, len + 16, "16 trailing bytes after the last of 3 sections");
	free(buf);
}

static void test_get_wrong_size(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	struct state_writer *w = state_writer_new(&err);
	uint8_t *buf;
	size_t len;
	uint8_t data[144] = { 0 };

	assert_non_null(w);
	assert_int_equal(state_writer_add(w, STATE_VCPU_REGS, 0, data, 120, &err), 0);
	assert_int_equal(state_writer_encode(w, &buf, &len, &err), 0);
	state_writer_free(w);
	struct state_reader *r = state_reader_from_buffer(buf, len, &err);
	free(buf);
	assert_non_null(r);

	memset(data, 0xaa, sizeof(data));
	assert_int_equal(state_reader_get(r, STATE_VCPU_REGS, 0, data, sizeof(data), &err), -1);
	assert_string_equal(err.message, "snapshot state <buffer>: section 'vCPU registers' #0 has 120 bytes, this "
			    "capsa expects 144 (the snapshot was made by another capsa version; bake it again)");
	assert_int_equal(data[0], 0xaa); /* nothing copied */
	state_reader_free(r);
}

static void test_get_missing(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	uint8_t *buf;
	size_t len;
	uint8_t out[144];

	encode_small(&buf, &len);
	struct state_reader *r = state_reader_from_buffer(buf, len, &err);
	free(buf);
	assert_non_null(r);
	assert_int_equal(state_reader_get(r, STATE_VCPU_REGS, 2, out, sizeof(out), &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.message, "snapshot state <buffer>: no section 'vCPU registers' #2 (");
	assert_int_equal(state_reader_get(r, STATE_META, 0, out, 8, &err), -1);
	assert_contains(err.message, "no section 'metadata' #0");
	state_reader_free(r);
}

static void test_save_and_open(void **state)
{
	(void)state;
	char dir[] = "/tmp/test-state-file-XXXXXX";
	char path[64], missing[64], big[64], cut[64];
	capsa_error err = { 0 };
	struct stat st;
	uint8_t *buf;
	size_t len;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state", dir);
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	snprintf(big, sizeof(big), "%s/big", dir);
	snprintf(cut, sizeof(cut), "%s/cut", dir);

	struct state_writer *w = state_writer_new(&err);
	assert_non_null(w);
	assert_int_equal(state_writer_add(w, STATE_DEVICE, 0, odd, sizeof(odd), &err), 0);
	assert_int_equal(state_writer_save(w, path, &err), 0);
	assert_int_equal(state_writer_encode(w, &buf, &len, &err), 0);
	state_writer_free(w);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, len);

	struct state_reader *r = state_reader_open(path, &err);
	assert_non_null(r);
	char out[sizeof(odd)];
	assert_int_equal(state_reader_get(r, STATE_DEVICE, 0, out, sizeof(out), &err), 0);
	assert_string_equal(out, odd);
	assert_int_equal(state_reader_get(r, STATE_DEVICE, 0, out, 3, &err), -1);
	assert_contains(err.message, path); /* errors after opening name the file too */
	state_reader_free(r);

	assert_null(state_reader_open(missing, &err));
	assert_int_equal(err.code, ENOENT);
	assert_contains(err.message, missing);

	int fd = open(cut, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len - 1), (ssize_t)len - 1);
	close(fd);
	assert_null(state_reader_open(cut, &err));
	assert_contains(err.message, "snapshot state ");
	assert_contains(err.message, cut);
	assert_contains(err.message, "truncated");

	fd = open(big, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(ftruncate(fd, (off_t)STATE_FILE_MAX_SIZE + 1), 0); /* sparse */
	close(fd);
	assert_null(state_reader_open(big, &err));
	assert_int_equal(err.code, EFBIG);
	assert_contains(err.message, big);
	assert_contains(err.message, "larger than");

	assert_null(state_reader_open(dir, &err));
	assert_contains(err.message, "not a regular file");

	snprintf(missing, sizeof(missing), "%s/no/such/dir", dir);
	w = state_writer_new(&err);
	assert_non_null(w);
	assert_int_equal(state_writer_save(w, missing, &err), -1);
	assert_contains(err.message, "saving snapshot state");
	assert_contains(err.message, missing);
	state_writer_free(w);

	free(buf);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(unlink(cut), 0);
	assert_int_equal(unlink(big), 0);
	assert_int_equal(rmdir(dir), 0);
}

static void test_writer_limits(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	struct state_writer *w = state_writer_new(&err);
	uint8_t byte = 7;

	assert_non_null(w);
	assert_int_equal(state_writer_add(w, STATE_VCPU_LAPIC, 2, &byte, 1, &err), 0);
	assert_int_equal(state_writer_add(w, STATE_VCPU_LAPIC, 2, &byte, 1, &err), -1);
	assert_int_equal(err.code, EEXIST);
	assert_contains(err.message, "section 'vCPU local APIC' #2 added twice");
	assert_int_equal(state_writer_add(w, STATE_VCPU_LAPIC, 3, NULL, 5, &err), -1);
	assert_contains(err.message, "no data");

	/* The size check comes before the data is read, so a 1-byte buffer
	 * stands in for a huge one. */
	assert_int_equal(state_writer_add(w, STATE_DEVICE, 0, &byte, STATE_FILE_MAX_SIZE, &err), -1);
	assert_int_equal(err.code, EFBIG);
	assert_contains(err.message, "larger than 64 MiB");
	assert_int_equal(state_writer_add(w, STATE_DEVICE, 0, &byte, SIZE_MAX, &err), -1);
	assert_contains(err.message, "larger than 64 MiB");

	for (uint32_t i = 1; i < STATE_FILE_MAX_SECTIONS; i++)
		assert_int_equal(state_writer_add(w, STATE_DEVICE, i, NULL, 0, &err), 0);
	assert_int_equal(state_writer_add(w, STATE_DEVICE, 0, NULL, 0, &err), -1);
	assert_int_equal(err.code, E2BIG);
	assert_contains(err.message, "more than 4096 sections");

	/* The failed adds left nothing behind: the file holds 4096 sections. */
	uint8_t *buf;
	size_t len;
	assert_int_equal(state_writer_encode(w, &buf, &len, &err), 0);
	state_writer_free(w);
	struct state_reader *r = state_reader_from_buffer(buf, len, &err);
	free(buf);
	assert_non_null(r);
	assert_int_equal(state_reader_count(r, STATE_DEVICE), STATE_FILE_MAX_SECTIONS - 1);
	assert_int_equal(state_reader_count(r, STATE_VCPU_LAPIC), 1);
	state_reader_free(r);
}

static void test_reader_size_limit(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	uint8_t *big = calloc(1, STATE_FILE_MAX_SIZE + 1);

	assert_non_null(big);
	assert_null(state_reader_from_buffer(big, STATE_FILE_MAX_SIZE + 1, &err));
	assert_int_equal(err.code, EFBIG);
	assert_contains(err.message, "<buffer>");
	assert_contains(err.message, "larger than");
	free(big);
}

static void test_tag_names(void **state)
{
	(void)state;
	assert_string_equal(state_tag_name(STATE_VCPU_REGS), "vCPU registers");
	assert_string_equal(state_tag_name(STATE_DEVICE), "device");
	assert_string_equal(state_tag_name(0), "unknown");
	assert_string_equal(state_tag_name(STATE_TAG_MAX), "unknown");
	for (uint32_t t = 1; t < STATE_TAG_MAX; t++)
		assert_string_not_equal(state_tag_name(t), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_empty_file_round_trip),
		cmocka_unit_test(test_count),
		cmocka_unit_test(test_truncated_at_every_length),
		cmocka_unit_test(test_bad_magic),
		cmocka_unit_test(test_wrong_version),
		cmocka_unit_test(test_flipped_body_byte),
		cmocka_unit_test(test_flipped_header_sizes),
		cmocka_unit_test(test_section_length_past_end),
		cmocka_unit_test(test_section_changes),
		cmocka_unit_test(test_trailing_bytes_in_body),
		cmocka_unit_test(test_get_wrong_size),
		cmocka_unit_test(test_get_missing),
		cmocka_unit_test(test_save_and_open),
		cmocka_unit_test(test_writer_limits),
		cmocka_unit_test(test_reader_size_limit),
		cmocka_unit_test(test_tag_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
