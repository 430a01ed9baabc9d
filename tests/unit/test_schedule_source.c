/* test_schedule_source.c — `schedule` blocks of a .tl file (tests/unit/schedule_cases.tl)
 * applied to Loop IR (compiler/schedule_source.c): each kernel gets its block (the loops
 * really change: tiles, vector and unroll hints, order), and the compiled scheduled
 * kernels compute what the interpreter computes, at sizes the tiles do not divide. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/cpu.h"
#include "diag.h"
#include "interp.h"
#include "loops.h"
#include "lower.h"
#include "sema.h"

static int close_enough(const TlTensor *a, const TlTensor *b, double *worst) {
    if (a->numel != b->numel) return 0;
    double maxb = 0;
    for (int64_t i = 0; i < b->numel; i++) maxb = fmax(maxb, fabs(tl_tensor_get(b, i)));
    for (int64_t i = 0; i < a->numel; i++) {
        double x = tl_tensor_get(a, i), y = tl_tensor_get(b, i), d = fabs(x - y);
        if (d > *worst) *worst = d;
        if (!(d <= 2e-5 * fmax(1, maxb) + 1e-4 * fabs(y))) return 0;
    }
    return 1;
}

/* What the applied schedules did to the loops of p. */
typedef struct Seen { int scheduled, tiles, vec, unroll; } Seen;

static void scan_loops(const TlLProgram *p, int s, Seen *n) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        if (t->kind == TL_LS_LOOP) {
            n->tiles += t->sched.tile > 0;
            n->vec += t->sched.vectorize > 1;
            n->unroll += t->sched.unroll > 1;
        }
        scan_loops(p, t->body, n);
        scan_loops(p, t->els, n);
    }
}

static void run_case(TlProgram *prog, const char *callee, const char *args, Seen want, const char *first_loop_axis) {
    case_begin("schedule %s(%s)", callee, args);
    char err[512];
    TlLowerArg a[8];
    int na = tl_lower_parse_args(args, a, 8, err, sizeof err);
    EXPECTF(na > 0, "%s", err);
    TlLowered *l = na > 0 ? tl_lower_call(prog, callee, NULL, 0, NULL, a, na) : NULL;
    if (na > 0) tl_lower_args_free(a, na);
    EXPECTF(l != NULL, "lowering %s failed", callee);
    if (!l) { case_end(); return; }
    TlGraph *g = l->g;
    TlInterp *it = tl_interp_new(g);
    TlLProgram *lp = tl_loops_lower(g, err, sizeof err);
    EXPECTF(lp != NULL, "%s", err);
    if (lp) {
        Seen n = {0};
        for (int k = 0; k < lp->nkern; k++) {
            if (!lp->kern[k].sched) continue;
            n.scheduled++;
            EXPECTF(lp->kern[k].sched_text[0], "kernel %s has no schedule text", lp->kern[k].name);
            scan_loops(lp, lp->kern[k].body, &n);
            /* the outermost loop runs over the axis the schedule put first */
            const TlLStmt *top = &lp->st[lp->kern[k].body];
            if (first_loop_axis && top->kind == TL_LS_LOOP) {
                char buf[64];
                snprintf(buf, sizeof buf, "%d", top->axis);
                EXPECTF(!strcmp(buf, first_loop_axis), "%s: outermost loop over axis %s, want %s", lp->kern[k].name, buf,
                        first_loop_axis);
                EXPECTF(top->sched.parallel, "%s: the outermost loop is not the parallel one", lp->kern[k].name);
            }
        }
        EXPECTF(n.scheduled == want.scheduled, "%d scheduled kernels, want %d", n.scheduled, want.scheduled);
        EXPECTF(n.tiles == want.tiles && n.vec == want.vec && n.unroll == want.unroll,
                "tiles %d vec %d unroll %d, want %d %d %d", n.tiles, n.vec, n.unroll, want.tiles, want.vec, want.unroll);
        /* the same program without the blocks: no tiles at all */
        TlLoopsOptions off = {.fuse = -1, .no_source_schedules = 1};
        TlLProgram *plain = tl_loops_lower_opts(g, &off, err, sizeof err);
        Seen m = {0};
        for (int k = 0; plain && k < plain->nkern; k++) scan_loops(plain, plain->kern[k].body, &m);
        EXPECTF(plain && m.tiles == 0, "unscheduled lowering has %d tiles", m.tiles);
        tl_loops_free(plain);
    }
    TlCpuProgram *cp = lp ? tl_cpu_compile_loops(g, lp, NULL, err, sizeof err) : NULL;
    EXPECTF(cp != NULL, "%s", err);
    for (int i = 0; cp && i < l->ninputs; i++) {
        int node = l->inputs[i];
        int64_t numel = 1, v;
        for (int d = 0; d < g->nodes[node].shape.rank; d++) {
            tl_gdim_eval(g, g->nodes[node].shape.dim[d], NULL, 0, &v);
            numel *= v;
        }
        double *x = malloc(sizeof(double) * (size_t)numel);
        for (int64_t q = 0; q < numel; q++) x[q] = ((double)((q * 37 + i * 11) % 97) - 48.0) / 50.0;
        tl_interp_set(it, node, x, numel);
        tl_cpu_set(cp, node, x, numel);
        free(x);
    }
    if (cp) {
        EXPECTF(tl_interp_run(it) == 0, "%s", tl_interp_error(it));
        EXPECTF(tl_cpu_run(cp) == 0, "%s", tl_cpu_error(cp));
        for (int o = 0; o < g->noutputs; o++) {
            double worst = 0;
            EXPECTF(close_enough(tl_cpu_output(cp, o), tl_interp_output(it, o), &worst), "output %d: worst difference %g", o,
                    worst);
        }
        tl_cpu_free(cp);
    }
    tl_interp_free(it);
    tl_lowered_free(l);
    case_end();
}

