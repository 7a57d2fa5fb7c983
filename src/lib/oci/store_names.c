/* images.json: the image names of the store, each pointing at a manifest
 * digest. Readers hold images.lock shared, writers exclusive while they
 * read, change and atomically replace the file. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "oci/store.h"
#include "oci/store_internal.h"
#include "util/cleanup.h"
#include "util/atomic_file.h"
#include "util/error.h"

#define IMAGES_FORMAT_VERSION 1
/* Far beyond any real store; keeps a damaged file from eating memory. */
#define IMAGES_MAX_BYTES (64u * 1024 * 1024)
#define NAME_MAX_BYTES 8192

typedef struct record_list {
	oci_image_record *v;
	size_t n, cap;
} record_list;

void oci_image_record_clear(oci_image_record *r)
{
	if (!r)
		return;
	free(r->name);
	free(r->manifest_digest);
	memset(r, 0, sizeof(*r));
}

void oci_image_records_free(oci_image_record *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		oci_image_record_clear(&list[i]);
	free(list);
}

static void record_list_clear(record_list *l)
{
	oci_image_records_free(l->v, l->n);
	memset(l, 0, sizeof(*l));
}
#define _cleanup_records_ __attribute__((cleanup(record_list_clear)))

static int record_copy(oci_image_record *dst, const oci_image_record *src, capsa_error *err)
{
	*dst = *src;
	dst->name = strdup(src->name);
	dst->manifest_digest = strdup(src->manifest_digest);
	if (!dst->name || !dst->manifest_digest) {
		oci_image_record_clear(dst);
		return error_set_errno(err, ENOMEM, "copying an image record");
	}
	return 0;
}

static int record_list_add(record_list *l, const char *name, const char *digest, int64_t created, uint64_t size,
			   capsa_error *err)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		oci_image_record *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return error_set_errno(err, ENOMEM, "loading image names");
		l->v = v;
		l->cap = cap;
	}
	oci_image_record r = { .name = (char *)name, .manifest_digest = (char *)digest, .created = created,
			       .size = size };
	if (record_copy(&l->v[l->n], &r, err) < 0)
		return -1;
	l->n++;
	return 0;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(((const oci_image_record *)a)->name, ((const oci_image_record *)b)->name);
}

static ssize_t find_name(const record_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

/* ---- the file ---- */

static int corrupt(oci_store *s, capsa_error *err, const char *what)
{
	return error_set(err, EBADMSG, "'%s' is corrupt (%s); repair it, or remove it to forget every image name "
			 "(the images' data stays until gc)", s->images_path, what);
}

static int parse_record(oci_store *s, json_t *item, size_t i, record_list *l, capsa_error *err)
{
	json_t *name = json_object_get(item, "name");
	json_t *digest = json_object_get(item, "manifest");
	json_t *created = json_object_get(item, "created");
	json_t *size = json_object_get(item, "size");
	char what[128];

	snprintf(what, sizeof(what), "entry %zu", i);
	if (!json_is_object(item) || !json_is_string(name) || !json_is_string(digest) || !json_is_integer(created) ||
	    !json_is_integer(size) || json_integer_value(size) < 0)
		return corrupt(s, err, what);
	if (json_string_length(name) == 0 || strlen(json_string_value(name)) != json_string_length(name) ||
	    oci_digest_validate(json_string_value(digest), NULL) < 0)
		return corrupt(s, err, what);
	if (find_name(l, json_string_value(name)) >= 0) {
		snprintf(what, sizeof(what), "entry %zu repeats a name", i);
		return corrupt(s, err, what);
	}
	return record_list_add(l, json_string_value(name), json_string_value(digest), json_integer_value(created),
			       (uint64_t)json_integer_value(size), err);
}

/* Reads every record; a missing file is an empty store. Call with
 * images.lock held. */
static int records_load(oci_store *s, record_list *l, capsa_error *err)
{
	_cleanup_close_ int fd = open(s->images_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;

	memset(l, 0, sizeof(*l));
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return error_set_errno(err, errno, "cannot open '%s'", s->images_path);
	if (fstat(fd, &st) < 0)
		return error_set_errno(err, errno, "cannot stat '%s'", s->images_path);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > IMAGES_MAX_BYTES)
		return corrupt(s, err, "not a regular file of a sane size");

	_cleanup_free_ char *text = malloc((size_t)st.st_size + 1);
	size_t len = 0;
	if (!text)
		return error_set_errno(err, ENOMEM, "reading '%s'", s->images_path);
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, text + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set_errno(err, errno, "cannot read '%s'", s->images_path);
		if (n == 0)
			break;
		len += (size_t)n;
	}

	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		char what[256];
		snprintf(what, sizeof(what), "line %d: %.160s", jerr.line, jerr.text);
		return corrupt(s, err, what);
	}
	json_t *version = json_object_get(root, "version");
	json_t *images = json_object_get(root, "images");
	int ret = 0;
	if (!json_is_object(root) || !json_is_integer(version) || !json_is_array(images))
		ret = corrupt(s, err, "no \"version\" and \"images\" fields");
	else if (json_integer_value(version) != IMAGES_FORMAT_VERSION)
		ret = error_set(err, ENOTSUP, "'%s' has format version %" JSON_INTEGER_FORMAT
				", which this capsa does not know; use a newer capsa", s->images_path,
				json_integer_value(version));
	for (size_t i = 0; ret == 0 && i < json_array_size(images); i++)
		ret = parse_record(s, json_array_get(images, i), i, l, err);
	json_decref(root);
	if (ret < 0)
		record_list_clear(l);
	return ret;
}

