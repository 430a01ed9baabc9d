/* cpu_codegen.c — Loop IR -> LLVM IR through the C API.
 *
 * Per kernel two functions: `<name>.body(ptr noalias b.., i64 sym.., i64 begin, i64 end)`
 * (internal; the loop nest) and the exported wrapper `<name>(ptr bufs, ptr syms, i64 begin,
 * i64 end)` that loads the buffer pointers and symbol values and calls it (O3 inlines it,
 * keeping the noalias facts as scoped metadata). Loop variables and locals are allocas
 * that SROA/mem2reg promote. Loops carry llvm.loop metadata from their schedule. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/DebugInfo.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "cpu_internal.h"
#include "cpu_vmath.h"

typedef struct Cg {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    const TlLProgram *p;
    const TlCpuTarget *t;
    LLVMTypeRef i1, i8, i16, i32, i64, f16, f32, f64, ptr, voidt;
    LLVMValueRef fn;
    LLVMBasicBlockRef entry;
    LLVMValueRef *bufv;   /* per buffer: pointer in the current function */
    LLVMValueRef *symv;   /* per symbol: i64 value */
    LLVMValueRef *varv;   /* per variable: alloca */
    LLVMValueRef *localv; /* per local of the current kernel: alloca */
    const TlLKernel *k;
    LLVMValueRef begin, end;
    int vmath; /* f32 exp/log/tanh/erf inline (cpu_vmath.c) rather than libm; TL_CPU_LIBM=1 turns off */
    char err[256];
} Cg;

static LLVMTypeRef ltype(Cg *c, TlLType t) {
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

static LLVMAttributeRef enum_attr(Cg *c, const char *name, uint64_t v) {
    return LLVMCreateEnumAttribute(c->ctx, LLVMGetEnumAttributeKindForName(name, strlen(name)), v);
}

static void fn_attr(Cg *c, LLVMValueRef fn, const char *name) {
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, enum_attr(c, name, 0));
}

static void str_attr(Cg *c, LLVMValueRef fn, const char *k, const char *v) {
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(c->ctx, k, (unsigned)strlen(k), v, (unsigned)strlen(v)));
}

/* Target and vector attributes on every function we define. */
static void kernel_attrs(Cg *c, LLVMValueRef fn) {
    char w[16];
    snprintf(w, sizeof w, "%d", c->t->vector_width);
    fn_attr(c, fn, "nounwind");
    str_attr(c, fn, "prefer-vector-width", w);
    str_attr(c, fn, "min-legal-vector-width", "0");
    str_attr(c, fn, "target-cpu", c->t->cpu);
    if (c->t->features && c->t->features[0]) str_attr(c, fn, "target-features", c->t->features);
}

/* A pure external function (libm, Philox): nounwind willreturn memory(none), so loops that
 * call it can still be vectorized (docs/cpu-backend.md). */
static LLVMValueRef pure_fn(Cg *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *args, int nargs) {
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
    if (f) return f;
    f = LLVMAddFunction(c->mod, name, LLVMFunctionType(ret, args, (unsigned)nargs, 0));
    fn_attr(c, f, "nounwind");
    fn_attr(c, f, "willreturn");
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, enum_attr(c, "memory", 0));
    return f;
}

static LLVMValueRef call(Cg *c, LLVMValueRef f, LLVMValueRef *args, int n) {
    return LLVMBuildCall2(c->b, LLVMGlobalGetValueType(f), f, args, (unsigned)n, "");
}

static LLVMValueRef intrinsic(Cg *c, const char *name, LLVMTypeRef t, LLVMValueRef *args, int n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, &t, 1);
    return LLVMBuildCall2(c->b, LLVMIntrinsicGetType(c->ctx, id, &t, 1), f, args, (unsigned)n, "");
}

static LLVMValueRef libm1(Cg *c, const char *dname, LLVMValueRef x) {
    int isf = LLVMTypeOf(x) == c->f32;
    char name[32];
    snprintf(name, sizeof name, "%s%s", dname, isf ? "f" : "");
    LLVMTypeRef t = LLVMTypeOf(x);
    return call(c, pure_fn(c, name, t, &t, 1), &x, 1);
}

static LLVMValueRef gen(Cg *c, int e);

static LLVMValueRef gen_cast(Cg *c, LLVMValueRef v, TlLType from, TlLType to) {
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
    if (ff) return LLVMBuildFPToSI(c->b, v, T, "");
    if (tf) return LLVMBuildSIToFP(c->b, v, T, "");
    return tl_ltype_size(to) > tl_ltype_size(from) ? LLVMBuildSExt(c->b, v, T, "") : LLVMBuildTrunc(c->b, v, T, "");
}

