#!/usr/bin/env bash
# scripts/gpu_bundle.sh OUTDIR [DATA] — builds what tests/gpu/device_train.sh runs on a GPU machine
# (which needs no LLVM, no tlc, no make, no compiler there):
#   gpt_small_cpu    examples/gpt/gpt.tl at D=64 L=2 H=4 T=64 B=8, CPU, logging every step
#   gpt_small_cuda   the same program, --target=cuda
#   gpt_cuda         the default GPT (D=256 L=4 H=4 T=128 B=16), --target=cuda
#   lib/             the shared libraries they need beyond glibc (libcjson)
#   device_train.sh  the script to run there
#   data.txt         the training text: DATA (a file, or a directory whose text files are
#                    concatenated), default the fortunes corpus gpt.tl trains on
# There: bash OUTDIR/device_train.sh OUTDIR/data.txt OUTDIR
# The CPU executable targets x86-64-v3 (AVX2, FMA), not this machine's CPU, so it runs on
# whatever CPU the GPU machine has.
set -eu
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_bundle.sh OUTDIR}
mkdir -p "$out/lib"
make -j2 build/tlc >/dev/null
TLC=$PWD/build/tlc
export TL_STDLIB=$PWD/stdlib
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# gpt.tl logs every 10 steps; the comparison wants every step
sed 's/^    log_every = 10$/    log_every = 1/' examples/gpt/gpt.tl >"$tmp/gpt.tl"
grep -q '^    log_every = 1$' "$tmp/gpt.tl" || { echo "gpu_bundle: could not set log_every in a copy of gpt.tl" >&2; exit 1; }
small=(--dim 64 --layers 2 --heads 4 --seq 64 --batch 8)
"$TLC" build --cpu=x86-64-v3 "$tmp/gpt.tl" -o "$out/gpt_small_cpu" -- "${small[@]}"
"$TLC" build --target=cuda "$tmp/gpt.tl" -o "$out/gpt_small_cuda" -- "${small[@]}"
"$TLC" build --target=cuda examples/gpt/gpt.tl -o "$out/gpt_cuda"
for exe in gpt_small_cpu gpt_small_cuda gpt_cuda; do
  ldd "$out/$exe" | awk '/=> \// { print $3 }' | while read -r lib; do
    case $(basename "$lib") in libc.so*|libm.so*|libpthread.so*|libdl.so*|ld-linux*) ;; *) cp -L "$lib" "$out/lib/" ;; esac
  done
done
cp tests/gpu/device_train.sh "$out/"
data=${2:-/usr/share/games/fortunes}
if [ -d "$data" ]; then
  find "$data" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort | xargs cat >"$out/data.txt"
elif [ -f "$data" ]; then cp "$data" "$out/data.txt"
else echo "gpu_bundle: no data at $data (give a text file as the second argument)" >&2; exit 1; fi
echo "bundle in $out: $(ls "$out" | tr '\n' ' ')(lib: $(ls "$out/lib" | tr '\n' ' '))"
