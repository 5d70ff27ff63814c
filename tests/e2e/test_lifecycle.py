"""Process lifecycle of the real binary: SIGTERM/SIGINT drain (in-flight
requests finish with Connection: close, idle connections are closed, /healthz
says draining, drain_timeout is a hard limit), the command line (--help,
--version, --check-config and its errors, exit codes 0/1/2) and SIGHUP log
reopening."""

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

from harness import (SANITIZER_MARKERS, Server, TestFailure, check, eq, http, raw_connect,
                     read_responses, recv_until_close, wait_for)

# ---- helpers ---------------------------------------------------------------------------


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGCAST_")}
    if extra:
        env.update(extra)
    return env


def run_binary(*args, env=None, timeout=20):
    return subprocess.run([Server.BINARY] + list(args), capture_output=True, text=True,
                          env=clean_env(env), timeout=timeout * Server.TIMEOUT_SCALE)


def open_connections(srv):
    """Open client connections the server counts (the stats request's own included)."""
    r = http(srv, "GET", "/api/realtime/stats")
    eq(r.status, 200, "stats status")
    return sum(sh["connections"] for sh in r.json()["shards"])


def wait_accepted(srv, n):
    """Wait until the server has accepted n client connections besides the stats one."""
    wait_for(lambda: open_connections(srv) >= n + 1, 10, f"{n} connection(s) accepted")


def connect_refused(srv):
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    s.close()  # a shard still listening: close at once so it does not hold the drain
    return False


def sigterm_and_wait_draining(srv, sig=signal.SIGTERM):
    srv.proc.send_signal(sig)
    name = "SIGTERM" if sig == signal.SIGTERM else "SIGINT"
    wait_for(lambda: srv.log_has(rf"event=draining signal={name}"), 10, "the draining log line")
    # every shard has shut its listener: the shards are draining
    wait_for(lambda: connect_refused(srv), 10, "new connections to be refused")


def wait_exit(srv, timeout):
    """Wait for the server process to exit by itself; returns (code, seconds)."""
    t0 = time.monotonic()
    try:
        code = srv.proc.wait(timeout * Server.TIMEOUT_SCALE)
    except subprocess.TimeoutExpired:
        raise TestFailure(f"ringcast still running {timeout}s after the signal\n" +
                          srv.log()[-2000:]) from None
    return code, time.monotonic() - t0


def log_excerpt(srv, n=2500):
    """The server log from its first sanitizer report, else its tail."""
    text = srv.log()
    for m in SANITIZER_MARKERS:
        if m in text:
            i = text.index(m)
            return text[i:i + n]
    return text[-n:]


def final_response(srv, s, timeout=10):
    """Read s until the server closes it; its one response, parsed."""
    raw = recv_until_close(s, timeout)
    check(raw, "connection closed without a response; server log:\n" + log_excerpt(srv))
    return parse_one(raw, srv)


def parse_one(raw, srv=None):
    check(b"\r\n\r\n" in raw, f"no complete response in {raw!r}" +
          (f"; server log:\n{log_excerpt(srv)}" if srv else ""))
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {k.lower(): v for k, v in (ln.split(": ", 1) for ln in lines[1:])}
    eq(len(body), int(hdrs["content-length"]), f"body length of {raw!r}")
    return int(lines[0].split(" ")[1]), hdrs, body


def publish_bytes(topic):
    return json.dumps({"topic": topic, "type": "drain.test", "data": {"n": 1}}).encode()


# ---- drain -----------------------------------------------------------------------------


