"""A real PostgreSQL 15 for the e2e tests (the same as tests/pg_test_server.h):
initdb into a temporary directory, its own port on 127.0.0.1, trust
authentication, no fsync (a test server); stopped (fast shutdown) and
started again on the same port and directory. As root, initdb and postgres
run as the `postgres` system user (initdb refuses root)."""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from cluster import free_port as _free_port  # one port picker for the tests' servers
from harness import TestFailure, wait_for

PG_BIN = "/usr/lib/postgresql/15/bin"


def available():
    return os.path.exists(os.path.join(PG_BIN, "initdb"))





class PgServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ringcast-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self.proc = None
        self.user = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self.user = (pw.pw_uid, pw.pw_gid)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-A", "trust",
                   "-U", "postgres", "--no-sync", "-E", "UTF8"])
        # one role that must give its password (the rest is trusted)
        hba = os.path.join(self.data, "pg_hba.conf")
        with open(hba) as f:
            rules = f.read()
        with open(hba, "w") as f:
            f.write("host all rc_pw 127.0.0.1/32 scram-sha-256\n" + rules)
        self.start()

    def _demote(self):
        if self.user:
            os.setgid(self.user[1])
            os.setgroups([])
            os.setuid(self.user[0])

    def _run(self, args):
        r = subprocess.run(args, preexec_fn=self._demote, capture_output=True, text=True)
        if r.returncode != 0:
            raise TestFailure(f"{args[0]} failed: {r.stdout}{r.stderr}")

    def start(self):
        log = open(os.path.join(self.dir, "postgres.log"), "a")
        self.proc = subprocess.Popen(
            [os.path.join(PG_BIN, "postgres"), "-D", self.data, "-p", str(self.port),
             "-k", self.dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "full_page_writes=off", "-c", "max_connections=50"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=self._demote)
        wait_for(self.ready, 20, "PostgreSQL to accept connections", interval=0.05)

    def ready(self):
        if self.proc.poll() is not None:
            raise TestFailure("postgres exited at start: " + self.log_tail())
        r = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", "postgres"], capture_output=True)
        return r.returncode == 0

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "postgres.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        """Fast shutdown: open sessions are ended at once."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)
        self.proc = None

    def psql(self, sql, db="postgres"):
        r = subprocess.run(["psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "postgres", "-d", db, "-c", sql],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise TestFailure(f"psql {sql!r}: {r.stderr}")
        return r.stdout.strip()

    def url(self, db="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
