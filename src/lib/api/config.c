/* capsa_vm_config: a plain record of what to run; all checks that need the
 * filesystem or KVM happen in capsa_vm_run. */
#include "api/config.h"
#include "api/snapshot_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/volume.h"
#include "util/error.h"
#include "vm/mptable.h"

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
	cfg->start_timeout_ms = CONFIG_DEFAULT_START_TIMEOUT_MS;
	return cfg;
}

CAPSA_API void capsa_vm_config_free(capsa_vm_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->kernel_path);
	free(cfg->init_path);
	free(cfg->rootfs_dir);
	free(cfg->image);
	free(cfg->store_dir);
	free(cfg->user);
	free(cfg->control_socket);
	strv_clear(&cfg->entrypoint);
	free(cfg->cache_dir);
	strv_clear(&cfg->argv);
	strv_clear(&cfg->env);
	free(cfg->workdir);
	free(cfg->hostname);
	free(cfg->snapshot_name);
	for (unsigned i = 0; i < cfg->disk_count; i++)
		free(cfg->disks[i].path);
	for (unsigned i = 0; i < cfg->volume_count; i++) {
		free(cfg->volumes[i].host_dir);
		free(cfg->volumes[i].guest_path);
	}
	for (unsigned i = 0; i < cfg->named_disk_count; i++) {
		free(cfg->named_disks[i].name);
		free(cfg->named_disks[i].guest_path);
	}
	net_config_clear(&cfg->net);
	free(cfg);
}

/* Sets *dst to a copy of src (NULL stays NULL), or to NULL when out of
 * memory: never to src itself, so the copy can always be freed. */
static bool copy_string(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return !src || *dst;
}

static bool copy_strv(struct strv *dst, const struct strv *src)
{
	*dst = (struct strv){ 0 };
	return strv_push_all(dst, (const char *const *)src->items, NULL) == 0;
}

