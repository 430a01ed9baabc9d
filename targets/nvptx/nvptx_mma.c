/* nvptx_mma.c — a bf16 or f16 matmul contraction (TlLGemm, dtype TL_BF16 / TL_F16) on the
 * tensor cores, with mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16} (sm_80+):
 *
 *   C[b, i, j] = round_dt( sum_k A[b, i, k] * B[b, k, j] )   (products exact, f32 accumulation)
 *
 * Storage: the Graph IR keeps bf16/f16 tensors as f32 holding values of that type
 * (compiler/loops.c to_storage), on the device too. The kernel loads those f32 and converts
 * pairs to bf16x2 / f16x2 (cvt.rn, exact for such values) while staging them into shared
 * memory, so the tensor cores see the interpreter's operands; C is rounded to dt like the
 * loop nest's store (docs/nvptx.md, "Tensor cores").
 *
 * Block (x, y, z) computes a 128 x 128 tile of C of batch z (grouped rasterization: the
 * blocks of one wave cover 8 tile rows x a few tile columns, for L2 reuse) with 256
 * threads = 8 warps as 2 (m) x 4 (n); warp w owns the 64 x 32 warp tile at rows
 * (w / 4) * 64, columns (w % 4) * 32: 4 x 4 m16n8 tiles, 64 f32 accumulators per thread.
 * k goes 32 at a time through shared memory, double-buffered like the SGEMM:
 *
 *   regs <- the f32 slice (16 elements of A and 16 of B per thread, 4 quads of 4 each)
 *   stage 0 <- cvt(regs); barrier
 *   for k0: regs <- the next slice (in flight during the MMAs)
 *           for ks in {0, 16}: A fragments: 4 ldmatrix.x4, B fragments: 2 ldmatrix.x4,
 *                              16 mma.m16n8k16 (acc += A[16x16] B[16x8])
 *           stage 1-cur <- cvt(regs); barrier
 *   C[...] = round(acc) (bounds-checked)
 *
 * Each operand tile (A: 128 m-rows, B: 128 n-columns, both x 32 k) is kept in shared memory
 * in whichever layout its global copy has contiguous:
 *   k-inner  X[r][k], r the m (or n) row, 40 halves a row (80 bytes: the 8 row addresses of
 *            an ldmatrix fall in 8 distinct 16-byte bank groups) — row-major A, B^T views;
 *   k-outer  X[k][r], 136 halves a row (272 bytes, same reason) — row-major B, A^T views;
 * so that each thread's quad of 4 consecutive global elements is one 8-byte shared store.
 * mma's fragments want A as rows of k pairs and B as columns of k pairs: ldmatrix reads
 * k-inner tiles as they are and k-outer ones with .trans.
 *
 * Global loads: when the tile lies inside the matrix, the quads are 16-byte aligned (the
 * base address, the non-unit stride a multiple of 4) and the slice inside [0, K), each quad
 * is one ld.global.v4.f32; otherwise 4 guarded scalar loads read 0 outside [0, M) x [0, K)
 * (through a clamped address, as in the SGEMM). Shared memory: 2 stages x 2 x 10240 bytes
 * = 40 KiB, under the 48 KiB static limit. */
#include "nvptx_internal.h"

enum { NT = TL_GPU_BLOCK, BM = TL_GEMM_BM, BN = TL_GEMM_BN, BK = TL_MMA_BK };
enum { WM = 64, WN = 32, MT = WM / 16, NTL = WN / 8 }; /* warp tile; m16 tiles and n8 tiles in it */
enum { GROUP = 8 };                                     /* tile rows per rasterization group */
enum { QUADS = BM * BK / 4 / NT };                      /* quads per thread per operand: 4 */
enum { PITCH_IN = 40 * 2, PITCH_OUT = 136 * 2 };        /* row pitch in bytes of the two layouts */
enum { TILE_BYTES = BM * PITCH_IN, STAGE_BYTES = 2 * TILE_BYTES };
_Static_assert(BM == BN && BM * PITCH_IN >= BK * PITCH_OUT, "one region size fits both layouts of both tiles");
_Static_assert((BM / WM) * (BN / WN) * 32 == NT, "8 warps of 64 x 32");
_Static_assert(QUADS * NT * 4 == BM * BK, "quads cover the tile");

static LLVMValueRef i64c(NvCg *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }
static LLVMValueRef i32c(NvCg *c, int v) { return LLVMConstInt(c->i32, (unsigned long long)v, 1); }
static int is_one(const TlLProgram *p, int e) { return p->ex[e].kind == TL_LE_INT && p->ex[e].ival == 1; }

static LLVMValueRef smem(NvCg *c) {
    LLVMValueRef g = LLVMGetNamedGlobal(c->mod, "tl.mma.smem");
    if (g) return g;
    LLVMTypeRef t = LLVMArrayType2(c->i8, 2 * STAGE_BYTES);
    g = LLVMAddGlobalInAddressSpace(c->mod, t, "tl.mma.smem", 3);
    LLVMSetInitializer(g, LLVMGetUndef(t));
    LLVMSetLinkage(g, LLVMInternalLinkage);
    LLVMSetAlignment(g, 16);
    return g;
}

static LLVMValueRef byte_ptr(NvCg *c, LLVMValueRef base, LLVMValueRef off) {
    return LLVMBuildInBoundsGEP2(c->b, c->i8, base, &off, 1, "");
}

static void barrier(NvCg *c) { tl_nvptx_intrinsic(c, "llvm.nvvm.barrier0", NULL, 0, NULL, 0); }

/* One operand: X[r, k] = X0[r * sr + k * sk] for rows r0 + [0, 128) (of R) and k in [0, K). */
typedef struct Operand {
    LLVMValueRef X0, sr, sk, R, r0;
    int kinner;               /* shared layout X[r][k] (else X[k][r]) */
    int region;               /* byte offset of its tile within a stage */
    LLVMValueRef row[QUADS];  /* tile row of quad q's first element (k-outer: 4 rows from it) */
    LLVMValueRef kk[QUADS];   /* tile k of quad q's first element (k-inner: 4 k from it) */
    LLVMValueRef sts[QUADS];  /* byte offset of quad q in the tile */
    LLVMValueRef reg[QUADS * 4];
    LLVMValueRef vec_ok;      /* i1: quads are 16-byte aligned and the tile's rows are in range */
} Operand;

