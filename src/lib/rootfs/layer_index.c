#include "rootfs/layer_index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util/error.h"

#define INITIAL_SLOTS 1024

/* ---- SipHash-1-3 ---------------------------------------------------- */

static inline uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                        \
	do {                                                            \
		v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32); \
		v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                  \
		v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                  \
		v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32); \
	} while (0)

static uint64_t siphash13(const uint64_t key[2], const void *data, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ key[0], v1 = 0x646f72616e646f6dULL ^ key[1];
	uint64_t v2 = 0x6c7967656e657261ULL ^ key[0], v3 = 0x7465646279746573ULL ^ key[1];
	const uint8_t *p = data;
	uint64_t last = (uint64_t)len << 56;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t m = 0;

		for (int b = 0; b < 8; b++)
			m |= (uint64_t)p[i + b] << (8 * b);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (int b = 0; i + b < len; b++)
		last |= (uint64_t)p[i + b] << (8 * b);
	v3 ^= last;
	SIPROUND;
	v0 ^= last;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t hash_key(const layer_index *ix, const fs_node *dir, const char *name)
{
	/* The directory's address joins the key: names repeat across
	 * directories, and the hash stays keyed either way. */
	uint64_t key[2] = { ix->key[0] ^ (uint64_t)(uintptr_t)dir, ix->key[1] };

	return siphash13(key, name, strlen(name));
}

/* ---- table ---------------------------------------------------------- */

int layer_index_init(layer_index *ix, capsa_error *err)
{
	memset(ix, 0, sizeof(*ix));
	ix->slots = calloc(INITIAL_SLOTS, sizeof(*ix->slots));
	if (!ix->slots)
		return error_set_errno(err, ENOMEM, "allocating a name index");
	ix->mask = INITIAL_SLOTS - 1;
	if (getrandom(ix->key, sizeof(ix->key), GRND_NONBLOCK) != (ssize_t)sizeof(ix->key)) {
		/* Early boot without entropy: still unpredictable enough from
		 * outside the process. */
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ix->key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)ix;
		ix->key[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)ix->slots;
	}
	return 0;
}

void layer_index_free(layer_index *ix)
{
	free(ix->slots);
	ix->slots = NULL;
}

fs_node *layer_index_find(const layer_index *ix, const fs_node *dir, const char *name)
{
	uint64_t hash = hash_key(ix, dir, name);

	for (size_t i = hash & ix->mask;; i = (i + 1) & ix->mask) {
		const layer_index_slot *s = &ix->slots[i];

		if (!s->node)
			return NULL;
		if (s->hash == hash && s->node->parent == dir && strcmp(s->node->name, name) == 0)
			return s->node;
	}
}

static void insert(layer_index *ix, fs_node *node, uint64_t hash)
{
	size_t i = hash & ix->mask;

	while (ix->slots[i].node)
		i = (i + 1) & ix->mask;
	ix->slots[i].node = node;
	ix->slots[i].hash = hash;
	ix->count++;
}

static int grow(layer_index *ix, capsa_error *err)
{
	size_t old_size = ix->mask + 1;
	layer_index_slot *old = ix->slots;
	layer_index_slot *slots = calloc(old_size * 2, sizeof(*slots));

	if (!slots)
		return error_set_errno(err, ENOMEM, "growing a name index");
	ix->slots = slots;
	ix->mask = old_size * 2 - 1;
	ix->count = 0;
	for (size_t i = 0; i < old_size; i++) {
		if (old[i].node)
			insert(ix, old[i].node, old[i].hash);
	}
	free(old);
	return 0;
}

int layer_index_add(layer_index *ix, fs_node *node, capsa_error *err)
{
	/* At most half full keeps probe sequences short. */
	if ((ix->count + 1) * 2 > ix->mask + 1 && grow(ix, err) < 0)
		return -1;
	insert(ix, node, hash_key(ix, node->parent, node->name));
	return 0;
}

void layer_index_remove(layer_index *ix, fs_node *node)
{
	uint64_t hash = hash_key(ix, node->parent, node->name);
	size_t i = hash & ix->mask;

	while (ix->slots[i].node != node) {
		if (!ix->slots[i].node)
			return;         /* not present */
		i = (i + 1) & ix->mask;
	}
	ix->count--;
	/* Linear probing without tombstones: move later entries of the
	 * cluster back into the hole when their home slot allows it. */
	for (;;) {
		ix->slots[i].node = NULL;
		size_t j = i;

		for (;;) {
			j = (j + 1) & ix->mask;
			if (!ix->slots[j].node)
				return;
			size_t home = ix->slots[j].hash & ix->mask;
			/* Stays if its home lies cyclically in (i, j]. */
			bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
			if (!stays)
				break;
		}
		ix->slots[i] = ix->slots[j];
		i = j;
	}
}
