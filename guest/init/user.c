#include "user.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Docker's ids are decimal, up to 2^31 - 1 (the kernel reserves -1). */
static bool parse_id(const char *text, unsigned int *id)
{
	char *end;
	unsigned long v;

	if (!*text || strspn(text, "0123456789") != strlen(text))
		return false;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || v > INT_MAX)
		return false;
	*id = (unsigned int)v;
	return true;
}

static int resolve_group(const char *group, gid_t *gid, char *why, size_t why_size)
{
	unsigned int id;
	struct group *gr;

	if (parse_id(group, &id)) {
		*gid = id;
		return 0;
	}
	if (strspn(group, "0123456789") == strlen(group)) {
		snprintf(why, why_size, "group id '%s' is out of range", group);
		return EINVAL;
	}
	errno = 0;
	gr = getgrnam(group);
	if (!gr) {
		snprintf(why, why_size, "unable to find group %s: no matching entries in /etc/group", group);
		return ENOENT;
	}
	*gid = gr->gr_gid;
	return 0;
}

int user_resolve(const char *spec, struct workload_user *out, char *why, size_t why_size)
{
	char name[256];
	const char *group = NULL;
	struct passwd *pw = NULL;
	unsigned int id;
	int err;

	memset(out, 0, sizeof(*out));
	if (!spec || !*spec)
		spec = "0";
	if (strlen(spec) >= sizeof(name)) {
		snprintf(why, why_size, "user '%.40s...' is too long", spec);
		return EINVAL;
	}
	strcpy(name, spec);
	char *colon = strchr(name, ':');
	if (colon) {
		*colon = '\0';
		group = colon + 1;
		if (!*group || !*name) {
			snprintf(why, why_size, "user '%s' is not of the form user[:group]", spec);
			return EINVAL;
		}
	}

	if (parse_id(name, &id)) {
		/* A uid needs no passwd entry; if it has one, it gives the
		 * primary group, the home and the name for memberships. */
		pw = getpwuid(id);
		out->uid = id;
		out->gid = pw ? pw->pw_gid : 0;
	} else if (strspn(name, "0123456789") == strlen(name)) {
		snprintf(why, why_size, "user id '%s' is out of range", name);
		return EINVAL;
	} else {
		pw = getpwnam(name);
		if (!pw) {
			snprintf(why, why_size, "unable to find user %s: no matching entries in /etc/passwd", name);
			return ENOENT;
		}
		out->uid = pw->pw_uid;
		out->gid = pw->pw_gid;
	}
	if (group && (err = resolve_group(group, &out->gid, why, why_size)) != 0)
		return err;

	snprintf(out->home, sizeof(out->home), "%s",
		 pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : out->uid == 0 ? "/root" : "/");
	out->n_groups = 0;
	if (pw) {
		int n = (int)(sizeof(out->groups) / sizeof(out->groups[0]));
		/* Too many memberships: keep the ones that fit, as a login would. */
		if (getgrouplist(pw->pw_name, out->gid, out->groups, &n) < 0)
			n = (int)(sizeof(out->groups) / sizeof(out->groups[0]));
		out->n_groups = n;
	}
	return 0;
}

int user_become(const struct workload_user *u)
{
	if (setgroups((size_t)u->n_groups, u->groups) < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0)
		return errno;
	return 0;
}
