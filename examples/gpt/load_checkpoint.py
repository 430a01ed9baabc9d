#!/usr/bin/env python3
"""Loads a checkpoint written by tl into PyTorch and shows what is in it.

    python3 examples/gpt/load_checkpoint.py OUT_DIR_OR_CKPT_DIR_OR_FILE [--expect-gpt]

tl writes checkpoints as safetensors: the model's parameters under their dotted tl names
(wte, wpe, blocks.0.attn.qkv.w, ...), the optimizer state under opt.<k>.<name> (AdamW:
opt.0 = first moment, opt.1 = second moment), and the training state in the metadata
(tl.step, tl.seed, tl.data_pos, ...). Layouts are tl's: a Linear's w is [in, out].
With --expect-gpt the script also checks the shapes against examples/gpt/gpt.tl's GPT and
runs its forward pass in PyTorch on a few bytes (the weights work as a model, not only as
arrays). Needs the `safetensors` and `torch` packages (e.g. bench/.venv)."""
import math
import os
import re
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file


def newest(path):
    if os.path.isfile(path):
        return path
    d = os.path.join(path, "ckpt") if os.path.isdir(os.path.join(path, "ckpt")) else path
    found = sorted((int(m.group(1)), f) for f in os.listdir(d) if (m := re.fullmatch(r"ckpt-(\d+)\.safetensors", f)))
    if not found:
        sys.exit(f"no ckpt-*.safetensors in {d}")
    return os.path.join(d, found[-1][1])


def gpt_forward(w, idx):
    """examples/gpt/gpt.tl's GPT.forward in PyTorch, from the checkpoint's tensors."""
    D = w["wte"].shape[1]
    L = len({k.split(".")[1] for k in w if k.startswith("blocks.")})
    H = int(os.environ.get("TL_HEADS", "4"))
    T = idx.shape[1]

    def ln(x, p):
        return torch.nn.functional.layer_norm(x, (D,), w[p + ".w"], w[p + ".b"], 1e-5)

    def gelu(x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))

    x = w["wte"][idx] + w["wpe"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        p = f"blocks.{l}"
        y = ln(x, p + ".ln1") @ w[p + ".attn.qkv.w"] + w[p + ".attn.qkv.b"]
        q, k, v = (t.reshape(1, T, H, D // H).transpose(1, 2) for t in y.split(D, dim=-1))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D // H)
        a = torch.softmax(s.masked_fill(~mask, -1e30), dim=-1) @ v
        x = x + a.transpose(1, 2).reshape(1, T, D) @ w[p + ".attn.proj.w"] + w[p + ".attn.proj.b"]
        h = gelu(ln(x, p + ".ln2") @ w[p + ".mlp.fc.w"] + w[p + ".mlp.fc.b"])
        x = x + h @ w[p + ".mlp.proj.w"] + w[p + ".mlp.proj.b"]
    return ln(x, "lnf") @ w["wte"].T


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    path = newest(sys.argv[1])
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    w = load_file(path)
    print(f"{path}: {len(w)} tensors, step {meta.get('tl.step')}, seed {meta.get('tl.seed')}, data position {meta.get('tl.data_pos')}")
    for name in sorted(w):
        t = w[name]
        print(f"  {name:32s} {str(tuple(t.shape)):16s} {t.dtype}")
    params = {k: v for k, v in w.items() if not k.startswith("opt.")}
    assert params, "no parameters"
    for k in params:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", k), f"unreadable name {k}"
        assert f"opt.0.{k}" not in w or w[f"opt.0.{k}"].shape == params[k].shape, k
    if "--expect-gpt" in sys.argv:
        V, D = params["wte"].shape
        C = params["wpe"].shape[0]
        assert params["wpe"].shape[1] == D and V == 256, "not a byte-level GPT"
        assert params["lnf.w"].shape == (D,)
        for k, v in params.items():
            if k.endswith("attn.qkv.w"):
                assert v.shape == (D, 3 * D), (k, v.shape)
            if k.endswith("mlp.fc.w"):
                assert v.shape == (D, 4 * D), (k, v.shape)
        idx = torch.tensor([list(b"The quick brown fox")[:C]])
        logits = gpt_forward(params, idx)
        assert logits.shape == (1, idx.shape[1], V) and torch.isfinite(logits).all()
        loss = torch.nn.functional.cross_entropy(logits[0, :-1], idx[0, 1:])
        print(f"PyTorch forward with these weights: logits {tuple(logits.shape)}, next-byte loss {loss.item():.4f}")
    print("OK")


if __name__ == "__main__":
    main()
