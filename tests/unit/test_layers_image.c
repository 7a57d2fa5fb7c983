/* Root images from image layers: tar layers (plain, gzip, zstd) are
 * written here with libarchive, built into an image, and the image is read
 * back through sqfs2tar (squashfs-tools-ng) and libarchive, entry by entry:
 * types, modes, owners, times, device numbers, link targets, hard links,
 * xattrs and data. Covers whiteouts, replacements, hard links whose first
 * name goes away, symlinks on the way to an entry, hostile names and
 * digest checks. */
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
#include <sys/wait.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "oci/digest.h"
#include "rootfs/layers_image.h"
#include "test_tmpdir.h"

static char base[64];

/* ---- helpers -------------------------------------------------------- */

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0;

	assert_non_null(f);
	*len = 0;
	for (;;) {
		if (*len == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		size_t n = fread(buf + *len, 1, cap - *len, f);
		if (n == 0)
			break;
		*len += n;
	}
	fclose(f);
	return buf;
}

static void fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

/* ---- writing layers ------------------------------------------------- */

enum { PLAIN, GZIP, ZSTD };

/* One archive entry. type: f file, F file of `size` pattern bytes, Z sparse
 * file, d dir, s symlink, h hard link, c/b char/block device, p fifo. */
typedef struct tent {
	char type;
	const char *path;
	const char *data;       /* file content, or symlink / hard link target */
	unsigned mode;          /* permission bits; 0: 0644, dirs 0755 */
	unsigned uid, gid;
	long long mtime;
	unsigned major, minor;
	const char *xattr;      /* "key=value" */
	const char *xattr2;
	size_t size;
} tent;

typedef struct tlayer {
	char path[128];
	char digest[OCI_DIGEST_STRING_SIZE];
} tlayer;

static unsigned layer_count;

static void digest_file(const char *path, char out[OCI_DIGEST_STRING_SIZE])
{
	size_t len;
	uint8_t *data = read_all(path, &len);

	assert_int_equal(oci_digest_of_buffer(data, len, out, NULL), 0);
	free(data);
}

static void add_xattr(struct archive_entry *e, const char *kv)
{
	const char *eq = strchr(kv, '=');
	char key[128];

	assert_non_null(eq);
	snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
	archive_entry_xattr_add_entry(e, key, eq + 1, strlen(eq + 1));
}

static void write_entry(struct archive *a, const tent *t)
{
	struct archive_entry *e = archive_entry_new();
	uint8_t *big = NULL;
	size_t size = 0;

	archive_entry_set_pathname(e, t->path);
	archive_entry_set_uid(e, t->uid);
	archive_entry_set_gid(e, t->gid);
	archive_entry_set_mtime(e, t->mtime ? t->mtime : 1600000000, 0);
	archive_entry_set_perm(e, t->mode ? t->mode : t->type == 'd' ? 0755 : 0644);
	switch (t->type) {
	case 'f':
		archive_entry_set_filetype(e, AE_IFREG);
		size = t->data ? strlen(t->data) : 0;
		break;
	case 'F':
		archive_entry_set_filetype(e, AE_IFREG);
		size = t->size;
		big = malloc(size ? size : 1);
		fill_pattern(big, size, (uint32_t)size);
		break;
	case 'Z':
		/* `size` bytes, all a hole but `data` at 4096. */
		archive_entry_set_filetype(e, AE_IFREG);
		size = t->size;
		big = calloc(1, size);
		memcpy(big + 4096, t->data, strlen(t->data));
		archive_entry_set_size(e, (la_int64_t)size);    /* regions must lie within it */
		archive_entry_sparse_add_entry(e, 4096, (la_int64_t)strlen(t->data));
		break;
	case 'd':
		archive_entry_set_filetype(e, AE_IFDIR);
		break;
	case 's':
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_symlink(e, t->data);
		break;
	case 'h':
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_hardlink(e, t->data);
		break;
	case 'c':
	case 'b':
		archive_entry_set_filetype(e, t->type == 'c' ? AE_IFCHR : AE_IFBLK);
		archive_entry_set_rdevmajor(e, t->major);
		archive_entry_set_rdevminor(e, t->minor);
		break;
	case 'p':
		archive_entry_set_filetype(e, AE_IFIFO);
		break;
	default:
		fail_msg("bad test entry type %c", t->type);
	}
	archive_entry_set_size(e, (la_int64_t)size);
	if (t->xattr)
		add_xattr(e, t->xattr);
	if (t->xattr2)
		add_xattr(e, t->xattr2);
	if (archive_write_header(a, e) != ARCHIVE_OK)
		fail_msg("writing '%s': %s", t->path, archive_error_string(a));
	if (size)
		assert_int_equal(archive_write_data(a, big ? (const void *)big : t->data, size),
				 (la_ssize_t)size);
	free(big);
	archive_entry_free(e);
}

