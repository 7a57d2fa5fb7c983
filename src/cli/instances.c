/* The state directories of detached VMs (see instances.h). */
#include "instances.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* An info file is a few short lines; anything bigger is not ours. */
#define INFO_MAX (64 * 1024)

char *instances_root(bool create)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char *root;
	int n;

	/* The fallback lives in a shared /tmp, so it must be ours and private. */
	if (xdg && xdg[0] == '/')
		n = asprintf(&root, "%s/capsa", xdg);
	else
		n = asprintf(&root, "/tmp/capsa-%u", (unsigned)getuid());
	if (n < 0) {
		cli_error("out of memory");
		return NULL;
	}
	if (create && mkdir(root, 0700) < 0 && errno != EEXIST) {
		cli_error("cannot create %s: %s", root, strerror(errno));
		free(root);
		return NULL;
	}
	struct stat st;
	if (lstat(root, &st) < 0) {
		if (errno == ENOENT && !create)
			return root;  /* nothing started yet */
		cli_error("cannot access %s: %s", root, strerror(errno));
		free(root);
		return NULL;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) {
		cli_error("%s is not a private directory of yours (mode 0700); remove it or set XDG_RUNTIME_DIR",
			  root);
		free(root);
		return NULL;
	}
	return root;
}

bool instance_name_valid(const char *name)
{
	if (!isalnum((unsigned char)name[0]) || strlen(name) > INSTANCE_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
			return false;
	}
	return true;
}

static bool is_id(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++) {
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	}
	return i == INSTANCE_ID_LEN;
}

char *instance_path(const struct instance *inst, const char *file)
{
	char *path;

	if (asprintf(&path, "%s/%s", inst->dir, file) < 0)
		return NULL;
	return path;
}

/* Writes content to dir/name through a temporary file and a rename, so
 * readers never see half of it. */
static int write_file_atomic(const char *dir, const char *name, const char *content)
{
	char tmp[4096], path[4096];
	size_t len = strlen(content);

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= sizeof(tmp) ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, content, len);
	if (n != (ssize_t)len) {
		int saved = n < 0 ? errno : EIO;
		close(fd);
		unlink(tmp);
		errno = saved;
		return -1;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		int saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	return 0;
}

/* Values are one line: backslash and newline are escaped. */
static void append_value(char **buf, size_t *len, size_t *cap, const char *key, const char *value)
{
	size_t need = *len + strlen(key) + 2 * strlen(value) + 3;

	if (!*buf)
		return;
	if (need > *cap) {
		char *grown = realloc(*buf, need * 2);
		if (!grown) {
			free(*buf);
			*buf = NULL;
			return;
		}
		*buf = grown;
		*cap = need * 2;
	}
	char *p = *buf + *len;
	p += sprintf(p, "%s=", key);
	for (const char *v = value; *v; v++) {
		if (*v == '\\')
			*p++ = '\\', *p++ = '\\';
		else if (*v == '\n')
			*p++ = '\\', *p++ = 'n';
		else
			*p++ = *v;
	}
	*p++ = '\n';
	*p = '\0';
	*len = (size_t)(p - *buf);
}

int instance_write_info(const struct instance *inst)
{
	size_t len = 0, cap = 256;
	char *buf = malloc(cap);
	char number[32];

	if (buf)
		buf[0] = '\0';
	append_value(&buf, &len, &cap, "id", inst->id);
	append_value(&buf, &len, &cap, "name", inst->name ? inst->name : "");
	append_value(&buf, &len, &cap, "image", inst->image ? inst->image : "");
	append_value(&buf, &len, &cap, "command", inst->command ? inst->command : "");
	snprintf(number, sizeof(number), "%lld", (long long)inst->created);
	append_value(&buf, &len, &cap, "created", number);
	snprintf(number, sizeof(number), "%ld", (long)inst->pid);
	append_value(&buf, &len, &cap, "pid", number);
	if (!buf) {
		cli_error("out of memory");
		return -1;
	}
	int r = write_file_atomic(inst->dir, INSTANCE_INFO, buf);
	if (r < 0)
		cli_error("cannot write %s/%s: %s", inst->dir, INSTANCE_INFO, strerror(errno));
	free(buf);
	return r;
}

