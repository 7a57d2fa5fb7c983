/* Direct boot: e820, kernel loading (ELF and bzImage, malformed ones),
 * boot_params and command line, initramfs placement, GDT and MP table. */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vm/guest_mem.h"
#include "vm/mptable.h"
#include "vm/x86_boot.h"
#include "vm/x86_layout.h"

#define MIB (1024ULL * 1024)

static struct guest_mem make_mem(uint64_t size)
{
	struct guest_mem mem = { .host = calloc(1, size), .size = size };
	assert_non_null(mem.host);
	return mem;
}

static void test_guest_mem_bounds(void **state)
{
	(void)state;
	/* Pretend 4 GiB + 1 MiB of RAM without allocating: only pointer math. */
	struct guest_mem mem = { .host = (uint8_t *)0x10000, .size = GUEST_MEM_HOLE_START + MIB };
	assert_ptr_equal(guest_mem_ptr(&mem, 0, 16), mem.host);
	assert_non_null(guest_mem_ptr(&mem, GUEST_MEM_HOLE_START - 16, 16));
	assert_null(guest_mem_ptr(&mem, GUEST_MEM_HOLE_START - 16, 17)); /* runs into the hole */
	assert_null(guest_mem_ptr(&mem, GUEST_MEM_HOLE_START, 1));
	assert_ptr_equal(guest_mem_ptr(&mem, GUEST_MEM_HOLE_END, 1), mem.host + GUEST_MEM_HOLE_START);
	assert_non_null(guest_mem_ptr(&mem, GUEST_MEM_HOLE_END + MIB - 1, 1));
	assert_null(guest_mem_ptr(&mem, GUEST_MEM_HOLE_END + MIB, 1));
	assert_null(guest_mem_ptr(&mem, UINT64_MAX, 2));
	assert_null(guest_mem_ptr(&mem, 16, UINT64_MAX));
}

static void test_e820_small(void **state)
{
	(void)state;
	struct guest_mem mem = { .host = NULL, .size = 512 * MIB };
	struct boot_e820_entry table[8];
	unsigned n = x86_build_e820(&mem, table, 8);
	assert_int_equal(n, 3);
	assert_int_equal(table[0].addr, 0);
	assert_int_equal(table[0].size, BOOT_EBDA_START);
	assert_int_equal(table[0].type, 1);
	assert_int_equal(table[1].addr, BOOT_EBDA_START);
	assert_int_equal(table[1].type, 2);
	assert_int_equal(table[2].addr, BOOT_HIMEM_START);
	assert_int_equal(table[2].addr + table[2].size, 512 * MIB);
}

static void test_e820_above_hole(void **state)
{
	(void)state;
	struct guest_mem mem = { .host = NULL, .size = 4096 * MIB };
	struct boot_e820_entry table[8];
	unsigned n = x86_build_e820(&mem, table, 8);
	assert_int_equal(n, 4);
	assert_int_equal(table[2].addr + table[2].size, GUEST_MEM_HOLE_START);
	assert_int_equal(table[3].addr, GUEST_MEM_HOLE_END);
	assert_int_equal(table[3].size, 4096 * MIB - GUEST_MEM_HOLE_START);
	/* A short table is filled, never overrun. */
	assert_int_equal(x86_build_e820(&mem, table, 2), 2);
}

/* A minimal x86_64 ELF: one PT_LOAD of 16 file bytes and 4096 memory bytes. */
static uint8_t *make_elf(size_t *size, uint64_t paddr, uint64_t entry)
{
	size_t total = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + 16;
	uint8_t *buf = calloc(1, total);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_machine = EM_X86_64;
	eh->e_entry = entry;
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 1;
	Elf64_Phdr *ph = (Elf64_Phdr *)(buf + sizeof(Elf64_Ehdr));
	ph->p_type = PT_LOAD;
	ph->p_offset = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr);
	ph->p_paddr = paddr;
	ph->p_filesz = 16;
	ph->p_memsz = 4096;
	memset(buf + ph->p_offset, 0xab, 16);
	*size = total;
	return buf;
}

static void test_load_elf(void **state)
{
	(void)state;
	struct guest_mem mem = make_mem(64 * MIB);
	memset(mem.host + 16 * MIB, 0x55, 4096); /* the loader must zero the bss part */
	size_t size;
	uint8_t *elf = make_elf(&size, 16 * MIB, 16 * MIB + 8);
	struct kernel_image k;
	capsa_error err = { 0 };
	assert_int_equal(x86_load_kernel_buffer(&mem, elf, size, &k, &err), 0);
	assert_int_equal(k.entry, 16 * MIB + 8);
	assert_int_equal(k.end, 16 * MIB + 4096);
	assert_false(k.is_bzimage);
	assert_int_equal(mem.host[16 * MIB], 0xab);
	assert_int_equal(mem.host[16 * MIB + 15], 0xab);
	assert_int_equal(mem.host[16 * MIB + 16], 0);
	assert_int_equal(mem.host[16 * MIB + 4095], 0);
	free(elf);
	free(mem.host);
}