static void make_layer(tlayer *l, int comp, const tent *entries, size_t n)
{
	struct archive *a = archive_write_new();

	snprintf(l->path, sizeof(l->path), "%s/layer-%u", base, layer_count++);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	if (comp == GZIP)
		assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	else if (comp == ZSTD)
		assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, l->path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++)
		write_entry(a, &entries[i]);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	digest_file(l->path, l->digest);
}

/* Shorthands for entries: file, empty file (whiteouts), directory,
 * symlink, hard link. */
#define F(p, d, ...) { .type = 'f', .path = (p), .data = (d), __VA_ARGS__ }
#define WH(p) { .type = 'f', .path = (p) }
#define D(p, ...) { .type = 'd', .path = (p), __VA_ARGS__ }
#define S(p, target, ...) { .type = 's', .path = (p), .data = (target), __VA_ARGS__ }
#define H(p, target, ...) { .type = 'h', .path = (p), .data = (target), __VA_ARGS__ }

#define LAYER(l, comp, ...)                                             \
	do {                                                            \
		const tent entries_[] = { __VA_ARGS__ };                \
		make_layer((l), (comp), entries_, sizeof(entries_) / sizeof(entries_[0])); \
	} while (0)

static int build(const tlayer *layers, size_t n, const char *out, capsa_error *err)
{
	layer_blob blobs[8];

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++)
		blobs[i] = (layer_blob){ .path = layers[i].path, .digest = layers[i].digest };
	memset(err, 0, sizeof(*err));
	return rootfs_build_from_layers(blobs, n, out, err);
}

/* ---- reading an image back ------------------------------------------ */

typedef struct ientry {
	char *path;             /* "" for the root */
	unsigned mode, uid, gid;
	long long mtime;
	uint8_t *data;
	size_t size;
	char *symlink;
	char *hardlink;         /* set on every name of a hard-linked inode but the first */
	unsigned major, minor;
	char xattrs[512];       /* "key=value;" sorted as read */
} ientry;

typedef struct image {
	ientry *e;
	size_t n;
} image;

static char *clean_path(const char *p)
{
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	if (strcmp(p, ".") == 0)
		p = "";
	char *s = strdup(p);
	size_t len = strlen(s);
	if (len > 0 && s[len - 1] == '/')
		s[len - 1] = '\0';
	return s;
}

static void read_image(const char *img, image *im)
{
	char *tar = pathf("%s.tar", img);
	struct archive *a = archive_read_new();
	struct archive_entry *ae;

	assert_int_equal(run("sqfs2tar -r . -s '%s' > '%s' 2>/dev/null", img, tar), 0);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_filename(a, tar, 65536), ARCHIVE_OK);
	memset(im, 0, sizeof(*im));
	int ret;
	while ((ret = archive_read_next_header(a, &ae)) == ARCHIVE_OK || ret == ARCHIVE_WARN) {
		im->e = realloc(im->e, (im->n + 1) * sizeof(*im->e));
		ientry *e = &im->e[im->n++];
		memset(e, 0, sizeof(*e));
		e->path = clean_path(archive_entry_pathname(ae));
		e->mode = archive_entry_mode(ae);
		e->uid = (unsigned)archive_entry_uid(ae);
		e->gid = (unsigned)archive_entry_gid(ae);
		e->mtime = archive_entry_mtime(ae);
		e->major = archive_entry_rdevmajor(ae);
		e->minor = archive_entry_rdevminor(ae);
		if (archive_entry_symlink(ae))
			e->symlink = strdup(archive_entry_symlink(ae));
		if (archive_entry_hardlink(ae))
			e->hardlink = clean_path(archive_entry_hardlink(ae));
		const char *name;
		const void *value;
		size_t size;
		archive_entry_xattr_reset(ae);
		while (archive_entry_xattr_next(ae, &name, &value, &size) == ARCHIVE_OK) {
			size_t used = strlen(e->xattrs);
			snprintf(e->xattrs + used, sizeof(e->xattrs) - used, "%s=%.*s;", name, (int)size,
				 (const char *)value);
		}
		e->size = (size_t)archive_entry_size(ae);
		e->data = malloc(e->size + 1);
		assert_int_equal(archive_read_data(a, e->data, e->size), (la_ssize_t)e->size);
	}
	assert_int_equal(ret, ARCHIVE_EOF);
	archive_read_free(a);
	unlink(tar);
	free(tar);
}

