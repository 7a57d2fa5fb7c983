#include "snapshot/state_file.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util/atomic_file.h"
#include "util/cleanup.h"
#include "util/error.h"

#define CHECKSUM_SIZE 32
#define SECTION_HEADER_SIZE 16
#define MAGIC_SIZE 8

/* Offsets inside the file header. */
#define OFF_VERSION 8
#define OFF_COUNT 12
#define OFF_BODY_LEN 16
#define OFF_CHECKSUM 24

_Static_assert(sizeof(STATE_FILE_MAGIC) - 1 == MAGIC_SIZE, "magic is 8 bytes");
_Static_assert(OFF_CHECKSUM + CHECKSUM_SIZE == STATE_FILE_HEADER_SIZE, "header layout");

struct section {
	uint32_t tag;
	uint32_t instance;
	size_t len;
	/* Owned by the writer; points into the file buffer in the reader. */
	uint8_t *data;
};

struct state_writer {
	struct section *sections;
	size_t count;
	size_t capacity;
	size_t encoded_size;
};

struct state_reader {
	char *path;
	uint8_t *buf;
	struct section *sections;
	size_t count;
};

static const char *const tag_names[STATE_TAG_MAX] = {
	[STATE_META] = "metadata",
	[STATE_VM_CLOCK] = "VM clock",
	[STATE_VM_PIT] = "PIT",
	[STATE_VM_IRQCHIP] = "irqchip",
	[STATE_VCPU_REGS] = "vCPU registers",
	[STATE_VCPU_SREGS] = "vCPU special registers",
	[STATE_VCPU_XSAVE] = "vCPU xsave",
	[STATE_VCPU_XCRS] = "vCPU XCRs",
	[STATE_VCPU_MSRS] = "vCPU MSRs",
	[STATE_VCPU_LAPIC] = "vCPU local APIC",
	[STATE_VCPU_EVENTS] = "vCPU events",
	[STATE_VCPU_MP_STATE] = "vCPU MP state",
	[STATE_VCPU_DEBUGREGS] = "vCPU debug registers",
	[STATE_VCPU_CPUID] = "vCPU CPUID",
	[STATE_DEVICE] = "device",
};

const char *state_tag_name(uint32_t tag)
{
	if (tag < STATE_TAG_MAX && tag_names[tag])
		return tag_names[tag];
	return "unknown";
}

static size_t padding(size_t len)
{
	return (8 - len % 8) % 8;
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static int sha256(const void *data, size_t len, uint8_t out[CHECKSUM_SIZE], capsa_error *err)
{
	unsigned int md_len = 0;

	if (!EVP_Digest(data, len, out, &md_len, EVP_sha256(), NULL) || md_len != CHECKSUM_SIZE)
		return error_set(err, EIO, "sha256 hashing failed");
	return 0;
}

static const struct section *find_section(const struct section *s, size_t count, uint32_t tag, uint32_t instance)
{
	for (size_t i = 0; i < count; i++)
		if (s[i].tag == tag && s[i].instance == instance)
			return &s[i];
	return NULL;
}

/* ---- writing ---- */

struct state_writer *state_writer_new(capsa_error *err)
{
	struct state_writer *w = calloc(1, sizeof(*w));

	if (!w) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	w->encoded_size = STATE_FILE_HEADER_SIZE;
	return w;
}

void state_writer_free(struct state_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->count; i++)
		free(w->sections[i].data);
	free(w->sections);
	free(w);
}

