#!/usr/bin/env bash
# Bounded fuzz run of every cargo-fuzz target in fuzz/ (FUZZ_SECONDS each, default 20), each
# starting from its seeds in fuzz/seeds/<target>/ (real SDK requests, SigV4 headers, seed and
# config files). Part of scripts/test-all.sh.
#
# Installs cargo-fuzz when missing. Uses the nightly toolchain when there is one (with
# AddressSanitizer); otherwise stable with RUSTC_BOOTSTRAP=1 and no sanitizer (-s none).
# FUZZ_TOOLCHAIN=stable forces that fallback (to check it), FUZZ_TOOLCHAIN=nightly the first.
# When fuzzing cannot run here (no cargo-fuzz, no toolchain that builds the targets) the stage
# is SKIPPED with a loud message, and FAILS under CI=true: CI must never pass without fuzzing.
# A crash found while fuzzing fails it (the reproducer is in fuzz/artifacts/<target>/).
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-20}"
cannot() {
  if [ "${CI:-}" = "true" ]; then
    printf '\n!!!!!!!!!! fuzzing FAILED: it cannot run here, and CI=true requires it: %s\n\n' "$*" >&2
    exit 1
  fi
  printf '\n!!!!!!!!!! fuzzing SKIPPED: %s\n\n' "$*"
  exit 0
}
# Keep fuzz builds (instrumented, another profile) apart from the workspace's own artifacts.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz"; fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked || cannot "cargo-fuzz could not be installed"
fi

toolchain="${FUZZ_TOOLCHAIN:-}"
if [ -z "$toolchain" ]; then
  if cargo +nightly --version >/dev/null 2>&1; then toolchain=nightly; else toolchain=stable; fi
fi
case "$toolchain" in
  nightly)
    fuzz=(cargo +nightly fuzz)
    build_flags=()
    ;;
  stable)
    echo "no nightly toolchain (or FUZZ_TOOLCHAIN=stable): stable with RUSTC_BOOTSTRAP=1, no sanitizer"
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
    build_flags=(-s none)
    ;;
  *)
    echo "FUZZ_TOOLCHAIN=$toolchain: use nightly or stable" >&2
    exit 2
    ;;
esac

targets=$("${fuzz[@]}" list) || cannot "cargo fuzz list failed"
[ -n "$targets" ] || cannot "cargo fuzz list found no targets"
for target in $targets; do
  if ! ls seeds/"$target"/* >/dev/null 2>&1; then
    echo "fuzz target $target has no seeds in fuzz/seeds/$target/" >&2
    exit 1
  fi
done
echo "== building ${targets//$'\n'/ } ($toolchain)"
"${fuzz[@]}" build "${build_flags[@]}" || cannot "the $toolchain toolchain does not build the fuzz targets"

for target in $targets; do
  corpus=$(mktemp -d)
  cp seeds/"$target"/* "$corpus"/
  echo "== fuzzing $target for ${seconds}s from $(ls "$corpus" | wc -l) seeds"
  if ! "${fuzz[@]}" run "${build_flags[@]}" "$target" "$corpus" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
    rm -rf "$corpus"
    echo "fuzz target $target found a failure; reproduce with:" \
      "cd fuzz && ${fuzz[*]} run ${build_flags[*]} $target artifacts/$target/<file>" >&2
    exit 1
  fi
  rm -rf "$corpus"
done
echo "fuzzing: every target ran ${seconds}s without a failure ($toolchain)"
