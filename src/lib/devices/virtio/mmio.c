#include "devices/virtio/mmio.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/virtio_config.h>

#include "util/error.h"
#include "vm/bus.h"

#define STATUS_DRIVER_BITS                                                                                   \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |                \
	 VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED)

static void signal_eventfd(int fd)
{
	uint64_t one = 1;
	/* Can only fail if the counter is about to overflow, and then the
	 * reader is already due to wake up. */
	ssize_t n = write(fd, &one, sizeof(one));
	(void)n;
}

static struct virtq *selected_queue(struct virtio_mmio *m)
{
	return m->queue_sel < m->dev.num_queues ? &m->queues[m->queue_sel] : NULL;
}

/* The driver may only be served once it has accepted features and said
 * DRIVER_OK, and not after it gave up or we asked for a reset. */
static bool driver_running(const struct virtio_mmio *m)
{
	uint32_t need = VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
	uint32_t stop = VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED;
	return (m->status & need) == need && !(m->status & stop);
}

/* Flags DEVICE_NEEDS_RESET; returns true if the driver must now get a
 * configuration change interrupt (2.1.2: only once DRIVER_OK is set). */
static bool needs_reset_locked(struct virtio_mmio *m)
{
	m->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	if (!(m->status & VIRTIO_CONFIG_S_DRIVER_OK))
		return false;
	m->interrupt_status |= VIRTIO_MMIO_INT_CONFIG;
	return true;
}

static void reset_locked(struct virtio_mmio *m)
{
	/* The worker may be executing a chain it popped; let it finish and
	 * push it before the rings go away, so that reading Status as 0
	 * really means the device no longer touches driver memory. */
	while (m->in_flight)
		pthread_cond_wait(&m->idle, &m->lock);
	for (unsigned i = 0; i < m->dev.num_queues; i++)
		virtq_reset(&m->queues[i]);
	m->driver_features = 0;
	m->device_features_sel = 0;
	m->driver_features_sel = 0;
	m->queue_sel = 0;
	m->shm_sel = 0;
	m->status = 0;
	m->interrupt_status = 0;
	if (m->dev.reset)
		m->dev.reset(m->dev.opaque);
}

/* 6.1: the driver may only accept offered features, and a version 1
 * device refuses drivers that did not accept VERSION_1. */
static bool features_acceptable(const struct virtio_mmio *m)
{
	if (m->driver_features & ~m->device_features)
		return false;
	return m->driver_features & (1ULL << VIRTIO_F_VERSION_1);
}

static void write_status(struct virtio_mmio *m, uint32_t value)
{
	if (value == 0) {
		reset_locked(m);
		return;
	}
	/* Status bits only accumulate until a reset (the driver must not
	 * clear any): this keeps negotiated features fixed while queues run. */
	uint32_t old = m->status;
	uint32_t new = old | (value & STATUS_DRIVER_BITS);
	if ((new & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
		/* Refusing means not setting the bit: the driver reads the
		 * status back to learn the outcome. */
		if (!features_acceptable(m))
			new &= ~VIRTIO_CONFIG_S_FEATURES_OK;
	}
	m->status = new;
	/* Buffers made available before DRIVER_OK were not served; look
	 * at every ready queue now. */
	if ((new & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK)) {
		for (unsigned i = 0; i < m->dev.num_queues; i++)
			if (m->queues[i].ready)
				signal_eventfd(m->notify_fds[i]);
	}
}

static void write_queue_ready(struct virtio_mmio *m, struct virtq *q, uint32_t value)
{
	if (value == 0) {
		q->ready = false;
		return;
	}
	if (q->ready)
		return;
	q->indirect = m->driver_features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	if (virtq_enable(q, m->mem) < 0) {
		/* Bad size or rings outside RAM: the queue stays off. */
		if (needs_reset_locked(m))
			signal_eventfd(m->irq_fd);
	}
}

static void set_low(uint64_t *v, uint32_t low)
{
	*v = (*v & 0xffffffff00000000ULL) | low;
}

static void set_high(uint64_t *v, uint32_t high)
{
	*v = (*v & 0xffffffffULL) | ((uint64_t)high << 32);
}

static void write_register(struct virtio_mmio *m, uint64_t offset, uint32_t value)
{
	struct virtq *q = selected_queue(m);
	/* Queue layout is fixed while the queue is ready (4.2.2.2). */
	struct virtq *idle_q = q && !q->ready ? q : NULL;

	switch (offset) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		m->device_features_sel = value;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		m->driver_features_sel = value;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (m->status & VIRTIO_CONFIG_S_FEATURES_OK)
			break;
		if (m->driver_features_sel == 0)
			set_low(&m->driver_features, value);
		else if (m->driver_features_sel == 1)
			set_high(&m->driver_features, value);
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		m->queue_sel = value;
		break;
	case VIRTIO_MMIO_SHM_SEL:
		m->shm_sel = value;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		/* A value that does not fit must not wrap into a valid size. */
		if (idle_q)
			idle_q->num = value <= UINT16_MAX ? value : 0;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (q)
			write_queue_ready(m, q, value);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Reached only when no ioeventfd caught the write. */
		if (value < m->dev.num_queues)
			signal_eventfd(m->notify_fds[value]);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		m->interrupt_status &= ~value;
		break;
	case VIRTIO_MMIO_STATUS:
		write_status(m, value);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		if (idle_q)
			set_low(&idle_q->desc_addr, value);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (idle_q)
			set_high(&idle_q->desc_addr, value);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
		if (idle_q)
			set_low(&idle_q->avail_addr, value);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		if (idle_q)
			set_high(&idle_q->avail_addr, value);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
		if (idle_q)
			set_low(&idle_q->used_addr, value);
		break;
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if (idle_q)
			set_high(&idle_q->used_addr, value);
		break;
	default:
		/* Read-only and legacy registers: ignored. */
		break;
	}
}

