/* tok.c — the tokenizer object: vocabulary (id <-> bytes), special tokens, the byte and
 * character tokenizers, and encode/decode dispatch to the engines in tok_*.c. */
#include "tok_internal.h"

#include <stdlib.h>

void tl_tok_errf(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void tl_tok_ids_free(TlTokIds *ids) {
    free(ids->v);
    memset(ids, 0, sizeof *ids);
}
void tl_tok_bytes_free(TlTokBytes *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int ids_grow(TlTokIds *out, size_t need) {
    if (out->n + need <= out->cap) return 0;
    size_t cap = out->cap ? out->cap : 1024;
    while (cap < out->n + need) cap *= 2;
    int32_t *v = realloc(out->v, cap * sizeof *v);
    if (!v) return -1;
    out->v = v;
    out->cap = cap;
    return 0;
}

int tl_ids_push(TlTokIds *out, int32_t id) {
    if (out->n == out->cap && ids_grow(out, 1)) return -1;
    out->v[out->n++] = id;
    return 0;
}

static int bytes_append(TlTokBytes *b, const uint8_t *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) return -1;
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

/* ---- vocabulary ------------------------------------------------------------------- */

static uint64_t tok_hash_id(const TlTokenizer *t, uint32_t id) {
    return tl_tok_hash(t->blob + t->tok_off[id], t->tok_len[id]);
}

static int map_grow(TlTokenizer *t) {
    size_t cap = t->map.cap ? t->map.cap * 2 : 1024;
    uint32_t *slot = calloc(cap, sizeof *slot), *h32 = calloc(cap, sizeof *h32);
    if (!slot || !h32) {
        free(slot);
        free(h32);
        return -1;
    }
    for (size_t i = 0; i < t->map.cap; i++) {
        uint32_t s = t->map.slot[i];
        if (!s) continue;
        uint64_t h = tok_hash_id(t, s - 1);
        size_t j = (size_t)h & (cap - 1);
        while (slot[j]) j = (j + 1) & (cap - 1);
        slot[j] = s;
        h32[j] = (uint32_t)h;
    }
    free(t->map.slot);
    free(t->map.hash32);
    t->map.slot = slot;
    t->map.hash32 = h32;
    t->map.cap = cap;
    return 0;
}

int32_t tl_tok_lookup(const TlTokenizer *t, const void *sv, size_t n) {
    if (!t->map.cap) return -1;
    const uint8_t *s = sv;
    uint64_t h = tl_tok_hash(s, n);
    size_t mask = t->map.cap - 1, i = (size_t)h & mask;
    for (;;) {
        uint32_t v = t->map.slot[i];
        if (!v) return -1;
        if (t->map.hash32[i] == (uint32_t)h && t->tok_len[v - 1] == n &&
            memcmp(t->blob + t->tok_off[v - 1], s, n) == 0)
            return (int32_t)(v - 1);
        i = (i + 1) & mask;
    }
}

int32_t tl_tok_push(TlTokenizer *t, const uint8_t *s, size_t n) {
    if (t->nvocab >= INT32_MAX - 1 || n > UINT32_MAX) return -1;
    if (t->nvocab == t->vcap) {
        uint32_t cap = t->vcap ? t->vcap * 2 : 512;
        uint32_t *off = realloc(t->tok_off, cap * sizeof *off);
        if (!off) return -1;
        t->tok_off = off;
        uint32_t *len = realloc(t->tok_len, cap * sizeof *len);
        if (!len) return -1;
        t->tok_len = len;
        t->vcap = cap;
    }
    /* ">=" so that blob exists even when every token so far is empty (no NULL + 0) */
    if (t->blob_n + n >= t->blob_cap) {
        size_t cap = t->blob_cap ? t->blob_cap : 4096;
        while (cap <= t->blob_n + n) cap *= 2;
        if (cap > UINT32_MAX) return -1;
        uint8_t *b = realloc(t->blob, cap);
        if (!b) return -1;
        t->blob = b;
        t->blob_cap = cap;
    }
    if ((t->map.n + 1) * 2 > t->map.cap && map_grow(t)) return -1;
    uint32_t id = t->nvocab++;
    t->tok_off[id] = (uint32_t)t->blob_n;
    t->tok_len[id] = (uint32_t)n;
    if (n) memcpy(t->blob + t->blob_n, s, n);
    t->blob_n += n;
    if (tl_tok_lookup(t, s, n) < 0) {
        uint64_t h = tl_tok_hash(s, n);
        size_t mask = t->map.cap - 1, i = (size_t)h & mask;
        while (t->map.slot[i]) i = (i + 1) & mask;
        t->map.slot[i] = id + 1;
        t->map.hash32[i] = (uint32_t)h;
        t->map.n++;
    }
    return (int32_t)id;
}

TlTokenizer *tl_tok_alloc(TlTokKind kind) {
    TlTokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->kind = kind;
    t->unk_id = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    return t;
}

void tl_tok_free(TlTokenizer *t) {
    if (!t) return;
    free(t->tok_off);
    free(t->tok_len);
    free(t->blob);
    free(t->map.slot);
    free(t->map.hash32);
    free(t->special_id);
    tl_pretok_free(t->pretok);
    free(t->pattern);
    tl_pair_free(&t->pairs);
    free(t->merges);
    free(t->mergeable);
    free(t->work);
    tl_bpe_cache_free(&t->cache);
    free(t->prefix);
    free(t);
}

TlTokKind tl_tok_kind(const TlTokenizer *t) { return t->kind; }
size_t tl_tok_vocab_size(const TlTokenizer *t) { return t->nvocab; }

const uint8_t *tl_tok_token(const TlTokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || (uint32_t)id >= t->nvocab) return NULL;
    if (len) *len = t->tok_len[id];
    return t->blob + t->tok_off[id];
}

/* ---- the byte and character tokenizers -------------------------------------------- */

TlTokenizer *tl_tok_bytes_new(void) {
    TlTokenizer *t = tl_tok_alloc(TL_TOK_BYTES);
    if (!t) return NULL;
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        if (tl_tok_push(t, &c, 1) < 0) {
            tl_tok_free(t);
            return NULL;
        }
        t->byte_id[b] = b;
    }
    return t;
}

