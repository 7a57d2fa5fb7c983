/* Where the CLI finds the guest kernel and init when not told: an explicit
 * option, then an environment variable, then the build or install layout. */
#include "guest_files.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *existing(const char *path)
{
	return access(path, R_OK) == 0 ? strdup(path) : NULL;
}

char *guest_kernel_path(const char *option)
{
	if (option)
		return strdup(option);
	const char *env = getenv("CAPSA_KERNEL");
	if (env && *env)
		return strdup(env);
	char path[PATH_MAX];
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	if (xdg && xdg[0] == '/')
		snprintf(path, sizeof(path), "%s/capsa/kernel/vmlinux", xdg);
	else if (home && home[0] == '/')
		snprintf(path, sizeof(path), "%s/.cache/capsa/kernel/vmlinux", home);
	else
		return NULL;
	return existing(path);
}

char *guest_init_path(const char *option)
{
	if (option)
		return strdup(option);
	const char *env = getenv("CAPSA_INIT");
	if (env && *env)
		return strdup(env);
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	char path[PATH_MAX + 64];
	/* Build tree: build/capsa next to build/guest/init/capsa-init. */
	snprintf(path, sizeof(path), "%s/guest/init/capsa-init", exe);
	char *found = existing(path);
	if (found)
		return found;
	/* Installed: PREFIX/bin/capsa and PREFIX/libexec/capsa/capsa-init. */
	snprintf(path, sizeof(path), "%s/../libexec/capsa/capsa-init", exe);
	return existing(path);
}
