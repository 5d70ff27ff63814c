"""The PostgreSQL store engine (issue 14) against the real binary and a real
PostgreSQL 15 of the test's own (pg_server.py): two nodes with
store=postgres and the same postgres_url serve one inbox (a notification
created on node A is listed with X-Total-Count, counted and marked read on
node B; durable subscriptions created on A are listed and paused on B);
--check-config connects (unreachable server, missing URL, newer schema: exit
2 with a clear message; the URL's password is never printed); PostgreSQL
stopped: creates answer 503 store_unavailable at once and the server
survives; started again: creates work again without a restart of ringcast.
And every test of test_notifications.py once more with store=postgres
(test_store_pg_notifications_<name>): the same endpoints answering the same."""

import os
import subprocess
import time

import pg_server
import test_notifications
from harness import Server, TestFailure, check, eq, wait_for
from test_notifications import NP, SP, call, create_notif, create_sub, err_code

TSAN_OK = True


def pg_node(pg, *args, env=None, url=None):
    return Server("--store=postgres", f"--postgres-url={url or pg.url()}", *args, env=env)


def need_pg():
    if not pg_server.available():
        raise TestFailure("PostgreSQL 15 is not installed (Debian's postgresql-15; "
                          "scripts/deps.sh installs it)")


def test_store_pg_two_nodes_share_one_inbox():
    need_pg()
    pg = pg_server.PgServer()
    try:
        # node B takes the password from the environment (trust auth ignores it)
        with pg_node(pg) as a, pg_node(pg, env={"RINGCAST_POSTGRES_PASSWORD": "pw-e2e"}) as b:
            n = create_notif(a, ["u1", "u2"], metadata={"thread_id": "t-1"})
            more = [create_notif(a, ["u1"], title=f"n{i}")["id"] for i in range(3)]
            r = call(b, "GET", f"{NP}?user_id=u1&page=1&page_size=2")
            eq(r.status, 200, f"list on B: {r}")
            eq(r.header("X-Total-Count"), "4", "X-Total-Count on B")
            eq([x["id"] for x in r.json()], [more[2], more[1]], "newest first on B")
            r = call(b, "GET", f"{NP}/{n['id']}")
            eq(r.json(), n, "B returns the notification A stored, field for field")
            eq(call(b, "GET", f"{NP}/unread-count/u1").json(), 4, "unread on B")
            r = call(b, "POST", f"{NP}/{n['id']}/mark-read?user_id=u1")
            eq((r.status, r.json()["read_by"]), (200, ["u1"]), "mark-read on B")
            eq(call(a, "GET", f"{NP}/unread-count/u1").json(), 3, "A sees B's mark-read")
            r = call(a, "POST", f"{NP}/{n['id']}/mark-read?user_id=u2")
            eq(r.json()["status"], "read", "read once both read it (on two nodes)")
            r = call(b, "GET", f"{NP}?user_id=u2&status=read")
            eq([x["id"] for x in r.json()], [n["id"]], "status=read on B")

            s1 = create_sub(a, "u1", "news.tech", labels=["x"], payload_filter={"k": "v"})
            s2 = create_sub(a, "u1", "news.art")
            r = call(b, "GET", f"{SP}?user_id=u1")
            eq(r.header("X-Total-Count"), "2", "subscriptions total on B")
            eq([x["id"] for x in r.json()], [s2["id"], s1["id"]], "A's subscriptions on B")
            eq(r.json()[1], s1, "labels, payload_filter as stored")
            r = call(b, "PATCH", f"{SP}/{s1['id']}/status", {"status": "paused"})
            eq((r.status, r.json()["status"]), (200, "paused"), "pause on B")
            r = call(a, "GET", f"{SP}?user_id=u1&status=paused")
            eq([x["id"] for x in r.json()], [s1["id"]], "A sees it paused")
            eq(call(b, "DELETE", f"{SP}/{s2['id']}").status, 204, "delete on B")
            eq(call(a, "GET", f"{SP}/{s2['id']}").status, 404, "gone on A too")
        eq(pg.psql("SELECT version FROM schema_version"), "1", "schema_version")
    finally:
        pg.close()


