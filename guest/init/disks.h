/* Persistent disks (CAPSA_CFG_DISK_MOUNTS): ext4 block devices mounted
 * read-write in the new root. */
#ifndef CAPSA_GUEST_DISKS_H
#define CAPSA_GUEST_DISKS_H

#include <stddef.h>

/* Mounts each (device, path) pair of entries (NULL-terminated; NULL for
 * none), creating the mount points. Returns 0, or an errno value with what
 * failed described in why. */
int disks_mount(char **entries, char *why, size_t why_size);

/* Unmounts the disks disks_mount mounted, last first, so the next VM
 * finds clean file systems; one still busy is at least synced by the
 * caller. Run just before power-off. */
void disks_unmount(void);

#endif
