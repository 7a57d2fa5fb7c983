#include "vm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "vm/kvm.h"
#include "vm/vm.h"
#include "vm/x86_boot.h"
#include "vm/x86_layout.h"


/* The signal used to kick a vCPU thread out of KVM_RUN. Its handler does
 * nothing: the point is the EINTR (or immediate_exit) it causes. */
#define KICK_SIGNAL (SIGRTMIN + 1)

static void kick_handler(int sig)
{
	(void)sig;
}

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;
static void install_kick_handler(void)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	sigemptyset(&sa.sa_mask);
	sigaction(KICK_SIGNAL, &sa, NULL);
}

struct vcpu *vcpu_create(struct vm *vm, unsigned index, capsa_error *err)
{
	_cleanup_free_ struct vcpu *vcpu = calloc(1, sizeof(*vcpu));
	if (!vcpu) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	vcpu->vm = vm;
	vcpu->index = index;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (vcpu->fd < 0) {
		error_set_errno(err, errno, "create vCPU %u", index);
		return NULL;
	}
	int size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run)) {
		error_set_errno(err, errno, "KVM_GET_VCPU_MMAP_SIZE");
		close(vcpu->fd);
		return NULL;
	}
	vcpu->run_size = (size_t)size;
	vcpu->run = mmap(NULL, vcpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		error_set_errno(err, errno, "map kvm_run of vCPU %u", index);
		close(vcpu->fd);
		return NULL;
	}
	return steal_pointer(&vcpu);
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (!vcpu)
		return;
	munmap(vcpu->run, vcpu->run_size);
	close(vcpu->fd);
	free(vcpu);
}

/* CPUID as KVM supports it, with this vCPU's APIC id filled in and the
 * hypervisor bit set so the guest uses paravirtual features. */
static int setup_cpuid(struct vcpu *vcpu, capsa_error *err)
{
	_cleanup_free_ struct kvm_cpuid2 *cpuid = kvm_supported_cpuid(vcpu->vm->kvm_fd, err);
	if (!cpuid)
		return -1;

	uint32_t apic_id = vcpu->index;
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0x0000ffff) | (apic_id << 24) | ((uint32_t)vcpu->vm->cpu_count << 16);
			e->ecx |= 1u << 31; /* running under a hypervisor */
			if (vcpu->vm->cpu_count > 1)
				e->edx |= 1u << 28; /* HTT: the count in EBX is valid */
			break;
		case 0xb:
		case 0x1f:
			e->edx = apic_id; /* x2APIC id */
			break;
		}
	}
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0)
		return error_set_errno(err, errno, "KVM_SET_CPUID2 on vCPU %u", vcpu->index);
	return 0;
}

#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MSR_IA32_TSC 0x10
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MISC_ENABLE_FAST_STRING 1ULL
#define MTRR_ENABLE (1ULL << 11)
#define MTRR_TYPE_WRITEBACK 6ULL

static int setup_msrs(struct vcpu *vcpu, capsa_error *err)
{
	static const struct {
		uint32_t index;
		uint64_t value;
	} boot_msrs[] = {
		{ MSR_IA32_SYSENTER_CS, 0 },  { MSR_IA32_SYSENTER_ESP, 0 }, { MSR_IA32_SYSENTER_EIP, 0 },
		{ MSR_STAR, 0 },              { MSR_LSTAR, 0 },             { MSR_CSTAR, 0 },
		{ MSR_SYSCALL_MASK, 0 },      { MSR_KERNEL_GS_BASE, 0 },    { MSR_IA32_TSC, 0 },
		{ MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING },
		{ MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WRITEBACK },
	};
	const size_t n = sizeof(boot_msrs) / sizeof(boot_msrs[0]);
	_cleanup_free_ struct kvm_msrs *msrs = calloc(1, sizeof(*msrs) + n * sizeof(struct kvm_msr_entry));
	if (!msrs)
		return error_set(err, ENOMEM, "out of memory");
	msrs->nmsrs = n;
	for (size_t i = 0; i < n; i++) {
		msrs->entries[i].index = boot_msrs[i].index;
		msrs->entries[i].data = boot_msrs[i].value;
	}
	int set = ioctl(vcpu->fd, KVM_SET_MSRS, msrs);
	if (set != (int)n)
		return error_set(err, EIO, "KVM_SET_MSRS on vCPU %u set %d of %zu MSRs", vcpu->index, set, n);
	return 0;
}

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

static void set_lvt_delivery_mode(struct kvm_lapic_state *lapic, int reg, uint32_t mode)
{
	uint32_t value;
	memcpy(&value, &lapic->regs[reg], sizeof(value));
	value = (value & ~0x700u) | (mode << 8);
	memcpy(&lapic->regs[reg], &value, sizeof(value));
}

