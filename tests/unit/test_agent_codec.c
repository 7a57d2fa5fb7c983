/* The agent protocol codec: every message encodes and decodes back to
 * itself, encoders size frames like snprintf, and decoders refuse every
 * malformed payload (cut short, too long, bad counts, strings without
 * their NUL, values out of range) instead of reading past it. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent_codec.h"

static uint8_t frame[AGENT_MAX_REQUEST + AGENT_HEADER_SIZE + 64];

/* Checks the header of an encoded frame of n bytes and returns its payload
 * (of n - AGENT_HEADER_SIZE bytes). */
static const uint8_t *payload_of(size_t n, uint16_t type)
{
	struct agent_header h;

	assert_true(n >= AGENT_HEADER_SIZE);
	assert_int_equal(agent_decode_header(frame, &h), 0);
	assert_int_equal(h.type, type);
	assert_int_equal(h.flags, 0);
	assert_int_equal(h.len, n - AGENT_HEADER_SIZE);
	return frame + AGENT_HEADER_SIZE;
}

static void put_header(uint8_t *buf, uint32_t len, uint16_t type, uint16_t flags)
{
	buf[0] = (uint8_t)len;
	buf[1] = (uint8_t)(len >> 8);
	buf[2] = (uint8_t)(len >> 16);
	buf[3] = (uint8_t)(len >> 24);
	buf[4] = (uint8_t)type;
	buf[5] = (uint8_t)(type >> 8);
	buf[6] = (uint8_t)flags;
	buf[7] = (uint8_t)(flags >> 8);
}

static void test_header(void **state)
{
	struct agent_header h;
	uint8_t raw[8];

	(void)state;
	put_header(raw, 5, AGENT_STDOUT, 0);
	assert_int_equal(agent_decode_header(raw, &h), 0);
	assert_int_equal(h.len, 5);
	assert_int_equal(h.type, AGENT_STDOUT);

	/* Little-endian on the wire whatever the host. */
	assert_int_equal(agent_encode_header(raw, sizeof(raw), AGENT_DATA, 0x0102), AGENT_HEADER_SIZE);
	assert_memory_equal(raw, "\x02\x01\x00\x00\x30\x00\x00\x00", 8);

	put_header(raw, 0, 0, 0);
	assert_int_equal(agent_decode_header(raw, &h), -1);
	assert_int_equal(errno, EPROTO);
	put_header(raw, 0, 999, 0);
	assert_int_equal(agent_decode_header(raw, &h), -1);
	put_header(raw, 0, AGENT_PING, 1);  /* reserved flags */
	assert_int_equal(agent_decode_header(raw, &h), -1);
	put_header(raw, AGENT_MAX_PAYLOAD + 1, AGENT_STDOUT, 0);
	assert_int_equal(agent_decode_header(raw, &h), -1);
	put_header(raw, AGENT_MAX_PAYLOAD, AGENT_STDOUT, 0);
	assert_int_equal(agent_decode_header(raw, &h), 0);
	put_header(raw, AGENT_MAX_REQUEST, AGENT_EXEC, 0);
	assert_int_equal(agent_decode_header(raw, &h), 0);
	put_header(raw, AGENT_MAX_REQUEST + 1, AGENT_EXEC, 0);
	assert_int_equal(agent_decode_header(raw, &h), -1);
	put_header(raw, 0xffffffff, AGENT_EXEC, 0);
	assert_int_equal(agent_decode_header(raw, &h), -1);

	assert_int_equal(agent_encode_header(raw, sizeof(raw), AGENT_STDOUT, AGENT_MAX_PAYLOAD + 1), 0);
	assert_int_equal(agent_encode_header(raw, sizeof(raw), 999, 1), 0);
	assert_string_equal(agent_msg_name(AGENT_EXEC), "EXEC");
	assert_string_equal(agent_msg_name(999), "unknown");
}

