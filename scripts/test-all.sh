#!/usr/bin/env bash
# THE test command of marketmeter (README "The two commands"; .ci/run runs exactly this):
#   format check, clippy with warnings as errors, build, every Rust test (unit, property, store
#   conformance, the Rust SDK end to end), then the Python suites (boto3, AWS CLI v1, raw HTTP,
#   the demo's commands as printed) in a virtual environment .venv that scripts/test-python.sh
#   creates on first use, a bounded fuzz run (scripts/fuzz.sh), and the PostgreSQL repeats.
# Exits non-zero at the first failing stage; the summary at the end says which one.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
stages=()      # "name|result|seconds"
current=""
current_start=0

section() {
  current="$1"
  current_start=$(date +%s)
  printf '\n==================== %s ====================\n' "$current"
}

done_stage() {
  stages+=("$current|${1:-ok}|$(( $(date +%s) - current_start ))")
  current=""
}

summary() {
  local rc=$?
  if [ -n "$current" ]; then
    stages+=("$current|FAILED|$(( $(date +%s) - current_start ))")
  fi
  printf '\n==================== summary ====================\n'
  local s name result secs
  for s in ${stages[@]+"${stages[@]}"}; do
    IFS='|' read -r name result secs <<<"$s"
    printf '  %-8s %-58s %5ss\n' "$result" "$name" "$secs"
  done
  if [ "$rc" -eq 0 ]; then
    printf 'all stages passed in %ss\n' "$(( $(date +%s) - start ))"
  else
    printf 'FAILED (exit %s) after %ss\n' "$rc" "$(( $(date +%s) - start ))"
  fi
  exit "$rc"
}
trap summary EXIT

section "format: cargo fmt --all -- --check"
cargo fmt --all -- --check
done_stage

section "lint: cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
done_stage

section "build: cargo build --workspace --all-targets --locked"
cargo build --workspace --all-targets --locked
done_stage

section "PostgreSQL: make sure the local server answers (DATABASE_URL wins when set)"
if [ "${CI:-}" = "true" ]; then export MARKETMETER_REQUIRE_POSTGRES=1; fi
# CI machines have PostgreSQL installed; this starts it when it is stopped.
postgres=yes
bash scripts/ensure-postgres.sh || postgres=no
if [ "$postgres" = no ]; then
  if [ "${MARKETMETER_REQUIRE_POSTGRES:-}" = 1 ]; then
    echo "PostgreSQL is required here (CI / MARKETMETER_REQUIRE_POSTGRES=1) but not reachable" >&2
    exit 1
  fi
  printf '\n!!!!!!!!!! PostgreSQL is not reachable: its stages are SKIPPED (set DATABASE_URL)\n\n'
fi
done_stage

section "Rust tests: cargo test --workspace --locked"
cargo test --workspace --locked
done_stage

section "Python: boto3, AWS CLI v1, raw HTTP, demo (scripts/test-python.sh)"
MARKETMETER_BIN="$PWD/target/debug/marketmeter" bash scripts/test-python.sh
done_stage

section "fuzz: every cargo-fuzz target for FUZZ_SECONDS (20) from real inputs (scripts/fuzz.sh)"
bash scripts/fuzz.sh
done_stage

section "Rust SDK end to end, every server on PostgreSQL (MARKETMETER_TEST_DB=postgres)"
if [ "$postgres" = yes ]; then
  # --workspace, like the stages above: a per-package run unifies features differently and
  # would rebuild dependencies.
  MARKETMETER_TEST_DB=postgres cargo test --locked --workspace \
    --test rust_sdk --test admin_cli --test restart --test catalog --test subscriptions \
    --test operations --test test_controls --test reports --test containers --test audit
  done_stage
else
  done_stage SKIPPED
fi

section "Python: boto3, AWS CLI v1, raw HTTP on PostgreSQL (MARKETMETER_TEST_DB=postgres)"
if [ "$postgres" = yes ]; then
  MARKETMETER_TEST_DB=postgres MARKETMETER_BIN="$PWD/target/debug/marketmeter" \
    bash scripts/test-python.sh --ignore=tests/python/test_demo.py
  done_stage
else
  done_stage SKIPPED
fi
