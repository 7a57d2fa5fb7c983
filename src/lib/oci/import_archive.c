/* Importing `docker save` archives: the classic format (manifest.json
 * naming a config file and layer tars by path) and the OCI layout newer
 * docker versions write (index.json, blobs/sha256/<hex>), either as a tar,
 * optionally compressed.
 *
 * Members come in any order and layers can be gigabytes, so one pass
 * streams every regular file into the store as a blob and remembers its
 * path and digest; the images are put together from those afterwards.
 * Member paths are only ever keys of that table, never host paths.
 * Members no image references stay in the store until gc. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "oci/image_config.h"
#include "oci/import.h"
#include "oci/import_internal.h"
#include "oci/json_util.h"
#include "util/cleanup.h"
#include "util/error.h"

#define MEMBER_PATH_MAX 4096
#define MEMBER_COUNT_MAX (256 * 1024)
#define MANIFEST_JSON_MAX_IMAGES 4096
#define REPO_TAGS_MAX 1024
#define LINK_HOPS_MAX 16
#define READ_CHUNK (256 * 1024)
#define NOT_TAR "not a tar archive (as docker save or an OCI archive writes)"

typedef struct member {
	char *path;                           /* normalized */
	char *link;                           /* normalized target of a link member, else NULL */
	char digest[OCI_DIGEST_STRING_SIZE];  /* of a regular member */
	uint64_t size;
	size_t order;                         /* position in the archive: the last of a path wins */
} member;

typedef struct archive_import {
	oci_store *s;
	const oci_platform *platform;
	member *m;
	size_t n, cap;
	size_t seen;                          /* members read, any type */
	char *manifest_json, *index_json, *layout_json;
	size_t manifest_json_len, index_json_len, layout_json_len;
	/* The images found, name NULL when untagged; sizes for tagging. */
	oci_loaded_image *out;
	uint64_t *out_sizes;
	size_t n_out, cap_out;
} archive_import;

/* ---- member paths ---- */

/* Rewrites path in place into "a/b/c": no leading '/', no "." or empty
 * components, ".." removing the previous component (and nothing at the
 * top), the way the archive's own namespace resolves them. */
static void normalize_path(char *path)
{
	char *out = path;
	const char *p = path;

	while (*p) {
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);

		if (len == 0 || (len == 1 && p[0] == '.')) {
			/* skip */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			while (out > path && out[-1] != '/')
				out--;
			if (out > path)
				out--;
		} else {
			if (out > path)
				*out++ = '/';
			memmove(out, p, len);
			out += len;
		}
		p = *end ? end + 1 : end;
	}
	*out = '\0';
}

static int member_add(archive_import *ai, const char *path, const char *link, const char *digest, uint64_t size,
		      capsa_error *err)
{
	if (ai->n == ai->cap) {
		size_t cap = ai->cap ? ai->cap * 2 : 64;
		member *m = realloc(ai->m, cap * sizeof(*m));
		if (!m)
			return error_set_errno(err, ENOMEM, "reading the archive");
		ai->m = m;
		ai->cap = cap;
	}
	member *m = &ai->m[ai->n];
	memset(m, 0, sizeof(*m));
	m->path = strdup(path);
	m->link = link ? strdup(link) : NULL;
	if (!m->path || (link && !m->link)) {
		free(m->path);
		free(m->link);
		return error_set_errno(err, ENOMEM, "reading the archive");
	}
	if (digest)
		memcpy(m->digest, digest, OCI_DIGEST_STRING_SIZE);
	m->size = size;
	m->order = ai->seen;
	ai->n++;
	return 0;
}

static int compare_members(const void *a, const void *b)
{
	const member *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	return c ? c : (x->order < y->order ? -1 : x->order > y->order);
}

/* Sorts the table for lookups, keeping only the last member of a path
 * (what extracting the archive would leave). */
static void members_finish(archive_import *ai)
{
	size_t keep = 0;

	if (ai->n)
		qsort(ai->m, ai->n, sizeof(*ai->m), compare_members);
	for (size_t i = 0; i < ai->n; i++) {
		if (i + 1 < ai->n && strcmp(ai->m[i].path, ai->m[i + 1].path) == 0) {
			free(ai->m[i].path);
			free(ai->m[i].link);
			continue;
		}
		ai->m[keep++] = ai->m[i];
	}
	ai->n = keep;
}

