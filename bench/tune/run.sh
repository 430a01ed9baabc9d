#!/usr/bin/env bash
# bench/tune/run.sh — what `tlc tune` buys: GEMM at three sizes (256, 512, 1024) and a
# small GPT training step, each tuned into a fresh cache, then default vs tuned
# whole-program time measured in the same run (median of 21 runs over 3 compiles of each,
# alternating), the tuned program's outputs compared with the default's (tolerance as for
# candidates), and the tuner run a second time on the warm cache (timed: it measures
# nothing). Prints a table and merges rows into bench/results.json ({"bench", "metric",
# "tl", "anchor_name", "anchor", "ratio"}; anchor = the default schedule, ratio = default
# time / tuned time; plus "outputs": identical / within tolerance / DIFFER, "diff_of_tol"
# and "warm_tune_s").
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
    2>"$tmp/$name.err" | tee "$tmp/$name.out" | grep -E '^(total|program|outputs|tl_k)' | head -9
  # the same tuning again: every kernel from the warm cache
  local w0 w1
  w0=$(date +%s%N)
  "$drv" "$@" --budget "$b" --cache "$tmp/cache-$name" --out "$tmp/warm-$name" --stdlib stdlib --no-verify \
    >"$tmp/$name.warm" 2>&1
  w1=$(date +%s%N)
  local warm=$(( (w1 - w0) / 1000000 ))
  echo "second tune (warm cache): ${warm} ms"
  local line out
  line=$(grep '^program:' "$tmp/$name.out" || true)
  out=$(grep '^outputs:' "$tmp/$name.out" || true)
  [ -n "$line" ] || { echo "no program timing for $name"; cat "$tmp/$name.err" | grep -v '^warning\|^remark' | tail -5; return; }
  python3 - "$name" "$line" "$out" "$warm" >>"$rows" <<'PY'
import json, re, sys
name, line, out, warm = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def sec(v, u): return float(v) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[u]
m = re.search(r"default ([\d.]+) (us|ms|s), tuned ([\d.]+) (us|ms|s)", line)
d, t = sec(m.group(1), m.group(2)), sec(m.group(3), m.group(4))
o = re.search(r"tuned vs default (identical|within tolerance|DIFFER) \(largest difference ([^ ]+) of", out)
print(json.dumps({"bench": "tune_" + name, "metric": "step_ms", "tl": round(t * 1e3, 4),
                  "anchor_name": "default_schedule", "anchor": round(d * 1e3, 4), "ratio": round(d / t, 4),
                  "outputs": o.group(1) if o else "unknown", "diff_of_tol": float(o.group(2)) if o else None,
                  "warm_tune_s": round(warm / 1000, 3)}))
PY
}
mkdir -p bench/results
run_case gemm256 "$budget" bench/tune/gemm.tl --entry mm --args "a:f32[256,256] b:f32[256,256]"
run_case gemm512 "$budget" bench/tune/gemm.tl --entry mm --args "a:f32[512,512] b:f32[512,512]"
run_case gemm1024 "$budget" bench/tune/gemm.tl --entry mm --args "a:f32[1024,1024] b:f32[1024,1024]"
run_case gpt_small_step "${TUNE_GPT_BUDGET:-60}" bench/tune/gpt_small.tl
echo
printf '%-22s %12s %12s %8s  %-17s %s\n' bench default_ms tuned_ms ratio outputs warm_tune_s
python3 - "$rows" bench/results.json <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    print("%-22s %12.4f %12.4f %8.3f  %-17s %.3f" % (r["bench"], r["anchor"], r["tl"], r["ratio"], r["outputs"], r["warm_tune_s"]))
try: old = json.load(open(sys.argv[2]))
except Exception: old = []
keys = {(r["bench"], r["metric"], r["anchor_name"]) for r in rows}
# this script owns every tune_* row: rows of cases it no longer runs go too
merged = [r for r in old if (r.get("bench"), r.get("metric"), r.get("anchor_name")) not in keys
          and not str(r.get("bench", "")).startswith("tune_")] + rows
with open(sys.argv[2] + ".tmp", "w") as f: json.dump(merged, f, indent=1); f.write("\n")
import os; os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
