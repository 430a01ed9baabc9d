/* interp.h — the reference interpreter of Graph IR: naive loops, written to be obviously
 * right rather than fast. Every back end (LLVM CPU, NVPTX) is tested against it, and the
 * gradient checks run on it.
 *
 * Storage: f32 as float, f64 as double, i32 as int32_t, i64 as int64_t, bool as uint8_t
 * (0 or 1). bf16 and f16 are stored as float after rounding every result to the nearest
 * bf16/f16 value (round to nearest even), so they behave like the narrow types without a
 * separate storage format. Float arithmetic is done in double and rounded to the node's
 * dtype on store; reductions and contractions accumulate in double (int64 for integers).
 * Integer division truncates toward zero; division by zero and out-of-range gather or
 * scatter indices are run-time errors.
 *
 * No global state: every TlInterp is independent, and a graph may be run many times. */
#ifndef TL_INTERP_H
#define TL_INTERP_H
#include <stdint.h>

#include "graph.h"

typedef struct TlTensor {
    TlDType dtype;
    int rank;
    int64_t dim[TL_MAX_RANK];
    int64_t numel;
    void *data; /* storage described above, row-major */
} TlTensor;

typedef struct TlInterp TlInterp;

TlInterp *tl_interp_new(const TlGraph *g);
void tl_interp_free(TlInterp *it);
/* Bind a dim symbol (e.g. "B") for the shapes of this run. */
void tl_interp_bind(TlInterp *it, const char *sym, int64_t value);
/* Set the value of an input or param node, converting from doubles (n = element count). */
int tl_interp_set(TlInterp *it, int node, const double *values, int64_t n);
/* The same by name (an input or a param). */
int tl_interp_set_named(TlInterp *it, const char *name, const double *values, int64_t n);
/* Set from data already in the storage format above. */
int tl_interp_set_raw(TlInterp *it, int node, const void *data, int64_t n);
/* Evaluate every node. 0 on success; -1 with tl_interp_error set. */
int tl_interp_run(TlInterp *it);
const char *tl_interp_error(const TlInterp *it);
/* After a run: a node's value (NULL for a scan node, which has none) or graph output k. */
const TlTensor *tl_interp_value(const TlInterp *it, int node);
const TlTensor *tl_interp_output(const TlInterp *it, int k);

/* Element i of a tensor, as a double. */
double tl_tensor_get(const TlTensor *t, int64_t i);
size_t tl_interp_storage_size(TlDType t); /* bytes per stored element */
/* Round a double to the value the interpreter stores for dtype t. */
double tl_interp_round(TlDType t, double v);

#endif