static void operand_init(NvCg *c, Operand *o, LLVMValueRef tid) {
    LLVMBuilderRef B = c->b;
    for (int q = 0; q < QUADS; q++) {
        LLVMValueRef e = LLVMBuildAdd(B, tid, i64c(c, NT * q), "");
        if (o->kinner) { /* 8 quads of k per row */
            o->kk[q] = LLVMBuildMul(B, LLVMBuildAnd(B, e, i64c(c, BK / 4 - 1), ""), i64c(c, 4), "");
            o->row[q] = LLVMBuildLShr(B, e, i64c(c, 3), "");
            o->sts[q] = LLVMBuildAdd(B, LLVMBuildMul(B, o->row[q], i64c(c, PITCH_IN), ""), LLVMBuildMul(B, o->kk[q], i64c(c, 2), ""), "");
        } else { /* 32 quads of rows per k */
            o->row[q] = LLVMBuildMul(B, LLVMBuildAnd(B, e, i64c(c, BM / 4 - 1), ""), i64c(c, 4), "");
            o->kk[q] = LLVMBuildLShr(B, e, i64c(c, 5), "");
            o->sts[q] = LLVMBuildAdd(B, LLVMBuildMul(B, o->kk[q], i64c(c, PITCH_OUT), ""), LLVMBuildMul(B, o->row[q], i64c(c, 2), ""), "");
        }
    }
    for (int i = 0; i < QUADS * 4; i++) o->reg[i] = tl_nvptx_entry_alloca(c, c->f32);
    LLVMValueRef other = o->kinner ? o->sr : o->sk;
    LLVMValueRef addr = LLVMBuildPtrToInt(B, o->X0, c->i64, "");
    LLVMValueRef aligned = LLVMBuildICmp(B, LLVMIntEQ, LLVMBuildAnd(B, LLVMBuildOr(B, addr, LLVMBuildMul(B, other, i64c(c, 4), ""), ""), i64c(c, 15), ""), i64c(c, 0), "");
    LLVMValueRef inside = LLVMBuildICmp(B, LLVMIntSLE, LLVMBuildAdd(B, o->r0, i64c(c, BM), ""), o->R, "");
    o->vec_ok = LLVMBuildAnd(B, aligned, inside, "");
}

/* element j of quad q: tile (row, k) offsets */
static void quad_elem(NvCg *c, const Operand *o, int q, int j, LLVMValueRef *row, LLVMValueRef *kk) {
    *row = o->kinner ? o->row[q] : LLVMBuildAdd(c->b, o->row[q], i64c(c, j), "");
    *kk = o->kinner ? LLVMBuildAdd(c->b, o->kk[q], i64c(c, j), "") : o->kk[q];
}

/* regs <- the slice at k0: vector loads when vec (i1, uniform over the block), else guarded
 * scalar loads. */
static void load_slice(NvCg *c, Operand *o, LLVMValueRef k0, LLVMValueRef K, LLVMValueRef vec) {
    LLVMBuilderRef B = c->b;
    LLVMBasicBlockRef bv = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.ldv");
    LLVMBasicBlockRef bs = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.lds");
    LLVMBasicBlockRef bj = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.ld");
    LLVMBuildCondBr(B, vec, bv, bs);
    LLVMPositionBuilderAtEnd(B, bv);
    LLVMTypeRef v4 = LLVMVectorType(c->f32, 4);
    for (int q = 0; q < QUADS; q++) {
        LLVMValueRef gr = LLVMBuildAdd(B, o->r0, o->row[q], ""), gk = LLVMBuildAdd(B, k0, o->kk[q], "");
        LLVMValueRef off = LLVMBuildAdd(B, LLVMBuildMul(B, gr, o->sr, ""), LLVMBuildMul(B, gk, o->sk, ""), "");
        LLVMValueRef v = LLVMBuildLoad2(B, v4, LLVMBuildInBoundsGEP2(B, c->f32, o->X0, &off, 1, ""), "");
        LLVMSetAlignment(v, 16);
        for (int j = 0; j < 4; j++) LLVMBuildStore(B, LLVMBuildExtractElement(B, v, i32c(c, j), ""), o->reg[4 * q + j]);
    }
    LLVMBuildBr(B, bj);
    LLVMPositionBuilderAtEnd(B, bs);
    for (int q = 0; q < QUADS; q++)
        for (int j = 0; j < 4; j++) {
            LLVMValueRef row, kk;
            quad_elem(c, o, q, j, &row, &kk);
            LLVMValueRef gr = LLVMBuildAdd(B, o->r0, row, ""), gk = LLVMBuildAdd(B, k0, kk, "");
            LLVMValueRef ok = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSLT, gr, o->R, ""), LLVMBuildICmp(B, LLVMIntSLT, gk, K, ""), "");
            LLVMValueRef off = LLVMBuildAdd(B, LLVMBuildMul(B, gr, o->sr, ""), LLVMBuildMul(B, gk, o->sk, ""), "");
            /* X0[off] is dereferenced only when ok (else X0[0], which every buffer has) */
            LLVMValueRef at = LLVMBuildSelect(B, ok, LLVMBuildGEP2(B, c->f32, o->X0, &off, 1, ""), o->X0, "");
            LLVMValueRef v = LLVMBuildLoad2(B, c->f32, at, "");
            LLVMBuildStore(B, LLVMBuildSelect(B, ok, v, LLVMConstReal(c->f32, 0), ""), o->reg[4 * q + j]);
        }
    LLVMBuildBr(B, bj);
    LLVMPositionBuilderAtEnd(B, bj);
}

/* Two f32 as a packed bf16x2 / f16x2 (lo in the low half), round to nearest even. */
static LLVMValueRef pack2(NvCg *c, TlDType dt, LLVMValueRef lo, LLVMValueRef hi) {
    LLVMValueRef args[2] = {hi, lo}; /* cvt.rn.bf16x2.f32 d, a, b puts a in the upper half */
    LLVMValueRef v = tl_nvptx_intrinsic(c, dt == TL_BF16 ? "llvm.nvvm.ff2bf16x2.rn" : "llvm.nvvm.ff2f16x2.rn", NULL, 0, args, 2);
    return LLVMBuildBitCast(c->b, v, c->i32, "");
}

