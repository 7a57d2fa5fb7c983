"""VM pools through the library (libcapsa.so over ctypes): VMs restored
from a baked snapshot ahead of time, handed out, used through exec and
taken back clean or as they are.

The library runs in a child process (this file run as a script), so that
a crash or a hang in it fails the test rather than the test session. Four
restores in all, one at a time: each takes a few seconds under emulation."""

import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import RUN_TIMEOUT, run_capsa

SNAPSHOT = "pool-base"
ACQUIRE_TIMEOUT_MS = 240000
ETIMEDOUT = 110
CLEAN, KEEP = 0, 1


# ---- the driver: runs in the child process ------------------------------------

class Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * 1024)]


class PoolOptions(ctypes.Structure):
    _fields_ = [("min_idle", ctypes.c_uint32), ("max_vms", ctypes.c_uint32), ("max_starting", ctypes.c_uint32),
                ("idle_timeout_ms", ctypes.c_uint32)]


class PoolStats(ctypes.Structure):
    _fields_ = [("idle", ctypes.c_uint32), ("in_use", ctypes.c_uint32), ("starting", ctypes.c_uint32),
                ("acquired", ctypes.c_uint64), ("timed_out", ctypes.c_uint64), ("started", ctypes.c_uint64),
                ("stopped", ctypes.c_uint64), ("failed_starts", ctypes.c_uint64),
                ("acquire_wait_us_total", ctypes.c_uint64)]

    def as_dict(self):
        return {name: getattr(self, name) for name, _ in self._fields_}


class ExecOptions(ctypes.Structure):
    _fields_ = [("argv", ctypes.POINTER(ctypes.c_char_p)), ("env", ctypes.POINTER(ctypes.c_char_p)),
                ("workdir", ctypes.c_char_p), ("user", ctypes.c_char_p), ("tty", ctypes.c_bool),
                ("rows", ctypes.c_uint16), ("cols", ctypes.c_uint16), ("stdin_open", ctypes.c_bool),
                ("timeout_ms", ctypes.c_uint32)]


class ExecResult(ctypes.Structure):
    _fields_ = [("exit_status", ctypes.c_int), ("signal", ctypes.c_int), ("timed_out", ctypes.c_bool),
                ("duration_us", ctypes.c_uint64), ("peak_rss_kib", ctypes.c_uint64)]


def strv(items):
    arr = (ctypes.c_char_p * (len(items) + 1))()
    arr[:-1] = [s.encode() for s in items]
    arr[-1] = None
    return arr


