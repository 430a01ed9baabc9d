/* safetensors.h — read and write the safetensors format (Hugging Face), so that tl's
 * checkpoints and reference vectors open in PyTorch and vice versa.
 *
 * The format: an 8-byte little-endian u64 N, then N bytes of a JSON object (UTF-8, may end
 * in spaces), then the byte buffer. Each key of the object but "__metadata__" names a
 * tensor: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, offsets relative
 * to the start of the buffer; the tensors must tile the buffer exactly (no overlap, no
 * hole). "__metadata__" is an optional object of string to string. Data is little-endian,
 * row-major.
 *
 * Reading maps the file (mmap) and validates all of it before returning: any malformed
 * input gives an error message naming the file (and the tensor, when it is about one),
 * never a crash. Tensor data points into the mapping and may be unaligned for its dtype
 * when another writer produced the file: read it with memcpy or tl_st_to_f64/_f32.
 *
 * Writing is deterministic and atomic (see fsutil.h): header keys sorted by name, data laid
 * out by element size (largest first) then name so every tensor is naturally aligned, the
 * header padded with spaces to a multiple of 8 bytes.
 *
 * Errors: functions return 0 on success and -1 on failure with a one-line message in the
 * caller's buffer ("path: error: ..."); nothing here exits or aborts. */
#ifndef TL_SAFETENSORS_H
#define TL_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

/* Element types tl reads and writes (the names in the file are the strings in comments). */
typedef enum TlStDType {
    TL_ST_INVALID = 0,
    TL_ST_F64,  /* "F64" */
    TL_ST_F32,  /* "F32" */
    TL_ST_BF16, /* "BF16" */
    TL_ST_F16,  /* "F16" */
    TL_ST_I64,  /* "I64" */
    TL_ST_I32,  /* "I32" */
    TL_ST_U8,   /* "U8" */
    TL_ST_BOOL, /* "BOOL", one byte per element, 0 or 1 */
    TL_ST_DTYPE_COUNT
} TlStDType;

enum { TL_ST_MAX_RANK = 16 };

/* A tensor: read from a file (data points into the mapping) or given to tl_st_write. */
typedef struct TlStTensor {
    const char *name;
    TlStDType dtype;
    int rank;                        /* 0 for a scalar */
    int64_t shape[TL_ST_MAX_RANK];
    const void *data;                /* nbytes bytes, little-endian, row-major */
    size_t nbytes;                   /* = numel * element size; filled in by the reader */
} TlStTensor;

typedef struct TlStMeta {
    const char *key;
    const char *value;
} TlStMeta;

/* An opened file. Fields are read-only for the caller; tensors are sorted by name. */
typedef struct TlSafetensors {
    char *path;
    TlStTensor *tensors;
    int ntensors;
    TlStMeta *meta;
    int nmeta;
    void *map_;       /* private: the mapping (or NULL for tl_st_parse) */
    size_t map_size_;
    char *strings_;   /* private: storage for names and metadata */
} TlSafetensors;

const char *tl_st_dtype_name(TlStDType t);         /* "F32", ...; "?" when invalid */
TlStDType tl_st_dtype_from_name(const char *name); /* TL_ST_INVALID when unknown */
size_t tl_st_dtype_size(TlStDType t);              /* bytes per element; 0 when invalid */
int64_t tl_st_numel(const TlStTensor *t);          /* product of the shape; 1 for rank 0 */

/* Map and validate path. On success *out owns the mapping; free with tl_st_close. */
int tl_st_open(const char *path, TlSafetensors **out, char *err, size_t errlen);
/* Validate a file image already in memory (len bytes at buf, which must outlive *out);
 * name is used in messages. The fuzzing entry point. */
int tl_st_parse(const void *buf, size_t len, const char *name, TlSafetensors **out,
                char *err, size_t errlen);
void tl_st_close(TlSafetensors *f);

const TlStTensor *tl_st_find(const TlSafetensors *f, const char *name); /* NULL if absent */
const char *tl_st_meta(const TlSafetensors *f, const char *key);        /* NULL if absent */

/* Convert every element of t (any dtype; BOOL and U8 as 0/1 and 0..255) into out, which
 * holds tl_st_numel(t) values. */
void tl_st_to_f64(const TlStTensor *t, double *out);
void tl_st_to_f32(const TlStTensor *t, float *out);

/* Half-precision conversions (round to nearest even; NaN stays NaN). */
float tl_st_bf16_to_f32(uint16_t h);
uint16_t tl_st_f32_to_bf16(float f);
float tl_st_f16_to_f32(uint16_t h);
uint16_t tl_st_f32_to_f16(float f);

/* Write n tensors (name, dtype, rank, shape, data; nbytes is ignored and recomputed) and
 * nmeta metadata pairs to path, atomically. Names must be unique, non-empty and not
 * "__metadata__"; metadata keys must be unique. */
int tl_st_write(const char *path, const TlStTensor *tensors, int n, const TlStMeta *meta,
                int nmeta, char *err, size_t errlen);

#endif
