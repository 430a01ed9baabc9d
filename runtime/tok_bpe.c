/* tok_bpe.c — byte-level BPE: GPT-2 files, encoding a piece, the word cache, writers.
 *
 * Encoding follows tiktoken exactly: a piece that is itself a mergeable token is that
 * token; otherwise start from its bytes and repeatedly merge the adjacent pair whose
 * concatenation is the mergeable token of lowest rank (rank = id), leftmost first. The pair
 * table holds every split of every merged token into two mergeable tokens, so a pair
 * lookup is one probe of a 64-bit-keyed hash table. Short pieces use a rank scan; long
 * ones (runs of spaces or digits) a linked list with a min-heap and lazy deletion, so a
 * megabyte of spaces costs n log n, not n^2. */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>

#include "fsutil.h"

/* ---- GPT-2's byte <-> unicode spelling -------------------------------------------- */

/* Printable bytes spell themselves; the others are shifted to 256+k in byte order. */
static int byte_cp[256];
static int cp_byte[512]; /* code point -> byte + 1, 0 where none */
static int gpt2_order[256]; /* id i of GPT-2's vocabulary is byte gpt2_order[i] */
static int byte_map_ready;

static void byte_map_init(void) {
    if (byte_map_ready) return;
    int n = 0, k = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        if (printable) {
            byte_cp[b] = b;
            gpt2_order[n++] = b;
        }
    }
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        if (!printable) {
            byte_cp[b] = 256 + k++;
            gpt2_order[n++] = b;
        }
    }
    for (int b = 0; b < 256; b++) cp_byte[byte_cp[b]] = b + 1;
    byte_map_ready = 1; /* idempotent: a race writes the same values */
}

int tl_gpt2_byte_order(int i) {
    byte_map_init();
    return gpt2_order[i & 255];
}

int tl_gpt2_byte_cp(int b) {
    byte_map_init();
    return byte_cp[b & 255];
}

/* GPT-2 spelling (UTF-8) -> raw bytes, in place; -1 if a character is outside the map. */
static long unspell(const char *s, size_t n, uint8_t *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t l = tl_utf8_next((const uint8_t *)s, n, i, &cp);
        if (cp < 0 || cp >= 512 || !cp_byte[cp]) return -1;
        out[o++] = (uint8_t)(cp_byte[cp] - 1);
        i += l;
    }
    return (long)o;
}

/* ---- the pair table --------------------------------------------------------------- */

int tl_pair_put(TlPairMap *m, int32_t a, int32_t b, int32_t v) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        uint64_t *key = calloc(cap, sizeof *key);
        int32_t *val = malloc(cap * sizeof *val);
        if (!key || !val) {
            free(key);
            free(val);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->key[i]) continue;
            size_t j = (size_t)tl_pair_mix(m->key[i]) & (cap - 1);
            while (key[j]) j = (j + 1) & (cap - 1);
            key[j] = m->key[i];
            val[j] = m->val[i];
        }
        free(m->key);
        free(m->val);
        m->key = key;
        m->val = val;
        m->cap = cap;
    }
    uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    size_t mask = m->cap - 1, i = (size_t)tl_pair_mix(k) & mask;
    while (m->key[i] && m->key[i] != k) i = (i + 1) & mask;
    if (!m->key[i]) {
        m->key[i] = k;
        m->n++;
        m->val[i] = v;
    } else if (v < m->val[i]) {
        m->val[i] = v;
    }
    return 0;
}

