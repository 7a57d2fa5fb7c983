/* oci_pull: resolve the reference to an image manifest for the platform,
 * download the blobs the store lacks with a few threads, store the
 * manifest and name it. HTTP details are in registry_http.c. */
#include "oci/pull.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "oci/pull_progress.h"
#include "oci/registry_http.h"
#include "util/cleanup.h"
#include "util/error.h"

#define DEFAULT_MAX_CONCURRENT 3
/* More threads than this gain nothing against one registry. */
#define MAX_CONCURRENT_LIMIT 16

struct pull {
	oci_store *store;
	registry_client *client;
	pull_progress *progress;
	const char *image;                 /* oci_reference_format(ref), for messages */
};

/* ---- manifests ---- */

struct fetched_manifest {
	char *body;
	size_t len;
	char *content_type;
	char digest[OCI_DIGEST_STRING_SIZE];
};

static void fetched_manifest_clear(struct fetched_manifest *m)
{
	free(m->body);
	free(m->content_type);
	*m = (struct fetched_manifest){ 0 };
}

/* GET manifests/<reference> (a tag or a digest). The digest of the bytes
 * must be the one asked for; for a tag it must agree with the
 * Docker-Content-Digest header when the registry sends one. */
static int fetch_manifest(struct pull *p, registry_conn *conn, const char *reference, bool by_digest,
			  struct fetched_manifest *out, capsa_error *err)
{
	registry_client *c = p->client;
	_cleanup_free_ char *path = NULL;
	registry_response resp = { 0 };

	*out = (struct fetched_manifest){ 0 };
	if (asprintf(&path, "manifests/%s", reference) < 0) {
		path = NULL;
		return error_set_errno(err, ENOMEM, "building a request");
	}
	if (registry_fetch_to_memory(conn, path, OCI_MANIFEST_ACCEPT, OCI_MANIFEST_MAX_BYTES, &out->body,
				     &out->len, &resp, err) < 0) {
		long status = resp.status;
		registry_response_clear(&resp);
		if (status == 404)
			return error_set(err, ENOENT, "image %s not found in registry %s", p->image,
					 registry_client_registry(c));
		return -1;
	}
	out->content_type = steal_pointer(&resp.content_type);
	int ret = oci_digest_of_buffer(out->body, out->len, out->digest, err);
	if (ret == 0 && by_digest && strcmp(out->digest, reference) != 0)
		ret = error_set(err, EBADMSG, "registry %s sent a manifest for %s whose sha256 is %s, not %s",
				registry_client_registry(c), p->image, out->digest, reference);
	const char *header = resp.docker_content_digest;
	if (ret == 0 && !by_digest && header && oci_digest_validate(header, NULL) == 0 &&
	    strcmp(header, out->digest) != 0)
		ret = error_set(err, EBADMSG,
				"registry %s sent a manifest for %s whose sha256 is %s, but its Docker-Content-Digest "
				"header says %s",
				registry_client_registry(c), p->image, out->digest, header);
	registry_response_clear(&resp);
	if (ret < 0)
		fetched_manifest_clear(out);
	return ret;
}

/* The image manifest the reference names for the platform: the manifest
 * itself, or the index entry selected for the platform. */
static int resolve(struct pull *p, registry_conn *conn, const oci_reference *ref, const oci_platform *platform,
		   struct fetched_manifest *out, capsa_error *err)
{
	const char *reference = ref->digest ? ref->digest : ref->tag;
	struct fetched_manifest top;
	oci_manifest_kind kind;

	if (!reference)
		return error_set(err, EINVAL, "reference %s has neither a tag nor a digest", p->image);
	if (fetch_manifest(p, conn, reference, ref->digest != NULL, &top, err) < 0)
		return -1;
	if (oci_manifest_kind_of(top.body, top.len, top.content_type, &kind, err) < 0) {
		fetched_manifest_clear(&top);
		return error_prefix(err, "manifest of %s", p->image);
	}
	if (kind == OCI_KIND_MANIFEST) {
		*out = top;
		return 0;
	}

