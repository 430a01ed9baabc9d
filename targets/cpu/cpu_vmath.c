/* cpu_vmath.c — inline f32 exp/log/tanh/erf as branch-free LLVM IR (see cpu_vmath.h).
 *
 * libm's expf/tanhf/... stay scalar calls inside vectorized loops; these polynomial forms
 * use only fmuladd, selects and integer bit tricks, so a loop using them widens to full
 * vectors. Approximations (max error measured by tests/unit/test_vmath.c, documented in
 * docs/cpu-backend.md):
 *   exp  Cephes: n = round(x·log2e) by the 1.5·2^23 trick, r = x − n·ln2 (two-part ln2),
 *        degree-6 polynomial, 2^n applied as two exponent-field scalings (so denormal
 *        results round once); x > ln(FLT_MAX) → +Inf, x < −104 → 0, NaN passes through.
 *   log  Cephes: exponent/mantissa split with m in [√½, √2), degree-9 polynomial in m−1;
 *        denormal inputs prescaled by 2^23; 0 → −Inf, x < 0 → NaN, +Inf → +Inf.
 *   tanh |x| < 0.625: x + x·s·P(s) (s = x²); else sign(x)·(1−e)/(1+e), e = exp(−2|x|).
 *   erf  N. Juffa's faithfully-rounded erff: |x| ≤ 0.9277: x·P(x²); else 1 − exp(Q(|x|)). */
#include <math.h>
#include <string.h>

#include "cpu_vmath.h"

typedef struct {
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef f, i;    /* f32 and i32, or vectors of them */
    LLVMTypeRef sf, si;  /* the element types */
    unsigned lanes;      /* 0: scalar */
} Vm;

static LLVMValueRef splat(Vm *v, LLVMValueRef c) {
    if (!v->lanes) return c;
    LLVMValueRef e[64];
    for (unsigned k = 0; k < v->lanes; k++) e[k] = c;
    return LLVMConstVector(e, v->lanes);
}
static LLVMValueRef cf(Vm *v, double x) { return splat(v, LLVMConstReal(v->sf, x)); }
static LLVMValueRef ci(Vm *v, long long x) { return splat(v, LLVMConstInt(v->si, (unsigned long long)x, 1)); }

static LLVMValueRef call1(Vm *v, const char *name, LLVMValueRef *args, unsigned n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(v->mod, id, &v->f, 1);
    return LLVMBuildCall2(v->b, LLVMIntrinsicGetType(LLVMGetModuleContext(v->mod), id, &v->f, 1), fn, args, n, "");
}

static LLVMValueRef fma3(Vm *v, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
    LLVMValueRef args[3] = {a, b, c};
    return call1(v, "llvm.fmuladd", args, 3);
}
static LLVMValueRef fmac(Vm *v, LLVMValueRef a, LLVMValueRef b, double c) { return fma3(v, a, b, cf(v, c)); }
static LLVMValueRef add(Vm *v, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(v->b, a, b, ""); }
static LLVMValueRef sub(Vm *v, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(v->b, a, b, ""); }
static LLVMValueRef mul(Vm *v, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(v->b, a, b, ""); }
static LLVMValueRef cmp(Vm *v, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFCmp(v->b, p, a, b, ""); }
static LLVMValueRef sel(Vm *v, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSelect(v->b, c, a, b, ""); }
static LLVMValueRef fabs1(Vm *v, LLVMValueRef x) { return call1(v, "llvm.fabs", &x, 1); }
static LLVMValueRef copysign2(Vm *v, LLVMValueRef mag, LLVMValueRef sgn) {
    LLVMValueRef args[2] = {mag, sgn};
    return call1(v, "llvm.copysign", args, 2);
}
static LLVMValueRef tof(Vm *v, LLVMValueRef i) { return LLVMBuildBitCast(v->b, i, v->f, ""); }
static LLVMValueRef toi(Vm *v, LLVMValueRef f) { return LLVMBuildBitCast(v->b, f, v->i, ""); }

/* Horner: c[0]·x^(n−1) + ... + c[n−1]. */
static LLVMValueRef horner(Vm *v, LLVMValueRef x, const double *c, int n) {
    LLVMValueRef p = cf(v, c[0]);
    for (int k = 1; k < n; k++) p = fmac(v, p, x, c[k]);
    return p;
}