/* f32 rounded to the nearest bf16 (ties to even; NaN kept) or f16 (through `half`). */
static LLVMValueRef gen_round(Cg *c, LLVMValueRef v, TlDType dt) {
    if (dt == TL_F16) return LLVMBuildFPExt(c->b, LLVMBuildFPTrunc(c->b, v, c->f16, ""), c->f32, "");
    LLVMValueRef bits = LLVMBuildBitCast(c->b, v, c->i32, "");
    LLVMValueRef lsb = LLVMBuildAnd(c->b, LLVMBuildLShr(c->b, bits, LLVMConstInt(c->i32, 16, 0), ""), LLVMConstInt(c->i32, 1, 0), "");
    LLVMValueRef r = LLVMBuildAdd(c->b, bits, LLVMBuildAdd(c->b, lsb, LLVMConstInt(c->i32, 0x7fff, 0), ""), "");
    r = LLVMBuildAnd(c->b, r, LLVMConstInt(c->i32, 0xffff0000u, 0), "");
    LLVMValueRef isnan = LLVMBuildFCmp(c->b, LLVMRealUNO, v, v, "");
    return LLVMBuildSelect(c->b, isnan, v, LLVMBuildBitCast(c->b, r, c->f32, ""), "");
}

static LLVMValueRef gen_unary(Cg *c, TlLOp op, LLVMValueRef x, int isf) {
    LLVMTypeRef t = LLVMTypeOf(x);
    if (!isf) {
        if (op == TL_LOP_NEG) return LLVMBuildNeg(c->b, x, "");
        LLVMValueRef neg = LLVMBuildICmp(c->b, LLVMIntSLT, x, LLVMConstInt(t, 0, 0), "");
        return LLVMBuildSelect(c->b, neg, LLVMBuildNeg(c->b, x, ""), x, ""); /* abs */
    }
    switch (op) {
    case TL_LOP_NEG: return LLVMBuildFNeg(c->b, x, "");
    case TL_LOP_EXP: return t == c->f32 && c->vmath ? tl_vmath_f32(c->mod, c->b, TL_VM_EXP, x) : libm1(c, "exp", x);
    case TL_LOP_LOG: return t == c->f32 && c->vmath ? tl_vmath_f32(c->mod, c->b, TL_VM_LOG, x) : libm1(c, "log", x);
    case TL_LOP_TANH: return t == c->f32 && c->vmath ? tl_vmath_f32(c->mod, c->b, TL_VM_TANH, x) : libm1(c, "tanh", x);
    case TL_LOP_ERF: return t == c->f32 && c->vmath ? tl_vmath_f32(c->mod, c->b, TL_VM_ERF, x) : libm1(c, "erf", x);
    case TL_LOP_SIN: return libm1(c, "sin", x);
    case TL_LOP_COS: return libm1(c, "cos", x);
    case TL_LOP_SQRT: return intrinsic(c, "llvm.sqrt", t, &x, 1);
    case TL_LOP_RSQRT: return LLVMBuildFDiv(c->b, LLVMConstReal(t, 1.0), intrinsic(c, "llvm.sqrt", t, &x, 1), "");
    case TL_LOP_ABS: return intrinsic(c, "llvm.fabs", t, &x, 1);
    default: return x;
    }
}

