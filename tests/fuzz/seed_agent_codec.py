#!/usr/bin/env python3
"""Writes seed inputs for fuzz_agent_codec into a directory: one well-formed
frame of every agent message type (header and payload, as
src/common/agent_proto.h lays them out), plus a few near misses, so the
fuzzer starts inside every decoder."""
import os
import struct
import sys

(PING, EXEC, FILE_WRITE, FILE_READ, STAT, WORKLOAD_SIGNAL) = range(1, 7)
STDIN, STDIN_EOF, SIGNAL, RESIZE = range(16, 20)
PONG, OK, ERROR, STARTED, STDOUT, STDERR, EXIT, STAT_RESULT = range(32, 40)
DATA, END = 48, 49


def frame(typ, payload=b""):
    return struct.pack("<IHH", len(payload), typ, 0) + payload


def s(text):
    return text.encode() + b"\0"


def strlist(items):
    return struct.pack("<I", len(items)) + b"".join(s(i) for i in items)


def exec_payload(argv, env, cwd="", user="", flags=0, rows=0, cols=0, timeout=0):
    return (struct.pack("<IHHI", flags, rows, cols, timeout) + strlist(argv) + strlist(env) + s(cwd)
            + s(user))


SEEDS = {
    "ping": frame(PING),
    "exec": frame(EXEC, exec_payload(["sh", "-c", "echo hi"], ["PATH=/bin", "HOME=/root"], "/tmp",
                                     "nobody:nogroup", 3, 24, 80, 5000)),
    "exec_min": frame(EXEC, exec_payload(["true"], [])),
    "exec_bad_count": frame(EXEC, struct.pack("<IHHII", 0, 0, 0, 0, 1000) + b"ls\0"),
    "file_write": frame(FILE_WRITE, struct.pack("<III", 0o644, 0xffffffff, 0) + s("/etc/motd")),
    "file_read": frame(FILE_READ, s("/etc/passwd")),
    "stat": frame(STAT, s("/")),
    "workload_signal": frame(WORKLOAD_SIGNAL, struct.pack("<I", 15)),
    "stdin": frame(STDIN, b"input\n"),
    "stdin_eof": frame(STDIN_EOF),
    "signal": frame(SIGNAL, struct.pack("<I", 2)),
    "resize": frame(RESIZE, struct.pack("<HH", 50, 132)),
    "pong": frame(PONG, struct.pack("<I", 1)),
    "ok": frame(OK),
    "error": frame(ERROR, struct.pack("<i", 2) + s("open /x: No such file or directory")),
    "error_unterminated": frame(ERROR, struct.pack("<i", 2) + b"no nul"),
    "started": frame(STARTED, struct.pack("<I", 42)),
    "stdout": frame(STDOUT, b"hello\n"),
    "stderr": frame(STDERR, b"oops\n"),
    "exit": frame(EXIT, struct.pack("<iIQQI", 137, 9, 1500000, 2048, 1)),
    "stat_result": frame(STAT_RESULT, struct.pack("<IIIQqI", 0o100644, 0, 0, 1234, 1700000000, 5)),
    "data": frame(DATA, bytes(range(256))),
    "end": frame(END),
    "bad_type": struct.pack("<IHH", 0, 999, 0),
    "bad_flags": struct.pack("<IHH", 0, PING, 1),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
