"""Host directories shared with -v over virtio-fs: both sides see each
other's changes, :ro refuses writes, and nothing outside the directory can
be reached through it."""

import hashlib
import os
import secrets

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