capsa_vm_config *config_copy(const capsa_vm_config *cfg, capsa_error *err)
{
	capsa_vm_config *c = malloc(sizeof(*c));
	if (!c) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	/* Every plain value at once; then each pointer gets its own copy. */
	*c = *cfg;
	bool ok = copy_string(&c->kernel_path, cfg->kernel_path);
	ok &= copy_string(&c->init_path, cfg->init_path);
	ok &= copy_string(&c->rootfs_dir, cfg->rootfs_dir);
	ok &= copy_string(&c->image, cfg->image);
	ok &= copy_string(&c->store_dir, cfg->store_dir);
	ok &= copy_string(&c->cache_dir, cfg->cache_dir);
	ok &= copy_strv(&c->argv, &cfg->argv);
	ok &= copy_strv(&c->entrypoint, &cfg->entrypoint);
	ok &= copy_string(&c->user, cfg->user);
	ok &= copy_string(&c->control_socket, cfg->control_socket);
	ok &= copy_strv(&c->env, &cfg->env);
	ok &= copy_string(&c->workdir, cfg->workdir);
	ok &= copy_string(&c->hostname, cfg->hostname);
	for (unsigned i = 0; i < cfg->disk_count; i++)
		ok &= copy_string(&c->disks[i].path, cfg->disks[i].path);
	for (unsigned i = 0; i < cfg->volume_count; i++) {
		ok &= copy_string(&c->volumes[i].host_dir, cfg->volumes[i].host_dir);
		ok &= copy_string(&c->volumes[i].guest_path, cfg->volumes[i].guest_path);
	}
	for (unsigned i = 0; i < cfg->named_disk_count; i++) {
		ok &= copy_string(&c->named_disks[i].name, cfg->named_disks[i].name);
		ok &= copy_string(&c->named_disks[i].guest_path, cfg->named_disks[i].guest_path);
	}
	ok &= copy_string(&c->snapshot_name, cfg->snapshot_name);
	ok &= net_config_copy(&c->net, &cfg->net) == 0;
	if (!ok) {
		capsa_vm_config_free(c);
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	return c;
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

/* Replaces *slot with a copy of argv; an empty argv only when allowed. */
static int replace_argv(struct strv *slot, const char *const *argv, bool allow_empty, const char *what,
			capsa_error *err)
{
	if (!argv || (!allow_empty && (!argv[0] || !argv[0][0])))
		return error_set(err, EINVAL, "the %s must not be empty", what);
	struct strv v = { 0 };
	if (strv_push_all(&v, argv, err) < 0) {
		strv_clear(&v);
		return error_prefix(err, "%s", what);
	}
	strv_clear(slot);
	*slot = v;
	return 0;
}

CAPSA_API int capsa_vm_config_set_command(capsa_vm_config *cfg, const char *const *argv, capsa_error *err)
{
	return replace_argv(&cfg->argv, argv, false, "command", err);
}

CAPSA_API int capsa_vm_config_set_image(capsa_vm_config *cfg, const char *image, capsa_error *err)
{
	return replace_string(&cfg->image, image, "image", err);
}

CAPSA_API int capsa_vm_config_set_store_dir(capsa_vm_config *cfg, const char *dir, capsa_error *err)
{
	return replace_string(&cfg->store_dir, dir, "image store directory", err);
}

CAPSA_API int capsa_vm_config_set_entrypoint(capsa_vm_config *cfg, const char *const *argv, capsa_error *err)
{
	if (replace_argv(&cfg->entrypoint, argv, true, "entrypoint", err) < 0)
		return -1;
	cfg->entrypoint_set = true;
	return 0;
}

CAPSA_API int capsa_vm_config_set_user(capsa_vm_config *cfg, const char *user, capsa_error *err)
{
	if (user && (strlen(user) > 256 || strchr(user, '\n')))
		return error_set(err, EINVAL, "user '%.80s' is not a user name or uid[:gid]", user);
	return replace_string(&cfg->user, user, "user", err);
}

CAPSA_API int capsa_vm_config_add_env(capsa_vm_config *cfg, const char *key_value, capsa_error *err)
{
	return strv_set_env(&cfg->env, key_value, err);
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

CAPSA_API int capsa_vm_config_set_control_socket(capsa_vm_config *cfg, const char *path, capsa_error *err)
{
	/* Room for the "_<port>" suffix of guest-initiated connections. */
	if (path && strlen(path) > 96)
		return error_set(err, ENAMETOOLONG, "control socket path '%s' is longer than 96 bytes", path);
	return replace_string(&cfg->control_socket, path, "control socket path", err);
}

CAPSA_API int capsa_vm_config_set_interactive(capsa_vm_config *cfg, bool tty, uint16_t rows, uint16_t cols,
					      capsa_error *err)
{
	(void)err;
	cfg->interactive = true;
	cfg->interactive_tty = tty;
	cfg->tty_rows = rows;
	cfg->tty_cols = cols;
	return 0;
}

CAPSA_API int capsa_vm_config_set_snapshot(capsa_vm_config *cfg, const char *name, capsa_error *err)
{
	if (snapshot_name_check(name, err) < 0)
		return -1;
	char *copy = strdup(name);
	if (!copy)
		return error_set(err, ENOMEM, "out of memory");
	free(cfg->snapshot_name);
	cfg->snapshot_name = copy;
	return 0;
}

CAPSA_API int capsa_vm_config_set_auto_snapshot(capsa_vm_config *cfg, bool enabled, capsa_error *err)
{
	(void)err;
	cfg->auto_snapshot = enabled;
	return 0;
}

CAPSA_API int capsa_vm_config_set_start_timeout_ms(capsa_vm_config *cfg, uint32_t ms, capsa_error *err)
{
	if (ms == 0)
		return error_set(err, EINVAL, "the start timeout must be positive");
	cfg->start_timeout_ms = ms;
	return 0;
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
	if (cfg->disk_count + cfg->named_disk_count >= CONFIG_MAX_DISKS)
		return error_set(err, E2BIG, "too many disks: the limit is %d", CONFIG_MAX_DISKS);
	struct config_disk *disk = &cfg->disks[cfg->disk_count];
	disk->path = NULL;
	if (replace_string(&disk->path, path, "disk path", err) < 0)
		return -1;
	disk->read_only = read_only;
	cfg->disk_count++;
	return 0;
}

CAPSA_API int capsa_vm_config_add_volume(capsa_vm_config *cfg, const char *host_dir, const char *guest_path,
					 bool read_only, capsa_error *err)
{
	return capsa_vm_config_add_volume_flags(cfg, host_dir, guest_path, read_only ? CAPSA_VOLUME_READ_ONLY : 0,
						err);
}

CAPSA_API int capsa_vm_config_add_volume_flags(capsa_vm_config *cfg, const char *host_dir, const char *guest_path,
					       uint32_t flags, capsa_error *err)
{
	if (flags & ~(CAPSA_VOLUME_READ_ONLY | CAPSA_VOLUME_DAX))
		return error_set(err, EINVAL, "volume flags %#x: unknown options", flags);
	if (cfg->volume_count >= CONFIG_MAX_VOLUMES)
		return error_set(err, E2BIG, "too many volumes: the limit is %d", CONFIG_MAX_VOLUMES);
	if (!guest_path || guest_path[0] != '/' || !strcmp(guest_path, "/") || strlen(guest_path) >= 4096)
		return error_set(err, EINVAL, "volume path '%s' in the guest must be an absolute path other than /",
				 guest_path ? guest_path : "");
	for (unsigned i = 0; i < cfg->volume_count; i++)
		if (!strcmp(cfg->volumes[i].guest_path, guest_path))
			return error_set(err, EEXIST, "two volumes are mounted on %s", guest_path);
	for (unsigned i = 0; i < cfg->named_disk_count; i++)
		if (!strcmp(cfg->named_disks[i].guest_path, guest_path))
			return error_set(err, EEXIST, "a disk and a volume are both mounted on %s", guest_path);
	struct config_volume *v = &cfg->volumes[cfg->volume_count];
	*v = (struct config_volume){
		.read_only = flags & CAPSA_VOLUME_READ_ONLY,
		.dax = flags & CAPSA_VOLUME_DAX,
	};
	if (replace_string(&v->host_dir, host_dir, "volume directory", err) < 0)
		return -1;
	if (replace_string(&v->guest_path, guest_path, "volume path", err) < 0) {
		free(v->host_dir);
		v->host_dir = NULL;
		return -1;
	}
	cfg->volume_count++;
	return 0;
}

CAPSA_API int capsa_vm_config_add_named_disk(capsa_vm_config *cfg, const char *name, const char *guest_path,
					     uint64_t size_bytes, capsa_error *err)
{
	if (cfg->disk_count + cfg->named_disk_count >= CONFIG_MAX_DISKS)
		return error_set(err, E2BIG, "too many disks: the limit is %d", CONFIG_MAX_DISKS);
	if (volume_name_check(name, err) < 0)
		return -1;
	if (!guest_path || guest_path[0] != '/' || !strcmp(guest_path, "/") || strlen(guest_path) >= 4096)
		return error_set(err, EINVAL, "disk path '%s' in the guest must be an absolute path other than /",
				 guest_path ? guest_path : "");
	if (size_bytes && (size_bytes < VOLUME_MIN_SIZE || size_bytes > VOLUME_MAX_SIZE))
		return error_set(err, EINVAL, "disk size %llu is out of range: use %llu MiB to %llu TiB",
				 (unsigned long long)size_bytes, VOLUME_MIN_SIZE >> 20, VOLUME_MAX_SIZE >> 40);
	for (unsigned i = 0; i < cfg->named_disk_count; i++) {
		if (!strcmp(cfg->named_disks[i].name, name))
			return error_set(err, EEXIST, "volume '%s' is given twice", name);
		if (!strcmp(cfg->named_disks[i].guest_path, guest_path))
			return error_set(err, EEXIST, "two disks are mounted on %s", guest_path);
	}
	for (unsigned i = 0; i < cfg->volume_count; i++)
		if (!strcmp(cfg->volumes[i].guest_path, guest_path))
			return error_set(err, EEXIST, "a disk and a volume are both mounted on %s", guest_path);
	struct config_named_disk *d = &cfg->named_disks[cfg->named_disk_count];
	*d = (struct config_named_disk){ .size = size_bytes };
	if (replace_string(&d->name, name, "volume name", err) < 0)
		return -1;
	if (replace_string(&d->guest_path, guest_path, "disk path", err) < 0) {
		free(d->name);
		d->name = NULL;
		return -1;
	}
	cfg->named_disk_count++;
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
