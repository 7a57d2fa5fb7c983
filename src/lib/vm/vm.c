#include "vm/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "vm/kvm.h"
#include "vm/vcpu.h"
#include "vm/x86_layout.h"

#define VM_PROBE_INTERVAL_SECONDS 1
#define DEVICE_MEMORY_ALIGN (1ULL << 30)
/* What Linux assumes when CPUID lacks leaf 0x80000008 (PAE's 36 bits). */
#define DEFAULT_PHYS_BITS 36

static int add_memory_slot(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host, capsa_error *err)
{
	struct kvm_userspace_memory_region region = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return error_set_errno(err, errno, "KVM_SET_USER_MEMORY_REGION");
	return 0;
}

/* Guest RAM is one private mapping; pages cost host memory only once the
 * guest touches them. It is anonymous, or a snapshot's memory file mapped
 * copy-on-write: nothing is read before the guest touches it, the file is
 * never written, and clones of one snapshot share its page cache. Below
 * 3 GiB it is one slot, the rest a second slot at 4 GiB (guest_mem.h). */
static int setup_memory(struct vm *vm, uint32_t mem_mib, int mem_fd, capsa_error *err)
{
	uint64_t size = (uint64_t)mem_mib << 20;
	int flags = MAP_PRIVATE | MAP_NORESERVE | (mem_fd < 0 ? MAP_ANONYMOUS : 0);
	void *host = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, mem_fd, 0);
	if (host == MAP_FAILED)
		return error_set_errno(err, errno, "reserve %u MiB of guest memory", mem_mib);
	vm->mem_from_file = mem_fd >= 0;
	vm->mem.host = host;
	vm->mem.size = size;
	uint64_t low = guest_mem_low_size(&vm->mem);
	if (add_memory_slot(vm, 0, 0, low, host, err) < 0)
		return -1;
	if (size > low && add_memory_slot(vm, 1, GUEST_MEM_HOLE_END, size - low, (uint8_t *)host + low, err) < 0)
		return -1;
	vm->next_slot = 2;
	return 0;
}

/* The guest's physical address width, as the CPUID the vCPUs get says
 * (leaf 0x80000008, EAX bits 7:0; vcpu.c passes KVM's supported CPUID on). */
static unsigned guest_phys_bits(struct vm *vm)
{
	capsa_error ignored;
	_cleanup_free_ struct kvm_cpuid2 *cpuid = kvm_supported_cpuid(vm->kvm_fd, &ignored);
	unsigned bits = DEFAULT_PHYS_BITS;
	for (uint32_t i = 0; cpuid && i < cpuid->nent; i++)
		if (cpuid->entries[i].function == 0x80000008 && (cpuid->entries[i].eax & 0xff))
			bits = cpuid->entries[i].eax & 0xff;
	return bits;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

int vm_add_device_memory(struct vm *vm, void *host, uint64_t size, uint64_t *gpa, capsa_error *err)
{
	if (!vm->device_mem_next) {
		uint64_t ram_end = vm->mem.size - guest_mem_low_size(&vm->mem) + GUEST_MEM_HOLE_END;
		vm->device_mem_next = align_up(ram_end, DEVICE_MEMORY_ALIGN);
	}
	uint64_t base = vm->device_mem_next;
	unsigned bits = guest_phys_bits(vm);
	if (bits > 63 || size > (1ULL << bits) || base > (1ULL << bits) - size)
		return error_set(err, ENOSPC, "%llu MiB of device memory at %#llx do not fit in the guest's %u-bit "
				 "physical address space: use less memory or fewer DAX volumes",
				 (unsigned long long)(size >> 20), (unsigned long long)base, bits);
	if (add_memory_slot(vm, vm->next_slot, base, size, host, err) < 0)
		return error_prefix(err, "device memory at %#llx", (unsigned long long)base);
	vm->next_slot++;
	vm->device_mem_next = align_up(base + size, DEVICE_MEMORY_ALIGN);
	*gpa = base;
	return 0;
}

static int setup_irqchip(struct vm *vm, capsa_error *err)
{
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
		return error_set_errno(err, errno, "KVM_SET_TSS_ADDR");
	uint64_t identity_map = KVM_IDENTITY_MAP_ADDR;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity_map) < 0)
		return error_set_errno(err, errno, "KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return error_set_errno(err, errno, "KVM_CREATE_IRQCHIP");
	struct kvm_pit_config pit = { .flags = 0 };
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return error_set_errno(err, errno, "KVM_CREATE_PIT2");
	return 0;
}

