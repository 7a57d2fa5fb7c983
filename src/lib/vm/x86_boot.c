#include "vm/x86_boot.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "vm/x86_layout.h"

#define PAGE_SIZE 4096ULL
#define E820_TYPE_RAM 1
#define E820_TYPE_RESERVED 2
#define SETUP_HEADER_OFFSET 0x1f1
#define BZIMAGE_MAGIC 0x53726448 /* "HdrS" */
#define BZIMAGE_MIN_VERSION 0x020c /* first with xloadflags / 64-bit entry */
#define BOOT_FLAG_MAGIC 0xaa55
#define LOADER_TYPE_UNDEFINED 0xff

static int load_elf(const struct guest_mem *mem, const uint8_t *data, size_t size, struct kernel_image *kernel,
		    capsa_error *err)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)data;
	if (size < sizeof(*eh) || eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64)
		return error_set(err, ENOEXEC, "kernel is an ELF file but not an x86_64 one");
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size - eh->e_phoff)
		return error_set(err, ENOEXEC, "kernel ELF program headers are truncated");

	const Elf64_Phdr *ph = (const Elf64_Phdr *)(data + eh->e_phoff);
	uint64_t end = 0;
	unsigned loaded = 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (ph[i].p_filesz > ph[i].p_memsz || ph[i].p_offset > size || ph[i].p_filesz > size - ph[i].p_offset)
			return error_set(err, ENOEXEC, "kernel ELF segment %u lies outside the file", i);
		uint8_t *dst = guest_mem_ptr(mem, ph[i].p_paddr, ph[i].p_memsz);
		if (!dst)
			return error_set(err, ENOMEM,
					 "kernel segment at 0x%llx (%llu bytes) does not fit in guest memory; give the VM "
					 "more memory",
					 (unsigned long long)ph[i].p_paddr, (unsigned long long)ph[i].p_memsz);
		memcpy(dst, data + ph[i].p_offset, ph[i].p_filesz);
		memset(dst + ph[i].p_filesz, 0, ph[i].p_memsz - ph[i].p_filesz);
		if (ph[i].p_paddr + ph[i].p_memsz > end)
			end = ph[i].p_paddr + ph[i].p_memsz;
		loaded++;
	}
	if (!loaded)
		return error_set(err, ENOEXEC, "kernel ELF has no loadable segments");
	if (!guest_mem_ptr(mem, eh->e_entry, 1))
		return error_set(err, ENOEXEC, "kernel ELF entry point 0x%llx is not in guest memory",
				 (unsigned long long)eh->e_entry);
	memset(kernel, 0, sizeof(*kernel));
	kernel->entry = eh->e_entry;
	kernel->end = end;
	return 0;
}

static int load_bzimage(const struct guest_mem *mem, const uint8_t *data, size_t size, struct kernel_image *kernel,
			capsa_error *err)
{
	struct setup_header hdr;
	if (size < SETUP_HEADER_OFFSET + sizeof(hdr))
		return error_set(err, ENOEXEC, "kernel file is too small to be a bzImage");
	memcpy(&hdr, data + SETUP_HEADER_OFFSET, sizeof(hdr));
	if (hdr.header != BZIMAGE_MAGIC)
		return error_set(err, ENOEXEC, "kernel is neither an ELF vmlinux nor a bzImage");
	if (hdr.version < BZIMAGE_MIN_VERSION || !(hdr.xloadflags & XLF_KERNEL_64))
		return error_set(err, ENOEXEC, "bzImage (boot protocol %u.%02u) has no 64-bit entry point; use a newer "
				 "kernel", hdr.version >> 8, hdr.version & 0xff);

	/* The setup header's real length is stored in the header itself. */
	size_t header_end = 0x202 + data[0x201];
	size_t header_len = header_end - SETUP_HEADER_OFFSET;
	if (header_len < sizeof(hdr))
		memset((uint8_t *)&hdr + header_len, 0, sizeof(hdr) - header_len);

	uint64_t setup_sects = hdr.setup_sects ? hdr.setup_sects : 4;
	uint64_t offset = (setup_sects + 1) * 512;
	if (offset >= size)
		return error_set(err, ENOEXEC, "bzImage is truncated");
	uint64_t payload = size - offset;
	uint8_t *dst = guest_mem_ptr(mem, BOOT_BZIMAGE_LOAD, payload);
	if (!dst)
		return error_set(err, ENOMEM, "bzImage does not fit in guest memory; give the VM more memory");
	memcpy(dst, data + offset, payload);

	memset(kernel, 0, sizeof(*kernel));
	kernel->is_bzimage = true;
	kernel->header = hdr;
	kernel->entry = BOOT_BZIMAGE_LOAD + 0x200; /* startup_64 of the decompressor */
	/* The decompressor works in place up to init_size bytes. */
	uint64_t init_size = hdr.init_size > payload ? hdr.init_size : payload;
	kernel->end = BOOT_BZIMAGE_LOAD + init_size;
	return 0;
}

