/* test_gpuprog.c — GPU program descriptions (runtime/gpuprog.h), checked without a GPU.
 *
 * Every graph of graph_cases.h / gpu_cases.h (every primitive forward and backward, scans,
 * the SGEMM and warp schedules, the transformer Block step, 10 random graphs) is described
 * by tl_nvptx_describe, and then: the description passes its own check; it has the Loop
 * IR's kernels, buffers and host ops, every kernel is an entry of its PTX; every buffer
 * that holds a graph node has the node's element count when its size expression is
 * evaluated with the case's dim symbols; written to bytes and read back it writes the
 * same bytes again (nothing lost or reordered) with the same PTX. A truncated or corrupt
 * blob, a kernel naming a buffer that does not exist and an expression that refers
 * forward are refused with a message; an executor without a GPU fails with one line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuda.h"
#include "gpuprog.h"
#include "loops.h"
#include "nvptx/nvptx.h"

#include "gpu_cases.h"

static int nattn; /* attention kernels checked */
static unsigned char *small_blob; /* one case's bytes, for the corruption tests */
static size_t small_n;

static int64_t node_numel(int node, int *ok) {
    TlGDimBinding bind[4];
    for (int i = 0; i < NSYM; i++) bind[i].name = SYM[i], bind[i].value = SYMV[i];
    const TlGNode *n = &G->nodes[node];
    int64_t numel = 1;
    for (int i = 0; i < n->shape.rank; i++) {
        int64_t v;
        if (tl_gdim_eval(G, n->shape.dim[i], bind, NSYM, &v)) { *ok = 0; return 0; }
        numel *= v;
    }
    return numel;
}

