/* nvptx_codegen.c — Loop IR -> LLVM IR for nvptx64-nvidia-cuda, libdevice, O3, PTX.
 *
 * One kernel per Loop IR kernel: `ptx_kernel void @name(ptr addrspace(1) noalias b..,
 * i64 sym.., i64 n)`. The kernel's parallel loop becomes a loop over the grid:
 *   flat: for (i = ctaid.x*ntid.x + tid.x; i < n; i += nctaid.x*ntid.x) body(i)
 *   warp: for (i = global_tid/32; i < n; i += total_threads/32) body(i), where the
 *         reduction loops of body (acc = init; for j { acc = U(acc, x_j) }) run j = lo+lane,
 *         lo+lane+32, ... and a butterfly of shfl.sync combines the 32 partial values
 *         (combine(a, b) = U with acc := a, x := b); loops that only store are split
 *         across the lanes the same way; other stores run in lane 0 only.
 * A kernel without a parallel loop runs on one thread. Matmuls with a TlLGemm get the tiled
 * SGEMM of nvptx_gemm.c (f32) or the tensor-core GEMM of nvptx_mma.c (bf16 / f16, sm_80+)
 * instead of their loop nest. Math (exp, log, tanh, erf, sin, cos,
 * pow) calls libdevice's __nv_* functions; the module then links libdevice.10.bc, makes
 * every defined function but the kernels internal (the `internalize` pass would delete the
 * kernels: docs/nvptx.md) and runs default<O3>. Philox (the `random` op) is generated
 * here as IR, the same formulas as runtime/philox.c. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "nvptx_internal.h"

#define PTX_KERNEL_CC 71

/* ---- target ---- */

static pthread_once_t nvptx_once = PTHREAD_ONCE_INIT;
static void nvptx_init(void) {
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
}

void tl_nvptx_target(NvTarget *t, const TlNvptxOptions *o) {
    memset(t, 0, sizeof *t);
    snprintf(t->arch, sizeof t->arch, "%s", o && o->arch && o->arch[0] ? o->arch : "sm_80");
    t->opt_level = o ? (o->opt_level < 0 || o->opt_level > 3 ? 3 : o->opt_level) : 3;
    t->no_gemm = o ? o->no_gemm : 0;
    t->no_warp_reduce = o ? o->no_warp_reduce : 0;
    t->no_collapse = o ? o->no_collapse : 0;
    const char *regs = getenv("TL_MMA_REGS");
    t->mma_regs = (o && o->mma_regs) || (regs && regs[0] == '1');
    const char *aref = getenv("TL_GPU_ATTN_REF");
    t->no_attn = (o && o->no_attn) || (aref && aref[0] == '1');
    t->sm = strncmp(t->arch, "sm_", 3) == 0 ? atoi(t->arch + 3) : 0;
}

LLVMTargetMachineRef tl_nvptx_target_machine(const NvTarget *t, char *err, int errn) {
    pthread_once(&nvptx_once, nvptx_init);
    LLVMTargetRef target;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple("nvptx64-nvidia-cuda", &target, &msg)) {
        if (err) snprintf(err, (size_t)errn, "no NVPTX target in this LLVM: %s", msg ? msg : "");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    int sm = atoi(t->arch + (strncmp(t->arch, "sm_", 3) == 0 ? 3 : 0));
    if (strncmp(t->arch, "sm_", 3) != 0 || sm < 50 || sm > 120) {
        if (err) snprintf(err, (size_t)errn, "unknown GPU architecture '%s' (expected sm_80, sm_90, ...)", t->arch);
        return NULL;
    }
    /* PTX 7.8 is the first with sm_90; ptxas of CUDA 12+ and drivers of 2022+ read it */
    const char *features = sm >= 90 ? "+ptx78" : "+ptx75";
    LLVMCodeGenOptLevel lvl = t->opt_level >= 3 ? LLVMCodeGenLevelAggressive : t->opt_level == 0 ? LLVMCodeGenLevelNone : LLVMCodeGenLevelDefault;
    return LLVMCreateTargetMachine(target, "nvptx64-nvidia-cuda", t->arch, features, lvl, LLVMRelocDefault, LLVMCodeModelDefault);
}

const char *tl_nvptx_cuda_root(void) {
    const char *r = getenv("CUDA_HOME");
    if (!r || !r[0]) r = getenv("CUDA_PATH");
    return r && r[0] ? r : "/usr/local/cuda";
}

/* ---- which buffers a kernel touches; how it is launched ---- */

static void mark_expr(const TlLProgram *p, int e, char *used) {
    for (; e >= 0;) {
        const TlLExpr *x = &p->ex[e];
        if (x->kind == TL_LE_LOAD) used[x->buf] = 1;
        mark_expr(p, x->b, used);
        mark_expr(p, x->c, used);
        e = x->a;
    }
}

static void mark_stmts(const TlLProgram *p, int s, char *used) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        if (t->kind == TL_LS_STORE) used[t->buf] = 1;
        mark_expr(p, t->lo, used), mark_expr(p, t->hi, used), mark_expr(p, t->index, used);
        mark_expr(p, t->value, used), mark_expr(p, t->cond, used);
        mark_stmts(p, t->body, used), mark_stmts(p, t->els, used);
    }
}

/* the buffers a kernel loads (mark_stmts also counts stored ones) */
static void mark_loads(const TlLProgram *p, int s, char *used) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        mark_expr(p, t->lo, used), mark_expr(p, t->hi, used), mark_expr(p, t->index, used);
        mark_expr(p, t->value, used), mark_expr(p, t->cond, used);
        mark_loads(p, t->body, used), mark_loads(p, t->els, used);
    }
}

/* Is buffer b never stored by the statements s? */
static int mark_is_load_only(const TlLProgram *p, int s, int b) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        if (t->kind == TL_LS_STORE && t->buf == b) return 0;
        if (!mark_is_load_only(p, t->body, b) || !mark_is_load_only(p, t->els, b)) return 0;
    }
    return 1;
}

static int uses_local(const TlLProgram *p, int e, int acc) {
    if (e < 0) return 0;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_LOCAL && x->var == acc) return 1;
    return uses_local(p, x->a, acc) || uses_local(p, x->b, acc) || uses_local(p, x->c, acc);
}

/* Do expressions a and b compute the same value (the same tree)? */
static int expr_equal(const TlLProgram *p, int a, int b) {
    if (a == b) return 1;
    if (a < 0 || b < 0) return 0;
    const TlLExpr *x = &p->ex[a], *y = &p->ex[b];
    if (x->kind != y->kind || x->type != y->type || x->op != y->op || x->ival != y->ival || x->var != y->var ||
        x->sym != y->sym || x->buf != y->buf || x->dtype != y->dtype || x->dist != y->dist || x->offset != y->offset ||
        !(x->fval == y->fval || (x->fval != x->fval && y->fval != y->fval)))
        return 0;
    return expr_equal(p, x->a, y->a) && expr_equal(p, x->b, y->b) && expr_equal(p, x->c, y->c);
}

/* Is e computed from local acc, constants and copies of cand only (through arithmetic)? */
static int fn_of(const TlLProgram *p, int e, int acc, int cand) {
    if (e < 0) return 1;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_LOCAL) return x->var == acc;
    if (x->kind == TL_LE_INT || x->kind == TL_LE_FLT) return 1;
    if (!uses_local(p, e, acc) && expr_equal(p, e, cand)) return 1;
    if (x->kind == TL_LE_UN || x->kind == TL_LE_BIN || x->kind == TL_LE_SELECT || x->kind == TL_LE_CAST || x->kind == TL_LE_ROUND)
        return fn_of(p, x->a, acc, cand) && fn_of(p, x->b, acc, cand) && fn_of(p, x->c, acc, cand);
    return 0;
}

/* The maximal acc-free, non-constant subtrees of e (at most max). */
static int candidates(const TlLProgram *p, int e, int acc, int *out, int n, int max) {
    if (e < 0 || n >= max) return n;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_INT || x->kind == TL_LE_FLT || x->kind == TL_LE_LOCAL) return n;
    if (!uses_local(p, e, acc)) {
        out[n++] = e;
        return n;
    }
    n = candidates(p, x->a, acc, out, n, max);
    n = candidates(p, x->b, acc, out, n, max);
    return candidates(p, x->c, acc, out, n, max);
}

/* The x of an update u = U(acc, x): the operand that, with acc, u is a function of
 * (for the NaN-propagating max, x appears three times and inside isnan(x)); -1 if none. */
static int find_x(const TlLProgram *p, int u, int acc) {
    int c[8];
    int n = candidates(p, u, acc, c, 0, 8);
    for (int i = 0; i < n; i++)
        if (fn_of(p, u, acc, c[i])) return c[i];
    return -1;
}

/* Is loop statement s (preceded by statement prev) a reduction a warp can split:
 *   acc = init; for j in [lo, hi) { acc = U(acc, x) }
 * with init the identity of the combine (0 for +, +-inf for the max/min select)? Returns
 * the update's x expression or -1. */
static int warp_reducible(const TlLProgram *p, int prev, int s) {
    if (prev < 0) return -1;
    const TlLStmt *ps = &p->st[prev], *l = &p->st[s];
    if (ps->kind != TL_LS_SET || l->kind != TL_LS_LOOP || l->sched.parallel || l->body < 0) return -1;
    const TlLStmt *u = &p->st[l->body];
    if (u->next >= 0 || u->kind != TL_LS_SET || u->var != ps->var) return -1;
    int acc = ps->var;
    if (uses_local(p, ps->value, acc) || !uses_local(p, u->value, acc)) return -1;
    const TlLExpr *init = &p->ex[ps->value], *U = &p->ex[u->value];
    int ok = 0;
    if (U->kind == TL_LE_BIN && U->op == TL_LOP_ADD)
        ok = (init->kind == TL_LE_FLT && init->fval == 0) || (init->kind == TL_LE_INT && init->ival == 0);
    else if (U->kind == TL_LE_SELECT)
        ok = init->kind == TL_LE_FLT && isinf(init->fval);
    if (!ok) return -1;
    if (uses_local(p, l->lo, acc) || uses_local(p, l->hi, acc)) return -1;
    return find_x(p, u->value, acc);
}

