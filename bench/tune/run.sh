#!/usr/bin/env bash
# bench/tune/run.sh — what `tlc tune` buys: GEMM at three sizes and a small GPT training
# step, each tuned into a fresh cache, then default vs tuned whole-program time measured
# in the same run (median of 21 runs over 3 compiles of each, alternating). Prints a table
# and merges rows into bench/results.json ({"bench","metric","tl","anchor_name","anchor",
# "ratio"}; anchor = the default schedule, ratio = default time / tuned time).
# TUNE_BUDGET (seconds per case, default 20), TUNE_GPT_BUDGET (default 60).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
make --no-print-directory BUILD="$BUILD" all >/dev/null
drv="$BUILD/bench/tunedrv"
mkdir -p "$BUILD/bench"
${CC:-gcc} -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -Idsl -Icompiler -Iruntime -Itargets -o "$drv" \
  bench/tune/tunedrv.c "$BUILD"/libtlc.a "$BUILD"/libtlrt.a -lcjson -lpcre2-8 -lutf8proc -lm -lpthread \
  $(llvm-config-19 --ldflags --libs core orcjit native passes nvptx linker bitreader)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
budget=${TUNE_BUDGET:-20}
rows="$tmp/rows.jsonl"
: >"$rows"
run_case() {  # bench-name, budget, tune args...
  local name=$1 b=$2; shift 2
  echo "== $name (budget ${b}s)"
  "$drv" "$@" --budget "$b" --cache "$tmp/cache-$name" --out "bench/results/tune-$name" --stdlib stdlib \
    2>"$tmp/$name.err" | tee "$tmp/$name.out" | grep -E '^(total|program|tl_k)' | head -8
  local line
  line=$(grep '^program:' "$tmp/$name.out" || true)
  [ -n "$line" ] || { echo "no program timing for $name"; cat "$tmp/$name.err" | grep -v '^warning\|^remark' | tail -5; return; }
  python3 - "$name" "$line" >>"$rows" <<'PY'
import json, re, sys
name, line = sys.argv[1], sys.argv[2]
def sec(v, u): return float(v) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[u]
m = re.search(r"default ([\d.]+) (us|ms|s), tuned ([\d.]+) (us|ms|s)", line)
d, t = sec(m.group(1), m.group(2)), sec(m.group(3), m.group(4))
print(json.dumps({"bench": "tune_" + name, "metric": "step_ms", "tl": round(t * 1e3, 4),
                  "anchor_name": "default_schedule", "anchor": round(d * 1e3, 4), "ratio": round(d / t, 4)}))
PY
}
mkdir -p bench/results
run_case gemm128 "$budget" bench/tune/gemm.tl --entry mm --args "a:f32[128,128] b:f32[128,128]"
run_case gemm512 "$budget" bench/tune/gemm.tl --entry mm --args "a:f32[512,512] b:f32[512,512]"
run_case gemm1024x256 "$budget" bench/tune/gemm.tl --entry mm --args "a:f32[1024,256] b:f32[256,1024]"
run_case gpt_small_step "${TUNE_GPT_BUDGET:-60}" bench/tune/gpt_small.tl
echo
printf '%-22s %12s %12s %8s\n' bench default_ms tuned_ms ratio
python3 - "$rows" bench/results.json <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows: print("%-22s %12.4f %12.4f %8.3f" % (r["bench"], r["anchor"], r["tl"], r["ratio"]))
try: old = json.load(open(sys.argv[2]))
except Exception: old = []
keys = {(r["bench"], r["metric"], r["anchor_name"]) for r in rows}
merged = [r for r in old if (r.get("bench"), r.get("metric"), r.get("anchor_name")) not in keys] + rows
with open(sys.argv[2] + ".tmp", "w") as f: json.dump(merged, f, indent=1); f.write("\n")
import os; os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
