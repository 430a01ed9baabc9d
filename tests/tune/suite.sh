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

# bad usage
"${tune[@]}" bench/tune/gemm.tl --budget nope >/dev/null 2>&1
[ $? -eq 2 ] && pass "bad --budget is a usage error" || fail "bad --budget is a usage error"
"${tune[@]}" bench/tune/gemm.tl --entry mm --args "a:f32[M,8] b:f32[8,8]" --stdlib stdlib --cache "$tmp/cache" --budget 1 >/dev/null 2>"$tmp/run4.err"
[ $? -ne 0 ] && grep -q "dims" "$tmp/run4.err" && pass "unbound dim named" || { cat "$tmp/run4.err"; fail "unbound dim named"; }
exit 0
