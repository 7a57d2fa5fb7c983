#include "devices/virtio/virtq.h"

#include <endian.h>
#include <string.h>

void virtq_reset(struct virtq *q)
{
	uint16_t max_size = q->max_size;
	memset(q, 0, sizeof(*q));
	q->max_size = max_size;
}

static bool is_power_of_two(uint32_t n)
{
	return n && !(n & (n - 1));
}

/* Host view of a ring of len bytes at gpa that must be aligned to align,
 * or NULL. */
static void *ring_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len, uint64_t align)
{
	if (gpa & (align - 1))
		return NULL;
	return guest_mem_ptr(mem, gpa, len);
}

int virtq_enable(struct virtq *q, const struct guest_mem *mem)
{
	uint64_t num = q->num;
	if (!is_power_of_two(q->num) || q->num > q->max_size || q->max_size > VIRTQ_MAX_SIZE)
		return -1;
	/* Sizes from 2.7: the avail and used rings end with a 16-bit event
	 * field that we never use but the driver may place memory after. */
	struct vring_desc *desc = ring_ptr(mem, q->desc_addr, 16 * num, VRING_DESC_ALIGN_SIZE);
	struct vring_avail *avail = ring_ptr(mem, q->avail_addr, 6 + 2 * num, VRING_AVAIL_ALIGN_SIZE);
	struct vring_used *used = ring_ptr(mem, q->used_addr, 6 + 8 * num, VRING_USED_ALIGN_SIZE);
	if (!desc || !avail || !used)
		return -1;
	q->mem = mem;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	q->last_avail_idx = 0;
	q->used_idx = 0;
	q->broken = false;
	q->broken_reason = NULL;
	q->ready = true;
	return 0;
}

static int virtq_fail(struct virtq *q, const char *reason)
{
	q->broken = true;
	q->broken_reason = reason;
	return -1;
}

/* Copies descriptor i out of a table, so that the guest changing it while
 * we look cannot make a checked value differ from the used one. The table
 * is addressed bytewise because an indirect table may be misaligned. */
static struct vring_desc read_desc(const uint8_t *table, uint32_t i)
{
	struct vring_desc d;
	memcpy(&d, table + (size_t)i * sizeof(d), sizeof(d));
	d.addr = le64toh(d.addr);
	d.len = le32toh(d.len);
	d.flags = le16toh(d.flags);
	d.next = le16toh(d.next);
	return d;
}

static int chain_add(struct virtq *q, struct virtq_chain *chain, const struct vring_desc *d)
{
	if (d->flags & VRING_DESC_F_INDIRECT)
		return virtq_fail(q, "indirect descriptor inside a chain or an indirect table");
	bool writable = d->flags & VRING_DESC_F_WRITE;
	if (!writable && chain->num_writable)
		return virtq_fail(q, "device-readable descriptor after a device-writable one");
	void *ptr = guest_mem_ptr(q->mem, d->addr, d->len);
	if (!ptr)
		return virtq_fail(q, "descriptor buffer outside guest RAM");
	unsigned n = chain->num_readable + chain->num_writable;
	/* Callers bound the chain length by the queue size, at most
	 * VIRTQ_MAX_SIZE; this guards the array all the same. */
	if (n >= VIRTQ_MAX_SIZE)
		return virtq_fail(q, "descriptor chain too long");
	chain->iov[n].iov_base = ptr;
	chain->iov[n].iov_len = d->len;
	/* At most VIRTQ_MAX_SIZE lengths below 4 GiB each: cannot overflow. */
	if (writable) {
		chain->num_writable++;
		chain->writable_len += d->len;
	} else {
		chain->num_readable++;
		chain->readable_len += d->len;
	}
	return 0;
}

