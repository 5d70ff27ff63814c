"""The parts of a cluster for the e2e tests: a real redis-server (its own port
and directory), ringcast nodes with broker=redis, and a real haproxy with
deploy/haproxy.cfg. Everything listens on 127.0.0.1 ports picked free."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import Server, TestFailure, http, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HAPROXY_CFG = os.path.join(ROOT, "deploy", "haproxy.cfg")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    """redis-server without persistence (a restart loses everything, as a
    flushed or replaced instance would) unless persist=True (appendonly)."""

    def __init__(self, persist=False):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="ringcast-redis-")
        self.persist = persist
        self.proc = None

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--daemonize", "no",
                "--appendonly", "yes" if self.persist else "no", "--logfile", ""]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self._ping(), 10, "redis-server to answer PING")
        return self

    def _ping(self):
        try:
            return self.command("PING") == "PONG"
        except TestFailure as e:  # LOADING: replaying its AOF
            if "LOADING" in str(e):
                return False
            raise
        except OSError:
            if self.proc.poll() is not None:
                raise TestFailure("redis-server exited at start")
            return False

    def command(self, *args):
        """One command on a fresh connection; the decoded reply."""
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(out)
            return _read_reply(s.makefile("rb"))

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def close(self):
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False


def _read_reply(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise TestFailure(f"redis error: {rest}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise TestFailure(f"unexpected redis reply {line!r}")


def node(redis, *args, shards=2, name=None, **kw):
    """A ringcast node of the cluster (not started)."""
    urls = redis if isinstance(redis, list) else [redis]
    a = ["--broker=redis", "--redis-url=" + ",".join(r.url for r in urls)]
    if name:
        a.append(f"--node-name={name}")
    return Server(*a, *args, shards=shards, **kw)


class Nodes:
    """n started nodes; stopped (cleanly checked) on exit."""

    def __init__(self, redis, n, *args, **kw):
        self.nodes = [node(redis, *args, name=f"n{i + 1}", **kw) for i in range(n)]

    def __enter__(self):
        try:
            for s in self.nodes:
                s.start()
            for s in self.nodes:
                wait_for(lambda s=s: healthz(s)["status"] == "ok", 10, "the node to reach redis")
        except BaseException:
            self._kill()
            raise
        return self.nodes

    def _kill(self):
        for s in self.nodes:
            if s.proc is not None:
                s.proc.kill()
                s.proc.wait()
                s.proc = None

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._kill()
            return False
        for s in self.nodes:
            if s.proc is not None:
                s.stop()
        return False


def healthz(srv):
    r = http(srv, "GET", "/healthz")
    body = r.json()
    body["_status"] = r.status
    return body


class HAProxy:
    """haproxy -f deploy/haproxy.cfg in front of up to three nodes."""

    def __init__(self, nodes):
        self.port = free_port()
        self.stats_port = free_port()
        self.env = dict(os.environ)
        self.env["RC_HAPROXY_ADDR"] = "127.0.0.1"
        self.env["RC_HAPROXY_PORT"] = str(self.port)
        ports = [n.port for n in nodes] + [free_port() for _ in range(3 - len(nodes))]
        for i, p in enumerate(ports[:3]):
            self.env[f"RC_NODE{i + 1}"] = f"127.0.0.1:{p}"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["haproxy", "-f", HAPROXY_CFG, "-db", "-n", "2000"], env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return self

    def wait_up(self, srv_like, timeout=20):
        def through():
            if self.proc.poll() is not None:
                raise TestFailure("haproxy exited: " + self.proc.stdout.read())
            try:
                return http(srv_like, "GET", "/healthz", timeout=2).status == 200
            except OSError:
                return False
        wait_for(through, timeout, "a request through haproxy")

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Port:
    """Something with a .port, for the harness's clients (haproxy's front)."""

    def __init__(self, port):
        self.port = port