def test_sigterm_drain_finishes_request_in_flight():
    # Three rounds on 4 shards: the publish is usually answered by a shard
    # other than the connection's, one that has no connection of its own.
    for rnd in range(3):
        with Server("--drain-timeout=10s", shards=4) as srv:
            body = publish_bytes(f"drain.inflight{rnd}")
            half = len(body) // 2
            s = raw_connect(srv)
            try:
                s.sendall(b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                          b"Content-Type: application/json\r\n" +
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:half])
                wait_accepted(srv, 1)
                t0 = time.monotonic()
                sigterm_and_wait_draining(srv)
                check(srv.proc.poll() is None, "ringcast exited with a request in flight")
                s.sendall(body[half:])
                raw = recv_until_close(s, 10)
            finally:
                s.close()
            check(raw, f"round {rnd}: connection closed without a response; server log:\n" +
                  log_excerpt(srv))
            status, hdrs, rbody = parse_one(raw, srv)
            eq(status, 202, f"status of the in-flight request ({rbody!r})")
            eq(hdrs["connection"], "close", "Connection header while draining")
            eq(json.loads(rbody)["topic"], f"drain.inflight{rnd}", "topic")
            code, _ = wait_exit(srv, 10)
            took = time.monotonic() - t0
            eq(code, 0, f"exit code; server log:\n{log_excerpt(srv)}")
            check(took < 8, f"exit took {took:.2f}s: waited for the 10s drain_timeout")
            check(srv.log_has(r"event=stopped exit_code=0"), "no stopped log line")


def test_sigterm_drain_many_requests_in_flight_across_shards():
    # publishes are answered by each topic's owner shard: those shards must
    # keep serving the other shards' in-flight requests while they drain
    with Server("--drain-timeout=10s", shards=4) as srv:
        socks, bodies = [], []
        try:
            for i in range(12):
                b = publish_bytes(f"drain.many{i}")
                s = raw_connect(srv)
                s.sendall(b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n" +
                          f"Content-Length: {len(b)}\r\n\r\n".encode() + b[:7])
                socks.append(s)
                bodies.append(b)
            wait_accepted(srv, len(socks))
            t0 = time.monotonic()
            sigterm_and_wait_draining(srv)
            for s, b in zip(socks, bodies):
                s.sendall(b[7:])
            for i, s in enumerate(socks):
                status, hdrs, body = final_response(srv, s)
                eq(status, 202, f"in-flight publish {i} ({body!r})")
                eq(hdrs["connection"], "close", f"Connection of response {i}")
                eq(json.loads(body)["topic"], f"drain.many{i}", f"topic of response {i}")
                s.close()
        finally:
            for s in socks:
                s.close()
        code, _ = wait_exit(srv, 10)
        took = time.monotonic() - t0
        eq(code, 0, "exit code")
        check(took < 8, f"exit {took:.2f}s after SIGTERM although every request was answered")


def test_sigterm_drain_with_100_continue_in_flight():
    with Server("--drain-timeout=10s", shards=1) as srv:
        body = publish_bytes("drain.continue")
        s = raw_connect(srv)
        try:
            s.sendall(b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                      b"Expect: 100-continue\r\n" +
                      f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:5])
            s.settimeout(10)
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = s.recv(4096)
                check(chunk, f"closed before 100 Continue; got {got!r}")
                got += chunk
            eq(got, b"HTTP/1.1 100 Continue\r\n\r\n", "interim response")
            sigterm_and_wait_draining(srv)
            s.sendall(body[5:])
            raw = recv_until_close(s, 10)
        finally:
            s.close()
        status, hdrs, rbody = parse_one(raw, srv)
        eq(status, 202, f"status ({rbody!r})")
        eq(hdrs["connection"], "close", "Connection header while draining")
        code, took = wait_exit(srv, 10)
        eq(code, 0, "exit code")


def test_sigterm_pipelined_requests_after_drain_get_one_answer_then_close():
    with Server("--drain-timeout=10s") as srv:
        s = raw_connect(srv)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: e2e\r\n")
            wait_accepted(srv, 1)
            sigterm_and_wait_draining(srv)
            # finish the first request and pipeline a second one behind it
            s.sendall(b"\r\nGET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n")
            raw = recv_until_close(s, 10)
        finally:
            s.close()
        status, hdrs, body = parse_one(raw, srv)
        eq(status, 503, "the finished request")
        eq(hdrs["connection"], "close", "Connection header")
        code, _ = wait_exit(srv, 10)
        eq(code, 0, "exit code")