int virtq_pop(struct virtq *q, struct virtq_chain *chain)
{
	if (!q->ready || q->broken)
		return 0;
	/* Acquire: the ring entries and descriptors the driver wrote before
	 * publishing this index must be visible when we read them. */
	uint16_t avail_idx = le16toh(__atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE));
	uint16_t pending = (uint16_t)(avail_idx - q->last_avail_idx);
	if (pending == 0)
		return 0;
	if (pending > q->num)
		return virtq_fail(q, "available index moved by more than the queue size");

	uint16_t slot = q->last_avail_idx & (q->num - 1);
	uint16_t head = le16toh(__atomic_load_n(&q->avail->ring[slot], __ATOMIC_RELAXED));
	if (head >= q->num)
		return virtq_fail(q, "available ring entry is not a descriptor index");

	chain->head = head;
	chain->num_readable = 0;
	chain->num_writable = 0;
	chain->readable_len = 0;
	chain->writable_len = 0;

	const uint8_t *table = (const uint8_t *)q->desc;
	uint32_t table_size = q->num;
	struct vring_desc d = read_desc(table, head);

	if (d.flags & VRING_DESC_F_INDIRECT) {
		/* Only the head may point to an indirect table (what Linux
		 * and every other device do), and it must be its only
		 * descriptor. */
		if (!q->indirect)
			return virtq_fail(q, "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC");
		if (d.flags & VRING_DESC_F_NEXT)
			return virtq_fail(q, "indirect descriptor with the NEXT flag");
		if (d.len == 0 || d.len % sizeof(struct vring_desc))
			return virtq_fail(q, "indirect table length is not a multiple of 16");
		if (d.len / sizeof(struct vring_desc) > q->num)
			return virtq_fail(q, "indirect table longer than the queue size");
		table = guest_mem_ptr(q->mem, d.addr, d.len);
		if (!table)
			return virtq_fail(q, "indirect table outside guest RAM");
		table_size = d.len / sizeof(struct vring_desc);
		d = read_desc(table, 0);
	}

	/* A chain that visits more descriptors than its table holds must
	 * revisit one: that bound is the loop detection. */
	for (uint32_t count = 1;; count++) {
		if (count > table_size)
			return virtq_fail(q, "descriptor chain loops");
		if (chain_add(q, chain, &d) < 0)
			return -1;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= table_size)
			return virtq_fail(q, "descriptor next index out of range");
		d = read_desc(table, d.next);
	}

	q->last_avail_idx++;
	return 1;
}

bool virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	if (!q->ready || q->broken || head >= q->num)
		return false;
	struct vring_used_elem *elem = &q->used->ring[q->used_idx & (q->num - 1)];
	elem->id = htole32(head);
	elem->len = htole32(len);
	q->used_idx++;
	/* Release: the element is visible before the index that covers it. */
	__atomic_store_n(&q->used->idx, htole16(q->used_idx), __ATOMIC_RELEASE);
	/* The driver sets NO_INTERRUPT and then checks the used index; we
	 * publish the index and then check the flag. The full fence keeps
	 * both sides from missing each other's write. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t flags = le16toh(__atomic_load_n(&q->avail->flags, __ATOMIC_RELAXED));
	return !(flags & VRING_AVAIL_F_NO_INTERRUPT);
}

/* Walks the iovecs of one part of the chain, calling copy on the bytes
 * [offset, offset+len) of it; returns the number of bytes visited. */
static size_t chain_copy(const struct virtq_chain *chain, bool writable, uint64_t offset, void *buf,
			 size_t len)
{
	unsigned first = writable ? chain->num_readable : 0;
	unsigned n = writable ? chain->num_writable : chain->num_readable;
	size_t done = 0;
	for (unsigned i = first; i < first + n && done < len; i++) {
		const struct iovec *iov = &chain->iov[i];
		if (offset >= iov->iov_len) {
			offset -= iov->iov_len;
			continue;
		}
		size_t take = iov->iov_len - offset;
		if (take > len - done)
			take = len - done;
		uint8_t *guest = (uint8_t *)iov->iov_base + offset;
		if (writable)
			memcpy(guest, (const uint8_t *)buf + done, take);
		else
			memcpy((uint8_t *)buf + done, guest, take);
		done += take;
		offset = 0;
	}
	return done;
}

size_t virtq_chain_read(const struct virtq_chain *chain, uint64_t offset, void *buf, size_t len)
{
	return chain_copy(chain, false, offset, buf, len);
}

size_t virtq_chain_write(const struct virtq_chain *chain, uint64_t offset, const void *buf, size_t len)
{
	return chain_copy(chain, true, offset, (void *)buf, len);
}

unsigned virtq_chain_slice(const struct virtq_chain *chain, bool writable, uint64_t offset, uint64_t len,
			   struct iovec *out)
{
	unsigned first = writable ? chain->num_readable : 0;
	unsigned n = writable ? chain->num_writable : chain->num_readable;
	unsigned count = 0;
	for (unsigned i = first; i < first + n && len; i++) {
		const struct iovec *iov = &chain->iov[i];
		if (offset >= iov->iov_len) {
			offset -= iov->iov_len;
			continue;
		}
		uint64_t take = iov->iov_len - offset;
		if (take > len)
			take = len;
		out[count].iov_base = (uint8_t *)iov->iov_base + offset;
		out[count].iov_len = take;
		count++;
		len -= take;
		offset = 0;
	}
	return count;
}
