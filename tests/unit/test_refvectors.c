/* test_refvectors.c — the PyTorch reference vectors in tests/ref/ (made by tests/ref/gen.py)
 * are complete and right.
 *
 * For every file: the expected tensors are there with tl's layouts (Linear w [in, out], ...),
 * every grad.X has X's shape, every dy has its output's shape, floats are F32 and indices
 * I32, and the metadata says which case, seed and torch made it. Then, as a check of the
 * vectors themselves that needs no compiler, layer_norm, softmax, log_softmax, gelu,
 * cross_entropy, the LSTM forward pass and two AdamW steps are recomputed here in plain C
 * (double precision) from the stored inputs and compared with the stored outputs and
 * gradients (<= 1e-5 relative). The tl interpreter and compiled code are later compared
 * with the same files. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "safetensors.h"

static char ref_dir[512] = "tests/ref";
static char errbuf[1024];

static TlSafetensors *open_ref(const char *name) {
    char path[768];
    snprintf(path, sizeof path, "%s/%s.safetensors", ref_dir, name);
    TlSafetensors *f = NULL;
    if (tl_st_open(path, &f, errbuf, sizeof errbuf)) {
        printf("  %s\n", errbuf);
        check_case_failed = 1;
    }
    return f;
}

static const TlStTensor *need(const TlSafetensors *f, const char *name) {
    const TlStTensor *t = tl_st_find(f, name);
    if (!t) {
        printf("  %s: missing tensor '%s'\n", f->path, name);
        check_case_failed = 1;
    }
    return t;
}

/* The tensor as doubles (malloc'd), or NULL if absent. */
static double *get(const TlSafetensors *f, const char *name) {
    const TlStTensor *t = need(f, name);
    if (!t) return NULL;
    double *v = malloc(sizeof *v * (size_t)(tl_st_numel(t) + 1));
    tl_st_to_f64(t, v);
    return v;
}

