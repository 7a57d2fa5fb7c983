/* Importing images: `docker save` archives in the classic layout (plain
 * and gzip-compressed, with hostile member paths and a linked layer), OCI
 * layout directories (tags, nested platform indexes, tampered and
 * symlinked blobs) and OCI layout archives, all built here with the
 * libarchive writer and jansson. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "oci/digest.h"
#include "oci/import.h"
#include "oci/manifest.h"
#include "oci/store.h"
#include "test_tmpdir.h"

static char base[64];      /* per-test scratch directory */
static char *store_root;   /* <base>/store */

/* ---- helpers -------------------------------------------------------- */

static void digest_of(const void *data, size_t len, char out[OCI_DIGEST_STRING_SIZE])
{
	assert_int_equal(oci_digest_of_buffer(data, len, out, NULL), 0);
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(tmpdir_create(base, sizeof(base), "import"), 0);
	store_root = pathf("%s/store", base);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(remove_tree(base), 0);
	free(store_root);
	return 0;
}

static oci_store *open_store(void)
{
	capsa_error err = { 0 };
	oci_store *s = oci_store_open(store_root, &err);
	if (!s)
		fail_msg("%s", err.message);
	return s;
}

/* A growable byte buffer. */
typedef struct bytes {
	char *data;
	size_t len;
} bytes;

static void bytes_free(bytes *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

static char *json_text(json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT);
	assert_non_null(text);
	json_decref(j);
	return text;
}

/* ---- writing tars ---- */

typedef struct tar {
	struct archive *a;
	bytes *mem;         /* when writing to memory */
	size_t mem_cap;
} tar;

static void tar_open_file(tar *t, const char *path, const char *compression)
{
	t->a = archive_write_new();
	assert_non_null(t->a);
	assert_int_equal(archive_write_set_format_pax_restricted(t->a), ARCHIVE_OK);
	if (compression && !strcmp(compression, "gzip"))
		assert_int_equal(archive_write_add_filter_gzip(t->a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(t->a, path), ARCHIVE_OK);
}

static void tar_open_memory(tar *t, bytes *out, size_t cap, const char *compression)
{
	t->a = archive_write_new();
	assert_non_null(t->a);
	assert_int_equal(archive_write_set_format_pax_restricted(t->a), ARCHIVE_OK);
	if (compression && !strcmp(compression, "gzip"))
		assert_int_equal(archive_write_add_filter_gzip(t->a), ARCHIVE_OK);
	out->data = calloc(1, cap);
	out->len = 0;
	t->mem = out;
	assert_int_equal(archive_write_open_memory(t->a, out->data, cap, &out->len), ARCHIVE_OK);
}

static void tar_add(tar *t, const char *name, const void *data, size_t len)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)len);
	assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
	if (len)
		assert_int_equal(archive_write_data(t->a, data, len), (la_ssize_t)len);
	archive_entry_free(e);
}

static void tar_add_text(tar *t, const char *name, const char *text)
{
	tar_add(t, name, text, strlen(text));
}

static void tar_add_dir(tar *t, const char *name)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFDIR);
	archive_entry_set_perm(e, 0755);
	assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
	archive_entry_free(e);
}

static void tar_add_symlink(tar *t, const char *name, const char *target)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFLNK);
	archive_entry_set_perm(e, 0777);
	archive_entry_set_symlink(e, target);
	assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
	archive_entry_free(e);
}

static void tar_close(tar *t)
{
	assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
	archive_write_free(t->a);
	t->a = NULL;
}

/* A layer: a tar holding one file, optionally gzip-compressed. */
static void make_layer(bytes *out, const char *file, const char *content, const char *compression)
{
	tar t = { 0 };
	tar_open_memory(&t, out, 64 * 1024, compression);
	tar_add_text(&t, file, content);
	tar_close(&t);
}

