#!/usr/bin/env python3
"""bench/gpt/run.sh's second half: reads the runs it left in DIR, prints the table and
merges the figures into bench/results.json.

    report.py DIR RESULTS_JSON THREADS...

With DIR/peak.json (bench/peak --json of the same run) it also prints the model-FLOPs
utilisation (MFU) of each figure: (6 x params + 12 x layers x T x D) FLOPs per token
(PaLM's count: forward + backward of every weight, and of the attention scores and
weighted sum without the causal halving) times tokens/s, over the FMA peak of the same
thread count.

DIR/<n>/tl.jsonl is the tl executable's metrics.jsonl of the run with --threads n, logged
every step; DIR/<n>/<anchor>.json is torch_gpt.py --json of that thread count. The tl
figure is the median tokens_per_s of the logged windows after the first (which holds the
first step's page faults and warm-up) and before the last (which holds the final
evaluation and checkpoint).
"""
import json
import os
import statistics
import sys

BENCH = "gpt_train"
ANCHORS = [("torch_eager", "torch eager"), ("torch_compile", "torch.compile"),
           ("torch_eager_sdpa", "torch eager+SDPA")]


def flops_per_token(t):
    """6 N + 12 L T D (see the module docstring); the shapes come from torch_gpt.py's JSON."""
    return 6 * t["params"] + 12 * t["layers"] * t["seq"] * t["dim"]


def tl_rates(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    rows.sort(key=lambda r: r["step"])
    return [r["tokens_per_s"] for r in rows[1:-1]]


def merge(path, entries):
    """Replace the entries with the same bench+metric+anchor_name; keep every other."""
    old = []
    if os.path.exists(path):
        try:
            old = json.load(open(path))
            if not isinstance(old, list):
                raise ValueError("not a list")
        except ValueError as e:
            sys.exit(f"error: {path}: {e}; not overwriting it")
    key = lambda e: (e.get("bench"), e.get("metric"), e.get("anchor_name"))
    new_keys = {key(e) for e in entries}
    out = [e for e in old if key(e) not in new_keys] + entries
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    d, results, threads = sys.argv[1], sys.argv[2], sys.argv[3:]
    entries, lines, details = [], [], []
    peak = {}
    pp = os.path.join(d, "peak.json")
    if os.path.exists(pp):
        pk = json.load(open(pp))
        peak = {"1": pk.get("peak_gflops_1t"), "2": pk.get("peak_gflops_2t")}
    present = [a for a in ANCHORS if any(os.path.exists(os.path.join(d, n, a[0] + ".json")) for n in threads)]
    head = f"{'threads':>7} | {'tl tok/s':>9} | " + " | ".join(f"{label:>16} | {'tl/' + label:>19}"
                                                            for _, label in present)
    lines += [head, "-" * len(head)]
    for n in threads:
        rates = tl_rates(os.path.join(d, n, "tl.jsonl"))
        if len(rates) == 0:
            sys.exit(f"error: no tl step windows measured with {n} threads")
        tl = statistics.median(rates)
        cells = [f"{n:>7}", f"{tl:>9.0f}"]
        detail = [f"{n} thread(s): tl windows " + ", ".join(f"{r:.0f}" for r in rates)]
        for name, label in present:
            p = os.path.join(d, n, name + ".json")
            if not os.path.exists(p):
                cells += [f"{'-':>16}", f"{'-':>19}"]
                continue
            t = json.load(open(p))
            anchor = t["tokens_per_s"]
            ratio = tl / anchor
            cells += [f"{anchor:>16.0f}", f"{ratio:>19.3f}"]
            detail.append(f"{n} thread(s): {label} windows " + ", ".join(f"{r:.0f}" for r in t["windows"])
                          + f" ({t['steps_per_window']} steps each; warm-up {t['warmup_steps']} steps,"
                          f" {t['warmup_s']:.1f} s)")
            entries.append({"bench": BENCH, "metric": f"tokens_per_s_{n}t", "tl": round(tl, 1),
                            "anchor_name": name, "anchor": round(anchor, 1), "ratio": round(ratio, 4)})
        fpt = None
        for name, _ in present:
            p = os.path.join(d, n, name + ".json")
            if os.path.exists(p) and "layers" in json.load(open(p)):
                fpt = flops_per_token(json.load(open(p)))
        if fpt and peak.get(n):
            pk = peak[n]
            mfu = [f"tl {100 * tl * fpt / (pk * 1e9):.1f}%"]
            entries.append({"bench": BENCH, "metric": f"mfu_{n}t", "tl": round(tl * fpt / 1e9, 2),
                            "anchor_name": "fma_peak_gflops", "anchor": pk,
                            "ratio": round(tl * fpt / (pk * 1e9), 4)})
            for name, label in present:
                p = os.path.join(d, n, name + ".json")
                if os.path.exists(p):
                    mfu.append(f"{label} {100 * json.load(open(p))['tokens_per_s'] * fpt / (pk * 1e9):.1f}%")
            detail.append(f"{n} thread(s): model FLOPs/token {fpt / 1e6:.2f} M; FMA peak {pk:.1f} GFLOPS;"
                          " MFU " + ", ".join(mfu))
        lines.append(" | ".join(cells))
        details += detail
    print("\n".join(lines + [""] + details))
    merge(results, entries)
    print(f"results: {len(entries)} entries merged into {results}")


if __name__ == "__main__":
    main()
