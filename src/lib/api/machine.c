/* From a config to a VM ready to run: the run plan (image, workload), the
 * root image, the VM with its devices, the kernel and initramfs loaded.
 * capsa_vm_run (run.c) and capsa_vm_start (vm_handle.c) share it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/machine.h"
#include "api/snapshot_run.h"
#include "api/volume.h"
#include "boot/initramfs.h"
#include "devices/device_env.h"
#include "devices/power.h"
#include "devices/serial.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_fs.h"
#include "devices/virtio_vsock.h"
#include "fuse/dax_window.h"
#include "guest_abi.h"
#include "net/nic.h"
#include "oci/image.h"
#include "oci/store.h"
#include "rootfs/rootfs_image.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "vm/kvm.h"
#include "vm/mptable.h"
#include "vm/vcpu.h"
#include "vm/vm.h"
#include "vm/x86_boot.h"
#include "vm/x86_layout.h"

/* Legacy COM ports: ttyS0 console, ttyS1 stdout, ttyS2 stderr. */
static const struct {
	uint16_t port;
	int irq;
} serial_ports[] = { { 0x3f8, 4 }, { 0x2f8, 3 }, { 0x3e8, 4 } };
#define SERIAL_COUNT (sizeof(serial_ports) / sizeof(serial_ports[0]))
_Static_assert(SERIAL_COUNT == MACHINE_SERIAL_PORTS, "one serial port object per port");

#define FIRST_VIRTIO_IRQ 5
/* Guest-physical address space, not memory: host memory is only taken by
 * what the guest maps (host page cache) or touches where nothing is. The
 * guest spends 64 bytes of struct page per 4 KiB of it (16 MiB per GiB). */
#define MACHINE_DAX_WINDOW_SIZE (1ULL << 30)

/* Quiet, fast boot without firmware, ACPI or PCI; a panic resets the VM
 * (which capsa reports) instead of hanging it. */
#define BASE_CMDLINE                                                                                                  \
	"console=ttyS0 reboot=k panic=-1 pci=off nomodules no_timer_check tsc=reliable i8042.noaux i8042.nomux "      \
	"i8042.nopnp i8042.dumbkbd rdinit=" CAPSA_INIT_PATH

void machine_teardown(struct machine *m)
{
	nic_destroy(m->nic);
	virtio_vsock_destroy(m->vsock);
	for (unsigned i = 0; i < m->volume_count; i++)
		virtio_fs_destroy(m->volumes[i]);
	for (unsigned i = 0; i < m->block_count; i++)
		virtio_blk_destroy(m->blocks[i]);
	for (unsigned i = 0; i < m->disk_lock_count; i++)
		close(m->disk_locks[i]);
	for (unsigned i = 0; i < m->serial_count; i++)
		serial_destroy(&m->serials[i]);
	vm_destroy(m->vm);
	for (unsigned i = 0; i < m->dax_window_count; i++)
		dax_window_free(m->dax_windows[i]);
	memset(m, 0, sizeof(*m));
}

static char *default_cache_dir(capsa_error *err)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char *dir = NULL;
	int r;
	if (xdg && xdg[0] == '/')
		r = asprintf(&dir, "%s/capsa/rootfs", xdg);
	else if (home && home[0] == '/')
		r = asprintf(&dir, "%s/.cache/capsa/rootfs", home);
	else
		r = asprintf(&dir, "/tmp/capsa-%u/rootfs", (unsigned)getuid());
	if (r < 0) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	return dir;
}

static int add_serials(struct machine *m, const capsa_vm_config *cfg, capsa_error *err)
{
	const int fds[SERIAL_COUNT] = { cfg->console_fd, cfg->stdout_fd, cfg->stderr_fd };
	for (unsigned i = 0; i < SERIAL_COUNT; i++) {
		struct serial *s = &m->serials[i];
		serial_init(s, fds[i], serial_ports[i].irq, vm_irq_pulse, m->vm);
		m->serial_count++;
		struct bus_device dev = {
			.base = serial_ports[i].port,
			.size = SERIAL_PORT_COUNT,
			.opaque = s,
			.read = serial_read,
			.write = serial_write,
		};
		if (bus_register(&m->vm->pio_bus, &dev) < 0)
			return error_set(err, EBUSY, "cannot register serial port 0x%x", serial_ports[i].port);
	}
	return 0;
}