static int records_save(oci_store *s, record_list *l, capsa_error *err)
{
	json_t *root = json_pack("{s:i, s:[]}", "version", IMAGES_FORMAT_VERSION, "images");
	int ret = 0;

	if (!root)
		return error_set_errno(err, ENOMEM, "writing '%s'", s->images_path);
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), compare_names);
	json_t *images = json_object_get(root, "images");
	for (size_t i = 0; ret == 0 && i < l->n; i++) {
		json_t *item = json_pack("{s:s, s:s, s:I, s:I}", "name", l->v[i].name, "manifest",
					 l->v[i].manifest_digest, "created", (json_int_t)l->v[i].created, "size",
					 (json_int_t)l->v[i].size);
		if (!item || json_array_append_new(images, item) < 0)
			ret = error_set_errno(err, ENOMEM, "writing '%s'", s->images_path);
	}
	_cleanup_free_ char *text = ret == 0 ? json_dumps(root, JSON_INDENT(2)) : NULL;
	json_decref(root);
	if (ret < 0)
		return -1;
	if (!text)
		return error_set_errno(err, ENOMEM, "writing '%s'", s->images_path);
	_cleanup_free_ char *line = NULL;
	if (asprintf(&line, "%s\n", text) < 0) {
		line = NULL;
		return error_set_errno(err, ENOMEM, "writing '%s'", s->images_path);
	}
	return atomic_file_write_data(s->images_path, line, strlen(line), 0644, err);
}

static int lock_names(oci_store *s, int op, capsa_error *err)
{
	return store_lock_path(s->images_lock, op, err);
}

/* ---- the API ---- */

static int check_name(const char *name, capsa_error *err)
{
	size_t len = name ? strnlen(name, NAME_MAX_BYTES + 1) : 0;

	if (len == 0)
		return error_set(err, EINVAL, "an image name must not be empty");
	if (len > NAME_MAX_BYTES)
		return error_set(err, EINVAL, "image name '%.80s…' is too long", name);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return error_set(err, EINVAL, "image name '%.80s' contains a control character", name);
	return 0;
}

