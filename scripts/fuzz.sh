#!/usr/bin/env bash
# Fuzzes bcfl's parsers of untrusted bytes with libFuzzer (the targets are fuzz/src/lib.rs).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each TARGET (default: all eight) for SECONDS (default 60) from its seeds and the committed
# corpus (fuzz/corpus/TARGET), and prints one JSON line per target: executions, seconds, corpus
# size, and whether it crashed. A crashing input is copied into fuzz/corpus/TARGET/, where the
# test suite replays it for ever after (fix the bug, keep the file). Exit status 1 on a crash.
#
# No nightly toolchain or cargo-fuzz is needed: the targets are built on stable Rust with
# LLVM's coverage instrumentation (`-Cpasses=sancov-module`, as cargo-fuzz does with
# `--sanitizer none`), in a target folder of their own ($BCFL_HOME/fuzz-target).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/env.sh

seconds="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(payload handler batch manifest range update blob_request rest_request)
fi

# The seed writer is an ordinary program: built without instrumentation, in the usual target
# folder.
cargo build -p bcfl-fuzz --bin bcfl-fuzz-seeds >&2
seeds="$CARGO_TARGET_DIR/debug/bcfl-fuzz-seeds"

triple="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$BCFL_HOME/fuzz-target"
# Instrumentation for the fuzzed code only: with --target, RUSTFLAGS skip build scripts and
# proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
echo "[fuzz] building the targets (instrumented, release)" >&2
bins=()
for target in "${targets[@]}"; do bins+=(--bin "$target"); done
cargo build --release --target "$triple" -p bcfl-fuzz --features libfuzzer "${bins[@]}" >&2
bin="$CARGO_TARGET_DIR/$triple/release"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
for target in "${targets[@]}"; do
  corpus="$work/$target"
  mkdir -p "$corpus" "fuzz/corpus/$target"
  "$seeds" "$target" "$corpus"
  cp fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  log="$work/$target.log"
  set +e
  "$bin/$target" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$work/$target-" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  crashed=false
  if [ "$rc" -ne 0 ]; then
    crashed=true
    status=1
    for artifact in "$work/$target"-*; do
      [ -f "$artifact" ] || continue
      name="$(sha256sum "$artifact" | cut -c1-64)"
      cp "$artifact" "fuzz/corpus/$target/crash-$name"
      echo "[fuzz] $target crashed: fuzz/corpus/$target/crash-$name" >&2
    done
    tail -30 "$log" >&2
  fi
  printf '{"target":"%s","seconds":%s,"executions":%s,"corpus":%s,"crashed":%s}\n' \
    "$target" "$seconds" "${runs:-0}" "$(ls "$corpus" | wc -l)" "$crashed"
done
exit "$status"
