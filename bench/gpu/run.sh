#!/usr/bin/env bash
# bench/gpu/run.sh — tl's GPU matmuls vs cuBLAS on this machine's GPU, same run, same device:
# f32 SGEMM vs cublasSgemm_v2 and the bf16 tensor-core GEMM vs cublasGemmEx, at n = 1024
# 2048 4096 8192 and two GPT shapes (or the sizes given: n or MxNxK). Builds
# build/bench/gpu_gemm against build/libtlc.a (run `make` first) unless NO_BUILD=1 or there
# is no llvm-config (a GPU machine the binary was carried to: it needs libLLVM.so.19.1 and
# its dependencies on LD_LIBRARY_PATH). cuBLAS is found under /usr/local/cuda, /opt,
# /usr/lib or a Python environment's nvidia/cublas/lib; without it only tl's figures are
# printed; without a GPU, one SKIP line. The table's rows also go to
# bench/results/gpu-gemm.jsonl (bench/results.json's form) and are merged into
# bench/results.json (python3).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
LLVM_CONFIG=${LLVM_CONFIG:-llvm-config-19}
if [ "${NO_BUILD:-0}" != 1 ] && command -v "$LLVM_CONFIG" >/dev/null; then
    mkdir -p "$BUILD/bench"
    ${CC:-gcc} -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -Idsl -Icompiler -Iruntime -Itargets \
        -o "$BUILD/bench/gpu_gemm" bench/gpu/gemm_bench.c "$BUILD/libtlc.a" "$BUILD/libtlrt.a" \
        -lcjson -lpcre2-8 -lutf8proc -lm -lpthread $($LLVM_CONFIG --ldflags --libs core orcjit native passes nvptx linker bitreader)
fi
cublas=$(find /usr/local/cuda/lib64 /usr/local/cuda/targets /opt /usr/lib -name 'libcublas.so*' 2>/dev/null | head -1 || true)
if [ -z "$cublas" ] && command -v python3 >/dev/null; then
    cublas=$(python3 -c 'import glob, os, site, sys
for d in site.getsitepackages() + [site.getusersitepackages()] + sys.path:
    for f in glob.glob(os.path.join(d, "nvidia", "cublas", "lib", "libcublas.so*")):
        print(f); sys.exit(0)' 2>/dev/null || true)
fi
[ -n "$cublas" ] && export LD_LIBRARY_PATH="$(dirname "$cublas")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p bench/results
out=bench/results/gpu-gemm.jsonl
rm -f "$out"
status=0
"$BUILD/bench/gpu_gemm" --json "$out" "$@" || status=$?
if [ -s "$out" ] && command -v python3 >/dev/null; then
    python3 - "$out" <<'PY'
import json, os, sys
new = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
path = "bench/results.json"
rows = json.load(open(path)) if os.path.exists(path) else []
keys = {(n["bench"], n["metric"], n["anchor_name"]) for n in new}
rows = [r for r in rows if (r["bench"], r["metric"], r["anchor_name"]) not in keys] + new
json.dump(rows, open(path + ".tmp", "w"), indent=1)
os.replace(path + ".tmp", path)
print(f"bench: {len(new)} GPU GEMM entries merged into {path}")
PY
fi
exit $status
