"""Identity, access rules and limits (issue 5) against the real binary: JWTs made
here (HS256 with hmac/hashlib; RS256/ES256 keys made and tokens signed with the
openssl CLI, never by ringcast), every way to pass a token on WebSocket and SSE,
bad and expiring tokens, auth_required and auth_timeout, topic rules, personal
topics, targeted delivery across shards (seed 004), API key scopes, and the
per-IP, handshake and message rate limits with their stats counters."""

import asyncio
import base64
import hashlib
import hmac
import http.client as httpclient
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.parse

import websockets

from harness import (Server, TestFailure, check, eq, http, raw_connect, read_responses,
                     recv_until_close,
                     run_async, shard_of, wait_for, ws_connect, ws_next, ws_request,
                     ws_subscribe)

SECRET = "e2e-auth-hs256-secret-0123456789abcdef"  # >= 32 bytes
K_PUB = "publish-key-0123456789abcdef"
K_ADMIN = "admin-key-0123456789abcdef00"


# ---- tokens -------------------------------------------------------------------------------

def b64u(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def claims(sub, ttl=600, **extra):
    now = int(time.time())
    c = {"sub": sub, "iat": now, "exp": now + ttl}
    c.update(extra)
    return c


def hs256(cl, secret=SECRET, header=None):
    h = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    signing_input = b64u(compact(h)) + "." + b64u(compact(cl))
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64u(sig)


def tok(sub, ttl=600, **extra):
    return hs256(claims(sub, ttl, **extra))


def openssl(*args, data=None):
    p = subprocess.run(["openssl"] + list(args), input=data, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise TestFailure(f"openssl {' '.join(args)} failed: {p.stderr.decode()[-500:]}")
    return p.stdout


def make_keypair(tmp, kind):
    """(private PEM path, public PEM path) for kind 'rsa' or 'ec'."""
    priv = os.path.join(tmp, f"{kind}.key")
    pub = os.path.join(tmp, f"{kind}.pub")
    if kind == "rsa":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", priv)
    else:
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", priv)
    openssl("pkey", "-in", priv, "-pubout", "-out", pub)
    return priv, pub


def der_ecdsa_to_raw(der):
    """DER SEQUENCE { INTEGER r, INTEGER s } -> r || s, 32 bytes each (JWS ES256)."""
    check(der[0] == 0x30, "ECDSA signature is a DER SEQUENCE")
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        check(der[i] == 0x02, "DER INTEGER")
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\x00")
        check(len(v) <= 32, "P-256 integer fits 32 bytes")
        out += v.rjust(32, b"\x00")
        i += 2 + n
    return out


def pk_token(cl, priv, alg):
    signing_input = b64u(compact({"alg": alg, "typ": "JWT"})) + "." + b64u(compact(cl))
    sig = openssl("dgst", "-sha256", "-sign", priv, data=signing_input.encode())
    if alg == "ES256":
        sig = der_ecdsa_to_raw(sig)
    return signing_input + "." + b64u(sig)


def bad_tokens():
    """name -> (token, expected error code)."""
    good = tok("mallory")
    head, body, sig = good.split(".")
    wrong_sig = hs256(claims("mallory"), secret="another-secret-of-at-least-32-bytes!!")
    expired = hs256(claims("mallory", ttl=-600))  # beyond the default 30 s leeway
    none = b64u(compact({"alg": "none", "typ": "JWT"})) + "." + body + "."
    return {
        "wrong_signature": (wrong_sig, "unauthorized"),
        "expired": (expired, "token_expired"),
        "alg_none": (none, "unauthorized"),
        "malformed": ("not.a.jwt!!", "unauthorized"),
        "tampered_payload": (head + "." + b64u(compact(claims("admin"))) + "." + sig,
                             "unauthorized"),
    }


# ---- HTTP / WS helpers ----------------------------------------------------------------------

def stats(srv, key=None):
    hdrs = {"Authorization": f"Bearer {key}"} if key else None
    r = http(srv, "GET", "/api/realtime/stats?limit=10000", headers=hdrs)
    eq(r.status, 200, "GET /api/realtime/stats status")
    return r.json()


def counters(srv, key=None):
    return stats(srv, key)["counters"]


def wait_counter(srv, name, want, key=None, timeout=10.0):
    def ok():
        return counters(srv, key).get(name) == want
    try:
        wait_for(ok, timeout, f"counter {name} == {want}", interval=0.05)
    except TestFailure:
        raise TestFailure(f"counter {name}: got {counters(srv, key).get(name)!r}, want {want!r}")


async def ws_open(srv, token=None, header_token=None, **kw):
    path = "/api/realtime/ws"
    if token is not None:
        path += "?token=" + urllib.parse.quote(token, safe="")
    if header_token is not None:
        kw["extra_headers"] = {"Authorization": f"Bearer {header_token}"}
    return await ws_connect(srv, path, **kw)


async def ws_auth_user(srv, sub, **extra):
    """A connection authenticated as sub via ?token=; checks the answer."""
    ws = await ws_open(srv, token=tok(sub, **extra))
    m = await ws_next(ws)
    eq(m["type"], "authenticated", f"answer to ?token= for {sub}")
    eq(m["data"]["user_id"], sub, "user_id")
    return ws


async def expect_close(ws, code, timeout=10.0):
    """Read every message until the server closes; check the close code. Returns
    the messages read before the close."""
    msgs = []
    deadline = time.monotonic() + timeout * Server.TIMEOUT_SCALE
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure(f"connection not closed within {timeout}s; got {msgs}")
        try:
            msgs.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
        except websockets.ConnectionClosed:
            break
        except asyncio.TimeoutError:
            raise TestFailure(f"connection not closed within {timeout}s; got {msgs}")
    await ws.wait_closed()
    eq(ws.close_code, code, f"close code (messages before it: {msgs})")
    return msgs


async def still_usable(ws, what="connection"):
    r = await ws_request(ws, {"action": "ping", "id": "alive"})
    eq((r["type"], r.get("id")), ("pong", "alive"), f"{what} answers ping")


async def expect_next_event(ws, want_id, what):
    m = await ws_next(ws, type_="event")
    eq(m["data"]["id"], want_id, f"next event on {what}")
    return m


def raw_request(srv, text):
    s = raw_connect(srv)
    try:
        s.sendall(text.encode())
        return recv_until_close(s)
    finally:
        s.close()


def raw_response(srv, text):
    """Send one request on a fresh socket and read one HTTP response (the server may
    keep the connection open after it)."""
    s = raw_connect(srv)
    try:
        s.sendall(text.encode())
        return read_responses(s, 1)[0]
    finally:
        s.close()


def read_only_response(srv):
    """Connect, send nothing, read until the server closes: the refusal a client over a
    connection limit gets (servers here use handshake_timeout=1s, so an accepted
    connection answers 408 instead). Returns (status, parsed JSON body), checking that
    Content-Length matches the body."""
    s = raw_connect(srv)
    try:
        raw = recv_until_close(s)
    finally:
        s.close()
    check(b"\r\n\r\n" in raw, f"a whole HTTP response, got {raw!r}")
    head, body = raw.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    check(m is not None, f"Content-Length in {head!r}")
    eq(int(m.group(1)), len(body), f"Content-Length vs the body sent ({body!r})")
    return status_of(raw), json.loads(body)


def ws_upgrade_text(path="/api/realtime/ws"):
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n")


def status_of(raw):
    line = raw.split(b"\r\n", 1)[0].decode("latin-1")
    check(line.startswith("HTTP/1.1 "), f"an HTTP status line, got {raw[:200]!r}")
    return int(line.split(" ")[1])


def body_json(raw):
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


class SSEStream:
    """An SSE stream over http.client with optional headers."""

    def __init__(self, srv, query, headers=None):
        self.conn = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        h = {"Accept": "text/event-stream"}
        h.update(headers or {})
        self.conn.request("GET", "/api/realtime/events" + query, headers=h)
        self.sock = self.conn.sock
        self.r = self.conn.getresponse()
        self.status = self.r.status
        self.connection_id = None
        if self.status == 200:
            rec = self.record()
            eq(rec.get("event"), "connection", "first SSE record")
            self.connection_id = json.loads(rec["data"])["connection_id"]
        else:
            self.body = self.r.read()

    def record(self, timeout=10.0):
        self.sock.settimeout(timeout * Server.TIMEOUT_SCALE)
        rec = {}
        while True:
            try:
                line = self.r.fp.readline()
            except socket.timeout:
                raise TestFailure(f"no SSE record within {timeout}s")
            if not line:
                return rec or None
            line = line.decode().rstrip("\n")
            if line == "":
                if rec:
                    return rec
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            rec[k] = v[1:] if v.startswith(" ") else v

    def event(self, timeout=10.0):
        while True:
            rec = self.record(timeout)
            check(rec is not None, "SSE stream ended, wanted an event")
            if rec.get("event") != "ping":
                return rec

    def close(self):
        self.r.close()
        self.conn.close()
        if self.sock:
            self.sock.close()


def post_publish(srv, body, key=None):
    hdrs = {"Authorization": f"Bearer {key}"} if key else None
    return http(srv, "POST", "/api/realtime/publish", body, headers=hdrs)


def must_publish(srv, body):
    r = post_publish(srv, body)
    check(r.status in (200, 202), f"publish {body}: {r}")
    return r.json()


# ---- passing a token ------------------------------------------------------------------------

def test_auth_ws_token_in_query():
    with Server(f"--jwt-secret={SECRET}") as srv:
        async def go():
            ws = await ws_open(srv, token=tok("alice"))
            m = await ws_next(ws)
            eq(m["type"], "authenticated", "message after connected")
            eq(m["data"]["user_id"], "alice", "user_id")
            check("id" not in m, f"no request id on a handshake auth: {m}")
            st = stats(srv)
            eq(st["authenticated_connections"], 1, "authenticated_connections")
            eq(st["unique_users"], 1, "unique_users")
            await ws.close()
        run_async(go())


def test_auth_ws_authorization_bearer_header():
    with Server(env={"RINGCAST_JWT_SECRET": SECRET}) as srv:
        async def go():
            ws = await ws_open(srv, header_token=tok("bob"))
            m = await ws_next(ws)
            eq((m["type"], m["data"]["user_id"]), ("authenticated", "bob"), "header auth answer")
            eq(stats(srv)["authenticated_connections"], 1, "authenticated_connections")
            await ws.close()
        run_async(go())


def test_auth_ws_auth_action_echoes_id():
    with Server(f"--jwt-secret={SECRET}") as srv:
        async def go():
            ws = await ws_open(srv)
            eq(stats(srv)["authenticated_connections"], 0, "anonymous at first")
            r = await ws_request(ws, {"action": "auth", "token": tok("carol"), "id": "a-1"})
            eq(r["type"], "authenticated", f"auth answer {r}")
            eq(r.get("id"), "a-1", "request id echoed")
            eq(r["data"]["user_id"], "carol", "user_id")
            r = await ws_request(ws, {"action": "auth", "token": tok("carol"), "id": 7})
            eq((r["type"], r.get("id")), ("authenticated", 7), "integer id echoed")
            eq(stats(srv)["authenticated_connections"], 1, "authenticated_connections")
            await ws.close()
        run_async(go())


def test_auth_ws_rs256_and_es256_tokens_from_openssl():
    with tempfile.TemporaryDirectory() as tmp:
        for kind, alg in (("rsa", "RS256"), ("ec", "ES256")):
            priv, pub = make_keypair(tmp, kind)
            with Server(f"--jwt-public-key-file={pub}") as srv:
                async def go():
                    good = pk_token(claims(f"user-{alg}"), priv, alg)
                    ws = await ws_open(srv, token=good)
                    m = await ws_next(ws)
                    eq((m["type"], m["data"].get("user_id")), ("authenticated", f"user-{alg}"),
                       f"{alg} token in the URL")
                    # the same token through the auth action
                    r = await ws_request(ws, {"action": "auth", "token": good, "id": 1})
                    eq((r["type"], r.get("id")), ("authenticated", 1), f"{alg} via auth action")
                    # an HS256 token is refused where only a public key is configured, also
                    # when signed with the public key PEM as the HMAC secret (confusion)
                    with open(pub) as f:
                        pem = f.read()
                    for name, t in (("hs256", tok("x")),
                                    ("confusion", hs256(claims("x"), secret=pem))):
                        r = await ws_request(ws, {"action": "auth", "token": t, "id": name})
                        eq((r["type"], r["data"].get("code"), r["data"].get("id")),
                           ("error", "unauthorized", name), f"{alg} server, {name} token")
                    # a flipped signature byte
                    h, b, s = good.split(".")
                    raw = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
                    raw[5] ^= 0x01
                    r = await ws_request(ws, {"action": "auth", "id": "flip",
                                              "token": h + "." + b + "." + b64u(bytes(raw))})
                    eq((r["type"], r["data"].get("code")), ("error", "unauthorized"),
                       f"{alg} wrong signature")
                    await ws.close()
                run_async(go())


def test_auth_sse_token_in_query_and_header():
    with Server(f"--jwt-secret={SECRET}") as srv:
        s1 = SSEStream(srv, "?topic=news&token=" + urllib.parse.quote(tok("alice")))
        eq(s1.status, 200, "SSE with ?token=")
        s2 = SSEStream(srv, "?topic=news", headers={"Authorization": "Bearer " + tok("bob")})
        eq(s2.status, 200, "SSE with Authorization: Bearer")
        st = stats(srv)
        eq(st["authenticated_connections"], 2, "both streams authenticated")
        eq(st["unique_users"], 2, "unique_users")
        # both streams are live: a published event reaches them
        ev = must_publish(srv, {"topic": "news", "type": "n", "data": {"k": 1}})["id"]
        for s in (s1, s2):
            rec = s.event()
            eq(rec.get("id"), ev, "event id on the authenticated stream")
            s.close()


def test_auth_sse_bad_token_is_401_json():
    with Server(f"--jwt-secret={SECRET}") as srv:
        cases = bad_tokens()
        for name, (t, code) in cases.items():
            for how in ("query", "header"):
                if how == "query":
                    s = SSEStream(srv, "?topic=news&token=" + urllib.parse.quote(t, safe=""))
                else:
                    s = SSEStream(srv, "?topic=news", headers={"Authorization": "Bearer " + t})
                eq(s.status, 401, f"SSE status for {name} token in the {how}")
                eq(s.r.getheader("Content-Type"), "application/json", "401 content type")
                err = json.loads(s.body)["error"]
                eq(err["code"], code, f"SSE error code for {name} ({how})")
                check(err.get("message"), f"SSE 401 has a message: {err}")
                check(t not in err["message"], "the token is not echoed")
                s.close()
        eq(counters(srv)["auth_failures"], 2 * len(cases), "auth_failures counter")
        eq(counters(srv)["sse_streams"], 0, "no stream was opened")


# ---- bad tokens ---------------------------------------------------------------------------

def test_auth_bad_tokens_anonymous_when_not_required():
    with Server(f"--jwt-secret={SECRET}") as srv:
        cases = bad_tokens()

        async def go():
            n = 0
            for name, (t, code) in cases.items():
                # in the URL: an error, then the connection stays usable anonymously
                ws = await ws_open(srv, token=t)
                m = await ws_next(ws)
                eq((m["type"], m["data"].get("code")), ("error", code), f"{name} in the URL")
                check(t not in m["data"]["message"], "the token is not echoed")
                await ws_subscribe(ws, "public.news")
                # through the auth action: error with the id echoed
                r = await ws_request(ws, {"action": "auth", "token": t, "id": name})
                eq((r["type"], r["data"].get("code"), r["data"].get("id")),
                   ("error", code, name), f"{name} via auth action")
                await still_usable(ws, f"anonymous connection after {name}")
                n += 2
                await ws.close()
            eq(stats(srv)["authenticated_connections"], 0, "nobody authenticated")
            eq(counters(srv)["auth_failures"], n, "auth_failures counter")
        run_async(go())


def test_auth_bad_tokens_close_1008_when_required():
    with Server(f"--jwt-secret={SECRET}", "--auth-required=true") as srv:
        cases = bad_tokens()

        async def go():
            n = 0
            for name, (t, code) in cases.items():
                for how in ("query", "action"):
                    if how == "query":
                        ws = await ws_open(srv, token=t)
                    else:
                        ws = await ws_open(srv)
                        await ws.send(json.dumps({"action": "auth", "token": t, "id": 3}))
                    msgs = await expect_close(ws, 1008)
                    errs = [m for m in msgs if m.get("type") == "error"]
                    eq(len(errs), 1, f"one error before the close ({name}, {how}): {msgs}")
                    eq(errs[0]["data"]["code"], code, f"error code for {name} ({how})")
                    n += 1
            eq(counters(srv)["auth_failures"], n, "auth_failures counter")
            # a good token still works on this server
            ws = await ws_auth_user(srv, "alice")
            await still_usable(ws)
            await ws.close()
        run_async(go())


def test_auth_required_timeout_closes_1008_and_counts():
    with Server(f"--jwt-secret={SECRET}", "--auth-required=true", "--auth-timeout=1s") as srv:
        async def go():
            good = await ws_open(srv)
            r = await ws_request(good, {"action": "auth", "token": tok("alice"), "id": 1})
            eq(r["type"], "authenticated", "auth within the timeout")
            lazy = await ws_open(srv)
            t0 = time.monotonic()
            msgs = await expect_close(lazy, 1008, timeout=10)
            waited = time.monotonic() - t0
            eq([(m["type"], m["data"].get("code")) for m in msgs], [("error", "unauthorized")],
               "messages before the auth timeout close")
            check(waited >= 0.8, f"closed after auth_timeout (1s), not after {waited:.2f}s")
            eq(counters(srv)["auth_timeouts"], 1, "auth_timeouts counter")
            # the authenticated connection outlived the timeout
            await still_usable(good, "authenticated connection")
            eq(counters(srv)["auth_timeouts"], 1, "auth_timeouts counter (authenticated)")
            await good.close()
        run_async(go())


def test_auth_required_sse_without_token_is_401():
    with Server(f"--jwt-secret={SECRET}", "--auth-required=true") as srv:
        s = SSEStream(srv, "?topic=news")
        eq(s.status, 401, "SSE without a token where auth is required")
        eq(json.loads(s.body)["error"]["code"], "unauthorized", "error code")
        s.close()
        s = SSEStream(srv, "?topic=news&token=" + tok("alice"))
        eq(s.status, 200, "SSE with a token where auth is required")
        s.close()


def test_auth_nbf_issuer_audience_checks():
    with Server(f"--jwt-secret={SECRET}", "--jwt-issuer=ringcast-e2e", "--jwt-audience=chat",
                "--jwt-leeway=5s") as srv:
        now = int(time.time())
        cases = [
            ("good", tok("a", iss="ringcast-e2e", aud="chat"), "authenticated"),
            ("aud_list", tok("a", iss="ringcast-e2e", aud=["other", "chat"]), "authenticated"),
            ("nbf_past", tok("a", iss="ringcast-e2e", aud="chat", nbf=now - 60), "authenticated"),
            ("wrong_iss", tok("a", iss="someone-else", aud="chat"), "unauthorized"),
            ("no_iss", tok("a", aud="chat"), "unauthorized"),
            ("wrong_aud", tok("a", iss="ringcast-e2e", aud="other"), "unauthorized"),
            ("no_aud", tok("a", iss="ringcast-e2e"), "unauthorized"),
            ("nbf_future", tok("a", iss="ringcast-e2e", aud="chat", nbf=now + 600),
             "unauthorized"),
            ("expired_past_leeway", tok("a", ttl=-60, iss="ringcast-e2e", aud="chat"),
             "token_expired"),
        ]

        async def go():
            ws = await ws_open(srv)
            for name, t, want in cases:
                r = await ws_request(ws, {"action": "auth", "token": t, "id": name})
                got = r["type"] if r["type"] == "authenticated" else r["data"].get("code")
                eq(got, want, f"{name}: {r}")
                eq(r.get("id", r["data"].get("id")), name, f"{name}: id echoed")
            await ws.close()
        run_async(go())


def test_auth_huge_token_refused_connection_stays():
    with Server(f"--jwt-secret={SECRET}") as srv:
        async def go():
            ws = await ws_open(srv)
            huge = tok("alice", pad="x" * 9000)
            r = await ws_request(ws, {"action": "auth", "token": huge, "id": "h"})
            eq((r["type"], r["data"].get("code"), r["data"].get("id")),
               ("error", "unauthorized", "h"), "a token over 8192 bytes")
            await still_usable(ws)
            eq(counters(srv)["auth_failures"], 1, "auth_failures counter")
            await ws.close()
        run_async(go())


def test_auth_anonymous_none():
    with Server(f"--jwt-secret={SECRET}", "--anonymous=none") as srv:
        async def go():
            anon = await ws_open(srv)
            await expect_forbidden(anon, "news.today", "anonymous=none")
            await still_usable(anon, "anonymous connection")
            alice = await ws_auth_user(srv, "alice")
            await expect_allowed(alice, "news.today", "authenticated")
            eq(counters(srv)["forbidden"], 1, "forbidden counter")
            for ws in (anon, alice):
                await ws.close()
        run_async(go())
        s = SSEStream(srv, "?topic=news.today")
        eq((s.status, json.loads(s.body)["error"]["code"]), (403, "forbidden"),
           "anonymous SSE with a topic")
        s.close()
        s = SSEStream(srv, "?topic=news.today&token=" + tok("bob"))
        eq(s.status, 200, "authenticated SSE")
        s.close()


# ---- re-auth and expiry ---------------------------------------------------------------------

def test_auth_reauth_other_sub_forbidden_same_sub_ok():
    with Server(f"--jwt-secret={SECRET}") as srv:
        async def go():
            ws = await ws_auth_user(srv, "alice")
            r = await ws_request(ws, {"action": "auth", "token": tok("bob"), "id": "b"})
            eq((r["type"], r["data"].get("code"), r["data"].get("id")),
               ("error", "forbidden", "b"), "re-auth as another user")
            r = await ws_request(ws, {"action": "auth", "token": tok("alice", ttl=1200), "id": "a"})
            eq((r["type"], r.get("id"), r["data"]["user_id"]), ("authenticated", "a", "alice"),
               "re-auth as the same user")
            # still alice: her personal topic is allowed, bob's is not
            await ws_subscribe(ws, "user.alice.inbox")
            r = await ws_request(ws, {"action": "subscribe", "topic": "user.bob.inbox", "id": 2})
            eq((r["type"], r["data"].get("code")), ("error", "forbidden"), "still alice")
            users = stats(srv).get("unique_users")
            eq(users, 1, "unique_users")
            await ws.close()
        run_async(go())


EXPIRY_ARGS = (f"--jwt-secret={SECRET}", "--jwt-leeway=0s", "--token-grace=1s")


def test_auth_token_expiry_without_reauth_closes_1008():
    with Server(*EXPIRY_ARGS) as srv:
        async def go():
            ws = await ws_auth_user(srv, "alice", ttl=2)
            other = await ws_auth_user(srv, "bob")  # a long token: unaffected
            m = await ws_next(ws, timeout=10, type_="error")
            eq(m["data"]["code"], "token_expired", f"error on expiry: {m}")
            t0 = time.monotonic()
            msgs = await expect_close(ws, 1008, timeout=10)
            waited = time.monotonic() - t0
            eq([x for x in msgs if x.get("type") != "ping"], [], "nothing between error and close")
            check(waited >= 0.7, f"closed after token_grace (1s), not after {waited:.2f}s")
            eq(counters(srv)["token_expiries"], 1, "token_expiries counter")
            await still_usable(other, "connection with a valid token")
            await other.close()
        run_async(go())


def test_auth_token_expiry_reauth_keeps_connection():
    with Server(*EXPIRY_ARGS) as srv:
        async def go():
            ws = await ws_auth_user(srv, "alice", ttl=2)
            m = await ws_next(ws, timeout=10, type_="error")
            eq(m["data"]["code"], "token_expired", f"error on expiry: {m}")
            r = await ws_request(ws, {"action": "auth", "token": tok("alice", ttl=600), "id": "r"})
            eq((r["type"], r.get("id"), r["data"]["user_id"]), ("authenticated", "r", "alice"),
               "fresh token after expiry")
            time.sleep(1.5)  # past token_grace (1s): the clock must pass for the check
            await still_usable(ws, "re-authenticated connection after the grace period")
            eq(counters(srv)["token_expiries"], 1, "token_expiries counter")
            eq(stats(srv)["authenticated_connections"], 1, "still authenticated")
            await ws.close()
        run_async(go())


def test_auth_refresh_before_expiry_avoids_token_expired():
    with Server(*EXPIRY_ARGS) as srv:
        async def go():
            ws = await ws_auth_user(srv, "alice", ttl=2)
            r = await ws_request(ws, {"action": "auth", "token": tok("alice", ttl=600), "id": 1})
            eq(r["type"], "authenticated", "refresh before exp")
            time.sleep(3.5)  # past the first token's exp + grace
            await still_usable(ws, "refreshed connection")
            eq(counters(srv)["token_expiries"], 0, "token_expiries counter")
            await ws.close()
        run_async(go())


def test_auth_token_expiry_ends_sse_stream():
    with Server(*EXPIRY_ARGS) as srv:
        s = SSEStream(srv, "?topic=news&token=" + tok("alice", ttl=2))
        eq(s.status, 200, "SSE with a short token")
        rec = s.event(timeout=10)
        eq(rec.get("event"), "error", f"record on expiry: {rec}")
        eq(json.loads(rec["data"])["code"], "token_expired", "SSE error code")
        t0 = time.monotonic()
        while True:
            rec = s.record(timeout=10)
            if rec is None:
                break
            eq(rec.get("event"), "ping", f"only pings after the expiry error: {rec}")
        check(time.monotonic() - t0 >= 0.7, "the stream ends after token_grace (1s)")
        eq(counters(srv)["token_expiries"], 1, "token_expiries counter")
        s.close()


# ---- rules ---------------------------------------------------------------------------------

async def sub_answer(ws, topic, rid="r"):
    return await ws_request(ws, {"action": "subscribe", "topic": topic, "id": rid})


async def expect_forbidden(ws, topic, what):
    r = await sub_answer(ws, topic, rid="f")
    eq((r["type"], r["data"].get("code"), r["data"].get("id")), ("error", "forbidden", "f"),
       f"subscribe {topic} ({what}): {r}")
    check(topic in r["data"]["message"], f"the error names {topic}: {r['data']['message']}")


async def expect_allowed(ws, topic, what):
    r = await sub_answer(ws, topic, rid="ok")
    eq((r["type"], r.get("id")), ("subscribed", "ok"), f"subscribe {topic} ({what}): {r}")


def test_auth_rule_subscribe_none_forbidden_names_topic():
    with Server(f"--jwt-secret={SECRET}", "--rules=secret.> subscribe=none") as srv:
        async def go():
            anon = await ws_open(srv)
            alice = await ws_auth_user(srv, "alice")
            for ws, who in ((anon, "anonymous"), (alice, "alice")):
                await expect_forbidden(ws, "secret.plans", who)
                await expect_forbidden(ws, "secret.>", who)
                await expect_allowed(ws, "public.plans", who)
            # a broad pattern cannot reach the closed topics
            await expect_forbidden(alice, ">", "alice, everything")
            eq(counters(srv)["forbidden"], 5, "forbidden counter")
            for ws in (anon, alice):
                await ws.close()
        run_async(go())


def test_auth_rule_subscribe_authenticated():
    with Server(f"--jwt-secret={SECRET}", "--rules=members.> subscribe=authenticated") as srv:
        async def go():
            anon = await ws_open(srv)
            await expect_forbidden(anon, "members.chat", "anonymous")
            alice = await ws_auth_user(srv, "alice")
            await expect_allowed(alice, "members.chat", "authenticated")
            # the anonymous connection authenticates and is then allowed
            r = await ws_request(anon, {"action": "auth", "token": tok("bob"), "id": 1})
            eq(r["type"], "authenticated", "late auth")
            await expect_allowed(anon, "members.chat", "after auth")
            eq(counters(srv)["forbidden"], 1, "forbidden counter")
            for ws in (anon, alice):
                await ws.close()
        run_async(go())


def test_auth_rule_subscribe_claim():
    with Server(f"--jwt-secret={SECRET}", "--rules=team.> subscribe=claim") as srv:
        async def go():
            red = await ws_auth_user(srv, "alice", topics=["team.red.>"])
            await expect_allowed(red, "team.red.chat", "claim team.red.>")
            await expect_allowed(red, "team.red.>", "claim team.red.> (pattern)")
            await expect_forbidden(red, "team.blue.chat", "claim team.red.> only")
            await expect_forbidden(red, "team.>", "claim narrower than the pattern")
            plain = await ws_auth_user(srv, "bob")
            await expect_forbidden(plain, "team.red.chat", "no topics claim")
            anon = await ws_open(srv)
            await expect_forbidden(anon, "team.red.chat", "anonymous")
            eq(counters(srv)["forbidden"], 4, "forbidden counter")
            for ws in (red, plain, anon):
                await ws.close()
        run_async(go())


def test_auth_rules_first_match_wins_from_config_file():
    conf = ("jwt_secret = " + SECRET + "\n"
            "rules = x.> subscribe=none\n"
            "rules = x.open subscribe=anonymous\n"
            "rules = y.open subscribe=anonymous\n"
            "rules = y.> subscribe=none\n")
    with Server(config_text=conf) as srv:
        async def go():
            ws = await ws_open(srv)
            await expect_forbidden(ws, "x.open", "x.> comes first")
            await expect_forbidden(ws, "x.other", "x.>")
            await expect_allowed(ws, "y.open", "y.open comes first")
            await expect_forbidden(ws, "y.other", "y.>")
            await ws.close()
        run_async(go())


def test_auth_rule_publish_modes_with_client_publish():
    with Server(f"--jwt-secret={SECRET}", "--client-publish",
                "--rules=ro.> publish=none",
                "--rules=members.> publish=authenticated",
                "--rules=team.> publish=claim") as srv:
        async def pub(ws, topic, rid):
            return await ws_request(ws, {"action": "publish", "topic": topic, "type": "t",
                                         "data": {"x": 1}, "id": rid})

        async def go():
            anon = await ws_open(srv)
            alice = await ws_auth_user(srv, "alice", topics=["team.red.>"])
            bob = await ws_auth_user(srv, "bob")
            cases = [
                (anon, "free.topic", "published"), (alice, "free.topic", "published"),
                (anon, "ro.x", "forbidden"), (alice, "ro.x", "forbidden"),
                (anon, "members.x", "forbidden"), (bob, "members.x", "published"),
                (bob, "team.red.x", "forbidden"), (alice, "team.red.x", "published"),
                (alice, "team.blue.x", "forbidden"),
            ]
            nforb = 0
            for i, (ws, topic, want) in enumerate(cases):
                r = await pub(ws, topic, i)
                if want == "published":
                    eq((r["type"], r.get("id")), ("published", i), f"publish {topic} case {i}: {r}")
                else:
                    nforb += 1
                    eq((r["type"], r["data"].get("code"), r["data"].get("id")),
                       ("error", "forbidden", i), f"publish {topic} case {i}: {r}")
                    check(topic in r["data"]["message"], f"names {topic}: {r}")
            eq(counters(srv)["forbidden"], nforb, "forbidden counter")
            for ws in (anon, alice, bob):
                await ws.close()
        run_async(go())


def test_auth_rule_publish_authenticated_opens_without_client_publish():
    with Server(f"--jwt-secret={SECRET}", "--rules=members.> publish=authenticated") as srv:
        async def go():
            bob = await ws_auth_user(srv, "bob")
            r = await ws_request(bob, {"action": "publish", "topic": "members.x", "id": 1})
            eq((r["type"], r.get("id")), ("published", 1), f"rule opens publishing: {r}")
            r = await ws_request(bob, {"action": "publish", "topic": "other.x", "id": 2})
            eq((r["type"], r["data"].get("code")), ("error", "forbidden"),
               f"client_publish=false elsewhere: {r}")
            await bob.close()
        run_async(go())


def test_auth_rule_max_subscribers():
    with Server("--rules=limited.> max_subscribers=2") as srv:
        async def go():
            conns = [await ws_open(srv) for _ in range(3)]
            await expect_allowed(conns[0], "limited.room", "1st subscriber")
            await expect_allowed(conns[1], "limited.room", "2nd subscriber")
            r = await sub_answer(conns[2], "limited.room", rid="third")
            eq((r["type"], r["data"].get("id") if r["type"] == "error" else r.get("id")),
               ("error", "third"), f"3rd subscriber over max_subscribers=2: {r}")
            check("limited.room" in r["data"].get("message", ""), f"names the topic: {r}")
            await expect_allowed(conns[2], "other.room", "a topic without the rule")
            # a slot frees when a subscriber leaves
            await conns[0].close()
            wait_for(lambda: stats(srv)["total_connections"] == 2, 10, "close seen",
                     interval=0.05)
            await expect_allowed(conns[2], "limited.room", "after one left")
            for ws in conns[1:]:
                await ws.close()
        run_async(go())


# ---- personal topics ------------------------------------------------------------------------

def test_auth_personal_topics():
    with Server(f"--jwt-secret={SECRET}", "--client-publish") as srv:
        async def go():
            alice = await ws_auth_user(srv, "alice")
            bob = await ws_auth_user(srv, "bob")
            anon = await ws_open(srv)
            await expect_allowed(alice, "user.alice.inbox", "alice, own")
            await expect_allowed(alice, "user.alice.>", "alice, own pattern")
            await expect_forbidden(bob, "user.alice.inbox", "bob")
            await expect_forbidden(anon, "user.alice.inbox", "anonymous")
            for pat in ("user.*.inbox", "user.>", "user.*.>", ">"):
                await expect_forbidden(alice, pat, "wildcard over users")
            r = await ws_request(bob, {"action": "publish", "topic": "user.alice.inbox", "id": 1})
            eq((r["type"], r["data"].get("code")), ("error", "forbidden"), f"bob publishes: {r}")
            eq(counters(srv)["forbidden"], 7, "forbidden counter")
            # a backend event on alice's inbox reaches her subscriptions
            ev = must_publish(srv, {"topic": "user.alice.inbox", "data": {"n": 1}})["id"]
            m1 = await ws_next(alice, type_="event")
            m2 = await ws_next(alice, type_="event")
            eq((m1["data"]["id"], m2["data"]["id"]), (ev, ev), "alice gets her event twice")
            for ws in (alice, bob, anon):
                await ws.close()
        run_async(go())


def test_auth_personal_topics_sse():
    with Server(f"--jwt-secret={SECRET}") as srv:
        s = SSEStream(srv, "?topic=user.bob.inbox&token=" + tok("alice"))
        eq(s.status, 403, "SSE on another user's topic")
        eq(json.loads(s.body)["error"]["code"], "forbidden", "SSE error code")
        s.close()
        s = SSEStream(srv, "?topic=user.alice.inbox&token=" + tok("alice"))
        eq(s.status, 200, "SSE on one's own topic")
        s.close()


# ---- targeted delivery (seed 004) ------------------------------------------------------------

USERS = ("alice", "bob", "carol")


async def spread_users(srv, users=USERS, per_shard=1, max_tries=300):
    """Connections for each user until every user has per_shard on shards 0 and 1;
    surplus connections are closed. Returns {user: [ws...]}."""
    out = {}
    tries = 0
    for u in users:
        by = {0: [], 1: []}
        while min(len(by[0]), len(by[1])) < per_shard:
            tries += 1
            if tries > max_tries:
                raise TestFailure(f"connections did not land on both shards for {u}")
            ws = await ws_auth_user(srv, u)
            sh = shard_of(ws.connection_id)
            if len(by[sh]) < per_shard:
                by[sh].append(ws)
            else:
                await ws.close()
        out[u] = by[0] + by[1]
    return out


def wait_conns(srv, n):
    wait_for(lambda: stats(srv)["total_connections"] == n, 10, f"{n} connections in stats",
             interval=0.05)


def test_auth_targeted_subscriber_ids_and_exclude_across_shards():
    with Server(f"--jwt-secret={SECRET}") as srv:
        async def go():
            conns = await spread_users(srv)
            anon = await ws_open(srv)
            every = [(u, ws) for u in USERS for ws in conns[u]] + [("anon", anon)]
            for _, ws in every:
                await ws_subscribe(ws, "room.1")
            wait_conns(srv, len(every))
            eq(stats(srv)["total_subscriptions"], len(every), "subscriptions")

            async def round_(body, receivers):
                ev = must_publish(srv, dict(body, topic="room.1"))["id"]
                marker = must_publish(srv, {"topic": "room.1", "type": "marker"})["id"]
                for u, ws in every:
                    what = f"{u} on shard {shard_of(ws.connection_id)}"
                    if u in receivers:
                        m = await expect_next_event(ws, ev, what)
                        eq(m["data"]["topic"], "room.1", "topic")
                    await expect_next_event(ws, marker, what + " (after the targeted event)")

            await round_({"type": "dm", "data": {"k": 1}, "subscriber_ids": ["alice", "bob"]},
                         {"alice", "bob"})
            await round_({"type": "post", "data": {"k": 2}, "exclude_user_id": "alice"},
                         {"bob", "carol", "anon"})
            await round_({"type": "both", "subscriber_ids": ["alice", "bob"],
                          "exclude_user_id": "alice"}, {"bob"})
            await round_({"type": "nobody", "subscriber_ids": ["zed"]}, set())
            for _, ws in every:
                await ws.close()
        run_async(go())


def test_auth_targeted_subscriber_ids_sse():
    with Server(f"--jwt-secret={SECRET}") as srv:
        sa = SSEStream(srv, "?topic=room.2&token=" + tok("alice"))
        sb = SSEStream(srv, "?topic=room.2&token=" + tok("bob"))
        eq((sa.status, sb.status), (200, 200), "SSE streams")
        ev = must_publish(srv, {"topic": "room.2", "subscriber_ids": ["bob"]})["id"]
        ev2 = must_publish(srv, {"topic": "room.2", "exclude_user_id": "bob"})["id"]
        eq(sa.event().get("id"), ev2, "alice's next SSE event")
        eq(sb.event().get("id"), ev, "bob's next SSE event")
        ev3 = must_publish(srv, {"topic": "room.2"})["id"]
        eq(sb.event().get("id"), ev3, "bob's SSE event after the excluded one")
        eq(sa.event().get("id"), ev3, "alice's third SSE event")
        r = post_publish(srv, {"type": "notice", "data": {"n": 1}, "user_ids": ["alice"]})
        eq((r.status, r.json().get("connections")), (202, 1), f"user_ids to an SSE user: {r}")
        rec = sa.event()
        eq((rec.get("id"), rec.get("event")), (r.json()["id"], "notice"), "alice's user event")
        eq(json.loads(rec["data"])["data"], {"n": 1}, "user event data on SSE")
        ev4 = must_publish(srv, {"topic": "room.2"})["id"]
        eq(sb.event().get("id"), ev4, "bob did not get alice's user event")
        sa.close()
        sb.close()


def test_auth_user_ids_without_topic_reach_every_connection():
    with Server(f"--jwt-secret={SECRET}") as srv:
        async def go():
            conns = await spread_users(srv)
            anon = await ws_open(srv)
            wait_conns(srv, 7)
            r = post_publish(srv, {"type": "notice", "data": {"hello": 1},
                                   "user_ids": ["alice", "carol"]})
            eq(r.status, 202, f"user_ids publish status: {r}")
            body = r.json()
            eq(body.get("connections"), 4, f"connections reached: {body}")
            ev = body["id"]
            eq(body.get("user_ids"), ["alice", "carol"], "user_ids echoed")
            for u in ("alice", "carol"):
                for ws in conns[u]:
                    m = await ws_next(ws, type_="event")
                    eq(m["data"]["id"], ev, f"{u} on shard {shard_of(ws.connection_id)}")
                    eq(m["data"]["type"], "notice", "event type")
                    eq(m["data"]["data"], {"hello": 1}, "event data")
            # bob and the anonymous connection got nothing: their next event is the marker
            bc = post_publish(srv, {"type": "marker", "user_ids": ["bob"]})
            eq((bc.status, bc.json().get("connections")), (202, 2), f"bob's marker: {bc}")
            for ws in conns["bob"]:
                m = await ws_next(ws, type_="event")
                eq(m["data"]["id"], bc.json()["id"], "bob's next event is his own marker")
            r = post_publish(srv, {"user_ids": ["nobody"]})
            eq((r.status, r.json().get("connections")), (202, 0), f"unknown user: {r}")
            r = post_publish(srv, {"type": "x", "user_ids": ["alice", "bob"],
                                   "exclude_user_id": "bob"})
            eq((r.status, r.json().get("connections")), (202, 2), f"user_ids minus bob: {r}")
            await still_usable(anon)
            for ws in [anon] + [w for u in USERS for w in conns[u]]:
                await ws.close()
        run_async(go())


def test_auth_bad_user_lists_400():
    with Server(f"--jwt-secret={SECRET}") as srv:
        cases = [
            {"topic": "t", "subscriber_ids": "alice"},
            {"topic": "t", "subscriber_ids": []},
            {"topic": "t", "subscriber_ids": [1]},
            {"topic": "t", "subscriber_ids": [""]},
            {"topic": "t", "subscriber_ids": ["a" * 129]},
            {"topic": "t", "subscriber_ids": ["u"] * 1001},
            {"user_ids": {"a": 1}},
            {"user_ids": []},
            {"user_ids": [None]},
            {"topic": "t", "user_ids": ["alice"]},
            {"topic": "t", "exclude_user_id": 5},
        ]
        for body in cases:
            r = post_publish(srv, body)
            eq(r.status, 400, f"status for {json.dumps(body)[:80]}")
            err = r.json()["error"]
            check(err["code"] in ("bad_value", "bad_type"), f"code for {json.dumps(body)[:80]}: {err}")
        r = post_publish(srv, {"type": "x"})
        eq((r.status, r.json()["error"]["code"]), (400, "missing_field"), "neither topic nor users")
        eq(counters(srv)["published"], 0, "nothing published")


# ---- API keys --------------------------------------------------------------------------------

def test_auth_api_key_scopes():
    with Server(f"--api-keys={K_PUB}:publish", f"--api-keys={K_ADMIN}:admin") as srv:
        body = {"topic": "t.x", "data": {"a": 1}}
        r = post_publish(srv, body, key=K_PUB)
        check(r.status in (200, 202), f"publish with the publish key: {r}")
        r = http(srv, "POST", "/api/realtime/publish", body, headers={"X-API-Key": K_PUB})
        check(r.status in (200, 202), f"publish with X-API-Key: {r}")
        r = post_publish(srv, body, key=K_ADMIN)
        eq((r.status, r.json()["error"]["code"]), (403, "forbidden"), "publish with the admin key")
        r = http(srv, "GET", "/api/realtime/stats", headers={"Authorization": f"Bearer {K_PUB}"})
        eq((r.status, r.json()["error"]["code"]), (403, "forbidden"), "stats with the publish key")
        r = http(srv, "GET", "/api/realtime/stats", headers={"X-API-Key": K_ADMIN})
        eq(r.status, 200, "stats with X-API-Key admin")
        eq(r.json()["counters"]["published"], 2, "published counter")
        r = post_publish(srv, body)
        eq(r.status, 401, "publish without a key")
        eq(r.header("WWW-Authenticate"), "Bearer", "WWW-Authenticate")
        eq(r.json()["error"]["code"], "unauthorized", "401 code")
        r = http(srv, "GET", "/api/realtime/stats")
        eq((r.status, r.header("WWW-Authenticate")), (401, "Bearer"), "stats without a key")
        for wrong in ("wrong-key-0123456789abcdef", K_PUB + "x", K_PUB[:-1]):
            r = post_publish(srv, body, key=wrong)
            eq((r.status, r.json()["error"]["code"]), (403, "forbidden"), f"wrong key {wrong}")
            r = http(srv, "POST", "/api/realtime/publish", body, headers={"X-API-Key": wrong})
            eq(r.status, 403, f"wrong X-API-Key {wrong}")
        for k in (K_PUB, K_ADMIN):
            check(not srv.log_has(k), "API keys are never logged")


def test_auth_tokens_never_logged():
    with Server(f"--jwt-secret={SECRET}", "--log-level=debug") as srv:
        t = tok("alice")
        bad = bad_tokens()["wrong_signature"][0]

        async def go():
            ws = await ws_open(srv, token=t)
            await ws_next(ws)
            await ws_request(ws, {"action": "auth", "token": bad, "id": 1})
            await ws.close()
        run_async(go())
        s = SSEStream(srv, "?token=" + bad)
        s.close()
        for x in (t, bad, SECRET, t.split(".")[2], bad.split(".")[2]):
            check(not srv.log_has(re.escape(x)), "a token or the secret appears in the log")


# ---- limits --------------------------------------------------------------------------------

def test_auth_limit_connections_per_ip():
    with Server("--max-connections-per-ip=3", "--handshake-timeout=1s") as srv:
        async def go():
            conns = [await ws_open(srv) for _ in range(3)]
            shards = sorted(shard_of(ws.connection_id) for ws in conns)
            st, body = read_only_response(srv)
            eq(st, 503, f"4th connection from one address (the 3 open ones are on shards "
                        f"{shards}): {body}")
            eq(body["error"]["code"], "too_many_connections", "503 code")
            st, body = read_only_response(srv)
            eq(st, 503, f"5th connection: {body}")
            for ws in conns:
                await still_usable(ws, "connection under the limit")
            await conns[0].close()
            # the freed slot can be used again (the stats request itself is one)
            wait_for(lambda: http(srv, "GET", "/healthz").status == 200, 10,
                     "a connection after one closed", interval=0.05)
            c = counters(srv)
            eq(c["refused_per_ip"], 2, "refused_per_ip counter")
            eq(c["refused_connections"], 2, "refused_connections counter")
            for ws in conns[1:]:
                await ws.close()
        run_async(go())


def test_auth_limit_handshake_rate_per_ip():
    # handshake_rate_per_ip is per shard (see --help): one shard makes "per second
    # from one address" exact
    with Server("--handshake-rate-per-ip=5", shards=1) as srv:
        socks = []
        try:
            for i in range(5):
                s = raw_connect(srv)
                s.sendall(ws_upgrade_text().encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = s.recv(4096)
                    check(chunk, f"handshake {i + 1} closed")
                    head += chunk
                eq(status_of(head), 101, f"handshake {i + 1}")
                socks.append(s)
            sixth = raw_response(srv, ws_upgrade_text())
            eq(sixth.status, 503, f"6th handshake in a second: {sixth}")
            eq(sixth.json()["error"]["code"], "too_many_handshakes", "503 code")
            sse = raw_response(srv, "GET /api/realtime/events HTTP/1.1\r\nHost: x\r\n\r\n")
            eq((sse.status, sse.json()["error"]["code"]), (503, "too_many_handshakes"),
               "an SSE handshake counts too")
            # plain requests are not handshakes
            eq(http(srv, "GET", "/healthz").status, 200, "healthz while over the rate")
            eq(counters(srv)["refused_handshake_rate"], 2, "refused_handshake_rate counter")
            # the accepted WebSockets still work: a ping frame is answered
            for s in socks:
                s.sendall(bytes([0x89, 0x80, 1, 2, 3, 4]))
        finally:
            for s in socks:
                s.close()

        # after the one-second window, handshakes are accepted again
        async def go():
            ws = None
            deadline = time.monotonic() + 5
            while ws is None:
                try:
                    ws = await ws_open(srv)
                except websockets.InvalidStatusCode as e:
                    eq(e.status_code, 503, "refusal while over the rate")
                    check(time.monotonic() < deadline, "handshakes accepted again within 5s")
                    await asyncio.sleep(0.1)
            await still_usable(ws)
            await ws.close()
        run_async(go())


def test_auth_limit_message_rate():
    with Server("--message-rate=5", "--message-burst=5") as srv:
        async def go():
            ws = await ws_open(srv)
            other = await ws_open(srv)
            for i in range(6):
                await ws.send(json.dumps({"action": "ping", "id": i}))
            got = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(6)]
            eq([(m["type"], m.get("id")) for m in got[:5]], [("pong", i) for i in range(5)],
               "the first 5 messages are answered")
            eq((got[5]["type"], got[5]["data"]["code"]), ("error", "rate_limited"), "6th message")
            eq(counters(srv)["rate_limited"], 1, "rate_limited counter")
            await still_usable(other, "another connection")
            # the limited connection survives: the bucket refills (5/s)
            deadline = time.monotonic() + 5
            while True:
                r = await ws_request(ws, {"action": "ping", "id": "again"})
                if r["type"] == "pong":
                    break
                eq(r["data"]["code"], "rate_limited", "while refilling")
                check(time.monotonic() < deadline, "the bucket refills within 5s")
                await asyncio.sleep(0.25)
            eq(counters(srv)["rate_limit_disconnects"], 0, "no disconnect")
            await ws.close()
            await other.close()
        run_async(go())


def test_auth_limit_rate_limit_close_after():
    with Server("--message-rate=5", "--message-burst=5", "--rate-limit-close-after=3") as srv:
        async def go():
            ws = await ws_open(srv)
            other = await ws_open(srv)
            for i in range(20):
                try:
                    await ws.send(json.dumps({"action": "ping", "id": i}))
                except websockets.ConnectionClosed:
                    break
            msgs = await expect_close(ws, 1008)
            kinds = [(m["type"], m.get("id") if m["type"] == "pong" else m["data"]["code"])
                     for m in msgs]
            eq(kinds, [("pong", i) for i in range(5)] + [("error", "rate_limited")] * 3,
               "5 answers, 3 rate_limited errors, then close")
            c = counters(srv)
            eq(c["rate_limited"], 3, "rate_limited counter")
            eq(c["rate_limit_disconnects"], 1, "rate_limit_disconnects counter")
            await still_usable(other, "another connection")
            await other.close()
        run_async(go())


def test_auth_limit_max_connections():
    # max_connections is exact across shards (test_operator has the two-shard case)
    with Server("--max-connections=2", "--handshake-timeout=1s", shards=1) as srv:
        async def go():
            conns = [await ws_open(srv) for _ in range(2)]
            st, body = read_only_response(srv)
            eq(st, 503, f"3rd connection over max_connections: {body}")
            eq(body["error"]["code"], "too_many_connections", "503 code")
            for ws in conns:
                await still_usable(ws, "connection under the limit")
            await conns[0].close()
            wait_for(lambda: http(srv, "GET", "/healthz").status == 200, 10,
                     "a connection after one closed", interval=0.05)
            c = counters(srv)
            eq(c["refused_max_connections"], 1, "refused_max_connections counter")
            eq(c["refused_connections"], 1, "refused_connections counter")
            await conns[1].close()
        run_async(go())
