/* Snapshots of a whole machine: the KVM state (snapshot/kvm_state.c), each
 * device's transport and the serial ports into the state file, guest RAM
 * into the memory file; and back into a freshly attached machine. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/machine.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_vsock.h"
#include "net/nic.h"
#include "snapshot/guest_ram.h"
#include "snapshot/kvm_state.h"
#include "snapshot/state_file.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"
#include "vm/x86_layout.h"

#define MACHINE_MAX_SLOTS 32
/* STATE_DEVICE instances: virtio devices by MMIO slot, serial ports after. */
#define SERIAL_INSTANCE_BASE 0x100

struct snapshot_meta {
	uint32_t memory_mib;
	uint32_t cpus;
	uint32_t slot_count;
	uint32_t reserved;
	uint32_t device_ids[MACHINE_MAX_SLOTS]; /* virtio device id in each MMIO slot */
};

static void cleanup_writer(struct state_writer **w)
{
	state_writer_free(*w);
}

/* Every virtio transport, by MMIO slot. */
static int collect_transports(struct machine *m, struct virtio_mmio **by_slot, capsa_error *err)
{
	struct virtio_mmio *all[MACHINE_MAX_SLOTS];
	unsigned n = 0;
	for (unsigned i = 0; i < m->block_count; i++)
		all[n++] = virtio_blk_transport(m->blocks[i]);
	if (m->vsock)
		all[n++] = virtio_vsock_transport(m->vsock);
	if (m->nic)
		all[n++] = nic_transport(m->nic);
	if (n != m->mmio_slots)
		return error_set(err, EINVAL, "%u of the VM's %u devices can be snapshotted", n, m->mmio_slots);
	memset(by_slot, 0, MACHINE_MAX_SLOTS * sizeof(*by_slot));
	for (unsigned i = 0; i < n; i++) {
		uint64_t slot = (all[i]->base - MMIO_DEVICES_BASE) / MMIO_DEVICE_STRIDE;
		if (slot >= n || by_slot[slot])
			return error_set(err, EINVAL, "device at 0x%llx is outside the VM's MMIO slots",
					 (unsigned long long)all[i]->base);
		by_slot[slot] = all[i];
	}
	return 0;
}

int machine_check_snapshottable(const struct machine *m, capsa_error *err)
{
	if (m->volume_count)
		return error_set(err, ENOTSUP, "a VM with shared directories (-v) cannot be snapshotted: the guest's "
				 "view of them lives in this process");
	if (m->block_count > 1)
		return error_set(err, ENOTSUP, "a VM with disks cannot be snapshotted: a restored guest would find "
				 "them changed under its cache");
	if (m->mmio_slots > MACHINE_MAX_SLOTS)
		return error_set(err, ENOTSUP, "too many devices to snapshot");
	return 0;
}

static int save_devices(struct machine *m, struct virtio_mmio **by_slot, struct state_writer *w, capsa_error *err)
{
	for (unsigned i = 0; i < m->mmio_slots; i++) {
		struct virtio_mmio_state st;
		virtio_mmio_save(by_slot[i], &st);
		if (state_writer_add(w, STATE_DEVICE, i, &st, sizeof(st), err) < 0)
			return -1;
	}
	for (unsigned i = 0; i < m->serial_count; i++) {
		struct serial_state st;
		serial_save(&m->serials[i], &st);
		if (state_writer_add(w, STATE_DEVICE, SERIAL_INSTANCE_BASE + i, &st, sizeof(st), err) < 0)
			return -1;
	}
	return 0;
}

