"""Shared setup for capsa's end-to-end tests.

These tests boot real microVMs, so they need a /dev/kvm backed by hardware
virtualization. Run the whole suite in one go through tools/with-kvm, which
provides one where the host does not:

    tools/with-kvm -- /usr/bin/python3 -m pytest -v tests/e2e    (or: make e2e)

Environment:
    CAPSA_BIN          capsa binary to test (default: build/capsa in the repository)
    CAPSA_KERNEL       guest kernel (default: the one guest/kernel/build.sh caches)
    CAPSA_E2E_TIMEOUT  seconds one capsa run may take (default 300; emulated
                       hardware is tens of times slower than real hardware)
"""

import os
import secrets
import shutil
import sys
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = float(os.environ.get("CAPSA_E2E_TIMEOUT", "300"))
# capsa's own errors (bad options, missing files, VM failures).
CAPSA_FAILURE = 125
# Written into the session's root filesystem before its first use, so tests
# can check that a file read in the guest is exactly the one on the host.
ROOTFS_MARKER_PATH = "etc/capsa-e2e-marker"
ROOTFS_BINARY_PATH = "etc/capsa-e2e-binary"

HOW_TO_RUN = ("run the end-to-end tests through tools/with-kvm, which provides hardware KVM: "
              "tools/with-kvm -- /usr/bin/python3 -m pytest -v tests/e2e (or make e2e)")


class Result:
    """What one capsa invocation did: exit status, stdout and stderr (bytes)."""

    def __init__(self, args, returncode, stdout, stderr):
        self.args = args
        self.returncode = returncode
        self.stdout_bytes = stdout
        self.stderr_bytes = stderr

    @property
    def stdout(self):
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def stderr(self):
        return self.stderr_bytes.decode("utf-8", "replace")

    def __repr__(self):
        # Shown by pytest when an assertion on a Result fails.
        def clip(data):
            return data if len(data) <= 2000 else data[:1000] + b"\n[...]\n" + data[-1000:]
        return (f"<capsa {' '.join(map(str, self.args))}\n exit status: {self.returncode}\n"
                f" stdout: {clip(self.stdout_bytes)!r}\n stderr: {clip(self.stderr_bytes)!r}>")


def find_capsa_bin():
    return Path(os.environ.get("CAPSA_BIN") or REPO_ROOT / "build" / "capsa")


