/* test_tune.c — the autotuner's pieces: schedules applied to Loop IR never change results
 * (random schedules on a few graphs, compiled against the interpreter), the measured bench
 * agrees with itself, and the tuning cache round-trips, survives two writers at once, and
 * ignores a corrupt entry with a warning. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "cpu/cpu.h"
#include "graph.h"
#include "interp.h"
#include "schedule_cache.h"
#include "tune.h"

static const TlLoc L = {0, 1, 1, 0, 0};

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static unsigned rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng >> 16);
}

static TlGShape shp(TlGraph *g, int rank, const int64_t *d) { return tl_gshape_make(g, rank, d); }

/* y = exp(x @ w) / rowsum, plus z = x * 2 + 1 (a matmul, a reduction, pointwise) */
static TlGraph *graph_mixed(int64_t M, int64_t K, int64_t N) {
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, shp(g, 2, (int64_t[]){M, K}), L);
    int w = tl_g_input(g, "w", TL_F32, shp(g, 2, (int64_t[]){K, N}), L);
    int mm = tl_g_contract(g, "ik,kj->ij", x, w, L);
    int e = tl_g_unary(g, TL_GOP_EXP, mm, L);
    int s = tl_g_reduce(g, TL_GOP_SUM, e, 2u, 1, L);
    int y = tl_g_broadcast_binary(g, TL_GOP_DIV, e, s, L);
    int z = tl_g_broadcast_binary(g, TL_GOP_ADD, tl_g_broadcast_binary(g, TL_GOP_MUL, x, tl_g_const(g, 2, TL_F32, shp(g, 0, NULL), L), L),
                                  tl_g_const(g, 1, TL_F32, shp(g, 0, NULL), L), L);
    tl_graph_add_output(g, y);
    tl_graph_add_output(g, z);
    return g;
}

/* a batched matmul with a symbolic batch and a max-reduction over the middle axis */
static TlGraph *graph_batched(void) {
    TlGraph *g = tl_graph_new();
    TlGDim d[3] = {tl_gdim_sym(g, "B"), tl_gdim_const(g, 20), tl_gdim_const(g, 12)};
    TlGDim d2[3] = {tl_gdim_sym(g, "B"), tl_gdim_const(g, 12), tl_gdim_const(g, 33)};
    int a = tl_g_input(g, "a", TL_F32, tl_gshape_dims(3, d), L);
    int b = tl_g_input(g, "b", TL_F32, tl_gshape_dims(3, d2), L);
    int c = tl_g_contract(g, "bik,bkj->bij", a, b, L);
    int m = tl_g_reduce(g, TL_GOP_RMAX, tl_g_unary(g, TL_GOP_TANH, c, L), 2u, 0, L);
    tl_graph_add_output(g, c);
    tl_graph_add_output(g, m);
    return g;
}

static const char *graph_err(TlGraph *g) { return tl_graph_error(g) ? tl_graph_error(g) : "ok"; }

static void set_inputs(TlGraph *g, TlInterp *it, TlCpuProgram *cp, int64_t bval) {
    for (int n = 0; n < g->nnodes; n++) {
        if (g->nodes[n].op != TL_GOP_INPUT) continue;
        TlGDimBinding b = {"B", bval};
        int64_t numel = 1, v;
        for (int i = 0; i < g->nodes[n].shape.rank; i++) {
            tl_gdim_eval(g, g->nodes[n].shape.dim[i], &b, 1, &v);
            numel *= v;
        }
        double *x = malloc(sizeof(double) * (size_t)numel);
        for (int64_t i = 0; i < numel; i++) x[i] = ((double)((i * 37 + n * 11) % 97) - 48.0) / 97.0;
        if (it) tl_interp_set(it, n, x, numel);
        if (cp) tl_cpu_set(cp, n, x, numel);
        free(x);
    }
}