/* Statements that only store (no locals set): in warp mode their loop can be split
 * across the lanes, each lane storing its own elements. */
static int only_stores(const TlLProgram *p, int s) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        if (t->kind == TL_LS_SET || (t->kind == TL_LS_LOOP && t->sched.parallel)) return 0;
        if (!only_stores(p, t->body) || !only_stores(p, t->els)) return 0;
    }
    return 1;
}

static int uses_var(const TlLProgram *p, int e, int var);

/* A reduction nest after statement prev:
 *   acc = init; for v1 in [lo1, hi1) { for v2 ... { acc = U(acc, x) } }
 * each loop the only statement of the one above, no loop's bounds using a variable of the
 * nest, the innermost loop a reduction warp_reducible accepts. Its x, or -1; loops[] gets
 * the nest (outermost first), *n its depth. A warp or a block splits the nest's flattened
 * iteration space across its threads. */
int tl_nvptx_reduce_nest(const TlLProgram *p, int prev, int s, int *loops, int *n) {
    int m = 0;
    for (int cur = s;;) {
        const TlLStmt *l = &p->st[cur];
        if (l->kind != TL_LS_LOOP || l->sched.parallel || m >= TL_NVPTX_MAX_COLLAPSE || l->body < 0) return -1;
        for (int j = 0; j < m; j++) {
            int v = p->st[loops[j]].var;
            if (uses_var(p, l->lo, v) || uses_var(p, l->hi, v)) return -1;
        }
        loops[m++] = cur;
        const TlLStmt *b = &p->st[l->body];
        if (b->kind != TL_LS_LOOP || b->next >= 0) break;
        cur = l->body;
    }
    int x = warp_reducible(p, prev, loops[m - 1]);
    if (x >= 0) *n = m;
    return x;
}

/* The trip count of a nest when all its bounds are integers, else -1. */
static int64_t nest_trip(const TlLProgram *p, const int *loops, int n) {
    int64_t t = 1;
    for (int j = 0; j < n; j++) {
        const TlLExpr *a = &p->ex[p->st[loops[j]].lo], *b = &p->ex[p->st[loops[j]].hi];
        if (a->kind != TL_LE_INT || b->kind != TL_LE_INT) return -1;
        t *= b->ival > a->ival ? b->ival - a->ival : 0;
    }
    return t;
}

/* Does s hold a reduction nest not known to be shorter than min (a short constant extent
 * is not worth the lanes)? */
static int has_warp_reduce(const TlLProgram *p, int s, int64_t min) {
    int prev = -1;
    for (; s >= 0; prev = s, s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        if (t->kind == TL_LS_LOOP) {
            int loops[TL_NVPTX_MAX_COLLAPSE], n;
            if (tl_nvptx_reduce_nest(p, prev, s, loops, &n) >= 0) {
                int64_t trip = nest_trip(p, loops, n);
                if (trip >= 0 && trip < min) continue;
                return 1;
            }
            if (has_warp_reduce(p, t->body, min)) return 1;
        } else if (t->kind == TL_LS_IF && (has_warp_reduce(p, t->body, min) || has_warp_reduce(p, t->els, min))) {
            return 1;
        }
    }
    return 0;
}

int tl_nvptx_warp_reducible(const TlLProgram *p, int prev, int s) { return warp_reducible(p, prev, s); }
int tl_nvptx_only_stores(const TlLProgram *p, int s) { return only_stores(p, s); }

static int par_loop(const TlLProgram *p, int s) {
    for (; s >= 0; s = p->st[s].next)
        if (p->st[s].kind == TL_LS_LOOP && p->st[s].sched.parallel) return s;
    return -1;
}

/* Does some buffer of kernel k get both loaded and stored? */
static int kernel_rw(const TlLProgram *p, const TlLKernel *k) {
    char *loaded = calloc((size_t)p->nbuf + 1, 1), *stored = calloc((size_t)p->nbuf + 1, 1);
    if (!loaded || !stored) abort();
    mark_stmts(p, k->body, stored);
    mark_loads(p, k->body, loaded);
    int rw = 0;
    for (int i = 0; i < p->nbuf; i++) rw |= loaded[i] && stored[i] && !mark_is_load_only(p, k->body, i);
    free(loaded), free(stored);
    return rw;
}

/* Built from integers and dim symbols only: the same in every thread and iteration. */
static int invariant(const TlLProgram *p, int e) {
    if (e < 0) return 1;
    const TlLExpr *x = &p->ex[e];
    switch (x->kind) {
    case TL_LE_INT: case TL_LE_SYM: return 1;
    case TL_LE_BIN: case TL_LE_UN: case TL_LE_CAST: case TL_LE_SELECT:
        return invariant(p, x->a) && invariant(p, x->b) && invariant(p, x->c);
    default: return 0;
    }
}

static int uses_var(const TlLProgram *p, int e, int var) {
    if (e < 0) return 0;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_VAR && x->var == var) return 1;
    return uses_var(p, x->a, var) || uses_var(p, x->b, var) || uses_var(p, x->c, var);
}

static int has_load(const TlLProgram *p, int e) {
    if (e < 0) return 0;
    const TlLExpr *x = &p->ex[e];
    return x->kind == TL_LE_LOAD || has_load(p, x->a) || has_load(p, x->b) || has_load(p, x->c);
}

/* Does every store of s write an element chosen by var (its index uses var and loads
 * nothing), so that different values of var never write the same element? */
static int stores_follow(const TlLProgram *p, int s, int var) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        if (t->kind == TL_LS_STORE && (!uses_var(p, t->index, var) || has_load(p, t->index))) return 0;
        if (!stores_follow(p, t->body, var) || !stores_follow(p, t->els, var)) return 0;
    }
    return 1;
}

int tl_nvptx_blocks_loop(const TlLProgram *p, int ki) {
    const TlLKernel *k = &p->kern[ki];
    int pl = k->gpu_sched && k->par_extent >= 0 ? par_loop(p, k->body) : -1;
    return pl >= 0 && p->st[pl].sched.gpu == TL_LGPU_BLOCKS && !kernel_rw(p, k) ? pl : -1;
}

int tl_nvptx_collapse(const TlLProgram *p, int ki, const NvTarget *t, TlGpuLaunchKind kind, int *loops, int max) {
    const TlLKernel *k = &p->kern[ki];
    if (kind == TL_GPU_LAUNCH_GEMM || kind == TL_GPU_LAUNCH_ATTN || k->par_extent < 0 || max < 1) return 0;
    int pl = par_loop(p, k->body);
    if (pl < 0) return 0;
    loops[0] = pl;
    int n = 1;
    if (t->no_collapse || kernel_rw(p, k) || tl_nvptx_blocks_loop(p, ki) >= 0) return n;
    while (n < max) {
        int c = p->st[loops[n - 1]].body;
        if (c < 0) break;
        const TlLStmt *l = &p->st[c];
        if (l->next >= 0 || l->kind != TL_LS_LOOP || l->sched.parallel || !invariant(p, l->lo) || !invariant(p, l->hi) ||
            !stores_follow(p, l->body, l->var))
            break;
        loops[n++] = c;
    }
    return n;
}

/* Is index e of the form Y * C + v or v + Y * C (Y free of v; C a positive integer, *C)
 * or v itself (*C = 0)? */
static int index_form(const TlLProgram *p, int e, int var, int64_t *C) {
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_CAST) return index_form(p, x->a, var, C);
    if (x->kind == TL_LE_VAR && x->var == var) return *C = 0, 1;
    if (x->kind != TL_LE_BIN || x->op != TL_LOP_ADD) return 0;
    for (int side = 0; side < 2; side++) {
        const TlLExpr *v = &p->ex[side ? x->b : x->a], *m = &p->ex[side ? x->a : x->b];
        if (v->kind != TL_LE_VAR || v->var != var || m->kind != TL_LE_BIN || m->op != TL_LOP_MUL) continue;
        for (int o = 0; o < 2; o++) {
            const TlLExpr *cst = &p->ex[o ? m->b : m->a];
            if (cst->kind == TL_LE_INT && cst->ival > 0 && !uses_var(p, o ? m->a : m->b, var)) return *C = cst->ival, 1;
        }
    }
    return 0;
}

typedef struct Access {
    const TlLProgram *p;
    int var;
    int64_t hi;
    int64_t *stride; /* per buffer: its C (0: not yet known), -1: not stored */
    int ok;
} Access;

/* The access buf[e] is element v mod C of its row, C the same for every access of buf. */
static void access_check(Access *a, int buf, int e) {
    int64_t C;
    if (a->stride[buf] < 0) return;
    if (!index_form(a->p, e, a->var, &C) || (C > 0 && C < a->hi) || (C > 0 && a->stride[buf] > 0 && a->stride[buf] != C)) {
        a->ok = 0;
        return;
    }
    if (C > 0) a->stride[buf] = C;
}

static void access_expr(Access *a, int e) {
    for (; e >= 0 && a->ok;) {
        const TlLExpr *x = &a->p->ex[e];
        if (x->kind == TL_LE_LOAD) access_check(a, x->buf, x->a);
        access_expr(a, x->b);
        access_expr(a, x->c);
        e = x->a;
    }
}

static void access_stmts(Access *a, int s) {
    for (; s >= 0 && a->ok; s = a->p->st[s].next) {
        const TlLStmt *t = &a->p->st[s];
        if (t->kind == TL_LS_STORE) access_check(a, t->buf, t->index);
        access_expr(a, t->lo), access_expr(a, t->hi), access_expr(a, t->index), access_expr(a, t->value), access_expr(a, t->cond);
        access_stmts(a, t->body), access_stmts(a, t->els);
    }
}