class Driver:
    def __init__(self, library):
        lib = ctypes.CDLL(library)
        p = ctypes.c_void_p
        err = ctypes.POINTER(Error)
        for name, res, args in [
            ("capsa_vm_config_new", p, [err]),
            ("capsa_vm_config_free", None, [p]),
            ("capsa_vm_config_set_kernel", ctypes.c_int, [p, ctypes.c_char_p, err]),
            ("capsa_vm_config_set_init", ctypes.c_int, [p, ctypes.c_char_p, err]),
            ("capsa_vm_config_set_store_dir", ctypes.c_int, [p, ctypes.c_char_p, err]),
            ("capsa_vm_config_set_snapshot", ctypes.c_int, [p, ctypes.c_char_p, err]),
            ("capsa_vm_config_set_command", ctypes.c_int, [p, ctypes.POINTER(ctypes.c_char_p), err]),
            ("capsa_vm_config_set_output", ctypes.c_int, [p, ctypes.c_int, ctypes.c_int, ctypes.c_int, err]),
            ("capsa_pool_new", p, [p, ctypes.POINTER(PoolOptions), err]),
            ("capsa_pool_acquire", p, [p, ctypes.c_uint32, err]),
            ("capsa_pool_release", None, [p, p, ctypes.c_int]),
            ("capsa_pool_get_stats", None, [p, ctypes.POINTER(PoolStats)]),
            ("capsa_pool_free", None, [p]),
            ("capsa_vm_control_socket", ctypes.c_char_p, [p]),
            ("capsa_exec_run", ctypes.c_int,
             [ctypes.c_char_p, ctypes.POINTER(ExecOptions), p, ctypes.c_size_t, ctypes.c_size_t,
              ctypes.POINTER(p), ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(p),
              ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ExecResult), err]),
        ]:
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        self.lib = lib
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"))
        self.libc.free.argtypes = [p]

    def check(self, ok, err, what):
        if not ok:
            raise RuntimeError(f"{what}: {err.message.decode(errors='replace')} (code {err.code})")

    def config(self, kernel, init, store, snapshot, command):
        err = Error()
        cfg = self.lib.capsa_vm_config_new(ctypes.byref(err))
        self.check(cfg, err, "config")
        self.check(self.lib.capsa_vm_config_set_kernel(cfg, kernel.encode(), ctypes.byref(err)) == 0, err, "kernel")
        self.check(self.lib.capsa_vm_config_set_init(cfg, init.encode(), ctypes.byref(err)) == 0, err, "init")
        self.check(self.lib.capsa_vm_config_set_store_dir(cfg, store.encode(), ctypes.byref(err)) == 0, err,
                   "store")
        self.check(self.lib.capsa_vm_config_set_snapshot(cfg, snapshot.encode(), ctypes.byref(err)) == 0, err,
                   "snapshot")
        self.check(self.lib.capsa_vm_config_set_command(cfg, strv(command), ctypes.byref(err)) == 0, err,
                   "command")
        self.check(self.lib.capsa_vm_config_set_output(cfg, -1, -1, -1, ctypes.byref(err)) == 0, err, "output")
        return cfg

    def stats(self, pool):
        s = PoolStats()
        self.lib.capsa_pool_get_stats(pool, ctypes.byref(s))
        return s.as_dict()

    def wait_stats(self, pool, check, timeout=RUN_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats(pool)
            if check(s):
                return s
            if time.monotonic() > deadline:
                raise RuntimeError(f"pool stats never got there: {s}")
            time.sleep(0.1)

    def acquire(self, pool, timeout_ms=ACQUIRE_TIMEOUT_MS):
        err = Error()
        vm = self.lib.capsa_pool_acquire(pool, timeout_ms, ctypes.byref(err))
        return vm, err.code, err.message.decode(errors="replace")

    def sh(self, vm, script):
        """Runs `sh -c script` in the VM: (exit status, stdout)."""
        err = Error()
        argv = strv(["sh", "-c", script])
        opts = ExecOptions(argv=argv)
        out, out_len = ctypes.c_void_p(), ctypes.c_size_t()
        result = ExecResult()
        sock = self.lib.capsa_vm_control_socket(vm)
        r = self.lib.capsa_exec_run(sock, ctypes.byref(opts), None, 0, 65536, ctypes.byref(out), ctypes.byref(out_len),
                                    None, None, ctypes.byref(result), ctypes.byref(err))
        self.check(r == 0, err, f"exec {script!r}")
        text = ctypes.string_at(out.value, out_len.value).decode(errors="replace") if out.value else ""
        self.libc.free(out)
        return result.exit_status, text


def drive(args):
    """The scenario; returns what the test checks, as a dict."""
    d = Driver(args["library"])
    report = {"steps": []}

    def step(name, **values):
        report["steps"].append(dict(values, step=name))

    cfg = d.config(args["kernel"], args["init"], args["store"], SNAPSHOT, ["sleep", "100000"])
    err = Error()
    opts = PoolOptions(min_idle=2, max_vms=3, max_starting=1, idle_timeout_ms=0)
    pool = d.lib.capsa_pool_new(cfg, ctypes.byref(opts), ctypes.byref(err))
    # The pool keeps a copy: the caller's config may go at once.
    d.lib.capsa_vm_config_free(cfg)
    d.check(pool, err, "capsa_pool_new")
    try:
        step("warm", stats=d.wait_stats(pool, lambda s: s["idle"] == 2 or s["failed_starts"] > 0))

        vms = []
        for i in range(3):
            vm, code, message = d.acquire(pool)
            d.check(vm, Error(code=code, message=message.encode()), f"acquire {i}")
            vms.append(vm)
        step("acquired", distinct=len(set(vms)), stats=d.stats(pool))

        vm, code, message = d.acquire(pool, 0)
        step("acquire_full", got=bool(vm), code=code, message=message)

        outputs = [d.sh(vm, f"echo hello-from-{i}; echo dirty > /tmp/mark") for i, vm in enumerate(vms)]
        step("echo", outputs=outputs)

        d.lib.capsa_pool_release(pool, vms[0], CLEAN)
        d.lib.capsa_pool_release(pool, vms[1], KEEP)
        kept, code, message = d.acquire(pool)
        step("reacquire", same_as_kept=kept == vms[1], code=code, message=message,
             mark=d.sh(kept, "cat /tmp/mark") if kept else None)

        # vms[0]'s place is taken by a fresh VM from the snapshot.
        d.wait_stats(pool, lambda s: s["idle"] == 1 or s["failed_starts"] > 0)
        fresh, code, message = d.acquire(pool)
        step("fresh", code=code, message=message,
             mark=d.sh(fresh, "test -e /tmp/mark && echo dirty || echo clean") if fresh else None)

        step("final", stats=d.stats(pool))
        for vm in (vms[2], kept, fresh):
            if vm:
                d.lib.capsa_pool_release(pool, vm, KEEP)
        step("released", stats=d.stats(pool))
    finally:
        started = time.monotonic()
        d.lib.capsa_pool_free(pool)
        report["free_seconds"] = time.monotonic() - started
    return report


# ---- the test ------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_env(capsa_image, image_env, tmp_path_factory):
    env = dict(image_env)
    env["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("pool-data"))
    env["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("pool-runtime"))
    os.chmod(env["XDG_RUNTIME_DIR"], 0o700)
    return env


@pytest.fixture(scope="module")
def baked(data_env, capsa_bin, test_images):
    ref = f"oci:{test_images['busybox']}:latest"
    pulled = run_capsa(capsa_bin, ["pull", "-q", ref], env=data_env)
    assert pulled.returncode == 0, pulled
    result = run_capsa(capsa_bin, ["bake", "--name", SNAPSHOT, ref], env=data_env)
    assert result.returncode == 0, result
    return SNAPSHOT


def run_driver(args, env, timeout):
    proc = subprocess.run([sys.executable, __file__], input=json.dumps(args).encode(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env, timeout=timeout)
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{stderr[-4000:]}"
    return json.loads(proc.stdout)


def test_pool_acquire_exec_release(baked, data_env, capsa_bin, kernel):
    args = {
        "library": str(capsa_bin.parent / "libcapsa.so"),
        "kernel": str(kernel),
        "init": str(capsa_bin.parent / "guest" / "init" / "capsa-init"),
        "store": str(os.path.join(data_env["XDG_DATA_HOME"], "capsa")),
    }
    report = run_driver(args, data_env, timeout=4 * RUN_TIMEOUT)
    steps = {s["step"]: s for s in report["steps"]}

    warm = steps["warm"]["stats"]
    assert warm["failed_starts"] == 0 and warm["idle"] == 2, report

    acquired = steps["acquired"]
    assert acquired["distinct"] == 3, report
    assert acquired["stats"]["in_use"] == 3 and acquired["stats"]["idle"] == 0, report

    # At max_vms, an acquire that may not wait gives up at once.
    full = steps["acquire_full"]
    assert not full["got"] and full["code"] == ETIMEDOUT, report

    assert steps["echo"]["outputs"] == [[0, f"hello-from-{i}\n"] for i in range(3)], report

    # KEEP: the same VM comes back as it was left.
    reacquire = steps["reacquire"]
    assert reacquire["same_as_kept"], report
    assert reacquire["mark"] == [0, "dirty\n"], report

    # CLEAN: the VM is gone; its replacement is fresh from the snapshot.
    fresh = steps["fresh"]
    assert fresh["code"] == 0, report
    assert fresh["mark"] == [0, "clean\n"], report

    final = steps["final"]["stats"]
    assert final["in_use"] == 3 and final["idle"] == 0, report
    assert final["acquired"] == 5 and final["timed_out"] == 1, report
    assert final["started"] == 4 and final["stopped"] == 1 and final["failed_starts"] == 0, report
    assert steps["released"]["stats"]["idle"] == 3, report


if __name__ == "__main__":
    # The child: arguments as JSON on stdin, the report as JSON on stdout.
    print(json.dumps(drive(json.load(sys.stdin))))
