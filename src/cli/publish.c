#include "publish.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"

/* A port the kernel considers free now. Another process could take it
 * before the VM binds it; the VM then fails to start, saying so. */
static int free_host_port(bool udp)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr = { htonl(INADDR_ANY) } };
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	int port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
		port = ntohs(addr.sin_port);
	close(fd);
	return port;
}

/* "80", "80/tcp" or "53/udp" (the image's words) to a port and protocol. */
static int parse_exposed(const char *text, unsigned *port, bool *udp)
{
	char *end;
	unsigned long value = strtoul(text, &end, 10);
	if (end == text || value < 1 || value > 65535)
		return -1;
	if (!strcmp(end, "/udp"))
		*udp = true;
	else if (!*end || !strcmp(end, "/tcp"))
		*udp = false;
	else
		return -1;
	*port = (unsigned)value;
	return 0;
}

int cli_publish_all(capsa_vm_config *cfg, const char *image)
{
	capsa_error err = { 0 };
	char **ports = NULL;
	int r = -1;

	if (!image) {
		cli_error("-P publishes the ports an image exposes: it needs an image, not --rootfs");
		return -1;
	}
	capsa_image_store *store = cli_open_store();
	if (!store)
		return -1;
	if (capsa_image_exposed_ports(store, image, &ports, &err) < 0) {
		cli_error_from(&err);
		goto out;
	}
	for (char **p = ports; *p; p++) {
		unsigned guest_port;
		bool udp;
		char spec[64];
		if (parse_exposed(*p, &guest_port, &udp) < 0) {
			fprintf(stderr, "capsa: ignoring the image's exposed port '%s' (not PORT[/tcp|/udp])\n", *p);
			continue;
		}
		int host_port = free_host_port(udp);
		if (host_port < 0) {
			cli_error("cannot find a free host port for %s", *p);
			goto out;
		}
		snprintf(spec, sizeof(spec), "%d:%u/%s", host_port, guest_port, udp ? "udp" : "tcp");
		if (capsa_vm_config_add_port(cfg, spec, &err) < 0) {
			cli_error_from(&err);
			goto out;
		}
		fprintf(stderr, "%u/%s -> 0.0.0.0:%d\n", guest_port, udp ? "udp" : "tcp", host_port);
	}
	r = 0;
out:
	capsa_strv_free(ports);
	capsa_image_store_close(store);
	return r;
}