static char *make_config(const char *arch, const char *diff_id)
{
	return json_text(json_pack("{s:s, s:s, s:{s:[s]}, s:{s:s, s:[s]}}", "architecture", arch, "os", "linux",
				   "config", "Cmd", "/bin/hello", "rootfs", "type", "layers", "diff_ids", diff_id));
}

/* ---- checking results ---- */

static void read_manifest(oci_store *s, const char *digest, oci_manifest *m)
{
	capsa_error err = { 0 };
	char *json = NULL;
	size_t len;

	if (oci_store_read_blob(s, digest, OCI_MANIFEST_MAX_BYTES, &json, &len, &err) < 0)
		fail_msg("%s", err.message);
	if (oci_manifest_parse(json, len, m, &err) < 0)
		fail_msg("%s", err.message);
	free(json);
}

static void check_record(oci_store *s, const char *name, const char *digest, uint64_t size)
{
	capsa_error err = { 0 };
	oci_image_record r = { 0 };

	if (oci_store_lookup(s, name, &r, &err) < 0)
		fail_msg("%s", err.message);
	assert_string_equal(r.name, name);
	if (digest)
		assert_string_equal(r.manifest_digest, digest);
	assert_int_equal(r.size, size);
	oci_image_record_clear(&r);
}

static const oci_loaded_image *find_loaded(const oci_loaded_image *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if ((!name && !v[i].name) || (name && v[i].name && !strcmp(v[i].name, name)))
			return &v[i];
	return NULL;
}

/* ---- classic docker save -------------------------------------------- */

typedef struct classic {
	bytes layer1, layer2;       /* layer2 is gzip-compressed */
	char *config;
	char config_digest[OCI_DIGEST_STRING_SIZE];
	char layer1_digest[OCI_DIGEST_STRING_SIZE], layer2_digest[OCI_DIGEST_STRING_SIZE];
} classic;

static void classic_init(classic *c)
{
	char diff_id[OCI_DIGEST_STRING_SIZE];

	make_layer(&c->layer1, "hello.txt", "hello from layer one\n", NULL);
	make_layer(&c->layer2, "etc/motd", "second layer\n", "gzip");
	digest_of(c->layer1.data, c->layer1.len, c->layer1_digest);
	digest_of(c->layer2.data, c->layer2.len, c->layer2_digest);
	digest_of(c->layer1.data, c->layer1.len, diff_id);
	c->config = make_config("amd64", diff_id);
	digest_of(c->config, strlen(c->config), c->config_digest);
}

static void classic_clear(classic *c)
{
	bytes_free(&c->layer1);
	bytes_free(&c->layer2);
	free(c->config);
}

enum classic_flags {
	CLASSIC_GZIP = 1,           /* compress the whole archive */
	CLASSIC_NO_LAYER2 = 2,      /* leave out a referenced layer */
};

static void write_classic(const classic *c, const char *path, int flags)
{
	tar t = { 0 };
	char *config_name = pathf("%s.json", oci_digest_hex(c->config_digest));

	/* manifest.json first: the reader cannot rely on any order. */
	json_t *manifest = json_pack("[{s:s, s:[s, s], s:[s, s]}, {s:s, s:n, s:[s]}]", "Config", config_name,
				     "RepoTags", "busybox:latest", "example.com/team/app:1", "Layers",
				     "1111/layer.tar", "./2222/layer.tar", "Config", config_name, "RepoTags",
				     "Layers", "3333/layer.tar");
	char *manifest_text = json_text(manifest);

	tar_open_file(&t, path, flags & CLASSIC_GZIP ? "gzip" : NULL);
	tar_add_text(&t, "manifest.json", manifest_text);
	tar_add_text(&t, "repositories", "{}");
	tar_add_dir(&t, "1111");
	tar_add_text(&t, "1111/VERSION", "1.0");
	tar_add(&t, "1111/layer.tar", c->layer1.data, c->layer1.len);
	tar_add_dir(&t, "2222");
	if (!(flags & CLASSIC_NO_LAYER2))
		tar_add(&t, "2222/layer.tar", c->layer2.data, c->layer2.len);
	/* docker links a repeated layer to its first copy */
	tar_add_symlink(&t, "3333/layer.tar", "../1111/layer.tar");
	tar_add_text(&t, config_name, c->config);
	/* Hostile paths: only ever names in the archive. */
	tar_add_text(&t, "../../x", "outside?");
	tar_add_text(&t, "/tmp/capsa-import-abs", "absolute?");
	tar_close(&t);
	free(manifest_text);
	free(config_name);
}

