#include "net/tap_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/virtio_net.h"
#include "net/egress.h"
#include "util/error.h"

struct tap_backend {
	int fd;
	int stop_fd;
	struct egress_policy *egress;  /* NULL: allow everything */
	struct virtio_net *dev;
	pthread_t thread;
	bool thread_started;
	uint8_t buf[VIRTIO_NET_MAX_FRAME];
};

struct tap_backend *tap_backend_open(const char *name, const char *egress, capsa_error *err)
{
	struct tap_backend *t = calloc(1, sizeof(*t));
	if (!t) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	t->fd = t->stop_fd = -1;
	if (egress && strcmp(egress, "allow_all") != 0) {
		t->egress = egress_policy_parse(egress, err);
		if (!t->egress) {
			error_prefix(err, "egress policy");
			goto fail;
		}
	}
	t->fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (t->fd < 0) {
		error_set_errno(err, errno, "open /dev/net/tun");
		goto fail;
	}
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		error_set_errno(err, errno, "TAP device %s (it needs CAP_NET_ADMIN, or a persistent device owned by "
				"this user: ip tuntap add %s mode tap user $USER)", name, name);
		goto fail;
	}
	t->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (t->stop_fd < 0) {
		error_set_errno(err, errno, "eventfd");
		goto fail;
	}
	return t;
fail:
	tap_backend_free(t);
	return NULL;
}

static void *tap_thread(void *opaque)
{
	struct tap_backend *t = opaque;
	for (;;) {
		struct pollfd pfd[2] = { { .fd = t->fd, .events = POLLIN }, { .fd = t->stop_fd, .events = POLLIN } };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			break;
		ssize_t n = read(t->fd, t->buf, sizeof(t->buf));
		if (n > 0)
			virtio_net_receive(t->dev, t->buf, (size_t)n);
	}
	return NULL;
}

int tap_backend_start(struct tap_backend *t, struct virtio_net *dev, capsa_error *err)
{
	sigset_t all, old;
	t->dev = dev;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&t->thread, NULL, tap_thread, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		return error_set(err, r, "cannot start the TAP device's thread");
	t->thread_started = true;
	return 0;
}

void tap_backend_send_frame(void *opaque, const uint8_t *frame, size_t len)
{
	struct tap_backend *t = opaque;
	if (t->egress && !egress_check_frame(t->egress, frame, len))
		return;
	/* A full device queue drops the frame, as a congested link would. */
	if (write(t->fd, frame, len) < 0) {
	}
}

void tap_backend_stop(struct tap_backend *t)
{
	if (!t || !t->thread_started)
		return;
	uint64_t one = 1;
	if (write(t->stop_fd, &one, sizeof(one)) < 0) {
	}
	pthread_join(t->thread, NULL);
	t->thread_started = false;
}

void tap_backend_free(struct tap_backend *t)
{
	if (!t)
		return;
	tap_backend_stop(t);
	if (t->fd >= 0)
		close(t->fd);
	if (t->stop_fd >= 0)
		close(t->stop_fd);
	egress_policy_free(t->egress);
	free(t);
}
