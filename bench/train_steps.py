#!/usr/bin/env python3
"""PyTorch reference for `bcfl fl bench`: training steps per second of the same BERT + LoRA model
and batch, printed as one JSON object.

The model is built here with the layout of bcfl's `train::bert` (post-norm BERT encoder, LoRA on
query and value with rank 8, alpha 16 and dropout 0.1 on the adapter input, mean pooling over the
attention mask, dropout, a linear head) and, when `model.safetensors` is in the model directory,
loaded with the checkpoint's weights (the base frozen, as in bcfl). A step is what `bcfl fl bench`
times: forward in training mode (dropout on), cross-entropy, zero_grad, backward, gradient clipping
to norm 1, AdamW, and reading the loss. The batch is random token ids with a full attention mask.

Usage (the full PyTorch venv: bench/setup-torch-venv.sh prints its python):
    . scripts/env.sh
    PY=$(bench/setup-torch-venv.sh)
    "$PY" bench/train_steps.py --model-dir "$BCFL_MODEL_DIR" --threads 2 --steps 10
bench/compare-training.sh runs this and `bcfl fl bench --only training` alternately.
"""

import argparse
import json
import math
import os
import time
import warnings

# torch warns at import when numpy is absent; this benchmark does not use numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402


class LoraLinear(nn.Module):
    """A frozen linear layer with an optional LoRA adapter (bcfl's `train::lora::LoraLinear`)."""

    def __init__(self, size, rank, alpha, adapted):
        super().__init__()
        self.base = nn.Linear(size, size)
        self.base.requires_grad_(False)
        self.adapted = adapted
        if adapted:
            bound = 1 / math.sqrt(size)
            self.lora_a = nn.Parameter(torch.empty(rank, size).uniform_(-bound, bound))
            self.lora_b = nn.Parameter(torch.zeros(size, rank))
            self.scale = alpha / rank

    def forward(self, x):
        y = self.base(x)
        if self.adapted:
            y = y + F.linear(F.linear(F.dropout(x, 0.1, self.training), self.lora_a), self.lora_b) * self.scale
        return y


class Layer(nn.Module):
    def __init__(self, cfg, rank, alpha):
        super().__init__()
        h = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.p = cfg.get("hidden_dropout_prob", 0.1)
        self.p_attention = cfg.get("attention_probs_dropout_prob", 0.1)
        eps = cfg.get("layer_norm_eps", 1e-12)
        self.query = LoraLinear(h, rank, alpha, True)
        self.key = LoraLinear(h, rank, alpha, False)
        self.value = LoraLinear(h, rank, alpha, True)
        self.attention_output = nn.Linear(h, h)
        self.attention_norm = nn.LayerNorm(h, eps=eps)
        self.intermediate = nn.Linear(h, cfg["intermediate_size"])
        self.output = nn.Linear(cfg["intermediate_size"], h)
        self.output_norm = nn.LayerNorm(h, eps=eps)
        for m in (self.attention_output, self.attention_norm, self.intermediate, self.output, self.output_norm):
            m.requires_grad_(False)

    def forward(self, x, mask):
        b, s, h = x.shape
        split = lambda t: t.view(b, s, self.heads, h // self.heads).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        p = self.p_attention if self.training else 0.0
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        context = context.transpose(1, 2).reshape(b, s, h)
        x = self.attention_norm(F.dropout(self.attention_output(context), self.p, self.training) + x)
        inner = F.gelu(self.intermediate(x))
        return self.output_norm(F.dropout(self.output(inner), self.p, self.training) + x)


class Model(nn.Module):
    def __init__(self, cfg, labels, rank=8, alpha=16.0):
        super().__init__()
        h = cfg["hidden_size"]
        self.p = cfg.get("hidden_dropout_prob", 0.1)
        self.word_embeddings = nn.Embedding(cfg["vocab_size"], h)
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], h)
        self.token_type_embeddings = nn.Embedding(cfg.get("type_vocab_size", 2), h)
        self.embedding_norm = nn.LayerNorm(h, eps=cfg.get("layer_norm_eps", 1e-12))
        for m in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings, self.embedding_norm):
            m.requires_grad_(False)
        self.layers = nn.ModuleList(Layer(cfg, rank, alpha) for _ in range(cfg["num_hidden_layers"]))
        self.head = nn.Linear(h, labels)

    def forward(self, ids, mask):
        b, s = ids.shape
        positions = torch.arange(s).unsqueeze(0)
        x = self.word_embeddings(ids) + self.position_embeddings(positions)
        x = x + self.token_type_embeddings(torch.zeros_like(ids))
        x = F.dropout(self.embedding_norm(x), self.p, self.training)
        attend = mask.bool().view(b, 1, 1, s)
        for layer in self.layers:
            x = layer(x, attend)
        w = mask.float().unsqueeze(-1)
        pooled = (x * w).sum(1) / w.sum(1).clamp_min(1e-9)
        return self.head(F.dropout(pooled, self.p, self.training))


def checkpoint_names(cfg):
    """Checkpoint tensor name -> this model's parameter name (Hugging Face BERT layout)."""
    names = {
        "embeddings.word_embeddings.weight": "word_embeddings.weight",
        "embeddings.position_embeddings.weight": "position_embeddings.weight",
        "embeddings.token_type_embeddings.weight": "token_type_embeddings.weight",
        "embeddings.LayerNorm.weight": "embedding_norm.weight",
        "embeddings.LayerNorm.bias": "embedding_norm.bias",
    }
    parts = {
        "attention.self.query": "query.base",
        "attention.self.key": "key.base",
        "attention.self.value": "value.base",
        "attention.output.dense": "attention_output",
        "attention.output.LayerNorm": "attention_norm",
        "intermediate.dense": "intermediate",
        "output.dense": "output",
        "output.LayerNorm": "output_norm",
    }
    for i in range(cfg["num_hidden_layers"]):
        for theirs, ours in parts.items():
            for kind in ("weight", "bias"):
                names[f"encoder.layer.{i}.{theirs}.{kind}"] = f"layers.{i}.{ours}.{kind}"
    return names


def load_checkpoint(model, cfg, path):
    """Copies the checkpoint's base weights into `model`; returns how many tensors it loaded."""
    from safetensors.torch import load_file

    tensors = load_file(path)
    params = dict(model.named_parameters())
    names = checkpoint_names(cfg)
    missing = [theirs for theirs in names if theirs not in tensors]
    if missing:
        raise SystemExit(f"{path}: missing {missing[:3]}")
    with torch.no_grad():
        for theirs, ours in names.items():
            params[ours].copy_(tensors[theirs])
    return len(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps, after --warmup")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    with open(os.path.join(args.model_dir, "config.json")) as f:
        cfg = json.load(f)
    torch.manual_seed(0)
    model = Model(cfg, 5)
    weights = os.path.join(args.model_dir, "model.safetensors")
    loaded = load_checkpoint(model, cfg, weights) if os.path.exists(weights) else 0
    model.train()
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
        return loss.item()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({
        "framework": f"pytorch {torch.__version__}", "threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "seq_len": args.seq_len, "steps": args.steps,
        "seconds": seconds, "steps_per_second": args.steps / seconds,
        "trainable_parameters": sum(p.numel() for p in params), "checkpoint_tensors": loaded,
    }))


if __name__ == "__main__":
    main()
