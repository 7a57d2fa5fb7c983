#include "oci/pull_progress.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "oci/digest.h"

#define REDRAW_INTERVAL_NS 100000000L
/* "sha256:" and 12 hex digits, the way ids are shown. */
#define SHORT_DIGEST_LEN (sizeof(OCI_DIGEST_PREFIX) - 1 + 12)

struct blob_line {
	char digest[SHORT_DIGEST_LEN + 1];
	int64_t size;
	uint64_t done;
	pull_blob_state state;
};

struct pull_progress {
	FILE *out;
	bool redraw;           /* a terminal with room for every line */
	unsigned columns;
	pthread_mutex_t lock;
	struct blob_line *lines;
	size_t n, allocated;
	size_t drawn;          /* lines on screen from the last redraw */
	struct timespec last_draw;
};

void pull_progress_format_size(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };

	if (bytes < 1024) {
		snprintf(buf, size, "%llu B", (unsigned long long)bytes);
		return;
	}
	double v = (double)bytes / 1024;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f %s", v, units[u]);
}

pull_progress *pull_progress_new(FILE *out)
{
	if (!out)
		return NULL;
	pull_progress *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->out = out;
	pthread_mutex_init(&p->lock, NULL);
	struct winsize ws;
	int fd = fileno(out);
	if (fd >= 0 && isatty(fd) && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40 && ws.ws_row >= 3) {
		p->redraw = true;
		p->columns = ws.ws_col;
	}
	return p;
}

void pull_progress_free(pull_progress *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	free(p->lines);
	free(p);
}

static const char *state_name(pull_blob_state s)
{
	switch (s) {
	case PULL_BLOB_WAITING: return "waiting";
	case PULL_BLOB_DOWNLOADING: return "downloading";
	case PULL_BLOB_RETRYING: return "retrying";
	case PULL_BLOB_DONE: return "done";
	case PULL_BLOB_PRESENT: return "already present";
	case PULL_BLOB_FAILED: return "failed";
	}
	return "";
}

static void draw_locked(pull_progress *p, bool force)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	long elapsed = (now.tv_sec - p->last_draw.tv_sec) * 1000000000L + (now.tv_nsec - p->last_draw.tv_nsec);
	if (!force && p->drawn && elapsed < REDRAW_INTERVAL_NS)
		return;
	p->last_draw = now;
	if (p->drawn)
		fprintf(p->out, "\033[%zuA", p->drawn);
	for (size_t i = 0; i < p->n; i++) {
		const struct blob_line *l = &p->lines[i];
		char done[32], total[32], line[160];

		pull_progress_format_size(l->done, done, sizeof(done));
		pull_progress_format_size(l->size > 0 ? (uint64_t)l->size : 0, total, sizeof(total));
		if (l->state == PULL_BLOB_DOWNLOADING || l->state == PULL_BLOB_RETRYING)
			snprintf(line, sizeof(line), "%s  %-15s %s / %s", l->digest, state_name(l->state), done,
				 total);
		else
			snprintf(line, sizeof(line), "%s  %-15s %s", l->digest, state_name(l->state), total);
		/* A wrapped line would break the cursor arithmetic. */
		if (strlen(line) >= p->columns)
			line[p->columns - 1] = '\0';
		fprintf(p->out, "\r\033[K%s\n", line);
	}
	p->drawn = p->n;
	fflush(p->out);
}

static void print_line_locked(pull_progress *p, const struct blob_line *l)
{
	char size[32];

	uint64_t bytes = l->state == PULL_BLOB_DONE ? l->done : (uint64_t)(l->size > 0 ? l->size : 0);

	pull_progress_format_size(bytes, size, sizeof(size));
	if (l->state == PULL_BLOB_DONE)
		fprintf(p->out, "%s: downloaded %s\n", l->digest, size);
	else if (l->state == PULL_BLOB_PRESENT)
		fprintf(p->out, "%s: already present (%s)\n", l->digest, size);
	fflush(p->out);
}

size_t pull_progress_add(pull_progress *p, const char *digest, int64_t size, pull_blob_state state)
{
	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	size_t index = p->n;
	if (p->n == p->allocated) {
		size_t want = p->allocated ? p->allocated * 2 : 16;
		struct blob_line *bigger = realloc(p->lines, want * sizeof(*bigger));
		if (!bigger) {
			pthread_mutex_unlock(&p->lock);
			return SIZE_MAX;
		}
		p->lines = bigger;
		p->allocated = want;
	}
	struct blob_line *l = &p->lines[p->n++];
	snprintf(l->digest, sizeof(l->digest), "%s", digest);
	l->size = size;
	l->done = 0;
	l->state = state;
	if (!p->redraw)
		print_line_locked(p, l);
	/* A display taller than the terminal cannot be redrawn in place. */
	struct winsize ws;
	if (p->redraw && ioctl(fileno(p->out), TIOCGWINSZ, &ws) == 0 && p->n + 1 >= ws.ws_row) {
		p->redraw = false;
		for (size_t i = 0; i < p->n; i++)
			print_line_locked(p, &p->lines[i]);
	}
	pthread_mutex_unlock(&p->lock);
	return index;
}

void pull_progress_set_bytes(pull_progress *p, size_t blob, uint64_t done)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (blob < p->n) {
		p->lines[blob].done = done;
		if (p->redraw)
			draw_locked(p, false);
	}
	pthread_mutex_unlock(&p->lock);
}

void pull_progress_set_state(pull_progress *p, size_t blob, pull_blob_state state)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (blob < p->n && p->lines[blob].state != state) {
		p->lines[blob].state = state;
		if (p->redraw)
			draw_locked(p, false);
		else
			print_line_locked(p, &p->lines[blob]);
	}
	pthread_mutex_unlock(&p->lock);
}

void pull_progress_finish(pull_progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->redraw)
		draw_locked(p, true);
	pthread_mutex_unlock(&p->lock);
}