static int compare_path_key(const void *key, const void *elem)
{
	return strcmp(key, ((const member *)elem)->path);
}

/* The regular member path names (following links inside the archive), or
 * NULL. */
static const member *member_find(const archive_import *ai, const char *path)
{
	char buf[MEMBER_PATH_MAX + 1];

	if (strlen(path) > MEMBER_PATH_MAX)
		return NULL;
	strcpy(buf, path);
	normalize_path(buf);
	for (int hops = 0; hops <= LINK_HOPS_MAX; hops++) {
		const member *m = ai->n ? bsearch(buf, ai->m, ai->n, sizeof(*ai->m), compare_path_key) : NULL;
		if (!m || !m->link)
			return m;
		if (strlen(m->link) > MEMBER_PATH_MAX)
			return NULL;
		strcpy(buf, m->link);
	}
	return NULL;
}

/* ---- reading the archive ---- */

static int archive_failed(struct archive *a, capsa_error *err)
{
	const char *msg = archive_error_string(a);
	int code = archive_errno(a);

	return error_set(err, code > 0 ? code : EINVAL, "%s", msg ? msg : "unreadable archive");
}

static int read_member_to_memory(struct archive *a, struct archive_entry *e, const char *path, char **data,
				 size_t *len, capsa_error *err)
{
	la_int64_t announced = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;

	if (announced > (la_int64_t)OCI_MANIFEST_MAX_BYTES)
		return error_set(err, EFBIG, "'%s' is larger than the %u bytes allowed", path, OCI_MANIFEST_MAX_BYTES);
	size_t cap = announced > 0 ? (size_t)announced : 0;
	_cleanup_free_ char *buf = malloc(cap + 1);
	size_t n = 0;
	if (!buf)
		return error_set_errno(err, ENOMEM, "reading '%s'", path);
	for (;;) {
		if (n == cap) {
			if (cap >= OCI_MANIFEST_MAX_BYTES)
				return error_set(err, EFBIG, "'%s' is larger than the %u bytes allowed", path,
						 OCI_MANIFEST_MAX_BYTES);
			cap = cap ? cap * 2 : 4096;
			if (cap > OCI_MANIFEST_MAX_BYTES)
				cap = OCI_MANIFEST_MAX_BYTES;
			char *bigger = realloc(buf, cap + 1);
			if (!bigger)
				return error_set_errno(err, ENOMEM, "reading '%s'", path);
			buf = bigger;
		}
		la_ssize_t r = archive_read_data(a, buf + n, cap - n);
		if (r < 0)
			return archive_failed(a, err);
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	free(*data);  /* a later member of the same name wins */
	*data = steal_pointer(&buf);
	*len = n;
	return 0;
}

/* "blobs/sha256/<64 hex>": the member must hash to <hex>. */
static bool is_layout_blob_path(const char *path, char digest[OCI_DIGEST_STRING_SIZE])
{
	static const char prefix[] = "blobs/sha256/";

	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
		return false;
	snprintf(digest, OCI_DIGEST_STRING_SIZE, "%s%.64s", OCI_DIGEST_PREFIX, path + sizeof(prefix) - 1);
	return strlen(path) == sizeof(prefix) - 1 + OCI_DIGEST_HEX_LEN && oci_digest_validate(digest, NULL) == 0;
}

static int copy_member(struct archive *a, oci_blob_writer *w, uint64_t *copied, capsa_error *err)
{
	_cleanup_free_ char *buf = malloc(READ_CHUNK);

	if (!buf)
		return error_set_errno(err, ENOMEM, "reading the archive");
	for (;;) {
		la_ssize_t r = archive_read_data(a, buf, READ_CHUNK);
		if (r < 0)
			return archive_failed(a, err);
		if (r == 0)
			return 0;
		if (oci_blob_writer_write(w, buf, (size_t)r, err) < 0)
			return -1;
		*copied += (uint64_t)r;
	}
}

static int stored_size(oci_store *s, const char *digest, uint64_t *size, capsa_error *err)
{
	_cleanup_free_ char *path = oci_store_blob_path(s, digest, err);
	struct stat st;

	if (!path)
		return -1;
	if (stat(path, &st) < 0)
		return error_set_errno(err, errno, "cannot stat blob '%s'", path);
	*size = (uint64_t)st.st_size;
	return 0;
}

static int store_member(archive_import *ai, struct archive *a, struct archive_entry *e, const char *path,
			capsa_error *err)
{
	char expected[OCI_DIGEST_STRING_SIZE], digest[OCI_DIGEST_STRING_SIZE];
	bool known = is_layout_blob_path(path, expected);
	int64_t size = archive_entry_size_is_set(e) && archive_entry_size(e) >= 0 ? archive_entry_size(e) : -1;
	oci_blob_writer *w = NULL;
	uint64_t copied = 0;

	int ret = oci_store_blob_begin(ai->s, known ? expected : NULL, size, &w, err);
	if (ret == 1) {
		memcpy(digest, expected, sizeof(digest));
		if (archive_read_data_skip(a) != ARCHIVE_OK)
			return archive_failed(a, err);
		if (stored_size(ai->s, digest, &copied, err) < 0)
			return -1;
	} else if (ret == 0) {
		if (oci_blob_writer_offset(w) > 0)
			ret = oci_blob_writer_restart(w, err);
		if (ret == 0)
			ret = copy_member(a, w, &copied, err);
		if (ret == 0)
			ret = oci_blob_writer_commit(w, digest, err);
		oci_blob_writer_free(w);
	}
	if (ret < 0)
		return -1;
	return member_add(ai, path, NULL, digest, copied, err);
}

/* A symlink's target, or a hard link's, as a member path. */
static int link_target(struct archive_entry *e, const char *path, char **out, capsa_error *err)
{
	const char *hard = archive_entry_hardlink(e);
	const char *sym = archive_entry_symlink(e);
	const char *dir_end = strrchr(path, '/');
	size_t dir_len = hard || !dir_end || (sym && sym[0] == '/') ? 0 : (size_t)(dir_end - path);
	const char *target = hard ? hard : sym;

	if (strlen(target) > MEMBER_PATH_MAX)
		return error_set(err, EINVAL, "link target of '%s' is longer than %d bytes", path, MEMBER_PATH_MAX);
	if (asprintf(out, "%.*s/%s", (int)dir_len, path, target) < 0) {
		*out = NULL;
		return error_set_errno(err, ENOMEM, "reading the archive");
	}
	normalize_path(*out);
	return 0;
}

static int read_member(archive_import *ai, struct archive *a, struct archive_entry *e, capsa_error *err)
{
	const char *name = archive_entry_pathname(e);
	char path[MEMBER_PATH_MAX + 1];

	if (!name)
		return error_set(err, EINVAL, "a member has no (readable) path");
	if (strlen(name) > MEMBER_PATH_MAX)
		return error_set(err, EINVAL, "member path '%.80s...' is longer than %d bytes", name, MEMBER_PATH_MAX);
	if (++ai->seen > MEMBER_COUNT_MAX)
		return error_set(err, E2BIG, "more than %d members", MEMBER_COUNT_MAX);
	strcpy(path, name);
	normalize_path(path);

	bool is_link = archive_entry_hardlink(e) || archive_entry_filetype(e) == AE_IFLNK;
	if (is_link && (archive_entry_hardlink(e) || archive_entry_symlink(e))) {
		_cleanup_free_ char *target = NULL;
		if (link_target(e, path, &target, err) < 0)
			return -1;
		return member_add(ai, path, target, NULL, 0, err);
	}
	if (archive_entry_filetype(e) != AE_IFREG)
		return 0;
	if (strcmp(path, "manifest.json") == 0)
		return read_member_to_memory(a, e, path, &ai->manifest_json, &ai->manifest_json_len, err);
	if (strcmp(path, "index.json") == 0)
		return read_member_to_memory(a, e, path, &ai->index_json, &ai->index_json_len, err);
	if (strcmp(path, "oci-layout") == 0)
		return read_member_to_memory(a, e, path, &ai->layout_json, &ai->layout_json_len, err);
	return store_member(ai, a, e, path, err);
}

static int read_archive(archive_import *ai, const char *path, capsa_error *err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	int ret = 0;

	if (!a)
		return error_set_errno(err, ENOMEM, "reading the archive");
	/* Any compression, but only tar: nothing else is a docker save or
	 * OCI archive, and every other format reader is attack surface. */
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	/* Opened here for a plain "No such file" message; libarchive reads
	 * from the fd and never closes it. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		archive_read_free(a);
		return error_set_errno(err, errno, "cannot open '%s'", path);
	}
	if (archive_read_open_fd(a, fd, READ_CHUNK) != ARCHIVE_OK) {
		archive_failed(a, err);
		archive_read_free(a);
		return error_prefix(err, NOT_TAR);
	}
	for (bool first = true;; first = false) {
		int r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			ret = archive_failed(a, err);
			if (first)
				error_prefix(err, NOT_TAR);
			break;
		}
		if (read_member(ai, a, e, err) < 0) {
			const char *name = archive_entry_pathname(e);
			ret = error_prefix(err, "member '%.200s'", name ? name : "?");
			break;
		}
	}
	archive_read_free(a);
	if (ret == 0)
		members_finish(ai);
	return ret;
}

/* ---- the images found ---- */

static int result_add(archive_import *ai, const char *name, const char *digest, uint64_t size, capsa_error *err)
{
	for (size_t i = 0; i < ai->n_out; i++) {
		const oci_loaded_image *o = &ai->out[i];
		bool same_name = name && o->name && strcmp(o->name, name) == 0;
		if (same_name || (!name && !o->name && strcmp(o->manifest_digest, digest) == 0))
			return 0;
	}
	if (ai->n_out == ai->cap_out) {
		size_t cap = ai->cap_out ? ai->cap_out * 2 : 8;
		oci_loaded_image *out = realloc(ai->out, cap * sizeof(*out));
		if (!out)
			return error_set_errno(err, ENOMEM, "reading the archive");
		ai->out = out;
		uint64_t *sizes = realloc(ai->out_sizes, cap * sizeof(*sizes));
		if (!sizes)
			return error_set_errno(err, ENOMEM, "reading the archive");
		ai->out_sizes = sizes;
		ai->cap_out = cap;
	}
	oci_loaded_image *o = &ai->out[ai->n_out];
	o->name = name ? strdup(name) : NULL;
	if (name && !o->name)
		return error_set_errno(err, ENOMEM, "reading the archive");
	memcpy(o->manifest_digest, digest, OCI_DIGEST_STRING_SIZE);
	ai->out_sizes[ai->n_out++] = size;
	return 0;
}

/* Adds name (a reference as the archive wrote it) in canonical form. */
static int result_add_reference(archive_import *ai, const char *text, const char *digest, uint64_t size,
				capsa_error *err)
{
	_cleanup_free_ char *name = import_canonical_name(text, err);

	if (!name)
		return error_prefix(err, "image name '%.200s'", text);
	return result_add(ai, name, digest, size, err);
}

/* Names every image: untagged ones (that no entry named either) under
 * their digest. */
static int tag_results(archive_import *ai, capsa_error *err)
{
	size_t keep = 0;

	for (size_t i = 0; i < ai->n_out; i++) {
		oci_loaded_image *o = &ai->out[i];
		bool named_elsewhere = false;
		for (size_t j = 0; !o->name && j < ai->n_out; j++)
			named_elsewhere |= ai->out[j].name && strcmp(ai->out[j].manifest_digest, o->manifest_digest) == 0;
		if (named_elsewhere)
			continue;
		if (oci_store_tag(ai->s, o->name ? o->name : o->manifest_digest, o->manifest_digest, ai->out_sizes[i],
				  err) < 0)
			return -1;
		ai->out[keep] = *o;
		ai->out_sizes[keep++] = ai->out_sizes[i];
	}
	ai->n_out = keep;
	return 0;
}

/* ---- manifest.json ---- */

typedef struct saved_image {
	char *config;        /* member path */
	char **repo_tags;    /* NULL-terminated, or NULL */
	char **layers;       /* NULL-terminated member paths */
} saved_image;

static void saved_images_free(saved_image *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].config);
		oci_strv_free(v[i].repo_tags);
		oci_strv_free(v[i].layers);
	}
	free(v);
}

