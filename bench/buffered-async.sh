#!/usr/bin/env bash
# Synchronous against buffered asynchronous aggregation when members run at different speeds:
# the time each takes to reach a target accuracy (FedBuff's claim: several times faster than
# synchronous rounds, which wait for the slowest member).
#
# Two `scripts/demo.sh` runs, each on its own devnet, with the same members, shards, seed and
# model: MEMBERS member processes, member I slowed down so that the slowest takes SPREAD times
# as long as the fastest (`--slow member-I:F`, F = (SPREAD - 1)(I - 1)/(MEMBERS - 1): it trains,
# then waits F times its training time), z-score detection only (DBSCAN's standardization
# flags honest members in some rounds of few members, which would confound the comparison).
#   - synchronous: SYNC_ROUNDS rounds, each waiting for every member;
#   - buffered asynchronous: aggregate as soon as BUFFER updates are in, later updates counted
#     in the next rounds (rebased, weighted 1/sqrt(1 + staleness), at most SPREAD rounds old),
#     for SYNC_ROUNDS x MEMBERS / BUFFER rounds (about as many updates in all).
# Then `bcfl fl plot --x seconds --target TARGET` draws accuracy against wall-clock seconds and
# says when each run first reached TARGET.
#
# Usage: bench/buffered-async.sh OUT_DIR [MEMBERS=6] [SPREAD=4] [SYNC_ROUNDS=6] [BUFFER=MEMBERS/2] [TARGET=0.55]
# Writes OUT_DIR/sync and OUT_DIR/buffered (the demos' work folders, report.json in each),
# OUT_DIR/buffered-async.svg and OUT_DIR/buffered-async.json (the curves and the time to TARGET).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${1:?usage: bench/buffered-async.sh OUT_DIR [MEMBERS] [SPREAD] [SYNC_ROUNDS] [BUFFER] [TARGET]}
members=${2:-6}
spread=${3:-4}
rounds=${4:-6}
buffer=${5:-$((members / 2))}
target=${6:-0.55}
[ "$members" -ge 3 ] || { echo "MEMBERS must be at least 3" >&2; exit 1; }
[ "$buffer" -ge 1 ] && [ "$buffer" -le "$members" ] || { echo "BUFFER must lie in 1..MEMBERS" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

slow=()
for i in $(seq 1 "$members"); do
  factor=$(awk -v s="$spread" -v i="$i" -v n="$members" 'BEGIN { printf "%.3f", (s - 1) * (i - 1) / (n - 1) }')
  slow+=(--slow "member-$i:$factor")
done
buffered_rounds=$(((rounds * members + buffer - 1) / buffer))
staleness=$(awk -v s="$spread" 'BEGIN { printf "%d", (s == int(s)) ? s : int(s) + 1 }')
common=(--members "$members" --anomaly zscore --commit-timeout 600 "${slow[@]}")

echo "[buffered-async] synchronous: $rounds rounds" >&2
rm -rf "$out/sync" "$out/buffered"
BCFL_DEMO_DIR="$out/sync" scripts/demo.sh -- "${common[@]}" --rounds "$rounds" \
  > "$out/sync.txt"
echo "[buffered-async] buffered asynchronous: K = $buffer, $buffered_rounds rounds, staleness <= $staleness" >&2
BCFL_DEMO_DIR="$out/buffered" scripts/demo.sh -- "${common[@]}" --rounds "$buffered_rounds" \
  --synchrony buffered-async --buffer "$buffer" --max-staleness "$staleness" > "$out/buffered.txt"

"$out/sync/bin/bcfl" --json fl plot \
  --run "synchronous=$out/sync/report.json" \
  --run "buffered async, K $buffer=$out/buffered/report.json" \
  --x seconds --target "$target" \
  --title "Accuracy against time, $members members, ${spread}x speed spread" \
  --out "$out/buffered-async.svg" > "$out/buffered-async.json"
cat "$out/buffered-async.json"
