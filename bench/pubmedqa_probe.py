#!/usr/bin/env python3
"""How much of PubMedQA's answer the decoder's hidden states hold: a linear probe.

    bcfl llm eval --task pubmedqa --split train --with-tokens --predictions train.jsonl
    bcfl llm eval --task pubmedqa --split test --with-tokens --predictions test.jsonl
    python bench/pubmedqa_probe.py --gguf "$BCFL_LLM_GGUF" --train train.jsonl --test test.jsonl \
        --cache features.pt --out docs/figures/pubmedqa-probe.json

It runs the frozen model (bench/llama_reference.py, plain PyTorch) over each question's prompt,
exactly the tokens `bcfl llm eval` scores, and keeps the hidden state entering each of a few
blocks (and after the final norm) at the last position and averaged over the prompt. On those
features it fits a multinomial logistic regression (standardized features, L2 penalty), plain or
with class weights inversely proportional to the counts, choosing the block, the pooling and the
penalty by 5-fold cross-validation on the 500 training questions (by accuracy, and separately by
macro-F1), then scores the 500 test questions once with each choice.

A linear read-out of frozen features is what LoRA on the top layers can at least do, and more
than adapters trained by a handful of members can easily find; if it cannot beat the majority
answer, the model's representation of the abstract does not carry the answer. Prints (and with
--out writes) one JSON object. Needs a Python whose torch imports (bench/setup-torch-venv.sh).
"""

import argparse
import json
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_reference import Gguf, Llama  # noqa: E402

LABELS = ("yes", "no", "maybe")


def read(path):
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    for line in lines:
        if "tokens" not in line:
            sys.exit(f"{path}: question {line.get('pmid')} has no tokens (--with-tokens)")
    return lines


@torch.no_grad()
def features(model, ids, layers):
    """`[len(layers), 2, dim]`: for each block index in `layers` (the block count meaning after
    the final norm), the state at the last position and the mean over the prompt."""
    x = model.embedding[torch.tensor(ids, dtype=torch.long)]
    out = {}
    for i, b in enumerate(model.blocks):
        if i in layers:
            out[i] = x
        x = x + model.attention(b, model.rms_norm(x, b["attn_norm"]))
        n = model.rms_norm(x, b["ffn_norm"])
        x = x + (torch.nn.functional.silu(n @ b["gate"].T) * (n @ b["up"].T)) @ b["down"].T
    out[model.blocks_n] = model.rms_norm(x, model.norm)
    return torch.stack([torch.stack([out[l][-1], out[l].mean(0)]) for l in layers])


def fit(x, y, penalty, weights):
    """Multinomial logistic regression, full-batch L-BFGS; returns (W, b)."""
    w = torch.zeros(x.shape[1], len(LABELS), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(LABELS), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, y, weight=weights)
        loss = loss + penalty * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def scores(gold, pred):
    acc = sum(int(g == p) for g, p in zip(gold, pred)) / len(gold)
    f1s = []
    for c in range(len(LABELS)):
        tp = sum(int(g == c and p == c) for g, p in zip(gold, pred))
        fp = sum(int(g != c and p == c) for g, p in zip(gold, pred))
        fn = sum(int(g == c and p != c) for g, p in zip(gold, pred))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return acc, sum(f1s) / len(f1s)


