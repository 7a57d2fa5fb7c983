/* fsx: a file system exerciser in the spirit of the classic fsx. It does
 * random writes, reads, truncations, fallocate calls, copy_file_range and
 * mmap reads and writes on one file, keeps what the file must hold in
 * memory, and checks every read (and the size after every operation)
 * against that. Seeded, so a failure can be replayed.
 *
 * Usage: fsx [-N OPS] [-S SEED] [-l MAXLEN] [-o MAXOP] FILE
 * Exit status 0 when every check passed, 1 on a mismatch or an unexpected
 * error (the seed and the last operations are printed), 2 on bad usage.
 *
 * Built statically (gcc -static -O2) by the end-to-end tests and run in
 * the guest on a virtio-fs mount. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum op_kind {
	OP_WRITE, OP_READ, OP_TRUNCATE, OP_FALLOC, OP_FALLOC_KEEP, OP_PUNCH, OP_ZERO, OP_COPY, OP_MAPREAD,
	OP_MAPWRITE, OP_REOPEN, OP_FSYNC, OP_KINDS
};

static const char *const op_names[OP_KINDS] = {
	"write", "read", "truncate", "fallocate", "fallocate-keep-size", "punch-hole", "zero-range",
	"copy_file_range", "mapread", "mapwrite", "reopen", "fsync",
};

/* Relative weights; operations the file system lacks get 0. */
static unsigned weights[OP_KINDS] = { 30, 30, 8, 4, 4, 4, 4, 4, 5, 5, 1, 1 };

struct logged_op {
	enum op_kind kind;
	uint64_t off, len, size_after;
	uint64_t n;
};

#define LOG_SIZE 32

static struct logged_op op_log[LOG_SIZE];
static uint64_t op_count;
static uint64_t seed;
static const char *path;
static int fd = -1;
static uint8_t *good;       /* what the file must hold */
static uint8_t *buf;
static uint64_t file_size;  /* what its size must be */
static uint64_t max_len = 256 * 1024;
static uint64_t max_op = 64 * 1024;
static uint64_t page_size;

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void dump_log(void)
{
	uint64_t first = op_count > LOG_SIZE ? op_count - LOG_SIZE : 0;
	fprintf(stderr, "fsx: last operations (op number, kind, offset, length, size after):\n");
	for (uint64_t i = first; i < op_count; i++) {
		const struct logged_op *o = &op_log[i % LOG_SIZE];
		fprintf(stderr, "  %8" PRIu64 " %-20s off %#10" PRIx64 " len %#8" PRIx64 " size %#10" PRIx64 "\n",
			o->n, op_names[o->kind], o->off, o->len, o->size_after);
	}
}

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "fsx: FAILED at operation %" PRIu64 " (seed %" PRIu64 "): ", op_count, seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	dump_log();
	fprintf(stderr, "fsx: replay with: fsx -S %" PRIu64 " -N %" PRIu64 " -l %" PRIu64 " -o %" PRIu64 " FILE\n",
		seed, op_count + 1, max_len, max_op);
	exit(1);
}

static void log_op(enum op_kind kind, uint64_t off, uint64_t len)
{
	op_log[op_count % LOG_SIZE] = (struct logged_op){ kind, off, len, file_size, op_count };
	op_count++;
}

static void check_bytes(const uint8_t *got, uint64_t off, uint64_t len, const char *how)
{
	if (memcmp(got, good + off, len) == 0)
		return;
	uint64_t i = 0;
	while (got[i] == good[off + i])
		i++;
	uint64_t bad_end = i;
	while (bad_end < len && got[bad_end] != good[off + bad_end])
		bad_end++;
	fail("%s of %#" PRIx64 "+%#" PRIx64 ": byte %#" PRIx64 " is %#04x, expected %#04x (first mismatching run "
	     "%#" PRIx64 " bytes)", how, off, len, off + i, got[i], good[off + i], bad_end - i);
}

static void check_size(void)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		fail("fstat: %s", strerror(errno));
	if ((uint64_t)st.st_size != file_size)
		fail("size is %#" PRIx64 ", expected %#" PRIx64, (uint64_t)st.st_size, file_size);
}

static void full_pread(uint64_t off, uint64_t len, uint8_t *dst)
{
	uint64_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, dst + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("pread %#" PRIx64 "+%#" PRIx64 ": %s", off, len, strerror(errno));
		if (n == 0)
			fail("pread %#" PRIx64 "+%#" PRIx64 ": end of file after %#" PRIx64 " bytes", off, len, done);
		done += (uint64_t)n;
	}
}

static void full_pwrite(uint64_t off, uint64_t len, const uint8_t *src)
{
	uint64_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, src + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("pwrite %#" PRIx64 "+%#" PRIx64 ": %s", off, len,
			     n < 0 ? strerror(errno) : "wrote nothing");
		done += (uint64_t)n;
	}
}

static void grow_to(uint64_t end)
{
	/* The mirror past file_size is always zero, so growing needs no fill. */
	if (end > file_size)
		file_size = end;
}

