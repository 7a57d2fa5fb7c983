/* A vCPU: its KVM fd, the shared kvm_run page, its thread and the exit
 * loop that hands port I/O and MMIO to the VM's buses. */
#ifndef CAPSA_VM_VCPU_H
#define CAPSA_VM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>

#include "capsa.h"

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	int thread_started;
	/* Set when a probe found the vCPU stopped for good: halted with
	 * interrupts off, or never started by the boot CPU. */
	int stopped_for_good;
};

struct vcpu *vcpu_create(struct vm *vm, unsigned index, capsa_error *err);
void vcpu_destroy(struct vcpu *vcpu);

/* CPUID, MSRs and LAPIC for every vCPU; on the boot vCPU also registers
 * for the 64-bit Linux entry: rip = entry, rsi = boot_params. */
int vcpu_setup(struct vcpu *vcpu, uint64_t entry, uint64_t boot_params, capsa_error *err);

int vcpu_start(struct vcpu *vcpu, capsa_error *err);
/* Makes KVM_RUN return promptly, now or at its next entry. */
void vcpu_kick(struct vcpu *vcpu);
/* Interrupts KVM_RUN (if the vCPU is in it) so that the vCPU thread checks
 * whether the guest stopped for good; the guest then runs on. */
void vcpu_probe(struct vcpu *vcpu);
void vcpu_join(struct vcpu *vcpu);

#endif
