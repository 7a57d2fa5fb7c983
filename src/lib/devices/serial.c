#include "devices/serial.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Register offsets and bits (a subset of linux/serial_reg.h). */
enum { REG_DATA = 0, REG_IER = 1, REG_IIR_FCR = 2, REG_LCR = 3, REG_MCR = 4, REG_LSR = 5, REG_MSR = 6, REG_SCR = 7 };
#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_FIFO_ENABLED 0xc0
#define FCR_ENABLE_FIFO 0x01
#define LCR_DLAB 0x80
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

void serial_init(struct serial *s, int out_fd, int irq, void (*irq_pulse)(void *ctx, int irq), void *irq_ctx)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->out_fd = out_fd;
	s->irq = irq;
	s->irq_pulse = irq_pulse;
	s->irq_ctx = irq_ctx;
	s->mcr = MCR_OUT2;
}

void serial_destroy(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

static uint8_t current_iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & FCR_ENABLE_FIFO) ? IIR_FIFO_ENABLED : 0;
	if ((s->ier & IER_THRI) && s->thre_pending)
		return IIR_THRI | fifo;
	return IIR_NO_INT | fifo;
}

static void emit(struct serial *s, uint8_t byte)
{
	if (s->out_fd < 0)
		return;
	for (;;) {
		ssize_t n = write(s->out_fd, &byte, 1);
		if (n == 1 || (n < 0 && errno != EINTR))
			return; /* output that cannot be written is dropped, the guest goes on */
	}
}

/* The transmitter is empty again right after each byte, so sending a byte
 * or enabling the THRE interrupt makes that interrupt pending. ISA lines
 * are edge-triggered: only a change to pending is signalled, as a pulse;
 * more bytes sent while it is still pending would only make the guest see
 * interrupts with nothing to do. */
static void raise_thre(struct serial *s, int was_enabled)
{
	int was_pending = s->thre_pending && was_enabled;
	s->thre_pending = 1;
	if ((s->ier & IER_THRI) && !was_pending && s->irq_pulse)
		s->irq_pulse(s->irq_ctx, s->irq);
}

void serial_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct serial *s = opaque;
	uint8_t value = 0;
	pthread_mutex_lock(&s->lock);
	switch (offset) {
	case REG_DATA:
		value = (s->lcr & LCR_DLAB) ? s->dll : 0; /* no input yet */
		break;
	case REG_IER:
		value = (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
		break;
	case REG_IIR_FCR:
		value = current_iir(s);
		if ((value & 0x0f) == IIR_THRI)
			s->thre_pending = 0; /* reading IIR acknowledges THRE */
		break;
	case REG_LCR:
		value = s->lcr;
		break;
	case REG_MCR:
		value = s->mcr;
		break;
	case REG_LSR:
		value = LSR_THRE | LSR_TEMT;
		break;
	case REG_MSR:
		if (s->mcr & MCR_LOOP) {
			/* Loopback: modem outputs appear as modem inputs. */
			value = ((s->mcr & MCR_DTR) ? MSR_DSR : 0) | ((s->mcr & MCR_RTS) ? MSR_CTS : 0) |
				((s->mcr & MCR_OUT1) ? MSR_RI : 0) | ((s->mcr & MCR_OUT2) ? MSR_DCD : 0);
		} else {
			value = MSR_DCD | MSR_DSR | MSR_CTS;
		}
		break;
	case REG_SCR:
		value = s->scr;
		break;
	}
	pthread_mutex_unlock(&s->lock);
	memset(data, 0, len);
	data[0] = value;
}

void serial_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct serial *s = opaque;
	uint8_t value = len ? data[0] : 0;
	pthread_mutex_lock(&s->lock);
	switch (offset) {
	case REG_DATA:
		if (s->lcr & LCR_DLAB) {
			s->dll = value;
		} else {
			if (!(s->mcr & MCR_LOOP))
				emit(s, value);
			raise_thre(s, 1);
		}
		break;
	case REG_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = value;
		} else {
			uint8_t enabled = (uint8_t)(value & ~s->ier);
			s->ier = value & 0x0f;
			if (enabled & IER_THRI)
				raise_thre(s, 0);
		}
		break;
	case REG_IIR_FCR:
		s->fcr = value & 0xc9; /* keep FIFO enable and trigger level */
		break;
	case REG_LCR:
		s->lcr = value;
		break;
	case REG_MCR:
		s->mcr = value & 0x1f;
		break;
	case REG_SCR:
		s->scr = value;
		break;
	}
	pthread_mutex_unlock(&s->lock);
}

void serial_save(struct serial *s, struct serial_state *st)
{
	pthread_mutex_lock(&s->lock);
	*st = (struct serial_state){ s->ier, s->lcr, s->mcr, s->scr, s->dll, s->dlm, s->fcr, s->thre_pending };
	pthread_mutex_unlock(&s->lock);
}

void serial_load(struct serial *s, const struct serial_state *st)
{
	pthread_mutex_lock(&s->lock);
	s->ier = st->ier;
	s->lcr = st->lcr;
	s->mcr = st->mcr;
	s->scr = st->scr;
	s->dll = st->dll;
	s->dlm = st->dlm;
	s->fcr = st->fcr;
	s->thre_pending = st->thre_pending ? 1 : 0;
	pthread_mutex_unlock(&s->lock);
}
