/* capsa guest init: PID 1 of every capsa microVM.
 *
 * The kernel starts it from the initramfs the host generated (the files in
 * it are listed in guest_abi.h). It turns the read-only root image into a
 * writable root (squashfs lower + tmpfs upper under overlayfs), switches
 * into it, runs the workload with its stdout and stderr relayed to their
 * serial ports, reaps every process, and reports the workload's exit status
 * to the VMM through an I/O port before powering off.
 *
 * PID 1 must never return: the kernel panics when it exits. Every failure
 * ends in init_fail(), which says what went wrong on the console and on the
 * workload's stderr and reports CAPSA_EXIT_INIT_FAILED to the VMM.
 *
 * Built static with musl; one file so the whole boot path reads top down
 * (user.c resolves the workload's user).
 */
#include "agent.h"
#include "standby.h"
#include "agent_proto.h"
#include "disks.h"
#include "guest_abi.h"
#include "net.h"
#include "user.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEFAULT_HOSTNAME "capsa"
#define DEFAULT_WORKDIR "/"

/* Mount points inside the initramfs; init creates them itself. */
#define LOWER_DIR "/mnt/lower"   /* the root image, read-only */
#define RW_DIR    "/mnt/rw"      /* tmpfs holding the overlay's upper and work dirs */
#define NEW_ROOT  "/mnt/root"    /* the overlay that becomes / */

/* How long to wait for the root image device to appear. Built-in virtio
 * drivers have probed before init runs, so this only matters for unusual
 * kernels; the success path never sleeps. */
#define ROOT_DEVICE_TRIES 200
#define ROOT_DEVICE_WAIT_US 10000

/* Where messages go: the kernel console (fd 2 as the kernel opened it,
 * later CAPSA_CONSOLE_TTY) and, once open, the workload's stderr port so
 * the user sees why the run failed even with the console discarded. */
static int console_fd = 2;
static int stdout_tty = -1;
static int stderr_tty = -1;
static int null_fd = -1;

/* Signals PID 1 takes through a signalfd: SIGCHLD to reap, the others to
 * forward to the workload. They stay blocked from the start so none is
 * lost, and a blocked signal reaches PID 1 even without a handler. */
static const int forwarded_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

struct config {
	char **argv;      /* NULL-terminated, argv[0] non-empty */
	char **env;       /* NULL-terminated, KEY=VALUE, later entries already applied */
	char *workdir;
	char *hostname;
	char *user;       /* docker's USER syntax; NULL for root */
	bool hold;        /* run no workload: the host starts it through the agent */
	bool standby;     /* wait for the host's START (snapshots): see standby.h */
	char **volumes;   /* tag, path, "ro"/"rw" triples; NULL-terminated */
	char **disk_mounts; /* device, path pairs; NULL-terminated */
	size_t env_count;
};

/* ---- messages and the end of the run ---------------------------------- */

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;  /* nowhere else to report it */
		p += n;
		len -= (size_t)n;
	}
}

static void vsay(const char *fmt, va_list ap)
{
	char msg[1024];
	int n = snprintf(msg, sizeof(msg), "capsa: guest init: ");

	vsnprintf(msg + n, sizeof(msg) - (size_t)n - 1, fmt, ap);
	strcat(msg, "\n");
	if (console_fd >= 0)
		write_all(console_fd, msg, strlen(msg));
	if (stderr_tty >= 0 && stderr_tty != console_fd)
		write_all(stderr_tty, msg, strlen(msg));
}

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

/* Reports value to the VMM and powers off. Everything written to the ports
 * must be out before the report: the VMM ends the run on that write. */
