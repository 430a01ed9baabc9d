/* tune.c — `tlc tune`: a measured beam search over each kernel's schedule (docs/tuning.md).
 *
 *   for each tunable kernel with no cache entry (one per distinct key):
 *     measure the default schedule (its outputs are the reference)
 *   give each kernel a share of the budget proportional to its default time
 *   for each kernel, slowest first:
 *     beam = {default}
 *     repeat while its share lasts:
 *       candidates = every one-knob change of every beam member, not tried yet (shuffled)
 *       measure each (compile, run once, compare with the reference, median of timed runs)
 *       beam = the best `beam` schedules seen; stop when a round improves nothing
 *     re-measure default and best; keep the best only if it is >= 2% faster
 *     write the cache entry (also for "default wins", so a warm run skips the kernel)
 *   table, JSONL log of every candidate, SVG plot of best time against candidates tried */
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cpu_detect.h"
#include "diag.h"
#include "args.h"
#include "lower.h"
#include "plot.h"
#include "progress.h"
#include "schedule_cache.h"
#include "sema.h"
#include "train.h"
#include "tune.h"

TlLProgram *tl_tune_clone_program(const TlLProgram *p); /* tune_bench.c */

/* ---- the neighbourhood of a schedule ---- */

/* An i64 expression of constants and syms; -1 when it involves anything else. */
static int64_t eval_extent(const TlLProgram *p, int e, const int64_t *syms) {
    if (e < 0) return -1;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_INT) return x->ival;
    if (x->kind == TL_LE_SYM) return syms ? syms[x->sym] : -1;
    if (x->kind == TL_LE_CAST) return eval_extent(p, x->a, syms);
    if (x->kind != TL_LE_BIN) return -1;
    int64_t a = eval_extent(p, x->a, syms), b = eval_extent(p, x->b, syms);
    if (a < 0 || b < 0) return -1;
    switch (x->op) {
    case TL_LOP_ADD: return a + b;
    case TL_LOP_SUB: return a - b;
    case TL_LOP_MUL: return a * b;
    case TL_LOP_IDIV: return b ? a / b : -1;
    case TL_LOP_IMOD: return b ? a % b : -1;
    case TL_LOP_MIN: return a < b ? a : b;
    case TL_LOP_MAX: return a > b ? a : b;
    default: return -1;
    }
}

static int has_loop(const TlLProgram *p, int s) {
    for (; s >= 0; s = p->st[s].next)
        if (p->st[s].kind == TL_LS_LOOP || has_loop(p, p->st[s].body) || has_loop(p, p->st[s].els)) return 1;
    return 0;
}

typedef struct Space {
    int n;
    TlKSched *v;
    int cap;
} Space;

static void add(Space *S, const TlLProgram *p, int k, const TlKSched *s) {
    if (tl_ksched_check(p, k, s, NULL, 0)) return;
    if (S->n == S->cap) {
        S->cap = S->cap ? 2 * S->cap : 64;
        S->v = realloc(S->v, sizeof *S->v * (size_t)S->cap);
        if (!S->v) abort();
    }
    S->v[S->n++] = *s;
}

/* the GEMM generators' blocking: f32 (gemm.c, AVX-512F) and bf16 (gemm_bf16.c, AVX-512-BF16) */
static int use_gemm_knobs(const TlLProgram *p, int k) {
    const TlLGemm *g = &p->kern[k].gemm;
    return g->on && ((g->dtype == TL_F32 && tl_host_cpu()->avx512f) || (g->dtype == TL_BF16 && tl_host_cpu()->avx512_bf16));
}

