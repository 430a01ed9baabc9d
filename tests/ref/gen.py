#!/usr/bin/env python3
"""Generate tl's PyTorch reference vectors: small .safetensors files beside this script.

Run by hand (not by `make test`):  bench/.venv/bin/python tests/ref/gen.py

Every file holds the inputs, parameters, outputs and gradients of one case, in tl's layouts
and names (see README.md here): Linear weights are [in, out] (y = x @ w + b), names are the
dotted paths a tl model gives its parameters, gradients are "grad.<name>". Inputs are drawn
with a fixed seed and rounded to float32 first; everything is then computed in float64 from
those exact values and stored as F32 (integer inputs as I32). So a float64 recomputation
from the stored inputs agrees with the stored outputs to float32 rounding (~6e-8 relative).

Gradients: where the output is not a scalar loss, loss = sum(out * dy) with a fixed random
"dy" stored in the file (several outputs: "dy.<output>" each, losses summed).

Each formula below is written out from primitives (the way tl's stdlib writes it) and
asserted against PyTorch's own implementation (F.layer_norm, F.scaled_dot_product_attention,
nn.LSTM, torch.optim.AdamW, ...), so the vectors pin down PyTorch's semantics.
"""
import json
import math
import os
import struct
import zlib

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

SEED = 20240601
OUT = os.path.dirname(os.path.abspath(__file__))
torch.set_default_dtype(torch.float64)

B, T, D, H, V, C = 2, 6, 16, 4, 11, 8  # batch, time, width, heads, vocab, GPT context


class Rng:
    """A per-case generator (seed = SEED + crc32(case)), so cases are independent."""

    def __init__(self, case):
        self.seed = SEED + zlib.crc32(case.encode()) % 100000
        self.g = torch.Generator().manual_seed(self.seed)

    def randn(self, *shape, std=1.0):
        # rounded through float32 so the stored f32 inputs are exactly what was used
        return (torch.randn(*shape, generator=self.g) * std).float().double()

    def randint(self, hi, *shape):
        return torch.randint(0, hi, shape, generator=self.g)


def check(name, got, want, tol=1e-10):
    err = (got - want).abs().max().item()
    scale = max(1.0, want.abs().max().item())
    assert err <= tol * scale, f"{name}: cross-check failed, max error {err}"


def write_safetensors(path, tensors, meta):
    """Deterministic safetensors bytes, laid out as runtime/safetensors.c writes them: header
    keys sorted, data ordered by element size (largest first) then name, header padded with
    spaces to a multiple of 8. (safetensors' own save_file orders metadata by hash, so its
    output changes from run to run.)"""
    dtypes = {torch.float32: "F32", torch.int32: "I32"}
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header, blobs, at = {"__metadata__": meta}, [], 0
    for k in order:
        b = tensors[k].numpy().tobytes()
        header[k] = {"dtype": dtypes[tensors[k].dtype], "shape": list(tensors[k].shape),
                     "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(path + ".tmp", path)
    back = load_file(path)  # the official reader must agree
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in back)


def save(case, desc, rng, tensors, extra_meta=None):
    out = {}
    for k, t in tensors.items():
        t = t.detach()
        out[k] = (t.to(torch.int32) if not t.is_floating_point() else t.float()).contiguous()
    meta = {
        "case": case,
        "description": desc,
        "torch": torch.__version__,
        "seed": str(rng.seed),
        "precision": "inputs drawn as f32; computed in float64; stored as F32 (indices I32)",
        "layout": "Linear w is [in, out], y = x @ w + b; grad.<name> is d loss / d <name>",
    }
    meta.update(extra_meta or {})
    path = os.path.join(OUT, case + ".safetensors")
    write_safetensors(path, out, meta)
    print(f"{case:14s} {len(out):3d} tensors {os.path.getsize(path):7d} bytes")


def leaves(d):
    return {k: v.clone().requires_grad_(True) for k, v in d.items()}


def grads(loss, ps):
    gs = torch.autograd.grad(loss, list(ps.values()))
    return {"grad." + k: g for k, g in zip(ps, gs)}