static void test_classic_archive(void **state)
{
	(void)state;
	classic c = { 0 };
	oci_store *s = open_store();
	capsa_error err = { 0 };
	oci_loaded_image *images = NULL;
	size_t n = 0;
	char *archive = pathf("%s/save.tar", base);

	classic_init(&c);
	write_classic(&c, archive, 0);

	/* From a working directory deep inside the scratch directory, so a
	 * member "../../x" written relative to it would land in base. */
	char *deep = pathf("%s/a/b", base);
	char *cmd = pathf("mkdir -p '%s'", deep);
	assert_int_equal(system(cmd), 0);
	char cwd[4096];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(deep), 0);
	int ret = oci_import_archive(s, archive, NULL, &images, &n, &err);
	assert_int_equal(chdir(cwd), 0);
	if (ret < 0)
		fail_msg("%s", err.message);

	assert_int_equal(n, 3);
	const oci_loaded_image *busybox = find_loaded(images, n, "docker.io/library/busybox:latest");
	const oci_loaded_image *app = find_loaded(images, n, "example.com/team/app:1");
	const oci_loaded_image *untagged = find_loaded(images, n, NULL);
	assert_non_null(busybox);
	assert_non_null(app);
	assert_non_null(untagged);
	assert_string_equal(busybox->manifest_digest, app->manifest_digest);

	uint64_t size = strlen(c.config) + c.layer1.len + c.layer2.len;
	check_record(s, "docker.io/library/busybox:latest", busybox->manifest_digest, size);
	check_record(s, "example.com/team/app:1", busybox->manifest_digest, size);
	check_record(s, untagged->manifest_digest, untagged->manifest_digest, strlen(c.config) + c.layer1.len);

	oci_manifest m = { 0 };
	read_manifest(s, busybox->manifest_digest, &m);
	assert_string_equal(m.config.media_type, OCI_MEDIA_CONFIG);
	assert_string_equal(m.config.digest, c.config_digest);
	assert_int_equal(m.config.size, strlen(c.config));
	assert_int_equal(m.n_layers, 2);
	assert_string_equal(m.layers[0].media_type, OCI_MEDIA_LAYER_TAR);
	assert_string_equal(m.layers[0].digest, c.layer1_digest);
	assert_int_equal(m.layers[0].size, c.layer1.len);
	assert_string_equal(m.layers[1].media_type, OCI_MEDIA_LAYER_GZIP);
	assert_string_equal(m.layers[1].digest, c.layer2_digest);
	oci_manifest_clear(&m);
	assert_true(oci_store_has_blob(s, c.config_digest));
	assert_true(oci_store_has_blob(s, c.layer1_digest));
	assert_true(oci_store_has_blob(s, c.layer2_digest));

	read_manifest(s, untagged->manifest_digest, &m);
	assert_int_equal(m.n_layers, 1);
	assert_string_equal(m.layers[0].digest, c.layer1_digest);
	oci_manifest_clear(&m);

	/* Nothing was written where the hostile names point. */
	char *x1 = pathf("%s/x", base), *x2 = pathf("%s/a/x", base);
	assert_false(exists(x1));
	assert_false(exists(x2));
	assert_false(exists("/tmp/capsa-import-abs"));
	free(x1);
	free(x2);

	/* Loading it again gives the same images. */
	char first[OCI_DIGEST_STRING_SIZE];
	strcpy(first, busybox->manifest_digest);
	oci_loaded_images_free(images, n);
	assert_int_equal(oci_import_archive(s, archive, NULL, &images, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(find_loaded(images, n, "docker.io/library/busybox:latest")->manifest_digest, first);
	oci_loaded_images_free(images, n);

	/* What no image uses (VERSION, repositories, the hostile members)
	 * is gc's to remove, and only that. */
	oci_gc_stats stats;
	assert_int_equal(oci_store_gc(s, &stats, &err), 0);
	assert_true(stats.blobs_removed >= 3);
	assert_true(oci_store_has_blob(s, c.layer2_digest));
	assert_true(oci_store_has_blob(s, first));

	free(cmd);
	free(deep);
	free(archive);
	classic_clear(&c);
	oci_store_close(s);
}

static void test_classic_archive_gzip(void **state)
{
	(void)state;
	classic c = { 0 };
	oci_store *s = open_store();
	capsa_error err = { 0 };
	oci_loaded_image *images = NULL;
	size_t n = 0;
	char *archive = pathf("%s/save.tar.gz", base);

	classic_init(&c);
	write_classic(&c, archive, CLASSIC_GZIP);
	if (oci_import_archive(s, archive, NULL, &images, &n, &err) < 0)
		fail_msg("%s", err.message);
	assert_int_equal(n, 3);
	assert_non_null(find_loaded(images, n, "docker.io/library/busybox:latest"));
	oci_loaded_images_free(images, n);
	free(archive);
	classic_clear(&c);
	oci_store_close(s);
}

static void test_classic_missing_layer(void **state)
{
	(void)state;
	classic c = { 0 };
	oci_store *s = open_store();
	capsa_error err = { 0 };
	oci_loaded_image *images = NULL;
	size_t n = 0;
	char *archive = pathf("%s/save.tar", base);

	classic_init(&c);
	write_classic(&c, archive, CLASSIC_NO_LAYER2);
	assert_int_equal(oci_import_archive(s, archive, NULL, &images, &n, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.message, "2222/layer.tar"));
	assert_null(images);
	assert_int_equal(n, 0);
	/* Nothing was named. */
	oci_image_record *list = NULL;
	assert_int_equal(oci_store_list(s, &list, &n, &err), 0);
	assert_int_equal(n, 0);
	free(list);
	free(archive);
	classic_clear(&c);
	oci_store_close(s);
}

static void test_not_an_image_archive(void **state)
{
	(void)state;
	oci_store *s = open_store();
	capsa_error err = { 0 };
	oci_loaded_image *images = NULL;
	size_t n = 0;
	char *archive = pathf("%s/other.tar", base);
	tar t = { 0 };

	tar_open_file(&t, archive, NULL);
	tar_add_text(&t, "README", "just a tar");
	tar_close(&t);
	assert_int_equal(oci_import_archive(s, archive, NULL, &images, &n, &err), -1);
	assert_non_null(strstr(err.message, "manifest.json"));

	write_file(archive, "not a tar at all, just some text that is long enough", 52);
	assert_int_equal(oci_import_archive(s, archive, NULL, &images, &n, &err), -1);
	free(archive);

	char *missing = pathf("%s/missing.tar", base);
	assert_int_equal(oci_import_archive(s, missing, NULL, &images, &n, &err), -1);
	assert_non_null(strstr(err.message, missing));
	free(missing);
	oci_store_close(s);
}

/* ---- OCI layouts ---------------------------------------------------- */

/* A layout holding one multi-platform image tagged "v1": index.json ->
 * platform index -> amd64 and arm64 manifests. */
typedef struct layout {
	char *dir;
	bytes layer_amd64, layer_arm64;
	char layer_amd64_digest[OCI_DIGEST_STRING_SIZE], layer_arm64_digest[OCI_DIGEST_STRING_SIZE];
	char amd64_manifest[OCI_DIGEST_STRING_SIZE], arm64_manifest[OCI_DIGEST_STRING_SIZE];
	char platform_index[OCI_DIGEST_STRING_SIZE];
	uint64_t amd64_size, arm64_size;
	/* name -> content of every file, for writing it as an archive too */
	char *names[16];
	bytes files[16];
	size_t n_files;
} layout;

static void layout_file(layout *l, const char *name, const void *data, size_t len)
{
	assert_true(l->n_files < 16);
	l->names[l->n_files] = strdup(name);
	l->files[l->n_files].data = malloc(len ? len : 1);
	memcpy(l->files[l->n_files].data, data, len);
	l->files[l->n_files].len = len;
	l->n_files++;
}

/* Adds a blob, returning its digest and size. */
static void layout_blob(layout *l, const void *data, size_t len, char digest[OCI_DIGEST_STRING_SIZE])
{
	digest_of(data, len, digest);
	char *name = pathf("blobs/sha256/%s", oci_digest_hex(digest));
	layout_file(l, name, data, len);
	free(name);
}

static json_t *descriptor(const char *media_type, const char *digest, size_t size)
{
	return json_pack("{s:s, s:s, s:I}", "mediaType", media_type, "digest", digest, "size", (json_int_t)size);
}

static void layout_manifest(layout *l, const char *arch, const bytes *layer, char layer_digest[],
			    char manifest_digest[], uint64_t *image_size, size_t *manifest_len)
{
	char config_digest[OCI_DIGEST_STRING_SIZE];

	layout_blob(l, layer->data, layer->len, layer_digest);
	char *config = make_config(arch, layer_digest);
	layout_blob(l, config, strlen(config), config_digest);
	char *manifest = json_text(json_pack("{s:i, s:s, s:o, s:[o]}", "schemaVersion", 2, "mediaType",
					     OCI_MEDIA_MANIFEST, "config",
					     descriptor(OCI_MEDIA_CONFIG, config_digest, strlen(config)), "layers",
					     descriptor(OCI_MEDIA_LAYER_TAR, layer_digest, layer->len)));
	layout_blob(l, manifest, strlen(manifest), manifest_digest);
	*image_size = strlen(config) + layer->len;
	*manifest_len = strlen(manifest);
	free(config);
	free(manifest);
}

/* containerd_name: the io.containerd.image.name annotation, or NULL. */
static void layout_init(layout *l, const char *containerd_name)
{
	size_t amd64_len, arm64_len;

	l->dir = pathf("%s/layout", base);
	make_layer(&l->layer_amd64, "bin/hello", "amd64 hello\n", NULL);
	make_layer(&l->layer_arm64, "bin/hello", "arm64 hello\n", NULL);
	layout_manifest(l, "amd64", &l->layer_amd64, l->layer_amd64_digest, l->amd64_manifest, &l->amd64_size,
			&amd64_len);
	layout_manifest(l, "arm64", &l->layer_arm64, l->layer_arm64_digest, l->arm64_manifest, &l->arm64_size,
			&arm64_len);

	json_t *amd64 = descriptor(OCI_MEDIA_MANIFEST, l->amd64_manifest, amd64_len);
	json_object_set_new(amd64, "platform", json_pack("{s:s, s:s}", "os", "linux", "architecture", "amd64"));
	json_t *arm64 = descriptor(OCI_MEDIA_MANIFEST, l->arm64_manifest, arm64_len);
	json_object_set_new(arm64, "platform",
			    json_pack("{s:s, s:s, s:s}", "os", "linux", "architecture", "arm64", "variant", "v8"));
	json_t *attestation = descriptor(OCI_MEDIA_MANIFEST, l->amd64_manifest, amd64_len);
	json_object_set_new(attestation, "platform",
			    json_pack("{s:s, s:s}", "os", "unknown", "architecture", "unknown"));
	char *index = json_text(json_pack("{s:i, s:s, s:[o, o, o]}", "schemaVersion", 2, "mediaType",
					  OCI_MEDIA_INDEX, "manifests", attestation, arm64, amd64));
	layout_blob(l, index, strlen(index), l->platform_index);

	json_t *top = descriptor(OCI_MEDIA_INDEX, l->platform_index, strlen(index));
	json_t *ann = json_pack("{s:s}", "org.opencontainers.image.ref.name", "v1");
	if (containerd_name)
		json_object_set_new(ann, "io.containerd.image.name", json_string(containerd_name));
	json_object_set_new(top, "annotations", ann);
	char *index_json = json_text(json_pack("{s:i, s:s, s:[o]}", "schemaVersion", 2, "mediaType",
					       OCI_MEDIA_INDEX, "manifests", top));
	layout_file(l, "index.json", index_json, strlen(index_json));
	layout_file(l, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30);
	free(index);
	free(index_json);
}

static void layout_write_dir(const layout *l)
{
	char *cmd = pathf("mkdir -p '%s/blobs/sha256'", l->dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	for (size_t i = 0; i < l->n_files; i++) {
		char *path = pathf("%s/%s", l->dir, l->names[i]);
		write_file(path, l->files[i].data, l->files[i].len);
		free(path);
	}
}

static void layout_clear(layout *l)
{
	for (size_t i = 0; i < l->n_files; i++) {
		free(l->names[i]);
		bytes_free(&l->files[i]);
	}
	bytes_free(&l->layer_amd64);
	bytes_free(&l->layer_arm64);
	free(l->dir);
}

static char *blob_in_layout(const layout *l, const char *digest)
{
	return pathf("%s/blobs/sha256/%s", l->dir, oci_digest_hex(digest));
}

static void test_layout_dir(void **state)
{
	(void)state;
	layout l = { 0 };
	oci_store *s = open_store();
	capsa_error err = { 0 };
	char digest[OCI_DIGEST_STRING_SIZE];

	layout_init(&l, NULL);
	layout_write_dir(&l);

	char *name = pathf("oci:%s:v1", l.dir);
	if (oci_import_layout(s, l.dir, "v1", name, NULL, digest, &err) < 0)
		fail_msg("%s", err.message);
	assert_string_equal(digest, l.amd64_manifest);
	check_record(s, name, l.amd64_manifest, l.amd64_size);
	assert_true(oci_store_has_blob(s, l.layer_amd64_digest));
	assert_false(oci_store_has_blob(s, l.layer_arm64_digest));

	/* The only image needs no tag; another platform picks another
	 * manifest. */
	oci_platform arm64 = { .os = "linux", .architecture = "arm64" };
	assert_int_equal(oci_import_layout(s, l.dir, NULL, "arm", &arm64, digest, &err), 0);
	assert_string_equal(digest, l.arm64_manifest);
	check_record(s, "arm", l.arm64_manifest, l.arm64_size);
	assert_true(oci_store_has_blob(s, l.layer_arm64_digest));

	/* Platforms the image lacks, tags it lacks. */
	oci_platform riscv = { .os = "linux", .architecture = "riscv64" };
	assert_int_equal(oci_import_layout(s, l.dir, "v1", "x", &riscv, digest, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.message, "linux/amd64"));
	assert_int_equal(oci_import_layout(s, l.dir, "v2", "x", NULL, digest, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.message, "v1"));

	/* Not a layout. */
	assert_int_equal(oci_import_layout(s, base, NULL, "x", NULL, digest, &err), -1);
	assert_non_null(strstr(err.message, "oci-layout"));

	free(name);
	layout_clear(&l);
	oci_store_close(s);
}

static void test_layout_version(void **state)
{
	(void)state;
	layout l = { 0 };
	oci_store *s = open_store();
	capsa_error err = { 0 };
	char digest[OCI_DIGEST_STRING_SIZE];

	layout_init(&l, NULL);
	layout_write_dir(&l);
	char *path = pathf("%s/oci-layout", l.dir);
	write_file(path, "{\"imageLayoutVersion\":\"2.0.0\"}", 30);
	assert_int_equal(oci_import_layout(s, l.dir, "v1", "x", NULL, digest, &err), -1);
	assert_int_equal(err.code, ENOTSUP);
	assert_non_null(strstr(err.message, "2.0.0"));
	free(path);
	layout_clear(&l);
	oci_store_close(s);
}

static void test_layout_tampered_blob(void **state)
{
	(void)state;
	layout l = { 0 };
	oci_store *s = open_store();
	capsa_error err = { 0 };
	char digest[OCI_DIGEST_STRING_SIZE];
	oci_image_record r;

	layout_init(&l, NULL);
	layout_write_dir(&l);

	/* A layer changed after the manifest was written. */
	char *layer = blob_in_layout(&l, l.layer_amd64_digest);
	bytes changed = { 0 };
	make_layer(&changed, "bin/hello", "AMD64 HELLO\n", NULL);
	assert_int_equal(changed.len, l.layer_amd64.len);
	write_file(layer, changed.data, changed.len);
	assert_int_equal(oci_import_layout(s, l.dir, "v1", "x", NULL, digest, &err), -1);
	assert_int_equal(err.code, EBADMSG);
	assert_non_null(strstr(err.message, "is corrupt"));
	assert_false(oci_store_has_blob(s, l.layer_amd64_digest));
	assert_int_equal(oci_store_lookup(s, "x", &r, &err), -1);
	write_file(layer, l.layer_amd64.data, l.layer_amd64.len);

	/* A manifest changed. */
	char *manifest = blob_in_layout(&l, l.amd64_manifest);
	write_file(manifest, "{}", 2);
	assert_int_equal(oci_import_layout(s, l.dir, "v1", "x", NULL, digest, &err), -1);
	assert_int_equal(err.code, EBADMSG);

	/* A blob that is a symlink (to the right content, even). */
	char *elsewhere = pathf("%s/elsewhere", base);
	rename(manifest, elsewhere);
	assert_int_equal(symlink(elsewhere, manifest), 0);
	assert_int_equal(oci_import_layout(s, l.dir, "v1", "x", NULL, digest, &err), -1);
	assert_non_null(strstr(err.message, "symlink"));

	/* A blob the manifest names is missing. */
	unlink(manifest);
	assert_int_equal(oci_import_layout(s, l.dir, "v1", "x", NULL, digest, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.message, l.amd64_manifest));

	bytes_free(&changed);
	free(elsewhere);
	free(manifest);
	free(layer);
	layout_clear(&l);
	oci_store_close(s);
}

/* ---- OCI layout archives (docker >= 25) ----------------------------- */

enum oci_archive_flags {
	OCI_TAMPER = 1,            /* a blob member that does not hash to its name */
	OCI_DROP_LAYER = 2,        /* leave out the amd64 layer */
	OCI_MANIFEST_JSON = 4,     /* add docker's manifest.json with RepoTags */
};

static void write_oci_archive(const layout *l, const char *path, int flags)
{
	tar t = { 0 };
	char *drop = pathf("blobs/sha256/%s", oci_digest_hex(l->layer_amd64_digest));

	tar_open_file(&t, path, NULL);
	tar_add_dir(&t, "blobs");
	tar_add_dir(&t, "blobs/sha256");
	for (size_t i = 0; i < l->n_files; i++) {
		if ((flags & OCI_DROP_LAYER) && !strcmp(l->names[i], drop))
			continue;
		if ((flags & OCI_TAMPER) && !strcmp(l->names[i], drop)) {
			tar_add_text(&t, l->names[i], "not the layer");
			continue;
		}
		tar_add(&t, l->names[i], l->files[i].data, l->files[i].len);
	}
	if (flags & OCI_MANIFEST_JSON) {
		/* Config of the amd64 image, as docker writes it. */
		char *manifest = NULL;
		for (size_t i = 0; i < l->n_files; i++)
			if (strstr(l->names[i], oci_digest_hex(l->amd64_manifest)))
				manifest = strndup(l->files[i].data, l->files[i].len);
		assert_non_null(manifest);
		json_t *m = json_loads(manifest, 0, NULL);
		const char *config = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
		char *config_path = pathf("blobs/sha256/%s", oci_digest_hex(config));
		char *layer_path = pathf("blobs/sha256/%s", oci_digest_hex(l->layer_amd64_digest));
		char *text = json_text(json_pack("[{s:s, s:[s], s:[s]}]", "Config", config_path, "RepoTags",
						 "hello:from-manifest-json", "Layers", layer_path));
		tar_add_text(&t, "manifest.json", text);
		free(text);
		free(config_path);
		free(layer_path);
		json_decref(m);
		free(manifest);
	}
	tar_close(&t);
	free(drop);
}

static void test_oci_archive(void **state)
{
	(void)state;
	layout l = { 0 };
	oci_store *s = open_store();
	capsa_error err = { 0 };
	oci_loaded_image *images = NULL;
	size_t n = 0;
	char *archive = pathf("%s/oci.tar", base);

	layout_init(&l, "docker.io/library/hello:oci");
	write_oci_archive(&l, archive, OCI_MANIFEST_JSON);
	if (oci_import_archive(s, archive, NULL, &images, &n, &err) < 0)
		fail_msg("%s", err.message);
	assert_int_equal(n, 2);
	const oci_loaded_image *a = find_loaded(images, n, "docker.io/library/hello:oci");
	const oci_loaded_image *b = find_loaded(images, n, "docker.io/library/hello:from-manifest-json");
	assert_non_null(a);
	assert_non_null(b);
	/* The original manifest, not a rewritten one. */
	assert_string_equal(a->manifest_digest, l.amd64_manifest);
	assert_string_equal(b->manifest_digest, l.amd64_manifest);
	check_record(s, "docker.io/library/hello:oci", l.amd64_manifest, l.amd64_size);
	assert_true(oci_store_has_blob(s, l.layer_amd64_digest));
	oci_loaded_images_free(images, n);

	/* arm64, no names but the bare tag "v1": stored under its digest. */
	layout_clear(&l);
	memset(&l, 0, sizeof(l));
	layout_init(&l, NULL);
	write_oci_archive(&l, archive, 0);
	oci_platform arm64 = { .os = "linux", .architecture = "arm64", .variant = "v8" };
	if (oci_import_archive(s, archive, &arm64, &images, &n, &err) < 0)
		fail_msg("%s", err.message);
	assert_int_equal(n, 1);
	assert_null(images[0].name);
	assert_string_equal(images[0].manifest_digest, l.arm64_manifest);
	check_record(s, l.arm64_manifest, l.arm64_manifest, l.arm64_size);
	oci_loaded_images_free(images, n);

	free(archive);
	layout_clear(&l);
	oci_store_close(s);
}

static void test_oci_archive_bad(void **state)
{
	(void)state;
	layout l = { 0 };
	oci_store *s = open_store();
	capsa_error err = { 0 };
	oci_loaded_image *images = NULL;
	size_t n = 0;
	char *archive = pathf("%s/oci.tar", base);

	layout_init(&l, "docker.io/library/hello:oci");
	write_oci_archive(&l, archive, OCI_TAMPER);
	assert_int_equal(oci_import_archive(s, archive, NULL, &images, &n, &err), -1);
	assert_int_equal(err.code, EBADMSG);
	assert_non_null(strstr(err.message, oci_digest_hex(l.layer_amd64_digest)));
	assert_false(oci_store_has_blob(s, l.layer_amd64_digest));

	write_oci_archive(&l, archive, OCI_DROP_LAYER);
	assert_int_equal(oci_import_archive(s, archive, NULL, &images, &n, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.message, l.layer_amd64_digest));

	oci_image_record *list = NULL;
	assert_int_equal(oci_store_list(s, &list, &n, &err), 0);
	assert_int_equal(n, 0);
	free(list);
	free(archive);
	layout_clear(&l);
	oci_store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_classic_archive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_classic_archive_gzip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_classic_missing_layer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_an_image_archive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layout_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layout_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layout_tampered_blob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oci_archive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oci_archive_bad, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
