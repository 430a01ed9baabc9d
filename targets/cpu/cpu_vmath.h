/* cpu_vmath.h — branch-free f32 transcendental functions emitted inline as LLVM IR, so the
 * loop vectorizer can widen loops that use them (docs/cpu-backend.md, "Vector math"). */
#ifndef TL_CPU_VMATH_H
#define TL_CPU_VMATH_H

#include <llvm-c/Core.h>

typedef enum { TL_VM_EXP, TL_VM_LOG, TL_VM_TANH, TL_VM_ERF } TlVmFn;

/* Emit fn(x) for an f32 `x` or a vector of f32 (up to 64 lanes, lane by lane) at the
 * builder's position (straight-line code: arithmetic,
 * llvm.fmuladd, selects, bitcasts, integer ops; no calls, no blocks). */
LLVMValueRef tl_vmath_f32(LLVMModuleRef mod, LLVMBuilderRef b, TlVmFn fn, LLVMValueRef x);

#endif