static const struct virtio_mmio_shm_region *selected_shm(const struct virtio_mmio *m)
{
	for (unsigned i = 0; i < m->dev.shm_count; i++)
		if (m->dev.shm[i].id == m->shm_sel)
			return &m->dev.shm[i];
	return NULL;
}

/* A region that does not exist has length -1 (4.2.2); its base reads the
 * same, so nothing can mistake it for an address. */
static uint64_t selected_shm_len(const struct virtio_mmio *m)
{
	const struct virtio_mmio_shm_region *r = selected_shm(m);
	return r ? r->len : ~0ULL;
}

static uint64_t selected_shm_base(const struct virtio_mmio *m)
{
	const struct virtio_mmio_shm_region *r = selected_shm(m);
	return r ? r->base : ~0ULL;
}

static uint32_t read_register(struct virtio_mmio *m, uint64_t offset)
{
	struct virtq *q = selected_queue(m);

	switch (offset) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return m->dev.device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (m->device_features_sel == 0)
			return (uint32_t)m->device_features;
		if (m->device_features_sel == 1)
			return (uint32_t)(m->device_features >> 32);
		return 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return q ? q->max_size : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return q ? q->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return m->interrupt_status;
	case VIRTIO_MMIO_STATUS:
		return m->status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return m->config_generation;
	case VIRTIO_MMIO_SHM_LEN_LOW:
		return (uint32_t)selected_shm_len(m);
	case VIRTIO_MMIO_SHM_LEN_HIGH:
		return (uint32_t)(selected_shm_len(m) >> 32);
	case VIRTIO_MMIO_SHM_BASE_LOW:
		return (uint32_t)selected_shm_base(m);
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		return (uint32_t)(selected_shm_base(m) >> 32);
	default:
		return 0;
	}
}

/* Registers are 32 bits wide and must be accessed as such (4.2.2.2);
 * the config space takes any width. */
static bool is_register_access(uint64_t offset, uint32_t len)
{
	return offset < VIRTIO_MMIO_CONFIG && len == 4 && !(offset & 3);
}

static bool config_range(const struct virtio_mmio *m, uint64_t offset, uint32_t len, uint32_t *config_offset)
{
	if (offset < VIRTIO_MMIO_CONFIG)
		return false;
	uint64_t off = offset - VIRTIO_MMIO_CONFIG;
	if (off >= m->dev.config_size || len > m->dev.config_size - off)
		return false;
	*config_offset = (uint32_t)off;
	return true;
}