int oci_store_tag(oci_store *s, const char *name, const char *manifest_digest, uint64_t size, capsa_error *err)
{
	_cleanup_records_ record_list l = { 0 };

	if (check_name(name, err) < 0 || oci_digest_validate(manifest_digest, err) < 0)
		return error_prefix(err, "naming an image");
	if (size > INT64_MAX)
		return error_set(err, EINVAL, "naming an image: size %" PRIu64 " out of range", size);
	_cleanup_close_ int lock = lock_names(s, LOCK_EX, err);
	if (lock < 0 || records_load(s, &l, err) < 0)
		return error_prefix(err, "naming image '%s'", name);

	ssize_t i = find_name(&l, name);
	if (i >= 0 && strcmp(l.v[i].manifest_digest, manifest_digest) == 0) {
		l.v[i].size = size;
	} else if (i >= 0) {
		char *digest = strdup(manifest_digest);
		if (!digest)
			return error_set_errno(err, ENOMEM, "naming image '%s'", name);
		free(l.v[i].manifest_digest);
		l.v[i].manifest_digest = digest;
		l.v[i].created = time(NULL);
		l.v[i].size = size;
	} else if (record_list_add(&l, name, manifest_digest, time(NULL), size, err) < 0) {
		return -1;
	}
	if (records_save(s, &l, err) < 0)
		return error_prefix(err, "naming image '%s'", name);
	return 0;
}

/* The digest's hex digits if text looks like an id: "sha256:" optional,
 * 4 to 64 lowercase hex digits. */
static const char *id_prefix(const char *text)
{
	if (strncmp(text, OCI_DIGEST_PREFIX, strlen(OCI_DIGEST_PREFIX)) == 0)
		text += strlen(OCI_DIGEST_PREFIX);
	size_t n = strlen(text);
	if (n < 4 || n > OCI_DIGEST_HEX_LEN || strspn(text, "0123456789abcdef") != n)
		return NULL;
	return text;
}

int oci_store_lookup(oci_store *s, const char *name, oci_image_record *out, capsa_error *err)
{
	_cleanup_records_ record_list l = { 0 };

	memset(out, 0, sizeof(*out));
	_cleanup_close_ int lock = lock_names(s, LOCK_SH, err);
	if (lock < 0 || records_load(s, &l, err) < 0)
		return error_prefix(err, "looking up image '%s'", name);
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), compare_names);

	ssize_t i = find_name(&l, name);
	if (i >= 0)
		return record_copy(out, &l.v[i], err);

	const char *prefix = id_prefix(name);
	const oci_image_record *found = NULL;
	if (prefix) {
		size_t plen = strlen(prefix);
		for (size_t j = 0; j < l.n; j++) {
			const char *digest = l.v[j].manifest_digest;
			if (strncmp(oci_digest_hex(digest), prefix, plen) != 0)
				continue;
			if (!found) {
				found = &l.v[j];
			} else if (strcmp(found->manifest_digest, digest) != 0) {
				return error_set(err, EINVAL, "image id '%s' is ambiguous: it matches "
						 STORE_SHORT_DIGEST_FMT " and " STORE_SHORT_DIGEST_FMT
						 " at least; give more digits", name, found->manifest_digest, digest);
			}
		}
	}
	if (!found)
		return error_set(err, ENOENT, "no image '%s' in the store; pull or load it first", name);
	return record_copy(out, found, err);
}

int oci_store_list(oci_store *s, oci_image_record **list, size_t *n, capsa_error *err)
{
	_cleanup_records_ record_list l = { 0 };

	*list = NULL;
	*n = 0;
	_cleanup_close_ int lock = lock_names(s, LOCK_SH, err);
	if (lock < 0 || records_load(s, &l, err) < 0)
		return error_prefix(err, "listing images");
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), compare_names);
	*list = steal_pointer(&l.v);
	*n = l.n;
	l.n = 0;
	return 0;
}

int oci_store_untag(oci_store *s, const char *name, capsa_error *err)
{
	_cleanup_records_ record_list l = { 0 };

	_cleanup_close_ int lock = lock_names(s, LOCK_EX, err);
	if (lock < 0 || records_load(s, &l, err) < 0)
		return error_prefix(err, "removing image '%s'", name);
	ssize_t i = find_name(&l, name);
	if (i < 0)
		return error_set(err, ENOENT, "no image called '%s' in the store", name);
	oci_image_record_clear(&l.v[i]);
	memmove(&l.v[i], &l.v[i + 1], (l.n - (size_t)i - 1) * sizeof(*l.v));
	l.n--;
	if (records_save(s, &l, err) < 0)
		return error_prefix(err, "removing image '%s'", name);
	return 0;
}