def predict(xtr, ytr, xte, penalty, balanced):
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    weights = None
    if balanced:
        counts = torch.bincount(ytr, minlength=len(LABELS)).double().clamp(min=1)
        weights = counts.sum() / (len(LABELS) * counts)
    w, b = fit(xtr, ytr, penalty, weights)
    return (xte @ w + b).argmax(1).tolist()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", default=os.environ.get("BCFL_LLM_GGUF"), help="model file")
    parser.add_argument("--train", required=True, help="llm eval --split train --with-tokens")
    parser.add_argument("--test", required=True, help="llm eval --split test --with-tokens")
    parser.add_argument("--layers", default="10,20,25,28,30", help="block indices (30: final)")
    parser.add_argument("--penalties", default="1e-4,1e-3,1e-2,1e-1,1,10")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--out", help="write the JSON object here too")
    parser.add_argument(
        "--cache", help="keep the extracted features in this file (torch.save) and reuse them"
    )
    args = parser.parse_args()
    if not args.gguf:
        sys.exit("no model: pass --gguf or set BCFL_LLM_GGUF")
    torch.set_num_threads(args.threads)
    model = Llama(Gguf(args.gguf))
    layers = [int(l) for l in args.layers.split(",")]
    if any(l < 0 or l > model.blocks_n for l in layers):
        sys.exit(f"--layers: block indices are 0..{model.blocks_n}")
    penalties = [float(p) for p in args.penalties.split(",")]

    began = time.perf_counter()
    sets = {}
    key = {"train": args.train, "test": args.test, "layers": layers}
    cached = torch.load(args.cache) if args.cache and os.path.exists(args.cache) else None
    if cached is not None and cached["key"] == key:
        sets, extract_seconds = cached["sets"], cached["extract_seconds"]
    else:
        for name, path in (("train", args.train), ("test", args.test)):
            lines = read(path)
            feats = torch.stack([features(model, line["tokens"], layers) for line in lines])
            gold = torch.tensor([LABELS.index(line["gold"]) for line in lines])
            sets[name] = (feats.double(), gold)
            print(f"{name}: {len(lines)} prompts", file=sys.stderr)
        extract_seconds = time.perf_counter() - began
        if args.cache:
            torch.save({"key": key, "sets": sets, "extract_seconds": extract_seconds}, args.cache)

    xtr_all, ytr = sets["train"]
    xte_all, yte = sets["test"]
    order = list(range(len(ytr)))
    random.Random(args.seed).shuffle(order)
    folds = [order[k :: args.folds] for k in range(args.folds)]

    grid = []
    for li, layer in enumerate(layers):
        for pi, pooling in enumerate(("last", "mean")):
            x = xtr_all[:, li, pi]
            for penalty in penalties:
                for balanced in (False, True):
                    pred = [0] * len(ytr)
                    for held in folds:
                        kept = [i for i in order if i not in set(held)]
                        out = predict(x[kept], ytr[kept], x[held], penalty, balanced)
                        for i, p in zip(held, out):
                            pred[i] = p
                    acc, f1 = scores(ytr.tolist(), pred)
                    grid.append(
                        {
                            "layer": layer,
                            "pooling": pooling,
                            "penalty": penalty,
                            "balanced": balanced,
                            "cv_accuracy": acc,
                            "cv_macro_f1": f1,
                        }
                    )

    def test_of(cell):
        li, pi = layers.index(cell["layer"]), ("last", "mean").index(cell["pooling"])
        pred = predict(
            xtr_all[:, li, pi], ytr, xte_all[:, li, pi], cell["penalty"], cell["balanced"]
        )
        acc, f1 = scores(yte.tolist(), pred)
        confusion = [[0] * len(LABELS) for _ in LABELS]
        for g, p in zip(yte.tolist(), pred):
            confusion[g][p] += 1
        return dict(cell, test_accuracy=acc, test_macro_f1=f1, test_confusion=confusion)

    result = {
        "model": os.path.basename(args.gguf),
        "train_questions": len(ytr),
        "test_questions": len(yte),
        "layers": layers,
        "folds": args.folds,
        "seed": args.seed,
        "extract_seconds": extract_seconds,
        "chosen_by_cv_accuracy": test_of(max(grid, key=lambda c: c["cv_accuracy"])),
        "chosen_by_cv_macro_f1": test_of(max(grid, key=lambda c: c["cv_macro_f1"])),
        "majority_test_accuracy": max(yte.tolist().count(c) for c in range(3)) / len(yte),
        "grid": grid,
    }
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