__attribute__((noreturn)) static void finish(unsigned int value)
{
	disks_unmount();
	sync();
	if (stdout_tty >= 0)
		tcdrain(stdout_tty);
	if (stderr_tty >= 0)
		tcdrain(stderr_tty);
	if (console_fd >= 0)
		tcdrain(console_fd);

	if (ioperm(CAPSA_EXIT_PORT, 4, 1) == 0) {
		outl(value, CAPSA_EXIT_PORT);
		reboot(RB_POWER_OFF);
	}
	/* Without port access (a kernel lacking CONFIG_X86_IOPL_IOPERM) a
	 * reset at least ends the run: with no ACPI, power-off would only
	 * halt the CPU and leave the VMM waiting. */
	say("cannot report exit status %u (ioperm: %s)", value, strerror(errno));
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

/* A setup step failed with errno err: explain, report, power off. */
__attribute__((noreturn, format(printf, 2, 3))) static void init_fail(int err, const char *fmt, ...)
{
	char what[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (err)
		say("%s: %s", what, strerror(err));
	else
		say("%s", what);
	finish(CAPSA_EXIT_INIT_FAILED | ((unsigned int)err & 0xff));
}

/* ---- reading the configuration from the initramfs --------------------- */

/* Reads a whole config file and NUL-terminates it. Returns NULL with
 * *len = 0 if the file does not exist (the setting was not given). */
static char *read_config_file(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd;

	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return NULL;
		init_fail(errno, "open %s", path);
	}
	if (fstat(fd, &st) < 0)
		init_fail(errno, "stat %s", path);
	if (!S_ISREG(st.st_mode) || st.st_size > CAPSA_CFG_MAX_BYTES)
		init_fail(EINVAL, "%s is not a regular file of at most %d bytes", path, CAPSA_CFG_MAX_BYTES);

	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		init_fail(ENOMEM, "reading %s", path);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			init_fail(errno, "read %s", path);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	return buf;
}

/* Splits "a\0b\0c\0" into a NULL-terminated array pointing into buf. Empty
 * strings are kept (argv may hold ""); a last string without its NUL
 * counts too, read_config_file having terminated the buffer. */
static char **split_list(char *buf, size_t len)
{
	size_t count = 0, i;
	char **list;
	char *p;

	for (i = 0; i < len; i++)
		if (buf[i] == '\0')
			count++;
	if (len > 0 && buf[len - 1] != '\0')
		count++;

	list = calloc(count + 1, sizeof(*list));
	if (!list)
		init_fail(ENOMEM, "splitting a config list");
	p = buf;
	for (i = 0; i < count; i++) {
		list[i] = p;
		p += strlen(p) + 1;
	}
	return list;
}

/* Sets entry ("KEY=VALUE") in the NULL-terminated *env of *count entries,
 * replacing an earlier entry with the same KEY. Entries without '=' are
 * dropped: they cannot be expressed in an environment. */
static void env_set(char ***env, size_t *count, char *entry)
{
	const char *eq = strchr(entry, '=');
	size_t key_len, i;
	char **grown;

	if (!eq || eq == entry)
		return;
	key_len = (size_t)(eq - entry) + 1;  /* including '=' */
	for (i = 0; i < *count; i++) {
		if (strncmp((*env)[i], entry, key_len) == 0) {
			(*env)[i] = entry;
			return;
		}
	}
	grown = realloc(*env, (*count + 2) * sizeof(*grown));
	if (!grown)
		init_fail(ENOMEM, "building the environment");
	grown[(*count)++] = entry;
	grown[*count] = NULL;
	*env = grown;
}

static const char *env_get(char **env, const char *key)
{
	size_t key_len = strlen(key);

	for (; *env; env++)
		if (strncmp(*env, key, key_len) == 0 && (*env)[key_len] == '=')
			return *env + key_len + 1;
	return NULL;
}

/* The workload's environment: defaults first, so the image's and the
 * user's entries (NULL-terminated, or NULL) replace them. */
static void compose_env(struct config *cfg, char *const *entries)
{
	static char default_path[] = "PATH=" DEFAULT_PATH;
	size_t count = 0;
	char *hostname_entry;

	cfg->env = calloc(1, sizeof(*cfg->env));
	if (!cfg->env)
		init_fail(ENOMEM, "building the environment");
	env_set(&cfg->env, &count, default_path);
	if (asprintf(&hostname_entry, "HOSTNAME=%s", cfg->hostname) < 0)
		init_fail(ENOMEM, "building the environment");
	env_set(&cfg->env, &count, hostname_entry);
	for (char *const *e = entries; e && *e; e++)
		env_set(&cfg->env, &count, *e);
	cfg->env_count = count;
}

/* The config files live in the initramfs, so this runs before the switch
 * to the new root. */
static void load_config(struct config *cfg)
{
	size_t len;
	char *buf;

	cfg->standby = access(CAPSA_CFG_STANDBY, F_OK) == 0;
	buf = read_config_file(CAPSA_CFG_ARGV, &len);
	if (!buf && !cfg->standby)
		init_fail(ENOENT, "no workload command (%s is missing from the initramfs)", CAPSA_CFG_ARGV);
	cfg->argv = buf ? split_list(buf, len) : NULL;
	if (!cfg->standby && (!cfg->argv[0] || cfg->argv[0][0] == '\0'))
		init_fail(EINVAL, "%s holds no command", CAPSA_CFG_ARGV);

	buf = read_config_file(CAPSA_CFG_HOSTNAME, &len);
	cfg->hostname = buf && buf[0] ? buf : DEFAULT_HOSTNAME;

	buf = read_config_file(CAPSA_CFG_WORKDIR, &len);
	cfg->workdir = buf && buf[0] ? buf : DEFAULT_WORKDIR;
	if (cfg->workdir[0] != '/')
		init_fail(EINVAL, "working directory '%s' is not an absolute path", cfg->workdir);

	buf = read_config_file(CAPSA_CFG_ENV, &len);
	if (buf) {
		char **entries = split_list(buf, len);
		compose_env(cfg, entries);
		free(entries);
	} else {
		compose_env(cfg, NULL);
	}

	buf = read_config_file(CAPSA_CFG_USER, &len);
	cfg->user = buf && buf[0] ? buf : NULL;
	cfg->hold = access(CAPSA_CFG_HOLD, F_OK) == 0;

	buf = read_config_file(CAPSA_CFG_VOLUMES, &len);
	cfg->volumes = buf ? split_list(buf, len) : NULL;

	buf = read_config_file(CAPSA_CFG_DISK_MOUNTS, &len);
	cfg->disk_mounts = buf ? split_list(buf, len) : NULL;
}

/* ---- file system setup ------------------------------------------------- */

/* mkdir -p; an existing path is fine (a later chdir/mount reports it if it
 * is not a directory). */
static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return -1;
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	return 0;
}

