"""Move responses of a finished `bcfl demo` run, read back from its ledger (docs/anomaly-detection.md,
"Steps that climb").

Usage: python bench/move_response.py WORK_DIR [BIN_DIR]

WORK_DIR is a demo's work folder (`ledger/` and `report.json` in it, as `scripts/demo.sh` and the
attack series leave them; the consortium must sample coordinates). BIN_DIR holds `bcfl` and
`bcfl-devnet` (default: `$CARGO_TARGET_DIR/debug`). The ledger is copied to a temporary folder,
served there by `bcfl-devnet` on a free loopback port, and read with `bcfl --json audit round N`;
with BCFL_URL set, the ledger at that URL is read instead (WORK_DIR then needs only its
`report.json`).

For every member and every round r >= 2 it committed to after committing to r - 1, it takes the
member's change at the sampled coordinates minus its previous change, and the global model's
change `m` in between, and sums over the member's rounds the dot products over the products of
the lengths. `m` is what the processor keeps as the consensus record's `previous_change`: the
sample-weighted mean of round r - 1's accepted changes, plus, where round r - 1's verdict
withdrew members' commitments to round r - 2, what taking them back out adds
(`sum n_l (m' - u_l) / (N - L)`, `m'` the kept change of round r - 2 over `N` samples, `n_l` and
`u_l` each withdrawn commitment's samples and coordinates, `L` their sum; `-m'` when they were
all of it).

- `full`: against `m`, the `MOVE_RESPONSE` feature the ascent method reads by default;
- `leave_one_out`: against the others' move, `m` without the member's own previous change
  (`(S m - n_i c_i) / (S - n_i)`, `S` the accepted samples, where the member was accepted; no
  term where it was all of them), as `consortium init --ascent-leave-one-out` has the ledger
  compute it;
- `on_chain`: the ascent method's score in round r's verdict, where the consortium runs it
  (one of the two, up to the ledger's integer rounding).

A member's own previous change is part of `m` with weight `n_i / S`, and where changes vary
from round to round more than they respond to the model (LoRA adapters under AdamW), that part
alone pulls every member's response below 0, a sign flipper's too. Prints one JSON object: per
member its name, attack, samples and the running ratios after each round.
"""
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def rounds_of(bcfl, url):
    """Round number -> ({member: (coordinates, samples)}, accepted keys, withdrawn keys,
    {member: the ascent method's score} or None), from round 1 on."""
    rounds = {}
    number = 1
    while True:
        out = subprocess.run(
            [bcfl, "--url", url, "--json", "audit", "round", str(number)],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            break
        data = json.loads(out.stdout)
        commitments = {}
        for c in data.get("commitments") or []:
            steps = c["coordinate_steps"]
            if isinstance(steps, str):
                steps = json.loads(steps)
            step = int(c["coordinate_step_nano"]) * 1e-9
            commitments[c["member"]] = ([s * step for s in steps], int(c["num_samples"]))
        if not commitments:
            break
        verdict = data.get("verdict") or {}
        accepted = set(verdict.get("accepted") or [])
        withdrawn = set(verdict.get("withdrawn_members") or [])
        ascent = None
        for method in verdict.get("methods") or []:
            if method.get("method") == "ASCENT":
                ascent = dict(zip(verdict.get("scored") or [], method.get("scores_micro") or []))
                ascent = {k: int(v) / 1e6 for k, v in ascent.items()}
        rounds[number] = (commitments, accepted, withdrawn, ascent)
        number += 1
    return rounds


def kept_changes(rounds):
    """Round number -> (the kept change after it, its samples), as the processor keeps it
    (`extend_consensus`): the accepted changes' weighted mean, corrected for the withdrawn ones;
    None where the round accepted nobody."""
    kept = {}
    for number in sorted(rounds):
        commitments, accepted, withdrawn, _ = rounds[number]
        total = sum(commitments[k][1] for k in accepted)
        if total == 0:
            kept[number] = None
            continue
        dim = len(next(iter(commitments.values()))[0])
        mean = [
            sum(commitments[k][0][j] * commitments[k][1] for k in accepted) / total
            for j in range(dim)
        ]
        before = kept.get(number - 1)
        if withdrawn and before is not None and number - 1 in rounds:
            moved, samples = before
            taken = [rounds[number - 1][0][k] for k in withdrawn if k in rounds[number - 1][0]]
            removed = sum(n for _, n in taken)
            for j in range(dim):
                if removed >= samples:
                    mean[j] -= moved[j]
                else:
                    mean[j] += sum(n * (moved[j] - u[j]) for u, n in taken) / (samples - removed)
        kept[number] = (mean, total)
    return kept


def responses(rounds):
    """Member key -> [(round, full, leave_one_out, on_chain)], the running ratios."""
    sums, out = {}, {}
    kept = kept_changes(rounds)
    for number in sorted(rounds):
        if number - 1 not in rounds or kept.get(number - 1) is None:
            continue
        before, accepted, _, _ = rounds[number - 1]
        moved, total = kept[number - 1]
        dim = len(moved)
        on_chain = rounds[number][3] or {}
        for key, (now, _) in rounds[number][0].items():
            if key not in before:
                continue
            previous, samples = before[key]
            change = [a - b for a, b in zip(now, previous)]
            # A member that was the whole move has no others' move to respond to.
            others = moved
            if key in accepted:
                others = None
                if total > samples:
                    others = [
                        (total * moved[j] - samples * previous[j]) / (total - samples)
                        for j in range(dim)
                    ]
            length = math.sqrt(dot(change, change))
            s = sums.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            s[0] += dot(change, moved)
            s[1] += length * math.sqrt(dot(moved, moved))
            if others is not None:
                s[2] += dot(change, others)
                s[3] += length * math.sqrt(dot(others, others))
            ratio = lambda d, w: round(d / w, 4) if w > 0 else 0.0
            out.setdefault(key, []).append(
                (number, ratio(s[0], s[1]), ratio(s[2], s[3]), on_chain.get(key))
            )
    return out


def served(bins, work):
    """Reads the rounds of `work`'s ledger, copied to a temporary folder and served there by
    `bcfl-devnet` on a free loopback port."""
    with tempfile.TemporaryDirectory() as tmp:
        ledger = os.path.join(tmp, "ledger")
        shutil.copytree(os.path.join(work, "ledger"), ledger)
        port = free_port()
        devnet = subprocess.Popen(
            [
                os.path.join(bins, "bcfl-devnet"),
                "--data-dir",
                ledger,
                "--bind-component",
                "tcp://127.0.0.1:0",
                "--bind-rest",
                f"127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline or devnet.poll() is not None:
                        sys.exit("bcfl-devnet did not start on the copied ledger")
                    time.sleep(0.2)
            return rounds_of(os.path.join(bins, "bcfl"), f"http://127.0.0.1:{port}")
        finally:
            devnet.terminate()
            devnet.wait()


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    work = sys.argv[1]
    if len(sys.argv) == 3:
        bins = sys.argv[2]
    elif os.environ.get("CARGO_TARGET_DIR"):
        bins = os.path.join(os.environ["CARGO_TARGET_DIR"], "debug")
    else:
        sys.exit("no BIN_DIR given and CARGO_TARGET_DIR is unset (`. scripts/env.sh` sets it)")
    # With BCFL_URL, the ledger is read where it runs; WORK_DIR then needs only report.json.
    url = os.environ.get("BCFL_URL")
    needed = ("bcfl",) if url else ("bcfl", "bcfl-devnet")
    for name in needed:
        if not os.access(os.path.join(bins, name), os.X_OK):
            sys.exit(f"{bins} holds no {name} binary")
    for part in ("report.json",) if url else ("ledger", "report.json"):
        if not os.path.exists(os.path.join(work, part)):
            sys.exit(f"{work} holds no {part}: not a finished demo's work folder")
    report = json.load(open(os.path.join(work, "report.json")))
    if url:
        found = responses(rounds_of(os.path.join(bins, "bcfl"), url))
    else:
        found = responses(served(bins, work))
    members = []
    for m in report["members"]:
        members.append(
            {
                "name": m["name"],
                "attack": m.get("attack"),
                "shard": m.get("shard"),
                "rounds": [
                    {"round": r, "full": full, "leave_one_out": loo, "on_chain": chain}
                    for r, full, loo, chain in found.get(m["key"], [])
                ],
            }
        )
    json.dump({"work_dir": work, "members": members}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