static LLVMValueRef gen_binary(Cg *c, TlLOp op, LLVMValueRef a, LLVMValueRef b, int isf) {
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
            LLVMTypeRef ts[2] = {t, t};
            return call(c, pure_fn(c, t == c->f32 ? "powf" : "pow", t, ts, 2), args, 2);
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

/* An alloca in the entry block (promoted to a register by mem2reg). */
static LLVMValueRef entry_alloca(Cg *c, LLVMTypeRef t) {
    LLVMBuilderRef eb = LLVMCreateBuilderInContext(c->ctx);
    LLVMValueRef first = LLVMGetFirstInstruction(c->entry);
    if (first) LLVMPositionBuilderBefore(eb, first);
    else LLVMPositionBuilderAtEnd(eb, c->entry);
    LLVMValueRef a = LLVMBuildAlloca(eb, t, "");
    LLVMDisposeBuilder(eb);
    return a;
}

static LLVMValueRef var_slot(Cg *c, int var) {
    if (!c->varv[var]) c->varv[var] = entry_alloca(c, c->i64);
    return c->varv[var];
}

static LLVMValueRef gen(Cg *c, int e) {
    const TlLExpr *x = &c->p->ex[e];
    switch (x->kind) {
    case TL_LE_INT: return LLVMConstInt(ltype(c, x->type), (unsigned long long)x->ival, 1);
    case TL_LE_FLT: return LLVMConstReal(ltype(c, x->type), x->fval);
    case TL_LE_VAR: return LLVMBuildLoad2(c->b, c->i64, var_slot(c, x->var), "");
    case TL_LE_SYM: return c->symv[x->sym];
    case TL_LE_LOCAL: return LLVMBuildLoad2(c->b, ltype(c, x->type), c->localv[x->var], "");
    case TL_LE_LOAD: {
        LLVMTypeRef t = ltype(c, x->type);
        LLVMValueRef idx = gen(c, x->a);
        LLVMValueRef ptr = LLVMBuildInBoundsGEP2(c->b, t, c->bufv[x->buf], &idx, 1, "");
        return LLVMBuildLoad2(c->b, t, ptr, "");
    }
    case TL_LE_UN: return gen_unary(c, x->op, gen(c, x->a), tl_ltype_is_float(x->type));
    case TL_LE_BIN: {
        LLVMValueRef a = gen(c, x->a), b = gen(c, x->b);
        return gen_binary(c, x->op, a, b, tl_ltype_is_float(c->p->ex[x->a].type));
    }
    case TL_LE_SELECT: {
        LLVMValueRef cnd = gen(c, x->a), a = gen(c, x->b), b = gen(c, x->c);
        return LLVMBuildSelect(c->b, cnd, a, b, "");
    }
    case TL_LE_CAST: return gen_cast(c, gen(c, x->a), c->p->ex[x->a].type, x->type);
    case TL_LE_ROUND: return gen_round(c, gen(c, x->a), x->dtype);
    case TL_LE_RANDOM: {
        LLVMTypeRef ts[3] = {c->i64, c->i64, c->i64};
        LLVMValueRef f = pure_fn(c, x->dist == TL_RANDOM_NORMAL ? "tl_philox_normal_at" : "tl_philox_uniform_at", c->f64, ts, 3);
        LLVMValueRef args[3] = {gen(c, x->b), LLVMConstInt(c->i64, x->offset, 0), gen(c, x->a)};
        return call(c, f, args, 3);
    }
    }
    return NULL;
}

/* !{!"name", value} */
static LLVMMetadataRef md_prop(Cg *c, const char *name, LLVMValueRef v) {
    LLVMMetadataRef ops[2] = {LLVMMDStringInContext2(c->ctx, name, strlen(name)), NULL};
    int n = 1;
    if (v) ops[n++] = LLVMValueAsMetadata(v);
    return LLVMMDNodeInContext2(c->ctx, ops, (size_t)n);
}

/* The self-referential llvm.loop node carrying the loop's schedule hints. */
static void loop_metadata(Cg *c, LLVMValueRef br, const TlLSched *s) {
    LLVMMetadataRef ops[6];
    int n = 1;
    if (s->vectorize > 1) ops[n++] = md_prop(c, "llvm.loop.vectorize.enable", LLVMConstInt(c->i1, 1, 0));
    if (s->vectorize > 1) ops[n++] = md_prop(c, "llvm.loop.vectorize.width", LLVMConstInt(c->i32, (unsigned)s->vectorize, 0));
    if (s->vectorize > 1 && s->interleave > 0)
        ops[n++] = md_prop(c, "llvm.loop.interleave.count", LLVMConstInt(c->i32, (unsigned)s->interleave, 0));
    if (s->unroll > 1) ops[n++] = md_prop(c, "llvm.loop.unroll.count", LLVMConstInt(c->i32, (unsigned)s->unroll, 0));
    if (s->parallel) ops[n++] = md_prop(c, "llvm.loop.mustprogress", NULL);
    if (n == 1) return;
    LLVMMetadataRef tmp = LLVMTemporaryMDNode(c->ctx, NULL, 0);
    ops[0] = tmp;
    LLVMMetadataRef node = LLVMMDNodeInContext2(c->ctx, ops, (size_t)n);
    LLVMMetadataReplaceAllUsesWith(tmp, node);
    unsigned kind = LLVMGetMDKindIDInContext(c->ctx, "llvm.loop", 9);
    LLVMSetMetadata(br, kind, LLVMMetadataAsValue(c->ctx, node));
}

static void gen_stmts(Cg *c, int s);

/* for (v = lo; v < hi; v++) body — the parallel loop runs [begin, end) instead. */
static void gen_loop(Cg *c, const TlLStmt *s) {
    LLVMValueRef lo = s->sched.parallel ? c->begin : gen(c, s->lo);
    LLVMValueRef hi = s->sched.parallel ? c->end : gen(c, s->hi);
    LLVMValueRef slot = var_slot(c, s->var);
    LLVMBuildStore(c->b, lo, slot);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "loop");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "body");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "done");
    LLVMBuildBr(c->b, head);
    LLVMPositionBuilderAtEnd(c->b, head);
    LLVMValueRef iv = LLVMBuildLoad2(c->b, c->i64, slot, "");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, iv, hi, ""), body, exit);
    LLVMPositionBuilderAtEnd(c->b, body);
    gen_stmts(c, s->body);
    LLVMValueRef nx = LLVMBuildNSWAdd(c->b, LLVMBuildLoad2(c->b, c->i64, slot, ""), LLVMConstInt(c->i64, 1, 0), "");
    LLVMBuildStore(c->b, nx, slot);
    loop_metadata(c, LLVMBuildBr(c->b, head), &s->sched);
    LLVMPositionBuilderAtEnd(c->b, exit);
}

