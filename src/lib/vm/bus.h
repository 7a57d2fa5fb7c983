/* MMIO and port-I/O dispatch: devices register an address range and get
 * the vCPU's accesses inside it. Handlers run on the vCPU thread, so they
 * must be quick: device work belongs on the device's own worker thread. */
#ifndef CAPSA_VM_BUS_H
#define CAPSA_VM_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct bus_device {
	uint64_t base;
	uint64_t size;
	void *opaque;
	/* offset is relative to base; len is 1, 2, 4 or 8; data is little-endian bytes. */
	void (*read)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len);
	void (*write)(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len);
};

#define BUS_MAX_DEVICES 32

struct bus {
	struct bus_device devices[BUS_MAX_DEVICES];
	unsigned count;
};

/* Returns -1 if the bus is full or the range overlaps a registered one. */
int bus_register(struct bus *bus, const struct bus_device *dev);
/* Returns false when no device claims addr (reads then see all ones). */
bool bus_read(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len);
bool bus_write(struct bus *bus, uint64_t addr, const uint8_t *data, uint32_t len);

#endif
