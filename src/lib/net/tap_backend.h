/* A virtio-net backend on an existing host TAP device (--network tap:NAME):
 * frames go to and come from the host's kernel as they are, and the host
 * bridges or routes them; the guest's interface is left for the workload
 * (or a DHCP client in it) to configure. Opening the device needs
 * CAP_NET_ADMIN, or a persistent TAP device owned by the caller
 * (ip tuntap add NAME mode tap user USER). The egress policy applies as
 * with the NAT. */
#ifndef CAPSA_NET_TAP_BACKEND_H
#define CAPSA_NET_TAP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "capsa.h"

struct virtio_net;
struct tap_backend;

struct tap_backend *tap_backend_open(const char *name, const char *egress, capsa_error *err);
int tap_backend_start(struct tap_backend *t, struct virtio_net *dev, capsa_error *err);
void tap_backend_send_frame(void *opaque, const uint8_t *frame, size_t len);
/* NULL is fine for both. */
void tap_backend_stop(struct tap_backend *t);
void tap_backend_free(struct tap_backend *t);

#endif