static int same_shape(const TlStTensor *a, const TlStTensor *b) {
    if (a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* Expects tensor `name` to have the given shape (rank dims, -1 terminated list). */
static void expect_shape(const TlSafetensors *f, const char *name, int rank, ...) {
    const TlStTensor *t = need(f, name);
    if (!t) return;
    va_list ap;
    va_start(ap, rank);
    int ok = t->rank == rank;
    for (int i = 0; i < rank; i++) {
        long long d = va_arg(ap, long long);
        if (ok && t->shape[i] != d) ok = 0;
    }
    va_end(ap);
    EXPECTF(ok, "%s: '%s' has an unexpected shape", f->path, name);
}
#define SHAPE(f, name, ...) \
    expect_shape(f, name, (int)(sizeof((long long[]){__VA_ARGS__}) / sizeof(long long)), __VA_ARGS__)

/* Compares computed values with a stored tensor: |got - want| <= 1e-5 |want| + 1e-7 max|want|
 * (the absolute term only matters for entries that are nearly zero by cancellation). */
static void compare(const TlSafetensors *f, const char *name, const double *got) {
    const TlStTensor *t = need(f, name);
    if (!t || !got) return;
    int64_t n = tl_st_numel(t);
    double *want = get(f, name), maxabs = 0, worst = 0;
    int64_t worst_i = -1, nbad = 0;
    for (int64_t i = 0; i < n; i++) maxabs = fmax(maxabs, fabs(want[i]));
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        double rel = d / (fabs(want[i]) + 1e-2 * maxabs + 1e-300);
        if (!(d <= 1e-5 * fabs(want[i]) + 1e-7 * maxabs)) nbad++;
        if (!(rel <= worst)) { worst = rel; worst_i = i; }
    }
    EXPECTF(nbad == 0, "%s: '%s': %lld of %lld values differ; worst [%lld] computed %.9g, "
            "stored %.9g", f->path, name, (long long)nbad, (long long)n, (long long)worst_i,
            worst_i >= 0 ? got[worst_i] : 0.0, worst_i >= 0 ? want[worst_i] : 0.0);
    free(want);
}

/* ---- structure of every file ------------------------------------------------------------ */

static const char *block_params[] = {"ln1.w", "ln1.b", "attn.qkv.w", "attn.qkv.b",
                                     "attn.proj.w", "attn.proj.b", "ln2.w", "ln2.b",
                                     "mlp.fc.w", "mlp.fc.b", "mlp.proj.w", "mlp.proj.b"};
enum { NBLOCK = 12 };

/* Every grad.X matches X, every dy.Y matches Y and a bare dy matches out; floats are F32,
 * only indices are I32; nothing is there that `expected` does not name. */
static void common_checks(const TlSafetensors *f, int expected) {
    EXPECTF(f->ntensors == expected, "%s: %d tensors, expected %d", f->path, f->ntensors, expected);
    for (int i = 0; i < f->ntensors; i++) {
        const TlStTensor *t = &f->tensors[i];
        const char *n = t->name;
        int is_index = strcmp(n, "idx") == 0 || strcmp(n, "targets") == 0;
        EXPECTF(t->dtype == (is_index ? TL_ST_I32 : TL_ST_F32), "%s: '%s' is %s", f->path, n,
                tl_st_dtype_name(t->dtype));
        const char *of = NULL;
        if (strncmp(n, "grad.", 5) == 0) of = n + 5;
        else if (strncmp(n, "dy.", 3) == 0) of = n + 3;
        else if (strcmp(n, "dy") == 0) of = "out";
        if (of) {
            const TlStTensor *x = tl_st_find(f, of);
            EXPECTF(x && same_shape(t, x), "%s: '%s' has no '%s' of the same shape", f->path, n, of);
        }
    }
    EXPECT(tl_st_meta(f, "case") && tl_st_meta(f, "torch") && tl_st_meta(f, "seed") &&
           tl_st_meta(f, "description"));
}

/* Tensors of a pre-LN block under prefix pre, for width d; adds their grads' count. */
static void block_shapes(const TlSafetensors *f, const char *pre, long long d) {
    char n[128];
#define BS(p, ...) (snprintf(n, sizeof n, "%s%s", pre, p), SHAPE(f, n, __VA_ARGS__))
    BS("ln1.w", d); BS("ln1.b", d); BS("ln2.w", d); BS("ln2.b", d);
    BS("attn.qkv.w", d, 3 * d); BS("attn.qkv.b", 3 * d);
    BS("attn.proj.w", d, d); BS("attn.proj.b", d);
    BS("mlp.fc.w", d, 4 * d); BS("mlp.fc.b", 4 * d);
    BS("mlp.proj.w", 4 * d, d); BS("mlp.proj.b", d);
#undef BS
    for (int i = 0; i < NBLOCK; i++) {
        snprintf(n, sizeof n, "grad.%s%s", pre, block_params[i]);
        need(f, n);
    }
}

/* ---- recomputations ----------------------------------------------------------------------- */

/* Rows of the last axis: n rows of c for a tensor of any rank. */
static void rows_of(const TlStTensor *t, int64_t *n, int64_t *c) {
    *c = t->rank ? t->shape[t->rank - 1] : 1;
    *n = *c ? tl_st_numel(t) / *c : 0;
}

/* out = (x - mu) * rstd * w + b, rstd = 1 / sqrt(var + eps), var biased.
 * dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = dy w; dw = sum dy xhat; db = sum dy. */
TEST(layer_norm_recomputed) {
    TlSafetensors *f = open_ref("layer_norm");
    if (!f) return;
    common_checks(f, 8);
    SHAPE(f, "x", 2, 6, 16);
    SHAPE(f, "w", 16);
    double *x = get(f, "x"), *w = get(f, "w"), *b = get(f, "b"), *dy = get(f, "dy");
    if (x && w && b && dy) {
        int64_t n, c;
        rows_of(tl_st_find(f, "x"), &n, &c);
        double *out = calloc((size_t)(n * c), 8), *dx = calloc((size_t)(n * c), 8);
        double *dw = calloc((size_t)c, 8), *db = calloc((size_t)c, 8), *xh = calloc((size_t)c, 8);
        for (int64_t r = 0; r < n; r++) {
            const double *xr = x + r * c, *g = dy + r * c;
            double mu = 0, var = 0, mg = 0, mgx = 0;
            for (int64_t j = 0; j < c; j++) mu += xr[j] / (double)c;
            for (int64_t j = 0; j < c; j++) var += (xr[j] - mu) * (xr[j] - mu) / (double)c;
            double rstd = 1 / sqrt(var + 1e-5);
            for (int64_t j = 0; j < c; j++) {
                xh[j] = (xr[j] - mu) * rstd;
                out[r * c + j] = xh[j] * w[j] + b[j];
                mg += g[j] * w[j] / (double)c;
                mgx += g[j] * w[j] * xh[j] / (double)c;
                dw[j] += g[j] * xh[j];
                db[j] += g[j];
            }
            for (int64_t j = 0; j < c; j++) dx[r * c + j] = rstd * (g[j] * w[j] - mg - xh[j] * mgx);
        }
        compare(f, "out", out);
        compare(f, "grad.x", dx);
        compare(f, "grad.w", dw);
        compare(f, "grad.b", db);
        free(out); free(dx); free(dw); free(db); free(xh);
    }
    free(x); free(w); free(b); free(dy);
    tl_st_close(f);
}

/* softmax: y = exp(x - max) / sum;   dx = y (dy - sum(dy y))
 * log_softmax: y = x - max - log sum exp(x - max);   dx = dy - softmax(x) sum(dy) */
static void softmax_case(const char *name, int logsm) {
    TlSafetensors *f = open_ref(name);
    if (!f) return;
    common_checks(f, 4);
    SHAPE(f, "x", 2, 6, 11);
    double *x = get(f, "x"), *dy = get(f, "dy");
    if (x && dy) {
        int64_t n, c;
        rows_of(tl_st_find(f, "x"), &n, &c);
        double *out = malloc((size_t)(n * c) * 8), *dx = malloc((size_t)(n * c) * 8);
        for (int64_t r = 0; r < n; r++) {
            const double *xr = x + r * c, *g = dy + r * c;
            double m = -INFINITY, s = 0, gs = 0, gy = 0;
            for (int64_t j = 0; j < c; j++) m = fmax(m, xr[j]);
            for (int64_t j = 0; j < c; j++) s += exp(xr[j] - m);
            for (int64_t j = 0; j < c; j++) {
                double p = exp(xr[j] - m) / s;
                out[r * c + j] = logsm ? xr[j] - m - log(s) : p;
                gs += g[j];
                gy += g[j] * p;
            }
            for (int64_t j = 0; j < c; j++) {
                double p = exp(xr[j] - m) / s;
                dx[r * c + j] = logsm ? g[j] - p * gs : p * (g[j] - gy);
            }
        }
        compare(f, "out", out);
        compare(f, "grad.x", dx);
        free(out); free(dx);
    }
    free(x); free(dy);
    tl_st_close(f);
}

TEST(softmax_recomputed) { softmax_case("softmax", 0); }
TEST(log_softmax_recomputed) { softmax_case("log_softmax", 1); }

/* gelu(x) = 0.5 x (1 + tanh(u)), u = k (x + a x^3), k = sqrt(2/pi), a = 0.044715
 * gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3 a x^2) */
TEST(gelu_recomputed) {
    TlSafetensors *f = open_ref("gelu");
    if (!f) return;
    common_checks(f, 4);
    SHAPE(f, "x", 2, 6, 16);
    double *x = get(f, "x"), *dy = get(f, "dy");
    if (x && dy) {
        int64_t n = tl_st_numel(tl_st_find(f, "x"));
        double *out = malloc((size_t)n * 8), *dx = malloc((size_t)n * 8);
        const double k = sqrt(2 / M_PI), a = 0.044715;
        for (int64_t i = 0; i < n; i++) {
            double v = x[i], t = tanh(k * (v + a * v * v * v));
            out[i] = 0.5 * v * (1 + t);
            dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * a * v * v));
        }
        compare(f, "out", out);
        compare(f, "grad.x", dx);
        free(out); free(dx);
    }
    free(x); free(dy);
    tl_st_close(f);
}

