/* The state file of a snapshot: everything about a paused VM except its
 * RAM (which is a file of its own, mapped copy-on-write on restore).
 *
 * A versioned, checksummed container of tagged sections, so that a
 * truncated, corrupted or foreign file is refused with a clear message
 * before any of it reaches KVM:
 *
 *     magic      8 bytes  "CAPSASNP"
 *     version    u32      STATE_FILE_VERSION
 *     count      u32      number of sections
 *     body_len   u64      bytes after this header
 *     checksum   32 bytes sha256 of the body
 *     body:      count sections, each
 *         tag      u32   enum state_tag
 *         instance u32   which one (vCPU index, device index, irqchip id...)
 *         len      u64
 *         data     len bytes, then zero padding to a multiple of 8
 *
 * All integers little-endian. Section data is the raw KVM structure (or a
 * device's own encoding); readers ask for an exact size, so a file written
 * by a build whose structures differ is refused rather than misread. */
#ifndef CAPSA_SNAPSHOT_STATE_FILE_H
#define CAPSA_SNAPSHOT_STATE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "capsa.h"

#define STATE_FILE_MAGIC "CAPSASNP"
#define STATE_FILE_VERSION 1
#define STATE_FILE_HEADER_SIZE 56
#define STATE_FILE_MAX_SIZE (64u << 20)      /* refuse anything larger when reading */
#define STATE_FILE_MAX_SECTIONS 4096

enum state_tag {
	STATE_META = 1,        /* struct snapshot_meta (snapshot.h) */
	STATE_VM_CLOCK,        /* struct kvm_clock_data */
	STATE_VM_PIT,          /* struct kvm_pit_state2 */
	STATE_VM_IRQCHIP,      /* struct kvm_irqchip; instance = chip_id */
	STATE_VCPU_REGS,       /* struct kvm_regs; instance = vCPU index (same for every VCPU tag) */
	STATE_VCPU_SREGS,      /* struct kvm_sregs */
	STATE_VCPU_XSAVE,      /* struct kvm_xsave */
	STATE_VCPU_XCRS,       /* struct kvm_xcrs */
	STATE_VCPU_MSRS,       /* variable: struct kvm_msr_entry[] */
	STATE_VCPU_LAPIC,      /* struct kvm_lapic_state */
	STATE_VCPU_EVENTS,     /* struct kvm_vcpu_events */
	STATE_VCPU_MP_STATE,   /* struct kvm_mp_state */
	STATE_VCPU_DEBUGREGS,  /* struct kvm_debugregs */
	STATE_VCPU_CPUID,      /* variable: struct kvm_cpuid_entry2[] */
	STATE_DEVICE,          /* variable: a device's state; instance = device slot */
	STATE_TAG_MAX,
};

/* A short name for messages ("vCPU registers"); "unknown" for others. */
const char *state_tag_name(uint32_t tag);

/* ---- writing ---- */

struct state_writer;

struct state_writer *state_writer_new(capsa_error *err);
void state_writer_free(struct state_writer *w);

/* Appends a copy of data as section (tag, instance). Adding the same
 * (tag, instance) twice is an error, as is exceeding STATE_FILE_MAX_SIZE or
 * STATE_FILE_MAX_SECTIONS. */
int state_writer_add(struct state_writer *w, uint32_t tag, uint32_t instance, const void *data, size_t len,
		     capsa_error *err);

/* Writes the file atomically (util/atomic_file.h), mode 0600. */
int state_writer_save(const struct state_writer *w, const char *path, capsa_error *err);

/* The encoded file in memory (header included); the caller frees it. */
int state_writer_encode(const struct state_writer *w, uint8_t **out, size_t *out_len, capsa_error *err);

/* ---- reading ---- */

struct state_reader;

/* Reads and checks the whole file: magic, version, sizes, checksum, every
 * section's bounds, no duplicate (tag, instance). Errors name the file and
 * what is wrong, e.g. "snapshot state /x/state: checksum mismatch (the file
 * is corrupted; remove the snapshot and bake it again)". */
struct state_reader *state_reader_open(const char *path, capsa_error *err);
/* The same checks on a buffer (copied). */
struct state_reader *state_reader_from_buffer(const void *data, size_t len, capsa_error *err);
void state_reader_free(struct state_reader *r);

/* Copies section (tag, instance), which must be exactly len bytes, to out.
 * A missing section or another size is an error naming the section. */
int state_reader_get(const struct state_reader *r, uint32_t tag, uint32_t instance, void *out, size_t len,
		     capsa_error *err);

/* The data of section (tag, instance) and its length (valid until the
 * reader is freed), or NULL if there is none. */
const void *state_reader_find(const struct state_reader *r, uint32_t tag, uint32_t instance, size_t *len);

/* How many sections with this tag the file holds. */
unsigned state_reader_count(const struct state_reader *r, uint32_t tag);

#endif
