"""The workload's output and exit status come back as if it ran on the host."""

import pytest

from conftest import first_difference


def test_echo_to_stdout(first_boot):
    result = first_boot
    assert result.returncode == 0, result
    assert result.stdout_bytes == b"hello\n", result
    # Kernel messages go to the console, which is hidden without --console.
    assert "Linux version" not in result.stderr, result


def test_acceptance_hello_exit_3(capsa):
    result = capsa.run("/bin/sh", "-c", "echo hello; exit 3")
    assert result.stdout_bytes == b"hello\n", result
    assert result.returncode == 3, result


def test_stderr_is_separate_from_stdout(capsa):
    result = capsa.run("sh", "-c", "echo out; echo err >&2")
    assert result.returncode == 0, result
    assert result.stdout_bytes == b"out\n", result
    assert result.stderr_bytes == b"err\n", result


@pytest.mark.parametrize("status", [0, 1, 42])
def test_exit_status(capsa, status):
    result = capsa.run("sh", "-c", f"exit {status}")
    assert result.returncode == status, result


@pytest.mark.parametrize("signal_name, signal_number", [("KILL", 9), ("TERM", 15)])
def test_killed_by_signal(capsa, signal_name, signal_number):
    result = capsa.run("sh", "-c", f"kill -{signal_name} $$; sleep 5")
    assert result.returncode == 128 + signal_number, result


def test_missing_program_path(capsa):
    result = capsa.run("/nonexistent")
    assert result.returncode == 127, result
    assert "/nonexistent" in result.stderr, result
    assert "not found" in result.stderr or "No such file" in result.stderr, result


def test_command_not_on_path(capsa):
    result = capsa.run("no-such-command")
    assert result.returncode == 127, result
    assert "no-such-command" in result.stderr and "not found" in result.stderr, result


def test_large_output_is_byte_exact(capsa):
    # About 100 KB: enough to cross many buffer boundaries, small enough for
    # an emulated serial port. Catches lost bytes and \n -> \r\n translation.
    want = "".join(f"{i}\n" for i in range(1, 20001)).encode()
    result = capsa.run("seq", "1", "20000")
    assert result.returncode == 0, result
    assert result.stdout_bytes == want, first_difference(result.stdout_bytes, want)


def test_console_shows_kernel_messages(capsa):
    result = capsa.run("/bin/echo", "hi", options=["--console"])
    assert result.returncode == 0, result
    assert "Linux version" in result.stderr, result
    # The console goes to stderr; stdout still carries only the workload's.
    assert result.stdout_bytes == b"hi\n", result


@pytest.mark.parametrize("cpus", ["1", "2"])
def test_guest_power_off_ends_the_run(capsa, cpus):
    # Without ACPI a powered-off guest only halts its CPUs; capsa must notice
    # and end the run with its own error instead of waiting forever.
    result = capsa.run("sh", "-c", "echo before; poweroff -f; echo after", options=("--cpus", cpus))
    assert result.returncode == 125, result
    assert result.stdout_bytes == b"before\n", result
    assert "powered off" in result.stderr, result