/* loss = mean over rows with target != -1 of (logsumexp(row) - row[target]);
 * grad = (softmax(row) - onehot(target)) / count for those rows, 0 for ignored ones. */
TEST(cross_entropy_recomputed) {
    TlSafetensors *f = open_ref("cross_entropy");
    if (!f) return;
    common_checks(f, 4);
    SHAPE(f, "logits", 12, 11);
    SHAPE(f, "targets", 12);
    EXPECT(tl_st_find(f, "loss") && tl_st_find(f, "loss")->rank == 0);
    double *x = get(f, "logits"), *tg = get(f, "targets");
    if (x && tg) {
        int64_t n, c, cnt = 0, nign = 0;
        rows_of(tl_st_find(f, "logits"), &n, &c);
        double *g = calloc((size_t)(n * c), 8), loss = 0;
        for (int64_t r = 0; r < n; r++) cnt += tg[r] >= 0;
        for (int64_t r = 0; r < n; r++) {
            if (tg[r] < 0) {
                nign++;
                continue;
            }
            const double *xr = x + r * c;
            double m = -INFINITY, s = 0;
            for (int64_t j = 0; j < c; j++) m = fmax(m, xr[j]);
            for (int64_t j = 0; j < c; j++) s += exp(xr[j] - m);
            loss += (m + log(s) - xr[(int64_t)tg[r]]) / (double)cnt;
            for (int64_t j = 0; j < c; j++)
                g[r * c + j] = (exp(xr[j] - m) / s - (j == (int64_t)tg[r])) / (double)cnt;
        }
        EXPECTF(nign > 0, "the case should ignore some targets");
        compare(f, "loss", &loss);
        compare(f, "grad.logits", g);
        free(g);
    }
    free(x); free(tg);
    tl_st_close(f);
}

