#include "api/snapshot_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "agent/client.h"
#include "agent_proto.h"
#include "net/nic.h"
#include "oci/digest.h"
#include "snapshot/guest_ram.h"
#include "snapshot/state_file.h"
#include "util/cleanup.h"
#include "util/deadline.h"
#include "util/error.h"
#include "util/fs.h"

#define SNAPSHOT_FORMAT_TAG "capsa-snapshot 1"
#define DEFAULT_HOSTNAME "capsa"

void snapshot_plan_clear(struct snapshot_plan *sp)
{
	free(sp->dir);
	snapshot_info_clear(&sp->info);
	memset(sp, 0, sizeof(*sp));
}

int snapshot_config_image(const capsa_vm_config *cfg, char **image, capsa_error *err)
{
	*image = NULL;
	if (cfg->image || !cfg->snapshot_name) {
		*image = cfg->image ? strdup(cfg->image) : NULL;
		return cfg->image && !*image ? error_set(err, ENOMEM, "out of memory") : 0;
	}
	struct snapshot_info info;
	_cleanup_free_ char *dir = snapshot_find(cfg->store_dir, cfg->snapshot_name, &info, err);
	if (!dir)
		return -1;
	*image = info.image;
	info.image = NULL;
	snapshot_info_clear(&info);
	return 0;
}

/* What makes an automatic snapshot fit a run: the image, the guest kernel
 * and init it booted, and every setting the guest saw at boot. Files are
 * known by identity (size, time, inode), not content: cheap on each run. */
static char *fingerprint(const capsa_vm_config *cfg, const struct run_plan *plan, capsa_error *err)
{
	_cleanup_free_ char *kernel = snapshot_file_identity(cfg->kernel_path, err);
	_cleanup_free_ char *init = kernel ? snapshot_file_identity(cfg->init_path, err) : NULL;
	_cleanup_free_ char *text = NULL;
	if (!init)
		return NULL;
	if (asprintf(&text, "%s\ncapsa %s\nmanifest %s\nkernel %s %s\ninit %s %s\nmemory %u\ncpus %u\nnic %d\n",
		     SNAPSHOT_FORMAT_TAG, CAPSA_VERSION, plan->image.record.manifest_digest, cfg->kernel_path, kernel, cfg->init_path, init,
		     cfg->memory_mib, cfg->cpus, nic_wanted(&cfg->net)) < 0) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	char digest[OCI_DIGEST_STRING_SIZE];
	if (oci_digest_of_buffer(text, strlen(text), digest, err) < 0)
		return NULL;
	/* "sha256:" and 24 hex digits: plenty against collisions among the
	 * snapshots of one user. */
	char *name = NULL;
	if (asprintf(&name, SNAPSHOT_AUTO_PREFIX "%.24s", digest + strlen("sha256:")) < 0) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	return name;
}

static bool snapshottable_config(const capsa_vm_config *cfg)
{
	return cfg->volume_count == 0 && cfg->disk_count == 0 && cfg->named_disk_count == 0;
}

bool snapshot_wanted(const capsa_vm_config *cfg)
{
	return cfg->snapshot_name || (cfg->auto_snapshot && cfg->image && snapshottable_config(cfg));
}

static int fill_bake_info(const capsa_vm_config *cfg, const struct run_plan *plan, struct snapshot_info *info,
			  capsa_error *err)
{
	info->image = strdup(cfg->image ? cfg->image : "");
	info->manifest_digest = strdup(plan->image.record.manifest_digest);
	if (!info->image || !info->manifest_digest)
		return error_set(err, ENOMEM, "out of memory");
	info->memory_mib = cfg->memory_mib;
	info->cpus = cfg->cpus;
	info->network = nic_wanted(&cfg->net);
	info->created = (int64_t)time(NULL);
	return 0;
}

