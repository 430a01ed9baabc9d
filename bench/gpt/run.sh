#!/usr/bin/env bash
# bench/gpt: training-step throughput (tokens/s) of the default GPT (examples/gpt/gpt.tl:
# D 256, L 4, H 4, T 128, B 16, byte vocabulary) -- tl's built executable against PyTorch
# eager and torch.compile (bench/gpt/torch_gpt.py, the same model), with 1 and 2 threads,
# in the same run. Prints a table and merges the figures into bench/results.json.
# Skips (exit 0) when bench/.venv or its torch is missing. See bench/gpt/README.md.
#
# Environment: TLC (default build/tlc), THREADS ("1 2"), WINDOWS (timed windows per
# figure, default 5; each figure is their median), TL_WINDOW_STEPS (tl steps per window,
# default 1), TORCH_WINDOW_STEPS (default 3), TORCH_WARMUP (untimed steps, default 3),
# GPT_SDPA=1 (also torch eager with F.scaled_dot_product_attention), RESULTS (the JSON file),
# PY (a Python with torch), TL_EXE (an executable already built from a copy of gpt.tl with
# log_every = TL_WINDOW_STEPS: no build), TL_DATA (the tl run's --data).
set -eu
cd "$(dirname "$0")/../.."
PY=${PY:-bench/.venv/bin/python}
TLC=${TLC:-build/tlc}
THREADS=${THREADS:-1 2}
WINDOWS=${WINDOWS:-5}
TL_WINDOW_STEPS=${TL_WINDOW_STEPS:-1}
TORCH_WINDOW_STEPS=${TORCH_WINDOW_STEPS:-3}
TORCH_WARMUP=${TORCH_WARMUP:-3}
RESULTS=${RESULTS:-bench/results.json}

if [ ! -x "$PY" ]; then
  echo "SKIP: bench/gpt: no Python venv at bench/.venv (python3 -m venv bench/.venv && bench/.venv/bin/pip install torch)"
  exit 0
fi
if ! tv=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null) || [ -z "$tv" ]; then
  echo "SKIP: bench/gpt: $PY has no torch (bench/.venv/bin/pip install torch)"
  exit 0
fi
if [ -z "${TL_EXE:-}" ] && [ ! -x "$TLC" ]; then
  echo "SKIP: bench/gpt: $TLC is not built (run make)"
  exit 0
fi

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
echo "bench/gpt: CPU: ${cpu:-unknown} ($(nproc) CPUs online); torch $tv; load average $(cut -d' ' -f1-3 /proc/loadavg)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tl-bench-gpt.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The model is examples/gpt/gpt.tl as it is; only its log cadence changes (a copy with
# log_every = TL_WINDOW_STEPS) so that each window of steps gets its own tokens_per_s.
src=examples/gpt/gpt.tl
if [ -n "${TL_EXE:-}" ]; then
  cp "$TL_EXE" "$tmp/gpt"
  echo "bench/gpt: using the prebuilt $TL_EXE (built from $src with log_every = $TL_WINDOW_STEPS)"
elif grep -q '^[[:space:]]*log_every = ' "$src"; then
  sed "s/^\([[:space:]]*log_every = \).*/\1$TL_WINDOW_STEPS/" "$src" > "$tmp/gpt.tl"
else
  echo "bench/gpt: no 'log_every = ' line in $src: cannot set the log cadence" >&2
  exit 1
fi
if [ -z "${TL_EXE:-}" ]; then
  stdlib=$(cd "$(dirname "$TLC")/.." && pwd)/stdlib
  t0=$(date +%s.%N)
  "$TLC" build --stdlib "$stdlib" "$tmp/gpt.tl" -o "$tmp/gpt" > "$tmp/build.log" 2>&1 || {
    cat "$tmp/build.log" >&2
    echo "bench/gpt: tlc build failed" >&2
    exit 1
  }
  t1=$(date +%s.%N)
  printf 'bench/gpt: tlc build of gpt.tl: %.1f s (%s)\n' "$(awk "BEGIN{print $t1 - $t0}")" "$(tail -1 "$tmp/build.log")"
fi

# The FMA peak of this machine in the same run, for the model-FLOPs utilisation column.
BUILD_DIR=$(dirname "$TLC")
if [ -x "$BUILD_DIR/bench/peak" ]; then
  "$BUILD_DIR/bench/peak" --json > "$tmp/peak.json"
else
  echo "bench/gpt: $BUILD_DIR/bench/peak is not built (make bench-bin): no MFU column"
fi

# tl: one warm-up window, WINDOWS timed windows, then the last step alone (it evaluates
# and checkpoints; its window is dropped, as is the first).
tl_steps=$((TL_WINDOW_STEPS * (WINDOWS + 1) + 1))
for n in $THREADS; do
  mkdir -p "$tmp/$n"
  echo "bench/gpt: $n thread(s): tl ($tl_steps steps; load average $(cut -d' ' -f1-3 /proc/loadavg))"
  "$tmp/gpt" --threads "$n" --steps "$tl_steps" --eval_every 1000000000 --checkpoint_every 1000000000 \
    --eval-batches 1 ${TL_DATA:+--data "$TL_DATA"} --out "$tmp/$n/out" > "$tmp/$n/tl.log" 2>&1 || {
    cat "$tmp/$n/tl.log" >&2
    echo "bench/gpt: the tl run failed" >&2
    exit 1
  }
  cp "$tmp/$n/out/metrics.jsonl" "$tmp/$n/tl.jsonl"
  modes="torch_eager:eager:math torch_compile:compile:math"
  [ "${GPT_SDPA:-0}" = 1 ] && modes="$modes torch_eager_sdpa:eager:sdpa"
  for m in $modes; do
    IFS=: read -r name mode attn <<< "$m"
    echo "bench/gpt: $n thread(s): $name (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    "$PY" bench/gpt/torch_gpt.py --json --threads "$n" --mode "$mode" --attn "$attn" --windows "$WINDOWS" \
      --steps "$TORCH_WINDOW_STEPS" --warmup "$TORCH_WARMUP" > "$tmp/$n/$name.json" 2> "$tmp/$n/$name.err" || {
      cat "$tmp/$n/$name.err" >&2
      echo "bench/gpt: torch_gpt.py ($name) failed" >&2
      exit 1
    }
  done
done

echo
echo "GPT training step, tokens/s (median of $WINDOWS windows; tl $TL_WINDOW_STEPS step(s) per window,"\
     "torch $TORCH_WINDOW_STEPS); ratio > 1: tl is faster; CPU: ${cpu:-unknown}"
"$PY" bench/gpt/report.py "$tmp" "$RESULTS" $THREADS
