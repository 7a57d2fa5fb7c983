/* The state of VMs started with `capsa run -d`: one directory per VM under
 * $XDG_RUNTIME_DIR/capsa (or /tmp/capsa-<uid>), shared by the process that
 * runs the VM and the verbs that look at it (ps, exec, logs, stop, rm, cp).
 *
 * A VM is running exactly while some process holds an exclusive flock on
 * its "lock" file: the process running the VM takes it before anything
 * else and keeps it until it exits, so a crash releases it too. The pid in
 * "info" is only trusted while that lock is held. */
#ifndef CAPSA_CLI_INSTANCES_H
#define CAPSA_CLI_INSTANCES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define INSTANCE_ID_LEN 12
#define INSTANCE_NAME_MAX 128

/* Files in a VM's state directory. */
#define INSTANCE_INFO "info"
#define INSTANCE_SOCKET "control.sock"
#define INSTANCE_LOCK "lock"
#define INSTANCE_LOG "log"
#define INSTANCE_CONSOLE_LOG "console.log"
#define INSTANCE_EXIT "exit"

/* Logs rotate at this size, keeping one older file (NAME.1). */
#define INSTANCE_LOG_MAX (8u * 1024 * 1024)

enum instance_state {
	INSTANCE_RUNNING,
	INSTANCE_EXITED,  /* ended; exit_status is set */
	INSTANCE_DEAD,    /* its process ended without recording an exit status */
};

struct instance {
	char id[INSTANCE_ID_LEN + 1];
	char *dir;      /* the state directory */
	char *name;     /* "" when none was given */
	char *image;    /* image reference or root filesystem directory */
	char *command;  /* for display */
	int64_t created;
	pid_t pid;      /* the process running the VM; 0 if not known yet */
	enum instance_state state;
	int exit_status;
};

/* The directory holding every VM's state directory (malloc'd), created
 * (0700) when create is set; NULL after printing why. */
char *instances_root(bool create);

/* Whether name is acceptable for --name (docker's rule). */
bool instance_name_valid(const char *name);

/* Creates a new VM's state directory with its info (pid 0 for now) and
 * returns with the VM's lock held through *lock_fd, so the VM counts as
 * running from the start. Fails (after printing why) when name is taken. */
int instance_create(struct instance *inst, const char *name, const char *image, const char *command,
		    int *lock_fd);
/* Rewrites the info file (atomically), e.g. once the pid is known. */
int instance_write_info(const struct instance *inst);

/* Finds a VM by id, name or unique id prefix and loads it with its state;
 * prints a one-line error when there is no such VM (or the prefix is
 * ambiguous). */
int instance_find(const char *ref, struct instance *inst);
/* As instance_find, for a VM that must be running; *socket (malloc'd)
 * gets its control socket. */
int instance_find_running(const char *ref, struct instance *inst, char **socket);
/* Every VM with a state directory, newest first. */
int instance_list(struct instance **list, size_t *count);
void instance_list_free(struct instance *list, size_t count);
void instance_clear(struct instance *inst);

/* Reloads inst->state and inst->exit_status. */
void instance_refresh_state(struct instance *inst);
/* Whether the VM's lock is still held. */
bool instance_is_running(const struct instance *inst);
/* Waits up to timeout_ms for the VM's process to end; true if it did. */
bool instance_wait_stopped(const struct instance *inst, int timeout_ms);

/* "<dir>/<file>", malloc'd (NULL when out of memory). */
char *instance_path(const struct instance *inst, const char *file);
/* Records the exit status (atomically). */
int instance_write_exit(const char *dir, int status);
/* "running", "exited (N)" or "dead". */
void instance_describe_state(const struct instance *inst, char *buf, size_t size);
/* Removes a VM that is not running: its control socket when it died
 * without removing it. */
void instance_remove_stale_socket(const struct instance *inst);
/* Removes the state directory and everything in it. */
int instance_remove_dir(const struct instance *inst);

/* Ends a running VM (stop.c): SIGTERM to its workload, up to timeout_ms
 * for it to end, then SIGKILL to the process running it (recorded as
 * exit status 137). 0 once it no longer runs; prints why not otherwise. */
int instance_stop(struct instance *inst, const char *ref, int timeout_ms);

/* The user-facing "no VM" error, shared by the verbs. */
void instance_not_found(const char *ref);

#endif
