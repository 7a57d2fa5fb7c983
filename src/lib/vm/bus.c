#include "vm/bus.h"

#include <string.h>

/* True if [base, base+size) and [other_base, other_base+other_size)
 * share a byte. Both ranges are known not to wrap past UINT64_MAX. */
static bool ranges_overlap(uint64_t base, uint64_t size, uint64_t other_base, uint64_t other_size)
{
	return base < other_base + other_size && other_base < base + size;
}

int bus_register(struct bus *bus, const struct bus_device *dev)
{
	if (bus->count >= BUS_MAX_DEVICES)
		return -1;
	/* An empty range or one that wraps around the address space would
	 * make the containment checks below meaningless. */
	if (dev->size == 0 || dev->base + dev->size < dev->base)
		return -1;
	for (unsigned i = 0; i < bus->count; i++) {
		const struct bus_device *other = &bus->devices[i];
		if (ranges_overlap(dev->base, dev->size, other->base, other->size))
			return -1;
	}
	bus->devices[bus->count++] = *dev;
	return 0;
}

/* The device whose range holds every byte of [addr, addr+len), if any:
 * an access that straddles a device's edge belongs to nobody. */
static const struct bus_device *bus_find(const struct bus *bus, uint64_t addr, uint32_t len)
{
	for (unsigned i = 0; i < bus->count; i++) {
		const struct bus_device *dev = &bus->devices[i];
		if (addr < dev->base)
			continue;
		uint64_t offset = addr - dev->base;
		if (offset < dev->size && len <= dev->size - offset)
			return dev;
	}
	return NULL;
}

bool bus_read(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len)
{
	const struct bus_device *dev = bus_find(bus, addr, len);
	if (!dev || !dev->read) {
		memset(data, 0xff, len);
		return dev != NULL;
	}
	dev->read(dev->opaque, addr - dev->base, data, len);
	return true;
}

bool bus_write(struct bus *bus, uint64_t addr, const uint8_t *data, uint32_t len)
{
	const struct bus_device *dev = bus_find(bus, addr, len);
	if (!dev || !dev->write)
		return dev != NULL;
	dev->write(dev->opaque, addr - dev->base, data, len);
	return true;
}
