"""capsa's own option and input errors: these never boot a VM, so they are
fast and need no KVM. Every capsa error exits 125 with one line on stderr
that starts with 'capsa:'."""

import pytest

from conftest import CAPSA_FAILURE, find_kernel


def assert_one_error_line(result):
    assert result.returncode == CAPSA_FAILURE, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("capsa: "), result
    assert result.stdout == "", result
    return lines[0]


def test_run_help_prints_usage(cli):
    result = cli("run", "--help")
    assert result.returncode == 0, result
    assert result.stdout.startswith("Usage: capsa run"), result
    for option in ("--rootfs", "--memory", "--cpus", "--disk", "--env", "--workdir"):
        assert option in result.stdout, f"{option} is not in the usage text: {result}"


def test_top_level_help_lists_run(cli):
    result = cli("--help")
    assert result.returncode == 0, result
    assert "run" in result.stdout, result


def test_unknown_command(cli):
    line = assert_one_error_line(cli("frobnicate"))
    assert "frobnicate" in line


def test_missing_image_or_rootfs(cli):
    line = assert_one_error_line(cli("run"))
    assert "image" in line and "--rootfs" in line


def test_invalid_image_reference(cli):
    line = assert_one_error_line(cli("run", "--pull", "never", "Not/A/Valid:Ref!", "true"))
    assert "Not/A/Valid:Ref!" in line


def test_missing_command(cli, tmp_path):
    assert_one_error_line(cli("run", "--rootfs", tmp_path))


@pytest.fixture
def some_kernel(tmp_path):
    """The real kernel if there is one; else a placeholder, so these tests
    reach the check they are about without a kernel having been built."""
    kernel = find_kernel()
    if kernel.is_file():
        return kernel
    placeholder = tmp_path / "vmlinux-placeholder"
    placeholder.write_bytes(b"\0" * 4096)
    return placeholder


def test_nonexistent_rootfs(cli, tmp_path, some_kernel):
    missing = tmp_path / "no-such-rootfs"
    line = assert_one_error_line(cli("run", "--kernel", some_kernel, "--rootfs", missing, "--", "/bin/true"))
    assert str(missing) in line, "the message should name the directory"


@pytest.mark.parametrize("value", ["lots", "-5M", "12Q", "", "0"])
def test_bad_memory_value(cli, tmp_path, value):
    line = assert_one_error_line(cli("run", "--rootfs", tmp_path, "--memory", value, "--", "/bin/true"))
    assert "memory" in line


@pytest.mark.parametrize("value", ["two", "0"])
def test_bad_cpus_value(cli, tmp_path, value):
    line = assert_one_error_line(cli("run", "--rootfs", tmp_path, "--cpus", value, "--", "/bin/true"))
    assert "cpu" in line.lower()


def test_unknown_option(cli, tmp_path):
    result = cli("run", "--rootfs", tmp_path, "--no-such-option", "--", "/bin/true")
    assert result.returncode == CAPSA_FAILURE, result
    assert "no-such-option" in result.stderr, result
