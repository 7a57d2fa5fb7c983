/* Guest physical memory as seen by the VMM: one host mapping of `size`
 * bytes. Guest physical addresses [0, min(size, 3 GiB)) map to its start;
 * whatever RAM does not fit below 3 GiB appears at 4 GiB and up, leaving
 * the hole [3 GiB, 4 GiB) for MMIO devices, the IOAPIC and the LAPIC.
 *
 * Every access on behalf of the guest goes through guest_mem_ptr(), which
 * refuses ranges that are not entirely RAM, so a hostile guest address can
 * never make the host touch other memory. */
#ifndef CAPSA_VM_GUEST_MEM_H
#define CAPSA_VM_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_HOLE_START 0xC0000000ULL  /* 3 GiB */
#define GUEST_MEM_HOLE_END   0x100000000ULL /* 4 GiB */

struct guest_mem {
	uint8_t *host;  /* host address backing guest physical address 0 */
	uint64_t size;  /* bytes of guest RAM in total */
};

static inline uint64_t guest_mem_low_size(const struct guest_mem *mem)
{
	return mem->size < GUEST_MEM_HOLE_START ? mem->size : GUEST_MEM_HOLE_START;
}

/* Host pointer for guest physical [gpa, gpa+len), or NULL unless every
 * byte of it is RAM in one region. */
static inline void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	uint64_t low = guest_mem_low_size(mem);
	if (gpa <= low && len <= low - gpa)
		return mem->host + gpa;
	if (gpa >= GUEST_MEM_HOLE_END) {
		uint64_t offset = gpa - GUEST_MEM_HOLE_END;
		uint64_t high = mem->size - low;
		if (offset <= high && len <= high - offset)
			return mem->host + low + offset;
	}
	return NULL;
}

#endif
