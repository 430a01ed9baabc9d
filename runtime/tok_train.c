/* tok_train.c — byte-level BPE training, the classic algorithm (Sennrich et al.; GPT-2):
 *
 *   1. pre-tokenize the corpus and count each distinct word;
 *   2. count adjacent symbol pairs over the words, weighted by word count;
 *   3. repeatedly take the most frequent pair (A, B), add token AB, rewrite every word
 *      that holds it, and update the counts of the pairs around each rewrite.
 *
 * Step 3 touches only the words that hold the pair (each pair keeps the list of words it
 * was seen in) and never recounts. The pair to merge comes from a max-heap with lazy
 * deletion: a pair's count only goes down once it exists (every new pair involves the new
 * token), so a popped entry whose count is out of date is pushed back with the true count,
 * and one that is current is the true maximum.
 *
 * Ties: highest count, then the lexicographically smallest (bytes of A, bytes of B), A
 * compared first, bytes unsigned, a prefix before its extensions; or, with hf_ties, the
 * smallest (id of A, id of B) as Hugging Face's BpeTrainer (its Merge's Ord). The result
 * depends only on the multiset of words, never on hash order or the order files were fed. */
#include "tok_internal.h"

#include <stdlib.h>

struct TlBpeTrainer {
    TlBpeTrainOpts opts;
    TlPretok *pretok;
    char *pattern;
    /* word counts: open addressing over (bytes in text arena) */
    struct WSlot { uint64_t hash; uint64_t count; uint32_t off, len; } *ws;
    size_t wcap, wn;
    uint8_t *text;
    size_t text_n, text_cap;
    int oom;
};

static int word_add(TlBpeTrainer *tr, const uint8_t *s, size_t n) {
    if (n > UINT32_MAX) return 0;
    if ((tr->wn + 1) * 2 > tr->wcap) {
        size_t cap = tr->wcap ? tr->wcap * 2 : 1 << 14;
        struct WSlot *ns = calloc(cap, sizeof *ns);
        if (!ns) return -1;
        for (size_t i = 0; i < tr->wcap; i++) {
            if (!tr->ws[i].count) continue;
            size_t j = (size_t)tr->ws[i].hash & (cap - 1);
            while (ns[j].count) j = (j + 1) & (cap - 1);
            ns[j] = tr->ws[i];
        }
        free(tr->ws);
        tr->ws = ns;
        tr->wcap = cap;
    }
    uint64_t h = tl_tok_hash(s, n);
    size_t mask = tr->wcap - 1, i = (size_t)h & mask;
    for (; tr->ws[i].count; i = (i + 1) & mask) {
        struct WSlot *w = &tr->ws[i];
        if (w->hash == h && w->len == n && memcmp(tr->text + w->off, s, n) == 0) {
            w->count++;
            return 0;
        }
    }
    if (tr->text_n + n > tr->text_cap) {
        size_t cap = tr->text_cap ? tr->text_cap * 2 : 1 << 16;
        while (cap < tr->text_n + n) cap *= 2;
        if (cap > UINT32_MAX) return -1;
        uint8_t *t = realloc(tr->text, cap);
        if (!t) return -1;
        tr->text = t;
        tr->text_cap = cap;
    }
    memcpy(tr->text + tr->text_n, s, n);
    tr->ws[i] = (struct WSlot){h, 1, (uint32_t)tr->text_n, (uint32_t)n};
    tr->text_n += n;
    tr->wn++;
    return 0;
}

TlBpeTrainer *tl_bpe_trainer_new(const TlBpeTrainOpts *opts, char *err, size_t errlen) {
    TlBpeTrainer *tr = calloc(1, sizeof *tr);
    if (!tr) {
        tl_tok_errf(err, errlen, "BPE training: out of memory");
        return NULL;
    }
    tr->opts = *opts;
    if (opts->vocab_size < 256) {
        tl_tok_errf(err, errlen, "BPE training: vocabulary size %zu is below the 256 byte "
                    "tokens", opts->vocab_size);
        free(tr);
        return NULL;
    }
    tr->pretok = tl_pretok_new(opts->pattern, 0, err, errlen);
    if (!tr->pretok) {
        free(tr);
        return NULL;
    }
    if (opts->pattern && strcmp(opts->pattern, "gpt2") != 0 &&
        !(tr->pattern = strdup(opts->pattern))) {
        tl_bpe_trainer_free(tr);
        tl_tok_errf(err, errlen, "BPE training: out of memory");
        return NULL;
    }
    return tr;
}

