# Sourced by the bench scripts (bench-peers.sh, bench-growth.sh, bench-profile.sh) from the
# repository root: what they must agree on, in one place.

# PostgreSQL they create their schemas on.
pg_base="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

# The benchmark world (`marketmeter bench seed`). Big enough that a run does not exhaust the
# unique (customer, dimension, hour) keys even in the first hours of a month, when only that
# month's few hours are usable: 4,000 customers x 250 dimensions = 1M keys per hour. (The HTTP
# ceiling, ~1M records/s, may still run out: "stopped by key-space".)
bench_seed_args=(--agreements 4000 --workloads 1000 --dimensions 250)

# A TCP port free on 127.0.0.1 right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The URL of schema $1 on $pg_base (whether or not that URL already has parameters).
pg_url() {
  case "$pg_base" in *\?*) printf '%s&' "$pg_base" ;; *) printf '%s?' "$pg_base" ;; esac
  printf 'options=-c%%20search_path%%3D%s\n' "$1"
}
