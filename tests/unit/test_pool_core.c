/* The pool's policy, with fake VMs: refill, caps, waiting, release modes,
 * eviction, failures, teardown and many threads at once. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/pool_core.h"
#include "util/error.h"

#define MAX_FAKE_VMS 4096

/* cmocka's checks jump back to the test's thread: elsewhere, abort. */
#define THREAD_CHECK(cond)                                                              \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                        \
		}                                                                       \
	} while (0)

struct fake_vm {
	atomic_bool alive;
	atomic_int holders;   /* acquirers holding it: never more than one */
};

struct fake {
	pthread_mutex_t lock;
	int started, stopped, in_flight, max_in_flight;
	int start_delay_ms, stop_delay_ms;
	bool fail;
	struct fake_vm *vms[MAX_FAKE_VMS];   /* every VM started, for tests that kill them */
};

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *fake_start(void *ctx, capsa_error *err)
{
	struct fake *f = ctx;
	pthread_mutex_lock(&f->lock);
	if (++f->in_flight > f->max_in_flight)
		f->max_in_flight = f->in_flight;
	int delay = f->start_delay_ms;
	bool fail = f->fail;
	pthread_mutex_unlock(&f->lock);

	if (delay)
		sleep_ms(delay);
	struct fake_vm *vm = NULL;
	if (fail) {
		error_set(err, EIO, "boom: the snapshot is broken");
	} else {
		vm = calloc(1, sizeof(*vm));
		THREAD_CHECK(vm);
		atomic_store(&vm->alive, true);
	}

	pthread_mutex_lock(&f->lock);
	f->in_flight--;
	if (vm) {
		THREAD_CHECK(f->started < MAX_FAKE_VMS);
		f->vms[f->started++] = vm;
	}
	pthread_mutex_unlock(&f->lock);
	return vm;
}

static void fake_stop(void *ctx, void *opaque)
{
	struct fake *f = ctx;
	struct fake_vm *vm = opaque;
	pthread_mutex_lock(&f->lock);
	int delay = f->stop_delay_ms;
	for (int i = 0; i < f->started; i++)
		if (f->vms[i] == vm)
			f->vms[i] = NULL;
	f->stopped++;
	pthread_mutex_unlock(&f->lock);
	if (delay)
		sleep_ms(delay);
	THREAD_CHECK(atomic_load(&vm->holders) == 0);
	free(vm);
}

static bool fake_alive(void *ctx, void *opaque)
{
	(void)ctx;
	struct fake_vm *vm = opaque;
	return atomic_load(&vm->alive);
}

static struct fake *fake_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	pthread_mutex_init(&f->lock, NULL);
	return f;
}

static int fake_get(struct fake *f, int *field)
{
	pthread_mutex_lock(&f->lock);
	int v = *field;
	pthread_mutex_unlock(&f->lock);
	return v;
}

