"""tests/e2e/run: going on after the nested VM fails, without retrying test failures.

A stand-in for tools/with-kvm runs the command directly and turns exit status 99 into its
own "the nested VM failed" status (125), so a test can play a VM that dies under it.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER = REPO_ROOT / "tests" / "e2e" / "run"

FAKE_WITH_KVM = """#!/bin/sh
[ "$1" = -- ] && shift
"$@"
status=$?
[ $status = 99 ] && exit 125
exit $status
"""

SUITE = """
import os
import time
from pathlib import Path

RUNS = Path(os.environ["RUNS_DIR"])


def ran(name):
    path = RUNS / name
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    return count


def test_a():
    ran("a")


def test_b():
    # The VM dies (or, with FREEZE set, hangs) under this test CRASHES times, then it passes.
    if ran("b") <= int(os.environ["CRASHES"]):
        if os.environ.get("FREEZE"):
            time.sleep(600)
        os._exit(99)


def test_c():
    ran("c")
    assert os.environ.get("C_PASSES") == "1"


def test_d():
    ran("d")
"""


def run_suite(tmp_path, crashes, c_passes=False, freeze=False):
    (tmp_path / "with-kvm").write_text(FAKE_WITH_KVM)
    (tmp_path / "with-kvm").chmod(0o755)
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_fake.py").write_text(SUITE)
    runs = tmp_path / "runs"
    runs.mkdir()
    env = dict(os.environ, WITH_KVM=str(tmp_path / "with-kvm"), RUNS_DIR=str(runs),
               CRASHES=str(crashes), C_PASSES="1" if c_passes else "0", FREEZE="1" if freeze else "")
    proc = subprocess.run([sys.executable, str(RUNNER), "--budget", "600", "--idle", "6", "--",
                           "-q", "-p", "no:cacheprovider",
                           str(tmp_path / "suite")], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300)
    counts = {p.name: int(p.read_text()) for p in runs.iterdir()}
    return proc, counts


def test_everything_passes_in_one_run(tmp_path):
    proc, counts = run_suite(tmp_path, crashes=0, c_passes=True)
    assert proc.returncode == 0, proc.stderr
    assert counts == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert "4 passed, 0 failed, 0 skipped in 1 run(s)" in proc.stderr


def test_a_vm_failure_reruns_only_the_unfinished_tests(tmp_path):
    proc, counts = run_suite(tmp_path, crashes=1, c_passes=True)
    assert proc.returncode == 0, proc.stderr
    # test_a finished before the crash and is not repeated; test_b runs again.
    assert counts == {"a": 1, "b": 2, "c": 1, "d": 1}
    assert "the nested VM failed while" in proc.stderr and "test_b" in proc.stderr
    assert "4 passed, 0 failed, 0 skipped in 2 run(s)" in proc.stderr


def test_a_test_failure_is_not_retried_across_runs(tmp_path):
    proc, counts = run_suite(tmp_path, crashes=1, c_passes=False)
    assert proc.returncode == 1, proc.stderr
    assert counts == {"a": 1, "b": 2, "c": 1, "d": 1}
    assert "3 passed, 1 failed" in proc.stderr
    assert "FAILED " in proc.stderr and "test_c" in proc.stderr


def test_a_test_the_vm_fails_under_twice_counts_as_failed(tmp_path):
    proc, counts = run_suite(tmp_path, crashes=10, c_passes=True)
    assert proc.returncode == 1, proc.stderr
    assert counts == {"a": 1, "b": 2, "c": 1, "d": 1}
    assert "failed twice while" in proc.stderr
    assert "3 passed, 1 failed" in proc.stderr


def test_a_frozen_vm_is_stopped_and_the_suite_goes_on(tmp_path):
    proc, counts = run_suite(tmp_path, crashes=1, c_passes=True, freeze=True)
    assert proc.returncode == 0, proc.stderr
    assert counts == {"a": 1, "b": 2, "c": 1, "d": 1}
    assert "no test started or ended for 6 s" in proc.stderr
    assert "4 passed, 0 failed, 0 skipped in 2 run(s)" in proc.stderr
