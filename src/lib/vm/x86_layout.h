/* Where direct boot puts things in guest physical memory (x86_64). The low
 * megabyte holds the boot structures, the kernel goes where its ELF headers
 * (or the boot protocol) say, the initramfs goes to the top of low RAM, and
 * devices live in the hole below 4 GiB (see guest_mem.h). */
#ifndef CAPSA_VM_X86_LAYOUT_H
#define CAPSA_VM_X86_LAYOUT_H

#define BOOT_GDT_ADDR       0x500ULL
#define BOOT_IDT_ADDR       0x520ULL
#define BOOT_ZERO_PAGE_ADDR 0x7000ULL   /* struct boot_params */
#define BOOT_STACK_ADDR     0x8ff0ULL
#define BOOT_PML4_ADDR      0x9000ULL
#define BOOT_PDPT_ADDR      0xa000ULL
#define BOOT_PD_ADDR        0xb000ULL   /* four pages: identity map of the first 4 GiB */
#define BOOT_CMDLINE_ADDR   0x20000ULL
#define BOOT_CMDLINE_MAX    2048        /* COMMAND_LINE_SIZE of x86 Linux */
#define BOOT_EBDA_START     0x9fc00ULL  /* MP table lives here; RAM below it */
#define BOOT_HIMEM_START    0x100000ULL /* 1 MiB */
#define BOOT_BZIMAGE_LOAD   0x100000ULL /* protected-mode part of a bzImage */

#define MMIO_DEVICES_BASE   0xd0000000ULL
#define MMIO_DEVICE_STRIDE  0x1000ULL
#define IOAPIC_ADDR         0xfec00000ULL
#define LAPIC_ADDR          0xfee00000ULL
#define KVM_TSS_ADDR        0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

#define IOAPIC_PINS         24

#endif