def test_sigterm_closes_idle_keepalive_connections():
    with Server("--drain-timeout=30s", "--keepalive-timeout=60s") as srv:
        socks = []
        try:
            for _ in range(4):
                s = raw_connect(srv)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n")
                (r,) = read_responses(s, 1)
                eq(r.status, 200, "status")
                eq(r.header("Connection"), "keep-alive", "Connection header")
                socks.append(s)
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            for i, s in enumerate(socks):
                rest = recv_until_close(s, 10)
                eq(rest, b"", f"bytes on idle connection {i} at drain")
            closed_after = time.monotonic() - t0
        finally:
            for s in socks:
                s.close()
        check(closed_after < min(5 * Server.TIMEOUT_SCALE, 20),
              f"idle connections closed {closed_after:.2f}s after SIGTERM")
        code, _ = wait_exit(srv, 10)
        took = time.monotonic() - t0
        eq(code, 0, "exit code")
        check(took < 20, f"exit {took:.2f}s after SIGTERM with only idle connections "
                         "(drain_timeout 30s should not be waited out)")


def test_healthz_503_while_draining():
    with Server("--drain-timeout=10s") as srv:
        s = raw_connect(srv)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: e2e\r\n")
            wait_accepted(srv, 1)
            sigterm_and_wait_draining(srv)
            s.sendall(b"\r\n")
            raw = recv_until_close(s, 10)
        finally:
            s.close()
        status, hdrs, body = parse_one(raw, srv)
        eq(status, 503, "status while draining")
        eq(json.loads(body), {"status": "draining"}, "body while draining")
        eq(hdrs["connection"], "close", "Connection header")
        eq(hdrs["content-type"], "application/json", "content-type")
        code, _ = wait_exit(srv, 10)
        eq(code, 0, "exit code")


def test_drain_timeout_is_honoured():
    with Server("--drain-timeout=2s", "--drain-spread=0", "--request-timeout=60s") as srv:
        s = raw_connect(srv)
        try:
            # a request that never completes
            s.sendall(b"POST /api/realtime/publish HTTP/1.1\r\nHost: e2e\r\n"
                      b"Content-Length: 1000\r\n\r\n{")
            wait_accepted(srv, 1)
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            code, _ = wait_exit(srv, 2 + 5)
            took = time.monotonic() - t0
            eq(code, 0, "exit code after the drain timeout")
            check(took >= 1.5, f"exited {took:.2f}s after SIGTERM: did not wait for the "
                               "in-flight request")
            check(took <= 2 + 3 * Server.TIMEOUT_SCALE,
                  f"exited {took:.2f}s after SIGTERM, drain_timeout is 2s")
            # the client's connection was closed by the server
            try:
                recv_until_close(s, 5)
            except OSError as e:
                raise TestFailure(f"client socket not closed cleanly: {e}") from None
        finally:
            s.close()


def test_sigint_drains_like_sigterm():
    with Server("--drain-timeout=10s") as srv:
        r = http(srv, "GET", "/healthz")
        eq(r.status, 200, "status")
        srv.proc.send_signal(signal.SIGINT)
        code, _ = wait_exit(srv, 10)
        eq(code, 0, "exit code after SIGINT")
        check(srv.log_has(r"event=draining signal=SIGINT"), "no draining log line for SIGINT")


def test_drain_timeout_zero_exits_at_once():
    with Server("--drain-timeout=0", "--drain-spread=0", "--request-timeout=60s") as srv:
        s = raw_connect(srv)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
            wait_accepted(srv, 1)
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            code, _ = wait_exit(srv, 5)
            eq(code, 0, "exit code")
            check(time.monotonic() - t0 < 3, "drain_timeout=0 waited")
        finally:
            s.close()


# ---- command line and configuration ----------------------------------------------------


def check_no_sanitizer(*texts):
    for t in texts:
        for m in SANITIZER_MARKERS:
            check(m not in t, f"sanitizer report:\n{t[:3000]}")