void tl_pair_free(TlPairMap *m) {
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

int tl_bpe_build_pairs(TlTokenizer *t, const char *what, char *err, size_t errlen) {
    tl_pair_free(&t->pairs);
    free(t->mergeable);
    t->mergeable = calloc(t->nvocab ? t->nvocab : 1, 1);
    if (!t->mergeable) goto oom;
    for (int b = 0; b < 256; b++) t->mergeable[t->byte_id[b]] = 1;
    for (size_t k = 0; k < t->nmerges; k++) {
        int32_t a = t->merges[k][0], b = t->merges[k][1];
        uint8_t buf[1024];
        size_t la = t->tok_len[a], lb = t->tok_len[b];
        if (la + lb > sizeof buf) {
            tl_tok_errf(err, errlen, "%s: merge %zu makes a token longer than %zu bytes", what,
                        k + 1, sizeof buf);
            return -1;
        }
        memcpy(buf, t->blob + t->tok_off[a], la);
        memcpy(buf + la, t->blob + t->tok_off[b], lb);
        int32_t m = tl_tok_lookup(t, buf, la + lb);
        if (m < 0) {
            tl_tok_errf(err, errlen, "%s: merge %zu makes a token that is not in the vocabulary",
                        what, k + 1);
            return -1;
        }
        t->mergeable[m] = 1;
    }
    /* Every split of every mergeable token into two mergeable tokens is a pair. */
    for (uint32_t id = 0; id < t->nvocab; id++) {
        if (!t->mergeable[id] || t->tok_len[id] < 2) continue;
        const uint8_t *s = t->blob + t->tok_off[id];
        size_t n = t->tok_len[id];
        for (size_t i = 1; i < n; i++) {
            int32_t a = tl_tok_lookup(t, s, i), b = tl_tok_lookup(t, s + i, n - i);
            if (a < 0 || b < 0 || !t->mergeable[a] || !t->mergeable[b]) continue;
            if (tl_pair_put(&t->pairs, a, b, (int32_t)id)) goto oom;
        }
    }
    if (!t->pairs.cap && tl_pair_put(&t->pairs, -1, -1, -1)) goto oom; /* never empty */
    return 0;
oom:
    tl_tok_errf(err, errlen, "%s: out of memory", what);
    return -1;
}

/* ---- loading GPT-2 files ---------------------------------------------------------- */

static char *read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        tl_tok_errf(err, errlen, "%s: error: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        cap *= 2;
        char *b = realloc(buf, cap + 1);
        if (!b) free(buf);
        buf = b;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        tl_tok_errf(err, errlen, "%s: error: %s", path, bad ? "read failed" : "out of memory");
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int load_encoder(TlTokenizer *t, const char *path, char *err, size_t errlen) {
    size_t len;
    char *text = read_file(path, &len, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    int rc = -1;
    char **by_id = NULL;
    int *by_len = NULL;
    if (!root || !cJSON_IsObject(root)) {
        tl_tok_errf(err, errlen, "%s: error: not a JSON object of token -> id", path);
        goto done;
    }
    int n = cJSON_GetArraySize(root);
    by_id = calloc(n ? (size_t)n : 1, sizeof *by_id);
    by_len = calloc(n ? (size_t)n : 1, sizeof *by_len);
    if (!by_id || !by_len) {
        tl_tok_errf(err, errlen, "%s: error: out of memory", path);
        goto done;
    }
    for (cJSON *it = root->child; it; it = it->next) {
        double v = it->valuedouble;
        if (!cJSON_IsNumber(it) || v < 0 || v >= n || v != (double)(int)v) {
            tl_tok_errf(err, errlen, "%s: error: token \"%.40s\" has id %s; ids must be 0..%d",
                        path, it->string ? it->string : "", cJSON_IsNumber(it) ? "out of range" :
                        "that is not a number", n - 1);
            goto done;
        }
        int id = (int)v;
        if (by_id[id]) {
            tl_tok_errf(err, errlen, "%s: error: id %d is given to two tokens", path, id);
            goto done;
        }
        by_id[id] = it->string;
        long l = unspell(it->string, strlen(it->string), (uint8_t *)it->string);
        if (l < 0) {
            tl_tok_errf(err, errlen, "%s: error: token with id %d has a character outside "
                        "GPT-2's byte alphabet", path, id);
            goto done;
        }
        by_len[id] = (int)l;
    }
    for (int id = 0; id < n; id++) {
        if (tl_tok_push(t, (uint8_t *)by_id[id], (size_t)by_len[id]) != id) {
            tl_tok_errf(err, errlen, "%s: error: out of memory", path);
            goto done;
        }
        if (by_len[id] == 1 && t->byte_id[(uint8_t)by_id[id][0]] < 0)
            t->byte_id[(uint8_t)by_id[id][0]] = id;
    }
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] < 0) {
            tl_tok_errf(err, errlen, "%s: error: no token for byte 0x%02x", path, b);
            goto done;
        }
    rc = 0;
done:
    free(by_id);
    free(by_len);
    cJSON_Delete(root);
    return rc;
}

static int load_merges(TlTokenizer *t, const char *path, char *err, size_t errlen) {
    size_t len;
    char *text = read_file(path, &len, err, errlen);
    if (!text) return -1;
    size_t cap = 1024, lineno = 0;
    t->merges = malloc(cap * sizeof *t->merges);
    if (!t->merges) goto oom;
    for (char *p = text, *end = text + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        lineno++;
        char *line = p;
        p = nl ? nl + 1 : end;
        if (e > line && e[-1] == '\r') e--;
        if (e == line || (lineno == 1 && *line == '#')) continue;
        char *sp = memchr(line, ' ', (size_t)(e - line));
        if (!sp || sp == line || sp + 1 == e || memchr(sp + 1, ' ', (size_t)(e - sp - 1))) {
            tl_tok_errf(err, errlen, "%s:%zu: error: expected two tokens separated by one space",
                        path, lineno);
            goto fail;
        }
        int32_t ids[2];
        char *part[2] = {line, sp + 1};
        size_t plen[2] = {(size_t)(sp - line), (size_t)(e - sp - 1)};
        for (int k = 0; k < 2; k++) {
            long l = unspell(part[k], plen[k], (uint8_t *)part[k]);
            ids[k] = l < 0 ? -1 : tl_tok_lookup(t, part[k], (size_t)l);
            if (ids[k] < 0) {
                tl_tok_errf(err, errlen, "%s:%zu: error: unknown token '%.*s'", path, lineno,
                            (int)(plen[k] > 40 ? 40 : plen[k]), part[k]);
                goto fail;
            }
        }
        if (t->nmerges == cap) {
            cap *= 2;
            void *m = realloc(t->merges, cap * sizeof *t->merges);
            if (!m) goto oom;
            t->merges = m;
        }
        t->merges[t->nmerges][0] = ids[0];
        t->merges[t->nmerges][1] = ids[1];
        t->nmerges++;
    }
    free(text);
    return 0;
oom:
    tl_tok_errf(err, errlen, "%s: error: out of memory", path);
fail:
    free(text);
    return -1;
}

TlTokenizer *tl_tok_gpt2_load(const char *encoder_json, const char *vocab_bpe, char *err,
                              size_t errlen) {
    byte_map_init();
    TlTokenizer *t = tl_tok_alloc(TL_TOK_BPE);
    if (!t) {
        tl_tok_errf(err, errlen, "%s: error: out of memory", encoder_json);
        return NULL;
    }
    if (load_encoder(t, encoder_json, err, errlen) || load_merges(t, vocab_bpe, err, errlen))
        goto fail;
    char what[1024];
    snprintf(what, sizeof what, "%s: error", vocab_bpe);
    if (tl_bpe_build_pairs(t, what, err, errlen)) goto fail;
    t->pretok = tl_pretok_new(NULL, 0, err, errlen);
    if (!t->pretok) goto fail;
    int32_t eot = tl_tok_lookup(t, "<|endoftext|>", 13);
    if (eot >= 0 && !t->mergeable[eot] &&
        tl_tok_add_special(t, "<|endoftext|>", eot, err, errlen))
        goto fail;
    return t;
fail:
    tl_tok_free(t);
    return NULL;
}

TlTokenizer *tl_tok_gpt2_load_dir(const char *dir, char *err, size_t errlen) {
    size_t n = strlen(dir) + 32;
    char *a = malloc(n), *b = malloc(n);
    TlTokenizer *t = NULL;
    if (a && b) {
        snprintf(a, n, "%s/encoder.json", dir);
        snprintf(b, n, "%s/vocab.bpe", dir);
        t = tl_tok_gpt2_load(a, b, err, errlen);
    } else {
        tl_tok_errf(err, errlen, "%s: error: out of memory", dir);
    }
    free(a);
    free(b);
    return t;
}

int tl_tok_set_pattern(TlTokenizer *t, const char *pattern, char *err, size_t errlen) {
    TlPretok *p = tl_pretok_new(pattern, 0, err, errlen);
    if (!p) return -1;
    char *copy = NULL;
    if (pattern && strcmp(pattern, "gpt2") != 0 && !(copy = strdup(pattern))) {
        tl_pretok_free(p);
        tl_tok_errf(err, errlen, "pattern: out of memory");
        return -1;
    }
    tl_pretok_free(t->pretok);
    free(t->pattern);
    t->pretok = p;
    t->pattern = copy;
    t->cache.n = 0; /* pieces change with the pattern; the cache stays valid, but be plain */
    return 0;
}

/* ---- encoding one piece ----------------------------------------------------------- */

static inline int32_t pair_rank(const TlTokenizer *t, int32_t a, int32_t b) {
    int32_t m = tl_pair_get(&t->pairs, a, b);
    return m < 0 ? INT32_MAX : m;
}

int tl_bpe_encode_piece_ref(const TlTokenizer *t, const uint8_t *s, size_t n, TlTokIds *out) {
    if (!n) return 0;
    int32_t whole = tl_tok_lookup(t, s, n);
    if (whole >= 0 && t->mergeable[whole]) return tl_ids_push(out, whole);
    int32_t *tok = malloc(n * sizeof *tok);
    if (!tok) return -1;
    size_t m = n;
    for (size_t i = 0; i < n; i++) tok[i] = t->byte_id[s[i]];
    for (;;) {
        int32_t best = INT32_MAX;
        size_t at = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            int32_t r = pair_rank(t, tok[i], tok[i + 1]);
            if (r < best) best = r, at = i;
        }
        if (best == INT32_MAX) break;
        tok[at] = best;
        memmove(tok + at + 1, tok + at + 2, (m - at - 2) * sizeof *tok);
        m--;
    }
    int rc = 0;
    for (size_t i = 0; i < m && !rc; i++) rc = tl_ids_push(out, tok[i]);
    free(tok);
    return rc;
}

