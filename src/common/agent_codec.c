#include "agent_codec.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- bounded writing and reading ---------------------------------------- */

/* Counts every byte and stores those that fit, so one pass both sizes and
 * writes a frame. */
struct writer {
	uint8_t *buf;
	size_t cap;
	size_t len;
};

static void put_bytes(struct writer *w, const void *p, size_t n)
{
	if (n > SIZE_MAX - w->len) {
		w->len = SIZE_MAX;  /* over every cap: the frame is refused */
		return;
	}
	if (n > 0 && w->len + n <= w->cap)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void put_u16(struct writer *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	put_bytes(w, b, sizeof(b));
}

static void put_u32(struct writer *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	put_bytes(w, b, sizeof(b));
}

static void put_u64(struct writer *w, uint64_t v)
{
	put_u32(w, (uint32_t)v);
	put_u32(w, (uint32_t)(v >> 32));
}

static void put_string(struct writer *w, const char *s)
{
	put_bytes(w, s, strlen(s) + 1);
}

/* Takes fields off a payload; the first field that does not fit marks the
 * reader bad and every later one reads as zero, so decoders check once at
 * the end. */
struct reader {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static bool take(struct reader *r, void *out, size_t n)
{
	if (r->bad || n > r->left) {
		r->bad = true;
		memset(out, 0, n);
		return false;
	}
	memcpy(out, r->p, n);
	r->p += n;
	r->left -= n;
	return true;
}

static uint16_t get_u16(struct reader *r)
{
	uint8_t b[2];

	take(r, b, sizeof(b));
	return (uint16_t)(b[0] | b[1] << 8);
}

static uint32_t get_u32(struct reader *r)
{
	uint8_t b[4];

	take(r, b, sizeof(b));
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get_u64(struct reader *r)
{
	uint64_t lo = get_u32(r);

	return lo | (uint64_t)get_u32(r) << 32;
}

/* A NUL-terminated string inside the payload, or NULL (reader bad). */
static const char *get_string(struct reader *r)
{
	const uint8_t *nul;
	const char *s;

	nul = r->bad || r->left == 0 ? NULL : memchr(r->p, '\0', r->left);
	if (!nul) {
		r->bad = true;
		return NULL;
	}
	s = (const char *)r->p;
	r->left -= (size_t)(nul + 1 - r->p);
	r->p = nul + 1;
	return s;
}

static int malformed(void)
{
	errno = EPROTO;
	return -1;
}

/* The payload was read exactly, to its last byte. */
static int finish_read(const struct reader *r)
{
	return r->bad || r->left != 0 ? malformed() : 0;
}

static struct reader reader_of(const void *payload, size_t len)
{
	return (struct reader){ .p = payload, .left = payload ? len : 0, .bad = !payload && len > 0 };
}

/* ---- framing ------------------------------------------------------------- */

static bool type_known(uint16_t type)
{
	return (type >= AGENT_PING && type <= AGENT_RESTORED) ||
	       (type >= AGENT_STDIN && type <= AGENT_RESIZE) ||
	       (type >= AGENT_PONG && type <= AGENT_STAT_RESULT) ||
	       type == AGENT_DATA || type == AGENT_END;
}

static size_t max_payload(uint16_t type)
{
	return type == AGENT_EXEC || type == AGENT_START ? AGENT_MAX_REQUEST : AGENT_MAX_PAYLOAD;
}

int agent_decode_header(const void *buf, struct agent_header *h)
{
	struct reader r = reader_of(buf, AGENT_HEADER_SIZE);

	h->len = get_u32(&r);
	h->type = get_u16(&r);
	h->flags = get_u16(&r);
	if (!type_known(h->type) || h->flags != 0 || h->len > max_payload(h->type))
		return malformed();
	return 0;
}

size_t agent_encode_header(void *buf, size_t cap, uint16_t type, size_t len)
{
	struct writer w = { .buf = buf, .cap = cap };

	if (!type_known(type) || len > max_payload(type))
		return 0;
	put_u32(&w, (uint32_t)len);
	put_u16(&w, type);
	put_u16(&w, 0);
	return w.len;
}

/* Starts a frame: the header is filled in by end_frame once the payload's
 * length is known. */
static struct writer begin_frame(void *buf, size_t cap)
{
	return (struct writer){ .buf = buf, .cap = cap, .len = AGENT_HEADER_SIZE };
}

static size_t end_frame(struct writer *w, uint16_t type)
{
	size_t payload = w->len - AGENT_HEADER_SIZE;

	if (w->len == SIZE_MAX || !agent_encode_header(w->buf, w->cap, type, payload))
		return 0;
	return w->len;
}

/* ---- messages ------------------------------------------------------------- */

static bool type_is_empty(uint16_t type)
{
	return type == AGENT_PING || type == AGENT_OK || type == AGENT_STDIN_EOF || type == AGENT_END;
}

size_t agent_encode_empty(void *buf, size_t cap, uint16_t type)
{
	struct writer w = begin_frame(buf, cap);

	return type_is_empty(type) ? end_frame(&w, type) : 0;
}

int agent_decode_empty(const void *payload, size_t len)
{
	(void)payload;
	return len == 0 ? 0 : malformed();
}

static bool signal_valid(uint32_t signo)
{
	return signo >= 1 && signo <= AGENT_SIGNAL_MAX;
}

size_t agent_encode_u32(void *buf, size_t cap, uint16_t type, uint32_t value)
{
	struct writer w = begin_frame(buf, cap);

	if (type == AGENT_SIGNAL || type == AGENT_WORKLOAD_SIGNAL) {
		if (!signal_valid(value))
			return 0;
	} else if (type != AGENT_PONG && type != AGENT_STARTED) {
		return 0;
	}
	put_u32(&w, value);
	return end_frame(&w, type);
}

int agent_decode_u32(const void *payload, size_t len, uint32_t *value)
{
	struct reader r = reader_of(payload, len);

	*value = get_u32(&r);
	return finish_read(&r);
}

int agent_decode_signal(const void *payload, size_t len, int *signo)
{
	uint32_t v;

	if (agent_decode_u32(payload, len, &v) < 0 || !signal_valid(v))
		return malformed();
	*signo = (int)v;
	return 0;
}

static bool path_valid(const char *path)
{
	return path && path[0] == '/' && strlen(path) < AGENT_PATH_MAX;
}

size_t agent_encode_path(void *buf, size_t cap, uint16_t type, const char *path)
{
	struct writer w = begin_frame(buf, cap);

	if ((type != AGENT_FILE_READ && type != AGENT_STAT) || !path_valid(path))
		return 0;
	put_string(&w, path);
	return end_frame(&w, type);
}

int agent_decode_path(const void *payload, size_t len, const char **path)
{
	struct reader r = reader_of(payload, len);

	*path = get_string(&r);
	if (finish_read(&r) < 0 || !path_valid(*path))
		return malformed();
	return 0;
}

/* ---- EXEC ------------------------------------------------------------------ */

static size_t list_count(const char *const *list)
{
	size_t n = 0;

	while (list && list[n])
		n++;
	return n;
}

static void put_string_list(struct writer *w, const char *const *list)
{
	size_t n = list_count(list);

	if (n > UINT32_MAX) {
		w->len = SIZE_MAX;
		return;
	}
	put_u32(w, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		put_string(w, list[i]);
}

size_t agent_encode_exec(void *buf, size_t cap, const struct agent_exec_request *req)
{
	struct writer w = begin_frame(buf, cap);
	const char *cwd = req->cwd ? req->cwd : "";

	if (!req->argv || !req->argv[0] || !req->argv[0][0] || (req->flags & ~AGENT_EXEC_FLAGS_ALL) ||
	    (cwd[0] && !path_valid(cwd)))
		return 0;
	put_u32(&w, req->flags);
	put_u16(&w, req->rows);
	put_u16(&w, req->cols);
	put_u32(&w, req->timeout_ms);
	put_string_list(&w, req->argv);
	put_string_list(&w, req->env);
	put_string(&w, cwd);
	put_string(&w, req->user ? req->user : "");
	return end_frame(&w, AGENT_EXEC);
}

/* Reads count strings into vec[0..count) and ends it with NULL. */
static void get_string_list(struct reader *r, const char **vec, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		vec[i] = get_string(r);
	vec[count] = NULL;
}

/* argv (at least one string, the first non-empty) then env, as EXEC and
 * START carry them: one allocation holding both NULL-terminated vectors
 * (free it through *argv). -1 with EPROTO when malformed. */
static int get_argv_env(struct reader *r, const char *const **argv, const char *const **env)
{
	uint32_t argc = get_u32(r), envc;
	struct reader strings;
	const char **vec;

	/* Every string takes at least one byte: a count larger than what is
	 * left is a lie, and checking it first bounds the allocation. */
	if (r->bad || argc == 0 || argc > r->left)
		return malformed();
	/* Find envc by walking past argv once without storing anything. */
	strings = *r;
	for (uint32_t i = 0; i < argc; i++)
		get_string(&strings);
	envc = get_u32(&strings);
	if (strings.bad || envc > strings.left)
		return malformed();

	vec = calloc((size_t)argc + envc + 2, sizeof(*vec));
	if (!vec)
		return -1;
	get_string_list(r, vec, argc);
	get_u32(r);
	get_string_list(r, vec + argc + 1, envc);
	if (r->bad || !vec[0][0]) {
		free(vec);
		return malformed();
	}
	*argv = vec;
	*env = vec + argc + 1;
	return 0;
}

int agent_decode_exec(const void *payload, size_t len, struct agent_exec_request *req)
{
	struct reader r = reader_of(payload, len);

	memset(req, 0, sizeof(*req));
	req->flags = get_u32(&r);
	req->rows = get_u16(&r);
	req->cols = get_u16(&r);
	req->timeout_ms = get_u32(&r);
	if (r.bad || (req->flags & ~AGENT_EXEC_FLAGS_ALL))
		return malformed();
	if (get_argv_env(&r, &req->argv, &req->env) < 0)
		return -1;
	req->cwd = get_string(&r);
	req->user = get_string(&r);
	if (finish_read(&r) < 0 || (req->cwd[0] && !path_valid(req->cwd))) {
		agent_exec_request_free(req);
		return malformed();
	}
	return 0;
}

void agent_exec_request_free(struct agent_exec_request *req)
{
	free((void *)req->argv);
	req->argv = NULL;
	req->env = NULL;
}

/* ---- START and RESTORED ------------------------------------------------------ */

size_t agent_encode_start(void *buf, size_t cap, const struct agent_start_request *req)
{
	struct writer w = begin_frame(buf, cap);
	const char *workdir = req->workdir ? req->workdir : "";

	if (!req->hostname || !req->hostname[0] || !req->argv || !req->argv[0] || !req->argv[0][0] ||
	    (req->flags & ~AGENT_START_FLAGS_ALL) || (workdir[0] && !path_valid(workdir)))
		return 0;
	put_u32(&w, req->flags);
	put_string(&w, req->hostname);
	put_string_list(&w, req->argv);
	put_string_list(&w, req->env);
	put_string(&w, workdir);
	put_string(&w, req->user ? req->user : "");
	return end_frame(&w, AGENT_START);
}

int agent_decode_start(const void *payload, size_t len, struct agent_start_request *req)
{
	struct reader r = reader_of(payload, len);

	memset(req, 0, sizeof(*req));
	req->flags = get_u32(&r);
	req->hostname = get_string(&r);
	if (r.bad || (req->flags & ~AGENT_START_FLAGS_ALL) || !req->hostname[0])
		return malformed();
	if (get_argv_env(&r, &req->argv, &req->env) < 0)
		return -1;
	req->workdir = get_string(&r);
	req->user = get_string(&r);
	if (finish_read(&r) < 0 || (req->workdir[0] && !path_valid(req->workdir))) {
		agent_start_request_free(req);
		return malformed();
	}
	return 0;
}

void agent_start_request_free(struct agent_start_request *req)
{
	free((void *)req->argv);
	req->argv = NULL;
	req->env = NULL;
}

size_t agent_encode_restored(void *buf, size_t cap, const struct agent_restored *restored)
{
	struct writer w = begin_frame(buf, cap);

	if (restored->realtime_nsec >= 1000000000u)
		return 0;
	put_u64(&w, restored->realtime_sec);
	put_u32(&w, restored->realtime_nsec);
	put_bytes(&w, restored->entropy, sizeof(restored->entropy));
	return end_frame(&w, AGENT_RESTORED);
}

int agent_decode_restored(const void *payload, size_t len, struct agent_restored *restored)
{
	struct reader r = reader_of(payload, len);

	restored->realtime_sec = get_u64(&r);
	restored->realtime_nsec = get_u32(&r);
	take(&r, restored->entropy, sizeof(restored->entropy));
	if (finish_read(&r) < 0 || restored->realtime_nsec >= 1000000000u)
		return malformed();
	return 0;
}

/* ---- the other messages ------------------------------------------------------ */

size_t agent_encode_error(void *buf, size_t cap, int code, const char *message)
{
	struct writer w = begin_frame(buf, cap);
	size_t n = message ? strnlen(message, AGENT_ERROR_MESSAGE_MAX - 1) : 0;
	uint8_t nul = 0;

	put_u32(&w, (uint32_t)(code > 0 && code < 4096 ? code : EIO));
	put_bytes(&w, message, n);
	put_bytes(&w, &nul, 1);
	return end_frame(&w, AGENT_ERROR);
}

int agent_decode_error(const void *payload, size_t len, struct agent_error *out)
{
	struct reader r = reader_of(payload, len);

	out->code = (int32_t)get_u32(&r);
	out->message = get_string(&r);
	if (finish_read(&r) < 0 || out->code <= 0 || out->code >= 4096 ||
	    strlen(out->message) >= AGENT_ERROR_MESSAGE_MAX)
		return malformed();
	return 0;
}

size_t agent_encode_resize(void *buf, size_t cap, uint16_t rows, uint16_t cols)
{
	struct writer w = begin_frame(buf, cap);

	put_u16(&w, rows);
	put_u16(&w, cols);
	return end_frame(&w, AGENT_RESIZE);
}

int agent_decode_resize(const void *payload, size_t len, uint16_t *rows, uint16_t *cols)
{
	struct reader r = reader_of(payload, len);

	*rows = get_u16(&r);
	*cols = get_u16(&r);
	return finish_read(&r);
}

size_t agent_encode_exit(void *buf, size_t cap, const struct agent_exit *ex)
{
	struct writer w = begin_frame(buf, cap);

	if (ex->flags & ~AGENT_EXIT_FLAGS_ALL)
		return 0;
	put_u32(&w, (uint32_t)ex->exit_code);
	put_u32(&w, ex->signal);
	put_u64(&w, ex->duration_us);
	put_u64(&w, ex->peak_rss_kib);
	put_u32(&w, ex->flags);
	return end_frame(&w, AGENT_EXIT);
}

int agent_decode_exit(const void *payload, size_t len, struct agent_exit *out)
{
	struct reader r = reader_of(payload, len);

	out->exit_code = (int32_t)get_u32(&r);
	out->signal = get_u32(&r);
	out->duration_us = get_u64(&r);
	out->peak_rss_kib = get_u64(&r);
	out->flags = get_u32(&r);
	if (finish_read(&r) < 0 || (out->flags & ~AGENT_EXIT_FLAGS_ALL) || out->signal > AGENT_SIGNAL_MAX)
		return malformed();
	return 0;
}

size_t agent_encode_file_write(void *buf, size_t cap, const struct agent_file_write *req)
{
	struct writer w = begin_frame(buf, cap);

	if ((req->mode & ~07777u) || !path_valid(req->path))
		return 0;
	put_u32(&w, req->mode);
	put_u32(&w, req->uid);
	put_u32(&w, req->gid);
	put_string(&w, req->path);
	return end_frame(&w, AGENT_FILE_WRITE);
}

int agent_decode_file_write(const void *payload, size_t len, struct agent_file_write *out)
{
	struct reader r = reader_of(payload, len);

	out->mode = get_u32(&r);
	out->uid = get_u32(&r);
	out->gid = get_u32(&r);
	out->path = get_string(&r);
	if (finish_read(&r) < 0 || (out->mode & ~07777u) || !path_valid(out->path))
		return malformed();
	return 0;
}

size_t agent_encode_stat_result(void *buf, size_t cap, const struct agent_stat_result *st)
{
	struct writer w = begin_frame(buf, cap);

	put_u32(&w, st->mode);
	put_u32(&w, st->uid);
	put_u32(&w, st->gid);
	put_u64(&w, st->size);
	put_u64(&w, (uint64_t)st->mtime_sec);
	put_u32(&w, st->mtime_nsec);
	return end_frame(&w, AGENT_STAT_RESULT);
}

int agent_decode_stat_result(const void *payload, size_t len, struct agent_stat_result *out)
{
	struct reader r = reader_of(payload, len);

	out->mode = get_u32(&r);
	out->uid = get_u32(&r);
	out->gid = get_u32(&r);
	out->size = get_u64(&r);
	out->mtime_sec = (int64_t)get_u64(&r);
	out->mtime_nsec = get_u32(&r);
	if (finish_read(&r) < 0 || out->mtime_nsec >= 1000000000u)
		return malformed();
	return 0;
}

const char *agent_msg_name(uint16_t type)
{
	switch (type) {
	case AGENT_PING: return "PING";
	case AGENT_EXEC: return "EXEC";
	case AGENT_FILE_WRITE: return "FILE_WRITE";
	case AGENT_FILE_READ: return "FILE_READ";
	case AGENT_STAT: return "STAT";
	case AGENT_WORKLOAD_SIGNAL: return "WORKLOAD_SIGNAL";
	case AGENT_START: return "START";
	case AGENT_RESTORED: return "RESTORED";
	case AGENT_STDIN: return "STDIN";
	case AGENT_STDIN_EOF: return "STDIN_EOF";
	case AGENT_SIGNAL: return "SIGNAL";
	case AGENT_RESIZE: return "RESIZE";
	case AGENT_PONG: return "PONG";
	case AGENT_OK: return "OK";
	case AGENT_ERROR: return "ERROR";
	case AGENT_STARTED: return "STARTED";
	case AGENT_STDOUT: return "STDOUT";
	case AGENT_STDERR: return "STDERR";
	case AGENT_EXIT: return "EXIT";
	case AGENT_STAT_RESULT: return "STAT_RESULT";
	case AGENT_DATA: return "DATA";
	case AGENT_END: return "END";
	}
	return "unknown";
}
