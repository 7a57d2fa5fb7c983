/* The KVM side of a snapshot: every vCPU's architectural state, the
 * in-kernel interrupt controllers, the PIT and kvmclock, to and from a
 * state file (state_file.h). */
#ifndef CAPSA_SNAPSHOT_KVM_STATE_H
#define CAPSA_SNAPSHOT_KVM_STATE_H

#include "capsa.h"
#include "snapshot/state_file.h"
#include "vm/vm.h"

/* Reads the state of a paused VM (vm_pause) into w. */
int kvm_state_save(struct vm *vm, struct state_writer *w, capsa_error *err);

/* Loads it into a new VM with the same number of vCPUs, none of them
 * started yet. */
int kvm_state_restore(struct vm *vm, const struct state_reader *r, capsa_error *err);

#endif