/* stage at byte offset `stage` <- the converted regs (one 8-byte store per quad) */
static void store_slice(NvCg *c, Operand *o, TlDType dt, LLVMValueRef stage) {
    LLVMBuilderRef B = c->b;
    LLVMTypeRef v2 = LLVMVectorType(c->i32, 2);
    LLVMValueRef base = byte_ptr(c, smem(c), LLVMBuildAdd(B, stage, i64c(c, o->region), ""));
    for (int q = 0; q < QUADS; q++) {
        LLVMValueRef x[4];
        for (int j = 0; j < 4; j++) x[j] = LLVMBuildLoad2(B, c->f32, o->reg[4 * q + j], "");
        LLVMValueRef v = LLVMGetUndef(v2);
        v = LLVMBuildInsertElement(B, v, pack2(c, dt, x[0], x[1]), i32c(c, 0), "");
        v = LLVMBuildInsertElement(B, v, pack2(c, dt, x[2], x[3]), i32c(c, 1), "");
        LLVMValueRef st = LLVMBuildStore(B, v, byte_ptr(c, base, o->sts[q]));
        LLVMSetAlignment(st, 8);
    }
}

/* ldmatrix.x4 (.trans for k-outer tiles) of the 16 x 16 block at tile rows r0.., k ks..:
 * matrix i (lanes 8i..8i+7 give its 8 row addresses) is rows r0 + 8*rh(i), k ks + 8*kh(i);
 * A wants (rh, kh) = (i % 2, i / 2) (a0..a3 of the m16n8k16 A fragment), B wants
 * (i / 2, i % 2) (b0, b1 of two n8 tiles). */
static void ldmatrix(NvCg *c, const Operand *o, LLVMValueRef stage, LLVMValueRef lane, LLVMValueRef r0, int ks,
                     int is_a, LLVMValueRef out[4]) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef i = LLVMBuildLShr(B, lane, i64c(c, 3), ""), l8 = LLVMBuildAnd(B, lane, i64c(c, 7), "");
    LLVMValueRef lo = LLVMBuildAnd(B, i, i64c(c, 1), ""), hi = LLVMBuildLShr(B, i, i64c(c, 1), "");
    LLVMValueRef rh = is_a ? lo : hi, kh = is_a ? hi : lo;
    LLVMValueRef row = LLVMBuildAdd(B, r0, LLVMBuildMul(B, rh, i64c(c, 8), ""), "");
    LLVMValueRef k = LLVMBuildAdd(B, i64c(c, ks), LLVMBuildMul(B, kh, i64c(c, 8), ""), "");
    LLVMValueRef off;
    if (o->kinner)
        off = LLVMBuildAdd(B, LLVMBuildMul(B, LLVMBuildAdd(B, row, l8, ""), i64c(c, PITCH_IN), ""), LLVMBuildMul(B, k, i64c(c, 2), ""), "");
    else
        off = LLVMBuildAdd(B, LLVMBuildMul(B, LLVMBuildAdd(B, k, l8, ""), i64c(c, PITCH_OUT), ""), LLVMBuildMul(B, row, i64c(c, 2), ""), "");
    off = LLVMBuildAdd(B, off, LLVMBuildAdd(B, stage, i64c(c, o->region), ""), "");
    LLVMValueRef p = byte_ptr(c, smem(c), off);
    LLVMValueRef r = tl_nvptx_intrinsic(c, o->kinner ? "llvm.nvvm.ldmatrix.sync.aligned.m8n8.x4.b16"
                                                     : "llvm.nvvm.ldmatrix.sync.aligned.m8n8.x4.trans.b16",
                                        &c->ptr3, 1, &p, 1);
    for (int j = 0; j < 4; j++) out[j] = LLVMBuildExtractValue(B, r, (unsigned)j, "");
}

/* acc[0..4) += A(a[0..4)) B(b[0..2)): one mma.sync.aligned.m16n8k16.row.col.f32.dt.dt.f32 */
static void mma(NvCg *c, TlDType dt, LLVMValueRef a[4], LLVMValueRef b[2], LLVMValueRef acc[4]) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef args[10];
    LLVMTypeRef h2 = LLVMVectorType(c->f16, 2);
    for (int j = 0; j < 4; j++) args[j] = dt == TL_BF16 ? a[j] : LLVMBuildBitCast(B, a[j], h2, "");
    for (int j = 0; j < 2; j++) args[4 + j] = dt == TL_BF16 ? b[j] : LLVMBuildBitCast(B, b[j], h2, "");
    for (int j = 0; j < 4; j++) args[6 + j] = LLVMBuildLoad2(B, c->f32, acc[j], "");
    LLVMValueRef r = tl_nvptx_intrinsic(c, dt == TL_BF16 ? "llvm.nvvm.mma.m16n8k16.row.col.bf16" : "llvm.nvvm.mma.m16n8k16.row.col.f32.f32",
                                        NULL, 0, args, 10);
    for (int j = 0; j < 4; j++) LLVMBuildStore(B, LLVMBuildExtractValue(B, r, (unsigned)j, ""), acc[j]);
}

/* C[row, col] = round(acc) where in bounds, for the warp tile at rows r0.., columns c0..:
 * lane (g, t) = (lane / 4, lane % 4) holds rows g and g + 8, columns 2t and 2t + 1 of each
 * m16n8 tile */
