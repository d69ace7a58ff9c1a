#!/usr/bin/env bash
# Our server against the ocpp-rpc strict server (bench/ocpp_rpc_server.mjs: every frame
# validated, nothing stored), side by side: each round runs `csms bench --against-node`, i.e. the
# same stations and load against csms serve, then against the Node server, in one command.
# SQLite: a fresh data directory per run (csms bench makes it). PostgreSQL: a fresh database
# `bench_node` on the local server per round (BENCH_DATABASE_URL to use another, not recreated).
# Usage: bench/against_node.sh [sqlite|postgresql ...]   (default: both)
# Environment: BENCH_ROUNDS (2), BENCH_STATIONS (200), BENCH_DURATION (10), BENCH_WARMUP (10).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${BENCH_ROUNDS:-2}
ARGS=(--scenario closed-loop --stations "${BENCH_STATIONS:-200}" --duration "${BENCH_DURATION:-10}"
      --warmup "${BENCH_WARMUP:-10}" --against-node)
for DBKIND in "${@:-sqlite postgresql}"; do
  for kind in $DBKIND; do
    for round in $(seq "$ROUNDS"); do
      echo "## $kind, round $round ($(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg))"
      if [[ $kind == postgresql ]]; then
        DB=${BENCH_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/bench_node}
        if [[ -z "${BENCH_DATABASE_URL:-}" ]]; then
          psql -q -h 127.0.0.1 -U postgres -d postgres -c "drop database if exists bench_node" \
               -c "create database bench_node"
        fi
        .venv/bin/csms bench "${ARGS[@]}" --database-url "$DB" 2>/dev/null
      else
        .venv/bin/csms bench "${ARGS[@]}" 2>/dev/null
      fi
      echo
    done
  done
done
