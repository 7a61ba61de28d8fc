#!/usr/bin/env bash
# Runs the Python end-to-end suites (boto3, AWS CLI v1, raw HTTP, the demo's commands) against the
# marketmeter binary in MARKETMETER_BIN (default: target/debug/marketmeter).
#
# Creates the virtual environment .venv on first use and reinstalls tests/python/requirements.txt
# only when that file changes (its sha256 is kept in .venv/.requirements.sha256).
# Extra arguments go to pytest, e.g. `bash scripts/test-python.sh -k Batch -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bin="${MARKETMETER_BIN:-target/debug/marketmeter}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "error: marketmeter binary not found at $bin" >&2
  echo "       build it with 'cargo build -p marketmeter --bin marketmeter' or set MARKETMETER_BIN" >&2
  exit 1
fi
export MARKETMETER_BIN="$bin"

venv="$root/.venv"
requirements="$root/tests/python/requirements.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  echo "creating Python virtual environment in $venv"
  python3 -m venv --clear "$venv"
  rm -f "$stamp"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "installing tests/python/requirements.txt into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi

# The suites run the venv's `aws`; keep it first on PATH for anything they spawn.
export PATH="$venv/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/python "$@"
