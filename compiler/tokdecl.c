/* tokdecl.c — from a `tokenizer NAME = kind(args)` declaration to a runtime tokenizer.
 *
 *   decl   = "tokenizer" NAME "=" kind "(" [ arg { "," arg } ] ")"
 *   kind   = "bytes" | "chars" | "bpe" | "wordpiece"
 *   arg    = literal | NAME "=" literal          (positional: chars only)
 *   literal= STRING | INT | BOOL | "[" STRING { "," STRING } "]"
 *
 * Sema has already checked the kind and the keyword names; here the values are read as
 * literals and handed to runtime/tok.h. */
#include "tokdecl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "diag.h"
#include "source.h"

typedef struct {
    const char *dir; /* of the main .tl file, for relative paths ("" = cwd) */
    char *err;
    size_t errlen;
} Ctx;

/* Reports msg at loc (diag.h) and copies "file:line:col: msg" into err. */
__attribute__((format(printf, 3, 4)))
static void fail(Ctx *c, TlLoc loc, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* runtime messages read "path: error: what"; one "error:" per line is enough */
    char *e = strstr(msg, ": error: ");
    if (e) memmove(e + 1, e + 8, strlen(e + 8) + 1);
    tl_error(loc, "%s", msg);
    if (c->errlen)
        snprintf(c->err, c->errlen, "%s:%d:%d: error: %s", tl_source_path(loc.file), loc.line,
                 loc.col, msg);
}

/* ---- arguments ------------------------------------------------------------------------ */

typedef struct {
    TlNode *kw[16];   /* TL_N_KWARG nodes */
    int nkw;
    TlNode *pos;      /* the first positional argument (chars only) */
} Args;

static TlNode *arg(const Args *a, const char *name) {
    for (int i = 0; i < a->nkw; i++)
        if (a->kw[i]->name && strcmp(a->kw[i]->name, name) == 0) return a->kw[i]->a;
    return NULL;
}

/* Each reader: 1 = present and read, 0 = absent, -1 = present but not that literal. */
static int arg_str(Ctx *c, const Args *a, const char *name, const char **s) {
    TlNode *v = arg(a, name);
    if (!v) return 0;
    if (v->kind != TL_N_STRING || !v->str) {
        fail(c, v->loc, "%s = ...: expected a string literal", name);
        return -1;
    }
    if (strlen(v->str) != v->slen) {
        fail(c, v->loc, "%s = ...: a NUL character is not allowed here", name);
        return -1;
    }
    *s = v->str;
    return 1;
}

static int arg_int(Ctx *c, const Args *a, const char *name, int64_t *x) {
    TlNode *v = arg(a, name);
    if (!v) return 0;
    if (v->kind != TL_N_INT) {
        fail(c, v->loc, "%s = ...: expected an integer literal", name);
        return -1;
    }
    *x = v->ival;
    return 1;
}

static int arg_bool(Ctx *c, const Args *a, const char *name, int *x) {
    TlNode *v = arg(a, name);
    if (!v) return 0;
    if (v->kind != TL_N_BOOL) {
        fail(c, v->loc, "%s = ...: expected true or false", name);
        return -1;
    }
    *x = (int)v->ival;
    return 1;
}

