"""Host directories shared with -v over virtio-fs: both sides see each
other's changes, :ro refuses writes, nothing outside the directory can be
reached through it, 100 MiB files arrive intact both ways, and fsx's random
operations find the mount consistent. (Host changes seen by a running
guest, and guest chmod/chown seen by the host: test_disks_persistent.py.)"""

import hashlib
import os
import secrets
import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def share(tmp_path):
    d = tmp_path / "share"
    d.mkdir()
    (d / "hello.txt").write_text("hello from the host\n")
    os.chmod(d / "hello.txt", 0o640)
    return d


def test_guest_lists_and_reads_host_files(capsa, share):
    result = capsa.run("sh", "-c", "ls /work; cat /work/hello.txt; stat -c %a /work/hello.txt",
                       options=["-v", f"{share}:/work"])
    assert result.returncode == 0, result
    assert result.stdout == "hello.txt\nhello from the host\n640\n", result


def test_guest_changes_reach_the_host(capsa, share):
    script = ("echo from-guest > /work/new.txt && mkdir /work/d && mv /work/hello.txt /work/d/ && "
              "ln -s d/hello.txt /work/link && rm /work/d/hello.txt && echo again > /work/d/hello.txt")
    result = capsa.run("sh", "-c", script, options=["-v", f"{share}:/work"])
    assert result.returncode == 0, result
    assert (share / "new.txt").read_text() == "from-guest\n"
    assert (share / "d" / "hello.txt").read_text() == "again\n"
    assert os.readlink(share / "link") == "d/hello.txt"
    assert not (share / "hello.txt").exists()


def test_large_file_checksum_both_ways(capsa, share):
    data = secrets.token_bytes(8 * 1024 * 1024)
    (share / "big.bin").write_bytes(data)
    result = capsa.run("sh", "-c", "sha256sum /work/big.bin; cp /work/big.bin /work/copy.bin",
                       options=["-v", f"{share}:/work"])
    assert result.returncode == 0, result
    assert result.stdout.split()[0] == hashlib.sha256(data).hexdigest(), result
    assert (share / "copy.bin").read_bytes() == data


def test_read_only_volume_refuses_writes(capsa, share):
    result = capsa.run("sh", "-c", "cat /work/hello.txt; echo x > /work/y",
                       options=["-v", f"{share}:/work:ro"])
    assert result.returncode != 0, result
    assert "hello from the host" in result.stdout, result
    assert "Read-only file system" in result.stderr, result
    assert not (share / "y").exists()


def test_symlinks_never_lead_out_of_the_share(capsa, share, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(f"host secret {secrets.token_hex(8)}\n")
    os.symlink("../secret.txt", share / "up")
    os.symlink(str(secret), share / "abs")
    result = capsa.run("sh", "-c", "cat /work/up; cat /work/abs; cat /work/../secret.txt; true",
                       options=["-v", f"{share}:/work"])
    assert result.returncode == 0, result
    assert "host secret" not in result.stdout, result


def test_bad_volume_spec_is_one_line(cli, tmp_path):
    result = cli("run", "-v", f"{tmp_path}", "--rootfs", tmp_path, "--", "true")
    assert result.returncode == 125, result
    assert result.stderr.count("\n") == 1 and "--volume" in result.stderr, result


FSX_SOURCE = Path(__file__).resolve().parent / "fsx.c"
BIG = 100 << 20


def build_fsx(dest):
    """tests/e2e/fsx.c, static so it runs on any guest root filesystem."""
    proc = subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-o", str(dest), str(FSX_SOURCE)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")


def test_100_mib_both_ways_and_fsx(capsa, share):
    """One boot: a 100 MiB host file checked in the guest, a 100 MiB guest
    file checked on the host, then fsx's random operations on the mount."""
    build_fsx(share / "fsx")
    host_hash = hashlib.sha256()
    with open(share / "host.bin", "wb") as f:
        for _ in range(BIG >> 20):
            chunk = secrets.token_bytes(1 << 20)
            host_hash.update(chunk)
            f.write(chunk)
    seed = secrets.randbelow(1 << 48)
    script = ("sha256sum /work/host.bin; "
              f"dd if=/dev/urandom of=/work/guest.bin bs=1M count={BIG >> 20} 2>/dev/null && "
              "sha256sum /work/guest.bin && "
              f"/work/fsx -N 3000 -S {seed} -l 0x40000 -o 0x8000 /work/fsx.file")
    result = capsa.run("sh", "-c", script, options=["-v", f"{share}:/work"])
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == host_hash.hexdigest(), result
    guest_hash = hashlib.sha256()
    with open(share / "guest.bin", "rb") as f:
        while chunk := f.read(1 << 20):
            guest_hash.update(chunk)
    assert (share / "guest.bin").stat().st_size == BIG
    assert lines[1].split()[0] == guest_hash.hexdigest(), result
    print("\n".join(line for line in lines if line.startswith("fsx:")))
    assert "fsx: all 3000 operations checked out" in result.stdout, result
