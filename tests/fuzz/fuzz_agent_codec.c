/* libFuzzer target: what a hostile guest (or host) can send the agent
 * protocol's decoders. The input is one frame: an 8-byte header, then the
 * payload (the rest of the input, whatever the header claims). The header
 * is decoded, then the payload is given to every payload decoder; nothing
 * may crash, leak or read past the input (ASan checks that), and whatever
 * a decoder accepts must encode back to exactly the same bytes: the
 * encoding is canonical, so anything else is a decoder bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent_codec.h"

static uint8_t frame[AGENT_HEADER_SIZE + AGENT_MAX_REQUEST];

/* The frame encoded into `frame` must have type and exactly payload. */
static void check_same(size_t n, uint16_t type, const uint8_t *payload, size_t len)
{
	struct agent_header h;

	if (n != AGENT_HEADER_SIZE + len || agent_decode_header(frame, &h) < 0 || h.type != type ||
	    h.len != len || memcmp(frame + AGENT_HEADER_SIZE, payload, len) != 0)
		abort();
}

static void fuzz_payload(const uint8_t *p, size_t len)
{
	struct agent_exec_request exec;
	struct agent_start_request start;
	struct agent_restored restored;
	struct agent_file_write fw;
	struct agent_stat_result st;
	struct agent_error error;
	struct agent_exit ex;
	uint16_t rows, cols;
	const char *path;
	uint32_t value;
	int signo;

	if (agent_decode_empty(p, len) == 0)
		check_same(agent_encode_empty(frame, sizeof(frame), AGENT_END), AGENT_END, p, len);
	if (agent_decode_u32(p, len, &value) == 0)
		check_same(agent_encode_u32(frame, sizeof(frame), AGENT_STARTED, value), AGENT_STARTED, p, len);
	if (agent_decode_signal(p, len, &signo) == 0)
		check_same(agent_encode_u32(frame, sizeof(frame), AGENT_SIGNAL, (uint32_t)signo), AGENT_SIGNAL, p, len);
	if (agent_decode_path(p, len, &path) == 0)
		check_same(agent_encode_path(frame, sizeof(frame), AGENT_STAT, path), AGENT_STAT, p, len);
	if (agent_decode_error(p, len, &error) == 0)
		check_same(agent_encode_error(frame, sizeof(frame), error.code, error.message), AGENT_ERROR, p, len);
	if (agent_decode_resize(p, len, &rows, &cols) == 0)
		check_same(agent_encode_resize(frame, sizeof(frame), rows, cols), AGENT_RESIZE, p, len);
	if (agent_decode_exit(p, len, &ex) == 0)
		check_same(agent_encode_exit(frame, sizeof(frame), &ex), AGENT_EXIT, p, len);
	if (agent_decode_file_write(p, len, &fw) == 0)
		check_same(agent_encode_file_write(frame, sizeof(frame), &fw), AGENT_FILE_WRITE, p, len);
	if (agent_decode_stat_result(p, len, &st) == 0)
		check_same(agent_encode_stat_result(frame, sizeof(frame), &st), AGENT_STAT_RESULT, p, len);
	if (agent_decode_exec(p, len, &exec) == 0) {
		size_t n = agent_encode_exec(NULL, 0, &exec);
		if (n > sizeof(frame))
			abort();
		check_same(agent_encode_exec(frame, sizeof(frame), &exec), AGENT_EXEC, p, len);
		agent_exec_request_free(&exec);
	}
	if (agent_decode_start(p, len, &start) == 0) {
		size_t n = agent_encode_start(NULL, 0, &start);
		if (n > sizeof(frame))
			abort();
		check_same(agent_encode_start(frame, sizeof(frame), &start), AGENT_START, p, len);
		agent_start_request_free(&start);
	}
	if (agent_decode_restored(p, len, &restored) == 0)
		check_same(agent_encode_restored(frame, sizeof(frame), &restored), AGENT_RESTORED, p, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_header h;
	uint8_t raw[AGENT_HEADER_SIZE];

	if (size < AGENT_HEADER_SIZE)
		return 0;
	if (agent_decode_header(data, &h) == 0) {
		if (agent_encode_header(raw, sizeof(raw), h.type, h.len) != AGENT_HEADER_SIZE ||
		    memcmp(raw, data, sizeof(raw)) != 0)
			abort();
		(void)agent_msg_name(h.type);
	}
	/* A copy of exactly the payload's size, so ASan catches any read
	 * past it even when libFuzzer's buffer would have room. */
	size_t len = size - AGENT_HEADER_SIZE;
	uint8_t *payload = malloc(len ? len : 1);
	if (!payload)
		return 0;
	memcpy(payload, data + AGENT_HEADER_SIZE, len);
	fuzz_payload(payload, len);
	free(payload);
	return 0;
}