int x86_load_kernel_buffer(const struct guest_mem *mem, const uint8_t *data, size_t size, struct kernel_image *kernel,
			   capsa_error *err)
{
	if (size >= SELFMAG && memcmp(data, ELFMAG, SELFMAG) == 0)
		return load_elf(mem, data, size, kernel, err);
	return load_bzimage(mem, data, size, kernel, err);
}

int x86_load_kernel(const struct guest_mem *mem, const char *path, struct kernel_image *kernel, capsa_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set_errno(err, errno, "open kernel %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return error_set_errno(err, errno, "stat kernel %s", path);
	if (!S_ISREG(st.st_mode) || st.st_size == 0)
		return error_set(err, EINVAL, "kernel %s is not a regular, non-empty file", path);
	void *data = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (data == MAP_FAILED)
		return error_set_errno(err, errno, "map kernel %s", path);
	int r = x86_load_kernel_buffer(mem, data, st.st_size, kernel, err);
	munmap(data, st.st_size);
	if (r < 0)
		return error_prefix(err, "kernel %s", path);
	return 0;
}

unsigned x86_build_e820(const struct guest_mem *mem, struct boot_e820_entry *table, unsigned max)
{
	uint64_t low = guest_mem_low_size(mem);
	struct boot_e820_entry entries[4];
	unsigned n = 0;
	entries[n++] = (struct boot_e820_entry){ .addr = 0, .size = BOOT_EBDA_START, .type = E820_TYPE_RAM };
	entries[n++] = (struct boot_e820_entry){ .addr = BOOT_EBDA_START,
						 .size = 0xa0000 - BOOT_EBDA_START,
						 .type = E820_TYPE_RESERVED };
	if (low > BOOT_HIMEM_START)
		entries[n++] = (struct boot_e820_entry){ .addr = BOOT_HIMEM_START,
							 .size = low - BOOT_HIMEM_START,
							 .type = E820_TYPE_RAM };
	if (mem->size > low)
		entries[n++] = (struct boot_e820_entry){ .addr = GUEST_MEM_HOLE_END,
							 .size = mem->size - low,
							 .type = E820_TYPE_RAM };
	if (n > max)
		n = max;
	memcpy(table, entries, n * sizeof(entries[0]));
	return n;
}

int x86_load_initrd(const struct guest_mem *mem, const struct kernel_image *kernel, const uint8_t *data, size_t size,
		    uint64_t *addr, capsa_error *err)
{
	uint64_t top = guest_mem_low_size(mem);
	if (kernel->is_bzimage && kernel->header.initrd_addr_max && kernel->header.initrd_addr_max + 1ULL < top)
		top = kernel->header.initrd_addr_max + 1ULL;
	uint64_t kernel_end = (kernel->end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	if (size > top || ((top - size) & ~(PAGE_SIZE - 1)) < kernel_end)
		return error_set(err, ENOMEM, "the initramfs (%zu bytes) does not fit above the kernel; give the VM "
				 "more memory", size);
	uint64_t start = (top - size) & ~(PAGE_SIZE - 1);
	uint8_t *dst = guest_mem_ptr(mem, start, size);
	if (!dst)
		return error_set(err, ENOMEM, "initramfs address 0x%llx is not in guest memory",
				 (unsigned long long)start);
	memcpy(dst, data, size);
	*addr = start;
	return 0;
}

int x86_setup_boot_params(const struct guest_mem *mem, const struct kernel_image *kernel, const char *cmdline,
			  uint64_t initrd_addr, uint64_t initrd_size, capsa_error *err)
{
	size_t cmdline_len = strlen(cmdline);
	if (cmdline_len >= BOOT_CMDLINE_MAX)
		return error_set(err, E2BIG, "kernel command line is %zu bytes, the limit is %d", cmdline_len,
				 BOOT_CMDLINE_MAX - 1);
	char *cmdline_dst = guest_mem_ptr(mem, BOOT_CMDLINE_ADDR, cmdline_len + 1);
	struct boot_params *params = guest_mem_ptr(mem, BOOT_ZERO_PAGE_ADDR, sizeof(*params));
	if (!cmdline_dst || !params)
		return error_set(err, ENOMEM, "guest memory too small for the boot parameters");
	memcpy(cmdline_dst, cmdline, cmdline_len + 1);

	memset(params, 0, sizeof(*params));
	if (kernel->is_bzimage)
		params->hdr = kernel->header;
	params->hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
	params->hdr.boot_flag = BOOT_FLAG_MAGIC;
	params->hdr.header = BZIMAGE_MAGIC;
	params->hdr.loadflags |= LOADED_HIGH;
	if (!kernel->is_bzimage)
		params->hdr.kernel_alignment = 0x1000000;
	params->hdr.cmd_line_ptr = (uint32_t)BOOT_CMDLINE_ADDR;
	params->hdr.cmdline_size = (uint32_t)cmdline_len;
	params->hdr.ramdisk_image = (uint32_t)initrd_addr;
	params->hdr.ramdisk_size = (uint32_t)initrd_size;
	params->ext_ramdisk_image = (uint32_t)(initrd_addr >> 32);
	params->ext_ramdisk_size = (uint32_t)(initrd_size >> 32);
	params->e820_entries = (uint8_t)x86_build_e820(mem, params->e820_table, E820_MAX_ENTRIES_ZEROPAGE);
	return 0;
}

uint64_t x86_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ffu) << 40) |
	       ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
	       (uint64_t)(limit & 0x0000ffffu);
}

