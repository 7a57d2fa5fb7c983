/* How a start uses snapshots (capsa_vm_start, capsa_bake): restore one,
 * or boot in standby and save one, and the agent calls around both. */
#ifndef CAPSA_API_SNAPSHOT_RUN_H
#define CAPSA_API_SNAPSHOT_RUN_H

#include "api/machine.h"
#include "api/snapshot_store.h"
#include "capsa.h"

enum snapshot_action {
	SNAPSHOT_ACTION_NONE,     /* a plain boot */
	SNAPSHOT_ACTION_RESTORE,  /* restore dir */
	SNAPSHOT_ACTION_BAKE,     /* boot in standby, save info.name, start the workload */
};

struct snapshot_plan {
	enum snapshot_action action;
	char *dir;                   /* RESTORE: the snapshot's directory */
	struct snapshot_info info;   /* RESTORE: its info; BAKE: what to record */
	bool replace;                /* BAKE: an outdated snapshot of that name goes */
};

/* Whether a start of cfg restores or makes a snapshot (it then needs the
 * guest agent to start the workload). */
bool snapshot_wanted(const capsa_vm_config *cfg);

/* The image a config names, directly or through its snapshot (malloc'd,
 * or NULL without either). */
int snapshot_config_image(const capsa_vm_config *cfg, char **image, capsa_error *err);

/* Decides what a start does: restore the config's snapshot, restore the
 * automatic snapshot that fits, bake it, or none of these. */
int snapshot_plan_make(const capsa_vm_config *cfg, const struct run_plan *plan, struct snapshot_plan *sp,
		       capsa_error *err);
void snapshot_plan_clear(struct snapshot_plan *sp);

/* A plan to bake snapshot name (NULL: the automatic snapshot of cfg's
 * image, as capsa run would make it). */
int snapshot_plan_bake(const capsa_vm_config *cfg, const struct run_plan *plan, const char *name, bool replace,
		       struct snapshot_plan *sp, capsa_error *err);

/* The root image of a boot that will be snapshotted, recorded in sp. */
int snapshot_plan_set_root_image(struct snapshot_plan *sp, const char *root_image, capsa_error *err);

/* Creates the machine from sp's snapshot (taking kvm_fd). */
int snapshot_restore_machine(struct machine *m, const capsa_vm_config *cfg, int kvm_fd, const struct snapshot_plan *sp,
			     const char *control_socket, capsa_error *err);

/* Once a restored guest runs: gives it the time and fresh entropy. */
int snapshot_guest_restored(const char *control_socket, uint32_t timeout_ms, bool (*give_up)(void *), void *opaque,
			    capsa_error *err);

/* Starts the workload in a guest in standby (held with AGENT_START_HOLD
 * for interactive runs); stops waiting once give_up(opaque) is true. */
int snapshot_start_workload(const char *control_socket, const capsa_vm_config *cfg, const struct workload *w,
			    bool (*give_up)(void *), void *opaque, capsa_error *err);

/* Saves the running machine as snapshot info->name. */
int snapshot_save_machine(struct machine *m, const char *data_dir, const struct snapshot_info *info, bool replace,
			  capsa_error *err);

#endif