static void must_mkdir(const char *path, mode_t mode)
{
	if (mkdir_p(path, mode) < 0)
		init_fail(errno, "create directory %s", path);
}

static void must_mount(const char *source, const char *target, const char *type, unsigned long flags,
		       const char *data)
{
	if (mount(source, target, type, flags, data) < 0)
		init_fail(errno, "mount %s (%s) on %s", source, type ? type : "move", target);
}

/* A mount the workload may want but can run without: warn and go on. */
static void try_mount(const char *source, const char *target, const char *type, unsigned long flags,
		      const char *data)
{
	if (mkdir_p(target, 0755) < 0 || mount(source, target, type, flags, data) < 0)
		say("warning: mount %s (%s) on %s: %s", source, type, target, strerror(errno));
}

/* Opens a serial port for output. Raw mode for the workload's ports keeps
 * its bytes exact (no \n -> \r\n); the console only loses output
 * processing. O_NONBLOCK on open and CLOCAL avoid waiting for a carrier. */
static int open_tty(const char *path, bool raw)
{
	struct termios t;
	int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -1;
	fcntl(fd, F_SETFL, 0);
	if (tcgetattr(fd, &t) == 0) {
		if (raw)
			cfmakeraw(&t);
		else
			t.c_oflag &= ~OPOST;
		t.c_cflag |= CLOCAL;
		tcsetattr(fd, TCSANOW, &t);
	}
	return fd;
}