static int parse_saved_image(const json_t *item, saved_image *out, capsa_error *err)
{
	if (!json_is_object(item))
		return error_set(err, EINVAL, "entry is not a JSON object");
	if (json_require_string(item, "Config", &out->config, err) < 0 ||
	    json_get_string_array(item, "RepoTags", REPO_TAGS_MAX, &out->repo_tags, err) < 0 ||
	    json_get_string_array(item, "Layers", OCI_MAX_LAYERS, &out->layers, err) < 0)
		return -1;
	if (!out->layers)
		return error_set(err, EINVAL, "required field \"Layers\" is missing");
	return 0;
}

static int parse_manifest_json(const archive_import *ai, saved_image **out, size_t *n, capsa_error *err)
{
	json_error_t jerr;

	*out = NULL;
	*n = 0;
	_cleanup_json_ json_t *root = json_loadb(ai->manifest_json, ai->manifest_json_len, JSON_REJECT_DUPLICATES,
						 &jerr);
	if (!root)
		return error_set(err, EINVAL, "manifest.json is not valid JSON: %s (line %d)", jerr.text, jerr.line);
	if (!json_is_array(root))
		return error_set(err, EINVAL, "manifest.json is not a JSON array");
	size_t count = json_array_size(root);
	if (count > MANIFEST_JSON_MAX_IMAGES)
		return error_set(err, EINVAL, "manifest.json lists %zu images, more than the %d allowed", count,
				 MANIFEST_JSON_MAX_IMAGES);
	saved_image *v = calloc(count ? count : 1, sizeof(*v));
	if (!v)
		return error_set_errno(err, ENOMEM, "reading manifest.json");
	for (size_t i = 0; i < count; i++) {
		if (parse_saved_image(json_array_get(root, i), &v[i], err) < 0) {
			saved_images_free(v, count);
			return error_prefix(err, "manifest.json entry %zu", i);
		}
	}
	*out = v;
	*n = count;
	return 0;
}