/* Every schedule one knob away from s. */
static void neighbours(const TlLProgram *p, int k, const int64_t *syms, const TlKSched *s, Space *S) {
    if (use_gemm_knobs(p, k)) {
        static const int regs[][2] = {{14, 32}, {12, 32}, {10, 32}, {8, 32}, {6, 32}, {9, 48}, {8, 48}, {6, 48},
                                      {7, 64}, {6, 64}, {4, 64}, {16, 16}, {12, 16}, {8, 16}};
        static const int kcs[] = {64, 96, 128, 192, 256, 320, 384, 512};
        static const int mcm[] = {2, 4, 8, 16, 32, 64};
        static const int ncm[] = {4, 8, 16, 32, 64, 128};
        static const int kus[] = {1, 2, 4, 8};
        static const int pfs[] = {0, 2, 4, 8, 16};
        TlKSched t;
        for (size_t i = 0; i < sizeof regs / sizeof *regs; i++) {
            t = *s;
            t.gemm.mr = regs[i][0], t.gemm.nr = regs[i][1];
            if (t.gemm.mr == s->gemm.mr && t.gemm.nr == s->gemm.nr) continue;
            t.gemm.mc = (s->gemm.mc + t.gemm.mr - 1) / t.gemm.mr * t.gemm.mr;
            t.gemm.nc = (s->gemm.nc + t.gemm.nr - 1) / t.gemm.nr * t.gemm.nr;
            add(S, p, k, &t);
        }
        for (size_t i = 0; i < sizeof kcs / sizeof *kcs; i++)
            if (kcs[i] != s->gemm.kc) t = *s, t.gemm.kc = kcs[i], add(S, p, k, &t);
        for (size_t i = 0; i < sizeof mcm / sizeof *mcm; i++)
            if (mcm[i] * s->gemm.mr != s->gemm.mc) t = *s, t.gemm.mc = mcm[i] * s->gemm.mr, add(S, p, k, &t);
        for (size_t i = 0; i < sizeof ncm / sizeof *ncm; i++)
            if (ncm[i] * s->gemm.nr != s->gemm.nc) t = *s, t.gemm.nc = ncm[i] * s->gemm.nr, add(S, p, k, &t);
        for (size_t i = 0; i < sizeof kus / sizeof *kus; i++)
            if (kus[i] != s->gemm.ku) t = *s, t.gemm.ku = kus[i], add(S, p, k, &t);
        for (size_t i = 0; i < sizeof pfs / sizeof *pfs; i++)
            if (pfs[i] != s->gemm.prefetch) t = *s, t.gemm.prefetch = pfs[i], add(S, p, k, &t);
        /* column strips (the grid's second axis): one, or up to the threads it runs on */
        int T = p->kern[k].gemm.dtype == TL_F32 ? tl_host_cpu()->cores : 1; /* f32 only (gemm.c) */
        for (int ns = 1; ns <= 8 && ns <= (T > 1 ? T : 1); ns *= 2)
            if (ns != s->gemm.nsplit) t = *s, t.gemm.nsplit = ns, add(S, p, k, &t);
        return;
    }
    if (p->kern[k].attn.on) return; /* compiled by the attention generator, not its loops */
    int loops[TL_KSCHED_MAX_LOOPS];
    int n = tl_loops_kernel_loops(p, k, loops, TL_KSCHED_MAX_LOOPS);
    TlKSched t;
    if (p->kern[k].par_extent >= 0 && !p->kern[k].gemm.on) t = *s, t.serial = !s->serial, add(S, p, k, &t);
    for (int i = 0; i < n && i < s->nloops; i++) {
        const TlLStmt *L = &p->st[loops[i]];
        int inner = !has_loop(p, L->body);
        if (inner) {
            static const int vecs[] = {0, 8, 16}, unr[] = {0, 2, 4, 8};
            for (int j = 0; j < 3; j++)
                if (vecs[j] != s->loop[i].vec) t = *s, t.loop[i].vec = vecs[j], add(S, p, k, &t);
            for (int j = 0; j < 4; j++)
                if (unr[j] != (s->loop[i].unroll > 1 ? s->loop[i].unroll : 0)) t = *s, t.loop[i].unroll = unr[j], add(S, p, k, &t);
        }
        if (!inner || L->sched.parallel) {
            int64_t ext = eval_extent(p, L->hi, syms) - (eval_extent(p, L->lo, syms) < 0 ? 0 : eval_extent(p, L->lo, syms));
            if (eval_extent(p, L->hi, syms) < 0 || ext < 4) continue;
            if (s->loop[i].tile) t = *s, t.loop[i].tile = 0, add(S, p, k, &t);
            for (int64_t ts = 2; ts < ext; ts *= 2)
                if (ts != s->loop[i].tile) t = *s, t.loop[i].tile = ts, add(S, p, k, &t);
        }
    }
}