void tl_bpe_trainer_free(TlBpeTrainer *tr) {
    if (!tr) return;
    tl_pretok_free(tr->pretok);
    free(tr->pattern);
    free(tr->ws);
    free(tr->text);
    free(tr);
}

static int feed_cb(void *ud, const uint8_t *p, size_t n) {
    return word_add(ud, p, n) ? 1 : 0;
}

int tl_bpe_trainer_feed(TlBpeTrainer *tr, const void *text, size_t n, char *err,
                        size_t errlen) {
    /* Specials never take part in merges: cut them out of the text first. */
    const uint8_t *s = text;
    size_t start = 0;
    int rc = 0;
    const char *const *sp = tr->opts.specials;
    for (size_t i = 0; sp && i < n; i++) {
        for (size_t k = 0; sp[k]; k++) {
            size_t l = strlen(sp[k]);
            if (l && l <= n - i && memcmp(s + i, sp[k], l) == 0) {
                rc = tl_pretok_split(tr->pretok, s + start, i - start, feed_cb, tr, err, errlen);
                if (rc) goto fail;
                start = i + l;
                i = start - 1;
                break;
            }
        }
    }
    rc = tl_pretok_split(tr->pretok, s + start, n - start, feed_cb, tr, err, errlen);
    if (!rc) return 0;
fail:
    if (rc > 0) tl_tok_errf(err, errlen, "BPE training: out of memory");
    return -1;
}

/* ---- the merge loop ----------------------------------------------------------------- */

typedef struct {
    int32_t a, b;
    int64_t count;
    uint32_t *where; /* words that held the pair at some point (may repeat or be stale) */
    uint32_t nwhere, cwhere;
} Pair;

typedef struct {
    TlTokenizer *t;
    Pair *pairs;
    size_t npairs, cpairs;
    TlPairMap index; /* (a, b) -> pair index */
    struct HeapE { int64_t count; int32_t pair; } *heap;
    size_t hn, hcap;
    int hf_ties;
} Train;

/* Does pair x come before pair y in the tie-breaking order? */
static int pair_less(const TlTokenizer *t, const Pair *x, const Pair *y, int hf_ties) {
    if (hf_ties) return x->a != y->a ? x->a < y->a : x->b < y->b;
    for (int side = 0; side < 2; side++) {
        int32_t i = side ? x->b : x->a, j = side ? y->b : y->a;
        if (i == j) continue;
        size_t li = t->tok_len[i], lj = t->tok_len[j];
        int c = memcmp(t->blob + t->tok_off[i], t->blob + t->tok_off[j], li < lj ? li : lj);
        if (c) return c < 0;
        if (li != lj) return li < lj;
    }
    return 0;
}

/* Heap order: higher count first, then the tie-break. */
static int heap_above(const Train *tn, struct HeapE x, struct HeapE y) {
    if (x.count != y.count) return x.count > y.count;
    return pair_less(tn->t, &tn->pairs[x.pair], &tn->pairs[y.pair], tn->hf_ties);
}

static int heap_push(Train *tn, int32_t p) {
    if (tn->hn == tn->hcap) {
        size_t cap = tn->hcap ? tn->hcap * 2 : 4096;
        void *h = realloc(tn->heap, cap * sizeof *tn->heap);
        if (!h) return -1;
        tn->heap = h;
        tn->hcap = cap;
    }
    struct HeapE e = {tn->pairs[p].count, p};
    size_t i = tn->hn++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!heap_above(tn, e, tn->heap[up])) break;
        tn->heap[i] = tn->heap[up];
        i = up;
    }
    tn->heap[i] = e;
    return 0;
}

static struct HeapE heap_pop(Train *tn) {
    struct HeapE top = tn->heap[0], last = tn->heap[--tn->hn];
    size_t i = 0, n = tn->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_above(tn, tn->heap[c + 1], tn->heap[c])) c++;
        if (!heap_above(tn, tn->heap[c], last)) break;
        tn->heap[i] = tn->heap[c];
        i = c;
    }
    if (n) tn->heap[i] = last;
    return top;
}

