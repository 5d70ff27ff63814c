"""Smoke: the server starts, answers /healthz, and drains on SIGTERM."""
from harness import Server, eq, http


def test_healthz_ok_then_clean_exit():
    with Server() as srv:
        r = http(srv, "GET", "/healthz")
        eq(r.status, 200, "status")
        eq(r.json(), {"status": "ok"}, "body")