/* Rank scan over an array for short pieces: tok[0..m) -> merged in place, returns m. */
static size_t merge_scan(const TlTokenizer *t, int32_t *tok, int32_t *rk, size_t m) {
    for (size_t i = 0; i + 1 < m; i++) rk[i] = pair_rank(t, tok[i], tok[i + 1]);
    while (m > 1) {
        int32_t best = INT32_MAX;
        size_t at = 0;
        for (size_t i = 0; i + 1 < m; i++)
            if (rk[i] < best) best = rk[i], at = i;
        if (best == INT32_MAX) break;
        tok[at] = best;
        memmove(tok + at + 1, tok + at + 2, (m - at - 2) * sizeof *tok);
        if (at + 3 <= m) memmove(rk + at + 1, rk + at + 2, (m - at - 3) * sizeof *rk);
        m--;
        if (at > 0) rk[at - 1] = pair_rank(t, tok[at - 1], tok[at]);
        if (at + 1 < m) rk[at] = pair_rank(t, tok[at], tok[at + 1]);
    }
    return m;
}

/* Heap merge for long pieces. Nodes are byte positions in a linked list; the heap holds
 * (rank, left position) candidates and stale ones are skipped when popped. */
typedef struct { int32_t rank, pos; } Cand;

static void heap_push(Cand *h, size_t *hn, Cand c) {
    size_t i = (*hn)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].rank < c.rank || (h[p].rank == c.rank && h[p].pos < c.pos)) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static Cand heap_pop(Cand *h, size_t *hn) {
    Cand top = h[0], last = h[--*hn];
    size_t i = 0, n = *hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && (h[c + 1].rank < h[c].rank ||
                          (h[c + 1].rank == h[c].rank && h[c + 1].pos < h[c].pos)))
            c++;
        if (last.rank < h[c].rank || (last.rank == h[c].rank && last.pos < h[c].pos)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = last;
    return top;
}