/* The GPU directives of callee's block as the Loop IR records them (TlLKernel.gpu_sched,
 * TlLSched.gpu): threads per block, staged tensors, the loops over the blocks, split
 * across threads, and reduced across threads. */
static void gpu_case(TlProgram *prog, const char *callee, const char *args, int block, int nshared, int blocks, int threads,
                     int reduce) {
    case_begin("GPU directives of %s(%s)", callee, args);
    char err[512];
    TlLowerArg a[8];
    int na = tl_lower_parse_args(args, a, 8, err, sizeof err);
    TlLowered *l = na > 0 ? tl_lower_call(prog, callee, NULL, 0, NULL, a, na) : NULL;
    if (na > 0) tl_lower_args_free(a, na);
    TlLProgram *lp = l ? tl_loops_lower(l->g, err, sizeof err) : NULL;
    EXPECTF(lp != NULL, "lowering %s failed", callee);
    int nk = 0, nb = 0, nt = 0, nr = 0;
    for (int k = 0; lp && k < lp->nkern; k++) {
        const TlLKernel *K = &lp->kern[k];
        if (!K->sched) continue;
        nk++;
        EXPECTF(K->gpu_sched && K->gpu_block == block && K->ngpu_shared == nshared, "%s: gpu_sched %d, %d threads, %d staged",
                K->name, K->gpu_sched, K->gpu_block, K->ngpu_shared);
        EXPECTF(strstr(K->sched_gpu, "gpu_threads(") != NULL, "%s: text '%s'", K->name, K->sched_gpu);
        int loops[64], n = tl_loops_kernel_loops(lp, k, loops, 64);
        for (int i = 0; i < n; i++) {
            int g = lp->st[loops[i]].sched.gpu;
            nb += g == TL_LGPU_BLOCKS, nt += g == TL_LGPU_THREADS, nr += g == TL_LGPU_THREADS_REDUCE;
            if (g == TL_LGPU_BLOCKS) EXPECTF(i == 0 && lp->st[loops[i]].sched.parallel, "the blocks loop is not the parallel one");
        }
    }
    EXPECTF(nk == 1 && nb == blocks && nt == threads && nr == reduce, "%d kernels; loops: %d blocks, %d threads, %d reduced, want %d %d %d",
            nk, nb, nt, nr, blocks, threads, reduce);
    tl_loops_free(lp);
    if (l) tl_lowered_free(l);
    case_end();
}

int main(void) {
    TlSemaOptions opt = {.stdlib_dir = "stdlib", .warn_unused = 0};
    tl_diag_reset();
    TlProgram *prog = tl_sema_check_file("tests/unit/schedule_cases.tl", &opt);
    case_begin("schedule_cases.tl checks");
    EXPECTF(tl_diag_error_count() == 0, "%d errors", tl_diag_error_count());
    case_end();
    /* softmax: one row kernel; the tile splits i, the three j loops get vec 8 and unroll 2 */
    run_case(prog, "softmax", "x:f32[37,29]", (Seen){1, 1, 3, 3}, NULL);
    /* mm: j outermost (parallel), i and k tiled, the inner k loop vec 4 unroll 4 */
    run_case(prog, "mm", "a:f32[19,23] b:f32[23,21]", (Seen){1, 2, 1, 1}, "1");
    /* affine: parallel(j) moves j out; both tiled; i (now innermost) vectorized */
    run_case(prog, "affine", "x:f32[21,45]", (Seen){1, 2, 1, 0}, "1");
    /* rowsum: the reduced loop tiled and unrolled */
    run_case(prog, "rowsum", "x:f32[13,30]", (Seen){1, 1, 0, 1}, "0");
    /* swap: out[b, j, i]: order(i, b, j) puts result axis 2 (i) first */
    run_case(prog, "swap", "x:f32[5,7,9]", (Seen){1, 1, 0, 0}, "2");
    /* GPU directives: the CPU runs the loops as they are (and gets the same results) */
    run_case(prog, "scale_gpu", "x:f32[37,100] w:f32[100]", (Seen){1, 0, 0, 0}, "0");
    run_case(prog, "softmax_gpu", "x:f32[13,300]", (Seen){1, 0, 0, 0}, "0");
    run_case(prog, "mm_gpu", "a:f32[19,70] b:f32[70,45]", (Seen){1, 0, 0, 0}, "0");
    run_case(prog, "dot_gpu", "a:f32[5,200] b:f32[200,7]", (Seen){1, 0, 0, 0}, "0");
    run_case(prog, "rowsum_gpu", "x:f32[9,1000]", (Seen){1, 0, 0, 0}, "0");
    run_case(prog, "affine_gpu", "x:f32[21,45]", (Seen){1, 0, 0, 0}, "1");
    /* what the NVPTX back end reads: a row kernel's three loops over j (max, sum: reduced;
     * the stores: split), the matmul's j loop, the dot product's k loop */
    gpu_case(prog, "scale_gpu", "x:f32[37,100] w:f32[100]", 64, 1, 1, 1, 0);
    gpu_case(prog, "softmax_gpu", "x:f32[13,300]", 128, 1, 1, 1, 2);
    gpu_case(prog, "mm_gpu", "a:f32[19,70] b:f32[70,45]", 32, 1, 1, 1, 0);
    gpu_case(prog, "dot_gpu", "a:f32[5,200] b:f32[200,7]", 64, 0, 1, 0, 1);
    gpu_case(prog, "rowsum_gpu", "x:f32[9,1000]", 1024, 1, 1, 0, 1);
    gpu_case(prog, "affine_gpu", "x:f32[21,45]", 64, 0, 0, 0, 0);
    tl_program_free(prog);
    return check_done();
}