/* The next virtio-mmio window and interrupt, declared to the guest with a
 * virtio_mmio.device= entry on the command line. The guest numbers
 * devices in this order: the root image is /dev/vda, disks follow. */
static int claim_mmio_slot(struct machine *m, uint64_t *base, uint32_t *irq, char *cmdline, size_t cmdline_size,
			   capsa_error *err)
{
	unsigned slot = m->mmio_slots;
	*base = MMIO_DEVICES_BASE + slot * MMIO_DEVICE_STRIDE;
	*irq = FIRST_VIRTIO_IRQ + slot;
	if (*irq >= IOAPIC_PINS)
		return error_set(err, E2BIG, "too many devices for the interrupt controller");
	size_t used = strlen(cmdline);
	int n = snprintf(cmdline + used, cmdline_size - used, " virtio_mmio.device=%#llx@%#llx:%u",
			 (unsigned long long)MMIO_DEVICE_STRIDE, (unsigned long long)*base, *irq);
	if (n < 0 || (size_t)n >= cmdline_size - used)
		return error_set(err, E2BIG, "kernel command line too long");
	m->mmio_slots++;
	return 0;
}

static struct vm_device_env device_env(struct machine *m)
{
	return (struct vm_device_env){ .mem = &m->vm->mem, .mmio_bus = &m->vm->mmio_bus, .vm_fd = m->vm->vm_fd };
}

static int add_block(struct machine *m, const char *path, bool read_only, char *cmdline, size_t cmdline_size,
		     capsa_error *err)
{
	uint64_t base;
	uint32_t irq;
	if (m->block_count >= MACHINE_MAX_BLOCK_DEVICES)
		return error_set(err, E2BIG, "too many disks");
	if (claim_mmio_slot(m, &base, &irq, cmdline, cmdline_size, err) < 0)
		return -1;
	struct vm_device_env env = device_env(m);
	m->blocks[m->block_count] = virtio_blk_create(&env, base, irq, path, read_only, err);
	if (!m->blocks[m->block_count])
		return -1;
	m->block_count++;
	return 0;
}

/* A named disk's image, locked for this VM, comes after the raw disks. */
static int add_named_disk(struct machine *m, const capsa_vm_config *cfg, const struct config_named_disk *d,
			  char *cmdline, size_t cmdline_size, capsa_error *err)
{
	_cleanup_free_ char *path = NULL;
	int fd = volume_attach(cfg->store_dir, d->name, d->size, &path, err);
	if (fd < 0)
		return -1;
	m->disk_locks[m->disk_lock_count++] = fd;
	if (add_block(m, path, false, cmdline, cmdline_size, err) < 0)
		return error_prefix(err, "volume '%s'", d->name);
	return 0;
}

/* The guest's name for block device i: the root image is vda (see
 * claim_mmio_slot); at most MACHINE_MAX_BLOCK_DEVICES, so one letter. */
static void block_device_name(unsigned i, char name[16])
{
	snprintf(name, 16, "/dev/vd%c", 'a' + (int)i);
}
_Static_assert(MACHINE_MAX_BLOCK_DEVICES <= 26, "block device names are /dev/vd[a-z]");

/* The tag the guest finds volume i by (see CAPSA_CFG_VOLUMES). */
static void volume_tag(unsigned i, char tag[32])
{
	snprintf(tag, 32, "capsa-volume-%u", i);
}

/* A volume's DAX window: reserved host memory the guest sees above its RAM,
 * into which the device maps host files on the guest's request. */
static int add_dax_window(struct machine *m, struct virtio_fs_dax *dax, capsa_error *err)
{
	dax->window = dax_window_new(MACHINE_DAX_WINDOW_SIZE, err);
	if (!dax->window)
		return -1;
	m->dax_windows[m->dax_window_count++] = dax->window;
	return vm_add_device_memory(m->vm, dax->window->host, dax->window->size, &dax->gpa, err);
}

