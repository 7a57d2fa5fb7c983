/* virtio-mmio transport, modern layout (virtio 1.x, 4.2; register version 2).
 *
 * Generic over devices: a device describes itself with struct
 * virtio_mmio_device and gets feature negotiation, the status state
 * machine, queue setup, notifications and interrupts from here.
 *
 * Threads: register accesses arrive on vCPU threads through the MMIO bus;
 * the device processes requests on its own worker thread, which polls
 * virtio_mmio_notify_fd() for each queue and takes chains with
 * virtio_mmio_pop()/virtio_mmio_push(). One mutex guards the transport
 * state. A reset waits until no popped chain is outstanding, so a worker
 * never completes a request into rings the driver has already taken back:
 * every chain popped must be pushed promptly.
 *
 * Notifications: each queue has an eventfd. With a VM it is bound to the
 * QueueNotify register with KVM_IOEVENTFD (datamatch on the queue index),
 * so the guest's kick never leaves the kernel; without one the register
 * write handler signals the eventfd itself. Interrupts go out through one
 * eventfd bound to the device's GSI with KVM_IRQFD. */
#ifndef CAPSA_DEVICES_VIRTIO_MMIO_H
#define CAPSA_DEVICES_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_mmio.h>

#include "capsa.h"
#include "devices/device_env.h"
#include "devices/virtio/virtq.h"

/* Size of one device's register window (registers, then config space at
 * 0x100): a page, so that the size the kernel command line declares for
 * each device is all ours and reads of unused offsets return 0. */
#define VIRTIO_MMIO_WINDOW_SIZE 0x1000
#define VIRTIO_MMIO_CONFIG_MAX (VIRTIO_MMIO_WINDOW_SIZE - VIRTIO_MMIO_CONFIG)

#define VIRTIO_MMIO_MAGIC 0x74726976     /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x61737063    /* "cpsa" */
#define VIRTIO_MMIO_MAX_QUEUES 8
#define VIRTIO_MMIO_MAX_SHM_REGIONS 4

/* A shared memory region (virtio 1.2, 2.10): guest-physical memory the
 * device and the driver both access directly, outside the virtqueues,
 * found by the driver through SHMSel / SHMLen / SHMBase. The transport only
 * reports where it is; the device backs it. */
struct virtio_mmio_shm_region {
	uint8_t id;      /* device-specific, e.g. VIRTIO_FS_SHMCAP_ID_CACHE */
	uint64_t base;   /* guest-physical address */
	uint64_t len;    /* bytes; never ~0, which means "no such region" */
};

struct virtio_mmio_device {
	uint32_t device_id;        /* VIRTIO_ID_* */
	uint64_t features;         /* device-specific bits; the transport adds
				    * VERSION_1 and RING_F_INDIRECT_DESC */
	unsigned num_queues;       /* 1 .. VIRTIO_MMIO_MAX_QUEUES */
	uint16_t queue_max_size;   /* power of two <= VIRTQ_MAX_SIZE */
	uint32_t config_size;      /* bytes of device config space, <= VIRTIO_MMIO_CONFIG_MAX */
	void *opaque;
	/* Config space accesses, already bounds-checked against config_size.
	 * Called with the transport lock held: must not call back into the
	 * transport. config_write may be NULL (writes are then ignored). */
	void (*config_read)(void *opaque, uint32_t offset, uint8_t *data, uint32_t len);
	void (*config_write)(void *opaque, uint32_t offset, const uint8_t *data, uint32_t len);
	/* Driver reset the device; may be NULL. Same locking rule. */
	void (*reset)(void *opaque);
	/* Shared memory regions (copied at init); distinct ids. */
	struct virtio_mmio_shm_region shm[VIRTIO_MMIO_MAX_SHM_REGIONS];
	unsigned shm_count;
};

struct virtio_mmio {
	bool initialized;             /* lock and eventfds exist */
	pthread_mutex_t lock;
	pthread_cond_t idle;          /* signalled when in_flight drops to 0 */
	unsigned in_flight;           /* chains popped and not pushed yet */

	struct virtio_mmio_device dev;
	struct guest_mem *mem;
	uint64_t base;
	uint32_t gsi;
	int vm_fd;

	uint64_t device_features;
	uint64_t driver_features;
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint32_t status;
	uint32_t interrupt_status;
	uint32_t config_generation;
	uint32_t queue_sel;
	uint32_t shm_sel;             /* not in snapshots: only read while probing */
	struct virtq queues[VIRTIO_MMIO_MAX_QUEUES];

