"""capsa run -i and -t: the workload gets this process's stdin and, with -t,
a terminal of this terminal's size; the VM ends with the workload."""

import fcntl
import hashlib
import os
import pty
import select
import struct
import subprocess
import termios
import time

from conftest import RUN_TIMEOUT


def test_run_i_pipes_stdin_through(capsa_bin, vm_env, rootfs):
    data = os.urandom(256 * 1024)
    proc = subprocess.run([str(capsa_bin), "run", "-i", "--rootfs", str(rootfs), "--", "sh", "-c",
                           "sha256sum; echo done >&2; exit 4"],
                          input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=vm_env,
                          timeout=RUN_TIMEOUT)
    assert proc.returncode == 4, proc
    assert proc.stdout.decode().split()[0] == hashlib.sha256(data).hexdigest(), proc
    assert proc.stderr == b"done\n", proc


def read_until(fd, marker, deadline):
    out = b""
    while marker not in out:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in time; got {out!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:   # EIO: the other side closed
            break
        if not chunk:
            break
        out += chunk
    return out


def test_run_it_gets_a_terminal_of_our_size(capsa_bin, vm_env, rootfs):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = subprocess.Popen([str(capsa_bin), "run", "-it", "--rootfs", str(rootfs), "--", "sh", "-c",
                             "tty; stty size; read line; echo got $line; exit 6"],
                            stdin=slave, stdout=slave, stderr=slave, env=vm_env, start_new_session=True)
    os.close(slave)
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        out = read_until(master, b"33 101", deadline)
        os.write(master, b"hello\r")
        out += read_until(master, b"got hello", deadline)
        assert proc.wait(timeout=max(1, deadline - time.monotonic())) == 6, out
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    text = out.decode(errors="replace")
    assert "/dev/pts/" in text, text
    assert "33 101" in text, text
