#!/usr/bin/env bash
# Smoke runs of the metering throughput runner and the fleet propagation runner against a
# redis-server of their own (on a unix socket, so no port can clash): the bench binaries keep
# working, and their end-to-end checks run (every flushed event in the stream, once; a stop and
# a quorum reach every member). The figures printed are informative only; the README's come
# from longer runs over TCP.
set -euxo pipefail
dir=$(mktemp -d)
sock="$dir/redis.sock"
redis-server --port 0 --unixsocket "$sock" --save '' --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid"
trap 'redis-cli -s "$sock" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -s "$sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_URL="redis+unix://$sock" cargo run --profile bench --locked -p resilience-benches \
    --bin meter_flush -- 100000 3
# The fleet propagation runner, briefly: it fails if a stop or a quorum does not reach every
# member within 10 s.
REDIS_URL="redis+unix://$sock" cargo run --profile bench --locked -p resilience-benches \
    --bin fleet_latency -- 4 3
