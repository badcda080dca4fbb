#!/usr/bin/env python3
"""Plain-PyTorch reference for bcfl's Llama decoder (client/src/llm): the same model, read from
the same GGUF file with nothing but torch and the standard library, scoring the same PubMedQA
prompts.

    bcfl llm eval --task pubmedqa --limit 3 --predictions p.jsonl --with-tokens
    python bench/llama_reference.py --gguf "$BCFL_LLM_GGUF" --predictions p.jsonl [--out ref.jsonl]

It reads the prompt token ids (`tokens`) of each line of `bcfl llm eval --with-tokens`, runs one
forward pass per prompt, and writes one JSON line per question, {"pmid", "lp": {"yes", "no",
"maybe"}, "tokens", "seconds"}, the log-probabilities (log-softmax over the whole vocabulary) of
the single tokens `yes`, `no` and `maybe` at the last position. On stdout it prints one JSON
object: questions, prompt tokens, forward seconds, tokens per second, threads, and, against the
log-probabilities bcfl wrote in the same file, the largest absolute difference and how many
predictions agree.

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

    def apply_rope(self, x):
        """`x` `[heads, T, head_dim]` rotated for positions 0..T-1."""
        t = x.shape[1]
        angles = torch.outer(torch.arange(t, dtype=torch.float64), self.inv_freq).float()
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
        scores = q @ k.transpose(-2, -1) / math.sqrt(hd)
        causal = torch.ones(t, t, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(causal, float("-inf"))
        out = scores.softmax(-1) @ v
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


def answer_ids(gguf):
    """Ids of the tokens `yes`, `no`, `maybe` in the GGUF vocabulary."""
    vocab = {tok: i for i, tok in enumerate(gguf.metadata["tokenizer.ggml.tokens"])}
    return {a: vocab[a] for a in ("yes", "no", "maybe")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", default=os.environ.get("BCFL_LLM_GGUF"), help="model file")
    parser.add_argument(
        "--predictions", required=True, help="bcfl llm eval --with-tokens output (JSON lines)"
    )
    parser.add_argument("--out", help="write one JSON line per question here")
    parser.add_argument("--rope", choices=("hf", "interleaved"), default="hf")
    parser.add_argument(
        "--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1"))
    )
    parser.add_argument("--limit", type=int, help="only the first N lines")
    args = parser.parse_args()
    if not args.gguf:
        sys.exit("no model: pass --gguf or set BCFL_LLM_GGUF")
    torch.set_num_threads(args.threads)

    began = time.perf_counter()
    gguf = Gguf(args.gguf)
    model = Llama(gguf, rope=args.rope)
    ids = answer_ids(gguf)
    load_seconds = time.perf_counter() - began

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
        last = model.logits(prompt)[-1]
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
        "torch": torch.__version__,
        "compared": compared,
        "max_abs_diff": max_diff if compared else None,
        "predictions_agree": agree if compared else None,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
