"""Snapshots: baking, automatic snapshots on first run, restoring (with the
workload's settings applied afterwards), live snapshots of a running
workload, clones that share one snapshot without seeing each other's
writes, the clock and the random number generator of restored guests, and
damaged snapshots that must fail cleanly.

Every test here restores; boots happen only where a snapshot is baked. A
restore is a few seconds under emulation, a boot several more."""

import hashlib
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import CAPSA_FAILURE, RUN_TIMEOUT, run_capsa

CYCLES = int(os.environ.get("CAPSA_E2E_SNAPSHOT_CYCLES", "100"))
CLONES = 10


class Ctl:
    """Runs capsa with this module's own data and runtime directories."""

    def __init__(self, capsa_bin, env):
        self.bin = capsa_bin
        self.env = env
        self.snapshots = Path(env["XDG_DATA_HOME"]) / "capsa" / "snapshots"

    def __call__(self, *args, timeout=RUN_TIMEOUT):
        return run_capsa(self.bin, [str(a) for a in args], env=self.env, timeout=timeout)


@pytest.fixture(scope="module")
def ctl(capsa_image, image_env, capsa_bin, tmp_path_factory):
    env = dict(image_env)
    env["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("snapshot-data"))
    env["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("snapshot-runtime"))
    os.chmod(env["XDG_RUNTIME_DIR"], 0o700)
    return Ctl(capsa_bin, env)


@pytest.fixture(scope="module")
def image(ctl, test_images):
    ref = f"oci:{test_images['busybox']}:latest"
    pulled = ctl("pull", "-q", ref)
    assert pulled.returncode == 0, pulled
    return ref


@pytest.fixture(scope="module")
def baked(ctl, image):
    """A snapshot of the busybox image, baked with a warm-up command."""
    result = ctl("bake", "--name", "base", "--warmup", "echo warm > /warm", image)
    assert result.returncode == 0, result
    assert result.stdout.strip() == "base", result
    return "base"


def booted(result):
    """Whether the run booted a kernel (its messages are on stderr with
    --console) rather than restoring a snapshot, whose guest booted long ago."""
    return "Linux version" in result.stderr


def file_digests(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(directory).iterdir())}


def test_bake_then_run_restores_the_snapshot(ctl, baked):
    listed = ctl("snapshots", "ls")
    assert listed.returncode == 0, listed
    assert any(line.split()[0] == "base" for line in listed.stdout.splitlines()[1:]), listed
    # The warm-up command ran before the snapshot: its file is in it.
    result = ctl("run", "--console", baked, "cat", "/warm")
    assert result.returncode == 0, result
    assert result.stdout == "warm\n", result
    assert not booted(result), result


def test_run_bakes_on_first_use_and_restores_afterwards(ctl, image):
    first = ctl("run", "--console", "-m", "320M", image, "echo", "first")
    assert first.returncode == 0 and first.stdout == "first\n", first
    assert booted(first), first
    autos = [p.name for p in ctl.snapshots.iterdir() if p.name.startswith("auto-")]
    assert len(autos) == 1, autos
    second = ctl("run", "--console", "-m", "320M", image, "echo", "second")
    assert second.returncode == 0 and second.stdout == "second\n", second
    assert not booted(second), "the second run booted instead of restoring"
    # --no-snapshot boots, and leaves the snapshots alone.
    cold = ctl("run", "--console", "--no-snapshot", "-m", "320M", image, "echo", "cold")
    assert cold.returncode == 0 and cold.stdout == "cold\n", cold
    assert booted(cold), cold
    assert [p.name for p in ctl.snapshots.iterdir() if p.name.startswith("auto-")] == autos


def test_workload_settings_apply_to_a_restored_guest(ctl, baked):
    result = ctl("run", "-e", "GREETING=restored", "-w", "/tmp", "-u", "1000:50", "--hostname", "clone-1", baked,
                 "sh", "-c", 'echo "$GREETING"; pwd; id -u; id -g; hostname; echo "$HOSTNAME"')
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == ["restored", "/tmp", "1000", "50", "clone-1", "clone-1"], result


def test_exit_status_and_stderr_of_a_restored_workload(ctl, baked):
    result = ctl("run", baked, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert result.returncode == 7, result
    assert result.stdout == "out\n", result
    assert result.stderr == "err\n", result


def test_clock_is_set_after_restore(ctl, baked):
    time.sleep(3)  # the snapshot's clock falls behind while it sits on disk
    before = time.time()
    result = ctl("run", baked, "date", "+%s")
    after = time.time()
    assert result.returncode == 0, result
    guest = int(result.stdout.strip())
    # date +%s truncates: allow the whole second it names, and 1 s either side.
    assert before - 1 <= guest + 0.999 and guest <= after + 1, (before, guest, after)


def test_random_numbers_differ_between_clones(ctl, baked):
    reads = [ctl("run", baked, "sh", "-c", "head -c 32 /dev/urandom | od -An -tx1") for _ in range(2)]
    for r in reads:
        assert r.returncode == 0, r
        assert len(r.stdout.split()) == 32, r
    assert reads[0].stdout != reads[1].stdout, reads


def test_live_snapshot_keeps_a_counting_process_counting(ctl, image):
    counter = ("i=0; exec 3>/tmp/count.log; "
               "while true; do i=$((i+1)); echo $i >&3; echo $i > /tmp/last; sleep 0.2; done")
    started = ctl("run", "-d", "--name", "counter", image, "sh", "-c", counter)
    assert started.returncode == 0, started
    try:
        time.sleep(2)
        saved = ctl("snapshot", "counter", "counting")
        assert saved.returncode == 0, saved
        at_snapshot = int(ctl("exec", "counter", "cat", "/tmp/last").stdout)
    finally:
        ctl("stop", "counter")
        ctl("rm", "-f", "counter")
    listed = ctl("snapshots", "ls")
    row = [line for line in listed.stdout.splitlines() if line.startswith("counting ")]
    assert row and "running" in row[0], listed

    restored = ctl("run", "-d", "--name", "counter2", "counting")
    assert restored.returncode == 0, restored
    try:
        time.sleep(2)
        last = int(ctl("exec", "counter2", "cat", "/tmp/last").stdout)
        log = ctl("exec", "counter2", "cat", "/tmp/count.log")
    finally:
        ctl("stop", "counter2")
        ctl("rm", "-f", "counter2")
    # The shell's variable (memory) and its open file (fd 3) carried on: the
    # log counts on from where it was, with no number missing or repeated.
    assert last > at_snapshot, (at_snapshot, last)
    numbers = [int(n) for n in log.stdout.split()]
    assert numbers == list(range(1, len(numbers) + 1)), numbers[:20]
    assert numbers[-1] >= last


def test_concurrent_clones_do_not_see_each_others_writes(ctl, baked):
    before = file_digests(ctl.snapshots / baked)
    names = [f"clone{i}" for i in range(CLONES)]

    def start(name):
        return ctl("run", "-d", "--name", name, baked, "sleep", "1000")

    def write_and_list(name):
        return ctl("exec", name, "sh", "-c", f"echo {name} > /mark-{name}; sync; ls / | grep '^mark-'; cat /warm")

    try:
        with ThreadPoolExecutor(max_workers=CLONES) as pool:
            started = list(pool.map(start, names))
        for r in started:
            assert r.returncode == 0, r
        with ThreadPoolExecutor(max_workers=CLONES) as pool:
            seen = list(pool.map(write_and_list, names))
    finally:
        for name in names:
            ctl("rm", "-f", name)
    for name, r in zip(names, seen):
        assert r.returncode == 0, r
        assert r.stdout.splitlines() == [f"mark-{name}", "warm"], r
    assert file_digests(ctl.snapshots / baked) == before, "restoring changed the snapshot's files"


def test_repeated_restore_and_exec_at_two_vcpus(ctl, image):
    # --console: if the guest does not come up, its kernel log is in the failure message.
    baked = ctl("bake", "--console", "--name", "two-cpus", "-c", "2", image)
    assert baked.returncode == 0, baked
    failures = []
    for i in range(CYCLES):
        r = ctl("run", "two-cpus", "sh", "-c", f"echo cycle {i} $(nproc)")
        if r.returncode != 0 or r.stdout != f"cycle {i} 2\n":
            failures.append(r)
    assert not failures, f"{len(failures)} of {CYCLES} cycles failed; first: {failures[0]!r}"


def test_two_clones_publish_one_guest_port_on_two_host_ports(ctl, baked):
    from test_network import free_port, http_get
    clones = {"web0": free_port(), "web1": free_port()}
    try:
        for name, port in clones.items():
            server = f"mkdir -p /www && echo {name} > /www/index.html && exec httpd -f -p 80 -h /www"
            started = ctl("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", baked, "sh", "-c", server)
            assert started.returncode == 0, started
        for name, port in clones.items():
            assert http_get(port, "/index.html") == f"{name}\n"
    finally:
        for name in clones:
            ctl("rm", "-f", name)


def test_bake_with_ready_port_snapshots_a_listening_server(ctl, image):
    from test_network import free_port, http_get
    server = "mkdir -p /www && echo ready > /www/index.html && exec httpd -f -p 80 -h /www"
    baked = ctl("bake", "--name", "web", "--ready-port", "80", image, "sh", "-c", server)
    assert baked.returncode == 0, baked
    port = free_port()
    started = ctl("run", "-d", "--name", "web-clone", "-p", f"127.0.0.1:{port}:80", "web")
    try:
        assert started.returncode == 0, started
        assert http_get(port, "/index.html", attempts=4) == "ready\n"
    finally:
        ctl("rm", "-f", "web-clone")
    with_command = ctl("run", "web", "echo", "hi")
    assert with_command.returncode == CAPSA_FAILURE, with_command
    assert "takes no command" in with_command.stderr, with_command


def copy_snapshot(ctl, name, copy):
    # The memory file is sparse: keep it so (a dense copy writes all of the guest's RAM).
    subprocess.run(["cp", "-r", "--sparse=always", str(ctl.snapshots / name), str(ctl.snapshots / copy)], check=True)
    info = (ctl.snapshots / copy / "info.json").read_text()
    (ctl.snapshots / copy / "info.json").write_text(info.replace(f'"{name}"', f'"{copy}"'))


def test_corrupted_state_fails_cleanly(ctl, baked):
    copy_snapshot(ctl, baked, "damaged-state")
    state = ctl.snapshots / "damaged-state" / "state"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xff
    state.write_bytes(bytes(data))
    result = ctl("run", "damaged-state", "true")
    assert result.returncode == CAPSA_FAILURE, result
    assert "checksum" in result.stderr and len(result.stderr.splitlines()) == 1, result


def test_truncated_memory_fails_cleanly(ctl, baked):
    copy_snapshot(ctl, baked, "damaged-memory")
    memory = ctl.snapshots / "damaged-memory" / "memory"
    os.truncate(memory, memory.stat().st_size // 2)
    result = ctl("run", "damaged-memory", "true")
    assert result.returncode == CAPSA_FAILURE, result
    assert "damaged" in result.stderr and len(result.stderr.splitlines()) == 1, result


def test_missing_state_fails_cleanly(ctl, baked):
    copy_snapshot(ctl, baked, "missing-state")
    (ctl.snapshots / "missing-state" / "state").unlink()
    result = ctl("run", "missing-state", "true")
    assert result.returncode == CAPSA_FAILURE, result
    assert "state" in result.stderr and len(result.stderr.splitlines()) == 1, result


def test_snapshots_rm(ctl, baked):
    copy_snapshot(ctl, baked, "to-remove")
    removed = ctl("snapshots", "rm", "to-remove")
    assert removed.returncode == 0, removed
    assert not (ctl.snapshots / "to-remove").exists()
    again = ctl("snapshots", "rm", "to-remove")
    assert again.returncode == CAPSA_FAILURE and "no snapshot named" in again.stderr, again


def test_vm_with_a_shared_directory_is_not_snapshotted(ctl, image, tmp_path):
    started = ctl("run", "-d", "--name", "shared", "-v", f"{tmp_path}:/shared", image, "sleep", "1000")
    assert started.returncode == 0, started
    try:
        refused = ctl("snapshot", "shared", "never")
    finally:
        ctl("rm", "-f", "shared")
    assert refused.returncode == CAPSA_FAILURE, refused
    assert "shared directories" in refused.stderr, refused
    assert not (ctl.snapshots / "never").exists()