static void test_empty_and_u32(void **state)
{
	const uint16_t empty[] = { AGENT_PING, AGENT_OK, AGENT_STDIN_EOF, AGENT_END };
	uint32_t v;
	int signo;

	(void)state;
	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		size_t n = agent_encode_empty(frame, sizeof(frame), empty[i]);
		assert_int_equal(agent_decode_empty(payload_of(n, empty[i]), n - AGENT_HEADER_SIZE), 0);
	}
	assert_int_equal(agent_encode_empty(frame, sizeof(frame), AGENT_EXEC), 0);
	assert_int_equal(agent_decode_empty("x", 1), -1);

	size_t n = agent_encode_u32(frame, sizeof(frame), AGENT_STARTED, 0xdeadbeef);
	assert_int_equal(agent_decode_u32(payload_of(n, AGENT_STARTED), n - AGENT_HEADER_SIZE, &v), 0);
	assert_int_equal(v, 0xdeadbeef);
	n = agent_encode_u32(frame, sizeof(frame), AGENT_PONG, AGENT_PROTOCOL_VERSION);
	assert_int_equal(agent_decode_u32(payload_of(n, AGENT_PONG), n - AGENT_HEADER_SIZE, &v), 0);
	assert_int_equal(v, AGENT_PROTOCOL_VERSION);
	n = agent_encode_u32(frame, sizeof(frame), AGENT_SIGNAL, 15);
	assert_int_equal(agent_decode_signal(payload_of(n, AGENT_SIGNAL), n - AGENT_HEADER_SIZE, &signo), 0);
	assert_int_equal(signo, 15);
	n = agent_encode_u32(frame, sizeof(frame), AGENT_WORKLOAD_SIGNAL, AGENT_SIGNAL_MAX);
	assert_int_equal(agent_decode_signal(payload_of(n, AGENT_WORKLOAD_SIGNAL), n - AGENT_HEADER_SIZE, &signo), 0);

	assert_int_equal(agent_encode_u32(frame, sizeof(frame), AGENT_SIGNAL, 0), 0);
	assert_int_equal(agent_encode_u32(frame, sizeof(frame), AGENT_SIGNAL, AGENT_SIGNAL_MAX + 1), 0);
	assert_int_equal(agent_encode_u32(frame, sizeof(frame), AGENT_STDOUT, 1), 0);
	assert_int_equal(agent_decode_u32("\1\0\0", 3, &v), -1);
	assert_int_equal(agent_decode_u32("\1\0\0\0\0", 5, &v), -1);
	assert_int_equal(agent_decode_signal("\0\0\0\0", 4, &signo), -1);
	assert_int_equal(agent_decode_signal("\x41\0\0\0", 4, &signo), -1);
}

static void test_sizing(void **state)
{
	uint8_t small[16];

	(void)state;
	/* Like snprintf: the length needed whatever the room, nothing written past it. */
	assert_int_equal(agent_encode_path(NULL, 0, AGENT_STAT, "/etc/passwd"), AGENT_HEADER_SIZE + 12);
	for (size_t cap = 0; cap < 12; cap++) {
		memset(small, 0xaa, sizeof(small));
		assert_int_equal(agent_encode_u32(small, cap, AGENT_STARTED, 7), AGENT_HEADER_SIZE + 4);
		for (size_t i = cap; i < sizeof(small); i++)
			assert_int_equal(small[i], 0xaa);
	}
	assert_int_equal(agent_encode_error(small, 2, EIO, "x"), AGENT_HEADER_SIZE + 6);
}

