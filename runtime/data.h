/* data.h — text corpora, byte-level token streams, train/validation split and batch
 * samplers for training.
 *
 *   TlCorpus *c;  tl_data_load("/usr/share/games/fortunes", &c, err, n);
 *   TlTokens tok; tl_data_tokens_bytes(c, &tok, err, n);      // uint8 -> int32 ids
 *   TlTokens train, val; tl_data_split(&tok, 0.1, &train, &val, err, n);
 *   TlBatcher b;  tl_data_batcher_init(&b, &train, B, T, seed, "train split", err, n);
 *   tl_data_batch(&b, step, x, y);                             // x, y: int32 [B, T]
 *
 * Loading. A file is mapped (mmap). A directory is walked recursively and its files are
 * concatenated in byte order of their paths (strcmp of the path below the root), so the
 * corpus is the same on every machine. Skipped: names starting with '.', binary files (a
 * NUL byte in the first 4 KiB: the fortune package's .dat index files), symlinks to
 * directories (no cycles), and symlinks whose target is a file already included (the
 * fortune package's .u8 links), so every file's text appears once.
 *
 * Batches. The random sampler draws row r of batch i at offset
 *     o = (hi32:lo32 of Philox4x32-10(ctr = {lo32(i), hi32(i), r, 0x64617461 "data"},
 *                                     key = {lo32(seed), hi32(seed)}) words 0, 1)
 *         mod (n - T)
 * and sets x[r] = ids[o .. o+T), y[r] = ids[o+1 .. o+T+1). A batch is a pure function of
 * (data, seed, i, B, T): no state is carried between calls, so the data position to save in
 * a checkpoint is just the next batch index, and resuming reproduces the same batches.
 * (The modulo bias is below (n - T) / 2^64.)
 *
 * The sequential sampler covers a split in order for evaluation: window w starts at w*T,
 * batch j holds windows j*B .. j*B+B-1; the last batch may be partial (see below).
 *
 * Errors: 0 on success; -1 with a one-line message naming the path (or the split) and the
 * problem: missing path, unreadable file, empty corpus, a split shorter than T+1 tokens. */
#ifndef TL_DATA_H
#define TL_DATA_H
#include <stddef.h>
#include <stdint.h>

typedef struct TlCorpus {
    const uint8_t *bytes; /* n bytes: every file's text, concatenated */
    size_t n;
    int nfiles;
    char **files;         /* the files included, in order */
    size_t *offsets;      /* file i starts at bytes + offsets[i] */
    void *map_;           /* private: the mapping of a single file, or NULL */
    size_t map_size_;
    uint8_t *buf_;        /* private: the concatenation of a directory */
} TlCorpus;

int tl_data_load(const char *path, TlCorpus **out, char *err, size_t errlen);
void tl_data_free(TlCorpus *c); /* NULL is allowed */

/* A token stream: ids points to n int32 ids. Owned when own_ is set (tl_data_tokens_free),
 * a view otherwise (the splits are views into their parent). */
typedef struct TlTokens {
    const int32_t *ids;
    int64_t n;
    int32_t *own_;
} TlTokens;

/* Byte-level tokens: id = byte value (0..255), vocabulary 256. */
int tl_data_tokens_bytes(const TlCorpus *c, TlTokens *out, char *err, size_t errlen);
void tl_data_tokens_free(TlTokens *t);

/* Deterministic split: the last floor(n * val_frac) tokens are validation, the rest train.
 * val_frac in [0, 1). Both are views into all. */
int tl_data_split(const TlTokens *all, double val_frac, TlTokens *train, TlTokens *val,
                  char *err, size_t errlen);

typedef struct TlBatcher {
    const int32_t *ids;
    int64_t n;
    int B, T;
    uint64_t seed;
} TlBatcher;

/* Check that the stream has at least T+1 tokens (name, e.g. "train split of data/", is
 * used in the message) and B, T >= 1. */
int tl_data_batcher_init(TlBatcher *b, const TlTokens *t, int B, int T, uint64_t seed,
                         const char *name, char *err, size_t errlen);
/* The random batch number `index`: x, y each hold B*T int32, row-major [B, T]. */
void tl_data_batch(const TlBatcher *b, uint64_t index, int32_t *x, int32_t *y);
/* The offset of row r of batch index (the formula above); for tests and resuming tools. */
int64_t tl_data_batch_offset(const TlBatcher *b, uint64_t index, int row);

/* Sequential evaluation batches: the number of windows is (n - 1) / T, the number of
 * batches ceil(windows / B). */
int64_t tl_data_seq_batches(const TlBatcher *b);
/* Fill batch j in order; returns the number of valid rows (B except maybe for the last
 * batch, 0 when j is out of range). Rows past it are zero-filled so the shape stays
 * [B, T]; weight the loss by the valid rows. */
int tl_data_seq_batch(const TlBatcher *b, int64_t j, int32_t *x, int32_t *y);

#endif