int state_writer_add(struct state_writer *w, uint32_t tag, uint32_t instance, const void *data, size_t len,
		     capsa_error *err)
{
	if (len && !data)
		return error_set(err, EINVAL, "snapshot state: section '%s' #%u has %zu bytes but no data",
				 state_tag_name(tag), instance, len);
	if (find_section(w->sections, w->count, tag, instance))
		return error_set(err, EEXIST, "snapshot state: section '%s' #%u added twice", state_tag_name(tag),
				 instance);
	if (w->count >= STATE_FILE_MAX_SECTIONS)
		return error_set(err, E2BIG, "snapshot state: more than %u sections", STATE_FILE_MAX_SECTIONS);
	size_t room = STATE_FILE_MAX_SIZE - w->encoded_size;
	if (room < SECTION_HEADER_SIZE || len > room - SECTION_HEADER_SIZE ||
	    padding(len) > room - SECTION_HEADER_SIZE - len)
		return error_set(err, EFBIG, "snapshot state: section '%s' #%u (%zu bytes) makes the file larger "
				 "than %u MiB", state_tag_name(tag), instance, len, STATE_FILE_MAX_SIZE >> 20);

	if (w->count == w->capacity) {
		size_t capacity = w->capacity ? w->capacity * 2 : 32;
		struct section *s = reallocarray(w->sections, capacity, sizeof(*s));
		if (!s)
			return error_set(err, ENOMEM, "out of memory");
		w->sections = s;
		w->capacity = capacity;
	}
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return error_set(err, ENOMEM, "out of memory");
	if (len)
		memcpy(copy, data, len);
	w->sections[w->count++] = (struct section){ .tag = tag, .instance = instance, .len = len, .data = copy };
	w->encoded_size += SECTION_HEADER_SIZE + len + padding(len);
	return 0;
}

int state_writer_encode(const struct state_writer *w, uint8_t **out, size_t *out_len, capsa_error *err)
{
	_cleanup_free_ uint8_t *buf = calloc(1, w->encoded_size);

	if (!buf)
		return error_set(err, ENOMEM, "out of memory");
	uint8_t *p = buf + STATE_FILE_HEADER_SIZE;
	for (size_t i = 0; i < w->count; i++) {
		const struct section *s = &w->sections[i];
		put_le32(p, s->tag);
		put_le32(p + 4, s->instance);
		put_le64(p + 8, s->len);
		p += SECTION_HEADER_SIZE;
		if (s->len)
			memcpy(p, s->data, s->len);
		p += s->len + padding(s->len); /* the padding is already zero */
	}

	size_t body_len = w->encoded_size - STATE_FILE_HEADER_SIZE;
	memcpy(buf, STATE_FILE_MAGIC, MAGIC_SIZE);
	put_le32(buf + OFF_VERSION, STATE_FILE_VERSION);
	put_le32(buf + OFF_COUNT, (uint32_t)w->count);
	put_le64(buf + OFF_BODY_LEN, body_len);
	if (sha256(buf + STATE_FILE_HEADER_SIZE, body_len, buf + OFF_CHECKSUM, err) < 0)
		return -1;
	*out = steal_pointer(&buf);
	*out_len = w->encoded_size;
	return 0;
}

int state_writer_save(const struct state_writer *w, const char *path, capsa_error *err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;

	if (state_writer_encode(w, &buf, &len, err) < 0 ||
	    atomic_file_write_data(path, buf, len, 0600, err) < 0)
		return error_prefix(err, "saving snapshot state %s", path);
	return 0;
}

/* ---- reading ---- */

void state_reader_free(struct state_reader *r)
{
	if (!r)
		return;
	free(r->path);
	free(r->buf);
	free(r->sections);
	free(r);
}

/* "'vCPU registers' #2", or the raw tag number for a tag this build does
 * not know (a corrupted file or one from another version). */
static const char *section_name(char *buf, size_t size, uint32_t tag, uint32_t instance)
{
	if (tag < STATE_TAG_MAX && tag_names[tag])
		snprintf(buf, size, "'%s' #%u", tag_names[tag], instance);
	else
		snprintf(buf, size, "with unknown tag %u #%u", tag, instance);
	return buf;
}