/* ---- classic docker save ---- */

static const member *require_member(const archive_import *ai, const char *path, const char *what,
				    capsa_error *err)
{
	const member *m = member_find(ai, path);

	if (!m)
		error_set(err, ENOENT, "the archive lacks '%.200s' (%s named by manifest.json)", path, what);
	return m;
}

/* Layer tars are stored as docker wrote them, normally uncompressed;
 * the media type says what the bytes are. */
static int layer_media_type(archive_import *ai, const member *m, const char **type, capsa_error *err)
{
	_cleanup_free_ char *path = oci_store_blob_path(ai->s, m->digest, err);
	unsigned char magic[4] = { 0 };

	if (!path)
		return -1;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return error_set_errno(err, errno, "cannot open blob '%s'", path);
	ssize_t n = pread(fd, magic, sizeof(magic), 0);
	if (n < 0)
		return error_set_errno(err, errno, "cannot read blob '%s'", path);
	if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)
		*type = OCI_MEDIA_LAYER_GZIP;
	else if (n == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
		*type = OCI_MEDIA_LAYER_ZSTD;
	else
		*type = OCI_MEDIA_LAYER_TAR;
	return 0;
}

static json_t *descriptor_json(const char *media_type, const member *m)
{
	return json_pack("{s:s, s:s, s:I}", "mediaType", media_type, "digest", m->digest, "size",
			 (json_int_t)m->size);
}

