#include "snapshot/kvm_state.h"

#include <cpuid.h>
#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "vm/vcpu.h"

#define MAX_CPUID_ENTRIES 256
#define MAX_MSRS 1024

/* KVM_GET_XSAVE2 may need more than struct kvm_xsave on CPUs with large
 * extended states (AMX); the VM tells how much. */
static size_t xsave_size(struct vm *vm)
{
	int size = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	return size > (int)sizeof(struct kvm_xsave) ? (size_t)size : sizeof(struct kvm_xsave);
}

static int vcpu_ioctl(struct vcpu *vcpu, unsigned long request, void *arg, const char *name, capsa_error *err)
{
	if (ioctl(vcpu->fd, request, arg) < 0)
		return error_set_errno(err, errno, "%s on vCPU %u", name, vcpu->index);
	return 0;
}

/* ---- MSRs ---- */

/* Every MSR KVM can save for this vCPU: the index list KVM publishes, less
 * those this vCPU's CPUID makes unreadable (KVM_GET_MSRS stops at the
 * first one it cannot read: skip it and go on). */
static int read_msrs(struct vcpu *vcpu, struct kvm_msr_entry **out, unsigned *out_count, capsa_error *err)
{
	_cleanup_free_ struct kvm_msr_list *list = calloc(1, sizeof(*list) + MAX_MSRS * sizeof(uint32_t));
	_cleanup_free_ struct kvm_msrs *msrs = calloc(1, sizeof(*msrs) + MAX_MSRS * sizeof(struct kvm_msr_entry));
	if (!list || !msrs)
		return error_set(err, ENOMEM, "out of memory");
	list->nmsrs = MAX_MSRS;
	if (ioctl(vcpu->vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0)
		return error_set_errno(err, errno, "KVM_GET_MSR_INDEX_LIST");

	struct kvm_msr_entry *saved = calloc(list->nmsrs ? list->nmsrs : 1, sizeof(*saved));
	if (!saved)
		return error_set(err, ENOMEM, "out of memory");
	unsigned count = 0;
	for (uint32_t next = 0; next < list->nmsrs;) {
		uint32_t n = list->nmsrs - next;
		memset(msrs, 0, sizeof(*msrs) + n * sizeof(struct kvm_msr_entry));
		msrs->nmsrs = n;
		for (uint32_t i = 0; i < n; i++)
			msrs->entries[i].index = list->indices[next + i];
		int got = ioctl(vcpu->fd, KVM_GET_MSRS, msrs);
		if (got < 0) {
			free(saved);
			return error_set_errno(err, errno, "KVM_GET_MSRS on vCPU %u", vcpu->index);
		}
		memcpy(&saved[count], msrs->entries, (size_t)got * sizeof(*saved));
		count += (unsigned)got;
		next += (uint32_t)got + 1; /* past the one that failed */
	}
	*out = saved;
	*out_count = count;
	return 0;
}

static int write_msrs(struct vcpu *vcpu, const void *data, size_t len, capsa_error *err)
{
	if (len % sizeof(struct kvm_msr_entry) || len / sizeof(struct kvm_msr_entry) > MAX_MSRS)
		return error_set(err, EINVAL, "snapshot state: vCPU %u MSR section has a bad size", vcpu->index);
	size_t n = len / sizeof(struct kvm_msr_entry);
	_cleanup_free_ struct kvm_msrs *msrs = calloc(1, sizeof(*msrs) + len);
	if (!msrs)
		return error_set(err, ENOMEM, "out of memory");
	msrs->nmsrs = (uint32_t)n;
	memcpy(msrs->entries, data, len);
	int set = ioctl(vcpu->fd, KVM_SET_MSRS, msrs);
	if (set < 0)
		return error_set_errno(err, errno, "KVM_SET_MSRS on vCPU %u", vcpu->index);
	if ((size_t)set != n)
		return error_set(err, EINVAL, "KVM refused MSR %#x of vCPU %u (this host's CPU differs from the one "
				 "the snapshot was made on?)", msrs->entries[set].index, vcpu->index);
	return 0;
}

/* ---- one vCPU ---- */

/* The vCPU state of fixed size, one state file section each. */
struct vcpu_fixed_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_debugregs debugregs;
};