void virtio_mmio_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct virtio_mmio *m = opaque;
	uint32_t config_offset;

	memset(data, 0, len);
	pthread_mutex_lock(&m->lock);
	if (is_register_access(offset, len)) {
		uint32_t value = htole32(read_register(m, offset));
		memcpy(data, &value, sizeof(value));
	} else if (config_range(m, offset, len, &config_offset) && m->dev.config_read) {
		m->dev.config_read(m->dev.opaque, config_offset, data, len);
	}
	pthread_mutex_unlock(&m->lock);
}

void virtio_mmio_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct virtio_mmio *m = opaque;
	uint32_t config_offset;

	pthread_mutex_lock(&m->lock);
	if (is_register_access(offset, len)) {
		uint32_t value;
		memcpy(&value, data, sizeof(value));
		write_register(m, offset, le32toh(value));
	} else if (config_range(m, offset, len, &config_offset) && m->dev.config_write) {
		m->dev.config_write(m->dev.opaque, config_offset, data, len);
	}
	pthread_mutex_unlock(&m->lock);
}

int virtio_mmio_notify_fd(const struct virtio_mmio *m, unsigned q)
{
	return q < m->dev.num_queues ? m->notify_fds[q] : -1;
}

int virtio_mmio_irq_fd(const struct virtio_mmio *m)
{
	return m->irq_fd;
}

int virtio_mmio_pop(struct virtio_mmio *m, unsigned qi, struct virtq_chain *chain)
{
	int ret = 0;
	bool irq = false;

	pthread_mutex_lock(&m->lock);
	if (qi < m->dev.num_queues && driver_running(m) && !m->paused) {
		ret = virtq_pop(&m->queues[qi], chain);
		if (ret > 0)
			m->in_flight++;
		else if (ret < 0)
			irq = needs_reset_locked(m);
	}
	pthread_mutex_unlock(&m->lock);
	if (irq)
		signal_eventfd(m->irq_fd);
	return ret;
}

bool virtio_mmio_push(struct virtio_mmio *m, unsigned qi, const struct virtq_chain *chain, uint32_t len)
{
	bool want_irq = false;

	pthread_mutex_lock(&m->lock);
	if (qi < m->dev.num_queues)
		want_irq = virtq_push(&m->queues[qi], chain->head, len);
	if (m->in_flight && --m->in_flight == 0)
		pthread_cond_broadcast(&m->idle);
	pthread_mutex_unlock(&m->lock);
	return want_irq;
}

void virtio_mmio_interrupt(struct virtio_mmio *m, uint32_t bits)
{
	pthread_mutex_lock(&m->lock);
	m->interrupt_status |= bits;
	pthread_mutex_unlock(&m->lock);
	signal_eventfd(m->irq_fd);
}

void virtio_mmio_config_changed(struct virtio_mmio *m)
{
	bool irq = false;

	pthread_mutex_lock(&m->lock);
	m->config_generation++;
	if (m->status & VIRTIO_CONFIG_S_DRIVER_OK) {
		m->interrupt_status |= VIRTIO_MMIO_INT_CONFIG;
		irq = true;
	}
	pthread_mutex_unlock(&m->lock);
	if (irq)
		signal_eventfd(m->irq_fd);
}

void virtio_mmio_pause(struct virtio_mmio *m)
{
	pthread_mutex_lock(&m->lock);
	m->paused = true;
	while (m->in_flight)
		pthread_cond_wait(&m->idle, &m->lock);
	pthread_mutex_unlock(&m->lock);
}

void virtio_mmio_resume(struct virtio_mmio *m)
{
	pthread_mutex_lock(&m->lock);
	m->paused = false;
	pthread_mutex_unlock(&m->lock);
	/* Kicks that came while paused found nothing to pop. */
	for (unsigned i = 0; i < m->dev.num_queues; i++)
		signal_eventfd(m->notify_fds[i]);
}

