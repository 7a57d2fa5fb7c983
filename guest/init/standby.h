/* Standby: how a guest is booted for a snapshot. Init brings everything
 * up but the workload and waits, with the agent answering, for the host's
 * START (agent_proto.h), which says what to run: the same snapshot then
 * serves any command, environment or user. */
#ifndef CAPSA_INIT_STANDBY_H
#define CAPSA_INIT_STANDBY_H

#include <stddef.h>
#include <stdint.h>

#include "agent_codec.h"

/* Runs a standby agent on listen_fd (a process of its own) until a START
 * arrives, then stops that agent. Returns 0 with *req decoded (its strings
 * point into *payload, which the caller keeps) and *reply_fd, on which
 * init writes an i32 once the workload runs: its pid, 0 for a held
 * workload, or -errno. Returns an errno value with why filled on failure. */
int standby_wait_for_start(int listen_fd, struct agent_start_request *req, uint8_t **payload, int *reply_fd,
			   char *why, size_t why_len);

#endif
