#!/usr/bin/env bash
# tlc tune end to end: tune a small GEMM entry with a short budget into a temporary cache;
# every candidate is checked against the default schedule's output (the JSONL log says
# so); a second run with the warm cache is instant and changes nothing.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1"; }
# `tlc tune` once the lead routes it; until then the same entry point as a small program
if "$BUILD"/tlc tune --help 2>/dev/null | grep -q "Searches each kernel's schedule"; then
  tune=("$BUILD"/tlc tune)
else
  cc=${CC:-gcc}
  if ! $cc -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -Idsl -Icompiler -Iruntime -Itargets \
      -o "$tmp/tunedrv" bench/tune/tunedrv.c "$BUILD"/libtlc.a "$BUILD"/libtlrt.a -lcjson -lpcre2-8 \
      -lutf8proc -lm -lpthread $(llvm-config-19 --ldflags --libs core orcjit native passes nvptx linker bitreader) 2>"$tmp/cc.log"; then
    cat "$tmp/cc.log"; fail "tune driver builds"; exit 0
  fi
  tune=("$tmp/tunedrv")
fi
args=(bench/tune/gemm.tl --entry mm --args "a:f32[96,160] b:f32[160,112]" --cache "$tmp/cache" --stdlib stdlib --threads 1)

t0=$(date +%s.%N)
"${tune[@]}" "${args[@]}" --budget 6 --out "$tmp/out1" >"$tmp/run1.txt" 2>"$tmp/run1.err"
rc=$?
t1=$(date +%s.%N)
if [ $rc -eq 0 ] && grep -q '^tl_k0_contract' "$tmp/run1.txt"; then pass "tune a GEMM (6 s budget)"; else cat "$tmp/run1.txt" "$tmp/run1.err"; fail "tune a GEMM (6 s budget)"; fi
n=$(ls "$tmp/cache"/*.json 2>/dev/null | wc -l)
[ "$n" -ge 1 ] && pass "cache entry written" || fail "cache entry written ($n files)"
ok=$(grep -c "\"status\":\"ok\"" "$tmp/out1/tune.jsonl" 2>/dev/null); ok=${ok:-0}
bad=$(grep -c "\"status\":\"mismatch\"" "$tmp/out1/tune.jsonl" 2>/dev/null); bad=${bad:-0}
if [ "$ok" -ge 3 ] && [ "$bad" -eq 0 ]; then pass "candidates measured and checked ($ok ok)"; else fail "candidates measured and checked ($ok ok, $bad mismatches)"; fi
[ -s "$tmp/out1/tune.svg" ] && grep -q '<svg' "$tmp/out1/tune.svg" && pass "plot written" || fail "plot written"
grep -q '<svg' "$tmp/out1/kernels/tl_k0_contract.svg" 2>/dev/null && pass "per-kernel plot written" || fail "per-kernel plot written"
python3 - "$tmp/out1/tune.jsonl" <<'PY' && pass "log is JSONL" || fail "log is JSONL"
import json, sys
for line in open(sys.argv[1]): json.loads(line)
PY

# second run: every kernel from the cache, no measurement
s0=$(date +%s%N)
"${tune[@]}" "${args[@]}" --budget 6 --out "$tmp/out2" --no-verify >"$tmp/run2.txt" 2>&1
rc=$?
s1=$(date +%s%N)
ms=$(( (s1 - s0) / 1000000 ))
if [ $rc -eq 0 ] && grep -q '(cached)' "$tmp/run2.txt" && [ "$ms" -lt 2000 ] && [ ! -e "$tmp/out2/tune.jsonl" ]; then
  pass "warm cache: instant (${ms} ms)"
else
  cat "$tmp/run2.txt"; fail "warm cache: instant (${ms} ms)"
fi
# the schedule the first run chose is the one the second reports
sched1=$(grep '^tl_k0_contract' "$tmp/run1.txt" | sed 's/.*x  //')
sched2=$(grep '^tl_k0_contract' "$tmp/run2.txt" | sed 's/.*x  //; s/  (cached)//')
[ "$sched1" = "$sched2" ] && pass "same schedule from the cache" || fail "same schedule from the cache ('$sched1' vs '$sched2')"

# a corrupt entry: a warning, then tuned again, no crash
for f in "$tmp/cache"/*.json; do echo '{"version": 1, "key": ' >"$f"; done
"${tune[@]}" "${args[@]}" --budget 2 --out "$tmp/out3" --no-verify >"$tmp/run3.txt" 2>"$tmp/run3.err"
if [ $? -eq 0 ] && grep -q 'corrupt tuning cache entry' "$tmp/run3.err"; then pass "corrupt entry: warned and re-tuned"; else cat "$tmp/run3.err"; fail "corrupt entry: warned and re-tuned"; fi

# --emit=schedule and tlc kernels read the cache the tuner wrote ("cache"), and a source
# schedule block wins over it ("source"); tune does not search a kernel the source schedules
TL_THREADS=1 TL_TUNE_CACHE="$tmp/cache" "$BUILD"/tlc --emit=schedule --stdlib stdlib --entry mm --args "a:f32[96,160] b:f32[160,112]" \
  bench/tune/gemm.tl >"$tmp/sched.txt" 2>&1
if grep -Eq '^tl_k0_contract +cache ' "$tmp/sched.txt"; then pass "--emit=schedule names the schedule's origin"; else cat "$tmp/sched.txt"; fail "--emit=schedule names the schedule's origin"; fi
cat >"$tmp/src.tl" <<'TL'
kernel mm(a: f32[M, K], b: f32[K, N]) -> f32[M, N] {
    out[i, j] = sum(k) a[i, k] * b[k, j]
}
schedule mm {
    tile(i = 16)
    vectorize(k, 8)
}
TL
TL_TUNE_CACHE="$tmp/cache" "$BUILD"/tlc --emit=schedule --entry mm --args "a:f32[96,160] b:f32[160,112]" "$tmp/src.tl" >"$tmp/sched2.txt" 2>&1
if grep -Eq '^tl_k0_contract +source +i:tile=16 k:vec=8' "$tmp/sched2.txt"; then pass "a source schedule wins over the cache"; else cat "$tmp/sched2.txt"; fail "a source schedule wins over the cache"; fi
"${tune[@]}" "$tmp/src.tl" --entry mm --args "a:f32[96,160] b:f32[160,112]" --cache "$tmp/cache" --out "$tmp/out5" --budget 2 >"$tmp/run5.txt" 2>&1
if grep -q 'schedule from the source.*not tuned' "$tmp/run5.txt"; then pass "tune leaves source-scheduled kernels alone"; else cat "$tmp/run5.txt"; fail "tune leaves source-scheduled kernels alone"; fi

# training with a scheduled kernel (compiled) gives the interpreter's losses
st=tests/tune/sched_train.tl
if "$BUILD"/tlc --emit=schedule "$st" 2>&1 | grep -Eq '^tl_k[0-9]+_contract +source +order\(t,p,j\)' &&
   "$BUILD"/tlc run "$st" -- --out "$tmp/st_jit" >"$tmp/st_jit.log" 2>&1 &&
   "$BUILD"/tlc run --interp "$st" -- --out "$tmp/st_int" >"$tmp/st_int.log" 2>&1 &&
   python3 - "$tmp/st_jit/metrics.jsonl" "$tmp/st_int/metrics.jsonl" <<'PY'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
assert len(a) == len(b) == 6, (a, b)
assert all(abs(x - y) <= 1e-4 * abs(y) for x, y in zip(a, b)), (a, b)
PY
then pass "a scheduled kernel trains as the interpreter does"; else cat "$tmp/st_jit.log" "$tmp/st_int.log" 2>/dev/null | tail -5; fail "a scheduled kernel trains as the interpreter does"; fi

# tlc kernels --time: every kernel measured, with GFLOP/s and GB/s (epilogue fusion off: two kernels)
TL_GEMM_EPILOGUE=0 "$BUILD"/tlc kernels --time --stdlib stdlib --entry mlp --args "x:f32[64,96] w:f32[96,80] b:f32[80]" bench/tune/gemm.tl >"$tmp/kt.txt" 2>"$tmp/kt.err"
if [ $? -eq 0 ] && grep -q 'GFLOP/s' "$tmp/kt.txt" && python3 - "$tmp/kt.txt" <<'PY'
import re, sys
rows = [l for l in open(sys.argv[1]) if l.startswith("tl_k")]
assert len(rows) >= 2, rows
for r in rows:
    m = re.search(r"\s([\d.]+)(us|ms|s)\s+([\d.]+)\s+([\d.]+)\s", r)
    assert m and float(m.group(1)) > 0 and float(m.group(3)) > 0 and float(m.group(4)) > 0, r
PY
then pass "kernels --time measures every kernel"; else cat "$tmp/kt.txt" "$tmp/kt.err"; fail "kernels --time measures every kernel"; fi
"$BUILD"/tlc kernels --time --stdlib stdlib --entry mm --args "a:f32[M,8] b:f32[8,8]" bench/tune/gemm.tl >/dev/null 2>"$tmp/kt2.err"
[ $? -eq 2 ] && grep -q -- '--dims M=' "$tmp/kt2.err" && pass "kernels --time asks for dim values" || { cat "$tmp/kt2.err"; fail "kernels --time asks for dim values"; }
"$BUILD"/tlc kernels --time --dims M=24 --stdlib stdlib --entry mm --args "a:f32[M,8] b:f32[8,8]" bench/tune/gemm.tl >"$tmp/kt3.txt" 2>&1
[ $? -eq 0 ] && grep -q '^tl_k0_contract' "$tmp/kt3.txt" && pass "kernels --time --dims" || { cat "$tmp/kt3.txt"; fail "kernels --time --dims"; }

# tlc kernels --kernel NAME.ukr --emit=asm: a bf16 matmul's microkernel is vdpbf16ps on zmm
# (targets/cpu/gemm_bf16.c) where the CPU has AVX-512-BF16
if grep -qw avx512_bf16 /proc/cpuinfo; then
  kb=(--stdlib stdlib --entry mmbf16 --args "a:f32[64,96] b:f32[96,80]" bench/tune/gemm.tl)
  kn=$("$BUILD"/tlc kernels "${kb[@]}" 2>/dev/null | awk '/^tl_k[0-9]+_contract/ {print $1; exit}')
  if [ -n "$kn" ] && "$BUILD"/tlc kernels "${kb[@]}" --kernel "$kn.ukr" --emit=asm >"$tmp/bf.s" 2>&1 && grep -q 'vdpbf16ps.*zmm' "$tmp/bf.s"
  then pass "kernels --emit=asm: bf16 matmul microkernel uses vdpbf16ps"; else head -20 "$tmp/bf.s"; fail "kernels --emit=asm: bf16 matmul microkernel uses vdpbf16ps"; fi
else
  echo "SKIP: kernels --emit=asm bf16 microkernel: this CPU has no AVX-512-BF16"
fi

# --target cuda without a GPU: one line, a non-zero exit
if ! "$BUILD"/tlc tune bench/tune/gemm.tl --entry mm --args "a:f32[8,8] b:f32[8,8]" --stdlib stdlib --target cuda --cache "$tmp/cache" >"$tmp/cu.txt" 2>&1; then
  if [ "$(wc -l <"$tmp/cu.txt")" -eq 1 ] && grep -q 'no usable NVIDIA GPU' "$tmp/cu.txt"; then pass "tune --target cuda without a GPU: one line, exit 1"
  else cat "$tmp/cu.txt"; fail "tune --target cuda without a GPU: one line, exit 1"; fi
else
  echo "SKIP: tune --target cuda without a GPU: a GPU is present"
fi

# bad usage
"${tune[@]}" bench/tune/gemm.tl --budget nope >/dev/null 2>&1
[ $? -eq 2 ] && pass "bad --budget is a usage error" || fail "bad --budget is a usage error"
"${tune[@]}" bench/tune/gemm.tl --entry mm --args "a:f32[M,8] b:f32[8,8]" --stdlib stdlib --cache "$tmp/cache" --budget 1 >/dev/null 2>"$tmp/run4.err"
[ $? -ne 0 ] && grep -q "dims" "$tmp/run4.err" && pass "unbound dim named" || { cat "$tmp/run4.err"; fail "unbound dim named"; }
exit 0
