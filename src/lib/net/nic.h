/* The guest's network interface: a virtio-net device and the backend its
 * frames go through (the user-mode NAT, or a host TAP device), set up from
 * the config's network part. */
#ifndef CAPSA_NET_NIC_H
#define CAPSA_NET_NIC_H

#include <stddef.h>
#include <stdint.h>

#include "capsa.h"
#include "devices/device_env.h"
#include "net/net_config.h"

struct nic;

/* Whether the config asks for a network device at all. */
bool nic_wanted(const struct net_config *cfg);

/* Creates the device at [mmio_base, +window) on gsi and starts its
 * backend, and appends to cmdline what the guest kernel needs to bring
 * the interface up (address, route, DNS server). */
struct nic *nic_create(const struct vm_device_env *env, uint64_t mmio_base, uint32_t gsi,
		       const struct net_config *cfg, char *cmdline, size_t cmdline_size, capsa_error *err);

/* Publishes a port ("[HOSTIP:]HOSTPORT:GUESTPORT[/udp]") while the VM runs. */
int nic_add_port(struct nic *nic, const char *spec, capsa_error *err);

/* NULL is fine. Call once no vCPU runs. */
void nic_destroy(struct nic *nic);

struct virtio_mmio;
/* The NIC's virtio transport, for snapshots (the network stack behind it
 * starts afresh on restore). */
struct virtio_mmio *nic_transport(struct nic *nic);

#endif
