#!/usr/bin/env bash
# Tokenizer benchmark: GPT-2 encode MB/s on 1 and 2 threads (tl vs tiktoken vs Hugging Face
# tokenizers, same text, ids checked identical) and BPE training time at vocab 4096 and
# 16384 (tl vs HF BpeTrainer). Median of RUNS (default 5). Prints a table and merges the
# figures into bench/results.json (RESULTS=...). Needs bench/.venv (tiktoken, tokenizers)
# and ../shared/data/gpt2.   bash bench/tokenizer/run.sh [--runs N] [--mb MB]
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=${PY:-bench/.venv/bin/python}
[ -x "$PY" ] || { echo "SKIP: bench/tokenizer: $PY is missing (see docs/tokenizers.md)"; exit 0; }
mkdir -p "$BUILD/bench"
gcc -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -Iruntime -o "$BUILD/bench/tok_bench" \
  bench/tok_bench.c runtime/tok*.c runtime/fsutil.c -lpcre2-8 -lutf8proc -lcjson -lm -lpthread
RESULTS=${RESULTS:-bench/results.json} exec "$PY" bench/tokenizer/bench.py --exe "$BUILD/bench/tok_bench" "$@"
