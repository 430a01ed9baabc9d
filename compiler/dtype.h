/* dtype.h — element types shared by the AST, Graph IR, interpreter and backends. */
#ifndef TL_DTYPE_H
#define TL_DTYPE_H
#include <stddef.h>

typedef enum TlDType {
    TL_DT_INVALID = 0,
    TL_F32,
    TL_BF16,
    TL_F16,
    TL_F64, /* not a training type; used by the interpreter's gradient checks */
    TL_I32,
    TL_I64,
    TL_BOOL,
    TL_DT_COUNT
} TlDType;

const char *tl_dtype_name(TlDType t);      /* "f32", ... */
TlDType tl_dtype_from_name(const char *s); /* TL_DT_INVALID when not a dtype name */
size_t tl_dtype_size(TlDType t);           /* bytes per element */
int tl_dtype_is_float(TlDType t);
int tl_dtype_is_int(TlDType t);

#endif
