#ifndef CAPSA_CLI_GUEST_FILES_H
#define CAPSA_CLI_GUEST_FILES_H

/* Each returns a malloc'd path, or NULL when none is found. */
char *guest_kernel_path(const char *option);
char *guest_init_path(const char *option);

#endif
