/* Persistent disks: the host attaches each named volume's ext4 image as a
 * virtio-blk device and lists it with its mount point; the mount points
 * are made in the overlay when the image lacks them. */
#include "disks.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest_abi.h"

/* For each device to appear: built-in virtio drivers have probed before
 * init runs, so the success path never waits. */
#define DEVICE_TRIES 200
#define DEVICE_WAIT_US 10000

#define MAX_DISKS 32

static const char *mounted[MAX_DISKS];
static size_t mounted_count;

static int make_mount_point(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return errno;
		*p = saved;
		if (saved == '\0')
			return 0;
	}
}

int disks_mount(char **entries, char *why, size_t why_size)
{
	for (char **e = entries; e && *e;) {
		const char *device = *e++, *path = *e ? *e++ : NULL;
		struct stat st;
		int err;

		if (!path || path[0] != '/' || strncmp(device, "/dev/vd", 7) != 0) {
			snprintf(why, why_size, "%s holds a malformed disk entry", CAPSA_CFG_DISK_MOUNTS);
			return EINVAL;
		}
		for (int tries = 0; stat(device, &st) < 0 && tries < DEVICE_TRIES; tries++)
			usleep(DEVICE_WAIT_US);
		err = make_mount_point(path);
		if (err) {
			snprintf(why, why_size, "create the mount point %s of a disk", path);
			return err;
		}
		/* The files stay the workload's to use as it likes: no nosuid or
		 * nodev, as with a container's volume. */
		if (mount(device, path, "ext4", 0, NULL) < 0) {
			err = errno;
			snprintf(why, why_size, "mount the disk %s (ext4) on %s", device, path);
			return err;
		}
		if (mounted_count < MAX_DISKS)
			mounted[mounted_count++] = path;
	}
	return 0;
}

void disks_unmount(void)
{
	while (mounted_count > 0) {
		const char *path = mounted[--mounted_count];

		if (umount2(path, 0) < 0)
			mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY, NULL);
	}
}