static void gen_stmts(Cg *c, int s) {
    for (; s >= 0; s = c->p->st[s].next) {
        const TlLStmt *t = &c->p->st[s];
        switch (t->kind) {
        case TL_LS_LOOP: gen_loop(c, t); break;
        case TL_LS_STORE: {
            LLVMTypeRef ty = ltype(c, c->p->buf[t->buf].elem);
            LLVMValueRef v = gen(c, t->value), idx = gen(c, t->index);
            LLVMValueRef ptr = LLVMBuildInBoundsGEP2(c->b, ty, c->bufv[t->buf], &idx, 1, "");
            LLVMBuildStore(c->b, v, ptr);
            break;
        }
        case TL_LS_SET: LLVMBuildStore(c->b, gen(c, t->value), c->localv[t->var]); break;
        case TL_LS_IF: {
            LLVMBasicBlockRef th = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "then");
            LLVMBasicBlockRef el = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "else");
            LLVMBasicBlockRef jn = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "join");
            LLVMBuildCondBr(c->b, gen(c, t->cond), th, el);
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

/* ---- which buffers a kernel touches ---- */

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

static void reset_fn_state(Cg *c) {
    memset(c->bufv, 0, sizeof *c->bufv * (size_t)(c->p->nbuf + 1));
    memset(c->varv, 0, sizeof *c->varv * (size_t)(c->p->nvars + 1));
}

static LLVMValueRef load_slot(Cg *c, LLVMValueRef arr, LLVMTypeRef t, int i) {
    LLVMValueRef idx = LLVMConstInt(c->i64, (unsigned)i, 0);
    return LLVMBuildLoad2(c->b, t, LLVMBuildInBoundsGEP2(c->b, t, arr, &idx, 1, ""), "");
}

/* The GEMM epilogue over one summed tile of C (gemm.c calls it after the last k block):
 *   for r < nrows: for j < ncols: acc = C[bi, row0 + r, col0 + j]; C[...] = epi(acc)
 * with the epilogue's loop variables bound to the element's (b, i, j). Scalar code in an
 * inner loop that LLVM vectorizes, like a pointwise kernel's (same expression, same bits). */
typedef struct EpiCtx { Cg *c; const TlLGemm *s; LLVMValueRef C, sc_b, sc_m; } EpiCtx;

static void gen_epilogue(void *ctx, LLVMValueRef bi, LLVMValueRef row0, LLVMValueRef nrows, LLVMValueRef col0, LLVMValueRef ncols) {
    EpiCtx *e = ctx;
    Cg *c = e->c;
    const TlLGemm *s = e->s;
    LLVMBuilderRef B = c->b;
    LLVMValueRef rs = entry_alloca(c, c->i64), js = entry_alloca(c, c->i64), one = LLVMConstInt(c->i64, 1, 0);
    LLVMBuildStore(B, bi, var_slot(c, s->ev_b));
    LLVMValueRef cb = LLVMBuildInBoundsGEP2(B, c->f32, e->C, (LLVMValueRef[]){LLVMBuildMul(B, bi, e->sc_b, "")}, 1, "");
    LLVMValueRef sl[2] = {rs, js}, hi[2] = {nrows, ncols};
    LLVMBasicBlockRef head[2], exit[2];
    for (int l = 0; l < 2; l++) { /* for r: for j: */
        LLVMBuildStore(B, LLVMConstInt(c->i64, 0, 0), sl[l]);
        head[l] = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "epi.loop");
        LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "epi.body");
        exit[l] = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "epi.done");
        LLVMBuildBr(B, head[l]);
        LLVMPositionBuilderAtEnd(B, head[l]);
        LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, LLVMBuildLoad2(B, c->i64, sl[l], ""), hi[l], ""), body, exit[l]);
        LLVMPositionBuilderAtEnd(B, body);
    }
    LLVMValueRef i = LLVMBuildNSWAdd(B, row0, LLVMBuildLoad2(B, c->i64, rs, ""), "");
    LLVMValueRef j = LLVMBuildNSWAdd(B, col0, LLVMBuildLoad2(B, c->i64, js, ""), "");
    LLVMBuildStore(B, i, var_slot(c, s->ev_i));
    LLVMBuildStore(B, j, var_slot(c, s->ev_j));
    LLVMValueRef off = LLVMBuildNSWAdd(B, LLVMBuildNSWMul(B, i, e->sc_m, ""), j, "");
    LLVMValueRef ptr = LLVMBuildInBoundsGEP2(B, c->f32, cb, &off, 1, "");
    LLVMValueRef acc = LLVMBuildLoad2(B, c->f32, ptr, "");
    TlLType at = c->k->local_type[s->epi_acc];
    LLVMBuildStore(B, at == TL_LT_F32 ? acc : LLVMBuildFPExt(B, acc, ltype(c, at), ""), c->localv[s->epi_acc]);
    LLVMBuildStore(B, gen(c, s->epi), ptr);
    for (int l = 1; l >= 0; l--) {
        LLVMBuildStore(B, LLVMBuildNSWAdd(B, LLVMBuildLoad2(B, c->i64, sl[l], ""), one, ""), sl[l]);
        LLVMBuildBr(B, head[l]);
        LLVMPositionBuilderAtEnd(B, exit[l]);
    }
}

