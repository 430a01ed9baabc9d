/* tok_wordpiece.c — BERT WordPiece, as Hugging Face tokenizers' BertWordPieceTokenizer:
 *
 *   normalize  drop NUL, U+FFFD and control characters (categories C*, but not \t \n \r);
 *              white space -> ' '; spaces around CJK ideographs; if lower-casing: NFD and
 *              drop non-spacing marks (accents), then lower-case (utf8proc)
 *   split      on white space (dropped) and around each punctuation character (ASCII
 *              punctuation or a Unicode P* category), which becomes a word of its own
 *   wordpiece  per word: longest vocabulary prefix, then longest "##"-prefixed piece of the
 *              rest, and so on; a word with a part that matches nothing, or longer than
 *              max_word_chars characters, is the single token [UNK].
 *
 * [PAD] [UNK] [CLS] [SEP] [MASK] are special tokens, matched in the raw text first. */
#include "tok_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <utf8proc.h>

static int wp_white(int32_t c) {
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static int wp_control(int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_CN || k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_CS || k == UTF8PROC_CATEGORY_CO;
}

static int wp_punct(int32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

static int wp_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

TlTokenizer *tl_tok_wordpiece_load(const char *path, const TlWordPieceOpts *opts, char *err,
                                   size_t errlen) {
    TlWordPieceOpts o = {1, 100, "[UNK]", "##"};
    if (opts) {
        o.lowercase = opts->lowercase;
        if (opts->max_word_chars > 0) o.max_word_chars = opts->max_word_chars;
        if (opts->unk) o.unk = opts->unk;
        if (opts->prefix) o.prefix = opts->prefix;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        tl_tok_errf(err, errlen, "%s: error: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    TlTokenizer *t = tl_tok_alloc(TL_TOK_WORDPIECE);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    if (!t) goto oom;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
                           line[len - 1] == ' ' || line[len - 1] == '\t'))
            len--;
        for (ssize_t i = 0; i < len;) {
            int32_t cp;
            i += (ssize_t)tl_utf8_next((const uint8_t *)line, (size_t)len, (size_t)i, &cp);
            if (cp < 0) {
                tl_tok_errf(err, errlen, "%s:%zu: error: the token is not valid UTF-8", path,
                            lineno);
                goto fail;
            }
        }
        if (tl_tok_push(t, (const uint8_t *)line, (size_t)len) < 0) goto oom;
    }
    if (ferror(f)) {
        tl_tok_errf(err, errlen, "%s: error: read failed", path);
        goto fail;
    }
    t->unk_id = tl_tok_lookup(t, o.unk, strlen(o.unk));
    if (t->unk_id < 0) {
        tl_tok_errf(err, errlen, "%s: error: the vocabulary has no unknown token %s", path, o.unk);
        goto fail;
    }
    t->lowercase = o.lowercase;
    t->max_word_chars = o.max_word_chars;
    t->prefix = strdup(o.prefix);
    if (!t->prefix) goto oom;
    t->prefix_len = strlen(o.prefix);
    static const char *const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int i = 0; i < 5; i++) {
        int32_t id = tl_tok_lookup(t, specials[i], strlen(specials[i]));
        if (id >= 0 && tl_tok_add_special(t, specials[i], id, err, errlen)) goto fail;
    }
    free(line);
    fclose(f);
    return t;
oom:
    tl_tok_errf(err, errlen, "%s: error: out of memory", path);
fail:
    free(line);
    fclose(f);
    tl_tok_free(t);
    return NULL;
}

/* ---- encoding ----------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    size_t nchars;
} Buf;

static int buf_put(Buf *b, const uint8_t *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

static int buf_cp(Buf *b, int32_t c) {
    uint8_t u[4];
    utf8proc_ssize_t l = utf8proc_encode_char(c, u);
    b->nchars++;
    return buf_put(b, u, (size_t)l);
}

/* WordPiece of one word (UTF-8 in w). */
static int wordpiece(TlTokenizer *t, Buf *w, Buf *tmp, TlTokIds *out) {
    if (!w->n) return 0;
    if (w->nchars > (size_t)t->max_word_chars) return tl_ids_push(out, t->unk_id);
    size_t mark = out->n, start = 0;
    while (start < w->n) {
        tmp->n = 0;
        size_t pl = start ? t->prefix_len : 0;
        if ((pl && buf_put(tmp, (const uint8_t *)t->prefix, pl)) ||
            buf_put(tmp, w->p + start, w->n - start))
            return -1;
        size_t end = w->n;
        int32_t id = -1;
        while (end > start) {
            id = tl_tok_lookup(t, tmp->p, pl + end - start);
            if (id >= 0) break;
            do end--; while (end > start && (w->p[end] & 0xC0) == 0x80);
        }
        if (id < 0) {
            out->n = mark;
            return tl_ids_push(out, t->unk_id);
        }
        if (tl_ids_push(out, id)) return -1;
        start = end;
    }
    return 0;
}

static int flush(TlTokenizer *t, Buf *w, Buf *tmp, TlTokIds *out) {
    int rc = wordpiece(t, w, tmp, out);
    w->n = w->nchars = 0;
    return rc;
}

int tl_wordpiece_encode(TlTokenizer *t, const uint8_t *s, size_t n, TlTokIds *out, char *err,
                        size_t errlen) {
    Buf w = {0}, tmp = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc;) {
        int32_t c;
        i += tl_utf8_next(s, n, i, &c);
        if (c <= 0 || c == 0xFFFD || wp_control(c)) continue;
        if (wp_white(c)) {
            rc = flush(t, &w, &tmp, out);
            continue;
        }
        int32_t parts[32];
        utf8proc_ssize_t np = 1;
        parts[0] = c;
        if (t->lowercase) { /* NFD, drop non-spacing marks */
            int bound = 0;
            np = utf8proc_decompose_char(c, parts, 32, UTF8PROC_DECOMPOSE, &bound);
            if (np < 0 || np > 32) { parts[0] = c; np = 1; }
        }
        int cjk = wp_cjk(c);
        if (cjk && (rc = flush(t, &w, &tmp, out))) break;
        for (utf8proc_ssize_t k = 0; k < np && !rc; k++) {
            int32_t d = parts[k];
            if (t->lowercase && utf8proc_category(d) == UTF8PROC_CATEGORY_MN) continue;
            if (t->lowercase) {
                if (d == 0x130) { /* İ: the only full lower-case mapping of two chars */
                    rc = buf_cp(&w, 'i') || buf_cp(&w, 0x307);
                    continue;
                }
                d = utf8proc_tolower(d);
            }
            if (wp_white(d)) {
                rc = flush(t, &w, &tmp, out);
            } else if (wp_punct(d)) {
                rc = flush(t, &w, &tmp, out);
                if (!rc) rc = buf_cp(&w, d) || flush(t, &w, &tmp, out);
            } else {
                rc = buf_cp(&w, d);
            }
        }
        if (!rc && cjk) rc = flush(t, &w, &tmp, out);
    }
    if (!rc) rc = flush(t, &w, &tmp, out);
    free(w.p);
    free(tmp.p);
    if (rc) tl_tok_errf(err, errlen, "WordPiece: out of memory");
    return rc ? -1 : 0;
}