static int merge_heap(const TlTokenizer *t, const uint8_t *s, size_t n, TlTokIds *out) {
    int32_t *tok = malloc(n * sizeof *tok), *next = malloc(n * sizeof *next),
            *prev = malloc(n * sizeof *prev);
    Cand *h = malloc(2 * n * sizeof *h + sizeof *h);
    int rc = -1;
    if (!tok || !next || !prev || !h) goto done;
    size_t hn = 0, cap = 2 * n + 1;
    for (size_t i = 0; i < n; i++) {
        tok[i] = t->byte_id[s[i]];
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        prev[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r = pair_rank(t, tok[i], tok[i + 1]);
        if (r != INT32_MAX) heap_push(h, &hn, (Cand){r, (int32_t)i});
    }
    while (hn) {
        Cand c = heap_pop(h, &hn);
        int32_t p = c.pos, q = next[p];
        /* Stale if p was absorbed (tok = -1), has no right neighbour, or the pair changed. */
        if (tok[p] < 0 || q < 0 || pair_rank(t, tok[p], tok[q]) != c.rank) continue;
        tok[p] = c.rank;
        tok[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        if (hn + 2 > cap) break; /* cannot happen: each merge adds at most two */
        if (prev[p] >= 0) {
            int32_t r = pair_rank(t, tok[prev[p]], tok[p]);
            if (r != INT32_MAX) heap_push(h, &hn, (Cand){r, prev[p]});
        }
        if (next[p] >= 0) {
            int32_t r = pair_rank(t, tok[p], tok[next[p]]);
            if (r != INT32_MAX) heap_push(h, &hn, (Cand){r, p});
        }
    }
    rc = 0;
    for (int32_t i = 0; i >= 0 && !rc; i = next[i]) rc = tl_ids_push(out, tok[i]);
done:
    free(tok);
    free(next);
    free(prev);
    free(h);
    return rc;
}

/* ---- the word cache --------------------------------------------------------------- */

enum { CACHE_MAX_WORD = 128, CACHE_MAX_SLOTS = 1 << 20 };

void tl_bpe_cache_free(TlWordCache *c) {
    free(c->slot);
    free(c->data);
    memset(c, 0, sizeof *c);
}

static const int32_t *cache_get(const TlWordCache *c, uint64_t h, const uint8_t *s, size_t n,
                                size_t *nids) {
    if (!c->n) return NULL;
    size_t mask = c->cap - 1, i = (size_t)h & mask;
    for (;;) {
        const struct TlCacheSlot *e = &c->slot[i];
        if (!e->len) return NULL;
        if (e->hash == h && e->len == n) {
            const int32_t *ids = (const int32_t *)(c->data + e->off);
            const uint8_t *k = (const uint8_t *)(ids + e->nids);
            size_t j = 0; /* words are short: a plain loop beats a call to memcmp */
            while (j < n && k[j] == s[j]) j++;
            if (j == n) {
                *nids = e->nids;
                return ids;
            }
        }
        i = (i + 1) & mask;
    }
}

static void cache_put(TlWordCache *c, uint64_t h, const uint8_t *s, size_t n,
                      const int32_t *ids, size_t nids) {
    if (!n || n > CACHE_MAX_WORD || nids > CACHE_MAX_WORD) return;
    if ((c->n + 1) * 2 > c->cap) {
        if (c->cap >= CACHE_MAX_SLOTS) { /* full: start over */
            memset(c->slot, 0, c->cap * sizeof *c->slot);
            c->n = 0;
            c->data_n = 0;
        } else {
            size_t cap = c->cap ? c->cap * 4 : 1 << 14;
            struct TlCacheSlot *ns = calloc(cap, sizeof *ns);
            if (!ns) return;
            for (size_t i = 0; i < c->cap; i++) {
                if (!c->slot[i].len) continue;
                size_t j = (size_t)c->slot[i].hash & (cap - 1);
                while (ns[j].len) j = (j + 1) & (cap - 1);
                ns[j] = c->slot[i];
            }
            free(c->slot);
            c->slot = ns;
            c->cap = cap;
        }
    }
    size_t need = nids * 4 + ((n + 3) & ~(size_t)3);
    if (c->data_n + need > c->data_cap) {
        size_t cap = c->data_cap ? c->data_cap * 2 : 1 << 18;
        while (cap < c->data_n + need) cap *= 2;
        if (cap > UINT32_MAX) return;
        uint8_t *d = realloc(c->data, cap);
        if (!d) return;
        c->data = d;
        c->data_cap = cap;
    }
    size_t off = c->data_n;
    memcpy(c->data + off, ids, nids * 4);
    memcpy(c->data + off + nids * 4, s, n);
    c->data_n += need;
    size_t mask = c->cap - 1, i = (size_t)h & mask;
    while (c->slot[i].len) i = (i + 1) & mask;
    c->slot[i] = (struct TlCacheSlot){h, (uint32_t)off, (uint16_t)n, (uint16_t)nids};
    c->n++;
}

int tl_bpe_encode_piece(TlTokenizer *t, const uint8_t *s, size_t n, TlTokIds *out) {
    if (n == 1) return tl_ids_push(out, t->byte_id[s[0]]);
    if (!n) return 0;
    uint64_t h = 0;
    if (n <= CACHE_MAX_WORD) {
        h = tl_tok_hash(s, n);
        size_t k;
        const int32_t *ids = cache_get(&t->cache, h, s, n, &k);
        if (ids) {
            if (out->n + k > out->cap) {
                size_t cap = out->cap ? out->cap : 1024;
                while (cap < out->n + k) cap *= 2;
                int32_t *v = realloc(out->v, cap * sizeof *v);
                if (!v) return -1;
                out->v = v;
                out->cap = cap;
            }
            memcpy(out->v + out->n, ids, k * sizeof *ids);
            out->n += k;
            return 0;
        }
    } else {
        return merge_heap(t, s, n, out);
    }
    size_t start = out->n;
    int32_t whole = tl_tok_lookup(t, s, n);
    if (whole >= 0 && t->mergeable[whole]) {
        if (tl_ids_push(out, whole)) return -1;
    } else {
        if (t->work_cap < 2 * n) {
            int32_t *w = realloc(t->work, 2 * n * sizeof *w);
            if (!w) return -1;
            t->work = w;
            t->work_cap = 2 * n;
        }
        int32_t *tok = t->work, *rk = t->work + n;
        for (size_t i = 0; i < n; i++) tok[i] = t->byte_id[s[i]];
        size_t m = merge_scan(t, tok, rk, n);
        for (size_t i = 0; i < m; i++)
            if (tl_ids_push(out, tok[i])) return -1;
    }
    cache_put(&t->cache, h, s, n, out->v + start, out->n - start);
    return 0;
}