/* A random point of the schedule space of kernel k (maybe invalid: apply must refuse it). */
static void random_sched(const TlLProgram *p, int k, TlKSched *s) {
    tl_ksched_default(p, k, s);
    static const int vecs[] = {0, 8, 16}, unr[] = {0, 2, 4, 8};
    for (int i = 0; i < s->nloops; i++) {
        if (rnd() % 2) s->loop[i].vec = vecs[rnd() % 3];
        if (rnd() % 2) s->loop[i].unroll = unr[rnd() % 4];
        if (rnd() % 3 == 0) s->loop[i].tile = (int64_t)1 << (1 + rnd() % 5);
    }
    if (p->kern[k].par_extent >= 0 && !p->kern[k].gemm.on && rnd() % 4 == 0) s->serial = 1;
    if (s->gemm.on) {
        static const int regs[][2] = {{14, 32}, {8, 32}, {6, 48}, {4, 64}, {16, 16}, {3, 16}};
        int r = (int)(rnd() % 6);
        s->gemm.mr = regs[r][0], s->gemm.nr = regs[r][1];
        s->gemm.kc = 1 + (int)(rnd() % 300);
        s->gemm.mc = s->gemm.mr * (1 + (int)(rnd() % 8));
        s->gemm.nc = s->gemm.nr * (1 + (int)(rnd() % 8));
        s->gemm.ku = 1 << (rnd() % 4);
        s->gemm.prefetch = (int)(rnd() % 12);
        s->gemm.nsplit = 1 + (int)(rnd() % 4);
    }
}

static int close_enough(const TlTensor *a, const TlTensor *b, double *worst) {
    if (a->numel != b->numel) return 0;
    double maxb = 0;
    for (int64_t i = 0; i < b->numel; i++) maxb = fmax(maxb, fabs(tl_tensor_get(b, i)));
    for (int64_t i = 0; i < a->numel; i++) {
        double x = tl_tensor_get(a, i), y = tl_tensor_get(b, i);
        double d = fabs(x - y);
        if (d > *worst) *worst = d;
        if (!(d <= 2e-5 * fmax(1, maxb) + 1e-4 * fabs(y))) return 0;
    }
    return 1;
}

/* Random schedules on every kernel of a graph: compiled == interpreter. */
static void random_schedules_case(const char *name, TlGraph *g, int64_t bval, int trials) {
    TlInterp *it = tl_interp_new(g);
    tl_interp_bind(it, "B", bval);
    set_inputs(g, it, NULL, bval);
    int ok = !tl_graph_error(g) && tl_interp_run(it) == 0;
    if (!ok) {
        case_begin("random schedules %s: the graph runs", name);
        EXPECTF(ok, "%s / %s", graph_err(g), tl_interp_error(it) ? tl_interp_error(it) : "");
        case_end();
    }
    for (int t = 0; t < trials && ok; t++) {
        case_begin("random schedules %s #%d", name, t);
        char err[256];
        TlLProgram *lp = tl_loops_lower(g, err, sizeof err);
        EXPECTF(lp != NULL, "%s", err);
        if (!lp) { case_end(); break; }
        int applied = 0;
        for (int k = 0; k < lp->nkern; k++) {
            TlKSched s;
            random_sched(lp, k, &s);
            char e2[256];
            if (tl_ksched_apply(lp, k, &s, e2, sizeof e2) == 0) applied++;
        }
        TlCpuProgram *cp = tl_cpu_compile_loops(g, lp, NULL, err, sizeof err);
        EXPECTF(cp != NULL, "%s", err);
        if (cp) {
            tl_cpu_bind(cp, "B", bval);
            set_inputs(g, NULL, cp, bval);
            EXPECTF(tl_cpu_run(cp) == 0, "%s", tl_cpu_error(cp));
            for (int o = 0; o < g->noutputs; o++) {
                double worst = 0;
                EXPECTF(close_enough(tl_cpu_output(cp, o), tl_interp_output(it, o), &worst), "output %d worst diff %g (%d kernels rescheduled)",
                        o, worst, applied);
            }
            tl_cpu_free(cp);
        }
        case_end();
    }
    tl_interp_free(it);
}

