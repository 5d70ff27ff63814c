"""The ringcast command as a CLI (the same binary), against a real server: publish,
subscribe (a WebSocket client in C printing JSON lines, stopped with SIGINT), stats,
disconnect (also POST /api/realtime/disconnect directly, with python-websockets and SSE
clients on the receiving end, and across two nodes with broker=redis), gentoken /
checktoken (HS256, ES256, RS256), genconfig / checkconfig, serve, usage errors, --help,
and an unreachable --url."""
import asyncio
import json
import os
import re
import signal
import subprocess
import tempfile
import threading

import harness
from cluster import Nodes, Redis, free_port
from harness import (Server, TestFailure, check, eq, http, publish, raw_connect,
                     recv_until_close, run_async, wait_for, ws_connect, ws_next, ws_request)

SECRET = "cli-e2e-hs256-secret-0123456789abcdefgh"
COMMANDS = ["publish", "subscribe", "stats", "disconnect", "gentoken", "checktoken",
            "genconfig"]


def cli_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGCAST_")}
    env.update(extra or {})
    return env


def cli(*args, env=None, stdin=None, timeout=20.0):
    """Run the binary as a CLI; (exit code, stdout, stderr)."""
    p = subprocess.run([Server.BINARY] + [str(a) for a in args], capture_output=True, text=True,
                       env=cli_env(env), input=stdin, timeout=timeout * Server.TIMEOUT_SCALE)
    return p.returncode, p.stdout, p.stderr


def url(srv):
    return f"--url=http://127.0.0.1:{srv.port}"


