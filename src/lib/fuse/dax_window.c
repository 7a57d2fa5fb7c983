/* DAX window host mapping: see dax_window.h. */
#include "fuse/dax_window.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/error.h"

#define BITS 64

/* A few pieces beyond what a guest mapping whole chunks can make. */
#define SPARE_EDGES 16

struct dax_window *dax_window_new(uint64_t size, capsa_error *err)
{
	if (size == 0 || size % DAX_WINDOW_CHUNK || size > (1ULL << 46)) {
		error_set(err, EINVAL, "DAX window of %llu bytes: use a multiple of 2 MiB up to 64 TiB",
			  (unsigned long long)size);
		return NULL;
	}
	struct dax_window *w = calloc(1, sizeof(*w));
	if (!w) {
		error_set(err, ENOMEM, "out of memory for the DAX window");
		return NULL;
	}
	w->size = size;
	w->page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t pages = size / w->page;
	w->edges = calloc((size_t)((pages + BITS - 1) / BITS), sizeof(uint64_t));
	/* Every piece a guest makes of whole chunks begins on a chunk
	 * boundary: at most one edge per chunk. Twice that leaves room for
	 * page-sized pieces here and there. */
	w->edge_max = 2 * (size_t)(size / DAX_WINDOW_CHUNK) + SPARE_EDGES;
	void *host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!w->edges || host == MAP_FAILED) {
		error_set_errno(err, w->edges ? errno : ENOMEM, "reserving a DAX window of %llu MiB",
				(unsigned long long)(size >> 20));
		free(w->edges);
		free(w);
		return NULL;
	}
	w->host = host;
	return w;
}

void dax_window_free(struct dax_window *w)
{
	if (!w)
		return;
	munmap(w->host, w->size);
	free(w->edges);
	free(w);
}

bool dax_window_range_ok(const struct dax_window *w, uint64_t moffset, uint64_t len)
{
	return len != 0 && moffset % w->page == 0 && len % w->page == 0 && moffset < w->size &&
	       len <= w->size - moffset;
}

bool dax_window_map_ok(const struct dax_window *w, uint64_t moffset, uint64_t len, uint64_t foffset)
{
	return dax_window_range_ok(w, moffset, len) && foffset % w->page == 0 && foffset <= (uint64_t)INT64_MAX - len;
}

static bool edge_at(const struct dax_window *w, uint64_t i)
{
	return w->edges[i / BITS] >> (i % BITS) & 1;
}

/* Edges strictly between pages first and end, cleared when clear is set. */
static size_t inner_edges(struct dax_window *w, uint64_t first, uint64_t end, bool clear)
{
	size_t n = 0;
	for (uint64_t i = first + 1; i < end;) {
		uint64_t word = i / BITS, shift = i % BITS;
		uint64_t take = BITS - shift < end - i ? BITS - shift : end - i;
		uint64_t mask = (take == BITS ? ~0ULL : ((1ULL << take) - 1)) << shift;
		n += (size_t)__builtin_popcountll(w->edges[word] & mask);
		if (clear)
			w->edges[word] &= ~mask;
		i += take;
	}
	return n;
}

/* Accounts for a new piece over pages [first, end), or refuses it when the
 * window would have too many. */
static int add_piece(struct dax_window *w, uint64_t moffset, uint64_t len)
{
	uint64_t first = moffset / w->page, end = (moffset + len) / w->page, pages = w->size / w->page;
	bool new_first = first > 0 && !edge_at(w, first);
	bool new_end = end < pages && !edge_at(w, end);
	size_t count = w->edge_count - inner_edges(w, first, end, false) + new_first + new_end;
	if (count > w->edge_max)
		return -ENOMEM;
	inner_edges(w, first, end, true);
	if (new_first)
		w->edges[first / BITS] |= 1ULL << (first % BITS);
	if (new_end)
		w->edges[end / BITS] |= 1ULL << (end % BITS);
	w->edge_count = count;
	return 0;
}

static int map_anonymous(struct dax_window *w, uint64_t moffset, uint64_t len)
{
	void *p = mmap(w->host + moffset, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	return p == MAP_FAILED ? -errno : 0;
}

int dax_window_map(struct dax_window *w, uint64_t moffset, uint64_t len, int fd, uint64_t foffset,
		   bool writable)
{
	if (!dax_window_map_ok(w, moffset, len, foffset))
		return -EINVAL;
	int r = add_piece(w, moffset, len);
	if (r < 0)
		return r;
	int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
	void *p = mmap(w->host + moffset, len, prot, MAP_SHARED | MAP_FIXED, fd, (off_t)foffset);
	if (p != MAP_FAILED)
		return 0;
	r = -errno;
	/* A MAP_FIXED that fails may have unmapped the range already: a hole
	 * there would fault the guest's accesses, so fill it again. */
	map_anonymous(w, moffset, len);
	return r;
}

int dax_window_unmap(struct dax_window *w, uint64_t moffset, uint64_t len)
{
	if (!dax_window_range_ok(w, moffset, len))
		return -EINVAL;
	int r = add_piece(w, moffset, len);
	return r < 0 ? r : map_anonymous(w, moffset, len);
}

int dax_window_reset(struct dax_window *w)
{
	inner_edges(w, 0, w->size / w->page, true);
	w->edge_count = 0;
	return map_anonymous(w, 0, w->size);
}
