"""VMs that keep running: capsa run -d, then exec, ps, logs, cp, stop and rm
against them, all through the VM's state directory.

Boots are expensive under emulation, so the module boots two VMs, one after
the other: one for the lifecycle (used by the tests in order and stopped by
the last of them), and one whose VM process gets killed."""

import hashlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import CAPSA_FAILURE, RUN_TIMEOUT, Result, first_difference

STARTED_MARKER = "workload started"
STDERR_MARKER = "workload stderr"
# The workload prints a line on each stream and then waits to be stopped.
WORKLOAD = ["sh", "-c", f"echo '{STARTED_MARKER}'; echo '{STDERR_MARKER}' >&2; exec sleep 1000"]


class Detached:
    """Runs capsa with the module's environment (its own XDG_RUNTIME_DIR)."""

    def __init__(self, capsa_bin, env):
        self.bin = capsa_bin
        self.env = env
        self.runtime_dir = Path(env["XDG_RUNTIME_DIR"]) / "capsa"

    def argv(self, args):
        return [str(self.bin)] + [str(a) for a in args]

    def __call__(self, *args, input=None, timeout=RUN_TIMEOUT):
        argv = self.argv(args)
        try:
            proc = subprocess.run(argv, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"capsa did not finish within {timeout:.0f} s: {' '.join(argv)}\n"
                        f"stdout so far: {(e.stdout or b'')[-2000:]!r}\n"
                        f"stderr so far: {(e.stderr or b'')[-2000:]!r}")
        return Result(args, proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args, **kwargs):
        return subprocess.Popen(self.argv(args), env=self.env, **kwargs)

    def info(self, vm_id):
        """The VM's info file as a dict."""
        text = (self.runtime_dir / vm_id / "info").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def ps_rows(self, *options):
        """{id: line} of `capsa ps --no-trunc [options]`."""
        result = self("ps", "--no-trunc", *options)
        assert result.returncode == 0, result
        lines = result.stdout.splitlines()
        assert lines and lines[0].split()[:2] == ["ID", "NAME"], result
        return {line.split()[0]: line for line in lines[1:]}


def start_detached(ctl, name, rootfs):
    return ctl("run", "-d", "--name", name, "--rootfs", rootfs, "--", *WORKLOAD)


