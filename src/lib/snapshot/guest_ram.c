#include "snapshot/guest_ram.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"

#define PAGE 4096u
#define CHUNK (2u << 20)

static bool page_is_zero(const uint8_t *page)
{
	const uint64_t *words = (const uint64_t *)page;
	for (unsigned i = 0; i < PAGE / sizeof(uint64_t); i++)
		if (words[i])
			return false;
	return true;
}

static int write_run(int fd, const uint8_t *data, size_t len, off_t offset, const char *path, capsa_error *err)
{
	while (len) {
		ssize_t n = pwrite(fd, data, len, offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return error_set_errno(err, errno, "writing snapshot memory %s", path);
		}
		data += n;
		len -= (size_t)n;
		offset += n;
	}
	return 0;
}

int guest_ram_save(const struct vm *vm, const char *path, capsa_error *err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return error_set_errno(err, errno, "creating snapshot memory %s", path);
	if (ftruncate(fd, (off_t)vm->mem.size) < 0)
		return error_set_errno(err, errno, "sizing snapshot memory %s", path);

	/* Pages an anonymous mapping never had are not resident: skip them
	 * without reading (reading would not allocate them, but costs time).
	 * A mapping of an earlier snapshot's file must be read whole: a page
	 * not resident there still holds that file's data. */
	_cleanup_free_ unsigned char *resident = malloc(CHUNK / PAGE);
	if (!resident)
		return error_set(err, ENOMEM, "out of memory");
	const uint8_t *base = vm->mem.host;
	for (uint64_t chunk = 0; chunk < vm->mem.size; chunk += CHUNK) {
		size_t chunk_len = vm->mem.size - chunk < CHUNK ? (size_t)(vm->mem.size - chunk) : CHUNK;
		if (vm->mem_from_file || mincore((void *)(base + chunk), chunk_len, resident) < 0)
			memset(resident, 1, CHUNK / PAGE);
		size_t run_start = 0, run_len = 0;
		for (size_t off = 0; off < chunk_len; off += PAGE) {
			bool data = (resident[off / PAGE] & 1) && !page_is_zero(base + chunk + off);
			if (data) {
				if (!run_len)
					run_start = off;
				run_len += PAGE;
				continue;
			}
			if (run_len && write_run(fd, base + chunk + run_start, run_len, (off_t)(chunk + run_start), path,
						 err) < 0)
				return -1;
			run_len = 0;
		}
		if (run_len &&
		    write_run(fd, base + chunk + run_start, run_len, (off_t)(chunk + run_start), path, err) < 0)
			return -1;
	}
	if (fsync(fd) < 0)
		return error_set_errno(err, errno, "syncing snapshot memory %s", path);
	return 0;
}

int guest_ram_open(const char *path, uint32_t mem_mib, capsa_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set_errno(err, errno, "snapshot memory %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return error_set_errno(err, errno, "snapshot memory %s", path);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != (uint64_t)mem_mib << 20)
		return error_set(err, EINVAL, "snapshot memory %s holds %lld bytes, expected %u MiB (the snapshot is "
				 "damaged; remove it and bake it again)", path, (long long)st.st_size, mem_mib);
	return steal_fd(&fd);
}
