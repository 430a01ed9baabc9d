/* ckpt.h — training checkpoints: parameters, optimizer state, step, seed, RNG counter and
 * data position in one safetensors file, written so that a kill never leaves a broken one.
 *
 * Layout. A directory of files `ckpt-<step>.safetensors` (step in decimal, no padding).
 * Tensors are f32 under the program's names: parameters by their dotted names
 * ("blocks.0.attn.w"), optimizer state by convention as "opt.m.<param>", "opt.v.<param>".
 * The safetensors metadata holds strings:
 *     tl.format        "1" (TL_CKPT_FORMAT)
 *     tl.step, tl.seed, tl.data_pos (the next batch index), tl.rng_counter (decimal)
 *     tl.checksum      "fnv1a64w:<16 hex>" over every tensor's name and bytes, in name order
 *     any user strings (keys must not start with "tl.")
 * so a checkpoint opens in PyTorch (safetensors.torch.load_file) as an ordinary state dict.
 *
 * Atomicity. tl_ckpt_save writes through tl_st_write: a temporary file beside the target,
 * fsync, rename, fsync of the directory. A file named ckpt-<step>.safetensors is therefore
 * always complete; a kill leaves at worst a stray ".ckpt-<step>.safetensors.tmp.XXXXXX",
 * which the next save removes. Older checkpoints are deleted only after the new one has
 * been renamed into place, keeping the `keep` newest.
 *
 * Finding the latest. tl_ckpt_open_latest lists the directory, tries the files from the
 * highest step down and takes the first that fully validates: the safetensors structure,
 * the format version, tl.step equal to the step in the name, and the checksum. A corrupt or
 * truncated file is skipped with a warning naming it.
 *
 * Loading checks each tensor the program asks for: missing, not F32, or a shape other than
 * the expected one is an error naming the tensor and both shapes.
 *
 * Errors: 0 on success, -1 with a one-line message naming the file; nothing exits. */
#ifndef TL_CKPT_H
#define TL_CKPT_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "safetensors.h"

enum { TL_CKPT_FORMAT = 1, TL_CKPT_MAX_RANK = 8 };

typedef struct TlCkptInfo {
    int64_t step;         /* >= 0 */
    uint64_t seed;
    uint64_t data_pos;    /* the next batch index of the data sampler */
    uint64_t rng_counter; /* the program's Philox offset (dropout and other random ops) */
} TlCkptInfo;

/* A named f32 tensor: the source when saving, the destination when loading. */
typedef struct TlCkptTensor {
    const char *name;
    int rank;
    int64_t shape[TL_CKPT_MAX_RANK];
    float *data;
} TlCkptTensor;

/* Write dir/ckpt-<info->step>.safetensors (creating dir and its parents as needed), then
 * delete older checkpoints so that the `keep` newest remain (keep <= 0: keep all; files
 * with a higher step than this one are never deleted). user: nuser extra metadata strings
 * (keys unique, not starting with "tl."). */
int tl_ckpt_save(const char *dir, const TlCkptInfo *info, const TlCkptTensor *tensors, int n,
                 const TlStMeta *user, int nuser, int keep, char *err, size_t errlen);

typedef struct TlCkpt TlCkpt;

/* Open and fully validate one checkpoint file. */
int tl_ckpt_open(const char *path, TlCkpt **out, char *err, size_t errlen);
/* Open the newest valid checkpoint in dir. Returns 0 (opened), 1 (no valid checkpoint
 * there, or dir does not exist: start fresh; *out is NULL) or -1 (dir unreadable). Each
 * invalid file skipped gets one line "warning: ..." on warn (NULL: no warnings). */
int tl_ckpt_open_latest(const char *dir, TlCkpt **out, FILE *warn, char *err, size_t errlen);
void tl_ckpt_close(TlCkpt *c); /* NULL is allowed */

const char *tl_ckpt_path(const TlCkpt *c);
TlCkptInfo tl_ckpt_info(const TlCkpt *c);
const char *tl_ckpt_meta(const TlCkpt *c, const char *key); /* any metadata; NULL if absent */
int tl_ckpt_count(const TlCkpt *c);                          /* number of tensors */
const TlStTensor *tl_ckpt_tensor(const TlCkpt *c, int i);    /* sorted by name */

/* Copy tensor `name` into dst after checking it exists, is F32 and has the given shape. */
int tl_ckpt_read(const TlCkpt *c, const char *name, int rank, const int64_t *shape,
                 float *dst, char *err, size_t errlen);
/* tl_ckpt_read for each of n tensors (name, rank, shape, data as destination). */
int tl_ckpt_load(const TlCkpt *c, const TlCkptTensor *tensors, int n, char *err,
                 size_t errlen);

/* The checkpoint steps present in dir by name (not validated), highest first; *steps is
 * malloc'd (free it). -1 when dir cannot be read; a missing dir gives 0 steps. */
int tl_ckpt_list(const char *dir, int64_t **steps, int *n, char *err, size_t errlen);

#endif