int tl_nvptx_inner_parallel(const TlLProgram *p, int ki, const NvTarget *t, TlGpuLaunchKind kind) {
    const TlLKernel *k = &p->kern[ki];
    if (kind != TL_GPU_LAUNCH_FLAT || k->par_extent >= 0 || par_loop(p, k->body) >= 0 || t->no_collapse) return -1;
    int nest[TL_NVPTX_MAX_COLLAPSE], n = 0;
    for (int s = k->body; s >= 0 && p->st[s].next < 0 && p->st[s].kind == TL_LS_LOOP && n < TL_NVPTX_MAX_COLLAPSE;
         s = p->st[s].body) {
        if (has_load(p, p->st[s].lo) || has_load(p, p->st[s].hi)) return -1;
        nest[n++] = s;
    }
    if (n == 0 || p->st[nest[n - 1]].body < 0) return -1;
    char *stored = calloc((size_t)p->nbuf + 1, 1);
    int64_t *stride = calloc((size_t)p->nbuf + 1, sizeof *stride);
    if (!stored || !stride) abort();
    mark_stmts(p, k->body, stored); /* loads too: narrowed below */
    int best = -1;
    int64_t best_trip = 1;
    for (int j = 0; j < n; j++) {
        const TlLStmt *l = &p->st[nest[j]];
        const TlLExpr *lo = &p->ex[l->lo], *hi = &p->ex[l->hi];
        if (lo->kind != TL_LE_INT || hi->kind != TL_LE_INT || lo->ival < 0 || hi->ival - lo->ival <= best_trip) continue;
        for (int b = 0; b < p->nbuf; b++) stride[b] = stored[b] && !mark_is_load_only(p, k->body, b) ? 0 : -1;
        Access a = {p, l->var, hi->ival, stride, 1};
        access_stmts(&a, l->body);
        if (a.ok) best = nest[j], best_trip = hi->ival - lo->ival;
    }
    free(stored), free(stride);
    return best;
}

TlGpuLaunchKind tl_nvptx_plan(const TlLProgram *p, int ki, const NvTarget *t, char *used) {
    const TlLKernel *k = &p->kern[ki];
    memset(used, 0, (size_t)p->nbuf + 1);
    mark_stmts(p, k->body, used);
    const TlLGemm *g = &k->gemm;
    if (k->gpu_sched) return TL_GPU_LAUNCH_FLAT; /* the source's launch shape (its loops say it) */
    if (tl_nvptx_attn_head(p, ki, t)) return TL_GPU_LAUNCH_ATTN;
    /* f32: the SGEMM; bf16/f16: tensor cores (mma.sync m16n8k16 needs sm_80) */
    if (g->on && !t->no_gemm && used[g->a] && used[g->b] && used[g->c] && p->buf[g->c].elem == TL_LT_F32 &&
        p->buf[g->a].elem == TL_LT_F32 && p->buf[g->b].elem == TL_LT_F32 &&
        (g->dtype == TL_F32 || ((g->dtype == TL_BF16 || g->dtype == TL_F16) && t->sm >= 80)))
        return TL_GPU_LAUNCH_GEMM;
    int pl = par_loop(p, k->body);
    if (!t->no_warp_reduce && k->par_extent >= 0 && pl >= 0 && has_warp_reduce(p, p->st[pl].body, 16)) {
        /* stores run in lane 0 only, so no lane may read back what the kernel writes */
        if (!kernel_rw(p, k)) return TL_GPU_LAUNCH_WARP;
    }
    /* no parallel loop but a long reduction: one block of threads shares it */
    if (!t->no_warp_reduce && k->par_extent < 0 && pl < 0 && has_warp_reduce(p, k->body, 256) && !kernel_rw(p, k))
        return TL_GPU_LAUNCH_BLOCK;
    return TL_GPU_LAUNCH_FLAT;
}

/* ---- expressions ---- */

static LLVMTypeRef ltype(NvCg *c, TlLType t) {
    switch (t) {
    case TL_LT_I1: return c->i1;
    case TL_LT_I8: return c->i8;
    case TL_LT_I32: return c->i32;
    case TL_LT_I64: return c->i64;
    case TL_LT_F32: return c->f32;
    case TL_LT_F64: return c->f64;
    default: return c->voidt;
    }
}

static LLVMAttributeRef enum_attr(NvCg *c, const char *name, uint64_t v) {
    return LLVMCreateEnumAttribute(c->ctx, LLVMGetEnumAttributeKindForName(name, strlen(name)), v);
}

static LLVMValueRef call(NvCg *c, LLVMValueRef f, LLVMValueRef *args, int n) {
    return LLVMBuildCall2(c->b, LLVMGlobalGetValueType(f), f, args, (unsigned)n, "");
}

LLVMValueRef tl_nvptx_intrinsic(NvCg *c, const char *name, LLVMTypeRef *ts, int nts, LLVMValueRef *args, int n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, ts, (size_t)nts);
    return LLVMBuildCall2(c->b, LLVMIntrinsicGetType(c->ctx, id, ts, (size_t)nts), f, args, (unsigned)n, "");
}

/* llvm.nvvm.read.ptx.sreg.<name>, as i64 */
LLVMValueRef tl_nvptx_sreg(NvCg *c, const char *name) {
    char full[64];
    snprintf(full, sizeof full, "llvm.nvvm.read.ptx.sreg.%s", name);
    return LLVMBuildZExt(c->b, tl_nvptx_intrinsic(c, full, NULL, 0, NULL, 0), c->i64, "");
}

/* libdevice: __nv_<name>[f](x...) */
static LLVMValueRef libdevice(NvCg *c, const char *base, LLVMValueRef *args, int n) {
    LLVMTypeRef t = LLVMTypeOf(args[0]);
    char name[48];
    snprintf(name, sizeof name, "__nv_%s%s", base, t == c->f32 ? "f" : "");
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
    if (!f) {
        LLVMTypeRef ts[2] = {t, t};
        f = LLVMAddFunction(c->mod, name, LLVMFunctionType(t, ts, (unsigned)n, 0));
        LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, enum_attr(c, "nounwind", 0));
    }
    return call(c, f, args, n);
}

static LLVMValueRef gen_cast(NvCg *c, LLVMValueRef v, TlLType from, TlLType to) {
    if (from == to) return v;
    LLVMTypeRef T = ltype(c, to);
    int ff = tl_ltype_is_float(from), tf = tl_ltype_is_float(to);
    if (to == TL_LT_I1 || to == TL_LT_I8) {
        LLVMValueRef nz = ff ? LLVMBuildFCmp(c->b, LLVMRealUNE, v, LLVMConstReal(LLVMTypeOf(v), 0), "")
                             : LLVMBuildICmp(c->b, LLVMIntNE, v, LLVMConstInt(LLVMTypeOf(v), 0, 0), "");
        return to == TL_LT_I1 ? nz : LLVMBuildZExt(c->b, nz, T, "");
    }
    if (from == TL_LT_I1 || from == TL_LT_I8)
        return tf ? LLVMBuildUIToFP(c->b, v, T, "") : LLVMBuildZExt(c->b, v, T, "");
    if (ff && tf) return tl_ltype_size(to) > tl_ltype_size(from) ? LLVMBuildFPExt(c->b, v, T, "") : LLVMBuildFPTrunc(c->b, v, T, "");
    if (ff) {
        /* fptosi of NaN/out of range is poison in LLVM; PTX's cvt.rzi saturates (NaN -> 0),
         * which is what the CPU's cvttss gives for in-range values */
        return LLVMBuildFPToSI(c->b, v, T, "");
    }
    if (tf) return LLVMBuildSIToFP(c->b, v, T, "");
    return tl_ltype_size(to) > tl_ltype_size(from) ? LLVMBuildSExt(c->b, v, T, "") : LLVMBuildTrunc(c->b, v, T, "");
}

/* f32 rounded to the nearest bf16 (ties to even; NaN kept) or f16 (through `half`). */
LLVMValueRef tl_nvptx_round(NvCg *c, LLVMValueRef v, TlDType dt) {
    if (dt == TL_F16) return LLVMBuildFPExt(c->b, LLVMBuildFPTrunc(c->b, v, c->f16, ""), c->f32, "");
    LLVMValueRef bits = LLVMBuildBitCast(c->b, v, c->i32, "");
    LLVMValueRef lsb = LLVMBuildAnd(c->b, LLVMBuildLShr(c->b, bits, LLVMConstInt(c->i32, 16, 0), ""), LLVMConstInt(c->i32, 1, 0), "");
    LLVMValueRef r = LLVMBuildAdd(c->b, bits, LLVMBuildAdd(c->b, lsb, LLVMConstInt(c->i32, 0x7fff, 0), ""), "");
    r = LLVMBuildAnd(c->b, r, LLVMConstInt(c->i32, 0xffff0000u, 0), "");
    LLVMValueRef isnan = LLVMBuildFCmp(c->b, LLVMRealUNO, v, v, "");
    return LLVMBuildSelect(c->b, isnan, v, LLVMBuildBitCast(c->b, r, c->f32, ""), "");
}

static LLVMValueRef gen_unary(NvCg *c, TlLOp op, LLVMValueRef x, int isf) {
    LLVMTypeRef t = LLVMTypeOf(x);
    if (!isf) {
        if (op == TL_LOP_NEG) return LLVMBuildNeg(c->b, x, "");
        LLVMValueRef neg = LLVMBuildICmp(c->b, LLVMIntSLT, x, LLVMConstInt(t, 0, 0), "");
        return LLVMBuildSelect(c->b, neg, LLVMBuildNeg(c->b, x, ""), x, ""); /* abs */
    }
    switch (op) {
    case TL_LOP_NEG: return LLVMBuildFNeg(c->b, x, "");
    case TL_LOP_EXP: return libdevice(c, "exp", &x, 1);
    case TL_LOP_LOG: return libdevice(c, "log", &x, 1);
    case TL_LOP_TANH: return libdevice(c, "tanh", &x, 1);
    case TL_LOP_ERF: return libdevice(c, "erf", &x, 1);
    case TL_LOP_SIN: return libdevice(c, "sin", &x, 1);
    case TL_LOP_COS: return libdevice(c, "cos", &x, 1);
    case TL_LOP_SQRT: return tl_nvptx_intrinsic(c, "llvm.sqrt", &t, 1, &x, 1);
    case TL_LOP_RSQRT: return LLVMBuildFDiv(c->b, LLVMConstReal(t, 1.0), tl_nvptx_intrinsic(c, "llvm.sqrt", &t, 1, &x, 1), "");
    case TL_LOP_ABS: return tl_nvptx_intrinsic(c, "llvm.fabs", &t, 1, &x, 1);
    default: return x;
    }
}