static int add_volume(struct machine *m, const struct config_volume *v, char *cmdline, size_t cmdline_size,
		      capsa_error *err)
{
	uint64_t base;
	uint32_t irq;
	char tag[32];
	struct virtio_fs_dax dax;
	if (claim_mmio_slot(m, &base, &irq, cmdline, cmdline_size, err) < 0)
		return -1;
	if (v->dax && add_dax_window(m, &dax, err) < 0)
		return error_prefix(err, "volume %s", v->host_dir);
	volume_tag(m->volume_count, tag);
	struct vm_device_env env = device_env(m);
	m->volumes[m->volume_count] =
		virtio_fs_create(&env, base, irq, tag, v->host_dir, v->read_only, v->dax ? &dax : NULL, err);
	if (!m->volumes[m->volume_count])
		return error_prefix(err, "volume %s", v->host_dir);
	m->volume_count++;
	return 0;
}

/* The agent's channel. Without a control socket the guest's agent still
 * listens, but nothing on the host can reach it. */
static int add_vsock(struct machine *m, const char *control_socket, char *cmdline, size_t cmdline_size,
		     capsa_error *err)
{
	uint64_t base;
	uint32_t irq;
	if (claim_mmio_slot(m, &base, &irq, cmdline, cmdline_size, err) < 0)
		return -1;
	struct vm_device_env env = device_env(m);
	m->vsock = virtio_vsock_create(&env, base, irq, VIRTIO_VSOCK_DEFAULT_GUEST_CID, control_socket, err);
	if (!m->vsock)
		return error_prefix(err, "control socket %s", control_socket ? control_socket : "(none)");
	return 0;
}

/* The network interface, unless the config says none. */
static int add_network(struct machine *m, const capsa_vm_config *cfg, char *cmdline, size_t cmdline_size,
		       capsa_error *err)
{
	uint64_t base;
	uint32_t irq;
	if (!nic_wanted(&cfg->net))
		return 0;
	if (claim_mmio_slot(m, &base, &irq, cmdline, cmdline_size, err) < 0)
		return -1;
	struct vm_device_env env = device_env(m);
	m->nic = nic_create(&env, base, irq, &cfg->net, cmdline, cmdline_size, err);
	return m->nic ? 0 : -1;
}

int check_config(const capsa_vm_config *cfg, capsa_error *err)
{
	if (!cfg->kernel_path)
		return error_set(err, EINVAL, "no guest kernel given");
	if (!cfg->init_path)
		return error_set(err, EINVAL, "no guest init binary given");
	if (cfg->rootfs_dir && cfg->image)
		return error_set(err, EINVAL, "give either an image or a root filesystem, not both");
	if (!cfg->rootfs_dir && !cfg->image && !cfg->snapshot_name)
		return error_set(err, EINVAL, "no image or root filesystem given");
	if (cfg->rootfs_dir && cfg->snapshot_name)
		return error_set(err, EINVAL, "snapshots hold images: a root filesystem cannot be given with one");
	/* Cheap checks of the inputs first, so a typo is reported as such. */
	struct stat st;
	if (cfg->rootfs_dir) {
		if (stat(cfg->rootfs_dir, &st) < 0)
			return error_set_errno(err, errno, "root filesystem %s", cfg->rootfs_dir);
		if (!S_ISDIR(st.st_mode))
			return error_set(err, ENOTDIR, "root filesystem %s is not a directory", cfg->rootfs_dir);
	}
	for (unsigned i = 0; i < cfg->volume_count; i++) {
		const char *dir = cfg->volumes[i].host_dir;
		if (stat(dir, &st) < 0)
			return error_set_errno(err, errno, "volume %s", dir);
		if (!S_ISDIR(st.st_mode))
			return error_set(err, ENOTDIR, "volume %s is not a directory", dir);
	}
	if (access(cfg->kernel_path, R_OK) < 0)
		return error_set_errno(err, errno, "guest kernel %s", cfg->kernel_path);
	if (access(cfg->init_path, R_OK) < 0)
		return error_set_errno(err, errno, "guest init %s", cfg->init_path);
	return 0;
}

void run_plan_clear(struct run_plan *p)
{
	if (p->has_image)
		oci_image_clear(&p->image);
	oci_store_close(p->store);
	workload_clear(&p->workload);
}

