"""Runs every test_* function of tests/e2e/test_*.py against a ringcast binary.

usage: /usr/bin/python3 tests/e2e/run.py --binary build/asan/ringcast [--only SUBSTR]
       [--tsan] [--list]
Prints PASS/FAIL per test and ends with `e2e: N passed, M failed`; exits 1 on
any failure. Each test gets a time limit (SIGALRM) so a hung test fails
instead of hanging the suite.
"""

import argparse
import importlib
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TEST_TIME_LIMIT = 180


class Timeout(Exception):
    pass


def on_alarm(signum, frame):
    raise Timeout(f"test exceeded {TEST_TIME_LIMIT}s")


def discover(only):
    here = os.path.dirname(os.path.abspath(__file__))
    tests = []
    for name in sorted(os.listdir(here)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        mod = importlib.import_module(name[:-3])
        for attr in sorted(dir(mod)):
            fn = getattr(mod, attr)
            if attr.startswith("test_") and callable(fn):
                full = f"{name[:-3]}.{attr}"
                if only and not any(o in full for o in only):
                    continue
                tests.append((full, fn, getattr(mod, "TSAN_OK", True)))
    # keep file order then definition order
    return tests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--only", action="append")
    ap.add_argument("--tsan", action="store_true", help="TSan build: slower, run TSAN_OK modules")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    harness.Server.BINARY = os.path.abspath(a.binary)
    if a.tsan:
        harness.Server.TIMEOUT_SCALE = 4.0
        harness.Server.TSAN = True
    tests = discover(a.only)
    if a.tsan:
        tests = [t for t in tests if t[2]]
    if a.list:
        for t in tests:
            print(t[0])
        return 0
    signal.signal(signal.SIGALRM, on_alarm)
    passed = failed = 0
    for name, fn, _ in tests:
        t0 = time.monotonic()
        signal.alarm(int(TEST_TIME_LIMIT * harness.Server.TIMEOUT_SCALE))
        try:
            fn()
            signal.alarm(0)
            passed += 1
            print(f"PASS {name} ({time.monotonic() - t0:.2f}s)", flush=True)
        except BaseException as e:  # noqa: BLE001 - report everything, go on
            signal.alarm(0)
            if isinstance(e, KeyboardInterrupt):
                raise
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - t0:.2f}s): {e}", flush=True)
            if not isinstance(e, harness.TestFailure):
                traceback.print_exc()
    print(f"e2e: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