/* Reads a small file into a NUL-terminated buffer; NULL if missing or too big. */
static char *read_small_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	char *buf = malloc(INFO_MAX + 1);
	size_t len = 0;
	ssize_t n = 0;
	while (buf && len < INFO_MAX && (n = read(fd, buf + len, INFO_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (!buf || n < 0 || len >= INFO_MAX) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

static void unescape_in_place(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (*s == '\\' && s[1] == 'n')
			*out++ = '\n', s++;
		else if (*s == '\\' && s[1] == '\\')
			*out++ = '\\', s++;
		else
			*out++ = *s;
	}
	*out = '\0';
}

static int parse_info(struct instance *inst, char *text)
{
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		char *value = eq + 1;
		unescape_in_place(value);
		char **field = NULL;
		if (!strcmp(line, "name"))
			field = &inst->name;
		else if (!strcmp(line, "image"))
			field = &inst->image;
		else if (!strcmp(line, "command"))
			field = &inst->command;
		else if (!strcmp(line, "created"))
			inst->created = strtoll(value, NULL, 10);
		else if (!strcmp(line, "pid"))
			inst->pid = (pid_t)strtol(value, NULL, 10);
		if (field) {
			free(*field);
			*field = strdup(value);
			if (!*field)
				return -1;
		}
	}
	if (inst->pid < 0)
		inst->pid = 0;
	/* Older or partial files: show empty fields rather than crash. */
	char **fields[] = { &inst->name, &inst->image, &inst->command };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (!*fields[i] && !(*fields[i] = strdup("")))
			return -1;
	}
	return 0;
}

void instance_clear(struct instance *inst)
{
	free(inst->dir);
	free(inst->name);
	free(inst->image);
	free(inst->command);
	memset(inst, 0, sizeof(*inst));
}

/* Loads root/id; -1 when it is not (or not yet) a VM's state directory. */
static int instance_load(const char *root, const char *id, struct instance *inst)
{
	memset(inst, 0, sizeof(*inst));
	snprintf(inst->id, sizeof(inst->id), "%s", id);
	if (asprintf(&inst->dir, "%s/%s", root, id) < 0) {
		inst->dir = NULL;
		return -1;
	}
	char *path = instance_path(inst, INSTANCE_INFO);
	char *text = path ? read_small_file(path) : NULL;
	free(path);
	if (!text || parse_info(inst, text) < 0) {
		free(text);
		instance_clear(inst);
		return -1;
	}
	free(text);
	instance_refresh_state(inst);
	return 0;
}

bool instance_is_running(const struct instance *inst)
{
	char *path = instance_path(inst, INSTANCE_LOCK);
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	bool running = false;

	free(path);
	if (fd < 0)
		return false;
	/* Shared, so that two lookers never mistake each other for the VM. */
	if (flock(fd, LOCK_SH | LOCK_NB) < 0)
		running = errno == EWOULDBLOCK;
	close(fd);
	return running;
}

void instance_refresh_state(struct instance *inst)
{
	/* The lock first: the exit status is written before it is released. */
	if (instance_is_running(inst)) {
		inst->state = INSTANCE_RUNNING;
		return;
	}
	char *path = instance_path(inst, INSTANCE_EXIT);
	char *text = path ? read_small_file(path) : NULL;
	char *end;
	free(path);
	inst->state = INSTANCE_DEAD;
	if (text) {
		long status = strtol(text, &end, 10);
		if (end != text && status >= 0 && status <= 255) {
			inst->state = INSTANCE_EXITED;
			inst->exit_status = (int)status;
		}
	}
	free(text);
}

bool instance_wait_stopped(const struct instance *inst, int timeout_ms)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (!instance_is_running(inst))
			return true;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (elapsed >= timeout_ms)
			return false;
		usleep(50 * 1000);
	}
}

static int compare_newest_first(const void *a, const void *b)
{
	const struct instance *x = a, *y = b;

	if (x->created != y->created)
		return x->created > y->created ? -1 : 1;
	return strcmp(x->id, y->id);
}

