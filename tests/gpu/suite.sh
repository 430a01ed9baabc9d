#!/usr/bin/env bash
# tlc build --target=cuda, checked without a GPU: a small GPT (examples/gpt/gpt.tl, the
# flagship's structure at D=64 L=2) builds into an executable that links neither LLVM nor
# CUDA, answers --help, and without a driver or GPU says so in exactly one line, exits 1
# and leaves no file behind (tlc run --target=cuda likewise). Every kernel of its step,
# eval, decode and full-window graphs (the PTX the build embeds) assembles with
# `ptxas -arch=sm_80` and `-arch=sm_90`, for PTX generated for sm_80 and for sm_90.
# The run on a real GPU is tests/gpu/device_train.sh.
set -u
cd "$(dirname "$0")/../.."
TLC=${TLC:-${BUILD:-build}/tlc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
prog=examples/gpt/gpt.tl
small=(--dim 64 --layers 2 --heads 4 --seq 64 --batch 4)
have_gpu=0
if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then have_gpu=1; fi

# builds for sm_80 (the default: loads on every newer GPU) and sm_90, keeping the PTX
for arch in sm_80 sm_90; do
  if TL_KEEP_BUILD=1 "$TLC" build --target=cuda --gpu-arch=$arch $prog -o "$tmp/gpt_$arch" -- "${small[@]}" \
       >"$tmp/build_$arch.log" 2>&1 && [ -x "$tmp/gpt_$arch" ] && grep -q "on the GPU (PTX for $arch)" "$tmp/build_$arch.log"; then
    echo "PASS: gpu/build_cuda_$arch"
  else
    echo "FAIL: gpu/build_cuda_$arch"; cat "$tmp/build_$arch.log"
  fi
  kept=$(sed -n 's/^tlc: build: kept //p' "$tmp/build_$arch.log")
  [ -n "$kept" ] && [ -d "$kept" ] && mv "$kept" "$tmp/kept_$arch"
done
exe="$tmp/gpt_sm_80"

if [ -x "$exe" ]; then
  libs=$(ldd "$exe")
  if echo "$libs" | grep -qi 'llvm\|cuda\|nvidia'; then echo "FAIL: gpu/no_llvm_no_cuda_linked"; echo "$libs"
  else echo "PASS: gpu/no_llvm_no_cuda_linked ($(echo "$libs" | wc -l) shared libraries)"; fi
  # the PTX is in the executable, not next to it
  if grep -q "tl_k0_" "$exe" && grep -q ".target sm_80" "$exe"; then echo "PASS: gpu/ptx_embedded"
  else echo "FAIL: gpu/ptx_embedded"; fi
  if "$exe" --help >"$tmp/help.log" 2>&1 && grep -q -- "--steps" "$tmp/help.log" && grep -q -- "--resume" "$tmp/help.log"; then
    echo "PASS: gpu/help"
  else echo "FAIL: gpu/help"; cat "$tmp/help.log"; fi
  if "$exe" --dim 32 >"$tmp/fixed.log" 2>&1; then echo "FAIL: gpu/fixed_flags"
  elif grep -q -- "--dim is fixed when the program was built" "$tmp/fixed.log"; then echo "PASS: gpu/fixed_flags"
  else echo "FAIL: gpu/fixed_flags"; cat "$tmp/fixed.log"; fi
fi

# no driver or no GPU: one line, status 1, nothing written
printf 'hello tl\n%.0s' $(seq 200) >"$tmp/data.txt"
if [ $have_gpu = 1 ]; then
  echo "SKIP: gpu/no_gpu_one_line: libcuda.so.1 is installed here"
  echo "SKIP: gpu/tlc_run_no_gpu_one_line: libcuda.so.1 is installed here"
elif [ -x "$exe" ]; then
  (cd "$tmp" && "$exe" --data "$tmp/data.txt" --steps 2 --out "$tmp/run" >"$tmp/nogpu.log" 2>&1); rc=$?
  lines=$(wc -l <"$tmp/nogpu.log")
  if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -qi 'GPU' "$tmp/nogpu.log" && grep -qi 'driver\|no GPU' "$tmp/nogpu.log" &&
     [ ! -e "$tmp/run" ] && [ ! -e "$tmp/out" ]; then
    echo "PASS: gpu/no_gpu_one_line ($(cat "$tmp/nogpu.log"))"
  else
    echo "FAIL: gpu/no_gpu_one_line (status $rc, $lines lines)"; cat "$tmp/nogpu.log"; ls "$tmp"
  fi
  "$TLC" run --target=cuda $prog -- "${small[@]}" --data "$tmp/data.txt" --steps 2 --out "$tmp/run2" >"$tmp/run.log" 2>&1; rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/run.log")" -eq 1 ] && grep -q 'cuda' "$tmp/run.log" && [ ! -e "$tmp/run2" ]; then
    echo "PASS: gpu/tlc_run_no_gpu_one_line"
  else
    echo "FAIL: gpu/tlc_run_no_gpu_one_line (status $rc)"; cat "$tmp/run.log"
  fi
fi

# every kernel of every embedded graph assembles
ptxas=${CUDA_HOME:-${CUDA_PATH:-/usr/local/cuda}}/bin/ptxas
if [ ! -x "$ptxas" ]; then
  echo "SKIP: gpu/ptxas: no ptxas at $ptxas"
else
  jobs=()
  for gen in sm_80 sm_90; do
    for g in step eval decode full; do
      f="$tmp/kept_$gen/$g.ptx"
      if [ ! -s "$f" ]; then echo "FAIL: gpu/ptxas_${gen}_$g: no $g.ptx from the build"; continue; fi
      for arch in sm_80 sm_90; do
        [ $gen = sm_90 ] && [ $arch = sm_80 ] && continue   # sm_90 PTX is for sm_90 and newer
        jobs+=("$gen $g $arch")
      done
    done
  done
  run_ptxas() {  # gen graph arch
    local f="$tmp/kept_$1/$2.ptx" n
    n=$(grep -c '^\.visible \.entry' "$f")
    if "$ptxas" -arch=$3 -o /dev/null "$f" >"$tmp/ptxas_$1_$2_$3.log" 2>&1 && [ "$n" -gt 0 ]; then
      echo "PASS: gpu/ptxas ($1 PTX of the $2 graph, $n kernels, -arch=$3)"
    else
      echo "FAIL: gpu/ptxas ($1 PTX of the $2 graph, -arch=$3)"; head -5 "$tmp/ptxas_$1_$2_$3.log"
    fi
  }
  # two at a time (the machine is shared)
  for ((i = 0; i < ${#jobs[@]}; i += 2)); do
    run_ptxas ${jobs[i]} >"$tmp/j1" & p1=$!
    if [ $((i + 1)) -lt ${#jobs[@]} ]; then run_ptxas ${jobs[i+1]} >"$tmp/j2"; else : >"$tmp/j2"; fi
    wait $p1
    cat "$tmp/j1" "$tmp/j2"
  done
fi
