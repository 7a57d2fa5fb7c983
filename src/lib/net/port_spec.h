/* A published port: "[HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp]", as docker's
 * -p takes it. Without HOSTIP the port is published on every host IPv4
 * address (0.0.0.0), as docker does. */
#ifndef CAPSA_NET_PORT_SPEC_H
#define CAPSA_NET_PORT_SPEC_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa.h"

struct port_spec {
	bool udp;
	struct in_addr host_addr;
	uint16_t host_port;   /* 1..65535 */
	uint16_t guest_port;  /* 1..65535 */
};

int port_spec_parse(const char *text, struct port_spec *out, capsa_error *err);

/* "0.0.0.0:8080->80/tcp" into buf; returns buf. */
const char *port_spec_format(const struct port_spec *p, char *buf, size_t size);

#endif