int snapshot_plan_make(const capsa_vm_config *cfg, const struct run_plan *plan, struct snapshot_plan *sp,
		       capsa_error *err)
{
	memset(sp, 0, sizeof(*sp));
	if (cfg->snapshot_name) {
		if (!snapshottable_config(cfg))
			return error_set(err, ENOTSUP, "a snapshot cannot be restored with shared directories or disks");
		sp->dir = snapshot_find(cfg->store_dir, cfg->snapshot_name, &sp->info, err);
		if (!sp->dir)
			return -1;
		if (cfg->interactive && sp->info.workload_started)
			return error_set(err, ENOTSUP, "snapshot '%s' holds a running workload: it cannot be run "
					 "interactively", cfg->snapshot_name);
		if (sp->info.workload_started && (cfg->argv.count || cfg->entrypoint_set))
			return error_set(err, EINVAL, "snapshot '%s' holds a running workload: it takes no command",
					 cfg->snapshot_name);
		sp->action = SNAPSHOT_ACTION_RESTORE;
		return 0;
	}
	if (!cfg->auto_snapshot || !plan->has_image || !snapshottable_config(cfg))
		return 0;

	_cleanup_free_ char *name = fingerprint(cfg, plan, err);
	if (!name)
		return -1;
	capsa_error missing;
	sp->dir = snapshot_find(cfg->store_dir, name, &sp->info, &missing);
	if (sp->dir) {
		/* Its root image must still be the very file the guest mounted. */
		_cleanup_free_ char *id = snapshot_file_identity(sp->info.root_image, &missing);
		if (id && strcmp(id, sp->info.root_image_id) == 0) {
			sp->action = SNAPSHOT_ACTION_RESTORE;
			return 0;
		}
		free(sp->dir);
		sp->dir = NULL;
		snapshot_info_clear(&sp->info);
		sp->replace = true;
	}
	sp->action = SNAPSHOT_ACTION_BAKE;
	sp->info.name = steal_pointer(&name);
	sp->info.fingerprint = strdup(sp->info.name);
	if (!sp->info.fingerprint)
		return error_set(err, ENOMEM, "out of memory");
	return fill_bake_info(cfg, plan, &sp->info, err);
}

int snapshot_plan_bake(const capsa_vm_config *cfg, const struct run_plan *plan, const char *name, bool replace,
		       struct snapshot_plan *sp, capsa_error *err)
{
	memset(sp, 0, sizeof(*sp));
	if (!plan->has_image)
		return error_set(err, EINVAL, "only images can be baked");
	if (!snapshottable_config(cfg))
		return error_set(err, ENOTSUP, "a VM with shared directories or disks cannot be baked");
	sp->action = SNAPSHOT_ACTION_BAKE;
	sp->replace = replace;
	sp->info.fingerprint = fingerprint(cfg, plan, err);
	if (!sp->info.fingerprint)
		return -1;
	sp->info.name = strdup(name ? name : sp->info.fingerprint);
	if (!sp->info.name)
		return error_set(err, ENOMEM, "out of memory");
	if (name)
		sp->info.fingerprint[0] = '\0'; /* a named snapshot is never picked automatically */
	return fill_bake_info(cfg, plan, &sp->info, err);
}

int snapshot_plan_set_root_image(struct snapshot_plan *sp, const char *root_image, capsa_error *err)
{
	free(sp->info.root_image);
	free(sp->info.root_image_id);
	sp->info.root_image = strdup(root_image);
	sp->info.root_image_id = snapshot_file_identity(root_image, err);
	if (!sp->info.root_image_id)
		return -1;
	return sp->info.root_image ? 0 : error_set(err, ENOMEM, "out of memory");
}

static void cleanup_reader(struct state_reader **r)
{
	state_reader_free(*r);
}