static double sigm(double z) { return 1 / (1 + exp(-z)); }

/* gates = x_t @ w_ih + h @ w_hh + b, order i, f, g, o;  c = sig(f) c + sig(i) tanh(g);
 * h = sig(o) tanh(c). Forward only: the gradients are cross-checked in gen.py. */
TEST(lstm_forward_recomputed) {
    TlSafetensors *f = open_ref("lstm");
    if (!f) return;
    common_checks(f, 18);
    const long long T = 8, B = 2, I = 5, H = 6;
    SHAPE(f, "x", T, B, I); SHAPE(f, "h0", B, H); SHAPE(f, "c0", B, H);
    SHAPE(f, "cell.w_ih", I, 4 * H); SHAPE(f, "cell.w_hh", H, 4 * H); SHAPE(f, "cell.b", 4 * H);
    SHAPE(f, "hs", T, B, H); SHAPE(f, "h", B, H); SHAPE(f, "c", B, H);
    need(f, "grad.x"); need(f, "grad.h0"); need(f, "grad.c0");
    need(f, "grad.cell.w_ih"); need(f, "grad.cell.w_hh"); need(f, "grad.cell.b");
    double *x = get(f, "x"), *h0 = get(f, "h0"), *c0 = get(f, "c0");
    double *wi = get(f, "cell.w_ih"), *wh = get(f, "cell.w_hh"), *b = get(f, "cell.b");
    if (x && h0 && c0 && wi && wh && b && !check_case_failed) {
        double h[2 * 6], c[2 * 6], hs[8 * 2 * 6], z[4 * 6];
        memcpy(h, h0, sizeof h);
        memcpy(c, c0, sizeof c);
        for (int t = 0; t < T; t++) {
            double hn[2 * 6];
            for (int bb = 0; bb < B; bb++) {
                for (int j = 0; j < 4 * H; j++) {
                    z[j] = b[j];
                    for (int k = 0; k < I; k++) z[j] += x[(t * B + bb) * I + k] * wi[k * 4 * H + j];
                    for (int k = 0; k < H; k++) z[j] += h[bb * H + k] * wh[k * 4 * H + j];
                }
                for (int j = 0; j < H; j++) {
                    double cc = sigm(z[H + j]) * c[bb * H + j] + sigm(z[j]) * tanh(z[2 * H + j]);
                    c[bb * H + j] = cc;
                    hn[bb * H + j] = sigm(z[3 * H + j]) * tanh(cc);
                }
            }
            memcpy(h, hn, sizeof h);
            memcpy(hs + t * B * H, h, sizeof h);
        }
        compare(f, "hs", hs);
        compare(f, "h", h);
        compare(f, "c", c);
    }
    free(x); free(h0); free(c0); free(wi); free(wh); free(b);
    tl_st_close(f);
}

/* AdamW (PyTorch): p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps); moments start at 0. */
TEST(adamw_recomputed) {
    TlSafetensors *f = open_ref("adamw");
    if (!f) return;
    common_checks(f, 18);
    const double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    EXPECT(tl_st_meta(f, "lr") && atof(tl_st_meta(f, "lr")) == lr);
    EXPECT(tl_st_meta(f, "weight_decay") && atof(tl_st_meta(f, "weight_decay")) == wd);
    SHAPE(f, "p.w", 4, 5);
    SHAPE(f, "p.b", 5);
    const char *ks[] = {"w", "b"};
    for (int k = 0; k < 2; k++) {
        char n[64];
        snprintf(n, sizeof n, "p.%s", ks[k]);
        const TlStTensor *pt = need(f, n);
        double *p = get(f, n);
        if (!pt || !p) continue;
        int64_t cnt = tl_st_numel(pt);
        double *m = calloc((size_t)cnt, 8), *v = calloc((size_t)cnt, 8);
        for (int step = 1; step <= 2; step++) {
            snprintf(n, sizeof n, "g.%d.%s", step, ks[k]);
            double *g = get(f, n);
            if (!g) break;
            for (int64_t i = 0; i < cnt; i++) {
                p[i] *= 1 - lr * wd;
                m[i] = b1 * m[i] + (1 - b1) * g[i];
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
                double mh = m[i] / (1 - pow(b1, step)), vh = v[i] / (1 - pow(b2, step));
                p[i] -= lr * mh / (sqrt(vh) + eps);
            }
            snprintf(n, sizeof n, "out.%d.%s", step, ks[k]);
            compare(f, n, p);
            snprintf(n, sizeof n, "m.%d.%s", step, ks[k]);
            compare(f, n, m);
            snprintf(n, sizeof n, "v.%d.%s", step, ks[k]);
            compare(f, n, v);
            free(g);
        }
        free(p); free(m); free(v);
    }
    tl_st_close(f);
}

