/* cpu_detect.c — host CPU model, cores, caches and ISA (see cpu_detect.h). */
#include "cpu_detect.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static TlHostCpu host;
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static int64_t cache_size(int name, int64_t fallback) {
    long v = sysconf(name);
    return v > 0 ? (int64_t)v : fallback;
}

static void detect(void) {
    snprintf(host.model, sizeof host.model, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10)) continue;
            char *c = strchr(line, ':');
            if (!c) break;
            c++;
            while (*c == ' ' || *c == '\t') c++;
            c[strcspn(c, "\n")] = 0;
            snprintf(host.model, sizeof host.model, "%s", c);
            break;
        }
        fclose(f);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    host.cores = n > 0 ? (int)n : 1;
    host.l1d = cache_size(_SC_LEVEL1_DCACHE_SIZE, 32 << 10);
    host.l2 = cache_size(_SC_LEVEL2_CACHE_SIZE, 1 << 20);
    host.l3 = cache_size(_SC_LEVEL3_CACHE_SIZE, 32 << 20);
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) host.fma = (c >> 12) & 1;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) host.avx512f = (b >> 16) & 1;
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) host.avx512_bf16 = (a >> 5) & 1;
#endif
}

const TlHostCpu *tl_host_cpu(void) {
    pthread_once(&host_once, detect);
    return &host;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

TlGemmBlocking tl_host_gemm_blocking(const TlHostCpu *h) {
    /* 6 x 64 (four zmm per row, 24 accumulators): per k step 4 vector loads of B and 6
     * broadcasts of A feed 24 FMAs. On Zen 4 it ran 15-35% faster than 14 x 32 (28
     * accumulators, 16 loads per 28 FMAs), with the k loop unrolled 8 times and B
     * prefetched 16 steps ahead (docs/performance.md) */
    TlGemmBlocking g = {.mr = 6, .nr = 64, .ku = 8, .prefetch = 16};
    int64_t l1 = clamp64(h->l1d, 16 << 10, 1 << 20), l2 = clamp64(h->l2, 256 << 10, 8 << 20);
    int64_t l3 = clamp64(h->l3, 1 << 20, 256 << 20);
    /* the A micro-panel (mr x kc) stays in L1d across the jr loop while the B micro-panels
     * stream from L2: A takes 3/16 of L1d (KC 256 on a 32 KiB L1d; 12 KiB of A for
     * 14 x 32 filling 3/4 of L1d with A and B gave KC 128 and ran slower) */
    int64_t kc = l1 * 3 / 16 / (g.mr * 4);
    g.kc = (int)clamp64(kc / 16 * 16, 64, 1024);
    /* the packed B block, KC x NC floats, fills L2 (measured better than half of it) */
    int64_t nc = l2 / (g.kc * 4);
    g.nc = (int)clamp64(nc / g.nr * g.nr, g.nr, 4096);
    int64_t mc = l3 / 2 / (h->cores > 0 ? h->cores : 1) / (g.kc * 4);
    g.mc = (int)clamp64(mc / g.mr * g.mr, g.mr, 8190 / g.mr * g.mr);
    /* TL_GEMM_BLOCKING=mr,nr,kc,mc,nc,ku,prefetch,nsplit overrides (for experiments and
     * tuning); fields left out or 0 keep the host's values */
    const char *e = getenv("TL_GEMM_BLOCKING");
    if (e && *e) {
        int v[8] = {0};
        sscanf(e, "%d,%d,%d,%d,%d,%d,%d,%d", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
        int *f[8] = {&g.mr, &g.nr, &g.kc, &g.mc, &g.nc, &g.ku, &g.prefetch, &g.nsplit};
        for (int i = 0; i < 8; i++)
            if (v[i] > 0) *f[i] = v[i];
    }
    return g;
}

/* Items are batch x nsplit x ceil(M / MR) (strip-major within a batch); the pool gives each
 * of T threads a contiguous run of them. A thread's time, in FMA-vector steps: its items'
 * MR x (strip width) x K multiply-adds, 16 per step (strips are whole NR panels, padding
 * included), plus packing at a step per float (fitted on Zen 4: a second pass of packing
 * A^T for 256 x 2048 x 256 cost 7% of the product): A's MR x K per item and B's K x strip
 * per strip it touches. The row split packs B once per thread, the strip split A once per
 * strip: strips pay when many threads share few row panels (M = 256 on 16 threads: 43
 * panels, each thread would pack all of B). */
static double nsplit_cost(int64_t T, int mr, int nr, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t ns) {
    int64_t panels = (m + mr - 1) / mr, strip = ((n + nr - 1) / nr + ns - 1) / ns * nr;
    int64_t items = (batch * ns * panels + T - 1) / T;
    int64_t strips = (items + panels - 1) / panels + (items % panels != 0);
    if (strips > batch * ns) strips = batch * ns;
    double mac = (double)items * mr * (double)strip * (double)k;
    double pack = (double)items * mr * (double)k + (double)strips * (double)k * (double)strip;
    return mac / 16 + pack;
}

int tl_host_gemm_nsplit(const TlHostCpu *h, const TlGemmBlocking *bl, int64_t batch, int64_t m, int64_t n, int64_t k) {
    if (bl->nsplit > 0) return bl->nsplit;
    if (batch < 1 || m < 1 || n < 1 || k < 1 || bl->mr < 1 || bl->nr < 1) return 1;
    /* the threads the pool will run: TL_THREADS, else one per core (runtime/pool.c) */
    const char *e = getenv("TL_THREADS");
    int64_t T = e && atoi(e) > 0 ? atoi(e) : h->cores;
    T = T < 1 ? 1 : T > 64 ? 64 : T;
    int best = 1;
    double cbest = nsplit_cost(T, bl->mr, bl->nr, batch, m, n, k, 1);
    for (int ns = 2; ns <= T && ns <= 16; ns++) {
        if (T % ns || (int64_t)ns * bl->nr > n) continue; /* a grid of whole threads; no empty strips */
        double c = nsplit_cost(T, bl->mr, bl->nr, batch, m, n, k, ns);
        /* 10% better, or keep fewer strips: on 2 threads the model's 2-6% gains for the
         * GPT's dW products measured as nothing or losses (docs/performance.md) */
        if (c < 0.9 * cbest) cbest = c, best = ns;
    }
    return best;
}