static void do_write(void)
{
	uint64_t off = rnd_below(max_len);
	uint64_t len = 1 + rnd_below(max_op);
	if (off + len > max_len)
		len = max_len - off;
	for (uint64_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(rnd() >> 32);
	full_pwrite(off, len, buf);
	memcpy(good + off, buf, len);
	grow_to(off + len);
	log_op(OP_WRITE, off, len);
}

static void do_read(void)
{
	if (file_size == 0) {
		log_op(OP_READ, 0, 0);
		return;
	}
	uint64_t off = rnd_below(file_size);
	uint64_t len = 1 + rnd_below(max_op);
	if (off + len > file_size)
		len = file_size - off;
	log_op(OP_READ, off, len);
	full_pread(off, len, buf);
	check_bytes(buf, off, len, "read");
}

static void do_truncate(void)
{
	uint64_t size = rnd_below(max_len + 1);
	if (ftruncate(fd, (off_t)size) < 0)
		fail("ftruncate to %#" PRIx64 ": %s", size, strerror(errno));
	if (size < file_size)
		memset(good + size, 0, file_size - size);
	file_size = size;
	log_op(OP_TRUNCATE, size, 0);
}

static int falloc_mode(enum op_kind kind)
{
	switch (kind) {
	case OP_FALLOC_KEEP: return FALLOC_FL_KEEP_SIZE;
	case OP_PUNCH: return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	case OP_ZERO: return FALLOC_FL_ZERO_RANGE;
	default: return 0;
	}
}

static void do_fallocate(enum op_kind kind)
{
	uint64_t off = rnd_below(max_len);
	uint64_t len = 1 + rnd_below(max_op);
	if (off + len > max_len)
		len = max_len - off;
	if (fallocate(fd, falloc_mode(kind), (off_t)off, (off_t)len) < 0)
		fail("%s %#" PRIx64 "+%#" PRIx64 ": %s", op_names[kind], off, len, strerror(errno));
	if (kind == OP_PUNCH || kind == OP_ZERO) {
		uint64_t end = off + len;
		if (kind == OP_PUNCH && end > file_size)
			end = file_size;  /* KEEP_SIZE: nothing past the end changes */
		if (end > off)
			memset(good + off, 0, end - off);
	}
	if (kind == OP_FALLOC || kind == OP_ZERO)
		grow_to(off + len);
	log_op(kind, off, len);
}

static void do_copy(void)
{
	if (file_size == 0) {
		log_op(OP_COPY, 0, 0);
		return;
	}
	uint64_t src = rnd_below(file_size);
	uint64_t len = 1 + rnd_below(max_op);
	if (src + len > file_size)
		len = file_size - src;
	uint64_t dst = rnd_below(max_len - len + 1);
	/* Overlapping ranges in one file are EINVAL for copy_file_range. */
	if (dst < src + len && src < dst + len) {
		log_op(OP_COPY, src, 0);
		return;
	}
	log_op(OP_COPY, dst, len);
	uint64_t done = 0;
	while (done < len) {
		loff_t in = (loff_t)(src + done), out = (loff_t)(dst + done);
		ssize_t n = copy_file_range(fd, &in, fd, &out, len - done, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("copy_file_range %#" PRIx64 "+%#" PRIx64 " to %#" PRIx64 ": %s", src, len, dst,
			     n < 0 ? strerror(errno) : "copied nothing");
		done += (uint64_t)n;
	}
	memmove(good + dst, good + src, len);
	grow_to(dst + len);
}

/* mmap needs the range inside the file; the map starts at a page. */
static void do_map(bool write)
{
	enum op_kind kind = write ? OP_MAPWRITE : OP_MAPREAD;
	if (file_size == 0) {
		log_op(kind, 0, 0);
		return;
	}
	uint64_t off = rnd_below(file_size);
	uint64_t len = 1 + rnd_below(max_op);
	if (off + len > file_size)
		len = file_size - off;
	log_op(kind, off, len);
	uint64_t map_off = off & ~(page_size - 1), map_len = off + len - map_off;
	int prot = write ? PROT_READ | PROT_WRITE : PROT_READ;
	uint8_t *p = mmap(NULL, map_len, prot, MAP_SHARED, fd, (off_t)map_off);
	if (p == MAP_FAILED)
		fail("mmap %#" PRIx64 "+%#" PRIx64 ": %s", map_off, map_len, strerror(errno));
	if (write) {
		for (uint64_t i = 0; i < len; i++)
			good[off + i] = (uint8_t)(rnd() >> 32);
		memcpy(p + (off - map_off), good + off, len);
		if (msync(p, map_len, MS_SYNC) < 0)
			fail("msync: %s", strerror(errno));
	} else {
		check_bytes(p + (off - map_off), off, len, "mapread");
	}
	munmap(p, map_len);
}

static void open_file(bool create)
{
	fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0644);
	if (fd < 0)
		fail("open %s: %s", path, strerror(errno));
}

/* A fresh descriptor must see the same bytes: checks the whole file. */
static void do_reopen(void)
{
	log_op(OP_REOPEN, 0, file_size);
	close(fd);
	open_file(false);
	check_size();
	for (uint64_t off = 0; off < file_size; off += max_op) {
		uint64_t len = file_size - off < max_op ? file_size - off : max_op;
		full_pread(off, len, buf);
		check_bytes(buf, off, len, "read after reopen");
	}
}

static void do_fsync(void)
{
	log_op(OP_FSYNC, 0, 0);
	if (fsync(fd) < 0)
		fail("fsync: %s", strerror(errno));
}

/* Leaves out what this file system does not do, saying so. */
static void probe(void)
{
	static const enum op_kind kinds[] = { OP_FALLOC, OP_FALLOC_KEEP, OP_PUNCH, OP_ZERO };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (fallocate(fd, falloc_mode(kinds[i]), 0, 1) == 0)
			continue;
		if (errno != EOPNOTSUPP && errno != ENOSYS)
			fail("probing %s: %s", op_names[kinds[i]], strerror(errno));
		printf("fsx: %s is not supported here; left out\n", op_names[kinds[i]]);
		weights[kinds[i]] = 0;
	}
	if (ftruncate(fd, 0) < 0)
		fail("ftruncate: %s", strerror(errno));
	loff_t in = 0, out = 1;
	char one = 'x';
	if (pwrite(fd, &one, 1, 0) != 1)
		fail("pwrite: %s", strerror(errno));
	if (copy_file_range(fd, &in, fd, &out, 1, 0) < 0) {
		if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EXDEV)
			fail("probing copy_file_range: %s", strerror(errno));
		printf("fsx: copy_file_range is not supported here; left out\n");
		weights[OP_COPY] = 0;
	}
	if (ftruncate(fd, 0) < 0)
		fail("ftruncate: %s", strerror(errno));
}

