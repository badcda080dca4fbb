#!/usr/bin/env python3
"""PyTorch reference for `bcfl fl bench`: training steps per second of the same BERT + LoRA model
and batch (batch 16, sequence 128, LoRA rank 8 on query and value, mean pooling, linear head,
AdamW with gradient clipping), printed as JSON.

Usage (with the venv that holds torch, the same libtorch the Rust side links):
    . scripts/env.sh
    "$BCFL_VENV/bin/python" bench/train_steps.py --model-dir "$BCFL_MODEL_DIR" --steps 10
    "$CARGO_TARGET_DIR/debug/bcfl" fl bench --steps 10
and compare `steps_per_second`. The weights are random with the checkpoint's shapes (timing does
not depend on their values), so neither `transformers` nor `safetensors` is needed.
"""

import argparse
import json
import math
import time

import torch
from torch import nn
from torch.nn import functional as F


class LoraLinear(nn.Module):
    def __init__(self, size, rank, alpha, adapted):
        super().__init__()
        self.base = nn.Linear(size, size)
        self.base.requires_grad_(False)
        self.adapted = adapted
        if adapted:
            self.a = nn.Parameter(torch.empty(rank, size).uniform_(-1 / math.sqrt(size), 1 / math.sqrt(size)))
            self.b = nn.Parameter(torch.zeros(size, rank))
            self.scale = alpha / rank
            self.dropout = nn.Dropout(0.1)

    def forward(self, x):
        y = self.base(x)
        if self.adapted:
            y = y + F.linear(F.linear(self.dropout(x), self.a), self.b) * self.scale
        return y


class Layer(nn.Module):
    def __init__(self, cfg, rank, alpha):
        super().__init__()
        h = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.query = LoraLinear(h, rank, alpha, True)
        self.key = LoraLinear(h, rank, alpha, False)
        self.value = LoraLinear(h, rank, alpha, True)
        self.out = nn.Linear(h, h)
        self.norm1 = nn.LayerNorm(h, eps=1e-12)
        self.inter = nn.Linear(h, cfg["intermediate_size"])
        self.output = nn.Linear(cfg["intermediate_size"], h)
        self.norm2 = nn.LayerNorm(h, eps=1e-12)
        for m in (self.out, self.norm1, self.inter, self.output, self.norm2):
            m.requires_grad_(False)

    def forward(self, x, mask):
        b, s, h = x.shape
        split = lambda t: t.view(b, s, self.heads, h // self.heads).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        p = 0.1 if self.training else 0.0
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        ctx = ctx.transpose(1, 2).reshape(b, s, h)
        x = self.norm1(F.dropout(self.out(ctx), 0.1, self.training) + x)
        return self.norm2(F.dropout(self.output(F.gelu(self.inter(x))), 0.1, self.training) + x)


class Model(nn.Module):
    def __init__(self, cfg, labels, rank=8, alpha=16.0):
        super().__init__()
        h = cfg["hidden_size"]
        self.word = nn.Embedding(cfg["vocab_size"], h)
        self.pos = nn.Embedding(cfg["max_position_embeddings"], h)
        self.type = nn.Embedding(cfg.get("type_vocab_size", 2), h)
        self.norm = nn.LayerNorm(h, eps=1e-12)
        for m in (self.word, self.pos, self.type, self.norm):
            m.requires_grad_(False)
        self.layers = nn.ModuleList(Layer(cfg, rank, alpha) for _ in range(cfg["num_hidden_layers"]))
        self.head = nn.Linear(h, labels)

    def forward(self, ids, mask):
        b, s = ids.shape
        pos = torch.arange(s).unsqueeze(0)
        x = self.word(ids) + self.pos(pos) + self.type(torch.zeros_like(ids))
        x = F.dropout(self.norm(x), 0.1, self.training)
        attend = mask.bool().view(b, 1, 1, s)
        for layer in self.layers:
            x = layer(x, attend)
        w = mask.float().unsqueeze(-1)
        pooled = (x * w).sum(1) / w.sum(1).clamp_min(1e-9)
        return self.head(F.dropout(pooled, 0.1, self.training))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    with open(f"{args.model_dir}/config.json") as f:
        cfg = json.load(f)
    torch.manual_seed(0)
    model = Model(cfg, 5).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    ids = torch.randint(cfg["vocab_size"], (args.batch_size, args.seq_len))
    mask = torch.ones_like(ids)
    labels = torch.randint(5, (args.batch_size,))

    def step():
        loss = F.cross_entropy(model(ids, mask), labels)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({
        "framework": f"pytorch {torch.__version__}", "threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "seq_len": args.seq_len, "steps": args.steps,
        "seconds": seconds, "steps_per_second": args.steps / seconds,
        "trainable_parameters": sum(p.numel() for p in params),
    }))


if __name__ == "__main__":
    main()
