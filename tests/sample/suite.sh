#!/usr/bin/env bash
# `tlc run FILE --sample` end to end (the decoding itself is tested in depth by
# build/tests/test_sample): a tiny GPT is trained for a few steps through the interpreter
# into a temporary --out directory, then sampled through the JIT: cached and uncached
# greedy decoding give the same text, a seed reproduces a sample, beam search with one beam
# is greedy, and bad inputs get one-line errors. TL_TEST_LONG=1 also builds the program
# with `tlc build` and runs its `sample` subcommand.
set -u
cd "$(dirname "$0")/../.."
TLC=${TLC:-${BUILD:-build}/tlc}
export TL_STDLIB=${TL_STDLIB:-$PWD/stdlib}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
prog=examples/gpt/gpt.tl
size="--dim 16 --layers 1 --heads 2 --seq 16"

if ! "$TLC" run --interp $prog -- $size --batch 2 --steps 3 --data docs --eval-batches 1 --out "$tmp/out" >"$tmp/train.log" 2>&1; then
  echo "FAIL: sample/train_a_checkpoint"; tail -5 "$tmp/train.log"; exit 0
fi
echo "PASS: sample/train_a_checkpoint"

sample() { "$TLC" run $prog --sample -- $size --ckpt "$tmp/out" --prompt "The " --tokens 10 "$@"; }

# 1. greedy, with and without the KV cache
if sample --temperature 0 >"$tmp/c.txt" 2>"$tmp/c.err" && sample --temperature 0 --no-cache >"$tmp/u.txt" 2>"$tmp/u.err" \
   && [ "$(wc -c <"$tmp/c.txt")" -eq 15 ] && cmp -s "$tmp/c.txt" "$tmp/u.txt"; then
  echo "PASS: sample/greedy_cached_equals_uncached"
else
  echo "FAIL: sample/greedy_cached_equals_uncached"; od -c "$tmp/c.txt" | head -3; od -c "$tmp/u.txt" | head -3; cat "$tmp/c.err" "$tmp/u.err"
fi

# 2. sampling with a seed is reproducible; beam search with one beam is greedy
if sample --temperature 1 --top-k 40 --seed 5 >"$tmp/s1.txt" 2>/dev/null && sample --temperature 1 --top-k 40 --seed 5 >"$tmp/s2.txt" 2>/dev/null \
   && cmp -s "$tmp/s1.txt" "$tmp/s2.txt"; then echo "PASS: sample/seed_reproducible"; else echo "FAIL: sample/seed_reproducible"; fi
if sample --beam 1 >"$tmp/b1.txt" 2>/dev/null && cmp -s "$tmp/b1.txt" "$tmp/c.txt"; then echo "PASS: sample/beam1_is_greedy"
else echo "FAIL: sample/beam1_is_greedy"; fi

# 3. the --ckpt directory itself works as well as the --out directory
if "$TLC" run $prog --sample -- $size --ckpt "$tmp/out/ckpt" --prompt "The " --tokens 10 --temperature 0 >"$tmp/d.txt" 2>/dev/null \
   && cmp -s "$tmp/d.txt" "$tmp/c.txt"; then echo "PASS: sample/ckpt_dir"; else echo "FAIL: sample/ckpt_dir"; fi

# 4. bad inputs: one line naming the problem, exit status 1 or 2
expect_error() {  # name, pattern, args...
  local name=$1 pat=$2; shift 2
  "$TLC" run $prog --sample -- "$@" >"$tmp/e.out" 2>"$tmp/e.err"
  local rc=$?
  if [ $rc -ne 0 ] && [ $rc -le 2 ] && grep -q -- "$pat" "$tmp/e.err" && [ "$(wc -l <"$tmp/e.err")" -eq 1 ]; then
    echo "PASS: sample/error_$name"
  else
    echo "FAIL: sample/error_$name (status $rc)"; cat "$tmp/e.err"
  fi
}
expect_error missing_ckpt "does not exist" $size --ckpt "$tmp/nope"
expect_error empty_ckpt "no checkpoint in" $size --ckpt "$tmp"
expect_error no_ckpt_flag "ckpt DIR is required" $size
expect_error shape_mismatch "another model" --dim 32 --layers 1 --heads 2 --seq 16 --ckpt "$tmp/out"
expect_error prompt_too_long "longer than the context" $size --ckpt "$tmp/out" --prompt "a prompt longer than sixteen bytes"
expect_error bad_flag "unknown" $size --ckpt "$tmp/out" --tempreature 1

# 5. (long) the built executable's sample subcommand matches the JIT
if [ "${TL_TEST_LONG:-0}" = 1 ]; then
  if "$TLC" build $prog -o "$tmp/gpt" -- $size --batch 2 --data docs >"$tmp/build.log" 2>&1 \
     && "$tmp/gpt" sample --ckpt "$tmp/out" --prompt "The " --tokens 10 --temperature 0 >"$tmp/x.txt" 2>/dev/null \
     && cmp -s "$tmp/x.txt" "$tmp/c.txt"; then
    echo "PASS: sample/built_executable"
  else
    echo "FAIL: sample/built_executable"; tail -5 "$tmp/build.log"
  fi
else
  echo "SKIP: sample/built_executable: TL_TEST_LONG=1 (tlc build takes a minute)"
fi
