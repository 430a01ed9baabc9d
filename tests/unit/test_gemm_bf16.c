/* test_gemm_bf16.c — the CPU back end's bf16 GEMM (targets/cpu/gemm_bf16.c, vdpbf16ps)
 * against the reference loop nest (the same graph compiled with no_gemm).
 *
 * C = rnd(A @ B) with A, B bf16. The loop nest sums the exact products in f64, r = rnd(S);
 * the generator multiplies exactly and sums in f32, g = rnd(S + e), |e| <= gamma T with
 * T = sum_k |a_k b_k| and gamma = K 2^-24 (one rounding per addition; doubled below for
 * the two-step dot product and the k blocks added to C). With u = 2^-8 (bf16) and
 * |rnd(x) - x| <= u |x|:
 *     |g - r| <= 2 gamma T + 2.01 u (|r| + 2 gamma T)
 * i.e. at most one bf16 ulp apart, and only where S lies near a rounding boundary; a
 * packing or pairing mistake (a dropped or doubled k, a wrong lane) is far outside it, and
 * every element must be a bf16 value (C rounded like the loop nest's store). T
 * comes from the same contraction in f32 on |A|, |B|. Also: 1 vs 2 threads bitwise equal,
 * the kernel compiled through the generator (its microkernel exists) on a host with
 * AVX-512-BF16, and a target without +avx512bf16 compiling the loop nest with the same
 * results. Shapes: 1 x 1 x 1, odd K (a half pair), ragged M and N, K over one KC block,
 * every operand layout, batches, a B shared by the batch, symbolic sizes, operands cast from
 * f32. Where the host has no AVX-512-BF16 the comparisons still run (the loop nest both
 * ways) and the generator checks print SKIP. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/cpu.h"
#include "graph.h"
#include "interp.h"

static const TlLoc L = {0};
static uint64_t rng = 0x2545f4914f6cdd1dull;
static double urand(void) { /* [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2 - 1;
}

static int have_bf16(void) { return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw"); }

static const char *sym_of(char l) {
    static char names[26][4];
    int i = l - 'a';
    names[i][0] = (char)('A' + i), names[i][1] = 0;
    return names[i];
}

/* The name of the program's bf16 matmul kernel, or NULL. */
static const char *bf16_kernel(const TlCpuProgram *p) {
    const TlLProgram *lp = tl_cpu_loops(p);
    for (int k = 0; k < lp->nkern; k++)
        if (lp->kern[k].gemm.on && lp->kern[k].gemm.dtype == TL_BF16) return lp->kern[k].name;
    return NULL;
}

/* Whether kernel `name` of g compiles through the generator for options o: its
 * microkernel `name.ukr` is in the module. */
static int uses_generator(const TlGraph *g, const TlCpuOptions *o, const char *name) {
    char sym[96], err[256];
    snprintf(sym, sizeof sym, "%s.ukr", name);
    char *s = tl_cpu_emit_llvm(g, o, sym, err, sizeof err);
    free(s);
    return s != NULL;
}

static double worst_ratio; /* max |g - r| / bound over every case */
static long long n_equal, n_total;

/* out (generator) vs ref (loop nest) within the bound above; T: the f32 |A| |B| sums */
static void compare(const TlTensor *out, const TlTensor *ref, const TlTensor *T, double K) {
    EXPECTF(out && ref && T && out->numel == ref->numel && T->numel == ref->numel, "missing or differently sized output");
    if (!out || !ref || !T || out->numel != ref->numel || T->numel != ref->numel) return;
    const float *x = out->data, *y = ref->data, *t = T->data;
    const double u = ldexp(1, -8), gamma = 2 * K * ldexp(1, -24);
    int bad = 0;
    for (int64_t i = 0; i < ref->numel; i++) {
        double gt = gamma * t[i] * (1 + 1e-3), tol = gt + 2.01 * u * (fabs(y[i]) + gt);
        double d = fabs((double)x[i] - y[i]);
        n_total++, n_equal += x[i] == y[i];
        uint32_t bits;
        memcpy(&bits, &x[i], 4);
        if ((bits & 0xffff) && bad < 3) { /* C rounded to bf16 */
            EXPECTF(0, "element %lld: generator %.9g is not a bf16 value", (long long)i, x[i]);
            bad++;
        }
        if (tol > 0 && d / tol > worst_ratio) worst_ratio = d / tol;
        if (!(d <= tol) && bad < 3) {
            EXPECTF(0, "element %lld: generator %.9g, loop nest %.9g, |diff| %.3g > bound %.3g", (long long)i, x[i], y[i], d, tol);
            bad++;
        }
    }
}

/* C = contract(spec, A, B) in bf16 with A, B of dims da, db. cast: A, B are f32 inputs cast
 * to bf16; symbolic: every dim is a symbol named by its letter; o: target options (NULL:
 * the host); gen: whether the kernel must go through the generator. */