static void test_load_elf_hostile(void **state)
{
	(void)state;
	struct guest_mem mem = make_mem(32 * MIB);
	size_t size;
	struct kernel_image k;
	capsa_error err = { 0 };

	uint8_t *elf = make_elf(&size, 64 * MIB, 64 * MIB); /* beyond RAM */
	assert_int_equal(x86_load_kernel_buffer(&mem, elf, size, &k, &err), -1);
	assert_int_equal(err.code, ENOMEM);
	free(elf);

	elf = make_elf(&size, 16 * MIB, 16 * MIB);
	Elf64_Phdr *ph = (Elf64_Phdr *)(elf + sizeof(Elf64_Ehdr));
	ph->p_filesz = 1 << 20; /* more file bytes than the file has */
	assert_int_equal(x86_load_kernel_buffer(&mem, elf, size, &k, &err), -1);
	assert_int_equal(err.code, ENOEXEC);
	ph->p_filesz = 16;
	ph->p_offset = UINT64_MAX - 4; /* offset overflow */
	assert_int_equal(x86_load_kernel_buffer(&mem, elf, size, &k, &err), -1);
	ph->p_offset = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr);
	((Elf64_Ehdr *)elf)->e_phnum = 1000; /* headers past the end */
	assert_int_equal(x86_load_kernel_buffer(&mem, elf, size, &k, &err), -1);
	((Elf64_Ehdr *)elf)->e_phnum = 1;
	((Elf64_Ehdr *)elf)->e_entry = UINT64_MAX; /* entry outside RAM */
	assert_int_equal(x86_load_kernel_buffer(&mem, elf, size, &k, &err), -1);
	free(elf);

	/* Truncated and garbage files. */
	assert_int_equal(x86_load_kernel_buffer(&mem, (const uint8_t *)"\177ELF", 4, &k, &err), -1);
	uint8_t junk[4096] = { 0 };
	assert_int_equal(x86_load_kernel_buffer(&mem, junk, sizeof(junk), &k, &err), -1);
	assert_int_equal(err.code, ENOEXEC);
	free(mem.host);
}

static void test_load_bzimage(void **state)
{
	(void)state;
	struct guest_mem mem = make_mem(64 * MIB);
	size_t size = 2 * 512 + 8192;
	uint8_t *img = calloc(1, size);
	img[0x1f1] = 1; /* setup_sects */
	img[0x201] = 0x68; /* setup header ends at 0x202 + 0x68 */
	memcpy(img + 0x202, "HdrS", 4);
	img[0x206] = 0x0f; /* version 2.15 */
	img[0x207] = 0x02;
	img[0x236] = 1; /* XLF_KERNEL_64 */
	memset(img + 1024, 0xcd, 8192);
	struct kernel_image k;
	capsa_error err = { 0 };
	assert_int_equal(x86_load_kernel_buffer(&mem, img, size, &k, &err), 0);
	assert_true(k.is_bzimage);
	assert_int_equal(k.entry, BOOT_BZIMAGE_LOAD + 0x200);
	assert_int_equal(mem.host[BOOT_BZIMAGE_LOAD], 0xcd);
	assert_int_equal(mem.host[BOOT_BZIMAGE_LOAD + 8191], 0xcd);

	img[0x236] = 0; /* no 64-bit entry: refused */
	assert_int_equal(x86_load_kernel_buffer(&mem, img, size, &k, &err), -1);
	img[0x236] = 1;
	img[0x1f1] = 200; /* setup larger than the file */
	assert_int_equal(x86_load_kernel_buffer(&mem, img, size, &k, &err), -1);
	free(img);
	free(mem.host);
}

