#!/usr/bin/env bash
# scripts/deps.sh - install the Debian packages (and pinned npm packages) that
# building, running and testing ringcast need. Idempotent; run as root (or via
# sudo). Usage: scripts/deps.sh run|test|bench
set -euo pipefail
what=${1:-run}

build_pkgs=(meson ninja-build pkg-config gcc libc6-dev liburing-dev libmimalloc-dev libxxhash-dev
            libjansson-dev libssl-dev zlib1g-dev libsqlite3-dev libhiredis-dev libpq-dev libcurl4-openssl-dev curl
            ca-certificates)
test_pkgs=(libcmocka-dev clang libclang-rt-14-dev clang-format g++ libbenchmark-dev python3
           python3-websockets openssl nodejs npm git redis-server haproxy postgresql-15
           chromium prometheus)
bench_pkgs=(g++ libbenchmark-dev nginx-light libnginx-mod-nchan nats-server gnuplot-nox)

pkgs=("${build_pkgs[@]}")
case "$what" in
    run) ;;
    test) pkgs+=("${test_pkgs[@]}") ;;
    bench) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
    *) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
    # nodejs/npm may come from elsewhere on a dev machine: accept the commands
    if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
    if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y -q "${missing[@]}" >/tmp/ringcast-apt.log 2>&1; then
        $SUDO apt-get update -q >>/tmp/ringcast-apt.log 2>&1
        if ! $SUDO apt-get install -y -q "${missing[@]}" >>/tmp/ringcast-apt.log 2>&1; then
            echo "deps: apt-get install failed; see /tmp/ringcast-apt.log" >&2
            tail -20 /tmp/ringcast-apt.log >&2
            exit 1
        fi
    fi
fi

if [ "$what" != run ]; then
    # Node test clients (ws, eventsource), pinned by package-lock.json
    here=$(cd "$(dirname "$0")/.." && pwd)
    nd="$here/tests/e2e/node"
    if [ -f "$nd/package-lock.json" ]; then
        lockhash=$(sha256sum "$nd/package-lock.json" | cut -c1-16)
        if [ ! -f "$nd/node_modules/.ringcast-$lockhash" ]; then
            (cd "$nd" && npm ci --no-audit --no-fund --loglevel=error >/tmp/ringcast-npm.log 2>&1) || {
                echo "deps: npm ci failed; see /tmp/ringcast-npm.log" >&2
                tail -20 /tmp/ringcast-npm.log >&2
                exit 1
            }
            touch "$nd/node_modules/.ringcast-$lockhash"
        fi
    fi
fi
