#include "devices/power.h"

#include <errno.h>
#include <string.h>

#include "guest_abi.h"
#include "util/error.h"
#include "vm/vm.h"

#define I8042_COMMAND_PORT 0x64
#define I8042_CMD_RESET_CPU 0xfe

/* Both ports read as 0; for the i8042 status register that means input and
 * output buffers empty, so Linux's kb_wait() before the reset returns at once. */
static void read_zero(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	(void)opaque;
	(void)offset;
	memset(data, 0, len);
}

static void exit_port_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct vm *vm = opaque;
	if (offset != 0 || len != 4)
		return; /* only a full 32-bit write at the port counts */
	uint32_t value;
	memcpy(&value, data, sizeof(value));
	pthread_mutex_lock(&vm->lock);
	if (vm->end == VM_END_NONE)
		vm->exit_value = value;
	pthread_mutex_unlock(&vm->lock);
	vm_request_stop(vm, VM_END_EXIT_REPORTED, NULL);
}

static void i8042_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct vm *vm = opaque;
	(void)offset;
	if (len >= 1 && data[0] == I8042_CMD_RESET_CPU)
		vm_request_stop(vm, VM_END_RESET, NULL);
}

int power_ports_register(struct vm *vm, capsa_error *err)
{
	struct bus_device exit_port = {
		.base = CAPSA_EXIT_PORT, .size = 4, .opaque = vm, .read = read_zero, .write = exit_port_write,
	};
	struct bus_device i8042 = {
		.base = I8042_COMMAND_PORT,
		.size = 1,
		.opaque = vm,
		.read = read_zero,
		.write = i8042_write,
	};
	if (bus_register(&vm->pio_bus, &exit_port) < 0 || bus_register(&vm->pio_bus, &i8042) < 0)
		return error_set(err, EBUSY, "cannot register the power ports");
	return 0;
}
