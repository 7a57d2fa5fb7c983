#include "net/dns_forward.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/error.h"

#define DNS_MAX_MESSAGE 4096

struct dns_query {
	int fd;               /* -1: free */
	uint64_t sent_ns;
	uint8_t guest_mac[6], server_mac[6];
	uint8_t guest_ip[4], server_ip[4];
	uint16_t guest_port, server_port;
};

struct dns_forward {
	struct sockaddr_in server;
	struct dns_query pending[DNS_FORWARD_MAX_PENDING];
	uint8_t frame[FRAME_ETH_LEN + FRAME_IPV4_LEN + FRAME_UDP_LEN + DNS_MAX_MESSAGE];
};

struct dns_forward *dns_forward_create(const char *server, capsa_error *err)
{
	char addr[INET_ADDRSTRLEN];
	unsigned long port = 53;
	const char *colon = strchr(server, ':');
	size_t addr_len = colon ? (size_t)(colon - server) : strlen(server);

	if (addr_len >= sizeof(addr))
		goto bad;
	memcpy(addr, server, addr_len);
	addr[addr_len] = '\0';
	if (colon) {
		char *end;
		port = strtoul(colon + 1, &end, 10);
		if (colon[1] < '0' || colon[1] > '9' || *end || port < 1 || port > 65535)
			goto bad;
	}
	struct dns_forward *d = calloc(1, sizeof(*d));
	if (!d) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	d->server.sin_family = AF_INET;
	d->server.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &d->server.sin_addr) != 1) {
		free(d);
		goto bad;
	}
	for (unsigned i = 0; i < DNS_FORWARD_MAX_PENDING; i++)
		d->pending[i].fd = -1;
	return d;
bad:
	error_set(err, EINVAL, "DNS server '%s' is not IPV4[:PORT] (from CAPSA_DNS_SERVER)", server);
	return NULL;
}

static void forget(struct dns_query *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}

void dns_forward_free(struct dns_forward *d)
{
	if (!d)
		return;
	for (unsigned i = 0; i < DNS_FORWARD_MAX_PENDING; i++)
		forget(&d->pending[i]);
	free(d);
}

void dns_forward_query(struct dns_forward *d, const struct frame_ipv4 *query, uint64_t now_ns)
{
	struct dns_query *q = NULL;
	for (unsigned i = 0; i < DNS_FORWARD_MAX_PENDING && !q; i++)
		if (d->pending[i].fd < 0)
			q = &d->pending[i];
	if (!q || query->payload_len == 0 || query->payload_len > DNS_MAX_MESSAGE)
		return;
	/* A socket per query: the answer's source and the guest's port are
	 * then known without parsing DNS. */
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (const struct sockaddr *)&d->server, sizeof(d->server)) < 0 ||
	    send(fd, query->payload, query->payload_len, 0) < 0) {
		close(fd);
		return;
	}
	*q = (struct dns_query){ .fd = fd, .sent_ns = now_ns, .guest_port = query->src_port,
				 .server_port = query->dst_port };
	memcpy(q->guest_mac, query->src_mac, 6);
	memcpy(q->server_mac, query->dst_mac, 6);
	memcpy(q->guest_ip, query->src, 4);
	memcpy(q->server_ip, query->dst, 4);
}

size_t dns_forward_poll_fill(struct dns_forward *d, struct pollfd *fds)
{
	size_t n = 0;
	for (unsigned i = 0; i < DNS_FORWARD_MAX_PENDING; i++)
		if (d->pending[i].fd >= 0)
			fds[n++] = (struct pollfd){ .fd = d->pending[i].fd, .events = POLLIN };
	return n;
}

void dns_forward_poll_done(struct dns_forward *d, const struct pollfd *fds, size_t n, uint64_t now_ns,
			   dns_forward_deliver_fn deliver, void *opaque)
{
	uint8_t answer[DNS_MAX_MESSAGE];
	for (unsigned i = 0; i < DNS_FORWARD_MAX_PENDING; i++) {
		struct dns_query *q = &d->pending[i];
		if (q->fd < 0)
			continue;
		bool ready = false;
		for (size_t j = 0; j < n; j++)
			if (fds[j].fd == q->fd && fds[j].revents)
				ready = true;
		if (ready) {
			ssize_t len = recv(q->fd, answer, sizeof(answer), 0);
			if (len > 0) {
				size_t frame_len = frame_build_udp(d->frame, q->guest_mac, q->server_mac, q->server_ip,
								   q->server_port, q->guest_ip, q->guest_port,
								   answer, (size_t)len);
				deliver(opaque, d->frame, frame_len);
			}
			if (len >= 0 || (errno != EAGAIN && errno != EINTR))
				forget(q);
		} else if (now_ns - q->sent_ns > DNS_FORWARD_TIMEOUT_NS) {
			forget(q);
		}
	}
}
