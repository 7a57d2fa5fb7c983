/* The capsa_vm_config setters for networking. Specs are checked when set,
 * so that a typo fails before anything boots. */
#include "net/net_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/config.h"
#include "net/egress.h"
#include "util/error.h"

void net_config_clear(struct net_config *c)
{
	free(c->egress);
	c->egress = NULL;
}

int net_config_copy(struct net_config *dst, const struct net_config *src)
{
	*dst = *src;
	dst->egress = src->egress ? strdup(src->egress) : NULL;
	return src->egress && !dst->egress ? -1 : 0;
}

CAPSA_API int capsa_vm_config_set_network(capsa_vm_config *cfg, const char *mode, capsa_error *err)
{
	struct net_config *c = &cfg->net;
	if (mode && !strcmp(mode, "nat")) {
		c->mode = NET_MODE_NAT;
	} else if (mode && !strcmp(mode, "none")) {
		c->mode = NET_MODE_NONE;
	} else if (mode && !strncmp(mode, "tap:", 4)) {
		const char *name = mode + 4;
		if (!name[0] || strlen(name) > NET_TAP_NAME_MAX || strpbrk(name, "/ \t\n:"))
			return error_set(err, EINVAL, "network '%s': the TAP device name must be 1-%d characters "
					 "without '/', ':' or spaces", mode, NET_TAP_NAME_MAX);
		c->mode = NET_MODE_TAP;
		strcpy(c->tap_name, name);
	} else {
		return error_set(err, EINVAL, "network '%s' is not one of nat, none, tap:NAME", mode ? mode : "");
	}
	return 0;
}

CAPSA_API int capsa_vm_config_add_port(capsa_vm_config *cfg, const char *spec, capsa_error *err)
{
	struct net_config *c = &cfg->net;
	struct port_spec p;
	if (port_spec_parse(spec, &p, err) < 0)
		return -1;
	if (c->port_count >= NET_MAX_PORTS)
		return error_set(err, E2BIG, "too many published ports: the limit is %d", NET_MAX_PORTS);
	for (unsigned i = 0; i < c->port_count; i++) {
		const struct port_spec *q = &c->ports[i];
		if (q->udp == p.udp && q->host_port == p.host_port &&
		    (q->host_addr.s_addr == p.host_addr.s_addr || !q->host_addr.s_addr || !p.host_addr.s_addr))
			return error_set(err, EEXIST, "host port %u/%s is published twice", p.host_port,
					 p.udp ? "udp" : "tcp");
	}
	c->ports[c->port_count++] = p;
	return 0;
}

CAPSA_API int capsa_vm_config_set_egress(capsa_vm_config *cfg, const char *policy, capsa_error *err)
{
	struct egress_policy *parsed = egress_policy_parse(policy ? policy : "", err);
	if (!parsed)
		return error_prefix(err, "egress policy");
	egress_policy_free(parsed);
	char *copy = strdup(policy);
	if (!copy)
		return error_set(err, ENOMEM, "out of memory");
	free(cfg->net.egress);
	cfg->net.egress = copy;
	return 0;
}
