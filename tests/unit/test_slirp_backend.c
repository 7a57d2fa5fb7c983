/* The user-mode NAT without a VM: the test plays the guest, sending
 * Ethernet frames into the backend and collecting what it delivers, with
 * UDP sockets on the host's loopback as the outside world. Also the small
 * pieces: published port specs, frames, the inbound flow table. */
#include <setjmp.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/frame.h"
#include "net/inbound_flows.h"
#include "net/port_spec.h"
#include "net/slirp_backend.h"

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t gateway_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
static const uint8_t guest_ip[4] = { 10, 0, 2, 15 };
static const uint8_t gateway_ip[4] = { 10, 0, 2, 2 };
static const uint8_t dns_ip[4] = { 10, 0, 2, 3 };

/* ---- port specs ---- */

static void test_port_specs(void **state)
{
	(void)state;
	struct port_spec p;
	capsa_error err = { 0 };
	char text[64];

	assert_int_equal(port_spec_parse("8080:80", &p, &err), 0);
	assert_false(p.udp);
	assert_int_equal(p.host_port, 8080);
	assert_int_equal(p.guest_port, 80);
	assert_int_equal(p.host_addr.s_addr, htonl(INADDR_ANY));
	assert_string_equal(port_spec_format(&p, text, sizeof(text)), "0.0.0.0:8080->80/tcp");

	assert_int_equal(port_spec_parse("127.0.0.1:5353:53/udp", &p, &err), 0);
	assert_true(p.udp);
	assert_int_equal(p.host_addr.s_addr, htonl(INADDR_LOOPBACK));
	assert_int_equal(port_spec_parse("1:65535/tcp", &p, &err), 0);

	const char *bad[] = { "80", "0:80", "80:0", "65536:80", "8080:80/sctp", "x:80:80", "1:2:3:4", ":80", "80:",
			      "-1:80", "+80:80", "8080:80/", "::1:80:80", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = (capsa_error){ 0 };
		if (port_spec_parse(bad[i], &p, &err) == 0)
			fail_msg("'%s' was accepted", bad[i]);
		assert_int_equal(err.code, EINVAL);
	}
}

/* ---- frames ---- */

static void test_frame_round_trip(void **state)
{
	(void)state;
	uint8_t buf[128];
	struct frame_ipv4 f;
	size_t len = frame_build_udp(buf, guest_mac, gateway_mac, gateway_ip, 53, guest_ip, 4000,
				     (const uint8_t *)"hello", 5);
	assert_int_equal(len, 14 + 20 + 8 + 5);
	assert_true(frame_parse_ipv4(buf, len, &f));
	assert_int_equal(f.proto, IPPROTO_UDP);
	assert_int_equal(f.src_port, 53);
	assert_int_equal(f.dst_port, 4000);
	assert_memory_equal(f.src, gateway_ip, 4);
	assert_memory_equal(f.dst, guest_ip, 4);
	assert_memory_equal(f.dst_mac, guest_mac, 6);
	assert_int_equal(f.payload_len, 5);
	assert_memory_equal(f.payload, "hello", 5);
	/* Truncated or lying lengths are refused. */
	for (size_t cut = 0; cut < len; cut++)
		assert_false(frame_parse_ipv4(buf, cut, &f));
	buf[14 + 20 + 5] = 200;  /* UDP length beyond the packet */
	assert_false(frame_parse_ipv4(buf, len, &f));
}

/* ---- inbound flows ---- */

static struct frame_ipv4 flow_frame(uint8_t proto, const uint8_t src[4], uint16_t sport, const uint8_t dst[4],
				    uint16_t dport, uint8_t flags)
{
	struct frame_ipv4 f = { .proto = proto, .src_port = sport, .dst_port = dport, .tcp_flags = flags };
	memcpy(f.src, src, 4);
	memcpy(f.dst, dst, 4);
	return f;
}

