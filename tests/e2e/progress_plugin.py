"""pytest plugin that lets tests/e2e/run go on after the emulated host failed.

When CAPSA_E2E_PROGRESS names a file, each test's start and outcome are appended to it (and
synced, since the VM running the suite may die the next moment), and the tests the file
already records as finished are left out, so a new run never repeats a finished test.
"""

import os

PROGRESS_FILE = os.environ.get("CAPSA_E2E_PROGRESS")


def _progress_write(kind, nodeid):
    with open(PROGRESS_FILE, "a") as f:
        f.write(f"{kind} {nodeid}\n")
        f.flush()
        os.fsync(f.fileno())


def _progress_finished():
    try:
        with open(PROGRESS_FILE) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return set()
    return {line.split(" ", 1)[1] for line in lines
            if line.split(" ", 1)[0] in ("passed", "failed", "skipped")}


def pytest_collection_modifyitems(config, items):
    if not PROGRESS_FILE:
        return
    finished = _progress_finished()
    done = [item for item in items if item.nodeid in finished]
    if done:
        config.hook.pytest_deselected(items=done)
        items[:] = [item for item in items if item.nodeid not in finished]


def pytest_runtest_logstart(nodeid, location):
    if PROGRESS_FILE:
        _progress_write("started", nodeid)


def pytest_runtest_logreport(report):
    if not PROGRESS_FILE:
        return
    # A test's outcome is known after its call, or earlier if its setup did not pass;
    # a failing teardown turns a passed test into a failed one.
    if report.when == "call" or (report.when == "setup" and not report.passed) \
            or (report.when == "teardown" and report.failed):
        _progress_write(report.outcome, report.nodeid)
