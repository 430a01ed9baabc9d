/* test_gemm.c — the CPU back end's GEMM (targets/cpu/gemm.c) against the interpreter.
 *
 * Every matmul-shaped contraction (any transposes, batch letters, merged letters) compiles
 * through the GEMM generator when the host has AVX-512F. Each case checks:
 *   - the kernel was recognised as a matmul (TlLGemm.on) when it should be;
 *   - values against the interpreter's naive contraction (f64 accumulation rounded to f32)
 *     within the forward error bound of an f32 fused multiply-add chain of K terms:
 *         |c - ref| <= 2 K u sum_k |a_ik| |b_kj| + 1e-30,   u = 2^-24
 *     (the sum of absolute products comes from the interpreter on |A|, |B|);
 *   - 1 thread vs 2 and 3 threads: bitwise identical.
 * Sizes cover 1, primes, non-multiples of the register block (6 x 64) and of KC / NC, and
 * symbolic dims; gradients of matmuls (tl_grad) are checked the same way, with a bound
 * relative to the largest value (their operands are computed, not given). The 2-D grid of
 * items (TlLGemm.nsplit column strips) is forced through TL_GEMM_BLOCKING on shapes whose
 * strips are ragged, batched, and cut by NC and MC. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "check.h"
#include "cpu/cpu.h"
#include "cpu_detect.h"
#include "graph.h"
#include "interp.h"

static const TlLoc L = {0};
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) { /* [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2 - 1;
}

static int have_gemm(void) {
    /* gemm.c needs AVX-512F; elsewhere the loop nest runs and these cases still check it */
    return __builtin_cpu_supports("avx512f");
}

static const char *sym_of(char l) {
    static char names[26][4];
    int i = l - 'a';
    names[i][0] = (char)('A' + i), names[i][1] = 0;
    return names[i];
}

/* Compare compiled output k with the interpreter's, bound per element from bound[]
 * (the interpreter's |A||B| contraction) or, when bound is NULL, relative to the tensor. */
static void compare(const TlTensor *c, const TlTensor *r, const TlTensor *bound, double K, const char *what) {
    EXPECTF(c && r && c->numel == r->numel, "%s: missing or differently sized output", what);
    if (!c || !r || c->numel != r->numel) return;
    const float *x = c->data, *y = r->data;
    double big = 1;
    for (int64_t i = 0; i < r->numel; i++) big = fmax(big, fabs(y[i]));
    const double u = 1.0 / 16777216.0;
    int bad = 0;
    for (int64_t i = 0; i < r->numel && bad < 3; i++) {
        double tol = bound ? 2 * K * u * ((const float *)bound->data)[i] * (1 + 4 * u) + 1e-30 : 4 * K * u * big + 1e-4 * fabs(y[i]);
        if (!(fabs((double)x[i] - y[i]) <= tol)) {
            EXPECTF(0, "%s: element %lld: compiled %.9g, interpreter %.9g, tolerance %.3g", what, (long long)i, x[i], y[i], tol);
            bad++;
        }
    }
}

static TlTensor *copy_tensor(const TlTensor *t) {
    TlTensor *c = malloc(sizeof *c);
    *c = *t;
    size_t nb = (size_t)t->numel * sizeof(float);
    c->data = malloc(nb ? nb : 1);
    memcpy(c->data, t->data, nb);
    return c;
}

static void free_tensor(TlTensor *t) {
    if (t) free(t->data), free(t);
}

/* The column strips the GEMM kernels must have (0: any), set by split_shapes. */
static int want_nsplit;

/* C = contract(spec, A, B) with A, B of dims da, db (symbolic: each letter's dim is the
 * symbol named by its upper-case letter, bound at run time). */