/* Whether kernel k compiles through a GEMM generator: gemm.c (f32) or gemm_bf16.c (bf16). */
static int gemm_fast(Cg *c, const TlLKernel *k) {
    return tl_cpu_gemm_supported(c->t, &k->gemm) || tl_cpu_gemm_bf16_supported(c->t, &k->gemm);
}

/* A matmul kernel through the GEMM generator (gemm.c) instead of its loop nest. */
static void gen_gemm(Cg *c, const TlLKernel *k, LLVMValueRef fn) {
    const TlLGemm *s = &k->gemm;
    EpiCtx ec = {c, s, c->bufv[s->c], NULL, NULL};
    TlCpuGemmArgs a = {
        .a = c->bufv[s->a], .b = c->bufv[s->b], .c = c->bufv[s->c],
        .batch = gen(c, s->batch), .m = gen(c, s->m), .n = gen(c, s->n), .k = gen(c, s->k),
        .sa_b = gen(c, s->sa_b), .sa_m = gen(c, s->sa_m), .sa_k = gen(c, s->sa_k),
        .sb_b = gen(c, s->sb_b), .sb_k = gen(c, s->sb_k), .sb_n = gen(c, s->sb_n),
        .sc_b = gen(c, s->sc_b), .sc_m = gen(c, s->sc_m), .begin = c->begin, .end = c->end,
        .epi = s->has_epi ? gen_epilogue : NULL, .epi_ctx = &ec,
    };
    ec.sc_b = a.sc_b, ec.sc_m = a.sc_m;
    if (s->dtype == TL_BF16) tl_cpu_gemm_bf16_emit(c->mod, c->b, fn, c->t, s, k->name, &a);
    else tl_cpu_gemm_emit(c->mod, c->b, fn, c->t, s, k->name, &a);
}

/* The head size of an attention kernel when it is a constant the generator handles. */
static int attn_fast(Cg *c, const TlLKernel *k, int64_t *K) {
    if (!k->attn.on) return 0;
    const TlLExpr *e = &c->p->ex[k->attn.kd];
    if (e->kind != TL_LE_INT) return 0;
    *K = e->ival;
    return tl_cpu_attn_supported(c->t, &k->attn, *K);
}

/* An attention kernel through attn.c instead of its loop nest. */
static void gen_attn(Cg *c, const TlLKernel *k, LLVMValueRef fn, int64_t K) {
    const TlLAttn *s = &k->attn;
    TlCpuAttnArgs a = {
        .q = c->bufv[s->q], .k = c->bufv[s->k], .v = c->bufv[s->v], .o = c->bufv[s->o],
        .g = s->g >= 0 ? c->bufv[s->g] : NULL, .out = c->bufv[s->out],
        .bh = gen(c, s->bh), .t = gen(c, s->t), .begin = c->begin, .end = c->end,
    };
    tl_cpu_attn_emit(c->mod, c->b, fn, s, K, &a);
}