#define EXP_HI 88.72283172607422 /* largest f32 whose exp is finite */
#define EXP_LO -104.0            /* exp below rounds to 0 */

static LLVMValueRef vm_exp(Vm *v, LLVMValueRef x) {
    static const double P[] = {1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3,
                               4.1665795894E-2, 1.6666665459E-1, 5.0000001201E-1};
    LLVMValueRef xc = sel(v, cmp(v, LLVMRealOGT, x, cf(v, EXP_HI)), cf(v, EXP_HI), x);
    xc = sel(v, cmp(v, LLVMRealOLT, xc, cf(v, EXP_LO)), cf(v, EXP_LO), xc);
    /* n = round(x·log2e): adding 1.5·2^23 leaves n in the low mantissa bits */
    LLVMValueRef t = fmac(v, xc, cf(v, 1.44269504088896341), 12582912.0);
    LLVMValueRef nf = sub(v, t, cf(v, 12582912.0));
    LLVMValueRef ni = LLVMBuildSub(v->b, toi(v, t), ci(v, 0x4B400000), "");
    LLVMValueRef r = fma3(v, nf, cf(v, -0.693359375), xc);
    r = fma3(v, nf, cf(v, 2.12194440e-4), r);
    LLVMValueRef z = mul(v, r, r);
    LLVMValueRef y = add(v, fma3(v, horner(v, r, P, 6), z, r), cf(v, 1.0));
    /* y·2^n as y·2^n1·2^n2 (n1 = n>>1): both factors normal for n in [−150, 128] */
    LLVMValueRef n1 = LLVMBuildAShr(v->b, ni, ci(v, 1), "");
    LLVMValueRef n2 = LLVMBuildSub(v->b, ni, n1, "");
    LLVMValueRef s1 = tof(v, LLVMBuildShl(v->b, LLVMBuildAdd(v->b, n1, ci(v, 127), ""), ci(v, 23), ""));
    LLVMValueRef s2 = tof(v, LLVMBuildShl(v->b, LLVMBuildAdd(v->b, n2, ci(v, 127), ""), ci(v, 23), ""));
    y = mul(v, mul(v, y, s1), s2);
    y = sel(v, cmp(v, LLVMRealOGT, x, cf(v, EXP_HI)), cf(v, (double)INFINITY), y);
    return sel(v, cmp(v, LLVMRealUNO, x, x), x, y);
}

static LLVMValueRef vm_log(Vm *v, LLVMValueRef x) {
    static const double P[] = {7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1,
                               -1.2420140846E-1, 1.4249322787E-1, -1.6668057665E-1,
                               2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1};
    LLVMValueRef den = cmp(v, LLVMRealOLT, x, cf(v, 1.17549435082228751e-38));
    LLVMValueRef xs = sel(v, den, mul(v, x, cf(v, 8388608.0)), x);
    LLVMValueRef bits = toi(v, xs);
    LLVMValueRef e = LLVMBuildAnd(v->b, LLVMBuildLShr(v->b, bits, ci(v, 23), ""), ci(v, 0xff), "");
    e = LLVMBuildSub(v->b, e, sel(v, den, ci(v, 126 + 23), ci(v, 126)), "");
    LLVMValueRef m = tof(v, LLVMBuildOr(v->b, LLVMBuildAnd(v->b, bits, ci(v, 0x007fffff), ""), ci(v, 0x3f000000), ""));
    LLVMValueRef lt = cmp(v, LLVMRealOLT, m, cf(v, 0.707106781186547524));
    e = sel(v, lt, LLVMBuildSub(v->b, e, ci(v, 1), ""), e);
    m = sub(v, sel(v, lt, add(v, m, m), m), cf(v, 1.0));
    LLVMValueRef fe = LLVMBuildSIToFP(v->b, e, v->f, "");
    LLVMValueRef z = mul(v, m, m);
    LLVMValueRef y = mul(v, mul(v, horner(v, m, P, 9), m), z);
    y = fma3(v, fe, cf(v, -2.12194440e-4), y);
    y = fma3(v, z, cf(v, -0.5), y);
    LLVMValueRef r = add(v, m, y);
    r = fma3(v, fe, cf(v, 0.693359375), r);
    r = sel(v, cmp(v, LLVMRealOEQ, x, cf(v, (double)INFINITY)), x, r);
    r = sel(v, cmp(v, LLVMRealOEQ, x, cf(v, 0.0)), cf(v, -(double)INFINITY), r);
    r = sel(v, cmp(v, LLVMRealOLT, x, cf(v, 0.0)), cf(v, (double)NAN), r);
    return sel(v, cmp(v, LLVMRealUNO, x, x), x, r);
}

