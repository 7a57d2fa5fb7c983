"""-e, -w and --hostname set up the workload's process environment."""

import pytest


@pytest.fixture(scope="module")
def env_run(capsa):
    result = capsa.run("sh", "-c", 'echo "$FOO"; echo "$EMPTY|"; pwd; hostname',
                       options=["-e", "FOO=bar baz", "-e", "EMPTY=", "-w", "/tmp",
                                "--hostname", "e2e-box"])
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert len(lines) == 4, result
    return result, lines


def test_environment_variable(env_run):
    result, lines = env_run
    assert lines[0] == "bar baz", result


def test_empty_environment_variable(env_run):
    result, lines = env_run
    assert lines[1] == "|", result


def test_working_directory(env_run):
    result, lines = env_run
    assert lines[2] == "/tmp", result


def test_hostname(env_run):
    result, lines = env_run
    assert lines[3] == "e2e-box", result


def test_working_directory_is_created(capsa):
    # An image's WorkingDir need not exist in its root filesystem.
    result = capsa.run("pwd", options=["-w", "/srv/app"])
    assert result.returncode == 0, result
    assert result.stdout == "/srv/app\n", result
