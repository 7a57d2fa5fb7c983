/* The guest half of bench/fs: file system figures measured inside the
 * guest, in one directory.
 *
 * Usage: fs-guest DIR MIB FILES
 * Prints one line of key=value pairs:
 *   write_mibs  sequential write of MIB MiB in 1 MiB writes, fsync included
 *   read_mibs   sequential read of it back, the page cache dropped first
 *   create_ops stat_ops unlink_ops  FILES empty files created, then stat'ed,
 *               then unlinked (operations per second of each phase)
 *   meta_ops    FILES / the time of all three phases: create+stat+unlink per second
 *
 * Built statically (gcc -static -O2) by bench/fs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (1 << 20)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "fs-guest: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

/* So the read measures the file system, not the guest's page cache. */
static void drop_caches(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	sync();
	if (fd >= 0) {
		if (write(fd, "3\n", 2) < 0)
			fprintf(stderr, "fs-guest: cannot drop caches: %s\n", strerror(errno));
		close(fd);
	}
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: fs-guest DIR MIB FILES\n");
		return 2;
	}
	const char *dir = argv[1];
	long mib = strtol(argv[2], NULL, 10), files = strtol(argv[3], NULL, 10);
	if (mib < 1 || files < 1 || strlen(dir) > 1024) {
		fprintf(stderr, "fs-guest: MIB and FILES must be positive, DIR at most 1024 bytes\n");
		return 2;
	}
	char *block = malloc(BLOCK), path[4096];
	if (!block)
		return 1;
	for (size_t i = 0; i < BLOCK; i++)
		block[i] = (char)(i * 131 + 7);

	snprintf(path, sizeof(path), "%s/fs-guest.seq", dir);
	double t0 = now();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("create", path);
	for (long i = 0; i < mib; i++)
		if (write(fd, block, BLOCK) != BLOCK)
			die("write", path);
	if (fsync(fd) < 0)
		die("fsync", path);
	close(fd);
	double write_s = now() - t0;

	drop_caches();
	t0 = now();
	fd = open(path, O_RDONLY);
	if (fd < 0)
		die("open", path);
	long long got = 0;
	for (;;) {
		ssize_t n = read(fd, block, BLOCK);
		if (n < 0)
			die("read", path);
		if (n == 0)
			break;
		got += n;
	}
	close(fd);
	double read_s = now() - t0;
	if (got != mib * (long long)BLOCK) {
		fprintf(stderr, "fs-guest: read %lld bytes back of %ld MiB\n", got, mib);
		return 1;
	}
	unlink(path);

	char sub[2048];
	snprintf(sub, sizeof(sub), "%s/fs-guest.meta", dir);
	if (mkdir(sub, 0755) < 0 && errno != EEXIST)
		die("mkdir", sub);
	double phase[3];
	for (int p = 0; p < 3; p++) {
		t0 = now();
		for (long i = 0; i < files; i++) {
			struct stat st;
			snprintf(path, sizeof(path), "%s/f%ld", sub, i);
			if (p == 0) {
				fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
				if (fd < 0)
					die("create", path);
				close(fd);
			} else if (p == 1) {
				if (stat(path, &st) < 0)
					die("stat", path);
			} else if (unlink(path) < 0) {
				die("unlink", path);
			}
		}
		phase[p] = now() - t0;
	}
	rmdir(sub);
	printf("dir=%s write_mibs=%.1f read_mibs=%.1f create_ops=%.0f stat_ops=%.0f unlink_ops=%.0f meta_ops=%.0f\n",
	       dir, (double)mib / write_s, (double)mib / read_s, (double)files / phase[0], (double)files / phase[1],
	       (double)files / phase[2], (double)files / (phase[0] + phase[1] + phase[2]));
	free(block);
	return 0;
}
