#!/usr/bin/env bash
# Creates the PyTorch venv that bench/train_steps.py runs in: $BCFL_TORCH_VENV
# (default $BCFL_HOME/venv-torch), a Python 3.11 venv with the full torch==2.13.0 from PyPI (the
# libtorch that bcfl links through tch) and safetensors (to load the checkpoint's weights).
#
# The main venv ($BCFL_VENV) holds torch without its dependencies, enough for tch to link but not
# for `import torch` (its CUDA build wants libcudnn and the other CUDA libraries). The full wheel
# is about 2.7 GB to download and 4.7 GB on disk; CPU-only wheels are not on PyPI.
#
# Idempotent: a marker in the venv records what was installed and checked; a rerun only checks that
# torch still imports at the right version (a few seconds). Prints the venv's python path on stdout.
# Usage: bench/setup-torch-venv.sh [--force]   (--force reinstalls; needs scripts/setup.sh's venv)
set -euo pipefail

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"

TORCH_VERSION=2.13.0
SAFETENSORS_VERSION=0.8.0
VENV="${BCFL_TORCH_VENV:-$BCFL_HOME/venv-torch}"
MARKER="$VENV/.bcfl-torch-venv"
MARKER_LINE="torch=$TORCH_VERSION safetensors=$SAFETENSORS_VERSION"

log() { printf '[setup-torch-venv] %s\n' "$*" >&2; }
die() {
  printf '[setup-torch-venv] error: %s\n' "$*" >&2
  exit 1
}

case "${1:-}" in
  "") force=0 ;;
  --force) force=1 ;;
  *) die "usage: bench/setup-torch-venv.sh [--force]" ;;
esac

# Checks that the venv imports what the benchmark needs at the pinned versions.
verify() {
  "$VENV/bin/python" - "$TORCH_VERSION" "$SAFETENSORS_VERSION" <<'EOF'
import sys
import safetensors
import torch
want_torch, want_st = sys.argv[1], sys.argv[2]
assert torch.__version__.split("+")[0] == want_torch, f"torch {torch.__version__}, want {want_torch}"
assert safetensors.__version__ == want_st, f"safetensors {safetensors.__version__}, want {want_st}"
# A CPU op, so that a broken libtorch shows here rather than in the benchmark.
assert float(torch.ones(2, 2).matmul(torch.ones(2, 2)).sum()) == 8.0
EOF
}

mkdir -p "$BCFL_HOME"
exec 9>"$BCFL_HOME/setup-torch-venv.lock"
flock 9

if [ "$force" -eq 0 ] && [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$MARKER_LINE" ] \
  && verify 2>/dev/null; then
  log "ok: $MARKER_LINE ($VENV)"
  printf '%s\n' "$VENV/bin/python"
  exit 0
fi

if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
  die "$VENV exists but is not a venv: move it away"
fi
if [ -x "$VENV/bin/python" ] \
  && ! "$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
  log "$VENV is not a Python 3.11 venv: recreating it"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  # The Python 3.11 that scripts/setup.sh found for the main venv.
  [ -x "$BCFL_VENV/bin/python" ] || die "no $BCFL_VENV: run scripts/setup.sh first"
  log "creating venv $VENV"
  "$BCFL_VENV/bin/python" -m venv "$VENV" || die "python -m venv $VENV failed"
fi

rm -f "$MARKER"
extra=()
[ "$force" -eq 0 ] || extra=(--force-reinstall)
log "pip install ${extra[*]:+${extra[*]} }torch==$TORCH_VERSION safetensors==$SAFETENSORS_VERSION (about 2.7 GB)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${extra[@]}" \
  "torch==$TORCH_VERSION" "safetensors==$SAFETENSORS_VERSION" >&2 \
  || die "pip install torch==$TORCH_VERSION safetensors==$SAFETENSORS_VERSION failed (is pypi.org reachable?)"
problems=$(verify 2>&1) || die "the install in $VENV does not work: $problems"
printf '%s\n' "$MARKER_LINE" >"$MARKER"
log "ok: installed and verified $MARKER_LINE ($VENV)"
printf '%s\n' "$VENV/bin/python"