static LLVMValueRef gen_binary(NvCg *c, TlLOp op, LLVMValueRef a, LLVMValueRef b, int isf) {
    LLVMTypeRef t = LLVMTypeOf(a);
    LLVMBuilderRef B = c->b;
    if (isf) {
        switch (op) {
        case TL_LOP_ADD: return LLVMBuildFAdd(B, a, b, "");
        case TL_LOP_SUB: return LLVMBuildFSub(B, a, b, "");
        case TL_LOP_MUL: return LLVMBuildFMul(B, a, b, "");
        case TL_LOP_DIV: return LLVMBuildFDiv(B, a, b, "");
        case TL_LOP_POW: {
            LLVMValueRef args[2] = {a, b};
            return libdevice(c, "pow", args, 2);
        }
        case TL_LOP_MAX: case TL_LOP_MIN: { /* isnan(a) || a >= b ? a : b (NaN from a) */
            LLVMValueRef ge = LLVMBuildFCmp(B, op == TL_LOP_MAX ? LLVMRealOGE : LLVMRealOLE, a, b, "");
            LLVMValueRef c1 = LLVMBuildOr(B, LLVMBuildFCmp(B, LLVMRealUNO, a, a, ""), ge, "");
            return LLVMBuildSelect(B, c1, a, b, "");
        }
        case TL_LOP_EQ: return LLVMBuildFCmp(B, LLVMRealOEQ, a, b, "");
        case TL_LOP_NE: return LLVMBuildFCmp(B, LLVMRealUNE, a, b, "");
        case TL_LOP_LT: return LLVMBuildFCmp(B, LLVMRealOLT, a, b, "");
        case TL_LOP_LE: return LLVMBuildFCmp(B, LLVMRealOLE, a, b, "");
        case TL_LOP_GT: return LLVMBuildFCmp(B, LLVMRealOGT, a, b, "");
        case TL_LOP_GE: return LLVMBuildFCmp(B, LLVMRealOGE, a, b, "");
        default: return a;
        }
    }
    switch (op) {
    case TL_LOP_ADD: return LLVMBuildAdd(B, a, b, "");
    case TL_LOP_SUB: return LLVMBuildSub(B, a, b, "");
    case TL_LOP_MUL: return LLVMBuildMul(B, a, b, "");
    case TL_LOP_DIV: { /* truncating; a zero divisor gives 0 instead of trapping */
        LLVMValueRef z = LLVMBuildICmp(B, LLVMIntEQ, b, LLVMConstInt(t, 0, 0), "");
        LLVMValueRef d = LLVMBuildSelect(B, z, LLVMConstInt(t, 1, 0), b, "");
        return LLVMBuildSelect(B, z, LLVMConstInt(t, 0, 0), LLVMBuildSDiv(B, a, d, ""), "");
    }
    case TL_LOP_IDIV: return LLVMBuildSDiv(B, a, b, "");
    case TL_LOP_IMOD: return LLVMBuildSRem(B, a, b, "");
    case TL_LOP_MAX: return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, a, b, ""), a, b, "");
    case TL_LOP_MIN: return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, a, b, ""), a, b, "");
    case TL_LOP_AND: return LLVMBuildAnd(B, a, b, "");
    case TL_LOP_OR: return LLVMBuildOr(B, a, b, "");
    case TL_LOP_EQ: return LLVMBuildICmp(B, LLVMIntEQ, a, b, "");
    case TL_LOP_NE: return LLVMBuildICmp(B, LLVMIntNE, a, b, "");
    case TL_LOP_LT: return LLVMBuildICmp(B, LLVMIntSLT, a, b, "");
    case TL_LOP_LE: return LLVMBuildICmp(B, LLVMIntSLE, a, b, "");
    case TL_LOP_GT: return LLVMBuildICmp(B, LLVMIntSGT, a, b, "");
    case TL_LOP_GE: return LLVMBuildICmp(B, LLVMIntSGE, a, b, "");
    default: return a;
    }
}

LLVMValueRef tl_nvptx_entry_alloca(NvCg *c, LLVMTypeRef t) {
    LLVMBuilderRef eb = LLVMCreateBuilderInContext(c->ctx);
    LLVMValueRef first = LLVMGetFirstInstruction(c->entry);
    if (first) LLVMPositionBuilderBefore(eb, first);
    else LLVMPositionBuilderAtEnd(eb, c->entry);
    LLVMValueRef a = LLVMBuildAlloca(eb, t, "");
    LLVMDisposeBuilder(eb);
    return a;
}

static LLVMValueRef var_slot(NvCg *c, int var) {
    if (!c->varv[var]) c->varv[var] = tl_nvptx_entry_alloca(c, c->i64);
    return c->varv[var];
}

/* ---- Philox4x32-10 as IR (runtime/philox.h defines the streams) ---- */

static LLVMValueRef mulhilo(LLVMBuilderRef B, LLVMTypeRef i32, LLVMTypeRef i64, uint32_t m, LLVMValueRef x, LLVMValueRef *lo) {
    LLVMValueRef p = LLVMBuildMul(B, LLVMConstInt(i64, m, 0), LLVMBuildZExt(B, x, i64, ""), "");
    *lo = LLVMBuildTrunc(B, p, i32, "");
    return LLVMBuildTrunc(B, LLVMBuildLShr(B, p, LLVMConstInt(i64, 32, 0), ""), i32, "");
}

/* define internal double @tl.philox.<uniform|normal>(i64 seed, i64 offset, i64 i) */
static LLVMValueRef philox_fn(NvCg *c, int normal) {
    const char *name = normal ? "tl.philox.normal" : "tl.philox.uniform";
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
    if (f) return f;
    LLVMTypeRef at[3] = {c->i64, c->i64, c->i64};
    f = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->f64, at, 3, 0));
    LLVMSetLinkage(f, LLVMInternalLinkage);
    LLVMBuilderRef saved = c->b;
    LLVMBuilderRef B = c->b = LLVMCreateBuilderInContext(c->ctx);
    LLVMPositionBuilderAtEnd(B, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
    LLVMValueRef seed = LLVMGetParam(f, 0), off = LLVMGetParam(f, 1), i = LLVMGetParam(f, 2);
    LLVMValueRef c32 = LLVMConstInt(c->i64, 32, 0);
    LLVMValueRef block = LLVMBuildLShr(B, i, LLVMConstInt(c->i64, normal ? 1 : 2, 0), "");
    LLVMValueRef x[4] = {LLVMBuildTrunc(B, block, c->i32, ""), LLVMBuildTrunc(B, LLVMBuildLShr(B, block, c32, ""), c->i32, ""),
                         LLVMBuildTrunc(B, off, c->i32, ""), LLVMBuildTrunc(B, LLVMBuildLShr(B, off, c32, ""), c->i32, "")};
    LLVMValueRef k0 = LLVMBuildTrunc(B, seed, c->i32, ""), k1 = LLVMBuildTrunc(B, LLVMBuildLShr(B, seed, c32, ""), c->i32, "");
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 = LLVMBuildAdd(B, k0, LLVMConstInt(c->i32, 0x9E3779B9u, 0), "");
            k1 = LLVMBuildAdd(B, k1, LLVMConstInt(c->i32, 0xBB67AE85u, 0), "");
        }
        LLVMValueRef lo0, lo1;
        LLVMValueRef hi0 = mulhilo(B, c->i32, c->i64, 0xD2511F53u, x[0], &lo0);
        LLVMValueRef hi1 = mulhilo(B, c->i32, c->i64, 0xCD9E8D57u, x[2], &lo1);
        LLVMValueRef y0 = LLVMBuildXor(B, LLVMBuildXor(B, hi1, x[1], ""), k0, "");
        LLVMValueRef y2 = LLVMBuildXor(B, LLVMBuildXor(B, hi0, x[3], ""), k1, "");
        x[0] = y0, x[1] = lo1, x[2] = y2, x[3] = lo0;
    }
    LLVMValueRef inv = LLVMConstReal(c->f64, 1.0 / 16777216.0), c8 = LLVMConstInt(c->i32, 8, 0);
#define U01(w) LLVMBuildFMul(B, LLVMBuildUIToFP(B, LLVMBuildLShr(B, (w), c8, ""), c->f64, ""), inv, "")
    LLVMValueRef res;
    if (!normal) {
        LLVMValueRef sel = LLVMBuildTrunc(B, LLVMBuildAnd(B, i, LLVMConstInt(c->i64, 3, 0), ""), c->i32, "");
        LLVMValueRef w = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntEQ, sel, LLVMConstInt(c->i32, 0, 0), ""), x[0],
                         LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntEQ, sel, LLVMConstInt(c->i32, 1, 0), ""), x[1],
                         LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntEQ, sel, LLVMConstInt(c->i32, 2, 0), ""), x[2], x[3], ""), ""), "");
        res = U01(w);
    } else {
        LLVMValueRef even = LLVMBuildICmp(B, LLVMIntEQ, LLVMBuildAnd(B, i, LLVMConstInt(c->i64, 1, 0), ""), LLVMConstInt(c->i64, 0, 0), "");
        LLVMValueRef a = LLVMBuildSelect(B, even, x[0], x[2], ""), b = LLVMBuildSelect(B, even, x[1], x[3], "");
        LLVMValueRef u1 = LLVMBuildFMul(B, LLVMBuildFAdd(B, LLVMBuildUIToFP(B, LLVMBuildLShr(B, a, c8, ""), c->f64, ""),
                                                      LLVMConstReal(c->f64, 1.0), ""), inv, "");
        LLVMValueRef u2 = U01(b);
        LLVMValueRef lg = libdevice(c, "log", &u1, 1);
        LLVMValueRef r = LLVMBuildFMul(B, LLVMConstReal(c->f64, -2.0), lg, "");
        LLVMTypeRef ft = c->f64;
        LLVMValueRef s = tl_nvptx_intrinsic(c, "llvm.sqrt", &ft, 1, &r, 1);
        LLVMValueRef ang = LLVMBuildFMul(B, LLVMConstReal(c->f64, 6.283185307179586476925286766559), u2, "");
        res = LLVMBuildFMul(B, s, libdevice(c, "cos", &ang, 1), "");
    }
