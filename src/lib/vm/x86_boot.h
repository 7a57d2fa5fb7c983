/* x86_64 direct Linux boot: load the kernel, lay out boot_params (the
 * "zero page") with the e820 map, command line and initramfs, and build
 * the GDT and identity page tables the 64-bit entry point expects. */
#ifndef CAPSA_VM_X86_BOOT_H
#define CAPSA_VM_X86_BOOT_H

#include <asm/bootparam.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa.h"
#include "vm/guest_mem.h"

struct kernel_image {
	uint64_t entry;              /* guest physical 64-bit entry point */
	uint64_t end;                /* first guest physical byte after the kernel */
	bool is_bzimage;
	struct setup_header header;  /* bzImage only: its setup header */
};

/* Loads a vmlinux ELF or a bzImage from a file into guest memory. */
int x86_load_kernel(const struct guest_mem *mem, const char *path, struct kernel_image *kernel, capsa_error *err);
/* Same from a buffer (used by tests and by the file loader). */
int x86_load_kernel_buffer(const struct guest_mem *mem, const uint8_t *data, size_t size, struct kernel_image *kernel,
			   capsa_error *err);

/* Fills an e820 table for mem; returns the number of entries. */
unsigned x86_build_e820(const struct guest_mem *mem, struct boot_e820_entry *table, unsigned max);

/* Copies the initramfs to the top of low RAM (page aligned, above the
 * kernel); stores its guest address. */
int x86_load_initrd(const struct guest_mem *mem, const struct kernel_image *kernel, const uint8_t *data, size_t size,
		    uint64_t *addr, capsa_error *err);

/* Writes the command line and boot_params. */
int x86_setup_boot_params(const struct guest_mem *mem, const struct kernel_image *kernel, const char *cmdline,
			  uint64_t initrd_addr, uint64_t initrd_size, capsa_error *err);

/* GDT entries the boot vCPU's segment registers use. */
#define BOOT_GDT_CODE 1
#define BOOT_GDT_DATA 2
#define BOOT_GDT_TSS  3
uint64_t x86_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit);

/* Writes the GDT, an empty IDT and page tables identity-mapping 4 GiB. */
int x86_setup_page_tables_and_gdt(const struct guest_mem *mem, capsa_error *err);

#endif
