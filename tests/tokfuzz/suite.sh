#!/usr/bin/env bash
# Fuzzes the tokenizer runtime (tests/tokfuzz/fuzz_tok.c: encoder round trips and oracles,
# scanner vs PCRE2, the encoder.json / vocab.bpe / vocab.txt loaders, training) with
# libFuzzer + ASan + UBSan for ~30 s, ~300 s when TL_TEST_LONG=1. Built here (not by the
# Makefile) into $BUILD/tokfuzz with clang-19, rebuilt when a source is newer. New inputs
# go to $BUILD/tokfuzz/corpus; seeds are tests/tokfuzz/corpus/. A crash leaves
# tests/tokfuzz/crash-*: fix it and add the input to the seeds (and a unit test).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
secs=30
[ "${TL_TEST_LONG:-0}" = 1 ] && secs=300
if [ "${TL_FUZZ_SKIP:-0}" = 1 ]; then echo "SKIP: tokfuzz: TL_FUZZ_SKIP=1"; exit 0; fi
if ! command -v clang-19 >/dev/null 2>&1; then
  echo "SKIP: tokfuzz: clang-19 is not installed (make deps)"; exit 0
fi
out=$BUILD/tokfuzz
bin=$out/fuzz_tok
src=(tests/tokfuzz/fuzz_tok.c runtime/tok*.c runtime/fsutil.c)
mkdir -p "$out/corpus"
stale=0
[ -x "$bin" ] || stale=1
for f in "${src[@]}" runtime/tok*.h runtime/fsutil.h; do [ "$f" -nt "$bin" ] && stale=1; done
if [ $stale = 1 ]; then
  if ! clang-19 -std=c11 -g -O1 -D_GNU_SOURCE -Iruntime -Wall -Wextra -Werror \
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
      -o "$bin.tmp" "${src[@]}" -lpcre2-8 -lutf8proc -lcjson -lm >"$out/build.log" 2>&1; then
    sed 's/^/    /' "$out/build.log" | tail -30
    echo "FAIL: tokfuzz (build failed)"; exit 1
  fi
  mv "$bin.tmp" "$bin"
fi
log=$(mktemp); trap 'rm -f "$log"' EXIT
"$bin" -max_total_time=$secs -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
  -print_final_stats=1 -artifact_prefix=tests/tokfuzz/ \
  "$out/corpus" tests/tokfuzz/corpus >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
if [ $rc -eq 0 ]; then
  echo "PASS: tokfuzz (${execs:-?} executions in ${secs} s, no crash)"
else
  grep -E 'tokfuzz:|ERROR|SUMMARY|==[0-9]+==|Test unit written|#[0-9]+' "$log" | tail -30 | sed 's/^/    /'
  echo "FAIL: tokfuzz (exit $rc after ${execs:-?} executions; see tests/tokfuzz/crash-*)"
  exit 1
fi
