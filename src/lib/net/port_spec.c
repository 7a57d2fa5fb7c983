#include "net/port_spec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define PORT_SPEC_MAX 64

static int parse_port(const char *text, uint16_t *port)
{
	if (text[0] < '0' || text[0] > '9' || strlen(text) > 5)
		return -1;
	char *end;
	unsigned long value = strtoul(text, &end, 10);
	if (*end || value < 1 || value > 65535)
		return -1;
	*port = (uint16_t)value;
	return 0;
}

int port_spec_parse(const char *text, struct port_spec *out, capsa_error *err)
{
	char buf[PORT_SPEC_MAX];
	struct port_spec p = { .host_addr = { htonl(INADDR_ANY) } };

	if (!text || strlen(text) >= sizeof(buf))
		goto bad;
	strcpy(buf, text);
	char *proto = strchr(buf, '/');
	if (proto) {
		*proto++ = '\0';
		if (!strcmp(proto, "udp"))
			p.udp = true;
		else if (strcmp(proto, "tcp") != 0)
			return error_set(err, EINVAL, "port '%s': the protocol must be tcp or udp", text);
	}
	char *guest = strrchr(buf, ':');
	if (!guest)
		goto bad;
	*guest++ = '\0';
	char *host = strrchr(buf, ':');
	if (host) {
		*host++ = '\0';
		if (inet_pton(AF_INET, buf, &p.host_addr) != 1)
			return error_set(err, EINVAL, "port '%s': '%s' is not a host IPv4 address", text, buf);
	} else {
		host = buf;
	}
	if (parse_port(host, &p.host_port) < 0 || parse_port(guest, &p.guest_port) < 0)
		goto bad;
	*out = p;
	return 0;
bad:
	return error_set(err, EINVAL, "port '%s' is not [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp] with ports 1-65535",
			 text ? text : "");
}

const char *port_spec_format(const struct port_spec *p, char *buf, size_t size)
{
	char addr[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &p->host_addr, addr, sizeof(addr));
	snprintf(buf, size, "%s:%u->%u/%s", addr, p->host_port, p->guest_port, p->udp ? "udp" : "tcp");
	return buf;
}