static void free_image(image *im)
{
	for (size_t i = 0; i < im->n; i++) {
		free(im->e[i].path);
		free(im->e[i].data);
		free(im->e[i].symlink);
		free(im->e[i].hardlink);
	}
	free(im->e);
	memset(im, 0, sizeof(*im));
}

static ientry *find(image *im, const char *path)
{
	for (size_t i = 0; i < im->n; i++) {
		if (strcmp(im->e[i].path, path) == 0)
			return &im->e[i];
	}
	return NULL;
}

static ientry *need(image *im, const char *path)
{
	ientry *e = find(im, path);

	if (!e)
		fail_msg("'%s' is missing from the image", path);
	return e;
}

/* The entry holding the inode's data: the first name of a hard link. */
static ientry *inode_of(image *im, const char *path)
{
	ientry *e = need(im, path);

	return e->hardlink ? need(im, e->hardlink) : e;
}

static void assert_absent(image *im, const char *path)
{
	if (find(im, path))
		fail_msg("'%s' should not be in the image", path);
}

static void assert_file(image *im, const char *path, const char *content)
{
	ientry *e = inode_of(im, path);

	if (!S_ISREG(e->mode))
		fail_msg("'%s' is not a regular file (mode %o)", path, e->mode);
	if (e->size != strlen(content) || memcmp(e->data, content, e->size) != 0)
		fail_msg("'%s' holds '%.*s', expected '%s'", path, (int)e->size, (const char *)e->data,
			 content);
}

static void assert_dir(image *im, const char *path)
{
	ientry *e = need(im, path);

	if (!S_ISDIR(e->mode))
		fail_msg("'%s' is not a directory (mode %o)", path, e->mode);
}

static void assert_no_whiteouts(image *im)
{
	for (size_t i = 0; i < im->n; i++) {
		const char *slash = strrchr(im->e[i].path, '/');
		const char *name = slash ? slash + 1 : im->e[i].path;

		if (strncmp(name, ".wh.", 4) == 0)
			fail_msg("whiteout '%s' is in the image", im->e[i].path);
	}
}

/* Builds layers into an image and reads it back; fails the test if the
 * build fails. */
static void build_and_read(const tlayer *layers, size_t n, image *im)
{
	char *img = pathf("%s/image.sqfs", base);
	capsa_error err;

	if (build(layers, n, img, &err) != 0)
		fail_msg("build failed: %s", err.message);
	read_image(img, im);
	assert_no_whiteouts(im);
	unlink(img);
	free(img);
}

static void expect_failure(const tlayer *layers, size_t n, int code, const char *needle)
{
	char *img = pathf("%s/fail.sqfs", base);
	capsa_error err;

	if (build(layers, n, img, &err) == 0)
		fail_msg("build succeeded, expected an error containing '%s'", needle);
	if (err.code != code || !strstr(err.message, needle))
		fail_msg("error %d '%s', expected %d with '%s'", err.code, err.message, code, needle);
	/* Nothing is left behind: no image, no temporary file. */
	assert_int_equal(access(img, F_OK), -1);
	assert_int_equal(run("ls '%s' | grep -q 'fail.sqfs.tmp'", base), 1);
	free(img);
}

/* ---- tests ---------------------------------------------------------- */

