"""Helpers the benchmarks share: where capsa's guest kernel and init are,
QEMU -M microvm set up like capsa's VM (same kernel, init, initramfs layout
and root image), running a VMM and timing its first output, and the
statistics the reports print.

The benchmarks are scripts without a .py suffix; each puts this directory
on sys.path and imports this module.
"""

import math
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 600.0     # seconds; emulated hardware is slow
MARKER = b"x"           # what the timed workload prints
READY = b"ready"        # what the memory workload prints before idling

# Guest ABI (src/common/guest_abi.h): the files init reads, and its exit port.
INIT_PATH = "init"
ARGV_PATH = "capsa/argv"
EXIT_PORT = 0x600
# Used only if BASE_CMDLINE cannot be read from src/lib/api/machine.c.
FALLBACK_CMDLINE = ("console=ttyS0 reboot=k panic=-1 pci=off nomodules no_timer_check tsc=reliable "
                    "i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd rdinit=/init")


def die(msg):
    """One line on stderr, prefixed with the benchmark's name, then exit 1."""
    print(f"bench/{Path(sys.argv[0]).name}: {msg}", file=sys.stderr)
    sys.exit(1)


# ---- inputs ------------------------------------------------------------------

def default_kernel():
    if os.environ.get("CAPSA_KERNEL"):
        return Path(os.environ["CAPSA_KERNEL"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "capsa" / "kernel" / "vmlinux"


def default_init(capsa_bin):
    if os.environ.get("CAPSA_INIT"):
        return Path(os.environ["CAPSA_INIT"])
    return Path(capsa_bin).resolve().parent / "guest" / "init" / "capsa-init"


def capsa_base_cmdline():
    """BASE_CMDLINE from src/lib/api/machine.c, so QEMU's guest gets what capsa's does."""
    try:
        src = (REPO / "src" / "lib" / "api" / "machine.c").read_text()
    except OSError:
        return FALLBACK_CMDLINE
    m = re.search(r"#define\s+BASE_CMDLINE\b((?:.*\\\n)*.*)", src)
    if not m:
        return FALLBACK_CMDLINE
    body = m.group(1).replace("CAPSA_INIT_PATH", '"/init"')
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', body)
    cmdline = "".join(parts).strip()
    return cmdline or FALLBACK_CMDLINE


def kvm_usable():
    return (not os.path.exists("/sys/module/kvm_pvm") and os.path.exists("/dev/kvm")
            and os.access("/dev/kvm", os.R_OK | os.W_OK))


def nested():
    """True inside tools/with-kvm's nested VM, whose init reads its job from the kernel command line."""
    try:
        return "withkvm.job=" in Path("/proc/cmdline").read_text()
    except OSError:
        return False


def capsa_commands(capsa_bin):
    """Names of the commands `capsa --help` lists."""
    proc = subprocess.run([str(capsa_bin), "--help"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    names, in_commands = [], False
    for line in proc.stdout.decode(errors="replace").splitlines():
        if line.strip().lower().rstrip(":") == "commands":
            in_commands = True
        elif in_commands and line.startswith("  ") and line.split():
            names.append(line.split()[0])
        elif in_commands and line.strip():
            in_commands = False
    return names



# ---- initramfs (newc cpio), laid out like src/lib/boot/initramfs.c -----------

def newc_entry(name, mode, ino, data=b"", nlink=1, rdev=(0, 0)):
    name_b = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0)
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = header + name_b
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def build_initramfs(init_binary, argv):
    init = Path(init_binary).read_bytes()
    argv_data = b"".join(a.encode() + b"\0" for a in argv)
    entries = [
        ("dev", 0o040755, b"", 2, (0, 0)),
        ("dev/console", 0o020600, b"", 1, (5, 1)),
        (INIT_PATH, 0o100755, init, 1, (0, 0)),
        ("capsa", 0o040755, b"", 2, (0, 0)),
        (ARGV_PATH, 0o100444, argv_data, 1, (0, 0)),
    ]
    out = b"".join(newc_entry(name, mode, ino, data, nlink, rdev)
                   for ino, (name, mode, data, nlink, rdev) in enumerate(entries, start=1))
    return out + newc_entry("TRAILER!!!", 0, 0)


# ---- running a VMM -------------------------------------------------------------

class Run:
    def __init__(self):
        self.first_line_s = None
        self.exit_s = None
        self.status = None
        self.maxrss_kib = None
        self.stdout = b""
        self.stderr = b""
        self.memory = None   # (total Rss KiB, guest-RAM Rss KiB) when measured


def smaps_memory(pid, guest_mib):
    """(total Rss, Rss of the guest-RAM mapping) of a process, in KiB. The
    guest-RAM mapping is the one exactly guest_mib in size or, if the kernel
    merged it with a neighbour, the one just above that size; the most
    resident one if several qualify."""
    mappings = []   # [size KiB, Rss KiB]
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                mappings.append([0, 0])
            elif line.startswith("Size:") and mappings:
                mappings[-1][0] = int(line.split()[1])
            elif line.startswith("Rss:") and mappings:
                mappings[-1][1] = int(line.split()[1])
    guest_kib = guest_mib * 1024
    exact = [rss for size, rss in mappings if size == guest_kib]
    near = [rss for size, rss in mappings if guest_kib < size <= guest_kib + 16 * 1024]
    return sum(rss for _, rss in mappings), max(exact or near or [0])


def run_vmm(argv, env, guest_mib, measure_memory=False, stderr_file=None):
    """Starts argv, times the first stdout line, waits for exit. With
    measure_memory, samples smaps once the workload said it is ready."""
    run = Run()
    err_target = stderr_file if stderr_file is not None else subprocess.PIPE
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err_target,
                            env=env)
    want = READY if measure_memory else MARKER
    streams = {proc.stdout.fileno(): "out"}
    if stderr_file is None:
        streams[proc.stderr.fileno()] = "err"
    deadline = start + RUN_TIMEOUT
    bufs = {"out": bytearray(), "err": bytearray()}
    while streams:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            proc.wait()
            die(f"{argv[0]} did not finish within {RUN_TIMEOUT:.0f} s; stderr: {bytes(bufs['err'])[-2000:]!r}")
        ready, _, _ = select.select(list(streams), [], [], left)
        for fd in ready:
            data = os.read(fd, 65536)
            if not data:
                del streams[fd]
                continue
            name = streams[fd]
            bufs[name] += data
            if name == "out" and run.first_line_s is None and (b"\n" + want + b"\n") in b"\n" + bufs["out"]:
                run.first_line_s = time.monotonic() - start
                if measure_memory:
                    run.memory = smaps_memory(proc.pid, guest_mib)
    _, status, rusage = os.wait4(proc.pid, 0)
    run.exit_s = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    run.status = proc.returncode
    run.maxrss_kib = rusage.ru_maxrss
    run.stdout = bytes(bufs["out"])
    run.stderr = bytes(bufs["err"])
    return run


class Qemu:
    """extra_args: more QEMU arguments (devices and their backends) appended
    to every command line, e.g. a 9p share."""

    def __init__(self, args, root_image, workdir, extra_args=()):
        self.bin = args.qemu
        self.memory = args.memory
        self.accel = "kvm" if kvm_usable() else "tcg"
        self.kernel = Path(args.kernel).resolve()
        self.root_image = root_image
        self.workdir = Path(workdir)
        self.init = args.init
        self.cmdline = capsa_base_cmdline() + " quiet"
        self.initrds = {}
        self.extra_args = list(extra_args)

    def initrd(self, command):
        key = tuple(command)
        if key not in self.initrds:
            path = self.workdir / f"initramfs-{len(self.initrds)}.cpio"
            path.write_bytes(build_initramfs(self.init, command))
            self.initrds[key] = path
        return self.initrds[key]

    def argv(self, command, stderr_path):
        cpu = "host" if self.accel == "kvm" else "max"
        return [
            self.bin,
            "-M", "microvm,x-option-roms=off,isa-serial=off,rtc=off,acpi=off",
            "-accel", self.accel, "-cpu", cpu, "-smp", "1", "-m", str(self.memory),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", str(self.kernel), "-initrd", str(self.initrd(command)), "-append", self.cmdline,
            # ttyS0 console (discarded, as capsa does without --console),
            # ttyS1 workload stdout, ttyS2 workload stderr; legacy ports/IRQs.
            "-chardev", "null,id=con", "-device", "isa-serial,chardev=con,iobase=0x3f8,irq=4",
            "-chardev", "stdio,id=out,signal=off", "-device", "isa-serial,chardev=out,iobase=0x2f8,irq=3",
            "-chardev", f"file,id=err,path={stderr_path}",
            "-device", "isa-serial,chardev=err,iobase=0x3e8,irq=4",
            "-drive", f"file={self.root_image},if=none,id=root,format=raw,readonly=on",
            "-device", "virtio-blk-device,drive=root",
            # init reports the exit status with outl to this port; QEMU then
            # exits with (status << 1) | 1.
            "-device", f"isa-debug-exit,iobase={EXIT_PORT:#x},iosize=4",
            *self.extra_args,
        ]

    def run(self, command, measure_memory=False):
        guest_err = self.workdir / "guest-stderr"
        with tempfile.TemporaryFile() as qemu_err:
            run = run_vmm(self.argv(command, guest_err), None, self.memory, measure_memory,
                          stderr_file=qemu_err)
            qemu_err.seek(0)
            run.stderr = qemu_err.read()
        if run.status != 1 or run.first_line_s is None:
            guest = guest_err.read_bytes() if guest_err.exists() else b""
            die(f"QEMU run failed (exit status {run.status}; 1 means the workload exited 0):\n"
                f"{run.stderr.decode(errors='replace')}\nguest stderr: {guest.decode(errors='replace')}\n"
                f"command: {' '.join(self.argv(command, guest_err))}")
        return run


def run_setup(argv, env=None):
    """Runs a setup command; its stdout and stderr go to files because a
    detached workload may keep what it inherited open. Returns stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                  timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            die(f"{' '.join(argv)} did not finish within {RUN_TIMEOUT:.0f} s")
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            die(f"{' '.join(argv)} failed (exit status {proc.returncode}):\n"
                f"{err.read().decode(errors='replace')[-4000:]}")
        return out.read().decode(errors="replace")



# ---- statistics ------------------------------------------------------------------

def p90(values):
    """Nearest-rank 90th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def ratio(a, b):
    return a / b if b else float("nan")
