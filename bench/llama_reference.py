#!/usr/bin/env python3
"""Plain-PyTorch reference for bcfl's Llama decoder (client/src/llm): the same model, read from
the same GGUF file with nothing but torch and the standard library, scoring the same PubMedQA
prompts.

    bcfl llm eval --task pubmedqa --limit 3 --predictions p.jsonl --with-tokens
    python bench/llama_reference.py --gguf "$BCFL_LLM_GGUF" --predictions p.jsonl [--out ref.jsonl]

It reads the prompt token ids (`tokens`) of each line of `bcfl llm eval --with-tokens`, runs one
forward pass per prompt (the head at the last position only, as Hugging Face does when only the
next token is wanted), and writes one JSON line per question, {"pmid", "lp": {"yes", "no",
"maybe"}, "tokens", "seconds"}, the log-probabilities (log-softmax over the whole vocabulary) of
the single tokens `yes`, `no` and `maybe` at the last position. On stdout it prints one JSON
object: questions, prompt tokens, forward seconds, tokens per second, threads, and, against the
log-probabilities bcfl wrote in the same file, the largest absolute difference and how many
predictions agree.

Two more timings of the same model, each against a bcfl run's JSON:

    bcfl --json llm generate --with-tokens --prompt "..." > gen.json
    python bench/llama_reference.py --generate gen.json      # greedy, KV cache: prefill and
                                                            # decode tokens/s, ids agree?
    bcfl --json llm train-speed --with-tokens > train.json
    python bench/llama_reference.py --train-steps train.json # LoRA steps: whole model, and from
                                                            # the frozen prefix's states

Independent of the Rust code: the GGUF reader (header, metadata, tensor infos, alignment) is
written with `struct`; Q4_0, Q4_1, Q8_0, F16, BF16 and F32 tensors are dequantized with torch ops
from llama.cpp's block layouts (ggml-common.h):

    Q4_0: 18-byte blocks of 32: f16 d, 16 bytes of nibbles; x = (q - 8) * d
    Q4_1: 20-byte blocks of 32: f16 d, f16 m, 16 bytes of nibbles; x = q * d + m
    Q8_0: 34-byte blocks of 32: f16 d, 32 int8; x = q * d
    (element j < 16 is the low nibble of byte j, element j + 16 its high nibble)

The forward pass follows Hugging Face's LlamaForCausalLM. Rotary embeddings come in two layouts
(--rope): `hf` undoes llama.cpp's permutation of the query and key rows (its converter's
`permute`) and rotates halves (`rotate_half`, pairs (x_i, x_{i+d/2})); `interleaved` keeps the
GGUF rows and rotates adjacent pairs (x_{2i}, x_{2i+1}), as ggml's "normal" rope does. The two
are the same function; both are checked against bcfl by the integration test
(client/tests/it/llm_reference.rs).

Needs a Python whose torch imports (bench/setup-torch-venv.sh makes one); no numpy.
"""

import argparse
import json
import math
import mmap
import os
import struct
import sys
import time
import warnings

import torch

# The file is mapped read-only and tensors are only read from it.
warnings.filterwarnings("ignore", message="The given buffer is not writable")

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# Metadata value types (gguf.md).
SCALARS = {
    0: "<B",  # u8
    1: "<b",  # i8
    2: "<H",  # u16
    3: "<h",  # i16
    4: "<I",  # u32
    5: "<i",  # i32
    6: "<f",  # f32
    7: "<?",  # bool
    10: "<Q",  # u64
    11: "<q",  # i64
    12: "<d",  # f64
}
STRING, ARRAY = 8, 9

# ggml tensor types: (name, elements per block, bytes per block).
GGML_TYPES = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    8: ("Q8_0", 32, 34),
    30: ("BF16", 1, 2),
}