static void test_entry_types(void **state)
{
	(void)state;
	tlayer l;
	image im;

	LAYER(&l, PLAIN,
	      D("usr", .mode = 0755, .mtime = 1000000000),
	      D("usr/bin"),
	      F("usr/bin/tool", "#!/bin/sh\n", .mode = 04755, .uid = 1000, .gid = 1001, .mtime = 1234567890),
	      { .type = 'F', .path = "usr/big", .size = 300000 },
	      F("empty", NULL, .mode = 0600),
	      D("tmp", .mode = 01777),
	      D("shared", .mode = 02775, .gid = 50),
	      S("link", "usr/bin/tool", .uid = 70000, .gid = 70001),
	      S("abs", "/does/not/exist"),
	      H("usr/tool-again", "usr/bin/tool"),
	      { .type = 'c', .path = "null", .mode = 0666, .major = 1, .minor = 3 },
	      { .type = 'b', .path = "disk", .mode = 0660, .major = 259, .minor = 70000 },
	      { .type = 'p', .path = "fifo", .mode = 0640 },
	      F("attrs", "x", .xattr = "user.note=a value", .xattr2 = "security.selinux=label"),
	      D("attrdir", .xattr = "trusted.overlay.x=y"));

	char *img = pathf("%s/types.sqfs", base);
	capsa_error err;
	if (build(&l, 1, img, &err) != 0)
		fail_msg("build failed: %s", err.message);
	/* squashfs-tools accepts it too. */
	assert_int_equal(run("unsquashfs -s '%s' >/dev/null", img), 0);
	assert_int_equal(run("unsquashfs -lln '%s' | grep -q '^-rwsr-xr-x 1000/1001 .*/usr/bin/tool$'", img),
			 0);
	struct stat st;
	assert_int_equal(stat(img, &st), 0);
	assert_int_equal(st.st_size % 4096, 0);
	read_image(img, &im);

	ientry *e = need(&im, "");
	assert_true(S_ISDIR(e->mode));
	assert_int_equal(e->mode & 07777, 0755);
	assert_int_equal(e->uid, 0);

	e = need(&im, "usr");
	assert_int_equal(e->mode, S_IFDIR | 0755);
	assert_int_equal(e->mtime, 1000000000);
	assert_file(&im, "usr/bin/tool", "#!/bin/sh\n");
	e = inode_of(&im, "usr/bin/tool");
	assert_int_equal(e->mode, S_IFREG | 04755);
	assert_int_equal(e->uid, 1000);
	assert_int_equal(e->gid, 1001);
	assert_int_equal(e->mtime, 1234567890);
	assert_ptr_equal(inode_of(&im, "usr/tool-again"), e);

	e = need(&im, "usr/big");
	assert_int_equal(e->size, 300000);
	uint8_t *expect = malloc(300000);
	fill_pattern(expect, 300000, 300000);
	assert_memory_equal(e->data, expect, 300000);
	free(expect);

	e = need(&im, "empty");
	assert_int_equal(e->mode, S_IFREG | 0600);
	assert_int_equal(e->size, 0);
	assert_int_equal(need(&im, "tmp")->mode, S_IFDIR | 01777);
	e = need(&im, "shared");
	assert_int_equal(e->mode, S_IFDIR | 02775);
	assert_int_equal(e->gid, 50);
	e = need(&im, "link");
	assert_true(S_ISLNK(e->mode));
	assert_string_equal(e->symlink, "usr/bin/tool");
	assert_int_equal(e->uid, 70000);
	assert_int_equal(e->gid, 70001);
	assert_string_equal(need(&im, "abs")->symlink, "/does/not/exist");
	e = need(&im, "null");
	assert_int_equal(e->mode, S_IFCHR | 0666);
	assert_int_equal(e->major, 1);
	assert_int_equal(e->minor, 3);
	e = need(&im, "disk");
	assert_int_equal(e->mode, S_IFBLK | 0660);
	assert_int_equal(e->major, 259);
	assert_int_equal(e->minor, 70000);
	assert_int_equal(need(&im, "fifo")->mode, S_IFIFO | 0640);
	assert_string_equal(need(&im, "attrs")->xattrs, "security.selinux=label;user.note=a value;");
	assert_string_equal(need(&im, "attrdir")->xattrs, "trusted.overlay.x=y;");
	assert_int_equal(im.n, 16);

	free_image(&im);
	unlink(img);
	free(img);
}

static void test_compressed_layers(void **state)
{
	(void)state;
	tlayer l[3];
	image im;

	LAYER(&l[0], GZIP, D("etc"), F("etc/hostname", "gzip\n"),
	      { .type = 'F', .path = "etc/blob", .size = 200000 });
	LAYER(&l[1], ZSTD, F("etc/zstd", "zstd\n"), F("etc/hostname", "replaced\n"));
	LAYER(&l[2], PLAIN, F("etc/plain", "plain\n"));
	build_and_read(l, 3, &im);
	assert_file(&im, "etc/hostname", "replaced\n");
	assert_file(&im, "etc/zstd", "zstd\n");
	assert_file(&im, "etc/plain", "plain\n");
	assert_int_equal(need(&im, "etc/blob")->size, 200000);
	free_image(&im);
}