static void gemm_case(const char *spec, const int64_t *da, const int64_t *db, int symbolic, int expect_gemm) {
    TlContractSpec cs;
    tl_contract_parse(spec, &cs, NULL, 0);
    char name[160];
    snprintf(name, sizeof name, "%s%s [", spec, symbolic ? " (symbolic)" : "");
    for (int t = 0; t < 2; t++)
        for (int j = 0; j < cs.rank[t]; j++) {
            size_t n = strlen(name);
            snprintf(name + n, sizeof name - n, "%lld%s", (long long)(t ? db : da)[j], j + 1 < cs.rank[t] ? "x" : t ? "]" : "] [");
        }
    case_begin("%s", name);
    TlGraph *g = tl_graph_new();
    TlGDim dd[2][TL_MAX_RANK];
    int64_t numel[2] = {1, 1};
    double K = 1;
    for (int t = 0; t < 2; t++)
        for (int j = 0; j < cs.rank[t]; j++) {
            int64_t v = (t ? db : da)[j];
            dd[t][j] = symbolic ? tl_gdim_sym(g, sym_of(cs.in[t][j])) : tl_gdim_const(g, v);
            numel[t] *= v;
            if (t == 0 && !memchr(cs.out, cs.in[0][j], (size_t)cs.out_rank)) K *= (double)v;
        }
    int a = tl_g_input(g, "a", TL_F32, tl_gshape_dims(cs.rank[0], dd[0]), L);
    int b = tl_g_input(g, "b", TL_F32, tl_gshape_dims(cs.rank[1], dd[1]), L);
    tl_graph_add_output(g, tl_g_contract(g, spec, a, b, L));
    tl_graph_add_output(g, tl_g_contract(g, spec, tl_g_unary(g, TL_GOP_ABS, a, L), tl_g_unary(g, TL_GOP_ABS, b, L), L));
    EXPECTF(!tl_graph_error(g), "%s", tl_graph_error(g));
    char err[256];
    TlCpuOptions o = {.threads = 1};
    TlCpuProgram *p = tl_cpu_compile(g, &o, err, sizeof err);
    EXPECTF(p, "compile: %s", err);
    TlInterp *it = tl_interp_new(g);
    if (p) {
        const TlLProgram *lp = tl_cpu_loops(p);
        int on = 0;
        for (int k = 0; k < lp->nkern; k++) {
            on |= lp->kern[k].gemm.on;
            if (lp->kern[k].gemm.on && want_nsplit)
                EXPECTF(lp->kern[k].gemm.nsplit == want_nsplit, "%d column strips, expected %d", lp->kern[k].gemm.nsplit, want_nsplit);
        }
        EXPECTF(on == expect_gemm, "recognised as a matmul: %d, expected %d", on, expect_gemm);
        for (int t = 0; t < 2; t++)
            for (int j = 0; j < cs.rank[t]; j++) {
                tl_cpu_bind(p, sym_of(cs.in[t][j]), (t ? db : da)[j]);
                tl_interp_bind(it, sym_of(cs.in[t][j]), (t ? db : da)[j]);
            }
        for (int t = 0; t < 2; t++) {
            double *v = malloc(sizeof *v * (size_t)numel[t]);
            for (int64_t i = 0; i < numel[t]; i++) v[i] = urand();
            tl_cpu_set(p, t ? b : a, v, numel[t]);
            tl_interp_set(it, t ? b : a, v, numel[t]);
            free(v);
        }
        EXPECTF(tl_interp_run(it) == 0, "interpreter: %s", tl_interp_error(it));
        EXPECTF(tl_cpu_run(p) == 0, "run: %s", tl_cpu_error(p));
        compare(tl_cpu_output(p, 0), tl_interp_output(it, 0), tl_interp_output(it, 1), K, "C");
        TlTensor *one = copy_tensor(tl_cpu_output(p, 0));
        for (int th = 2; th <= 3; th++) { /* 3: thread ranges that straddle strips and batches */
            tl_cpu_set_threads(p, th);
            EXPECTF(tl_cpu_run(p) == 0, "run: %s", tl_cpu_error(p));
            const TlTensor *many = tl_cpu_output(p, 0);
            EXPECTF(memcmp(one->data, many->data, (size_t)one->numel * sizeof(float)) == 0, "1 and %d threads differ", th);
        }
        free_tensor(one);
    }
    tl_interp_free(it);
    tl_cpu_free(p);
    tl_graph_free(g);
    case_end();
}

#define D(...) ((const int64_t[]){__VA_ARGS__})

