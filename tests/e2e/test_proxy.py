"""PROXY protocol deployment: deploy/haproxy.cfg is valid HAProxy configuration with
its environment variables set. (The server side, proxy_protocol, is not built yet.)"""

import os
import subprocess

from harness import check

HERE = os.path.dirname(os.path.abspath(__file__))
CFG = os.path.join(HERE, "..", "..", "deploy", "haproxy.cfg")


def test_haproxy_cfg_is_valid():
    env = dict(os.environ, RC_HAPROXY_ADDR="127.0.0.1", RC_HAPROXY_PORT="18080",
               RC_NODE1="127.0.0.1:18081", RC_NODE2="127.0.0.1:18082", RC_NODE3="127.0.0.1:18083")
    r = subprocess.run(["/usr/sbin/haproxy", "-c", "-f", CFG], capture_output=True, text=True,
                       env=env, timeout=30)
    check(r.returncode == 0, f"haproxy -c failed: {r.stdout}{r.stderr}")
