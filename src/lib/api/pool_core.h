/* The bookkeeping of a capsa_pool, apart from what its VMs are: slots that
 * are started, idle, in use or stopping, driven through a small factory so
 * that the policy (caps, refill, eviction, waiting) can be tested without
 * booting anything.
 *
 * One mutex guards the state; factory calls are never made while it is
 * held, except alive(), which must be quick and must not block. Starts run
 * on max_starting worker threads; stops (releases in CLEAN mode, dead or
 * evicted VMs) on one more thread, so releasing never waits for a VM to
 * end. */
#ifndef CAPSA_API_POOL_CORE_H
#define CAPSA_API_POOL_CORE_H

#include <stdbool.h>

#include "capsa.h"

#define POOL_DEFAULT_MAX_VMS 16
#define POOL_DEFAULT_MAX_STARTING 2
/* Worker threads at most, whatever max_starting says. */
#define POOL_MAX_STARTING_LIMIT 64

struct pool_factory {
	/* A new VM, or NULL with err filled. */
	void *(*start)(void *ctx, capsa_error *err);
	/* Ends and frees a VM start() returned. */
	void (*stop)(void *ctx, void *vm);
	/* Whether the VM can still be handed out (its workload runs). */
	bool (*alive)(void *ctx, void *vm);
	void *ctx;
};

struct pool_core;

/* opts NULL, or a field 0, means the default (capsa.h); min_idle above
 * max_vms is EINVAL. Starts min_idle VMs in the background. */
struct pool_core *pool_core_new(const struct pool_factory *factory, const capsa_pool_options *opts,
				capsa_error *err);
void *pool_core_acquire(struct pool_core *p, uint32_t timeout_ms, capsa_error *err);
/* vm must come from pool_core_acquire of this pool; others are ignored. */
void pool_core_release(struct pool_core *p, void *vm, capsa_pool_release_mode mode);
void pool_core_get_stats(struct pool_core *p, capsa_pool_stats *stats);
/* Waits for starts in flight and stops every VM, in use or not. */
void pool_core_free(struct pool_core *p);

#endif
