/* The public snapshot listing calls, over snapshot_store.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/snapshot_store.h"
#include "util/error.h"

CAPSA_API void capsa_snapshot_list_free(capsa_snapshot_info *list, size_t count)
{
	for (size_t i = 0; list && i < count; i++) {
		free(list[i].name);
		free(list[i].image);
	}
	free(list);
}

CAPSA_API int capsa_snapshot_list(const char *data_dir, capsa_snapshot_info **list, size_t *count, capsa_error *err)
{
	struct snapshot_info *infos;
	size_t n;
	*list = NULL;
	*count = 0;
	if (snapshot_list(data_dir, &infos, &n, err) < 0)
		return -1;
	capsa_snapshot_info *out = calloc(n ? n : 1, sizeof(*out));
	if (!out) {
		snapshot_list_free(infos, n);
		return error_set(err, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		out[i] = (capsa_snapshot_info){
			.name = infos[i].name,
			.image = infos[i].image,
			.memory_mib = infos[i].memory_mib,
			.cpus = infos[i].cpus,
			.workload_started = infos[i].workload_started,
			.created = infos[i].created,
			.disk_bytes = infos[i].disk_bytes,
		};
		infos[i].name = NULL;
		infos[i].image = NULL;
	}
	snapshot_list_free(infos, n);
	*list = out;
	*count = n;
	return 0;
}

CAPSA_API bool capsa_snapshot_exists(const char *data_dir, const char *name)
{
	return snapshot_exists(data_dir, name);
}

CAPSA_API int capsa_snapshot_remove(const char *data_dir, const char *name, capsa_error *err)
{
	return snapshot_remove(data_dir, name, err);
}
