"""The root filesystem: read from the host directory's image, written to a
throwaway overlay that never reaches the host."""

from conftest import ROOTFS_BINARY_PATH, ROOTFS_MARKER_PATH, first_difference, tree_snapshot


def test_reads_file_from_root_image(capsa, rootfs_markers):
    result = capsa.run("cat", "/" + ROOTFS_MARKER_PATH)
    assert result.returncode == 0, result
    assert result.stdout_bytes == rootfs_markers[ROOTFS_MARKER_PATH], result


def test_binary_file_comes_back_byte_exact(capsa, rootfs_markers):
    # Every byte value, including \r, \n, NUL and terminal control characters.
    want = rootfs_markers[ROOTFS_BINARY_PATH]
    result = capsa.run("cat", "/" + ROOTFS_BINARY_PATH)
    assert result.returncode == 0, result
    assert result.stdout_bytes == want, first_difference(result.stdout_bytes, want)


def test_file_added_to_a_rootfs_copy(capsa, rootfs_copy):
    (rootfs_copy / "srv").mkdir()
    (rootfs_copy / "srv" / "greeting.txt").write_text("hello from the host\n")
    result = capsa.run("cat", "/srv/greeting.txt", rootfs=rootfs_copy)
    assert result.returncode == 0, result
    assert result.stdout == "hello from the host\n", result


def test_writes_go_to_overlay_not_host(capsa, rootfs_copy):
    before = tree_snapshot(rootfs_copy)
    passwd = (rootfs_copy / "etc" / "passwd").read_bytes()
    result = capsa.run("sh", "-c", "echo data > /etc/newfile && cat /etc/newfile && "
                       "echo intruder::0:0::/:/bin/sh >> /etc/passwd && grep -c intruder /etc/passwd",
                       rootfs=rootfs_copy)
    assert result.returncode == 0, result
    assert result.stdout == "data\n1\n", result
    assert not (rootfs_copy / "etc" / "newfile").exists(), "a guest write reached the host directory"
    assert (rootfs_copy / "etc" / "passwd").read_bytes() == passwd, "a guest write changed a host file"
    assert tree_snapshot(rootfs_copy) == before, "the host root filesystem directory changed"


def test_writes_vanish_between_runs(capsa, rootfs_copy):
    first = capsa.run("sh", "-c", "echo data > /etc/newfile", rootfs=rootfs_copy)
    assert first.returncode == 0, first
    second = capsa.run("sh", "-c", "test -e /etc/newfile && echo present || echo absent", rootfs=rootfs_copy)
    assert second.returncode == 0, second
    assert second.stdout == "absent\n", second