/* A list of string literals (or one string) as a NULL-terminated malloc'd array. */
static int arg_strlist(Ctx *c, const Args *a, const char *name, const char ***out) {
    TlNode *v = arg(a, name);
    *out = NULL;
    if (!v) return 0;
    TlNode *one[1] = {v};
    TlNode **items = one;
    int n = 1;
    if (v->kind == TL_N_LIST) items = v->list.v, n = v->list.n;
    const char **r = calloc((size_t)n + 1, sizeof *r);
    if (!r) {
        fail(c, v->loc, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        TlNode *s = items[i];
        if (!s || s->kind != TL_N_STRING || !s->str) {
            fail(c, s ? s->loc : v->loc, "%s = [...]: expected a list of string literals", name);
            free(r);
            return -1;
        }
        if (!s->slen || strlen(s->str) != s->slen) {
            fail(c, s->loc, "%s = [...]: a special token is a non-empty string without NUL",
                 name);
            free(r);
            return -1;
        }
        r[i] = s->str;
    }
    *out = r;
    return 1;
}

/* path relative to the .tl file's directory (absolute paths stay). malloc'd. */
static char *resolve(const Ctx *c, const char *path) {
    size_t n = strlen(c->dir) + strlen(path) + 2;
    char *r = malloc(n);
    if (!r) return NULL;
    if (path[0] == '/' || !c->dir[0]) snprintf(r, n, "%s", path);
    else snprintf(r, n, "%s/%s", c->dir, path);
    return r;
}

/* Rejects arguments that are known to sema but that this builder does not implement. */
static int reject(Ctx *c, const Args *a, const char *kind, const char *name, const char *why) {
    TlNode *v = arg(a, name);
    if (!v) return 0;
    fail(c, v->loc, "%s(%s = ...) is not supported: %s", kind, name, why);
    return -1;
}

static int add_specials(Ctx *c, TlTokenizer *t, const Args *a) {
    const char **sp;
    int r = arg_strlist(c, a, "special", &sp);
    if (r <= 0) return r;
    char e[512];
    for (int i = 0; sp[i]; i++)
        if (tl_tok_add_special(t, sp[i], -1, e, sizeof e)) {
            fail(c, arg(a, "special")->loc, "%s", e);
            free(sp);
            return -1;
        }
    free(sp);
    return 0;
}

/* ---- kinds ---------------------------------------------------------------------------- */

static TlTokenizer *build_chars(Ctx *c, const Args *a, TlLoc loc) {
    if (reject(c, a, "chars", "unk", "a character vocabulary has no unknown token")) return NULL;
    TlNode *v = a->pos ? a->pos : arg(a, "alphabet");
    if (!v && arg(a, "train")) {
        /* chars(train = "corpus"): the vocabulary is every character of the data */
        const char *data;
        if (arg_str(c, a, "train", &data) < 0) return NULL;
        char *path = resolve(c, data), e[1024];
        TlCorpus *corpus = NULL;
        TlTokenizer *t = NULL;
        if (!path) fail(c, loc, "out of memory");
        else if (tl_data_load(path, &corpus, e, sizeof e)) fail(c, arg(a, "train")->loc, "%s", e);
        else if (!(t = tl_tok_chars_new(corpus->bytes, corpus->n, e, sizeof e))) fail(c, arg(a, "train")->loc, "%s", e);
        tl_data_free(corpus);
        free(path);
        return t;
    }
    if (!v) {
        fail(c, loc, "chars(...) needs the alphabet or the data: chars(\"abc...\"), chars(alphabet = \"...\") or chars(train = \"corpus.txt\")");
        return NULL;
    }
    if (v->kind != TL_N_STRING || !v->str || !v->slen) {
        fail(c, v->loc, "chars(...): the alphabet is a non-empty string literal");
        return NULL;
    }
    char e[512];
    TlTokenizer *t = tl_tok_chars_new(v->str, v->slen, e, sizeof e);
    if (!t) fail(c, v->loc, "%s", e);
    return t;
}

static TlTokenizer *train_bpe(Ctx *c, const Args *a, const char *split, TlLoc loc) {
    const char *data;
    int64_t vocab = 0;
    if (arg_str(c, a, "train", &data) < 0) return NULL;
    int r = arg_int(c, a, "vocab_size", &vocab);
    if (r < 0) return NULL;
    if (r == 0) {
        fail(c, loc, "bpe(train = ...) needs vocab_size = N");
        return NULL;
    }
    if (vocab < 256 || vocab > INT32_MAX) {
        fail(c, arg(a, "vocab_size")->loc, "vocab_size = %lld: expected 256 to 2^31-1",
             (long long)vocab);
        return NULL;
    }
    const char **sp;
    if (arg_strlist(c, a, "special", &sp) < 0) return NULL;
    char *path = resolve(c, data), e[1024];
    TlCorpus *corpus = NULL;
    TlTokenizer *t = NULL;
    TlBpeTrainer *tr = NULL;
    if (!path) {
        fail(c, loc, "out of memory");
        goto done;
    }
    if (tl_data_load(path, &corpus, e, sizeof e)) {
        fail(c, arg(a, "train")->loc, "%s", e);
        goto done;
    }
    TlBpeTrainOpts o = {.vocab_size = (size_t)vocab, .pattern = split, .specials = sp};
    tr = tl_bpe_trainer_new(&o, e, sizeof e);
    if (!tr) {
        fail(c, loc, "%s", e);
        goto done;
    }
    for (int i = 0; i < corpus->nfiles; i++) {
        size_t lo = corpus->offsets[i];
        size_t hi = i + 1 < corpus->nfiles ? corpus->offsets[i + 1] : corpus->n;
        if (tl_bpe_trainer_feed(tr, corpus->bytes + lo, hi - lo, e, sizeof e)) {
            fail(c, arg(a, "train")->loc, "%s: %s", corpus->files[i], e);
            goto done;
        }
    }
    t = tl_bpe_trainer_finish(tr, e, sizeof e);
    if (!t) fail(c, loc, "%s", e);
done:
    tl_bpe_trainer_free(tr);
    tl_data_free(corpus);
    free(path);
    free(sp);
    return t;
}

static TlTokenizer *build_bpe(Ctx *c, const Args *a, TlLoc loc) {
    if (reject(c, a, "bpe", "lowercase", "byte-level BPE keeps the text as it is")) return NULL;
    const char *split = NULL, *merges = NULL, *vocab = NULL, *data = NULL;
    if (arg_str(c, a, "split", &split) < 0) return NULL;
    if (split && !*split) {
        fail(c, arg(a, "split")->loc, "split = \"\": give \"gpt2\" or a regex");
        return NULL;
    }
    if (arg_str(c, a, "train", &data) < 0) return NULL;
    if (data) {
        TlNode *x = arg(a, "merges") ? arg(a, "merges") : arg(a, "vocab");
        if (x) {
            fail(c, x->loc, "bpe(train = ...) learns its merges; drop merges/vocab or train");
            return NULL;
        }
        return train_bpe(c, a, split, loc);
    }
    if (arg(a, "vocab_size")) {
        fail(c, arg(a, "vocab_size")->loc, "vocab_size goes with train = ...; merges and "
             "vocab files fix the vocabulary");
        return NULL;
    }
    if (arg_str(c, a, "merges", &merges) < 0 || arg_str(c, a, "vocab", &vocab) < 0)
        return NULL;
    if (!merges || !vocab) {
        fail(c, loc, "bpe(...) needs merges = \"vocab.bpe\" and vocab = \"encoder.json\" "
             "(GPT-2's files), or train = \"corpus\" and vocab_size = N");
        return NULL;
    }
    char *mp = resolve(c, merges), *vp = resolve(c, vocab), e[1024];
    TlTokenizer *t = NULL;
    if (!mp || !vp) {
        fail(c, loc, "out of memory");
    } else if (!(t = tl_tok_gpt2_load(vp, mp, e, sizeof e))) {
        /* point at the file the message names */
        TlNode *at = strstr(e, mp) ? arg(a, "merges") : arg(a, "vocab");
        fail(c, at->loc, "%s", e);
    } else if (split && strcmp(split, "gpt2") != 0 &&
               strcmp(split, tl_tok_gpt2_pattern) != 0 &&
               tl_tok_set_pattern(t, split, e, sizeof e)) {
        fail(c, arg(a, "split")->loc, "%s", e);
        tl_tok_free(t);
        t = NULL;
    } else if (add_specials(c, t, a)) {
        tl_tok_free(t);
        t = NULL;
    }
    free(mp);
    free(vp);
    return t;
}

static TlTokenizer *build_wordpiece(Ctx *c, const Args *a, TlLoc loc) {
    if (reject(c, a, "wordpiece", "train", "train a BPE tokenizer, or give a vocab.txt") ||
        reject(c, a, "wordpiece", "vocab_size", "the vocab.txt fixes the vocabulary"))
        return NULL;
    const char *vocab = NULL, *unk = NULL;
    int lower = 1, strip = -1;
    if (arg_str(c, a, "vocab", &vocab) < 0 || arg_str(c, a, "unk", &unk) < 0 ||
        arg_bool(c, a, "lowercase", &lower) < 0 || arg_bool(c, a, "strip_accents", &strip) < 0)
        return NULL;
    if (!vocab) {
        fail(c, loc, "wordpiece(...) needs vocab = \"vocab.txt\"");
        return NULL;
    }
    /* BERT's default ties the two (strip_accents follows lowercase); the engine does too. */
    if (strip >= 0 && strip != lower) {
        fail(c, arg(a, "strip_accents")->loc, "strip_accents = %s with lowercase = %s is not "
             "supported: accents are stripped exactly when lower-casing (BERT's default)",
             strip ? "true" : "false", lower ? "true" : "false");
        return NULL;
    }
    char *vp = resolve(c, vocab), e[1024];
    TlTokenizer *t = NULL;
    TlWordPieceOpts o = {.lowercase = lower, .unk = unk};
    if (!vp) fail(c, loc, "out of memory");
    else if (!(t = tl_tok_wordpiece_load(vp, &o, e, sizeof e))) fail(c, arg(a, "vocab")->loc, "%s", e);
    else if (add_specials(c, t, a)) {
        tl_tok_free(t);
        t = NULL;
    }
    free(vp);
    return t;
}

/* ---- entry ---------------------------------------------------------------------------- */

TlTokenizer *tl_tokdecl_build(TlProgram *prog, const char *name, char *err, size_t errlen) {
    if (errlen) err[0] = 0;
    TlNode *decl = NULL;
    TlModule *m = prog && prog->nmodules > 0 ? prog->modules[0] : NULL;
    if (m && m->ast && m->ast->root)
        for (int i = 0; i < m->ast->root->list.n; i++) {
            TlNode *it = m->ast->root->list.v[i];
            if (it && it->kind == TL_N_TOKENIZER && it->name && strcmp(it->name, name) == 0)
                decl = it;
        }
    if (!decl) {
        if (errlen)
            snprintf(err, errlen, "%s: error: no tokenizer named '%s' is declared there",
                     m && m->path ? m->path : "(program)", name);
        return NULL;
    }
    char dir[4096] = "";
    const char *path = m->path ? m->path : "";
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) ? (int)(slash - path) : 1, path);
    Ctx c = {dir, err, errlen};

    TlNode *v = decl->a;
    TlNode *callee = v && v->kind == TL_N_CALL ? v->a : v;
    if (!callee || callee->kind != TL_N_IDENT || !callee->name) {
        fail(&c, v ? v->loc : decl->loc, "a tokenizer is bytes(), chars(...), bpe(...) or "
             "wordpiece(...)");
        return NULL;
    }
    Args a = {0};
    for (int i = 0; v->kind == TL_N_CALL && i < v->list.n; i++) {
        TlNode *x = v->list.v[i];
        if (!x) continue;
        if (x->kind != TL_N_KWARG) {
            if (a.pos || strcmp(callee->name, "chars") != 0) {
                fail(&c, x->loc, "'%s' takes keyword arguments only", callee->name);
                return NULL;
            }
            a.pos = x;
        } else if (arg(&a, x->name ? x->name : "")) {
            fail(&c, x->loc, "'%s' is given twice", x->name);
            return NULL;
        } else if (a.nkw == (int)(sizeof a.kw / sizeof *a.kw)) {
            fail(&c, x->loc, "too many arguments");
            return NULL;
        } else {
            a.kw[a.nkw++] = x;
        }
    }
    const char *k = callee->name;
    if (!strcmp(k, "bytes")) {
        if (a.nkw || a.pos) {
            fail(&c, v->loc, "'bytes' takes no arguments");
            return NULL;
        }
        return tl_tok_bytes_new();
    }
    if (!strcmp(k, "chars")) return build_chars(&c, &a, v->loc);
    if (!strcmp(k, "bpe")) return build_bpe(&c, &a, v->loc);
    if (!strcmp(k, "wordpiece")) return build_wordpiece(&c, &a, v->loc);
    fail(&c, callee->loc, "unknown tokenizer kind '%s' (expected bytes, chars, bpe or wordpiece)",
         k);
    return NULL;
}
