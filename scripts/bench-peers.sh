#!/usr/bin/env bash
# Side-by-side ingestion benchmark on THIS machine, in one run (issue 4):
#   marketmeter on SQLite (fresh temp database), marketmeter on PostgreSQL (fresh schema),
#   moto's server (BatchMeterUsage only; venv .venv-bench made here) and the HTTP ceiling
#   (`marketmeter bench ceiling`), each started in turn, loaded with the same `marketmeter bench`
#   run at concurrency 16, measured (throughput, latency, resident memory idle and under load,
#   time to ready), and stopped. Rewrites the generated part of docs/BENCHMARKS.md.
#
#   bash scripts/bench-peers.sh [--duration 20s] [--warmup 2s] [--concurrency 16]
#
# PostgreSQL: DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test; skipped when unreachable.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=20s
warmup=2s
concurrency=16
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$CARGO_TARGET_DIR/release/marketmeter"
. scripts/bench-lib.sh
pg_schema="bench_$(date +%s)_$$"
pg_cold_schema="${pg_schema}_cold"
work="$(mktemp -d)"
pids=()

cleanup() {
  local p
  for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
  for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
  local s
  for s in "$pg_schema" "$pg_cold_schema"; do
    psql -q "$pg_base" -c "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf '\n== %s\n' "$*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
# Every command that produced a number, for the document.
commands="$work/commands"
record() { printf '%s\n' "$*" >>"$commands"; }

log "build: cargo build --release --locked --bin marketmeter"
cargo build --release --locked --bin marketmeter
record "cargo build --release --locked --bin marketmeter"

if [ ! -x .venv-bench/bin/moto_server ]; then
  log "moto: creating .venv-bench"
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install --quiet --upgrade pip
  .venv-bench/bin/pip install --quiet -r tests/bench/requirements-moto.txt
fi

# start NAME READY_URL COMMAND...: starts a server, waits until READY_URL answers 200, and
# writes its pid, time to ready (ms) and idle resident memory (KiB) to $work/NAME.*
start() {
  local name="$1" ready="$2"; shift 2
  record "$*"
  local t0; t0=$(now_ms)
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  local pid=$!
  pids+=("$pid")
  echo "$pid" >"$work/$name.pid"
  local deadline=$(( t0 + 120000 ))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$ready" 2>/dev/null)" = 200 ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited before it was ready:" >&2; tail -20 "$work/$name.err" >&2; return 1
    fi
    if [ "$(now_ms)" -gt "$deadline" ]; then echo "$name not ready after 120 s" >&2; return 1; fi
    sleep 0.005
  done
  echo $(( $(now_ms) - t0 )) >"$work/$name.ready_ms"
  sleep 1 # idle means idle: let start-up work settle
  kib "$pid" VmRSS >"$work/$name.idle_kib"
}

# load NAME OP ENDPOINT [bench flags...]: one measured run; samples resident memory meanwhile.
load() {
  local name="$1" op="$2" endpoint="$3"; shift 3
  local pid; pid=$(cat "$work/$name.pid")
  local args=(bench --endpoint "$endpoint" --seed "$seed" --op "$op" --identity customer
    --concurrency "$concurrency" --warmup "$warmup" --duration "$duration" --json "$@")
  record "$bin ${args[*]}"
  log "$name: $op for $duration at concurrency $concurrency"
  ( peak=0; while kill -0 "$pid" 2>/dev/null; do
      r=$(kib "$pid" VmRSS 2>/dev/null || echo 0); [ "${r:-0}" -gt "$peak" ] && peak=$r
      echo "$peak" >"$work/$name-$op.load_kib"; sleep 0.2
    done ) &
  local sampler=$!
  "$bin" "${args[@]}" >"$work/$name-$op.json" || echo "(the run counted errors; see the table)" >&2
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  kib "$pid" VmHWM >"$work/$name-$op.hwm_kib"
}

stop() {
  local pid; pid=$(cat "$work/$1.pid")
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}

# The world of scripts/bench-lib.sh; if the ceiling runs out of keys, its numbers cover the
# time it ran.
seed="$work/seed.toml"
"$bin" bench seed "${bench_seed_args[@]}" >"$seed"
record "$bin bench seed ${bench_seed_args[*]} > seed.toml"

loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)

pg_up=no
psql -q "$pg_base" -c 'select 1' >/dev/null 2>&1 && pg_up=yes

# Start-up alone: an empty database and no seed (the seeded starts below also load the world).
port=$(free_port)
start sqlite-cold "http://127.0.0.1:$port/health/ready" "$bin" serve --listen "127.0.0.1:$port" \
  --db "$work/cold.sqlite3" --admin-token bench
stop sqlite-cold
if [ "$pg_up" = yes ]; then
  port=$(free_port)
  start postgres-cold "http://127.0.0.1:$port/health/ready" "$bin" serve \
    --listen "127.0.0.1:$port" --db "$(pg_url "$pg_cold_schema")" --admin-token bench
  stop postgres-cold
fi

port=$(free_port)
start sqlite "http://127.0.0.1:$port/health/ready" "$bin" serve --listen "127.0.0.1:$port" \
  --db "$work/sqlite.sqlite3" --seed "$seed" --admin-token bench
load sqlite batch "http://127.0.0.1:$port"
load sqlite meter "http://127.0.0.1:$port"
stop sqlite

if [ "$pg_up" = yes ]; then
  port=$(free_port)
  start postgres "http://127.0.0.1:$port/health/ready" "$bin" serve --listen "127.0.0.1:$port" \
    --db "$(pg_url "$pg_schema")" --seed "$seed" --admin-token bench
  load postgres batch "http://127.0.0.1:$port"
  load postgres meter "http://127.0.0.1:$port"
  stop postgres
  psql -tA "$pg_base" -c 'show server_version' >"$work/postgres.version" 2>/dev/null || true
else
  log "PostgreSQL at $pg_base is not reachable: skipped"
fi

port=$(free_port)
start moto "http://127.0.0.1:$port/moto-api/" .venv-bench/bin/moto_server -H 127.0.0.1 -p "$port"
# moto cannot subscribe customers, so it answers CustomerNotSubscribed (and stores nothing).
load moto batch "http://127.0.0.1:$port" --accept-status CustomerNotSubscribed
stop moto

port=$(free_port)
start ceiling "http://127.0.0.1:$port/health/ready" "$bin" bench ceiling \
  --listen "127.0.0.1:$port" --seed "$seed" --identity customer
load ceiling batch "http://127.0.0.1:$port"
load ceiling meter "http://127.0.0.1:$port"
stop ceiling

log "writing docs/BENCHMARKS.md"
python3 scripts/bench-report.py "$work" docs/BENCHMARKS.md \
  --duration "$duration" --warmup "$warmup" --concurrency "$concurrency" \
  --loadavg "$loadavg_before" --moto "$(.venv-bench/bin/python -c 'import moto; print(moto.__version__)')"
echo "docs/BENCHMARKS.md rewritten" >&2
