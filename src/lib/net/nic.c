#include "net/nic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio_net.h"
#include "net/slirp_backend.h"
#include "net/tap_backend.h"
#include "util/error.h"

/* QEMU's default: locally administered, recognisable in a capture. */
static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

struct nic {
	struct virtio_net *dev;
	struct slirp_backend *nat;
	struct tap_backend *tap;
};

bool nic_wanted(const struct net_config *cfg)
{
	return cfg->mode != NET_MODE_NONE;
}

/* The kernel's IP autoconfiguration, static: it brings eth0 up before
 * init runs and lists the DNS server in /proc/net/pnp, which init copies
 * to /etc/resolv.conf. */
static int append_ip_config(char *cmdline, size_t size, capsa_error *err)
{
	size_t used = strlen(cmdline);
	int n = snprintf(cmdline + used, size - used, " ip=%s::%s:%s::eth0:off:%s", NAT_GUEST_ADDR, NAT_GATEWAY_ADDR,
			 NAT_NETMASK, NAT_DNS_ADDR);
	if (n < 0 || (size_t)n >= size - used)
		return error_set(err, E2BIG, "kernel command line too long");
	return 0;
}

static void deliver_to_guest(void *opaque, const uint8_t *frame, size_t len)
{
	virtio_net_receive(opaque, frame, len);
}

static int create_nat(struct nic *nic, const struct vm_device_env *env, uint64_t base, uint32_t gsi,
		      const struct net_config *cfg, capsa_error *err)
{
	const char *dns = getenv("CAPSA_DNS_SERVER");
	struct slirp_backend_config sc = {
		.ports = cfg->ports,
		.port_count = cfg->port_count,
		.egress = cfg->egress,
		.dns_server = dns && dns[0] ? dns : NULL,
	};
	nic->nat = slirp_backend_create(&sc, err);
	if (!nic->nat)
		return -1;
	nic->dev = virtio_net_create(env, base, gsi, guest_mac, slirp_backend_send_frame, nic->nat, err);
	if (!nic->dev)
		return -1;
	return slirp_backend_start(nic->nat, deliver_to_guest, nic->dev, err);
}

static int create_tap(struct nic *nic, const struct vm_device_env *env, uint64_t base, uint32_t gsi,
		      const struct net_config *cfg, capsa_error *err)
{
	if (cfg->port_count)
		return error_set(err, EINVAL, "published ports need the NAT network: with a TAP device, route to "
					      "the guest on the host instead");
	nic->tap = tap_backend_open(cfg->tap_name, cfg->egress, err);
	if (!nic->tap)
		return -1;
	nic->dev = virtio_net_create(env, base, gsi, guest_mac, tap_backend_send_frame, nic->tap, err);
	if (!nic->dev)
		return -1;
	return tap_backend_start(nic->tap, nic->dev, err);
}

struct nic *nic_create(const struct vm_device_env *env, uint64_t mmio_base, uint32_t gsi,
		       const struct net_config *cfg, char *cmdline, size_t cmdline_size, capsa_error *err)
{
	struct nic *nic = calloc(1, sizeof(*nic));
	if (!nic) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	int r;
	if (cfg->mode == NET_MODE_TAP)
		r = create_tap(nic, env, mmio_base, gsi, cfg, err);
	else
		r = create_nat(nic, env, mmio_base, gsi, cfg, err) < 0 ? -1 :
		    append_ip_config(cmdline, cmdline_size, err);
	if (r < 0) {
		nic_destroy(nic);
		error_prefix(err, "network");
		return NULL;
	}
	return nic;
}

int nic_add_port(struct nic *nic, const char *spec, capsa_error *err)
{
	struct port_spec p;
	if (port_spec_parse(spec, &p, err) < 0)
		return -1;
	if (!nic || !nic->nat)
		return error_set(err, ENOTSUP, "publishing a port needs the VM on the NAT network");
	return slirp_backend_add_port(nic->nat, &p, err);
}

void nic_destroy(struct nic *nic)
{
	if (!nic)
		return;
	/* Backends stop delivering first; they take the device's frames
	 * until it is gone. */
	slirp_backend_stop(nic->nat);
	tap_backend_stop(nic->tap);
	virtio_net_destroy(nic->dev);
	slirp_backend_free(nic->nat);
	tap_backend_free(nic->tap);
	free(nic);
}

struct virtio_mmio *nic_transport(struct nic *nic)
{
	return virtio_net_transport(nic->dev);
}