static void test_inbound_flows(void **state)
{
	(void)state;
	static struct inbound_flows t;
	const uint8_t peer[4] = { 192, 168, 1, 5 }, other[4] = { 192, 168, 1, 6 };

	struct frame_ipv4 in = flow_frame(IPPROTO_TCP, peer, 40000, guest_ip, 80, FRAME_TCP_SYN);
	inbound_flows_note(&t, &in, true, 1000);
	struct frame_ipv4 reply = flow_frame(IPPROTO_TCP, guest_ip, 80, peer, 40000, FRAME_TCP_SYN | FRAME_TCP_ACK);
	assert_true(inbound_flows_match(&t, &reply, 2000));
	/* Not a new connection from the published port, nor another peer,
	 * port or protocol. */
	struct frame_ipv4 open = flow_frame(IPPROTO_TCP, guest_ip, 80, peer, 40000, FRAME_TCP_SYN);
	assert_false(inbound_flows_match(&t, &open, 2000));
	struct frame_ipv4 elsewhere = flow_frame(IPPROTO_TCP, guest_ip, 80, other, 40000, FRAME_TCP_ACK);
	assert_false(inbound_flows_match(&t, &elsewhere, 2000));
	struct frame_ipv4 udp = flow_frame(IPPROTO_UDP, guest_ip, 80, peer, 40000, 0);
	assert_false(inbound_flows_match(&t, &udp, 2000));
	/* Frames to ports that are not published record nothing. */
	struct frame_ipv4 unpublished = flow_frame(IPPROTO_UDP, peer, 53, guest_ip, 5000, 0);
	inbound_flows_note(&t, &unpublished, false, 3000);
	struct frame_ipv4 answer = flow_frame(IPPROTO_UDP, guest_ip, 5000, peer, 53, 0);
	assert_false(inbound_flows_match(&t, &answer, 3000));
	/* Idle flows expire. */
	assert_false(inbound_flows_match(&t, &reply, 2000 + INBOUND_FLOW_IDLE_NS + 1));
	/* The table stays bounded when flooded. */
	for (unsigned i = 0; i < 3 * INBOUND_FLOWS_MAX; i++) {
		struct frame_ipv4 f = flow_frame(IPPROTO_UDP, peer, (uint16_t)(1000 + i), guest_ip, 53, 0);
		inbound_flows_note(&t, &f, true, 5000 + i);
	}
	struct frame_ipv4 last = flow_frame(IPPROTO_UDP, guest_ip, 53, peer, 1000 + 3 * INBOUND_FLOWS_MAX - 1, 0);
	assert_true(inbound_flows_match(&t, &last, 10000));
}

/* ---- the NAT ---- */

struct guest {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t frames[16][2048];
	size_t lens[16];
	unsigned count;
};

static void deliver(void *opaque, const uint8_t *frame, size_t len)
{
	struct guest *g = opaque;
	pthread_mutex_lock(&g->lock);
	if (g->count < 16 && len <= sizeof(g->frames[0])) {
		memcpy(g->frames[g->count], frame, len);
		g->lens[g->count++] = len;
		pthread_cond_broadcast(&g->cond);
	}
	pthread_mutex_unlock(&g->lock);
}

