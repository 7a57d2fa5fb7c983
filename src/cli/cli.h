/* Shared bits of the capsa command's verbs. */
#ifndef CAPSA_CLI_H
#define CAPSA_CLI_H

#include "capsa.h"

/* capsa's own failures exit with this code (as docker does), so they can
 * be told apart from the workload's exit status. */
#define CLI_EXIT_FAILURE 125

/* Prints "capsa: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_error_from(const capsa_error *err);

int cmd_run(int argc, char **argv);

#endif
