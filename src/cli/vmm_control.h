/* The VMM process of a detached VM answers requests from other capsa
 * processes on a Unix socket in the VM's directory (INSTANCE_VMM_SOCKET):
 * one line in ("SNAPSHOT NAME 0|1\n", the number saying whether to replace
 * a snapshot of that name), one line out ("OK\n" or "ERROR message\n").
 * The socket is only reachable by its owner (mode 0600 in a 0700 dir). */
#ifndef CAPSA_CLI_VMM_CONTROL_H
#define CAPSA_CLI_VMM_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "capsa.h"

#define INSTANCE_VMM_SOCKET "vmm.sock"

typedef int (*vmm_snapshot_fn)(void *opaque, const char *name, bool replace, capsa_error *err);

/* Listens on path and serves requests on a thread of its own, for the
 * life of the process. */
int vmm_control_serve(const char *path, vmm_snapshot_fn snapshot, void *opaque, capsa_error *err);

/* Asks the VMM process listening on path for a snapshot. */
int vmm_control_snapshot(const char *path, const char *name, bool replace, capsa_error *err);

#endif
