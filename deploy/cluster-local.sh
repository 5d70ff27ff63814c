#!/usr/bin/env bash
# deploy/cluster-local.sh - try a ringcast cluster on one machine: a
# redis-server, N ringcast nodes (broker=redis, PROXY protocol on) and HAProxy
# in front with deploy/haproxy.cfg, all on 127.0.0.1. Ctrl-C stops everything.
#
#   deploy/cluster-local.sh            3 nodes, HAProxy on :8080
#   NODES=2 PORT=9000 deploy/cluster-local.sh
#
# Clients connect to HAProxy (ws://127.0.0.1:$PORT/api/realtime/ws, SSE and
# the HTTP API alike); the nodes listen on $PORT+1.. and accept only
# connections that start with a PROXY header (HAProxy's), so talk to them
# through HAProxy. Redis listens on $PORT+100. Logs go to $DIR/*.log.
# Extra arguments are passed to every node (e.g. --presence=true).
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-3}
PORT=${PORT:-8080}
DIR=${DIR:-$(mktemp -d /tmp/ringcast-cluster-XXXXXX)}
mkdir -p "$DIR"
REDIS_PORT=$((PORT + 100))
if [ "$NODES" -lt 1 ] || [ "$NODES" -gt 3 ]; then
    echo "cluster-local: NODES must be 1..3 (deploy/haproxy.cfg names three servers)" >&2
    exit 2
fi

scripts/deps.sh test >/dev/null # redis-server and haproxy, like the tests
if [ ! -f build/release/build.ninja ]; then
    meson setup build/release -Dbuildtype=release -Dtests=false -Dbench=disabled >/dev/null
fi
ninja -C build/release ringcast >/dev/null

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "cluster-local: stopped (logs in $DIR)" >&2
}
trap cleanup EXIT
trap "exit 0" INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DIR" --save '' --appendonly no \
    --logfile "$DIR/redis.log" &
pids+=($!)

for i in $(seq 1 "$NODES"); do
    build/release/ringcast --listen-address=127.0.0.1 --port=$((PORT + i)) --broker=redis \
        --redis-url="redis://127.0.0.1:$REDIS_PORT" --node-name="node$i" --proxy-protocol=true \
        --data-dir="$DIR/node$i" "$@" >"$DIR/node$i.log" 2>&1 &
    pids+=($!)
done

export RC_HAPROXY_ADDR=127.0.0.1 RC_HAPROXY_PORT=$PORT
for i in 1 2 3; do
    n=$i
    [ "$i" -gt "$NODES" ] && n=1 # fewer nodes: the spare server lines point at node 1
    export "RC_NODE$i=127.0.0.1:$((PORT + n))"
done
haproxy -f deploy/haproxy.cfg -db -n 4000 >"$DIR/haproxy.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
        echo "cluster-local: $NODES nodes behind http://127.0.0.1:$PORT/ (redis :$REDIS_PORT," \
            "logs in $DIR); Ctrl-C stops" >&2
        wait -n "${pids[@]}" || true
        echo "cluster-local: a process exited; see $DIR/*.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "cluster-local: HAProxy did not answer on :$PORT; see $DIR/*.log" >&2
exit 1