TEST(schedules_keep_results) {
    /* the cases print their own lines; this one checks the graphs build */
    TlGraph *g1 = graph_mixed(37, 29, 45);
    EXPECTF(!tl_graph_error(g1), "%s", graph_err(g1));
    tl_graph_free(g1);
}

TEST(invalid_schedules_refused) {
    TlGraph *g = graph_mixed(16, 16, 16);
    char err[256];
    TlLProgram *lp = tl_loops_lower(g, err, sizeof err);
    EXPECT(lp != NULL);
    if (lp) {
        for (int k = 0; k < lp->nkern; k++) {
            TlKSched s;
            tl_ksched_default(lp, k, &s);
            s.nloops = TL_KSCHED_MAX_LOOPS; /* more loops than any of these kernels has */
            EXPECT(tl_ksched_check(lp, k, &s, err, sizeof err) != 0);
            tl_ksched_default(lp, k, &s);
            if (s.nloops) { s.loop[0].vec = 7; EXPECT(tl_ksched_apply(lp, k, &s, err, sizeof err) != 0); }
            if (lp->kern[k].gemm.on) {
                tl_ksched_default(lp, k, &s);
                s.gemm.nr = 40; /* not a multiple of 16 */
                EXPECT(tl_ksched_check(lp, k, &s, err, sizeof err) != 0);
                tl_ksched_default(lp, k, &s);
                s.gemm.kc = 4096, s.gemm.nc = 4096; /* 64 MiB of packed B on the stack */
                EXPECT(tl_ksched_check(lp, k, &s, err, sizeof err) != 0);
            }
        }
        tl_loops_free(lp);
    }
    tl_graph_free(g);
}

TEST(json_round_trip) {
    TlKSched s = {0}, t;
    s.serial = 1, s.nloops = 3;
    s.loop[0].tile = 64, s.loop[2].vec = 16, s.loop[2].unroll = 4;
    s.gemm = (TlKGemmSched){1, 8, 32, 128, 256, 1024, 4, 8, 3};
    char *j = tl_ksched_to_json(&s);
    EXPECT(tl_ksched_from_json(j, &t) == 0);
    EXPECT(tl_ksched_equal(&s, &t));
    free(j);
    /* a cache entry from before the column strips reads as one strip */
    EXPECT(tl_ksched_from_json("{\"serial\": 0, \"loops\": [], \"gemm\": {\"mr\": 6, \"nr\": 64, \"mc\": 6, "
                               "\"kc\": 256, \"nc\": 1024, \"ku\": 8, \"prefetch\": 16}}", &t) == 0);
    EXPECT(t.gemm.on && t.gemm.nsplit == 1);
    EXPECT(tl_ksched_from_json("{\"serial\": 0, \"loops\": [], \"gemm\": {\"mr\": 6, \"nr\": 64, \"mc\": 6, "
                               "\"kc\": 256, \"nc\": 1024, \"ku\": 8, \"prefetch\": 16, \"nsplit\": 0}}", &t) != 0);
    EXPECT(tl_ksched_from_json("{\"serial\": 2, \"loops\": []}", &t) != 0);
    EXPECT(tl_ksched_from_json("{\"serial\": 0, \"loops\": [{\"vec\": \"x\"}]}", &t) != 0);
    EXPECT(tl_ksched_from_json("not json", &t) != 0);
    char buf[256];
    tl_ksched_format(&s, buf, sizeof buf);
    EXPECTF(strstr(buf, "L0:tile=64") && strstr(buf, "L2:vec=16,unroll=4") && strstr(buf, "gemm 8x32"), "%s", buf);
}