def test_help_and_version_exit_0():
    for flag in ("--help", "-h"):
        p = run_binary(flag)
        eq(p.returncode, 0, f"{flag} exit code")
        check(p.stdout.startswith("usage: ringcast"), f"{flag} output: {p.stdout[:200]!r}")
        for key in ("listen_address", "port", "shards", "max_body_bytes", "request_timeout",
                    "drain_timeout", "log_file"):
            check(re.search(rf"^  {key}\s", p.stdout, re.M), f"{flag} does not list {key}")
        check_no_sanitizer(p.stderr)
    p = run_binary("--version")
    eq(p.returncode, 0, "--version exit code")
    check(re.fullmatch(r"ringcast \d+\.\d+\.\d+\S*\n", p.stdout), f"--version: {p.stdout!r}")
    check_no_sanitizer(p.stderr)


def parse_effective(text):
    out = {}
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        k, v = ln.split(" = ", 1)
        out[k] = v
    return out


def test_check_config_prints_effective_config_with_precedence():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ringcast.conf")
        with open(path, "w") as f:
            f.write("# file values\nport = 1111\nshards = 3\nlog_level = warn\n"
                    "max_body_bytes = 2000\nkeepalive_timeout = \"20s\"\n")
        p = run_binary(f"--config={path}", "--check-config", "--shards=5",
                       "--request_timeout", "1500ms",
                       env={"RINGCAST_SHARDS": "4", "RINGCAST_LOG_LEVEL": "debug",
                            "RINGCAST_DRAIN_TIMEOUT": "3s"})
        eq(p.returncode, 0, f"exit code (stderr {p.stderr!r})")
        check(path in p.stdout.splitlines()[0], f"header names the file: {p.stdout[:200]!r}")
        eff = parse_effective(p.stdout)
        eq(eff["port"], "1111", "port (file)")
        eq(eff["shards"], "5", "shards (flag over env over file)")
        eq(eff["log_level"], "debug", "log_level (env over file)")
        eq(eff["drain_timeout"], "3s", "drain_timeout (env)")
        eq(eff["max_body_bytes"], "2000", "max_body_bytes (file)")
        eq(eff["keepalive_timeout"], "20s", "keepalive_timeout (quoted in the file)")
        eq(eff["request_timeout"], "1500ms", "request_timeout (--key value flag)")
        eq(eff["max_headers"], "64", "max_headers (default)")
        # the keys section of --help (the commands section after it lists subcommands)
        help_text = run_binary("--help").stdout
        keys_part = help_text.split("\nkeys:\n", 1)[1].split("\ncommands", 1)[0]
        help_keys = re.findall(r"^  ([a-z_]+)\s", keys_part, re.M)
        eq(sorted(eff), sorted(help_keys), "keys printed by --check-config vs --help")

        # the printed configuration is itself a valid config file
        again = os.path.join(d, "printed.conf")
        with open(again, "w") as f:
            f.write(p.stdout)
        p2 = run_binary(f"--config={again}", "--check-config")
        eq(p2.returncode, 0, f"re-reading the printed config (stderr {p2.stderr!r})")
        eq(parse_effective(p2.stdout), eff, "effective config after a round trip")
        check_no_sanitizer(p.stderr, p2.stderr)