	oci_index idx = { 0 };
	size_t i;
	int ret = oci_index_parse(top.body, top.len, &idx, err);
	if (ret < 0)
		error_prefix(err, "image index of %s", p->image);
	if (ret == 0 && (ret = oci_index_select(&idx, platform, &i, err)) < 0)
		error_prefix(err, "%s", p->image);
	fetched_manifest_clear(&top);
	if (ret < 0) {
		oci_index_clear(&idx);
		return -1;
	}
	const oci_descriptor *d = &idx.manifests[i];
	ret = fetch_manifest(p, conn, d->digest, true, out, err);
	if (ret < 0 && err && err->code == ENOENT)
		error_set(err, ENOENT, "manifest %s of image %s not found in registry %s", d->digest, p->image,
			  registry_client_registry(p->client));
	if (ret == 0 && (uint64_t)d->size != out->len)
		ret = error_set(err, EBADMSG, "manifest %s of %s is %zu bytes, but the index says %" PRId64,
				d->digest, p->image, out->len, d->size);
	if (ret == 0 && (ret = oci_manifest_kind_of(out->body, out->len, out->content_type, &kind, err)) < 0)
		error_prefix(err, "manifest %s of %s", d->digest, p->image);
	if (ret == 0 && kind != OCI_KIND_MANIFEST)
		ret = error_set(err, EPROTO, "the index of %s lists another index (%s) as the manifest for %s/%s",
				p->image, d->digest, d->platform.os, d->platform.architecture);
	if (ret < 0)
		fetched_manifest_clear(out);
	oci_index_clear(&idx);
	return ret;
}

/* ---- blobs ---- */

struct blob_download {
	struct pull *p;
	oci_blob_writer *w;
	const oci_descriptor *d;
	size_t line;               /* progress line */
	uint64_t written;          /* bytes in the writer */
	uint64_t asked_from;       /* Range of the current attempt */
	bool started;              /* the current attempt's first bytes arrived */
	unsigned attempts;
};

static int download_begin(void *ctx, uint64_t *range_from, capsa_error *err)
{
	struct blob_download *b = ctx;

	(void)err;
	if (b->attempts++ > 0)
		pull_progress_set_state(b->p->progress, b->line, PULL_BLOB_RETRYING);
	b->started = false;
	b->asked_from = b->written;
	*range_from = b->written;
	return 0;
}

/* "bytes START-END/TOTAL" (TOTAL may be '*'). */
static bool content_range_starts_at(const char *value, uint64_t from, int64_t size)
{
	unsigned long long start, end;
	char total[32];

	if (!value || sscanf(value, "bytes %llu-%llu/%31s", &start, &end, total) != 3)
		return false;
	if (start != from || end < start || end >= (unsigned long long)size)
		return false;
	return strcmp(total, "*") == 0 || strtoull(total, NULL, 10) == (unsigned long long)size;
}

static int download_write(void *ctx, const registry_response *resp, const void *data, size_t len, capsa_error *err)
{
	struct blob_download *b = ctx;
	const char *registry = registry_client_registry(b->p->client);

	if (!b->started) {
		b->started = true;
		bool resumed = resp->status == 206 && b->asked_from > 0 &&
			       content_range_starts_at(resp->content_range, b->asked_from, b->d->size);
		if (!resumed && b->written > 0) {
			/* The server sent the whole blob again (200), or a
			 * range that is not the one asked for. */
			if (oci_blob_writer_restart(b->w, err) < 0)
				return -1;
			b->written = 0;
			pull_progress_set_bytes(b->p->progress, b->line, 0);
		}
		if (resp->status == 206 && !resumed) {
			error_set(err, EPROTO,
				  "registry %s answered a range request for %s with Content-Range '%.80s'", registry,
				  b->d->digest, resp->content_range ? resp->content_range : "");
			return 1;
		}
		pull_progress_set_state(b->p->progress, b->line, PULL_BLOB_DOWNLOADING);
	}
	if (len > (uint64_t)b->d->size - b->written)
		return error_set(err, EBADMSG, "registry %s sent more than the %" PRId64 " bytes of blob %s of %s",
				 registry, b->d->size, b->d->digest, b->p->image);
	if (oci_blob_writer_write(b->w, data, len, err) < 0)
		return -1;
	b->written += len;
	pull_progress_set_bytes(b->p->progress, b->line, b->written);
	return 0;
}

static int download_blob(struct pull *p, registry_conn *conn, const oci_descriptor *d, size_t line,
			 capsa_error *err)
{
	_cleanup_free_ char *path = NULL;

	if (asprintf(&path, "blobs/%s", d->digest) < 0) {
		path = NULL;
		return error_set_errno(err, ENOMEM, "building a request");
	}
	/* Twice at most: a partial file left by an earlier pull may turn out
	 * corrupt, and is then downloaded again from the start. */
	for (int round = 0;; round++) {
		struct blob_download b = { .p = p, .d = d, .line = line };
		int ret = oci_store_blob_begin(p->store, d->digest, d->size, &b.w, err);

		if (ret < 0)
			return -1;
		if (ret > 0) {
			/* Another process stored it meanwhile. */
			pull_progress_set_state(p->progress, line, PULL_BLOB_PRESENT);
			return 0;
		}
		b.written = oci_blob_writer_offset(b.w);
		bool resumed = b.written > 0;
		pull_progress_set_bytes(p->progress, line, b.written);
		if (b.written < (uint64_t)d->size || d->size == 0) {
			registry_sink sink = { .begin = download_begin, .write = download_write, .ctx = &b };
			registry_response resp;
			ret = registry_get(conn, path, NULL, &sink, &resp, err);
			long status = resp.status;
			registry_response_clear(&resp);
			if (ret < 0) {
				oci_blob_writer_free(b.w);
				if (status == 404)
					return error_set(err, ENOENT, "blob %s of image %s not found in registry %s",
							 d->digest, p->image, registry_client_registry(p->client));
				return -1;
			}
		}
		ret = oci_blob_writer_commit(b.w, NULL, err);
		oci_blob_writer_free(b.w);
		if (ret == 0) {
			pull_progress_set_bytes(p->progress, line, b.written);
			pull_progress_set_state(p->progress, line, PULL_BLOB_DONE);
			return 0;
		}
		if (err && err->code == EBADMSG && resumed && round == 0)
			continue;
		return error_prefix(err, "downloading from registry %s", registry_client_registry(p->client));
	}
}

