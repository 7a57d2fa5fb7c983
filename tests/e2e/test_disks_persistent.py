"""Persistent named disks (run --disk NAME:/path): created on first use,
mounted as ext4, kept across VMs, used by one VM at a time, listed and
removed with capsa volume. The VM that holds the disk also shares a host
directory over virtio-fs, to check host-side changes reach a running guest
and guest chmod/chown reach the host.

Boots are expensive under emulation: the module boots one detached VM,
used by the tests in order and stopped by the last of them that needs it,
then one more VM to see the data survived."""

import os
import re
import secrets

import pytest

from conftest import CAPSA_FAILURE, RUN_TIMEOUT, run_capsa

VM_NAME = "disk-holder"
VOLUME = "data"
PAYLOAD = f"persisted {secrets.token_hex(8)}"

# Waits up to ~15 s in the guest for a shell condition: host changes reach
# the guest once the FUSE attribute and entry timeouts (1 s) have passed.
def wait_for(condition):
    return f"i=0; until {condition}; do i=$((i+1)); [ $i -gt 75 ] && exit 9; sleep 0.2; done"


class Ctl:
    def __init__(self, capsa_bin, env, rootfs):
        self.bin = capsa_bin
        self.env = env
        self.rootfs = rootfs

    def __call__(self, *args, timeout=RUN_TIMEOUT):
        return run_capsa(self.bin, args, env=self.env, timeout=timeout)

    def exec(self, script):
        return self("exec", VM_NAME, "sh", "-c", script)

    def volumes(self):
        """{name: (size, on disk, in use)} from capsa volume ls."""
        result = self("volume", "ls")
        assert result.returncode == 0, result
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["NAME", "SIZE", "ON", "DISK", "IN", "USE"], result
        rows = {}
        for line in lines[1:]:
            m = re.fullmatch(r"(\S+)\s+(\S+ \S+)\s+(\S+ \S+)\s+(yes|no)", line)
            assert m, line
            rows[m.group(1)] = m.group(2, 3, 4)
        return rows


@pytest.fixture(scope="module")
def ctl(capsa_bin, vm_env, rootfs, tmp_path_factory):
    env = dict(vm_env)
    env["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("runtime"))
    os.chmod(env["XDG_RUNTIME_DIR"], 0o700)
    env["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data"))
    c = Ctl(capsa_bin, env, rootfs)
    yield c
    c("rm", "-f", VM_NAME)


@pytest.fixture(scope="module")
def share(tmp_path_factory):
    d = tmp_path_factory.mktemp("disk-share")
    return d


@pytest.fixture(scope="module")
def holder(ctl, share, first_boot):
    """The detached VM holding the volume (created here, 64 MiB)."""
    result = ctl("run", "-d", "--name", VM_NAME, "--disk", f"{VOLUME}:/data:64M", "-v", f"{share}:/work",
                 "--rootfs", ctl.rootfs, "--", "sleep", "1000")
    assert result.returncode == 0, result
    return result.stdout.strip()


def test_first_use_creates_and_mounts_an_ext4_disk(ctl, holder):
    image = os.path.join(ctl.env["XDG_DATA_HOME"], "capsa", "volumes", f"{VOLUME}.ext4")
    assert os.path.getsize(image) == 64 << 20
    result = ctl.exec(f"echo '{PAYLOAD}' > /data/f && sync && grep ' /data ' /proc/mounts && "
                      "stat -c '%u:%g %a' /data && df -k /data | tail -1")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["/dev/vdb", "/data", "ext4"] and " rw," in lines[0], result
    assert lines[1] == "0:0 755", result
    total_kib = int(lines[2].split()[1])
    assert 50 * 1024 < total_kib <= 64 * 1024, result


def test_volume_ls_shows_it_in_use(ctl, holder):
    rows = ctl.volumes()
    assert rows[VOLUME][0] == "64.0 MiB" and rows[VOLUME][2] == "yes", rows


def test_second_vm_is_refused(ctl, holder):
    result = ctl("run", "--disk", f"{VOLUME}:/data", "--rootfs", ctl.rootfs, "--", "true")
    assert result.returncode == CAPSA_FAILURE, result
    assert result.stderr.count("\n") == 1, result
    assert f"volume '{VOLUME}' is in use" in result.stderr, result


def test_rm_refuses_a_volume_in_use(ctl, holder):
    result = ctl("volume", "rm", VOLUME)
    assert result.returncode == CAPSA_FAILURE, result
    assert "in use" in result.stderr and result.stderr.count("\n") == 1, result


