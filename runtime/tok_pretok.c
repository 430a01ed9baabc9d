/* tok_pretok.c — pre-tokenizers: text -> pieces that BPE encodes one by one.
 *
 * Two engines: PCRE2 (UTF + UCP, JIT) for any user pattern, and a hand-written scanner for
 * GPT-2's pattern, the hot path:
 *
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * The scanner classifies code points as L (letter), N (number), S (white space) or O
 * (anything else, and every byte that is not valid UTF-8) and follows the alternatives in
 * order, as the regex engine would. The one subtle rule is `\s+(?!\S)`: a run of white
 * space that is followed by a non-space gives up its last character, which then starts the
 * next piece (" ?\p{L}+" takes a space before a word). Letter and number classes come from
 * utf8proc's category data; \s is Unicode White_Space, as in tiktoken's regex engine (PCRE2
 * also counts U+180E MONGOLIAN VOWEL SEPARATOR as \s; nothing else differs). */
#include "tok_internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <utf8proc.h>

const char tl_tok_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct TlPretok {
    int gpt2; /* the built-in scanner */
    pcre2_code *re;
    pcre2_match_data *md;
    int jit;
};

enum { C_O = 0, C_L = 1, C_N = 2, C_S = 3 };

static int is_white_space(int32_t c) {
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static uint8_t class_of_slow(int32_t c) {
    if (c < 0) return C_O;
    if (is_white_space(c)) return C_S;
    utf8proc_category_t k = utf8proc_category(c);
    if (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) return C_L;
    if (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO) return C_N;
    return C_O;
}

/* Classes of the Basic Multilingual Plane, built once. */
static uint8_t bmp_class[0x10000];
static pthread_once_t bmp_once = PTHREAD_ONCE_INIT;
static void bmp_init(void) {
    for (int32_t c = 0; c < 0x10000; c++) bmp_class[c] = class_of_slow(c);
}

static inline uint8_t class_of(int32_t c) {
    if (c >= 0 && c < 0x10000) return bmp_class[c];
    return class_of_slow(c);
}

size_t tl_utf8_next(const uint8_t *s, size_t n, size_t i, int32_t *cp) {
    uint8_t b = s[i];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t len;
    int32_t c, min;
    if (b >= 0xC2 && b <= 0xDF) { len = 2; c = b & 0x1F; min = 0x80; }
    else if (b >= 0xE0 && b <= 0xEF) { len = 3; c = b & 0x0F; min = 0x800; }
    else if (b >= 0xF0 && b <= 0xF4) { len = 4; c = b & 0x07; min = 0x10000; }
    else { *cp = -1; return 1; }
    if (n - i < len) { *cp = -1; return 1; }
    for (size_t k = 1; k < len; k++) {
        uint8_t x = s[i + k];
        if ((x & 0xC0) != 0x80) { *cp = -1; return 1; }
        c = (c << 6) | (x & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) { *cp = -1; return 1; }
    *cp = c;
    return len;
}

/* Class and length of the character at s[i]. ASCII takes the first branch. */
static inline uint8_t next_class(const uint8_t *s, size_t n, size_t i, size_t *len) {
    uint8_t b = s[i];
    if (b < 0x80) {
        *len = 1;
        return bmp_class[b];
    }
    int32_t c;
    *len = tl_utf8_next(s, n, i, &c);
    return class_of(c);
}

/* The class table must be built: tl_pretok_new has run (every BPE tokenizer holds one). */
size_t tl_pretok_gpt2_next(const uint8_t *s, size_t n, size_t i) {
    uint8_t b = s[i];
    /* 's 't 're 've 'm 'll 'd */
    if (b == '\'' && n - i >= 2) {
        uint8_t c = s[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
        if (n - i >= 3) {
            uint8_t d = s[i + 2];
            if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l'))
                return i + 3;
        }
    }
    size_t len, j;
    uint8_t k;
    /* " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": a space joins a following run. */
    if (b == ' ' && n - i >= 2) {
        k = next_class(s, n, i + 1, &len);
        if (k != C_S) {
            j = i + 1 + len;
            goto run;
        }
    }
    k = next_class(s, n, i, &len);
    j = i + len;
    if (k != C_S) goto run;
    /* White space: "\s+(?!\S)" keeps back the last character of a run that a non-space
     * follows, when the run has more than one; otherwise "\s+" takes the run. */
    {
        size_t last = i;
        while (j < n) {
            size_t l2;
            if (next_class(s, n, j, &l2) != C_S) break;
            last = j;
            j += l2;
        }
        if (j == n || last == i) return j;
        return last;
    }
run:
    if (k == C_L) {
        /* Letters: ASCII letters inline, the rest through the table. */
        while (j < n) {
            uint8_t c = s[j];
            if (c < 0x80) {
                if ((uint8_t)((c | 0x20) - 'a') < 26) { j++; continue; }
                break;
            }
            size_t l2;
            if (next_class(s, n, j, &l2) != C_L) break;
            j += l2;
        }
        return j;
    }
    while (j < n) {
        size_t l2;
        if (next_class(s, n, j, &l2) != k) break;
        j += l2;
    }
    return j;
}

TlPretok *tl_pretok_new(const char *pattern, int force_pcre, char *err, size_t errlen) {
    pthread_once(&bmp_once, bmp_init);
    TlPretok *p = calloc(1, sizeof *p);
    if (!p) {
        tl_tok_errf(err, errlen, "pre-tokenizer: out of memory");
        return NULL;
    }
    int builtin = !pattern || strcmp(pattern, "gpt2") == 0;
    if (builtin && !force_pcre) {
        p->gpt2 = 1;
        return p;
    }
    const char *pat = builtin ? tl_tok_gpt2_pattern : pattern;
    int ec;
    PCRE2_SIZE eo;
    p->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        tl_tok_errf(err, errlen, "pattern /%s/: error at offset %zu: %s", pat, (size_t)eo,
                    (char *)msg);
        free(p);
        return NULL;
    }
    p->jit = pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE) == 0;
    p->md = pcre2_match_data_create_from_pattern(p->re, NULL);
    if (!p->md) {
        pcre2_code_free(p->re);
        free(p);
        tl_tok_errf(err, errlen, "pre-tokenizer: out of memory");
        return NULL;
    }
    return p;
}

void tl_pretok_free(TlPretok *p) {
    if (!p) return;
    if (p->md) pcre2_match_data_free(p->md);
    if (p->re) pcre2_code_free(p->re);
    free(p);
}

int tl_pretok_is_gpt2(const TlPretok *p) { return p->gpt2; }

int tl_pretok_split(TlPretok *p, const void *sv, size_t n, TlPieceFn fn, void *ud, char *err,
                    size_t errlen) {
    const uint8_t *s = sv;
    int rc;
    if (p->gpt2) {
        for (size_t i = 0; i < n;) {
            size_t j = tl_pretok_gpt2_next(s, n, i);
            if ((rc = fn(ud, s + i, j - i))) return rc;
            i = j;
        }
        return 0;
    }
    size_t gap = 0, pos = 0;
    while (pos < n) {
        int m = p->jit ? pcre2_jit_match(p->re, s, n, pos, 0, p->md, NULL)
                       : pcre2_match(p->re, s, n, pos, 0, p->md, NULL);
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            tl_tok_errf(err, errlen, "pre-tokenizer: match error at byte %zu: %s", pos,
                        (char *)msg);
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* empty match: step over one character, keep it in the gap */
            if (ms >= n) break;
            int32_t cp;
            pos = ms + tl_utf8_next(s, n, ms, &cp);
            continue;
        }
        if (ms > gap && (rc = fn(ud, s + gap, ms - gap))) return rc;
        if ((rc = fn(ud, s + ms, me - ms))) return rc;
        gap = pos = me;
    }
    if (gap < n && (rc = fn(ud, s + gap, n - gap))) return rc;
    return 0;
}