int snapshot_restore_machine(struct machine *m, const capsa_vm_config *cfg, int kvm_fd, const struct snapshot_plan *sp,
			     const char *control_socket, capsa_error *err)
{
	char path[4096];
	const struct snapshot_info *info = &sp->info;
	_cleanup_close_ int owned_kvm_fd = kvm_fd;

	/* A rebuilt root image may differ in any block the guest has cached. */
	_cleanup_free_ char *id = snapshot_file_identity(info->root_image, err);
	if (!id)
		return error_prefix(err, "the root image of snapshot '%s'", info->name);
	if (strcmp(id, info->root_image_id) != 0)
		return error_set(err, ESTALE, "the root image of snapshot '%s' has changed since it was made; remove the "
				 "snapshot and make it again", info->name);
	if (info->network != nic_wanted(&cfg->net))
		return error_set(err, EINVAL, "snapshot '%s' was made %s a network; run it %s", info->name,
				 info->network ? "with" : "without", info->network ? "without --network none" :
				 "with --network none");

	if (fs_path_join(path, sizeof(path), sp->dir, "state", err) < 0)
		return -1;
	__attribute__((cleanup(cleanup_reader))) struct state_reader *state = state_reader_open(path, err);
	if (!state)
		return -1;
	struct machine_snapshot_files files = { .state = state, .memory_fd = -1 };
	if (machine_snapshot_shape(state, &files.memory_mib, &files.cpus, err) < 0)
		return -1;
	if (fs_path_join(path, sizeof(path), sp->dir, "memory", err) < 0)
		return -1;
	_cleanup_close_ int memory_fd = guest_ram_open(path, files.memory_mib, err);
	if (memory_fd < 0)
		return -1;
	files.memory_fd = memory_fd;
	int r = machine_prepare_restore(m, cfg, steal_fd(&owned_kvm_fd), info->root_image, control_socket, &files, err);
	return r < 0 ? error_prefix(err, "restoring snapshot '%s'", info->name) : 0;
}

/* The agent may be reached before the guest has handled the vsock reset
 * that follows a restore, which then drops the connection: try again. */
int snapshot_guest_restored(const char *control_socket, uint32_t timeout_ms, bool (*give_up)(void *), void *opaque,
			    capsa_error *err)
{
	uint64_t start_ms = monotonic_ms();
	for (;;) {
		capsa_error attempt = { 0 };
		struct agent_restored restored;
		struct timespec wall;
		clock_gettime(CLOCK_REALTIME, &wall);
		restored.realtime_sec = (uint64_t)wall.tv_sec;
		restored.realtime_nsec = (uint32_t)wall.tv_nsec;
		if (getrandom(restored.entropy, sizeof(restored.entropy), 0) != (ssize_t)sizeof(restored.entropy))
			return error_set_errno(err, errno, "getrandom");
		int fd = agent_connect(control_socket, CAPSA_AGENT_PORT, 0, 1000, &attempt);
		if (fd >= 0) {
			int r = agent_restored(fd, &restored, &attempt);
			close(fd);
			if (r == 0)
				return 0;
			if (attempt.code == EPROTO)
				return error_set(err, EPROTO, "the restored guest's agent: %s", attempt.message);
		}
		if (give_up && give_up(opaque))
			return error_set(err, ECHILD, "the restored guest stopped before its agent answered");
		if (monotonic_ms() - start_ms >= timeout_ms)
			return error_set(err, ETIMEDOUT, "the restored guest's agent did not answer within %u ms (%s)",
					 timeout_ms, attempt.message[0] ? attempt.message : "no reply");
		usleep(2000);
	}
}

int snapshot_start_workload(const char *control_socket, const capsa_vm_config *cfg, const struct workload *w,
			    bool (*give_up)(void *), void *opaque, capsa_error *err)
{
	struct agent_start_request req = {
		.flags = cfg->interactive ? AGENT_START_HOLD : 0,
		.hostname = cfg->hostname && cfg->hostname[0] ? cfg->hostname : DEFAULT_HOSTNAME,
		.argv = (const char *const *)w->argv.items,
		.env = (const char *const *)w->env.items,
		.workdir = w->workdir,
		.user = w->user,
	};
	_cleanup_close_ int fd = agent_connect(control_socket, CAPSA_AGENT_PORT, 0, 5000, err);
	if (fd < 0 || agent_start_workload(fd, &req, give_up, opaque, err) < 0)
		return error_prefix(err, "starting the workload");
	return 0;
}

static int save_into(const char *dir, void *opaque, capsa_error *err)
{
	return machine_save(opaque, dir, err);
}

int snapshot_save_machine(struct machine *m, const char *data_dir, const struct snapshot_info *info, bool replace,
			  capsa_error *err)
{
	if (snapshot_publish(data_dir, info, replace, save_into, m, err) < 0)
		return error_prefix(err, "saving snapshot '%s'", info->name);
	return 0;
}