struct blob_job {
	const oci_descriptor *d;
	size_t line;
};

struct downloads {
	struct pull *p;
	struct blob_job *jobs;
	size_t n_jobs;
	pthread_mutex_t lock;
	size_t next;
	bool failed;
	capsa_error first_err;
};

static void run_downloads(struct downloads *dl, registry_conn *conn)
{
	capsa_error err = { 0 };
	registry_conn *own = NULL;

	if (!conn && !(conn = own = registry_conn_new(dl->p->client, &err))) {
		/* The other workers go on; this one only reports when alone. */
		pthread_mutex_lock(&dl->lock);
		if (!dl->failed && dl->next < dl->n_jobs) {
			dl->failed = true;
			dl->first_err = err;
		}
		pthread_mutex_unlock(&dl->lock);
		registry_client_cancel(dl->p->client);
		return;
	}
	for (;;) {
		pthread_mutex_lock(&dl->lock);
		struct blob_job *job = !dl->failed && dl->next < dl->n_jobs ? &dl->jobs[dl->next++] : NULL;
		pthread_mutex_unlock(&dl->lock);
		if (!job)
			break;
		if (download_blob(dl->p, conn, job->d, job->line, &err) == 0)
			continue;
		pull_progress_set_state(dl->p->progress, job->line, PULL_BLOB_FAILED);
		pthread_mutex_lock(&dl->lock);
		/* The first failure is the one to report: the others are
		 * mostly cancellations it caused. */
		if (!dl->failed) {
			dl->failed = true;
			dl->first_err = err;
		}
		pthread_mutex_unlock(&dl->lock);
		registry_client_cancel(dl->p->client);
		break;
	}
	registry_conn_free(own);
}

static void *download_thread(void *arg)
{
	run_downloads(arg, NULL);
	return NULL;
}

static int download_all(struct pull *p, registry_conn *conn, struct blob_job *jobs, size_t n_jobs, unsigned max,
			capsa_error *err)
{
	struct downloads dl = { .p = p, .jobs = jobs, .n_jobs = n_jobs };
	pthread_t threads[MAX_CONCURRENT_LIMIT];
	size_t n_threads = 0;

	if (n_jobs == 0)
		return 0;
	pthread_mutex_init(&dl.lock, NULL);
	/* This thread is one of the workers; a thread that cannot be
	 * created only means fewer downloads at once. */
	while (n_threads + 1 < max && n_threads + 1 < n_jobs &&
	       pthread_create(&threads[n_threads], NULL, download_thread, &dl) == 0)
		n_threads++;
	run_downloads(&dl, conn);
	for (size_t i = 0; i < n_threads; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&dl.lock);
	if (dl.failed) {
		if (err)
			*err = dl.first_err;
		return -1;
	}
	return 0;
}

/* ---- the pull ---- */

static bool config_media_supported(const char *media_type)
{
	return media_type && (!strcmp(media_type, OCI_MEDIA_CONFIG) || !strcmp(media_type, DOCKER_MEDIA_CONFIG));
}

static int check_image(struct pull *p, const oci_manifest *m, capsa_error *err)
{
	if (!config_media_supported(m->config.media_type))
		return error_set(err, ENOTSUP, "%s is not a container image: its config has media type '%.100s'",
				 p->image, m->config.media_type ? m->config.media_type : "");
	for (size_t i = 0; i < m->n_layers; i++)
		if (!oci_layer_media_supported(m->layers[i].media_type))
			return error_set(err, ENOTSUP,
					 "%s has a layer of media type '%.100s', which capsa cannot unpack", p->image,
					 m->layers[i].media_type ? m->layers[i].media_type : "");
	return 0;
}

