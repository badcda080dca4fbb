"""Sums up `bcfl demo` reports of an attack series (bench/label-flip-demo.sh, bench/attack-demo.sh).

Usage: python bench/demo_summary.py OUT_DIR PATTERN [SCORE]

PATTERN is a regular expression that a report's name (OUT_DIR/NAME.json) must match whole; its
named groups, when present, order the reports (`n`: attackers, `shards`, `seed`, `method`, in
that order: by attackers, Dirichlet before IID, seed, with the method before without). For each
report it prints the attackers (the members whose `attack` is set), the attacker and honest
member-rounds excluded (of the member-rounds with a commitment; an update that the next round's
verdict withdrew, with `--withdraw`, counts as excluded, and the withdrawn ones are also counted
apart), the F1 of those exclusions (null for a run without attackers), the
accuracy after each round, the run's seconds and, with SCORE (a key of the members' `scores`,
such as `mislabelled`), the lowest honest and highest attacker score.
"""
import glob
import json
import os
import re
import sys


def order(match):
    groups = match.groupdict()
    return (
        int(groups.get("n") or 0),
        groups.get("shards") not in (None, "dirichlet"),
        groups.get("shards") or "",
        int(groups.get("seed") or 0),
        groups.get("method") is None,
    )


def summary(report, name, score):
    attackers = {m["name"] for m in report["members"] if m["attack"]}
    caught = missed = honest = withdrawn_attacker = withdrawn_honest = 0
    honest_low = attacker_high = None
    # (round, member) of each update a later verdict withdrew (reports before the field: none).
    withdrawn = {
        (r["round"] - 1, name) for r in report["rounds"] for name in r.get("withdrawn", [])
    }
    for r in report["rounds"]:
        for m in r["members"]:
            if not m.get("committed", True):
                continue  # no update this round: nothing to judge
            attacker = m["member"] in attackers
            taken_back = (r["round"], m["member"]) in withdrawn
            excluded = m["member"] in r["excluded"] or taken_back
            withdrawn_attacker += attacker and taken_back
            withdrawn_honest += taken_back and not attacker
            caught += attacker and excluded
            missed += attacker and not excluded
            honest += excluded and not attacker
            value = m.get("scores", {}).get(score) if score else None
            if value is None:
                continue
            if attacker:
                attacker_high = value if attacker_high is None else max(attacker_high, value)
            else:
                honest_low = value if honest_low is None else min(honest_low, value)
    f1 = 2 * caught / (2 * caught + honest + missed) if caught else 0.0
    row = {
        "run": name,
        "attackers": len(attackers),
        "attacker_rounds_excluded": caught,
        "attacker_rounds": caught + missed,
        "honest_rounds_excluded": honest,
        "attacker_rounds_withdrawn": withdrawn_attacker,
        "honest_rounds_withdrawn": withdrawn_honest,
        "f1": round(f1, 3) if attackers else None,
        "accuracy": [r["accuracy"] for r in report["rounds"]],
        "seconds": report["seconds"],
    }
    if score:
        row[f"lowest_honest_{score}"] = honest_low
        row[f"highest_attacker_{score}"] = attacker_high
    return row


def main():
    out, pattern = sys.argv[1], re.compile(sys.argv[2])
    score = sys.argv[3] if len(sys.argv) > 3 else None
    runs = []
    for path in glob.glob(f"{out}/*.json"):
        name = os.path.basename(path)[:-5]
        match = pattern.fullmatch(name)
        if match:
            runs.append((order(match), name))
    rows = [
        summary(json.load(open(f"{out}/{name}.json")), name, score)
        for _, name in sorted(runs)
    ]
    json.dump(rows, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
