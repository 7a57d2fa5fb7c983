/* A pool's slots and the threads that fill and empty them (see
 * pool_core.h).
 *
 * Demand for starts comes from two places: refills, to keep min_idle VMs
 * idle, and acquires that found none: each waiting acquire asks for one
 * start, once. A failed start never asks again by itself, so a pool whose
 * starts all fail neither spins nor keeps its callers waiting: refills back
 * off, and waiting acquires fail with the start's error once no start is
 * left in flight for them. */
#include "api/pool_core.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/error.h"

/* Refills after a failed start wait this long, doubling up to the max. */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 10000
#define FOREVER UINT64_MAX

struct slot {
	void *vm;
	uint64_t idle_since_ms;
	struct slot *prev, *next;
};

/* Oldest first: VMs are appended as they become idle. */
struct slot_list {
	struct slot *head, *tail;
	uint32_t count;
};

struct pool_core {
	struct pool_factory factory;
	capsa_pool_options opts;

	pthread_mutex_t lock;
	pthread_cond_t changed;  /* acquirers: a VM became idle, a start failed */
	pthread_cond_t work;     /* background threads: demand, room or VMs to stop */
	struct slot_list idle, in_use, to_stop;
	uint32_t starting;       /* starts in flight */
	uint32_t stopping;       /* stops in flight (taken off to_stop) */
	uint32_t waiters;        /* acquires waiting */
	uint32_t requests;       /* starts asked for by waiters, not yet begun; <= waiters */
	bool shutting_down;
	bool workers_done;       /* no start can end any more; the stopper may exit once idle */
	uint64_t retry_at_ms;    /* no refill before this, after a failed start */
	uint32_t retry_delay_ms;
	capsa_error last_start_error;
	capsa_pool_stats stats;  /* the counters; the gauges are read off the lists */

	pthread_t workers[POOL_MAX_STARTING_LIMIT];
	uint32_t worker_count;
	pthread_t stopper;
	bool stopper_started;
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t now_ms(void)
{
	return now_us() / 1000;
}

/* Waits on cond until signalled or until deadline_ms (CLOCK_MONOTONIC). */
static void wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, uint64_t deadline_ms)
{
	if (deadline_ms == FOREVER) {
		pthread_cond_wait(cond, lock);
		return;
	}
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ms / 1000),
		.tv_nsec = (long)(deadline_ms % 1000) * 1000000,
	};
	pthread_cond_timedwait(cond, lock, &ts);
}

static void list_push_tail(struct slot_list *l, struct slot *s)
{
	s->next = NULL;
	s->prev = l->tail;
	if (l->tail)
		l->tail->next = s;
	else
		l->head = s;
	l->tail = s;
	l->count++;
}

static void list_remove(struct slot_list *l, struct slot *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		l->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		l->tail = s->prev;
	s->prev = s->next = NULL;
	l->count--;
}

static void list_move_all(struct slot_list *to, struct slot_list *from)
{
	while (from->head) {
		struct slot *s = from->head;
		list_remove(from, s);
		list_push_tail(to, s);
	}
}

static uint32_t total_vms(const struct pool_core *p)
{
	return p->idle.count + p->in_use.count + p->to_stop.count + p->starting + p->stopping;
}

static bool start_wanted(const struct pool_core *p, uint64_t now)
{
	if (p->shutting_down || p->starting >= p->opts.max_starting || total_vms(p) >= p->opts.max_vms)
		return false;
	if (p->requests > 0)
		return true;
	return p->idle.count + p->starting < p->opts.min_idle && now >= p->retry_at_ms;
}

static void start_ended(struct pool_core *p, struct slot *s, void *vm, const capsa_error *err)
{
	p->starting--;
	if (vm) {
		s->vm = vm;
		s->idle_since_ms = now_ms();
		list_push_tail(&p->idle, s);
		p->stats.started++;
		p->retry_delay_ms = 0;
		p->retry_at_ms = 0;
	} else {
		free(s);
		p->stats.failed_starts++;
		p->last_start_error = *err;
		if (!p->last_start_error.code)
			error_set(&p->last_start_error, EIO, "a VM of the pool failed to start");
		p->retry_delay_ms = p->retry_delay_ms ? p->retry_delay_ms * 2 : RETRY_MIN_MS;
		if (p->retry_delay_ms > RETRY_MAX_MS)
			p->retry_delay_ms = RETRY_MAX_MS;
		p->retry_at_ms = now_ms() + p->retry_delay_ms;
	}
	pthread_cond_broadcast(&p->changed);
	/* The stopper's eviction deadline, or a refill, may depend on it. */
	pthread_cond_broadcast(&p->work);
}

