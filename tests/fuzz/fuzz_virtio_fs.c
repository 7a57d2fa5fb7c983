/* libFuzzer target: a hostile guest's view of virtio-fs. The input is a
 * guest memory image plus the queue geometry the "driver" programmed; the
 * device enables the queue, pops every chain it can and executes each as a
 * FUSE request against a fresh server on a scratch directory (so both the
 * descriptor chains and the FUSE bytes in them are the fuzzer's). The
 * server has been through INIT already unless the input says otherwise.
 * Nothing may crash, leak or touch memory outside the guest image (ASan
 * checks the latter), nor claim more reply bytes than the chain offered. */
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "devices/virtio/virtq.h"
#include "devices/virtio_fs.h"

#define GUEST_SIZE (64 * 1024)

struct geometry {
	uint16_t num;
	uint16_t desc_page;
	uint16_t avail_page;
	uint16_t used_page;
	uint8_t indirect;
	uint8_t flags; /* bit 0: read-only, bit 1: skip INIT */
} __attribute__((packed));

static char root[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	if (ftw->level > 0)
		remove(path);
	return 0;
}

/* The same small tree for every input: a file and a directory. */
static void lay_out(void)
{
	char path[128];
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	chmod(root, 0755);
	snprintf(path, sizeof(path), "%s/file", root);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "content\n", 8) != 8)
		abort();
	close(fd);
	snprintf(path, sizeof(path), "%s/dir", root);
	mkdir(path, 0755);
}

static void remove_root(void)
{
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* WRITE, SETATTR and FALLOCATE may ask for any size: keep files small. */
	struct rlimit fsize = { 8u << 20, 8u << 20 };
	(void)argc;
	(void)argv;
	strcpy(root, "/tmp/capsa-fuzz-virtio-fs-XXXXXX");
	if (!mkdtemp(root) || setrlimit(RLIMIT_FSIZE, &fsize) < 0)
		abort();
	atexit(remove_root);
	return 0;
}

static void send_init(struct virtio_fs_backend *be)
{
	struct {
		struct fuse_in_header h;
		struct fuse_init_in init;
	} req = {
		.h = { .len = sizeof(req), .opcode = FUSE_INIT, .unique = 1 },
		.init = { .major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION,
			  .max_readahead = 65536, .flags = FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES },
	};
	uint8_t reply[4096];
	static struct virtq_chain chain;
	memset(&chain, 0, sizeof(chain));
	chain.num_readable = chain.num_writable = 1;
	chain.iov[0] = (struct iovec){ &req, sizeof(req) };
	chain.iov[1] = (struct iovec){ reply, sizeof(reply) };
	chain.readable_len = sizeof(req);
	chain.writable_len = sizeof(reply);
	if (virtio_fs_handle_request(be, &chain) == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct geometry g;
	if (size < sizeof(g))
		return 0;
	memcpy(&g, data, sizeof(g));
	data += sizeof(g);
	size -= sizeof(g);

	/* libFuzzer installs its own SIGXFSZ handler after initialising us. */
	signal(SIGXFSZ, SIG_IGN);
	lay_out();
	struct virtio_fs_backend be;
	if (virtio_fs_backend_init(&be, root, g.flags & 1, NULL, NULL) < 0)
		abort();
	if (!(g.flags & 2))
		send_init(&be);

	/* The image is exactly GUEST_SIZE bytes so ASan sees any overrun. */
	uint8_t *image = calloc(1, GUEST_SIZE);
	memcpy(image, data, size < GUEST_SIZE ? size : GUEST_SIZE);
	struct guest_mem mem = { .host = image, .size = GUEST_SIZE };

	struct virtq q;
	memset(&q, 0, sizeof(q));
	q.max_size = VIRTIO_FS_QUEUE_SIZE;
	virtq_reset(&q);
	q.num = g.num;
	/* Page numbers keep most inputs plausible; any address is still possible. */
	q.desc_addr = (uint64_t)g.desc_page * 16;
	q.avail_addr = (uint64_t)g.avail_page * 2;
	q.used_addr = (uint64_t)g.used_page * 4;
	q.indirect = g.indirect & 1;

	static struct virtq_chain chain;
	if (virtq_enable(&q, &mem) == 0) {
		for (int i = 0; i < 2 * VIRTIO_FS_QUEUE_SIZE; i++) {
			if (virtq_pop(&q, &chain) <= 0)
				break;
			uint32_t len = virtio_fs_handle_request(&be, &chain);
			if (len > chain.writable_len)
				abort(); /* the device claimed more than the guest gave it */
			virtq_push(&q, chain.head, len);
		}
	}
	free(image);
	virtio_fs_backend_cleanup(&be);
	return 0;
}
