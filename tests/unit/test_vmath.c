/* test_vmath.c — accuracy of the CPU back end's inline f32 exp/log/tanh/erf
 * (targets/cpu/cpu_vmath.c) against double-precision libm.
 *
 * Per function one graph y = f(x) over x: f32[N], JIT-compiled by tl_cpu_compile, fed
 * 2^20 inputs: a stride over all 2^32 f32 bit patterns (both signs, denormals, ±Inf, NaNs),
 * a dense uniform sweep of the interesting range, and specials (±0, ±Inf, NaN, the
 * overflow/underflow thresholds, FLT_MIN, the smallest denormal). Error in ulps of the
 * correctly rounded f32 result (denormal results: ulps of 2^-149) and, for normal results,
 * relative error. Bounds: ≤ 4 ulp and ≤ 4e-7 relative (measured values printed; see
 * docs/cpu-backend.md); NaN exactly where libm gives NaN, infinities exactly. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/cpu.h"
#include "graph.h"
#include "interp.h"

static const TlLoc L = {0, 1, 1, 0, 0};

#define N (1 << 20)

static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static double ulp_of(double ref) { /* ulp of the f32 nearest ref */
    int e;
    frexp(ref, &e); /* ref = m·2^e, m in [0.5, 1) */
    if (e < -125) e = -125;
    return ldexp(1.0, e - 24);
}

static void check_fn(const char *name, TlGOp op, double (*ref)(double), double lo, double hi) {
    case_begin("vmath %s f32", name);
    static double in[N];
    uint64_t r = 0x9E3779B97F4A7C15ull;
    int n = 0;
    static const float spec[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 1.0f, -1.0f, FLT_MIN, -FLT_MIN,
                                 FLT_TRUE_MIN, -FLT_TRUE_MIN, FLT_MAX, -FLT_MAX, 88.72283172607422f,
                                 88.72283935546875f, 88.7f, -87.33654f, -87.4f, -103.97207f, -103.97208f,
                                 -104.0f, -110.0f, 0.625f, -0.625f, 0.62499994f, 0.927734375f, 0.92773443f,
                                 -0.927734375f, 4.0f, 3.92f, 9.0f, 9.1f, 0.70710677f, 0.70710683f, 1.0000001f,
                                 0.99999994f, 2.0f, 0.5f};
    for (size_t i = 0; i < sizeof spec / sizeof *spec; i++) in[n++] = spec[i];
    while (n < N / 2) { /* all bit patterns, strided, with random low bits */
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        uint32_t u = (uint32_t)n * 8192u + (uint32_t)(r & 8191u);
        in[n++] = bitsf(u);
    }
    while (n < N) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        in[n++] = (float)(lo + (hi - lo) * (double)(r >> 11) * (1.0 / 9007199254740992.0));
    }
    TlGraph *g = tl_graph_new();
    int64_t dims[1] = {N};
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_make(g, 1, dims), L);
    tl_graph_add_output(g, tl_g_unary(g, op, x, L));
    char err[512];
    TlCpuOptions o = {0};
    o.threads = 1;
    TlCpuProgram *p = tl_cpu_compile(g, &o, err, sizeof err);
    EXPECTF(p != NULL, "compile: %s", err);
    if (p) {
        tl_cpu_set(p, x, in, N);
        EXPECTF(tl_cpu_run(p) == 0, "run: %s", tl_cpu_error(p));
        const TlTensor *y = tl_cpu_output(p, 0);
        double maxulp = 0, maxrel = 0, xulp = 0, xrel = 0;
        int bad = 0;
        for (int i = 0; i < N && y; i++) {
            double a = tl_tensor_get(y, i), b = ref(in[i]), bf = (float)b;
            if (isnan(bf) || isnan(a) || isinf(bf) || isinf(a)) {
                int same = isnan(bf) ? isnan(a) : a == bf;
                if (!same && bad++ < 5) EXPECTF(0, "%s(%.9g) = %.9g, libm %.9g", name, in[i], a, b);
                continue;
            }
            double u = fabs(a - b) / ulp_of(b);
            if (u > maxulp) maxulp = u, xulp = in[i];
            if (fabs(b) >= FLT_MIN) {
                double rel = fabs(a - b) / fabs(b);
                if (rel > maxrel) maxrel = rel, xrel = in[i];
            }
        }
        printf("  %s: max %.3f ulp (x = %.9g), max rel %.3g (x = %.9g) over %d inputs\n", name, maxulp, xulp,
               maxrel, xrel, N);
        EXPECTF(maxulp <= 4.0, "%s: %.3f ulp at x = %.9g", name, maxulp, xulp);
        EXPECTF(maxrel <= 4e-7, "%s: relative %.3g at x = %.9g", name, maxrel, xrel);
        tl_cpu_free(p);
    }
    tl_graph_free(g);
    case_end();
}

int main(void) {
    check_fn("exp", TL_GOP_EXP, exp, -104, 89);
    check_fn("log", TL_GOP_LOG, log, 0, 4);
    check_fn("tanh", TL_GOP_TANH, tanh, -10, 10);
    check_fn("erf", TL_GOP_ERF, erf, -5, 5);
    return check_done();
}
