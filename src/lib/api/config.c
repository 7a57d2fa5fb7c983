/* capsa_vm_config: a plain record of what to run; all checks that need the
 * filesystem or KVM happen in capsa_vm_run. */
#include "api/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "vm/mptable.h"

#define CONFIG_MAX_STRINGS 4096

static void strv_clear(struct strv *v)
{
	for (size_t i = 0; i < v->count; i++)
		free(v->items[i]);
	free(v->items);
	v->items = NULL;
	v->count = 0;
}

static int strv_push(struct strv *v, const char *s, capsa_error *err)
{
	if (v->count >= CONFIG_MAX_STRINGS)
		return error_set(err, E2BIG, "too many entries (the limit is %d)", CONFIG_MAX_STRINGS);
	char **items = realloc(v->items, (v->count + 2) * sizeof(*items));
	if (!items)
		return error_set(err, ENOMEM, "out of memory");
	v->items = items;
	v->items[v->count] = strdup(s);
	if (!v->items[v->count])
		return error_set(err, ENOMEM, "out of memory");
	v->items[++v->count] = NULL;
	return 0;
}

static int replace_string(char **slot, const char *value, const char *what, capsa_error *err)
{
	if (!value || !*value)
		return error_set(err, EINVAL, "%s must not be empty", what);
	char *copy = strdup(value);
	if (!copy)
		return error_set(err, ENOMEM, "out of memory");
	free(*slot);
	*slot = copy;
	return 0;
}

CAPSA_API capsa_vm_config *capsa_vm_config_new(capsa_error *err)
{
	capsa_vm_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	cfg->memory_mib = CONFIG_DEFAULT_MEMORY_MIB;
	cfg->cpus = 1;
	cfg->stdout_fd = 1;
	cfg->stderr_fd = 2;
	cfg->console_fd = -1;
	return cfg;
}

CAPSA_API void capsa_vm_config_free(capsa_vm_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->kernel_path);
	free(cfg->init_path);
	free(cfg->rootfs_dir);
	free(cfg->cache_dir);
	strv_clear(&cfg->argv);
	strv_clear(&cfg->env);
	free(cfg->workdir);
	free(cfg->hostname);
	for (unsigned i = 0; i < cfg->disk_count; i++)
		free(cfg->disks[i].path);
	free(cfg);
}

CAPSA_API int capsa_vm_config_set_kernel(capsa_vm_config *cfg, const char *path, capsa_error *err)
{
	return replace_string(&cfg->kernel_path, path, "kernel path", err);
}

CAPSA_API int capsa_vm_config_set_init(capsa_vm_config *cfg, const char *path, capsa_error *err)
{
	return replace_string(&cfg->init_path, path, "init path", err);
}

CAPSA_API int capsa_vm_config_set_rootfs_dir(capsa_vm_config *cfg, const char *dir, capsa_error *err)
{
	return replace_string(&cfg->rootfs_dir, dir, "root filesystem directory", err);
}

CAPSA_API int capsa_vm_config_set_cache_dir(capsa_vm_config *cfg, const char *dir, capsa_error *err)
{
	return replace_string(&cfg->cache_dir, dir, "cache directory", err);
}

CAPSA_API int capsa_vm_config_set_command(capsa_vm_config *cfg, const char *const *argv, capsa_error *err)
{
	if (!argv || !argv[0] || !argv[0][0])
		return error_set(err, EINVAL, "the command must not be empty");
	struct strv v = { 0 };
	for (size_t i = 0; argv[i]; i++) {
		if (strv_push(&v, argv[i], err) < 0) {
			strv_clear(&v);
			return error_prefix(err, "command");
		}
	}
	strv_clear(&cfg->argv);
	cfg->argv = v;
	return 0;
}

CAPSA_API int capsa_vm_config_add_env(capsa_vm_config *cfg, const char *key_value, capsa_error *err)
{
	const char *eq = key_value ? strchr(key_value, '=') : NULL;
	if (!eq || eq == key_value)
		return error_set(err, EINVAL, "environment entry '%s' is not of the form KEY=VALUE",
				 key_value ? key_value : "");
	size_t key_len = (size_t)(eq - key_value) + 1;
	for (size_t i = 0; i < cfg->env.count; i++) {
		if (strncmp(cfg->env.items[i], key_value, key_len) == 0) {
			char *copy = strdup(key_value);
			if (!copy)
				return error_set(err, ENOMEM, "out of memory");
			free(cfg->env.items[i]);
			cfg->env.items[i] = copy;
			return 0;
		}
	}
	return strv_push(&cfg->env, key_value, err);
}

CAPSA_API int capsa_vm_config_set_workdir(capsa_vm_config *cfg, const char *dir, capsa_error *err)
{
	if (!dir || dir[0] != '/')
		return error_set(err, EINVAL, "working directory '%s' must be an absolute path", dir ? dir : "");
	return replace_string(&cfg->workdir, dir, "working directory", err);
}

CAPSA_API int capsa_vm_config_set_hostname(capsa_vm_config *cfg, const char *name, capsa_error *err)
{
	if (name && strlen(name) > 64)
		return error_set(err, EINVAL, "hostname '%s' is longer than 64 characters", name);
	return replace_string(&cfg->hostname, name, "hostname", err);
}

CAPSA_API int capsa_vm_config_set_memory_mib(capsa_vm_config *cfg, uint32_t mib, capsa_error *err)
{
	if (mib < CONFIG_MIN_MEMORY_MIB || mib > CONFIG_MAX_MEMORY_MIB)
		return error_set(err, EINVAL, "memory of %u MiB is out of range: use %d MiB to %d GiB", mib,
				 CONFIG_MIN_MEMORY_MIB, CONFIG_MAX_MEMORY_MIB / 1024);
	cfg->memory_mib = mib;
	return 0;
}

CAPSA_API int capsa_vm_config_set_cpus(capsa_vm_config *cfg, uint32_t cpus, capsa_error *err)
{
	if (cpus < 1 || cpus > MPTABLE_MAX_CPUS)
		return error_set(err, EINVAL, "%u vCPUs is out of range: use 1 to %d", cpus, MPTABLE_MAX_CPUS);
	cfg->cpus = cpus;
	return 0;
}

CAPSA_API int capsa_vm_config_add_disk(capsa_vm_config *cfg, const char *path, bool read_only, capsa_error *err)
{
	if (cfg->disk_count >= CONFIG_MAX_DISKS)
		return error_set(err, E2BIG, "too many disks: the limit is %d", CONFIG_MAX_DISKS);
	struct config_disk *disk = &cfg->disks[cfg->disk_count];
	disk->path = NULL;
	if (replace_string(&disk->path, path, "disk path", err) < 0)
		return -1;
	disk->read_only = read_only;
	cfg->disk_count++;
	return 0;
}

CAPSA_API int capsa_vm_config_set_output(capsa_vm_config *cfg, int stdout_fd, int stderr_fd, int console_fd,
					 capsa_error *err)
{
	if (stdout_fd < -1 || stderr_fd < -1 || console_fd < -1)
		return error_set(err, EBADF, "output file descriptors must be >= 0, or -1 to discard");
	cfg->stdout_fd = stdout_fd;
	cfg->stderr_fd = stderr_fd;
	cfg->console_fd = console_fd;
	return 0;
}

CAPSA_API const char *capsa_version(void)
{
	return CAPSA_VERSION;
}