def test_store_pg_nodes_starting_together_share_one_schema():
    """Three nodes started at the same moment on an empty database: the
    migration lock lets one create the schema, the others wait and find it."""
    need_pg()
    pg = pg_server.PgServer()
    nodes = [pg_node(pg) for _ in range(3)]
    errors = []
    try:
        import threading

        def start(n):
            try:
                n.start()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
        th = [threading.Thread(target=start, args=(n,)) for n in nodes]
        for t in th:
            t.start()
        for t in th:
            t.join(60)
        check(not errors, f"every node started: {errors}")
        eq(pg.psql("SELECT count(*) || ' ' || max(version) FROM schema_version"), "1 1",
           "one schema_version row")
        ids = [create_notif(n, ["u1"], title=f"from {i}")["id"] for i, n in enumerate(nodes)]
        for n in nodes:
            r = call(n, "GET", f"{NP}?user_id=u1")
            eq([x["id"] for x in r.json()], list(reversed(ids)), "every node lists all three")
        for n in nodes:
            n.stop()
    finally:
        for n in nodes:
            if n.proc is not None:
                n.proc.kill()
                n.proc.wait()
        pg.close()


def check_config(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("RINGCAST_")}
    e.update(env or {})
    return subprocess.run([Server.BINARY, "--check-config", *args], capture_output=True,
                          text=True, timeout=30, env=e)


def test_store_pg_check_config_connects():
    need_pg()
    pg = pg_server.PgServer()
    try:
        port = pg.port
        url = f"postgresql://postgres:secret-in-url@127.0.0.1:{port}/postgres"
        r = check_config("--store=postgres", f"--postgres-url={url}",
                         env={"RINGCAST_POSTGRES_PASSWORD": "secret-in-env"})
        eq(r.returncode, 0, f"reachable: {r.stderr}")
        for secret in ("secret-in-url", "secret-in-env"):
            check(secret not in r.stdout + r.stderr, f"{secret} printed: {r.stdout}")
        check("postgres_url" in r.stdout, "the key is listed (as set)")

        pg.psql("CREATE DATABASE rc_newer")
        pg.psql("CREATE TABLE schema_version (version integer NOT NULL);"
                " INSERT INTO schema_version VALUES (99)", db="rc_newer")
        r = check_config("--store=postgres", f"--postgres-url={pg.url('rc_newer')}")
        eq(r.returncode, 2, "newer schema")
        check("has schema version 99 but this ringcast knows versions up to 1" in r.stderr,
              f"message: {r.stderr}")

        r = check_config("--store=postgres")
        eq(r.returncode, 2, "no URL")
        check("store=postgres needs postgres_url" in r.stderr, f"message: {r.stderr}")
        r = check_config(f"--postgres-url={pg.url()}")
        eq(r.returncode, 2, "URL without store=postgres")
        check("set store=postgres" in r.stderr, f"message: {r.stderr}")
        r = check_config("--store=mysql")
        eq(r.returncode, 2, "unknown engine")

        pg.stop()
        t0 = time.monotonic()
        r = check_config("--store=postgres", f"--postgres-url={url}")
        eq(r.returncode, 2, "unreachable")
        check("cannot connect to PostgreSQL (postgres_url)" in r.stderr, f"message: {r.stderr}")
        check("Connection refused" in r.stderr, f"the reason: {r.stderr}")
        check("secret-in-url" not in r.stderr, "the password is not in the message")
        check(time.monotonic() - t0 < 10, "answered quickly")
        # the server itself refuses to start the same way
        srv = pg_node(pg, url=url)
        try:
            srv.start()
            raise TestFailure("ringcast started without its PostgreSQL")
        except TestFailure as e:
            check("cannot connect to PostgreSQL" in str(e), f"start refused: {e}")
        eq(srv.proc.wait(10), 2, "exit code at start")
        srv.proc = None
    finally:
        pg.close()


