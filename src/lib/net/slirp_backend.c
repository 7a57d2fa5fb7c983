#include "net/slirp_backend.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <slirp/libslirp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "net/dns_forward.h"
#include "net/egress.h"
#include "net/frame.h"
#include "net/inbound_flows.h"
#include "util/error.h"

#define IDLE_POLL_MS 1000

struct slirp_timer {
	struct slirp_timer *next;
	SlirpTimerId id;
	void *cb_opaque;
	int64_t expire_ms;  /* -1: not armed */
};

struct slirp_backend {
	pthread_mutex_t lock;   /* every call into libslirp, and the fields below */
	Slirp *slirp;
	slirp_backend_deliver_fn deliver_fn;  /* NULL until started */
	void *deliver_opaque;
	struct egress_policy *egress;   /* NULL: allow everything */
	struct dns_forward *dns;        /* NULL: libslirp's forwarder */
	struct inbound_flows flows;
	struct port_spec ports[NAT_MAX_PORTS];
	unsigned port_count;
	struct slirp_timer *timers;
	struct pollfd *pfds;            /* the poll set being built or polled */
	size_t pfd_count, pfd_cap;
	struct in_addr dns_addr, guest_addr;
	bool stopping;

	int wake_fd;                    /* eventfd: re-poll, libslirp's state changed */
	pthread_t thread;
	bool thread_started;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void wake(struct slirp_backend *b)
{
	uint64_t one = 1;
	if (write(b->wake_fd, &one, sizeof(one)) < 0) {
		/* The counter is full: the thread has wakeups pending anyway. */
	}
}

static bool port_published(const struct slirp_backend *b, uint8_t proto, uint16_t port)
{
	for (unsigned i = 0; i < b->port_count; i++)
		if (b->ports[i].guest_port == port && b->ports[i].udp == (proto == IPPROTO_UDP))
			return true;
	return false;
}

/* ---- libslirp's callbacks (called with the lock held) ---- */

static void deliver(void *opaque, const uint8_t *frame, size_t len)
{
	struct slirp_backend *b = opaque;
	if (b->deliver_fn)
		b->deliver_fn(b->deliver_opaque, frame, len);
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct slirp_backend *b = opaque;
	struct frame_ipv4 f;
	if (b->egress && frame_parse_ipv4(buf, len, &f))
		inbound_flows_note(&b->flows, &f, port_published(b, f.proto, f.dst_port), now_ns());
	deliver(b, buf, len);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	(void)msg;
	(void)opaque;
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	return (int64_t)now_ns();
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct slirp_backend *b = opaque;
	struct slirp_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->id = id;
	t->cb_opaque = cb_opaque;
	t->expire_ms = -1;
	t->next = b->timers;
	b->timers = t;
	return t;
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	/* Only for SlirpConfig versions before 4: never called. */
	(void)cb;
	(void)cb_opaque;
	(void)opaque;
	return NULL;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct slirp_backend *b = opaque;
	for (struct slirp_timer **p = &b->timers; *p; p = &(*p)->next) {
		if (*p == timer) {
			*p = (*p)->next;
			free(timer);
			return;
		}
	}
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct slirp_timer *t = timer;
	if (t)
		t->expire_ms = expire_ms;
	wake(opaque);
}

static void cb_register_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void cb_notify(void *opaque)
{
	wake(opaque);
}

static const SlirpCb slirp_callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_new = cb_timer_new,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_register_poll_fd,
	.notify = cb_notify,
	.timer_new_opaque = cb_timer_new_opaque,
};

static int reserve_poll(struct slirp_backend *b, size_t more)
{
	if (b->pfd_cap - b->pfd_count >= more)
		return 0;
	size_t cap = b->pfd_count + more + 64;
	struct pollfd *p = realloc(b->pfds, cap * sizeof(*p));
	if (!p)
		return -1;
	b->pfds = p;
	b->pfd_cap = cap;
	return 0;
}

static int add_poll(struct slirp_backend *b, int fd, short events)
{
	if (reserve_poll(b, 1) < 0)
		return -1;
	b->pfds[b->pfd_count] = (struct pollfd){ .fd = fd, .events = events };
	return (int)b->pfd_count++;
}

static int cb_add_poll(int fd, int events, void *opaque)
{
	short ev = 0;
	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	return add_poll(opaque, fd, ev);
}

