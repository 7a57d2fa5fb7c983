/* virtio-vsock (virtio 1.2, 5.10) over virtio-mmio, in userspace: stream
 * sockets between the guest (CID guest_cid) and host Unix sockets, the
 * channel the in-guest agent talks over. The host end is CID 2.
 *
 * Host side, Firecracker's convention (see vsock_relay.h):
 *  - a guest connecting to port P reaches the Unix socket listening at
 *    "<uds_path>_<P>"; nothing there means the guest's connect fails;
 *  - a host program connects to "<uds_path>", writes "CONNECT <P>\n", reads
 *    "OK <host port>\n" once the guest accepted on port P, then has a byte
 *    stream to it; if nothing listens on P in the guest the socket closes.
 *
 * One worker thread per device serves the rx, tx and event queues and all
 * the host sockets (epoll); guest kicks arrive by ioeventfd and interrupts
 * leave by irqfd, as for virtio-blk. */
#ifndef CAPSA_DEVICES_VIRTIO_VSOCK_H
#define CAPSA_DEVICES_VIRTIO_VSOCK_H

#include <stdint.h>

#include "capsa.h"
#include "devices/device_env.h"

#define VIRTIO_VSOCK_QUEUE_SIZE 256
#define VIRTIO_VSOCK_HOST_CID 2
#define VIRTIO_VSOCK_DEFAULT_GUEST_CID 3

struct virtio_vsock;

/* A vsock device at [mmio_base, mmio_base + VIRTIO_MMIO_WINDOW_SIZE)
 * interrupting on gsi, for a guest at guest_cid (3 .. 0xfffffffe). It
 * listens on the Unix socket uds_path (which must not be in use; a stale
 * socket file is replaced) and removes it when destroyed. uds_path may be
 * NULL: then the device has no host end and refuses every connection. */
struct virtio_vsock *virtio_vsock_create(const struct vm_device_env *env, uint64_t mmio_base, uint32_t gsi,
					 uint64_t guest_cid, const char *uds_path, capsa_error *err);

/* Stops the worker, closes every connection and removes the listening
 * socket; NULL is fine. Call once no vCPU runs: the MMIO window stays on
 * the bus. */
void virtio_vsock_destroy(struct virtio_vsock *vsock);

/* Written whenever the device raises its interrupt (for tests and for a
 * VMM without irqfd). */
int virtio_vsock_irq_fd(const struct virtio_vsock *vsock);

/* After a snapshot restore: tells the guest (VIRTIO_VSOCK_EVENT_TRANSPORT_RESET)
 * that every stream it had is gone. */
void virtio_vsock_transport_reset(struct virtio_vsock *vsock);
/* Waits until the guest has handled that event (it hands the event
 * buffer back once its streams are gone): before that, a new stream may
 * be torn down with the old ones. 0, or -1 after timeout_ms. */
int virtio_vsock_wait_transport_reset(struct virtio_vsock *vsock, int timeout_ms);

struct virtio_mmio;
/* The device's transport, for snapshots (virtio/mmio.h). */
struct virtio_mmio *virtio_vsock_transport(struct virtio_vsock *dev);

#endif