static int check_header(const uint8_t *buf, size_t len, uint32_t *count, capsa_error *err)
{
	size_t magic_len = len < MAGIC_SIZE ? len : MAGIC_SIZE;

	if (memcmp(buf, STATE_FILE_MAGIC, magic_len) != 0)
		return error_set(err, EINVAL, "not a capsa snapshot state file (bad magic)");
	if (len < STATE_FILE_HEADER_SIZE)
		return error_set(err, EINVAL, "truncated: %zu bytes, shorter than the %u-byte header (the file is "
				 "corrupted; remove the snapshot and bake it again)", len, STATE_FILE_HEADER_SIZE);
	uint32_t version = get_le32(buf + OFF_VERSION);
	if (version != STATE_FILE_VERSION)
		return error_set(err, ENOTSUP, "format version %u, this capsa reads version %u (bake the snapshot again)",
				 version, STATE_FILE_VERSION);
	*count = get_le32(buf + OFF_COUNT);
	if (*count > STATE_FILE_MAX_SECTIONS)
		return error_set(err, EINVAL, "%u sections, more than the %u allowed (the file is corrupted; remove "
				 "the snapshot and bake it again)", *count, STATE_FILE_MAX_SECTIONS);
	uint64_t body_len = get_le64(buf + OFF_BODY_LEN);
	size_t have = len - STATE_FILE_HEADER_SIZE;
	if (body_len > have)
		return error_set(err, EINVAL, "truncated: the header announces %llu bytes of sections, the file has "
				 "%zu (the file is corrupted; remove the snapshot and bake it again)",
				 (unsigned long long)body_len, have);
	if (body_len < have)
		return error_set(err, EINVAL, "%llu trailing bytes after the %llu bytes of sections the header "
				 "announces (the file is corrupted; remove the snapshot and bake it again)",
				 (unsigned long long)(have - body_len), (unsigned long long)body_len);

	uint8_t sum[CHECKSUM_SIZE];
	if (sha256(buf + STATE_FILE_HEADER_SIZE, have, sum, err) < 0)
		return -1;
	if (memcmp(sum, buf + OFF_CHECKSUM, CHECKSUM_SIZE) != 0)
		return error_set(err, EINVAL, "checksum mismatch (the file is corrupted; remove the snapshot and "
				 "bake it again)");
	return 0;
}

/* The checksum only proves the body is what some writer produced; the
 * layout is still checked in full, since a buggy or hostile writer could
 * have produced it. */
static int parse_sections(struct state_reader *r, size_t body_len, uint32_t count, capsa_error *err)
{
	uint8_t *body = r->buf + STATE_FILE_HEADER_SIZE;
	size_t off = 0;
	char name[64];

	r->sections = calloc(count ? count : 1, sizeof(*r->sections));
	if (!r->sections)
		return error_set(err, ENOMEM, "out of memory");
	for (uint32_t i = 0; i < count; i++) {
		if (body_len - off < SECTION_HEADER_SIZE)
			return error_set(err, EINVAL, "the header announces %u sections, the file holds %u (the file "
					 "is corrupted; remove the snapshot and bake it again)", count, i);
		uint32_t tag = get_le32(body + off);
		uint32_t instance = get_le32(body + off + 4);
		uint64_t len = get_le64(body + off + 8);
		off += SECTION_HEADER_SIZE;
		section_name(name, sizeof(name), tag, instance);
		if (len > body_len - off || padding(len) > body_len - off - len)
			return error_set(err, EINVAL, "section %s (%llu bytes) runs past the end of the file (the "
					 "file is corrupted; remove the snapshot and bake it again)", name,
					 (unsigned long long)len);
		for (size_t j = 0; j < padding(len); j++)
			if (body[off + len + j] != 0)
				return error_set(err, EINVAL, "section %s has nonzero padding (the file is corrupted; "
						 "remove the snapshot and bake it again)", name);
		if (find_section(r->sections, r->count, tag, instance))
			return error_set(err, EINVAL, "section %s appears twice (the file is corrupted; remove the "
					 "snapshot and bake it again)", name);
		r->sections[r->count++] = (struct section){
			.tag = tag, .instance = instance, .len = len, .data = body + off,
		};
		off += len + padding(len);
	}
	if (off != body_len)
		return error_set(err, EINVAL, "%zu trailing bytes after the last of %u sections (the file is "
				 "corrupted; remove the snapshot and bake it again)", body_len - off, count);
	return 0;
}

