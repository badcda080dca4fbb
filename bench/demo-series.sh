# Shared by the member-process attack series, bench/label-flip-demo.sh and bench/attack-demo.sh
# (sourced from the repository root after scripts/env.sh, not run): the series' output folder
# and its one build, the demo settings both use, and one run.

# The settings of every run: 10 member processes of the demo's LoRA model, 1,000 abstracts,
# 5 rounds, the `every-attack` preset (PRESET= names another) with 4096 sampled coordinates
# (COORDINATES= another number).
demo_series_common=(--members 10 --rounds 5 --max-train-examples 1000 --max-test-examples 300
  --anomaly-preset "${PRESET:-every-attack}" --coordinate-samples "${COORDINATES:-4096}")
# Dirichlet 0.1 shards, with the preset's tuning for them.
demo_series_dirichlet=(--partition dirichlet --alpha 0.1 --skewed-shards)

# demo_series_init OUT: creates OUT and sets `out` to its absolute path; unless BCFL_BIN_DIR
# names a build already, builds the binaries once and copies them to OUT/bin, which
# scripts/demo.sh then runs instead of building, so the series runs one build while the tree
# changes.
demo_series_init() {
  mkdir -p "$1"
  out=$(cd "$1" && pwd)
  if [ -z "${BCFL_BIN_DIR:-}" ]; then
    cargo build --workspace --bins --features bcfl-client/train
    export BCFL_BIN_DIR="$out/bin"
    mkdir -p "$BCFL_BIN_DIR"
    for name in bcfl bcfl-train bcfl-devnet bcfl-tp; do
      cp "$CARGO_TARGET_DIR/debug/$name" "$BCFL_BIN_DIR/$name"
    done
  fi
}

# demo_series_run TAG NAME DEMO_ARGS...: one `bcfl demo` on its own devnet, its work folder
# OUT/NAME (report.json in it), its output OUT/NAME.txt and its report copied to OUT/NAME.json.
demo_series_run() {
  local tag=$1 name=$2
  shift 2
  echo "[$tag] $name: bcfl demo $*" >&2
  rm -rf "${out:?}/$name"
  BCFL_DEMO_DIR="$out/$name" scripts/demo.sh -- "$@" > "$out/$name.txt"
  cp "$out/$name/report.json" "$out/$name.json"
}