static int cb_get_revents(int idx, void *opaque)
{
	struct slirp_backend *b = opaque;
	if (idx < 0 || (size_t)idx >= b->pfd_count)
		return 0;
	short rev = b->pfds[idx].revents;
	int r = 0;
	if (rev & POLLIN)
		r |= SLIRP_POLL_IN;
	if (rev & POLLOUT)
		r |= SLIRP_POLL_OUT;
	if (rev & POLLPRI)
		r |= SLIRP_POLL_PRI;
	if (rev & (POLLERR | POLLNVAL))
		r |= SLIRP_POLL_ERR;
	if (rev & POLLHUP)
		r |= SLIRP_POLL_HUP;
	return r;
}

/* ---- the poll thread ---- */

static uint32_t timers_timeout(const struct slirp_backend *b, uint32_t timeout)
{
	int64_t now_ms = (int64_t)(now_ns() / 1000000);
	for (const struct slirp_timer *t = b->timers; t; t = t->next) {
		if (t->expire_ms < 0)
			continue;
		int64_t left = t->expire_ms - now_ms;
		if (left < 0)
			left = 0;
		if ((uint64_t)left < timeout)
			timeout = (uint32_t)left;
	}
	return timeout;
}

static void run_expired_timers(struct slirp_backend *b)
{
	int64_t now_ms = (int64_t)(now_ns() / 1000000);
	bool fired;
	/* A handler may re-arm or free timers: rescan after each one. */
	do {
		fired = false;
		for (struct slirp_timer *t = b->timers; t; t = t->next) {
			if (t->expire_ms >= 0 && t->expire_ms <= now_ms) {
				t->expire_ms = -1;
				slirp_handle_timer(b->slirp, t->id, t->cb_opaque);
				fired = true;
				break;
			}
		}
	} while (fired);
}

static void *poll_thread(void *opaque)
{
	struct slirp_backend *b = opaque;
	pthread_mutex_lock(&b->lock);
	while (!b->stopping) {
		b->pfd_count = 0;
		uint32_t timeout = IDLE_POLL_MS;
		add_poll(b, b->wake_fd, POLLIN);
		slirp_pollfds_fill(b->slirp, &timeout, cb_add_poll, b);
		size_t dns_first = b->pfd_count, dns_count = 0;
		if (b->dns && reserve_poll(b, DNS_FORWARD_MAX_PENDING) == 0) {
			dns_count = dns_forward_poll_fill(b->dns, b->pfds + dns_first);
			b->pfd_count += dns_count;
		}
		timeout = timers_timeout(b, timeout);
		struct pollfd *pfds = b->pfds;
		size_t count = b->pfd_count;
		pthread_mutex_unlock(&b->lock);

		int n = poll(pfds, count, (int)timeout);

		pthread_mutex_lock(&b->lock);
		if (n > 0 && (pfds[0].revents & POLLIN)) {
			uint64_t value;
			if (read(b->wake_fd, &value, sizeof(value)) < 0) {
				/* Nothing pending after all. */
			}
		}
		slirp_pollfds_poll(b->slirp, n < 0, cb_get_revents, b);
		if (b->dns)
			dns_forward_poll_done(b->dns, pfds + dns_first, dns_count, now_ns(), deliver, b);
		run_expired_timers(b);
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

/* ---- the public side ---- */

static int publish(struct slirp_backend *b, const struct port_spec *p, capsa_error *err)
{
	char text[64];
	if (b->port_count >= NAT_MAX_PORTS)
		return error_set(err, E2BIG, "too many published ports: the limit is %d", NAT_MAX_PORTS);
	errno = 0;
	if (slirp_add_hostfwd(b->slirp, p->udp, p->host_addr, p->host_port, b->guest_addr, p->guest_port) < 0) {
		int e = errno ? errno : EADDRINUSE;
		return error_set(err, e, "cannot publish %s: %s (is the host port in use?)",
				 port_spec_format(p, text, sizeof(text)), strerror(e));
	}
	b->ports[b->port_count++] = *p;
	return 0;
}

struct slirp_backend *slirp_backend_create(const struct slirp_backend_config *cfg, capsa_error *err)
{
	struct slirp_backend *b = calloc(1, sizeof(*b));
	if (!b) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&b->lock, NULL);
	b->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->wake_fd < 0) {
		error_set_errno(err, errno, "eventfd");
		goto fail;
	}
	inet_pton(AF_INET, NAT_DNS_ADDR, &b->dns_addr);
	inet_pton(AF_INET, NAT_GUEST_ADDR, &b->guest_addr);

	SlirpConfig sc = {
		.version = 4,
		.in_enabled = true,
		/* No IPv6: its gateway (fec0::2) is the host's loopback too, in a
		 * range no policy names. */
		.in6_enabled = false,
	};
	inet_pton(AF_INET, NAT_NETWORK, &sc.vnetwork);
	inet_pton(AF_INET, NAT_NETMASK, &sc.vnetmask);
	inet_pton(AF_INET, NAT_GATEWAY_ADDR, &sc.vhost);
	sc.vdhcp_start = b->guest_addr;
	sc.vnameserver = b->dns_addr;

	if (cfg->egress && strcmp(cfg->egress, "allow_all") != 0) {
		b->egress = egress_policy_parse(cfg->egress, err);
		if (!b->egress) {
			error_prefix(err, "egress policy");
			goto fail;
		}
		if (egress_policy_allow_local(b->egress, NAT_DNS_ADDR, err) < 0)
			goto fail;
	}
	if (cfg->dns_server) {
		b->dns = dns_forward_create(cfg->dns_server, err);
		if (!b->dns)
			goto fail;
	}
	b->slirp = slirp_new(&sc, &slirp_callbacks, b);
	if (!b->slirp) {
		error_set(err, ENOMEM, "cannot set up the user-mode network");
		goto fail;
	}
	for (unsigned i = 0; i < cfg->port_count; i++)
		if (publish(b, &cfg->ports[i], err) < 0)
			goto fail;
	return b;
fail:
	slirp_backend_free(b);
	return NULL;
}

