#!/usr/bin/env bash
# Builds the real Hyperledger Sawtooth 1.2 components from source, for running a real network on
# this machine without Docker (scripts/sawtooth-net.py) and for the tests against a real validator.
#
# Sources: the release archives in $BCFL_SAWTOOTH_SRC (default ../shared/sawtooth-src beside the
# repository): sawtooth-core-1.2.6 (validator, REST API, sawadm/sawset, the settings processor),
# sawtooth-devmode-1.2.4 and sawtooth-pbft-1.0.3. They are used in place, never copied into the
# repository. Everything built goes to $BCFL_SAWTOOTH_HOME (default $BCFL_HOME/sawtooth-1.2.6):
#
#   src/      the unpacked sources (the Python components run from here)
#   venv/     a Python 3.8 venv with the validator's and REST API's Python dependencies
#   target/   the cargo target directory of the four Rust builds (release)
#   bin/      validator, settings-tp, devmode-engine-rust, pbft-engine, and wrappers for
#             sawtooth-rest-api, sawadm, sawset that set the paths up
#
# Why the pins and edits (see also ../shared/sawtooth-src/README.md):
# - Python 3.8: the validator's Rust library embeds libpython through cpython 0.2; lmdb 2.x fails
#   on 3.8 (`Py_SET_REFCNT`), aiohttp 3.8 fails ("different loop"), newer yarl rejects
#   `Host '127.0.0.1:PORT'`.
# - Release builds: with overflow checks on, the 1.2.6 validator aborts right after genesis.
# - pbft-engine 1.0.3 patches log4rs from a git branch (unreachable here): the patch is dropped and
#   the one arm that needs it (`--log-config`) is made to use the file's config as it is.
# - The Cargo.lock files in scripts/sawtooth-locks/ pin what was verified; `--locked` builds them.
#
# Idempotent: a marker records the sources' checksums and this script's, so a rerun takes about a
# second. Usage: scripts/sawtooth-build.sh [--force]. Prints $BCFL_SAWTOOTH_HOME on stdout.
# Exit status: 0 built; 3 unavailable here (no sources, or no Python 3.8), with the reason; 1 failure.
set -euo pipefail

# shellcheck source=scripts/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

UNAVAILABLE=3
SRC="${BCFL_SAWTOOTH_SRC:-$BCFL_ROOT/../shared/sawtooth-src}"
DEST="${BCFL_SAWTOOTH_HOME:-$BCFL_HOME/sawtooth-1.2.6}"
LOCKS="$BCFL_ROOT/scripts/sawtooth-locks"
ARCHIVES=(sawtooth-core-1.2.6 sawtooth-devmode-1.2.4 sawtooth-pbft-1.0.3)
PINS=(sawtooth-sdk==1.2.5 sawtooth-signing==1.1.5 protobuf==3.20.3 'pyzmq<23' lmdb==1.4.1
  cbor==1.0.0 colorlog==6.8.2 toml==0.10.2 netifaces==0.11.0 pyformance==0.4 cachetools==5.3.3
  requests==2.31.0 PyYAML==6.0.1 aiohttp==3.7.4.post0 yarl==1.6.3 'multidict<6' aiodns==3.1.1
  'grpcio-tools<1.49' secp256k1==0.14.0)

log() { printf '[sawtooth-build] %s\n' "$*" >&2; }
die() {
  printf '[sawtooth-build] error: %s\n' "$*" >&2
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
    *) die "unknown argument '$arg' (usage: scripts/sawtooth-build.sh [--force])" ;;
  esac
done

for archive in "${ARCHIVES[@]}"; do
  if [ ! -f "$SRC/$archive.tar.gz" ]; then
    if [ -f "$DEST/.bcfl-built" ] && [ -x "$DEST/bin/sawtooth-validator" ]; then
      log "ok: $DEST (built before; the sources are not at $SRC to check it against)"
      printf '%s\n' "$DEST"
      exit 0
    fi
    log "skipped: $SRC/$archive.tar.gz is absent (set BCFL_SAWTOOTH_SRC to the folder holding" \
      "${ARCHIVES[*]/%/.tar.gz}); the tests against a real validator need them"
    exit "$UNAVAILABLE"
  fi
