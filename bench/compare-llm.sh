#!/usr/bin/env bash
# Forward-pass speed of bcfl's Llama decoder (tch) against the plain-PyTorch reference
# (bench/llama_reference.py), same GGUF model, same PubMedQA prompts and thread count, run
# alternately so that both see the same machine: `bcfl llm eval --task pubmedqa --with-tokens`
# on QUESTIONS test questions drawn with seed 7, then the reference on the prompts it wrote,
# REPEATS times each. Prints one JSON object per run (with the load average just before it) and
# a last `{"summary": ...}` line: the medians of the forward passes' prompt tokens per second,
# their ratio (bcfl / PyTorch) and the largest difference of an answer's log-probability.
#
# Usage: bench/compare-llm.sh [QUESTIONS [REPEATS [THREADS]]]   (defaults 20, 2, 1)
# Environment: BCFL_BIN (default: the release build, then the debug build, in CARGO_TARGET_DIR).
# Needs bench/setup-torch-venv.sh (run here, idempotent).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
. "$here/../scripts/env.sh"

questions="${1:-20}"
repeats="${2:-2}"
threads="${3:-1}"

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
  echo "no bcfl binary: cargo build -p bcfl-cli --features bcfl-client/train" >&2
  exit 1
}
echo "{\"bcfl\": \"$bin\", \"threads\": $threads, \"questions\": $questions}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
load() { cut -d' ' -f1 /proc/loadavg; }
results=()
for ((i = 1; i <= repeats; i++)); do
  before=$(load)
  line=$("$bin" --json llm eval --task pubmedqa --limit "$questions" --seed 7 --with-tokens \
    --predictions "$work/predictions.jsonl")
  results+=("bcfl $before $line")
  echo "{\"side\": \"bcfl\", \"load\": $before, \"result\": $line}"
  before=$(load)
  line=$("$python" "$here/llama_reference.py" --gguf "$BCFL_LLM_GGUF" \
    --predictions "$work/predictions.jsonl" --threads "$threads")
  results+=("pytorch $before $line")
  echo "{\"side\": \"pytorch\", \"load\": $before, \"result\": $line}"
done

printf '%s\n' "${results[@]}" | "$python" -c '
import json, statistics, sys
runs = {"bcfl": [], "pytorch": []}
diff = 0.0
for line in sys.stdin:
    side, load, result = line.split(" ", 2)
    result = json.loads(result)
    runs[side].append((result["forward_tokens_per_second"], float(load)))
    if side == "pytorch":
        diff = max(diff, result["max_abs_diff"])
summary = {side: {"median_tokens_per_second": statistics.median(r for r, _ in v),
                  "tokens_per_second": [r for r, _ in v], "load": [l for _, l in v]}
           for side, v in runs.items()}
summary["ratio"] = (summary["bcfl"]["median_tokens_per_second"]
                    / summary["pytorch"]["median_tokens_per_second"])
summary["max_abs_diff"] = diff
print(json.dumps({"summary": summary}))
'