int slirp_backend_start(struct slirp_backend *b, slirp_backend_deliver_fn deliver, void *opaque, capsa_error *err)
{
	sigset_t all, old;
	pthread_mutex_lock(&b->lock);
	b->deliver_fn = deliver;
	b->deliver_opaque = opaque;
	pthread_mutex_unlock(&b->lock);
	/* Signals go to the process's own threads, never to this one. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&b->thread, NULL, poll_thread, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		return error_set(err, r, "cannot start the network thread");
	b->thread_started = true;
	return 0;
}

void slirp_backend_send_frame(void *opaque, const uint8_t *frame, size_t len)
{
	struct slirp_backend *b = opaque;
	struct frame_ipv4 f;
	bool parsed = (b->egress || b->dns) && frame_parse_ipv4(frame, len, &f);

	pthread_mutex_lock(&b->lock);
	if (b->dns && parsed && f.proto == IPPROTO_UDP && f.dst_port == 53 && !memcmp(f.dst, &b->dns_addr, 4)) {
		dns_forward_query(b->dns, &f, now_ns());
	} else if (!b->egress || egress_check_frame(b->egress, frame, len) ||
		   (parsed && inbound_flows_match(&b->flows, &f, now_ns()))) {
		slirp_input(b->slirp, frame, (int)len);
	}
	pthread_mutex_unlock(&b->lock);
	/* The frame may have opened a socket: poll it. */
	wake(b);
}

int slirp_backend_add_port(struct slirp_backend *b, const struct port_spec *p, capsa_error *err)
{
	pthread_mutex_lock(&b->lock);
	int r = publish(b, p, err);
	pthread_mutex_unlock(&b->lock);
	wake(b);
	return r;
}

void slirp_backend_stop(struct slirp_backend *b)
{
	if (!b || !b->thread_started)
		return;
	pthread_mutex_lock(&b->lock);
	b->stopping = true;
	pthread_mutex_unlock(&b->lock);
	wake(b);
	pthread_join(b->thread, NULL);
	b->thread_started = false;
}

void slirp_backend_free(struct slirp_backend *b)
{
	if (!b)
		return;
	slirp_backend_stop(b);
	if (b->slirp)
		slirp_cleanup(b->slirp);
	while (b->timers) {
		struct slirp_timer *t = b->timers;
		b->timers = t->next;
		free(t);
	}
	dns_forward_free(b->dns);
	egress_policy_free(b->egress);
	if (b->wake_fd >= 0)
		close(b->wake_fd);
	free(b->pfds);
	pthread_mutex_destroy(&b->lock);
	free(b);
}