static void *worker_main(void *opaque)
{
	struct pool_core *p = opaque;

	pthread_mutex_lock(&p->lock);
	while (!p->shutting_down) {
		uint64_t now = now_ms();
		if (!start_wanted(p, now)) {
			bool backing_off = p->idle.count + p->starting < p->opts.min_idle && now < p->retry_at_ms;
			wait_until(&p->work, &p->lock, backing_off ? p->retry_at_ms : FOREVER);
			continue;
		}
		if (p->requests > 0)
			p->requests--;
		p->starting++;
		pthread_mutex_unlock(&p->lock);

		capsa_error err = { 0 };
		void *vm = NULL;
		struct slot *s = calloc(1, sizeof(*s));
		if (s)
			vm = p->factory.start(p->factory.ctx, &err);
		else
			error_set(&err, ENOMEM, "out of memory");

		pthread_mutex_lock(&p->lock);
		start_ended(p, s, vm, &err);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Moves idle VMs past their idle timeout, oldest first and never below
 * min_idle, to the stop list. Returns when the next one expires. */
static uint64_t evict_idle(struct pool_core *p)
{
	if (!p->opts.idle_timeout_ms || p->shutting_down)
		return FOREVER;
	uint64_t now = now_ms();
	while (p->idle.count > p->opts.min_idle) {
		struct slot *oldest = p->idle.head;
		uint64_t expiry = oldest->idle_since_ms + p->opts.idle_timeout_ms;
		if (expiry > now)
			return expiry;
		list_remove(&p->idle, oldest);
		list_push_tail(&p->to_stop, oldest);
	}
	return FOREVER;
}

static void *stopper_main(void *opaque)
{
	struct pool_core *p = opaque;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		uint64_t next_expiry = evict_idle(p);
		struct slot *s = p->to_stop.head;
		if (s) {
			list_remove(&p->to_stop, s);
			p->stopping++;
			pthread_mutex_unlock(&p->lock);
			p->factory.stop(p->factory.ctx, s->vm);
			free(s);
			pthread_mutex_lock(&p->lock);
			p->stopping--;
			p->stats.stopped++;
			/* Room under max_vms for a start. */
			pthread_cond_broadcast(&p->work);
			continue;
		}
		if (p->workers_done)
			break;
		wait_until(&p->work, &p->lock, next_expiry);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* The newest idle VM that is still alive, moved to in_use; dead ones
 * found on the way go to be stopped. */
static struct slot *take_idle(struct pool_core *p)
{
	while (p->idle.tail) {
		struct slot *s = p->idle.tail;
		list_remove(&p->idle, s);
		if (p->factory.alive(p->factory.ctx, s->vm)) {
			list_push_tail(&p->in_use, s);
			return s;
		}
		list_push_tail(&p->to_stop, s);
		pthread_cond_broadcast(&p->work);
	}
	return NULL;
}

void *pool_core_acquire(struct pool_core *p, uint32_t timeout_ms, capsa_error *err)
{
	uint64_t started_us = now_us();
	/* Rounded up: an acquire never gives up before timeout_ms. */
	uint64_t deadline = timeout_ms ? (started_us + (uint64_t)timeout_ms * 1000 + 999) / 1000 : 0;
	struct slot *s = NULL;
	bool waiting = false;

	pthread_mutex_lock(&p->lock);
	uint64_t failures_before = p->stats.failed_starts;
	for (;;) {
		s = take_idle(p);
		if (s)
			break;
		if (p->shutting_down) {
			error_set(err, ECANCELED, "the pool is being freed");
			break;
		}
		if (p->stats.failed_starts != failures_before && !p->starting && !p->requests) {
			if (err) {
				*err = p->last_start_error;
				error_prefix(err, "starting a VM for the pool");
			}
			break;
		}
		if (now_ms() >= deadline) {
			p->stats.timed_out++;
			error_set(err, ETIMEDOUT, "no VM of the pool was free within %u ms (%u in use of at most %u): "
				  "release VMs sooner, or raise max_vms or the timeout", timeout_ms, p->in_use.count,
				  p->opts.max_vms);
			break;
		}
		if (!waiting) {
			waiting = true;
			p->waiters++;
			p->requests++;
			pthread_cond_broadcast(&p->work);
		}
		wait_until(&p->changed, &p->lock, deadline);
	}
	if (waiting) {
		p->waiters--;
		/* Requests are not anyone's in particular: drop the surplus,
		 * which may leave the other waiters with no start to wait for. */
		if (p->requests > p->waiters) {
			p->requests = p->waiters;
			pthread_cond_broadcast(&p->changed);
		}
	}
	if (s) {
		p->stats.acquired++;
		/* A refill may be due. */
		pthread_cond_broadcast(&p->work);
	}
	p->stats.acquire_wait_us_total += now_us() - started_us;
	pthread_mutex_unlock(&p->lock);
	return s ? s->vm : NULL;
}

void pool_core_release(struct pool_core *p, void *vm, capsa_pool_release_mode mode)
{
	pthread_mutex_lock(&p->lock);
	struct slot *s = p->in_use.head;
	while (s && s->vm != vm)
		s = s->next;
	if (s) {
		list_remove(&p->in_use, s);
		if (mode == CAPSA_POOL_RELEASE_KEEP && !p->shutting_down && p->factory.alive(p->factory.ctx, vm)) {
			s->idle_since_ms = now_ms();
			list_push_tail(&p->idle, s);
			pthread_cond_broadcast(&p->changed);
		} else {
			list_push_tail(&p->to_stop, s);
		}
		pthread_cond_broadcast(&p->work);
	}
	pthread_mutex_unlock(&p->lock);
}

void pool_core_get_stats(struct pool_core *p, capsa_pool_stats *stats)
{
	pthread_mutex_lock(&p->lock);
	*stats = p->stats;
	stats->idle = p->idle.count;
	stats->in_use = p->in_use.count;
	stats->starting = p->starting;
	pthread_mutex_unlock(&p->lock);
}

static int init_cond(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	if (pthread_condattr_init(&attr) != 0)
		return -1;
	int r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (r == 0)
		r = pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return r == 0 ? 0 : -1;
}

void pool_core_free(struct pool_core *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->shutting_down = true;
	pthread_cond_broadcast(&p->work);
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	for (uint32_t i = 0; i < p->worker_count; i++)
		pthread_join(p->workers[i], NULL);

	/* Starts in flight have ended: whatever exists now is on a list. */
	pthread_mutex_lock(&p->lock);
	list_move_all(&p->to_stop, &p->idle);
	list_move_all(&p->to_stop, &p->in_use);
	p->workers_done = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	if (p->stopper_started) {
		pthread_join(p->stopper, NULL);
	} else {
		while (p->to_stop.head) {
			struct slot *s = p->to_stop.head;
			list_remove(&p->to_stop, s);
			p->factory.stop(p->factory.ctx, s->vm);
			free(s);
		}
	}
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->changed);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

struct pool_core *pool_core_new(const struct pool_factory *factory, const capsa_pool_options *opts,
				capsa_error *err)
{
	capsa_pool_options o = opts ? *opts : (capsa_pool_options){ 0 };
	if (!o.max_vms)
		o.max_vms = POOL_DEFAULT_MAX_VMS;
	if (!o.max_starting)
		o.max_starting = POOL_DEFAULT_MAX_STARTING;
	if (o.min_idle > o.max_vms) {
		error_set(err, EINVAL, "min_idle %u is above max_vms %u: the pool could never keep that many idle",
			  o.min_idle, o.max_vms);
		return NULL;
	}
	/* More starts at once than VMs could never happen. */
	if (o.max_starting > o.max_vms)
		o.max_starting = o.max_vms;
	if (o.max_starting > POOL_MAX_STARTING_LIMIT)
		o.max_starting = POOL_MAX_STARTING_LIMIT;

	struct pool_core *p = calloc(1, sizeof(*p));
	if (!p) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	p->factory = *factory;
	p->opts = o;
	pthread_mutex_init(&p->lock, NULL);
	if (init_cond(&p->changed) < 0) {
		pthread_mutex_destroy(&p->lock);
		free(p);
		error_set(err, ENOMEM, "cannot set up the pool's condition variables");
		return NULL;
	}
	if (init_cond(&p->work) < 0) {
		pthread_cond_destroy(&p->changed);
		pthread_mutex_destroy(&p->lock);
		free(p);
		error_set(err, ENOMEM, "cannot set up the pool's condition variables");
		return NULL;
	}

	int r = pthread_create(&p->stopper, NULL, stopper_main, p);
	p->stopper_started = r == 0;
	for (uint32_t i = 0; r == 0 && i < o.max_starting; i++) {
		r = pthread_create(&p->workers[i], NULL, worker_main, p);
		if (r == 0)
			p->worker_count++;
	}
	if (r != 0) {
		pool_core_free(p);
		error_set_errno(err, r, "creating the pool's threads");
		return NULL;
	}
	return p;
}