/* The parallel extent of kernel k: its GEMM's or attention's items, or its loop's. */
static LLVMValueRef kernel_extent(Cg *c, const TlLKernel *k) {
    int64_t K;
    if (attn_fast(c, k, &K)) {
        LLVMValueRef T = gen(c, k->attn.t), bq = LLVMConstInt(c->i64, (unsigned)k->attn.bq, 0);
        LLVMValueRef nb = LLVMBuildSDiv(c->b, LLVMBuildAdd(c->b, T, LLVMConstInt(c->i64, (unsigned)k->attn.bq - 1, 0), ""), bq, "");
        return k->attn.grad ? gen(c, k->attn.bh) : LLVMBuildMul(c->b, gen(c, k->attn.bh), nb, "");
    }
    int ext = gemm_fast(c, k) ? k->gemm.par_extent : k->par_extent;
    return ext >= 0 ? gen(c, ext) : LLVMConstInt(c->i64, 1, 0);
}

static void gen_kernel(Cg *c, int ki) {
    const TlLProgram *p = c->p;
    const TlLKernel *k = &p->kern[ki];
    char *used = calloc((size_t)p->nbuf + 1, 1);
    if (!used) abort();
    mark_stmts(p, k->body, used);
    int nb = 0;
    for (int i = 0; i < p->nbuf; i++) nb += used[i];
    int nargs = nb + p->nsyms + 2;
    LLVMTypeRef *at = malloc(sizeof *at * (size_t)(nargs + 1));
    if (!at) abort();
    for (int i = 0; i < nargs; i++) at[i] = i < nb ? c->ptr : c->i64;
    char name[96];
    snprintf(name, sizeof name, "%s.body", k->name);
    LLVMValueRef inner = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->voidt, at, (unsigned)nargs, 0));
    LLVMSetLinkage(inner, LLVMInternalLinkage);
    kernel_attrs(c, inner);
    for (int i = 0; i < nb; i++) LLVMAddAttributeAtIndex(inner, (unsigned)i + 1, enum_attr(c, "noalias", 0));

    /* the body */
    reset_fn_state(c);
    c->fn = inner, c->k = k;
    c->entry = LLVMAppendBasicBlockInContext(c->ctx, inner, "entry");
    LLVMPositionBuilderAtEnd(c->b, c->entry);
    int a = 0;
    for (int i = 0; i < p->nbuf; i++)
        if (used[i]) c->bufv[i] = LLVMGetParam(inner, (unsigned)a++);
    for (int i = 0; i < p->nsyms; i++) c->symv[i] = LLVMGetParam(inner, (unsigned)(nb + i));
    c->begin = LLVMGetParam(inner, (unsigned)(nb + p->nsyms));
    c->end = LLVMGetParam(inner, (unsigned)(nb + p->nsyms + 1));
    c->localv = malloc(sizeof *c->localv * (size_t)(k->nlocals + 1));
    if (!c->localv) abort();
    for (int l = 0; l < k->nlocals; l++) c->localv[l] = LLVMBuildAlloca(c->b, ltype(c, k->local_type[l]), "");
    int64_t K;
    if (attn_fast(c, k, &K)) gen_attn(c, k, inner, K);
    else if (gemm_fast(c, k)) gen_gemm(c, k, inner);
    else gen_stmts(c, k->body);
    LLVMBuildRetVoid(c->b);
    free(c->localv);
    c->localv = NULL;

    /* the exported wrapper: (ptr bufs, ptr syms, i64 begin, i64 end) */
    LLVMTypeRef wt[4] = {c->ptr, c->ptr, c->i64, c->i64};
    LLVMValueRef w = LLVMAddFunction(c->mod, k->name, LLVMFunctionType(c->voidt, wt, 4, 0));
    kernel_attrs(c, w);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, w, "entry"));
    LLVMValueRef *args = malloc(sizeof *args * (size_t)(nargs + 1));
    if (!args) abort();
    a = 0;
    for (int i = 0; i < p->nbuf; i++)
        if (used[i]) args[a++] = load_slot(c, LLVMGetParam(w, 0), c->ptr, i);
    for (int i = 0; i < p->nsyms; i++) args[a++] = load_slot(c, LLVMGetParam(w, 1), c->i64, i);
    args[a++] = LLVMGetParam(w, 2);
    args[a++] = LLVMGetParam(w, 3);
    LLVMBuildCall2(c->b, LLVMGlobalGetValueType(inner), inner, args, (unsigned)nargs, "");
    LLVMBuildRetVoid(c->b);
    free(args);
    free(at);
    free(used);
}

/* ---- the host driver ---- */

static LLVMValueRef slot_ptr(Cg *c, LLVMValueRef bufs, int i) {
    LLVMValueRef idx = LLVMConstInt(c->i64, (unsigned)i, 0);
    return LLVMBuildInBoundsGEP2(c->b, c->ptr, bufs, &idx, 1, "");
}