static void store_acc(NvCg *c, TlDType dt, LLVMValueRef acc[][4], LLVMValueRef lane, LLVMValueRef r0, LLVMValueRef c0,
                      LLVMValueRef M, LLVMValueRef N, LLVMValueRef scm, LLVMValueRef C0) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef gq = LLVMBuildLShr(B, lane, i64c(c, 2), ""), tq = LLVMBuildMul(B, LLVMBuildAnd(B, lane, i64c(c, 3), ""), i64c(c, 2), "");
    for (int mi = 0; mi < MT; mi++)
        for (int h = 0; h < 2; h++) {
            LLVMValueRef row = LLVMBuildAdd(B, r0, LLVMBuildAdd(B, gq, i64c(c, 16 * mi + 8 * h), ""), "");
            LLVMValueRef rok = LLVMBuildICmp(B, LLVMIntSLT, row, M, "");
            LLVMValueRef rowoff = LLVMBuildMul(B, row, scm, "");
            for (int nt = 0; nt < NTL; nt++)
                for (int j = 0; j < 2; j++) {
                    LLVMValueRef col = LLVMBuildAdd(B, c0, LLVMBuildAdd(B, tq, i64c(c, 8 * nt + j), ""), "");
                    LLVMValueRef ok = LLVMBuildAnd(B, rok, LLVMBuildICmp(B, LLVMIntSLT, col, N, ""), "");
                    LLVMBasicBlockRef st = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.st");
                    LLVMBasicBlockRef nx = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.next");
                    LLVMBuildCondBr(B, ok, st, nx);
                    LLVMPositionBuilderAtEnd(B, st);
                    LLVMValueRef idx = LLVMBuildAdd(B, rowoff, col, "");
                    LLVMValueRef v = tl_nvptx_round(c, LLVMBuildLoad2(B, c->f32, acc[mi * NTL + nt][2 * h + j], ""), dt);
                    LLVMBuildStore(B, v, LLVMBuildInBoundsGEP2(B, c->f32, C0, &idx, 1, ""));
                    LLVMBuildBr(B, nx);
                    LLVMPositionBuilderAtEnd(B, nx);
                }
        }
}

/* The block's tile of C, rows bm0.., columns bn0.., in grouped rasterization: consecutive
 * blocks (x fastest, as they are dispatched) walk GROUP tile rows down one tile column,
 * then the next column, so a wave of blocks shares GROUP panels of A and about
 * (blocks / GROUP) panels of B in L2 instead of two panels of A and every panel of B:
 *   pid = y * gx + x;  first = pid / (GROUP * gx) * GROUP;  rows = min(gy - first, GROUP)
 *   tile row = first + (pid % (GROUP * gx)) % rows,  tile column = (pid % (GROUP * gx)) / rows */
static void block_origin(NvCg *c, LLVMValueRef *bm0, LLVMValueRef *bn0) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef gx = tl_nvptx_sreg(c, "nctaid.x"), gy = tl_nvptx_sreg(c, "nctaid.y");
    LLVMValueRef pid = LLVMBuildAdd(B, LLVMBuildMul(B, tl_nvptx_sreg(c, "ctaid.y"), gx, ""), tl_nvptx_sreg(c, "ctaid.x"), "");
    LLVMValueRef per = LLVMBuildMul(B, gx, i64c(c, GROUP), "");
    LLVMValueRef first = LLVMBuildMul(B, LLVMBuildUDiv(B, pid, per, ""), i64c(c, GROUP), "");
    LLVMValueRef left = LLVMBuildSub(B, gy, first, "");
    LLVMValueRef rows = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntULT, left, i64c(c, GROUP), ""), left, i64c(c, GROUP), "");
    LLVMValueRef in = LLVMBuildURem(B, pid, per, "");
    *bm0 = LLVMBuildMul(B, LLVMBuildAdd(B, first, LLVMBuildURem(B, in, rows, ""), ""), i64c(c, BM), "");
    *bn0 = LLVMBuildMul(B, LLVMBuildUDiv(B, in, rows, ""), i64c(c, BN), "");
}

/* What both tensor-core kernels start with: sizes, C's row stride, the thread's lane and
 * warp, the warp's tile origin (wm, wn) in the block tile, the block's origin (grouped
 * rasterization: block_origin), the batch index bz and C's base for that batch. */
typedef struct MmaFrame {
    LLVMValueRef M, N, K, scm, tid, lane, wm, wn, bm0, bn0, bz, C0;
} MmaFrame;

static MmaFrame mma_frame(NvCg *c, const TlLGemm *g) {
    LLVMBuilderRef B = c->b;
    MmaFrame F;
    F.M = tl_nvptx_gen(c, g->m), F.N = tl_nvptx_gen(c, g->n), F.K = tl_nvptx_gen(c, g->k);
    F.scm = tl_nvptx_gen(c, g->sc_m);
    F.tid = tl_nvptx_sreg(c, "tid.x");
    F.lane = LLVMBuildAnd(B, F.tid, i64c(c, 31), "");
    LLVMValueRef warp = LLVMBuildLShr(B, F.tid, i64c(c, 5), "");
    F.wm = LLVMBuildMul(B, LLVMBuildLShr(B, warp, i64c(c, 2), ""), i64c(c, WM), "");
    F.wn = LLVMBuildMul(B, LLVMBuildAnd(B, warp, i64c(c, 3), ""), i64c(c, WN), "");
    block_origin(c, &F.bm0, &F.bn0);
    F.bz = tl_nvptx_sreg(c, "ctaid.z");
    LLVMValueRef offc = LLVMBuildMul(B, F.bz, tl_nvptx_gen(c, g->sc_b), "");
    F.C0 = LLVMBuildInBoundsGEP2(B, c->f32, c->bufv[g->c], &offc, 1, "");
    return F;
}

