#!/usr/bin/env bash
# Makes sure the local PostgreSQL answers on 127.0.0.1:5432 when it is installed but stopped.
# Does nothing when DATABASE_URL is set or the server already answers.
set -uo pipefail
if [ -n "${DATABASE_URL:-}" ]; then exit 0; fi
ready() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
if ready; then echo "PostgreSQL answers on 127.0.0.1:5432"; exit 0; fi
if command -v pg_lsclusters >/dev/null; then
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>&1 || true
  done
fi
for _ in $(seq 1 20); do ready && { echo "PostgreSQL started"; exit 0; }; sleep 0.5; done
echo "PostgreSQL is not reachable on 127.0.0.1:5432"
exit 1