static LLVMValueRef byte_ptr(Cg *c, LLVMValueRef bufs, int buf, int off) {
    LLVMValueRef base = LLVMBuildLoad2(c->b, c->ptr, slot_ptr(c, bufs, buf), "");
    LLVMValueRef o = gen(c, off);
    return LLVMBuildGEP2(c->b, c->i8, base, &o, 1, "");
}

static void gen_host(Cg *c, int h, LLVMValueRef *kfn) {
    LLVMValueRef bufs = LLVMGetParam(c->fn, 0), syms = LLVMGetParam(c->fn, 1);
    LLVMValueRef parfor = LLVMGetParam(c->fn, 2), pool = LLVMGetParam(c->fn, 3);
    for (; h >= 0; h = c->p->host[h].next) {
        const TlLHost *o = &c->p->host[h];
        switch (o->kind) {
        case TL_LH_KERNEL: {
            const TlLKernel *k = &c->p->kern[o->kernel];
            LLVMValueRef n = kernel_extent(c, k);
            LLVMTypeRef pt[5] = {c->ptr, c->ptr, c->ptr, c->ptr, c->i64};
            LLVMValueRef args[5] = {pool, kfn[o->kernel], bufs, syms, n};
            LLVMBuildCall2(c->b, LLVMFunctionType(c->voidt, pt, 5, 0), parfor, args, 5, "");
            break;
        }
        case TL_LH_COPY: {
            LLVMValueRef d = byte_ptr(c, bufs, o->dst, o->dst_off), s = byte_ptr(c, bufs, o->src, o->src_off);
            LLVMBuildMemMove(c->b, d, 1, s, 1, gen(c, o->nbytes));
            break;
        }
        case TL_LH_ALIAS:
            LLVMBuildStore(c->b, byte_ptr(c, bufs, o->src, o->src_off), slot_ptr(c, bufs, o->dst));
            break;
        case TL_LH_LOOP: { /* for s in [0, count): var = reverse ? count-1-s : s */
            LLVMValueRef cnt = gen(c, o->count);
            LLVMValueRef sslot = entry_alloca(c, c->i64);
            LLVMBuildStore(c->b, LLVMConstInt(c->i64, 0, 0), sslot);
            LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "step");
            LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "stepbody");
            LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "stepdone");
            LLVMBuildBr(c->b, head);
            LLVMPositionBuilderAtEnd(c->b, head);
            LLVMValueRef sv = LLVMBuildLoad2(c->b, c->i64, sslot, "");
            LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, sv, cnt, ""), body, exit);
            LLVMPositionBuilderAtEnd(c->b, body);
            LLVMValueRef t = o->reverse ? LLVMBuildSub(c->b, LLVMBuildSub(c->b, cnt, LLVMConstInt(c->i64, 1, 0), ""), sv, "") : sv;
            LLVMBuildStore(c->b, t, var_slot(c, o->var));
            gen_host(c, o->body, kfn);
            LLVMBuildStore(c->b, LLVMBuildAdd(c->b, LLVMBuildLoad2(c->b, c->i64, sslot, ""), LLVMConstInt(c->i64, 1, 0), ""), sslot);
            LLVMBuildBr(c->b, head);
            LLVMPositionBuilderAtEnd(c->b, exit);
            break;
        }
        }
    }
}

/* A constant buffer: its values in storage form, as a private constant global. */
static LLVMValueRef const_global(Cg *c, int i, int64_t n) {
    const TlLBuf *b = &c->p->buf[i];
    LLVMTypeRef t = ltype(c, b->elem);
    LLVMValueRef *vals = malloc(sizeof *vals * (size_t)(n + 1));
    if (!vals) abort();
    for (int64_t j = 0; j < n; j++) {
        double v = tl_interp_round(b->dtype, b->init[j]);
        vals[j] = tl_ltype_is_float(b->elem) ? LLVMConstReal(t, v) : LLVMConstInt(t, (unsigned long long)(int64_t)v, 1);
    }
    char name[32];
    snprintf(name, sizeof name, "tl_const%d", i);
    LLVMValueRef g = LLVMAddGlobal(c->mod, LLVMArrayType2(t, (uint64_t)n), name);
    LLVMSetInitializer(g, LLVMConstArray2(t, vals, (uint64_t)n));
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetAlignment(g, 64);
    free(vals);
    return g;
}