static void matmul_shapes(void) {
    static const int64_t mkn[][3] = {
        {1, 1, 1}, {1, 7, 1}, {2, 3, 5}, {13, 17, 31}, {14, 32, 32}, {15, 33, 33}, {28, 64, 64},
        {29, 300, 65}, {37, 577, 97}, {3, 1, 500}, {100, 5, 1000}, {64, 64, 64}, {131, 257, 67},
    };
    for (size_t i = 0; i < sizeof mkn / sizeof *mkn; i++) {
        int64_t M = mkn[i][0], K = mkn[i][1], N = mkn[i][2];
        gemm_case("xz,zy->xy", D(M, K), D(K, N), 0, 1);
    }
    /* transposed operands and output */
    gemm_case("xz,yz->xy", D(29, 41), D(45, 41), 0, 1);
    gemm_case("zx,zy->xy", D(41, 29), D(41, 45), 0, 1);
    gemm_case("zx,yz->xy", D(300, 17), D(33, 300), 0, 1);
    /* more than one group of 8 A micro-panels packed together (a partial last group and
     * panel), for each A layout, two k blocks */
    gemm_case("zx,zy->xy", D(300, 101), D(300, 70), 0, 1);
    gemm_case("xz,zy->xy", D(101, 300), D(300, 70), 0, 1);
    gemm_case("bzx,bzy->bxy", D(2, 40, 53), D(2, 40, 20), 0, 1);
    gemm_case("xz,zy->yx", D(19, 23), D(23, 40), 0, 1);
    gemm_case("xz,yz->yx", D(19, 23), D(40, 23), 0, 1);
    /* batched, merged letters, vectors */
    gemm_case("bxz,bzy->bxy", D(3, 17, 19), D(3, 19, 35), 0, 1);
    gemm_case("bxz,byz->bxy", D(2, 30, 16), D(2, 33, 16), 0, 1);
    gemm_case("xbz,bzy->bxy", D(9, 2, 10), D(2, 10, 21), 0, 1);
    gemm_case("abxz,abzy->abxy", D(2, 3, 5, 7), D(2, 3, 7, 9), 0, 1);
    gemm_case("bxz,zy->bxy", D(4, 15, 20), D(20, 50), 0, 1);
    gemm_case("btc,btd->cd", D(3, 11, 20), D(3, 11, 37), 0, 1);
    gemm_case("btd,cd->btc", D(3, 11, 37), D(20, 37), 0, 1);
    gemm_case("z,zy->y", D(33), D(33, 70), 0, 1);
    gemm_case("xz,z->x", D(70, 33), D(33), 0, 1);
    /* symbolic dims */
    gemm_case("xz,zy->xy", D(45, 300, 77), D(300, 77), 1, 1);
    gemm_case("bxz,byz->bxy", D(3, 17, 9), D(3, 20, 9), 1, 1);
    gemm_case("zx,zy->xy", D(8, 1), D(8, 50), 1, 1);
    /* not matmuls: the loop nest */
    gemm_case("x,y->xy", D(5), D(7), 0, 0);
    gemm_case("xy,xy->x", D(5, 7), D(5, 7), 0, 0);
    gemm_case("bz,bz->", D(3, 4), D(3, 4), 0, 0);
}

/* The 2-D grid: C's columns cut into nsplit strips of whole NR panels (the last one
 * short or empty), each strip's row panels parallel items. Blockings (TL_GEMM_BLOCKING,
 * read at compile time): the host's with 2 / 3 / 5 strips; NC 64 (several jc blocks per
 * strip) with KC 64 (several k blocks); MC 12 (several ic passes per run of panels). */
static void split_shapes(void) {
    if (!have_gemm()) return;
    static const struct { const char *env; int ns; } bl[] = {
        {"0,0,0,0,0,0,0,2", 2}, {"0,0,0,0,64,0,0,3", 3}, {"0,0,64,12,64,0,0,2", 2}, {"0,0,0,0,0,0,0,5", 5},
    };
    for (size_t i = 0; i < sizeof bl / sizeof *bl; i++) {
        setenv("TL_GEMM_BLOCKING", bl[i].env, 1);
        want_nsplit = bl[i].ns;
        gemm_case("xz,zy->xy", D(37, 300), D(300, 200), 0, 1);   /* ragged M and N: 200 = 3 x 64 + 8 */
        gemm_case("xz,zy->xy", D(6, 20), D(20, 64), 0, 1);       /* one NR panel: strips past the first empty */
        gemm_case("xz,zy->xy", D(131, 70), D(70, 333), 0, 1);
        gemm_case("zx,zy->xy", D(150, 41), D(150, 257), 0, 1);   /* A^T (dW), B rows contiguous */
        gemm_case("xz,yz->xy", D(29, 90), D(190, 90), 0, 1);     /* B^T (dX) */
        gemm_case("bxz,bzy->bxy", D(3, 17, 19), D(3, 19, 135), 0, 1); /* batched: items cross batches */
        gemm_case("bxz,byz->bxy", D(2, 13, 33), D(2, 140, 33), 1, 1); /* batched, symbolic */
        gemm_case("xz,zy->xy", D(1, 7), D(7, 1), 0, 1);
    }
    unsetenv("TL_GEMM_BLOCKING");
    want_nsplit = 0;
}

