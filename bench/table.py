#!/usr/bin/env python3
"""Prints bench/results.json as one table: benchmark, metric, tl, anchor, its figure, the
ratio (> 1: tl is better) and, where it applies, tl's % of this machine's FMA peak.

    python3 bench/table.py [RESULTS_JSON] [--markdown]

--markdown prints the same table in Markdown under a line with the date and the CPU (from
the newest bench/results/gemm-*.json, else lscpu), for README.md.
"""
import glob
import json
import os
import subprocess
import sys
import time


def cpu_name():
    files = sorted(glob.glob("bench/results/gemm-*.json"), key=os.path.getmtime)
    if files:
        g = json.load(open(files[-1]))
        return f"{g.get('cpu', '?')}, {g.get('cores', '?')} cores, FMA peak {g['peak_gflops'][0]} / {g['peak_gflops'][1]} GFLOPS (1 / 2 threads)"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) < 10:
        return f"{v:.3g}"
    return f"{v:,.1f}" if isinstance(v, float) else str(v)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    md = "--markdown" in sys.argv
    path = args[0] if args else "bench/results.json"
    rows = json.load(open(path)) if os.path.exists(path) else []
    head = ["benchmark", "metric", "tl", "anchor", "anchor figure", "ratio", "% of peak"]
    body = [[r["bench"] + (f" ({r['device']})" if r.get("device") else ""), r["metric"], fmt(r["tl"]), r["anchor_name"], fmt(r["anchor"]), f"{r['ratio']:.3f}",
             f"{r['pct_peak']:.0f}%" if r.get("pct_peak") is not None else ""] for r in rows]
    if md:
        mtime = time.strftime("%Y-%m-%d", time.gmtime(os.path.getmtime(path))) if os.path.exists(path) else "?"
        print(f"Measured {mtime} on {cpu_name()}; ratio > 1 means tl is better.\n")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for b in body:
            print("| " + " | ".join(b) + " |")
        return
    w = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w[i]) if i < 2 or i == 3 else c.rjust(w[i]) for i, c in enumerate(cells))
    print(line(head))
    print("  ".join("-" * x for x in w))
    for b in body:
        print(line(b))


if __name__ == "__main__":
    main()