typedef struct { const uint8_t *p; size_t n; } Span;

static int span_cmp(const void *a, const void *b) {
    const Span *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, m);
    if (c) return c;
    return (x->n > y->n) - (x->n < y->n);
}

TlTokenizer *tl_tok_chars_new(const void *text, size_t n, char *err, size_t errlen) {
    const uint8_t *s = text;
    /* Collect distinct characters through a scratch tokenizer's map, then sort them. */
    TlTokenizer *seen = tl_tok_alloc(TL_TOK_CHARS), *t = tl_tok_alloc(TL_TOK_CHARS);
    Span *sp = NULL;
    if (!seen || !t) goto oom;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t l = tl_utf8_next(s, n, i, &cp);
        if (tl_tok_lookup(seen, s + i, l) < 0 && tl_tok_push(seen, s + i, l) < 0) goto oom;
        i += l;
    }
    sp = malloc((seen->nvocab + 1) * sizeof *sp);
    if (!sp) goto oom;
    for (uint32_t i = 0; i < seen->nvocab; i++)
        sp[i] = (Span){seen->blob + seen->tok_off[i], seen->tok_len[i]};
    qsort(sp, seen->nvocab, sizeof *sp, span_cmp);
    for (uint32_t i = 0; i < seen->nvocab; i++)
        if (tl_tok_push(t, sp[i].p, sp[i].n) < 0) goto oom;
    free(sp);
    tl_tok_free(seen);
    return t;
oom:
    free(sp);
    tl_tok_free(seen);
    tl_tok_free(t);
    tl_tok_errf(err, errlen, "character vocabulary: out of memory");
    return NULL;
}

/* ---- special tokens --------------------------------------------------------------- */

int tl_tok_add_special(TlTokenizer *t, const char *s, int32_t id, char *err, size_t errlen) {
    size_t n = strlen(s);
    if (!n) {
        tl_tok_errf(err, errlen, "special token: empty string");
        return -1;
    }
    if (id < 0 || (uint32_t)id == t->nvocab) {
        int32_t have = tl_tok_lookup(t, s, n);
        if (id < 0 && have >= 0 && (size_t)have >= 256) {
            id = have; /* already in the vocabulary (e.g. GPT-2's <|endoftext|>) */
        } else {
            id = tl_tok_push(t, (const uint8_t *)s, n);
            if (id < 0) {
                tl_tok_errf(err, errlen, "special token '%s': out of memory", s);
                return -1;
            }
        }
    } else if ((uint32_t)id > t->nvocab || t->tok_len[id] != n ||
               memcmp(t->blob + t->tok_off[id], s, n) != 0) {
        tl_tok_errf(err, errlen, "special token '%s': id %d holds another token", s, (int)id);
        return -1;
    }
    for (size_t i = 0; i < t->nspecial; i++)
        if (t->special_id[i] == id) return 0;
    int32_t *v = realloc(t->special_id, (t->nspecial + 1) * sizeof *v);
    if (!v) {
        tl_tok_errf(err, errlen, "special token '%s': out of memory", s);
        return -1;
    }
    t->special_id = v;
    /* Longest first, so that a special that is a prefix of another never hides it. */
    size_t k = t->nspecial;
    while (k > 0 && t->tok_len[v[k - 1]] < n) {
        v[k] = v[k - 1];
        k--;
    }
    v[k] = id;
    t->nspecial++;
    t->special_first[(uint8_t)s[0]] = 1;
    return 0;
}