/* Checks the config is one, so a broken archive fails now, not at run. */
static int check_config(archive_import *ai, const member *config, capsa_error *err)
{
	_cleanup_free_ char *json = NULL;
	oci_image_config c = { 0 };
	size_t len;

	if (oci_store_read_blob(ai->s, config->digest, OCI_MANIFEST_MAX_BYTES, &json, &len, err) < 0 ||
	    oci_image_config_parse(json, len, &c, err) < 0)
		return error_prefix(err, "image config '%.200s'", config->path);
	oci_image_config_clear(&c);
	return 0;
}

/* Writes an OCI image manifest for a classic entry and stores it. */
static int build_manifest(archive_import *ai, const saved_image *img, char digest[OCI_DIGEST_STRING_SIZE],
			  uint64_t *size, capsa_error *err)
{
	const member *config = require_member(ai, img->config, "image config", err);

	if (!config || check_config(ai, config, err) < 0)
		return -1;
	_cleanup_json_ json_t *root = json_pack("{s:i, s:s, s:o, s:[]}", "schemaVersion", 2, "mediaType",
						OCI_MEDIA_MANIFEST, "config", descriptor_json(OCI_MEDIA_CONFIG, config),
						"layers");
	if (!root)
		return error_set_errno(err, ENOMEM, "writing an image manifest");
	json_t *layers = json_object_get(root, "layers");
	*size = config->size;
	for (char **p = img->layers; *p; p++) {
		const member *layer = require_member(ai, *p, "layer", err);
		const char *type = NULL;
		if (!layer || layer_media_type(ai, layer, &type, err) < 0)
			return -1;
		if (json_array_append_new(layers, descriptor_json(type, layer)) < 0)
			return error_set_errno(err, ENOMEM, "writing an image manifest");
		*size += layer->size;
	}
	/* Compact and in a fixed key order: loading the same archive twice
	 * gives the same manifest digest. */
	_cleanup_free_ char *text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return error_set_errno(err, ENOMEM, "writing an image manifest");
	return oci_store_put_blob(ai->s, text, strlen(text), NULL, digest, err);
}

