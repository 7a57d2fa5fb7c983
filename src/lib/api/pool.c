/* capsa_pool: pool_core with VMs started from the pool's own copy of the
 * caller's config. */
#include <errno.h>
#include <stdlib.h>

#include "api/config.h"
#include "api/pool_core.h"
#include "api/vm_handle.h"
#include "util/error.h"

/* A pool VM's workload gets this long to end on SIGTERM: a pool stops VMs
 * in the background, but a VM that lingers still holds its memory. */
#define POOL_STOP_TIMEOUT_MS 2000

struct capsa_pool {
	capsa_vm_config *cfg;
	struct pool_core *core;
};

static void *pool_vm_start(void *ctx, capsa_error *err)
{
	return capsa_vm_start(ctx, err);
}

static void pool_vm_stop(void *ctx, void *vm)
{
	(void)ctx;
	capsa_vm_stop(vm, POOL_STOP_TIMEOUT_MS, NULL);
	capsa_vm_free(vm);
}

static bool pool_vm_alive(void *ctx, void *vm)
{
	(void)ctx;
	return vm_handle_running(vm);
}

CAPSA_API capsa_pool *capsa_pool_new(const capsa_vm_config *cfg, const capsa_pool_options *opts, capsa_error *err)
{
	if (!cfg) {
		error_set(err, EINVAL, "a pool needs a VM config");
		return NULL;
	}
	if (cfg->interactive) {
		error_set(err, EINVAL, "a pool's VMs cannot be interactive: their workloads would all read this "
			  "process's input");
		return NULL;
	}
	if (cfg->control_socket) {
		error_set(err, EINVAL, "a pool's VMs each need a control socket of their own: leave the config's "
			  "control socket unset");
		return NULL;
	}
	capsa_pool *pool = calloc(1, sizeof(*pool));
	if (!pool) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	pool->cfg = config_copy(cfg, err);
	if (!pool->cfg) {
		free(pool);
		return NULL;
	}
	struct pool_factory factory = {
		.start = pool_vm_start,
		.stop = pool_vm_stop,
		.alive = pool_vm_alive,
		.ctx = pool->cfg,
	};
	pool->core = pool_core_new(&factory, opts, err);
	if (!pool->core) {
		capsa_vm_config_free(pool->cfg);
		free(pool);
		return NULL;
	}
	return pool;
}

CAPSA_API capsa_vm *capsa_pool_acquire(capsa_pool *pool, uint32_t timeout_ms, capsa_error *err)
{
	return pool_core_acquire(pool->core, timeout_ms, err);
}

CAPSA_API void capsa_pool_release(capsa_pool *pool, capsa_vm *vm, capsa_pool_release_mode mode)
{
	if (vm)
		pool_core_release(pool->core, vm, mode);
}

CAPSA_API void capsa_pool_get_stats(capsa_pool *pool, capsa_pool_stats *stats)
{
	pool_core_get_stats(pool->core, stats);
}

CAPSA_API void capsa_pool_free(capsa_pool *pool)
{
	if (!pool)
		return;
	pool_core_free(pool->core);
	capsa_vm_config_free(pool->cfg);
	free(pool);
}
