#!/usr/bin/env python3
"""Load a gpt-train checkpoint into a PyTorch GPT with nanoGPT's module layout, and evaluate it.

    python3 examples/load_checkpoint.py runs/demo/checkpoints/ckpt-00001000.h5 [--split val] [--windows 64]
    python3 examples/load_checkpoint.py CKPT --nanogpt ~/nanoGPT      # use nanoGPT's own model.py

The weights go into `GPT.load_state_dict` as they are: same names, same (out, in) layout; only the tied
`lm_head.weight` is added as a second name for the token embedding. The evaluation is the one `gpt-train eval`
reports (docs/checkpoint-format.md): consecutive, non-overlapping windows of training.seq_len tokens of the split,
the mean cross-entropy over every position.

Needs: pip install torch h5py numpy
"""
import argparse, json, math, os, sys, tomllib

import h5py
import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F


# A GPT with nanoGPT's parameter names (model.py), GELU in GPT-2's tanh form as gpt-train computes it.
class LayerNorm(nn.Module):
    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_attn = nn.Linear(c["n_embd"], 3 * c["n_embd"], bias=c["bias"])
        self.c_proj = nn.Linear(c["n_embd"], c["n_embd"], bias=c["bias"])
        self.n_head, self.n_embd = c["n_head"], c["n_embd"]

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = [z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in (q, k, v)]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c["n_embd"], c["d_ff"], bias=c["bias"])
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(c["d_ff"], c["n_embd"], bias=c["bias"])

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1, self.attn = LayerNorm(c["n_embd"], c["bias"]), CausalSelfAttention(c)
        self.ln_2, self.mlp = LayerNorm(c["n_embd"], c["bias"]), MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c["vocab_size"], c["n_embd"]), wpe=nn.Embedding(c["block_size"], c["n_embd"]),
            h=nn.ModuleList([Block(c) for _ in range(c["n_layer"])]), ln_f=LayerNorm(c["n_embd"], c["bias"])))
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx, targets):
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.size(1)))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def split_tokens(f, recipe, split):
    """The split's tokens, as gpt-train defines them."""
    path = f["state/data_path"][0].decode()
    if os.path.isdir(path):
        raw = open(os.path.join(path, f"{split}.bin"), "rb").read()
        assert raw[:8] == b"SWGPTTOK", "not a gpt-data token file"
        width = int.from_bytes(raw[12:16], "little")
        count = int.from_bytes(raw[16:24], "little")
        return np.frombuffer(raw, dtype="<u2" if width == 2 else "<u4", count=count, offset=64).astype(np.int64)
    tokenizer = json.loads(f["tokenizer"][0].decode())
    data = open(path, "rb").read()
    if tokenizer["type"] == "byte":
        tokens = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    elif tokenizer["type"] == "char":
        index = {cp: i for i, cp in enumerate(tokenizer["code_points"])}
        tokens = np.array([index[ord(ch)] for ch in data.decode("utf-8")], dtype=np.int64)
    else:
        sys.exit("bpe data comes from a prepared directory; this checkpoint names a file")
    cut = int(len(tokens) * (1 - recipe["data"]["val_fraction"]))
    return tokens[:cut] if split == "train" else tokens[cut:]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--split", default="val", choices=["val", "train"])
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--nanogpt", help="a nanoGPT checkout: build its model.py GPT instead (exact GELU, so the loss "
                                      "differs by about 1e-4)")
    args = ap.parse_args()

    with h5py.File(args.checkpoint, "r") as f:
        if f.attrs["format_version"] != 1:
            sys.exit(f"{args.checkpoint}: checkpoint format {f.attrs['format_version']}, this script reads 1")
        recipe = tomllib.loads(f["recipe"][0].decode())
        m = recipe["model"]
        config = dict(n_layer=m["n_layer"], n_head=m["n_head"], n_embd=m["d_model"], d_ff=m["d_ff"],
                      block_size=m["seq_len"], vocab_size=m["vocab_size"], bias=m["bias"])
        state_dict = {name: torch.from_numpy(f["model"][name][()]) for name in f["model"]}
        tokens = split_tokens(f, recipe, args.split)
        step = int(f["state/step"][0])

    if args.nanogpt:
        sys.path.insert(0, args.nanogpt)
        from model import GPT as NanoGPT, GPTConfig
        model = NanoGPT(GPTConfig(n_layer=config["n_layer"], n_head=config["n_head"], n_embd=config["n_embd"],
                                  block_size=config["block_size"], vocab_size=config["vocab_size"],
                                  bias=config["bias"], dropout=0.0))
        forward = lambda x, y: model(x, y)
    else:
        model = GPT(config)
        forward = lambda x, y: model(x, y)
    state_dict["lm_head.weight"] = state_dict["transformer.wte.weight"]  # the tied head: a second name
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    assert not unexpected and all(k.endswith(".attn.bias") for k in missing), (missing, unexpected)
    model.eval()

    T = recipe["training"]["seq_len"]
    windows = min(args.windows, (len(tokens) - 1) // T)
    total = 0.0
    with torch.no_grad():
        for start in range(0, windows, 16):
            ks = range(start, min(windows, start + 16))
            x = torch.from_numpy(np.stack([tokens[k * T:k * T + T] for k in ks]))
            y = torch.from_numpy(np.stack([tokens[k * T + 1:k * T + T + 1] for k in ks]))
            _, loss = forward(x, y)
            total += loss.item() * len(ks)
    print(json.dumps({"checkpoint": args.checkpoint, "step": step, "split": args.split, "windows": windows,
                      "seq_len": T, "tokens": windows * T, "loss": total / windows}))


if __name__ == "__main__":
    main()
