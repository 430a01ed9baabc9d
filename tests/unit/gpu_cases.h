/* gpu_cases.h — graph_cases.h plus the cases the GPU tests add: the SGEMM and
 * warp-reduction schedules and a transformer Block's training step. */
#ifndef TL_GPU_CASES_H
#define TL_GPU_CASES_H
#include "graph_cases.h"

/* Kernels whose loops the GPU launch spreads beyond the parallel loop (docs/nvptx.md,
 * "Spreading the work"): full reductions as one block (long, over a loop nest, symbolic,
 * f32 / i32 / max, followed by stores split across the block), column reductions as a
 * warp per column (over one loop and over a nest: a bias gradient), a scatter_add of
 * repeated ids run across its column loop (an embedding gradient), and elementwise
 * kernels whose parallel loop is short and whose inner loops are long (collapsed). */
static void gpu_parallel_cases(void) {
    begin();
    fwd("full sum of [1500, 2000] (one block, a loop nest)", tl_g_sum(G, input(TL_F32, S(1500, 2000), -1, 1), 3, 0, L), 0);
    begin();
    int x = input(TL_F32, S(3000000), -1, 1);
    fwd("sum of squares of [3000000] (one block)", tl_g_sum(G, tl_g_mul(G, x, x, L), 1, 0, L), 0);
    begin();
    TlGDim dn[1] = {tl_gdim_sym(G, "N")};
    bind("N", 100003);
    fwd("sum of [N=100003] (one block, symbolic length)", tl_g_sum(G, input(TL_F32, tl_gshape_dims(1, dn), -1, 1), 1, 0, L), 0);
    begin();
    fwd("sum of i32 [300, 1000] (one block, exact)", tl_g_sum(G, input(TL_I32, S(300, 1000), -50, 50), 3, 0, L), 1);
    begin();
    fwd("max of [700, 300] (one block, NaN-propagating max)", tl_g_reduce(G, TL_GOP_RMAX, input(TL_F32, S(700, 300), -3, 3), 3, 0, L), 1);
    begin();
    x = param(TL_F32, S(300, 400), -1, 1);
    fwdbwd("x * sum(x) over all of [300, 400] (one block, stores split across it)",
           tl_g_broadcast_binary(G, TL_GOP_MUL, x, tl_g_sum(G, x, 3, 1, L), L));
    begin();
    fwd("column sums of [2048, 1024] (a warp per column)", tl_g_sum(G, input(TL_F32, S(2048, 1024), -1, 1), 1, 0, L), 0);
    begin();
    fwd("bias gradient: sum over [16, 128] of [16, 128, 256] (a warp per column, a loop nest)",
        tl_g_sum(G, input(TL_F32, S(16, 128, 256), -1, 1), 3, 0, L), 0);
    begin();
    int tab = param(TL_F32, S(256, 256), -1, 1);
    int ids = input(TL_I32, S(16, 128), 0, 40); /* 2048 ids of 40 rows: each ~50 times */
    fwdbwd("embedding [256, 256] of ids [16, 128] (gradient: scatter_add of repeated ids, threads over columns)",
           tl_g_gather(G, tab, ids, 0, L));
    begin();
    x = param(TL_F32, S(3, 500, 70), -2, 2);
    fwdbwd("x * x of [3, 500, 70] (3 parallel items: the loops collapsed)", tl_g_mul(G, x, x, L));
}

/* A dense matmul with a symbolic M (the SGEMM path, with edge tiles) and a row softmax
 * over a wide last axis (the warp reductions), forward and backward. */
