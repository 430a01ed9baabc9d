#!/usr/bin/env bash
# scripts/device_pack.sh [DIR] — gathers what a GPU machine needs to run tl's GPU checks
# (scripts/device_check.sh) into DIR (default .dev, ignored by git): the test and bench
# programs built here, tlc with the stdlib, the GPT executables (CPU and --target=cuda),
# the fortunes text, and the shared libraries they load that such a machine may lack
# (LLVM 19 and its dependencies, libcjson, PCRE2, utf8proc), xz-compressed. The GPU machine
# needs only its NVIDIA driver and, for the cuBLAS anchor, a libcublas (the CUDA toolkit
# or PyTorch's nvidia-cublas wheel); nothing is compiled there.
#
# Run `make`, `make units`, bench/gpu/run.sh (builds build/bench/gpu_gemm) and
# `scripts/gpu_bundle.sh DIR/bundle` first. Sizes: the libraries are ~43 MB compressed.
set -eu
cd "$(dirname "$0")/.."
D=${1:-.dev}
BUILD=${BUILD:-build}
mkdir -p "$D"

libs="libLLVM.so.19.1 libz3.so.4 libxml2.so.2 libicuuc.so.72 libicudata.so.72 libffi.so.8 libedit.so.2
      libtinfo.so.6 libbsd.so.0 libmd.so.0 libcjson.so.1 libpcre2-8.so.0 libutf8proc.so.2 liblzma.so.5 libzstd.so.1"
if [ ! -f "$D/libpack.tar.xz" ]; then
  tmp=$(mktemp -d)
  mkdir "$tmp/libpack"
  for l in $libs; do cp -L "/lib/x86_64-linux-gnu/$l" "$tmp/libpack/"; done
  tar -C "$tmp" -cf - libpack | xz -T2 -6 > "$D/libpack.tar.xz.tmp"
  mv "$D/libpack.tar.xz.tmp" "$D/libpack.tar.xz"
  rm -rf "$tmp"
fi

# Programs: whatever of these is built.
for f in "$BUILD/tlc" "$BUILD/tests/test_gpu_diff" "$BUILD/bench/gpu_gemm" "$BUILD/bench/attention"; do
  [ -x "$f" ] && cp "$f" "$D/"
done
rm -rf "$D/stdlib" && cp -r stdlib "$D/stdlib"
cp scripts/device_check.sh "$D/"

# The fortunes text (the GPT's default corpus) as plain files.
if [ ! -d "$D/fortunes" ]; then
  mkdir -p "$D/fortunes"
  for f in /usr/share/games/fortunes/*; do
    case "$f" in *.dat | *.u8) continue ;; esac
    [ -f "$f" ] && cp "$f" "$D/fortunes/"
  done
fi
du -sh "$D"