class Subscriber:
    """`ringcast subscribe ...` in the background; stdout lines parsed as JSON."""

    def __init__(self, srv, *args, env=None):
        self.proc = subprocess.Popen([Server.BINARY, "subscribe", url(srv)] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=cli_env(env))
        self.lines, self.err, self.lock = [], [], threading.Lock()
        self.threads = [threading.Thread(target=self._pump, args=(f, l), daemon=True)
                        for f, l in ((self.proc.stdout, self.lines), (self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    def _pump(self, f, into):
        for ln in f:
            with self.lock:
                into.append(ln.rstrip("\n"))

    def events(self):
        with self.lock:
            return [json.loads(ln) for ln in self.lines]

    def stderr(self):
        with self.lock:
            return "\n".join(self.err)

    def wait_subscribed(self):
        def ok():
            if self.proc.poll() is not None:
                raise TestFailure(f"subscribe exited {self.proc.returncode}: {self.stderr()}")
            return "subscribed to" in self.stderr()
        wait_for(ok, 10 * Server.TIMEOUT_SCALE, "the CLI's subscribed line")

    def wait_events(self, n):
        return wait_for(lambda: len(self.events()) >= n and self.events(),
                        10 * Server.TIMEOUT_SCALE, f"{n} event line(s) from the CLI")

    def wait_exit(self):
        try:
            code = self.proc.wait(10 * Server.TIMEOUT_SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise TestFailure("ringcast subscribe did not exit")
        for t in self.threads:
            t.join(5)
        return code

    def interrupt(self):
        self.proc.send_signal(signal.SIGINT)
        return self.wait_exit()


def test_cli_publish_then_subscribe_prints_json_lines_and_sigint_exits_0():
    with Server() as srv:
        sub = Subscriber(srv, "cli.>")
        sub.wait_subscribed()
        code, out, err = cli("publish", "cli.one", '{"n":1,"s":"x"}', "--type=thing.made", url(srv))
        eq(code, 0, f"publish exit code ({err})")
        answer = json.loads(out)
        eq(answer["topic"], "cli.one", "publish answer topic")
        code, out2, _ = cli("publish", "cli.two", url(srv))  # no data: null
        eq(code, 0, "publish without data")
        evs = sub.wait_events(2)
        eq(evs[0]["id"], answer["id"], "event id = the publish answer's id")
        eq((evs[0]["topic"], evs[0]["type"], evs[0]["data"]), ("cli.one", "thing.made",
                                                              {"n": 1, "s": "x"}), "first event")
        eq((evs[1]["topic"], evs[1]["type"], evs[1]["data"]), ("cli.two", "message", None),
           "second event")
        eq(sub.interrupt(), 0, "subscribe's exit code after SIGINT")
        # the CLI closed with 1000: the server saw a clean close, no error logged for it
        check(not srv.log_has(r"level=error"), "no error in the server log")


def test_cli_subscribe_since_resumes_and_filter_narrows():
    with Server() as srv:
        ids = [publish(srv, "cli.hist", {"k": k}) for k in range(4)]
        sub = Subscriber(srv, "cli.hist", f"--since={ids[0]}")
        sub.wait_subscribed()
        evs = sub.wait_events(3)
        eq([e["id"] for e in evs], ids[1:], "replayed after --since, in order")
        eq([e["data"]["k"] for e in evs], [1, 2, 3], "replayed data")
        eq(sub.interrupt(), 0, "exit code")

        f = Subscriber(srv, "cli.f.*", '--filter={"color":{"$in":["red","blue"]}}')
        f.wait_subscribed()
        for c in ["green", "red", "yellow", "blue"]:
            publish(srv, "cli.f.x", {"color": c})
        evs = f.wait_events(2)
        eq(f.interrupt(), 0, "exit code")
        # order is kept, so anything the filter let through would be among these
        eq([e["data"]["color"] for e in f.events()], ["red", "blue"], "only matching events")

        # a filter the server refuses: the subscribe's error, exit 3
        code, _, err = cli("subscribe", "cli.x", '--filter={"a":{"$regex":"x"}}', url(srv))
        eq(code, 3, f"refused filter exit code ({err})")
        check("bad_filter" in err and "$regex" in err, f"the server's reason is shown: {err}")
        # --since on a pattern is refused too
        code, _, err = cli("subscribe", "cli.>", f"--since={ids[0]}", url(srv))
        eq(code, 3, f"since on a pattern ({err})")


def test_cli_stats_prints_json_and_uses_the_api_key():
    with Server(f"--jwt-secret={SECRET}") as srv:
        code, out, err = cli("stats", url(srv))
        eq(code, 0, f"stats exit code ({err})")
        st = json.loads(out)
        check("counters" in st and "total_connections" in st, f"stats shape: {list(st)}")
        code, out, _ = cli("stats", "--limit=0", url(srv))
        eq((code, json.loads(out)["subscriptions_limit"]), (0, 0), "--limit passed on")

        async def lookup():
            a = await ws_connect(srv, "/api/realtime/ws?token=" + harness.hs256_token(SECRET, "ann b&c", 600))
            await ws_request(a, {"action": "subscribe", "topic": "cli.top"})
            other = await ws_connect(srv, "/api/realtime/ws?token=" + harness.hs256_token(SECRET, "zoe", 600))
            await ws_request(other, {"action": "subscribe", "topic": "cli.top"})
            code, out, err = cli("stats", "--user=ann b&c", "--top=3", url(srv))
            eq(code, 0, f"stats --user ({err})")
            st = json.loads(out)
            eq(list(st["connections"]), [a.connection_id], "--user: only that user (encoded)")
            eq(st["top_subscriptions"], [{"pattern": "cli.top", "subscriptions": 2}], "--top")
            code, out, _ = cli("stats", f"--connection={other.connection_id}", url(srv))
            eq(list(json.loads(out)["connections"]), [other.connection_id], "--connection")
            for bad in ("--top=x", "--connection=12", "--user="):
                code, _, err = cli("stats", bad, url(srv))
                eq(code, 2, f"{bad}: a usage error ({err})")
            await a.close()
            await other.close()
        run_async(lookup())
    key = "cli-admin-key-0123456789abcdef"
    with Server(f"--api-keys={key}:admin,cli-publish-key-0123456789abcdef:publish") as srv:
        code, _, err = cli("stats", url(srv))
        eq(code, 3, "no key: refused")
        check("401" in err and "--api-key" in err, f"says what to do: {err}")
        code, _, err = cli("stats", url(srv), "--api-key=cli-publish-key-0123456789abcdef")
        eq(code, 3, "a key without the admin scope")
        check("403" in err and "admin" in err, f"names the scope: {err}")
        code, out, _ = cli("stats", url(srv), f"--api-key={key}")
        eq(code, 0, "--api-key")
        code, out, _ = cli("stats", url(srv), env={"RINGCAST_API_KEY": key})
        eq(code, 0, "RINGCAST_API_KEY")
        # the configured api_keys (the same config file as the server's) give the key too
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(f"api_keys = {key}:admin\nport = {srv.port}\nlisten_address = 127.0.0.1\n")
            f.flush()
            code, out, err = cli("stats", f"--config={f.name}")
            eq(code, 0, f"key and URL from the config file ({err})")


def sse_open(srv, query):
    s = raw_connect(srv)
    s.sendall(f"GET /api/realtime/events?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    buf = b""
    while b"connection_id" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise TestFailure(f"SSE stream ended early: {buf!r}")
        buf += chunk
    return s


def test_cli_disconnect_user_closes_their_websockets_and_sse_with_the_reason():
    with Server(f"--jwt-secret={SECRET}", shards=3) as srv:
        env = {"RINGCAST_JWT_SECRET": SECRET}
        toks = {}
        for u in ("alice", "bob"):
            code, out, err = cli("gentoken", f"--sub={u}", env=env)
            eq(code, 0, f"gentoken ({err})")
            toks[u] = out.strip()
        sub = Subscriber(srv, "room.>", f"--token={toks['alice']}")
        sub.wait_subscribed()
        sse = sse_open(srv, f"topic=room.a&token={toks['alice']}")

        async def run():
            alice = [await token_connect(srv, toks["alice"]) for _ in range(3)]
            while len({c.connection_id[:2] for c in alice}) < 2 and len(alice) < 32:
                alice.append(await token_connect(srv, toks["alice"]))  # span shards
            check(len({c.connection_id[:2] for c in alice}) >= 2, "alice on two shards")
            bob = await token_connect(srv, toks["bob"])
            code, out, err = await asyncio.to_thread(
                cli, "disconnect", "--user=alice", "--reason=maintenance window", "--code=4001",
                url(srv))
            eq(code, 0, f"disconnect exit code ({err})")
            eq(json.loads(out), {"user_id": "alice", "closed": len(alice) + 2,
                                 "other_nodes_told": False},
               "alice's WebSockets + the CLI's + the SSE stream")
            for ws in alice:
                await asyncio.wait_for(ws.wait_closed(), 10)
                eq((ws.close_code, ws.close_reason), (4001, "maintenance window"),
                   "close frame of alice's connection")
            r = await ws_request(bob, {"action": "ping", "id": 1})
            eq(r["type"], "pong", "bob's connection is untouched")
            await bob.close()
        run_async(run())
        eq(sub.wait_exit(), 1, "the CLI subscriber ends with 1 when the server closes it")
        check("4001 maintenance window" in sub.stderr(), f"reason on stderr: {sub.stderr()}")
        tail = recv_until_close(sse).decode()
        check("event: disconnect" in tail and '"reason":"maintenance window"' in tail and
              '"code":4001' in tail, f"the SSE stream's last record: {tail!r}")
        # nobody left: 0 closed
        code, out, _ = cli("disconnect", "--user=alice", url(srv))
        eq(json.loads(out)["closed"], 0, "a second disconnect finds nothing")


def test_disconnect_api_one_connection_and_bad_inputs():
    with Server() as srv:
        async def run():
            a = await ws_connect(srv)
            b = await ws_connect(srv)
            r = http(srv, "POST", "/api/realtime/disconnect", {"connection_id": a.connection_id})
            eq((r.status, r.json()["closed"]), (200, 1), f"by connection id: {r}")
            await asyncio.wait_for(a.wait_closed(), 10)
            eq(a.close_code, 1000, "default code")
            check("administrator" in a.close_reason, f"default reason: {a.close_reason}")
            eq((await ws_request(b, {"action": "ping", "id": 2}))["type"], "pong", "b stays")
            await b.close()
        run_async(run())
        bad = [
            ({}, "exactly one of"),
            ({"user_id": "u", "connection_id": "0000000000000001"}, "exactly one of"),
            ({"user_id": ""}, "1..128"),
            ({"user_id": 7}, "user_id"),
            ({"connection_id": "xyz"}, "16 hex digits"),
            ({"user_id": "u", "reason": "r" * 124}, "123 bytes"),
            ({"user_id": "u", "reason": 5}, "reason"),
            ({"user_id": "u", "code": 1005}, "close code"),
            ({"user_id": "u", "code": 999}, "close code"),
            ({"user_id": "u", "code": "1000"}, "close code"),
        ]
        for body, want in bad:
            r = http(srv, "POST", "/api/realtime/disconnect", body)
            eq(r.status, 400, f"{body}: status")
            check(want in r.json()["error"]["message"], f"{body}: message {r.json()}")
        r = http(srv, "POST", "/api/realtime/disconnect", {"user_id": "u", "reason": "r" * 123,
                                                          "code": 4999})
        eq((r.status, r.json()["closed"]), (200, 0), "123 bytes and code 4999 are fine")
        r = http(srv, "POST", "/api/realtime/disconnect", {"connection_id": "ff00000000000001"})
        eq(r.status, 404, "a shard this node does not have")
        r = http(srv, "POST", "/api/realtime/disconnect", {"connection_id": "0100000500000009"})
        eq((r.status, r.json()["closed"]), (200, 0), "an id nobody holds")
        r = http(srv, "GET", "/api/realtime/disconnect")
        eq(r.status, 405, "GET")
        eq(http(srv, "GET", "/healthz").status, 200, "the server is fine")
    with Server("--api-keys=cli-pub-only-key-0123456789abcdef:publish") as srv:
        r = http(srv, "POST", "/api/realtime/disconnect", {"user_id": "u"},
                 headers={"X-API-Key": "cli-pub-only-key-0123456789abcdef"})
        eq(r.status, 403, "needs the admin scope")


def test_cli_disconnect_user_reaches_every_node_with_redis():
    with Redis() as redis, Nodes(redis, 2, f"--jwt-secret={SECRET}") as nodes:
        _, tok, _ = cli("gentoken", "--sub=dave", env={"RINGCAST_JWT_SECRET": SECRET})
        hdr = {"extra_headers": {"Authorization": f"Bearer {tok.strip()}"}}

        async def run():
            conns = [await ws_connect(n, **hdr) for n in nodes for _ in range(2)]
            code, out, err = await asyncio.to_thread(cli, "disconnect", "--user=dave",
                                                     "--reason=moved", url(nodes[0]))
            eq(code, 0, f"exit code ({err})")
            eq(json.loads(out), {"user_id": "dave", "closed": 2, "other_nodes_told": True},
               "this node's count")
            for ws in conns:
                await asyncio.wait_for(ws.wait_closed(), 10)
                eq((ws.close_code, ws.close_reason), (1000, "moved"), "closed on every node")
        run_async(run())


async def token_connect(srv, tok):
    """A python-websockets connection with a token header, past its "authenticated"."""
    ws = await ws_connect(srv, extra_headers={"Authorization": f"Bearer {tok}"})
    await ws_next(ws, type_="authenticated")
    return ws


def write(dirpath, name, text):
    p = os.path.join(dirpath, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def test_cli_gentoken_accepted_by_the_server_and_checktoken_verdicts():
    env = {"RINGCAST_JWT_SECRET": SECRET}
    with Server(f"--jwt-secret={SECRET}") as srv:
        code, out, err = cli("gentoken", "--sub=carol", "--ttl=15m", "--topics=team.x.>,b.c",
                             "--claim=plan=pro", "--claim=level=3", env=env)
        eq(code, 0, f"gentoken ({err})")
        tok = out.strip()

        async def run():
            ws = await token_connect(srv, tok)
            r = await ws_request(ws, {"action": "subscribe", "topic": "user.carol.inbox",
                                      "id": 1})
            eq(r["type"], "subscribed", "carol's personal topic: the token was accepted")
            await ws.close()
        run_async(run())
        code, out, err = cli("checktoken", tok, env=env)
        eq(code, 0, f"checktoken ({err})")
        c = json.loads(out)
        eq((c["valid"], c["alg"], c["sub"], c["topics"]), (True, "HS256", "carol",
                                                           ["team.x.>", "b.c"]), "claims")
        check(895 <= c["expires_in_s"] <= 900, f"ttl 15m: {c}")
        eq((c["plan"], c["level"], c["exp"] - c["iat"]), ("pro", 3, 900), "custom claims, exp")
        eq(cli("checktoken", "-", env=env, stdin=tok + "\n")[0], 0, "the token from stdin")
        # a damaged signature, another secret, an expired token
        head, body, sig = tok.split(".")
        bad = f"{head}.{body}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
        code, _, err = cli("checktoken", bad, env=env)
        eq(code, 3, "bad signature")
        check("signature does not verify" in err, f"reason: {err}")
        code, _, err = cli("checktoken", tok, env={"RINGCAST_JWT_SECRET": "x" * 40})
        eq(code, 3, "another secret")
        code, out, _ = cli("gentoken", "--sub=carol", "--claim=exp=1000", env=env)
        code, _, err = cli("checktoken", out.strip(), env=env)
        eq(code, 3, "expired")
        check("token_expired" in err and "expired" in err, f"reason: {err}")
        code, _, err = cli("checktoken", "not-a-token", env=env)
        eq(code, 3, "malformed")
        check("malformed" in err, f"reason: {err}")
        # iss/aud from the configuration go into the token and are checked
        code, out, _ = cli("gentoken", "--sub=x", env=dict(env, RINGCAST_JWT_ISSUER="me"))
        eq(cli("checktoken", out.strip(), env=dict(env, RINGCAST_JWT_ISSUER="me"))[0], 0, "iss")
        code, _, err = cli("checktoken", out.strip(), env=dict(env, RINGCAST_JWT_ISSUER="you"))
        eq(code, 3, f"wrong iss ({err})")
    # no key configured at all
    code, _, err = cli("checktoken", tok)
    eq(code, 2, "no key configured")
    check("jwt_secret" in err, f"says what to set: {err}")
    code, _, err = cli("gentoken", "--sub=x")
    eq(code, 2, "gentoken without a key")
    check("--key" in err and "jwt_secret" in err, f"says what to set: {err}")


def test_cli_gentoken_es256_and_rs256_from_private_keys():
    with tempfile.TemporaryDirectory() as d:
        for alg, gen in (("ES256", ["ecparam", "-name", "prime256v1", "-genkey", "-noout"]),
                         ("RS256", ["genpkey", "-algorithm", "RSA", "-pkeyopt",
                                    "rsa_keygen_bits:2048"])):
            priv, pub = os.path.join(d, alg + ".pem"), os.path.join(d, alg + ".pub")
            subprocess.run(["openssl"] + gen + ["-out", priv], check=True, capture_output=True)
            subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                           capture_output=True)
            code, out, err = cli("gentoken", "--sub=erin", f"--key={priv}")
            eq(code, 0, f"{alg} gentoken ({err})")
            tok = out.strip()
            env = {"RINGCAST_JWT_PUBLIC_KEY_FILE": pub}
            code, out, err = cli("checktoken", tok, env=env)
            eq((code, json.loads(out or "{}").get("alg")), (0, alg), f"{alg} checktoken ({err})")
            with Server(f"--jwt-public-key-file={pub}") as srv:
                async def run():
                    ws = await token_connect(srv, tok)
                    r = await ws_request(ws, {"action": "subscribe", "topic": "user.erin.a",
                                              "id": 1})
                    eq(r["type"], "subscribed", f"{alg} token accepted")
                    await ws.close()
                run_async(run())
        code, _, err = cli("gentoken", "--sub=x", f"--key={pub}")
        eq(code, 2, "a public key cannot sign")
        code, _, err = cli("gentoken", "--sub=x", f"--key={d}/missing.pem")
        eq(code, 2, "a missing key file")
        check("missing.pem" in err, f"names the file: {err}")


def config_keys(text):
    return [m.group(1) for m in re.finditer(r"^(?:# )?([a-z_]+) = ", text, re.M)]


def test_cli_genconfig_loads_with_checkconfig_and_names_every_key():
    code, gen, err = cli("genconfig")
    eq(code, 0, f"genconfig ({err})")
    code, help_, _ = cli("--help")
    eq(code, 0, "--help")
    keys_help = re.findall(r"^  ([a-z_]+) +(?:bool|number|port|size|duration|string|address|"
                           r"enum|list)\b", help_, re.M)
    check(len(keys_help) > 50, f"keys listed by --help: {len(keys_help)}")
    eq(config_keys(gen), keys_help, "genconfig names every key once, in --help's order")
    check(gen.count("\n# ") >= 2 * len(keys_help), "every key has its comment lines")
    with tempfile.TemporaryDirectory() as d:
        path = write(d, "gen.conf", gen)
        code, eff, err = cli("checkconfig", f"--config={path}")
        eq(code, 0, f"checkconfig of genconfig's output ({err})")
        code, dflt, _ = cli("checkconfig")
        eq(code, 0, "checkconfig without a file")
        body = lambda t: t.split("\n", 1)[1]
        eq(body(eff), body(dflt), "genconfig's file holds exactly the defaults")
        eq(cli("--check-config", f"--config={path}")[1], eff, "checkconfig = --check-config")
        bad = write(d, "bad.conf", "shards = 0\nport = 99999\n")
        code, _, err = cli("checkconfig", f"--config={bad}")
        eq(code, 2, "a bad config")
        check("port" in err, f"names the key: {err}")


def test_cli_serve_runs_the_server():
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.Popen([Server.BINARY, "serve", "--port=0", "--listen-address=127.0.0.1",
                              "--shards=1", f"--data-dir={d}"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=cli_env())
        try:
            port = None
            for ln in p.stdout:
                m = re.search(r"event=listening .*port=(\d+)", ln)
                if m:
                    port = int(m.group(1))
                    break
            check(port, "serve logged listening")
            code, out, err = cli("stats", f"--url=http://127.0.0.1:{port}")
            eq(code, 0, f"the served node answers ({err})")
            p.send_signal(signal.SIGTERM)
            eq(p.wait(20), 0, "serve exits 0 on SIGTERM")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_cli_usage_errors_exit_2_with_a_message():
    cases = [
        (["publish"], "missing argument"),
        (["publish", "a.b", "{not json"], "not JSON"),
        (["publish", "a.b", "1", "2"], "unexpected argument"),
        (["publish", "a.b", "--nope"], "unknown option --nope"),
        (["publish", "a.b", "--type"], "value is missing"),
        (["subscribe"], "missing argument"),
        (["subscribe", "a.b", "--filter=[1]"], "JSON object"),
        (["stats", "extra"], "unexpected argument"),
        (["stats", "--limit=ten"], "--limit"),
        (["stats", "--timeout=0"], "--timeout"),
        (["disconnect"], "--user"),
        (["disconnect", "--user=a", "--connection=b"], "one of them"),
        (["disconnect", "--user=a", "--code=12"], "close code"),
        (["gentoken"], "--sub"),
        (["gentoken", "--sub=a", "--ttl=soon"], "--ttl"),
        (["gentoken", "--sub=a", "--claim=novalue"], "KEY=VALUE"),
        (["checktoken"], "missing argument"),
        (["genconfig", "x"], "unexpected argument"),
        (["frobnicate"], "unknown command"),
        (["stats", "--url=https://example.com"], "https"),
        (["stats", "--url=http://127.0.0.1:99999"], "port"),
        (["stats", "--api-key", "k", "--api-key", "k"], "given twice"),
    ]
    for args, want in cases:
        code, out, err = cli(*args)
        eq(code, 2, f"{args}: exit code (stderr {err!r})")
        check(want in err and err.startswith("ringcast"), f"{args}: message {err!r}")
        eq(out, "", f"{args}: nothing on stdout")
    # RINGCAST_* variables of the server still count: a typo is an error
    code, _, err = cli("stats", env={"RINGCAST_PROT": "1"})
    eq(code, 2, f"unknown RINGCAST_ variable ({err})")


def test_cli_help_per_command():
    for c in COMMANDS:
        code, out, err = cli(c, "--help")
        eq(code, 0, f"{c} --help exit code")
        check(out.startswith(f"usage: ringcast {c}"), f"{c} --help: {out[:80]!r}")
        check("Exit codes" in out, f"{c} --help documents its exit codes")
        eq(cli(c, "-h")[1], out, f"{c} -h")
    code, out, _ = cli("--help")
    for c in COMMANDS + ["serve", "checkconfig"]:
        check(re.search(rf"^  {c}\b", out, re.M), f"ringcast --help lists {c}")


def test_cli_unreachable_url_is_a_clear_error():
    port = free_port()
    for args in (["publish", "a.b"], ["stats"], ["subscribe", "a.b"],
                 ["disconnect", "--user=u"]):
        code, out, err = cli(*args, f"--url=http://127.0.0.1:{port}")
        eq(code, 1, f"{args}: exit code ({err})")
        check(f"cannot connect to 127.0.0.1:{port}" in err and "--url" in err,
              f"{args}: message {err!r}")
    code, _, err = cli("stats", env={"RINGCAST_URL": f"http://127.0.0.1:{port}"})
    eq(code, 1, "RINGCAST_URL is used")
    check(str(port) in err, f"names the address: {err}")
    code, _, err = cli("stats", "--url=http://no-such-host.invalid:1")
    eq(code, 1, "unresolvable")
    check("cannot resolve no-such-host.invalid" in err, f"message: {err}")