/* the GPU knob (tune --target cuda): JSON, checking, and applying it to a kernel */
TEST(gpu_block_knob) {
    TlKSched s = {0}, t;
    s.nloops = 1, s.gpu_block = 64;
    char *j = tl_ksched_to_json(&s);
    EXPECTF(strstr(j, "\"gpu_block\":64") && tl_ksched_from_json(j, &t) == 0 && t.gpu_block == 64 && tl_ksched_equal(&s, &t), "%s", j);
    free(j);
    t.gpu_block = 128;
    EXPECT(!tl_ksched_equal(&s, &t));
    TlGraph *g = graph_mixed(16, 8, 12);
    char err[256];
    TlLProgram *lp = tl_loops_lower(g, err, sizeof err);
    EXPECTF(lp != NULL, "%s", err);
    int k = -1;
    for (int i = 0; lp && i < lp->nkern; i++)
        if (!lp->kern[i].gemm.on && lp->kern[i].par_extent >= 0) k = i;
    if (k >= 0) {
        TlKSched d;
        tl_ksched_default(lp, k, &d);
        EXPECT(d.gpu_block == 0);
        d.gpu_block = 48;
        EXPECT(tl_ksched_apply(lp, k, &d, err, sizeof err) != 0 && strstr(err, "power of two"));
        d.gpu_block = 512;
        EXPECT(tl_ksched_apply(lp, k, &d, err, sizeof err) != 0);
        d.gpu_block = 64;
        EXPECTF(tl_ksched_apply(lp, k, &d, err, sizeof err) == 0 && lp->kern[k].gpu_block == 64, "%s", err);
        tl_ksched_default(lp, k, &t);
        EXPECT(t.gpu_block == 64);
    }
    tl_loops_free(lp);
    tl_graph_free(g);
}

TEST(hash_is_structural) {
    /* the same kernels lowered twice hash the same; a different size hashes differently */
    TlGraph *a = graph_mixed(16, 8, 24), *b = graph_mixed(16, 8, 24), *c = graph_mixed(16, 8, 25);
    char err[256];
    TlLProgram *pa = tl_loops_lower(a, err, sizeof err), *pb = tl_loops_lower(b, err, sizeof err), *pc = tl_loops_lower(c, err, sizeof err);
    EXPECT(pa && pb && pc);
    if (pa && pb && pc) {
        EXPECT(pa->nkern == pb->nkern);
        for (int k = 0; k < pa->nkern && k < pb->nkern; k++) EXPECT(tl_kernel_hash(pa, k) == tl_kernel_hash(pb, k));
        EXPECT(tl_kernel_hash(pa, 0) != tl_kernel_hash(pc, 0));
        /* a schedule does not change the hash of the lowered kernel it was computed from */
        uint64_t h0 = tl_kernel_hash(pa, 0);
        EXPECT(h0 == tl_kernel_hash(pb, 0));
    }
    tl_loops_free(pa), tl_loops_free(pb), tl_loops_free(pc);
    tl_graph_free(a), tl_graph_free(b), tl_graph_free(c);
}

TEST(bench_measures_and_checks) {
    TlGraph *g = graph_mixed(64, 48, 80);
    char err[256];
    TlLProgram *lp = tl_loops_lower(g, err, sizeof err);
    EXPECT(lp != NULL);
    int measured = 0;
    TlTuneMeasureOpts mo = {.repeats = 3, .min_sample_s = 2e-4};
    for (int k = 0; lp && k < lp->nkern; k++) {
        if (!tl_kernel_tunable(lp, k)) continue;
        TlTuneBench *b = tl_tune_bench_new(g, lp, k, NULL, &mo, err, sizeof err);
        EXPECTF(b != NULL, "%s", err);
        if (!b) continue;
        double t0, t1;
        EXPECTF(tl_tune_bench_measure(b, NULL, &t0, err, sizeof err) == 0, "%s", err);
        TlKSched s;
        tl_ksched_default(lp, k, &s);
        for (int i = 0; i < s.nloops; i++) s.loop[i].unroll = 2;
        if (s.gemm.on) s.gemm.kc = 32, s.gemm.ku = 2;
        EXPECTF(tl_tune_bench_measure(b, &s, &t1, err, sizeof err) == 0, "%s: %s", lp->kern[k].name, err);
        EXPECT(t0 > 0 && t0 < 1 && t1 > 0 && t1 < 1);
        measured++;
        tl_tune_bench_free(b);
    }
    EXPECT(measured >= 2);
    tl_loops_free(lp);
    tl_graph_free(g);
}