/* Takes buf (malloc'ed, len bytes) whatever happens. */
static struct state_reader *reader_parse(const char *path, uint8_t *buf, size_t len, capsa_error *err)
{
	struct state_reader *r = calloc(1, sizeof(*r));
	uint32_t count = 0;

	if (!r || !(r->path = strdup(path))) {
		free(buf);
		free(r);
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	r->buf = buf;
	if (check_header(buf, len, &count, err) < 0 ||
	    parse_sections(r, len - STATE_FILE_HEADER_SIZE, count, err) < 0) {
		error_prefix(err, "snapshot state %s", path);
		state_reader_free(r);
		return NULL;
	}
	return r;
}

struct state_reader *state_reader_from_buffer(const void *data, size_t len, capsa_error *err)
{
	if (len > STATE_FILE_MAX_SIZE) {
		error_set(err, EFBIG, "snapshot state <buffer>: %zu bytes, larger than the %u MiB a state file may be",
			  len, STATE_FILE_MAX_SIZE >> 20);
		return NULL;
	}
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	if (len)
		memcpy(buf, data, len);
	return reader_parse("<buffer>", buf, len, err);
}

struct state_reader *state_reader_open(const char *path, capsa_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		error_set_errno(err, errno, "snapshot state %s", path);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		error_set(err, EINVAL, "snapshot state %s: not a regular file", path);
		return NULL;
	}
	if ((uint64_t)st.st_size > STATE_FILE_MAX_SIZE) {
		error_set(err, EFBIG, "snapshot state %s: %llu bytes, larger than the %u MiB a state file may be (the "
			  "file is corrupted; remove the snapshot and bake it again)", path,
			  (unsigned long long)st.st_size, STATE_FILE_MAX_SIZE >> 20);
		return NULL;
	}

	size_t size = st.st_size;
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	size_t len = 0;
	while (len < size) {
		ssize_t n = read(fd, buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error_set_errno(err, errno, "snapshot state %s: reading", path);
			free(buf);
			return NULL;
		}
		if (n == 0)
			break; /* shrank since fstat: parsed as the truncated file it now is */
		len += n;
	}
	return reader_parse(path, buf, len, err);
}

/* ---- lookups ---- */

int state_reader_get(const struct state_reader *r, uint32_t tag, uint32_t instance, void *out, size_t len,
		     capsa_error *err)
{
	const struct section *s = find_section(r->sections, r->count, tag, instance);

	if (!s)
		return error_set(err, ENOENT, "snapshot state %s: no section '%s' #%u (the snapshot was made by "
				 "another capsa version or is incomplete; bake it again)", r->path,
				 state_tag_name(tag), instance);
	if (s->len != len)
		return error_set(err, EINVAL, "snapshot state %s: section '%s' #%u has %zu bytes, this capsa expects "
				 "%zu (the snapshot was made by another capsa version; bake it again)", r->path,
				 state_tag_name(tag), instance, s->len, len);
	if (len)
		memcpy(out, s->data, len);
	return 0;
}

const void *state_reader_find(const struct state_reader *r, uint32_t tag, uint32_t instance, size_t *len)
{
	const struct section *s = find_section(r->sections, r->count, tag, instance);

	if (!s)
		return NULL;
	if (len)
		*len = s->len;
	return s->data;
}

unsigned state_reader_count(const struct state_reader *r, uint32_t tag)
{
	unsigned n = 0;

	for (size_t i = 0; i < r->count; i++)
		n += r->sections[i].tag == tag;
	return n;
}