struct vm *vm_create(int kvm_fd, uint32_t mem_mib, unsigned cpu_count, capsa_error *err)
{
	return vm_create_from_memory(kvm_fd, mem_mib, cpu_count, -1, err);
}

struct vm *vm_create_from_memory(int kvm_fd, uint32_t mem_mib, unsigned cpu_count, int mem_fd, capsa_error *err)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm) {
		close(kvm_fd);
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	vm->kvm_fd = kvm_fd;
	vm->cpu_count = cpu_count;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->ended, NULL);
	pthread_cond_init(&vm->pause_changed, NULL);
	vm->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		error_set_errno(err, errno, "KVM_CREATE_VM");
		goto fail;
	}
	if (setup_irqchip(vm, err) < 0 || setup_memory(vm, mem_mib, mem_fd, err) < 0)
		goto fail;
	vm->vcpus = calloc(cpu_count, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		error_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < cpu_count; i++) {
		vm->vcpus[i] = vcpu_create(vm, i, err);
		if (!vm->vcpus[i])
			goto fail;
	}
	return vm;
fail:
	vm_destroy(vm);
	return NULL;
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	if (vm->vcpus) {
		for (unsigned i = 0; i < vm->cpu_count; i++)
			vcpu_destroy(vm->vcpus[i]);
		free(vm->vcpus);
	}
	if (vm->mem.host)
		munmap(vm->mem.host, vm->mem.size);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	close(vm->kvm_fd);
	pthread_cond_destroy(&vm->ended);
	pthread_cond_destroy(&vm->pause_changed);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

void vm_irq_pulse(void *opaque, int irq)
{
	struct vm *vm = opaque;
	struct kvm_irq_level line = { .irq = (uint32_t)irq, .level = 1 };
	ioctl(vm->vm_fd, KVM_IRQ_LINE, &line);
	line.level = 0;
	ioctl(vm->vm_fd, KVM_IRQ_LINE, &line);
}

void vm_request_stop(struct vm *vm, enum vm_end end, const capsa_error *error)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->end == VM_END_NONE) {
		if (error)
			vm->end_error = *error;
		__atomic_store_n(&vm->end, end, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&vm->ended);
		pthread_cond_broadcast(&vm->pause_changed);
	}
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->cpu_count; i++)
		vcpu_kick(vm->vcpus[i]);
}

int vm_pause(struct vm *vm, capsa_error *err)
{
	pthread_mutex_lock(&vm->lock);
	vm->pause_requested = true;
	pthread_mutex_unlock(&vm->lock);
	/* The flag is set before the kick: a vCPU that sees the kick's
	 * EINTR also sees the request. */
	for (unsigned i = 0; i < vm->cpu_count; i++)
		vcpu_kick(vm->vcpus[i]);
	pthread_mutex_lock(&vm->lock);
	while (vm->end == VM_END_NONE && vm->parked < vm->running)
		pthread_cond_wait(&vm->pause_changed, &vm->lock);
	bool ended = vm->end != VM_END_NONE;
	pthread_mutex_unlock(&vm->lock);
	if (ended) {
		vm_resume(vm);
		return error_set(err, ECHILD, "the VM stopped while it was being paused");
	}
	return 0;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->pause_requested = false;
	pthread_cond_broadcast(&vm->pause_changed);
	pthread_mutex_unlock(&vm->lock);
}

enum vm_end vm_run(struct vm *vm)
{
	for (unsigned i = 0; i < vm->cpu_count; i++) {
		capsa_error e;
		if (vcpu_start(vm->vcpus[i], &e) < 0) {
			vm_request_stop(vm, VM_END_ERROR, &e);
			break;
		}
	}
	/* Until the VM ends, probe the vCPUs now and then: a guest that powered
	 * off without ACPI only halts (see check_stopped_for_good). */
	pthread_mutex_lock(&vm->lock);
	while (vm->end == VM_END_NONE) {
		struct timespec deadline;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += VM_PROBE_INTERVAL_SECONDS;
		if (pthread_cond_timedwait(&vm->ended, &vm->lock, &deadline) == ETIMEDOUT) {
			for (unsigned i = 0; i < vm->cpu_count; i++)
				vcpu_probe(vm->vcpus[i]);
		}
	}
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->cpu_count; i++)
		vcpu_join(vm->vcpus[i]);
	return vm->end;
}
