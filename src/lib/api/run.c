/* capsa_vm_run: boot, run the workload to its end on this thread, report
 * its exit status. */
#include <unistd.h>

#include "api/machine.h"
#include "api/snapshot_run.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "vm/kvm.h"

CAPSA_API int capsa_vm_run(const capsa_vm_config *cfg, int *exit_status, capsa_error *err)
{
	struct run_plan plan;

	if (check_config(cfg, err) < 0)
		return -1;
	/* A snapshot needs the guest agent to start the workload: run it as a
	 * started VM that is waited for. */
	if (snapshot_wanted(cfg)) {
		capsa_vm *vm = capsa_vm_start(cfg, err);
		if (!vm)
			return -1;
		int r = capsa_vm_wait(vm, exit_status, err);
		capsa_vm_free(vm);
		return r;
	}
	int r = plan_run(cfg, &plan, err);
	if (r == 0) {
		/* KVM before the root image: on a host that cannot run the
		 * guest, fail before any work. */
		int kvm_fd = kvm_open(err);
		r = -1;
		if (kvm_fd >= 0) {
			_cleanup_free_ char *root_image = root_image_path(cfg, &plan, err);
			struct machine m;
			if (!root_image)
				close(kvm_fd);
			else if (machine_prepare(&m, cfg, kvm_fd, root_image, &plan.workload, cfg->control_socket, false,
						 err) == 0) {
				r = report_end(m.vm, vm_run(m.vm), exit_status, err);
				machine_teardown(&m);
			}
		}
	}
	run_plan_clear(&plan);
	return r;
}

CAPSA_API int capsa_check_kvm(capsa_error *err)
{
	int fd = kvm_open(err);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}