#define FIXED(tag, field, get, set) \
	{ tag, offsetof(struct vcpu_fixed_state, field), sizeof(((struct vcpu_fixed_state *)0)->field), get, set, #get }

static const struct {
	uint32_t tag;
	size_t offset, size;
	unsigned long get, set;
	const char *get_name;
} fixed_sections[] = {
	FIXED(STATE_VCPU_REGS, regs, KVM_GET_REGS, KVM_SET_REGS),
	FIXED(STATE_VCPU_SREGS, sregs, KVM_GET_SREGS, KVM_SET_SREGS),
	FIXED(STATE_VCPU_XCRS, xcrs, KVM_GET_XCRS, KVM_SET_XCRS),
	FIXED(STATE_VCPU_LAPIC, lapic, KVM_GET_LAPIC, KVM_SET_LAPIC),
	FIXED(STATE_VCPU_EVENTS, events, KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS),
	FIXED(STATE_VCPU_MP_STATE, mp, KVM_GET_MP_STATE, KVM_SET_MP_STATE),
	FIXED(STATE_VCPU_DEBUGREGS, debugregs, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS),
};
#define FIXED_COUNT (sizeof(fixed_sections) / sizeof(fixed_sections[0]))

static int save_vcpu(struct vcpu *vcpu, struct state_writer *w, capsa_error *err)
{
	unsigned id = vcpu->index;
	struct vcpu_fixed_state fixed;
	for (size_t i = 0; i < FIXED_COUNT; i++) {
		void *field = (uint8_t *)&fixed + fixed_sections[i].offset;
		if (vcpu_ioctl(vcpu, fixed_sections[i].get, field, fixed_sections[i].get_name, err) < 0 ||
		    state_writer_add(w, fixed_sections[i].tag, id, field, fixed_sections[i].size, err) < 0)
			return -1;
	}

	size_t xsize = xsave_size(vcpu->vm);
	_cleanup_free_ struct kvm_xsave *xsave = calloc(1, xsize);
	size_t cpuid_size = sizeof(struct kvm_cpuid2) + MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2);
	_cleanup_free_ struct kvm_cpuid2 *cpuid = calloc(1, cpuid_size);
	if (!xsave || !cpuid)
		return error_set(err, ENOMEM, "out of memory");
	unsigned long get_xsave = xsize > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
	cpuid->nent = MAX_CPUID_ENTRIES;
	if (vcpu_ioctl(vcpu, get_xsave, xsave, "KVM_GET_XSAVE", err) < 0 ||
	    vcpu_ioctl(vcpu, KVM_GET_CPUID2, cpuid, "KVM_GET_CPUID2", err) < 0)
		return -1;

	_cleanup_free_ struct kvm_msr_entry *msrs = NULL;
	unsigned msr_count = 0;
	if (read_msrs(vcpu, &msrs, &msr_count, err) < 0)
		return -1;

	if (state_writer_add(w, STATE_VCPU_CPUID, id, cpuid->entries, cpuid->nent * sizeof(cpuid->entries[0]), err) < 0 ||
	    state_writer_add(w, STATE_VCPU_XSAVE, id, xsave, xsize, err) < 0 ||
	    state_writer_add(w, STATE_VCPU_MSRS, id, msrs, msr_count * sizeof(*msrs), err) < 0)
		return -1;
	return 0;
}

#define TSS_TYPE_AVAILABLE 9
#define TSS_TYPE_BUSY 11

static bool host_is_amd(void)
{
	unsigned int eax, ebx, ecx, edx;
	__cpuid(0, eax, ebx, ecx, edx);
	(void)eax;
	return ebx == 0x68747541 && edx == 0x69746e65 && ecx == 0x444d4163; /* "AuthenticAMD" */
}

/* KVM on AMD always reports TR as busy (it ORs the busy bit in), while
 * the VMCB of a running guest holds what its LTR loaded: an available
 * TSS. Some SVM implementations (QEMU's emulated SVM among them) refuse
 * I/O permission bitmap lookups through a busy TR, so the restored guest
 * would fault on every ioperm()-granted port access. Intel VM entry, on
 * the other hand, requires the busy type: only AMD gets it changed. */
static void fix_tr_type(struct kvm_sregs *sregs)
{
	if (sregs->tr.type == TSS_TYPE_BUSY && host_is_amd())
		sregs->tr.type = TSS_TYPE_AVAILABLE;
}

static int load_cpuid(struct vcpu *vcpu, const struct state_reader *r, capsa_error *err)
{
	size_t len;
	const void *data = state_reader_find(r, STATE_VCPU_CPUID, vcpu->index, &len);
	if (!data || len % sizeof(struct kvm_cpuid_entry2) || len / sizeof(struct kvm_cpuid_entry2) > MAX_CPUID_ENTRIES)
		return error_set(err, EINVAL, "snapshot state: vCPU %u has no CPUID section of a possible size",
				 vcpu->index);
	_cleanup_free_ struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + len);
	if (!cpuid)
		return error_set(err, ENOMEM, "out of memory");
	cpuid->nent = (uint32_t)(len / sizeof(struct kvm_cpuid_entry2));
	memcpy(cpuid->entries, data, len);
	return vcpu_ioctl(vcpu, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2", err);
}

/* The order matters: CPUID decides which MSRs and XSAVE features exist,
 * the LAPIC's mode decides whether the TSC deadline MSR can be set, and
 * events (pending exceptions, NMIs) go last so nothing set after them
 * clears them. */