int plan_run(const capsa_vm_config *cfg, struct run_plan *p, capsa_error *err)
{
	memset(p, 0, sizeof(*p));
	_cleanup_free_ char *image = NULL;
	if (snapshot_config_image(cfg, &image, err) < 0)
		return -1;
	if (image) {
		p->store = oci_store_open(cfg->store_dir, err);
		if (!p->store)
			return error_prefix(err, "opening the image store");
		if (oci_image_open(p->store, image, &p->image, err) < 0)
			return -1;
		p->has_image = true;
	}
	return workload_resolve(cfg, p->has_image ? &p->image.config : NULL, &p->workload, err);
}

char *root_image_path(const capsa_vm_config *cfg, struct run_plan *p, capsa_error *err)
{
	if (p->has_image)
		return oci_image_rootfs(p->store, &p->image, err);
	_cleanup_free_ char *cache_dir = cfg->cache_dir ? strdup(cfg->cache_dir) : default_cache_dir(err);
	if (!cache_dir)
		return NULL;
	char *path = rootfs_image_for_dir(cfg->rootfs_dir, cache_dir, err);
	if (!path)
		error_prefix(err, "root filesystem %s", cfg->rootfs_dir);
	return path;
}

static int load_guest(struct machine *m, const capsa_vm_config *cfg, const struct workload *w, const char *cmdline,
		      bool standby, capsa_error *err)
{
	struct kernel_image kernel;
	if (x86_load_kernel(&m->vm->mem, cfg->kernel_path, &kernel, err) < 0)
		return -1;

	/* tag, path, mode (and ",dax") for each volume, as CAPSA_CFG_VOLUMES lists them */
	char tags[CONFIG_MAX_VOLUMES][32];
	const char *volumes[3 * CONFIG_MAX_VOLUMES + 1];
	size_t n = 0;
	for (unsigned i = 0; i < cfg->volume_count; i++) {
		volume_tag(i, tags[i]);
		volumes[n++] = tags[i];
		volumes[n++] = cfg->volumes[i].guest_path;
		volumes[n++] = cfg->volumes[i].dax ? (cfg->volumes[i].read_only ? "ro,dax" : "rw,dax")
						   : (cfg->volumes[i].read_only ? "ro" : "rw");
	}
	volumes[n] = NULL;

	/* device, path for each named disk, as CAPSA_CFG_DISK_MOUNTS lists them */
	char devices[CONFIG_MAX_DISKS][16];
	const char *disk_mounts[2 * CONFIG_MAX_DISKS + 1];
	n = 0;
	for (unsigned i = 0; i < cfg->named_disk_count; i++) {
		block_device_name(1 + cfg->disk_count + i, devices[i]);
		disk_mounts[n++] = devices[i];
		disk_mounts[n++] = cfg->named_disks[i].guest_path;
	}
	disk_mounts[n] = NULL;

	struct initramfs *ird = NULL;
	struct guest_workload gw = {
		.argv = (const char *const *)w->argv.items,
		.env = (const char *const *)w->env.items,
		.workdir = w->workdir,
		.hostname = cfg->hostname,
		.user = w->user,
		.hold = cfg->interactive,
		.standby = standby,
		.volumes = volumes,
		.disk_mounts = disk_mounts,
	};
	if (initramfs_build_capsa(&ird, cfg->init_path, &gw, err) < 0)
		return error_prefix(err, "building the initramfs");
	size_t ird_len;
	const uint8_t *ird_data = initramfs_data(ird, &ird_len);
	uint64_t initrd_addr;
	int r = x86_load_initrd(&m->vm->mem, &kernel, ird_data, ird_len, &initrd_addr, err);
	initramfs_free(ird);
	if (r < 0)
		return -1;

	if (x86_setup_boot_params(&m->vm->mem, &kernel, cmdline, initrd_addr, ird_len, err) < 0 ||
	    x86_setup_page_tables_and_gdt(&m->vm->mem, err) < 0 || mptable_write(&m->vm->mem, m->vm->cpu_count, err) < 0)
		return -1;
	for (unsigned i = 0; i < m->vm->cpu_count; i++) {
		if (vcpu_setup(m->vm->vcpus[i], kernel.entry, BOOT_ZERO_PAGE_ADDR, err) < 0)
			return -1;
	}
	return 0;
}

