#!/usr/bin/env bash
# bench/gpu/run.sh — tl's SGEMM (NVPTX back end) vs cuBLAS's cublasSgemm on this machine's
# GPU: builds build/bench/gpu_gemm against build/libtlc.a (run `make` first) and runs it
# for n = 1024 2048 4096 (or the sizes given). cuBLAS is found under /usr/local/cuda or in
# a Python environment's nvidia/*/lib; without it only tl's figures are printed.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
LLVM_CONFIG=${LLVM_CONFIG:-llvm-config-19}
mkdir -p "$BUILD/bench"
${CC:-gcc} -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -Idsl -Icompiler -Iruntime -Itargets \
    -o "$BUILD/bench/gpu_gemm" bench/gpu/gemm_bench.c "$BUILD/libtlc.a" "$BUILD/libtlrt.a" \
    -lcjson -lpcre2-8 -lutf8proc -lm -lpthread $($LLVM_CONFIG --ldflags --libs core orcjit native passes nvptx linker bitreader)
cublas=$(find /usr/local/cuda/lib64 /usr/local/cuda/targets /opt /usr/lib -name 'libcublas.so*' 2>/dev/null | head -1 || true)
[ -n "$cublas" ] && export LD_LIBRARY_PATH="$(dirname "$cublas")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$BUILD/bench/gpu_gemm" "$@"
