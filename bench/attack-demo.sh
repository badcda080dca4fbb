#!/usr/bin/env bash
# Attackers as member processes against the on-chain verdict (docs/anomaly-detection.md,
# "Through member processes").
#
# For each count N of attackers and each seed, `scripts/demo.sh` runs with the same settings as
# bench/label-flip-demo.sh: 10 member processes of the demo's LoRA model, the last N running
# ATTACK (`--attack ATTACK:N`), 1,000 abstracts, 5 rounds, the `every-attack` preset with 4096
# sampled coordinates; once with Dirichlet 0.1 shards (`--skewed-shards`) and once with IID
# shards. A count of 0 runs the clean references instead (no attacker, both kinds of shards):
# what the accuracy is compared with. Arguments after `--` go to every attacked run (such as
# `--collusion-noise 0.3`). SHARDS="dirichlet" or "iid" runs one kind of shards only;
# PRESET= names another `--anomaly-preset` for every run (such as every-attack-lora), COORDINATES=
# another number of sampled coordinates than 4096.
#
# Usage: bench/attack-demo.sh OUT_DIR ATTACK [SEEDS="42"] [COUNTS="2"] [-- DEMO_ARGS...]
# Writes OUT_DIR/NAME/ (each demo's work folder, report.json in it), OUT_DIR/NAME.json (the
# report; NAME is ATTACK-N-SHARDS-SEED, clean-SHARDS-SEED for a count of 0) and
# OUT_DIR/attack-demo.json: per report in OUT_DIR (this call's and earlier calls'), the
# attackers, attacker and honest member-rounds excluded, F1, accuracy per round
# (bench/demo_summary.py). The binaries are built once, before the first run (BCFL_BIN_DIR, see
# scripts/demo.sh), so the series runs one build while the tree changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
. scripts/env.sh

usage="usage: bench/attack-demo.sh OUT_DIR ATTACK [SEEDS] [COUNTS] [-- DEMO_ARGS...]"
out=${1:?$usage}
attack=${2:?$usage}
shift 2
seeds="42"
counts="2"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  seeds=$1
  shift
fi
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  counts=$1
  shift
fi
if [ $# -gt 0 ]; then
  [ "$1" = "--" ] || { echo "$usage" >&2; exit 2; }
  shift
fi
extra=("$@")
case $attack in
  *[!a-z0-9-]* | "") echo "ATTACK must be an --attack kind such as gaussian-noise" >&2; exit 2 ;;
esac
# shellcheck source=bench/demo-series.sh
. bench/demo-series.sh
demo_series_init "$out"
common=("${demo_series_common[@]}")
dirichlet=("${demo_series_dirichlet[@]}")

run() {
  demo_series_run attack-demo "$@"
}

for n in $counts; do
  for seed in $seeds; do
    for kind in ${SHARDS:-dirichlet iid}; do
      case $kind in
        dirichlet) split=("${dirichlet[@]}") ;;
        iid) split=() ;;
        *) echo "SHARDS holds dirichlet and iid, not $kind" >&2; exit 2 ;;
      esac
      if [ "$n" = 0 ]; then
        run "clean-$kind-$seed" "${common[@]}" ${split[@]+"${split[@]}"} --seed "$seed"
      else
        run "$attack-$n-$kind-$seed" "${common[@]}" --attack "$attack:$n" \
          ${extra[@]+"${extra[@]}"} ${split[@]+"${split[@]}"} --seed "$seed"
      fi
    done
  done
done

"$BCFL_VENV/bin/python" bench/demo_summary.py "$out" \
  '(?:[a-z0-9-]+?-(?P<n>\d+)|clean)-(?P<shards>dirichlet|iid)-(?P<seed>\d+)' \
  > "$out/attack-demo.json"
cat "$out/attack-demo.json"
