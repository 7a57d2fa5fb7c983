/* Shared bits of the capsa command's verbs. */
#ifndef CAPSA_CLI_H
#define CAPSA_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsa.h"

/* capsa's own failures exit with this code (as docker does), so they can
 * be told apart from the workload's exit status. */
#define CLI_EXIT_FAILURE 125

/* Prints "capsa: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_error_from(const capsa_error *err);

int cmd_run(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_images(int argc, char **argv);
int cmd_rmi(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_volume(int argc, char **argv);
int cmd_bake(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_snapshots(int argc, char **argv);

/* "512", "512M", "2G" (MiB by default) to MiB; -1 if malformed. */
int cli_parse_memory(const char *text, uint32_t *mib);
int cli_parse_cpus(const char *text, uint32_t *cpus);

/* The default image store, or NULL after printing why. */
capsa_image_store *cli_open_store(void);
/* "1.5 MiB" */
void cli_format_size(uint64_t bytes, char *buf, size_t size);
/* "512M", "2G", "1T", "4096" (bytes) to bytes; -1 if it is not a size. */
int cli_parse_size(const char *text, uint64_t *bytes);

/* Blocks the signals a session relays (call before any thread exists)
 * and returns a signalfd for them, or -1 after printing why. */
int cli_session_block_signals(void);
/* Relays a started process's stdin (when interactive), output, signals
 * and, with tty, terminal size until it exits; returns its exit status
 * (125 on capsa errors). The caller frees ex afterwards. */
int cli_session_run(capsa_exec *ex, int signal_fd, bool interactive, bool tty);
/* This terminal's size, 0 x 0 when there is none. */
void cli_window_size(uint16_t *rows, uint16_t *cols);

/* Adds the entries of a docker-style env file; prints errors. */
int cli_add_env_file(capsa_vm_config *cfg, const char *path);

/* Pull settings shared by `capsa pull` and `capsa run`. */
struct cli_pull_options {
	const char *platform;
	const char **insecure;  /* NULL-terminated, borrowed strings */
	size_t n_insecure;
	bool quiet;
};

int cli_pull_options_add_insecure(struct cli_pull_options *o, const char *host);
void cli_pull_options_free(struct cli_pull_options *o);
/* Pulls ref with progress on stderr unless quiet; prints errors. *name
 * (may be NULL) gets the stored name. */
int cli_pull(capsa_image_store *store, const char *ref, const struct cli_pull_options *o, char **name);

/* What `capsa run -d` records about the VM it starts. */
struct cli_detach {
	const char *name;                /* --name, or NULL */
	const char *image;               /* the image reference, or the --rootfs directory */
	const char *entrypoint;          /* --entrypoint, or NULL */
	const char *const *command;      /* the command given, or NULL */
};

/* Checks the detach options before any work (pulling, building); prints
 * what is wrong. */
int cli_detach_check(const struct cli_detach *d, bool detached);
/* Starts the VM cfg describes in a process of its own and prints its id
 * once it is ready. Returns the exit status for capsa run (in the process
 * that ran the VM too, once the VM has ended). */
int cli_run_detached(capsa_vm_config *cfg, const struct cli_detach *d);

#endif