/* A lower and an upper layer, and what the image must and must not hold. */
typedef struct whiteout_case {
	const char *name;
	tent lower[6], upper[6];
	const char *present[6];         /* "path" or "path=content" */
	const char *absent[6];
} whiteout_case;

static const whiteout_case whiteout_cases[] = {
	{ "file",
	  { D("a"), F("a/f", "f"), F("a/g", "g") },
	  { WH("a/.wh.f") },
	  { "a", "a/g=g" }, { "a/f" } },
	{ "directory",
	  { D("d"), F("d/x", "x"), F("d/sub/y", "y"), F("keep", "k") },
	  { WH(".wh.d") },
	  { "keep=k" }, { "d", "d/x", "d/sub", "d/sub/y" } },
	{ "opaque directory keeps its own layer's entries",
	  { D("d"), F("d/old", "o"), F("d/sub/old2", "o2"), F("other", "t") },
	  { D("d"), F("d/new1", "1"), WH("d/.wh..wh..opq"), F("d/new2", "2") },
	  { "d", "d/new1=1", "d/new2=2", "other=t" }, { "d/old", "d/sub", "d/sub/old2" } },
	{ "opaque directory with a subdirectory declared before the marker",
	  { F("d/sub/old", "o"), F("d/gone", "g") },
	  { D("d/sub"), F("d/sub/new", "n"), WH("d/.wh..wh..opq") },
	  { "d/sub", "d/sub/new=n" }, { "d/sub/old", "d/gone" } },
	{ "re-created in the same layer after its whiteout",
	  { F("f", "one"), D("d"), F("d/x", "x") },
	  { WH(".wh.f"), F("f", "two"), WH(".wh.d"), D("d"), F("d/y", "y") },
	  { "f=two", "d/y=y" }, { "d/x" } },
	{ "whiteout of a name that does not exist",
	  { F("f", "one") },
	  { WH(".wh.nothing"), WH("nope/.wh.x"), WH("f/.wh.x"), WH(".wh..wh.plnk") },
	  { "f=one" }, { "nothing", "nope" } },
	{ "whiteout after an entry of its own layer",
	  { F("f", "one"), F("d/old", "o") },
	  { F("f", "two"), WH(".wh.f"), D("d"), F("d/new", "n"), WH(".wh.d") },
	  { "f=two", "d/new=n" }, { "d/old" } },
	{ "whiteout through a symlinked directory",
	  { D("real"), F("real/f", "f"), S("alias", "real") },
	  { WH("alias/.wh.f") },
	  { "real", "alias" }, { "real/f" } },
	{ "whiteout of a symlink removes the link, not its target",
	  { D("real"), F("real/f", "f"), S("alias", "real") },
	  { WH(".wh.alias") },
	  { "real/f=f" }, { "alias" } },
};

static void test_whiteouts(void **state)
{
	(void)state;

	for (size_t c = 0; c < sizeof(whiteout_cases) / sizeof(whiteout_cases[0]); c++) {
		const whiteout_case *wc = &whiteout_cases[c];
		size_t n_lower = 0, n_upper = 0;
		tlayer l[2];
		image im;

		while (n_lower < 6 && wc->lower[n_lower].type)
			n_lower++;
		while (n_upper < 6 && wc->upper[n_upper].type)
			n_upper++;
		make_layer(&l[0], PLAIN, wc->lower, n_lower);
		make_layer(&l[1], GZIP, wc->upper, n_upper);
		fprintf(stderr, "whiteout case: %s\n", wc->name);
		build_and_read(l, 2, &im);
		for (size_t i = 0; i < 6 && wc->present[i]; i++) {
			char *path = strdup(wc->present[i]);
			char *eq = strchr(path, '=');

			if (eq) {
				*eq = '\0';
				assert_file(&im, path, eq + 1);
			} else {
				need(&im, path);
			}
			free(path);
		}
		for (size_t i = 0; i < 6 && wc->absent[i]; i++)
			assert_absent(&im, wc->absent[i]);
		free_image(&im);
	}
}

