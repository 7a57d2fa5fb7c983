/* /dev/kvm access: open it, check what it can do, create a VM. */
#ifndef CAPSA_VM_KVM_H
#define CAPSA_VM_KVM_H

#include "capsa.h"

/* Opens /dev/kvm and checks the API version and the capabilities capsa
 * needs. Refuses a kvm-pvm /dev/kvm (no hardware virtualization), which
 * cannot boot a normal Linux guest. Returns the fd or -1. */
int kvm_open(capsa_error *err);

/* 1 if /dev/kvm is backed by kvm-pvm (software, pagetable-based KVM). */
int kvm_is_pvm(void);

struct kvm_cpuid2;
/* The CPUID entries KVM supports (KVM_GET_SUPPORTED_CPUID), malloc'd; NULL
 * on failure. */
struct kvm_cpuid2 *kvm_supported_cpuid(int kvm_fd, capsa_error *err);

#endif
