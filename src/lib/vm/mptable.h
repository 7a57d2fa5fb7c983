/* Intel MultiProcessor Specification 1.4 table: how a guest without ACPI
 * learns about its CPUs, the IOAPIC and how ISA interrupts are wired. */
#ifndef CAPSA_VM_MPTABLE_H
#define CAPSA_VM_MPTABLE_H

#include <stdint.h>

#include "capsa.h"
#include "vm/guest_mem.h"

#define MPTABLE_MAX_CPUS 32 /* what fits in the 1 KiB below 640 KiB */

/* Writes the floating pointer and the configuration table at
 * BOOT_EBDA_START for cpus CPUs (APIC ids 0..cpus-1, CPU 0 boots). */
int mptable_write(const struct guest_mem *mem, unsigned cpus, capsa_error *err);

#endif
