/* libFuzzer target: the snapshot state file reader, given what a damaged
 * or hostile state file could hold. Each input is read twice: as it is,
 * and with its header's body length and checksum made to match, since
 * random bytes would almost never get past the checksum to the section
 * parser behind it. Nothing may crash, leak or read past the input, and a
 * file the reader accepts must hold exactly the sections a plain walk over
 * it finds, and encode back to the same bytes (the format is canonical). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "snapshot/state_file.h"

#define OFF_COUNT 12
#define OFF_BODY_LEN 16
#define OFF_CHECKSUM 24
#define PREFIX "snapshot state <buffer>: "

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* data was accepted: walk it and compare with what the reader says. */
static void check_accepted(const struct state_reader *r, const uint8_t *data, size_t size)
{
	uint32_t count = get32(data + OFF_COUNT);
	struct state_writer *w = state_writer_new(NULL);
	size_t off = STATE_FILE_HEADER_SIZE;
	uint8_t *out = NULL;
	size_t out_len = 0;

	if (!w)
		return;
	for (uint32_t i = 0; i < count; i++) {
		if (size - off < 16)
			abort();
		uint32_t tag = get32(data + off), instance = get32(data + off + 4);
		uint64_t len = get64(data + off + 8);
		off += 16;
		if (len > size - off)
			abort();
		size_t found_len;
		const uint8_t *found = state_reader_find(r, tag, instance, &found_len);
		if (!found || found_len != len || memcmp(found, data + off, len) != 0)
			abort();
		if (state_reader_count(r, tag) == 0)
			abort();
		uint8_t *copy = malloc(len + 1);
		if (copy) {
			if (state_reader_get(r, tag, instance, copy, len, NULL) != 0 ||
			    memcmp(copy, data + off, len) != 0 ||
			    state_reader_get(r, tag, instance, copy, len + 1, NULL) == 0)
				abort();
			free(copy);
		}
		if (state_writer_add(w, tag, instance, data + off, len, NULL) != 0)
			abort();
		off += (len + 7) & ~(uint64_t)7;
	}
	if (off != size)
		abort();
	if (state_writer_encode(w, &out, &out_len, NULL) == 0) {
		if (out_len != size || memcmp(out, data, size) != 0)
			abort();
		free(out);
	}
	state_writer_free(w);

	unsigned total = 0;
	for (uint32_t tag = 0; tag <= STATE_TAG_MAX; tag++)
		total += state_reader_count(r, tag);
	if (total > count)
		abort();
}

static void try_read(const uint8_t *data, size_t size)
{
	capsa_error err;
	struct state_reader *r = state_reader_from_buffer(data, size, &err);

	if (r) {
		check_accepted(r, data, size);
		state_reader_free(r);
	} else if (strncmp(err.message, PREFIX, strlen(PREFIX)) != 0) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so ASan catches any read past the end. */
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	try_read(copy, size);

	if (size >= STATE_FILE_HEADER_SIZE) {
		size_t body_len = size - STATE_FILE_HEADER_SIZE;
		for (int i = 0; i < 8; i++)
			copy[OFF_BODY_LEN + i] = (uint8_t)((uint64_t)body_len >> (8 * i));
		if (EVP_Digest(copy + STATE_FILE_HEADER_SIZE, body_len, copy + OFF_CHECKSUM, NULL, EVP_sha256(), NULL))
			try_read(copy, size);
	}
	free(copy);
	return 0;
}