/* ---- per kernel search state ---- */

typedef struct KTune {
    int k;                  /* kernel index (the first with this key) */
    char key[32], shape[160];
    int cached;
    TlTuneBench *bench;
    double t_default, t_best, t_default2, t_best2;
    TlKSched def, best;
    int tried;
    double *curve;          /* best time after each candidate */
    int ncurve, curvecap;
    int failed;             /* candidates rejected (output mismatch or compile error) */
} KTune;

typedef struct Tuner {
    const TlGraph *g;
    TlLProgram *p;
    int64_t *syms;
    const TlTuneOptions *o;
    TlTuneMeasureOpts mo;
    FILE *log;
    unsigned rng;
    double t_end;
} Tuner;

static unsigned rnd(Tuner *T) {
    T->rng = T->rng * 1103515245u + 12345u;
    return (T->rng >> 8) & 0xffffff;
}

static void curve_push(KTune *K, double v) {
    if (K->ncurve == K->curvecap) {
        K->curvecap = K->curvecap ? 2 * K->curvecap : 64;
        K->curve = realloc(K->curve, sizeof *K->curve * (size_t)K->curvecap);
        if (!K->curve) abort();
    }
    K->curve[K->ncurve++] = v;
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('"', f);
}

/* Measures one candidate, logs it; returns its time (INFINITY when rejected). */
static double try_sched(Tuner *T, KTune *K, const TlKSched *s, const char *phase) {
    double t;
    char err[512] = "";
    int r = tl_tune_bench_measure(K->bench, s, &t, err, sizeof err);
    if (r) t = INFINITY, K->failed++;
    K->tried++;
    if (r == 0 && t < K->t_best && strcmp(phase, "search") == 0) K->t_best = t, K->best = *s;
    curve_push(K, K->t_best);
    if (T->log) {
        char text[512];
        tl_ksched_format(s, text, sizeof text);
        char *js = tl_ksched_to_json(s);
        fprintf(T->log, "{\"kernel\":");
        json_str(T->log, T->p->kern[K->k].name);
        fprintf(T->log, ",\"key\":\"%s\",\"phase\":\"%s\",\"candidate\":%d,\"schedule\":", K->key, phase, K->tried);
        json_str(T->log, text);
        fprintf(T->log, ",\"sched\":%s,\"status\":\"%s\"", js, r == 0 ? "ok" : r == 1 ? "mismatch" : "error");
        if (r == 0) fprintf(T->log, ",\"time_s\":%.9g", t);
        if (r) fprintf(T->log, ",\"error\":"), json_str(T->log, err);
        if (isfinite(K->t_best)) fprintf(T->log, ",\"best_s\":%.9g}\n", K->t_best);
        else fprintf(T->log, ",\"best_s\":null}\n");
        fflush(T->log);
        free(js);
    }
    if (r == 1) fprintf(stderr, "tl tune: %s: a candidate changed the results (%s); rejected\n", T->p->kern[K->k].name, err);
    return t;
}

static int seen(const Space *S, const TlKSched *s) {
    for (int i = 0; i < S->n; i++)
        if (tl_ksched_equal(&S->v[i], s)) return 1;
    return 0;
}

typedef struct Scored { TlKSched s; double t; } Scored;

static int cmp_scored(const void *a, const void *b) {
    double x = ((const Scored *)a)->t, y = ((const Scored *)b)->t;
    return x < y ? -1 : x > y;
}

