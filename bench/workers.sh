#!/usr/bin/env bash
# csms serve --workers N under the closed-loop benchmark: one run per N given (default 1 2).
# Needs PostgreSQL and Redis (several workers form a cluster): BENCH_DATABASE_URL (default a
# database `benchw` on the local PostgreSQL, created afresh) and BENCH_REDIS_URL (default db 9).
# Usage: bench/workers.sh [N ...]     e.g. bench/workers.sh 1 2
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${BENCH_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/benchw}
REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/9}
STATIONS=${BENCH_STATIONS:-200}
for W in "${@:-1 2}"; do
  for w in $W; do
    if [[ -z "${BENCH_DATABASE_URL:-}" ]]; then
      psql -q -h 127.0.0.1 -U postgres -d test -c "drop database if exists benchw" -c "create database benchw"
    fi
    redis-cli -u "$REDIS" flushdb >/dev/null
    DATA=$(mktemp -d)
    PORT=$((8400 + w))
    export CSMS_DATA_DIR=$DATA CSMS_DATABASE_URL=$DB CSMS_REDIS_URL=$REDIS CSMS_UNKNOWN_STATIONS=accept \
           CSMS_LOG_LEVEL=warning CSMS_NODE_ID=bench
    .venv/bin/csms serve --port "$PORT" --workers "$w" >"$DATA/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 150); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.2; done
    KEY=$(.venv/bin/csms apikey create --name "bench-workers-$w" | tail -1)
    echo "## --workers $w"
    .venv/bin/csms bench --url "ws://127.0.0.1:$PORT/ocpp" --api-key "$KEY" --scenario closed-loop \
      --stations "$STATIONS" --duration 15 --warmup 5 --prefix "W$w" \
      | grep -E "calls/s|latency|errors|calls answered|load average"
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  done
done
