/* Encoding and decoding of the agent protocol's frames (agent_proto.h),
 * without any I/O, for both the host library and the guest agent.
 *
 * Encoders work like snprintf: they write the whole frame (header and
 * payload) into buf if it fits in cap bytes and return its length either
 * way, so a caller may size a buffer with (NULL, 0) first. They return 0
 * when the message cannot be expressed (a missing argv, a path that is not
 * absolute or too long, a payload over its cap).
 *
 * Decoders take a payload whose header agent_decode_header accepted and
 * check it field by field: they return 0, or -1 with errno EPROTO for a
 * malformed payload (and ENOMEM, only from agent_decode_exec). Decoded
 * strings point into the payload, which must outlive them.
 */
#ifndef CAPSA_AGENT_CODEC_H
#define CAPSA_AGENT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "agent_proto.h"

/* Big enough for every frame but EXEC and the data frames. */
#define AGENT_SMALL_FRAME_MAX (AGENT_HEADER_SIZE + 16 + AGENT_PATH_MAX)

struct agent_header {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
};

struct agent_exec_request {
	const char *const *argv;  /* NULL-terminated, argv[0] non-empty */
	const char *const *env;   /* NULL-terminated "KEY=VALUE"; NULL = none */
	const char *cwd;          /* absolute; NULL or "" = / */
	const char *user;         /* docker's USER syntax; NULL or "" = root */
	uint32_t flags;           /* AGENT_EXEC_* */
	uint16_t rows, cols;      /* with AGENT_EXEC_TTY; 0 = leave as the pty starts */
	uint32_t timeout_ms;      /* 0 = none */
};

struct agent_start_request {
	uint32_t flags;           /* AGENT_START_* */
	const char *hostname;     /* non-empty */
	const char *const *argv;  /* NULL-terminated, argv[0] non-empty */
	const char *const *env;   /* NULL-terminated "KEY=VALUE"; NULL = none */
	const char *workdir;      /* absolute; NULL or "" = / */
	const char *user;         /* NULL or "" = root */
};

struct agent_restored {
	uint64_t realtime_sec;
	uint32_t realtime_nsec;
	uint8_t entropy[AGENT_ENTROPY_BYTES];
};

struct agent_exit {
	int32_t exit_code;        /* status, or 128 + signal */
	uint32_t signal;          /* 0 if the process exited */
	uint64_t duration_us;
	uint64_t peak_rss_kib;
	uint32_t flags;           /* AGENT_EXIT_* */
};

struct agent_error {
	int32_t code;             /* errno value, 1 .. 4095 */
	const char *message;
};

struct agent_file_write {
	const char *path;         /* absolute */
	uint32_t mode;            /* permission bits (07777) */
	uint32_t uid, gid;        /* AGENT_ID_KEEP = leave */
};

struct agent_stat_result {
	uint32_t mode;
	uint32_t uid, gid;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
};

/* The header, from buf's first AGENT_HEADER_SIZE bytes. Fails (-1, EPROTO)
 * on an unknown type, non-zero flags or a length over the type's cap, so
 * a reader may allocate h->len bytes after it returns 0. */
int agent_decode_header(const void *buf, struct agent_header *h);
/* Writes a header for a payload of len bytes (the data frames' payload is
 * sent as is after it). Returns AGENT_HEADER_SIZE, or 0 if len is over the
 * type's cap or the type is unknown. */
size_t agent_encode_header(void *buf, size_t cap, uint16_t type, size_t len);

/* PING, OK, STDIN_EOF, END: no payload. */
size_t agent_encode_empty(void *buf, size_t cap, uint16_t type);
int agent_decode_empty(const void *payload, size_t len);

/* PONG (version), STARTED (pid), SIGNAL and WORKLOAD_SIGNAL (signo): one u32.
 * Signal numbers must be 1 .. AGENT_SIGNAL_MAX. */
size_t agent_encode_u32(void *buf, size_t cap, uint16_t type, uint32_t value);
int agent_decode_u32(const void *payload, size_t len, uint32_t *value);
int agent_decode_signal(const void *payload, size_t len, int *signo);

/* FILE_READ, STAT: one absolute path. */
size_t agent_encode_path(void *buf, size_t cap, uint16_t type, const char *path);
int agent_decode_path(const void *payload, size_t len, const char **path);

size_t agent_encode_exec(void *buf, size_t cap, const struct agent_exec_request *req);
/* Fills *req with the request; its argv and env arrays are one allocation
 * (at most a pointer per payload byte), released by agent_exec_request_free. */
int agent_decode_exec(const void *payload, size_t len, struct agent_exec_request *req);
void agent_exec_request_free(struct agent_exec_request *req);

/* A message longer than AGENT_ERROR_MESSAGE_MAX - 1 bytes is cut; a code
 * outside 1 .. 4095 becomes EIO. */
/* START: 0 if it does not fit or a field is invalid. Decoding allocates
 * the vectors; free them with agent_start_request_free. */
size_t agent_encode_start(void *buf, size_t cap, const struct agent_start_request *req);
int agent_decode_start(const void *payload, size_t len, struct agent_start_request *req);
void agent_start_request_free(struct agent_start_request *req);

size_t agent_encode_restored(void *buf, size_t cap, const struct agent_restored *r);
int agent_decode_restored(const void *payload, size_t len, struct agent_restored *r);

size_t agent_encode_error(void *buf, size_t cap, int code, const char *message);
int agent_decode_error(const void *payload, size_t len, struct agent_error *out);

size_t agent_encode_resize(void *buf, size_t cap, uint16_t rows, uint16_t cols);
int agent_decode_resize(const void *payload, size_t len, uint16_t *rows, uint16_t *cols);

size_t agent_encode_exit(void *buf, size_t cap, const struct agent_exit *ex);
int agent_decode_exit(const void *payload, size_t len, struct agent_exit *out);

size_t agent_encode_file_write(void *buf, size_t cap, const struct agent_file_write *req);
int agent_decode_file_write(const void *payload, size_t len, struct agent_file_write *out);

size_t agent_encode_stat_result(void *buf, size_t cap, const struct agent_stat_result *st);
int agent_decode_stat_result(const void *payload, size_t len, struct agent_stat_result *out);

/* A short name for a message type, for error messages ("EXEC"; "unknown"). */
const char *agent_msg_name(uint16_t type);

#endif