def test_config_errors_exit_2_naming_the_key():
    with tempfile.TemporaryDirectory() as d:
        def conf(text):
            path = os.path.join(d, f"c{len(os.listdir(d))}.conf")
            with open(path, "w") as f:
                f.write(text)
            return path

        cases = [
            (["--nope=1"], None, ["--nope", "unknown"]),
            (["--port=70000"], None, ["port", "70000", "0..65535"]),
            (["--shards=abc"], None, ["--shards=abc", "not a number"]),
            (["--shards=257"], None, ["--shards=257", "0..256"]),
            (["--request-timeout=5"], None, ["--request-timeout=5", "unit"]),
            (["--max-body-bytes=lots"], None, ["--max-body-bytes=lots", "size"]),
            (["--log-level=loud"], None, ["--log-level=loud", "debug info warn error"]),
            (["--max-header-bytes=1KiB"], None, ["max_header_bytes", "max_request_line"]),
            ([], {"RINGCAST_FOO": "1"}, ["RINGCAST_FOO"]),
            ([], {"RINGCAST_PORT": "x"}, ["RINGCAST_PORT=x"]),
            ([f"--config={conf('port = 81' + chr(10) + 'bogus_key = 3' + chr(10))}"], None,
             ["bogus_key", "line 2", "unknown key"]),
            ([f"--config={conf('shards = lots' + chr(10))}"], None, ["shards", "lots", "line 1"]),
            ([f"--config={conf('port 81' + chr(10))}"], None, ["line 1", "key = value"]),
            (["--config=/nonexistent/ringcast.conf"], None, ["/nonexistent/ringcast.conf"]),
            ([], {"RINGCAST_CONFIG": "/nonexistent/env.conf"}, ["/nonexistent/env.conf"]),
        ]
        for args, env, words in cases:
            for mode in (["--check-config"], []):
                p = run_binary(*(args + mode + ["--port=0"] * (not any(
                    a.startswith("--port") for a in args))), env=env, timeout=20)
                what = f"{args} {env or ''} {mode}"
                eq(p.returncode, 2, f"exit code for {what} (stderr {p.stderr!r})")
                for w in words:
                    check(w in p.stderr, f"stderr for {what} does not name {w!r}: {p.stderr!r}")
                check("event=listening" not in p.stdout + p.stderr, f"{what} started listening")
                check_no_sanitizer(p.stderr)


def test_unwritable_log_file_exits_2():
    p = run_binary("--log-file=/nonexistent/dir/ringcast.log", "--port=0",
                   "--listen-address=127.0.0.1", "--shards=1")
    eq(p.returncode, 2, f"exit code (stderr {p.stderr!r})")
    check("/nonexistent/dir/ringcast.log" in p.stderr, f"stderr names the path: {p.stderr!r}")


def test_port_in_use_exits_1():
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        p = run_binary(f"--port={port}", "--listen-address=127.0.0.1", "--shards=1")
        eq(p.returncode, 1, f"exit code (stderr {p.stderr!r})")
        check(str(port) in p.stderr and "in use" in p.stderr,
              f"stderr names the port and the cause: {p.stderr!r}")
        check_no_sanitizer(p.stdout, p.stderr)
    finally:
        blocker.close()


# ---- SIGHUP ----------------------------------------------------------------------------


def test_sighup_reopens_log_file():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ringcast.log")
        rotated = path + ".1"
        proc = subprocess.Popen([Server.BINARY, "--port=0", "--listen-address=127.0.0.1",
                                 "--shards=1", f"--log-file={path}"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=clean_env())

        def read(p):
            try:
                with open(p) as f:
                    return f.read()
            except FileNotFoundError:
                return ""

        try:
            m = wait_for(lambda: re.search(r"event=listening .*port=(\d+)", read(path)),
                         15 * Server.TIMEOUT_SCALE, "the listening line in the log file")
            port = int(m.group(1))
            os.rename(path, rotated)
            check(not os.path.exists(path), "log path still exists after rename")
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "event=log_reopened result=0" in read(path), 10,
                     "log_reopened in a new file at the log path")
            check(proc.poll() is None, "ringcast exited on SIGHUP")
            # still serving after the reopen
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n")
                (r,) = read_responses(s, 1)
                eq(r.status, 200, "/healthz after SIGHUP")
            finally:
                s.close()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(20 * Server.TIMEOUT_SCALE)
            eq(code, 0, "exit code")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out = proc.stdout.read()
        proc.stdout.close()
        old, new = read(rotated), read(path)
        check("event=listening" in old, "listening line in the rotated file")
        check("log_reopened" not in old, "log_reopened went to the rotated file")
        check("event=draining" not in old and "event=stopped" not in old,
              "lines after SIGHUP went to the rotated file")
        check("event=listening" not in new, "the new file repeats old lines")
        check("event=draining signal=SIGTERM" in new, "draining line not in the new file")
        check("event=stopped exit_code=0" in new, "stopped line not in the new file")
        check_no_sanitizer(old, new, out)


def test_sighup_without_log_file_keeps_running():
    with Server() as srv:
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: srv.log_has(r"event=log_reopened result=0"), 10, "log_reopened line")
        r = http(srv, "GET", "/healthz")
        eq(r.status, 200, "/healthz after SIGHUP")