/* The config and the layers, each digest once, in manifest order. */
static int list_blobs(struct pull *p, const oci_manifest *m, const oci_descriptor ***out, size_t *n_out,
		      uint64_t *total, capsa_error *err)
{
	const oci_descriptor **list = calloc(m->n_layers + 1, sizeof(*list));
	size_t n = 0;

	if (!list)
		return error_set_errno(err, ENOMEM, "listing the blobs of %s", p->image);
	*total = 0;
	for (size_t i = 0; i <= m->n_layers; i++) {
		const oci_descriptor *d = i == 0 ? &m->config : &m->layers[i - 1];
		bool seen = false;

		for (size_t j = 0; j < n && !seen; j++) {
			if (strcmp(list[j]->digest, d->digest) != 0)
				continue;
			if (list[j]->size != d->size) {
				free(list);
				return error_set(err, EBADMSG, "the manifest of %s gives blob %s two different sizes",
						 p->image, d->digest);
			}
			seen = true;
		}
		if (seen)
			continue;
		list[n++] = d;
		*total = (uint64_t)d->size > UINT64_MAX - *total ? UINT64_MAX : *total + (uint64_t)d->size;
	}
	*out = list;
	*n_out = n;
	return 0;
}

static int pull_blobs(struct pull *p, registry_conn *conn, const oci_manifest *m, unsigned max, uint64_t *total,
		      capsa_error *err)
{
	_cleanup_free_ const oci_descriptor **blobs = NULL;
	_cleanup_free_ struct blob_job *jobs = NULL;
	size_t n = 0, n_jobs = 0;

	if (list_blobs(p, m, &blobs, &n, total, err) < 0)
		return -1;
	if (!(jobs = calloc(n ? n : 1, sizeof(*jobs))))
		return error_set_errno(err, ENOMEM, "listing the blobs of %s", p->image);
	for (size_t i = 0; i < n; i++) {
		bool present = oci_store_has_blob(p->store, blobs[i]->digest);
		size_t line = pull_progress_add(p->progress, blobs[i]->digest, blobs[i]->size,
						present ? PULL_BLOB_PRESENT : PULL_BLOB_WAITING);
		if (!present)
			jobs[n_jobs++] = (struct blob_job){ .d = blobs[i], .line = line };
	}
	int ret = download_all(p, conn, jobs, n_jobs, max, err);
	pull_progress_finish(p->progress);
	return ret;
}

int oci_pull(oci_store *s, const oci_reference *ref, const oci_pull_options *opts,
	     char out_manifest_digest[OCI_DIGEST_STRING_SIZE], capsa_error *err)
{
	static const oci_pull_options defaults = { 0 };
	oci_platform default_platform;

	if (!opts)
		opts = &defaults;
	const oci_platform *platform = opts->platform;
	if (!platform) {
		oci_platform_default(&default_platform);
		platform = &default_platform;
	}
	unsigned max = opts->max_concurrent ? opts->max_concurrent : DEFAULT_MAX_CONCURRENT;
	if (max > MAX_CONCURRENT_LIMIT)
		max = MAX_CONCURRENT_LIMIT;

	_cleanup_free_ char *image = oci_reference_format(ref, err);
	if (!image)
		return -1;
	struct pull p = { .store = s, .image = image };
	if (!(p.client = registry_client_new(ref, opts->insecure_registries, opts->auth_file, err)))
		return error_prefix(err, "pulling %s", image);
	registry_conn *conn = registry_conn_new(p.client, err);
	if (!conn) {
		registry_client_free(p.client);
		return -1;
	}
	if (oci_store_use_begin(s, err) < 0) {
		registry_conn_free(conn);
		registry_client_free(p.client);
		return -1;
	}

	struct fetched_manifest fm = { 0 };
	oci_manifest m = { 0 };
	uint64_t total = 0;
	int ret = resolve(&p, conn, ref, platform, &fm, err);
	if (ret == 0 && (ret = oci_manifest_parse(fm.body, fm.len, &m, err)) < 0)
		error_prefix(err, "manifest %s of %s", fm.digest, image);
	if (ret == 0)
		ret = check_image(&p, &m, err);
	if (ret == 0) {
		p.progress = pull_progress_new(opts->progress);
		ret = pull_blobs(&p, conn, &m, max, &total, err);
	}
	if (ret == 0)
		ret = oci_store_put_blob(s, fm.body, fm.len, fm.digest, NULL, err);
	if (ret == 0)
		ret = oci_store_tag(s, image, fm.digest, total, err);
	if (ret == 0 && out_manifest_digest)
		memcpy(out_manifest_digest, fm.digest, OCI_DIGEST_STRING_SIZE);

	oci_store_use_end(s);
	oci_manifest_clear(&m);
	fetched_manifest_clear(&fm);
	pull_progress_free(p.progress);
	registry_conn_free(conn);
	registry_client_free(p.client);
	return ret;
}
