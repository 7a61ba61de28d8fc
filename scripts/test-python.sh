#!/usr/bin/env bash
# Runs the boto3 / AWS CLI / raw-HTTP suites against the marketmeter binary in MARKETMETER_BIN
# (default target/debug/marketmeter). Creates .venv on first use and reinstalls only when
# tests/python/requirements.txt changes.
set -euo pipefail
cd "$(dirname "$0")/.."
export MARKETMETER_BIN="${MARKETMETER_BIN:-$PWD/target/debug/marketmeter}"
if [ ! -x "$MARKETMETER_BIN" ]; then
  echo "error: $MARKETMETER_BIN is missing; run 'cargo build' first" >&2
  exit 1
fi
venv=.venv
stamp="$venv/.requirements.sha256"
want=$(sha256sum tests/python/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "creating Python environment in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r tests/python/requirements.txt
  echo "$want" > "$stamp"
fi
export PATH="$PWD/$venv/bin:$PATH"
exec "$venv/bin/python" -m pytest -q tests/python "$@"
