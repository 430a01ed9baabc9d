#!/usr/bin/env bash
# make bench: the FMA peak of this machine, then tl's GEMM against OpenBLAS (1 and 2
# threads), a table on stdout and bench/results/gemm-<date>.json. Never run by make test.
# BENCH_QUICK=1 skips the 2048^3 case and takes 5 runs per point.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ ! -e /usr/include/x86_64-linux-gnu/cblas.h ] && [ ! -e /usr/include/cblas.h ] || \
   ! ls /usr/lib/*/libopenblas.so >/dev/null 2>&1; then
  echo "bench: OpenBLAS (the yardstick) is missing; installing Debian's libopenblas-dev" >&2
  if ! apt-get install -y libopenblas-dev >/dev/null 2>&1; then
    echo "bench: cannot install libopenblas-dev: run 'apt-get install libopenblas-dev' (as root) and retry" >&2
    exit 1
  fi
fi
if ! grep -qw avx512f /proc/cpuinfo; then
  echo "bench: this CPU has no AVX-512F: tl's GEMM generator needs it (the loop nest runs instead)" >&2
fi
make --no-print-directory BUILD="$BUILD" all bench-bin >/dev/null
mkdir -p bench/results
peak=$("$BUILD"/bench/peak --json)
p1=$(echo "$peak" | sed 's/.*"peak_gflops_1t": \([0-9.]*\).*/\1/')
p2=$(echo "$peak" | sed 's/.*"peak_gflops_2t": \([0-9.]*\).*/\1/')
echo "fp32 FMA peak: $p1 GFLOPS (1 thread), $p2 GFLOPS (2 threads)"
case $peak in *bf16_dot*)
  b1=$(echo "$peak" | sed 's/.*"bf16_dot_gflops_1t": \([0-9.]*\).*/\1/')
  b2=$(echo "$peak" | sed 's/.*"bf16_dot_gflops_2t": \([0-9.]*\).*/\1/')
  echo "bf16 vdpbf16ps peak: $b1 GFLOPS (1 thread), $b2 GFLOPS (2 threads); bf16 rows' % of peak use 2x the fp32 peak" ;;
esac
out=bench/results/gemm-$(date +%Y%m%d-%H%M%S).json
# OpenBLAS' own pool is sized per run by openblas_set_num_threads (1, then 2)
export OPENBLAS_NUM_THREADS=2
quick=()
[ "${BENCH_QUICK:-0}" = 1 ] && quick=(--quick)
"$BUILD"/bench/gemm --peak1 "$p1" --peak2 "$p2" --json "$out" "${quick[@]}"
echo "results: $out"