int report_end(struct vm *vm, enum vm_end end, int *exit_status, capsa_error *err)
{
	switch (end) {
	case VM_END_EXIT_REPORTED:
		if (vm->exit_value > 255) {
			int guest_errno = (int)CAPSA_EXIT_INIT_ERRNO(vm->exit_value);
			return error_set(err, EIO, "the guest init could not start the workload (%s); its message is "
					 "above, run with --console for the kernel's",
					 guest_errno ? strerror(guest_errno) : "no error code");
		}
		*exit_status = (int)vm->exit_value;
		return 0;
	case VM_END_RESET:
		return error_set(err, EIO, "the guest rebooted before the workload finished (kernel panic?); run with "
					   "--console to see the kernel's messages");
	case VM_END_POWER_OFF:
		return error_set(err, EIO, "the guest powered off without reporting the workload's exit status");
	case VM_END_STOPPED:
		/* Stopped by force, as a container runtime's SIGKILL. */
		*exit_status = 128 + 9;
		return 0;
	case VM_END_ERROR:
		*err = vm->end_error;
		return -1;
	case VM_END_NONE:
		break;
	}
	return error_set(err, EIO, "the VM stopped for no known reason");
}

/* The devices, in the order that fixes their MMIO slots (and so the
 * guest's names for them): a restore must attach the same ones in the
 * same order as the boot it continues. */
static int attach_devices(struct machine *m, const capsa_vm_config *cfg, const char *root_image,
			  const char *control_socket, char *cmdline, size_t cmdline_size, capsa_error *err)
{
	snprintf(cmdline, cmdline_size, "%s%s", BASE_CMDLINE, cfg->console_fd >= 0 ? "" : " quiet");
	if (add_serials(m, cfg, err) < 0 || power_ports_register(m->vm, err) < 0 ||
	    add_block(m, root_image, true, cmdline, cmdline_size, err) < 0)
		return -1;
	for (unsigned i = 0; i < cfg->disk_count; i++) {
		if (add_block(m, cfg->disks[i].path, cfg->disks[i].read_only, cmdline, cmdline_size, err) < 0)
			return -1;
	}
	for (unsigned i = 0; i < cfg->named_disk_count; i++) {
		if (add_named_disk(m, cfg, &cfg->named_disks[i], cmdline, cmdline_size, err) < 0)
			return -1;
	}
	for (unsigned i = 0; i < cfg->volume_count; i++) {
		if (add_volume(m, &cfg->volumes[i], cmdline, cmdline_size, err) < 0)
			return -1;
	}
	if (add_vsock(m, control_socket, cmdline, cmdline_size, err) < 0 ||
	    add_network(m, cfg, cmdline, cmdline_size, err) < 0)
		return -1;
	return 0;
}

int machine_prepare(struct machine *m, const capsa_vm_config *cfg, int kvm_fd, const char *root_image,
		    const struct workload *w, const char *control_socket, bool standby, capsa_error *err)
{
	memset(m, 0, sizeof(*m));
	m->vm = vm_create(kvm_fd, cfg->memory_mib, cfg->cpus, err);
	if (!m->vm)
		return -1;

	char cmdline[BOOT_CMDLINE_MAX];
	if (attach_devices(m, cfg, root_image, control_socket, cmdline, sizeof(cmdline), err) < 0 ||
	    load_guest(m, cfg, w, cmdline, standby, err) < 0)
		goto fail;
	return 0;
fail:
	machine_teardown(m);
	return -1;
}

int machine_prepare_restore(struct machine *m, const capsa_vm_config *cfg, int kvm_fd, const char *root_image,
			    const char *control_socket, const struct machine_snapshot_files *files, capsa_error *err)
{
	memset(m, 0, sizeof(*m));
	m->vm = vm_create_from_memory(kvm_fd, files->memory_mib, files->cpus, files->memory_fd, err);
	if (!m->vm)
		return -1;

	char cmdline[BOOT_CMDLINE_MAX];
	if (attach_devices(m, cfg, root_image, control_socket, cmdline, sizeof(cmdline), err) < 0 ||
	    machine_load_state(m, files->state, err) < 0)
		goto fail;
	return 0;
fail:
	machine_teardown(m);
	return -1;
}