/* The index of pair (a, b), created with count 0 if new; -1 on out of memory. */
static int32_t pair_at(Train *tn, int32_t a, int32_t b) {
    int32_t p = tl_pair_get(&tn->index, a, b);
    if (p >= 0) return p;
    if (tn->npairs == tn->cpairs) {
        size_t cap = tn->cpairs ? tn->cpairs * 2 : 4096;
        Pair *np = realloc(tn->pairs, cap * sizeof *np);
        if (!np) return -1;
        tn->pairs = np;
        tn->cpairs = cap;
    }
    p = (int32_t)tn->npairs++;
    tn->pairs[p] = (Pair){.a = a, .b = b};
    if (tl_pair_put(&tn->index, a, b, p)) return -1;
    return p;
}

static int pair_add(Train *tn, int32_t a, int32_t b, int64_t d, uint32_t word) {
    int32_t p = pair_at(tn, a, b);
    if (p < 0) return -1;
    Pair *q = &tn->pairs[p];
    q->count += d;
    if (d > 0 && (!q->nwhere || q->where[q->nwhere - 1] != word)) {
        if (q->nwhere == q->cwhere) {
            uint32_t cap = q->cwhere ? q->cwhere * 2 : 4;
            uint32_t *w = realloc(q->where, cap * sizeof *w);
            if (!w) return -1;
            q->where = w;
            q->cwhere = cap;
        }
        q->where[q->nwhere++] = word;
    }
    return 0;
}

