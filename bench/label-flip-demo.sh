#!/usr/bin/env bash
# Label flippers as member processes against the mislabelled-change method
# (docs/anomaly-detection.md, "Labels that lie", "Through member processes").
#
# For each count of flippers and each seed, two `scripts/demo.sh` runs with the same shards,
# model and seed: 10 member processes, the last N training on their labels shifted by one class
# (`--attack label-flip:N`), Dirichlet 0.1 shards of 1,000 abstracts, 5 rounds, the
# `every-attack` preset with `--skewed-shards` and 4096 sampled coordinates (90 of them compared
# in the head), with `--mislabelled` (its reference built from the held-out examples) and
# without; then one run with IID shards and the method (the first seed). A count of 0 runs the
# clean reference instead: no flipper, without the method, Dirichlet shards only (what the
# accuracy is compared with). Each run's margins are its report's `scores.mislabelled`.
#
# METHOD_ONLY=1 runs only the Dirichlet runs with the method (to measure another reference,
# `bcfl demo --mislabelled-reference`, passed in MISLABELLED_ARGS, beside the runs without it
# already in OUT_DIR).
#
# Usage: [METHOD_ONLY=1] [MISLABELLED_ARGS=...] bench/label-flip-demo.sh OUT_DIR [SEEDS="42 1 2"] [FLIPPERS="2"]
# Writes OUT_DIR/NAME/ (each demo's work folder, report.json in it), OUT_DIR/NAME.json (the
# report; NAME is fN-SHARDS[-mislabelled]-SEED) and OUT_DIR/label-flip-demo.json: per run report
# in OUT_DIR (this call's and earlier calls' with other counts or seeds), the flippers, flipper
# and honest member-rounds excluded, F1, accuracy per round, the lowest honest and highest
# flipper margin (bench/demo_summary.py). The binaries are built once, before the first run (BCFL_BIN_DIR, see
# scripts/demo.sh), so the series runs one build while the tree changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
. scripts/env.sh

out=${1:?usage: bench/label-flip-demo.sh OUT_DIR [SEEDS] [FLIPPERS]}
seeds=${2:-42 1 2}
counts=${3:-2}
# shellcheck source=bench/demo-series.sh
. bench/demo-series.sh
demo_series_init "$out"
common=("${demo_series_common[@]}")
dirichlet=("${demo_series_dirichlet[@]}")

run() {
  demo_series_run label-flip-demo "$@"
}

first=${seeds%% *}
method_only=${METHOD_ONLY:-0}
# shellcheck disable=SC2206 # words on purpose
method=(--mislabelled ${MISLABELLED_ARGS:-})
for n in $counts; do
  if [ "$n" = 0 ] && [ "$method_only" = 1 ]; then
    continue
  fi
  if [ "$n" = 0 ]; then
    for seed in $seeds; do
      run "f0-dirichlet-$seed" "${common[@]}" "${dirichlet[@]}" --seed "$seed"
    done
    continue
  fi
  attack=(--attack "label-flip:$n")
  for seed in $seeds; do
    run "f$n-dirichlet-mislabelled-$seed" "${common[@]}" "${attack[@]}" "${dirichlet[@]}" \
      --seed "$seed" "${method[@]}"
    if [ "$method_only" != 1 ]; then
      run "f$n-dirichlet-$seed" "${common[@]}" "${attack[@]}" "${dirichlet[@]}" --seed "$seed"
    fi
  done
  if [ "$method_only" != 1 ]; then
    run "f$n-iid-mislabelled-$first" "${common[@]}" "${attack[@]}" --seed "$first" "${method[@]}"
  fi
done

"$BCFL_VENV/bin/python" bench/demo_summary.py "$out" \
  'f(?P<n>\d+)-(?P<shards>\w+?)(?P<method>-mislabelled)?-(?P<seed>\d+)' mislabelled \
  > "$out/label-flip-demo.json"
cat "$out/label-flip-demo.json"