class Reader:
    """Little-endian reads from a buffer, with a cursor."""

    def __init__(self, buf):
        self.buf = buf
        self.at = 0

    def take(self, n):
        if self.at + n > len(self.buf):
            raise ValueError(f"truncated GGUF file: {n} bytes at offset {self.at}")
        out = self.buf[self.at : self.at + n]
        self.at += n
        return out

    def scalar(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        return bytes(self.take(self.scalar("<Q"))).decode("utf-8")

    def value(self, kind):
        if kind in SCALARS:
            return self.scalar(SCALARS[kind])
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            element, count = self.scalar("<I"), self.scalar("<Q")
            return [self.value(element) for _ in range(count)]
        raise ValueError(f"unknown metadata value type {kind}")


class Gguf:
    """A GGUF file: its metadata and its tensors, dequantized to float32 on request."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        r = Reader(memoryview(self.buf))
        if bytes(r.take(4)) != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file")
        version = r.scalar("<I")
        if version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {version} is not supported")
        tensor_count, kv_count = r.scalar("<Q"), r.scalar("<Q")
        self.metadata = {}
        for _ in range(kv_count):
            key = r.string()
            self.metadata[key] = r.value(r.scalar("<I"))
        self.tensors = {}
        for _ in range(tensor_count):
            name = r.string()
            dims = [r.scalar("<Q") for _ in range(r.scalar("<I"))]
            kind, offset = r.scalar("<I"), r.scalar("<Q")
            self.tensors[name] = (dims, kind, offset)
        alignment = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        self.data_start = (r.at + alignment - 1) // alignment * alignment

    def tensor(self, name):
        """The tensor `name` as float32, shaped as torch sees it (GGUF dims reversed)."""
        dims, kind, offset = self.tensors[name]
        if kind not in GGML_TYPES:
            raise ValueError(f"tensor {name}: ggml type {kind} is not supported")
        type_name, block, block_bytes = GGML_TYPES[kind]
        count = math.prod(dims)
        start = self.data_start + offset
        raw = torch.frombuffer(
            self.buf, dtype=torch.uint8, count=count // block * block_bytes, offset=start
        )
        values = dequantize(type_name, raw, block_bytes)
        return values.reshape(list(reversed(dims)))


def f16(raw_pairs):
    """Bytes `[n, 2]` as n float16 values, widened to float32."""
    return raw_pairs.contiguous().view(torch.float16).float().reshape(-1, 1)


def dequantize(type_name, raw, block_bytes):
    if type_name == "F32":
        return raw.clone().view(torch.float32)
    if type_name == "F16":
        return raw.clone().view(torch.float16).float()
    if type_name == "BF16":
        return raw.clone().view(torch.bfloat16).float()
    blocks = raw.reshape(-1, block_bytes)
    if type_name == "Q8_0":
        d = f16(blocks[:, 0:2])
        q = blocks[:, 2:34].contiguous().view(torch.int8).float()
        return (q * d).reshape(-1)
    d = f16(blocks[:, 0:2])
    data_at = 2 if type_name == "Q4_0" else 4
    nibbles = blocks[:, data_at : data_at + 16]
    q = torch.cat([nibbles & 0x0F, nibbles >> 4], dim=1).float()
    if type_name == "Q4_0":
        return ((q - 8.0) * d).reshape(-1)
    m = f16(blocks[:, 2:4])
    return (q * d + m).reshape(-1)


# How attention is computed: "sdpa", torch's fused scaled_dot_product_attention (what Hugging
# Face's LlamaForCausalLM uses by default), or "eager", the written-out softmax(q k^T / sqrt(d)) v.
ATTENTION = "sdpa"


def attend(q, k, v, start=0):
    """Attention of queries `q` `[heads, T, hd]` at positions start..start+T-1 over keys and
    values `[heads, start + T, hd]` (already one per query head), causal."""
    t = q.shape[1]
    if ATTENTION == "sdpa":
        sdpa = torch.nn.functional.scaled_dot_product_attention
        if t == 1:
            return sdpa(q, k, v)
        if start == 0:
            return sdpa(q, k, v, is_causal=True)
        allowed = torch.ones(t, start + t, dtype=torch.bool).tril(start)
        return sdpa(q, k, v, attn_mask=allowed)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if t > 1:
        causal = torch.ones(t, start + t, dtype=torch.bool).triu(start + 1)
        scores = scores.masked_fill(causal, float("-inf"))
    return scores.softmax(-1) @ v


def unpermute(w, heads):
    """llama.cpp's query/key row order back to Hugging Face's (inverse of its `permute`)."""
    rows, dim = w.shape
    return w.reshape(heads, rows // heads // 2, 2, dim).transpose(1, 2).reshape(rows, dim)


class Llama:
    """The decoder, with frozen float32 weights."""

    def __init__(self, gguf, rope="hf"):
        md = gguf.metadata
        arch = md["general.architecture"]
        if arch != "llama":
            raise ValueError(f"architecture {arch!r} is not llama")
        self.blocks_n = md[f"{arch}.block_count"]
        self.dim = md[f"{arch}.embedding_length"]
        self.heads = md[f"{arch}.attention.head_count"]
        self.kv_heads = md.get(f"{arch}.attention.head_count_kv", self.heads)
        self.head_dim = self.dim // self.heads
        self.eps = md[f"{arch}.attention.layer_norm_rms_epsilon"]
        base = md.get(f"{arch}.rope.freq_base", 10000.0)
        self.rope = rope
        t = gguf.tensor
        self.embedding = t("token_embd.weight")
        self.norm = t("output_norm.weight")
        self.output = t("output.weight") if "output.weight" in gguf.tensors else self.embedding
        self.blocks = []
        for i in range(self.blocks_n):
            p = f"blk.{i}."
            q, k = t(p + "attn_q.weight"), t(p + "attn_k.weight")
            if rope == "hf":
                q, k = unpermute(q, self.heads), unpermute(k, self.kv_heads)
            self.blocks.append(
                {
                    "attn_norm": t(p + "attn_norm.weight"),
                    "q": q,
                    "k": k,
                    "v": t(p + "attn_v.weight"),
                    "o": t(p + "attn_output.weight"),
                    "ffn_norm": t(p + "ffn_norm.weight"),
                    "gate": t(p + "ffn_gate.weight"),
                    "up": t(p + "ffn_up.weight"),
                    "down": t(p + "ffn_down.weight"),
                }
            )
        hd = self.head_dim
        self.inv_freq = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))

    def rms_norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def apply_rope(self, x, start=0):
        """`x` `[heads, T, head_dim]` rotated for positions start..start+T-1."""
        t = x.shape[1]
        positions = torch.arange(start, start + t, dtype=torch.float64)
        angles = torch.outer(positions, self.inv_freq).float()
        cos, sin = angles.cos(), angles.sin()
        if self.rope == "hf":
            cos, sin = torch.cat([cos, cos], -1), torch.cat([sin, sin], -1)
            half = x.shape[-1] // 2
            rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
            return x * cos + rotated * sin
        even, odd = x[..., 0::2], x[..., 1::2]
        out = torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1)
        return out.flatten(-2)

    def attention(self, b, x):
        t = x.shape[0]
        hd, group = self.head_dim, self.heads // self.kv_heads
        q = (x @ b["q"].T).reshape(t, self.heads, hd).transpose(0, 1)
        k = (x @ b["k"].T).reshape(t, self.kv_heads, hd).transpose(0, 1)
        v = (x @ b["v"].T).reshape(t, self.kv_heads, hd).transpose(0, 1)
        q, k = self.apply_rope(q), self.apply_rope(k)
        # Query head h reads key/value head h // group (Hugging Face's repeat_kv).
        k = k.repeat_interleave(group, dim=0)
        v = v.repeat_interleave(group, dim=0)
        out = attend(q, k, v)
        return out.transpose(0, 1).reshape(t, self.dim) @ b["o"].T

    @torch.no_grad()
    def logits(self, ids):
        """Logits `[T, vocab]` of the token ids `ids`."""
        x = self.embedding[torch.tensor(ids, dtype=torch.long)]
        for b in self.blocks:
            x = x + self.attention(b, self.rms_norm(x, b["attn_norm"]))
            n = self.rms_norm(x, b["ffn_norm"])
            x = x + (torch.nn.functional.silu(n @ b["gate"].T) * (n @ b["up"].T)) @ b["down"].T
        return self.rms_norm(x, self.norm) @ self.output.T

    @torch.no_grad()
    def step(self, ids, cache):
        """Logits `[vocab]` after `ids`, which follow the `len(cache[0][0])` cached positions;
        `cache` (one [k, v] per block, or None) is extended. The head runs at the last
        position only, as Hugging Face's generate does (logits_to_keep=1)."""
        x = self.embedding[torch.tensor(ids, dtype=torch.long)]
        t, hd, group = x.shape[0], self.head_dim, self.heads // self.kv_heads
        for i, b in enumerate(self.blocks):
            n = self.rms_norm(x, b["attn_norm"])
            start = 0 if cache[i] is None else cache[i][0].shape[1]
            q = self.apply_rope((n @ b["q"].T).reshape(t, self.heads, hd).transpose(0, 1), start)
            k = self.apply_rope((n @ b["k"].T).reshape(t, self.kv_heads, hd).transpose(0, 1), start)
            v = (n @ b["v"].T).reshape(t, self.kv_heads, hd).transpose(0, 1)
            if cache[i] is not None:
                k, v = torch.cat([cache[i][0], k], 1), torch.cat([cache[i][1], v], 1)
            cache[i] = (k, v)
            kk, vv = k.repeat_interleave(group, dim=0), v.repeat_interleave(group, dim=0)
            out = attend(q, kk, vv, start).transpose(0, 1).reshape(t, self.dim) @ b["o"].T
            x = x + out
            n = self.rms_norm(x, b["ffn_norm"])
            x = x + (torch.nn.functional.silu(n @ b["gate"].T) * (n @ b["up"].T)) @ b["down"].T
        return self.rms_norm(x[-1], self.norm) @ self.output.T

    @torch.no_grad()
    def hidden(self, ids, layer):
        """Hidden states `[T, dim]` entering block `layer` (no gradients)."""
        x = self.embedding[torch.tensor(ids, dtype=torch.long)]
        for b in self.blocks[:layer]:
            x = x + self.attention(b, self.rms_norm(x, b["attn_norm"]))
            n = self.rms_norm(x, b["ffn_norm"])
            x = x + (torch.nn.functional.silu(n @ b["gate"].T) * (n @ b["up"].T)) @ b["down"].T
        return x

    def last_logits_lora(self, x, layer, lora, dropout):
        """Logits `[vocab]` at the last position from the states `x` entering block `layer`,
        with LoRA adapters `lora[i] = {"q": (A, B, scale), "v": ...}` on the blocks from
        `layer` up (gradients reach them)."""
        t, hd, group = x.shape[0], self.head_dim, self.heads // self.kv_heads
        drop = torch.nn.functional.dropout

        def proj(n, w, adapter):
            out = n @ w.T
            if adapter is not None:
                a, b_, scale = adapter
                out = out + (drop(n, dropout, True) @ a.T) @ b_.T * scale
            return out

        for i in range(layer, self.blocks_n):
            b, ad = self.blocks[i], lora.get(i, {})
            n = self.rms_norm(x, b["attn_norm"])
            q = self.apply_rope(proj(n, b["q"], ad.get("q")).reshape(t, self.heads, hd).transpose(0, 1), 0)
            k = self.apply_rope((n @ b["k"].T).reshape(t, self.kv_heads, hd).transpose(0, 1), 0)
            v = proj(n, b["v"], ad.get("v")).reshape(t, self.kv_heads, hd).transpose(0, 1)
            k, v = k.repeat_interleave(group, dim=0), v.repeat_interleave(group, dim=0)
            x = x + attend(q, k, v).transpose(0, 1).reshape(t, self.dim) @ b["o"].T
            n = self.rms_norm(x, b["ffn_norm"])
            x = x + (torch.nn.functional.silu(n @ b["gate"].T) * (n @ b["up"].T)) @ b["down"].T
        return self.rms_norm(x[-1], self.norm) @ self.output.T


def generate(model, run, threads):
    """Greedy generation from `bcfl --json llm generate --with-tokens`'s prompt, as many tokens
    as bcfl generated, with a KV cache: speeds and whether the ids agree."""
    prompt, expected = run["prompt_ids"], run["ids"]
    cache = [None] * model.blocks_n
    began = time.perf_counter()
    nxt = int(model.step(prompt, cache).argmax())
    prefill = time.perf_counter() - began
    ids = [nxt]
    began = time.perf_counter()
    while len(ids) < len(expected):
        nxt = int(model.step([nxt], cache).argmax())
        ids.append(nxt)
    decode = time.perf_counter() - began
    return {
        "prompt_tokens": len(prompt),
        "generated_tokens": len(ids),
        "prefill_tokens_per_second": len(prompt) / prefill,
        "decode_tokens_per_second": (len(ids) - 1) / decode if decode else None,
        "ids_agree": ids == expected,
        "threads": threads,
        "torch": torch.__version__,
    }


def train_steps(model, run, threads):
    """`bcfl --json llm train-speed --with-tokens`'s training steps, the same way: FlowerTune
    adapters (r 32, alpha 64, dropout 0.05, q and v) on the top `lora_top_layers` blocks,
    AdamW at 1e-5, gradient norm clipped to 1, the answer token's cross-entropy at the last
    position; `steps` steps of `batch_size` prompts, running the whole model each step, then
    from the frozen prefix's states computed once. Prompt tokens per second each way."""
    top = run["lora_top_layers"]
    layer = model.blocks_n - top if 0 < top < model.blocks_n else 0
    rank, scale = 32, 64.0 / 32
    torch.manual_seed(0)
    lora = {}
    for i in range(layer, model.blocks_n):
        kv = model.kv_heads * model.head_dim
        lora[i] = {
            "q": (torch.empty(rank, model.dim).uniform_(-1, 1).div_(math.sqrt(model.dim)).requires_grad_(),
                  torch.zeros(model.dim, rank, requires_grad=True), scale),
            "v": (torch.empty(rank, model.dim).uniform_(-1, 1).div_(math.sqrt(model.dim)).requires_grad_(),
                  torch.zeros(kv, rank, requires_grad=True), scale),
        }
    params = [t for ad in lora.values() for a, b, _ in ad.values() for t in (a, b)]
    prompts = run["prompts"]
    steps, batch = run["steps"], run["batch_size"]

    def timed(states):
        optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01)
        tokens, k = 0, 0
        began = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad()
            for _ in range(batch):
                p = prompts[k % len(prompts)]
                x = states[k % len(prompts)] if states else model.hidden(p["ids"], layer)
                k += 1
                logits = model.last_logits_lora(x, layer, lora, 0.05)
                loss = torch.nn.functional.cross_entropy(
                    logits.unsqueeze(0), torch.tensor([p["answer"]])
                ) / batch
                loss.backward()
                tokens += len(p["ids"])
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        return tokens / (time.perf_counter() - began)

    full = timed(None)
    began = time.perf_counter()
    states = [model.hidden(p["ids"], layer) for p in prompts]
    cache_seconds = time.perf_counter() - began
    cached = timed(states)
    return {
        "frozen_layers": layer,
        "steps": steps,
        "full_tokens_per_second": full,
        "cached_tokens_per_second": cached,
        "cache_seconds": cache_seconds,
        "threads": threads,
        "torch": torch.__version__,
    }