void tl_nvptx_gen_mma(NvCg *c, const TlLGemm *g) {
    LLVMBuilderRef B = c->b;
    const TlLProgram *p = c->p;
    TlDType dt = g->dtype;
    MmaFrame F = mma_frame(c, g);
    LLVMValueRef M = F.M, N = F.N, K = F.K, scm = F.scm, tid = F.tid, lane = F.lane, wm = F.wm, wn = F.wn;
    LLVMValueRef bm0 = F.bm0, bn0 = F.bn0, bz = F.bz, C0 = F.C0;
    LLVMValueRef offa = LLVMBuildMul(B, bz, tl_nvptx_gen(c, g->sa_b), "");
    LLVMValueRef offb = LLVMBuildMul(B, bz, tl_nvptx_gen(c, g->sb_b), "");

    /* A: rows m, k; B: rows n (its columns), k. A layout is k-inner unless m is the unit
     * stride (A^T views); B's is k-outer unless k is (B^T views). */
    Operand A = {.X0 = LLVMBuildInBoundsGEP2(B, c->f32, c->bufv[g->a], &offa, 1, ""), .sr = tl_nvptx_gen(c, g->sa_m),
                 .sk = tl_nvptx_gen(c, g->sa_k), .R = M, .r0 = bm0, .region = 0,
                 .kinner = !(is_one(p, g->sa_m) && !is_one(p, g->sa_k))};
    Operand Bo = {.X0 = LLVMBuildInBoundsGEP2(B, c->f32, c->bufv[g->b], &offb, 1, ""), .sr = tl_nvptx_gen(c, g->sb_n),
                  .sk = tl_nvptx_gen(c, g->sb_k), .R = N, .r0 = bn0, .region = TILE_BYTES,
                  .kinner = is_one(p, g->sb_k) && !is_one(p, g->sb_n)};
    operand_init(c, &A, tid);
    operand_init(c, &Bo, tid);
    /* unit strides where the layout assumes them (else the quads are not contiguous) */
    LLVMValueRef unit_a = LLVMBuildICmp(B, LLVMIntEQ, A.kinner ? A.sk : A.sr, i64c(c, 1), "");
    LLVMValueRef unit_b = LLVMBuildICmp(B, LLVMIntEQ, Bo.kinner ? Bo.sk : Bo.sr, i64c(c, 1), "");
    LLVMValueRef vec_tile = LLVMBuildAnd(B, LLVMBuildAnd(B, A.vec_ok, Bo.vec_ok, ""), LLVMBuildAnd(B, unit_a, unit_b, ""), "");

    LLVMValueRef acc[MT * NTL][4];
    for (int t = 0; t < MT * NTL; t++)
        for (int j = 0; j < 4; j++) {
            acc[t][j] = tl_nvptx_entry_alloca(c, c->f32);
            LLVMBuildStore(B, LLVMConstReal(c->f32, 0), acc[t][j]);
        }
    /* a vector slice: the whole 32-deep slice inside [0, K) */
#define SLICE(k0)                                                                                                \
    do {                                                                                                         \
        LLVMValueRef full = LLVMBuildICmp(B, LLVMIntSLE, LLVMBuildAdd(B, (k0), i64c(c, BK), ""), K, "");         \
        LLVMValueRef vec = LLVMBuildAnd(B, vec_tile, full, "");                                                  \
        load_slice(c, &A, (k0), K, vec);                                                                         \
        load_slice(c, &Bo, (k0), K, vec);                                                                        \
    } while (0)
    SLICE(i64c(c, 0));
    store_slice(c, &A, dt, i64c(c, 0));
    store_slice(c, &Bo, dt, i64c(c, 0));
    barrier(c);

    LLVMValueRef kslot = tl_nvptx_entry_alloca(c, c->i64);
    LLVMBuildStore(B, i64c(c, 0), kslot);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.k");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.body");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.store");
    LLVMBuildBr(B, head);
    LLVMPositionBuilderAtEnd(B, head);
    LLVMValueRef k0 = LLVMBuildLoad2(B, c->i64, kslot, "");
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, k0, K, ""), body, exit);
    LLVMPositionBuilderAtEnd(B, body);
    LLVMValueRef cur = LLVMBuildMul(B, LLVMBuildAnd(B, LLVMBuildUDiv(B, k0, i64c(c, BK), ""), i64c(c, 1), ""), i64c(c, STAGE_BYTES), "");
    LLVMValueRef nxt = LLVMBuildSub(B, i64c(c, STAGE_BYTES), cur, "");
    LLVMValueRef k1 = LLVMBuildAdd(B, k0, i64c(c, BK), "");
    SLICE(k1);
#undef SLICE
    for (int ks = 0; ks < BK; ks += 16) {
        LLVMValueRef af[MT][4], bf[NTL][2];
        for (int mi = 0; mi < MT; mi++)
            ldmatrix(c, &A, cur, lane, LLVMBuildAdd(B, wm, i64c(c, 16 * mi), ""), ks, 1, af[mi]);
        for (int nj = 0; nj < NTL / 2; nj++) {
            LLVMValueRef r[4];
            ldmatrix(c, &Bo, cur, lane, LLVMBuildAdd(B, wn, i64c(c, 16 * nj), ""), ks, 0, r);
            bf[2 * nj][0] = r[0], bf[2 * nj][1] = r[1], bf[2 * nj + 1][0] = r[2], bf[2 * nj + 1][1] = r[3];
        }
        for (int mi = 0; mi < MT; mi++)
            for (int nt = 0; nt < NTL; nt++) mma(c, dt, af[mi], bf[nt], acc[mi * NTL + nt]);
    }
    store_slice(c, &A, dt, nxt);
    store_slice(c, &Bo, dt, nxt);
    barrier(c);
    LLVMBuildStore(B, k1, kslot);
    LLVMBuildBr(B, head);

    LLVMPositionBuilderAtEnd(B, exit);
    store_acc(c, dt, acc, lane, LLVMBuildAdd(B, bm0, wm, ""), LLVMBuildAdd(B, bn0, wn, ""), M, N, scm, C0);
}

