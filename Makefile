# Front door: `make demo` and `make test` work on a fresh Debian 12 machine.
# The real build is meson; this file only sequences the steps.

BUILD      ?= build
TEST_BUILD ?= build-test
PYTHON     ?= /usr/bin/python3
DEMO_ROOTFS = $(BUILD)/demo-rootfs
WITH_KVM    = tools/with-kvm

.PHONY: all deps build kernel demo test unit fuzz integration e2e bench clean rootfs demo-image

all: build

deps:
	tools/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) --werror

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

kernel: deps
	guest/kernel/build.sh >/dev/null

rootfs: deps
	tools/make-busybox-rootfs $(DEMO_ROOTFS)

DEMO_IMAGE = $(BUILD)/demo-image.tar

# A `docker save` archive of a busybox image, built locally.
demo-image: rootfs
	$(PYTHON) tools/make-demo-image $(DEMO_ROOTFS) $(DEMO_IMAGE) capsa-demo:latest

# Loads the demo image into the image store and runs a command in a microVM
# booted from it, by name.
demo: build kernel demo-image
	$(BUILD)/capsa load -i $(DEMO_IMAGE)
	$(WITH_KVM) -- $(BUILD)/capsa run capsa-demo \
		/bin/sh -c 'echo "Hello from a capsa microVM: $$(uname -sr), $$(nproc) vCPU, $$(hostname), user $$(id -un)"'

$(TEST_BUILD)/build.ninja:
	meson setup $(TEST_BUILD) --werror -Db_sanitize=address,undefined -Db_lundef=false

FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 30

# Unit tests (no KVM, ASan+UBSan), a bounded fuzzing run, integration tests
# against a local registry (no KVM), then end-to-end tests (real guests, all
# in one tools/with-kvm call).
test: unit fuzz integration e2e

unit: deps $(TEST_BUILD)/build.ninja
	ninja -C $(TEST_BUILD)
	meson test -C $(TEST_BUILD) --print-errorlogs

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) --werror -Dfuzzing=true -Dtests=false -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link

fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	tests/fuzz/run $(FUZZ_BUILD) $(FUZZ_SECONDS)

integration: build
	$(PYTHON) -m pytest -v --durations=10 tests/integration

# tests/e2e/run runs the suite through tools/with-kvm. The emulated host now and
# then crashes or freezes; the runner then goes on in a new nested VM with the
# tests that had not finished. Test failures are never retried.
E2E_ARGS ?= -v --durations=10 tests/e2e

e2e: build kernel
	$(PYTHON) tests/e2e/run -- $(E2E_ARGS)

bench: build kernel rootfs demo-image
	$(WITH_KVM) -- $(PYTHON) bench/boot
	$(WITH_KVM) -- $(PYTHON) bench/exec
	$(WITH_KVM) -- $(PYTHON) bench/restore
	$(WITH_KVM) -- $(PYTHON) bench/net/run
	$(WITH_KVM) -- $(PYTHON) bench/fs
	$(PYTHON) bench/pull

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD)