static int import_classic(archive_import *ai, capsa_error *err)
{
	saved_image *images = NULL;
	size_t n = 0;
	int ret = parse_manifest_json(ai, &images, &n, err);

	for (size_t i = 0; ret == 0 && i < n; i++) {
		char digest[OCI_DIGEST_STRING_SIZE];
		uint64_t size = 0;

		ret = build_manifest(ai, &images[i], digest, &size, err);
		if (ret < 0) {
			error_prefix(err, "image %zu of manifest.json", i + 1);
			break;
		}
		for (char **tag = images[i].repo_tags; ret == 0 && tag && *tag; tag++)
			ret = result_add_reference(ai, *tag, digest, size, err);
		if (ret == 0 && !(images[i].repo_tags && images[i].repo_tags[0]))
			ret = result_add(ai, NULL, digest, size, err);
	}
	saved_images_free(images, n);
	return ret;
}

/* ---- OCI layout archives ---- */

static int archive_read_blob(void *opaque, const char *digest, size_t max, char **data, size_t *len,
			     capsa_error *err)
{
	archive_import *ai = opaque;

	if (!oci_store_has_blob(ai->s, digest))
		return error_set(err, ENOENT, "the archive lacks blob %s (a manifest or index)", digest);
	return oci_store_read_blob(ai->s, digest, max, data, len, err);
}

static int archive_store_blob(void *opaque, const oci_descriptor *d, const char *what, capsa_error *err)
{
	archive_import *ai = opaque;

	/* Members were stored, verified, as they went by: present is all
	 * that is left to check. */
	if (!oci_store_has_blob(ai->s, d->digest))
		return error_set(err, ENOENT, "the archive lacks blob %s (%s)", d->digest, what);
	return 0;
}

/* Whether a ref.name annotation is a whole reference: it often holds only
 * a tag ("latest"), which names no repository. */
static bool is_full_reference(const char *text)
{
	return strchr(text, '/') || strchr(text, ':') || strchr(text, '@');
}

/* Names from manifest.json's RepoTags whose Config is the config the
 * manifest points at (docker writes both files). */
static int add_repo_tags(archive_import *ai, const saved_image *images, size_t n, const char *manifest_digest,
			 uint64_t size, bool *named, capsa_error *err)
{
	_cleanup_free_ char *json = NULL;
	oci_manifest m = { 0 };
	size_t len;

	if (n == 0)
		return 0;
	if (oci_store_read_blob(ai->s, manifest_digest, OCI_MANIFEST_MAX_BYTES, &json, &len, err) < 0 ||
	    oci_manifest_parse(json, len, &m, err) < 0)
		return -1;
	int ret = 0;
	for (size_t i = 0; ret == 0 && i < n; i++) {
		const member *config = member_find(ai, images[i].config);
		if (!config || strcmp(config->digest, m.config.digest) != 0)
			continue;
		for (char **tag = images[i].repo_tags; ret == 0 && tag && *tag; tag++, *named = true)
			ret = result_add_reference(ai, *tag, manifest_digest, size, err);
	}
	oci_manifest_clear(&m);
	return ret;
}

