/* capsa_vm_start and friends: a VM whose vCPUs run on threads of this
 * process while the caller goes on, reachable through its control socket
 * (the vsock device's Unix socket) until it ends. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "agent/client.h"
#include "agent_proto.h"
#include "api/machine.h"
#include "api/snapshot_run.h"
#include "devices/virtio_vsock.h"
#include "api/vm_handle.h"
#include "net/nic.h"
#include "util/cleanup.h"
#include "util/deadline.h"
#include "util/error.h"
#include "vm/kvm.h"

struct capsa_vm {
	struct run_plan plan;
	struct snapshot_plan snapshot;
	struct machine machine;
	char *root_image;       /* the image the guest mounted, for snapshots */
	char *control_socket;
	char *private_dir;      /* made for a default control socket; removed at free */
	capsa_exec *workload;   /* interactive VMs: the workload, run through the agent */

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t finished_cond;
	bool finished;          /* the VM ended; result fields are set */
	pthread_mutex_t join_lock;
	bool joined;
	int result;             /* report_end's */
	int exit_status;
	capsa_error end_error;
};

static void *vm_thread(void *opaque)
{
	capsa_vm *vm = opaque;
	capsa_error err = { 0 };
	int status = 0;
	int r = report_end(vm->machine.vm, vm_run(vm->machine.vm), &status, &err);

	pthread_mutex_lock(&vm->lock);
	vm->result = r;
	vm->exit_status = status;
	vm->end_error = err;
	vm->finished = true;
	pthread_cond_broadcast(&vm->finished_cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

/* A private directory for the control socket: under $XDG_RUNTIME_DIR when
 * there is one (per-user, cleaned at logout), else /tmp. */
static int make_private_socket(capsa_vm *vm, capsa_error *err)
{
	const char *runtime = getenv("XDG_RUNTIME_DIR");
	char *dir = NULL;

	if (asprintf(&dir, "%s/capsa-vm-XXXXXX", runtime && runtime[0] == '/' ? runtime : "/tmp") < 0)
		return error_set(err, ENOMEM, "out of memory");
	if (!mkdtemp(dir)) {
		int e = errno;
		free(dir);
		return error_set_errno(err, e, "creating a directory for the control socket");
	}
	vm->private_dir = dir;
	if (asprintf(&vm->control_socket, "%s/control.sock", dir) < 0) {
		vm->control_socket = NULL;
		return error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

static bool vm_finished(capsa_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	bool done = vm->finished;
	pthread_mutex_unlock(&vm->lock);
	return done;
}

bool vm_handle_running(capsa_vm *vm)
{
	return vm->thread_started && !vm_finished(vm);
}

/* Waits for the VM to finish, at most timeout_ms (< 0: for ever). */
static bool wait_finished(capsa_vm *vm, int timeout_ms)
{
	struct timespec deadline = realtime_deadline_ms(timeout_ms);

	pthread_mutex_lock(&vm->lock);
	while (!vm->finished) {
		if (timeout_ms < 0)
			pthread_cond_wait(&vm->finished_cond, &vm->lock);
		else if (pthread_cond_timedwait(&vm->finished_cond, &vm->lock, &deadline) == ETIMEDOUT)
			break;
	}
	bool done = vm->finished;
	pthread_mutex_unlock(&vm->lock);
	return done;
}

/* Once, whichever of wait, stop and free gets there first; the others
 * wait for that join to complete. */
static void join_thread(capsa_vm *vm)
{
	pthread_mutex_lock(&vm->join_lock);
	if (vm->thread_started && !vm->joined) {
		pthread_join(vm->thread, NULL);
		vm->joined = true;
	}
	pthread_mutex_unlock(&vm->join_lock);
}

/* Polls the agent until it answers, the VM ends, or the time is up. */
static int wait_for_agent(capsa_vm *vm, uint32_t timeout_ms, capsa_error *err)
{
	uint64_t start_ms = monotonic_ms();
	for (;;) {
		capsa_error attempt = { 0 };
		int fd = agent_connect(vm->control_socket, CAPSA_AGENT_PORT, 0, 1000, &attempt);
		if (fd >= 0) {
			int r = agent_ping(fd, 5000, &attempt);
			close(fd);
			if (r == 0)
				return 0;
		}
		if (vm_finished(vm)) {
			join_thread(vm);
			if (vm->result < 0) {
				*err = vm->end_error;
				return error_prefix(err, "the VM ended before its agent answered");
			}
			return error_set(err, ECHILD, "the workload ended (status %d) before the VM was ready; "
					 "give a command that keeps running", vm->exit_status);
		}
		if (monotonic_ms() - start_ms >= timeout_ms)
			return error_set(err, ETIMEDOUT, "the guest agent did not answer within %u ms (%s)", timeout_ms,
					 attempt.message[0] ? attempt.message : "no reply");
		usleep(50 * 1000);
	}
}

#define DEFAULT_READY_TIMEOUT_MS 120000

static bool vm_ended(void *opaque)
{
	return vm_finished(opaque);
}

/* START for a guest in standby. A workload that cannot start ends the VM:
 * then the VM's own report (the init's reason) is the error. */
static int start_workload(capsa_vm *vm, const capsa_vm_config *cfg, capsa_error *err)
{
	if (snapshot_start_workload(vm->control_socket, cfg, &vm->plan.workload, vm_ended, vm, err) == 0)
		return 0;
	if (vm_finished(vm)) {
		join_thread(vm);
		if (vm->result < 0)
			*err = vm->end_error;
		else
			error_set(err, ECHILD, "the VM ended (status %d) before its workload started", vm->exit_status);
	}
	return -1;
}

static int start_thread(capsa_vm *vm, capsa_error *err)
{
	if (pthread_create(&vm->thread, NULL, vm_thread, vm) != 0)
		return error_set(err, EAGAIN, "cannot start the VM's thread");
	vm->thread_started = true;
	return 0;
}

static int restore(capsa_vm *vm, const capsa_vm_config *cfg, int kvm_fd, capsa_error *err)
{
	if (snapshot_restore_machine(&vm->machine, cfg, kvm_fd, &vm->snapshot, vm->control_socket, err) < 0)
		return -1;
	vm->root_image = strdup(vm->snapshot.info.root_image);
	if (!vm->root_image)
		return error_set(err, ENOMEM, "out of memory");
	if (start_thread(vm, err) < 0)
		return -1;
	if (virtio_vsock_wait_transport_reset(vm->machine.vsock, (int)cfg->start_timeout_ms) < 0)
		return error_set(err, ETIMEDOUT, "the restored guest did not take its vsock reset within %u ms",
				 cfg->start_timeout_ms);
	if (snapshot_guest_restored(vm->control_socket, cfg->start_timeout_ms, vm_ended, vm, err) < 0) {
		if (vm_finished(vm)) {
			join_thread(vm);
			if (vm->result < 0)
				*err = vm->end_error;
		}
		return -1;
	}
	if (vm->snapshot.info.workload_started)
		return 0;
	return start_workload(vm, cfg, err);
}

static int run_warmups(capsa_vm *vm, const capsa_vm_config *cfg, const capsa_bake_options *bake, capsa_error *err)
{
	for (size_t i = 0; bake->warmups && bake->warmups[i]; i++) {
		capsa_exec_options o = { .argv = bake->warmups[i], .env = (const char *const *)cfg->env.items };
		capsa_exec_result result;
		if (capsa_exec_run(vm->control_socket, &o, NULL, 0, 0, NULL, NULL, NULL, NULL, &result, err) < 0)
			return error_prefix(err, "warm-up command %s", bake->warmups[i][0]);
		if (result.exit_status != 0)
			return error_set(err, ECHILD, "warm-up command %s exited with status %d", bake->warmups[i][0],
					 result.exit_status);
	}
	return 0;
}

/* KVM before the root image: on a host that cannot run the guest, fail
 * before any work. */
/* Whether a TCP socket listens on port in the guest, from its
 * /proc/net/tcp and tcp6 (read through the agent: the image needs no
 * tools). Lines are "sl local_address rem_address st ...", the port the
 * hex digits after the colon, st 0A for LISTEN. */
static int guest_listens(capsa_vm *vm, uint16_t port, bool *listening, capsa_error *err)
{
	static const char *const tables[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	*listening = false;
	for (size_t t = 0; t < 2 && !*listening; t++) {
		_cleanup_close_ int fd = memfd_create("capsa-net-tcp", MFD_CLOEXEC);
		if (fd < 0)
			return error_set_errno(err, errno, "memfd_create");
		capsa_error missing;
		if (capsa_file_read(vm->control_socket, tables[t], fd, &missing) < 0)
			continue; /* no IPv6 in the guest, say */
		_cleanup_fclose_ FILE *f = fdopen(steal_fd(&fd), "r");
		if (!f)
			return error_set_errno(err, errno, "fdopen");
		rewind(f);
		char line[512];
		while (fgets(line, sizeof(line), f)) {
			char local[128], remote[128], st[8];
			if (sscanf(line, " %*[0-9]: %127s %127s %7s", local, remote, st) != 3)
				continue;
			const char *colon = strrchr(local, ':');
			if (colon && strtoul(colon + 1, NULL, 16) == port && strcmp(st, "0A") == 0)
				*listening = true;
		}
	}
	return 0;
}

static int wait_until_listening(capsa_vm *vm, uint16_t port, uint32_t timeout_ms, capsa_error *err)
{
	uint64_t start_ms = monotonic_ms();
	for (;;) {
		bool listening;
		if (guest_listens(vm, port, &listening, err) < 0)
			return -1;
		if (listening)
			return 0;
		if (vm_finished(vm))
			return error_set(err, ECHILD, "the workload ended before it listened on port %u", port);
		if (monotonic_ms() - start_ms >= timeout_ms)
			return error_set(err, ETIMEDOUT, "the workload did not listen on TCP port %u within %u ms", port,
					 timeout_ms);
		usleep(100 * 1000);
	}
}

/* capsa_bake's end: warm up, start the workload when it is to be in the
 * snapshot, save. */
static int bake_snapshot(capsa_vm *vm, const capsa_vm_config *cfg, const capsa_bake_options *bake, capsa_error *err)
{
	struct snapshot_plan *sp = &vm->snapshot;
	if (run_warmups(vm, cfg, bake, err) < 0)
		return -1;
	if (bake->ready_port) {
		if (start_workload(vm, cfg, err) < 0 ||
		    wait_until_listening(vm, bake->ready_port,
					 bake->ready_timeout_ms ? bake->ready_timeout_ms : DEFAULT_READY_TIMEOUT_MS, err) < 0)
			return -1;
		sp->info.workload_started = true;
	}
	return snapshot_save_machine(&vm->machine, cfg->store_dir, &sp->info, sp->replace, err);
}

static int bring_up(capsa_vm *vm, const capsa_vm_config *cfg, const capsa_bake_options *bake, capsa_error *err)
{
	struct snapshot_plan *sp = &vm->snapshot;
	int planned = bake ? snapshot_plan_bake(cfg, &vm->plan, bake->name, bake->replace, sp, err)
			   : snapshot_plan_make(cfg, &vm->plan, sp, err);
	if (planned < 0)
		return -1;

	int kvm_fd = kvm_open(err);
	if (kvm_fd < 0)
		return -1;
	if (sp->action == SNAPSHOT_ACTION_RESTORE)
		return restore(vm, cfg, kvm_fd, err);

	vm->root_image = root_image_path(cfg, &vm->plan, err);
	if (!vm->root_image) {
		close(kvm_fd);
		return -1;
	}
	bool standby = sp->action == SNAPSHOT_ACTION_BAKE;
	if (machine_prepare(&vm->machine, cfg, kvm_fd, vm->root_image, &vm->plan.workload, vm->control_socket, standby,
			    err) < 0 ||
	    start_thread(vm, err) < 0 || wait_for_agent(vm, cfg->start_timeout_ms, err) < 0)
		return -1;
	if (!standby)
		return 0;
	if (snapshot_plan_set_root_image(sp, vm->root_image, err) < 0)
		return -1;
	if (bake)
		return bake_snapshot(vm, cfg, bake, err);
	/* A run that could not save its snapshot still runs: the next one
	 * tries again. */
	capsa_error ignored;
	snapshot_save_machine(&vm->machine, cfg->store_dir, &sp->info, sp->replace, &ignored);
	return start_workload(vm, cfg, err);
}

/* The workload as an exec: init (in hold mode) gave the agent its
 * environment, working directory and user, so only argv is sent. */
static int start_interactive_workload(capsa_vm *vm, const capsa_vm_config *cfg, capsa_error *err)
{
	capsa_exec_options o = {
		.argv = (const char *const *)vm->plan.workload.argv.items,
		.tty = cfg->interactive_tty,
		.rows = cfg->tty_rows,
		.cols = cfg->tty_cols,
		.stdin_open = true,
	};
	vm->workload = capsa_exec_start(vm->control_socket, &o, err);
	return vm->workload ? 0 : error_prefix(err, "starting the workload");
}

static capsa_vm *vm_start(const capsa_vm_config *cfg, const capsa_bake_options *bake, capsa_error *err)
{
	capsa_vm *vm = calloc(1, sizeof(*vm));

	if (!vm) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->join_lock, NULL);
	pthread_cond_init(&vm->finished_cond, NULL);
	if (check_config(cfg, err) < 0 || plan_run(cfg, &vm->plan, err) < 0)
		goto fail;
	if (cfg->control_socket) {
		vm->control_socket = strdup(cfg->control_socket);
		if (!vm->control_socket) {
			error_set(err, ENOMEM, "out of memory");
			goto fail;
		}
	} else if (make_private_socket(vm, err) < 0) {
		goto fail;
	}

	if (bring_up(vm, cfg, bake, err) < 0)
		goto fail;
	if (cfg->interactive && !bake && start_interactive_workload(vm, cfg, err) < 0)
		goto fail;
	return vm;
fail:
	capsa_vm_free(vm);
	return NULL;
}

CAPSA_API capsa_vm *capsa_vm_start(const capsa_vm_config *cfg, capsa_error *err)
{
	return vm_start(cfg, NULL, err);
}

CAPSA_API int capsa_bake(const capsa_vm_config *cfg, const capsa_bake_options *opts, capsa_error *err)
{
	if (opts->name && snapshot_name_check(opts->name, err) < 0)
		return -1;
	if (!cfg->image)
		return error_set(err, EINVAL, "no image to bake");
	capsa_vm *vm = vm_start(cfg, opts, err);
	if (!vm)
		return -1;
	capsa_vm_free(vm);
	return 0;
}

CAPSA_API int capsa_vm_snapshot(capsa_vm *vm, const char *name, bool replace, capsa_error *err)
{
	if (snapshot_name_check(name, err) < 0)
		return -1;
	if (!vm->plan.has_image)
		return error_set(err, ENOTSUP, "only VMs started from an image can be snapshotted");
	if (vm->workload)
		return error_set(err, ENOTSUP, "an interactive VM cannot be snapshotted: its workload is attached to "
				 "this process");
	if (!vm->thread_started || vm_finished(vm))
		return error_set(err, ECHILD, "the VM is not running");
	struct snapshot_info info = {
		.name = strdup(name),
		.image = strdup(vm->plan.image.record.name),
		.manifest_digest = strdup(vm->plan.image.record.manifest_digest),
		.root_image = strdup(vm->root_image),
		.root_image_id = snapshot_file_identity(vm->root_image, err),
		.fingerprint = strdup(""),
		.memory_mib = (uint32_t)(vm->machine.vm->mem.size >> 20),
		.cpus = vm->machine.vm->cpu_count,
		.network = vm->machine.nic != NULL,
		.workload_started = true,
		.created = (int64_t)time(NULL),
	};
	int r;
	if (!info.root_image_id)
		r = -1;
	else if (!info.name || !info.image || !info.manifest_digest || !info.root_image || !info.fingerprint)
		r = error_set(err, ENOMEM, "out of memory");
	else
		r = snapshot_save_machine(&vm->machine, vm->plan.store ? oci_store_root(vm->plan.store) : NULL, &info,
					  replace, err);
	snapshot_info_clear(&info);
	return r;
}

CAPSA_API const char *capsa_vm_control_socket(const capsa_vm *vm)
{
	return vm->control_socket;
}

CAPSA_API int capsa_vm_expose_port(capsa_vm *vm, const char *spec, capsa_error *err)
{
	if (!vm->machine.nic)
		return error_set(err, ENOTSUP, "the VM has no network (it was started with network none)");
	return nic_add_port(vm->machine.nic, spec, err);
}

CAPSA_API capsa_exec *capsa_vm_workload(capsa_vm *vm)
{
	return vm->workload;
}

CAPSA_API int capsa_vm_wait(capsa_vm *vm, int *exit_status, capsa_error *err)
{
	wait_finished(vm, -1);
	join_thread(vm);
	if (vm->result < 0) {
		if (err)
			*err = vm->end_error;
		return -1;
	}
	if (exit_status)
		*exit_status = vm->exit_status;
	return 0;
}

static void force_stop(capsa_vm *vm)
{
	if (!vm->thread_started || vm_finished(vm))
		return;
	vm_request_stop(vm->machine.vm, VM_END_STOPPED, NULL);
	wait_finished(vm, -1);
}

CAPSA_API int capsa_vm_stop(capsa_vm *vm, uint32_t timeout_ms, capsa_error *err)
{
	(void)err;
	if (!vm->thread_started || vm_finished(vm))
		return 0;
	/* The answer is not awaited: the workload's end may power the VM off
	 * before it leaves. A workload that ignores SIGTERM meets the force
	 * below. */
	capsa_error ignored = { 0 };
	int fd = agent_connect(vm->control_socket, CAPSA_AGENT_PORT, 0, 5000, &ignored);
	if (fd >= 0)
		agent_send_workload_signal(fd, SIGTERM, &ignored);
	if (timeout_ms > INT32_MAX)
		timeout_ms = INT32_MAX;
	if (!wait_finished(vm, (int)timeout_ms))
		force_stop(vm);
	if (fd >= 0)
		close(fd);
	join_thread(vm);
	return 0;
}

CAPSA_API void capsa_vm_free(capsa_vm *vm)
{
	if (!vm)
		return;
	capsa_exec_free(vm->workload);
	force_stop(vm);
	join_thread(vm);
	if (vm->machine.vm)
		machine_teardown(&vm->machine);
	run_plan_clear(&vm->plan);
	snapshot_plan_clear(&vm->snapshot);
	free(vm->root_image);
	if (vm->private_dir) {
		if (vm->control_socket)
			unlink(vm->control_socket);
		rmdir(vm->private_dir);
	}
	free(vm->private_dir);
	free(vm->control_socket);
	pthread_cond_destroy(&vm->finished_cond);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->join_lock);
	free(vm);
}