/* Beam search within [now, deadline). */
static void search_kernel(Tuner *T, KTune *K, double deadline) {
    int W = T->o->beam > 0 ? T->o->beam : 3;
    Scored *beam = calloc((size_t)W, sizeof *beam);
    if (!beam) abort();
    int nbeam = 1;
    beam[0].s = K->def, beam[0].t = K->t_default;
    Space tried = {0}, pool = {0};
    add(&tried, T->p, K->k, &K->def);
    Scored *round = NULL;
    int rcap = 0;
    for (;;) {
        pool.n = 0;
        for (int b = 0; b < nbeam; b++) neighbours(T->p, K->k, T->syms, &beam[b].s, &pool);
        for (int i = pool.n - 1; i > 0; i--) { /* shuffle: a short budget samples the whole neighbourhood */
            int j = (int)(rnd(T) % (unsigned)(i + 1));
            TlKSched x = pool.v[i];
            pool.v[i] = pool.v[j], pool.v[j] = x;
        }
        int nr = 0;
        double before = beam[0].t;
        if (rcap < pool.n + W) {
            rcap = pool.n + W;
            round = realloc(round, sizeof *round * (size_t)rcap);
            if (!round) abort();
        }
        for (int b = 0; b < nbeam; b++) round[nr++] = beam[b];
        int any = 0;
        for (int i = 0; i < pool.n && tl_progress_now() < deadline; i++) {
            if (seen(&tried, &pool.v[i])) continue;
            add(&tried, T->p, K->k, &pool.v[i]);
            double t = try_sched(T, K, &pool.v[i], "search");
            any = 1;
            if (isfinite(t)) round[nr].s = pool.v[i], round[nr++].t = t;
        }
        qsort(round, (size_t)nr, sizeof *round, cmp_scored);
        nbeam = nr < W ? nr : W;
        memcpy(beam, round, sizeof *beam * (size_t)nbeam);
        if (!any || tl_progress_now() >= deadline || !(beam[0].t < before * 0.995)) break;
    }
    free(round), free(tried.v), free(pool.v), free(beam);
}

/* ---- the whole program: inputs, timing ---- */

