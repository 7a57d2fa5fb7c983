/* libFuzzer target: a hostile guest driving a virtio-blk device through
 * its MMIO registers. The input is a count N, N register accesses (offset,
 * width, value, read or write), then a guest memory image; the device's
 * worker thread handles whatever the queue ends up holding. Nothing may
 * crash, hang or touch memory outside the guest image. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/virtio/mmio.h"
#include "devices/virtio_blk.h"
#include "vm/bus.h"

#define GUEST_SIZE (64 * 1024)
#define MMIO_BASE 0xd0000000ULL

struct access {
	uint16_t offset;
	uint8_t width_and_dir; /* bit 7: write; bits 0-1: width 1, 2, 4 or 8 */
	uint8_t pad;
	uint32_t value;
} __attribute__((packed));

static char disk_path[] = "/tmp/capsa-fuzz-disk-XXXXXX";
static int disk_ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!disk_ready) {
		int fd = mkstemp(disk_path);
		if (fd < 0 || ftruncate(fd, 64 * 512) < 0)
			abort();
		close(fd);
		disk_ready = 1;
	}
	if (size < 1)
		return 0;
	size_t count = data[0];
	data++;
	size--;
	if (count * sizeof(struct access) > size)
		count = size / sizeof(struct access);
	const uint8_t *accesses = data;
	data += count * sizeof(struct access);
	size -= count * sizeof(struct access);

	uint8_t *image = calloc(1, GUEST_SIZE);
	memcpy(image, data, size < GUEST_SIZE ? size : GUEST_SIZE);
	struct guest_mem mem = { .host = image, .size = GUEST_SIZE };
	struct bus bus = { 0 };
	struct vm_device_env env = { .mem = &mem, .mmio_bus = &bus, .vm_fd = -1 };
	capsa_error err;
	struct virtio_blk *blk = virtio_blk_create(&env, MMIO_BASE, 5, disk_path, false, &err);
	if (!blk)
		abort();

	for (size_t i = 0; i < count; i++) {
		struct access a;
		memcpy(&a, accesses + i * sizeof(a), sizeof(a));
		uint32_t width = 1u << (a.width_and_dir & 3);
		uint8_t bytes[8] = { 0 };
		memcpy(bytes, &a.value, sizeof(a.value));
		/* Offsets past the window are legal guest behaviour: nothing answers. */
		uint64_t addr = MMIO_BASE + (a.offset & 0x1fff);
		if (a.width_and_dir & 0x80)
			bus_write(&bus, addr, bytes, width);
		else
			bus_read(&bus, addr, bytes, width);
	}
	virtio_blk_destroy(blk);
	free(image);
	return 0;
}
