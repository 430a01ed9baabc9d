/* attn_bench.c — tl's fused causal attention through libtlc's JIT, timed.
 *
 *   attn_bench B H T K THREADS [REPS]
 *
 * Builds q, k, v [B, H, T, K] (f32 inputs), o = flash_attention(q, k, v) as the builtin
 * lowers it (attn, then its outputs sliced off the logsumexp column), and
 *   fwd:     o
 *   fwd+bwd: o and dq, dk, dv = vjp(o; do) (do an input), as torch's o.backward(do)
 * compiles both, runs each REPS times after one warm-up, and prints one line per mode:
 *   fwd <median ms> <min ms> <median cpu ms>   /   fwdbwd ...
 * (cpu ms: the process's CPU time per run, all threads: on a loaded machine it tracks the
 * work better than the wall clock).
 * With TL_FLASH=0 in the environment the graph is the unfused one (scores materialized:
 * contract, mask, softmax, contract), for comparison. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autodiff.h"
#include "cpu/cpu.h"
#include "graph.h"

static const TlLoc L = {0, 1, 1, 0, 0};

static double clock_ms(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* softmax(mask(q k^T scale)) v with the scores materialized (TL_FLASH=0's lowering). */
static int unfused(TlGraph *g, int q, int k, int v, double scale) {
    int s = tl_g_contract(g, "bhik,bhjk->bhij", q, k, L);
    TlGShape ss = g->nodes[s].shape;
    s = tl_g_mul(g, s, tl_g_const(g, scale, TL_F32, ss, L), L);
    int causal = tl_g_binary(g, TL_GOP_GE, tl_g_iota(g, TL_I32, ss, 2, L), tl_g_iota(g, TL_I32, ss, 3, L), L);
    s = tl_g_select(g, causal, s, tl_g_const(g, -1e30, TL_F32, ss, L), L);
    int m = tl_g_broadcast(g, tl_g_reduce(g, TL_GOP_RMAX, s, 8, 1, L), ss, L);
    int e = tl_g_exp(g, tl_g_sub(g, s, m, L), L);
    int p = tl_g_div(g, e, tl_g_broadcast(g, tl_g_sum(g, e, 8, 1, L), ss, L), L);
    return tl_g_contract(g, "bhij,bhjk->bhik", p, v, L);
}

static double run_mode(int64_t B, int64_t H, int64_t T, int64_t K, int threads, int reps, int bwd, int flash,
                       double *minv, double *cpuv) {
    TlGraph *g = tl_graph_new();
    int64_t d[4] = {B, H, T, K};
    TlGShape s = tl_gshape_make(g, 4, d);
    int q = tl_g_input(g, "q", TL_F32, s, L), k = tl_g_input(g, "k", TL_F32, s, L), v = tl_g_input(g, "v", TL_F32, s, L);
    double scale = 1.0 / sqrt((double)K);
    int o;
    if (flash) {
        o = tl_g_attn(g, q, k, v, scale, L);
        o = tl_g_slice_axis(g, o, 3, tl_gdim_const(g, 0), tl_gdim_const(g, K), 1, L);
    } else {
        o = unfused(g, q, k, v, scale);
    }
    tl_graph_add_output(g, o);
    if (bwd) {
        int dout = tl_g_input(g, "do", TL_F32, s, L), wrt[3] = {q, k, v}, gr[3];
        if (tl_vjp(g, 1, &o, &dout, 3, wrt, gr)) {
            fprintf(stderr, "attn_bench: vjp: %s\n", tl_graph_error(g));
            exit(1);
        }
        for (int i = 0; i < 3; i++) tl_graph_add_output(g, gr[i]);
    }
    char err[512];
    TlCpuOptions opt = {0};
    opt.threads = threads;
    opt.opt_level = 3; /* {0} would mean O0 */
    TlCpuProgram *p = tl_cpu_compile(g, &opt, err, sizeof err);
    if (!p) {
        fprintf(stderr, "attn_bench: %s\n", err);
        exit(1);
    }
    int64_t n = B * H * T * K;
    double *x = malloc(sizeof(double) * (size_t)n);
    uint64_t r = 88172645463325252ull;
    const char *names[4] = {"q", "k", "v", "do"};
    for (int t = 0; t < (bwd ? 4 : 3); t++) {
        for (int64_t i = 0; i < n; i++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            x[i] = (double)(r >> 11) / 9007199254740992.0 * 2 - 1;
        }
        tl_cpu_set_named(p, names[t], x, n);
    }
    free(x);
    double *ms = malloc(sizeof(double) * (size_t)(reps + 1)), *cpu = malloc(sizeof(double) * (size_t)(reps + 1));
    if (tl_cpu_run(p)) { /* warm-up */
        fprintf(stderr, "attn_bench: %s\n", tl_cpu_error(p));
        exit(1);
    }
    for (int i = 0; i < reps; i++) {
        double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
        tl_cpu_run(p);
        ms[i] = clock_ms(CLOCK_MONOTONIC) - t0;
        cpu[i] = clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    qsort(ms, (size_t)reps, sizeof *ms, cmp_d);
    qsort(cpu, (size_t)reps, sizeof *cpu, cmp_d);
    double med = ms[reps / 2];
    *minv = ms[0], *cpuv = cpu[reps / 2];
    free(ms), free(cpu);
    tl_cpu_free(p);
    tl_graph_free(g);
    return med;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: attn_bench B H T K THREADS [REPS]\n");
        return 2;
    }
    int64_t B = atoll(argv[1]), H = atoll(argv[2]), T = atoll(argv[3]), K = atoll(argv[4]);
    int threads = atoi(argv[5]), reps = argc > 6 ? atoi(argv[6]) : 5;
    const char *e = getenv("TL_FLASH");
    int flash = !e || strcmp(e, "0") != 0;
    double mn, cpu, med = run_mode(B, H, T, K, threads, reps, 0, flash, &mn, &cpu);
    printf("fwd %.4f %.4f %.4f\n", med, mn, cpu);
    med = run_mode(B, H, T, K, threads, reps, 1, flash, &mn, &cpu);
    printf("fwdbwd %.4f %.4f %.4f\n", med, mn, cpu);
    return 0;
}