static void bf16_case(const char *spec, const int64_t *da, const int64_t *db, int cast, int symbolic, const TlCpuOptions *o,
                      int gen, const char *note) {
    TlContractSpec cs;
    tl_contract_parse(spec, &cs, NULL, 0);
    char name[200];
    snprintf(name, sizeof name, "bf16 %s%s%s [", spec, symbolic ? " (symbolic)" : "", cast ? " (cast from f32)" : "");
    for (int t = 0; t < 2; t++)
        for (int j = 0; j < cs.rank[t]; j++) {
            size_t n = strlen(name);
            snprintf(name + n, sizeof name - n, "%lld%s", (long long)(t ? db : da)[j], j + 1 < cs.rank[t] ? "x" : t ? "]" : "] [");
        }
    if (note) {
        size_t n = strlen(name);
        snprintf(name + n, sizeof name - n, " %s", note);
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
    int in[2], x[2];
    for (int t = 0; t < 2; t++) {
        in[t] = tl_g_input(g, t ? "b" : "a", cast ? TL_F32 : TL_BF16, tl_gshape_dims(cs.rank[t], dd[t]), L);
        x[t] = cast ? tl_g_cast(g, in[t], TL_BF16, L) : in[t];
    }
    tl_graph_add_output(g, tl_g_contract(g, spec, x[0], x[1], L));
    int ab[2];
    for (int t = 0; t < 2; t++) ab[t] = tl_g_cast(g, tl_g_unary(g, TL_GOP_ABS, x[t], L), TL_F32, L);
    tl_graph_add_output(g, tl_g_contract(g, spec, ab[0], ab[1], L));
    EXPECTF(!tl_graph_error(g), "%s", tl_graph_error(g));
    char err[256];
    TlCpuOptions og = o ? *o : (TlCpuOptions){0}, on = og;
    og.threads = 1, on.threads = 1, on.no_gemm = 1;
    TlCpuProgram *p = tl_cpu_compile(g, &og, err, sizeof err);
    EXPECTF(p, "compile: %s", err);
    TlCpuProgram *r = tl_cpu_compile(g, &on, err, sizeof err);
    EXPECTF(r, "compile (loop nest): %s", err);
    if (p && r) {
        const char *kn = bf16_kernel(p);
        EXPECTF(kn, "no bf16 matmul kernel (TlLGemm.on, dtype bf16)");
        if (kn) EXPECTF(uses_generator(g, &og, kn) == gen, "%s: through the generator: %d, expected %d", kn, !gen, gen);
        for (int t = 0; t < 2; t++)
            for (int j = 0; j < cs.rank[t]; j++) {
                tl_cpu_bind(p, sym_of(cs.in[t][j]), (t ? db : da)[j]);
                tl_cpu_bind(r, sym_of(cs.in[t][j]), (t ? db : da)[j]);
            }
        for (int t = 0; t < 2; t++) {
            double *v = malloc(sizeof *v * (size_t)numel[t]);
            for (int64_t i = 0; i < numel[t]; i++) v[i] = urand();
            tl_cpu_set(p, in[t], v, numel[t]);
            tl_cpu_set(r, in[t], v, numel[t]);
            free(v);
        }
        EXPECTF(tl_cpu_run(p) == 0, "run: %s", tl_cpu_error(p));
        EXPECTF(tl_cpu_run(r) == 0, "run (loop nest): %s", tl_cpu_error(r));
        compare(tl_cpu_output(p, 0), tl_cpu_output(r, 0), tl_cpu_output(r, 1), K);
        const TlTensor *c1 = tl_cpu_output(p, 0);
        size_t nb = (size_t)c1->numel * sizeof(float);
        float *one = malloc(nb ? nb : 1);
        memcpy(one, c1->data, nb);
        tl_cpu_set_threads(p, 2);
        EXPECTF(tl_cpu_run(p) == 0, "run: %s", tl_cpu_error(p));
        EXPECTF(memcmp(one, tl_cpu_output(p, 0)->data, nb) == 0, "1 and 2 threads differ");
        free(one);
    }
    tl_cpu_free(p);
    tl_cpu_free(r);
    tl_graph_free(g);
    case_end();
}

#define D(...) ((const int64_t[]){__VA_ARGS__})

static void shapes(int gen) {
    static const int64_t mkn[][3] = {
        {1, 1, 1}, {1, 7, 1}, {2, 3, 5}, {6, 2, 64}, {13, 17, 31}, {7, 33, 65}, {29, 300, 65},
        {37, 577, 97}, {100, 5, 1000}, {64, 64, 64}, {131, 257, 67}, {50, 1031, 130},
    };
    for (size_t i = 0; i < sizeof mkn / sizeof *mkn; i++) {
        int64_t M = mkn[i][0], K = mkn[i][1], N = mkn[i][2];
        bf16_case("xz,zy->xy", D(M, K), D(K, N), 0, 0, NULL, gen, NULL);
    }
    /* transposed operands and output */
    bf16_case("xz,yz->xy", D(29, 41), D(45, 41), 0, 0, NULL, gen, NULL);
    bf16_case("zx,zy->xy", D(41, 29), D(41, 45), 0, 0, NULL, gen, NULL);
    bf16_case("zx,yz->xy", D(301, 17), D(33, 301), 0, 0, NULL, gen, NULL);
    bf16_case("xz,zy->yx", D(19, 23), D(23, 40), 0, 0, NULL, gen, NULL);
    /* more than one group of A micro-panels, for each A layout, two k blocks */
    bf16_case("zx,zy->xy", D(301, 101), D(301, 70), 0, 0, NULL, gen, NULL);
    bf16_case("xz,zy->xy", D(101, 301), D(301, 70), 0, 0, NULL, gen, NULL);
    /* batched, a B shared by the batch, merged letters, strided (general) operands */
    bf16_case("bxz,bzy->bxy", D(3, 17, 19), D(3, 19, 35), 0, 0, NULL, gen, NULL);
    bf16_case("bxz,byz->bxy", D(2, 30, 16), D(2, 33, 16), 0, 0, NULL, gen, NULL);
    bf16_case("bxz,zy->bxy", D(4, 15, 21), D(21, 50), 0, 0, NULL, gen, NULL);
    bf16_case("xbz,bzy->bxy", D(9, 2, 11), D(2, 11, 21), 0, 0, NULL, gen, NULL);
    bf16_case("btc,btd->cd", D(3, 11, 20), D(3, 11, 37), 0, 0, NULL, gen, NULL);
    bf16_case("zxb,zyb->bxy", D(11, 9, 2), D(11, 21, 2), 0, 0, NULL, gen, NULL);
    bf16_case("bhqd,bhkd->bhqk", D(2, 2, 65, 33), D(2, 2, 70, 33), 0, 0, NULL, gen, NULL);
    /* symbolic sizes; operands cast from f32 */
    bf16_case("xz,zy->xy", D(45, 299), D(299, 77), 0, 1, NULL, gen, NULL);
    bf16_case("xz,zy->xy", D(70, 48), D(48, 90), 1, 0, NULL, gen, NULL);
    bf16_case("xz,yz->xy", D(130, 63), D(72, 63), 1, 0, NULL, gen, NULL);
}

/* Targets without AVX-512-BF16: the loop nest, same results (the comparison then holds
 * bitwise, both sides being the loop nest). */
static void fallback(void) {
    TlCpuOptions no_bf16 = {.features = "-avx512bf16"};
    bf16_case("xz,zy->xy", D(37, 77), D(77, 70), 0, 0, &no_bf16, 0, "(features -avx512bf16: loop nest)");
    TlCpuOptions skx = {.cpu = "skylake-avx512"};
    bf16_case("xz,yz->xy", D(29, 41), D(45, 41), 0, 0, &skx, 0, "(cpu skylake-avx512: loop nest)");
}

/* The microkernel: vdpbf16ps on zmm registers (what `tlc kernels --kernel NAME.ukr
 * --emit=asm` prints). */
static void microkernel_asm(void) {
    case_begin("bf16 microkernel assembly uses vdpbf16ps on zmm");
    TlGraph *g = tl_graph_new();
    int a = tl_g_input(g, "a", TL_BF16, tl_gshape_make(g, 2, D(64, 64)), L);
    int b = tl_g_input(g, "b", TL_BF16, tl_gshape_make(g, 2, D(64, 64)), L);
    tl_graph_add_output(g, tl_g_contract(g, "xz,zy->xy", a, b, L));
    char err[256];
    char *s = tl_cpu_emit_asm(g, NULL, "tl_k0_contract.ukr", err, sizeof err);
    EXPECTF(s, "%s", err);
    if (s) {
        EXPECTF(strstr(s, "vdpbf16ps") && strstr(s, "zmm"), "no zmm vdpbf16ps in the microkernel");
        free(s);
    }
    tl_graph_free(g);
    case_end();
}

int main(void) {
    int gen = have_bf16();
    if (!gen) puts("SKIP: bf16 gemm generator: this CPU has no AVX-512-BF16 (the loop nest is checked instead)");
    shapes(gen);
    fallback();
    if (gen) microkernel_asm();
    printf("    f32-accumulation bound: worst |generator - loop nest| / bound = %.3f; %lld of %lld elements equal\n", worst_ratio,
           n_equal, n_total);
    return check_done();
}
