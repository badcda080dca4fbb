#!/usr/bin/env bash
# Label flippers as member processes against the mislabelled-change method
# (docs/anomaly-detection.md, "Labels that lie", "Through member processes").
#
# For each seed, two `scripts/demo.sh` runs with the same shards, model and seed: 10 member
# processes, the last 2 training on their labels shifted by one class (`--attack label-flip:2`),
# Dirichlet 0.1 shards of 1,000 abstracts, 5 rounds, the `every-attack` preset with
# `--skewed-shards` and 4096 sampled coordinates (90 of them compared in the head), with
# `--mislabelled` (its reference built from the held-out examples) and without; then one run
# with IID shards and the method (the first seed). Each run's margins are its report's
# `scores.mislabelled`.
#
# Usage: bench/label-flip-demo.sh OUT_DIR [SEEDS="42 1 2"]
# Writes OUT_DIR/NAME/ (each demo's work folder, report.json in it), OUT_DIR/NAME.json (the
# report) and OUT_DIR/label-flip-demo.json (per run: flipper and honest member-rounds
# excluded, F1, accuracy per round, the lowest honest and highest flipper margin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
. scripts/env.sh

out=${1:?usage: bench/label-flip-demo.sh OUT_DIR [SEEDS]}
seeds=${2:-42 1 2}
mkdir -p "$out"
out=$(cd "$out" && pwd)
common=(--members 10 --rounds 5 --max-train-examples 1000 --max-test-examples 300
  --attack label-flip:2 --anomaly-preset every-attack --coordinate-samples 4096)
dirichlet=(--partition dirichlet --alpha 0.1 --skewed-shards)

run() {
  local name=$1
  shift
  echo "[label-flip-demo] $name: bcfl demo $*" >&2
  rm -rf "${out:?}/$name"
  BCFL_DEMO_DIR="$out/$name" scripts/demo.sh -- "$@" > "$out/$name.txt"
  cp "$out/$name/report.json" "$out/$name.json"
}

runs=()
for seed in $seeds; do
  run "dirichlet-mislabelled-$seed" "${common[@]}" "${dirichlet[@]}" --seed "$seed" --mislabelled
  run "dirichlet-$seed" "${common[@]}" "${dirichlet[@]}" --seed "$seed"
  runs+=("dirichlet-mislabelled-$seed" "dirichlet-$seed")
done
first=${seeds%% *}
run "iid-mislabelled-$first" "${common[@]}" --seed "$first" --mislabelled
runs+=("iid-mislabelled-$first")

"$BCFL_VENV/bin/python" - "$out" "${runs[@]}" > "$out/label-flip-demo.json" <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
summary = []
for name in names:
    report = json.load(open(f"{out}/{name}.json"))
    attackers = {m["name"] for m in report["members"] if m["attack"]}
    caught = missed = honest = 0
    honest_low = flipper_high = None
    for r in report["rounds"]:
        for m in r["members"]:
            flipper = m["member"] in attackers
            excluded = m["member"] in r["excluded"]
            caught += flipper and excluded
            missed += flipper and not excluded
            honest += excluded and not flipper
            margin = m.get("scores", {}).get("mislabelled")
            if margin is None:
                continue
            if flipper:
                flipper_high = margin if flipper_high is None else max(flipper_high, margin)
            else:
                honest_low = margin if honest_low is None else min(honest_low, margin)
    f1 = 2 * caught / (2 * caught + honest + missed) if caught else 0.0
    summary.append({
        "run": name,
        "flipper_rounds_excluded": caught,
        "flipper_rounds": caught + missed,
        "honest_rounds_excluded": honest,
        "f1": round(f1, 3),
        "accuracy": [r["accuracy"] for r in report["rounds"]],
        "lowest_honest_margin": honest_low,
        "highest_flipper_margin": flipper_high,
        "seconds": report["seconds"],
    })
json.dump(summary, sys.stdout, indent=1)
print()
PY
cat "$out/label-flip-demo.json"
