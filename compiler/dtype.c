#include "dtype.h"
#include <string.h>

static const struct { const char *name; size_t size; } dtypes[TL_DT_COUNT] = {
    [TL_DT_INVALID] = {"invalid", 0}, [TL_F32] = {"f32", 4}, [TL_BF16] = {"bf16", 2},
    [TL_F16] = {"f16", 2},           [TL_F64] = {"f64", 8}, [TL_I32] = {"i32", 4},
    [TL_I64] = {"i64", 8},           [TL_BOOL] = {"bool", 1},
};

const char *tl_dtype_name(TlDType t) { return t > 0 && t < TL_DT_COUNT ? dtypes[t].name : "invalid"; }

TlDType tl_dtype_from_name(const char *s) {
    for (int t = 1; t < TL_DT_COUNT; t++)
        if (strcmp(s, dtypes[t].name) == 0) return (TlDType)t;
    return TL_DT_INVALID;
}

size_t tl_dtype_size(TlDType t) { return t > 0 && t < TL_DT_COUNT ? dtypes[t].size : 0; }
int tl_dtype_is_float(TlDType t) { return t == TL_F32 || t == TL_BF16 || t == TL_F16 || t == TL_F64; }
int tl_dtype_is_int(TlDType t) { return t == TL_I32 || t == TL_I64; }
