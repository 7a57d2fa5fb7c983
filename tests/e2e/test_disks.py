"""--disk FILE attaches a raw virtio-blk disk (/dev/vdb, ...); writes reach
the host file unless it is attached :ro."""

import pytest

DISK_SIZE = 1024 * 1024
HOST_DATA = b"HOSTDATA"     # written by the host at offset 0, read by the guest
GUEST_DATA = b"capsa-guest-wrote-this"
GUEST_OFFSET = 4096


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.write(HOST_DATA)
        f.truncate(DISK_SIZE)
    return path


# Prints the first bytes of the disk, its size in 512-byte sectors, then
# tries to write GUEST_DATA at GUEST_OFFSET and prints dd's exit status.
GUEST_SCRIPT = (
    f"head -c {len(HOST_DATA)} /dev/vdb; echo; "
    "cat /sys/block/vdb/size; "
    f"printf %s {GUEST_DATA.decode()} | dd of=/dev/vdb bs={GUEST_OFFSET} seek=1 conv=notrunc,fsync; "
    'echo "dd=$?"'
)


def test_read_write_disk_persists_on_host(capsa, disk):
    result = capsa.run("sh", "-c", GUEST_SCRIPT, options=["--disk", disk])
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[:2] == [HOST_DATA.decode(), str(DISK_SIZE // 512)], result
    assert lines[2:] == ["dd=0"], result

    data = disk.read_bytes()
    assert len(data) == DISK_SIZE, "the disk file changed size"
    got = data[GUEST_OFFSET:GUEST_OFFSET + len(GUEST_DATA)]
    assert got == GUEST_DATA, f"the guest's write is not in the host file: {got!r}"
    assert data[:len(HOST_DATA)] == HOST_DATA
    rest = data[len(HOST_DATA):GUEST_OFFSET] + data[GUEST_OFFSET + len(GUEST_DATA):]
    assert rest == bytes(len(rest)), "bytes the guest did not write changed"


def test_read_only_disk_refuses_writes(capsa, disk):
    before = disk.read_bytes()
    result = capsa.run("sh", "-c", GUEST_SCRIPT, options=["--disk", f"{disk}:ro"])
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[:2] == [HOST_DATA.decode(), str(DISK_SIZE // 512)], result
    assert len(lines) == 3 and lines[2].startswith("dd=") and lines[2] != "dd=0", \
        f"writing to a read-only disk succeeded: {result}"
    assert disk.read_bytes() == before, "the read-only disk file changed"