/* ---- encode / decode -------------------------------------------------------------- */

typedef struct {
    TlTokenizer *t;
    TlTokIds *out;
} PieceCtx;

static int bpe_piece_cb(void *ud, const uint8_t *p, size_t n) {
    PieceCtx *c = ud;
    return tl_bpe_encode_piece(c->t, p, n, c->out);
}

/* One stretch of text with no special tokens in it. */
static int encode_plain(TlTokenizer *t, const uint8_t *s, size_t n, TlTokIds *out, char *err,
                        size_t errlen) {
    if (!n) return 0;
    switch (t->kind) {
    case TL_TOK_BYTES:
        if (ids_grow(out, n)) goto oom;
        for (size_t i = 0; i < n; i++) out->v[out->n++] = s[i];
        return 0;
    case TL_TOK_CHARS:
        for (size_t i = 0; i < n;) {
            int32_t cp;
            size_t l = tl_utf8_next(s, n, i, &cp);
            int32_t id = tl_tok_lookup(t, s + i, l);
            if (id < 0) {
                if (cp >= 0)
                    tl_tok_errf(err, errlen,
                                "character U+%04X at byte %zu is not in the vocabulary",
                                (unsigned)cp, i);
                else
                    tl_tok_errf(err, errlen, "byte 0x%02x at byte %zu is not in the vocabulary",
                                s[i], i);
                return -1;
            }
            if (tl_ids_push(out, id)) goto oom;
            i += l;
        }
        return 0;
    case TL_TOK_BPE:
        if (!t->pretok) {
            if (tl_bpe_encode_piece(t, s, n, out)) goto oom;
        } else if (tl_pretok_is_gpt2(t->pretok)) {
            for (size_t i = 0; i < n;) {
                size_t j = tl_pretok_gpt2_next(s, n, i);
                if (tl_bpe_encode_piece(t, s + i, j - i, out)) goto oom;
                i = j;
            }
        } else {
            PieceCtx c = {t, out};
            int rc = tl_pretok_split(t->pretok, s, n, bpe_piece_cb, &c, err, errlen);
            if (rc > 0) goto oom;
            if (rc < 0) return -1;
        }
        return 0;
    case TL_TOK_WORDPIECE:
        return tl_wordpiece_encode(t, s, n, out, err, errlen);
    }
    return 0;
oom:
    tl_tok_errf(err, errlen, "encode: out of memory");
    return -1;
}

int tl_tok_encode(TlTokenizer *t, const void *text, size_t n, TlTokIds *out, char *err,
                  size_t errlen) {
    const uint8_t *s = text;
    if (!t->nspecial) return encode_plain(t, s, n, out, err, errlen);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (!t->special_first[s[i]]) continue;
        for (size_t k = 0; k < t->nspecial; k++) {
            int32_t id = t->special_id[k];
            size_t l = t->tok_len[id];
            if (l <= n - i && memcmp(s + i, t->blob + t->tok_off[id], l) == 0) {
                if (encode_plain(t, s + start, i - start, out, err, errlen)) return -1;
                if (tl_ids_push(out, id)) {
                    tl_tok_errf(err, errlen, "encode: out of memory");
                    return -1;
                }
                i += l - 1;
                start = i + 1;
                break;
            }
        }
    }
    return encode_plain(t, s + start, n - start, out, err, errlen);
}

int tl_tok_decode(const TlTokenizer *t, const int32_t *ids, size_t n, TlTokBytes *out,
                  char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (uint32_t)id >= t->nvocab) {
            tl_tok_errf(err, errlen, "decode: id %ld at position %zu is outside the vocabulary "
                        "(size %u)", (long)id, i, t->nvocab);
            return -1;
        }
        const uint8_t *p = t->blob + t->tok_off[id];
        size_t l = t->tok_len[id];
        if (t->kind == TL_TOK_WORDPIECE) {
            if (t->prefix_len && l >= t->prefix_len && memcmp(p, t->prefix, t->prefix_len) == 0
                && i > 0) {
                p += t->prefix_len;
                l -= t->prefix_len;
            } else if (i > 0 && bytes_append(out, (const uint8_t *)" ", 1)) {
                goto oom;
            }
        }
        if (bytes_append(out, p, l)) goto oom;
    }
    return 0;
oom:
    tl_tok_errf(err, errlen, "decode: out of memory");
    return -1;
}
