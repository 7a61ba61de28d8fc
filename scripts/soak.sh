#!/usr/bin/env bash
# Soak test: SOAK_SECONDS (default 600) of mixed signed load (BatchMeterUsage new and retried,
# MeterUsage, ResolveCustomer, RegisterUsage) from SOAK_THREADS (4) boto3 clients against a
# fresh server, recording latency percentiles and the server's RSS; fails on any error or on RSS
# growth over SOAK_MAX_GROWTH_MIB (64). Prints a Markdown report (see docs/soak.md).
#   bash scripts/soak.sh                 # release build (built if missing)
#   MARKETMETER_BIN=target/debug/marketmeter SOAK_SECONDS=60 bash scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${MARKETMETER_BIN:-target/release/marketmeter}"
if [ -z "${MARKETMETER_BIN:-}" ]; then cargo build --release --locked --bin marketmeter; fi
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
# The virtual environment with boto3 (created on first use by the Python test script).
bash scripts/test-python.sh --co -q >/dev/null
MARKETMETER_BIN="$bin" PYTHONDONTWRITEBYTECODE=1 .venv/bin/python scripts/soak.py
