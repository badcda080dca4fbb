#!/usr/bin/env bash
# Speed of bcfl's Llama decoder (tch) against the plain-PyTorch reference
# (bench/llama_reference.py), same GGUF model, same prompts and thread count, run alternately so
# that both see the same machine, REPEATS times each:
#   forward   `bcfl llm eval --task pubmedqa --with-tokens` on QUESTIONS test questions drawn with
#             seed 7, then the reference on the prompts it wrote (prompt tokens/s);
#   generate  `bcfl llm generate --with-tokens` (greedy, 64 tokens at most, KV cache), then the
#             reference generating as many tokens from the same prompt ids (prefill and decode
#             tokens/s; the generated ids must agree);
#   train     `bcfl llm train-speed --with-tokens` (FlowerTune adapters on the top 2 layers, 4
#             steps of 2 of 8 training questions), then the reference's same steps (prompt
#             tokens/s running the whole model each step, and from the cached frozen prefix).
# Prints one JSON object per run (with the load average just before it) and a last
# `{"summary": ...}` line: for each measure the medians and their ratio (bcfl / PyTorch), the
# largest difference of an answer's log-probability, and whether every generation agreed.
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
record() { # KIND SIDE LOAD JSON
  results+=("$1 $2 $3 $4")
  echo "{\"kind\": \"$1\", \"side\": \"$2\", \"load\": $3, \"result\": $4}"
}
reference() { "$python" "$here/llama_reference.py" --gguf "$BCFL_LLM_GGUF" --threads "$threads" "$@"; }
for ((i = 1; i <= repeats; i++)); do
  before=$(load)
  line=$("$bin" --json llm eval --task pubmedqa --limit "$questions" --seed 7 --with-tokens \
    --predictions "$work/predictions.jsonl")
  record forward bcfl "$before" "$line"
  before=$(load)
  record forward pytorch "$before" "$(reference --predictions "$work/predictions.jsonl")"

  before=$(load)
  "$bin" --json llm generate --with-tokens --max-tokens 64 \
    --prompt "Explain in three sentences what a randomized controlled trial is." >"$work/gen.json"
  record generate bcfl "$before" "$(cat "$work/gen.json")"
  before=$(load)
  record generate pytorch "$before" "$(reference --generate "$work/gen.json")"

  before=$(load)
  "$bin" --json llm train-speed --with-tokens --lora-top-layers 2 --questions 8 --steps 4 \
    --batch-size 2 >"$work/train.json"
  record train bcfl "$before" "$(cat "$work/train.json")"
  before=$(load)
  record train pytorch "$before" "$(reference --train-steps "$work/train.json")"
done

printf '%s\n' "${results[@]}" | "$python" -c '
import json, statistics, sys
measures = {
    "forward": ["forward_tokens_per_second"],
    "generate": ["prefill_tokens_per_second", "decode_tokens_per_second"],
    "train": ["full_tokens_per_second", "cached_tokens_per_second"],
}
runs = {}
diff, agree = 0.0, True
for line in sys.stdin:
    kind, side, load, result = line.split(" ", 3)
    result = json.loads(result)
    values = result.get("speed", result)
    for measure in measures[kind]:
        runs.setdefault(measure, {}).setdefault(side, []).append(values[measure])
    if kind == "forward" and side == "pytorch":
        diff = max(diff, result["max_abs_diff"])
    if kind == "generate" and side == "pytorch":
        agree = agree and result["ids_agree"]
summary = {}
for measure, sides in runs.items():
    medians = {side: statistics.median(v) for side, v in sides.items()}
    summary[measure] = {"bcfl": medians["bcfl"], "pytorch": medians["pytorch"],
                        "ratio": medians["bcfl"] / medians["pytorch"], "runs": sides}
summary["max_abs_diff"] = diff
summary["generations_agree"] = agree
print(json.dumps({"summary": summary}))
'