@pytest.fixture(scope="module")
def ctl(capsa_bin, vm_env, tmp_path_factory):
    env = dict(vm_env)
    env["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("runtime"))
    os.chmod(env["XDG_RUNTIME_DIR"], 0o700)
    return Detached(capsa_bin, env)


@pytest.fixture(scope="module")
def started(ctl, rootfs):
    """run -d of the lifecycle VM."""
    result = start_detached(ctl, "lifecycle", rootfs)
    yield result
    # Whatever the tests left running.
    ctl("rm", "-f", "lifecycle", "victim")


@pytest.fixture(scope="module")
def vm(started):
    """The lifecycle VM's id."""
    assert started.returncode == 0, started
    return started.stdout.strip()


def test_run_detached_prints_the_id(started, ctl):
    result = started
    assert result.returncode == 0, result
    assert re.fullmatch(r"[0-9a-f]{12}\n", result.stdout), result
    vm_id = result.stdout.strip()
    info = ctl.info(vm_id)
    assert info["id"] == vm_id and info["name"] == "lifecycle", info
    assert int(info["pid"]) > 0, info
    assert oct((ctl.runtime_dir / vm_id).stat().st_mode & 0o777) == "0o700"


def test_ps_shows_it_running(ctl, vm):
    rows = ctl.ps_rows()
    assert vm in rows, rows
    assert "lifecycle" in rows[vm] and rows[vm].endswith("running"), rows[vm]
    assert "sleep 1000" in rows[vm], rows[vm]
    quiet = ctl("ps", "-q")
    assert vm in quiet.stdout.split(), quiet


def test_the_name_is_taken(ctl, vm, rootfs):
    result = ctl("run", "-d", "--name", "lifecycle", "--rootfs", rootfs, "true")
    assert result.returncode == CAPSA_FAILURE, result
    assert "already used" in result.stderr and vm in result.stderr, result


def test_exec_echo(ctl, vm):
    result = ctl("exec", "lifecycle", "echo", "hi")
    assert result.returncode == 0, result
    assert result.stdout_bytes == b"hi\n", result


def test_exec_by_id_prefix(ctl, vm):
    result = ctl("exec", vm[:5], "echo", "prefix")
    assert result.returncode == 0 and result.stdout_bytes == b"prefix\n", result


def test_exec_stdout_and_stderr_are_separate(ctl, vm):
    result = ctl("exec", vm, "sh", "-c", "echo out; echo err >&2")
    assert result.returncode == 0, result
    assert result.stdout_bytes == b"out\n", result
    assert result.stderr_bytes == b"err\n", result


def test_exec_exit_status(ctl, vm):
    result = ctl("exec", vm, "sh", "-c", "exit 3")
    assert result.returncode == 3, result


def test_exec_missing_command(ctl, vm):
    result = ctl("exec", vm, "no-such-command")
    assert result.returncode == 127, result


def test_exec_env_workdir_user(ctl, vm):
    result = ctl("exec", "-e", "GREETING=hello there", "-w", "/tmp", "-u", "nobody", vm,
                 "sh", "-c", 'echo "$GREETING"; pwd; id -u')
    assert result.returncode == 0, result
    assert result.stdout == "hello there\n/tmp\n65534\n", result


def test_exec_tty_without_a_terminal(ctl, vm):
    result = ctl("exec", "-t", vm, "sh", "-c", "tty; echo err >&2")
    assert result.returncode == 0, result
    # One stream on a terminal: stderr arrives on stdout, with \r\n.
    assert re.match(r"/dev/pts/\d+\r\nerr\r\n$", result.stdout), result


def pipe_through_cat(ctl, vm, size):
    data = secrets.token_bytes(size)
    start = time.monotonic()
    result = ctl("exec", "-i", vm, "cat", input=data)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert len(result.stdout_bytes) == size, f"got {len(result.stdout_bytes)} bytes of {size}"
    assert hashlib.sha256(result.stdout_bytes).digest() == hashlib.sha256(data).digest(), \
        first_difference(result.stdout_bytes, data)
    return elapsed


def test_exec_stdin_through_cat(ctl, vm):
    elapsed = pipe_through_cat(ctl, vm, 1 << 20)
    # Under emulation 10 MiB can take minutes; only where 1 MiB was quick.
    if elapsed < 5:
        pipe_through_cat(ctl, vm, 10 << 20)


def test_exec_stdin_without_i_is_empty(ctl, vm):
    result = ctl("exec", vm, "cat", input=b"not for the guest")
    assert result.returncode == 0 and result.stdout_bytes == b"", result


def test_concurrent_execs(ctl, vm):
    def one(i):
        return ctl("exec", vm, "sh", "-c", f"echo start {i}; sleep 1; echo end {i}")
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    for i, result in enumerate(results):
        assert result.returncode == 0, result
        assert result.stdout == f"start {i}\nend {i}\n", result


def test_exec_forwards_sigterm(ctl, vm):
    proc = ctl.popen("exec", vm, "sh", "-c", "echo up; exec sleep 1000", stdin=subprocess.DEVNULL,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"up\n"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr


def test_exec_timeout_kills_and_says_so(ctl, vm):
    started = time.monotonic()
    result = ctl("exec", "--timeout", "2", vm, "sh", "-c", "echo before; sleep 1000")
    assert result.returncode == 128 + signal.SIGKILL, result
    assert result.stdout == "before\n", result
    assert "timeout" in result.stderr, result
    assert time.monotonic() - started < 120, result


def test_exec_output_into_a_closed_pipe(ctl, vm):
    # As `capsa exec VM yes | head -c 4` does: capsa ends like a writer on a
    # closed pipe, and the command in the guest is killed with it.
    proc = ctl.popen("exec", vm, "sh", "-c", "yes | head -c 3000000", stdin=subprocess.DEVNULL,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(4) == b"y\ny\n"
    proc.stdout.close()
    assert proc.wait(timeout=60) == 128 + signal.SIGPIPE, proc.stderr.read()
    proc.stderr.close()


def test_cp_round_trip(ctl, vm, tmp_path):
    data = bytes(range(256)) * 512 + secrets.token_bytes(100_000)
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    src.chmod(0o751)
    result = ctl("cp", src, f"{vm}:/tmp/blob.bin")
    assert result.returncode == 0, result
    check = ctl("exec", vm, "sh", "-c", "stat -c %a /tmp/blob.bin; sha256sum /tmp/blob.bin")
    assert check.returncode == 0, check
    mode, digest = check.stdout.split()[:2]
    assert mode == "751", check
    assert digest == hashlib.sha256(data).hexdigest(), check

    back = tmp_path / "back.bin"
    result = ctl("cp", "lifecycle:/tmp/blob.bin", back)
    assert result.returncode == 0, result
    assert back.read_bytes() == data, first_difference(back.read_bytes(), data)

    # Into a directory: under the file's own name; '-' is stdout.
    result = ctl("cp", f"{vm}:/tmp/blob.bin", tmp_path)
    assert result.returncode == 0 and (tmp_path / "blob.bin").read_bytes() == data, result
    result = ctl("cp", f"{vm}:/tmp/blob.bin", "-")
    assert result.returncode == 0 and result.stdout_bytes == data, result


def test_cp_from_stdin(ctl, vm):
    result = ctl("cp", "-", f"{vm}:/tmp/from-stdin", input=b"through stdin\n")
    assert result.returncode == 0, result
    check = ctl("exec", vm, "cat", "/tmp/from-stdin")
    assert check.stdout_bytes == b"through stdin\n", check


def test_cp_refuses_directories(ctl, vm, tmp_path):
    result = ctl("cp", tmp_path, f"{vm}:/tmp/")
    assert result.returncode == CAPSA_FAILURE, result
    assert "directory" in result.stderr and "regular files" in result.stderr, result
    result = ctl("cp", f"{vm}:/etc", tmp_path / "etc")
    assert result.returncode == CAPSA_FAILURE, result
    assert len(result.stderr.splitlines()) == 1, result
    assert not (tmp_path / "etc").exists()


def test_cp_missing_guest_file(ctl, vm, tmp_path):
    result = ctl("cp", f"{vm}:/no/such/file", tmp_path / "x")
    assert result.returncode == CAPSA_FAILURE, result
    assert not (tmp_path / "x").exists()
    assert [p.name for p in tmp_path.iterdir()] == [], "a temporary file was left behind"


def test_logs_show_the_workload_output(ctl, vm):
    result = ctl("logs", "lifecycle")
    assert result.returncode == 0, result
    assert STARTED_MARKER in result.stdout and STDERR_MARKER in result.stdout, result


def test_unknown_vm(ctl, vm):
    for args in (("exec", "no-such-vm", "true"), ("logs", "no-such-vm"), ("stop", "no-such-vm"),
                 ("rm", "no-such-vm"), ("cp", "no-such-vm:/etc/passwd", "-")):
        result = ctl(*args)
        assert result.returncode == CAPSA_FAILURE, result
        assert result.stderr == "capsa: no VM 'no-such-vm'; 'capsa ps -a' lists them\n", result


def test_rm_refuses_a_running_vm(ctl, vm):
    result = ctl("rm", vm)
    assert result.returncode == CAPSA_FAILURE, result
    assert "stop it first or use rm -f" in result.stderr, result


def test_stop_then_rm(ctl, vm):
    # logs -f follows until the VM is gone.
    follower = ctl.popen("logs", "-f", vm, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    result = ctl("stop", "lifecycle")
    assert result.returncode == 0 and result.stdout == "lifecycle\n", result
    try:
        out, err = follower.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        follower.kill()
        pytest.fail("capsa logs -f did not end after the VM stopped")
    assert follower.returncode == 0 and STARTED_MARKER.encode() in out, (out, err)

    rows = ctl.ps_rows("-a")
    # sleep ended by SIGTERM.
    assert rows[vm].endswith(f"exited ({128 + signal.SIGTERM})"), rows[vm]
    assert vm not in ctl.ps_rows()
    assert not (ctl.runtime_dir / vm / "control.sock").exists()
    result = ctl("exec", vm, "true")
    assert result.returncode == CAPSA_FAILURE and "not running" in result.stderr, result

    # The VM's process reports its own errors (and sanitizer findings in
    # test builds) there.
    console = (ctl.runtime_dir / vm / "console.log").read_text(errors="replace")
    assert "Sanitizer" not in console, console[-5000:]

    result = ctl("rm", vm)
    assert result.returncode == 0, result
    assert vm not in ctl.ps_rows("-a")
    assert not (ctl.runtime_dir / vm).exists()


def test_killed_vm_process_shows_as_dead(ctl, rootfs):
    # After the lifecycle VM has ended: two guests booting at once under
    # nested emulation have been seen to hang the emulated host.
    result = start_detached(ctl, "victim", rootfs)
    assert result.returncode == 0, result
    vm_id = result.stdout.strip()
    pid = int(ctl.info(vm_id)["pid"])
    assert ctl.ps_rows()[vm_id].endswith("running")

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while vm_id in ctl.ps_rows() and time.monotonic() < deadline:
        time.sleep(0.2)
    rows = ctl.ps_rows("-a")
    assert rows[vm_id].endswith("dead"), rows[vm_id]
    assert not (ctl.runtime_dir / vm_id / "control.sock").exists(), "ps left the stale control socket"

    result = ctl("rm", "victim")
    assert result.returncode == 0, result
    assert not (ctl.runtime_dir / vm_id).exists()


# ---- state handling, with a stand-in for the VM's process (no guest boots) ----

FAKE_VMM = r"""
import fcntl, os, signal, sys, time
state_dir, name, on_term = sys.argv[1:4]
os.makedirs(state_dir, mode=0o700)
lock = os.open(os.path.join(state_dir, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(lock, fcntl.LOCK_EX)
with open(os.path.join(state_dir, "info"), "w") as f:
    f.write(f"id={os.path.basename(state_dir)}\nname={name}\nimage=fake\ncommand=sleep 1000\n"
            f"created={int(time.time())}\npid={os.getpid()}\n")
open(os.path.join(state_dir, "control.sock"), "w").close()  # no agent behind it
with open(os.path.join(state_dir, "log.1"), "w") as f:
    f.write("older\n")
with open(os.path.join(state_dir, "log"), "w") as f:
    f.write("newer\n")
def record_exit(*_):
    with open(os.path.join(state_dir, "exit"), "w") as f:
        f.write("143\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, record_exit if on_term == "exit" else signal.SIG_IGN)
print("ready", flush=True)
for i in range(600):
    time.sleep(0.1)
    if os.path.exists(os.path.join(state_dir, "rotate-now")):
        os.unlink(os.path.join(state_dir, "rotate-now"))
        os.rename(os.path.join(state_dir, "log"), os.path.join(state_dir, "log.1"))
        with open(os.path.join(state_dir, "log"), "w") as f:
            f.write("after rotation\n")
    if os.path.exists(os.path.join(state_dir, "finish-now")):
        record_exit()
"""


@pytest.fixture
def fake(capsa_bin, tmp_path):
    """Starts stand-ins for VM processes: fake(id, name, on_term) -> Popen."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    (runtime / "capsa").mkdir(mode=0o700)
    ctl = Detached(capsa_bin, dict(os.environ, XDG_RUNTIME_DIR=str(runtime)))
    procs = []

    def start(vm_id, name, on_term="exit"):
        proc = subprocess.Popen([sys.executable, "-c", FAKE_VMM, str(ctl.runtime_dir / vm_id), name, on_term],
                                stdout=subprocess.PIPE)
        procs.append(proc)
        assert proc.stdout.readline() == b"ready\n"
        return proc
    start.ctl = ctl
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_fake_stop_falls_back_to_signals(fake):
    ctl = fake.ctl
    polite = fake("aaaaaaaaaaa1", "polite", "exit")
    stubborn = fake("aaaaaaaaaab2", "stubborn", "ignore")
    # No agent answers on these control sockets: stop signals the process.
    result = ctl("stop", "polite")
    assert result.returncode == 0 and result.stdout == "polite\n", result
    assert polite.wait(timeout=10) == 0
    start = time.monotonic()
    result = ctl("stop", "-t", "1", "stubborn")
    assert result.returncode == 0, result
    assert 1 <= time.monotonic() - start < 10
    assert stubborn.wait(timeout=10) == -signal.SIGKILL
    rows = ctl.ps_rows("-a")
    assert rows["aaaaaaaaaaa1"].endswith("exited (143)"), rows
    assert rows["aaaaaaaaaab2"].endswith("exited (137)"), rows
    assert not (ctl.runtime_dir / "aaaaaaaaaaa1" / "control.sock").exists()
    assert ctl.ps_rows() == {}
    result = ctl("rm", "polite", "aaaaaaaaaab")
    assert result.returncode == 0, result
    assert ctl.ps_rows("-a") == {}


def test_fake_ids_names_and_prefixes(fake):
    ctl = fake.ctl
    fake("abcabcabcab1", "one")
    fake("abcabcabcab2", "")
    result = ctl("logs", "abc")
    assert result.returncode == CAPSA_FAILURE, result
    assert result.stderr == "capsa: 'abc' matches 2 VMs; give more of the id\n", result
    result = ctl("logs", "abcabcabcab2")
    assert result.returncode == 0 and result.stdout == "older\nnewer\n", result
    result = ctl("logs", "one")
    assert result.returncode == 0 and result.stdout == "older\nnewer\n", result
    result = ctl("ps", "-q")
    assert sorted(result.stdout.split()) == ["abcabcabcab1", "abcabcabcab2"], result
    result = ctl("rm", "-f", "one", "abcabcabcab2")
    assert result.returncode == 0, result
    assert ctl.ps_rows("-a") == {}


def test_fake_logs_follow_across_rotation(fake):
    ctl = fake.ctl
    fake("fafafafafafa", "f")
    follower = ctl.popen("logs", "-f", "f", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1)
    (ctl.runtime_dir / "fafafafafafa" / "rotate-now").touch()
    time.sleep(1)
    (ctl.runtime_dir / "fafafafafafa" / "finish-now").touch()
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err
    assert out == b"older\nnewer\nafter rotation\n", out


def test_fake_dead_vm(fake):
    ctl = fake.ctl
    proc = fake("dededededede", "dead-one")
    proc.kill()
    proc.wait()
    rows = ctl.ps_rows("-a")
    assert rows["dededededede"].endswith("dead"), rows
    assert not (ctl.runtime_dir / "dededededede" / "control.sock").exists()
    result = ctl("exec", "dead-one", "true")
    assert result.returncode == CAPSA_FAILURE, result
    assert result.stderr.startswith("capsa: VM 'dead-one' is not running (dead)"), result
    result = ctl("rm", "dead-one")
    assert result.returncode == 0, result
    assert not (ctl.runtime_dir / "dededededede").exists()


@pytest.mark.parametrize("args, message", [
    (["run", "--name", "x", "--rootfs", "/", "true"], "--name names a detached VM: add -d"),
    (["run", "-d", "--name", "-bad", "--rootfs", "/", "true"], "is not a valid name"),
    (["run", "-d", "-it", "--rootfs", "/", "true"], "run -d cannot be combined with -i or -t"),
    (["exec", "only-a-vm"], "exec needs a command"),
    (["cp", "a", "b"], "cp needs one side in a VM"),
    (["cp", "x:relative", "b"], "must be absolute"),
    (["stop", "-t", "soon", "x"], "is not a number of seconds"),
])
def test_option_errors(cli, args, message):
    result = cli(*args)
    assert result.returncode == CAPSA_FAILURE, result
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result


@pytest.mark.parametrize("verb", ["exec", "ps", "logs", "stop", "rm", "cp"])
def test_verb_help(cli, verb):
    result = cli(verb, "--help")
    assert result.returncode == 0 and result.stdout.startswith(f"Usage: capsa {verb}"), result
