/* Shared by capsa_vm_run (run.c) and capsa_vm_start (vm_handle.c): what a
 * run boots and runs, and a VM set up to the point of its first guest
 * instruction. */
#ifndef CAPSA_API_MACHINE_H
#define CAPSA_API_MACHINE_H

#include <stdbool.h>

#include "api/config.h"
#include "api/workload.h"
#include "capsa.h"
#include "devices/serial.h"
#include "oci/image.h"
#include "oci/store.h"
#include "vm/vm.h"

#define MACHINE_SERIAL_PORTS 3  /* ttyS0 console, ttyS1 stdout, ttyS2 stderr */
#define MACHINE_MAX_BLOCK_DEVICES (1 + CONFIG_MAX_DISKS)

struct virtio_blk;
struct virtio_fs;
struct dax_window;
struct virtio_vsock;
struct nic;

struct machine {
	struct vm *vm;
	struct serial serials[MACHINE_SERIAL_PORTS];
	unsigned serial_count;
	struct virtio_blk *blocks[MACHINE_MAX_BLOCK_DEVICES];
	unsigned block_count;
	struct virtio_vsock *vsock;
	struct nic *nic;            /* NULL without a network */
	struct virtio_fs *volumes[CONFIG_MAX_VOLUMES];
	unsigned volume_count;
	/* The DAX windows of the volumes that have one; freed after the VM,
	 * whose memory slots show them to the guest. */
	struct dax_window *dax_windows[CONFIG_MAX_VOLUMES];
	unsigned dax_window_count;
	/* Locks on the named disks' images, held while the VM exists. */
	int disk_locks[CONFIG_MAX_DISKS];
	unsigned disk_lock_count;
	unsigned mmio_slots;
};

/* What the guest boots from and runs. For an image, its manifest and
 * config are read by plan_run (cheap, and a missing image is an input
 * error to report before any other work); its root image is built later
 * by root_image_path(). */
struct run_plan {
	oci_store *store;
	oci_image image;
	bool has_image;
	struct workload workload;
};

/* Checks the config's own consistency and that its files exist. */
int check_config(const capsa_vm_config *cfg, capsa_error *err);
int plan_run(const capsa_vm_config *cfg, struct run_plan *p, capsa_error *err);
void run_plan_clear(struct run_plan *p);
/* The root image to boot (malloc'd), built or found in its cache. */
char *root_image_path(const capsa_vm_config *cfg, struct run_plan *p, capsa_error *err);

/* Creates the VM (taking kvm_fd) with its serial ports, power ports, root
 * image, disks and vsock device (listening on control_socket, which may be
 * NULL), and loads the kernel and initramfs. On failure everything is torn
 * down. */
int machine_prepare(struct machine *m, const capsa_vm_config *cfg, int kvm_fd, const char *root_image,
		    const struct workload *w, const char *control_socket, bool standby, capsa_error *err);

/* ---- snapshots (machine_snapshot.c) ---- */

struct state_reader;

/* A snapshot opened for restore. */
struct machine_snapshot_files {
	const struct state_reader *state;
	int memory_fd;          /* the memory file, mapped copy-on-write */
	uint32_t memory_mib;
	uint32_t cpus;
};

/* The same devices as machine_prepare, with the VM's RAM, vCPUs and
 * devices loaded from a snapshot instead of a kernel to boot. */
int machine_prepare_restore(struct machine *m, const capsa_vm_config *cfg, int kvm_fd, const char *root_image,
			    const char *control_socket, const struct machine_snapshot_files *files, capsa_error *err);

/* Fails, saying why, if the machine has devices whose state lives outside
 * the VM and cannot be carried over (shared directories, disks). */
int machine_check_snapshottable(const struct machine *m, capsa_error *err);

/* Pauses the running machine at a consistent point, writes dir/state and
 * dir/memory (dir exists and is empty), and lets it run on. */
int machine_save(struct machine *m, const char *dir, capsa_error *err);

/* Reads the memory size and vCPU count a state file was made with. */
int machine_snapshot_shape(const struct state_reader *r, uint32_t *memory_mib, uint32_t *cpus, capsa_error *err);

/* Loads a snapshot's device and vCPU state into a machine whose devices
 * are attached and whose vCPUs have not run; afterwards the guest is told
 * its vsock streams are gone. */
int machine_load_state(struct machine *m, const struct state_reader *r, capsa_error *err);
/* Frees the devices and the VM; call once no vCPU runs. */
void machine_teardown(struct machine *m);

/* Turns how the VM ended into the workload's exit status or an error. */
int report_end(struct vm *vm, enum vm_end end, int *exit_status, capsa_error *err);

#endif