#undef U01
    LLVMBuildRet(B, res);
    LLVMDisposeBuilder(B);
    c->b = saved;
    return f;
}

LLVMValueRef tl_nvptx_gen(NvCg *c, int e) {
    if (c->sub_xv && expr_equal(c->p, e, c->sub_x)) return c->sub_xv;
    const TlLExpr *x = &c->p->ex[e];
    switch (x->kind) {
    case TL_LE_INT: return LLVMConstInt(ltype(c, x->type), (unsigned long long)x->ival, 1);
    case TL_LE_FLT: return LLVMConstReal(ltype(c, x->type), x->fval);
    case TL_LE_VAR: return LLVMBuildLoad2(c->b, c->i64, var_slot(c, x->var), "");
    case TL_LE_SYM: return c->symv[x->sym];
    case TL_LE_LOCAL:
        if (x->var == c->sub_acc && c->sub_accv) return c->sub_accv;
        return LLVMBuildLoad2(c->b, ltype(c, x->type), c->localv[x->var], "");
    case TL_LE_LOAD: {
        LLVMTypeRef t = ltype(c, x->type);
        LLVMValueRef idx = tl_nvptx_gen(c, x->a);
        for (int i = 0; i < c->k->ngpu_shared; i++)
            if (c->shv[i] && c->k->gpu_shared[i] == x->buf) { /* the block's staged row */
                LLVMValueRef at[2] = {LLVMConstInt(c->i64, 0, 0), LLVMBuildSub(c->b, idx, c->shbase[i], "")};
                LLVMTypeRef arr = LLVMArrayType2(t, (uint64_t)c->k->gpu_shared_len[i]);
                return LLVMBuildLoad2(c->b, t, LLVMBuildInBoundsGEP2(c->b, arr, c->shv[i], at, 2, ""), "");
            }
        LLVMValueRef ptr = LLVMBuildInBoundsGEP2(c->b, t, c->bufv[x->buf], &idx, 1, "");
        return LLVMBuildLoad2(c->b, t, ptr, "");
    }
    case TL_LE_UN: return gen_unary(c, x->op, tl_nvptx_gen(c, x->a), tl_ltype_is_float(x->type));
    case TL_LE_BIN: {
        LLVMValueRef a = tl_nvptx_gen(c, x->a), b = tl_nvptx_gen(c, x->b);
        return gen_binary(c, x->op, a, b, tl_ltype_is_float(c->p->ex[x->a].type));
    }
    case TL_LE_SELECT: {
        LLVMValueRef cnd = tl_nvptx_gen(c, x->a), a = tl_nvptx_gen(c, x->b), b = tl_nvptx_gen(c, x->c);
        return LLVMBuildSelect(c->b, cnd, a, b, "");
    }
    case TL_LE_CAST: return gen_cast(c, tl_nvptx_gen(c, x->a), c->p->ex[x->a].type, x->type);
    case TL_LE_ROUND: return tl_nvptx_round(c, tl_nvptx_gen(c, x->a), x->dtype);
    case TL_LE_RANDOM: {
        LLVMValueRef f = philox_fn(c, x->dist == TL_RANDOM_NORMAL);
        LLVMValueRef args[3] = {tl_nvptx_gen(c, x->b), LLVMConstInt(c->i64, x->offset, 0), tl_nvptx_gen(c, x->a)};
        return call(c, f, args, 3);
    }
    }
    return NULL;
}

/* ---- statements ---- */

static void gen_stmts(NvCg *c, int s);

/* for (v = lo; v < hi; v += step) body */
static void counted_loop(NvCg *c, int var, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef step, int body) {
    LLVMValueRef slot = var_slot(c, var);
    LLVMBuildStore(c->b, lo, slot);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "loop");
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "body");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "done");
    LLVMBuildBr(c->b, head);
    LLVMPositionBuilderAtEnd(c->b, head);
    LLVMValueRef iv = LLVMBuildLoad2(c->b, c->i64, slot, "");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, iv, hi, ""), bb, exit);
    LLVMPositionBuilderAtEnd(c->b, bb);
    gen_stmts(c, body);
    LLVMBuildStore(c->b, LLVMBuildNSWAdd(c->b, LLVMBuildLoad2(c->b, c->i64, slot, ""), step, ""), slot);
    LLVMBuildBr(c->b, head);
    LLVMPositionBuilderAtEnd(c->b, exit);
}

/* One shfl.sync.bfly of a 32- or 64-bit value across the full warp. */
static LLVMValueRef shfl_bfly(NvCg *c, LLVMValueRef v, int lanemask) {
    LLVMTypeRef t = LLVMTypeOf(v);
    int wide = t == c->f64 || t == c->i64;
    LLVMTypeRef vt = wide ? LLVMVectorType(c->i32, 2) : c->i32;
    LLVMValueRef bits = LLVMBuildBitCast(c->b, v, vt, "");
    LLVMValueRef parts[2];
    for (int h = 0; h < (wide ? 2 : 1); h++) {
        LLVMValueRef w = wide ? LLVMBuildExtractElement(c->b, bits, LLVMConstInt(c->i32, (unsigned)h, 0), "") : bits;
        LLVMValueRef args[4] = {LLVMConstInt(c->i32, 0xffffffffu, 0), w, LLVMConstInt(c->i32, (unsigned)lanemask, 0),
                                LLVMConstInt(c->i32, 0x1f, 0)};
        parts[h] = tl_nvptx_intrinsic(c, "llvm.nvvm.shfl.sync.bfly.i32", NULL, 0, args, 4);
    }
    LLVMValueRef r = parts[0];
    if (wide) {
        r = LLVMBuildInsertElement(c->b, LLVMGetUndef(vt), parts[0], LLVMConstInt(c->i32, 0, 0), "");
        r = LLVMBuildInsertElement(c->b, r, parts[1], LLVMConstInt(c->i32, 1, 0), "");
    }
    return LLVMBuildBitCast(c->b, r, t, "");
}

/* combine(acc, shfl_bfly(acc, m)) for m = 16, 8, 4, 2, 1: the update u with local acc read
 * as a and expression x as the other lane's value */
static LLVMValueRef butterfly(NvCg *c, LLVMValueRef a, const TlLStmt *u, int x) {
    for (int m = 16; m >= 1; m /= 2) {
        LLVMValueRef b = shfl_bfly(c, a, m);
        c->sub_acc = u->var, c->sub_accv = a, c->sub_x = x, c->sub_xv = b;
        a = tl_nvptx_gen(c, u->value);
        c->sub_acc = -1, c->sub_accv = NULL, c->sub_x = -1, c->sub_xv = NULL;
    }
    return a;
}

static LLVMValueRef shared_red(NvCg *c) {
    char name[96];
    snprintf(name, sizeof name, "%s.red", c->k->name);
    LLVMValueRef g = LLVMGetNamedGlobal(c->mod, name);
    if (g) return g;
    LLVMTypeRef t = LLVMArrayType2(c->i64, 32);
    g = LLVMAddGlobalInAddressSpace(c->mod, t, name, 3);
    LLVMSetInitializer(g, LLVMGetUndef(t));
    LLVMSetLinkage(g, LLVMInternalLinkage);
    LLVMSetAlignment(g, 8);
    return g;
}

/* The reduction nest loops[0..n) (init statement init) split across the lanes (warp mode)
 * or the block's threads (block mode): lane l runs the flattened iterations l, l + lanes,
 * ...; a butterfly combines a warp's partial values; in block mode each warp's lane 0
 * puts its value in shared memory and every warp then combines the (up to 32) warps'
 * values in the same order, so every thread holds the same whole reduction in acc. */
