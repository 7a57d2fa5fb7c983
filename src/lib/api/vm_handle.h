/* What the rest of the library may ask of a capsa_vm (vm_handle.c). */
#ifndef CAPSA_API_VM_HANDLE_H
#define CAPSA_API_VM_HANDLE_H

#include <stdbool.h>

#include "capsa.h"

/* Whether the VM started and has not ended (its workload still runs).
 * Quick: takes only the VM's own lock. */
bool vm_handle_running(capsa_vm *vm);

#endif