def test_store_pg_password_from_the_environment():
    """A role with scram-sha-256: the wrong password is refused at --check-config
    and at start (exit 2, libpq's reason); RINGCAST_POSTGRES_PASSWORD or the
    postgres_password key logs in; neither is ever printed."""
    need_pg()
    pg = pg_server.PgServer()
    try:
        pg.psql("CREATE ROLE rc_pw LOGIN PASSWORD 'right-pw-0123'")
        pg.psql("CREATE DATABASE rc_pw OWNER rc_pw")
        url = f"postgresql://rc_pw@127.0.0.1:{pg.port}/rc_pw"
        r = check_config("--store=postgres", f"--postgres-url={url}",
                         env={"RINGCAST_POSTGRES_PASSWORD": "wrong-pw-0123",
                              "PGPASSFILE": "/nonexistent"})
        eq(r.returncode, 2, f"wrong password: {r.stdout}")
        check("password authentication failed for user \"rc_pw\"" in r.stderr,
              f"reason: {r.stderr}")
        check("wrong-pw" not in r.stderr + r.stdout, "the password is not printed")
        r = check_config("--store=postgres", f"--postgres-url={url}",
                         env={"RINGCAST_POSTGRES_PASSWORD": "right-pw-0123"})
        eq(r.returncode, 0, f"right password: {r.stderr}")
        check("right-pw" not in r.stderr + r.stdout, "the password is not printed")
        r = check_config("--store=postgres", f"--postgres-url={url}",
                         "--postgres-password=right-pw-0123")
        eq(r.returncode, 0, f"the key: {r.stderr}")
        with pg_node(pg, url=url, env={"RINGCAST_POSTGRES_PASSWORD": "right-pw-0123"}) as srv:
            n = create_notif(srv, ["u1"])
            eq(call(srv, "GET", f"{NP}/{n['id']}").json(), n, "works as rc_pw")
            check("right-pw" not in srv.log(), "the password is not logged")
        eq(pg.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'notifications'",
                   db="rc_pw"), "rc_pw", "the tables belong to the role")
    finally:
        pg.close()


def test_store_pg_outage_gives_503_then_recovers():
    need_pg()
    pg = pg_server.PgServer()
    try:
        with pg_node(pg) as srv:
            create_notif(srv, ["u1"], title="before")
            pg.stop()
            for i in range(5):
                t0 = time.monotonic()
                r = call(srv, "POST", NP, {"title": "during", "message": "m", "recipients": ["u1"]})
                eq(r.status, 503, f"create while PostgreSQL is down ({i}): {r}")
                eq(err_code(r), "store_unavailable", "code")
                check(time.monotonic() - t0 < 3, "answered at once, not after a timeout")
            r = call(srv, "GET", f"{NP}/unread-count/u1")
            eq((r.status, err_code(r)), (503, "store_unavailable"), "reads too")
            eq(call(srv, "GET", "/healthz").status, 200, "the server lives on")
            pg.start()

            def created():
                r = call(srv, "POST", NP, {"title": "after", "message": "m", "recipients": ["u1"]})
                return r.status == 201
            wait_for(created, 15, "a create to work again after PostgreSQL is back",
                     interval=0.1)
            eq(call(srv, "GET", f"{NP}/unread-count/u1").json(), 2,
               "before + after; nothing of the outage was saved")
            check(srv.log_has("event=store_reconnected"), "the reconnect is logged")
    finally:
        pg.close()


# ---- test_notifications.py again, on PostgreSQL ------------------------------------------------

_SHARED = {}
# SQLite's own: a data_dir that cannot be created
_SQLITE_ONLY = {"test_store_bad_data_dir_exits_2"}


def _on_pg(fn):
    def run():
        need_pg()
        if "pg" not in _SHARED:
            _SHARED["pg"] = pg_server.PgServer()
            import atexit
            atexit.register(_SHARED["pg"].close)
        test_notifications.PG = _SHARED["pg"]
        try:
            fn()
        finally:
            test_notifications.PG = None
    return run


for _name in sorted(dir(test_notifications)):
    if _name.startswith("test_") and _name not in _SQLITE_ONLY:
        globals()["test_store_pg_notifications_" + _name[len("test_"):]] = _on_pg(
            getattr(test_notifications, _name))