/* /dev first: it holds the console, the ports and the root image device. */
static void setup_dev_and_ports(void)
{
	int fd;

	must_mkdir("/dev", 0755);
	if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 && errno != EBUSY)
		init_fail(errno, "mount devtmpfs on /dev");

	/* Without /dev/console in the initramfs the kernel left fds 0-2
	 * closed; fill them so later opens and dup2s never land there. */
	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) < 0) {
			if (open("/dev/null", O_RDWR) != fd)
				init_fail(errno, "open /dev/null");
			if (fd == 2)
				console_fd = -1;
		}
	}
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd < 0)
		init_fail(errno, "open /dev/null");

	fd = open_tty(CAPSA_CONSOLE_TTY, false);
	if (fd >= 0)
		console_fd = fd;
	stderr_tty = open_tty(CAPSA_STDERR_TTY, true);
	if (stderr_tty < 0)
		init_fail(errno, "open %s for the workload's stderr", CAPSA_STDERR_TTY);
	stdout_tty = open_tty(CAPSA_STDOUT_TTY, true);
	if (stdout_tty < 0)
		init_fail(errno, "open %s for the workload's stdout", CAPSA_STDOUT_TTY);
}

static void mount_root_image(void)
{
	struct stat st;
	const char *hint;
	int err;

	/* Wait for the device node rather than retrying the mount, which
	 * logs a kernel message per failed attempt. */
	for (int tries = 0; stat(CAPSA_ROOT_DEVICE, &st) < 0 && tries < ROOT_DEVICE_TRIES; tries++)
		usleep(ROOT_DEVICE_WAIT_US);

	must_mkdir(LOWER_DIR, 0755);
	if (mount(CAPSA_ROOT_DEVICE, LOWER_DIR, "squashfs", MS_RDONLY, NULL) == 0)
		return;
	err = errno;
	hint = err == ENOENT || err == ENXIO ? "is virtio-blk in the kernel and the root image's virtio-mmio "
					       "device on its command line?"
	       : err == ENODEV ? "the kernel lacks squashfs support"
	       : err == EINVAL ? "the root image is not a squashfs image"
	       : "";
	say("cannot mount the root image %s (squashfs, read-only) on %s: %s%s%s", CAPSA_ROOT_DEVICE, LOWER_DIR,
	    strerror(err), hint[0] ? "; " : "", hint);
	finish(CAPSA_EXIT_INIT_FAILED | (unsigned int)err);
}

/* Read-only image below, tmpfs above: the workload can write anywhere and
 * nothing reaches the image. */
static void mount_overlay_root(void)
{
	struct stat st;

	mount_root_image();
	must_mkdir(RW_DIR, 0755);
	must_mount("tmpfs", RW_DIR, "tmpfs", 0, "mode=0755");
	must_mkdir(RW_DIR "/upper", 0755);
	must_mkdir(RW_DIR "/work", 0755);
	/* The overlay's root takes the upper dir's owner and mode: copy the
	 * image's so / looks as the image says. */
	if (stat(LOWER_DIR, &st) == 0) {
		if (chown(RW_DIR "/upper", st.st_uid, st.st_gid) < 0 ||
		    chmod(RW_DIR "/upper", st.st_mode & 07777) < 0)
			say("warning: copying the image root's owner and mode: %s", strerror(errno));
	}
	must_mkdir(NEW_ROOT, 0755);
	must_mount("overlay", NEW_ROOT, "overlay", 0,
		   "lowerdir=" LOWER_DIR ",upperdir=" RW_DIR "/upper,workdir=" RW_DIR "/work");
}

/* A directory the image may lack (scratch images often have no /proc);
 * created in the overlay's upper layer. */
