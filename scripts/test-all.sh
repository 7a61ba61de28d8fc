#!/usr/bin/env bash
# The one test command of marketmeter: formatting and lints, every Rust test (unit, property,
# store conformance, the real Rust SDK end to end), then boto3 / AWS CLI / raw-HTTP suites in a
# Python virtual environment this script creates. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n==== %s ====\n' "$*"; }
start=$(date +%s)

section "format (cargo fmt --check)"
cargo fmt --all -- --check

section "lint (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

section "build"
cargo build --workspace --all-targets --locked

section "PostgreSQL for the tests"
# The PostgreSQL suites use DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test.
# Start a local cluster that is installed but stopped (CI machines have one).
bash scripts/ensure-postgres.sh || echo "warning: could not start PostgreSQL; its tests will say why"

section "Rust tests (unit, property, conformance, Rust SDK end to end)"
cargo test --workspace --locked

section "Python tests (boto3, AWS CLI, raw HTTP)"
MARKETMETER_BIN="$PWD/target/debug/marketmeter" bash scripts/test-python.sh

section "summary"
echo "all test stages passed in $(( $(date +%s) - start )) s"
