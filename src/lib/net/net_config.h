/* The network part of a capsa_vm_config: how the guest is connected, the
 * ports published on the host, and where the guest may send traffic. */
#ifndef CAPSA_NET_NET_CONFIG_H
#define CAPSA_NET_NET_CONFIG_H

#include "net/port_spec.h"

#define NET_MAX_PORTS 64
#define NET_TAP_NAME_MAX 15  /* IFNAMSIZ - 1 */

enum net_mode {
	NET_MODE_NAT,   /* the default: user-mode NAT (libslirp), no host setup */
	NET_MODE_NONE,  /* no network device; loopback only */
	NET_MODE_TAP,   /* an existing host TAP device */
};

struct net_config {
	enum net_mode mode;
	char tap_name[NET_TAP_NAME_MAX + 1];
	struct port_spec ports[NET_MAX_PORTS];
	unsigned port_count;
	char *egress;   /* an --egress spec (net/egress.h), NULL: allow_all */
};

void net_config_clear(struct net_config *c);
/* Makes dst a copy of src; on failure (ENOMEM) dst holds nothing of src's
 * and can still be cleared. */
int net_config_copy(struct net_config *dst, const struct net_config *src);

#endif