def answer_ids(gguf):
    """Ids of the tokens `yes`, `no`, `maybe` in the GGUF vocabulary."""
    vocab = {tok: i for i, tok in enumerate(gguf.metadata["tokenizer.ggml.tokens"])}
    return {a: vocab[a] for a in ("yes", "no", "maybe")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", default=os.environ.get("BCFL_LLM_GGUF"), help="model file")
    parser.add_argument("--predictions", help="bcfl llm eval --with-tokens output (JSON lines)")
    parser.add_argument(
        "--generate", help="bcfl --json llm generate --with-tokens output: time greedy generation"
    )
    parser.add_argument(
        "--train-steps", help="bcfl --json llm train-speed --with-tokens output: time its steps"
    )
    parser.add_argument("--out", help="write one JSON line per question here")
    parser.add_argument("--rope", choices=("hf", "interleaved"), default="hf")
    parser.add_argument(
        "--attention",
        choices=("sdpa", "eager"),
        default="sdpa",
        help="torch's fused attention (Hugging Face's default) or the written-out one",
    )
    parser.add_argument(
        "--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1"))
    )
    parser.add_argument("--limit", type=int, help="only the first N lines")
    args = parser.parse_args()
    if not args.gguf:
        sys.exit("no model: pass --gguf or set BCFL_LLM_GGUF")
    torch.set_num_threads(args.threads)
    global ATTENTION
    ATTENTION = args.attention

    began = time.perf_counter()
    gguf = Gguf(args.gguf)
    model = Llama(gguf, rope=args.rope)
    ids = answer_ids(gguf)
    load_seconds = time.perf_counter() - began
    for flag, run in (("generate", generate), ("train_steps", train_steps)):
        path = getattr(args, flag)
        if path:
            with open(path) as f:
                result = run(model, json.load(f), torch.get_num_threads())
            print(json.dumps(dict(result, load_seconds=load_seconds)))
            return
    if not args.predictions:
        sys.exit("pass --predictions, --generate or --train-steps")

    with open(args.predictions) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if args.limit is not None:
        lines = lines[: args.limit]
    out = open(args.out, "w") if args.out else None
    tokens = 0
    seconds = 0.0
    max_diff = 0.0
    compared = agree = 0
    for line in lines:
        if "tokens" not in line:
            sys.exit(f"{args.predictions}: question {line.get('pmid')} has no tokens (--with-tokens)")
        prompt = line["tokens"]
        start = time.perf_counter()
        last = model.step(prompt, [None] * model.blocks_n)
        lp_all = last.log_softmax(-1)
        took = time.perf_counter() - start
        seconds += took
        tokens += len(prompt)
        lp = {a: float(lp_all[i]) for a, i in ids.items()}
        if "lp" in line:
            compared += 1
            max_diff = max(max_diff, *(abs(lp[a] - line["lp"][a]) for a in lp))
            agree += max(lp, key=lambda a: (lp[a], -list(lp).index(a))) == line.get("pred")
        if out:
            record = {"pmid": line["pmid"], "lp": lp, "tokens": len(prompt), "seconds": took}
            out.write(json.dumps(record) + "\n")
    if out:
        out.close()
    summary = {
        "questions": len(lines),
        "prompt_tokens": tokens,
        "forward_seconds": seconds,
        "forward_tokens_per_second": tokens / seconds if seconds else None,
        "load_seconds": load_seconds,
        "threads": torch.get_num_threads(),
        "rope": args.rope,
        "attention": args.attention,
        "torch": torch.__version__,
        "compared": compared,
        "max_abs_diff": max_diff if compared else None,
        "predictions_agree": agree if compared else None,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