int x86_setup_page_tables_and_gdt(const struct guest_mem *mem, capsa_error *err)
{
	uint64_t *gdt = guest_mem_ptr(mem, BOOT_GDT_ADDR, 4 * sizeof(uint64_t));
	uint64_t *idt = guest_mem_ptr(mem, BOOT_IDT_ADDR, sizeof(uint64_t));
	uint64_t *pml4 = guest_mem_ptr(mem, BOOT_PML4_ADDR, PAGE_SIZE);
	uint64_t *pdpt = guest_mem_ptr(mem, BOOT_PDPT_ADDR, PAGE_SIZE);
	uint64_t *pd = guest_mem_ptr(mem, BOOT_PD_ADDR, 4 * PAGE_SIZE);
	if (!gdt || !idt || !pml4 || !pdpt || !pd)
		return error_set(err, ENOMEM, "guest memory too small for the boot page tables");

	gdt[0] = 0;
	gdt[BOOT_GDT_CODE] = x86_gdt_entry(0xa09b, 0, 0xfffff); /* 64-bit code, present, DPL 0 */
	gdt[BOOT_GDT_DATA] = x86_gdt_entry(0xc093, 0, 0xfffff); /* 32-bit data, read/write */
	gdt[BOOT_GDT_TSS] = x86_gdt_entry(0x808b, 0, 0xfffff);  /* busy 32-bit TSS */
	idt[0] = 0;

	/* Identity map of the first 4 GiB with 2 MiB pages: enough for the
	 * kernel's early code, which builds its own tables right away. */
	memset(pml4, 0, PAGE_SIZE);
	memset(pdpt, 0, PAGE_SIZE);
	pml4[0] = BOOT_PDPT_ADDR | 0x3; /* present, writable */
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PD_ADDR + i * PAGE_SIZE) | 0x3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB page */
	return 0;
}