static void ensure_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0) {
		chmod(path, mode);  /* past the umask */
		return;
	}
	if (errno != EEXIST)
		init_fail(errno, "create directory %s", path);
}

/* The rest of /dev that programs expect, as a container runtime sets it up. */
static void populate_dev(void)
{
	static const char *const links[][2] = {
		{ "/proc/self/fd", NEW_ROOT "/dev/fd" },
		{ "/proc/self/fd/0", NEW_ROOT "/dev/stdin" },
		{ "/proc/self/fd/1", NEW_ROOT "/dev/stdout" },
		{ "/proc/self/fd/2", NEW_ROOT "/dev/stderr" },
	};

	try_mount("devpts", NEW_ROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "newinstance,ptmxmode=0666,mode=0620,gid=5");
	try_mount("shm", NEW_ROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
			say("warning: symlink %s: %s", links[i][1], strerror(errno));
}

/* The initramfs is the kernel's rootfs, which pivot_root cannot leave:
 * move the new root over / and chroot into it, as switch_root does. The
 * initramfs files stay in memory; they are small. */
static void switch_to_new_root(void)
{
	ensure_dir(NEW_ROOT "/dev", 0755);
	ensure_dir(NEW_ROOT "/proc", 0555);
	ensure_dir(NEW_ROOT "/sys", 0555);
	ensure_dir(NEW_ROOT "/tmp", 01777);

	/* A fresh devtmpfs mount rather than moving the early one keeps the
	 * mount table in the usual order, the root first; the ports opened
	 * through the early mount stay open after it is detached. */
	must_mount("devtmpfs", NEW_ROOT "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	if (umount2("/dev", MNT_DETACH) < 0)
		say("warning: detach the early /dev: %s", strerror(errno));
	must_mount("proc", NEW_ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	must_mount("sysfs", NEW_ROOT "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	populate_dev();

	if (chdir(NEW_ROOT) < 0)
		init_fail(errno, "chdir %s", NEW_ROOT);
	must_mount(".", "/", NULL, MS_MOVE, NULL);
	if (chroot(".") < 0)
		init_fail(errno, "chroot into the new root");
	if (chdir("/") < 0)
		init_fail(errno, "chdir / in the new root");
}

/* Host directories, shared by virtio-fs devices named by their tags; the
 * mount points are made in the overlay when the image lacks them. A ",dax"
 * mode maps file pages from the device's DAX window: "dax=always" makes the
 * mount fail (EINVAL) rather than quietly copy when the kernel or the device
 * cannot. */
static void mount_volumes(char **volumes)
{
	for (char **v = volumes; v && *v;) {
		const char *tag = *v++, *path = *v ? *v++ : NULL, *mode = path && *v ? *v++ : NULL;

		if (!mode || path[0] != '/')
			init_fail(EINVAL, "%s holds a malformed volume entry", CAPSA_CFG_VOLUMES);
		bool read_only = !strcmp(mode, "ro") || !strcmp(mode, "ro,dax");
		bool dax = !strcmp(mode, "ro,dax") || !strcmp(mode, "rw,dax");
		if (mkdir_p(path, 0755) < 0)
			init_fail(errno, "create the mount point %s of a volume", path);
		if (mount(tag, path, "virtiofs", read_only ? MS_RDONLY : 0, dax ? "dax=always" : NULL) < 0)
			init_fail(errno, "mount the volume %s (virtio-fs tag %s%s)", path, tag,
				  dax ? ", DAX: the guest kernel needs CONFIG_FUSE_DAX" : "");
	}
}

static void mount_disks(char **disk_mounts)
{
	char why[512];
	int err = disks_mount(disk_mounts, why, sizeof(why));

	if (err)
		init_fail(err, "%s", why);
}

/* ---- system identity ----------------------------------------------------- */

static void setup_hostname(const char *name)
{
	if (sethostname(name, strlen(name)) < 0)
		say("warning: set hostname '%s': %s", name, strerror(errno));
}

/* Loopback up, so servers listening on 127.0.0.1 work without a network. */
static void bring_up_loopback(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;  /* a kernel without IPv4: nothing to bring up */
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, "lo", sizeof(ifr.ifr_name) - 1);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		say("warning: loopback: %s", strerror(errno));
	} else if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			say("warning: bring up loopback: %s", strerror(errno));
	}
	close(fd);
}

/* ---- the workload -------------------------------------------------------- */

/* Reads the image's user database, so it runs in the new root. HOME comes
 * from the user's entry unless the image or the caller set it. */
static void resolve_workload_user(struct config *cfg, struct workload_user *user)
{
	char why[512];
	char *home;
	int err = user_resolve(cfg->user, user, why, sizeof(why));

	if (err)
		init_fail(err, "%s", why);
	if (!env_get(cfg->env, "HOME")) {
		if (asprintf(&home, "HOME=%s", user->home) < 0)
			init_fail(ENOMEM, "building the environment");
		env_set(&cfg->env, &cfg->env_count, home);
	}
}

/* execvp with the workload's own PATH and a shell's error rules: keep
 * looking past a directory where the file is missing or not executable,
 * stop at any other error. Returns the errno to report. */
static int exec_search(char **argv, char **env)
{
	const char *file = argv[0];
	const char *path, *seg;
	int result = ENOENT;

	if (strchr(file, '/')) {
		execve(file, argv, env);
		return errno;
	}
	path = env_get(env, "PATH");
	if (!path)
		path = DEFAULT_PATH;
	for (seg = path; ; seg++) {
		const char *end = strchrnul(seg, ':');
		int dir_len = (int)(end - seg);
		char candidate[PATH_MAX];

		if (snprintf(candidate, sizeof(candidate), "%.*s/%s", dir_len ? dir_len : 1,
			     dir_len ? seg : ".", file) < (int)sizeof(candidate)) {
			execve(candidate, argv, env);
			if (errno == EACCES)
				result = EACCES;
			else if (errno != ENOENT && errno != ENOTDIR)
				return errno;
		}
		seg = end;
		if (*seg == '\0')
			break;
	}
	return result;
}

/* In the child: become the workload. Never returns; exit codes follow the
 * shell's (127 not found, 126 found but not runnable). */
__attribute__((noreturn)) static void exec_workload(const struct config *cfg, const struct workload_user *user,
						    int out_w, int err_w)
{
	sigset_t none;
	int err;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (dup2(null_fd, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
		_exit(126);

	if (chdir(cfg->workdir) < 0) {
		dprintf(2, "capsa: cannot enter working directory %s: %s\n", cfg->workdir, strerror(errno));
		_exit(126);
	}
	err = user_become(user);
	if (err) {
		dprintf(2, "capsa: cannot become user %u:%u: %s\n", (unsigned)user->uid, (unsigned)user->gid,
			strerror(err));
		_exit(126);
	}
	err = exec_search(cfg->argv, cfg->env);
	if (err == ENOENT && !strchr(cfg->argv[0], '/'))
		dprintf(2, "capsa: %s: command not found\n", cfg->argv[0]);
	else
		dprintf(2, "capsa: %s: %s\n", cfg->argv[0], strerror(err));
	_exit(err == ENOENT ? 127 : 126);
}

/* Copies what is waiting in a workload pipe to its port; closes the pipe
 * (and sets *fd to -1, which poll skips) at end of file. Returns the
 * number of bytes copied. */
static size_t relay(int *fd, int tty)
{
	char buf[65536];
	ssize_t n;

	do {
		n = read(*fd, buf, sizeof(buf));
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		write_all(tty, buf, (size_t)n);
		return (size_t)n;
	}
	if (n == 0 || errno != EAGAIN) {
		close(*fd);
		*fd = -1;
	}
	return 0;
}

static unsigned int wait_status_to_exit(int status)
{
	if (WIFEXITED(status))
		return (unsigned int)WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + (unsigned int)WTERMSIG(status);
	return 255;
}

/* Runs the workload with stdout and stderr on pipes that PID 1 copies to
 * the ports: the workload sees pipes, not terminals, as under
 * `docker run` without -t. Reaps every child (orphans are reparented to
 * PID 1), forwards termination signals to the workload's process group,
 * and returns the workload's exit status once it has exited and its
 * pending output has been copied. */
/* Called once the workload runs, with init's descriptors a helper process
 * must close. */
typedef void workload_started_fn(pid_t pid, const int *init_fds, size_t n_fds);

static unsigned int run_workload(const struct config *cfg, const struct workload_user *user,
				 const sigset_t *signals, workload_started_fn *started)
{
	int out_pipe[2], err_pipe[2], sfd;
	struct pollfd pfd[3];
	unsigned int status = 0;
	bool exited = false;
	pid_t pid;

	sfd = signalfd(-1, signals, SFD_CLOEXEC);
	if (sfd < 0)
		init_fail(errno, "signalfd");
	if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0)
		init_fail(errno, "pipe");

	pid = fork();
	if (pid < 0)
		init_fail(errno, "fork the workload");
	if (pid == 0)
		exec_workload(cfg, user, out_pipe[1], err_pipe[1]);

	close(out_pipe[1]);
	close(err_pipe[1]);
	started(pid, (const int[]){ sfd, out_pipe[0], err_pipe[0] }, 3);
	fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
	fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);

	pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = out_pipe[0], .events = POLLIN };
	pfd[2] = (struct pollfd){ .fd = err_pipe[0], .events = POLLIN };

	while (!exited) {
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			init_fail(errno, "poll");
		}
		if (pfd[1].revents)
			relay(&pfd[1].fd, stdout_tty);
		if (pfd[2].revents)
			relay(&pfd[2].fd, stderr_tty);
		if (!(pfd[0].revents & POLLIN))
			continue;

		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo != SIGCHLD) {
			kill(-pid, (int)si.ssi_signo);  /* ESRCH once it is gone: fine */
			continue;
		}
		/* SIGCHLDs coalesce: reap until nothing is left to reap. */
		for (;;) {
			int ws;
			pid_t done = waitpid(-1, &ws, WNOHANG);
			if (done <= 0)
				break;
			if (done == pid) {
				status = wait_status_to_exit(ws);
				exited = true;
			}
		}
	}

	/* Everything the workload wrote before exiting is in the pipes now.
	 * Copy it, but bounded: a leftover background process may still be
	 * writing, and the run ends with the workload. */
	for (int i = 1; i <= 2; i++) {
		int tty = i == 1 ? stdout_tty : stderr_tty;
		size_t copied = 0, n;
		while (pfd[i].fd >= 0 && copied < 16 * 65536 && (n = relay(&pfd[i].fd, tty)) > 0)
			copied += n;
	}
	return status;
}