/* LINT0 receives the legacy PIC, LINT1 NMIs: what the MP table promises. */
static int setup_lapic(struct vcpu *vcpu, capsa_error *err)
{
	struct kvm_lapic_state lapic;
	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		return error_set_errno(err, errno, "KVM_GET_LAPIC");
	set_lvt_delivery_mode(&lapic, APIC_LVT0, APIC_MODE_EXTINT);
	set_lvt_delivery_mode(&lapic, APIC_LVT1, APIC_MODE_NMI);
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0)
		return error_set_errno(err, errno, "KVM_SET_LAPIC");
	return 0;
}

static struct kvm_segment segment_from_gdt(unsigned index, uint8_t type, uint8_t is_code)
{
	return (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = (uint16_t)(index * 8),
		.type = type,
		.present = 1,
		.dpl = 0,
		.db = is_code ? 0 : 1,
		.s = index == BOOT_GDT_TSS ? 0 : 1,
		.l = is_code,
		.g = 1,
	};
}

#define X86_CR0_PE 0x1ULL
#define X86_CR0_PG 0x80000000ULL
#define X86_CR4_PAE 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

/* 64-bit long mode with the boot GDT and identity page tables. */
static int setup_boot_registers(struct vcpu *vcpu, uint64_t entry, uint64_t boot_params, capsa_error *err)
{
	struct kvm_sregs sregs;
	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return error_set_errno(err, errno, "KVM_GET_SREGS");
	sregs.gdt.base = BOOT_GDT_ADDR;
	sregs.gdt.limit = 4 * sizeof(uint64_t) - 1;
	sregs.idt.base = BOOT_IDT_ADDR;
	sregs.idt.limit = sizeof(uint64_t) - 1;
	sregs.cs = segment_from_gdt(BOOT_GDT_CODE, 0xb, 1);
	struct kvm_segment data = segment_from_gdt(BOOT_GDT_DATA, 0x3, 0);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.tr = segment_from_gdt(BOOT_GDT_TSS, 0xb, 0);
	sregs.cr3 = BOOT_PML4_ADDR;
	sregs.cr4 |= X86_CR4_PAE;
	sregs.cr0 |= X86_CR0_PE | X86_CR0_PG;
	sregs.efer |= EFER_LME | EFER_LMA;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return error_set_errno(err, errno, "KVM_SET_SREGS");

	struct kvm_regs regs = {
		.rflags = 0x2,
		.rip = entry,
		.rsp = BOOT_STACK_ADDR,
		.rbp = BOOT_STACK_ADDR,
		.rsi = boot_params,
	};
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return error_set_errno(err, errno, "KVM_SET_REGS");

	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
		return error_set_errno(err, errno, "KVM_SET_FPU");
	return 0;
}

int vcpu_setup(struct vcpu *vcpu, uint64_t entry, uint64_t boot_params, capsa_error *err)
{
	if (setup_cpuid(vcpu, err) < 0 || setup_msrs(vcpu, err) < 0 || setup_lapic(vcpu, err) < 0)
		return -1;
	/* Other vCPUs wait in the in-kernel LAPIC for the boot CPU's INIT/SIPI. */
	if (vcpu->index == 0 && setup_boot_registers(vcpu, entry, boot_params, err) < 0)
		return -1;
	return 0;
}

static void handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (run->io.direction == KVM_EXIT_IO_OUT) {
			bus_write(&vcpu->vm->pio_bus, run->io.port, data, run->io.size);
		} else if (!bus_read(&vcpu->vm->pio_bus, run->io.port, data, run->io.size)) {
			memset(data, 0xff, run->io.size); /* nothing there: the bus floats high */
		}
	}
}

static void handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint32_t len = run->mmio.len <= sizeof(run->mmio.data) ? run->mmio.len : sizeof(run->mmio.data);
	if (run->mmio.is_write)
		bus_write(&vcpu->vm->mmio_bus, run->mmio.phys_addr, run->mmio.data, len);
	else if (!bus_read(&vcpu->vm->mmio_bus, run->mmio.phys_addr, run->mmio.data, len))
		memset(run->mmio.data, 0xff, len);
}


#define X86_RFLAGS_IF 0x200ULL

/* A guest without ACPI cannot power off: Linux halts every CPU with
 * interrupts disabled instead, and with the in-kernel LAPIC that halt never
 * leaves KVM. A vCPU so halted, or one the boot CPU never started, will not
 * run again; once all are, the VM has powered off. */