/* Frees the fake after checking that the pool stopped every VM it started. */
static void fake_free(struct fake *f)
{
	assert_int_equal(f->started, f->stopped);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static struct pool_core *pool_new(struct fake *f, capsa_pool_options o)
{
	struct pool_factory factory = { .start = fake_start, .stop = fake_stop, .alive = fake_alive, .ctx = f };
	capsa_error err = { 0 };
	struct pool_core *p = pool_core_new(&factory, &o, &err);
	if (!p)
		fail_msg("pool_core_new: %s", err.message);
	return p;
}

static capsa_pool_stats stats_of(struct pool_core *p)
{
	capsa_pool_stats s;
	pool_core_get_stats(p, &s);
	return s;
}

/* Polls until the pool's stats satisfy the check, for at most 5 s. */
#define WAIT_STATS(p, s, cond)                                                  \
	do {                                                                    \
		uint64_t until_ = monotonic_ms() + 5000;                        \
		capsa_pool_stats s;                                             \
		for (;;) {                                                      \
			s = stats_of(p);                                        \
			if (cond)                                               \
				break;                                          \
			if (monotonic_ms() > until_)                            \
				fail_msg("timed out waiting for %s", #cond);    \
			sleep_ms(2);                                            \
		}                                                               \
	} while (0)

static struct fake_vm *acquire(struct pool_core *p, uint32_t timeout_ms)
{
	capsa_error err = { 0 };
	struct fake_vm *vm = pool_core_acquire(p, timeout_ms, &err);
	if (!vm)
		fail_msg("acquire: %s", err.message);
	return vm;
}

static void test_bad_options(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	struct pool_factory factory = { .start = fake_start, .stop = fake_stop, .alive = fake_alive, .ctx = f };
	capsa_error err = { 0 };
	capsa_pool_options o = { .min_idle = 5, .max_vms = 4 };
	assert_null(pool_core_new(&factory, &o, &err));
	assert_int_equal(err.code, EINVAL);
	assert_non_null(strstr(err.message, "min_idle"));

	/* NULL options: the defaults, no VM started. */
	struct pool_core *p = pool_core_new(&factory, NULL, &err);
	assert_non_null(p);
	sleep_ms(20);
	assert_int_equal(stats_of(p).started, 0);
	pool_core_free(p);
	fake_free(f);
}

static void test_min_idle_refill(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	struct pool_core *p = pool_new(f, (capsa_pool_options){ .min_idle = 3, .max_vms = 5 });
	WAIT_STATS(p, s, s.idle == 3);
	sleep_ms(50);
	capsa_pool_stats s = stats_of(p);
	assert_int_equal(s.idle, 3);
	assert_int_equal(s.started, 3);
	assert_int_equal(s.starting, 0);

	/* Taking one makes the pool start another. */
	struct fake_vm *vm = acquire(p, 1000);
	WAIT_STATS(p, s2, s2.idle == 3 && s2.in_use == 1 && s2.started == 4);
	pool_core_release(p, vm, CAPSA_POOL_RELEASE_KEEP);
	s = stats_of(p);
	assert_int_equal(s.idle, 4);
	assert_int_equal(s.in_use, 0);
	pool_core_free(p);
	fake_free(f);
}

static void test_max_vms_cap(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	struct pool_core *p = pool_new(f, (capsa_pool_options){ .min_idle = 1, .max_vms = 2 });
	struct fake_vm *a = acquire(p, 2000);
	struct fake_vm *b = acquire(p, 2000);
	assert_ptr_not_equal(a, b);

	capsa_error err = { 0 };
	assert_null(pool_core_acquire(p, 50, &err));
	assert_int_equal(err.code, ETIMEDOUT);
	/* min_idle cannot be kept either: nothing beyond max_vms. */
	sleep_ms(30);
	capsa_pool_stats s = stats_of(p);
	assert_int_equal(s.in_use, 2);
	assert_int_equal(s.idle + s.starting, 0);
	assert_int_equal(s.started, 2);
	assert_int_equal(s.timed_out, 1);

	/* A waiting acquire gets the VM released meanwhile. */
	pool_core_release(p, a, CAPSA_POOL_RELEASE_KEEP);
	assert_ptr_equal(acquire(p, 1000), a);
	pool_core_release(p, a, CAPSA_POOL_RELEASE_CLEAN);
	pool_core_release(p, b, CAPSA_POOL_RELEASE_CLEAN);
	pool_core_free(p);
	fake_free(f);
}

static void test_max_starting_cap(void **state)
{
	(void)state;
	for (uint32_t cap = 1; cap <= 3; cap++) {
		struct fake *f = fake_new();
		f->start_delay_ms = 20;
		struct pool_core *p = pool_new(f, (capsa_pool_options){ .min_idle = 6, .max_vms = 8,
									.max_starting = cap });
		WAIT_STATS(p, s, s.idle == 6);
		assert_int_equal(fake_get(f, &f->max_in_flight), (int)cap);
		assert_int_equal(fake_get(f, &f->started), 6);
		pool_core_free(p);
		fake_free(f);
	}
}

static void test_acquire_timeout(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	struct pool_core *p = pool_new(f, (capsa_pool_options){ .max_vms = 1 });
	struct fake_vm *vm = acquire(p, 2000);

	capsa_error err = { 0 };
	uint64_t t0 = monotonic_ms();
	assert_null(pool_core_acquire(p, 80, &err));
	uint64_t took = monotonic_ms() - t0;
	assert_int_equal(err.code, ETIMEDOUT);
	assert_true(took >= 80 && took < 2000);

	/* 0: no waiting at all. */
	t0 = monotonic_ms();
	assert_null(pool_core_acquire(p, 0, &err));
	assert_int_equal(err.code, ETIMEDOUT);
	assert_true(monotonic_ms() - t0 < 50);

	capsa_pool_stats s = stats_of(p);
	assert_int_equal(s.timed_out, 2);
	assert_int_equal(s.acquired, 1);
	assert_true(s.acquire_wait_us_total >= 80000);
	pool_core_release(p, vm, CAPSA_POOL_RELEASE_KEEP);
	pool_core_free(p);
	fake_free(f);
}

static void test_acquire_starts_on_demand(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	f->start_delay_ms = 30;
	struct pool_core *p = pool_new(f, (capsa_pool_options){ .max_vms = 4 });
	uint64_t t0 = monotonic_ms();
	struct fake_vm *vm = acquire(p, 5000);
	assert_true(monotonic_ms() - t0 >= 30);
	capsa_pool_stats s = stats_of(p);
	assert_int_equal(s.started, 1);
	assert_int_equal(s.in_use, 1);
	assert_int_equal(s.idle, 0);
	assert_true(s.acquire_wait_us_total >= 30000);
	pool_core_release(p, vm, CAPSA_POOL_RELEASE_KEEP);
	pool_core_free(p);
	fake_free(f);
}

static void test_start_failure(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	f->fail = true;
	struct pool_core *p = pool_new(f, (capsa_pool_options){ .max_vms = 4 });
	capsa_error err = { 0 };
	uint64_t t0 = monotonic_ms();
	assert_null(pool_core_acquire(p, 10000, &err));
	assert_true(monotonic_ms() - t0 < 2000);
	assert_int_equal(err.code, EIO);
	assert_non_null(strstr(err.message, "boom"));
	capsa_pool_stats s = stats_of(p);
	assert_int_equal(s.failed_starts, 1);
	assert_int_equal(s.timed_out, 0);
	assert_int_equal(s.acquired, 0);

	/* Once starts work again, so does the pool. */
	pthread_mutex_lock(&f->lock);
	f->fail = false;
	pthread_mutex_unlock(&f->lock);
	struct fake_vm *vm = acquire(p, 5000);
	pool_core_release(p, vm, CAPSA_POOL_RELEASE_CLEAN);
	pool_core_free(p);
	fake_free(f);
}

static void test_start_failure_with_refills(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	f->fail = true;
	f->start_delay_ms = 5;
	struct pool_core *p = pool_new(f, (capsa_pool_options){ .min_idle = 2, .max_vms = 4, .max_starting = 2 });
	capsa_error err = { 0 };
	uint64_t t0 = monotonic_ms();
	assert_null(pool_core_acquire(p, 10000, &err));
	assert_true(monotonic_ms() - t0 < 5000);
	assert_int_equal(err.code, EIO);
	/* Refills back off rather than spin. */
	sleep_ms(200);
	assert_true(stats_of(p).failed_starts < 20);
	pool_core_free(p);
	fake_free(f);
}

static void test_release_clean_and_keep(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	struct pool_core *p = pool_new(f, (capsa_pool_options){ .min_idle = 2, .max_vms = 4 });
	WAIT_STATS(p, s0, s0.idle == 2);
	struct fake_vm *a = acquire(p, 1000);
	struct fake_vm *b = acquire(p, 1000);
	WAIT_STATS(p, s1, s1.idle == 2 && s1.in_use == 2);

	/* KEEP: back to idle as it is, and handed out next. */
	pool_core_release(p, a, CAPSA_POOL_RELEASE_KEEP);
	capsa_pool_stats s = stats_of(p);
	assert_int_equal(s.idle, 3);
	assert_int_equal(s.stopped, 0);
	assert_ptr_equal(acquire(p, 1000), a);

	/* CLEAN: stopped; min_idle is already kept, so nothing replaces it. */
	pool_core_release(p, b, CAPSA_POOL_RELEASE_CLEAN);
	WAIT_STATS(p, s2, s2.stopped == 1);
	s = stats_of(p);
	assert_int_equal(s.in_use, 1);
	assert_int_equal(s.idle, 2);
	assert_int_equal(s.started, 4);

	pool_core_release(p, a, CAPSA_POOL_RELEASE_CLEAN);
	WAIT_STATS(p, s3, s3.stopped == 2 && s3.in_use == 0 && s3.idle == 2);
	assert_int_equal(stats_of(p).acquired, 3);
	pool_core_free(p);
	fake_free(f);
}

static void test_clean_release_is_replaced(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	struct pool_core *p = pool_new(f, (capsa_pool_options){ .min_idle = 1, .max_vms = 1 });
	struct fake_vm *a = acquire(p, 1000);
	sleep_ms(20);
	assert_int_equal(stats_of(p).started, 1);
	/* At max_vms, the replacement waits for the stop. */
	pool_core_release(p, a, CAPSA_POOL_RELEASE_CLEAN);
	WAIT_STATS(p, s, s.stopped == 1 && s.idle == 1 && s.started == 2);
	pool_core_free(p);
	fake_free(f);
}

static void test_dead_vms_are_stopped(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	struct pool_core *p = pool_new(f, (capsa_pool_options){ .min_idle = 1, .max_vms = 4 });
	struct fake_vm *a = acquire(p, 1000);
	atomic_store(&a->alive, false);
	pool_core_release(p, a, CAPSA_POOL_RELEASE_KEEP);
	WAIT_STATS(p, s, s.stopped == 1);

	/* An idle VM whose workload ended is not handed out. */
	WAIT_STATS(p, s1, s1.idle == 1);
	pthread_mutex_lock(&f->lock);
	struct fake_vm *idle = NULL;
	for (int i = 0; i < f->started; i++)
		if (f->vms[i])
			idle = f->vms[i];
	pthread_mutex_unlock(&f->lock);
	assert_non_null(idle);
	atomic_store(&idle->alive, false);
	struct fake_vm *b = acquire(p, 2000);
	assert_ptr_not_equal(b, idle);
	WAIT_STATS(p, s2, s2.stopped == 2);
	pool_core_release(p, b, CAPSA_POOL_RELEASE_KEEP);
	pool_core_free(p);
	fake_free(f);
}

static void test_idle_eviction(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	struct pool_core *p = pool_new(f, (capsa_pool_options){ .min_idle = 1, .max_vms = 4,
								.idle_timeout_ms = 100 });
	struct fake_vm *vms[3];
	for (int i = 0; i < 3; i++)
		vms[i] = acquire(p, 1000);
	for (int i = 0; i < 3; i++)
		pool_core_release(p, vms[i], CAPSA_POOL_RELEASE_KEEP);
	uint64_t t0 = monotonic_ms();
	capsa_pool_stats s = stats_of(p);
	assert_true(s.idle >= 3);
	/* Down to min_idle, not below, and not before the timeout. */
	WAIT_STATS(p, s1, s1.idle == 1 && s1.starting == 0);
	assert_true(monotonic_ms() - t0 >= 90);
	sleep_ms(250);
	s = stats_of(p);
	assert_int_equal(s.idle, 1);
	assert_int_equal(s.stopped, s.started - 1);
	pool_core_free(p);
	fake_free(f);
}

static void test_free_in_every_state(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	f->start_delay_ms = 10;
	f->stop_delay_ms = 30;
	struct pool_core *p = pool_new(f, (capsa_pool_options){ .min_idle = 2, .max_vms = 6 });
	struct fake_vm *in_use = acquire(p, 2000);
	struct fake_vm *stopping = acquire(p, 2000);
	WAIT_STATS(p, s, s.idle >= 1);
	/* Now: VMs idle, in use, being stopped, and starts in flight. */
	pthread_mutex_lock(&f->lock);
	f->start_delay_ms = 100;
	pthread_mutex_unlock(&f->lock);
	pool_core_release(p, stopping, CAPSA_POOL_RELEASE_CLEAN);
	struct fake_vm *kept = acquire(p, 2000);
	pool_core_release(p, kept, CAPSA_POOL_RELEASE_KEEP);
	(void)in_use;
	pool_core_free(p);
	/* fake_free checks that every VM started was stopped. */
	fake_free(f);
}

struct worker_args {
	struct pool_core *p;
	int iterations;
	unsigned seed;
};

static void *churn(void *opaque)
{
	struct worker_args *a = opaque;
	for (int i = 0; i < a->iterations; i++) {
		capsa_error err = { 0 };
		struct fake_vm *vm = pool_core_acquire(a->p, 10000, &err);
		if (!vm)
			fprintf(stderr, "acquire: %s\n", err.message);
		THREAD_CHECK(vm);
		/* Handed out to one acquirer at a time. */
		THREAD_CHECK(atomic_fetch_add(&vm->holders, 1) == 0);
		if (rand_r(&a->seed) % 4 == 0)
			sleep_ms(1);
		atomic_fetch_sub(&vm->holders, 1);
		int r = rand_r(&a->seed) % 3;
		if (r == 2)
			atomic_store(&vm->alive, false);
		pool_core_release(a->p, vm, r == 0 ? CAPSA_POOL_RELEASE_CLEAN : CAPSA_POOL_RELEASE_KEEP);
	}
	return NULL;
}

static void test_concurrency(void **state)
{
	(void)state;
	enum { THREADS = 6, ITERATIONS = 30 };
	struct fake *f = fake_new();
	f->start_delay_ms = 1;
	struct pool_core *p = pool_new(f, (capsa_pool_options){ .min_idle = 1, .max_vms = 3, .max_starting = 2,
								.idle_timeout_ms = 5 });
	pthread_t threads[THREADS];
	struct worker_args args[THREADS];
	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct worker_args){ .p = p, .iterations = ITERATIONS, .seed = (unsigned)i + 1 };
		assert_int_equal(pthread_create(&threads[i], NULL, churn, &args[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	capsa_pool_stats s = stats_of(p);
	assert_int_equal(s.acquired, THREADS * ITERATIONS);
	assert_int_equal(s.in_use, 0);
	assert_int_equal(s.timed_out, 0);
	assert_true(s.idle + s.starting <= 3);
	assert_true(fake_get(f, &f->started) - fake_get(f, &f->stopped) <= 3);
	pool_core_free(p);
	fake_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_min_idle_refill),
		cmocka_unit_test(test_max_vms_cap),
		cmocka_unit_test(test_max_starting_cap),
		cmocka_unit_test(test_acquire_timeout),
		cmocka_unit_test(test_acquire_starts_on_demand),
		cmocka_unit_test(test_start_failure),
		cmocka_unit_test(test_start_failure_with_refills),
		cmocka_unit_test(test_release_clean_and_keep),
		cmocka_unit_test(test_clean_release_is_replaced),
		cmocka_unit_test(test_dead_vms_are_stopped),
		cmocka_unit_test(test_idle_eviction),
		cmocka_unit_test(test_free_in_every_state),
		cmocka_unit_test(test_concurrency),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