static void test_exec(void **state)
{
	const char *argv[] = { "sh", "-c", "echo hi", "", NULL };
	const char *env[] = { "PATH=/bin", "A=", NULL };
	struct agent_exec_request req = {
		.argv = argv, .env = env, .cwd = "/tmp", .user = "nobody:nogroup",
		.flags = AGENT_EXEC_TTY | AGENT_EXEC_STDIN, .rows = 24, .cols = 80, .timeout_ms = 5000,
	};
	struct agent_exec_request got;
	size_t n = agent_encode_exec(NULL, 0, &req);

	(void)state;
	assert_int_equal(agent_encode_exec(frame, sizeof(frame), &req), n);
	assert_int_equal(agent_decode_exec(payload_of(n, AGENT_EXEC), n - AGENT_HEADER_SIZE, &got), 0);
	for (int i = 0; argv[i]; i++)
		assert_string_equal(got.argv[i], argv[i]);
	assert_null(got.argv[4]);
	assert_string_equal(got.env[0], "PATH=/bin");
	assert_string_equal(got.env[1], "A=");
	assert_null(got.env[2]);
	assert_string_equal(got.cwd, "/tmp");
	assert_string_equal(got.user, "nobody:nogroup");
	assert_int_equal(got.flags, req.flags);
	assert_int_equal(got.rows, 24);
	assert_int_equal(got.cols, 80);
	assert_int_equal(got.timeout_ms, 5000);
	agent_exec_request_free(&got);

	/* Defaults: no env, cwd, user. */
	req = (struct agent_exec_request){ .argv = argv };
	n = agent_encode_exec(frame, sizeof(frame), &req);
	assert_int_equal(agent_decode_exec(payload_of(n, AGENT_EXEC), n - AGENT_HEADER_SIZE, &got), 0);
	assert_null(got.env[0]);
	assert_string_equal(got.cwd, "");
	assert_string_equal(got.user, "");
	agent_exec_request_free(&got);

	/* What cannot be sent. */
	const char *empty_argv[] = { NULL }, *blank_argv[] = { "", NULL };
	req = (struct agent_exec_request){ .argv = empty_argv };
	assert_int_equal(agent_encode_exec(frame, sizeof(frame), &req), 0);
	req.argv = blank_argv;
	assert_int_equal(agent_encode_exec(frame, sizeof(frame), &req), 0);
	req = (struct agent_exec_request){ .argv = argv, .cwd = "relative" };
	assert_int_equal(agent_encode_exec(frame, sizeof(frame), &req), 0);
	req = (struct agent_exec_request){ .argv = argv, .flags = 1 << 7 };
	assert_int_equal(agent_encode_exec(frame, sizeof(frame), &req), 0);
	req = (struct agent_exec_request){ .argv = NULL };
	assert_int_equal(agent_encode_exec(frame, sizeof(frame), &req), 0);

	/* Over the request cap. */
	char *big = malloc(AGENT_MAX_REQUEST);
	assert_non_null(big);
	memset(big, 'x', AGENT_MAX_REQUEST - 1);
	big[AGENT_MAX_REQUEST - 1] = '\0';
	const char *big_argv[] = { big, NULL };
	req = (struct agent_exec_request){ .argv = big_argv };
	assert_int_equal(agent_encode_exec(NULL, 0, &req), 0);
	free(big);
}

/* A valid EXEC payload built by hand, for the malformed variants below. */
static size_t exec_payload(uint8_t *p, uint32_t flags, uint32_t argc, const char *strings, size_t strings_len)
{
	size_t n = 0;

	memcpy(p + n, &flags, 4), n += 4;          /* flags (the test host is little-endian) */
	memcpy(p + n, "\x18\x00\x50\x00", 4), n += 4;  /* rows, cols */
	memset(p + n, 0, 4), n += 4;               /* timeout */
	memcpy(p + n, &argc, 4), n += 4;
	memcpy(p + n, strings, strings_len), n += strings_len;
	return n;
}

static void test_exec_malformed(void **state)
{
	struct agent_exec_request got;
	uint8_t p[256];
	size_t n;

	(void)state;
	/* argv "ls", env {}, cwd "", user "" */
	static const char good[] = "ls\0\0\0\0\0\0\0";
	n = exec_payload(p, 0, 1, good, sizeof(good) - 1);
	assert_int_equal(agent_decode_exec(p, n, &got), 0);
	assert_string_equal(got.argv[0], "ls");
	agent_exec_request_free(&got);

	/* Every proper prefix is cut short. */
	for (size_t cut = 0; cut < n; cut++) {
		assert_int_equal(agent_decode_exec(p, cut, &got), -1);
		assert_int_equal(errno, EPROTO);
	}
	assert_int_equal(agent_decode_exec(NULL, 0, &got), -1);
	/* A trailing byte. */
	p[n] = 0;
	assert_int_equal(agent_decode_exec(p, n + 1, &got), -1);

	/* Counts larger than the payload: refused before any allocation. */
	n = exec_payload(p, 0, 0xffffffff, good, sizeof(good) - 1);
	assert_int_equal(agent_decode_exec(p, n, &got), -1);
	n = exec_payload(p, 0, 2, good, sizeof(good) - 1);
	assert_int_equal(agent_decode_exec(p, n, &got), -1);
	n = exec_payload(p, 0, 1, "ls\0\xff\xff\xff\x7f\0\0", 9);  /* envc */
	assert_int_equal(agent_decode_exec(p, n, &got), -1);
	/* No argv at all, or an empty argv[0]. */
	n = exec_payload(p, 0, 0, "\0\0\0\0\0\0", 6);
	assert_int_equal(agent_decode_exec(p, n, &got), -1);
	n = exec_payload(p, 0, 1, "\0\0\0\0\0\0\0", 7);
	assert_int_equal(agent_decode_exec(p, n, &got), -1);
	/* The last string without its NUL. */
	n = exec_payload(p, 0, 1, "ls\0\0\0\0\0\0root", 12);
	assert_int_equal(agent_decode_exec(p, n, &got), -1);
	/* Unknown flags; a relative cwd. */
	n = exec_payload(p, 4, 1, good, sizeof(good) - 1);
	assert_int_equal(agent_decode_exec(p, n, &got), -1);
	n = exec_payload(p, 0, 1, "ls\0\0\0\0\0tmp\0\0", 12);
	assert_int_equal(agent_decode_exec(p, n, &got), -1);
	/* An env entry running into the end. */
	n = exec_payload(p, 0, 1, "ls\0\1\0\0\0A=1", 10);
	assert_int_equal(agent_decode_exec(p, n, &got), -1);
}

