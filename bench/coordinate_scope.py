#!/usr/bin/env python3
"""Where to sample a commitment's coordinates: every value of the change, or the head's alone.

Reads one finished `bcfl demo` work folder (its report.json and the members' blob stores) and,
for every committed member-round, recomputes from the blobs what the two statistics that read
sampled coordinates would have scored with each scope (docs/anomaly-detection.md, "Coordinates
in the head"):

- the inconsistent-change method's cosine of the change with the member's previous change
  (`OWN_CHANGE_COSINE`): over the whole change and over the head's values exactly, and at the
  sampled positions, 4096 and 256 among every value and 256 among the head's;
- with a reference in the folder (`bcfl demo --mislabelled` writes reference.safetensors), the
  mislabelled-change method's margin (`REFERENCE_MARGIN`: the cosine with the reference at the
  sampled positions it covers), each round's and its mean over the member's rounds so far, at
  4096 (or the run's own count) among every value and at 256 among the head's.

Positions and quantization are the client's (`bcfl_fed::sketch`: SplitMix64 from
0x636F6F7264696E61, steps of the largest magnitude over 127, half away from zero), so the
columns for the run's own scope reproduce the verdicts' scores. Each member's change is found
as the blob in the stores whose difference from the round's parent has the committed norm.
Pure Python, no packages: about half a minute for a 10-member, 5-round run.

Usage: bench/coordinate_scope.py WORK_DIR [--json]
"""

import glob
import json
import math
import os
import struct
import sys

HEAD_PREFIX = "classifier."
MASK = (1 << 64) - 1


def load(path):
    """The tensors of an update blob (canonical safetensors, f32 or int8), in name order."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name in sorted(header):
        entry = header[name]
        begin, end = entry["data_offsets"]
        raw = data[8 + n + begin : 8 + n + end]
        if entry["dtype"] == "F32":
            tensors[name] = list(struct.unpack("<%df" % (len(raw) // 4), raw))
        else:
            scale = float(meta["scale." + name])
            tensors[name] = [q * scale for q in struct.unpack("<%db" % len(raw), raw)]
    return tensors


def flat(tensors, head_only):
    out = []
    for name in sorted(tensors):
        if not head_only or name.startswith(HEAD_PREFIX):
            out.extend(tensors[name])
    return out


def positions(count, total):
    """`count` positions in 0..total drawn with the coordinates' seed (0)."""
    state = 0x636F6F7264696E61
    out = []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append((z ^ (z >> 31)) % total)
    return out


