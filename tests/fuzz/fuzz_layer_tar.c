/* libFuzzer target: hostile image layers. The input is one or two layer
 * blobs (tar, plain or compressed: compression is detected from the data):
 * the first 4 bytes give the length of the first blob (little endian,
 * cut to what is there), and whatever follows it is a second layer
 * applied on top. Both blobs get their true digests, so inputs get
 * through both passes into the image writer. Nothing may crash, leak or
 * touch the host's file system outside the output file; failing with a
 * one-line error is fine. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/digest.h"
#include "rootfs/layers_image.h"

static char out_path[128];

typedef struct blob {
	int fd;
	char path[64];
	char digest[OCI_DIGEST_STRING_SIZE];
} blob;

/* The blob as a memory file, reachable by path like a file in the store. */
static void blob_make(blob *b, const uint8_t *data, size_t size)
{
	b->fd = memfd_create("layer", MFD_CLOEXEC);
	if (b->fd < 0)
		abort();
	for (size_t done = 0; done < size;) {
		ssize_t n = write(b->fd, data + done, size - done);

		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	snprintf(b->path, sizeof(b->path), "/proc/self/fd/%d", b->fd);
	if (oci_digest_of_buffer(data, size, b->digest, NULL) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t first;
	blob blobs[2];
	layer_blob layers[2];
	capsa_error err = { 0 };

	if (size < sizeof(first))
		return 0;
	if (!out_path[0]) {
		/* tmpfs: the image's fsyncs cost nothing there. */
		const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(out_path, sizeof(out_path), "%s/fuzz-layer-tar-%d.sqfs", dir, (int)getpid());
	}
	memcpy(&first, data, sizeof(first));
	data += sizeof(first);
	size -= sizeof(first);

	size_t n1 = first < size ? first : size;
	size_t n_layers = n1 < size ? 2 : 1;
	blob_make(&blobs[0], data, n1);
	if (n_layers == 2)
		blob_make(&blobs[1], data + n1, size - n1);
	for (size_t i = 0; i < n_layers; i++)
		layers[i] = (layer_blob){ .path = blobs[i].path, .digest = blobs[i].digest };

	if (rootfs_build_from_layers(layers, n_layers, out_path, &err) == 0) {
		struct stat st;

		if (stat(out_path, &st) < 0 || st.st_size % 4096 != 0)
			abort();
		unlink(out_path);
	} else if (err.code == 0 || strchr(err.message, '\n') || access(out_path, F_OK) == 0) {
		abort();
	}
	for (size_t i = 0; i < n_layers; i++)
		close(blobs[i].fd);
	return 0;
}