# ---- the layers, written from primitives in tl's layouts --------------------------------


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased variance, as PyTorch
    return (x - mu) / torch.sqrt(var + eps) * w + b


def linear(x, p, name):
    return x @ p[name + ".w"] + p[name + ".b"]


def gelu(x):  # the tanh approximation
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def attention(x, p, name, nh):
    b, t, d = x.shape
    q, k, v = linear(x, p, name + ".qkv").split(d, dim=-1)
    heads = lambda z: z.reshape(b, t, nh, d // nh).permute(0, 2, 1, 3)  # [B, H, T, D/H]
    q, k, v = heads(q), heads(k), heads(v)
    s = q @ k.transpose(-1, -2) / math.sqrt(d // nh)
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    a = s.masked_fill(~causal, float("-inf")).softmax(-1)
    y = (a @ v).permute(0, 2, 1, 3).reshape(b, t, d)
    return linear(y, p, name + ".proj")


def block(x, p, pre, nh):
    x = x + attention(layer_norm(x, p[pre + "ln1.w"], p[pre + "ln1.b"]), p, pre + "attn", nh)
    h = layer_norm(x, p[pre + "ln2.w"], p[pre + "ln2.b"])
    return x + linear(gelu(linear(h, p, pre + "mlp.fc")), p, pre + "mlp.proj")


def init_ln(rng, p, name, d):
    p[name + ".w"] = 1 + rng.randn(d, std=0.2)
    p[name + ".b"] = rng.randn(d, std=0.2)


def init_linear(rng, p, name, n_in, n_out):
    p[name + ".w"] = rng.randn(n_in, n_out, std=1 / math.sqrt(n_in))
    p[name + ".b"] = rng.randn(n_out, std=0.1)


def init_block(rng, p, pre, d):
    init_ln(rng, p, pre + "ln1", d)
    init_linear(rng, p, pre + "attn.qkv", d, 3 * d)
    init_linear(rng, p, pre + "attn.proj", d, d)
    init_ln(rng, p, pre + "ln2", d)
    init_linear(rng, p, pre + "mlp.fc", d, 4 * d)
    init_linear(rng, p, pre + "mlp.proj", 4 * d, d)


# ---- cases --------------------------------------------------------------------------------


def case_layer_norm():
    rng = Rng("layer_norm")
    p = leaves({"x": rng.randn(B, T, D, std=2) + 0.5, "w": 1 + rng.randn(D, std=0.2),
                "b": rng.randn(D, std=0.2)})
    out = layer_norm(p["x"], p["w"], p["b"])
    check("layer_norm", out, F.layer_norm(p["x"], (D,), p["w"], p["b"], eps=1e-5))
    dy = rng.randn(B, T, D)
    g = grads((out * dy).sum(), p)
    save("layer_norm", "LayerNorm over the last dim, eps 1e-5: out = (x - mean) / sqrt(var + "
         "eps) * w + b (biased var)", rng, {**p, "out": out, "dy": dy, **g}, {"eps": "1e-5"})


def case_softmax(case, fn, ref, desc):
    rng = Rng(case)
    p = leaves({"x": rng.randn(B, T, V, std=3)})
    out = fn(p["x"])
    check(case, out, ref(p["x"]))
    dy = rng.randn(B, T, V)
    g = grads((out * dy).sum(), p)
    save(case, desc, rng, {**p, "out": out, "dy": dy, **g})


def case_gelu():
    rng = Rng("gelu")
    x = rng.randn(B, T, D, std=2.5)
    x[0, 0, :] = torch.linspace(-6, 6, D).float().double()  # the tails and zero
    p = leaves({"x": x})
    out = gelu(p["x"])
    check("gelu", out, F.gelu(p["x"], approximate="tanh"))
    dy = rng.randn(B, T, D)
    g = grads((out * dy).sum(), p)
    save("gelu", "GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
         rng, {**p, "out": out, "dy": dy, **g})


def case_cross_entropy():
    rng = Rng("cross_entropy")
    n = 12
    p = leaves({"logits": rng.randn(n, V, std=2)})
    targets = rng.randint(V, n)
    targets[3] = -1
    targets[7] = -1
    lp = p["logits"].log_softmax(-1)
    keep = targets >= 0
    loss = -lp[keep, targets[keep]].sum() / keep.sum()
    check("cross_entropy", loss, F.cross_entropy(p["logits"], targets, ignore_index=-1))
    g = grads(loss, p)
    save("cross_entropy", "mean cross-entropy of softmax(logits) over targets != -1 "
         "(ignore_index -1, mean over the non-ignored)", rng,
         {**p, "targets": targets, "loss": loss, **g}, {"ignore_index": "-1"})


def case_attention():
    rng = Rng("attention")
    p = {"x": rng.randn(B, T, D)}
    init_linear(rng, p, "attn.qkv", D, 3 * D)
    init_linear(rng, p, "attn.proj", D, D)
    p = leaves(p)
    out = attention(p["x"], p, "attn", H)
    # cross-check against PyTorch's fused attention
    q, k, v = linear(p["x"], p, "attn.qkv").split(D, dim=-1)
    hd = lambda z: z.reshape(B, T, H, D // H).transpose(1, 2)
    y = F.scaled_dot_product_attention(hd(q), hd(k), hd(v), is_causal=True)
    check("attention", out, linear(y.transpose(1, 2).reshape(B, T, D), p, "attn.proj"))
    dy = rng.randn(B, T, D)
    g = grads((out * dy).sum(), p)
    save("attention", "causal multi-head self-attention: q,k,v = split(x @ attn.qkv.w + "
         "attn.qkv.b, last dim, in that order); heads [B,T,H,D/H] -> [B,H,T,D/H]; scores / "
         "sqrt(D/H); causal mask; softmax; merge heads; attn.proj", rng,
         {**p, "out": out, "dy": dy, **g}, {"H": str(H)})


def case_block():
    rng = Rng("block")
    p = {"x": rng.randn(B, T, D)}
    init_block(rng, p, "", D)
    p = leaves(p)
    out = block(p["x"], p, "", H)
    dy = rng.randn(B, T, D)
    g = grads((out * dy).sum(), p)
    save("block", "pre-LN transformer block: x = x + attn(ln1(x)); out = x + mlp.proj(gelu("
         "mlp.fc(ln2(x)))); GELU tanh; LayerNorm eps 1e-5", rng,
         {**p, "out": out, "dy": dy, **g}, {"H": str(H)})


def lstm(x, h, c, w_ih, w_hh, b):
    hs = []
    for t in range(x.shape[0]):
        i, f, g, o = (x[t] @ w_ih + h @ w_hh + b).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        hs.append(h)
    return torch.stack(hs), h, c


def case_lstm():
    rng = Rng("lstm")
    steps, ni, nh = 8, 5, 6
    p = {"x": rng.randn(steps, B, ni), "h0": rng.randn(B, nh, std=0.5),
         "c0": rng.randn(B, nh, std=0.5),
         "cell.w_ih": rng.randn(ni, 4 * nh, std=1 / math.sqrt(ni)),
         "cell.w_hh": rng.randn(nh, 4 * nh, std=1 / math.sqrt(nh)),
         "cell.b": rng.randn(4 * nh, std=0.2)}
    p = leaves(p)
    hs, h, c = lstm(p["x"], p["h0"], p["c0"], p["cell.w_ih"], p["cell.w_hh"], p["cell.b"])
    dy = {"dy.hs": rng.randn(steps, B, nh), "dy.h": rng.randn(B, nh), "dy.c": rng.randn(B, nh)}
    loss = (hs * dy["dy.hs"]).sum() + (h * dy["dy.h"]).sum() + (c * dy["dy.c"]).sum()
    g = grads(loss, p)

    # cross-check with torch.nn.LSTM: its weights are [4H, in] (ours transposed) and it has
    # two biases (ours is their sum; theirs here b and 0)
    ref = torch.nn.LSTM(ni, nh)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(p["cell.w_ih"].T)
        ref.weight_hh_l0.copy_(p["cell.w_hh"].T)
        ref.bias_ih_l0.copy_(p["cell.b"])
        ref.bias_hh_l0.zero_()
    x2, h02, c02 = (p[k].detach().clone().requires_grad_(True) for k in ("x", "h0", "c0"))
    rhs, (rh, rc) = ref(x2, (h02[None], c02[None]))
    check("lstm hs", rhs, hs)
    check("lstm h", rh[0], h)
    check("lstm c", rc[0], c)
    rloss = (rhs * dy["dy.hs"]).sum() + (rh[0] * dy["dy.h"]).sum() + (rc[0] * dy["dy.c"]).sum()
    rloss.backward()
    check("lstm grad x", x2.grad, g["grad.x"])
    check("lstm grad h0", h02.grad, g["grad.h0"])
    check("lstm grad c0", c02.grad, g["grad.c0"])
    check("lstm grad w_ih", ref.weight_ih_l0.grad.T, g["grad.cell.w_ih"])
    check("lstm grad w_hh", ref.weight_hh_l0.grad.T, g["grad.cell.w_hh"])
    check("lstm grad b", ref.bias_ih_l0.grad, g["grad.cell.b"])
    save("lstm", "LSTM over 8 steps, x [T,B,I]: gates = x_t @ cell.w_ih + h @ cell.w_hh + "
         "cell.b split in order i, f, g, o; c' = sig(f) c + sig(i) tanh(g); h' = sig(o) "
         "tanh(c'); hs [T,B,H] all h'; h, c final; loss = sum(hs dy.hs) + sum(h dy.h) + "
         "sum(c dy.c)", rng, {**p, "hs": hs, "h": h, "c": c, **dy, **g},
         {"T": str(steps), "I": str(ni), "H": str(nh)})


def gpt_forward(p, idx, nl):
    t = idx.shape[1]
    x = p["wte"][idx] + p["wpe"][:t]
    for l in range(nl):
        x = block(x, p, f"blocks.{l}.", H)
    return layer_norm(x, p["lnf.w"], p["lnf.b"]) @ p["wte"].T


GPT_LAYERS, GPT_T = 2, 7


def gpt_case_inputs():
    """The 2-layer GPT's weights and batch (shared by the gpt and gpt_train cases)."""
    rng = Rng("gpt")
    p = {"wte": rng.randn(V, D, std=0.5), "wpe": rng.randn(C, D, std=0.5)}
    for l in range(GPT_LAYERS):
        init_block(rng, p, f"blocks.{l}.", D)
    init_ln(rng, p, "lnf", D)
    idx = rng.randint(V, B, GPT_T)
    targets = rng.randint(V, B, GPT_T)
    return rng, p, idx, targets


def gpt_loss(p, idx, targets):
    logits = gpt_forward(p, idx, GPT_LAYERS)
    return logits, F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def case_gpt():
    rng, p, idx, targets = gpt_case_inputs()
    nl, t = GPT_LAYERS, GPT_T
    p = leaves(p)
    logits, loss = gpt_loss(p, idx, targets)
    g = grads(loss, p)
    save("gpt", "2-layer GPT: x = wte[idx] + wpe[0..T]; blocks.0, blocks.1 (pre-LN blocks); "
         "logits = lnf(x) @ wte^T (tied); loss = mean cross-entropy over all targets; "
         "grad.wte includes both uses", rng,
         {**p, "idx": idx, "targets": targets, "logits": logits, "loss": loss, **g},
         {"V": str(V), "C": str(C), "D": str(D), "H": str(H), "L": str(nl), "T": str(t)})


def adamw_step(p, g, m, v, step, lr, b1, b2, eps, wd):
    p = p * (1 - lr * wd)  # decoupled weight decay
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    mhat = m / (1 - b1**step)
    vhat = v / (1 - b2**step)
    return p - lr * mhat / (torch.sqrt(vhat) + eps), m, v


def case_adamw():
    rng = Rng("adamw")
    hp = dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.1)
    shapes = {"w": (4, 5), "b": (5,)}
    ps = {k: rng.randn(*s) for k, s in shapes.items()}
    g1 = {k: rng.randn(*s) for k, s in shapes.items()}
    g2 = {k: rng.randn(*s, std=0.1) for k, s in shapes.items()}
    g1["w"][0, 0] = 0.0  # exercises eps
    g1["w"][0, 1] = 2.0**-30  # tiny, and exact in f32
    g2["b"][2] = 0.0
    out = {"p." + k: ps[k] for k in shapes}
    cur = {k: (ps[k], torch.zeros(s), torch.zeros(s)) for k, s in shapes.items()}
    for step, gs in ((1, g1), (2, g2)):
        for k in shapes:
            cur[k] = adamw_step(*cur[k][:1], gs[k], *cur[k][1:], step, **hp)
            out[f"g.{step}.{k}"] = gs[k]
            out[f"out.{step}.{k}"], out[f"m.{step}.{k}"], out[f"v.{step}.{k}"] = cur[k]

    # cross-check with torch.optim.AdamW
    tp = {k: ps[k].clone().requires_grad_(True) for k in shapes}
    opt = torch.optim.AdamW(list(tp.values()), lr=hp["lr"], betas=(hp["b1"], hp["b2"]),
                            eps=hp["eps"], weight_decay=hp["wd"])
    for step, gs in ((1, g1), (2, g2)):
        for k in shapes:
            tp[k].grad = gs[k].clone()
        opt.step()
        for k in shapes:
            st = opt.state[tp[k]]
            check(f"adamw out {step} {k}", tp[k].detach(), out[f"out.{step}.{k}"], 1e-12)
            check(f"adamw m {step} {k}", st["exp_avg"], out[f"m.{step}.{k}"], 1e-12)
            check(f"adamw v {step} {k}", st["exp_avg_sq"], out[f"v.{step}.{k}"], 1e-12)
    save("adamw", "two AdamW steps (PyTorch semantics, decoupled weight decay on every "
         "tensor, moments start at 0): p.* initial params; g.<step>.* grads; m/v.<step>.* "
         "moments and out.<step>.* params after step 1 and 2", rng, out,
         {"lr": "1e-3", "beta1": "0.9", "beta2": "0.999", "eps": "1e-8",
          "weight_decay": "0.1"})


GPT_TRAIN_HP = dict(lr=1e-2, b1=0.9, b2=0.95, eps=1e-8, wd=0.1)
GPT_TRAIN_STEPS = 3


def case_gpt_train():
    """The gpt case's model and batch, then 3 AdamW steps on that same batch, the way a tl
    train block takes them: constant lr, no clipping, decoupled weight decay only on params
    of rank >= 2 (none on biases and LayerNorm weights), bias correction with t = 1, 2, 3."""
    rng, p0, idx, targets = gpt_case_inputs()
    hp = GPT_TRAIN_HP
    p = leaves(p0)
    logits, loss = gpt_loss(p, idx, targets)
    g = grads(loss, p)
    decays = {k: p0[k].dim() >= 2 for k in p0}

    cur = {k: (p0[k], torch.zeros_like(p0[k]), torch.zeros_like(p0[k])) for k in p0}
    losses = []
    for step in range(1, GPT_TRAIN_STEPS + 1):
        q = leaves({k: cur[k][0] for k in p0})
        _, l = gpt_loss(q, idx, targets)
        gs = grads(l, q)
        losses.append(l.detach())
        if step == 1:
            for k in p0:
                check(f"gpt_train grad {k}", gs["grad." + k], g["grad." + k], 0)
        for k in p0:
            wd = hp["wd"] if decays[k] else 0.0
            cur[k] = adamw_step(cur[k][0], gs["grad." + k], cur[k][1], cur[k][2], step,
                                hp["lr"], hp["b1"], hp["b2"], hp["eps"], wd)
    n = GPT_TRAIN_STEPS
    out = {}
    for k in p0:
        out[f"out.{n}.{k}"], out[f"m.{n}.{k}"], out[f"v.{n}.{k}"] = cur[k]

    # cross-check with torch.optim.AdamW, two param groups (decay / no decay)
    tp = {k: p0[k].clone().requires_grad_(True) for k in p0}
    opt = torch.optim.AdamW(
        [{"params": [tp[k] for k in p0 if decays[k]], "weight_decay": hp["wd"]},
         {"params": [tp[k] for k in p0 if not decays[k]], "weight_decay": 0.0}],
        lr=hp["lr"], betas=(hp["b1"], hp["b2"]), eps=hp["eps"])
    for step in range(1, GPT_TRAIN_STEPS + 1):
        opt.zero_grad()
        _, l = gpt_loss(tp, idx, targets)
        check(f"gpt_train loss {step}", l, losses[step - 1], 1e-12)
        l.backward()
        opt.step()
    for k in p0:
        st = opt.state[tp[k]]
        got, want = tp[k].detach().clone(), out[f"out.{n}.{k}"].clone()
        if k.endswith("attn.qkv.b"):
            # The key bias (the middle third) has a zero gradient in exact arithmetic:
            # softmax is invariant to adding q.b to a whole row of scores. So its gradient
            # is rounding noise (~1e-17 here, ~1e-8 in fp32), and AdamW, dividing by
            # sqrt(v) + eps, turns that noise into updates of up to lr per step: fp32 code
            # (PyTorch's too) ends up to steps * lr away from this float64 reference there.
            check(f"gpt_train grad {k} (key bias)", g["grad." + k][D:2 * D], torch.zeros(D), 1e-12)
            check(f"gpt_train out {k} (key bias)", got[D:2 * D], want[D:2 * D], 1e-9)
            got[D:2 * D] = want[D:2 * D] = 0
        check(f"gpt_train out {k}", got, want, 1e-12)
        check(f"gpt_train m {k}", st["exp_avg"], out[f"m.{n}.{k}"], 1e-12)
        check(f"gpt_train v {k}", st["exp_avg_sq"], out[f"v.{n}.{k}"], 1e-12)
        moved = (out[f"out.{n}.{k}"] - p0[k]).abs().max() / p0[k].abs().max()
        assert moved > 1e-3, f"gpt_train: {k} barely moved ({moved})"

    save("gpt_train", "the gpt case (same weights, same batch: idx, targets) and 3 AdamW "
         "steps on that batch: logits, loss, grad.<param> at the initial params; losses [3] "
         "the loss before each step; out.3.<param>, m.3.<param>, v.3.<param> the params and "
         "moments after step 3. AdamW (PyTorch semantics): constant lr, no clipping, "
         "moments start at 0, bias correction with t = 1, 2, 3, decoupled weight decay only "
         "on params of rank >= 2 (none on biases, LayerNorm weights)", rng,
         {**p0, "idx": idx, "targets": targets, "logits": logits, "loss": loss, **g,
          "losses": torch.stack(losses), **out},
         {"V": str(V), "C": str(C), "D": str(D), "H": str(H), "L": str(GPT_LAYERS),
          "B": str(B), "T": str(GPT_T), "steps": str(GPT_TRAIN_STEPS), "lr": "1e-2",
          "beta1": "0.9", "beta2": "0.95", "eps": "1e-8", "weight_decay": "0.1",
          "weight_decay_on": "params of rank >= 2", "schedule": "constant", "clip": "none",
          "noise_only": "out.3.blocks.*.attn.qkv.b[16:32] (the key bias: zero gradient in exact "
          "arithmetic, so its AdamW update is the sign of rounding noise; fp32 code may differ "
          "there by up to steps * lr)"})


def main():
    case_layer_norm()
    case_softmax("softmax", lambda x: (x - x.amax(-1, keepdim=True).detach()).exp()
                 / (x - x.amax(-1, keepdim=True).detach()).exp().sum(-1, keepdim=True),
                 lambda x: torch.softmax(x, -1), "softmax over the last axis")
    case_softmax("log_softmax", lambda x: x - x.amax(-1, keepdim=True).detach()
                 - (x - x.amax(-1, keepdim=True).detach()).exp().sum(-1, keepdim=True).log(),
                 lambda x: torch.log_softmax(x, -1), "log_softmax over the last axis")
    case_gelu()
    case_cross_entropy()
    case_attention()
    case_block()
    case_lstm()
    case_gpt()
    case_adamw()
    case_gpt_train()


if __name__ == "__main__":
    main()
