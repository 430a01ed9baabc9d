/* cpu_detect.h — what the host CPU is: model, cores, cache sizes, vector ISA.
 *
 * The compiler derives schedules from it (the GEMM blocking of a matmul contraction:
 * tl_host_gemm_blocking), so blocking follows the machine the code runs on instead of
 * constants in code. Plain C (sysconf, cpuid, /proc/cpuinfo): no LLVM. */
#ifndef TL_CPU_DETECT_H
#define TL_CPU_DETECT_H
#include <stdint.h>

typedef struct TlHostCpu {
    char model[96];         /* "AMD EPYC 9B14", "Intel(R) Xeon(R) ..." or "unknown" */
    int cores;              /* online logical CPUs */
    int64_t l1d, l2, l3;    /* data cache bytes per core (l3: whole cache); 0 = unknown */
    int avx512f, avx512_bf16, fma;
} TlHostCpu;

/* The host, detected once (thread-safe); values unknown to the system get the defaults
 * L1d 32 KiB, L2 1 MiB, L3 32 MiB. */
const TlHostCpu *tl_host_cpu(void);

/* The GEMM blocking for this host (docs/performance.md):
 *   mr x nr  register block (nr = two 16-float vectors)
 *   kc       the A and B micro-panels ((mr + nr) x kc floats) fill 3/4 of L1d
 *   nc       the packed B block (kc x nc floats) fills half of L2
 *   mc       rows of A per pass over B: an mc x kc slice of A fits a core's share of L3
 *   nsplit   0 here: chosen per shape (tl_host_gemm_nsplit) */
typedef struct TlGemmBlocking { int mr, nr, kc, mc, nc, ku, prefetch, nsplit; } TlGemmBlocking;
TlGemmBlocking tl_host_gemm_blocking(const TlHostCpu *h);

/* How many column strips to cut C into, so that the parallel items form a 2-D grid
 * (row panels x strips; TlLGemm.nsplit): the one that minimizes the estimated time of the
 * slowest of the threads (TL_THREADS, else the host's cores), compute plus packing (a
 * strip split packs A once per strip, a row split packs B once per thread).
 * bl->nsplit > 0 (TL_GEMM_BLOCKING) forces it; sizes < 0 (symbolic) give 1. */
int tl_host_gemm_nsplit(const TlHostCpu *h, const TlGemmBlocking *bl, int64_t batch, int64_t m, int64_t n, int64_t k);

#endif
