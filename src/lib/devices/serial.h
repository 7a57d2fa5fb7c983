/* 16550A UART on a legacy ISA port, output only: what the guest transmits
 * is copied to a host fd. Enough of the register set for Linux's 8250
 * driver to detect the port and drive it with THRE interrupts. */
#ifndef CAPSA_DEVICES_SERIAL_H
#define CAPSA_DEVICES_SERIAL_H

#include <pthread.h>
#include <stdint.h>

#define SERIAL_PORT_COUNT 8 /* registers per UART */

struct serial {
	pthread_mutex_t lock;
	int out_fd;       /* -1 discards output */
	int irq;          /* ISA IRQ line, raised through irq_pulse */
	void (*irq_pulse)(void *ctx, int irq);
	void *irq_ctx;

	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	uint8_t thre_pending; /* transmitter empty interrupt not yet seen via IIR */
};

void serial_init(struct serial *s, int out_fd, int irq, void (*irq_pulse)(void *ctx, int irq), void *irq_ctx);
void serial_destroy(struct serial *s);
/* Port I/O handlers (offset 0..7, one byte); suitable as bus callbacks. */
void serial_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len);
void serial_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len);

/* The UART's registers, for snapshots. */
struct serial_state {
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr, thre_pending;
};
void serial_save(struct serial *s, struct serial_state *st);
void serial_load(struct serial *s, const struct serial_state *st);

#endif
