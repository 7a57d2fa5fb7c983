/* What a device needs from the VM it is plugged into. */
#ifndef CAPSA_DEVICES_DEVICE_ENV_H
#define CAPSA_DEVICES_DEVICE_ENV_H

struct guest_mem;
struct bus;

struct vm_device_env {
	struct guest_mem *mem; /* guest RAM */
	struct bus *mmio_bus;  /* devices register their MMIO window here */
	int vm_fd;             /* KVM VM fd for KVM_IOEVENTFD / KVM_IRQFD; -1 when there is no VM (unit tests) */
};

#endif