static int set_inputs(const TlGraph *g, TlCpuProgram *cp, const TlTuneBinding *bind, int nbind) {
    TlGDimBinding b[64];
    for (int i = 0; i < nbind && i < 64; i++) b[i].name = bind[i].name, b[i].value = bind[i].value;
    for (int n = 0; n < g->nnodes; n++) {
        const TlGNode *x = &g->nodes[n];
        if (x->op != TL_GOP_INPUT && x->op != TL_GOP_PARAM) continue;
        int64_t numel = 1, d;
        for (int i = 0; i < x->shape.rank; i++) {
            if (tl_gdim_eval(g, x->shape.dim[i], b, nbind < 64 ? nbind : 64, &d)) return -1;
            numel *= d;
        }
        double *v = malloc(sizeof(double) * (size_t)(numel > 0 ? numel : 1));
        if (!v) abort();
        int fl = x->dtype == TL_F32 || x->dtype == TL_F64 || x->dtype == TL_BF16 || x->dtype == TL_F16;
        for (int64_t i = 0; i < numel; i++) v[i] = fl ? 0.05 + 0.9 * (double)((i * 7919 + n) % 2003) / 2003.0 : (double)((i * 7) % 5);
        int r = tl_cpu_set(cp, n, v, numel);
        free(v);
        if (r) return -1;
    }
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds per run of the default and the cache-applied program. The two are timed
 * alternating, and each is compiled 3 times: on a small machine one compiled instance of
 * a program can run 3x slower than another for reasons of its own (where its buffers
 * land), so one compile each would compare placements, not schedules. */
/* The largest difference between the outputs of a and b relative to the check's
 * tolerance (|a-b| <= 1e-5 max(1, max|b|) + 1e-4 |b|, as for candidates): <= 1 is within
 * tolerance, 0 identical. */
static double outputs_diff(const TlGraph *g, TlCpuProgram *a, TlCpuProgram *b) {
    double worst = 0;
    for (int o = 0; o < g->noutputs; o++) {
        const TlTensor *x = tl_cpu_output(a, o), *y = tl_cpu_output(b, o);
        if (!x || !y || x->numel != y->numel) return INFINITY;
        double maxb = 0;
        for (int64_t i = 0; i < y->numel; i++) maxb = fmax(maxb, fabs(tl_tensor_get(y, i)));
        for (int64_t i = 0; i < x->numel; i++) {
            double u = tl_tensor_get(x, i), v = tl_tensor_get(y, i), d = fabs(u - v);
            if (d == 0) continue;
            double r = d / (1e-5 * fmax(1, maxb) + 1e-4 * fabs(v));
            if (!(r <= worst)) worst = isnan(r) ? INFINITY : r;
        }
    }
    return worst;
}

static int time_programs(Tuner *T, const TlTuneBinding *bind, int nbind, const char *target, double *td, double *tt,
                         int *napplied, double *diff) {
    enum { INST = 3, REPS = 7 };
    *diff = 0;
    double s[2][INST * REPS];
    int ns = 0, ok = 1;
    for (int inst = 0; inst < INST && ok; inst++) {
        TlLProgram *lp[2] = {tl_tune_clone_program(T->p), tl_tune_clone_program(T->p)};
        *napplied = tl_schedule_cache_apply(lp[1], target, T->syms, T->o->cache_dir, NULL, NULL);
        TlCpuProgram *cp[2] = {NULL, NULL};
        TlCpuOptions co = {.cpu = T->o->cpu, .opt_level = 3, .threads = T->o->threads};
        char err[512];
        for (int i = 0; i < 2; i++) {
            cp[i] = tl_cpu_compile_loops(T->g, lp[i], &co, err, sizeof err);
            if (!cp[i]) { ok = 0; fprintf(stderr, "tl tune: %s\n", err); continue; }
            for (int b = 0; b < nbind; b++) tl_cpu_bind(cp[i], bind[b].name, bind[b].value);
            if (set_inputs(T->g, cp[i], bind, nbind) || tl_cpu_run(cp[i])) ok = 0;
        }
        if (ok) *diff = fmax(*diff, outputs_diff(T->g, cp[1], cp[0]));
        /* a sample runs the program R times, R so that it lasts about 20 ms */
        int64_t R = 1;
        if (ok) {
            double t0 = tl_progress_now();
            tl_cpu_run(cp[0]);
            double one = tl_progress_now() - t0;
            R = one > 0 ? (int64_t)(0.02 / one) : 1;
            if (R < 1) R = 1;
            if (R > 1000) R = 1000;
        }
        for (int r = 0; ok && r < REPS; r++, ns++)
            for (int i = 0; i < 2; i++) {
                double t0 = tl_progress_now();
                for (int64_t j = 0; j < R; j++) tl_cpu_run(cp[i]);
                s[i][ns] = (tl_progress_now() - t0) / (double)R;
            }
        tl_cpu_free(cp[0]), tl_cpu_free(cp[1]);
    }
    if (!ok || ns == 0) return -1;
    qsort(s[0], (size_t)ns, sizeof(double), cmp_d), qsort(s[1], (size_t)ns, sizeof(double), cmp_d);
    *td = s[0][ns / 2], *tt = s[1][ns / 2];
    return 0;
}

/* ---- tl_tune_graph ---- */

static int mkdirs(const char *dir) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *s = buf + 1;; s++)
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(buf, 0755) && errno != EEXIST) return -1;
            *s = c;
            if (!c) return 0;
        }
}

static void fmt_time(double s, char *buf, size_t n) {
    if (!isfinite(s)) snprintf(buf, n, "-");
    else if (s < 1e-3) snprintf(buf, n, "%.1f us", s * 1e6);
    else if (s < 1) snprintf(buf, n, "%.3f ms", s * 1e3);
    else snprintf(buf, n, "%.3f s", s);
}