static void check_stopped_for_good(struct vcpu *vcpu)
{
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	int stopped = 0;
	if (ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) == 0) {
		if (mp.mp_state == KVM_MP_STATE_UNINITIALIZED || mp.mp_state == KVM_MP_STATE_INIT_RECEIVED)
			stopped = vcpu->index != 0;
		else if (mp.mp_state == KVM_MP_STATE_HALTED && ioctl(vcpu->fd, KVM_GET_REGS, &regs) == 0)
			stopped = !(regs.rflags & X86_RFLAGS_IF);
	}
	__atomic_store_n(&vcpu->stopped_for_good, stopped, __ATOMIC_RELEASE);
	if (!stopped)
		return;
	for (unsigned i = 0; i < vcpu->vm->cpu_count; i++) {
		if (!__atomic_load_n(&vcpu->vm->vcpus[i]->stopped_for_good, __ATOMIC_ACQUIRE))
			return;
	}
	vm_request_stop(vcpu->vm, VM_END_POWER_OFF, NULL);
}

/* Called after KVM_RUN returned EINTR: the exit the vCPU was in, if any,
 * is complete, so this is a consistent point to hold it at. Returns false
 * if the vCPU was not asked to pause. */
static bool park_if_paused(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;
	bool parked = false;
	pthread_mutex_lock(&vm->lock);
	if (vm->pause_requested && vm->end == VM_END_NONE) {
		parked = true;
		vm->parked++;
		pthread_cond_broadcast(&vm->pause_changed);
		while (vm->pause_requested && vm->end == VM_END_NONE)
			pthread_cond_wait(&vm->pause_changed, &vm->lock);
		vm->parked--;
	}
	pthread_mutex_unlock(&vm->lock);
	return parked;
}

/* Returns when the VM is ending. */
static void vcpu_loop(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;
	for (;;) {
		if (__atomic_load_n(&vm->end, __ATOMIC_ACQUIRE) != VM_END_NONE)
			return;
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vcpu->run->immediate_exit = 0;
				if (!park_if_paused(vcpu))
					check_stopped_for_good(vcpu);
				continue;
			}
			capsa_error e;
			error_set_errno(&e, errno, "KVM_RUN on vCPU %u", vcpu->index);
			vm_request_stop(vm, VM_END_ERROR, &e);
			return;
		}
		struct kvm_run *run = vcpu->run;
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(vcpu);
			break;
		case KVM_EXIT_MMIO:
			handle_mmio(vcpu);
			break;
		case KVM_EXIT_HLT:
			vm_request_stop(vm, VM_END_POWER_OFF, NULL);
			return;
		case KVM_EXIT_SHUTDOWN: /* triple fault */
			vm_request_stop(vm, VM_END_RESET, NULL);
			return;
		case KVM_EXIT_SYSTEM_EVENT:
			vm_request_stop(vm, run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ? VM_END_POWER_OFF
												  : VM_END_RESET,
					NULL);
			return;
		case KVM_EXIT_INTR:
			break;
		default: {
			capsa_error e;
			if (run->exit_reason == KVM_EXIT_FAIL_ENTRY)
				error_set(&e, EIO, "vCPU %u failed to enter the guest (hardware reason 0x%llx)",
					  vcpu->index, (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			else if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR)
				error_set(&e, EIO, "KVM internal error on vCPU %u (suberror %u)", vcpu->index,
					  run->internal.suberror);
			else
				error_set(&e, EIO, "vCPU %u stopped with unexpected KVM exit %u", vcpu->index,
					  run->exit_reason);
			vm_request_stop(vm, VM_END_ERROR, &e);
			return;
		}
		}
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	vcpu_loop(vcpu);
	pthread_mutex_lock(&vcpu->vm->lock);
	vcpu->vm->running--;
	pthread_cond_broadcast(&vcpu->vm->pause_changed);
	pthread_mutex_unlock(&vcpu->vm->lock);
	return NULL;
}

int vcpu_start(struct vcpu *vcpu, capsa_error *err)
{
	pthread_once(&kick_once, install_kick_handler);
	pthread_mutex_lock(&vcpu->vm->lock);
	vcpu->vm->running++;
	pthread_mutex_unlock(&vcpu->vm->lock);
	int r = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
	if (r != 0) {
		pthread_mutex_lock(&vcpu->vm->lock);
		vcpu->vm->running--;
		pthread_mutex_unlock(&vcpu->vm->lock);
		return error_set_errno(err, r, "start vCPU %u thread", vcpu->index);
	}
	vcpu->thread_started = 1;
	return 0;
}

void vcpu_kick(struct vcpu *vcpu)
{
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_RELEASE);
	if (vcpu->thread_started)
		pthread_kill(vcpu->thread, KICK_SIGNAL);
}

void vcpu_probe(struct vcpu *vcpu)
{
	if (vcpu->thread_started)
		pthread_kill(vcpu->thread, KICK_SIGNAL);
}

void vcpu_join(struct vcpu *vcpu)
{
	if (vcpu->thread_started) {
		pthread_join(vcpu->thread, NULL);
		vcpu->thread_started = 0;
	}
}
