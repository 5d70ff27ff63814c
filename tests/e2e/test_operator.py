"""Operator safety of the real binary: file-descriptor exhaustion backs off instead of
spinning, max_connections is exact across shards, a second server on the same port or
data_dir is refused, start-up errors about the database say what is wrong with it, and
an open HTTP API (no api_keys) is warned about."""

import os
import resource
import socket
import sqlite3
import subprocess
import tempfile
import time

from harness import (SANITIZER_MARKERS, Server, TestFailure, check, eq, http, raw_connect,
                     wait_for)

# ---- helpers ---------------------------------------------------------------------------


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("RINGCAST_")}


def run_binary(*args, timeout=30):
    """Run the binary to completion (a start that must fail); returns CompletedProcess."""
    p = subprocess.run([Server.BINARY] + list(args), capture_output=True, text=True,
                       env=clean_env(), timeout=timeout * Server.TIMEOUT_SCALE)
    for marker in SANITIZER_MARKERS:
        check(marker not in p.stdout + p.stderr, f"sanitizer report:\n{p.stdout}\n{p.stderr}")
    return p


def healthz_on(s, timeout=5.0):
    """Send GET /healthz on socket s; return the status code of the answer (or None)."""
    s.settimeout(timeout * Server.TIMEOUT_SCALE)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    buf = b""
    try:
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                return None
            buf += chunk
    except (ConnectionResetError, socket.timeout):
        return None
    return int(buf.split(b" ", 2)[1])


def counters(srv):
    r = http(srv, "GET", "/api/realtime/stats")
    eq(r.status, 200, "stats")
    return r.json()["counters"]


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---- item: max_connections is exact across shards ----------------------------------------


def test_operator_max_connections_exact_across_two_shards():
    with Server("--max-connections=3", shards=2) as srv:
        held = []
        try:
            # 3 admitted whatever shard the kernel picks for each; each answers /healthz
            for i in range(3):
                s = raw_connect(srv)
                held.append(s)
                eq(healthz_on(s), 200, f"connection {i + 1} of 3 admitted")
            # the 4th (and 5th) are refused, whichever shard they land on
            for i in range(2):
                s = raw_connect(srv)
                st = healthz_on(s)
                s.close()
                eq(st, 503, f"connection {4 + i} over max_connections=3")
        finally:
            for s in held:
                s.close()
        # closing gives the budget back: a new connection is admitted again
        wait_for(lambda: http(srv, "GET", "/healthz").status == 200, 10,
                 "a connection after the others closed", interval=0.05)
        eq(counters(srv)["refused_max_connections"], 2, "refused_max_connections")