/* ---- the packed path: a pack kernel, then a cp.async main loop ----
 *
 * Launch contract (runtime/gpuprog.c, TlGpuKernel.mma_pack): both kernels take the GEMM
 * kernel's parameters with one more, `scratch` (a global pointer), right after the
 * buffers. With Mp = ceil(M/128)*128, Np = ceil(N/128)*128, Kp = ceil(K/32)*32, scratch
 * holds 2 * batch * Kp * (Mp + Np) bytes:
 *
 *   PA[b][r][k], r < Mp, k < Kp  at scratch                         (A[b, r, k], 0 outside)
 *   PB[b][r][k], r < Np, k < Kp  at scratch + 2 * batch * Mp * Kp   (B[b, k, r], 0 outside)
 *
 * dt values (bf16 / f16 bits) k-contiguous whatever A's and B's strides. `<name>_pack`
 * writes them: item i of batch * (Mp + Np) * Kp / 8 (grid-stride) converts 8 consecutive k
 * of one row into one 16-byte store; consecutive items walk k (coalesced reads and writes)
 * unless the row is the operand's unit stride (row-major B, A^T views), then rows
 * (coalesced reads). `<name>` then runs on the panels with no bounds checks and no
 * conversions in its main loop: every thread copies 2 x 16 bytes of each operand's 128 x 32
 * slice with cp.async.cg.shared.global into a PST-stage ring (3 x 16 KiB = 48 KiB, static),
 * rows of 64 bytes whose four 16-byte chunks are XOR-swizzled, chunk c of row r at
 * c ^ ((r / 2) % 4): the 8 rows of an ldmatrix phase (one chunk) and the 8 16-byte copies
 * into a 128-byte line fall in 8 distinct 16-byte bank groups.
 *
 *   issue slices 0, 1 (one commit group each)
 *   for kt < Kp/32: cp.async.wait_group 1 (slice kt landed); bar.sync (and slice kt-1 is
 *                   consumed by every warp); issue slice kt+2 into stage (kt+2) % 3; commit
 *                   32 mma from stage kt % 3 (ldmatrix, non-transposed for both operands) */
enum { PST = 3, PROW = BK * 2, PTILE = BM * PROW, PSTAGE = 2 * PTILE };
enum { CHUNKS = PTILE / 16 / NT }; /* 16-byte copies per thread per operand per slice: 2 */
_Static_assert(PST * PSTAGE <= 48 * 1024, "the ring fits the static shared-memory limit");
_Static_assert(CHUNKS * NT * 16 == PTILE && PROW == 64, "2 copies per thread; 4 chunks a row");

static LLVMValueRef ring(NvCg *c) {
    LLVMValueRef g = LLVMGetNamedGlobal(c->mod, "tl.mma.ring");
    if (g) return g;
    LLVMTypeRef t = LLVMArrayType2(c->i8, PST * PSTAGE);
    g = LLVMAddGlobalInAddressSpace(c->mod, t, "tl.mma.ring", 3);
    LLVMSetInitializer(g, LLVMGetUndef(t));
    LLVMSetLinkage(g, LLVMInternalLinkage);
    LLVMSetAlignment(g, 128);
    return g;
}

/* byte offset of (row, 16-byte chunk) in a swizzled tile */
static LLVMValueRef swz(NvCg *c, LLVMValueRef row, LLVMValueRef chunk) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef x = LLVMBuildXor(B, chunk, LLVMBuildAnd(B, LLVMBuildLShr(B, row, i64c(c, 1), ""), i64c(c, 3), ""), "");
    return LLVMBuildAdd(B, LLVMBuildMul(B, row, i64c(c, PROW), ""), LLVMBuildShl(B, x, i64c(c, 4), ""), "");
}

static LLVMValueRef round_up(NvCg *c, LLVMValueRef v, int m) {
    return LLVMBuildAnd(c->b, LLVMBuildAdd(c->b, v, i64c(c, m - 1), ""), i64c(c, -m), "");
}

/* (Mp, Np, Kp) and the two panels' byte offsets for batch bz */
typedef struct Panels { LLVMValueRef Mp, Np, Kp, pa, pb; } Panels;
static Panels panels(NvCg *c, const TlLGemm *g, LLVMValueRef M, LLVMValueRef N, LLVMValueRef K, LLVMValueRef bz) {
    LLVMBuilderRef B = c->b;
    Panels P;
    P.Mp = round_up(c, M, BM), P.Np = round_up(c, N, BN), P.Kp = round_up(c, K, BK);
    LLVMValueRef asz = LLVMBuildMul(B, LLVMBuildMul(B, P.Mp, P.Kp, ""), i64c(c, 2), "");
    LLVMValueRef bsz = LLVMBuildMul(B, LLVMBuildMul(B, P.Np, P.Kp, ""), i64c(c, 2), "");
    P.pa = LLVMBuildMul(B, bz, asz, "");
    P.pb = LLVMBuildAdd(B, LLVMBuildMul(B, tl_nvptx_gen(c, g->batch), asz, ""), LLVMBuildMul(B, bz, bsz, ""), "");
    return P;
}

void tl_nvptx_gen_mma_pack(NvCg *c, const TlLGemm *g, LLVMValueRef scratch) {
    LLVMBuilderRef B = c->b;
    TlDType dt = g->dtype;
    LLVMValueRef M = tl_nvptx_gen(c, g->m), N = tl_nvptx_gen(c, g->n), K = tl_nvptx_gen(c, g->k);
    LLVMValueRef batch = tl_nvptx_gen(c, g->batch);
    Panels P0 = panels(c, g, M, N, K, i64c(c, 0));
    LLVMValueRef KC = LLVMBuildUDiv(B, P0.Kp, i64c(c, 8), "");
    LLVMValueRef na = LLVMBuildMul(B, P0.Mp, KC, ""), per = LLVMBuildMul(B, LLVMBuildAdd(B, P0.Mp, P0.Np, ""), KC, "");
    LLVMValueRef total = LLVMBuildMul(B, batch, per, "");
    LLVMValueRef sam = tl_nvptx_gen(c, g->sa_m), sak = tl_nvptx_gen(c, g->sa_k), sab = tl_nvptx_gen(c, g->sa_b);
    LLVMValueRef sbn = tl_nvptx_gen(c, g->sb_n), sbk = tl_nvptx_gen(c, g->sb_k), sbb = tl_nvptx_gen(c, g->sb_b);
    LLVMValueRef stride = LLVMBuildMul(B, tl_nvptx_sreg(c, "nctaid.x"), i64c(c, NT), "");
    LLVMValueRef islot = tl_nvptx_entry_alloca(c, c->i64);
    LLVMBuildStore(B, LLVMBuildAdd(B, LLVMBuildMul(B, tl_nvptx_sreg(c, "ctaid.x"), i64c(c, NT), ""), tl_nvptx_sreg(c, "tid.x"), ""), islot);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "pack.i");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "pack.body");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "pack.done");
    LLVMBuildBr(B, head);
    LLVMPositionBuilderAtEnd(B, head);
    LLVMValueRef i = LLVMBuildLoad2(B, c->i64, islot, "");
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, i, total, ""), body, done);
    LLVMPositionBuilderAtEnd(B, body);
    LLVMValueRef bz = LLVMBuildUDiv(B, i, per, ""), j = LLVMBuildURem(B, i, per, "");
    LLVMValueRef isa = LLVMBuildICmp(B, LLVMIntULT, j, na, "");
    Panels P = panels(c, g, M, N, K, bz);
