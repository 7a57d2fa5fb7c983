/* The 8250 model: byte-exact output, the registers Linux's driver probes,
 * and THRE interrupts signalled once per transition to pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/serial.h"

static int pulses;
static void count_pulse(void *ctx, int irq)
{
	(void)ctx;
	assert_int_equal(irq, 4);
	pulses++;
}

static uint8_t rd(struct serial *s, unsigned reg)
{
	uint8_t v;
	serial_read(s, reg, &v, 1);
	return v;
}

static void wr(struct serial *s, unsigned reg, uint8_t v)
{
	serial_write(s, reg, &v, 1);
}

static void test_output_is_byte_exact(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct serial s;
	serial_init(&s, p[1], 4, count_pulse, NULL);
	const char *msg = "a\nb\r\n\0z";
	for (size_t i = 0; i < 8; i++)
		wr(&s, 0, (uint8_t)msg[i]);
	char buf[16];
	assert_int_equal(read(p[0], buf, sizeof(buf)), 8);
	assert_memory_equal(buf, msg, 8);
	serial_destroy(&s);
	close(p[0]);
	close(p[1]);
}

static void test_probe_registers(void **state)
{
	(void)state;
	struct serial s;
	serial_init(&s, -1, 4, count_pulse, NULL);
	wr(&s, 1, 0x0f); /* IER keeps 4 bits */
	assert_int_equal(rd(&s, 1), 0x0f);
	wr(&s, 1, 0xff);
	assert_int_equal(rd(&s, 1), 0x0f);
	wr(&s, 1, 0);
	wr(&s, 7, 0xa5); /* scratch */
	assert_int_equal(rd(&s, 7), 0xa5);
	assert_int_equal(rd(&s, 5) & 0x60, 0x60); /* transmitter empty */
	wr(&s, 2, 0x01);                           /* FIFO on: reported as 16550A */
	assert_int_equal(rd(&s, 2) & 0xc0, 0xc0);
	wr(&s, 4, 0x1a); /* loopback with OUT2 and RTS */
	assert_int_equal(rd(&s, 6) & 0xf0, 0x90);
	wr(&s, 3, 0x80); /* DLAB: divisor latch instead of data/IER */
	wr(&s, 0, 0x0c);
	wr(&s, 1, 0x00);
	assert_int_equal(rd(&s, 0), 0x0c);
	wr(&s, 3, 0x03);
	serial_destroy(&s);
}

static void test_thre_interrupts(void **state)
{
	(void)state;
	struct serial s;
	pulses = 0;
	serial_init(&s, -1, 4, count_pulse, NULL);
	wr(&s, 0, 'x'); /* THRE interrupt disabled: no pulse */
	assert_int_equal(pulses, 0);
	assert_int_equal(rd(&s, 2) & 0x0f, 0x01);
	wr(&s, 1, 0x02); /* enabling it with the transmitter empty interrupts */
	assert_int_equal(pulses, 1);
	assert_int_equal(rd(&s, 2) & 0x0f, 0x02);
	assert_int_equal(rd(&s, 2) & 0x0f, 0x01); /* reading IIR acknowledged it */
	wr(&s, 0, 'a');
	wr(&s, 0, 'b'); /* still pending: no second pulse */
	assert_int_equal(pulses, 2);
	assert_int_equal(rd(&s, 2) & 0x0f, 0x02);
	wr(&s, 0, 'c');
	assert_int_equal(pulses, 3);
	serial_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_is_byte_exact),
		cmocka_unit_test(test_probe_registers),
		cmocka_unit_test(test_thre_interrupts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