/* The shape heuristic (cpu_detect.c): row panels split unless few panels are shared by
 * the threads while N is large (then strips: A is packed per strip instead of all of B
 * per thread); 1 thread: none. */
static void split_heuristic(void) {
    case_begin("column strips chosen per shape and thread count");
    char *threads = getenv("TL_THREADS") ? strdup(getenv("TL_THREADS")) : NULL;
    unsetenv("TL_THREADS"); /* the host's cores decide */
    TlHostCpu h = {.cores = 2};
    TlGemmBlocking b = {.mr = 6, .nr = 64, .kc = 256, .mc = 8190, .nc = 1024, .ku = 8, .prefetch = 16};
    EXPECT(tl_host_gemm_nsplit(&h, &b, 1, 2048, 256, 256) == 1);
    EXPECT(tl_host_gemm_nsplit(&h, &b, 1, 512, 512, 512) == 1);
    EXPECT(tl_host_gemm_nsplit(&h, &b, 1, 256, 1024, 2048) == 1);  /* dW of 2048x256x1024 */
    EXPECT(tl_host_gemm_nsplit(&h, &b, 1, 64, 4096, 2048) == 2);   /* 11 panels, B 32 MiB */
    EXPECT(tl_host_gemm_nsplit(&h, &b, 1, 64, -1, 2048) == 1);     /* symbolic N */
    EXPECT(tl_host_gemm_nsplit(&h, &b, 1, 6, 64, 64) == 1);        /* one NR panel: nothing to cut */
    EXPECT(tl_host_gemm_nsplit(&h, &b, 64, 64, 4096, 2048) == 1);  /* batches keep threads apart */
    h.cores = 16;
    EXPECT(tl_host_gemm_nsplit(&h, &b, 1, 256, 1024, 2048) > 1);   /* 43 panels on 16 threads */
    EXPECT(tl_host_gemm_nsplit(&h, &b, 1, 2048, 256, 256) == 1);
    h.cores = 1;
    EXPECT(tl_host_gemm_nsplit(&h, &b, 1, 64, 4096, 2048) == 1);
    b.nsplit = 3;
    EXPECT(tl_host_gemm_nsplit(&h, &b, 1, 2048, 256, 256) == 3);   /* forced */
    b.nsplit = 0;
    setenv("TL_THREADS", "2", 1);
    EXPECT(tl_host_gemm_nsplit(&h, &b, 1, 64, 4096, 2048) == 2);   /* 1 core, 2 threads asked for */
    if (threads) setenv("TL_THREADS", threads, 1);
    else unsetenv("TL_THREADS");
    free(threads);
    case_end();
}