#define SEL(a, b) LLVMBuildSelect(B, isa, (a), (b), "")
    LLVMValueRef jj = SEL(j, LLVMBuildSub(B, j, na, ""));
    LLVMValueRef R = SEL(M, N), Rp = SEL(P.Mp, P.Np), sr = SEL(sam, sbn), sk = SEL(sak, sbk);
    LLVMValueRef X0 = SEL(LLVMBuildInBoundsGEP2(B, c->f32, c->bufv[g->a], (LLVMValueRef[]){LLVMBuildMul(B, bz, sab, "")}, 1, ""),
                          LLVMBuildInBoundsGEP2(B, c->f32, c->bufv[g->b], (LLVMValueRef[]){LLVMBuildMul(B, bz, sbb, "")}, 1, ""));
    LLVMValueRef dst0 = SEL(P.pa, P.pb);
#undef SEL
    LLVMValueRef rowfast = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntEQ, sr, i64c(c, 1), ""), LLVMBuildICmp(B, LLVMIntNE, sk, i64c(c, 1), ""), "");
    LLVMValueRef r = LLVMBuildSelect(B, rowfast, LLVMBuildURem(B, jj, Rp, ""), LLVMBuildUDiv(B, jj, KC, ""), "");
    LLVMValueRef kc = LLVMBuildSelect(B, rowfast, LLVMBuildUDiv(B, jj, Rp, ""), LLVMBuildURem(B, jj, KC, ""), "");
    LLVMValueRef k0 = LLVMBuildMul(B, kc, i64c(c, 8), "");
    LLVMValueRef rok = LLVMBuildICmp(B, LLVMIntSLT, r, R, "");
    LLVMValueRef rowoff = LLVMBuildMul(B, r, sr, "");
    LLVMValueRef x[8];
    for (int e = 0; e < 8; e++) {
        LLVMValueRef k = LLVMBuildAdd(B, k0, i64c(c, e), "");
        LLVMValueRef ok = LLVMBuildAnd(B, rok, LLVMBuildICmp(B, LLVMIntSLT, k, K, ""), "");
        LLVMValueRef off = LLVMBuildAdd(B, rowoff, LLVMBuildMul(B, k, sk, ""), "");
        /* X0[off] is dereferenced only when ok (else X0[0], which every buffer has) */
        LLVMValueRef at = LLVMBuildSelect(B, ok, LLVMBuildGEP2(B, c->f32, X0, &off, 1, ""), X0, "");
        x[e] = LLVMBuildSelect(B, ok, LLVMBuildLoad2(B, c->f32, at, ""), LLVMConstReal(c->f32, 0), "");
    }
    LLVMTypeRef v4 = LLVMVectorType(c->i32, 4);
    LLVMValueRef v = LLVMGetUndef(v4);
    for (int e = 0; e < 4; e++) v = LLVMBuildInsertElement(B, v, pack2(c, dt, x[2 * e], x[2 * e + 1]), i32c(c, e), "");
    LLVMValueRef dst = LLVMBuildAdd(B, dst0, LLVMBuildMul(B, LLVMBuildAdd(B, LLVMBuildMul(B, r, P.Kp, ""), k0, ""), i64c(c, 2), ""), "");
    LLVMValueRef st = LLVMBuildStore(B, v, LLVMBuildInBoundsGEP2(B, c->i8, scratch, &dst, 1, ""));
    LLVMSetAlignment(st, 16);
    LLVMBuildStore(B, LLVMBuildAdd(B, i, stride, ""), islot);
    LLVMBuildBr(B, head);
    LLVMPositionBuilderAtEnd(B, done);
}

/* ldmatrix.x4 of the 16 x 16 block at rows r0.., k ks.. of a swizzled k-inner tile at byte
 * `tile` of the ring; matrix order as in ldmatrix() above */
static void ldmatrix_sw(NvCg *c, LLVMValueRef tile, LLVMValueRef lane, LLVMValueRef r0, int ks, int is_a, LLVMValueRef out[4]) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef i = LLVMBuildLShr(B, lane, i64c(c, 3), ""), l8 = LLVMBuildAnd(B, lane, i64c(c, 7), "");
    LLVMValueRef lo = LLVMBuildAnd(B, i, i64c(c, 1), ""), hi = LLVMBuildLShr(B, i, i64c(c, 1), "");
    LLVMValueRef rh = is_a ? lo : hi, kh = is_a ? hi : lo;
    LLVMValueRef row = LLVMBuildAdd(B, LLVMBuildAdd(B, r0, LLVMBuildMul(B, rh, i64c(c, 8), ""), ""), l8, "");
    LLVMValueRef chunk = LLVMBuildAdd(B, i64c(c, ks / 8), kh, "");
    LLVMValueRef p = byte_ptr(c, ring(c), LLVMBuildAdd(B, tile, swz(c, row, chunk), ""));
    LLVMValueRef r = tl_nvptx_intrinsic(c, "llvm.nvvm.ldmatrix.sync.aligned.m8n8.x4.b16", &c->ptr3, 1, &p, 1);
    for (int j = 0; j < 4; j++) out[j] = LLVMBuildExtractValue(B, r, (unsigned)j, "");
}