void virtio_mmio_save(struct virtio_mmio *m, struct virtio_mmio_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&m->lock);
	st->device_id = m->dev.device_id;
	st->num_queues = m->dev.num_queues;
	st->device_features = m->device_features;
	st->driver_features = m->driver_features;
	st->device_features_sel = m->device_features_sel;
	st->driver_features_sel = m->driver_features_sel;
	st->status = m->status;
	st->interrupt_status = m->interrupt_status;
	st->config_generation = m->config_generation;
	st->queue_sel = m->queue_sel;
	for (unsigned i = 0; i < m->dev.num_queues; i++) {
		const struct virtq *q = &m->queues[i];
		st->queues[i] = (struct virtio_mmio_queue_state){
			.desc_addr = q->desc_addr,
			.avail_addr = q->avail_addr,
			.used_addr = q->used_addr,
			.num = q->num,
			.last_avail_idx = q->last_avail_idx,
			.used_idx = q->used_idx,
			.ready = q->ready,
			.indirect = q->indirect,
		};
	}
	pthread_mutex_unlock(&m->lock);
}

int virtio_mmio_load(struct virtio_mmio *m, const struct virtio_mmio_state *st, capsa_error *err)
{
	if (st->device_id != m->dev.device_id || st->num_queues != m->dev.num_queues ||
	    st->device_features != m->device_features)
		return error_set(err, EINVAL, "snapshot state: the device at 0x%llx was virtio device %u with %u queues, "
				 "now %u with %u (the VM's devices differ from the snapshot's)",
				 (unsigned long long)m->base, st->device_id, st->num_queues, m->dev.device_id,
				 m->dev.num_queues);
	pthread_mutex_lock(&m->lock);
	m->driver_features = st->driver_features;
	m->device_features_sel = st->device_features_sel;
	m->driver_features_sel = st->driver_features_sel;
	m->status = st->status;
	m->interrupt_status = st->interrupt_status;
	m->config_generation = st->config_generation;
	m->queue_sel = st->queue_sel;
	int r = 0;
	for (unsigned i = 0; i < m->dev.num_queues && r == 0; i++) {
		const struct virtio_mmio_queue_state *qs = &st->queues[i];
		struct virtq *q = &m->queues[i];
		virtq_reset(q);
		q->num = qs->num;
		q->desc_addr = qs->desc_addr;
		q->avail_addr = qs->avail_addr;
		q->used_addr = qs->used_addr;
		if (!qs->ready)
			continue;
		q->indirect = qs->indirect;
		if (virtq_enable(q, m->mem) < 0)
			r = error_set(err, EINVAL, "snapshot state: queue %u of the device at 0x%llx is invalid", i,
				      (unsigned long long)m->base);
		q->last_avail_idx = qs->last_avail_idx;
		q->used_idx = qs->used_idx;
	}
	bool irq = m->interrupt_status != 0;
	pthread_mutex_unlock(&m->lock);
	if (r < 0)
		return -1;
	for (unsigned i = 0; i < m->dev.num_queues; i++)
		signal_eventfd(m->notify_fds[i]);
	if (irq)
		signal_eventfd(m->irq_fd);
	return 0;
}

static int bind_ioeventfd(struct virtio_mmio *m, unsigned q, bool assign)
{
	struct kvm_ioeventfd ioeventfd = {
		.datamatch = q,
		.addr = m->base + VIRTIO_MMIO_QUEUE_NOTIFY,
		.len = 4,
		.fd = m->notify_fds[q],
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};
	return ioctl(m->vm_fd, KVM_IOEVENTFD, &ioeventfd);
}

static int bind_irqfd(struct virtio_mmio *m, bool assign)
{
	struct kvm_irqfd irqfd = {
		.fd = (uint32_t)m->irq_fd,
		.gsi = m->gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};
	return ioctl(m->vm_fd, KVM_IRQFD, &irqfd);
}

