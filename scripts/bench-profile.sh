#!/usr/bin/env bash
# Server CPU per record (or per call) and an optional CPU profile, for comparing builds on a
# shared, noisy machine (docs/BENCHMARKS.md, "Profiles"): starts BIN on a fresh SQLite database
# with the bench seed, warms it for 3 s, then loads it for 10 s with `marketmeter bench` at
# concurrency 16 and reports the server's utime+stime (from /proc) per unit of work, the bytes
# it wrote per unit (`wchar`: WAL frames and checkpoints), the whole machine's busy CPU per unit
# (load generator and, on PostgreSQL, the database included), and the group commits
# (from /metrics). With --perf, also samples the server with `perf record -e cpu-clock -g` into
# OUT/perf.data.
#
#   bash scripts/bench-profile.sh [--bin target/release/marketmeter] [--op batch|meter]
#                                 [--out DIR] [--perf] [--postgres]
#
# --postgres: a fresh schema on DATABASE_URL (else postgres://postgres@127.0.0.1:5432/test),
# dropped at the end, instead of a SQLite file.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/marketmeter
op=batch
out=""
perf=""
postgres=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --op) op="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --perf) perf=1; shift ;;
    --postgres) postgres=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || out="$(mktemp -d)"
mkdir -p "$out"
server=""
. scripts/bench-lib.sh
pg_schema="profile_$(date +%s)_$$"
cleanup() {
  [ -z "$server" ] || { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  [ -z "$postgres" ] || psql -q "$pg_base" -c "DROP SCHEMA IF EXISTS $pg_schema CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

seed="$out/seed.toml"
"$bin" bench seed "${bench_seed_args[@]}" >"$seed"
port=$(free_port)
url="http://127.0.0.1:$port"
rm -f "$out"/db.sqlite3*
db="$out/db.sqlite3"
if [ -n "$postgres" ]; then
  psql -q "$pg_base" -c "CREATE SCHEMA $pg_schema" >/dev/null
  db="$(pg_url "$pg_schema")"
fi
"$bin" serve --listen "127.0.0.1:$port" --db "$db" --seed "$seed" --admin-token bench \
  >"$out/serve.out" 2>"$out/serve.err" &
server=$!
until curl -sf "$url/health/ready" >/dev/null; do sleep 0.1; done
load() { "$bin" bench --endpoint "$url" --seed "$seed" --op "$op" --identity customer --concurrency 16 --json "$@"; }
load --warmup 1s --duration 2s >"$out/warm.json"
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
wchar() { awk '/^wchar/ {print $2}' "/proc/$server/io"; }
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
commits() { # group commits and write commands so far, from the server's metrics
  curl -s "$url/metrics" | awk '/^marketmeter_store_commit_batch_size_count/ {c=$2}
    /^marketmeter_store_commit_batch_size_sum/ {s=$2}
    /^marketmeter_store_commit_duration_seconds_sum/ {d=$2} END {print c+0, s+0, d+0}'
}
before=$(ticks); wbefore=$(wchar); bbefore=$(busy); read -r c0 s0 d0 < <(commits)
if [ -n "$perf" ]; then
  perf record -e cpu-clock -F 499 -g -p "$server" -o "$out/perf.data" -- sleep 10 >/dev/null 2>&1 &
  recorder=$!
fi
load --duration 10s >"$out/run.json"
after=$(ticks); wafter=$(wchar); bafter=$(busy); read -r c1 s1 d1 < <(commits)
[ -z "$perf" ] || wait "$recorder"
python3 - "$out/run.json" "$before" "$after" "$(getconf CLK_TCK)" "$wbefore" "$wafter" \
  "$bbefore" "$bafter" "$c0" "$c1" "$s0" "$s1" "$d0" "$d1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["operations"][0]
hz = int(sys.argv[4])
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / hz
written = int(sys.argv[6]) - int(sys.argv[5])
busy = (int(sys.argv[8]) - int(sys.argv[7])) / hz
c0, c1, s0, s1 = (float(x) for x in sys.argv[9:13])
d0, d1 = float(sys.argv[13]), float(sys.argv[14])
work = r.get("records") or r["requests"]
print(f"{r['operation']}: {r['requests_per_s']:,.0f} requests/s, {work:,} records, p99 {r['latency_ms']['p99']} ms; "
      f"server CPU {cpu:.2f} s = {cpu / work * 1e6:.1f} us per record; "
      f"written {written / work:,.0f} bytes per record; machine CPU {busy / work * 1e6:.1f} us per record")
if c1 > c0:
    print(f"group commits: {c1 - c0:,.0f}, {(s1 - s0) / (c1 - c0):.1f} write requests each, "
          f"{(d1 - d0) / (c1 - c0) * 1e3:.2f} ms BEGIN..COMMIT each, {d1 - d0:.2f} s in transactions")
PY
echo "output in $out" >&2
