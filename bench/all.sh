#!/usr/bin/env bash
# make bench: every benchmark of tl against its anchor, measured side by side in the same
# run, then bench/results.json: a list of {"bench", "metric", "tl", "anchor_name",
# "anchor", "ratio"} (ratio > 1 means tl is better). Never part of make test.
#   bench/run.sh            FMA peak; GEMM vs OpenBLAS (1 and 2 threads)
#   bench/gpt/run.sh        GPT training step tokens/s vs PyTorch eager and torch.compile
#   bench/attention/run.sh  fused causal attention vs torch's scaled_dot_product_attention
#   bench/tokenizer/run.sh  GPT-2 encoding MB/s vs tiktoken and HF tokenizers; BPE training
#   bench/tune/run.sh       tuned vs default schedules
#   bench/memory/run.sh     peak memory of the GPT step vs its lower bound
# A benchmark whose anchor is missing (no bench/.venv with torch, say) says so and is
# skipped; the others still run.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
status=0
run() {
  echo
  echo "==== $1"
  if [ -f "$1" ]; then bash "$1" || { echo "bench: $1 failed"; status=1; }
  else echo "bench: $1 is not there yet"; fi
}
run bench/run.sh
# the GEMM table into bench/results.json (the others merge their own entries)
python3 - <<'PY' || status=1
import glob, json, os
files = sorted(glob.glob("bench/results/gemm-*.json"), key=os.path.getmtime)
if files:
    g = json.load(open(files[-1]))
    path = "bench/results.json"
    rows = json.load(open(path)) if os.path.exists(path) else []
    new = []
    for r in g["results"]:
        for t, threads in ((0, 1), (1, 2)):
            tl, ob = r["tl_gflops"][t], r["openblas_gflops"][t]
            # bf16 rows: tl's bf16 GEMM vs sgemm on the same data; % of twice the fp32 peak
            bf16 = r.get("dtype") == "bf16"
            new.append({"bench": f"gemm {r['shape']}", "metric": f"GFLOPS, {threads} thread{'s' if threads > 1 else ''}",
                        "tl": tl, "anchor_name": "OpenBLAS cblas_sgemm" + (" (f32)" if bf16 else ""), "anchor": ob,
                        "ratio": round(tl / ob, 3),
                        "pct_peak": round(100 * tl / (r.get("peak_factor", 1) * g["peak_gflops"][t]), 1)})
    keys = {(n["bench"], n["metric"], n["anchor_name"]) for n in new}
    rows = [r for r in rows if (r["bench"], r["metric"], r["anchor_name"]) not in keys] + new
    tmp = path + ".tmp"
    json.dump(rows, open(tmp, "w"), indent=1)
    os.replace(tmp, path)
    print(f"bench: {len(new)} GEMM entries merged into {path}")
PY
run bench/gpt/run.sh
run bench/attention/run.sh
run bench/tokenizer/run.sh
run bench/tune/run.sh
run bench/memory/run.sh
echo
[ -f bench/results.json ] && python3 bench/table.py bench/results.json
[ -f bench/results.json ] && echo "bench: results in bench/results.json ($(python3 -c 'import json; print(len(json.load(open("bench/results.json"))))') entries)"
exit $status