static void gen_nest_reduce(NvCg *c, const TlLStmt *init, const int *loops, int n, int x) {
    const TlLProgram *p = c->p;
    const TlLStmt *in = &p->st[loops[n - 1]];
    const TlLStmt *u = &p->st[in->body];
    int acc = u->var;
    if (n == 1) {
        LLVMValueRef lo = LLVMBuildAdd(c->b, tl_nvptx_gen(c, in->lo), c->lane, "");
        counted_loop(c, in->var, lo, tl_nvptx_gen(c, in->hi), c->lanes, in->body);
    } else {
        LLVMValueRef lo[TL_NVPTX_MAX_COLLAPSE], trip[TL_NVPTX_MAX_COLLAPSE], total = LLVMConstInt(c->i64, 1, 0);
        for (int j = 0; j < n; j++) {
            const TlLStmt *l = &p->st[loops[j]];
            lo[j] = tl_nvptx_gen(c, l->lo);
            LLVMValueRef d = LLVMBuildSub(c->b, tl_nvptx_gen(c, l->hi), lo[j], "");
            LLVMValueRef neg = LLVMBuildICmp(c->b, LLVMIntSLT, d, LLVMConstInt(c->i64, 0, 0), "");
            trip[j] = LLVMBuildSelect(c->b, neg, LLVMConstInt(c->i64, 0, 0), d, "");
            total = LLVMBuildMul(c->b, total, trip[j], "");
        }
        LLVMValueRef fslot = tl_nvptx_entry_alloca(c, c->i64);
        LLVMBuildStore(c->b, c->lane, fslot);
        LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "nest");
        LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "nest_body");
        LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "nest_done");
        LLVMBuildBr(c->b, head);
        LLVMPositionBuilderAtEnd(c->b, head);
        LLVMValueRef f = LLVMBuildLoad2(c->b, c->i64, fslot, "");
        LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, f, total, ""), bb, exit);
        LLVMPositionBuilderAtEnd(c->b, bb);
        LLVMValueRef rest = f;
        for (int j = n - 1; j >= 0; j--) {
            LLVMValueRef v = j == 0 ? rest : LLVMBuildURem(c->b, rest, trip[j], "");
            if (j > 0) rest = LLVMBuildUDiv(c->b, rest, trip[j], "");
            LLVMBuildStore(c->b, LLVMBuildAdd(c->b, lo[j], v, ""), var_slot(c, p->st[loops[j]].var));
        }
        gen_stmts(c, in->body);
        LLVMBuildStore(c->b, LLVMBuildNSWAdd(c->b, LLVMBuildLoad2(c->b, c->i64, fslot, ""), c->lanes, ""), fslot);
        LLVMBuildBr(c->b, head);
        LLVMPositionBuilderAtEnd(c->b, exit);
    }
    LLVMTypeRef at = ltype(c, c->k->local_type[acc]);
    LLVMValueRef a = butterfly(c, LLVMBuildLoad2(c->b, at, c->localv[acc], ""), u, x);
    if (c->par_mode >= 2) {
        LLVMValueRef red = shared_red(c), five = LLVMConstInt(c->i64, 5, 0), l31 = LLVMConstInt(c->i64, 31, 0);
        LLVMValueRef wl = LLVMBuildAnd(c->b, c->lane, l31, ""), warp = LLVMBuildLShr(c->b, c->lane, five, "");
        LLVMValueRef nw = LLVMBuildLShr(c->b, LLVMBuildAdd(c->b, c->lanes, l31, ""), five, "");
        LLVMBasicBlockRef put = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "red_put");
        LLVMBasicBlockRef sync = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "red_sync");
        LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, wl, LLVMConstInt(c->i64, 0, 0), ""), put, sync);
        LLVMPositionBuilderAtEnd(c->b, put);
        LLVMValueRef idx[2] = {LLVMConstInt(c->i64, 0, 0), warp};
        LLVMBuildStore(c->b, a, LLVMBuildInBoundsGEP2(c->b, LLVMArrayType2(c->i64, 32), red, idx, 2, ""));
        LLVMBuildBr(c->b, sync);
        LLVMPositionBuilderAtEnd(c->b, sync);
        tl_nvptx_intrinsic(c, "llvm.nvvm.barrier0", NULL, 0, NULL, 0);
        /* every warp: lane l takes warp l's value (the identity past the last warp) */
        LLVMValueRef has = LLVMBuildICmp(c->b, LLVMIntULT, wl, nw, "");
        LLVMValueRef widx[2] = {LLVMConstInt(c->i64, 0, 0), LLVMBuildSelect(c->b, has, wl, LLVMConstInt(c->i64, 0, 0), "")};
        LLVMValueRef v = LLVMBuildLoad2(c->b, at, LLVMBuildInBoundsGEP2(c->b, LLVMArrayType2(c->i64, 32), red, widx, 2, ""), "");
        v = LLVMBuildSelect(c->b, has, v, tl_nvptx_gen(c, init->value), "");
        a = butterfly(c, v, u, x);
        /* the shared slots are read by all before a later reduction writes them again */
        tl_nvptx_intrinsic(c, "llvm.nvvm.barrier0", NULL, 0, NULL, 0);
    }
    LLVMBuildStore(c->b, a, c->localv[acc]);
}

/* The rows of the buffers a source schedule stages (TlLKernel.gpu_shared) for this
 * iteration of the blocks loop, variable v: after a barrier (the previous iteration's
 * reads are done), the block's threads copy elements v * row + [0, len) (those inside
 * the buffer) into shared memory; a second barrier makes them visible to all. */
static void stage_rows(NvCg *c, LLVMValueRef v) {
    const TlLKernel *k = c->k;
    if (!k->ngpu_shared) return;
    tl_nvptx_intrinsic(c, "llvm.nvvm.barrier0", NULL, 0, NULL, 0);
    for (int i = 0; i < k->ngpu_shared; i++) {
        int b = k->gpu_shared[i];
        LLVMTypeRef t = ltype(c, c->p->buf[b].elem), arr = LLVMArrayType2(t, (uint64_t)k->gpu_shared_len[i]);
        char name[96];
        snprintf(name, sizeof name, "%s.sh%d", k->name, i);
        LLVMValueRef g = LLVMAddGlobalInAddressSpace(c->mod, arr, name, 3);
        LLVMSetInitializer(g, LLVMGetUndef(arr));
        LLVMSetLinkage(g, LLVMInternalLinkage);
        LLVMSetAlignment(g, 16);
        LLVMValueRef base = LLVMBuildMul(c->b, v, LLVMConstInt(c->i64, (unsigned long long)k->gpu_shared_row[i], 0), "");
        LLVMValueRef numel = tl_nvptx_gen(c, c->p->buf[b].numel);
        LLVMValueRef slot = tl_nvptx_entry_alloca(c, c->i64);
        LLVMBuildStore(c->b, c->lane, slot);
        LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "stage");
        LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "stage_elem");
        LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "staged");
        LLVMBuildBr(c->b, head);
        LLVMPositionBuilderAtEnd(c->b, head);
        LLVMValueRef e = LLVMBuildLoad2(c->b, c->i64, slot, "");
        LLVMValueRef len = LLVMConstInt(c->i64, (unsigned long long)k->gpu_shared_len[i], 0);
        LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, e, len, ""), body, exit);
        LLVMPositionBuilderAtEnd(c->b, body);
        LLVMValueRef gi = LLVMBuildAdd(c->b, base, e, "");
        LLVMValueRef in = LLVMBuildICmp(c->b, LLVMIntSLT, gi, numel, "");
        LLVMValueRef safe = LLVMBuildSelect(c->b, in, gi, LLVMConstInt(c->i64, 0, 0), "");
        LLVMValueRef x = LLVMBuildLoad2(c->b, t, LLVMBuildInBoundsGEP2(c->b, t, c->bufv[b], &safe, 1, ""), "");
        x = LLVMBuildSelect(c->b, in, x, LLVMConstNull(t), "");
        LLVMValueRef at[2] = {LLVMConstInt(c->i64, 0, 0), e};
        LLVMBuildStore(c->b, x, LLVMBuildInBoundsGEP2(c->b, arr, g, at, 2, ""));
        LLVMBuildStore(c->b, LLVMBuildNSWAdd(c->b, e, c->lanes, ""), slot);
        LLVMBuildBr(c->b, head);
        LLVMPositionBuilderAtEnd(c->b, exit);
        c->shv[i] = g, c->shbase[i] = base;
    }
    tl_nvptx_intrinsic(c, "llvm.nvvm.barrier0", NULL, 0, NULL, 0);
}

/* gpu_blocks: for (v = lo + ctaid.x; v < hi; v += nctaid.x) { staged rows; body }, every
 * thread of a block at the same v (the barriers of reductions and staging need that);
 * the block's threads are the lanes of the loops over gpu_threads' index */
static void gen_blocks_loop(NvCg *c, const TlLStmt *s) {
    c->lane = tl_nvptx_sreg(c, "tid.x"), c->lanes = tl_nvptx_sreg(c, "ntid.x");
    LLVMValueRef slot = var_slot(c, s->var), hi = tl_nvptx_gen(c, s->hi);
    LLVMBuildStore(c->b, LLVMBuildAdd(c->b, tl_nvptx_gen(c, s->lo), tl_nvptx_sreg(c, "ctaid.x"), ""), slot);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "blocks");
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "block_item");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "blocks_done");
    LLVMBuildBr(c->b, head);
    LLVMPositionBuilderAtEnd(c->b, head);
    LLVMValueRef iv = LLVMBuildLoad2(c->b, c->i64, slot, "");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, iv, hi, ""), bb, exit);
    LLVMPositionBuilderAtEnd(c->b, bb);
    stage_rows(c, iv);
    gen_stmts(c, s->body);
    for (int i = 0; i < TL_SCHED_MAX_SHARED; i++) c->shv[i] = c->shbase[i] = NULL;
    LLVMBuildStore(c->b, LLVMBuildNSWAdd(c->b, LLVMBuildLoad2(c->b, c->i64, slot, ""), tl_nvptx_sreg(c, "nctaid.x"), ""), slot);
    LLVMBuildBr(c->b, head);
    LLVMPositionBuilderAtEnd(c->b, exit);
    c->lane = c->lanes = NULL;
}

static void gen_loop(NvCg *c, const TlLStmt *s) {
    if (!s->sched.parallel) {
        counted_loop(c, s->var, tl_nvptx_gen(c, s->lo), tl_nvptx_gen(c, s->hi), LLVMConstInt(c->i64, 1, 0), s->body);
        return;
    }
    if (c->par_mode == 3) {
        gen_blocks_loop(c, s);
        return;
    }
    /* the parallel loop over the grid: threads (flat) or warps */
    LLVMValueRef tid = tl_nvptx_sreg(c, "tid.x"), ntid = tl_nvptx_sreg(c, "ntid.x");
    LLVMValueRef gid = LLVMBuildAdd(c->b, LLVMBuildMul(c->b, tl_nvptx_sreg(c, "ctaid.x"), ntid, ""), tid, "");
    LLVMValueRef total = LLVMBuildMul(c->b, tl_nvptx_sreg(c, "nctaid.x"), ntid, "");
    if (c->par_mode == 1) {
        LLVMValueRef five = LLVMConstInt(c->i64, 5, 0);
        c->lane = LLVMBuildAnd(c->b, tid, LLVMConstInt(c->i64, 31, 0), "");
        c->lanes = LLVMConstInt(c->i64, 32, 0);
        gid = LLVMBuildLShr(c->b, gid, five, ""), total = LLVMBuildLShr(c->b, total, five, "");
    }
    if (c->nchain <= 1) {
        counted_loop(c, s->var, gid, c->n, total, s->body);
        return;
    }
    /* collapsed loops: flat index f over the product of their trip counts (n), each
     * variable recovered as lo + (f / (product of the inner trips)) % trip */
    LLVMValueRef fslot = tl_nvptx_entry_alloca(c, c->i64);
    LLVMBuildStore(c->b, gid, fslot);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "items");
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "item");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "items_done");
    LLVMBuildBr(c->b, head);
    LLVMPositionBuilderAtEnd(c->b, head);
    LLVMValueRef f = LLVMBuildLoad2(c->b, c->i64, fslot, "");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, f, c->n, ""), bb, exit);
    LLVMPositionBuilderAtEnd(c->b, bb);
    LLVMValueRef rest = f;
    for (int j = c->nchain - 1; j >= 0; j--) {
        const TlLStmt *l = &c->p->st[c->chain[j]];
        LLVMValueRef lo = tl_nvptx_gen(c, l->lo);
        LLVMValueRef v;
        if (j == 0) {
            v = LLVMBuildAdd(c->b, lo, rest, "");
        } else {
            LLVMValueRef trip = LLVMBuildSub(c->b, tl_nvptx_gen(c, l->hi), lo, "");
            v = LLVMBuildAdd(c->b, lo, LLVMBuildURem(c->b, rest, trip, ""), "");
            rest = LLVMBuildUDiv(c->b, rest, trip, "");
        }
        LLVMBuildStore(c->b, v, var_slot(c, l->var));
    }
    gen_stmts(c, c->p->st[c->chain[c->nchain - 1]].body);
    LLVMBuildStore(c->b, LLVMBuildNSWAdd(c->b, LLVMBuildLoad2(c->b, c->i64, fslot, ""), total, ""), fslot);
    LLVMBuildBr(c->b, head);
    LLVMPositionBuilderAtEnd(c->b, exit);
}

