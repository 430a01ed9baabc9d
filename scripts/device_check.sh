#!/usr/bin/env bash
# scripts/device_check.sh [DIR] — tl's checks on a machine with an NVIDIA GPU, from what
# scripts/device_pack.sh and scripts/gpu_bundle.sh gathered into DIR (default .dev; the
# bundle in DIR/bundle): nothing is compiled there.
# Writes logs under $OUT (default /tmp/tl-device) and prints a summary. Sections:
#   1. test_gpu_diff: every GPU differential case against the interpreter
#   2. bench/gpu: tl SGEMM and bf16 tensor-core GEMM vs cublasSgemm / cublasGemmEx
#   3. the GPT built with --target=cuda vs the same GPT built for the CPU (losses, resume,
#      tokens/s), and PyTorch's GPT on the same GPU (eager and torch.compile)
#   4. tlc tune --target cuda on the small GPT step (twice: the second from the warm cache)
#   5. the per-kernel GPU profile of the default GPT step (TL_GPU_PROFILE=1)
# SECTIONS="1 2 3 4" picks some.
set -u
D=${1:-.dev}
OUT=${OUT:-/tmp/tl-device}
mkdir -p "$OUT"
SECTIONS=${SECTIONS:-1 2 3 4 5}
lib=/tmp/tl-libs
if [ ! -d "$lib/libpack" ]; then
  mkdir -p "$lib" && tar -C "$lib" -xJf "$D/libpack.tar.xz"
fi
export LD_LIBRARY_PATH="$lib/libpack${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# cuBLAS for the anchors: the toolkit's, else PyTorch's wheel.
cublas=$(find /usr/local/cuda/lib64 /usr/local/cuda*/targets -name 'libcublas.so*' 2>/dev/null | head -1)
[ -z "$cublas" ] && cublas=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib", "libcublas.so.13"))' 2>/dev/null)
[ -n "$cublas" ] && [ -e "$cublas" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$cublas")"
echo "== $(date -u +%FT%TZ) GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1); cuBLAS: ${cublas:-none}"

sec() { echo; echo "== [$1] $2 ($(date -u +%T))"; }
want() { case " $SECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }

if want 1 && [ -x "$D/test_gpu_diff" ]; then
  sec 1 "test_gpu_diff"
  timeout ${DIFF_TIMEOUT:-200} "$D/test_gpu_diff" > "$OUT/gpu_diff.log" 2>&1
  echo "rc=$? passed=$(grep -c '^PASS: ' "$OUT/gpu_diff.log") failed=$(grep -c '^FAIL: ' "$OUT/gpu_diff.log") skipped=$(grep -c '^SKIP: ' "$OUT/gpu_diff.log")"
  grep -E '^(FAIL|SKIP): ' "$OUT/gpu_diff.log" | head -20
  tail -3 "$OUT/gpu_diff.log"
fi

if want 2 && [ -x "$D/gpu_gemm" ]; then
  sec 2 "GEMM vs cuBLAS"
  timeout ${GEMM_TIMEOUT:-120} "$D/gpu_gemm" --json "$OUT/gpu-gemm.jsonl" ${GEMM_ARGS:-} > "$OUT/gpu_gemm.log" 2>&1
  echo "rc=$?"
  cat "$OUT/gpu_gemm.log" | tail -40
fi

if want 3 && [ -f "$D/bundle/device_train.sh" ]; then
  sec 3 "GPT on the GPU (scripts/gpu_bundle.sh's executables)"
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$D/bundle/lib"
  timeout 300 bash "$D/bundle/device_train.sh" "$D/bundle/data.txt" "$D/bundle" > "$OUT/gpt_train.log" 2>&1
  echo "rc=$?"
  tail -60 "$OUT/gpt_train.log"
  if [ "${TORCH:-1}" != 0 ] && command -v python3 > /dev/null && python3 -c 'import torch; assert torch.cuda.is_available()' 2> /dev/null; then
    for m in eager compile; do
      timeout 240 python3 bench/gpt/torch_gpt.py --device cuda --mode $m --json --warmup 5 --steps 20 --windows 5 \
        > "$OUT/torch_gpt_$m.json" 2> "$OUT/torch_gpt_$m.err"
      echo "torch $m on the GPU: rc=$? $(cat "$OUT/torch_gpt_$m.json")"
    done
  fi
fi

if want 4 && [ -x "$D/tlc" ]; then
  sec 4 "tlc tune --target cuda"
  export TL_TUNE_CACHE="$OUT/tune-cache"
  for i in 1 2; do
    t0=$(date +%s.%N)
    timeout 150 "$D/tlc" tune --stdlib "$D/stdlib" --target cuda --budget 40 --out "$OUT/tune-out$i" \
      ${TUNE_ARGS:-bench/tune/gpt_small.tl} > "$OUT/tune$i.log" 2>&1
    echo "tune run $i: rc=$? $(awk "BEGIN{print $(date +%s.%N) - $t0}") s"
    tail -15 "$OUT/tune$i.log"
  done
fi
if want 5 && [ -x "$D/bundle/gpt_cuda" ]; then
  sec 5 "GPU kernel profile of the default GPT step (TL_GPU_PROFILE=1)"
  TL_GPU_PROFILE=1 timeout 120 "$D/bundle/gpt_cuda" --data "$D/bundle/data.txt" --steps 20 --eval-every 1000 \
    --checkpoint-every 1000 --out "$OUT/prof" > "$OUT/profile.out" 2> "$OUT/profile.txt"
  echo "rc=$?"
  grep -A22 "GPU profile" "$OUT/profile.txt" | head -50
fi
echo
echo "== done $(date -u +%T)"
