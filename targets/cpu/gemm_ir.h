/* gemm_ir.h — the LLVM IR builders both GEMM generators use (gemm.c: f32, gemm_bf16.c:
 * bf16 pairs): constants, index arithmetic, allocas in the entry block, intrinsic calls,
 * vector stores and prefetches, lane masks, counted loops and if/else, the functions'
 * attributes, and a 16 x 16 transpose of 32-bit lanes.
 *
 * Included by each generator after it defines its `struct G`, which must have the fields
 * these use: ctx, mod, b, fn, entry, t (the TlCpuTarget) and the types i32, i64, f32, ptr,
 * vf (<16 x float>) and vi32 (<16 x i32>). Not a general header. */
#ifndef TL_GEMM_IR_H
#define TL_GEMM_IR_H

static inline LLVMValueRef ci(G *g, int64_t v) { return LLVMConstInt(g->i64, (unsigned long long)v, 1); }
static inline LLVMValueRef c32(G *g, int v) { return LLVMConstInt(g->i32, (unsigned long long)v, 1); }
static inline LLVMValueRef imin(G *g, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, a, b, ""), a, b, "");
}
static inline LLVMValueRef add(G *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildNSWAdd(g->b, a, b, ""); }
static inline LLVMValueRef mul(G *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildNSWMul(g->b, a, b, ""); }
/* &p[i] for a float pointer p (plain GEP: masked-off rows may point past the end) */
static inline LLVMValueRef fptr(G *g, LLVMValueRef p, LLVMValueRef i) { return LLVMBuildGEP2(g->b, g->f32, p, &i, 1, ""); }
static inline LLVMValueRef entry_alloca(G *g, LLVMTypeRef t, LLVMValueRef n, unsigned align) {
    LLVMBuilderRef eb = LLVMCreateBuilderInContext(g->ctx);
    LLVMValueRef first = LLVMGetFirstInstruction(g->entry);
    if (first) LLVMPositionBuilderBefore(eb, first);
    else LLVMPositionBuilderAtEnd(eb, g->entry);
    LLVMValueRef a = n ? LLVMBuildArrayAlloca(eb, t, n, "") : LLVMBuildAlloca(eb, t, "");
    LLVMSetAlignment(a, align);
    LLVMDisposeBuilder(eb);
    return a;
}
static inline LLVMValueRef intrinsic(G *g, const char *name, LLVMTypeRef *ov, int nov, LLVMValueRef *args, int n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(g->mod, id, ov, (size_t)nov);
    return LLVMBuildCall2(g->b, LLVMIntrinsicGetType(g->ctx, id, ov, (size_t)nov), f, args, (unsigned)n, "");
}
static inline void store_vec(G *g, LLVMValueRef v, LLVMValueRef p, unsigned align) {
    LLVMSetAlignment(LLVMBuildStore(g->b, v, p), align);
}
static inline void prefetch(G *g, LLVMValueRef p) {
    LLVMValueRef args[4] = {p, c32(g, 0), c32(g, 3), c32(g, 1)};
    intrinsic(g, "llvm.prefetch", &g->ptr, 1, args, 4);
}
/* <16 x i1>: lanes base+l < n */
static inline LLVMValueRef lane_mask(G *g, int base, LLVMValueRef n) {
    LLVMValueRef lanes[16];
    for (int l = 0; l < 16; l++) lanes[l] = LLVMConstInt(g->i32, (unsigned)(base + l), 0);
    LLVMValueRef n32 = LLVMBuildTrunc(g->b, n, g->i32, "");
    LLVMValueRef v = LLVMBuildInsertElement(g->b, LLVMGetPoison(g->vi32), n32, c32(g, 0), "");
    v = LLVMBuildShuffleVector(g->b, v, LLVMGetPoison(g->vi32), LLVMConstNull(g->vi32), "");
    return LLVMBuildICmp(g->b, LLVMIntSLT, LLVMConstVector(lanes, 16), v, "");
}
static inline LLVMBasicBlockRef block(G *g, const char *name) { return LLVMAppendBasicBlockInContext(g->ctx, g->fn, name); }
/* for (v = lo; v < hi; v += step): loop_open returns v; loop_close ends the body. */
typedef struct Loop { LLVMValueRef slot, step; LLVMBasicBlockRef head, exit; } Loop;
static inline LLVMValueRef loop_open(G *g, Loop *l, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef step) {
    l->slot = entry_alloca(g, g->i64, NULL, 8), l->step = step;
    LLVMBuildStore(g->b, lo, l->slot);
    l->head = block(g, "g.loop");
    LLVMBasicBlockRef body = block(g, "g.body");
    l->exit = block(g, "g.done");
    LLVMBuildBr(g->b, l->head);
    LLVMPositionBuilderAtEnd(g->b, l->head);
    LLVMValueRef v = LLVMBuildLoad2(g->b, g->i64, l->slot, "");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, v, hi, ""), body, l->exit);
    LLVMPositionBuilderAtEnd(g->b, body);
    return v;
}
static inline void loop_close(G *g, Loop *l) {
    LLVMBuildStore(g->b, add(g, LLVMBuildLoad2(g->b, g->i64, l->slot, ""), l->step), l->slot);
    LLVMBuildBr(g->b, l->head);
    LLVMPositionBuilderAtEnd(g->b, l->exit);
}
/* if (cond) { then } else { els }: returns the else block; the builder is in `then`. */
typedef struct If { LLVMBasicBlockRef els, join; } If;
static inline void if_open(G *g, If *f, LLVMValueRef cond) {
    LLVMBasicBlockRef th = block(g, "g.then");
    f->els = block(g, "g.else"), f->join = block(g, "g.join");
    LLVMBuildCondBr(g->b, cond, th, f->els);
    LLVMPositionBuilderAtEnd(g->b, th);
}
static inline void if_else(G *g, If *f) {
    LLVMBuildBr(g->b, f->join);
    LLVMPositionBuilderAtEnd(g->b, f->els);
}
static inline void if_close(G *g, If *f) {
    LLVMBuildBr(g->b, f->join);
    LLVMPositionBuilderAtEnd(g->b, f->join);
}
static inline void attrs(G *g, LLVMValueRef fn) {
    static const struct { const char *k, *v; } sa[] = {{"prefer-vector-width", "512"}, {"min-legal-vector-width", "512"}};
    for (size_t i = 0; i < sizeof sa / sizeof *sa; i++)
        LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(g->ctx, sa[i].k, (unsigned)strlen(sa[i].k), sa[i].v, (unsigned)strlen(sa[i].v)));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(g->ctx, "target-cpu", 10, g->t->cpu, (unsigned)strlen(g->t->cpu)));
    if (g->t->features && g->t->features[0])
        LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(g->ctx, "target-features", 15, g->t->features, (unsigned)strlen(g->t->features)));
    const char *en[] = {"nounwind", "noinline"};
    for (int i = 0; i < 2; i++)
        LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                                LLVMCreateEnumAttribute(g->ctx, LLVMGetEnumAttributeKindForName(en[i], strlen(en[i])), 0));
}
/* The microkernel's register block: MR x NV accumulators (entry allocas, set to 0),
 * crow[r] = c + r ldc, cmask[h] the columns of a partial tile, and the returned flag
 * mr == MR && nr == NR (a full tile). C's lines are only prefetched here: C is read at
 * the end, so a cache miss on it never stalls the FMA chains. */