void instance_list_free(struct instance *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		instance_clear(&list[i]);
	free(list);
}

int instance_list(struct instance **list, size_t *count)
{
	char *root = instances_root(false);
	struct instance *items = NULL;
	size_t n = 0, cap = 0;

	*list = NULL;
	*count = 0;
	if (!root)
		return -1;
	DIR *d = opendir(root);
	if (!d) {
		int saved = errno;
		if (saved == ENOENT) {
			free(root);
			return 0;
		}
		cli_error("cannot read %s: %s", root, strerror(saved));
		free(root);
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_id(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			struct instance *grown = realloc(items, cap * sizeof(*items));
			if (!grown) {
				closedir(d);
				instance_list_free(items, n);
				free(root);
				cli_error("out of memory");
				return -1;
			}
			items = grown;
		}
		if (instance_load(root, de->d_name, &items[n]) == 0)
			n++;
	}
	closedir(d);
	free(root);
	if (n)
		qsort(items, n, sizeof(*items), compare_newest_first);
	*list = items;
	*count = n;
	return 0;
}

void instance_not_found(const char *ref)
{
	cli_error("no VM '%s'; 'capsa ps -a' lists them", ref);
}

static void instance_move(struct instance *dst, struct instance *src)
{
	*dst = *src;
	memset(src, 0, sizeof(*src));
}

int instance_find(const char *ref, struct instance *inst)
{
	struct instance *list;
	size_t n, match = 0, matches = 0;

	memset(inst, 0, sizeof(*inst));
	if (instance_list(&list, &n) < 0)
		return -1;
	/* An exact id, then a name, then an id prefix, as docker resolves them. */
	for (size_t i = 0; i < n && !matches; i++) {
		if (!strcmp(list[i].id, ref))
			match = i, matches = 1;
	}
	for (size_t i = 0; i < n && !matches; i++) {
		if (list[i].name[0] && !strcmp(list[i].name, ref))
			match = i, matches = 1;
	}
	if (!matches && ref[0]) {
		for (size_t i = 0; i < n; i++) {
			if (!strncmp(list[i].id, ref, strlen(ref))) {
				match = i;
				matches++;
			}
		}
	}
	if (matches == 1)
		instance_move(inst, &list[match]);
	instance_list_free(list, n);
	if (matches == 0) {
		instance_not_found(ref);
		return -1;
	}
	if (matches > 1) {
		cli_error("'%s' matches %zu VMs; give more of the id", ref, matches);
		return -1;
	}
	return 0;
}

int instance_find_running(const char *ref, struct instance *inst, char **socket)
{
	char state[32];

	*socket = NULL;
	if (instance_find(ref, inst) < 0)
		return -1;
	if (inst->state != INSTANCE_RUNNING) {
		instance_describe_state(inst, state, sizeof(state));
		cli_error("VM '%s' is not running (%s); 'capsa logs %s' shows its output", ref, state, ref);
		instance_clear(inst);
		return -1;
	}
	*socket = instance_path(inst, INSTANCE_SOCKET);
	if (!*socket) {
		cli_error("out of memory");
		instance_clear(inst);
		return -1;
	}
	return 0;
}

/* Whether another VM uses name; owner gets its id. */
static bool name_taken(const char *root, const char *name, char *owner, size_t owner_size)
{
	DIR *d = opendir(root);
	struct dirent *de;
	bool taken = false;

	if (!d)
		return false;
	while (!taken && (de = readdir(d))) {
		struct instance other;
		if (!is_id(de->d_name) || instance_load(root, de->d_name, &other) < 0)
			continue;
		if (!strcmp(other.name, name)) {
			taken = true;
			snprintf(owner, owner_size, "%s", other.id);
		}
		instance_clear(&other);
	}
	closedir(d);
	return taken;
}

static int random_id(char id[INSTANCE_ID_LEN + 1])
{
	unsigned char bytes[INSTANCE_ID_LEN / 2];

	if (getrandom(bytes, sizeof(bytes), 0) != (ssize_t)sizeof(bytes))
		return -1;
	for (size_t i = 0; i < sizeof(bytes); i++)
		sprintf(id + 2 * i, "%02x", bytes[i]);
	return 0;
}