/* ---- the cache ---- */

static char dir[256];

static TlSchedEntry entry(int i) {
    TlSchedEntry e = {0};
    snprintf(e.key, sizeof e.key, "%016x", 0xabc000u + (unsigned)i);
    snprintf(e.kernel, sizeof e.kernel, "tl_k%d_add", i);
    snprintf(e.target, sizeof e.target, "cpu:test:avx512f:2t");
    snprintf(e.shape, sizeof e.shape, "%d,7", i);
    e.default_s = 1e-3 * (i + 1), e.tuned_s = 5e-4 * (i + 1), e.candidates = i;
    e.sched.nloops = 2, e.sched.loop[1].vec = 16, e.sched.loop[0].tile = 8 << (i % 4);
    return e;
}

TEST(cache_round_trip) {
    char err[256];
    TlSchedEntry e = entry(1), f;
    EXPECTF(tl_schedule_cache_put(dir, &e, err, sizeof err) == 0, "%s", err);
    EXPECT(tl_schedule_cache_get(dir, e.key, &f) == 0);
    EXPECT(strcmp(f.kernel, e.kernel) == 0 && strcmp(f.shape, e.shape) == 0 && strcmp(f.target, e.target) == 0);
    EXPECT(f.default_s == e.default_s && f.tuned_s == e.tuned_s && f.candidates == e.candidates);
    EXPECT(tl_ksched_equal(&f.sched, &e.sched));
    EXPECT(tl_schedule_cache_get(dir, "0000000000000000", &f) == 1);
}

TEST(cache_corrupt_entry_ignored) {
    const char *bad[] = {"", "{", "{\"version\": 1}", "[1,2,3]", ("{\"version\":1,\"key\":\"00000000000bad00\",\"target\":\"t\","
                         "\"shape\":\"\",\"default_s\":1,\"tuned_s\":1,\"candidates\":1,\"schedule\":{\"serial\":0,\"loops\":[{\"vec\":3.5}]}}")};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/00000000000bad00.json", dir);
        FILE *f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        TlSchedEntry e;
        EXPECTF(tl_schedule_cache_get(dir, "00000000000bad00", &e) == -1, "case %zu", i);
    }
    /* apply with a corrupt entry under a real key: a warning, the default schedule */
    TlGraph *g = graph_mixed(8, 8, 8);
    char err[256], key[32];
    TlLProgram *lp = tl_loops_lower(g, err, sizeof err);
    EXPECT(lp && tl_schedule_cache_key(lp, 0, NULL, "cpu:test", key, sizeof key, NULL, 0) == 0);
    if (lp) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.json", dir, key);
        FILE *f = fopen(path, "w");
        fputs("{\"version\": 1, \"key\": garbage", f);
        fclose(f);
        TlSchedSource src[64];
        EXPECT(tl_schedule_cache_apply(lp, "cpu:test", NULL, dir, src, NULL) == 0);
        EXPECT(src[0] == TL_SCHED_DEFAULT);
        /* and an entry that does not fit the kernel (too many loops): skipped */
        TlSchedEntry e = entry(0);
        snprintf(e.key, sizeof e.key, "%.16s", key);
        e.sched.nloops = TL_KSCHED_MAX_LOOPS;
        EXPECT(tl_schedule_cache_put(dir, &e, err, sizeof err) == 0);
        EXPECT(tl_schedule_cache_apply(lp, "cpu:test", NULL, dir, src, NULL) == 0);
        tl_loops_free(lp);
    }
    tl_graph_free(g);
}