static void test_boot_params(void **state)
{
	(void)state;
	struct guest_mem mem = make_mem(128 * MIB);
	struct kernel_image k = { .entry = 16 * MIB, .end = 20 * MIB };
	capsa_error err = { 0 };
	uint8_t initrd[10000];
	memset(initrd, 0x5a, sizeof(initrd));
	uint64_t addr;
	assert_int_equal(x86_load_initrd(&mem, &k, initrd, sizeof(initrd), &addr, &err), 0);
	assert_int_equal(addr % 4096, 0);
	assert_true(addr >= k.end);
	assert_true(addr + sizeof(initrd) <= 128 * MIB);
	assert_memory_equal(mem.host + addr, initrd, sizeof(initrd));

	assert_int_equal(x86_setup_boot_params(&mem, &k, "console=ttyS0 quiet", addr, sizeof(initrd), &err), 0);
	struct boot_params *bp = (struct boot_params *)(mem.host + BOOT_ZERO_PAGE_ADDR);
	assert_int_equal(bp->hdr.boot_flag, 0xaa55);
	assert_int_equal(bp->hdr.header, 0x53726448);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_int_equal(bp->hdr.cmd_line_ptr, BOOT_CMDLINE_ADDR);
	assert_int_equal(bp->hdr.cmdline_size, strlen("console=ttyS0 quiet"));
	assert_string_equal((char *)mem.host + BOOT_CMDLINE_ADDR, "console=ttyS0 quiet");
	assert_int_equal(bp->hdr.ramdisk_image, addr);
	assert_int_equal(bp->hdr.ramdisk_size, sizeof(initrd));
	assert_int_equal(bp->e820_entries, 3);
	/* The zero page layout is the kernel's ABI: check the offsets. */
	assert_int_equal(offsetof(struct boot_params, e820_entries), 0x1e8);
	assert_int_equal(offsetof(struct boot_params, hdr), 0x1f1);
	assert_int_equal(offsetof(struct boot_params, e820_table), 0x2d0);

	char long_cmdline[BOOT_CMDLINE_MAX + 10];
	memset(long_cmdline, 'x', sizeof(long_cmdline) - 1);
	long_cmdline[sizeof(long_cmdline) - 1] = '\0';
	assert_int_equal(x86_setup_boot_params(&mem, &k, long_cmdline, addr, 1, &err), -1);
	assert_int_equal(err.code, E2BIG);

	/* An initramfs that cannot fit above the kernel is refused. */
	uint8_t *big = calloc(1, 2 * MIB);
	k.end = 127 * MIB;
	assert_int_equal(x86_load_initrd(&mem, &k, big, 2 * MIB, &addr, &err), -1);
	assert_int_equal(err.code, ENOMEM);
	free(big);
	free(mem.host);
}

static void test_gdt_entries(void **state)
{
	(void)state;
	assert_int_equal(x86_gdt_entry(0xa09b, 0, 0xfffff), 0x00af9b000000ffffULL);
	assert_int_equal(x86_gdt_entry(0xc093, 0, 0xfffff), 0x00cf93000000ffffULL);
	assert_int_equal(x86_gdt_entry(0x808b, 0, 0xfffff), 0x008f8b000000ffffULL);
	assert_int_equal(x86_gdt_entry(0x0093, 0x12345678, 0xabcd), 0x120093345678abcdULL);
}

static uint8_t sum_bytes(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s += *p++;
	return s;
}

static void test_mptable(void **state)
{
	(void)state;
	struct guest_mem mem = make_mem(64 * MIB);
	capsa_error err = { 0 };
	assert_int_equal(mptable_write(&mem, 4, &err), 0);
	const uint8_t *mpf = mem.host + BOOT_EBDA_START;
	assert_memory_equal(mpf, "_MP_", 4);
	assert_int_equal(sum_bytes(mpf, 16), 0);
	uint32_t table_addr;
	memcpy(&table_addr, mpf + 4, 4);
	const uint8_t *table = mem.host + table_addr;
	assert_memory_equal(table, "PCMP", 4);
	uint16_t len;
	memcpy(&len, table + 4, 2);
	assert_int_equal(sum_bytes(table, len), 0);
	/* Entries follow the 44-byte header: 4 processors first, CPU 0 boots. */
	const uint8_t *entry = table + 44;
	for (unsigned i = 0; i < 4; i++, entry += 20) {
		assert_int_equal(entry[0], 0);     /* processor */
		assert_int_equal(entry[1], i);     /* APIC id */
		assert_int_equal(entry[3] & 1, 1); /* enabled */
		assert_int_equal((entry[3] & 2) != 0, i == 0);
	}
	assert_true(BOOT_EBDA_START + 16 + len <= 0xa0000);

	assert_int_equal(mptable_write(&mem, 0, &err), -1);
	assert_int_equal(mptable_write(&mem, MPTABLE_MAX_CPUS + 1, &err), -1);
	assert_int_equal(mptable_write(&mem, MPTABLE_MAX_CPUS, &err), 0);
	free(mem.host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guest_mem_bounds), cmocka_unit_test(test_e820_small),
		cmocka_unit_test(test_e820_above_hole),  cmocka_unit_test(test_load_elf),
		cmocka_unit_test(test_load_elf_hostile), cmocka_unit_test(test_load_bzimage),
		cmocka_unit_test(test_boot_params),      cmocka_unit_test(test_gdt_entries),
		cmocka_unit_test(test_mptable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