static int check_device(const struct virtio_mmio_device *dev, capsa_error *err)
{
	if (dev->num_queues == 0 || dev->num_queues > VIRTIO_MMIO_MAX_QUEUES)
		return error_set(err, EINVAL, "virtio device %u: %u queues, the transport supports 1 to %u",
				 dev->device_id, dev->num_queues, VIRTIO_MMIO_MAX_QUEUES);
	uint32_t size = dev->queue_max_size;
	if (size == 0 || (size & (size - 1)) || size > VIRTQ_MAX_SIZE)
		return error_set(err, EINVAL, "virtio device %u: queue size %u is not a power of two up to %u",
				 dev->device_id, size, VIRTQ_MAX_SIZE);
	if (dev->config_size > VIRTIO_MMIO_CONFIG_MAX)
		return error_set(err, EINVAL, "virtio device %u: config space of %u bytes exceeds %u",
				 dev->device_id, dev->config_size, VIRTIO_MMIO_CONFIG_MAX);
	if (dev->shm_count > VIRTIO_MMIO_MAX_SHM_REGIONS)
		return error_set(err, EINVAL, "virtio device %u: %u shared memory regions, the transport supports %u",
				 dev->device_id, dev->shm_count, VIRTIO_MMIO_MAX_SHM_REGIONS);
	for (unsigned i = 0; i < dev->shm_count; i++) {
		const struct virtio_mmio_shm_region *r = &dev->shm[i];
		if (r->len == 0 || r->len == ~0ULL || r->base + r->len < r->base)
			return error_set(err, EINVAL, "virtio device %u: shared memory region %u has a bad size",
					 dev->device_id, r->id);
		for (unsigned j = 0; j < i; j++)
			if (dev->shm[j].id == r->id)
				return error_set(err, EINVAL, "virtio device %u: shared memory region %u given twice",
						 dev->device_id, r->id);
	}
	return 0;
}

int virtio_mmio_init(struct virtio_mmio *m, const struct vm_device_env *env, uint64_t base, uint32_t gsi,
		     const struct virtio_mmio_device *dev, capsa_error *err)
{
	memset(m, 0, sizeof(*m));
	m->irq_fd = -1;
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		m->notify_fds[i] = -1;
	if (check_device(dev, err) < 0)
		return -1;

	m->dev = *dev;
	m->mem = env->mem;
	m->base = base;
	m->gsi = gsi;
	m->vm_fd = env->vm_fd;
	m->device_features = dev->features | (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->idle, NULL);
	m->initialized = true;

	for (unsigned i = 0; i < dev->num_queues; i++) {
		m->queues[i].max_size = dev->queue_max_size;
		m->notify_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (m->notify_fds[i] < 0) {
			error_set_errno(err, errno, "creating the queue notification eventfd");
			goto fail;
		}
	}
	m->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->irq_fd < 0) {
		error_set_errno(err, errno, "creating the interrupt eventfd");
		goto fail;
	}

	if (m->vm_fd >= 0) {
		/* Without an ioeventfd the kick still arrives, through a
		 * slower exit to the write handler: not worth failing for. */
		for (unsigned i = 0; i < dev->num_queues; i++)
			m->ioeventfd_bound[i] = bind_ioeventfd(m, i, true) == 0;
		if (bind_irqfd(m, true) < 0) {
			error_set_errno(err, errno,
					"binding the interrupt of the device at 0x%llx to GSI %u (KVM_IRQFD; the VM "
					"needs an in-kernel irqchip)",
					(unsigned long long)base, gsi);
			goto fail;
		}
		m->irqfd_bound = true;
	}

	return 0;

fail:
	virtio_mmio_cleanup(m);
	return -1;
}

int virtio_mmio_register(struct virtio_mmio *m, struct bus *bus, capsa_error *err)
{
	struct bus_device window = {
		.base = m->base,
		.size = VIRTIO_MMIO_WINDOW_SIZE,
		.opaque = m,
		.read = virtio_mmio_read,
		.write = virtio_mmio_write,
	};
	if (bus_register(bus, &window) < 0)
		return error_set(err, EBUSY, "MMIO window 0x%llx+0x%x overlaps another device or the bus is full",
				 (unsigned long long)m->base, VIRTIO_MMIO_WINDOW_SIZE);
	return 0;
}

void virtio_mmio_cleanup(struct virtio_mmio *m)
{
	if (!m->initialized)
		return;
	for (unsigned i = 0; i < m->dev.num_queues; i++) {
		if (m->ioeventfd_bound[i])
			bind_ioeventfd(m, i, false);
		m->ioeventfd_bound[i] = false;
		if (m->notify_fds[i] >= 0)
			close(m->notify_fds[i]);
		m->notify_fds[i] = -1;
	}
	if (m->irqfd_bound)
		bind_irqfd(m, false);
	m->irqfd_bound = false;
	if (m->irq_fd >= 0)
		close(m->irq_fd);
	m->irq_fd = -1;
	pthread_cond_destroy(&m->idle);
	pthread_mutex_destroy(&m->lock);
	m->initialized = false;
}