/* ---- the agent ------------------------------------------------------------ */

/* Serves the host's exec, file and signal requests over vsock (agent.c),
 * in a process of its own beside the workload. A kernel without vsock
 * means no agent, not a failed run: a note on the console only, the
 * workload's stderr stays its own. */
static struct agent_workload agent_workload;
/* Standby: the socket the standby agent listened on (kept, so no host
 * connection is refused in between) and where START's answer goes. */
static int kept_listen_fd = -1;
static int start_reply_fd = -1;

static void answer_start(int32_t result)
{
	if (start_reply_fd < 0)
		return;
	write_all(start_reply_fd, &result, sizeof(result));
	close(start_reply_fd);
	start_reply_fd = -1;
}

static void start_agent(pid_t workload_pid, const int *init_fds, size_t n_fds)
{
	int fd = kept_listen_fd >= 0 ? kept_listen_fd : agent_listen_vsock(CAPSA_AGENT_PORT);
	pid_t pid;

	kept_listen_fd = -1;

	if (fd < 0) {
		if (console_fd >= 0)
			dprintf(console_fd, "capsa: guest init: warning: no agent (vsock port %d: %s)\n",
				CAPSA_AGENT_PORT, strerror(errno));
		return;
	}
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (size_t i = 0; i < n_fds; i++)
			close(init_fds[i]);
		agent_workload.pid = workload_pid;
		agent_serve(fd, &agent_workload);
		if (console_fd >= 0)
			dprintf(console_fd, "capsa: guest init: agent stopped: %s\n", strerror(errno));
		_exit(1);
	}
	if (pid < 0 && console_fd >= 0)
		dprintf(console_fd, "capsa: guest init: warning: no agent (fork: %s)\n", strerror(errno));
	close(fd);
	answer_start(workload_pid);
}

