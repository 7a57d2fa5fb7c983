/* Time for timeouts: milliseconds on the monotonic clock, and absolute
 * deadlines for pthread_cond_timedwait, which measures against
 * CLOCK_REALTIME. */
#ifndef CAPSA_UTIL_DEADLINE_H
#define CAPSA_UTIL_DEADLINE_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since an arbitrary point; never jumps with the wall clock. */
static inline uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline struct timespec realtime_deadline_ms(int timeout_ms)
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	return deadline;
}

#endif
