/* cpu_internal.h — shared between the CPU back end's files (not a public contract). */
#ifndef TL_CPU_INTERNAL_H
#define TL_CPU_INTERNAL_H
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "cpu.h"

typedef struct TlCpuTarget {
    char *triple, *cpu, *features; /* LLVM-allocated (LLVMDisposeMessage) */
    int vector_width;
    int opt_level;
} TlCpuTarget;

int tl_cpu_target_init(TlCpuTarget *t, const TlCpuOptions *o, char *err, int errn);
void tl_cpu_target_fini(TlCpuTarget *t);
LLVMTargetMachineRef tl_cpu_target_machine(const TlCpuTarget *t, int jit, char *err, int errn);

/* Builds the module of a program (kernels, tl_main, tl_sizes) in ctx. NULL + err. */
LLVMModuleRef tl_cpu_codegen(LLVMContextRef ctx, const TlLProgram *p, const TlCpuTarget *t,
                             LLVMTargetMachineRef tm, char *err, int errn);
/* Verifies, then runs default<On>. 0 or -1 + err. */
int tl_cpu_optimize(LLVMModuleRef m, LLVMTargetMachineRef tm, int level, char *err, int errn);

#endif
