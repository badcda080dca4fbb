#!/usr/bin/env bash
# Training steps per second of bcfl (tch) against PyTorch, same model, batch and thread count, run
# alternately so that both see the same machine: `bcfl fl bench --only training` and
# bench/train_steps.py, REPEATS times each, then a summary. Prints one JSON object per run (with
# the load average just before it) and a last `{"summary": ...}` line with the medians and
# their ratio (bcfl / PyTorch; the goal is >= 1.0).
#
# Usage: bench/compare-training.sh [REPEATS [STEPS [THREADS]]]   (defaults 3, 10, 2)
# Environment: BCFL_BIN (default: the release build, then the debug build, in CARGO_TARGET_DIR),
# BATCH_SIZE (16), SEQ_LEN (128). Needs bench/setup-torch-venv.sh (run here, idempotent).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
. "$here/../scripts/env.sh"

repeats="${1:-3}"
steps="${2:-10}"
threads="${3:-2}"
batch="${BATCH_SIZE:-16}"
seq_len="${SEQ_LEN:-128}"

python=$("$here/setup-torch-venv.sh")
bin="${BCFL_BIN:-}"
if [ -z "$bin" ]; then
  for candidate in "$CARGO_TARGET_DIR/release/bcfl" "$CARGO_TARGET_DIR/debug/bcfl"; do
    if [ -x "$candidate" ]; then
      bin="$candidate"
      break
    fi
  done
fi
[ -n "$bin" ] && [ -x "$bin" ] || {
  echo "no bcfl binary: cargo build --release -p bcfl-cli --features bcfl-client/train" >&2
  exit 1
}
echo "{\"bcfl\": \"$bin\", \"threads\": $threads, \"steps\": $steps, \"batch_size\": $batch, \"seq_len\": $seq_len}"

# Both sides get the same OpenMP/MKL thread settings as well as the explicit thread count.
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
load() { cut -d' ' -f1 /proc/loadavg; }
results=()
for ((i = 1; i <= repeats; i++)); do
  before=$(load)
  line=$("$bin" fl bench --only training --threads "$threads" --steps "$steps" \
    --batch-size "$batch" --seq-len "$seq_len")
  results+=("bcfl $before $line")
  echo "{\"side\": \"bcfl\", \"load\": $before, \"result\": $line}"
  before=$(load)
  line=$("$python" "$here/train_steps.py" --model-dir "$BCFL_MODEL_DIR" --threads "$threads" \
    --steps "$steps" --batch-size "$batch" --seq-len "$seq_len")
  results+=("pytorch $before $line")
  echo "{\"side\": \"pytorch\", \"load\": $before, \"result\": $line}"
done

printf '%s\n' "${results[@]}" | "$python" -c '
import json, statistics, sys
runs = {"bcfl": [], "pytorch": []}
for line in sys.stdin:
    side, load, result = line.split(" ", 2)
    result = json.loads(result)
    result = result.get("training", result)
    runs[side].append((result["steps_per_second"], float(load)))
summary = {side: {"median_steps_per_second": statistics.median(r for r, _ in v),
                  "steps_per_second": [r for r, _ in v], "load": [l for _, l in v]}
           for side, v in runs.items()}
summary["ratio"] = (summary["bcfl"]["median_steps_per_second"]
                    / summary["pytorch"]["median_steps_per_second"])
print(json.dumps({"summary": summary}))
'
