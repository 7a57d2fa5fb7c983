/* capsa run -P: every port the image exposes, published on a free host port. */
#ifndef CAPSA_CLI_PUBLISH_H
#define CAPSA_CLI_PUBLISH_H

#include "capsa.h"

/* Adds a published port to cfg for each of the image's ExposedPorts and
 * prints the mapping ("80/tcp -> 0.0.0.0:32768") on stderr. Prints its
 * errors. */
int cli_publish_all(capsa_vm_config *cfg, const char *image);

#endif