static void test_replacements(void **state)
{
	(void)state;
	tlayer l[2];
	image im;

	LAYER(&l[0], PLAIN,
	      D("dir-to-file"), F("dir-to-file/x", "x"), D("dir-to-file/sub"),
	      F("file-to-dir", "f"),
	      D("kept", .mode = 0755, .uid = 1), F("kept/child", "c"),
	      S("link-to-dir", "kept"),
	      F("file-to-link", "f"));
	LAYER(&l[1], PLAIN,
	      F("dir-to-file", "now a file"),
	      D("file-to-dir", .mode = 0700), F("file-to-dir/y", "y"),
	      D("kept", .mode = 0710, .uid = 5, .gid = 6, .mtime = 1700000000),
	      D("link-to-dir"),
	      S("file-to-link", "kept/child"));
	build_and_read(l, 2, &im);

	assert_file(&im, "dir-to-file", "now a file");
	assert_absent(&im, "dir-to-file/x");
	assert_absent(&im, "dir-to-file/sub");
	assert_dir(&im, "file-to-dir");
	assert_int_equal(need(&im, "file-to-dir")->mode & 07777, 0700);
	assert_file(&im, "file-to-dir/y", "y");
	/* A directory over a directory: new metadata, children kept. */
	ientry *e = need(&im, "kept");
	assert_int_equal(e->mode, S_IFDIR | 0710);
	assert_int_equal(e->uid, 5);
	assert_int_equal(e->gid, 6);
	assert_int_equal(e->mtime, 1700000000);
	assert_file(&im, "kept/child", "c");
	/* A directory over a symlink replaces the link (and is empty). */
	assert_dir(&im, "link-to-dir");
	assert_absent(&im, "link-to-dir/child");
	assert_string_equal(need(&im, "file-to-link")->symlink, "kept/child");
	free_image(&im);
}

static void test_hard_links(void **state)
{
	(void)state;
	tlayer l[4];
	image im;

	LAYER(&l[0], PLAIN,
	      F("a", "shared data", .mode = 0750, .uid = 7),
	      H("b", "a"),
	      H("c", "b"),                    /* through another alias */
	      D("d"), F("d/inner", "inner data"),
	      H("outer", "d/inner"),
	      S("sym", "a"), H("sym-again", "sym"));
	/* The first names go away. */
	LAYER(&l[1], PLAIN, WH(".wh.a"), WH(".wh.d"));
	/* The next holder is replaced by a new file. */
	LAYER(&l[2], ZSTD, F("b", "new b"));
	build_and_read(l, 3, &im);

	assert_absent(&im, "a");
	assert_absent(&im, "d");
	assert_file(&im, "b", "new b");
	assert_file(&im, "c", "shared data");
	ientry *c = inode_of(&im, "c");
	assert_int_equal(c->mode, S_IFREG | 0750);
	assert_int_equal(c->uid, 7);
	assert_true(inode_of(&im, "b") != c);
	assert_file(&im, "outer", "inner data");
	assert_string_equal(inode_of(&im, "sym-again")->symlink, "a");
	assert_ptr_equal(inode_of(&im, "sym"), inode_of(&im, "sym-again"));
	free_image(&im);

	/* Names inside and outside a removed directory; then the heir goes
	 * too; an opaque directory takes the first name along. */
	LAYER(&l[0], PLAIN,
	      F("d/a", "ring"),
	      H("d/b", "d/a"),
	      H("e", "d/a"),
	      H("f", "e"),
	      F("o/x", "opaque"),
	      H("y", "o/x"));
	LAYER(&l[1], PLAIN, WH(".wh.d"), WH("o/.wh..wh..opq"),
	      F("o/z", "z"));
	LAYER(&l[2], GZIP, WH(".wh.e"));
	build_and_read(l, 3, &im);
	assert_absent(&im, "d");
	assert_absent(&im, "e");
	assert_absent(&im, "o/x");
	assert_file(&im, "f", "ring");
	assert_null(need(&im, "f")->hardlink);
	assert_file(&im, "y", "opaque");
	assert_file(&im, "o/z", "z");
	free_image(&im);

	/* Link counts, as the kernel would see them (unsquashfs recreates the
	 * links from the inode numbers). */
	LAYER(&l[3], PLAIN, F("x", "x"), H("y", "x"), H("z", "y"), F("alone", "1"));
	char *img = pathf("%s/links.sqfs", base), *dir = pathf("%s/links", base);
	capsa_error err;
	if (build(&l[3], 1, img, &err) != 0)
		fail_msg("build failed: %s", err.message);
	assert_int_equal(run("unsquashfs -n -q -no-xattrs -d '%s' '%s' >/dev/null", dir, img), 0);
	struct stat x, z, alone;
	char *px = pathf("%s/x", dir), *pz = pathf("%s/z", dir), *pa = pathf("%s/alone", dir);
	assert_int_equal(lstat(px, &x), 0);
	assert_int_equal(lstat(pz, &z), 0);
	assert_int_equal(lstat(pa, &alone), 0);
	assert_int_equal(x.st_ino, z.st_ino);
	assert_int_equal(x.st_nlink, 3);
	assert_int_equal(alone.st_nlink, 1);
	assert_int_equal(run("rm -rf '%s' '%s'", dir, img), 0);
	free(px);
	free(pz);
	free(pa);
	free(img);
	free(dir);
}

