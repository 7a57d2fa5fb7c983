/* The guest's ways of ending the VM through port I/O: capsa init's exit
 * status port (guest_abi.h) and the i8042 keyboard controller's CPU reset
 * command, which Linux uses for `reboot=k` and after a panic. */
#ifndef CAPSA_DEVICES_POWER_H
#define CAPSA_DEVICES_POWER_H

#include "capsa.h"

struct vm;

/* Registers both ports on vm's port-I/O bus. */
int power_ports_register(struct vm *vm, capsa_error *err);

#endif
