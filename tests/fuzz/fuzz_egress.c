/* libFuzzer target: a hostile guest's frames against the egress filter,
 * and hostile --egress specs against the parser. The first input byte
 * picks the policy (or says "parse the rest as a spec"); the rest is the
 * frame, copied to a buffer of exactly its length so that ASan sees any
 * read past it. Frames are also checked through every policy at once, as
 * the filter may only ever read, never depend on state. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/egress.h"

static const char *const specs[] = {
	"allow_all",
	"deny_private",
	"allow:10.0.0.0/8,2001:db8::/32,0.0.0.0/1",
	"deny:192.168.0.0/16,fd00::/8,::ffff:0:0/96",
};
#define NUM_SPECS (sizeof(specs) / sizeof(specs[0]))

static struct egress_policy *policies[NUM_SPECS];

static void parse_spec(const uint8_t *data, size_t size)
{
	char *spec = malloc(size + 1);
	memcpy(spec, data, size);
	spec[size] = '\0';
	capsa_error err = { 0 };
	struct egress_policy *p = egress_policy_parse(spec, &err);
	if (p) {
		uint8_t addr[16] = { 0 };
		memcpy(addr, data, size < sizeof(addr) ? size : sizeof(addr));
		egress_allows(p, 2 /* AF_INET */, addr, 80, 6);
		egress_allows(p, 10 /* AF_INET6 */, addr, 80, 17);
		egress_policy_free(p);
	} else if (err.message[0] == '\0' || strchr(err.message, '\n')) {
		abort(); /* every failure says why, on one line */
	}
	free(spec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!policies[0]) {
		for (size_t i = 0; i < NUM_SPECS; i++) {
			capsa_error err;
			policies[i] = egress_policy_parse(specs[i], &err);
			if (!policies[i] || egress_policy_allow_local(policies[i], "10.0.2.3", &err) < 0)
				abort();
		}
	}
	if (size < 1)
		return 0;
	uint8_t selector = data[0];
	data++;
	size--;
	if (selector == 0xff) {
		parse_spec(data, size);
		return 0;
	}
	uint8_t *frame = malloc(size ? size : 1);
	memcpy(frame, data, size);
	egress_check_frame(policies[selector % NUM_SPECS], frame, size);
	/* allow_all passes whatever is well-formed: it must never pass more
	 * than it would under a stricter policy's parser rules. */
	if (!egress_check_frame(policies[0], frame, size)) {
		for (size_t i = 1; i < NUM_SPECS; i++)
			if (egress_check_frame(policies[i], frame, size))
				abort();
	}
	free(frame);
	return 0;
}
