#!/usr/bin/env bash
# The main demo: a ledger on loopback (bcfl-devnet, which speaks the Sawtooth 1.2 ZMQ and REST
# protocols) with the bcfl transaction processor registered, then `bcfl demo` against it: a
# federated fine-tuning run of 4 member processes (`bcfl node run`, each with its own key, port,
# blob store and private shard of Medical Abstracts; all-MiniLM-L6-v2 with LoRA, 3 rounds) and a
# coordinator process, coordinated through the ledger only (commits, bandwidth reports, the
# on-chain anomaly verdict, the aggregate), with a table per round and, at the end, report.md,
# report.json and SVG figures in the work folder.
#
# Usage: scripts/demo.sh [--keep] [--page [ADDR]] [--tls] [-- ARGS for `bcfl demo`]
#   --keep   leave the ledger running after the demo, until Ctrl-C
#   --page   --keep, and serve the auditor's page over it (`bcfl audit serve`, with the nodes'
#            reports) at ADDR (default 127.0.0.1:8090): open the URL it prints
#   --tls    HTTPS everywhere on loopback: a throwaway CA and certificates under WORK/tls, the
#            ledger's REST API on https:// (wss:// subscriptions) and the members' blob servers
#            on https:// (off by default; requests between members are signed either way)
#   e.g.     scripts/demo.sh -- --attack sign-flip:1      (see `bcfl demo --help`, docs/cli.md)
# Environment: BCFL_DEMO_DIR (work folder: keys, shards, model package, node configs, blob
# stores, logs, report; default a fresh temporary one), BCFL_BIN_DIR (run the bcfl, bcfl-train,
# bcfl-devnet and bcfl-tp found there instead of building the working tree's: a pinned build for
# a series of runs while the tree changes), plus scripts/env.sh (BCFL_DATA_DIR defaults to the
# repository's data/). Ctrl-C stops every process the demo started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
. scripts/env.sh

keep=0
page=""
tls=0
demo_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --page)
      keep=1
      page=127.0.0.1:8090
      if [ $# -gt 1 ] && [ "${2#-}" = "$2" ]; then page=$2; shift; fi
      ;;
    --tls) tls=1 ;;
    --) shift; demo_args=("$@"); break ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "[demo] unknown argument '$1' (see --help)" >&2; exit 1 ;;
  esac
  shift
done

log() { printf '[demo] %s\n' "$*" >&2; }

scripts/setup.sh
work="${BCFL_DEMO_DIR:-$(mktemp -d -t bcfl-demo.XXXXXX)}"
mkdir -p "$work"

# The binaries run from a copy in the work folder: the shared target directory's binaries may be
# relinked at any moment by another build. `bcfl` runs `demo` (and the members' `node run`) in
# bcfl-train, which it finds next to itself: copy both.
bin="$work/bin"
mkdir -p "$bin"
if [ -n "${BCFL_BIN_DIR:-}" ]; then
  from=$BCFL_BIN_DIR
  log "running the binaries in $from (BCFL_BIN_DIR), not building"
else
  cargo build --workspace --bins --features bcfl-client/train
  from=$CARGO_TARGET_DIR/debug
fi
for name in bcfl bcfl-train bcfl-devnet bcfl-tp; do
  [ -x "$from/$name" ] || { log "$from/$name is missing"; exit 1; }
  cp "$from/$name" "$bin/$name.tmp" && mv "$bin/$name.tmp" "$bin/$name"
done
free_port() {
  "$BCFL_VENV/bin/python" -c \
    'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
component_port=$(free_port)
rest_port=$(free_port)
component="tcp://127.0.0.1:$component_port"
rest="http://127.0.0.1:$rest_port"
devnet_tls=()
curl_tls=()
if [ "$tls" -eq 1 ]; then
  # The throwaway CA and certificates first: the ledger serves https with its own.
  "$bin/bcfl" demo --work-dir "$work" --tls-prepare "${demo_args[@]}" >/dev/null
  rest="https://127.0.0.1:$rest_port"
  devnet_tls=(--tls-cert "$work/tls/ledger.crt" --tls-key "$work/tls/ledger.key")
  curl_tls=(--cacert "$work/tls/ca.crt")
  export BCFL_CA_CERT="$work/tls/ca.crt"
  demo_args=(--tls "${demo_args[@]}")
fi

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Fails with the log when a started process is gone.
check_alive() {
  if ! kill -0 "$1" 2>/dev/null; then
    log "$2 exited; its log ($work/$2.log):"
    cat "$work/$2.log" >&2
    exit 1
  fi
}

log "work folder: $work"
log "starting bcfl-devnet: component $component, REST $rest"
"$bin/bcfl-devnet" --data-dir "$work/ledger" --bind-component "$component" \
  --bind-rest "127.0.0.1:$rest_port" "${devnet_tls[@]}" >"$work/bcfl-devnet.log" 2>&1 &
devnet_pid=$!
pids+=("$devnet_pid")

deadline=$((SECONDS + 60))
until curl -fsS "${curl_tls[@]}" "$rest/blocks" >/dev/null 2>&1; do
  check_alive "$devnet_pid" bcfl-devnet
  [ "$SECONDS" -lt "$deadline" ] || { log "the REST API did not come up within 60 s"; exit 1; }
  sleep 0.2
done
log "REST API up; chain head:"
curl -fsS "${curl_tls[@]}" "$rest/blocks?limit=1" | "$BCFL_VENV/bin/python" -c '
import json, sys
block = json.load(sys.stdin)["data"][0]
print("  block_num", block["header"]["block_num"], "id", block["header_signature"][:16] + "...")'

log "starting bcfl-tp against $component"
"$bin/bcfl-tp" -v -C "$component" >"$work/bcfl-tp.log" 2>&1 &
tp_pid=$!
pids+=("$tp_pid")
sleep 1
check_alive "$devnet_pid" bcfl-devnet
check_alive "$tp_pid" bcfl-tp
log "bcfl-devnet (pid $devnet_pid) and bcfl-tp (pid $tp_pid) are running"

# The CLI reads these (clap `env`); `bcfl demo` gets the ledger and its work folder through them.
export BCFL_URL="$rest" BCFL_KEY_DIR="$work/keys" BCFL_WORK_DIR="$work"

log "running: bcfl demo ${demo_args[*]}"
"$bin/bcfl" demo "${demo_args[@]}"
check_alive "$devnet_pid" bcfl-devnet
check_alive "$tp_pid" bcfl-tp

if [ -n "$page" ]; then
  "$bin/bcfl" audit serve --listen "$page" --reports "$work/nodes" >"$work/audit-serve.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 50); do
    check_alive "${pids[-1]}" audit-serve
    grep -q "page is at" "$work/audit-serve.log" && break
    sleep 0.2
  done
  log "$(grep -m 1 "page is at" "$work/audit-serve.log")"
fi
if [ "$keep" -eq 1 ]; then
  log "ledger left running: BCFL_URL=$rest BCFL_KEY_DIR=$work/keys (Ctrl-C stops it)"
  wait "$devnet_pid"
fi
log "done; logs in $work"