static void graph_case_run(const char *name, int exact) {
    (void)exact;
    case_begin("gpuprog: %s", name);
    char err[512];
    TlLProgram *lp = tl_loops_lower(G, err, sizeof err);
    EXPECTF(lp != NULL, "lowering: %s", err);
    if (!lp) { case_end(); return; }
    TlNvptxOptions o = {.arch = "sm_80", .opt_level = 3};
    TlGpuDesc *d = tl_nvptx_describe(lp, &o, "case", err, sizeof err);
    EXPECTF(d != NULL, "describe: %s", err);
    if (!d) { tl_loops_free(lp); case_end(); return; }
    EXPECTF(tl_gpudesc_check(d, err, sizeof err) == 0, "check: %s", err);
    EXPECTF(d->nkern == lp->nkern && d->nbuf == lp->nbuf && d->nhost == lp->nhost && d->entry == lp->entry,
            "kernels %d/%d buffers %d/%d host ops %d/%d", d->nkern, lp->nkern, d->nbuf, lp->nbuf, d->nhost, lp->nhost);
    for (int k = 0; k < d->nkern; k++) {
        char pat[128];
        snprintf(pat, sizeof pat, ".entry %s(", d->kern[k].name);
        EXPECTF(strcmp(d->kern[k].name, lp->kern[k].name) == 0 && strstr(d->ptx, pat), "kernel %d: %s", k, d->kern[k].name);
    }
    int64_t syms[8] = {0}, vars[1] = {0};
    for (int s = 0; s < d->nsyms; s++)
        for (int i = 0; i < NSYM; i++)
            if (strcmp(d->syms[s], SYM[i]) == 0) syms[s] = SYMV[i];
    /* bf16/f16 GEMM launches are the packed tensor-core GEMM: K for the panels, and the
     * `<name>_pack` entry the executor launches first */
    for (int k = 0; k < d->nkern; k++) {
        const TlGpuKernel *g = &d->kern[k];
        int half = g->launch == TL_GPL_GEMM && lp->kern[k].gemm.dtype != TL_F32;
        char pat[160];
        snprintf(pat, sizeof pat, ".entry %s_pack(", g->name);
        EXPECTF(g->mma_pack == half && (strstr(d->ptx, pat) != NULL) == half, "kernel %d (%s): mma_pack %d", k, g->name, g->mma_pack);
        if (half && g->gemm_k >= 0)
            EXPECTF(tl_gpudesc_eval(d, g->gemm_k, syms, vars) == tl_loops_eval(lp, lp->kern[k].gemm.k, syms), "kernel %d: K", k);
        if (half) { /* the register-staged kernel: no companion */
            TlGpuDesc *r = tl_nvptx_describe(lp, &(TlNvptxOptions){.arch = "sm_80", .opt_level = 3, .mma_regs = 1}, "regs", err, sizeof err);
            EXPECTF(r && r->kern[k].mma_pack == 0 && r->kern[k].gemm_k == -1 && !strstr(r->ptx, pat), "mma_regs: %s", r ? "a pack kernel" : err);
            tl_gpudesc_free(r);
        }
    }
    /* f32 attention with a constant head of <= 64: the fused kernels' launch, (T, passes, BH)
     * in (gemm_m, gemm_n, gemm_batch); with no_attn the reference loop nest's flat launch */
    for (int k = 0; k < d->nkern; k++) {
        const TlLAttn *at = &lp->kern[k].attn;
        const TlLExpr *kd = at->on ? &lp->ex[at->kd] : NULL;
        if (!kd || kd->kind != TL_LE_INT || kd->ival > 64) continue;
        const TlGpuKernel *g = &d->kern[k];
        EXPECTF(g->launch == TL_GPL_ATTN && g->gemm_m >= 0 && g->gemm_n >= 0 && g->gemm_batch >= 0, "kernel %d (%s): launch %d", k, g->name, g->launch);
        if (g->launch == TL_GPL_ATTN && g->gemm_m >= 0 && g->gemm_n >= 0 && g->gemm_batch >= 0)
            EXPECTF(tl_gpudesc_eval(d, g->gemm_m, syms, vars) == tl_loops_eval(lp, at->t, syms) &&
                        tl_gpudesc_eval(d, g->gemm_batch, syms, vars) == tl_loops_eval(lp, at->bh, syms) &&
                        tl_gpudesc_eval(d, g->gemm_n, syms, vars) == (at->grad ? 2 : 1),
                    "kernel %d (%s): T, BH or passes", k, g->name);
        TlGpuDesc *r = tl_nvptx_describe(lp, &(TlNvptxOptions){.arch = "sm_80", .opt_level = 3, .no_attn = 1}, "ref", err, sizeof err);
        EXPECTF(r && r->kern[k].launch == TL_GPL_FLAT, "no_attn: %s", r ? "not a flat launch" : err);
        tl_gpudesc_free(r);
        nattn++;
    }
    int checked = 0;
    for (int node = 0; node < G->nnodes; node++) {
        int b = lp->node_buf[node];
        if (b < 0 || lp->buf[b].depth != 0 || lp->buf[b].node != node) continue;
        int ok = 1;
        int64_t want = node_numel(node, &ok);
        if (!ok) continue;
        int64_t got = tl_gpudesc_eval(d, d->buf[b].numel, syms, vars);
        EXPECTF(got == want, "b%d (node %%%d): size %lld, the node has %lld", b, node, (long long)got, (long long)want);
        checked++;
    }
    EXPECTF(checked > 0, "no buffer checked against its node");
    unsigned char *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    tl_gpudesc_write(d, &b1, &n1);
    TlGpuDesc *r = tl_gpudesc_read(b1, n1, err, sizeof err);
    EXPECTF(r != NULL, "read back: %s", err);
    if (r) {
        tl_gpudesc_write(r, &b2, &n2);
        EXPECTF(n1 == n2 && memcmp(b1, b2, n1) == 0, "round trip: %zu bytes, then %zu", n1, n2);
        EXPECT(strcmp(r->ptx, d->ptx) == 0 && strcmp(r->arch, "sm_80") == 0 && r->nsyms == d->nsyms);
        /* field by field, so a field both writer and reader skip is caught too */
        int same = r->nex == d->nex && r->nkern == d->nkern && r->nhost == d->nhost && r->nvars == d->nvars;
        for (int i = 0; same && i < d->nex; i++) {
            const TlGpuExpr *a = &d->ex[i], *c = &r->ex[i];
            same = a->kind == c->kind && a->op == c->op && a->a == c->a && a->b == c->b && a->c == c->c && a->v == c->v;
        }
        for (int k = 0; same && k < d->nkern; k++) {
            const TlGpuKernel *a = &d->kern[k], *c = &r->kern[k];
            same = a->launch == c->launch && a->par_extent == c->par_extent && a->gemm_m == c->gemm_m && a->gemm_n == c->gemm_n &&
                   a->gemm_batch == c->gemm_batch && a->mma_pack == c->mma_pack && a->gemm_k == c->gemm_k && a->nused == c->nused && !memcmp(a->used, c->used, sizeof *a->used * (size_t)a->nused);
        }
        for (int h = 0; same && h < d->nhost; h++) {
            const TlGpuHostOp *a = &d->host[h], *c = &r->host[h];
            same = a->kind == c->kind && a->kernel == c->kernel && a->dst == c->dst && a->src == c->src && a->dst_off == c->dst_off &&
                   a->src_off == c->src_off && a->nbytes == c->nbytes && a->var == c->var && a->count == c->count &&
                   a->reverse == c->reverse && a->body == c->body && a->next == c->next;
        }
        EXPECTF(same, "expressions, kernels or host ops differ after the round trip");
        for (int i = 0; i < d->nbuf; i++)
            EXPECTF(r->buf[i].kind == d->buf[i].kind && r->buf[i].elem == d->buf[i].elem && r->buf[i].ninit == d->buf[i].ninit &&
                        (!d->buf[i].init || memcmp(r->buf[i].init, d->buf[i].init, (size_t)(d->buf[i].ninit * d->buf[i].elem)) == 0),
                    "buffer %d differs after the round trip", i);
    }
    if (!small_blob || n1 < small_n) {
        free(small_blob);
        small_blob = b1, small_n = n1, b1 = NULL;
    }
    free(b1), free(b2);
    tl_gpudesc_free(r);
    tl_gpudesc_free(d);
    tl_loops_free(lp);
    case_end();
}

