/* peak.c — this machine's fp32 FMA peak: a loop of independent zmm FMAs (16
 * accumulators, enough to cover the FMA latency on any AVX-512 core), on 1 and on 2
 * threads. Prints GFLOPS per configuration; `bench/peak --json` prints one JSON object.
 * The yardstick for bench/gemm.c's "% of peak". With AVX-512-BF16 it also measures the
 * same loop of vdpbf16ps (2 multiply-adds per f32 lane: 64 flops an instruction), the
 * bf16 GEMM's ceiling, to check that it is twice the fp32 one. */

#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct Job { long iters; double secs; float sink; } Job;

__attribute__((target("avx512f"))) static void *fma_loop(void *arg) {
    Job *j = arg;
    __m512 a[16], x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.9999999f);
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
    double t0 = now();
    for (long it = 0; it < j->iters; it++) {
#define F(i) a[i] = _mm512_fmadd_ps(a[i], x, y);
        F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11) F(12) F(13) F(14) F(15)
#undef F
    }
    j->secs = now() - t0;
    float s = 0, tmp[16];
    for (int i = 0; i < 16; i++) { _mm512_storeu_ps(tmp, a[i]); s += tmp[0]; }
    j->sink = s;
    return NULL;
}

__attribute__((target("avx512f,avx512bf16"))) static void *dpbf16_loop(void *arg) {
    Job *j = arg;
    __m512 a[16];
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = (__m512bh)_mm512_set1_epi32(0x3f7f3f7f); /* 1, 0.996 */
    for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
    double t0 = now();
    for (long it = 0; it < j->iters; it++) {
#define F(i) a[i] = _mm512_dpbf16_ps(a[i], x, y);
        F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11) F(12) F(13) F(14) F(15)
#undef F
    }
    j->secs = now() - t0;
    float s = 0, tmp[16];
    for (int i = 0; i < 16; i++) { _mm512_storeu_ps(tmp, a[i]); s += tmp[0]; }
    j->sink = s;
    return NULL;
}

/* GFLOPS of `threads` threads each running the loop (best of 5): flops per lane per
 * instruction: 2 (FMA) or 4 (vdpbf16ps) */
static double peak_of(void *(*loop)(void *), int flops, int threads) {
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        Job jobs[64];
        pthread_t th[64];
        for (int t = 0; t < threads; t++) jobs[t].iters = 20000000;
        for (int t = 1; t < threads; t++) pthread_create(&th[t], NULL, loop, &jobs[t]);
        loop(&jobs[0]);
        for (int t = 1; t < threads; t++) pthread_join(th[t], NULL);
        double secs = 0;
        for (int t = 0; t < threads; t++) secs = jobs[t].secs > secs ? jobs[t].secs : secs;
        double gf = (double)threads * (double)jobs[0].iters * 16 * 16 * flops / secs / 1e9;
        if (gf > best) best = gf;
    }
    return best;
}

int main(int argc, char **argv) {
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "peak: this CPU has no AVX-512F\n");
        return 1;
    }
    double p1 = peak_of(fma_loop, 2, 1), p2 = peak_of(fma_loop, 2, 2), b1 = 0, b2 = 0;
    int bf16 = __builtin_cpu_supports("avx512bf16");
    if (bf16) b1 = peak_of(dpbf16_loop, 4, 1), b2 = peak_of(dpbf16_loop, 4, 2);
    if (argc > 1 && strcmp(argv[1], "--json") == 0) {
        printf("{\"peak_gflops_1t\": %.1f, \"peak_gflops_2t\": %.1f", p1, p2);
        if (bf16) printf(", \"bf16_dot_gflops_1t\": %.1f, \"bf16_dot_gflops_2t\": %.1f", b1, b2);
        printf("}\n");
    } else {
        printf("fp32 FMA peak (zmm, 16 independent chains): 1 thread %.1f GFLOPS, 2 threads %.1f GFLOPS\n", p1, p2);
        if (bf16) printf("bf16 vdpbf16ps peak (zmm, 16 chains): 1 thread %.1f GFLOPS, 2 threads %.1f GFLOPS\n", b1, b2);
    }
    return 0;
}
