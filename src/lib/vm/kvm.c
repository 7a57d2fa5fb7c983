#include "vm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"

int kvm_is_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

/* Capabilities the VMM relies on; without any of them it cannot work. */
static const struct {
	int cap;
	const char *name;
} required_caps[] = {
	{ KVM_CAP_IRQCHIP, "in-kernel irqchip" },
	{ KVM_CAP_PIT2, "in-kernel PIT" },
	{ KVM_CAP_IRQFD, "irqfd" },
	{ KVM_CAP_IOEVENTFD, "ioeventfd" },
	{ KVM_CAP_USER_MEMORY, "user memory regions" },
	{ KVM_CAP_EXT_CPUID, "KVM_GET_SUPPORTED_CPUID" },
	{ KVM_CAP_IMMEDIATE_EXIT, "immediate exit" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_SET_TSS_ADDR" },
};

int kvm_open(capsa_error *err)
{
	if (kvm_is_pvm())
		return error_set(err, ENOTSUP,
				 "/dev/kvm is kvm-pvm (no hardware virtualization), which cannot boot a normal Linux "
				 "guest; run capsa inside tools/with-kvm, e.g. tools/with-kvm -- capsa run ...");

	_cleanup_close_ int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return error_set(err, e, "/dev/kvm does not exist: enable virtualization in the firmware and "
						 "load kvm-intel or kvm-amd, or run capsa inside tools/with-kvm");
		if (e == EACCES || e == EPERM)
			return error_set(err, e, "no permission to open /dev/kvm: add your user to the kvm group");
		return error_set_errno(err, e, "open /dev/kvm");
	}
	int version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION)
		return error_set(err, ENOTSUP, "/dev/kvm speaks API version %d, capsa needs %d", version,
				 KVM_API_VERSION);
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0)
			return error_set(err, ENOTSUP, "/dev/kvm lacks %s, which capsa needs", required_caps[i].name);
	}
	return steal_fd(&fd);
}

#define MAX_CPUID_ENTRIES 256

struct kvm_cpuid2 *kvm_supported_cpuid(int kvm_fd, capsa_error *err)
{
	size_t size = sizeof(struct kvm_cpuid2) + MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2);
	_cleanup_free_ struct kvm_cpuid2 *cpuid = calloc(1, size);
	if (!cpuid) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	cpuid->nent = MAX_CPUID_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		error_set_errno(err, errno, "KVM_GET_SUPPORTED_CPUID");
		return NULL;
	}
	return steal_pointer(&cpuid);
}