TEST(corrupt_blobs_are_refused) {
    char err[256];
    EXPECT(small_blob != NULL);
    if (!small_blob) return;
    int refused = 0, tried = 0;
    for (size_t n = 0; n < small_n; n += 1 + small_n / 400, tried++) {
        TlGpuDesc *d = tl_gpudesc_read(small_blob, n, err, sizeof err);
        refused += d == NULL && (strstr(err, "truncated") || strstr(err, "bad header"));
        tl_gpudesc_free(d);
    }
    EXPECTF(refused == tried, "%d of %d truncations refused", refused, tried);
    unsigned char *bad = malloc(small_n);
    memcpy(bad, small_blob, small_n);
    bad[0] = 'X';
    EXPECT(tl_gpudesc_read(bad, small_n, err, sizeof err) == NULL && strstr(err, "bad header"));
    free(bad);
}

TEST(malformed_descriptions_are_refused) {
    char err[256];
    TlGpuDesc *d = tl_gpudesc_read(small_blob, small_n, err, sizeof err);
    EXPECT(d != NULL);
    if (!d) return;
    int k = -1;
    for (int i = 0; i < d->nkern; i++)
        if (d->kern[i].nused > 0) k = i;
    EXPECT(k >= 0);
    if (k >= 0) {
        int saved = d->kern[k].used[0];
        d->kern[k].used[0] = d->nbuf;
        EXPECT(tl_gpudesc_check(d, err, sizeof err) != 0 && strstr(err, "malformed kernel"));
        d->kern[k].used[0] = saved;
    }
    EXPECT(tl_gpudesc_check(d, err, sizeof err) == 0);
    /* an expression referring to itself (operands must come first: no cycles) */
    TlGpuExpr *e = realloc(d->ex, sizeof *e * (size_t)(d->nex + 1));
    d->ex = e;
    e[d->nex] = (TlGpuExpr){.kind = TL_GPX_BIN, .op = TL_GPO_ADD, .a = d->nex, .b = 0, .c = -1};
    d->nex++;
    EXPECT(tl_gpudesc_check(d, err, sizeof err) != 0 && strstr(err, "malformed expression"));
    d->nex--;
    d->entry = d->nhost;
    EXPECT(tl_gpudesc_check(d, err, sizeof err) != 0 && strstr(err, "entry"));
    tl_gpudesc_free(d);
}

static void no_gpu_one_line(void) {
    if (tl_cuda_available()) {
        case_skip("no_gpu_one_line", "a GPU is present");
        return;
    }
    case_begin("no_gpu_one_line");
    char err[256] = "";
    TlGpuDesc *d = tl_gpudesc_read(small_blob, small_n, err, sizeof err);
    TlGpuExec *x = d ? tl_gpuexec_new(d, err, sizeof err) : NULL;
    EXPECTF(x == NULL && (strstr(err, "CUDA driver") || strstr(err, "no GPU")) && !strchr(err, '\n'), "'%s'", err);
    tl_gpuexec_free(x);
    tl_gpudesc_free(d);
    case_end();
}

static void block_case(void) {
    char err[256];
    if (gpu_block_step(err, sizeof err)) {
        case_begin("gpuprog: transformer Block(D=16, H=4) training step");
        EXPECTF(0, "%s", err);
        case_end();
    } else {
        graph_case_run("transformer Block(D=16, H=4) training step", 0);
    }
    gpu_block_free();
}

int main(void) {
    tl_diag_set_output(stdout);
    unary_cases();
    binary_cases();
    cast_cases();
    reduce_cases();
    contract_cases();
    movement_cases();
    source_cases();
    scan_cases();
    gpu_schedule_cases();
    gpu_source_schedule_cases();
    gpu_mma_cases();
    attention_cases();
    case_begin("the attention cases have fused attention launches");
    EXPECTF(nattn >= 26, "%d attention kernels", nattn);
    case_end();
    for (int s = 1; s <= 10; s++) random_graph_case(s);
    block_case();
    RUN(corrupt_blobs_are_refused);
    RUN(malformed_descriptions_are_refused);
    no_gpu_one_line();
    return check_done();
}
