#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PNP_PATH "/proc/net/pnp"
#define RESOLV_CONF "/etc/resolv.conf"

int net_write_resolv_conf(void)
{
	char line[256], out[1024];
	size_t used = 0;
	FILE *pnp = fopen(PNP_PATH, "re");

	if (!pnp)
		return 0;  /* no IP autoconfiguration happened: no network */
	/* Only resolver lines: the file also names the boot server. */
	while (fgets(line, sizeof(line), pnp)) {
		if (strncmp(line, "nameserver ", 11) && strncmp(line, "domain ", 7) && strncmp(line, "search ", 7))
			continue;
		size_t len = strlen(line);
		if (used + len >= sizeof(out))
			break;
		memcpy(out + used, line, len);
		used += len;
	}
	fclose(pnp);
	if (used == 0)
		return 0;

	if (mkdir("/etc", 0755) < 0 && errno != EEXIST)
		return errno;
	/* The image's file may be a symlink to a resolver that does not run
	 * here (systemd-resolved): replace the link, not its target. */
	if (unlink(RESOLV_CONF) < 0 && errno != ENOENT)
		return errno;
	int fd = open(RESOLV_CONF, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	ssize_t n = write(fd, out, used);
	int e = n == (ssize_t)used ? 0 : n < 0 ? errno : EIO;
	if (close(fd) < 0 && !e)
		e = errno;
	return e;
}