def test_host_changes_reach_the_running_guest(ctl, holder, share):
    (share / "created.txt").write_text("made on the host\n")
    result = ctl.exec(wait_for("[ -e /work/created.txt ]") + "; cat /work/created.txt")
    assert result.returncode == 0 and result.stdout == "made on the host\n", result

    os.rename(share / "created.txt", share / "renamed.txt")
    (share / "dir").mkdir()
    (share / "dir" / "inner").write_text("inner\n")
    result = ctl.exec(wait_for("[ -e /work/renamed.txt ] && [ ! -e /work/created.txt ]") +
                      "; cat /work/renamed.txt /work/dir/inner")
    assert result.returncode == 0 and result.stdout == "made on the host\ninner\n", result

    with open(share / "renamed.txt", "a") as f:
        f.write("appended on the host\n")
    result = ctl.exec(wait_for("grep -q appended /work/renamed.txt") + "; cat /work/renamed.txt")
    assert result.returncode == 0, result
    assert result.stdout == "made on the host\nappended on the host\n", result

    os.unlink(share / "renamed.txt")
    os.unlink(share / "dir" / "inner")
    os.rmdir(share / "dir")
    result = ctl.exec(wait_for("[ ! -e /work/renamed.txt ] && [ ! -e /work/dir ]") + "; ls -A /work")
    assert result.returncode == 0 and result.stdout == "", result


def test_guest_modes_and_ownership_reach_the_host(ctl, holder, share):
    result = ctl.exec("cd /work && echo x > m && chmod 0751 m && mkdir d && chmod 1733 d && "
                      "echo y > o && chown 1234:5678 o && chmod 4755 o && touch -t 200109090146.40 m && "
                      "stat -c '%a %u:%g' m d o")
    assert result.returncode == 0, result
    assert result.stdout == "751 0:0\n1733 0:0\n4755 1234:5678\n", result
    st = os.stat(share / "m")
    assert st.st_mode & 0o7777 == 0o751 and int(st.st_mtime) == 1000000000, oct(st.st_mode)
    assert os.stat(share / "d").st_mode & 0o7777 == 0o1733
    st = os.stat(share / "o")
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 5678), st
        # chown drops set-user-ID; chmod after it sets it again.
        assert st.st_mode & 0o7777 == 0o4755, oct(st.st_mode)


def test_stop_the_holder(ctl, holder):
    result = ctl("stop", VM_NAME)
    assert result.returncode == 0, result
    result = ctl("rm", VM_NAME)
    assert result.returncode == 0, result
    assert ctl.volumes()[VOLUME][2] == "no"


def test_data_survives_into_the_next_vm(ctl, holder):
    # An existing volume keeps its size whatever size is asked for.
    result = ctl("run", "--disk", f"{VOLUME}:/mnt/deep/data:1G", "--rootfs", ctl.rootfs, "--",
                 "sh", "-c", "cat /mnt/deep/data/f; df -k /mnt/deep/data | tail -1; echo more > /mnt/deep/data/g")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0] == PAYLOAD, result
    assert int(lines[1].split()[1]) <= 64 * 1024, result
    image = os.path.join(ctl.env["XDG_DATA_HOME"], "capsa", "volumes", f"{VOLUME}.ext4")
    # The guest's writes reached the image (e2fsck agrees it is consistent).
    fsck = os.popen(f"PATH=$PATH:/usr/sbin:/sbin e2fsck -fn {image} 2>&1; echo status=$?").read()
    assert "status=0" in fsck, fsck


def test_volume_rm_deletes_it(ctl, holder):
    result = ctl("volume", "rm", VOLUME)
    assert result.returncode == 0 and result.stdout == f"{VOLUME}\n", result
    assert VOLUME not in ctl.volumes()
    result = ctl("volume", "rm", VOLUME)
    assert result.returncode == CAPSA_FAILURE and "no volume named" in result.stderr, result


def test_bad_disk_names_are_one_line_errors(ctl):
    for spec, message in [("bad name:/x", "not valid"), ("x:/y:12Q", "not a size"), ("x:/", "absolute path"),
                          ("x:/y:1M", "out of range")]:
        result = ctl("run", "--disk", spec, "--rootfs", ctl.rootfs, "--", "true")
        assert result.returncode == CAPSA_FAILURE, result
        assert result.stderr.count("\n") == 1 and message in result.stderr, (spec, result)