static void test_error(void **state)
{
	struct agent_error e;
	size_t n = agent_encode_error(frame, sizeof(frame), ENOENT, "open /x: No such file");
	char *long_msg;

	(void)state;
	assert_int_equal(agent_decode_error(payload_of(n, AGENT_ERROR), n - AGENT_HEADER_SIZE, &e), 0);
	assert_int_equal(e.code, ENOENT);
	assert_string_equal(e.message, "open /x: No such file");

	/* Codes out of range become EIO; long messages are cut. */
	n = agent_encode_error(frame, sizeof(frame), -3, NULL);
	assert_int_equal(agent_decode_error(payload_of(n, AGENT_ERROR), n - AGENT_HEADER_SIZE, &e), 0);
	assert_int_equal(e.code, EIO);
	assert_string_equal(e.message, "");
	long_msg = malloc(5000);
	assert_non_null(long_msg);
	memset(long_msg, 'm', 4999);
	long_msg[4999] = '\0';
	n = agent_encode_error(frame, sizeof(frame), EIO, long_msg);
	assert_int_equal(agent_decode_error(payload_of(n, AGENT_ERROR), n - AGENT_HEADER_SIZE, &e), 0);
	assert_int_equal(strlen(e.message), AGENT_ERROR_MESSAGE_MAX - 1);

	assert_int_equal(agent_decode_error("\2\0\0\0abc", 7, &e), -1);      /* no NUL */
	assert_int_equal(agent_decode_error("\0\0\0\0abc", 8, &e), -1);      /* code 0 */
	assert_int_equal(agent_decode_error("\2\0\0\0a\0b\0", 8, &e), -1);   /* trailing */
	memcpy(long_msg, "\2\0\0\0", 4);
	assert_int_equal(agent_decode_error(long_msg, 5000, &e), -1);      /* too long */
	free(long_msg);
}

static void test_resize_exit_stat(void **state)
{
	struct agent_exit ex = { .exit_code = 137, .signal = 9, .duration_us = 1ull << 40,
				 .peak_rss_kib = 123456, .flags = AGENT_EXIT_TIMED_OUT }, got_ex;
	struct agent_stat_result st = { .mode = 0100644, .uid = 65534, .gid = 4, .size = 1ull << 33,
					.mtime_sec = -5, .mtime_nsec = 999999999 }, got_st;
	uint16_t rows, cols;
	size_t n;

	(void)state;
	n = agent_encode_resize(frame, sizeof(frame), 50, 132);
	assert_int_equal(agent_decode_resize(payload_of(n, AGENT_RESIZE), n - AGENT_HEADER_SIZE, &rows, &cols), 0);
	assert_int_equal(rows, 50);
	assert_int_equal(cols, 132);
	assert_int_equal(agent_decode_resize("\1\0\2", 3, &rows, &cols), -1);

	n = agent_encode_exit(frame, sizeof(frame), &ex);
	assert_int_equal(agent_decode_exit(payload_of(n, AGENT_EXIT), n - AGENT_HEADER_SIZE, &got_ex), 0);
	assert_int_equal(got_ex.exit_code, ex.exit_code);
	assert_int_equal(got_ex.signal, ex.signal);
	assert_int_equal(got_ex.duration_us, ex.duration_us);
	assert_int_equal(got_ex.peak_rss_kib, ex.peak_rss_kib);
	assert_int_equal(got_ex.flags, ex.flags);
	ex.exit_code = -1;  /* negative codes survive the u32 */
	n = agent_encode_exit(frame, sizeof(frame), &ex);
	assert_int_equal(agent_decode_exit(payload_of(n, AGENT_EXIT), n - AGENT_HEADER_SIZE, &got_ex), 0);
	assert_int_equal(got_ex.exit_code, -1);
	ex.flags = 2;
	assert_int_equal(agent_encode_exit(frame, sizeof(frame), &ex), 0);
	uint8_t bad[28] = { 0 };
	bad[4] = 65;  /* signal out of range */
	assert_int_equal(agent_decode_exit(bad, sizeof(bad), &got_ex), -1);
	bad[4] = 0;
	assert_int_equal(agent_decode_exit(bad, sizeof(bad), &got_ex), 0);
	assert_int_equal(agent_decode_exit(bad, sizeof(bad) - 1, &got_ex), -1);
	bad[24] = 2;  /* unknown flag */
	assert_int_equal(agent_decode_exit(bad, sizeof(bad), &got_ex), -1);

	n = agent_encode_stat_result(frame, sizeof(frame), &st);
	assert_int_equal(agent_decode_stat_result(payload_of(n, AGENT_STAT_RESULT), n - AGENT_HEADER_SIZE, &got_st), 0);
	assert_int_equal(got_st.mode, st.mode);
	assert_int_equal(got_st.uid, st.uid);
	assert_int_equal(got_st.gid, st.gid);
	assert_int_equal(got_st.size, st.size);
	assert_int_equal(got_st.mtime_sec, st.mtime_sec);
	assert_int_equal(got_st.mtime_nsec, st.mtime_nsec);
	uint8_t bad_st[32];
	memset(bad_st, 0xff, sizeof(bad_st));  /* nsec out of range */
	assert_int_equal(agent_decode_stat_result(bad_st, sizeof(bad_st), &got_st), -1);
	assert_int_equal(agent_decode_stat_result(bad_st, 31, &got_st), -1);
}