static void gen_main(Cg *c) {
    const TlLProgram *p = c->p;
    LLVMTypeRef mt[4] = {c->ptr, c->ptr, c->ptr, c->ptr};
    c->fn = LLVMAddFunction(c->mod, "tl_main", LLVMFunctionType(c->voidt, mt, 4, 0));
    kernel_attrs(c, c->fn);
    reset_fn_state(c);
    c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
    LLVMPositionBuilderAtEnd(c->b, c->entry);
    for (int i = 0; i < p->nsyms; i++) c->symv[i] = load_slot(c, LLVMGetParam(c->fn, 1), c->i64, i);
    for (int i = 0; i < p->nbuf; i++)
        if (p->buf[i].kind == TL_LB_CONST) {
            int64_t n = tl_loops_eval(p, p->buf[i].numel, NULL); /* constant shape */
            LLVMBuildStore(c->b, const_global(c, i, n), slot_ptr(c, LLVMGetParam(c->fn, 0), i));
        }
    LLVMValueRef *kfn = malloc(sizeof *kfn * (size_t)(p->nkern + 1));
    if (!kfn) abort();
    for (int k = 0; k < p->nkern; k++) kfn[k] = LLVMGetNamedFunction(c->mod, p->kern[k].name);
    gen_host(c, p->entry, kfn);
    LLVMBuildRetVoid(c->b);
    free(kfn);

    /* tl_sizes(syms, numel): the element count of every buffer */
    LLVMTypeRef st[2] = {c->ptr, c->ptr};
    c->fn = LLVMAddFunction(c->mod, "tl_sizes", LLVMFunctionType(c->voidt, st, 2, 0));
    kernel_attrs(c, c->fn);
    reset_fn_state(c);
    c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
    LLVMPositionBuilderAtEnd(c->b, c->entry);
    for (int i = 0; i < p->nsyms; i++) c->symv[i] = load_slot(c, LLVMGetParam(c->fn, 0), c->i64, i);
    for (int i = 0; i < p->nbuf; i++) {
        LLVMValueRef idx = LLVMConstInt(c->i64, (unsigned)i, 0);
        LLVMBuildStore(c->b, gen(c, p->buf[i].numel), LLVMBuildInBoundsGEP2(c->b, c->i64, LLVMGetParam(c->fn, 1), &idx, 1, ""));
    }
    LLVMBuildRetVoid(c->b);
}

LLVMModuleRef tl_cpu_codegen(LLVMContextRef ctx, const TlLProgram *p, const TlCpuTarget *t,
                             LLVMTargetMachineRef tm, char *err, int errn) {
    Cg c;
    memset(&c, 0, sizeof c);
    c.ctx = ctx, c.p = p, c.t = t;
    { const char *lm = getenv("TL_CPU_LIBM"); c.vmath = !(lm && lm[0] == '1'); }
    c.mod = LLVMModuleCreateWithNameInContext("tl", ctx);
    LLVMSetTarget(c.mod, t->triple);
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
    c.ptr = LLVMPointerTypeInContext(ctx, 0), c.voidt = LLVMVoidTypeInContext(ctx);
    c.bufv = calloc((size_t)p->nbuf + 1, sizeof *c.bufv);
    c.symv = calloc((size_t)p->nsyms + 1, sizeof *c.symv);
    c.varv = calloc((size_t)p->nvars + 1, sizeof *c.varv);
    if (!c.bufv || !c.symv || !c.varv) abort();
    for (int k = 0; k < p->nkern; k++) gen_kernel(&c, k);
    gen_main(&c);
    LLVMDisposeBuilder(c.b);
    free(c.bufv), free(c.symv), free(c.varv);
    char *msg = NULL;
    if (LLVMVerifyModule(c.mod, LLVMReturnStatusAction, &msg)) {
        if (err) snprintf(err, (size_t)errn, "internal error: invalid LLVM IR: %.200s", msg ? msg : "");
        LLVMDisposeMessage(msg);
        LLVMDisposeModule(c.mod);
        return NULL;
    }
    LLVMDisposeMessage(msg);
    return c.mod;
}

int tl_cpu_optimize(LLVMModuleRef m, LLVMTargetMachineRef tm, int level, char *err, int errn) {
    char pipeline[32];
    snprintf(pipeline, sizeof pipeline, "default<O%d>", level < 0 || level > 3 ? 3 : level);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, level >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(po, level >= 2);
    LLVMPassBuilderOptionsSetLoopUnrolling(po, level >= 2);
    LLVMErrorRef e = LLVMRunPasses(m, pipeline, tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (e) {
        char *msg = LLVMGetErrorMessage(e);
        if (err) snprintf(err, (size_t)errn, "LLVM passes failed: %s", msg);
        LLVMDisposeErrorMessage(msg);
        return -1;
    }
    return 0;
}
