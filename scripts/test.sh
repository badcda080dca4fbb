#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh, the Sawtooth Python kit, the real
# Sawtooth 1.2.6 components from ../shared/sawtooth-src: scripts/sawtooth-build.sh, minutes the
# first time, cached; Debian's chromium for the auditor's page test), builds the workspace
# binaries the integration tests start, then runs every test of the workspace with every feature
# on (libtorch included). Extra arguments go to `cargo test`, e.g.
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

# The auditor's page is tested in headless Chromium (Debian's chromium): install it when it is
# missing and this user may; where it is there the test must run (BCFL_REQUIRE_BROWSER), where it
# is not the test says it skipped.
have_chromium() { [ -n "${BCFL_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; }
if ! have_chromium && command -v apt-get >/dev/null 2>&1; then
  sudo=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  fi
  if [ "$(id -u)" -eq 0 ] || [ ${#sudo[@]} -gt 0 ]; then
    echo "[test] installing chromium for the auditor's page test" >&2
    { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q \
      && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends chromium fonts-liberation; } >&2 \
      || echo "[test] could not install chromium" >&2
  fi
fi
if have_chromium; then
  export BCFL_REQUIRE_BROWSER=1
else
  echo "[test] no chromium here: the auditor's page test will skip" >&2
fi

# `cargo test` builds only the binaries of the package under test; the cross-crate tests start
# bcfl-devnet, bcfl-tp, bcfl and bcfl-train, so build them all first with the same features.
cargo build --workspace --bins "${FEATURES[@]}"
cargo test --workspace "${FEATURES[@]}" "$@"
