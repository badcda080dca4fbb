#!/usr/bin/env bash
# Creates the Python 3.8 venv of the Sawtooth compatibility kit at $BCFL_PY38_VENV
# (default ~/.local/share/bcfl/py38-sawtooth) with the official Sawtooth Python SDK, its signing
# library and the CBOR codec the intkey processor uses.
#
# The SDK's processor framework needs Python 3.8 (it uses asyncio APIs that 3.10+ removed) and
# pyzmq < 23, so the interpreter comes from pyenv (~/.pyenv/versions/3.8.*), or BCFL_PYTHON38.
# Idempotent: a marker records the verified pins, so a rerun takes well under a second.
#
# On success it prints the venv's python path on stdout (logs go to stderr).
# Exit status: 0 ready; 3 no Python 3.8 on this machine (the compat test then skips); 1 failure.
set -euo pipefail

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/env.sh"

PINS=(sawtooth-sdk==1.2.5 sawtooth-signing==1.1.5 protobuf==3.20.3 'pyzmq<23' cbor2==5.6.5)
MARKER="$BCFL_PY38_VENV/.bcfl-ready"
UNAVAILABLE=3

log() { printf '[py38-sawtooth] %s\n' "$*" >&2; }
die() {
  printf '[py38-sawtooth] error: %s\n' "$*" >&2
  exit 1
}

expected_marker="${PINS[*]}"
# One creator at a time (several test binaries or checkouts may share the venv).
mkdir -p "$(dirname "$BCFL_PY38_VENV")"
exec 9>"$BCFL_PY38_VENV.lock"
flock 9
if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$expected_marker" ] \
  && [ -x "$BCFL_PY38_VENV/bin/python" ]; then
  log "ok: $BCFL_PY38_VENV"
  printf '%s\n' "$BCFL_PY38_VENV/bin/python"
  exit 0
fi

python38="$(bcfl_find_python38 || true)"
if [ -z "$python38" ]; then
  log "skipped: no Python 3.8 with venv support here (looked for \$BCFL_PYTHON38," \
    "$HOME/.pyenv/versions/3.8.*/bin/python3.8 and python3.8 on PATH); install one with" \
    "'pyenv install 3.8' to run the Sawtooth Python compatibility test"
  exit "$UNAVAILABLE"
fi

rm -f "$MARKER"
if [ -x "$BCFL_PY38_VENV/bin/python" ] \
  && ! "$BCFL_PY38_VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 8)' 2>/dev/null; then
  [ -f "$BCFL_PY38_VENV/pyvenv.cfg" ] || die "$BCFL_PY38_VENV exists but is not a venv: move it away"
  log "$BCFL_PY38_VENV is not a Python 3.8 venv: recreating it"
  rm -rf "$BCFL_PY38_VENV"
fi
if [ ! -x "$BCFL_PY38_VENV/bin/python" ]; then
  log "creating $BCFL_PY38_VENV with $python38"
  mkdir -p "$(dirname "$BCFL_PY38_VENV")"
  "$python38" -m venv "$BCFL_PY38_VENV" || die "$python38 -m venv $BCFL_PY38_VENV failed"
fi
log "pip install ${PINS[*]}"
"$BCFL_PY38_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}" >&2 \
  || die "pip install failed (is pypi.org reachable?)"

# The imports the kit uses, and the signer against the Sawtooth SDK test vector.
"$BCFL_PY38_VENV/bin/python" - <<'PY' || die "the installed packages do not work together"
import asyncio, cbor2, zmq
import sawtooth_sdk.processor.core  # noqa: F401  (asyncio/zmq APIs of the framework)
from sawtooth_sdk.protobuf import batch_pb2, transaction_pb2  # noqa: F401
from sawtooth_signing import CryptoFactory, create_context
from sawtooth_signing.secp256k1 import Secp256k1PrivateKey

key = Secp256k1PrivateKey.from_hex(
    "2f1e7b7a130d7ba9da0068b3bb0ba1d79e7e77110302c9f746c3c2a63fe40088")
signer = CryptoFactory(create_context("secp256k1")).new_signer(key)
assert signer.get_public_key().as_hex() == (
    "026a2c795a9776f75464aa3bda3534c3154a6e91b357b1181d3f515110f84b67c5")
assert signer.sign(b"test") == (
    "5195115d9be2547b720ee74c23dd841842875db6eae1f5da8605b050a49e702b"
    "4aa83be72ab7e3cb20f17c657011b49f4c8632be2745ba4de79e6aa05da57b35")
assert tuple(int(p) for p in zmq.__version__.split(".")[:1]) < (23,)
PY
printf '%s' "$expected_marker" >"$MARKER"
log "ok: created and verified $BCFL_PY38_VENV"
printf '%s\n' "$BCFL_PY38_VENV/bin/python"