/* Standby: waits for START and takes the workload from it, as load_config
 * takes it from the initramfs on a cold boot. */
static void wait_for_start(struct config *cfg)
{
	static struct agent_start_request req;
	uint8_t *payload;
	char why[256];
	int err;

	kept_listen_fd = agent_listen_vsock(CAPSA_AGENT_PORT);
	if (kept_listen_fd < 0)
		init_fail(errno, "standby needs the agent: vsock port %d", CAPSA_AGENT_PORT);
	err = standby_wait_for_start(kept_listen_fd, &req, &payload, &start_reply_fd, why, sizeof(why));
	if (err)
		init_fail(err, "%s", why);
	cfg->argv = (char **)req.argv;
	cfg->hostname = (char *)req.hostname;
	cfg->workdir = (char *)(req.workdir[0] ? req.workdir : DEFAULT_WORKDIR);
	cfg->user = req.user[0] ? (char *)req.user : NULL;
	cfg->hold = req.flags & AGENT_START_HOLD;
	compose_env(cfg, (char *const *)req.env);
}

/* Interactive runs: the agent is all init starts, and the workload comes
 * as an exec from the host, which ends the VM once it is done. Init only
 * reaps what the agent leaves behind. */
__attribute__((noreturn)) static void hold(const sigset_t *signals)
{
	int sfd = signalfd(-1, signals, SFD_CLOEXEC);

	if (sfd < 0)
		init_fail(errno, "signalfd");
	start_agent(0, &sfd, 1);
	for (;;) {
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) != sizeof(si) || si.ssi_signo != SIGCHLD)
			continue;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}

