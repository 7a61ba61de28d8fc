#!/usr/bin/env bash
# Bounded fuzz run of every cargo-fuzz target in fuzz/ (FUZZ_SECONDS each, default 20), each
# starting from the real SDK requests in fuzz/seeds/<target>/. Part of scripts/test-all.sh.
#
# Installs cargo-fuzz when missing. Uses the nightly toolchain when rustup has one; otherwise
# stable with RUSTC_BOOTSTRAP=1 and no sanitizer (-s none). When no toolchain can build the
# targets the stage is SKIPPED with a loud message instead of failing; a crash found while
# fuzzing fails it (the reproducer is in fuzz/artifacts/<target>/).
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-20}"
skip() { printf '\n!!!!!!!!!! fuzzing SKIPPED: %s\n\n' "$*"; exit 0; }
# Keep fuzz builds (instrumented, another profile) apart from the workspace's own artifacts.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz"; fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked || skip "cargo-fuzz could not be installed"
fi

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
  build_flags=()
else
  echo "no nightly toolchain: building with RUSTC_BOOTSTRAP=1 and without a sanitizer"
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
  build_flags=(-s none)
fi

targets=$("${fuzz[@]}" list) || skip "cargo fuzz list failed"
for target in $targets; do
  echo "== building $target"
  "${fuzz[@]}" build "${build_flags[@]}" "$target" || skip "no toolchain here builds the fuzz targets"
done

for target in $targets; do
  corpus=$(mktemp -d)
  cp seeds/"$target"/* "$corpus"/
  echo "== fuzzing $target for ${seconds}s from $(ls "$corpus" | wc -l) seed requests"
  if ! "${fuzz[@]}" run "${build_flags[@]}" "$target" "$corpus" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
    rm -rf "$corpus"
    echo "fuzz target $target found a failure; reproduce with: cd fuzz && cargo +nightly fuzz run $target artifacts/$target/<file>" >&2
    exit 1
  fi
  rm -rf "$corpus"
done
echo "fuzzing: every target ran ${seconds}s without a failure"