static void gpu_schedule_cases(void) {
    begin();
    TlGDim da[2] = {tl_gdim_sym(G, "M"), tl_gdim_const(G, 70)}, db[2] = {tl_gdim_const(G, 70), tl_gdim_const(G, 200)};
    bind("M", 150);
    int a = param(TL_F32, tl_gshape_dims(2, da), -1, 1), b = param(TL_F32, tl_gshape_dims(2, db), -1, 1);
    fwdbwd("matmul [M=150,70]x[70,200] (tiled SGEMM)", tl_g_contract(G, "ij,jk->ik", a, b, L));
    begin();
    a = param(TL_F32, S(3, 33, 40), -1, 1), b = param(TL_F32, S(3, 40, 129), -1, 1);
    fwdbwd("batched matmul [3,33,40]x[3,40,129]", tl_g_contract(G, "bij,bjk->bik", a, b, L));
    begin();
    a = param(TL_F32, S(130, 64), -1, 1), b = param(TL_F32, S(72, 64), -1, 1);
    fwdbwd("matmul A B^T [130,64]x[72,64]^T", tl_g_contract(G, "ij,kj->ik", a, b, L));
    begin();
    TlGDim dx[2] = {tl_gdim_sym(G, "N"), tl_gdim_const(G, 300)};
    bind("N", 37);
    int x = param(TL_F32, tl_gshape_dims(2, dx), -3, 3);
    int m = tl_g_reduce(G, TL_GOP_RMAX, x, 2, 1, L);
    int e = tl_g_exp(G, tl_g_broadcast_binary(G, TL_GOP_SUB, x, m, L), L);
    int s = tl_g_reduce(G, TL_GOP_SUM, e, 2, 1, L);
    fwdbwd("softmax rows [N=37, 300] (warp reductions)", tl_g_broadcast_binary(G, TL_GOP_DIV, e, s, L));
    begin();
    fwd("sum of a wide f64 row [5, 1000]", tl_g_reduce(G, TL_GOP_SUM, input(TL_F64, S(5, 1000), -1, 1), 2, 0, L), 0);
    begin();
    fwd("sum of a wide i32 row [4, 100]", tl_g_reduce(G, TL_GOP_SUM, input(TL_I32, S(4, 100), -50, 50), 2, 0, L), 1);
    gpu_parallel_cases();
}

/* bf16 / f16 matmuls (the tensor-core GEMM on sm_80+): every operand layout, batches,
 * sizes on and off the 128 x 128 x 32 tiles (1 x 1 x 1, odd edges, K not a multiple of
 * 32, aligned multi-tile shapes for the vector loads; small enough for test_nvptx_emu and
 * the interpreter), operands as inputs of that dtype or as casts of f32 inputs, one symbolic size, and
 * a forward + backward whose gradient matmuls are bf16 too. While they run, mma_strict is
 * 1: test_gpu_diff then also checks output 0 against the error bound of f32 accumulation. */