static inline LLVMValueRef ukr_block(G *g, LLVMValueRef acc[16][4], LLVMValueRef *crow, LLVMValueRef *cmask,
                                     LLVMValueRef c, LLVMValueRef ldc, LLVMValueRef mr, LLVMValueRef nr) {
    int MR = g->s->mr, NV = g->nv;
    for (int r = 0; r < MR; r++)
        for (int h = 0; h < NV; h++) acc[r][h] = entry_alloca(g, g->vf, NULL, 64);
    LLVMValueRef full = LLVMBuildAnd(g->b, LLVMBuildICmp(g->b, LLVMIntEQ, mr, ci(g, MR), ""),
                                     LLVMBuildICmp(g->b, LLVMIntEQ, nr, ci(g, g->s->nr), ""), "");
    for (int h = 0; h < NV; h++) cmask[h] = lane_mask(g, 16 * h, nr);
    for (int r = 0; r < MR; r++) crow[r] = fptr(g, c, mul(g, ci(g, r), ldc));
    for (int r = 0; r < MR; r++) {
        for (int h = 0; h < NV; h++) LLVMBuildStore(g->b, LLVMConstNull(g->vf), acc[r][h]);
        for (int h = 0; h < NV; h++) prefetch(g, fptr(g, crow[r], ci(g, 16 * h)));
    }
    return full;
}

/* rows[0..16) (16 floats each) transposed in place: 4 butterfly stages, each swapping bit b
 * of the row index with bit b of the lane index (two-source shuffles: vpermt2ps). */
static inline void transpose16(G *g, LLVMValueRef *rows) {
    for (int b = 8; b >= 1; b /= 2)
        for (int i = 0; i < 16; i++) {
            if (i & b) continue;
            LLVMValueRef m0[16], m1[16];
            for (int j = 0; j < 16; j++) {
                m0[j] = c32(g, (j & b) == 0 ? j : 16 + j - b);
                m1[j] = c32(g, (j & b) == 0 ? j + b : 16 + j);
            }
            LLVMValueRef x = rows[i], y = rows[i + b];
            rows[i] = LLVMBuildShuffleVector(g->b, x, y, LLVMConstVector(m0, 16), "");
            rows[i + b] = LLVMBuildShuffleVector(g->b, x, y, LLVMConstVector(m1, 16), "");
        }
}

#endif
