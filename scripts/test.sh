#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh, the Sawtooth Python kit, the real
# Sawtooth 1.2.6 components from ../shared/sawtooth-src: scripts/sawtooth-build.sh, minutes the
# first time, cached), builds the workspace binaries the integration tests start, then runs every
# test of the workspace with every feature on (libtorch included). Extra arguments go to `cargo test`, e.g.
#   scripts/test.sh -p bcfl-tests --test it python_compat -- --nocapture
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
. scripts/env.sh

FEATURES=(--features bcfl-client/train)

scripts/setup.sh
py38_status=0
tests/python/setup-venv.sh >/dev/null || py38_status=$?
case "$py38_status" in
  0) ;;
  3) echo "[test] no Python 3.8 here: the Sawtooth Python compatibility tests will skip" >&2 ;;
  *) echo "[test] error: tests/python/setup-venv.sh failed ($py38_status)" >&2; exit 1 ;;
esac

sawtooth_status=0
scripts/sawtooth-build.sh >/dev/null || sawtooth_status=$?
case "$sawtooth_status" in
  0) ;;
  3) echo "[test] the real Sawtooth components are unavailable (above): their tests will skip" >&2 ;;
  *) echo "[test] error: scripts/sawtooth-build.sh failed ($sawtooth_status)" >&2; exit 1 ;;
esac

# `cargo test` builds only the binaries of the package under test; the cross-crate tests start
# bcfl-devnet, bcfl-tp, bcfl and bcfl-train, so build them all first with the same features.
cargo build --workspace --bins "${FEATURES[@]}"
cargo test --workspace "${FEATURES[@]}" "$@"
