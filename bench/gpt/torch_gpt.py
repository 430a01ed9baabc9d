#!/usr/bin/env python3
"""The GPT of examples/gpt/gpt.tl in PyTorch: training-step throughput (tokens/s) on the CPU.

    bench/.venv/bin/python bench/gpt/torch_gpt.py --threads 1 --mode eager
    bench/.venv/bin/python bench/gpt/torch_gpt.py --threads 2 --mode compile --json

Same model as gpt.tl with stdlib/nn.tl and stdlib/optim.tl: byte vocabulary 256, context
128, D 256, 4 heads, 4 pre-LN blocks (LayerNorm eps 1e-5, fused qkv Linear with bias,
causal attention as plain math -- softmax(q k^T / sqrt(K) masked with -1e30) v -- GELU
with the tanh approximation, MLP 4D), final LayerNorm, output head tied to the token
embedding, mean cross-entropy; weights N(0, 0.02), biases 0, norms 1. AdamW (betas
0.9/0.95, eps 1e-8, weight decay 0.1 on 2-D tensors only), gradient clipping at global
norm 1.0, warm-up (100 steps) + cosine learning rate, fp32 throughout. Batches are random
byte ids (the time of a step does not depend on the values).

A step is zero_grad + forward + backward + clip + optimizer step, synchronous on the CPU.
Timing: --warmup steps untimed (torch.compile compiles forward and backward during them),
then --windows windows of --steps steps each; the figure is the median over the windows of
steps * B * T / seconds. --attn sdpa uses F.scaled_dot_product_attention instead (reported
separately; not what tl computes).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h, attn):
        super().__init__()
        self.h, self.attn = h, attn
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.fc = nn.Linear(d, 4 * d)
        self.fc_proj = nn.Linear(4 * d, d)

    def attention(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        if self.attn == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // self.h))
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            y = torch.softmax(torch.where(mask, s, -1e30), dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, v, c, d, h, n_layers, attn):
        super().__init__()
        self.wte = nn.Parameter(torch.empty(v, d))
        self.wpe = nn.Parameter(torch.empty(c, d))
        self.blocks = nn.ModuleList(Block(d, h, attn) for _ in range(n_layers))
        self.lnf = nn.LayerNorm(d, eps=1e-5)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif "ln" in name:
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)
            else:
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte[idx] + self.wpe[:t]
        for b in self.blocks:
            x = b(x)
        logits = self.lnf(x) @ self.wte.t()  # tied head
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def lr_at(step, lr, warmup, total):
    """optim.warmup_cosine, down to lr/10 at the last step (as compiler/lower_train.c)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(max((step - warmup) / max(total - warmup, 1), 0.0), 1.0)
    min_lr = lr / 10
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--attn", choices=["math", "sdpa"], default="math")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=3, help="steps per timed window")
    ap.add_argument("--windows", type=int, default=5, help="timed windows (the median is reported)")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (GPU comparisons: timed with synchronize)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    B, T, V = a.batch, a.seq, 256
    dev = torch.device(a.device)
    model = GPT(V, a.seq, a.dim, a.heads, a.layers, a.attn).to(dev)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    fwd = torch.compile(model) if a.mode == "compile" else model
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    total_steps = 2000  # gpt.tl's default --steps: only shapes the schedule
    step = 0

    def train_step():
        nonlocal step
        x = torch.randint(0, V, (B, T), generator=gen, device=dev)
        y = torch.randint(0, V, (B, T), generator=gen, device=dev)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.lr, 100, total_steps)
        opt.zero_grad(set_to_none=True)
        loss = fwd(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        return loss.item()

    t0 = time.perf_counter()
    for _ in range(a.warmup):
        loss = train_step()
    warm_s = time.perf_counter() - t0
    if not math.isfinite(loss):
        sys.exit("error: the loss is not finite")
    rates = []
    for _ in range(a.windows):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss = train_step()  # loss.item() synchronizes the GPU
        rates.append(a.steps * B * T / (time.perf_counter() - t0))
    med = statistics.median(rates)
    nparams = sum(p.numel() for p in model.parameters())
    if a.json:
        print(json.dumps({"mode": a.mode, "attn": a.attn, "threads": a.threads, "tokens_per_s": med,
                          "windows": rates, "steps_per_window": a.steps, "warmup_steps": a.warmup,
                          "warmup_s": warm_s, "loss": loss, "params": nparams, "torch": torch.__version__,
                          "layers": a.layers, "seq": a.seq, "dim": a.dim, "batch": B, "device": a.device}))
    else:
        print(f"torch {torch.__version__} {a.mode} attn={a.attn} threads={a.threads}: {nparams} params, "
              f"batch {B}x{T}; warm-up {a.warmup} steps {warm_s:.1f} s; "
              f"{med:.0f} tokens/s (median of {a.windows} windows of {a.steps} steps: "
              + ", ".join(f"{r:.0f}" for r in rates) + ")")


if __name__ == "__main__":
    main()