static int write_snapshot(struct machine *m, struct virtio_mmio **by_slot, const char *dir, capsa_error *err)
{
	__attribute__((cleanup(cleanup_writer))) struct state_writer *w = state_writer_new(err);
	if (!w)
		return -1;
	struct snapshot_meta meta = {
		.memory_mib = (uint32_t)(m->vm->mem.size >> 20),
		.cpus = m->vm->cpu_count,
		.slot_count = m->mmio_slots,
	};
	for (unsigned i = 0; i < m->mmio_slots; i++)
		meta.device_ids[i] = by_slot[i]->dev.device_id;
	if (state_writer_add(w, STATE_META, 0, &meta, sizeof(meta), err) < 0 || kvm_state_save(m->vm, w, err) < 0 ||
	    save_devices(m, by_slot, w, err) < 0)
		return -1;

	char path[4096];
	if (fs_path_join(path, sizeof(path), dir, "memory", err) < 0 || guest_ram_save(m->vm, path, err) < 0 ||
	    fs_path_join(path, sizeof(path), dir, "state", err) < 0)
		return -1;
	return state_writer_save(w, path, err);
}

int machine_save(struct machine *m, const char *dir, capsa_error *err)
{
	struct virtio_mmio *by_slot[MACHINE_MAX_SLOTS];
	if (machine_check_snapshottable(m, err) < 0 || collect_transports(m, by_slot, err) < 0)
		return -1;
	/* vCPUs first, so no new request is made; then every device
	 * finishes the requests it has taken and takes no more. */
	if (vm_pause(m->vm, err) < 0)
		return error_prefix(err, "pausing the VM");
	for (unsigned i = 0; i < m->mmio_slots; i++)
		virtio_mmio_pause(by_slot[i]);
	int r = write_snapshot(m, by_slot, dir, err);
	for (unsigned i = 0; i < m->mmio_slots; i++)
		virtio_mmio_resume(by_slot[i]);
	vm_resume(m->vm);
	return r;
}

int machine_snapshot_shape(const struct state_reader *r, uint32_t *memory_mib, uint32_t *cpus, capsa_error *err)
{
	struct snapshot_meta meta;
	if (state_reader_get(r, STATE_META, 0, &meta, sizeof(meta), err) < 0)
		return -1;
	if (meta.cpus == 0 || meta.memory_mib == 0 || meta.slot_count > MACHINE_MAX_SLOTS)
		return error_set(err, EINVAL, "snapshot state: impossible machine (%u vCPUs, %u MiB, %u devices)",
				 meta.cpus, meta.memory_mib, meta.slot_count);
	*memory_mib = meta.memory_mib;
	*cpus = meta.cpus;
	return 0;
}

int machine_load_state(struct machine *m, const struct state_reader *r, capsa_error *err)
{
	struct snapshot_meta meta;
	struct virtio_mmio *by_slot[MACHINE_MAX_SLOTS];
	if (state_reader_get(r, STATE_META, 0, &meta, sizeof(meta), err) < 0 ||
	    machine_check_snapshottable(m, err) < 0 || collect_transports(m, by_slot, err) < 0)
		return -1;
	if (meta.slot_count != m->mmio_slots)
		return error_set(err, EINVAL, "the snapshot's VM had %u devices, this one has %u (different network "
				 "or disk settings?)", meta.slot_count, m->mmio_slots);
	for (unsigned i = 0; i < m->mmio_slots; i++) {
		struct virtio_mmio_state st;
		if (meta.device_ids[i] != by_slot[i]->dev.device_id)
			return error_set(err, EINVAL, "device %u of the snapshot's VM was virtio device %u, here it is %u",
					 i, meta.device_ids[i], by_slot[i]->dev.device_id);
		if (state_reader_get(r, STATE_DEVICE, i, &st, sizeof(st), err) < 0 ||
		    virtio_mmio_load(by_slot[i], &st, err) < 0)
			return -1;
	}
	for (unsigned i = 0; i < m->serial_count; i++) {
		struct serial_state st;
		if (state_reader_get(r, STATE_DEVICE, SERIAL_INSTANCE_BASE + i, &st, sizeof(st), err) < 0)
			return -1;
		serial_load(&m->serials[i], &st);
	}
	if (kvm_state_restore(m->vm, r, err) < 0)
		return -1;
	if (m->vsock)
		virtio_vsock_transport_reset(m->vsock);
	return 0;
}