done

python38="$(bcfl_find_python38 '__import__("sysconfig").get_config_var("Py_ENABLE_SHARED")' || true)"
if [ -z "$python38" ]; then
  log "skipped: no Python 3.8 built with --enable-shared here (looked for \$BCFL_PYTHON38," \
    "$HOME/.pyenv/versions/3.8.*/bin/python3.8 and python3.8 on PATH); the validator embeds" \
    "libpython3.8: install one with 'PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install 3.8'"
  exit "$UNAVAILABLE"
fi
python38_lib="$("$python38" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"

# The marker: the archives, this script, the locks and the pins.
fingerprint="$( (
  for archive in "${ARCHIVES[@]}"; do sha256sum "$SRC/$archive.tar.gz" | cut -d' ' -f1; done
  sha256sum "${BASH_SOURCE[0]}" "$LOCKS"/*.lock 2>/dev/null | cut -d' ' -f1
  "$python38" --version
) | sha256sum | cut -d' ' -f1)"
MARKER="$DEST/.bcfl-built"

mkdir -p "$DEST"
exec 9>"$DEST.lock"
flock 9
if [ "$force" = 0 ] && [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$fingerprint" ]; then
  log "ok: $DEST"
  printf '%s\n' "$DEST"
  exit 0
fi
rm -f "$MARKER"
started=$(date +%s)

for tool in protoc pkg-config cargo; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
done
pkg-config --exists libzmq || die "libzmq is missing (scripts/setup.sh installs libzmq3-dev)"
# The validator and pbft-engine link OpenSSL (the rest of bcfl does not: it is installed here).
if ! pkg-config --exists openssl; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing libssl-dev (OpenSSL headers, for the validator and pbft-engine)"
    { DEBIAN_FRONTEND=noninteractive apt-get update -q \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libssl-dev; } >&2 \
      || die "apt-get install libssl-dev failed"
  else
    die "OpenSSL headers are missing: install libssl-dev (as root: apt-get install libssl-dev)"
  fi
fi

# --- sources ------------------------------------------------------------------------------------
log "unpacking ${ARCHIVES[*]} into $DEST/src"
rm -rf "$DEST/src"
mkdir -p "$DEST/src"
for archive in "${ARCHIVES[@]}"; do
  tar -xzf "$SRC/$archive.tar.gz" -C "$DEST/src"
done
core="$DEST/src/sawtooth-core-1.2.6"
pbft="$DEST/src/sawtooth-pbft-1.0.3"
# pbft-engine: no git patch of log4rs, and `--log-config` keeps the file's config as it is.
sed -i '/^\[patch.crates-io\]/,/^$/d' "$pbft/Cargo.toml"
grep -q 'git = ' "$pbft/Cargo.toml" && die "pbft-engine's Cargo.toml still names a git dependency"
perl -0pi -e 's/Ok\(mut config\) => \{.*?config\s*\}/Ok(config) => config,/s' "$pbft/src/main.rs"
grep -q 'root_mut' "$pbft/src/main.rs" && die "could not edit pbft-engine's src/main.rs (root_mut)"

# --- Python 3.8 venv ----------------------------------------------------------------------------
venv="$DEST/venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 8)' 2>/dev/null; then
  rm -rf "$venv"
  log "creating $venv with $python38"
  "$python38" -m venv "$venv"
fi
log "pip install ${PINS[*]}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}" >&2 \
  || die "pip install failed (is pypi.org reachable?)"
log "generating the Python protobuf modules (bin/protogen)"
(cd "$core" && "$venv/bin/python" bin/protogen) >"$DEST/protogen.log" 2>&1 \
  || { tail -n 20 "$DEST/protogen.log" >&2; die "bin/protogen failed"; }

# --- Rust builds --------------------------------------------------------------------------------
export CARGO_TARGET_DIR="$DEST/target"
build() { # build NAME DIR [cargo args...]
  local name=$1 dir=$2
  shift 2
  local locked=()
  if [ -f "$LOCKS/$name.lock" ]; then
    cp "$LOCKS/$name.lock" "$dir/Cargo.lock"
    locked=(--locked)
  fi
  log "cargo build --release ($name, in ${dir#"$DEST"/}; output in $DEST/build-$name.log)"
  # Upstream's code warns a lot under today's compiler: the output goes to a log, shown on failure.
  if ! (cd "$dir" && cargo build --release "${locked[@]}" "$@") >"$DEST/build-$name.log" 2>&1; then
    tail -n 40 "$DEST/build-$name.log" >&2
    die "the $name build failed (whole output: $DEST/build-$name.log)"
  fi
}
PYTHON_SYS_EXECUTABLE="$venv/bin/python" build validator "$core/validator"
build settings-tp "$core/families/settings/sawtooth_settings"
build devmode "$DEST/src/sawtooth-devmode-1.2.4"
build pbft "$pbft"

# --- bin/ ---------------------------------------------------------------------------------------
log "installing into $DEST/bin"
rm -rf "$DEST/bin" "$DEST/lib"
mkdir -p "$DEST/bin" "$DEST/lib"
release="$CARGO_TARGET_DIR/release"
cp "$release/settings-tp" "$release/devmode-engine-rust" "$release/pbft-engine" "$DEST/bin/"
cp "$release/sawtooth-validator" "$DEST/lib/sawtooth-validator"
cp "$release"/libsawtooth_validator.so "$DEST/lib/"
site="$("$venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')"

# The validator binary embeds Python: it needs libpython, its own library (SAWTOOTH_LIB_HOME) and
# the sawtooth_validator package with the venv's packages on PYTHONPATH.
cat >"$DEST/bin/sawtooth-validator" <<EOF
#!/usr/bin/env bash
# The Sawtooth 1.2.6 validator, built by scripts/sawtooth-build.sh.
export SAWTOOTH_LIB_HOME="$DEST/lib"
export LD_LIBRARY_PATH="$DEST/lib:$python38_lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PYTHONPATH="$core/validator:$site"
export PYTHONHOME="$("$python38" -c 'import sys; print(sys.base_prefix)')"
exec "$DEST/lib/sawtooth-validator" "\$@"
EOF
python_tool() { # python_tool NAME PYTHONPATH MODULE-CALL
  cat >"$DEST/bin/$1" <<EOF
#!/usr/bin/env bash
# Sawtooth 1.2.6 $1, built by scripts/sawtooth-build.sh.
export PYTHONPATH="$2"
exec "$venv/bin/python" -c 'import sys; $3' "\$@"
EOF
}
python_tool sawtooth-rest-api "$core/rest_api:$core/signing" \
  "sys.argv[0] = \"sawtooth-rest-api\"; from sawtooth_rest_api.rest_api import main; main()"
python_tool sawadm "$core/cli:$core/signing" \
  "sys.argv[0] = \"sawadm\"; from sawtooth_cli.sawadm import main_wrapper; main_wrapper()"
python_tool sawset "$core/cli:$core/signing" \
  "sys.argv[0] = \"sawset\"; from sawtooth_cli.sawset import main_wrapper; main_wrapper()"
chmod +x "$DEST/bin"/*

# Smoke checks: every program starts and answers --help.
for program in sawtooth-validator settings-tp devmode-engine-rust pbft-engine sawtooth-rest-api sawadm sawset; do
  "$DEST/bin/$program" --help >/dev/null 2>&1 || die "$DEST/bin/$program --help fails"
done
printf '%s' "$fingerprint" >"$MARKER"
log "ok: built in $(($(date +%s) - started)) s: $DEST/bin"
printf '%s\n' "$DEST"
