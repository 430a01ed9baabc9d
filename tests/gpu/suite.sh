#!/usr/bin/env bash
# tlc build --target=cuda, checked without a GPU: a small GPT (examples/gpt/gpt.tl, the
# flagship's structure at D=64 L=2) builds into an executable that links neither LLVM nor
# CUDA, answers --help, and without a driver or GPU says so in exactly one line, exits 1
# and leaves no file behind (tlc run --target=cuda likewise). Every kernel of its step,
# eval, decode and full-window graphs (the PTX the build embeds) assembles with
# `ptxas -arch=sm_80` and `-arch=sm_90`, for PTX generated for sm_80 and for sm_90.
# A stand-in driver (tests/gpu/fakecuda.c) runs the host side of resident training and
# checks what crosses the bus. The run on a real GPU is tests/gpu/device_train.sh.
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
printf 'hello tl\n%.0s' $(seq 3000) >"$tmp/data.txt"
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

# the host side on a stand-in driver (tests/gpu/fakecuda.c: device memory is host memory,
# kernels launch as no-ops, every transfer logged): the resident training loop uploads the
# params and optimizer state once, then per step only the batch and three scalars go up and
# the loss and lr (4 bytes each) come down; the updates are fed back by swapping device
# allocations (no device copies); params and state come down only for the checkpoints;
# every kernel launches once per step / eval batch; the checkpoint holds what the device
# holds; a checkpoint resumes.
mkdir -p "$tmp/fake"
if ! cc -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -shared -fPIC -o "$tmp/fake/libcuda.so.1" tests/gpu/fakecuda.c 2>"$tmp/fake.log"; then
  echo "FAIL: gpu/fake_driver_builds"; cat "$tmp/fake.log"