static LLVMValueRef vm_tanh(Vm *v, LLVMValueRef x) {
    static const double P[] = {-5.70498872745E-3, 2.06390887954E-2, -5.37397155531E-2,
                               1.33314422036E-1, -3.33332819422E-1};
    LLVMValueRef a = fabs1(v, x);
    LLVMValueRef s = mul(v, x, x);
    LLVMValueRef small = fma3(v, mul(v, horner(v, s, P, 5), s), x, x);
    LLVMValueRef ac = sel(v, cmp(v, LLVMRealOGT, a, cf(v, 9.0)), cf(v, 9.0), a);
    LLVMValueRef e = vm_exp(v, mul(v, ac, cf(v, -2.0)));
    LLVMValueRef big = LLVMBuildFDiv(v->b, sub(v, cf(v, 1.0), e), add(v, cf(v, 1.0), e), "");
    big = copysign2(v, big, x);
    return sel(v, cmp(v, LLVMRealOLT, a, cf(v, 0.625)), small, big);
}

static LLVMValueRef vm_erf(Vm *v, LLVMValueRef x) {
    static const double PS[] = {-5.96761703e-4, 4.99119423e-3, -2.67681349e-2,
                                1.12819925e-1, -3.76125336e-1, 1.28379166e-1};
    LLVMValueRef t = fabs1(v, x);
    LLVMValueRef s = mul(v, x, x);
    LLVMValueRef small = fma3(v, horner(v, s, PS, 6), x, x);
    LLVMValueRef tc = sel(v, cmp(v, LLVMRealOGT, t, cf(v, 4.0)), cf(v, 4.0), t); /* erf(4) = 1 in f32 */
    LLVMValueRef sc = mul(v, tc, tc);
    LLVMValueRef r = fmac(v, cf(v, -1.72853470e-5), tc, 3.83197126e-4);
    LLVMValueRef u = fmac(v, cf(v, -3.88396438e-3), tc, 2.42546219e-2);
    r = fma3(v, r, sc, u);
    r = fmac(v, r, tc, -1.06777877e-1);
    r = fmac(v, r, tc, -6.34846687e-1);
    r = fmac(v, r, tc, -1.28717512e-1);
    r = fma3(v, r, tc, LLVMBuildFNeg(v->b, tc, ""));
    LLVMValueRef big = copysign2(v, sub(v, cf(v, 1.0), vm_exp(v, r)), x);
    return sel(v, cmp(v, LLVMRealOGT, t, cf(v, 0.927734375)), big, small);
}

LLVMValueRef tl_vmath_f32(LLVMModuleRef mod, LLVMBuilderRef b, TlVmFn fn, LLVMValueRef x) {
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    LLVMTypeRef sf = LLVMFloatTypeInContext(ctx), si = LLVMInt32TypeInContext(ctx), xt = LLVMTypeOf(x);
    Vm v = {mod, b, sf, si, sf, si, 0};
    if (LLVMGetTypeKind(xt) == LLVMVectorTypeKind && LLVMGetVectorSize(xt) <= 64) {
        v.lanes = LLVMGetVectorSize(xt);
        v.f = xt, v.i = LLVMVectorType(si, v.lanes);
    }
    switch (fn) {
    case TL_VM_EXP: return vm_exp(&v, x);
    case TL_VM_LOG: return vm_log(&v, x);
    case TL_VM_TANH: return vm_tanh(&v, x);
    case TL_VM_ERF: return vm_erf(&v, x);
    }
    return x;
}
