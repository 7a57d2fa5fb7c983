"""Shared setup for capsa's image tests (pull, load, images, rmi): test images,
a local registry holding them, and an isolated capsa store per test. None of
this boots a guest.

    /usr/bin/python3 -m pytest -q tests/integration

Environment:
    CAPSA_BIN   capsa binary to test (default: build/capsa in the repository)

Fixtures:
    capsa_bin    session: path of the capsa CLI
    capsa_env    function: os.environ plus a fresh XDG_DATA_HOME (so a fresh store at
                 $XDG_DATA_HOME/capsa), a fresh XDG_CACHE_HOME and an empty DOCKER_CONFIG
    run_capsa    function: run_capsa(args, env=None, timeout=120) -> CompletedProcess
                 (text, stdout/stderr captured; env defaults to this test's capsa_env)
    test_images  session: {name: OCI layout dir} of lib.testimages (tag "latest")
    registry     session: a running lib.registry.Registry with busybox, layers, user and
                 multiarch pushed as test/<name>:latest (registry.ref("test/busybox:latest"))

The helpers live in tests/lib (importable as `lib` once tests/ is on sys.path,
which this file arranges), so tests/e2e can build the same images and registry.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from lib import registry as registry_lib  # noqa: E402
from lib import testimages  # noqa: E402

REPO_ROOT = TESTS_DIR.parent
RUN_TIMEOUT = 120.0


def find_capsa_bin():
    return Path(os.environ.get("CAPSA_BIN") or REPO_ROOT / "build" / "capsa")


def default_kernel():
    """The guest kernel capsa finds by default (src/cli/guest_files.c), looked
    up before XDG_CACHE_HOME is redirected."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "capsa" / "kernel" / "vmlinux"


@pytest.fixture(scope="session")
def capsa_bin():
    path = find_capsa_bin()
    if not os.access(path, os.X_OK):
        pytest.fail(f"capsa binary {path} is missing: build it with 'make build' (or set CAPSA_BIN)",
                    pytrace=False)
    return path


@pytest.fixture
def capsa_env(tmp_path):
    """A copy of os.environ where capsa sees a store, cache and docker config of
    this test only. CAPSA_KERNEL keeps pointing at the usual kernel, which the
    new XDG_CACHE_HOME would otherwise hide."""
    env = dict(os.environ)
    for name in ("data", "cache", "docker-config"):
        (tmp_path / name).mkdir()
    if "CAPSA_KERNEL" not in env and default_kernel().is_file():
        env["CAPSA_KERNEL"] = str(default_kernel())
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    return env


@pytest.fixture
def run_capsa(capsa_bin, capsa_env):
    """run_capsa(["pull", ref], env) runs capsa with stdin /dev/null and returns
    the CompletedProcess (text mode, stdout and stderr captured). env defaults
    to this test's capsa_env."""
    def run(args, env=None, timeout=RUN_TIMEOUT):
        argv = [str(capsa_bin)] + [str(a) for a in args]
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  env=capsa_env if env is None else env, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            def text(data):
                if isinstance(data, bytes):
                    data = data.decode(errors="replace")
                return (data or "")[-2000:]
            pytest.fail(f"capsa did not finish within {timeout:.0f} s: {' '.join(argv)}\n"
                        f"stdout so far: {text(e.stdout)}\nstderr so far: {text(e.stderr)}", pytrace=False)
    return run


@pytest.fixture(scope="session")
def test_images():
    """{name: OCI layout dir} of the standard test images, built once into
    ~/.cache/capsa/test-images/<key> and reused while their inputs stay the same."""
    try:
        return testimages.build_all(testimages.default_cache_dir())
    except Exception as e:   # a missing tool or binary: say which, not a traceback
        pytest.fail(f"cannot build the test images: {e}", pytrace=False)


@pytest.fixture(scope="session")
def registry(test_images):
    """A local registry (127.0.0.1, plain HTTP) holding test/busybox, test/layers,
    test/user and test/multiarch, all :latest. Stopped at the end of the session,
    whatever the tests did."""
    reg = registry_lib.Registry()
    try:
        reg.start()
        registry_lib.push_test_images(reg, test_images)
    except registry_lib.RegistryError as e:
        reg.stop()
        pytest.fail(f"cannot set up the test registry: {e}", pytrace=False)
    try:
        yield reg
    finally:
        reg.stop()
