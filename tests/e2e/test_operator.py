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


def re_listening(text):
    return "event=listening" in text


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
        # closing gives the budget back: a new connection is admitted again (until the
        # server has seen the closes, an attempt is refused and counted like the others)
        refused_while_waiting = []

        def admitted():
            st = http(srv, "GET", "/healthz").status
            if st == 503:
                refused_while_waiting.append(st)
            return st == 200

        wait_for(admitted, 10, "a connection after the others closed", interval=0.05)
        eq(counters(srv)["refused_max_connections"], 2 + len(refused_while_waiting),
           "refused_max_connections: the 4th and 5th, and each attempt before the closes landed")


# ---- item: file-descriptor exhaustion ------------------------------------------------------


class fd_limit:
    """Start servers inside this block with RLIMIT_NOFILE soft = hard = n (the harness
    has no hook for it, so Popen is wrapped for the block's duration)."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.orig = subprocess.Popen
        n = self.n

        def limited(*a, **kw):
            kw["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
            return self.orig(*a, **kw)

        subprocess.Popen = limited
        return self

    def __exit__(self, *exc):
        subprocess.Popen = self.orig
        return False


def accept_paused_lines(srv):
    return [ln for ln in srv.log().splitlines() if "event=accept_paused" in ln]


def test_operator_fd_exhaustion_backs_off_and_recovers():
    with fd_limit(64):
        srv = Server(shards=2).start()
    clients = []
    try:
        check(srv.log_has(r"event=fd_limit .*max_connections=100000 open_file_limit=64"),
              "a start-up warning that max_connections exceeds the fd limit:\n" + srv.log())
        # many more connections than descriptors: the rest wait in the listen backlog
        for _ in range(120):
            clients.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        wait_for(lambda: accept_paused_lines(srv), 10, "an accept_paused log line")
        first = time.monotonic()
        cpu0, t0 = cpu_seconds(srv.proc.pid), time.monotonic()
        wait_for(lambda: time.monotonic() - t0 >= 2.0, 5, "a 2 s measuring window")
        cpu1, t1 = cpu_seconds(srv.proc.pid), time.monotonic()
        share = (cpu1 - cpu0) / (t1 - t0)
        check(share < 0.30, f"server CPU while out of fds: {share:.0%} of one core (want < 30%)")
        lines = accept_paused_lines(srv)
        # at most one line per shard per second (+1 each for the window's edges)
        allowed = 2 * (int(time.monotonic() - first) + 2)
        check(len(lines) <= allowed, f"{len(lines)} accept_paused lines (want <= {allowed})")
        check(all("count=" in ln and "Too many open files" in ln
                  for ln in lines), f"each line names the error and a count: {lines[:3]}")
        # freeing descriptors lets the server accept again
        for s in clients:
            s.close()
        clients = []
        wait_for(lambda: _try_http(srv), 20, "a new connection accepted", interval=0.1)
        c = counters(srv)
        check(c["accept_fd_exhausted"] > 0, f"accept_fd_exhausted counter: {c}")
        srv.stop()
    finally:
        for s in clients:
            s.close()
        if srv.proc is not None:
            srv.proc.kill()
            srv.proc.wait()


def _try_http(srv):
    try:
        return http(srv, "GET", "/healthz", timeout=2).status == 200
    except OSError:
        return False


# ---- item: a second server on the same port or data_dir ------------------------------------


def test_operator_second_server_on_same_port_is_refused():
    with Server(shards=2) as first, tempfile.TemporaryDirectory() as d:
        p = run_binary(f"--port={first.port}", "--listen-address=127.0.0.1", "--shards=2",
                       f"--data-dir={d}")
        eq(p.returncode, 1, f"exit code of the second server (stderr {p.stderr!r})")
        check(f"port {first.port} on 127.0.0.1 is already in use" in p.stderr,
              f"stderr names the port: {p.stderr!r}")
        check(f"pid {first.proc.pid} (ringcast)" in p.stderr,
              f"stderr names the process holding it: {p.stderr!r}")
        check(not re_listening(p.stdout + p.stderr), "the second server never listened")
        # the first one still owns every connection
        eq(http(first, "GET", "/healthz").status, 200, "first server still answers")


def test_operator_second_server_on_same_data_dir_is_refused():
    with Server(shards=1) as first:
        p = run_binary("--port=0", "--listen-address=127.0.0.1", "--shards=1",
                       f"--data-dir={first.data_dir}")
        check(p.returncode != 0, f"the second server exited non-zero (got {p.returncode})")
        eq(p.returncode, 2, f"exit code (stderr {p.stderr!r})")
        check(f"data_dir {first.data_dir} is in use by another ringcast (pid {first.proc.pid})"
              in p.stderr, f"stderr names the data_dir and the holder: {p.stderr!r}")
        check(not re_listening(p.stdout + p.stderr), "the second server never listened")
        eq(http(first, "GET", "/healthz").status, 200, "first server still answers")


# ---- item: the database in data_dir -------------------------------------------------------

RINGCAST_APP_ID = 0x52435354


def start_on(data_dir):
    """Start a server on data_dir that must fail; returns (exit code, stderr)."""
    p = run_binary("--port=0", "--listen-address=127.0.0.1", "--shards=1",
                   f"--data-dir={data_dir}")
    check(not re_listening(p.stdout + p.stderr), f"the server started:\n{p.stdout}")
    check("retry later" not in p.stderr, f"a start-up error is not 'retry later': {p.stderr!r}")
    return p.returncode, p.stderr


def make_db(data_dir, sql):
    con = sqlite3.connect(os.path.join(data_dir, "ringcast.db"))
    con.executescript(sql)
    con.commit()
    con.close()


def test_operator_store_refuses_a_file_that_is_not_a_database():
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "ringcast.db"), "w") as f:
            f.write("this is a text file that happens to be called ringcast.db\n" * 20)
        code, err = start_on(d)
        eq(code, 2, f"exit code ({err!r})")
        check("ringcast.db is not an SQLite database" in err, f"stderr says so: {err!r}")


def test_operator_store_refuses_a_corrupt_database():
    with tempfile.TemporaryDirectory() as d:
        make_db(d, f"PRAGMA application_id = {RINGCAST_APP_ID};"
                   "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                   "INSERT INTO schema_version VALUES (1);")
        path = os.path.join(d, "ringcast.db")
        with open(path, "r+b") as f:  # the schema's b-tree page, after the file header
            f.seek(100)
            f.write(b"\xa5" * 300)
        code, err = start_on(d)
        eq(code, 2, f"exit code ({err!r})")
        check("ringcast.db is corrupt" in err and "restore a backup" in err,
              f"stderr says so: {err!r}")


def test_operator_store_refuses_another_programs_database():
    with tempfile.TemporaryDirectory() as d:
        make_db(d, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
                   "CREATE TABLE orders (id INTEGER PRIMARY KEY);")
        code, err = start_on(d)
        eq(code, 2, f"exit code ({err!r})")
        check("is not a ringcast database (it holds tables orders, users" in err,
              f"stderr names the tables: {err!r}")
        con = sqlite3.connect(os.path.join(d, "ringcast.db"))
        tables = sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master "
                                                  "WHERE type = 'table'"))
        con.close()
        eq(tables, ["orders", "users"], "no table was added to the foreign database")
    with tempfile.TemporaryDirectory() as d:
        make_db(d, "PRAGMA application_id = 1234;")
        code, err = start_on(d)
        eq(code, 2, f"exit code ({err!r})")
        check("belongs to another program (application_id 0x000004d2" in err,
              f"stderr names the application id: {err!r}")


def test_operator_store_refuses_a_newer_schema():
    with tempfile.TemporaryDirectory() as d:
        make_db(d, f"PRAGMA application_id = {RINGCAST_APP_ID};"
                   "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                   "INSERT INTO schema_version VALUES (99);")
        code, err = start_on(d)
        eq(code, 2, f"exit code ({err!r})")
        check("has schema version 99 but this ringcast knows versions up to" in err,
              f"stderr says so: {err!r}")


def test_operator_store_refuses_a_changed_schema():
    with tempfile.TemporaryDirectory() as d:
        make_db(d, f"PRAGMA application_id = {RINGCAST_APP_ID};"
                   "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                   "INSERT INTO schema_version VALUES (1);")
        code, err = start_on(d)
        eq(code, 2, f"exit code ({err!r})")
        check("does not have the tables of schema version 1" in err, f"stderr says so: {err!r}")


def test_operator_store_marks_its_database_and_reopens_it():
    with tempfile.TemporaryDirectory() as d:
        with Server(f"--data-dir={d}", shards=1):
            pass
        con = sqlite3.connect(os.path.join(d, "ringcast.db"))
        eq(con.execute("PRAGMA application_id").fetchone()[0], RINGCAST_APP_ID, "application_id")
        con.close()
        with Server(f"--data-dir={d}", shards=1) as srv:  # its own database opens again
            eq(http(srv, "GET", "/healthz").status, 200, "healthz")


# ---- item: no api_keys and a reverse proxy on the same host -------------------------------


def test_operator_open_api_warns_at_start_and_on_forwarded_requests():
    with Server(shards=1) as srv:
        check(srv.log_has(r"event=api_open .*reverse proxy on this host"),
              "the start-up warning names the reverse-proxy case:\n" + srv.log())
        check(not srv.log_has("event=forwarded_without_api_keys"), "no warning before a request")
        for hdrs in ({"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"},
                     {"Forwarded": "for=203.0.113.9"}):
            eq(http(srv, "GET", "/healthz", headers=hdrs).status, 200, "healthz via a proxy")
        wait_for(lambda: srv.log_has("event=forwarded_without_api_keys"), 10, "the warning")
        eq(counters(srv)["forwarded_loopback"], 3, "forwarded_loopback counter")
        lines = [ln for ln in srv.log().splitlines() if "forwarded_without_api_keys" in ln]
        eq(len(lines), 1, f"warned once: {lines}")
        check("configure api_keys" in lines[0], f"the warning says what to do: {lines[0]}")


def test_operator_api_keys_silence_the_forwarded_warning():
    key = "admin-key-0123456789abcdef"
    with Server(f"--api-keys={key}", shards=1) as srv:
        check(not srv.log_has("event=api_open"), "no open-API warning with api_keys")
        eq(http(srv, "GET", "/healthz", headers={"X-Forwarded-For": "203.0.113.7"}).status, 200,
           "healthz via a proxy")
        r = http(srv, "GET", "/api/realtime/stats", headers={"X-API-Key": key})
        eq(r.status, 200, "stats with the key")
        eq(r.json()["counters"]["forwarded_loopback"], 0, "not counted with api_keys")
        check(not srv.log_has("event=forwarded_without_api_keys"), "no forwarded warning")


# ---- item: the Realtime API's response shapes ----------------------------------------------

NOTIFICATION_KEYS = {"id", "title", "message", "type", "priority", "status", "recipients",
                     "sender_id", "created_at", "delivered_at", "read_by", "actions",
                     "resource_type", "resource_id", "metadata"}
SUBSCRIPTION_KEYS = {"id", "user_id", "type", "status", "created_at", "updated_at", "expires_at",
                     "resource_id", "resource_type", "topic", "query", "labels", "metadata"}


def test_operator_realtime_api_shapes_as_documented():
    """Every endpoint of the Realtime API answers the shape its examples show: records with
    their fields, lists as bare arrays, the unread count and the broadcast count as bare
    numbers, 204 with no body on delete."""
    with Server(shards=2) as srv:
        base = "/api/realtime"
        r = http(srv, "POST", f"{base}/notifications", {
            "title": "New message", "message": "You have a new message from Jane",
            "recipients": ["user-456", "user-789"], "type": "message", "priority": "normal",
            "sender_id": "user-123", "resource_type": "message", "resource_id": "message-789",
            "actions": [{"label": "View", "action": "view", "data": {"id": "message-789"}}],
            "metadata": {"thread_id": "thread-123"}, "expires_at": "2035-05-16T10:30:00Z"})
        eq(r.status, 201, "create notification")
        n = r.json()
        check(NOTIFICATION_KEYS <= set(n), f"notification fields: {sorted(n)}")
        eq((n["status"], n["read_by"]), ("delivered", []), "fresh notification")
        r = http(srv, "GET", f"{base}/notifications?user_id=user-456&page=1&page_size=20")
        eq((r.status, type(r.json())), (200, list), "notification list is a bare array")
        eq(r.json()[0]["id"], n["id"], "listed")
        eq(http(srv, "GET", f"{base}/notifications/{n['id']}").json()["id"], n["id"], "get")
        r = http(srv, "GET", f"{base}/notifications/unread-count/user-456")
        eq((r.status, r.body.strip()), (200, b"1"), "unread count is a bare number")
        r = http(srv, "POST", f"{base}/notifications/{n['id']}/mark-read?user_id=user-456", b"")
        eq((r.status, r.json()["read_by"], r.json()["status"]), (200, ["user-456"], "delivered"),
           "mark-read answers the notification, read by one of two")
        eq(http(srv, "GET", f"{base}/notifications/unread-count/user-456").json(), 0, "count")

        r = http(srv, "POST", f"{base}/subscriptions/resource", {
            "user_id": "user-456", "resource_id": "post-789", "resource_type": "post",
            "labels": ["important", "post-updates"],
            "metadata": {"notification_channel": "email"}})
        eq(r.status, 201, "create resource subscription")
        rs = r.json()
        check(SUBSCRIPTION_KEYS <= set(rs), f"subscription fields: {sorted(rs)}")
        eq((rs["type"], rs["status"], rs["query"]), ("resource", "active", None), "resource sub")
        r = http(srv, "POST", f"{base}/subscriptions/topic", {
            "user_id": "user-456", "topic": "new-posts", "labels": ["news", "updates"],
            "payload_filter": {"category": "tech"}})
        eq(r.status, 201, "create topic subscription")
        ts = r.json()
        eq((ts["type"], ts["topic"], ts["resource_id"], ts["resource_type"], ts["query"]),
           ("topic", "new-posts", None, None, None), "topic sub")
        r = http(srv, "GET", f"{base}/subscriptions?user_id=user-456&status=active")
        eq((r.status, sorted(x["id"] for x in r.json())), (200, sorted([rs["id"], ts["id"]])),
           "subscription list is a bare array")
        r = http(srv, "PATCH", f"{base}/subscriptions/{rs['id']}/status", {"status": "paused"})
        eq((r.status, r.json()["status"]), (200, "paused"), "status update answers the record")
        r = http(srv, "DELETE", f"{base}/subscriptions/{rs['id']}")
        eq((r.status, r.body), (204, b""), "delete")

        r = http(srv, "POST", f"{base}/events", {
            "event": "update", "data": "{\"resource_id\":\"post-789\",\"action\":\"update\"}",
            "priority": "normal", "retry": 3000, "comment": "Resource update event"})
        eq(r.status, 201, "create event")
        ev = r.json()
        eq({k: ev[k] for k in ("event", "data", "priority", "retry", "comment")},
           {"event": "update", "data": "{\"resource_id\":\"post-789\",\"action\":\"update\"}",
            "priority": "normal", "retry": 3000, "comment": "Resource update event"}, "echoed")
        check(isinstance(ev.get("id"), str) and ev["id"], f"event id: {ev}")
        r = http(srv, "POST", f"{base}/events/broadcast", {"event": "update", "data": "{}"})
        eq((r.status, r.json()), (200, 0), "broadcast answers a bare number")
