"""The JavaScript client (clients/js, docs/CLIENT.md) against the real binary: each test
starts the servers and runs one tests/e2e/node/client/*.test.mjs file with Node's built-in
test runner. The Node tests stop and start servers through a small control endpoint
served here (POST /kill, /start, /restart, /drain): a restarted server comes back on the
same port with the same data directory, as an operator's restart would."""

import http.server
import json
import os
import re
import signal
import subprocess
import tempfile
import threading

from cluster import Nodes, Redis, free_port
from harness import NODE_DIR, Server, TestFailure, check

SECRET = "e2e-client-js-hs256-secret-0123456789abcdef"
CLIENT_DIR = os.path.join(NODE_DIR, "client")


class Restartable:
    """A Server that can be SIGKILLed / drained and started again on its port and data dir."""

    def __init__(self, *args, **kw):
        self.data_dir = tempfile.mkdtemp(prefix="ringcast-e2e-client-")
        self.args = list(args) + [f"--data-dir={self.data_dir}"]
        self.kw = kw
        self.srv = None
        self.port = None

    def start(self):
        extra = [f"--port={self.port}"] if self.port else []
        self.srv = Server(*self.args, *extra, **self.kw).start()
        self.port = self.srv.port
        return self

    def kill(self):
        if self.srv and self.srv.proc:
            self.srv.proc.send_signal(signal.SIGKILL)
            self.srv.proc.wait(10)
            self.srv.proc = None
            self.srv.check_clean()

    def drain(self):
        """SIGTERM: the server closes WebSocket clients with 1012 and exits 0."""
        if self.srv:
            self.srv.stop()

    def close(self):
        if self.srv and self.srv.proc:
            self.srv.stop()
        import shutil
        shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"


class Control:
    """POST /<action> runs actions[action](body) in this process; answers 200 + JSON."""

    def __init__(self, actions):
        acts = actions

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                fn = acts.get(self.path.strip("/"))
                try:
                    if fn is None:
                        raise KeyError(self.path)
                    out, status = json.dumps(fn(body) or {}), 200
                except Exception as e:  # noqa: BLE001 - reported to the Node test
                    out, status = json.dumps({"error": repr(e)}), 500
                data = out.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def run_node_tests(name, env, timeout=150):
    """node --test on one file; fails naming the failed subtests. Returns the pass count."""
    e = dict(os.environ)
    e.update({k: str(v) for k, v in env.items()})
    e["RC_SECRET"] = SECRET
    e["RC_TIMEOUT_SCALE"] = str(Server.TIMEOUT_SCALE)
    try:
        p = subprocess.run(["node", "--test", "--test-reporter=tap", os.path.join(CLIENT_DIR, name)],
                           capture_output=True, text=True, env=e, cwd=NODE_DIR,
                           timeout=timeout * Server.TIMEOUT_SCALE)
    except subprocess.TimeoutExpired as te:
        raise TestFailure(f"node --test {name} timed out:\n{(te.stdout or '')[-3000:]}")
    out = p.stdout
    passed = re.search(r"^# pass (\d+)$", out, re.M)
    failed = re.search(r"^# fail (\d+)$", out, re.M)
    if p.returncode != 0 or not passed or not failed or failed.group(1) != "0":
        raise TestFailure(f"node --test {name} exited {p.returncode}:\n{out[-6000:]}\n{p.stderr[-2000:]}")
    n = int(passed.group(1))
    check(n > 0, f"node --test {name} ran no test")
    return n


def _single(*extra, tests, want, **env):
    srv = Restartable(f"--jwt-secret={SECRET}", *extra)
    srv.start()
    ctl = Control({
        "kill": lambda b: srv.kill(),
        "start": lambda b: srv.start() and None,
        "restart": lambda b: (srv.kill(), srv.start()) and None,
    })
    try:
        n = run_node_tests(tests, dict(env, RC_URL=srv.base, RC_CONTROL=ctl.url))
        check(n == want, f"{tests}: {n} tests passed, want {want}")
    finally:
        ctl.close()
        srv.close()


def test_client_js_basic_requests_errors_timeouts():
    _single("--client-publish", "--rules=chat.> presence=true", tests="client_basic.test.mjs", want=7)


def test_client_js_unit_backoff_ids_tokens():
    eq_n = run_node_tests("client_unit.test.mjs", {})
    check(eq_n == 5, f"client_unit: {eq_n} tests passed, want 5")


def test_client_js_reconnect_resume_dead_link_and_restart():
    _single("--heartbeat-interval=1s", tests="client_reconnect.test.mjs", want=4)


def test_client_js_token_refresh_and_token_expired():
    _single("--jwt-leeway=0s", "--token-grace=2s", tests="client_token.test.mjs", want=4)


def test_client_js_sse_resume_gap_and_token():
    _single("--jwt-leeway=0s", "--token-grace=2s", tests="client_sse.test.mjs", want=4)


def test_client_js_drain_1012_moves_to_the_other_node_without_gap():
    with Redis() as redis, Nodes(redis, 2, f"--jwt-secret={SECRET}") as nodes:
        ctl = Control({"drain": lambda b: nodes[0].stop()})
        try:
            n = run_node_tests("client_drain.test.mjs", {
                "RC_URL": nodes[0].base, "RC_URL2": nodes[1].base, "RC_CONTROL": ctl.url})
            check(n == 1, f"client_drain: {n} tests passed, want 1")
        finally:
            ctl.close()


def test_client_js_in_chromium_from_another_origin():
    import shutil
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    check(os.path.exists(chromium), "Debian's chromium is installed (scripts/deps.sh test)")
    page_port = free_port()
    _single(f"--allowed-origins=http://127.0.0.1:{page_port}", tests="client_browser.test.mjs",
            want=1, RC_PAGE_PORT=page_port, CHROMIUM=chromium)


def test_client_js_types_check_with_tsc():
    n = run_node_tests("client_types.test.mjs", {})
    check(n == 1, f"client_types: {n} tests passed, want 1")
