/* The workload's identity: docker's USER ("name", "uid", "name:group",
 * "uid:gid") resolved against the image's /etc/passwd and /etc/group. */
#ifndef CAPSA_INIT_USER_H
#define CAPSA_INIT_USER_H

#include <stddef.h>
#include <sys/types.h>

struct workload_user {
	uid_t uid;
	gid_t gid;
	gid_t groups[64];   /* supplementary groups, from /etc/group membership */
	int n_groups;
	char home[256];     /* from /etc/passwd; "/root" for root and "/" for others without an entry */
};

/* Resolves spec (NULL or "" = root) in the current root file system, as
 * runc does: a name must exist in /etc/passwd, a numeric uid need not
 * (gid 0 then); a group name must exist in /etc/group, a numeric gid need
 * not. Returns 0, or an errno value with a one-line reason in why. */
int user_resolve(const char *spec, struct workload_user *out, char *why, size_t why_size);

/* Takes on the user's groups, gid and uid (in that order: setuid last, as
 * it gives up the right to do the rest). Returns 0 or an errno value. */
int user_become(const struct workload_user *u);

#endif
