/* virtio-net (virtio 1.x, 5.1) over virtio-mmio: one rx and one tx queue,
 * a MAC address in config space, no offloads. Every buffer carries the
 * 12-byte struct virtio_net_hdr_v1 before the Ethernet frame; the device
 * strips it from what the guest sends and adds it to what the guest gets.
 *
 * The backend (a user-mode network stack) is a pair of calls: the device
 * hands each frame the guest sends to send_frame() on its worker thread,
 * and the backend delivers frames to the guest with virtio_net_receive()
 * from any thread. Those wait in a bounded backlog until the guest posts
 * rx buffers; when the backlog is full new frames are dropped, as a NIC
 * without ring space would. Frames in the backlog survive a device reset:
 * to the new driver they look like packets that were in flight.
 *
 * A hostile guest's malformed tx chains (short header, offloads it did not
 * negotiate, writable buffers, frames above VIRTIO_NET_MAX_FRAME or below
 * an Ethernet header) are dropped; the chain is still returned. */
#ifndef CAPSA_DEVICES_VIRTIO_NET_H
#define CAPSA_DEVICES_VIRTIO_NET_H

#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_net.h>

#include "capsa.h"
#include "devices/device_env.h"
#include "devices/virtio/virtq.h"

#define VIRTIO_NET_QUEUE_SIZE 256
#define VIRTIO_NET_HDR_LEN 12                 /* sizeof(struct virtio_net_hdr_v1) */
#define VIRTIO_NET_MAX_FRAME (64 * 1024)      /* bytes of frame after the header */
#define VIRTIO_NET_MIN_FRAME 14               /* an Ethernet header */
#define VIRTIO_NET_RX_BACKLOG 256             /* frames waiting for guest rx buffers */

/* Called on the device's worker thread with one frame from the guest
 * (header stripped). The frame is only valid during the call. */
typedef void (*virtio_net_send_fn)(void *opaque, const uint8_t *frame, size_t len);

struct virtio_net;

/* A network device at [mmio_base, mmio_base + VIRTIO_MMIO_WINDOW_SIZE)
 * interrupting on gsi, with the given MAC address. */
struct virtio_net *virtio_net_create(const struct vm_device_env *env, uint64_t mmio_base, uint32_t gsi,
				     const uint8_t mac[6], virtio_net_send_fn send_frame, void *opaque,
				     capsa_error *err);

/* Stops the worker and frees the backlog; NULL is fine. Call once no vCPU
 * runs (the MMIO window stays on the bus) and the backend no longer calls
 * virtio_net_receive(). */
void virtio_net_destroy(struct virtio_net *net);

/* Written whenever the device raises its interrupt (for tests and for a
 * VMM without irqfd). */
int virtio_net_irq_fd(const struct virtio_net *net);

/* Queues a copy of frame (no virtio header) for the guest. Thread-safe.
 * Returns 0 if queued, -1 if dropped: backlog full, or a length outside
 * [1, VIRTIO_NET_MAX_FRAME]. */
int virtio_net_receive(struct virtio_net *net, const uint8_t *frame, size_t len);

/* Copies the frame of a tx chain (after its header) into buf, which has
 * room for VIRTIO_NET_MAX_FRAME bytes. Returns its length, or -1 if the
 * chain is malformed and the frame must be dropped. */
int virtio_net_tx_frame(const struct virtq_chain *chain, uint8_t *buf);

/* Writes a header and frame into an rx chain. Returns the used length
 * (VIRTIO_NET_HDR_LEN + len), or 0 if the chain's writable part is too
 * small: the frame is then not delivered into it. */
uint32_t virtio_net_rx_fill(const struct virtq_chain *chain, const uint8_t *frame, size_t len);

struct virtio_mmio;
/* The device's transport, for snapshots (virtio/mmio.h). */
struct virtio_mmio *virtio_net_transport(struct virtio_net *dev);

#endif
