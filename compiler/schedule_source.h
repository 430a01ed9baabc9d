/* schedule_source.h — `schedule NAME { ... }` blocks of a .tl file applied to Loop IR.
 *
 *   kernel mm(a: f32[M, K], b: f32[K, N]) -> f32[M, N] { out[i, j] = sum(k) a[i, k] * b[k, j] }
 *   schedule mm { order(j, i); tile(i = 32); vectorize(k, 8); unroll(k, 4) }
 *
 * Which Loop IR kernel: the lowering marks the result node of every call of an
 * index-notation kernel that has a schedule block (TlGNode.sched); the Loop IR kernel that
 * stores that node gets the block (TlLKernel.sched). A result fused into a consumer's
 * kernel is not stored by a kernel of its own: the block is then not applied, with a
 * warning. Gradient nodes are built fresh, so backward kernels keep their defaults.
 *
 * Which loops: the index names of the kernel's last statement (`out[i, j] = ...`) name the
 * loops over the stored result's axes (TlLStmt.axis >= 0), and the indices of its
 * top-level reduction (`sum(k)`), in order of first use, name the reduced loops. A fused
 * row kernel (softmax) has one loop over `j` per pass; a directive on `j` applies to each.
 *
 * Directives: tile(i = 32, ...) splits every loop over i; order(j, i) reorders the loops
 * over the result (a perfect nest at the top of the kernel); parallel(i) makes the loop
 * over i the parallel one (moving it outermost); vectorize(j, W) asks LLVM for width W on
 * the innermost loops over j; unroll(k, F). Sema checks names and constants
 * (sema_kernel.c); what depends on the lowered loops is checked here: a tile not smaller
 * than a constant extent, vectorize on a loop that is not innermost, order or parallel on a
 * loop outside the result nest, a name with no loop in the kernel. Those are errors at the
 * directive's location (dsl/diag.h) and make the lowering fail: an invalid schedule never
 * compiles. gpu_blocks, gpu_threads and shared are recorded for the NVPTX back end
 * (TlLKernel.gpu_sched, TlLSched.gpu, gpu_shared: docs/nvptx.md "Source schedules") after
 * the same kind of checks (a reduction or a loop with independent iterations under
 * gpu_threads, a row of the blocks loop under shared); the CPU ignores them.
 *
 * A schedule on a matmul kernel that the GEMM generator would compile (TlLGemm) runs the
 * scheduled loop nest instead: the source asked for those loops.
 *
 * Precedence: a source schedule wins over the tuning cache (schedule_cache.c skips such
 * kernels, and tlc tune does not search them); --emit=schedule prints "source". */
#ifndef TL_SCHEDULE_SOURCE_H
#define TL_SCHEDULE_SOURCE_H
#include "loops.h"

/* Applies the block of every kernel of a freshly lowered p that has one. 0, or -1 after
 * reporting errors through dsl/diag.h (err gets a one-line summary). Called by
 * tl_loops_lower_opts unless TlLoopsOptions.no_source_schedules. */
int tl_schedule_source_apply(TlLProgram *p, char *err, int errn);

#endif