	int notify_fds[VIRTIO_MMIO_MAX_QUEUES];
	bool ioeventfd_bound[VIRTIO_MMIO_MAX_QUEUES];
	int irq_fd;
	bool irqfd_bound;

	bool paused;                  /* virtio_mmio_pause(): pop hands out nothing */
};

/* The transport's state in a snapshot (little-endian x86 layout, fixed
 * sizes): what the driver programmed and how far each queue got. */
struct virtio_mmio_queue_state {
	uint64_t desc_addr, avail_addr, used_addr;
	uint16_t num, last_avail_idx, used_idx;
	uint8_t ready, indirect;
};

struct virtio_mmio_state {
	uint32_t device_id;
	uint32_t num_queues;
	uint64_t device_features;
	uint64_t driver_features;
	uint32_t device_features_sel, driver_features_sel;
	uint32_t status, interrupt_status, config_generation, queue_sel;
	struct virtio_mmio_queue_state queues[VIRTIO_MMIO_MAX_QUEUES];
};

/* Sets up the transport for dev at [base, base + VIRTIO_MMIO_WINDOW_SIZE):
 * eventfds, and with a VM their KVM bindings. Nothing reaches it until
 * virtio_mmio_register(). */
int virtio_mmio_init(struct virtio_mmio *m, const struct vm_device_env *env, uint64_t base, uint32_t gsi,
		     const struct virtio_mmio_device *dev, capsa_error *err);

/* Puts the register window on the bus: the last step of creating a
 * device, once its worker runs, because the bus cannot take it back.
 * m must stay at its address from then on. */
int virtio_mmio_register(struct virtio_mmio *m, struct bus *bus, capsa_error *err);

/* Unbinds and closes the eventfds. The bus keeps no way to unregister a
 * window: call this only once no vCPU runs any more. Does nothing on a
 * zero-filled transport or one whose init failed. */
void virtio_mmio_cleanup(struct virtio_mmio *m);

/* The register handlers, as installed on the bus (exposed for tests). */
void virtio_mmio_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len);
void virtio_mmio_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len);

/* Readable when the driver kicked queue q; read it (8 bytes) to re-arm. */
int virtio_mmio_notify_fd(const struct virtio_mmio *m, unsigned q);
/* Written whenever the device raises its interrupt line. */
int virtio_mmio_irq_fd(const struct virtio_mmio *m);

/* Takes the next chain from queue q if the driver has set DRIVER_OK.
 * Returns 1 with a chain, 0 if there is none, -1 if the driver broke the
 * ring rules: the device is then flagged DEVICE_NEEDS_RESET and the driver
 * is told with a configuration change interrupt. */
int virtio_mmio_pop(struct virtio_mmio *m, unsigned q, struct virtq_chain *chain);

/* Hands a popped chain back with len bytes written to it. Returns true if
 * the driver wants an interrupt; raise it once per batch with
 * virtio_mmio_interrupt(m, VIRTIO_MMIO_INT_VRING). */
bool virtio_mmio_push(struct virtio_mmio *m, unsigned q, const struct virtq_chain *chain, uint32_t len);

/* Sets bits (VIRTIO_MMIO_INT_VRING / VIRTIO_MMIO_INT_CONFIG) in
 * InterruptStatus and signals the interrupt. */
void virtio_mmio_interrupt(struct virtio_mmio *m, uint32_t bits);

/* Snapshots. pause waits until no popped chain is outstanding and keeps
 * pop from handing out more, so every request is either still in its
 * avail ring or answered in the used ring; resume lets the worker look at
 * every queue again. */
void virtio_mmio_pause(struct virtio_mmio *m);
void virtio_mmio_resume(struct virtio_mmio *m);
/* Call while paused. */
void virtio_mmio_save(struct virtio_mmio *m, struct virtio_mmio_state *st);
/* Loads a saved state into a freshly initialised transport of the same
 * device (before the VM runs): validates it as if the driver had
 * programmed it, then has the worker look at every ready queue and
 * re-raises a pending interrupt. */
int virtio_mmio_load(struct virtio_mmio *m, const struct virtio_mmio_state *st, capsa_error *err);

/* The device changed its config space: bumps ConfigGeneration and, once
 * the driver is running, raises a configuration change interrupt. */
void virtio_mmio_config_changed(struct virtio_mmio *m);

#endif