static void test_symlinks_on_the_way(void **state)
{
	(void)state;
	tlayer l[2];
	image im;

	LAYER(&l[0], PLAIN,
	      D("usr/lib"),
	      S("lib", "usr/lib"),
	      S("etc-link", "/etc"),
	      D("a"),
	      S("a/up", "../c"),
	      S("chain", "lib"));
	LAYER(&l[1], PLAIN,
	      F("lib/libx.so", "x"),
	      F("etc-link/hostname", "h"),        /* creates etc in the image */
	      F("a/up/f", "f"),
	      F("chain/liby.so", "y"));
	build_and_read(l, 2, &im);
	assert_file(&im, "usr/lib/libx.so", "x");
	assert_file(&im, "usr/lib/liby.so", "y");
	assert_file(&im, "etc/hostname", "h");
	assert_file(&im, "c/f", "f");
	assert_string_equal(need(&im, "lib")->symlink, "usr/lib");
	assert_absent(&im, "lib/libx.so");
	free_image(&im);
}

static void test_hostile_names(void **state)
{
	(void)state;
	tlayer l[2];
	image im;

	LAYER(&l[0], PLAIN,
	      F("/abs/file", "abs"),
	      F("../../etc/passwd", "inside"),
	      F("./a//b/./c/../d", "d"),
	      S("esc", "/../../"),
	      S("esc2", "../../../../tmp"),
	      H("hl", "/../../etc/passwd"));
	LAYER(&l[1], PLAIN,
	      F("esc/x", "x"),
	      F("esc2/y", "y"));
	build_and_read(l, 2, &im);
	assert_file(&im, "abs/file", "abs");
	assert_file(&im, "etc/passwd", "inside");
	assert_file(&im, "a/b/d", "d");
	assert_absent(&im, "a/b/c");
	assert_file(&im, "x", "x");
	assert_file(&im, "tmp/y", "y");
	assert_file(&im, "hl", "inside");
	assert_string_equal(need(&im, "esc")->symlink, "/../../");
	free_image(&im);
	/* Nothing landed on the host. */
	assert_int_equal(access("/x", F_OK), -1);
	assert_int_equal(access("/tmp/y", F_OK), -1);
}

static void test_rejected_entries(void **state)
{
	(void)state;
	tlayer l[2];
	char *giant = malloc(5001), *long_name = malloc(300);

	memset(giant, 'a', 5000);
	giant[5000] = '\0';
	memset(long_name, 'n', 299);
	long_name[299] = '\0';

	LAYER(&l[0], PLAIN, S("loop", "loop"), F("loop/x", "x"));
	expect_failure(l, 1, EINVAL, "layer 1 of 1 (sha256:");
	expect_failure(l, 1, EINVAL, "entry 'loop/x'");
	expect_failure(l, 1, EINVAL, "symbolic links");

	LAYER(&l[0], PLAIN, S("p", "q"), S("q", "p/"), F("p/x", "x"));
	expect_failure(l, 1, EINVAL, "loop");

	LAYER(&l[0], PLAIN, F("a", "a"), H("b", "nonexistent"));
	expect_failure(l, 1, EINVAL, "hard link to 'nonexistent'");

	LAYER(&l[0], PLAIN, F("a", "a"), H("b", "../../../etc/passwd"));
	expect_failure(l, 1, EINVAL, "hard link to 'etc/passwd'");

	LAYER(&l[0], PLAIN, D("dir"), H("b", "dir"));
	expect_failure(l, 1, EINVAL, "hard link to the directory");

	/* A hard link names an entry of this or a lower layer, never a later one. */
	LAYER(&l[0], PLAIN, H("b", "a"), F("a", "a"));
	expect_failure(l, 1, EINVAL, "entry 'b'");

	LAYER(&l[0], PLAIN, F(giant, "g"));
	expect_failure(l, 1, EINVAL, "longer than 4096 bytes");

	LAYER(&l[0], PLAIN, F(long_name, "g"));
	expect_failure(l, 1, EINVAL, "longer than 255 bytes");

	LAYER(&l[0], PLAIN, F("f", "f"), F("f/x", "x"));
	expect_failure(l, 1, EINVAL, "not a directory");

	LAYER(&l[0], PLAIN, F(".", "x"));
	expect_failure(l, 1, EINVAL, "image root");

	/* The second layer is named. */
	LAYER(&l[0], PLAIN, F("ok", "ok"));
	LAYER(&l[1], PLAIN, H("bad", "missing"));
	expect_failure(l, 2, EINVAL, "layer 2 of 2");
	free(giant);
	free(long_name);
}