static int restore_vcpu(struct vcpu *vcpu, const struct state_reader *r, capsa_error *err)
{
	unsigned id = vcpu->index;
	struct vcpu_fixed_state fixed;
	for (size_t i = 0; i < FIXED_COUNT; i++) {
		if (state_reader_get(r, fixed_sections[i].tag, id, (uint8_t *)&fixed + fixed_sections[i].offset,
				     fixed_sections[i].size, err) < 0)
			return -1;
	}
	fix_tr_type(&fixed.sregs);
	size_t xsize = xsave_size(vcpu->vm);
	_cleanup_free_ struct kvm_xsave *xsave = calloc(1, xsize);
	if (!xsave)
		return error_set(err, ENOMEM, "out of memory");
	size_t msrs_len;
	const void *msrs = state_reader_find(r, STATE_VCPU_MSRS, id, &msrs_len);
	if (!msrs)
		return error_set(err, EINVAL, "snapshot state: vCPU %u has no MSR section", id);
	if (state_reader_get(r, STATE_VCPU_XSAVE, id, xsave, xsize, err) < 0)
		return -1;

	if (load_cpuid(vcpu, r, err) < 0 ||
	    vcpu_ioctl(vcpu, KVM_SET_MP_STATE, &fixed.mp, "KVM_SET_MP_STATE", err) < 0 ||
	    vcpu_ioctl(vcpu, KVM_SET_REGS, &fixed.regs, "KVM_SET_REGS", err) < 0 ||
	    vcpu_ioctl(vcpu, KVM_SET_SREGS, &fixed.sregs, "KVM_SET_SREGS", err) < 0 ||
	    vcpu_ioctl(vcpu, KVM_SET_XSAVE, xsave, "KVM_SET_XSAVE", err) < 0 ||
	    vcpu_ioctl(vcpu, KVM_SET_XCRS, &fixed.xcrs, "KVM_SET_XCRS", err) < 0 ||
	    vcpu_ioctl(vcpu, KVM_SET_DEBUGREGS, &fixed.debugregs, "KVM_SET_DEBUGREGS", err) < 0 ||
	    vcpu_ioctl(vcpu, KVM_SET_LAPIC, &fixed.lapic, "KVM_SET_LAPIC", err) < 0 ||
	    write_msrs(vcpu, msrs, msrs_len, err) < 0 ||
	    vcpu_ioctl(vcpu, KVM_SET_VCPU_EVENTS, &fixed.events, "KVM_SET_VCPU_EVENTS", err) < 0)
		return -1;
	return 0;
}

/* ---- the VM ---- */

static const uint32_t irqchip_ids[] = { KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC };
#define IRQCHIP_COUNT (sizeof(irqchip_ids) / sizeof(irqchip_ids[0]))

int kvm_state_save(struct vm *vm, struct state_writer *w, capsa_error *err)
{
	struct kvm_clock_data clock = { 0 };
	struct kvm_pit_state2 pit;
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return error_set_errno(err, errno, "KVM_GET_CLOCK");
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
		return error_set_errno(err, errno, "KVM_GET_PIT2");
	/* Only the clock value is meant to be set back; the flags describe
	 * how this host read it. */
	clock.flags = 0;
	if (state_writer_add(w, STATE_VM_CLOCK, 0, &clock, sizeof(clock), err) < 0 ||
	    state_writer_add(w, STATE_VM_PIT, 0, &pit, sizeof(pit), err) < 0)
		return -1;
	for (unsigned i = 0; i < IRQCHIP_COUNT; i++) {
		struct kvm_irqchip chip = { .chip_id = irqchip_ids[i] };
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			return error_set_errno(err, errno, "KVM_GET_IRQCHIP %u", irqchip_ids[i]);
		if (state_writer_add(w, STATE_VM_IRQCHIP, irqchip_ids[i], &chip, sizeof(chip), err) < 0)
			return -1;
	}
	for (unsigned i = 0; i < vm->cpu_count; i++) {
		if (save_vcpu(vm->vcpus[i], w, err) < 0)
			return -1;
	}
	return 0;
}

int kvm_state_restore(struct vm *vm, const struct state_reader *r, capsa_error *err)
{
	struct kvm_clock_data clock;
	struct kvm_pit_state2 pit;
	if (state_reader_get(r, STATE_VM_CLOCK, 0, &clock, sizeof(clock), err) < 0 ||
	    state_reader_get(r, STATE_VM_PIT, 0, &pit, sizeof(pit), err) < 0)
		return -1;
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return error_set_errno(err, errno, "KVM_SET_PIT2");
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		return error_set_errno(err, errno, "KVM_SET_CLOCK");
	for (unsigned i = 0; i < IRQCHIP_COUNT; i++) {
		struct kvm_irqchip chip;
		if (state_reader_get(r, STATE_VM_IRQCHIP, irqchip_ids[i], &chip, sizeof(chip), err) < 0)
			return -1;
		if (chip.chip_id != irqchip_ids[i])
			return error_set(err, EINVAL, "snapshot state: irqchip %u is labelled %u", irqchip_ids[i],
					 chip.chip_id);
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
			return error_set_errno(err, errno, "KVM_SET_IRQCHIP %u", irqchip_ids[i]);
	}
	if (state_reader_count(r, STATE_VCPU_REGS) != vm->cpu_count)
		return error_set(err, EINVAL, "snapshot state: %u vCPUs saved, the VM has %u",
				 state_reader_count(r, STATE_VCPU_REGS), vm->cpu_count);
	for (unsigned i = 0; i < vm->cpu_count; i++) {
		if (restore_vcpu(vm->vcpus[i], r, err) < 0)
			return -1;
	}
	return 0;
}
