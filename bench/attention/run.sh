#!/usr/bin/env bash
# bench/attention: tl's fused causal attention (flash_attention: the attn / attn_grad
# primitives compiled by targets/cpu/attn.c, through libtlc's JIT: attn_bench.c) against
# PyTorch's torch.nn.functional.scaled_dot_product_attention(is_causal=True) on the CPU
# (torch_attn.py), forward and forward + backward, f32 [B, H, T, K].
#
# Each figure is the median of REPS runs (after a warm-up); tl and torch alternate for
# ROUNDS rounds and each side keeps its best median, so a burst of load from other
# processes on a shared machine does not decide a ratio. Wall-clock ms, and with 1 thread
# also the process's CPU ms (the work, whatever the load). Prints a table (ratio = torch /
# tl, > 1: tl faster), writes bench/results/attention-<date>.json and merges the figures
# into bench/results.json. Skips (exit 0) without a Python with torch.
#
# Environment: B (16), H (4), K (64), TS ("128 256 512 1024 2048"), THREADS ("1 2"),
# REPS (5), ROUNDS (2), PY (bench/.venv/bin/python), RESULTS (bench/results.json),
# UNFUSED=1 (also tl with TL_FLASH=0's unfused graph: scores materialized).
set -eu
cd "$(dirname "$0")/../.."
PY=${PY:-bench/.venv/bin/python}
B=${B:-16} H=${H:-4} K=${K:-64}
TS=${TS:-128 256 512 1024 2048}
THREADS=${THREADS:-1 2}
REPS=${REPS:-5} ROUNDS=${ROUNDS:-2}
RESULTS=${RESULTS:-bench/results.json}
BUILD=${BUILD:-build}
export PYTHONDONTWRITEBYTECODE=1

if [ ! -x "$PY" ] || ! tv=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null); then
  echo "SKIP: bench/attention: no Python with torch at $PY (python3 -m venv bench/.venv && bench/.venv/bin/pip install torch)"
  exit 0
fi
make -s "$BUILD/libtlc.a" "$BUILD/libtlrt.a" >/dev/null
mkdir -p "$BUILD/bench" bench/results
${CC:-gcc} -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -Idsl -Icompiler -Iruntime -Itargets -I"$BUILD/gen" \
    -o "$BUILD/bench/attn_bench" bench/attention/attn_bench.c "$BUILD/libtlc.a" "$BUILD/libtlrt.a" \
    -lcjson -lpcre2-8 -lutf8proc -lm -lpthread $(llvm-config-19 --ldflags --libs core orcjit native passes nvptx linker bitreader)

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
echo "bench/attention: B=$B H=$H K=$K f32, causal; CPU: ${cpu:-unknown} ($(nproc) online); torch $tv; load $(cut -d' ' -f1-3 /proc/loadavg)"
out=bench/results/attention-$(date +%Y%m%d-%H%M%S).json
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
: >"$tmp/lines"
for th in $THREADS; do
  for T in $TS; do
    for r in $(seq "$ROUNDS"); do
      "$BUILD/bench/attn_bench" "$B" "$H" "$T" "$K" "$th" "$REPS" | sed "s/^/tl $th $T /" >>"$tmp/lines"
      "$PY" bench/attention/torch_attn.py "$B" "$H" "$T" "$K" "$th" "$REPS" | sed "s/^/torch $th $T /" >>"$tmp/lines"
      if [ "${UNFUSED:-0}" = 1 ]; then
        TL_FLASH=0 "$BUILD/bench/attn_bench" "$B" "$H" "$T" "$K" "$th" "$REPS" | sed "s/^/unfused $th $T /" >>"$tmp/lines"
      fi
    done
  done
done
python3 - "$tmp/lines" "$out" "$RESULTS" "$B" "$H" "$K" <<'PY'
import json, os, sys
lines, out, results, B, H, K = sys.argv[1:]
best, bcpu = {}, {}
for ln in open(lines):
    who, th, T, mode, med, _mn, cpu = ln.split()
    key = (who, int(th), int(T), mode)
    best[key] = min(best.get(key, float("inf")), float(med))
    bcpu[key] = min(bcpu.get(key, float("inf")), float(cpu))
rows = sorted({(th, T) for (_, th, T, _) in best})
unf = any(k[0] == "unfused" for k in best)
print(f"{'threads':>7} {'T':>5} | {'fwd tl':>9} {'torch':>9} {'ratio':>6} {'cpu':>6} | {'fwd+bwd tl':>10} {'torch':>9} {'ratio':>6} {'cpu':>6}"
      + (f" | {'unfused fwd':>11} {'fwd+bwd':>9}" if unf else ""))
entries = []
for th, T in rows:
    cells = []
    for mode in ("fwd", "fwdbwd"):
        k_tl, k_to = ("tl", th, T, mode), ("torch", th, T, mode)
        tl, to = best[k_tl], best[k_to]
        cr = bcpu[k_to] / bcpu[k_tl] if th == 1 else float("nan")
        cells.append((tl, to, to / tl, cr))
        entries.append({"bench": "attention", "metric": f"{mode}_ms_T{T}_{th}t", "tl": round(tl, 3),
                        "anchor_name": "torch_sdpa", "anchor": round(to, 3), "ratio": round(to / tl, 4),
                        "config": f"B={B} H={H} K={K} f32 causal"})
        if th == 1:
            entries.append({"bench": "attention", "metric": f"{mode}_cpu_ms_T{T}_1t", "tl": round(bcpu[k_tl], 3),
                            "anchor_name": "torch_sdpa", "anchor": round(bcpu[k_to], 3), "ratio": round(cr, 4),
                            "config": f"B={B} H={H} K={K} f32 causal"})
    line = (f"{th:>7} {T:>5} | {cells[0][0]:9.2f} {cells[0][1]:9.2f} {cells[0][2]:6.2f} {cells[0][3]:6.2f} | "
            f"{cells[1][0]:10.2f} {cells[1][1]:9.2f} {cells[1][2]:6.2f} {cells[1][3]:6.2f}")
    if unf:
        line += f" | {best[('unfused', th, T, 'fwd')]:11.2f} {best[('unfused', th, T, 'fwdbwd')]:9.2f}"
    print(line)
print("ms: best of the rounds' medians; ratio = torch / tl (wall); cpu = the same on CPU time (1 thread)")
json.dump(entries, open(out, "w"), indent=1)
old = json.load(open(results)) if os.path.exists(results) else []
keys = {(e["bench"], e["metric"], e["anchor_name"]) for e in entries}
merged = [e for e in old if (e["bench"], e["metric"], e["anchor_name"]) not in keys] + entries
json.dump(merged, open(results, "w"), indent=1)
print(f"bench/attention: {len(entries)} entries in {out}, merged into {results}")
PY
