#!/usr/bin/env python3
"""bench/memory/report.py RESULTS.json — the table of bench/memory/run.sh (docs/memory.md).

bound   = params + AdamW moments + step inputs + the most bytes the step's plan has live at
          one point (activations, gradients, and the new params and moments it returns);
planned = params + moments + inputs + the step's arena + the eval program's arena;
ideal   = params + grads + moments (4 x params) + that peak's activations is not reachable
          while the step returns new params and moments out of place; shown for reference."""
import json
import sys

MiB = 1 << 20
rows = json.load(open(sys.argv[1]))
for r in rows:
    p = r["plan"]
    fixed = p["params_bytes"] + p["states_bytes"] + p["inputs_bytes"]
    bound = fixed + p["step_peak_live"]
    planned = fixed + p["step_arena"] + p["eval_arena"]
    noreuse = fixed + p["step_no_reuse"] + p["eval_no_reuse"]
    rss = r["rss_kib"]
    print(f"== {r['config']} ({r['flags'] or 'the defaults'}): {p['nparams']:,} params, {p['step_buffers']} step buffers")
    print(f"  params {p['params_bytes']/MiB:8.2f} MiB   moments {p['states_bytes']/MiB:8.2f} MiB   inputs {p['inputs_bytes']/MiB:.2f} MiB")
    print(f"  step plan: arena {p['step_arena']/MiB:8.2f} MiB  peak live {p['step_peak_live']/MiB:8.2f} MiB  "
          f"no reuse {p['step_no_reuse']/MiB:8.2f} MiB  ({p['step_no_reuse']/max(p['step_arena'],1):.1f}x smaller)")
    print(f"  eval plan: arena {p['eval_arena']/MiB:8.2f} MiB  no reuse {p['eval_no_reuse']/MiB:.2f} MiB")
    print(f"  bound    {bound/MiB:8.2f} MiB")
    print(f"  planned  {planned/MiB:8.2f} MiB   {planned/bound:.2f}x bound   (no reuse: {noreuse/MiB:.2f} MiB, {noreuse/bound:.2f}x)")
    for k, what in (("exe", "tlc build executable"), ("exe_no_plan", "  the same, TL_MEMPLAN=0"),
                    ("jit", "tlc run (JIT + LLVM)"), ("jit_no_plan", "  the same, TL_MEMPLAN=0")):
        b = rss[k] * 1024
        print(f"  RSS {what:28s} {b/MiB:8.2f} MiB   {b/bound:.2f}x bound")
        if k == "exe":
            # the steps' own memory: RSS over the 0-step run, plus the params and moments
            # that run already holds
            step = (rss["exe"] - rss["exe_0_steps"]) * 1024 + fixed
            print(f"      0-step run {rss['exe_0_steps']/1024:.2f} MiB; step memory = RSS - that + params + moments"
                  f" = {step/MiB:.2f} MiB   {step/bound:.2f}x bound")