/* loss = sum(contract(spec, A, B) * W); gradients of A and B (themselves matmuls) */
static void grad_case(const char *spec, int ra, const int64_t *da, int rb, const int64_t *db, int ro, const int64_t *dout, double K) {
    case_begin("gradients of %s", spec);
    TlGraph *g = tl_graph_new();
    int a = tl_g_param(g, "a", TL_F32, tl_gshape_make(g, ra, da), L);
    int b = tl_g_param(g, "b", TL_F32, tl_gshape_make(g, rb, db), L);
    int w = tl_g_input(g, "w", TL_F32, tl_gshape_make(g, ro, dout), L);
    int y = tl_g_contract(g, spec, a, b, L);
    int loss = tl_g_sum(g, tl_g_mul(g, y, w, L), (1 << ro) - 1, 0, L);
    int params[2] = {a, b}, grads[2];
    EXPECT(tl_grad(g, loss, 2, params, grads) == 0);
    tl_graph_add_output(g, y);
    tl_graph_add_output(g, grads[0]);
    tl_graph_add_output(g, grads[1]);
    EXPECTF(!tl_graph_error(g), "%s", tl_graph_error(g));
    char err[256];
    TlCpuOptions o = {.threads = 1};
    TlCpuProgram *p = tl_cpu_compile(g, &o, err, sizeof err);
    EXPECTF(p, "compile: %s", err);
    TlInterp *it = tl_interp_new(g);
    if (p) {
        int ngemm = 0;
        const TlLProgram *lp = tl_cpu_loops(p);
        for (int k = 0; k < lp->nkern; k++) ngemm += lp->kern[k].gemm.on;
        EXPECTF(ngemm >= 3, "%d matmul kernels, expected 3 (forward and two gradients)", ngemm);
        int ids[3] = {a, b, w};
        for (int t = 0; t < 3; t++) {
            int64_t n = 1;
            for (int j = 0; j < g->nodes[ids[t]].shape.rank; j++) n *= (t == 0 ? da : t == 1 ? db : dout)[j];
            double *v = malloc(sizeof *v * (size_t)n);
            for (int64_t i = 0; i < n; i++) v[i] = urand();
            tl_cpu_set(p, ids[t], v, n);
            tl_interp_set(it, ids[t], v, n);
            free(v);
        }
        EXPECTF(tl_interp_run(it) == 0, "interpreter: %s", tl_interp_error(it));
        EXPECTF(tl_cpu_run(p) == 0, "run: %s", tl_cpu_error(p));
        const char *what[3] = {"y", "dA", "dB"};
        TlTensor *one[3];
        for (int k = 0; k < 3; k++) {
            compare(tl_cpu_output(p, k), tl_interp_output(it, k), NULL, K, what[k]);
            one[k] = copy_tensor(tl_cpu_output(p, k));
        }
        tl_cpu_set_threads(p, 2);
        EXPECTF(tl_cpu_run(p) == 0, "run: %s", tl_cpu_error(p));
        for (int k = 0; k < 3; k++) {
            const TlTensor *two = tl_cpu_output(p, k);
            EXPECTF(memcmp(one[k]->data, two->data, (size_t)two->numel * sizeof(float)) == 0, "%s: 1 and 2 threads differ", what[k]);
            free_tensor(one[k]);
        }
    }
    tl_interp_free(it);
    tl_cpu_free(p);
    tl_graph_free(g);
    case_end();
}

static void gradients(void) {
    grad_case("xz,zy->xy", 2, D(37, 45), 2, D(45, 50), 2, D(37, 50), 50);
    grad_case("bxz,bzy->bxy", 3, D(2, 19, 33), 3, D(2, 33, 21), 3, D(2, 19, 21), 38);
    grad_case("btc,cd->btd", 3, D(2, 15, 40), 2, D(40, 24), 3, D(2, 15, 24), 40);
}

/* The generated microkernel: AVX-512 FMAs on zmm registers. */
static void microkernel_asm(void) {
    case_begin("microkernel assembly uses zmm FMAs");
    TlGraph *g = tl_graph_new();
    int a = tl_g_input(g, "a", TL_F32, tl_gshape_make(g, 2, D(64, 64)), L);
    int b = tl_g_input(g, "b", TL_F32, tl_gshape_make(g, 2, D(64, 64)), L);
    tl_graph_add_output(g, tl_g_contract(g, "xz,zy->xy", a, b, L));
    char err[256];
    char *s = tl_cpu_emit_asm(g, NULL, "tl_k0_contract.ukr", err, sizeof err);
    EXPECTF(s, "%s", err);
    if (s) {
        EXPECTF(strstr(s, "vfmadd231ps") && strstr(s, "zmm"), "no zmm FMA in the microkernel");
        free(s);
    }
    tl_graph_free(g);
    case_end();
}

int main(void) {
    if (!have_gemm()) puts("SKIP: gemm microkernel: this CPU has no AVX-512F (the loop nest is checked instead)");
    matmul_shapes();
    split_shapes();
    split_heuristic();
    gradients();
    if (have_gemm()) microkernel_asm();
    return check_done();
}