int main(void)
{
	struct config cfg = { 0 };
	struct workload_user user;
	sigset_t signals;

	if (getpid() != 1) {
		fprintf(stderr, "capsa-init: this is the init of a capsa microVM; it only runs as PID 1 there\n");
		return 1;
	}

	sigemptyset(&signals);
	sigaddset(&signals, SIGCHLD);
	for (size_t i = 0; i < sizeof(forwarded_signals) / sizeof(forwarded_signals[0]); i++)
		sigaddset(&signals, forwarded_signals[i]);
	sigprocmask(SIG_BLOCK, &signals, NULL);

	setup_dev_and_ports();
	load_config(&cfg);
	mount_overlay_root();
	switch_to_new_root();

	bring_up_loopback();
	int net_err = net_write_resolv_conf();
	if (net_err)
		say("warning: write /etc/resolv.conf: %s", strerror(net_err));
	mount_volumes(cfg.volumes);
	mount_disks(cfg.disk_mounts);
	if (cfg.standby)
		wait_for_start(&cfg);
	setup_hostname(cfg.hostname);
	if (mkdir_p(cfg.workdir, 0755) < 0)
		init_fail(errno, "create working directory %s", cfg.workdir);
	resolve_workload_user(&cfg, &user);
	agent_workload = (struct agent_workload){
		.env = cfg.env, .workdir = cfg.workdir, .user = cfg.user, .start_fd = -1, .started_fd = -1
	};

	if (cfg.hold)
		hold(&signals);
	finish(run_workload(&cfg, &user, &signals, start_agent));
}