def quantized(values):
    nano = [int(math.copysign(math.floor(abs(v) * 1e9 + 0.5), v)) for v in values]
    step = max(-(-max((abs(v) for v in nano), default=0) // 127), 1)
    return [int(math.copysign((2 * abs(v) + step) // (2 * step), v)) for v in nano]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na > 0 and nb > 0 else 0.0


def sampled_cosine(a, b, at):
    return cosine(quantized([a[i] for i in at]), quantized([b[i] for i in at]))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    work = sys.argv[1]
    as_json = "--json" in sys.argv[2:]
    with open(os.path.join(work, "report.json")) as f:
        report = json.load(f)
    blobs = {}
    for path in glob.glob(os.path.join(work, "stores", "*", "*")):
        name = os.path.basename(path)
        if len(name) == 64 and name not in blobs:
            blobs[name] = path
    cache = {}

    def tensors(digest):
        if digest not in cache:
            cache[digest] = load(blobs[digest])
        return cache[digest]

    # Each committed member-round's change, matched by its committed norm.
    changes = {}
    for rnd in report["rounds"]:
        parent = tensors(rnd["parent_sha256"])
        candidates = []
        for digest in blobs:
            t = tensors(digest)
            if t.keys() != parent.keys():
                continue
            change = {k: [x - y for x, y in zip(t[k], parent[k])] for k in t}
            norm = math.sqrt(sum(x * x for v in change.values() for x in v))
            candidates.append((norm, change))
        for m in rnd["members"]:
            if not m.get("committed"):
                continue
            match = [c for norm, c in candidates if abs(norm - m["norm"]) < 1e-4]
            if match:
                changes[(m["member"], rnd["round"])] = (match[0], m)
    reference = None
    reference_path = os.path.join(work, "reference.safetensors")
    if os.path.exists(reference_path):
        reference = load(reference_path)
    any_change = next(iter(changes.values()))[0]
    every_len = len(flat(any_change, False))
    head_len = len(flat(any_change, True))
    at = {
        "every-4096": positions(4096, every_len),
        "every-256": positions(256, every_len),
        "head-256": positions(256, head_len),
    }
    if reference is not None:
        ref_every, ref_head = flat(reference, False), flat(reference, True)

        def covered(head_only):
            mask = []
            for name in sorted(reference):
                if not head_only or name.startswith(HEAD_PREFIX):
                    inside = any(x != 0.0 for x in reference[name])
                    mask.extend([inside] * len(reference[name]))
            return mask

        cover_every, cover_head = covered(False), covered(True)

    def margin(change, ref, mask, where):
        kept = [i for i in where if mask[i]]
        return cosine(quantized([change[i] for i in kept]), quantized([ref[i] for i in kept]))

    rows, sums = [], {}
    for (member, rnd), (change, seen) in sorted(changes.items(), key=lambda x: (x[0][1], x[0][0])):
        every, head = flat(change, False), flat(change, True)
        row = {"member": member, "round": rnd, "attack": seen.get("attack"), "samples": seen.get("samples")}
        row["scores"] = {k: seen.get("scores", {}).get(k) for k in ("inconsistent", "mislabelled")}
        previous = changes.get((member, rnd - 1))
        if previous is not None:
            p_every, p_head = flat(previous[0], False), flat(previous[0], True)
            row["own_change_cosine"] = {
                "every": round(cosine(every, p_every), 4),
                "head": round(cosine(head, p_head), 4),
                "every-4096": round(sampled_cosine(every, p_every, at["every-4096"]), 4),
                "every-256": round(sampled_cosine(every, p_every, at["every-256"]), 4),
                "head-256": round(sampled_cosine(head, p_head, at["head-256"]), 4),
            }
        if reference is not None:
            m_every = margin(every, ref_every, cover_every, at["every-4096"])
            m_head = margin(head, ref_head, cover_head, at["head-256"])
            s = sums.setdefault(member, [0.0, 0.0, 0])
            s[0] += m_every
            s[1] += m_head
            s[2] += 1
            row["margin"] = {"every-4096": round(m_every, 4), "head-256": round(m_head, 4)}
            row["mean_margin"] = {"every-4096": round(s[0] / s[2], 4), "head-256": round(s[1] / s[2], 4)}
        rows.append(row)
    # Per column, the range over honest member-rounds and over the attackers'.
    summary = {}
    for row in rows:
        side = "attackers" if row["attack"] else "honest"
        for group in ("own_change_cosine", "mean_margin"):
            for column, value in row.get(group, {}).items():
                low, high = summary.setdefault(group, {}).setdefault(column, {}).get(side, (value, value))
                summary[group][column][side] = (min(low, value), max(high, value))
    if as_json:
        out = {"work": work, "values": every_len, "head_values": head_len, "summary": summary, "rows": rows}
        json.dump(out, sys.stdout, indent=1)
        print()
        return
    print(f"{work}: {every_len} values, {head_len} in the head; {len(rows)} member-rounds")
    for row in rows:
        own = row.get("own_change_cosine")
        text = f"{row['member']:>10} r{row['round']} {str(row['attack'] or ''):>14} n={row['samples']}"
        if own:
            text += " | own-change " + " ".join(f"{k} {v:.3f}" for k, v in own.items())
        if "mean_margin" in row:
            text += " | mean margin every-4096 {:.3f} head-256 {:.3f}".format(
                row["mean_margin"]["every-4096"], row["mean_margin"]["head-256"]
            )
        print(text)
    for group, columns in summary.items():
        for column, sides in columns.items():
            ranges = ", ".join(f"{side} {low:.3f} to {high:.3f}" for side, (low, high) in sorted(sides.items()))
            print(f"{group} {column}: {ranges}")


if __name__ == "__main__":
    main()
