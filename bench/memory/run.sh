#!/usr/bin/env bash
# bench/memory/run.sh — the memory of the GPT training step (examples/gpt/gpt.tl), per
# config: the lower bound and the plan from the compiler (build/bench/memplan: params,
# AdamW moments, the step's memory plan), and the measured peak RSS (ru_maxrss) of
#   - tlc run (JIT; its RSS includes LLVM and the compiler),
#   - the executable from tlc build (no LLVM: the number to hold against the bound), and
#     the same executable run for 0 steps (program, libc, the tokenized data set, params
#     and moments: everything but the steps' own memory),
# each with the planner on and with TL_MEMPLAN=0 (every buffer its own block).
# Writes bench/results/memory-<date>.json and prints a table (docs/memory.md).
#   bench/memory/run.sh [small|default|all]     (default: all)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
which=${1:-all}
make -s "$BUILD/tlc" "$BUILD/libtlc.a" "$BUILD/libtlrt.a" >/dev/null || exit 1
mkdir -p "$BUILD/bench" bench/results
CC=${CC:-gcc}
$CC -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -Idsl -Icompiler -Iruntime -Itargets -I"$BUILD/gen" \
    -o "$BUILD/bench/memplan" bench/memory/plan.c "$BUILD/libtlc.a" "$BUILD/libtlrt.a" \
    -lcjson -lpcre2-8 -lutf8proc -lm -lpthread $(llvm-config-19 --ldflags --libs core orcjit native passes nvptx linker bitreader) || exit 1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# peak RSS in KiB of a command (its own process tree's largest, from wait4)
maxrss() { python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
if r.returncode: sys.stderr.write(r.stderr.decode()[-2000:]); sys.exit(1)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"; }

declare -A FLAGS=([small]="--dim 64 --layers 2 --heads 4 --batch 8 --seq 64" [default]="")
configs=(small default); [ "$which" != all ] && configs=("$which")
out=bench/results/memory-$(date +%Y%m%d-%H%M%S).json
echo "[" >"$out"; first=1
for c in "${configs[@]}"; do
  f=${FLAGS[$c]}
  run="--steps 3 --eval-every 1000000 --checkpoint-every 1000000"
  plan=$("$BUILD/bench/memplan" examples/gpt/gpt.tl $f) || exit 1
  TL_MEMPLAN=0 "$BUILD/tlc" build examples/gpt/gpt.tl -o "$tmp/gpt0" -- $f >/dev/null || exit 1
  "$BUILD/tlc" build examples/gpt/gpt.tl -o "$tmp/gpt" -- $f >/dev/null || exit 1
  exe=$(maxrss "$tmp/gpt" $run --out "$tmp/o1") || exit 1
  exe0=$(maxrss "$tmp/gpt0" $run --out "$tmp/o2") || exit 1
  base=$(maxrss "$tmp/gpt" --steps 0 --eval-every 1000000 --out "$tmp/o5") || exit 1
  jit=$(maxrss "$BUILD/tlc" run examples/gpt/gpt.tl -- $f $run --out "$tmp/o3") || exit 1
  jit0=$(maxrss env TL_MEMPLAN=0 "$BUILD/tlc" run examples/gpt/gpt.tl -- $f $run --out "$tmp/o4") || exit 1
  [ $first = 1 ] || echo "," >>"$out"; first=0
  echo "{\"config\": \"$c\", \"flags\": \"$f\", \"plan\": $plan, \"rss_kib\": {\"exe\": $exe, \"exe_no_plan\": $exe0, \"exe_0_steps\": $base, \"jit\": $jit, \"jit_no_plan\": $jit0}}" >>"$out"
done
echo "]" >>"$out"
python3 bench/memory/report.py "$out"
echo "wrote $out"