/* Waits for a UDP frame to the guest's port; copies its payload. */
static bool guest_wait_udp(struct guest *g, uint16_t port, struct frame_ipv4 *out, char *payload, size_t size)
{
	struct timespec deadline;
	bool found = false;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 3;
	pthread_mutex_lock(&g->lock);
	for (unsigned seen = 0; !found;) {
		for (; seen < g->count && !found; seen++) {
			if (frame_parse_ipv4(g->frames[seen], g->lens[seen], out) && out->proto == IPPROTO_UDP &&
			    out->dst_port == port && out->payload_len < size) {
				memcpy(payload, out->payload, out->payload_len);
				payload[out->payload_len] = '\0';
				found = true;
			}
		}
		if (!found && pthread_cond_timedwait(&g->cond, &g->lock, &deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&g->lock);
	return found;
}

static struct guest *guest_new(void)
{
	struct guest *g = calloc(1, sizeof(*g));
	assert_non_null(g);
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	return g;
}

static void guest_free(struct guest *g)
{
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
	free(g);
}

/* "Who has 10.0.2.2, tell 10.0.2.15": the NAT learns the guest's MAC. */
static void guest_send_arp(struct slirp_backend *b)
{
	uint8_t f[60] = { 0 };
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08, f[13] = 0x06;
	f[14] = 0, f[15] = 1, f[16] = 0x08, f[17] = 0, f[18] = 6, f[19] = 4, f[20] = 0, f[21] = 1;
	memcpy(f + 22, guest_mac, 6);
	memcpy(f + 28, guest_ip, 4);
	memcpy(f + 38, gateway_ip, 4);
	slirp_backend_send_frame(b, f, sizeof(f));
}

static void guest_send_udp(struct slirp_backend *b, uint16_t sport, const uint8_t dst[4], uint16_t dport,
			   const char *data)
{
	uint8_t f[256];
	size_t len = frame_build_udp(f, gateway_mac, guest_mac, guest_ip, sport, dst, dport, (const uint8_t *)data,
				     strlen(data));
	slirp_backend_send_frame(b, f, len);
}

/* A UDP socket on 127.0.0.1, its port in *port. */
static int host_udp_socket(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = { htonl(INADDR_LOOPBACK) } };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Receives a datagram within timeout_ms; -1 when none came. */
static ssize_t host_recv(int fd, char *buf, size_t size, struct sockaddr_in *from, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	socklen_t len = sizeof(*from);
	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	ssize_t n = recvfrom(fd, buf, size - 1, 0, (struct sockaddr *)from, &len);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static struct slirp_backend *start_nat(struct guest *g, const char *egress, const char *dns,
				       const struct port_spec *ports, unsigned port_count)
{
	capsa_error err = { 0 };
	struct slirp_backend_config cfg = { .ports = ports, .port_count = port_count, .egress = egress,
					    .dns_server = dns };
	struct slirp_backend *b = slirp_backend_create(&cfg, &err);
	if (!b)
		fail_msg("slirp_backend_create: %s", err.message);
	assert_int_equal(slirp_backend_start(b, deliver, g, &err), 0);
	guest_send_arp(b);
	return b;
}

/* The gateway is the host's loopback; UDP goes there and back. */
static void test_udp_echo_through_gateway(void **state)
{
	(void)state;
	struct guest *g = guest_new();
	uint16_t port;
	int fd = host_udp_socket(&port);
	struct slirp_backend *b = start_nat(g, NULL, NULL, NULL, 0);
	char buf[64];
	struct sockaddr_in from;
	struct frame_ipv4 f;

	guest_send_udp(b, 40000, gateway_ip, port, "ping");
	assert_int_equal(host_recv(fd, buf, sizeof(buf), &from, 3000), 4);
	assert_string_equal(buf, "ping");
	assert_int_equal(sendto(fd, "pong", 4, 0, (struct sockaddr *)&from, sizeof(from)), 4);
	assert_true(guest_wait_udp(g, 40000, &f, buf, sizeof(buf)));
	assert_string_equal(buf, "pong");
	assert_memory_equal(f.src, gateway_ip, 4);
	assert_int_equal(f.src_port, port);

	slirp_backend_free(b);
	close(fd);
	guest_free(g);
}

/* deny_private: the host's loopback behind the gateway is private. */
static void test_deny_private_refuses_gateway(void **state)
{
	(void)state;
	struct guest *g = guest_new();
	uint16_t port;
	int fd = host_udp_socket(&port);
	struct slirp_backend *b = start_nat(g, "deny_private", NULL, NULL, 0);
	char buf[64];
	struct sockaddr_in from;

	guest_send_udp(b, 40000, gateway_ip, port, "ping");
	const uint8_t metadata[4] = { 169, 254, 169, 254 };
	guest_send_udp(b, 40001, metadata, 80, "metadata");
	assert_int_equal(host_recv(fd, buf, sizeof(buf), &from, 500), -1);

	slirp_backend_free(b);
	close(fd);
	guest_free(g);
}

/* A published UDP port: the host reaches the guest, and the guest's
 * answer passes even though deny_private refuses its destination. */
static void test_published_port_answers_pass_egress(void **state)
{
	(void)state;
	struct guest *g = guest_new();
	uint16_t host_port, client_port;
	int probe = host_udp_socket(&host_port);
	close(probe);  /* a free port for the NAT to bind */
	int client = host_udp_socket(&client_port);
	struct port_spec p;
	char spec[64], buf[64];
	capsa_error err = { 0 };
	struct frame_ipv4 f;
	struct sockaddr_in from;

	snprintf(spec, sizeof(spec), "127.0.0.1:%u:5000/udp", host_port);
	assert_int_equal(port_spec_parse(spec, &p, &err), 0);
	struct slirp_backend *b = start_nat(g, "deny_private", NULL, &p, 1);
	/* The same port again cannot be bound. */
	assert_int_equal(slirp_backend_add_port(b, &p, &err), -1);
	assert_non_null(strstr(err.message, "cannot publish"));

	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(host_port),
				  .sin_addr = { htonl(INADDR_LOOPBACK) } };
	assert_int_equal(sendto(client, "hello", 5, 0, (struct sockaddr *)&to, sizeof(to)), 5);
	assert_true(guest_wait_udp(g, 5000, &f, buf, sizeof(buf)));
	assert_string_equal(buf, "hello");
	assert_memory_equal(f.src, gateway_ip, 4);
	guest_send_udp(b, 5000, f.src, f.src_port, "world");
	assert_int_equal(host_recv(client, buf, sizeof(buf), &from, 3000), 5);
	assert_string_equal(buf, "world");
	/* Another port of the guest still cannot reach the gateway. */
	guest_send_udp(b, 5001, f.src, f.src_port, "sneak");
	assert_int_equal(host_recv(client, buf, sizeof(buf), &from, 300), -1);

	slirp_backend_free(b);
	close(client);
	guest_free(g);
}

/* Queries to 10.0.2.3 go to the configured server, even under
 * deny_private, and its answer comes back from 10.0.2.3:53. */
static void test_dns_forward(void **state)
{
	(void)state;
	struct guest *g = guest_new();
	uint16_t port;
	int server = host_udp_socket(&port);
	char dns[32], buf[64];
	struct sockaddr_in from;
	struct frame_ipv4 f;

	snprintf(dns, sizeof(dns), "127.0.0.1:%u", port);
	struct slirp_backend *b = start_nat(g, "deny_private", dns, NULL, 0);
	guest_send_udp(b, 33333, dns_ip, 53, "query");
	assert_int_equal(host_recv(server, buf, sizeof(buf), &from, 3000), 5);
	assert_string_equal(buf, "query");
	assert_int_equal(sendto(server, "answer", 6, 0, (struct sockaddr *)&from, sizeof(from)), 6);
	assert_true(guest_wait_udp(g, 33333, &f, buf, sizeof(buf)));
	assert_string_equal(buf, "answer");
	assert_memory_equal(f.src, dns_ip, 4);
	assert_int_equal(f.src_port, 53);
	assert_memory_equal(f.dst_mac, guest_mac, 6);

	slirp_backend_free(b);
	close(server);
	guest_free(g);
}

static void test_bad_configs(void **state)
{
	(void)state;
	capsa_error err = { 0 };
	struct slirp_backend_config cfg = { .egress = "deny_private,oops" };
	assert_null(slirp_backend_create(&cfg, &err));
	assert_non_null(strstr(err.message, "egress"));
	cfg = (struct slirp_backend_config){ .dns_server = "localhost" };
	assert_null(slirp_backend_create(&cfg, &err));
	assert_non_null(strstr(err.message, "CAPSA_DNS_SERVER"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_port_specs),
		cmocka_unit_test(test_frame_round_trip),
		cmocka_unit_test(test_inbound_flows),
		cmocka_unit_test(test_udp_echo_through_gateway),
		cmocka_unit_test(test_deny_private_refuses_gateway),
		cmocka_unit_test(test_published_port_answers_pass_egress),
		cmocka_unit_test(test_dns_forward),
		cmocka_unit_test(test_bad_configs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