static void test_paths_and_file_write(void **state)
{
	struct agent_file_write fw = { .path = "/etc/motd", .mode = 04755, .uid = AGENT_ID_KEEP, .gid = 7 }, got;
	const char *path;
	size_t n;
	char *long_path;

	(void)state;
	n = agent_encode_path(frame, sizeof(frame), AGENT_FILE_READ, "/a b/c");
	assert_int_equal(agent_decode_path(payload_of(n, AGENT_FILE_READ), n - AGENT_HEADER_SIZE, &path), 0);
	assert_string_equal(path, "/a b/c");
	assert_int_equal(agent_encode_path(frame, sizeof(frame), AGENT_FILE_READ, "relative"), 0);
	assert_int_equal(agent_encode_path(frame, sizeof(frame), AGENT_FILE_READ, ""), 0);
	assert_int_equal(agent_encode_path(frame, sizeof(frame), AGENT_FILE_READ, NULL), 0);
	assert_int_equal(agent_encode_path(frame, sizeof(frame), AGENT_EXEC, "/x"), 0);
	assert_int_equal(agent_decode_path("/x", 2, &path), -1);     /* no NUL */
	assert_int_equal(agent_decode_path("x\0", 2, &path), -1);    /* relative */
	assert_int_equal(agent_decode_path("/x\0\0", 4, &path), -1); /* trailing */
	assert_int_equal(agent_decode_path("", 0, &path), -1);

	long_path = malloc(AGENT_PATH_MAX + 1);
	assert_non_null(long_path);
	memset(long_path, 'p', AGENT_PATH_MAX);
	long_path[0] = '/';
	long_path[AGENT_PATH_MAX - 1] = '\0';  /* the longest allowed */
	assert_true(agent_encode_path(frame, sizeof(frame), AGENT_STAT, long_path) > 0);
	long_path[AGENT_PATH_MAX - 1] = 'p';
	long_path[AGENT_PATH_MAX] = '\0';
	assert_int_equal(agent_encode_path(frame, sizeof(frame), AGENT_STAT, long_path), 0);
	assert_int_equal(agent_decode_path(long_path, AGENT_PATH_MAX + 1, &path), -1);
	free(long_path);

	n = agent_encode_file_write(frame, sizeof(frame), &fw);
	assert_int_equal(agent_decode_file_write(payload_of(n, AGENT_FILE_WRITE), n - AGENT_HEADER_SIZE, &got), 0);
	assert_string_equal(got.path, "/etc/motd");
	assert_int_equal(got.mode, 04755);
	assert_int_equal(got.uid, AGENT_ID_KEEP);
	assert_int_equal(got.gid, 7);
	fw.mode = 0100644;  /* type bits are not a mode to set */
	assert_int_equal(agent_encode_file_write(frame, sizeof(frame), &fw), 0);
	assert_int_equal(agent_decode_file_write("\0\0\1\0\0\0\0\0\0\0\0\0/x\0", 15, &got), -1);
	assert_int_equal(agent_decode_file_write("\0\0\0\0\0\0\0\0\0\0\0\0/x\0", 15, &got), 0);
	assert_int_equal(agent_decode_file_write("\0\0\0\0\0\0\0\0\0\0\0\0/x", 14, &got), -1);
}