elif [ -x "$exe" ]; then
  nk=$(sed -n 's/.*step \([0-9]*\) kernels, eval \([0-9]*\) kernels.*/\1 \2/p' "$tmp/build_sm_80.log")
  fake() { LD_LIBRARY_PATH="$tmp/fake${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" TL_FAKECUDA_LOG="$1" "${@:2}"; }
  (cd "$tmp" && fake "$tmp/fake/run.log" "$exe" --data "$tmp/data.txt" --steps 6 --eval-every 3 --checkpoint-every 3 \
     --eval-batches 2 --out "$tmp/fk" >"$tmp/fk.log" 2>&1); rc=$?
  batch=$((4 * 64 * 4))   # --batch 4 --seq 64 int32 ids
  verdict=$(awk -v batch=$batch -v nk="$nk" '
    BEGIN { split(nk, k, " "); seg = 0 }
    $1 == "SYNC" { seg++; next }
    $1 == "H2D" { if (seg == 0) { n0++; b0 += $2 } else if ($2 != batch && $2 != 4) bad_up++ }
    $1 == "D2H" { if ($2 != 4) { ndown++; bdown += $2 } }
    $1 == "D2D" { copies++ }
    $1 == "LAUNCH" { launches++ }
    END {
      K = n0 - 5; P = b0 - 2 * batch - 12   # first upload: every param and state, the batch, 3 scalars
      want_launch = 6 * k[1] + 4 * k[2]    # 6 steps, 2 evaluations of 2 batches
      printf "%d params+states (%d bytes) up once; later uploads not batch/scalar: %d; downloads beyond 4 bytes: %d (%d bytes, 2 checkpoints want %d, %d bytes); device copies %d; launches %d of %d",
             K, P, bad_up, ndown, bdown, 2 * K, 2 * P, copies, launches, want_launch
      exit !(K > 0 && bad_up == 0 && ndown == 2 * K && bdown == 2 * P && copies == 0 && launches == want_launch && seg == 10) }' "$tmp/fake/run.log")
  ok=$?
  if [ $rc -eq 0 ] && [ $ok -eq 0 ] && grep -q "^GPU: fake GPU" "$tmp/fk.log" && [ -s "$tmp/fk/ckpt/ckpt-6.safetensors" ]; then
    echo "PASS: gpu/resident_traffic ($verdict)"
  else
    echo "FAIL: gpu/resident_traffic (status $rc: $verdict)"; tail -3 "$tmp/fk.log"
  fi
  # TL_GPU_PROFILE=1: every launch timed with events (the stand-in's clock: 1 us per block
  # + 2 us), the step's and the eval's top kernels printed at exit; without it no event is
  # ever recorded (the run above) and nothing is printed
  (cd "$tmp" && TL_GPU_PROFILE=1 fake "$tmp/fake/prof.log" "$exe" --data "$tmp/data.txt" --steps 3 --eval-every 3 \
     --checkpoint-every 3 --eval-batches 1 --out "$tmp/fkp" >"$tmp/prof.out" 2>"$tmp/prof.err"); rc=$?
  prof=$(awk -v nk="$nk" '
    BEGIN { split(nk, k, " ") }
    /^GPU profile \(step\)/ { sec = "step"; heads++; nkern = $7; next }
    /^GPU profile / { sec = "other"; heads++; next }
    /^rank/ { next }
    sec == "step" && NF == 7 && $1 ~ /^[0-9]+$/ {
      rows++; pct += $7; if ($4 != 3) badn++; if (rows > 1 && $5 > last + 1e-9) unsorted++; last = $5 }
    END { printf "%d profiles, step: %d rows of %d kernels, %.2f%% in them, %d not launched 3 times, %d out of order",
                 heads, rows, nkern, pct, badn, unsorted
          exit !(heads >= 2 && nkern == k[1] && rows == (k[1] < 20 ? k[1] : 20) && pct > 0 && pct <= 100.01 && badn == 0 && unsorted == 0) }' "$tmp/prof.err")
  ok=$?
  events_off=$(grep -c '^EVENT' "$tmp/fake/run.log")
  launches_on=$(grep -c '^LAUNCH' "$tmp/fake/prof.log"); events_on=$(grep -c '^EVENT' "$tmp/fake/prof.log")
  if [ $rc -eq 0 ] && [ $ok -eq 0 ] && [ "$events_off" -eq 0 ] && [ "$events_on" -eq $((2 * launches_on)) ] &&
     ! grep -q "GPU profile" "$tmp/fk.log"; then
    echo "PASS: gpu/profile_fake_driver ($prof; 2 events per launch; none without TL_GPU_PROFILE)"
  else
    echo "FAIL: gpu/profile_fake_driver (status $rc: $prof; events $events_on for $launches_on launches, $events_off when off)"
    head -30 "$tmp/prof.err"
  fi
  # the checkpoints hold what the device holds: each step's outputs swapped into its
  # inputs. The stand-in's kernels compute nothing, so the allocations just alternate:
  # after step 3 the params are the (zeroed) output buffers, after step 6 the initial
  # values again (wte ~ normal(0, 0.02)); host copies or a missing swap give other patterns
  zeros=$(python3 - "$tmp/fk/ckpt/ckpt-3.safetensors" "$tmp/fk/ckpt/ckpt-6.safetensors" <<'PY' 2>&1
import json, struct, sys
def wte(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    o = h["wte"]["data_offsets"]
    return struct.unpack("<%df" % ((o[1] - o[0]) // 4), b[8 + n + o[0]:8 + n + o[1]])
a, b = wte(sys.argv[1]), wte(sys.argv[2])
print("yes" if a and all(x == 0 for x in a) and all(x != 0 for x in b) else
      "no: step 3 has %d nonzero, step 6 %d of %d" % (sum(x != 0 for x in a), sum(x != 0 for x in b), len(b)))
PY
)
  if [ "$zeros" = yes ]; then echo "PASS: gpu/checkpoint_from_device"
  else echo "FAIL: gpu/checkpoint_from_device ($zeros)"; fi
  (cd "$tmp" && fake "$tmp/fake/resume.log" "$exe" --data "$tmp/data.txt" --steps 6 --eval-every 3 --checkpoint-every 3 \
     --eval-batches 2 --resume "$tmp/fk" --out "$tmp/fk" >"$tmp/fkr.log" 2>&1); rc=$?
  if [ $rc -eq 0 ] && grep -q "resumed from .*ckpt-6" "$tmp/fkr.log"; then echo "PASS: gpu/resume_fake_driver"
  else echo "FAIL: gpu/resume_fake_driver (status $rc)"; tail -3 "$tmp/fkr.log"; fi
  # sampling on the GPU: the decode (KV cache) and full-window programs, and beam search;
  # the params go up once per program, then per token only the token, its position and the
  # caches (decode), or the window (full)
  sok=0
  for mode in cache no-cache beam; do
    case $mode in cache) extra=();; no-cache) extra=(--no-cache);; beam) extra=(--beam 2);; esac
    fake "$tmp/fake/s_$mode.log" "$exe" sample --ckpt "$tmp/fk" --prompt "ab" --tokens 5 --temperature 0 "${extra[@]}"       >"$tmp/s_$mode.out" 2>"$tmp/s_$mode.err" && [ -s "$tmp/s_$mode.out" ] && grep -q "^LAUNCH" "$tmp/fake/s_$mode.log" && sok=$((sok + 1))
  done
  ups=$(awk '$1 == "SYNC" { runs++ } $1 == "H2D" { n++ } END { print n - 4 * runs }' "$tmp/fake/s_cache.log")
  if [ $sok -eq 3 ] && [ "$ups" -eq 28 ]; then echo "PASS: gpu/sample_fake_driver (cached, uncached, beam; 28 params uploaded once)"
  else echo "FAIL: gpu/sample_fake_driver ($sok of 3 ran; $ups uploads beyond 4 per token)"; cat "$tmp"/s_*.err | head -5; fi
  # tlc run --target=cuda takes the same resident path
  fake "$tmp/fake/tlc.log" "$TLC" run --target=cuda tests/train/tiny.tl -- --steps 5 --out "$tmp/tiny" >"$tmp/tiny.log" 2>&1; rc=$?
  per_step=$(awk '$1 == "SYNC" { if (seg > 0 && n > m) m = n; seg++; n = 0 } $1 == "H2D" { if (seg == 0) first++; else n++ }
                  END { printf "%d %d", first, m }' "$tmp/fake/tlc.log")
  set -- $per_step
  if [ $rc -eq 0 ] && [ "$1" -gt 5 ] && [ "$2" -le 5 ] && ! grep -q "^D2D" "$tmp/fake/tlc.log"; then
    echo "PASS: gpu/tlc_run_resident ($1 uploads before the first step, at most $2 per later run)"
  else
    echo "FAIL: gpu/tlc_run_resident (status $rc, uploads $per_step)"; tail -3 "$tmp/tiny.log"
  fi
fi

ptxas=${CUDA_HOME:-${CUDA_PATH:-/usr/local/cuda}}/bin/ptxas
# source schedules' GPU directives (tests/unit/schedule_cases.tl, docs/nvptx.md "Source
# schedules"): the PTX assembles and has the launch shape asked for: blocks of that many
# threads (.maxntid) over the rows (ctaid.x, grid-stride by nctaid.x), the columns strided
# over tid.x, the row staged in .shared memory between bar.syncs
if [ -x "$ptxas" ]; then
  for arch in sm_80 sm_90; do
    for c in "scale_gpu x:f32[37,100],w:f32[100] 64 sh0" "softmax_gpu x:f32[13,300] 128 sh0" \
             "dot_gpu a:f32[5,200],b:f32[200,7] 64 red" "affine_gpu x:f32[21,45] 64 -"; do
      set -- $c
      f="$tmp/sched_$1_$arch.ptx"
      if "$TLC" --emit=ptx --gpu-arch=$arch --entry=$1 --args=$2 tests/unit/schedule_cases.tl >"$f" 2>"$tmp/sched.log" &&
         "$ptxas" -arch=$arch -o /dev/null "$f" >>"$tmp/sched.log" 2>&1 && grep -q "^\.maxntid $3, 1, 1" "$f" &&
         grep -q '%tid\.x' "$f" && grep -q '%nctaid\.x' "$f" &&
         { [ $4 = - ] || { grep -q '%ctaid\.x' "$f" && grep -q 'bar\.sync' "$f" && grep -q "\.shared .*_\$_$4" "$f"; }; }; then
        echo "PASS: gpu/ptxas_source_schedule ($1, $3 threads per block, $arch)"
      else
        echo "FAIL: gpu/ptxas_source_schedule ($1, $arch)"; head -5 "$tmp/sched.log"; grep -n 'maxntid\|\.shared' "$f" | head -5
      fi
    done
  done
fi

# every kernel of every embedded graph assembles
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

# tlc tune --target cuda on the stand-in driver: the sweep compiles the program once per block
# size (4 sizes, each kernel timed by the executor's event profile), writes a cache entry for
# every flat kernel, and a second tune finds them all without compiling anything.
if [ -f "$tmp/fake/libcuda.so.1" ]; then
  tune_args=(tune bench/tune/gemm.tl --entry mlp --args "x:f32[64,96] w:f32[96,80] b:f32[80]" --stdlib stdlib --target cuda --budget 60 --cache "$tmp/tcache")
  if TL_GEMM_EPILOGUE=0 LD_LIBRARY_PATH="$tmp/fake" TL_FAKECUDA_LOG="$tmp/fake/tune.log" "$TLC" "${tune_args[@]}" --out "$tmp/tout1" >"$tmp/tune1.txt" 2>&1 &&
     [ "$(grep -c '"phase":"sweep"' "$tmp/tout1/tune.jsonl")" -eq 4 ] && grep -q 'outputs checked' "$tmp/tune1.txt" &&
     [ "$(ls "$tmp/tcache" | wc -l)" -ge 1 ]; then
    echo "PASS: gpu/tune_sweep (4 block sizes measured per kernel, $(ls "$tmp/tcache" | wc -l) cache entries)"
  else
    echo "FAIL: gpu/tune_sweep"; cat "$tmp/tune1.txt" | tail -5
  fi
  : >"$tmp/fake/tune2.log"
  if TL_GEMM_EPILOGUE=0 LD_LIBRARY_PATH="$tmp/fake" TL_FAKECUDA_LOG="$tmp/fake/tune2.log" "$TLC" "${tune_args[@]}" --out "$tmp/tout2" >"$tmp/tune2.txt" 2>&1 &&
     grep -q 'every flat kernel has a cache entry' "$tmp/tune2.txt" && grep -q '(cached)' "$tmp/tune2.txt" && ! grep -q '^LAUNCH' "$tmp/fake/tune2.log"; then
    echo "PASS: gpu/tune_warm_cache (second tune: every entry from the cache, no kernel launched)"
  else
    echo "FAIL: gpu/tune_warm_cache"; cat "$tmp/tune2.txt" | tail -5
  fi
fi
