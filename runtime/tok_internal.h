/* tok_internal.h — what the tok_*.c files share: the tokenizer object, the string map of
 * the vocabulary, the word cache and the GPT-2 scanner. Not part of the runtime's API. */
#ifndef TL_TOK_INTERNAL_H
#define TL_TOK_INTERNAL_H
#include "tok.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Printf-style message into err (one line). */
void tl_tok_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A fast 64-bit hash of a short byte string (words, tokens). */
static inline uint64_t tl_tok_hash(const uint8_t *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0x94d049bb133111ebull;
    }
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

/* Open-addressing map from a token's bytes to its id; the bytes live in the tokenizer's
 * blob. Slots hold id + 1 (0 = empty). */
typedef struct TlTokMap {
    uint32_t *slot;
    uint32_t *hash32; /* low 32 bits of each slot's hash, to skip most compares */
    size_t cap;       /* power of two */
    size_t n;
} TlTokMap;

/* Pair (left id, right id) -> merged id, for BPE. Keys packed into 64 bits. */
typedef struct TlPairMap {
    uint64_t *key;   /* (a << 32 | b) + 1; 0 = empty */
    int32_t *val;
    size_t cap, n;
} TlPairMap;

static inline uint64_t tl_pair_mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}
static inline int32_t tl_pair_get(const TlPairMap *m, int32_t a, int32_t b) {
    if (!m->cap) return -1;
    uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    size_t mask = m->cap - 1, i = (size_t)tl_pair_mix(k) & mask;
    for (;;) {
        uint64_t s = m->key[i];
        if (s == k) return m->val[i];
        if (!s) return -1;
        i = (i + 1) & mask;
    }
}
int tl_pair_put(TlPairMap *m, int32_t a, int32_t b, int32_t v);
void tl_pair_free(TlPairMap *m);

/* The cache of split words: word bytes -> ids. Bounded; cleared when full. */
typedef struct TlWordCache {
    struct TlCacheSlot {
        uint64_t hash;
        uint32_t off;  /* into data: the word's bytes then its ids (4-aligned) */
        uint16_t len;  /* word bytes */
        uint16_t nids;
    } *slot;
    size_t cap, n;
    uint8_t *data;
    size_t data_n, data_cap;
} TlWordCache;

enum { TL_PAT_NONE, TL_PAT_GPT2, TL_PAT_PCRE };

struct TlTokenizer {
    TlTokKind kind;
    /* vocabulary: token id -> bytes in blob */
    uint32_t nvocab, vcap;
    uint32_t *tok_off, *tok_len;
    uint8_t *blob;
    size_t blob_n, blob_cap;
    TlTokMap map;
    /* special tokens, matched before pre-tokenization */
    size_t nspecial;
    int32_t *special_id;
    uint8_t special_first[256]; /* 1 where some special starts with this byte */
    /* pre-tokenizer */
    TlPretok *pretok;
    char *pattern; /* NULL for GPT-2's */
    /* BPE */
    int32_t byte_id[256];  /* the token of each single byte */
    TlPairMap pairs;        /* mergeable pair -> merged token; its rank is its id */
    int32_t (*merges)[2];   /* the merges list, in order (for writing files) */
    size_t nmerges;
    uint8_t *mergeable;     /* per id: 1 for bytes and merge results (tiktoken's ranks) */
    int32_t *work;          /* scratch for encoding one piece */
    size_t work_cap;
    TlWordCache cache;
    /* WordPiece */
    int32_t unk_id;
    int lowercase, max_word_chars;
    char *prefix;
    size_t prefix_len;
};

/* Vocabulary building (tok.c). */
TlTokenizer *tl_tok_alloc(TlTokKind kind);
/* Appends a token; returns its id or -1 (out of memory). Duplicates are allowed in the
 * list but the map keeps the first. */
int32_t tl_tok_push(TlTokenizer *t, const uint8_t *s, size_t n);

/* Pre-tokenizer internals (tok_pretok.c). */
int tl_pretok_is_gpt2(const TlPretok *p);
/* End of the GPT-2 piece that starts at i < n. Only after some tl_pretok_new (which
 * builds the class tables). */
size_t tl_pretok_gpt2_next(const uint8_t *s, size_t n, size_t i);
/* Decodes one UTF-8 character at s[i] (i < n): its length (1 for an invalid byte), with
 * *cp = the code point or -1 for an invalid byte. */
size_t tl_utf8_next(const uint8_t *s, size_t n, size_t i, int32_t *cp);

/* BPE internals (tok_bpe.c). */
int tl_bpe_encode_piece(TlTokenizer *t, const uint8_t *s, size_t n, TlTokIds *out);
/* The slow oracle: the same merges by a plain O(n^2) rank scan, no cache. */
int tl_bpe_encode_piece_ref(const TlTokenizer *t, const uint8_t *s, size_t n, TlTokIds *out);
/* Builds t->pairs from the merges list (all ways of splitting each merged token into two
 * mergeable tokens, as tiktoken ranks them). */
int tl_bpe_build_pairs(TlTokenizer *t, const char *what, char *err, size_t errlen);
/* GPT-2's byte-to-unicode map: the code point that spells byte b in encoder.json. */
int tl_gpt2_byte_cp(int b);
/* The byte of GPT-2's token id i, 0 <= i < 256 (printable bytes first). */
int tl_gpt2_byte_order(int i);
void tl_bpe_cache_free(TlWordCache *c);

/* WordPiece internals (tok_wordpiece.c). */
int tl_wordpiece_encode(TlTokenizer *t, const uint8_t *s, size_t n, TlTokIds *out,
                        char *err, size_t errlen);
int tl_ids_push(TlTokIds *out, int32_t id);

#endif