static void test_start_and_restored(void **state)
{
	const char *argv[] = { "sh", "-c", "exit 3", NULL };
	const char *env[] = { "A=1", NULL };
	struct agent_start_request req = {
		.flags = AGENT_START_HOLD, .hostname = "clone", .argv = argv, .env = env, .workdir = "/srv", .user = "1000:50",
	};
	struct agent_start_request got;
	size_t n = agent_encode_start(NULL, 0, &req);

	(void)state;
	assert_true(n > AGENT_HEADER_SIZE);
	assert_int_equal(agent_encode_start(frame, sizeof(frame), &req), n);
	const uint8_t *payload = payload_of(n, AGENT_START);
	size_t len = n - AGENT_HEADER_SIZE;
	assert_int_equal(agent_decode_start(payload, len, &got), 0);
	assert_int_equal(got.flags, AGENT_START_HOLD);
	assert_string_equal(got.hostname, "clone");
	assert_string_equal(got.argv[2], "exit 3");
	assert_null(got.argv[3]);
	assert_string_equal(got.env[0], "A=1");
	assert_null(got.env[1]);
	assert_string_equal(got.workdir, "/srv");
	assert_string_equal(got.user, "1000:50");
	agent_start_request_free(&got);

	/* Every proper prefix and one byte more are malformed. */
	uint8_t copy[512];
	assert_true(len < sizeof(copy));
	memcpy(copy, payload, len);
	for (size_t cut = 0; cut < len; cut++) {
		assert_int_equal(agent_decode_start(copy, cut, &got), -1);
		assert_int_equal(errno, EPROTO);
	}
	copy[len] = 0;
	assert_int_equal(agent_decode_start(copy, len + 1, &got), -1);

	/* Unknown flags, no hostname, no command, a relative workdir. */
	copy[0] = 0x80;
	assert_int_equal(agent_decode_start(copy, len, &got), -1);
	struct agent_start_request bad = req;
	bad.hostname = "";
	assert_int_equal(agent_encode_start(frame, sizeof(frame), &bad), 0);
	bad = req;
	bad.argv = (const char *[]){ NULL };
	assert_int_equal(agent_encode_start(frame, sizeof(frame), &bad), 0);
	bad = req;
	bad.workdir = "srv";
	assert_int_equal(agent_encode_start(frame, sizeof(frame), &bad), 0);

	struct agent_restored restored = { .realtime_sec = 1790000000, .realtime_nsec = 999999999 };
	for (unsigned i = 0; i < AGENT_ENTROPY_BYTES; i++)
		restored.entropy[i] = (uint8_t)(i * 3);
	struct agent_restored back;
	n = agent_encode_restored(frame, sizeof(frame), &restored);
	assert_int_equal(n, AGENT_HEADER_SIZE + 12 + AGENT_ENTROPY_BYTES);
	assert_int_equal(agent_decode_restored(payload_of(n, AGENT_RESTORED), n - AGENT_HEADER_SIZE, &back), 0);
	assert_int_equal(back.realtime_sec, restored.realtime_sec);
	assert_int_equal(back.realtime_nsec, restored.realtime_nsec);
	assert_memory_equal(back.entropy, restored.entropy, AGENT_ENTROPY_BYTES);
	assert_int_equal(agent_decode_restored(payload_of(n, AGENT_RESTORED), n - AGENT_HEADER_SIZE - 1, &back), -1);
	restored.realtime_nsec = 1000000000;
	assert_int_equal(agent_encode_restored(frame, sizeof(frame), &restored), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_empty_and_u32),
		cmocka_unit_test(test_sizing),
		cmocka_unit_test(test_exec),
		cmocka_unit_test(test_exec_malformed),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_resize_exit_stat),
		cmocka_unit_test(test_paths_and_file_write),
		cmocka_unit_test(test_start_and_restored),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