static void gen_stmts(NvCg *c, int s) {
    int prev = -1;
    for (; s >= 0; prev = s, s = c->p->st[s].next) {
        const TlLStmt *t = &c->p->st[s];
        switch (t->kind) {
        case TL_LS_LOOP: {
            /* gpu_blocks (par_mode 3): only the loops gpu_threads names use the lanes */
            int blk = c->par_mode == 3 && c->lane && !c->split;
            int warp = c->par_mode >= 1 && c->lane && !c->split && (!blk || t->sched.gpu == TL_LGPU_THREADS_REDUCE);
            int loops[TL_NVPTX_MAX_COLLAPSE], nl = 0;
            int x = warp ? tl_nvptx_reduce_nest(c->p, prev, s, loops, &nl) : -1;
            if (x >= 0) {
                gen_nest_reduce(c, &c->p->st[prev], loops, nl, x);
            } else if (blk && t->sched.gpu == TL_LGPU_THREADS) { /* independent iterations: each lane its own */
                c->split = 1;
                LLVMValueRef lo = LLVMBuildAdd(c->b, tl_nvptx_gen(c, t->lo), c->lane, "");
                counted_loop(c, t->var, lo, tl_nvptx_gen(c, t->hi), c->lanes, t->body);
                c->split = 0;
            } else if (blk) { /* every lane runs it (a reduction this schedule cannot split) */
                gen_loop(c, t);
            } else if (warp && !t->sched.parallel && only_stores(c->p, t->body)) {
                /* lane-split: j = lo + lane, lo + lane + lanes, ...; every lane stores */
                c->split = 1;
                LLVMValueRef lo = LLVMBuildAdd(c->b, tl_nvptx_gen(c, t->lo), c->lane, "");
                counted_loop(c, t->var, lo, tl_nvptx_gen(c, t->hi), c->lanes, t->body);
                c->split = 0;
            } else if (s == c->ipar) {
                /* the loop a kernel without a parallel loop runs across threads */
                LLVMValueRef gid = LLVMBuildAdd(c->b, LLVMBuildMul(c->b, tl_nvptx_sreg(c, "ctaid.x"), tl_nvptx_sreg(c, "ntid.x"), ""),
                                                tl_nvptx_sreg(c, "tid.x"), "");
                LLVMValueRef total = LLVMBuildMul(c->b, tl_nvptx_sreg(c, "nctaid.x"), tl_nvptx_sreg(c, "ntid.x"), "");
                LLVMValueRef lo = LLVMBuildAdd(c->b, tl_nvptx_gen(c, t->lo), gid, "");
                counted_loop(c, t->var, lo, tl_nvptx_gen(c, t->hi), total, t->body);
            } else {
                gen_loop(c, t);
            }
            break;
        }
        case TL_LS_STORE: {
            LLVMBasicBlockRef join = NULL;
            if (c->par_mode >= 1 && c->lane && !c->split) { /* one lane stores what all lanes computed */
                LLVMBasicBlockRef st = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "lane0");
                join = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "stored");
                LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, c->lane, LLVMConstInt(c->i64, 0, 0), ""), st, join);
                LLVMPositionBuilderAtEnd(c->b, st);
            }
            LLVMTypeRef ty = ltype(c, c->p->buf[t->buf].elem);
            LLVMValueRef v = tl_nvptx_gen(c, t->value), idx = tl_nvptx_gen(c, t->index);
            LLVMValueRef ptr = LLVMBuildInBoundsGEP2(c->b, ty, c->bufv[t->buf], &idx, 1, "");
            LLVMBuildStore(c->b, v, ptr);
            if (join) {
                LLVMBuildBr(c->b, join);
                LLVMPositionBuilderAtEnd(c->b, join);
            }
            break;
        }
        case TL_LS_SET: LLVMBuildStore(c->b, tl_nvptx_gen(c, t->value), c->localv[t->var]); break;
        case TL_LS_IF: {
            LLVMBasicBlockRef th = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "then");
            LLVMBasicBlockRef el = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "else");
            LLVMBasicBlockRef jn = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "join");
            LLVMBuildCondBr(c->b, tl_nvptx_gen(c, t->cond), th, el);
            LLVMPositionBuilderAtEnd(c->b, th);
            gen_stmts(c, t->body);
            LLVMBuildBr(c->b, jn);
            LLVMPositionBuilderAtEnd(c->b, el);
            gen_stmts(c, t->els);
            LLVMBuildBr(c->b, jn);
            LLVMPositionBuilderAtEnd(c->b, jn);
            break;
        }
        }
    }
}

/* ---- kernels ---- */

static void annotate(NvCg *c, LLVMValueRef fn, const char *key, unsigned v) {
    LLVMValueRef ops[3] = {fn, LLVMMDStringInContext(c->ctx, key, (unsigned)strlen(key)), LLVMConstInt(c->i32, v, 0)};
    LLVMAddNamedMetadataOperand(c->mod, "nvvm.annotations", LLVMMDNodeInContext(c->ctx, ops, 3));
}

int tl_nvptx_mma_packed(const TlLProgram *p, int k, const NvTarget *t) {
    return p->kern[k].gemm.dtype != TL_F32 && !t->mma_regs;
}

/* The packed tensor-core GEMM's companion `<name>_pack` (nvptx_mma.c): the same parameters
 * (buffers, scratch, symbols, n). */
static void gen_pack_kernel(NvCg *c, const TlLKernel *k, const char *used, LLVMTypeRef ft, int nb) {
    const TlLProgram *p = c->p;
    char name[256];
    snprintf(name, sizeof name, "%s_pack", k->name);
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, ft);
    LLVMSetFunctionCallConv(fn, PTX_KERNEL_CC);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, enum_attr(c, "nounwind", 0));
    for (int i = 0; i <= nb; i++) LLVMAddAttributeAtIndex(fn, (unsigned)i + 1, enum_attr(c, "noalias", 0));
    annotate(c, fn, "maxntidx", TL_GPU_BLOCK);
    memset(c->bufv, 0, sizeof *c->bufv * (size_t)(p->nbuf + 1));
    c->fn = fn, c->k = k;
    c->entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMPositionBuilderAtEnd(c->b, c->entry);
    int a = 0;
    for (int i = 0; i < p->nbuf; i++)
        if (used[i]) c->bufv[i] = LLVMGetParam(fn, (unsigned)a++);
    for (int i = 0; i < p->nsyms; i++) c->symv[i] = LLVMGetParam(fn, (unsigned)(nb + 1 + i));
    c->n = LLVMGetParam(fn, (unsigned)(nb + 1 + p->nsyms));
    tl_nvptx_gen_mma_pack(c, &k->gemm, LLVMGetParam(fn, (unsigned)nb));
    LLVMBuildRetVoid(c->b);
}