int instance_create(struct instance *inst, const char *name, const char *image, const char *command,
		    int *lock_fd)
{
	char *root = instances_root(true);
	char *root_lock = NULL;
	int root_fd = -1, fd = -1, r = -1;

	memset(inst, 0, sizeof(*inst));
	*lock_fd = -1;
	if (!root)
		return -1;
	/* Held while the name is checked and claimed, so two runs cannot both
	 * take it. */
	if (asprintf(&root_lock, "%s/.lock", root) < 0) {
		root_lock = NULL;
		cli_error("out of memory");
		goto out;
	}
	root_fd = open(root_lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (root_fd < 0 || flock(root_fd, LOCK_EX) < 0) {
		cli_error("cannot lock %s: %s", root_lock, strerror(errno));
		goto out;
	}
	char owner[INSTANCE_ID_LEN + 1];
	if (name && name[0] && name_taken(root, name, owner, sizeof(owner))) {
		cli_error("the name '%s' is already used by VM %s; remove it with 'capsa rm %s' or choose another",
			  name, owner, name);
		goto out;
	}
	for (int attempt = 0;; attempt++) {
		if (random_id(inst->id) < 0) {
			cli_error("cannot get random bytes for an id: %s", strerror(errno));
			goto out;
		}
		free(inst->dir);
		if (asprintf(&inst->dir, "%s/%s", root, inst->id) < 0) {
			inst->dir = NULL;
			cli_error("out of memory");
			goto out;
		}
		if (mkdir(inst->dir, 0700) == 0)
			break;
		if (errno != EEXIST || attempt == 16) {
			cli_error("cannot create %s: %s", inst->dir, strerror(errno));
			goto out;
		}
	}
	char *lock_path = instance_path(inst, INSTANCE_LOCK);
	fd = lock_path ? open(lock_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		cli_error("cannot lock %s: %s", lock_path ? lock_path : inst->dir, strerror(errno));
		free(lock_path);
		goto out_remove;
	}
	free(lock_path);
	inst->name = strdup(name ? name : "");
	inst->image = strdup(image ? image : "");
	inst->command = strdup(command ? command : "");
	inst->created = (int64_t)time(NULL);
	inst->state = INSTANCE_RUNNING;
	if (!inst->name || !inst->image || !inst->command) {
		cli_error("out of memory");
		goto out_remove;
	}
	if (instance_write_info(inst) < 0)
		goto out_remove;
	*lock_fd = fd;
	fd = -1;
	r = 0;
	goto out;
out_remove:
	instance_remove_dir(inst);
out:
	if (fd >= 0)
		close(fd);
	if (root_fd >= 0)
		close(root_fd);
	if (r < 0)
		instance_clear(inst);
	free(root_lock);
	free(root);
	return r;
}

int instance_write_exit(const char *dir, int status)
{
	char text[16];

	snprintf(text, sizeof(text), "%d\n", status);
	return write_file_atomic(dir, INSTANCE_EXIT, text);
}

void instance_describe_state(const struct instance *inst, char *buf, size_t size)
{
	switch (inst->state) {
	case INSTANCE_RUNNING:
		snprintf(buf, size, "running");
		break;
	case INSTANCE_EXITED:
		snprintf(buf, size, "exited (%d)", inst->exit_status);
		break;
	case INSTANCE_DEAD:
		snprintf(buf, size, "dead");
		break;
	}
}

void instance_remove_stale_socket(const struct instance *inst)
{
	char *path = instance_path(inst, INSTANCE_SOCKET);

	if (path && !instance_is_running(inst))
		unlink(path);
	free(path);
}

int instance_remove_dir(const struct instance *inst)
{
	DIR *d = opendir(inst->dir);
	struct dirent *de;

	if (!d) {
		if (errno == ENOENT)
			return 0;
		cli_error("cannot remove %s: %s", inst->dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	if (rmdir(inst->dir) < 0 && errno != ENOENT) {
		cli_error("cannot remove %s: %s", inst->dir, strerror(errno));
		return -1;
	}
	return 0;
}