def find_kernel():
    """The kernel capsa would pick by default (see src/cli/guest_files.c)."""
    if os.environ.get("CAPSA_KERNEL"):
        return Path(os.environ["CAPSA_KERNEL"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "capsa" / "kernel" / "vmlinux"


def kvm_problem():
    """Why guests cannot boot here, or None if /dev/kvm looks usable."""
    if os.path.exists("/sys/module/kvm_pvm"):
        return ("/dev/kvm on this machine is kvm-pvm (software, no VMX/SVM), which cannot boot "
                "a normal Linux guest")
    if not os.path.exists("/dev/kvm"):
        return "/dev/kvm does not exist"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not readable and writable by this user"
    return None


def run_capsa(capsa_bin, args, env=None, timeout=RUN_TIMEOUT):
    """Runs capsa with args; stdin is /dev/null, output is captured."""
    argv = [str(capsa_bin)] + [str(a) for a in args]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"capsa did not finish within {timeout:.0f} s: {' '.join(argv)}\n"
                    f"stdout so far: {(e.stdout or b'')[-2000:]!r}\nstderr so far: {(e.stderr or b'')[-2000:]!r}")
    return Result(args, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def capsa_bin():
    path = find_capsa_bin()
    if not os.access(path, os.X_OK):
        pytest.fail(f"capsa binary {path} is missing: build it with 'make build' (or set CAPSA_BIN)",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def cli(capsa_bin):
    """Runs capsa without needing a VM to boot (option parsing and errors)."""
    def run(*args, timeout=60):
        return run_capsa(capsa_bin, args, timeout=timeout)
    return run


@pytest.fixture(scope="session")
def kernel():
    path = find_kernel()
    if not path.is_file():
        pytest.fail(f"guest kernel {path} is missing: build it with 'make kernel' "
                    "(guest/kernel/build.sh) or set CAPSA_KERNEL", pytrace=False)
    return path.resolve()


@pytest.fixture(scope="session")
def kvm():
    """Fails (never skips) the tests that boot guests where none can boot."""
    problem = kvm_problem()
    if problem:
        pytest.fail(f"cannot boot guests: {problem}; {HOW_TO_RUN}", pytrace=False)


@pytest.fixture(scope="session")
def vm_env(kvm, kernel, tmp_path_factory):
    """Environment for capsa runs that boot a guest. Root images are cached in
    a directory of this session's own, so runs never depend on what an
    earlier session left."""
    env = dict(os.environ)
    env["CAPSA_KERNEL"] = str(kernel)
    env["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("capsa-cache"))
    return env


def make_busybox_rootfs(path):
    tool = REPO_ROOT / "tools" / "make-busybox-rootfs"
    proc = subprocess.run([str(tool), str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"{tool} failed ({proc.returncode}): {proc.stdout.decode(errors='replace')}", pytrace=False)


@pytest.fixture(scope="session")
def rootfs_markers():
    """Contents of the files added to the session root filesystem: a line of
    random text and random bytes covering every byte value."""
    binary = bytearray(range(256)) * 4 + secrets.token_bytes(3072)
    return {
        ROOTFS_MARKER_PATH: f"capsa-e2e {secrets.token_hex(16)}\n".encode(),
        ROOTFS_BINARY_PATH: bytes(binary),
    }


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory, rootfs_markers):
    """A busybox root filesystem shared by the session. Tests must not change
    it; use rootfs_copy for that."""
    path = tmp_path_factory.mktemp("rootfs") / "busybox"
    make_busybox_rootfs(path)
    for rel, data in rootfs_markers.items():
        (path / rel).write_bytes(data)
    return path


@pytest.fixture
def rootfs_copy(rootfs, tmp_path):
    """A private copy of the session root filesystem that a test may change."""
    path = tmp_path / "rootfs"
    shutil.copytree(rootfs, path, symlinks=True)
    return path


@pytest.fixture(scope="session")
def first_boot(vm_env, capsa_bin, rootfs):
    """The session's first guest: `echo hello`. It also builds the root image."""
    return run_capsa(capsa_bin, ["run", "--rootfs", rootfs, "--", "/bin/echo", "hello"], env=vm_env)


@pytest.fixture(scope="session")
def capsa(first_boot, vm_env, capsa_bin, rootfs):
    """capsa('run', ...) or, for the common case, capsa.run(CMD..., options=[...],
    rootfs=DIR): boots a guest and returns a Result.

    If the first boot already failed in capsa itself, every test that boots
    fails at once with its message instead of each waiting for a timeout."""
    if first_boot.returncode == CAPSA_FAILURE:
        pytest.fail(f"the first guest boot failed, so no guest test can pass: {first_boot.stderr.strip()}",
                    pytrace=False)

    class Capsa:
        def __call__(self, *args, timeout=RUN_TIMEOUT):
            return run_capsa(capsa_bin, args, env=vm_env, timeout=timeout)

        def run(self, *command, options=(), rootfs=rootfs, timeout=RUN_TIMEOUT):
            return self("run", "--rootfs", rootfs, *options, "--", *command, timeout=timeout)

    return Capsa()


def tree_snapshot(root):
    """Every path under root with its type, size, mode and mtime, to show that
    nothing on the host changed."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            snap[os.path.relpath(full, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return snap


def first_difference(got, want):
    """A short description of where two byte strings first differ."""
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return (f"first difference at byte {i}: got {got[max(0, i - 20):i + 20]!r}, "
                    f"want {want[max(0, i - 20):i + 20]!r}")
    return f"one is a prefix of the other: got {len(got)} bytes, want {len(want)}"


# ---- images -------------------------------------------------------------------

TESTS_DIR = REPO_ROOT / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


@pytest.fixture(scope="session")
def test_images():
    """{name: OCI layout dir} of the standard test images (tests/lib/testimages.py)."""
    from lib import testimages
    return testimages.build_all(testimages.default_cache_dir())


@pytest.fixture(scope="session")
def image_env(vm_env, tmp_path_factory):
    """vm_env with an image store of this session's own."""
    env = dict(vm_env)
    env["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("capsa-data"))
    env["DOCKER_CONFIG"] = str(tmp_path_factory.mktemp("docker-config"))
    return env


@pytest.fixture(scope="session")
def image_registry(test_images):
    """A docker-registry on 127.0.0.1 holding the test images as test/NAME:latest."""
    from lib import registry as registry_lib
    reg = registry_lib.Registry()
    reg.start()
    try:
        registry_lib.push_test_images(reg, test_images)
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def capsa_image(first_boot, image_env, capsa_bin):
    """capsa_image('run', ...) runs capsa with the session's image store."""
    if first_boot.returncode == CAPSA_FAILURE:
        pytest.fail(f"the first guest boot failed, so no guest test can pass: {first_boot.stderr.strip()}",
                    pytrace=False)

    def run(*args, timeout=RUN_TIMEOUT):
        return run_capsa(capsa_bin, args, env=image_env, timeout=timeout)
    return run