static void gen_kernel(NvCg *c, int ki) {
    const TlLProgram *p = c->p;
    const TlLKernel *k = &p->kern[ki];
    char *used = malloc((size_t)p->nbuf + 1);
    if (!used) abort();
    TlGpuLaunchKind kind = tl_nvptx_plan(p, ki, c->t, used);
    int packed = kind == TL_GPU_LAUNCH_GEMM && tl_nvptx_mma_packed(p, ki, c->t);
    int nb = 0;
    for (int i = 0; i < p->nbuf; i++) nb += used[i];
    int nargs = nb + packed + p->nsyms + 1; /* buffers, the packed GEMM's scratch, symbols, n */
    LLVMTypeRef *at = malloc(sizeof *at * (size_t)(nargs + 1));
    if (!at) abort();
    for (int i = 0; i < nargs; i++) at[i] = i < nb + packed ? c->ptr1 : c->i64;
    LLVMTypeRef ft = LLVMFunctionType(c->voidt, at, (unsigned)nargs, 0);
    if (packed) gen_pack_kernel(c, k, used, ft, nb);
    LLVMValueRef fn = LLVMAddFunction(c->mod, k->name, ft);
    LLVMSetFunctionCallConv(fn, PTX_KERNEL_CC);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, enum_attr(c, "nounwind", 0));
    for (int i = 0; i < nb + packed; i++) LLVMAddAttributeAtIndex(fn, (unsigned)i + 1, enum_attr(c, "noalias", 0));
    annotate(c, fn, "maxntidx", kind == TL_GPU_LAUNCH_ATTN ? TL_GPU_ATTN_ROWS : k->gpu_sched && k->gpu_block > 0 ? k->gpu_block : TL_GPU_BLOCK);
    /* SGEMM: <= 128 registers, 2 blocks per SM; the MMA kernel needs more (one block) */
    if (kind == TL_GPU_LAUNCH_GEMM) annotate(c, fn, "minctasm", k->gemm.dtype == TL_F32 || packed ? 2 : 1);

    memset(c->bufv, 0, sizeof *c->bufv * (size_t)(p->nbuf + 1));
    memset(c->varv, 0, sizeof *c->varv * (size_t)(p->nvars + 1));
    c->fn = fn, c->k = k, c->lane = c->lanes = NULL, c->split = 0;
    c->sub_acc = c->sub_x = -1, c->sub_accv = c->sub_xv = NULL;
    c->par_mode = kind == TL_GPU_LAUNCH_WARP ? 1 : kind == TL_GPU_LAUNCH_BLOCK ? 2 : tl_nvptx_blocks_loop(p, ki) >= 0 ? 3 : 0;
    for (int i = 0; i < TL_SCHED_MAX_SHARED; i++) c->shv[i] = c->shbase[i] = NULL;
    c->nchain = tl_nvptx_collapse(p, ki, c->t, kind, c->chain, TL_NVPTX_MAX_COLLAPSE);
    c->ipar = tl_nvptx_inner_parallel(p, ki, c->t, kind);
    c->entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMPositionBuilderAtEnd(c->b, c->entry);
    int a = 0;
    for (int i = 0; i < p->nbuf; i++)
        if (used[i]) c->bufv[i] = LLVMGetParam(fn, (unsigned)a++);
    for (int i = 0; i < p->nsyms; i++) c->symv[i] = LLVMGetParam(fn, (unsigned)(nb + packed + i));
    c->n = LLVMGetParam(fn, (unsigned)(nb + packed + p->nsyms));
    c->localv = malloc(sizeof *c->localv * (size_t)(k->nlocals + 1));
    if (!c->localv) abort();
    for (int l = 0; l < k->nlocals; l++) c->localv[l] = LLVMBuildAlloca(c->b, ltype(c, k->local_type[l]), "");
    if (kind == TL_GPU_LAUNCH_ATTN) {
        tl_nvptx_gen_attn(c, &k->attn, tl_nvptx_attn_head(p, ki, c->t));
    } else if (kind == TL_GPU_LAUNCH_GEMM) {
        if (k->gemm.dtype == TL_F32) tl_nvptx_gen_gemm(c, &k->gemm);
        else if (packed) tl_nvptx_gen_mma_packed(c, &k->gemm, LLVMGetParam(fn, (unsigned)nb));
        else tl_nvptx_gen_mma(c, &k->gemm);
    } else if (kind == TL_GPU_LAUNCH_BLOCK) { /* one block: its threads are the lanes */
        c->lane = tl_nvptx_sreg(c, "tid.x"), c->lanes = tl_nvptx_sreg(c, "ntid.x");
        gen_stmts(c, k->body);
    } else if (par_loop(p, k->body) < 0 && c->ipar < 0) { /* no parallel loop: thread 0 runs it all */
        LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(c->ctx, fn, "run");
        LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, fn, "skip");
        LLVMValueRef gid = LLVMBuildAdd(c->b, LLVMBuildMul(c->b, tl_nvptx_sreg(c, "ctaid.x"), tl_nvptx_sreg(c, "ntid.x"), ""),
                                        tl_nvptx_sreg(c, "tid.x"), "");
        LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, gid, LLVMConstInt(c->i64, 0, 0), ""), run, done);
        LLVMPositionBuilderAtEnd(c->b, run);
        gen_stmts(c, k->body);
        LLVMBuildBr(c->b, done);
        LLVMPositionBuilderAtEnd(c->b, done);
    } else {
        gen_stmts(c, k->body);
    }
    LLVMBuildRetVoid(c->b);
    free(c->localv);
    c->localv = NULL;
    free(at);
    free(used);
}

static LLVMModuleRef codegen(LLVMContextRef ctx, const TlLProgram *p, const NvTarget *t, LLVMTargetMachineRef tm,
                             char *err, int errn) {
    NvCg c;
    memset(&c, 0, sizeof c);
    c.ctx = ctx, c.p = p, c.t = t;
    c.mod = LLVMModuleCreateWithNameInContext("tl", ctx);
    LLVMSetTarget(c.mod, "nvptx64-nvidia-cuda");
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    char *dl = LLVMCopyStringRepOfTargetData(td);
    LLVMSetDataLayout(c.mod, dl);
    LLVMDisposeMessage(dl);
    LLVMDisposeTargetData(td);
    c.b = LLVMCreateBuilderInContext(ctx);
    c.i1 = LLVMInt1TypeInContext(ctx), c.i8 = LLVMInt8TypeInContext(ctx);
    c.i16 = LLVMInt16TypeInContext(ctx), c.i32 = LLVMInt32TypeInContext(ctx);
    c.i64 = LLVMInt64TypeInContext(ctx), c.f16 = LLVMHalfTypeInContext(ctx);
    c.f32 = LLVMFloatTypeInContext(ctx), c.f64 = LLVMDoubleTypeInContext(ctx);
    c.ptr0 = LLVMPointerTypeInContext(ctx, 0), c.ptr1 = LLVMPointerTypeInContext(ctx, 1);
    c.ptr3 = LLVMPointerTypeInContext(ctx, 3), c.voidt = LLVMVoidTypeInContext(ctx);
    c.bufv = calloc((size_t)p->nbuf + 1, sizeof *c.bufv);
    c.symv = calloc((size_t)p->nsyms + 1, sizeof *c.symv);
    c.varv = calloc((size_t)p->nvars + 1, sizeof *c.varv);
    if (!c.bufv || !c.symv || !c.varv) abort();
    for (int k = 0; k < p->nkern; k++) gen_kernel(&c, k);
    LLVMDisposeBuilder(c.b);
    free(c.bufv), free(c.symv), free(c.varv);
    char *msg = NULL;
    if (LLVMVerifyModule(c.mod, LLVMReturnStatusAction, &msg)) {
        if (err) snprintf(err, (size_t)errn, "internal error: invalid NVPTX LLVM IR: %.200s", msg ? msg : "");
        LLVMDisposeMessage(msg);
        LLVMDisposeModule(c.mod);
        return NULL;
    }
    LLVMDisposeMessage(msg);
    return c.mod;
}

/* ---- libdevice, internalisation, O3, PTX ---- */

static int needs_libdevice(LLVMModuleRef m) {
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
        size_t n;
        const char *name = LLVMGetValueName2(f, &n);
        if (LLVMIsDeclaration(f) && strncmp(name, "__nv_", 5) == 0) return 1;
    }
    return 0;
}

static int link_libdevice(LLVMContextRef ctx, LLVMModuleRef m, char *err, int errn) {
    char path[512];
    snprintf(path, sizeof path, "%s/nvvm/libdevice/libdevice.10.bc", tl_nvptx_cuda_root());
    LLVMMemoryBufferRef mb = NULL;
    char *msg = NULL;
    if (LLVMCreateMemoryBufferWithContentsOfFile(path, &mb, &msg)) {
        if (err) snprintf(err, (size_t)errn, "%s: cannot read libdevice (set CUDA_HOME): %s", path, msg ? msg : "");
        LLVMDisposeMessage(msg);
        return -1;
    }
    LLVMModuleRef lib = NULL;
    int bad = LLVMParseBitcodeInContext2(ctx, mb, &lib);
    LLVMDisposeMemoryBuffer(mb);
    if (bad) {
        if (err) snprintf(err, (size_t)errn, "%s: not valid LLVM bitcode", path);
        return -1;
    }
    LLVMSetTarget(lib, LLVMGetTarget(m));
    LLVMSetDataLayout(lib, LLVMGetDataLayoutStr(m));
    if (LLVMLinkModules2(m, lib)) { /* consumes lib */
        if (err) snprintf(err, (size_t)errn, "%s: cannot link libdevice", path);
        return -1;
    }
    return 0;
}

/* Every defined function but the kernels becomes internal, so O3 inlines and drops them. */
static void internalise(LLVMModuleRef m) {
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f))
        if (!LLVMIsDeclaration(f) && LLVMGetFunctionCallConv(f) != PTX_KERNEL_CC) LLVMSetLinkage(f, LLVMInternalLinkage);
    for (LLVMValueRef g = LLVMGetFirstGlobal(m); g; g = LLVMGetNextGlobal(g))
        if (!LLVMIsDeclaration(g) && LLVMGetLinkage(g) == LLVMExternalLinkage) LLVMSetLinkage(g, LLVMInternalLinkage);
}

LLVMModuleRef tl_nvptx_build(LLVMContextRef ctx, const TlLProgram *p, const NvTarget *t, LLVMTargetMachineRef tm,
                             char *err, int errn) {
    LLVMModuleRef m = codegen(ctx, p, t, tm, err, errn);
    if (!m) return NULL;
    if (needs_libdevice(m) && link_libdevice(ctx, m, err, errn)) {
        LLVMDisposeModule(m);
        return NULL;
    }
    internalise(m);
    char pipeline[32];
    snprintf(pipeline, sizeof pipeline, "default<O%d>", t->opt_level);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopUnrolling(po, t->opt_level >= 2);
    LLVMErrorRef e = LLVMRunPasses(m, pipeline, tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (e) {
        char *msg = LLVMGetErrorMessage(e);
        if (err) snprintf(err, (size_t)errn, "LLVM passes failed: %s", msg);
        LLVMDisposeErrorMessage(msg);
        LLVMDisposeModule(m);
        return NULL;
    }
    return m;
}

char *tl_nvptx_module_ptx(LLVMTargetMachineRef tm, LLVMModuleRef m, char *err, int errn) {
    LLVMMemoryBufferRef mb = NULL;
    char *msg = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMAssemblyFile, &msg, &mb)) {
        if (err) snprintf(err, (size_t)errn, "PTX generation failed: %s", msg ? msg : "");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    size_t n = LLVMGetBufferSize(mb);
    char *out = malloc(n + 1);
    if (!out) abort();
    memcpy(out, LLVMGetBufferStart(mb), n);
    out[n] = 0;
    LLVMDisposeMemoryBuffer(mb);
    return out;
}