static int mma_strict;
static void gpu_mma_cases(void) {
    static const struct { TlDType dt; const char *spec; int64_t b, m, n, k; int cast, sym; } cs[] = {
        {TL_BF16, "ij,jk->ik", 0, 150, 200, 70, 1, 1},
        {TL_F16, "ij,jk->ik", 0, 128, 128, 32, 0, 0},
        {TL_BF16, "ij,jk->ik", 0, 1, 1, 1, 0, 0},
        {TL_BF16, "ij,jk->ik", 0, 257, 129, 33, 0, 0},
        {TL_BF16, "ij,jk->ik", 0, 1100, 130, 16, 0, 0}, /* more tile rows than a raster group */
        {TL_F16, "ij,jk->ik", 0, 130, 260, 1000, 1, 0},
        {TL_BF16, "ij,jk->ik", 0, 256, 384, 520, 0, 0},
        {TL_BF16, "ij,kj->ik", 0, 130, 72, 64, 1, 0},
        {TL_F16, "ij,kj->ik", 0, 256, 256, 96, 0, 0},
        {TL_F16, "ji,jk->ik", 0, 33, 129, 17, 0, 0},
        {TL_BF16, "ji,jk->ik", 0, 256, 128, 160, 0, 0},
        {TL_BF16, "bij,bjk->bik", 3, 33, 40, 129, 1, 0},
        {TL_F16, "bij,bjk->bik", 2, 256, 128, 256, 0, 0},
        {TL_BF16, "bhqd,bhkd->bhqk", 2, 65, 70, 32, 0, 0},
        /* the packed path's panels: K under one 8-wide pack chunk, a K that wraps the
         * 3-stage ring twice (7 slices) with N off the 8-column grid, B shared by a batch */
        {TL_BF16, "ij,jk->ik", 0, 200, 101, 7, 0, 0},
        {TL_F16, "ij,kj->ik", 0, 384, 136, 200, 1, 0},
        {TL_BF16, "bij,jk->bik", 2, 70, 90, 48, 0, 0},
    };
    mma_strict = 1;
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        begin();
        const char *sp = cs[i].spec;
        int64_t b = cs[i].b, m = cs[i].m, n = cs[i].n, k = cs[i].k;
        TlGShape sa, sb;
        if (sp[0] == 'b' && sp[1] == 'h') sa = S(b, 2, m, k), sb = S(b, 2, n, k);  /* attention scores */
        else if (sp[0] == 'b' && sp[4] == 'j') sa = S(b, m, k), sb = S(k, n);      /* one B for the batch */
        else if (sp[0] == 'b') sa = S(b, m, k), sb = S(b, k, n);
        else if (sp[0] == 'j') sa = S(k, m), sb = S(k, n);                        /* A^T B */
        else if (sp[3] == 'k') sa = S(m, k), sb = S(n, k);                        /* A B^T */
        else sa = S(m, k), sb = S(k, n);
        if (cs[i].sym) {
            TlGDim d[2] = {tl_gdim_sym(G, "M"), tl_gdim_const(G, k)};
            sa = tl_gshape_dims(2, d);
            bind("M", m);
        }
        int x = input(cs[i].cast ? TL_F32 : cs[i].dt, sa, -1, 1), y = input(cs[i].cast ? TL_F32 : cs[i].dt, sb, -1, 1);
        if (cs[i].cast) x = tl_g_cast(G, x, cs[i].dt, L), y = tl_g_cast(G, y, cs[i].dt, L);
        char name[160];
        snprintf(name, sizeof name, "%s matmul %s b=%lld m=%lld%s n=%lld k=%lld%s (tensor cores)", tl_dtype_name(cs[i].dt), sp,
                 (long long)b, (long long)m, cs[i].sym ? " (symbolic)" : "", (long long)n, (long long)k, cs[i].cast ? ", operands cast from f32" : "");
        fwd(name, tl_g_contract(G, sp, x, y, L), 0);
    }
    mma_strict = 0;
    begin();
    int a = param(TL_BF16, S(70, 48), -1, 1), w = param(TL_BF16, S(48, 90), -1, 1);
    fwdbwd("bf16 matmul [70,48]x[48,90], gradients bf16 matmuls too (tensor cores)", tl_g_contract(G, "ij,jk->ik", a, w, L));
}

/* Kernels of tests/unit/schedule_cases.tl whose `schedule` blocks map them to the GPU
 * (gpu_blocks, gpu_threads, shared: docs/nvptx.md "Source schedules"): rows over blocks
 * with the columns strided over fewer threads, a row softmax (block max and sum), a
 * matmul with A's row in shared memory, a dot product per output split across a block,
 * a 1024-thread row sum, and a flat launch of 64-thread blocks. Forward only (gradients
 * have no schedule). */
