/* libFuzzer target: a hostile guest's FUSE requests against a passthrough
 * server on a scratch directory (laid out afresh for every input, with a
 * file, a subdirectory and symlinks pointing out of the tree) with a small
 * DAX window (one 2 MiB chunk, fresh for every input too), so
 * SETUPMAPPING and REMOVEMAPPING map and unmap real files. After an
 * INIT, the input is a sequence of records: a little-endian u16 giving the
 * reply buffer's room, then one request whose fuse_in_header.len says how
 * many bytes it takes (cut to what is left). Each request and reply buffer
 * is an exact-size allocation so ASan sees any overrun; nothing may crash,
 * leak memory or file descriptors, or reply past the buffer. */
#include <fcntl.h>
#include <ftw.h>
#include <linux/fuse.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuse/dax_window.h"
#include "fuse/fuse_server.h"

static char root[64];

/* Removes everything below root (not root itself). */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	if (ftw->level > 0)
		remove(path);
	return 0;
}

static void put(const char *rel, const char *text)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		abort();
	close(fd);
}

static void lay_out(void)
{
	char path[128];

	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	chmod(root, 0755);
	put("file", "some file content\n");
	snprintf(path, sizeof(path), "%s/dir", root);
	mkdir(path, 0755);
	put("dir/inner", "inner\n");
	snprintf(path, sizeof(path), "%s/out", root);
	symlink("/etc/passwd", path);
	snprintf(path, sizeof(path), "%s/dir/up", root);
	symlink("../..", path);
}

static void remove_root(void)
{
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* Writes, truncates and fallocates may ask for any size; keep the
	 * scratch files small (the call then fails with EFBIG). */
	struct rlimit fsize = { 8u << 20, 8u << 20 };

	(void)argc;
	(void)argv;
	strcpy(root, "/tmp/capsa-fuzz-fuse-XXXXXX");
	if (!mkdtemp(root) || setrlimit(RLIMIT_FSIZE, &fsize) < 0)
		abort();
	atexit(remove_root);
	return 0;
}

static void handle(struct fuse_server *srv, const uint8_t *req, size_t len, size_t room)
{
	uint8_t *in = malloc(len ? len : 1), *out = malloc(sizeof(struct fuse_out_header) + room);
	struct fuse_out_header oh;
	size_t out_len = 0;

	if (!in || !out)
		abort();
	memcpy(in, req, len);
	if (fuse_server_handle(srv, in, len, out, sizeof(oh) + room, &out_len) == 0 && out_len) {
		memcpy(&oh, out, sizeof(oh));
		if (out_len > sizeof(oh) + room || oh.len != out_len || (oh.error && out_len != sizeof(oh)))
			abort();
	}
	free(in);
	free(out);
}

static int lowest_free_fd(void)
{
	int fd = dup(0);

	close(fd);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuse_server_config cfg = { .root_dir = root };
	struct fuse_in_header h = { .len = sizeof(h) + sizeof(struct fuse_init_in), .opcode = FUSE_INIT };
	struct fuse_init_in init = { .major = 7, .minor = FUSE_KERNEL_MINOR_VERSION, .max_readahead = 65536,
				     .flags = FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES | FUSE_MAP_ALIGNMENT };
	uint8_t init_req[sizeof(h) + sizeof(init)];
	struct fuse_server *srv;
	int fd_mark;

	/* libFuzzer installs its own SIGXFSZ handler after initialising us. */
	signal(SIGXFSZ, SIG_IGN);
	lay_out();
	fd_mark = lowest_free_fd();
	cfg.dax = dax_window_new(DAX_WINDOW_CHUNK, NULL);
	srv = cfg.dax ? fuse_server_new(&cfg, NULL) : NULL;
	if (!srv)
		abort();
	memcpy(init_req, &h, sizeof(h));
	memcpy(init_req + sizeof(h), &init, sizeof(init));
	handle(srv, init_req, sizeof(init_req), 4096);
	while (size >= 2 + sizeof(h)) {
		size_t room = data[0] | (size_t)data[1] << 8, len;

		data += 2;
		size -= 2;
		memcpy(&h, data, sizeof(h));
		len = h.len < sizeof(h) ? sizeof(h) : h.len > size ? size : h.len;
		handle(srv, data, len, room);
		data += len;
		size -= len;
	}
	fuse_server_free(srv);
	/* Mappings hold files, not descriptors: none may be left either. */
	if (cfg.dax->edge_count > cfg.dax->edge_max)
		abort();
	dax_window_free(cfg.dax);
	if (lowest_free_fd() != fd_mark)
		abort(); /* a descriptor outlived the server */
	return 0;
}
