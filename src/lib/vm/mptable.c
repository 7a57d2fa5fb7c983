#include "vm/mptable.h"

#include <errno.h>
#include <string.h>

#include "util/error.h"
#include "vm/x86_layout.h"

/* Layouts from the MP specification, chapter 4. */
struct mpf_intel {
	char signature[4]; /* "_MP_" */
	uint32_t physptr;
	uint8_t length; /* in 16-byte units */
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature[5];
} __attribute__((packed));

struct mpc_table {
	char signature[4]; /* "PCMP" */
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic;
	uint32_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;
	uint32_t featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
} __attribute__((packed));

enum { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };
enum { MP_IRQ_INT = 0, MP_IRQ_NMI = 1, MP_IRQ_EXTINT = 3 };
#define CPU_ENABLED 1
#define CPU_BOOTPROCESSOR 2
#define APIC_VERSION 0x14
#define IOAPIC_VERSION 0x11
#define CPU_STEPPING 0x600
#define CPU_FEATURE_APIC (1u << 9)
#define CPU_FEATURE_FPU 1u

static uint8_t checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t sum = 0;
	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

int mptable_write(const struct guest_mem *mem, unsigned cpus, capsa_error *err)
{
	if (cpus == 0 || cpus > MPTABLE_MAX_CPUS)
		return error_set(err, EINVAL, "%u vCPUs requested; capsa supports 1 to %d", cpus, MPTABLE_MAX_CPUS);

	size_t table_len = sizeof(struct mpc_table) + cpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +
			   sizeof(struct mpc_ioapic) + (IOAPIC_PINS + 2) * sizeof(struct mpc_intsrc);
	size_t total = sizeof(struct mpf_intel) + table_len;
	uint8_t *base = guest_mem_ptr(mem, BOOT_EBDA_START, total);
	if (!base || BOOT_EBDA_START + total > 0xa0000)
		return error_set(err, EINVAL, "the MP table for %u vCPUs does not fit below 640 KiB", cpus);
	memset(base, 0, total);

	struct mpf_intel *mpf = (struct mpf_intel *)base;
	uint8_t *p = base + sizeof(*mpf);
	struct mpc_table *table = (struct mpc_table *)p;
	p += sizeof(*table);

	for (unsigned i = 0; i < cpus; i++) {
		struct mpc_cpu *cpu = (struct mpc_cpu *)p;
		cpu->type = MP_PROCESSOR;
		cpu->apicid = (uint8_t)i;
		cpu->apicver = APIC_VERSION;
		cpu->cpuflag = CPU_ENABLED | (i == 0 ? CPU_BOOTPROCESSOR : 0);
		cpu->cpufeature = CPU_STEPPING;
		cpu->featureflag = CPU_FEATURE_APIC | CPU_FEATURE_FPU;
		p += sizeof(*cpu);
	}

	struct mpc_bus *bus = (struct mpc_bus *)p;
	bus->type = MP_BUS;
	bus->busid = 0;
	memcpy(bus->bustype, "ISA   ", 6);
	p += sizeof(*bus);

	uint8_t ioapic_id = (uint8_t)cpus;
	struct mpc_ioapic *ioapic = (struct mpc_ioapic *)p;
	ioapic->type = MP_IOAPIC;
	ioapic->apicid = ioapic_id;
	ioapic->apicver = IOAPIC_VERSION;
	ioapic->flags = 1; /* enabled */
	ioapic->apicaddr = (uint32_t)IOAPIC_ADDR;
	p += sizeof(*ioapic);

	/* ISA IRQ n is wired to IOAPIC pin n, as KVM's default routing has it. */
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
		struct mpc_intsrc *src = (struct mpc_intsrc *)p;
		src->type = MP_INTSRC;
		src->irqtype = MP_IRQ_INT;
		src->srcbus = 0;
		src->srcbusirq = (uint8_t)pin;
		src->dstapic = ioapic_id;
		src->dstirq = (uint8_t)pin;
		p += sizeof(*src);
	}
	/* LINT0 of every LAPIC takes the PIC (ExtINT), LINT1 takes NMI. */
	struct mpc_intsrc *lint0 = (struct mpc_intsrc *)p;
	lint0->type = MP_LINTSRC;
	lint0->irqtype = MP_IRQ_EXTINT;
	lint0->dstapic = 0xff;
	lint0->dstirq = 0;
	p += sizeof(*lint0);
	struct mpc_intsrc *lint1 = (struct mpc_intsrc *)p;
	lint1->type = MP_LINTSRC;
	lint1->irqtype = MP_IRQ_NMI;
	lint1->dstapic = 0xff;
	lint1->dstirq = 1;
	p += sizeof(*lint1);

	memcpy(table->signature, "PCMP", 4);
	table->length = (uint16_t)table_len;
	table->spec = 4;
	memcpy(table->oem, "CAPSA   ", 8);
	memcpy(table->productid, "MICROVM     ", 12);
	table->lapic = (uint32_t)LAPIC_ADDR;
	table->oemcount = (uint16_t)(cpus + 1 + 1 + IOAPIC_PINS + 2);
	table->checksum = checksum(table, table_len);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = (uint32_t)(BOOT_EBDA_START + sizeof(*mpf));
	mpf->length = 1;
	mpf->specification = 4;
	mpf->checksum = checksum(mpf, sizeof(*mpf));
	return 0;
}