void tl_nvptx_gen_mma_packed(NvCg *c, const TlLGemm *g, LLVMValueRef scratch) {
    LLVMBuilderRef B = c->b;
    TlDType dt = g->dtype;
    MmaFrame F = mma_frame(c, g);
    LLVMValueRef M = F.M, N = F.N, K = F.K, scm = F.scm, tid = F.tid, lane = F.lane, wm = F.wm, wn = F.wn;
    LLVMValueRef bm0 = F.bm0, bn0 = F.bn0, bz = F.bz, C0 = F.C0;
    Panels P = panels(c, g, M, N, K, bz);
    LLVMValueRef rowb = LLVMBuildMul(B, P.Kp, i64c(c, 2), ""); /* bytes per panel row */
    LLVMValueRef ga = LLVMBuildAdd(B, P.pa, LLVMBuildMul(B, bm0, rowb, ""), "");
    LLVMValueRef gb = LLVMBuildAdd(B, P.pb, LLVMBuildMul(B, bn0, rowb, ""), "");
    /* this thread's copies: row e / 4, chunk e % 4 of each operand's tile, e = tid + NT q */
    LLVMValueRef src[2][CHUNKS], dst[2][CHUNKS];
    for (int q = 0; q < CHUNKS; q++) {
        LLVMValueRef e = LLVMBuildAdd(B, tid, i64c(c, NT * q), "");
        LLVMValueRef r = LLVMBuildLShr(B, e, i64c(c, 2), ""), ch = LLVMBuildAnd(B, e, i64c(c, 3), "");
        LLVMValueRef so = LLVMBuildAdd(B, LLVMBuildMul(B, r, rowb, ""), LLVMBuildShl(B, ch, i64c(c, 4), ""), "");
        src[0][q] = LLVMBuildAdd(B, ga, so, ""), src[1][q] = LLVMBuildAdd(B, gb, so, "");
        dst[0][q] = swz(c, r, ch), dst[1][q] = LLVMBuildAdd(B, dst[0][q], i64c(c, PTILE), "");
    }
    LLVMValueRef nk = LLVMBuildUDiv(B, P.Kp, i64c(c, BK), "");
    /* if (s < nk) copy slice s into stage s % PST; then commit (a group, empty or not) */
#define ISSUE(s)                                                                                                   \
    do {                                                                                                           \
        LLVMBasicBlockRef cp = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.cp");                             \
        LLVMBasicBlockRef cm = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.commit");                         \
        LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, (s), nk, ""), cp, cm);                                     \
        LLVMPositionBuilderAtEnd(B, cp);                                                                           \
        LLVMValueRef kb = LLVMBuildMul(B, (s), i64c(c, PROW), "");                                                 \
        LLVMValueRef sb = LLVMBuildMul(B, LLVMBuildURem(B, (s), i64c(c, PST), ""), i64c(c, PSTAGE), "");           \
        for (int o = 0; o < 2; o++)                                                                                \
            for (int q = 0; q < CHUNKS; q++) {                                                                     \
                LLVMValueRef so = LLVMBuildAdd(B, src[o][q], kb, "");                                              \
                LLVMValueRef args[2] = {byte_ptr(c, ring(c), LLVMBuildAdd(B, sb, dst[o][q], "")),                  \
                                        LLVMBuildInBoundsGEP2(B, c->i8, scratch, &so, 1, "")};                     \
                tl_nvptx_intrinsic(c, "llvm.nvvm.cp.async.cg.shared.global.16", NULL, 0, args, 2);                 \
            }                                                                                                      \
        LLVMBuildBr(B, cm);                                                                                        \
        LLVMPositionBuilderAtEnd(B, cm);                                                                           \
        tl_nvptx_intrinsic(c, "llvm.nvvm.cp.async.commit.group", NULL, 0, NULL, 0);                                \
    } while (0)
    for (int s = 0; s < PST - 1; s++) ISSUE(i64c(c, s));

    LLVMValueRef acc[MT * NTL][4];
    for (int t = 0; t < MT * NTL; t++)
        for (int j = 0; j < 4; j++) {
            acc[t][j] = tl_nvptx_entry_alloca(c, c->f32);
            LLVMBuildStore(B, LLVMConstReal(c->f32, 0), acc[t][j]);
        }
    LLVMValueRef kslot = tl_nvptx_entry_alloca(c, c->i64);
    LLVMBuildStore(B, i64c(c, 0), kslot);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.k");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.body");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mma.store");
    LLVMBuildBr(B, head);
    LLVMPositionBuilderAtEnd(B, head);
    LLVMValueRef kt = LLVMBuildLoad2(B, c->i64, kslot, "");
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, kt, nk, ""), body, exit);
    LLVMPositionBuilderAtEnd(B, body);
    LLVMValueRef w = i32c(c, PST - 2);
    tl_nvptx_intrinsic(c, "llvm.nvvm.cp.async.wait.group", NULL, 0, &w, 1);
    barrier(c);
    ISSUE(LLVMBuildAdd(B, kt, i64c(c, PST - 1), ""));
#undef ISSUE
    LLVMValueRef cur = LLVMBuildMul(B, LLVMBuildURem(B, kt, i64c(c, PST), ""), i64c(c, PSTAGE), "");
    LLVMValueRef curb = LLVMBuildAdd(B, cur, i64c(c, PTILE), "");
    for (int ks = 0; ks < BK; ks += 16) {
        LLVMValueRef af[MT][4], bf[NTL][2];
        for (int mi = 0; mi < MT; mi++) ldmatrix_sw(c, cur, lane, LLVMBuildAdd(B, wm, i64c(c, 16 * mi), ""), ks, 1, af[mi]);
        for (int nj = 0; nj < NTL / 2; nj++) {
            LLVMValueRef r[4];
            ldmatrix_sw(c, curb, lane, LLVMBuildAdd(B, wn, i64c(c, 16 * nj), ""), ks, 0, r);
            bf[2 * nj][0] = r[0], bf[2 * nj][1] = r[1], bf[2 * nj + 1][0] = r[2], bf[2 * nj + 1][1] = r[3];
        }
        for (int mi = 0; mi < MT; mi++)
            for (int nt = 0; nt < NTL; nt++) mma(c, dt, af[mi], bf[nt], acc[mi * NTL + nt]);
    }
    LLVMBuildStore(B, LLVMBuildAdd(B, kt, i64c(c, 1), ""), kslot);
    LLVMBuildBr(B, head);

    LLVMPositionBuilderAtEnd(B, exit);
    tl_nvptx_intrinsic(c, "llvm.nvvm.cp.async.wait.all", NULL, 0, NULL, 0);
    store_acc(c, dt, acc, lane, LLVMBuildAdd(B, bm0, wm, ""), LLVMBuildAdd(B, bn0, wn, ""), M, N, scm, C0);
}