static uint64_t parse_number(const char *text, const char *what)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 0);
	if (errno || end == text || *end) {
		fprintf(stderr, "fsx: %s '%s' is not a number\n", what, text);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	uint64_t ops = 10000;
	int c;

	seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	while ((c = getopt(argc, argv, "N:S:l:o:")) != -1) {
		switch (c) {
		case 'N': ops = parse_number(optarg, "-N"); break;
		case 'S': seed = parse_number(optarg, "-S"); break;
		case 'l': max_len = parse_number(optarg, "-l"); break;
		case 'o': max_op = parse_number(optarg, "-o"); break;
		default:
			fprintf(stderr, "usage: fsx [-N OPS] [-S SEED] [-l MAXLEN] [-o MAXOP] FILE\n");
			return 2;
		}
	}
	if (optind + 1 != argc || max_len == 0 || max_op == 0 || max_len > (1ULL << 30)) {
		fprintf(stderr, "usage: fsx [-N OPS] [-S SEED] [-l MAXLEN] [-o MAXOP] FILE\n");
		return 2;
	}
	path = argv[optind];
	page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	rng_state = seed ? seed : 1;
	good = calloc(max_len, 1);
	buf = malloc(max_op > max_len ? max_op : max_len);
	if (!good || !buf) {
		fprintf(stderr, "fsx: out of memory\n");
		return 1;
	}
	printf("fsx: seed %" PRIu64 ", %" PRIu64 " operations on %s (max length %#" PRIx64 ", max op %#" PRIx64 ")\n",
	       seed, ops, path, max_len, max_op);
	open_file(true);
	probe();

	unsigned total = 0;
	for (int k = 0; k < OP_KINDS; k++)
		total += weights[k];
	uint64_t counts[OP_KINDS] = { 0 };
	for (uint64_t i = 0; i < ops; i++) {
		unsigned pick = (unsigned)rnd_below(total);
		enum op_kind kind = 0;
		while (pick >= weights[kind])
			pick -= weights[kind++];
		switch (kind) {
		case OP_WRITE: do_write(); break;
		case OP_READ: do_read(); break;
		case OP_TRUNCATE: do_truncate(); break;
		case OP_FALLOC: case OP_FALLOC_KEEP: case OP_PUNCH: case OP_ZERO: do_fallocate(kind); break;
		case OP_COPY: do_copy(); break;
		case OP_MAPREAD: do_map(false); break;
		case OP_MAPWRITE: do_map(true); break;
		case OP_REOPEN: do_reopen(); break;
		case OP_FSYNC: do_fsync(); break;
		case OP_KINDS: break;
		}
		counts[kind]++;
		check_size();
	}
	do_reopen();
	close(fd);
	printf("fsx: all %" PRIu64 " operations checked out:", ops);
	for (int k = 0; k < OP_KINDS; k++)
		if (counts[k])
			printf(" %s %" PRIu64, op_names[k], counts[k]);
	printf("\n");
	free(good);
	free(buf);
	return 0;
}
