#!/usr/bin/env bash
# Growth measurement (issue 4, item 4): ingest throughput and report latency as stored data
# grows. Per backend: fills a fresh database with `marketmeter bench fill` (synthetic records
# of the bench product, 1,200 per hour from the month 12 months ago on, through the store's own
# write path), then starts the server with the bench seed and measures
#   * ingest: `marketmeter bench` BatchMeterUsage, concurrency 16, for --duration;
#   * reports: a one-product-month report of that first month (full at every size, so the same
#     report is timed as the data grows) by dimension (served from the hourly rollup) and by
#     customer and dimension (a scan of that month's records), median of 3;
# first at 1M stored records, then after filling up to 10M. Prints a Markdown table.
#
#   bash scripts/bench-growth.sh [--backend sqlite|postgres|both] [--sizes "1000000 10000000"]
#                                [--duration 10s]
#
# PostgreSQL: DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test (a fresh schema, dropped
# at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

backend=both
sizes="1000000 10000000"
duration=10s
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$CARGO_TARGET_DIR/release/marketmeter"
. scripts/bench-lib.sh
pg_schema="growth_$(date +%s)_$$"
work="$(mktemp -d)"
server=""

cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  psql -q "$pg_base" -c "DROP SCHEMA IF EXISTS $pg_schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked --bin marketmeter >&2
seed="$work/seed.toml"
"$bin" bench seed "${bench_seed_args[@]}" >"$seed"
port=$(free_port)
url="http://127.0.0.1:$port"
# The month `bench fill` starts with (12 months ago), as RFC 3339.
from=$(date -u -d "$(date -u +%Y-%m-01) -12 months" +%Y-%m-01T00:00:00Z)
to=$(date -u -d "$(date -u +%Y-%m-01) -11 months" +%Y-%m-01T00:00:00Z)

report_ms() { # GROUP_BY -> median milliseconds of 3 reports (and checks each answered 200)
  local t all=()
  for _ in 1 2 3; do
    t=$(curl -s -o "$work/report.json" -w '%{http_code} %{time_total}' -H "Authorization: Bearer bench" \
      "$url/admin/v1/reports/usage?product_code=bench-saas&from=$from&to=$to&period=month&group_by=$1")
    [ "${t%% *}" = 200 ] || { echo "report failed: $t $(head -c 300 "$work/report.json")" >&2; exit 1; }
    all+=("$(awk -v s="${t#* }" 'BEGIN {printf "%.0f", s * 1000}')")
  done
  printf '%s\n' "${all[@]}" | sort -n | sed -n 2p
}

month_records() { # records in last month's report (by dimension), from the JSON answer
  curl -s -H "Authorization: Bearer bench" \
    "$url/admin/v1/reports/usage?product_code=bench-saas&from=$from&to=$to&period=month&group_by=dimension" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); rows=d.get("rows", d if isinstance(d, list) else []); print(sum(int(r.get("records", 0)) for r in rows))'
}

measure() { # BACKEND DB SIZE
  local t0 t1
  t0=$(date +%s%N)
  "$bin" serve --listen "127.0.0.1:$port" --db "$2" --seed "$seed" --admin-token bench \
    >"$work/serve.out" 2>"$work/serve.err" &
  server=$!
  until curl -sf "$url/health/ready" >/dev/null 2>&1; do
    kill -0 "$server" 2>/dev/null || { tail "$work/serve.err" >&2; exit 1; }
    sleep 0.05
  done
  t1=$(date +%s%N)
  local n by_dim by_cust
  n=$(month_records)
  by_dim=$(report_ms dimension)
  by_cust=$(report_ms customer,dimension)
  "$bin" bench --endpoint "$url" --seed "$seed" --op batch --identity customer --concurrency 16 \
    --warmup 2s --duration "$duration" --json >"$work/bench.json"
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  python3 - "$work/bench.json" "$1" "$3" "$n" "$by_dim" "$by_cust" "$(( (t1 - t0) / 1000000 ))" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["operations"][0]
backend, size, month, by_dim, by_cust, ready = sys.argv[2:]
print(f"| {backend} | {int(size):,} | {int(month):,} | {r['records_per_s']:,.0f} | {r['latency_ms']['p99']:.1f} "
      f"| {by_dim} | {by_cust} | {ready} |")
PY
}

echo "| backend | stored records | records in the reported month | ingest records/s | ingest p99 ms | month report by dimension, ms | month report by customer and dimension, ms | ready with the seed, ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for b in sqlite postgres; do
  [ "$backend" = both ] || [ "$backend" = "$b" ] || continue
  case "$b" in
    sqlite) db="$work/growth.sqlite3" ;;
    postgres) db="$(pg_url "$pg_schema")" ;;
  esac
  filled=0
  for size in $sizes; do
    echo "$b: filling to $size records" >&2
    "$bin" bench fill --db "$db" --seed "$seed" --start "$filled" --records $(( size - filled )) >&2
    filled=$size
    # What autovacuum does after a bulk load in production: planner statistics (without them
    # PostgreSQL planned the month's 892,800 rows as 11 and sorted them on disk) and the
    # visibility map (index-only scans). This machine's PostgreSQL runs with autovacuum off.
    [ "$b" = sqlite ] || psql -q "$db" -c "VACUUM (ANALYZE) usage_records, usage_hourly, usage_hourly_delta" >&2
    measure "$b" "$db" "$size"
  done
done