/* ---- structure only: attention, block, gpt ------------------------------------------------ */

TEST(attention_structure) {
    TlSafetensors *f = open_ref("attention");
    if (!f) return;
    common_checks(f, 12);
    SHAPE(f, "x", 2, 6, 16); SHAPE(f, "out", 2, 6, 16);
    SHAPE(f, "attn.qkv.w", 16, 48); SHAPE(f, "attn.qkv.b", 48);
    SHAPE(f, "attn.proj.w", 16, 16); SHAPE(f, "attn.proj.b", 16);
    const char *g[] = {"grad.x", "grad.attn.qkv.w", "grad.attn.qkv.b", "grad.attn.proj.w",
                       "grad.attn.proj.b"};
    for (int i = 0; i < 5; i++) need(f, g[i]);
    EXPECT(tl_st_meta(f, "H") && atoi(tl_st_meta(f, "H")) == 4);
    tl_st_close(f);
}

TEST(block_structure) {
    TlSafetensors *f = open_ref("block");
    if (!f) return;
    common_checks(f, 4 + 2 * NBLOCK);
    SHAPE(f, "x", 2, 6, 16); SHAPE(f, "out", 2, 6, 16); need(f, "grad.x");
    block_shapes(f, "", 16);
    tl_st_close(f);
}

TEST(gpt_structure) {
    TlSafetensors *f = open_ref("gpt");
    if (!f) return;
    /* wte wpe lnf.w lnf.b + 2 blocks, each with a grad; idx targets logits loss */
    common_checks(f, 2 * (4 + 2 * NBLOCK) + 4);
    const long long V = 11, C = 8, D = 16, B = 2, T = 7;
    SHAPE(f, "wte", V, D); SHAPE(f, "wpe", C, D); SHAPE(f, "lnf.w", D); SHAPE(f, "lnf.b", D);
    SHAPE(f, "idx", B, T); SHAPE(f, "targets", B, T); SHAPE(f, "logits", B, T, V);
    need(f, "grad.wte"); need(f, "grad.wpe"); need(f, "grad.lnf.w"); need(f, "grad.lnf.b");
    EXPECT(tl_st_find(f, "loss") && tl_st_find(f, "loss")->rank == 0);
    block_shapes(f, "blocks.0.", D);
    block_shapes(f, "blocks.1.", D);
    /* Indices in range; the loss is the mean cross-entropy of the stored logits. */
    double *idx = get(f, "idx"), *tg = get(f, "targets"), *lg = get(f, "logits");
    if (idx && tg && lg) {
        int inrange = 1;
        double loss = 0;
        for (int i = 0; i < B * T; i++) {
            inrange &= idx[i] >= 0 && idx[i] < V && tg[i] >= 0 && tg[i] < V;
            double m = -INFINITY, s = 0;
            for (int j = 0; j < V; j++) m = fmax(m, lg[i * V + j]);
            for (int j = 0; j < V; j++) s += exp(lg[i * V + j] - m);
            if (inrange) loss += (m + log(s) - lg[i * V + (int)tg[i]]) / (double)(B * T);
        }
        EXPECT(inrange);
        if (inrange) compare(f, "loss", &loss);
    }
    free(idx); free(tg); free(lg);
    tl_st_close(f);
}

int main(int argc, char **argv) {
    const char *env = getenv("TL_REF_DIR");
    if (argc > 1) env = argv[1];
    if (env) snprintf(ref_dir, sizeof ref_dir, "%s", env);
    RUN(layer_norm_recomputed);
    RUN(softmax_recomputed);
    RUN(log_softmax_recomputed);
    RUN(gelu_recomputed);
    RUN(cross_entropy_recomputed);
    RUN(lstm_forward_recomputed);
    RUN(adamw_recomputed);
    RUN(attention_structure);
    RUN(block_structure);
    RUN(gpt_structure);
    return check_done();
}