TEST(cache_apply_changes_program) {
    TlGraph *g = graph_mixed(32, 16, 40);
    char err[256], key[32];
    TlLProgram *lp = tl_loops_lower(g, err, sizeof err);
    EXPECT(lp != NULL);
    if (!lp) return;
    int k = lp->nkern - 1; /* a pointwise or reduction kernel */
    EXPECT(tl_schedule_cache_key(lp, k, NULL, "cpu:apply", key, sizeof key, NULL, 0) == 0);
    TlSchedEntry e = {0};
    snprintf(e.key, sizeof e.key, "%.16s", key);
    snprintf(e.target, sizeof e.target, "cpu:apply");
    tl_ksched_default(lp, k, &e.sched);
    e.sched.loop[e.sched.nloops - 1].unroll = 4;
    EXPECT(tl_schedule_cache_put(dir, &e, err, sizeof err) == 0);
    TlSchedSource src[64];
    TlKSched sc[64];
    EXPECT(tl_schedule_cache_apply(lp, "cpu:apply", NULL, dir, src, sc) == 1);
    EXPECT(src[k] == TL_SCHED_CACHE);
    EXPECT(tl_ksched_equal(&sc[k], &e.sched));
    int loops[TL_KSCHED_MAX_LOOPS];
    int n = tl_loops_kernel_loops(lp, k, loops, TL_KSCHED_MAX_LOOPS);
    EXPECT(n > 0 && lp->st[loops[n - 1]].sched.unroll == 4);
    /* another target sees nothing */
    TlLProgram *lp2 = tl_loops_lower(g, err, sizeof err);
    EXPECT(tl_schedule_cache_apply(lp2, "cpu:other", NULL, dir, NULL, NULL) == 0);
    tl_loops_free(lp2);
    tl_loops_free(lp);
    tl_graph_free(g);
}

/* Two processes write the same 40 keys 25 times each with different contents; every entry
 * must read back whole afterwards (one writer's version or the other's). */
TEST(cache_concurrent_writers) {
    pid_t pid[2];
    for (int w = 0; w < 2; w++) {
        pid[w] = fork();
        if (pid[w] == 0) {
            char err[256];
            for (int round = 0; round < 25; round++)
                for (int i = 0; i < 40; i++) {
                    TlSchedEntry e = entry(100 + i);
                    e.candidates = w * 1000 + round;
                    if (tl_schedule_cache_put(dir, &e, err, sizeof err)) _exit(1);
                }
            _exit(0);
        }
    }
    for (int w = 0; w < 2; w++) {
        int st = 0;
        waitpid(pid[w], &st, 0);
        EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    int good = 0;
    for (int i = 0; i < 40; i++) {
        TlSchedEntry e = entry(100 + i), f;
        if (tl_schedule_cache_get(dir, e.key, &f) == 0 && tl_ksched_equal(&e.sched, &f.sched) &&
            (f.candidates == 24 || f.candidates == 1024))
            good++;
    }
    EXPECTF(good == 40, "%d of 40 entries whole", good);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/tl-test-tune-%d", (int)getpid());
    RUN(json_round_trip);
    RUN(gpu_block_knob);
    RUN(schedules_keep_results);
    RUN(invalid_schedules_refused);
    RUN(hash_is_structural);
    TlGraph *g1 = graph_mixed(37, 29, 45), *g2 = graph_batched(), *g3 = graph_mixed(5, 70, 3);
    random_schedules_case("mixed", g1, 1, 6);
    random_schedules_case("batched", g2, 3, 6);
    random_schedules_case("thin", g3, 1, 4);
    tl_graph_free(g1), tl_graph_free(g2), tl_graph_free(g3);
    RUN(bench_measures_and_checks);
    RUN(cache_round_trip);
    RUN(cache_corrupt_entry_ignored);
    RUN(cache_apply_changes_program);
    RUN(cache_concurrent_writers);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
    return check_done();
}