static int import_oci_entry(archive_import *ai, const import_entry *e, const saved_image *images, size_t n_images,
			    capsa_error *err)
{
	import_source src = { .read_blob = archive_read_blob, .store_blob = archive_store_blob, .opaque = ai };
	char digest[OCI_DIGEST_STRING_SIZE];
	uint64_t size = 0;
	bool named = false;

	if (import_resolve_image(ai->s, &src, &e->desc, ai->platform, digest, &size, err) < 0)
		return -1;
	const char *name = e->image_name;
	if (!name && e->ref_name && is_full_reference(e->ref_name))
		name = e->ref_name;
	if (name) {
		if (result_add_reference(ai, name, digest, size, err) < 0)
			return -1;
		named = true;
	}
	if (add_repo_tags(ai, images, n_images, digest, size, &named, err) < 0)
		return -1;
	return named ? 0 : result_add(ai, NULL, digest, size, err);
}

static int import_oci(archive_import *ai, capsa_error *err)
{
	saved_image *images = NULL;
	import_entry *entries = NULL;
	size_t n_images = 0, n = 0;

	if (import_check_layout_file(ai->layout_json, ai->layout_json_len, err) < 0 ||
	    import_parse_layout_index(ai->index_json, ai->index_json_len, &entries, &n, err) < 0)
		return -1;
	int ret = 0;
	if (ai->manifest_json)
		ret = parse_manifest_json(ai, &images, &n_images, err);
	if (ret == 0 && n == 0)
		ret = error_set(err, ENOENT, "index.json lists no image");
	for (size_t i = 0; ret == 0 && i < n; i++) {
		ret = import_oci_entry(ai, &entries[i], images, n_images, err);
		if (ret < 0)
			error_prefix(err, "index.json entry %zu", i + 1);
	}
	saved_images_free(images, n_images);
	import_entries_free(entries, n);
	return ret;
}

/* ---- the whole ---- */

static int import_archive(archive_import *ai, const char *path, capsa_error *err)
{
	if (read_archive(ai, path, err) < 0)
		return -1;
	/* Newer docker writes both layouts; the OCI one keeps the images'
	 * original manifests (and so their digests). */
	if (ai->index_json && ai->layout_json)
		return import_oci(ai, err);
	if (ai->manifest_json)
		return import_classic(ai, err);
	if (ai->index_json)
		return error_set(err, EINVAL, "the archive has an index.json but no oci-layout file");
	return error_set(err, EINVAL,
			 "this is neither a docker save archive nor an OCI layout archive (no manifest.json or "
			 "index.json at its top)");
}

int oci_import_archive(oci_store *s, const char *path, const oci_platform *platform, oci_loaded_image **images,
		       size_t *n_images, capsa_error *err)
{
	archive_import ai = { .s = s, .platform = platform };

	*images = NULL;
	*n_images = 0;
	int ret = oci_store_use_begin(s, err);
	if (ret == 0) {
		ret = import_archive(&ai, path, err);
		if (ret == 0 && ai.n_out == 0)
			ret = error_set(err, ENOENT, "the archive holds no image");
		if (ret == 0)
			ret = tag_results(&ai, err);
		oci_store_use_end(s);
	}
	for (size_t i = 0; i < ai.n; i++) {
		free(ai.m[i].path);
		free(ai.m[i].link);
	}
	free(ai.m);
	free(ai.manifest_json);
	free(ai.index_json);
	free(ai.layout_json);
	free(ai.out_sizes);
	if (ret < 0) {
		oci_loaded_images_free(ai.out, ai.n_out);
		error_prefix(err, "loading '%s'", path);
		return -1;
	}
	*images = ai.out;
	*n_images = ai.n_out;
	return 0;
}
