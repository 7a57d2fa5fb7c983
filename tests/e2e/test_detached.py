"""VMs that keep running: capsa run -d, then exec, ps, logs, cp, stop and rm
against them, all through the VM's state directory.

Boots are expensive under emulation, so the whole module shares two VMs
started side by side: one for the lifecycle (used by the tests in order and
stopped by the last of them), and one whose VM process gets killed."""

import hashlib
import os
import re
import secrets
import signal
import subprocess
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
    """Starts `run -d`; returns the Popen (stdout and stderr are pipes)."""
    return ctl.popen("run", "-d", "--name", name, "--rootfs", rootfs, "--", *WORKLOAD,
                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish_start(proc, args):
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"capsa run -d did not return within {RUN_TIMEOUT:.0f} s: {err[-2000:]!r}")
    return Result(args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def ctl(capsa_bin, vm_env, tmp_path_factory):
    env = dict(vm_env)
    env["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("runtime"))
    os.chmod(env["XDG_RUNTIME_DIR"], 0o700)
    return Detached(capsa_bin, env)


@pytest.fixture(scope="module")
def started(ctl, rootfs):
    """Both VMs of the module, booted in parallel: {name: Result of run -d}."""
    procs = {name: start_detached(ctl, name, rootfs) for name in ("lifecycle", "victim")}
    results = {name: finish_start(proc, ["run", "-d", "--name", name]) for name, proc in procs.items()}
    yield results
    # Whatever the tests left running.
    for name in results:
        ctl("rm", "-f", name)


@pytest.fixture(scope="module")
def vm(started):
    """The lifecycle VM's id."""
    result = started["lifecycle"]
    assert result.returncode == 0, result
    return result.stdout.strip()


def test_run_detached_prints_the_id(started, ctl):
    result = started["lifecycle"]
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

    result = ctl("rm", vm)
    assert result.returncode == 0, result
    assert vm not in ctl.ps_rows("-a")
    assert not (ctl.runtime_dir / vm).exists()


def test_killed_vm_process_shows_as_dead(ctl, started):
    result = started["victim"]
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