TlTokenizer *tl_bpe_trainer_finish(TlBpeTrainer *tr, char *err, size_t errlen) {
    Train tn = {0};
    int32_t *sym = NULL;
    struct Word { uint64_t count; uint32_t off, len; uint32_t stamp; } *words = NULL;
    int32_t *touched = NULL;
    size_t ntouched = 0, ctouched = 0;
    TlTokenizer *t = tn.t = tl_tok_alloc(TL_TOK_BPE);
    tn.hf_ties = tr->opts.hf_ties;
    if (!t) goto oom;
    /* Byte tokens in GPT-2's order, so ids 0..255 match GPT-2's files. */
    for (int i = 0; i < 256; i++) {
        uint8_t b = (uint8_t)tl_gpt2_byte_order(i);
        if (tl_tok_push(t, &b, 1) != i) goto oom;
        t->byte_id[b] = i;
    }
    /* Words in a canonical order (by bytes), so nothing depends on hash order. */
    size_t nw = tr->wn;
    words = calloc(nw ? nw : 1, sizeof *words);
    sym = malloc((tr->text_n ? tr->text_n : 1) * sizeof *sym);
    if (!words || !sym) goto oom;
    {
        size_t k = 0;
        for (size_t i = 0; i < tr->wcap; i++)
            if (tr->ws[i].count)
                words[k++] = (struct Word){tr->ws[i].count, tr->ws[i].off, tr->ws[i].len, 0};
        for (size_t i = 0; i < nw; i++) {
            const uint8_t *s = tr->text + words[i].off;
            for (uint32_t j = 0; j < words[i].len; j++) sym[words[i].off + j] = t->byte_id[s[j]];
        }
    }
    for (uint32_t w = 0; w < nw; w++) {
        int32_t *s = sym + words[w].off;
        for (uint32_t j = 0; j + 1 < words[w].len; j++)
            if (pair_add(&tn, s[j], s[j + 1], (int64_t)words[w].count, w)) goto oom;
    }
    for (size_t p = 0; p < tn.npairs; p++)
        if (heap_push(&tn, (int32_t)p)) goto oom;
    size_t nspec = 0;
    for (const char *const *sp = tr->opts.specials; sp && *sp; sp++) nspec++;
    size_t target = tr->opts.vocab_size > 256 + nspec ? tr->opts.vocab_size - nspec : 256;
    uint64_t min_count = tr->opts.min_count ? tr->opts.min_count : 1;
    size_t cmerges = 1024, total = target - 256, stamp = 0;
    t->merges = malloc(cmerges * sizeof *t->merges);
    if (!t->merges) goto oom;
    while (t->nvocab < target && tn.hn) {
        struct HeapE e = heap_pop(&tn);
        Pair *pr = &tn.pairs[e.pair];
        if (e.count != pr->count) { /* stale: the count went down since */
            if (pr->count > 0 && heap_push(&tn, e.pair)) goto oom;
            continue;
        }
        if (e.count <= 0 || (uint64_t)e.count < min_count) break;
        int32_t A = pr->a, B = pr->b;
        /* The new token; one that spells an existing token reuses its id. */
        uint8_t *buf = malloc(t->tok_len[A] + t->tok_len[B] + 1);
        if (!buf) goto oom;
        memcpy(buf, t->blob + t->tok_off[A], t->tok_len[A]);
        memcpy(buf + t->tok_len[A], t->blob + t->tok_off[B], t->tok_len[B]);
        size_t zl = t->tok_len[A] + t->tok_len[B];
        int32_t Z = tl_tok_lookup(t, buf, zl);
        if (Z < 0) Z = tl_tok_push(t, buf, zl);
        free(buf);
        if (Z < 0) goto oom;
        if (t->nmerges == cmerges) {
            cmerges *= 2;
            void *m = realloc(t->merges, cmerges * sizeof *t->merges);
            if (!m) goto oom;
            t->merges = m;
        }
        t->merges[t->nmerges][0] = A;
        t->merges[t->nmerges][1] = B;
        t->nmerges++;
        stamp++;
        ntouched = 0;
        /* Rewrite every word that holds A B, left to right, non-overlapping. */
        uint32_t nwhere = pr->nwhere;
        uint32_t *where = pr->where;
        pr->where = NULL;
        pr->nwhere = pr->cwhere = 0;
        for (uint32_t k = 0; k < nwhere; k++) {
            uint32_t w = where[k];
            if (words[w].stamp == stamp) continue;
            words[w].stamp = (uint32_t)stamp;
            int32_t *s = sym + words[w].off;
            uint32_t len = words[w].len;
            int64_t f = (int64_t)words[w].count;
            for (uint32_t i = 0; i + 1 < len; i++) {
                if (s[i] != A || s[i + 1] != B) continue;
                if (i > 0) {
                    if (pair_add(&tn, s[i - 1], A, -f, w) || pair_add(&tn, s[i - 1], Z, f, w))
                        goto oom_where;
                    if (ntouched == ctouched) {
                        ctouched = ctouched ? ctouched * 2 : 256;
                        int32_t *tt = realloc(touched, ctouched * sizeof *tt);
                        if (!tt) goto oom_where;
                        touched = tt;
                    }
                    touched[ntouched++] = pair_at(&tn, s[i - 1], Z);
                }
                if (i + 2 < len) {
                    if (pair_add(&tn, B, s[i + 2], -f, w) || pair_add(&tn, Z, s[i + 2], f, w))
                        goto oom_where;
                    if (ntouched == ctouched) {
                        ctouched = ctouched ? ctouched * 2 : 256;
                        int32_t *tt = realloc(touched, ctouched * sizeof *tt);
                        if (!tt) goto oom_where;
                        touched = tt;
                    }
                    touched[ntouched++] = pair_at(&tn, Z, s[i + 2]);
                }
                s[i] = Z;
                memmove(s + i + 1, s + i + 2, (len - i - 2) * sizeof *s);
                len--;
            }
            words[w].len = len;
        }
        free(where);
        pr = &tn.pairs[e.pair]; /* pairs may have moved */
        pr->count = 0;
        for (size_t k = 0; k < ntouched; k++) {
            int32_t p = touched[k];
            if (p >= 0 && tn.pairs[p].count > 0 && heap_push(&tn, p)) goto oom;
        }
        if (tr->opts.progress && (t->nmerges % 64 == 0 || t->nvocab == target))
            tr->opts.progress(tr->opts.progress_ud, t->nmerges, total);
        continue;
    oom_where:
        free(where);
        goto oom;
    }
    if (tr->opts.progress) tr->opts.progress(tr->opts.progress_ud, t->nmerges, t->nmerges);
    for (size_t p = 0; p < tn.npairs; p++) free(tn.pairs[p].where);
    free(tn.pairs);
    free(tn.heap);
    tl_pair_free(&tn.index);
    free(words);
    free(sym);
    free(touched);
    if (tl_bpe_build_pairs(t, "BPE training", err, errlen)) goto fail;
    t->pretok = tl_pretok_new(tr->pattern, 0, err, errlen);
    if (!t->pretok) goto fail;
    if (tr->pattern && !(t->pattern = strdup(tr->pattern))) goto oom2;
    for (const char *const *sp = tr->opts.specials; sp && *sp; sp++)
        if (tl_tok_add_special(t, *sp, -1, err, errlen)) goto fail;
    return t;
oom:
    for (size_t p = 0; p < tn.npairs; p++) free(tn.pairs[p].where);
    free(tn.pairs);
    free(tn.heap);
    tl_pair_free(&tn.index);
    free(words);
    free(sym);
    free(touched);
oom2:
    tl_tok_errf(err, errlen, "BPE training: out of memory");
fail:
    tl_tok_free(t);
    return NULL;
}