static void gpu_source_schedule_cases(void) {
    static const struct { const char *callee, *args; } cs[] = {
        {"scale_gpu", "x:f32[37,100] w:f32[100]"}, {"softmax_gpu", "x:f32[13,300]"},
        {"mm_gpu", "a:f32[19,70] b:f32[70,45]"}, {"dot_gpu", "a:f32[5,200] b:f32[200,7]"},
        {"rowsum_gpu", "x:f32[9,1000]"}, {"affine_gpu", "x:f32[21,45]"},
    };
    TlSemaOptions opt = {.stdlib_dir = "stdlib", .warn_unused = 0};
    tl_diag_reset();
    TlProgram *prog = tl_sema_check_file("tests/unit/schedule_cases.tl", &opt);
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        char err[256], name[160];
        snprintf(name, sizeof name, "source schedule: %s(%s)", cs[i].callee, cs[i].args);
        TlLowerArg a[4];
        int na = prog && !tl_diag_error_count() ? tl_lower_parse_args(cs[i].args, a, 4, err, sizeof err) : -1;
        TlLowered *l = na > 0 ? tl_lower_call(prog, cs[i].callee, NULL, 0, NULL, a, na) : NULL;
        if (na > 0) tl_lower_args_free(a, na);
        if (!l) {
            case_begin("%s", name);
            EXPECTF(0, "tests/unit/schedule_cases.tl: cannot lower %s", cs[i].callee);
            case_end();
            continue;
        }
        G = l->g;
        NSYM = 0;
        for (int n = 0; n < G->nnodes && n < 4096; n++) RLO[n] = -1, RHI[n] = 1;
        graph_case_run(name, 0);
        G = NULL;
        tl_lowered_free(l);
    }
    if (prog) tl_program_free(prog);
}

/* One training step of the stdlib's transformer Block(D=16, H=4) on x: f32[B=2, T=8, 16]:
 * outputs the block's output and the gradient of sum(out * dy) for every param (the
 * kernels of layer_norm, attention, softmax, GELU, the MLP matmuls, forward and backward).
 * Leaves the graph in G; 0, or -1 with the reason in err. */
static TlLowered *gpu_block_lowered;
static TlProgram *gpu_block_prog;
static int gpu_block_step(char *err, int errn) {
    TlSemaOptions opt = {.stdlib_dir = "stdlib", .warn_unused = 0};
    tl_diag_reset();
    gpu_block_prog = tl_sema_check_file("stdlib/nn.tl", &opt);
    if (!gpu_block_prog || tl_diag_error_count()) { snprintf(err, (size_t)errn, "stdlib/nn.tl has errors"); return -1; }
    TlLowerArg ctor[8], args[2];
    int nctor = tl_lower_parse_args("D=16 H=4", ctor, 8, err, errn);
    int nargs = tl_lower_parse_args("x:f32[B,T,16]", args, 2, err, errn);
    if (nctor < 0 || nargs < 0) return -1;
    TlLowered *l = tl_lower_call(gpu_block_prog, "Block", ctor, nctor, "forward", args, nargs);
    tl_lower_args_free(ctor, nctor);
    tl_lower_args_free(args, nargs);
    if (!l) { snprintf(err, (size_t)errn, "lowering Block failed"); return -1; }
    gpu_block_lowered = l;
    G = l->g;
    NSYM = 0;
    bind("B", 2), bind("T", 8);
    int o = G->outputs[0];
    int dy = tl_g_input(G, "dy", TL_F32, G->nodes[o].shape, L);
    int loss = tl_g_reduce(G, TL_GOP_SUM, tl_g_mul(G, o, dy, L), 7, 0, L);
    int wrt[64], grads[64], n = 0;
    for (int i = 0; i < l->nparams && n < 64; i++) wrt[n++] = l->params[i].node;
    if (tl_grad(G, loss, n, wrt, grads)) { snprintf(err, (size_t)errn, "tl_grad failed"); return -1; }
    for (int i = 0; i < n; i++) tl_graph_add_output(G, grads[i]);
    for (int i = 0; i < G->nnodes && i < 4096; i++) RLO[i] = -0.5, RHI[i] = 0.5;
    return 0;
}

static void gpu_block_free(void) {
    if (gpu_block_lowered) tl_lowered_free(gpu_block_lowered);
    if (gpu_block_prog) tl_program_free(gpu_block_prog);
    gpu_block_lowered = NULL, gpu_block_prog = NULL;
    G = NULL;
}

#endif
