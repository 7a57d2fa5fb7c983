/* A snapshot's memory file: guest RAM byte for byte (host mapping offset =
 * file offset), sparse so that pages the guest never used or left zero
 * take no disk. Restore maps it copy-on-write (vm_create_from_memory). */
#ifndef CAPSA_SNAPSHOT_GUEST_RAM_H
#define CAPSA_SNAPSHOT_GUEST_RAM_H

#include "capsa.h"
#include "vm/vm.h"

/* Writes the RAM of a paused VM to a new file at path and syncs it. */
int guest_ram_save(const struct vm *vm, const char *path, capsa_error *err);

/* Opens a memory file for restore, checking it holds exactly mem_mib MiB. */
int guest_ram_open(const char *path, uint32_t mem_mib, capsa_error *err);

#endif