static int cmp_kt(const void *a, const void *b) {
    double x = (*(KTune *const *)a)->t_default, y = (*(KTune *const *)b)->t_default;
    return x > y ? -1 : x < y;
}

int tl_tune_graph(const TlGraph *g, const TlTuneBinding *bind, int nbind, const TlTuneOptions *o, char *err, int errn) {
    if (o->target_cuda) return tl_tune_graph_gpu(g, bind, nbind, o, err, errn);
    TlTuneOptions opt = *o;
    if (opt.budget_s <= 0) opt.budget_s = 60;
    if (!opt.out) opt.out = stdout;
    Tuner T = {.g = g, .o = &opt, .rng = opt.seed ? opt.seed : 12345u};
    T.mo = (TlTuneMeasureOpts){.cpu = opt.cpu, .threads = opt.threads, .repeats = 5, .min_sample_s = 1e-3};
    double t_start = tl_progress_now();
    T.t_end = t_start + opt.budget_s;
    T.p = tl_loops_lower(g, err, errn);
    if (!T.p) return -1;
    T.syms = calloc((size_t)T.p->nsyms + 1, sizeof *T.syms);
    if (!T.syms) abort();
    for (int s = 0; s < T.p->nsyms; s++) {
        int found = 0;
        for (int b = 0; b < nbind; b++)
            if (strcmp(bind[b].name, T.p->syms[s]) == 0) T.syms[s] = bind[b].value, found = 1;
        if (!found) {
            snprintf(err, (size_t)errn, "dim symbol '%s' has no value: give it with --dims %s=N", T.p->syms[s], T.p->syms[s]);
            tl_loops_free(T.p), free(T.syms);
            return -1;
        }
    }
    char cdir[1024], target[256];
    tl_schedule_cache_dir(opt.cache_dir, cdir, sizeof cdir);
    opt.cache_dir = cdir;
    tl_schedule_target_key(opt.cpu, opt.threads, target, sizeof target);
    const char *outd = opt.out_dir ? opt.out_dir : "tune-out";
    /* the kernels: one per distinct key */
    KTune *kt = calloc((size_t)T.p->nkern + 1, sizeof *kt);
    KTune **order = calloc((size_t)T.p->nkern + 1, sizeof *order);
    if (!kt || !order) abort();
    int nk = 0, ncached = 0, kernel_found = 0;
    for (int k = 0; k < T.p->nkern; k++) {
        if (opt.kernel && strcmp(opt.kernel, T.p->kern[k].name) != 0) continue;
        kernel_found = 1;
        if (T.p->kern[k].sched) { /* the source's schedule block wins: not searched */
            fprintf(opt.out, "%s: schedule from the source (%s), not tuned\n", T.p->kern[k].name, T.p->kern[k].sched_text);
            continue;
        }
        if (!tl_kernel_tunable(T.p, k)) continue;
        KTune *K = &kt[nk];
        K->k = k;
        if (tl_schedule_cache_key(T.p, k, T.syms, target, K->key, sizeof K->key, K->shape, sizeof K->shape)) continue;
        int dup = 0;
        for (int i = 0; i < nk; i++) dup |= strcmp(kt[i].key, K->key) == 0;
        if (dup) continue;
        TlSchedEntry e;
        if (!opt.force && tl_schedule_cache_get(cdir, K->key, &e) == 0) {
            K->cached = 1, ncached++;
            K->t_default = e.default_s, K->t_best = e.tuned_s, K->best = e.sched;
        }
        nk++;
    }
    if (opt.kernel && !kernel_found) {
        snprintf(err, (size_t)errn, "no kernel named '%s' (see --emit=loops)", opt.kernel);
        free(kt), free(order), tl_loops_free(T.p), free(T.syms);
        return -1;
    }
    int ntune = nk - ncached;
    char logpath[1200];
    snprintf(logpath, sizeof logpath, "%s/tune.jsonl", outd);
    if (ntune > 0 && mkdirs(outd) == 0) T.log = fopen(logpath, "a");
    TlProgress pr;
    tl_progress_init(&pr, stderr, ntune > 0 ? ntune : 1, 0, 1);
    /* 1. the defaults */
    int done = 0;
    for (int i = 0; i < nk; i++) {
        KTune *K = &kt[i];
        order[i] = K;
        if (K->cached) continue;
        char berr[512];
        K->bench = tl_tune_bench_new(g, T.p, K->k, T.syms, &T.mo, berr, sizeof berr);
        tl_ksched_default(T.p, K->k, &K->def);
        K->best = K->def;
        K->t_best = INFINITY;
        if (!K->bench) { K->t_default = INFINITY; continue; }
        K->t_default = try_sched(&T, K, &K->def, "default");
        K->t_best = K->t_default;
        if (!isfinite(K->t_default)) fprintf(stderr, "tl tune: %s: the default schedule does not run: %s\n", T.p->kern[K->k].name, berr);
    }
    qsort(order, (size_t)nk, sizeof *order, cmp_kt);
    /* 2. the search, slowest first, each kernel a share of what is left proportional to its time */
    double rest = 0;
    for (int i = 0; i < nk; i++)
        if (!order[i]->cached && isfinite(order[i]->t_default)) rest += order[i]->t_default;
    for (int i = 0; i < nk; i++) {
        KTune *K = order[i];
        if (K->cached || !K->bench || !isfinite(K->t_default)) continue;
        double now = tl_progress_now(), left = T.t_end - now;
        double share = rest > 0 ? left * K->t_default / rest : left;
        rest -= K->t_default;
        if (left > 0.05 && share > 0.05) {
            search_kernel(&T, K, now + share);
            /* confirm: default and best again, alternating, on fresh compiles */
            if (!tl_ksched_equal(&K->best, &K->def)) {
                double a = try_sched(&T, K, &K->def, "confirm"), b = try_sched(&T, K, &K->best, "confirm");
                double a2 = try_sched(&T, K, &K->def, "confirm"), b2 = try_sched(&T, K, &K->best, "confirm");
                K->t_default2 = fmin(a, a2), K->t_best2 = fmin(b, b2);
                if (!(K->t_best2 < 0.98 * K->t_default2)) K->best = K->def, K->t_best = K->t_default;
                else K->t_default = K->t_default2, K->t_best = K->t_best2;
            }
        }
        char kn[80];
        snprintf(kn, sizeof kn, "%s", T.p->kern[K->k].name);
        tl_progress_update(&pr, ++done, NAN, NAN);
        TlSchedEntry e = {0};
        snprintf(e.key, sizeof e.key, "%.16s", K->key);
        snprintf(e.kernel, sizeof e.kernel, "%.63s", kn);
        snprintf(e.target, sizeof e.target, "%.159s", target);
        snprintf(e.shape, sizeof e.shape, "%.159s", K->shape);
        e.default_s = K->t_default, e.tuned_s = K->t_best, e.candidates = K->tried, e.sched = K->best;
        char perr[512];
        if (tl_schedule_cache_put(cdir, &e, perr, sizeof perr)) fprintf(stderr, "tl tune: %s\n", perr);
    }
    tl_progress_finish(&pr);
    /* 3. the table */
    FILE *out = opt.out;
    fprintf(out, "%-28s %12s %12s %8s  %s\n", "kernel", "default", "tuned", "speedup", "schedule");
    double sum_d = 0, sum_t = 0;
    for (int i = 0; i < nk; i++) {
        KTune *K = order[i];
        char a[32], b[32], s[512];
        fmt_time(K->t_default, a, sizeof a), fmt_time(K->t_best, b, sizeof b);
        tl_ksched_format(&K->best, s, sizeof s);
        if (isfinite(K->t_default) && isfinite(K->t_best)) sum_d += K->t_default, sum_t += K->t_best;
        fprintf(out, "%-28s %12s %12s %7.2fx  %s%s\n", T.p->kern[K->k].name, a, b,
                K->t_best > 0 && isfinite(K->t_best) ? K->t_default / K->t_best : 1.0, s, K->cached ? "  (cached)" : "");
    }
    char a[32], b[32];
    fmt_time(sum_d, a, sizeof a), fmt_time(sum_t, b, sizeof b);
    fprintf(out, "%-28s %12s %12s %7.2fx  %d kernels (%d from the cache), %.1f s\n", "total (sum of kernels)", a, b,
            sum_t > 0 ? sum_d / sum_t : 1.0, nk, ncached, tl_progress_now() - t_start);
    /* 4. the plots: best time against candidates tried, the 8 slowest kernels together in
     * OUT/tune.svg, and every kernel on its own in OUT/kernels/NAME.svg */
    if (ntune > 0) {
        TlPlotSeries ser[8];
        double **xs = calloc((size_t)nk + 1, sizeof *xs);
        if (!xs) abort();
        int ns = 0, nper = 0;
        char svg[1200], perr[512], kdir[1100];
        snprintf(kdir, sizeof kdir, "%s/kernels", outd);
        int have_kdir = mkdirs(kdir) == 0;
        for (int i = 0; i < nk; i++) {
            KTune *K = order[i];
            if (K->cached || K->ncurve < 1) continue;
            xs[i] = malloc(sizeof(double) * (size_t)K->ncurve);
            if (!xs[i]) abort();
            for (int j = 0; j < K->ncurve; j++) xs[i][j] = j + 1, K->curve[j] *= 1e6;
            TlPlotSeries one = {T.p->kern[K->k].name, xs[i], K->curve, K->ncurve};
            if (ns < 8) ser[ns++] = one;
            char title[320];
            snprintf(title, sizeof title, "tlc tune: %s (%s)", T.p->kern[K->k].name, K->shape[0] ? K->shape : "no symbols");
            TlPlotOpts po = {.title = title, .xlabel = "candidates tried", .ylabel = "best time (us)", .log_y = 1};
            snprintf(svg, sizeof svg, "%s/%s.svg", kdir, T.p->kern[K->k].name);
            if (have_kdir && tl_plot_svg(svg, &po, &one, 1, perr, sizeof perr) == 0) nper++;
        }
        snprintf(svg, sizeof svg, "%s/tune.svg", outd);
        TlPlotOpts po = {.title = "tlc tune: best time per kernel", .xlabel = "candidates tried", .ylabel = "best time (us)", .log_y = 1};
        if (ns && tl_plot_svg(svg, &po, ser, ns, perr, sizeof perr)) fprintf(stderr, "tl tune: %s\n", perr);
        else if (ns) fprintf(out, "log: %s  plot: %s (and %d per kernel in %s)\n", logpath, svg, nper, kdir);
        for (int i = 0; i < nk; i++) free(xs[i]);
        free(xs);
    }
    fprintf(out, "cache: %s\n", cdir);
    /* 5. the whole program, default against cached schedules */
    if (opt.verify_program) {
        double td, tt, diff;
        int napplied;
        if (time_programs(&T, bind, nbind, target, &td, &tt, &napplied, &diff) == 0) {
            char x[32], y[32];
            fmt_time(td, x, sizeof x), fmt_time(tt, y, sizeof y);
            fprintf(out, "program: default %s, tuned %s (%d kernels rescheduled): %.3fx (median of 21 runs, 3 compiles each)\n", x, y, napplied,
                    tt > 0 ? td / tt : 1.0);
            fprintf(out, "outputs: tuned vs default %s (largest difference %.3g of the tolerance)\n",
                    diff == 0 ? "identical" : diff <= 1 ? "within tolerance" : "DIFFER", diff);
        } else {
            fprintf(out, "program: could not time the whole program\n");
        }
    }
    if (T.log) fclose(T.log);
    for (int i = 0; i < nk; i++) tl_tune_bench_free(kt[i].bench), free(kt[i].curve);
    free(kt), free(order), free(T.syms);
    tl_loops_free(T.p);
    return 0;
}