static void test_digests(void **state)
{
	(void)state;
	tlayer l[2];
	char *img = pathf("%s/digest.sqfs", base);
	capsa_error err;

	LAYER(&l[0], GZIP, F("a", "a"));
	LAYER(&l[1], PLAIN, F("b", "b"));

	/* Another blob's digest. */
	tlayer swapped[2] = { l[0], l[1] };
	memcpy(swapped[1].digest, l[0].digest, sizeof(l[0].digest));
	expect_failure(swapped, 2, EBADMSG, "layer 2 of 2");

	/* Trailing bytes after the archive count too. */
	FILE *f = fopen(l[1].path, "ab");
	assert_non_null(f);
	fputs("trailing", f);
	fclose(f);
	expect_failure(l, 2, EBADMSG, "not to its digest");

	/* A damaged archive with a matching digest is refused as such; with a
	 * stale digest the digest is what is reported. */
	assert_int_equal(truncate(l[0].path, 30), 0);
	expect_failure(l, 1, EBADMSG, "layer 1 of 1");
	digest_file(l[0].path, l[0].digest);
	expect_failure(l, 1, EINVAL, "layer 1 of 1");

	f = fopen(l[0].path, "wb");
	assert_non_null(f);
	fputs("this is not a tar archive at all, not even close................", f);
	fclose(f);
	digest_file(l[0].path, l[0].digest);
	expect_failure(l, 1, EINVAL, "not a tar archive");

	/* A malformed digest is refused before anything is read. */
	strcpy(l[0].digest, "sha256:abc");
	expect_failure(l, 1, EINVAL, "is not a digest");
	strcpy(l[0].digest, "md5:d41d8cd98f00b204e9800998ecf8427e");
	expect_failure(l, 1, ENOTSUP, "unsupported algorithm");

	/* A missing blob is named. */
	layer_blob missing = { .path = "/nonexistent/blob", .digest = l[1].digest };
	assert_int_equal(rootfs_build_from_layers(&missing, 1, img, &err), -1);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.message, "/nonexistent/blob"));
	free(img);
}

static void test_sparse_file(void **state)
{
	(void)state;
	tlayer l;
	image im;

	LAYER(&l, PLAIN, { .type = 'Z', .path = "sparse", .data = "data", .size = 3 << 20 });
	struct stat st;
	assert_int_equal(stat(l.path, &st), 0);
	assert_true(st.st_size < 65536);
	build_and_read(&l, 1, &im);
	ientry *e = need(&im, "sparse");
	assert_int_equal(e->size, 3 << 20);
	uint8_t *expect = calloc(1, 3 << 20);
	memcpy(expect + 4096, "data", 4);
	assert_memory_equal(e->data, expect, 3 << 20);
	free(expect);
	free_image(&im);
}

static void test_no_layers_and_empty_layer(void **state)
{
	(void)state;
	tlayer l;
	image im;

	build_and_read(NULL, 0, &im);
	assert_int_equal(im.n, 1);
	assert_dir(&im, "");
	free_image(&im);

	make_layer(&l, GZIP, NULL, 0);
	build_and_read(&l, 1, &im);
	assert_int_equal(im.n, 1);
	free_image(&im);
}

static int setup(void **state)
{
	(void)state;
	if (tmpdir_create(base, sizeof(base), "layers") < 0)
		return -1;
	umask(022);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return remove_tree(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entry_types),
		cmocka_unit_test(test_compressed_layers),
		cmocka_unit_test(test_whiteouts),
		cmocka_unit_test(test_replacements),
		cmocka_unit_test(test_hard_links),
		cmocka_unit_test(test_symlinks_on_the_way),
		cmocka_unit_test(test_hostile_names),
		cmocka_unit_test(test_rejected_entries),
		cmocka_unit_test(test_digests),
		cmocka_unit_test(test_sparse_file),
		cmocka_unit_test(test_no_layers_and_empty_layer),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
