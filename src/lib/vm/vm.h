/* One KVM virtual machine: guest RAM, in-kernel irqchip and PIT, the
 * port-I/O and MMIO buses devices attach to, and the vCPU threads. */
#ifndef CAPSA_VM_VM_H
#define CAPSA_VM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "capsa.h"
#include "vm/bus.h"
#include "vm/guest_mem.h"

struct vcpu;

/* Why the VM stopped. */
enum vm_end {
	VM_END_NONE = 0,
	VM_END_EXIT_REPORTED, /* guest init reported the workload's exit status */
	VM_END_POWER_OFF,     /* guest shut down without reporting */
	VM_END_RESET,         /* guest rebooted (reboot, kernel panic, triple fault) */
	VM_END_ERROR,         /* KVM or the VMM failed; see vm->end_error */
	VM_END_STOPPED,       /* stopped by force from the host (capsa_vm_stop) */
};

struct vm {
	int kvm_fd;
	int vm_fd;
	struct guest_mem mem;
	struct bus pio_bus;
	struct bus mmio_bus;
	unsigned cpu_count;
	struct vcpu **vcpus;

	pthread_mutex_t lock;   /* guards the end state and the pause state below */
	pthread_cond_t ended;   /* signalled when end is set */
	enum vm_end end;
	uint32_t exit_value;    /* what the guest wrote to CAPSA_EXIT_PORT */
	capsa_error end_error;

	/* vm_pause(): vCPU threads park outside KVM_RUN while pause_requested. */
	bool pause_requested;
	unsigned parked;        /* vCPU threads parked now */
	unsigned running;       /* vCPU threads started and not yet returned */
	pthread_cond_t pause_changed;
	bool mem_from_file;     /* guest RAM is a private mapping of a snapshot's memory file */

	uint32_t next_slot;     /* the next free KVM memory slot */
	uint64_t device_mem_next; /* where vm_add_device_memory places the next range; 0 before the first */
};

/* Creates the VM with mem_mib MiB of RAM and cpu_count vCPUs (not yet
 * running). Takes ownership of kvm_fd. */
struct vm *vm_create(int kvm_fd, uint32_t mem_mib, unsigned cpu_count, capsa_error *err);
/* The same with guest RAM mapped copy-on-write from mem_fd (a snapshot's
 * memory file of at least mem_mib MiB; the fd may be closed afterwards). */
struct vm *vm_create_from_memory(int kvm_fd, uint32_t mem_mib, unsigned cpu_count, int mem_fd, capsa_error *err);
void vm_destroy(struct vm *vm);

/* Device memory, e.g. virtio-fs's DAX window: size bytes of host memory
 * at host shown to the guest as a KVM memory slot of its own, at a
 * guest-physical address (*gpa) above RAM and every MMIO window, aligned to
 * 1 GiB and below the guest's physical address width. It is not guest RAM:
 * guest_mem_ptr() never reaches it, so no virtqueue buffer can point into
 * it. host must stay mapped (its pages may be replaced) while the VM exists. */
int vm_add_device_memory(struct vm *vm, void *host, uint64_t size, uint64_t *gpa, capsa_error *err);

/* Pulses an ISA/IOAPIC interrupt line (edge). */
void vm_irq_pulse(void *vm, int irq);

/* Runs all vCPUs until the VM ends; returns why. Boot state must be set
 * (vm_setup_boot_cpu) before. */
enum vm_end vm_run(struct vm *vm);

/* Stops every vCPU at an instruction boundary, outside KVM_RUN, with any
 * port or MMIO access it was making completed: its state can then be read
 * or written with the vCPU ioctls. Fails if the VM ends meanwhile. */
int vm_pause(struct vm *vm, capsa_error *err);
void vm_resume(struct vm *vm);

/* Ends the VM for `end` (the first reason given wins) and kicks every
 * vCPU out of the guest. Safe from any thread. */
void vm_request_stop(struct vm *vm, enum vm_end end, const capsa_error *error);

#endif
