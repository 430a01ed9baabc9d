/* cmd_tokenizer.c — `tlc tokenizer train|encode|decode`, over runtime/tok.h. */
#include "cmd_tokenizer.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diag.h"
#include "sema.h"
#include "tok.h"
#include "tokdecl.h"

static const char usage_text[] =
    "usage: tlc tokenizer train --vocab-size N --out DIR [--pattern gpt2|REGEX]\n"
    "                           [--special TOKEN]... [--hf-ties] FILES...\n"
    "       tlc tokenizer encode TOKENIZER [FILE|-]   print token ids, space-separated\n"
    "       tlc tokenizer decode TOKENIZER [FILE|-]   read ids, write the bytes\n"
    "TOKENIZER is one of\n"
    "  --gpt2 DIR              DIR/encoder.json and DIR/vocab.bpe (GPT-2's format)\n"
    "  --wordpiece VOCAB       a BERT vocab.txt (uncased: lower-case, strip accents)\n"
    "  --wordpiece-cased VOCAB a BERT vocab.txt, case kept\n"
    "  --bytes                 the 256 byte values\n"
    "  --tokenizer FILE.tl:NAME  the tokenizer NAME declared in FILE.tl (bytes, chars, bpe\n"
    "                          from GPT-2 files or trained at load, wordpiece)\n"
    "--hf-ties breaks count ties as Hugging Face's BpeTrainer (same merges as HF).\n"
    "train writes DIR/encoder.json, DIR/vocab.bpe and DIR/tokenizer.json (Hugging Face).\n"
    "Exit status: 0 ok, 1 bad input, 2 usage.\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "tlc tokenizer: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (tlc tokenizer --help)\n");
    return 2;
}

/* Reads a whole file ("-" = standard input); NULL with a message on stderr. */
static char *read_all(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: error: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        char *b = realloc(buf, cap + 1);
        if (!b) free(buf);
        buf = b;
    }
    int bad = ferror(f);
    if (f != stdin) fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "%s: error: %s\n", path, bad ? "read failed" : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* ---- train ---------------------------------------------------------------------------- */

typedef struct { int tty; int last; } Progress;

static void progress(void *ud, size_t done, size_t total) {
    Progress *p = ud;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (pct > 100) pct = 100;
    if (p->tty && pct == p->last && done < total) return;
    if (p->tty) {
        char bar[41];
        int fill = pct * 40 / 100;
        for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
        bar[40] = 0;
        fprintf(stderr, "\rmerges [%s] %3d%% %zu/%zu", bar, pct, done, total);
        if (done >= total && p->last != 100) fputc('\n', stderr);
    } else if (pct / 10 != p->last / 10 || (done >= total && p->last != 100)) {
        fprintf(stderr, "merges %zu/%zu (%d%%)\n", done, total, pct);
    }
    p->last = pct;
}

static int cmd_train(int argc, char **argv) {
    size_t vocab = 0;
    const char *out = NULL, *pattern = NULL;
    const char **specials = calloc((size_t)argc + 1, sizeof *specials);
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    int nspec = 0, nfiles = 0, rc = 2, hf_ties = 0;
    if (!specials || !files) {
        fprintf(stderr, "tlc tokenizer: error: out of memory\n");
        rc = 1;
        goto done;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--vocab-size")) {
            char *end;
            if (!has) { rc = usage_error("%s needs a number", a); goto done; }
            errno = 0;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (*end || end == argv[i] || errno || v < 256 || v > INT32_MAX) {
                rc = usage_error("--vocab-size: '%s' is not a number from 256 to 2^31-1",
                                 argv[i]);
                goto done;
            }
            vocab = (size_t)v;
        } else if (!strcmp(a, "--out")) {
            if (!has) { rc = usage_error("%s needs a directory", a); goto done; }
            out = argv[++i];
        } else if (!strcmp(a, "--pattern")) {
            if (!has) { rc = usage_error("%s needs gpt2 or a regex", a); goto done; }
            pattern = argv[++i];
        } else if (!strcmp(a, "--hf-ties")) {
            hf_ties = 1;
        } else if (!strcmp(a, "--special")) {
            if (!has || !*argv[i + 1]) { rc = usage_error("%s needs a token", a); goto done; }
            specials[nspec++] = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            rc = usage_error("train: unknown flag '%s'", a);
            goto done;
        } else {
            files[nfiles++] = a;
        }
    }
    if (!vocab) { rc = usage_error("train needs --vocab-size N%s", ""); goto done; }
    if (!out) { rc = usage_error("train needs --out DIR%s", ""); goto done; }
    if (!nfiles) { rc = usage_error("train needs input FILES%s", ""); goto done; }
    rc = 1;
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: error: cannot create the directory: %s\n", out, strerror(errno));
        goto done;
    }
    Progress pr = {isatty(2), -1};
    TlBpeTrainOpts o = {.vocab_size = vocab, .pattern = pattern,
                        .specials = nspec ? specials : NULL, .hf_ties = hf_ties,
                        .progress = progress,
                        .progress_ud = &pr};
    char err[1024];
    TlBpeTrainer *tr = tl_bpe_trainer_new(&o, err, sizeof err);
    if (!tr) {
        fprintf(stderr, "tlc tokenizer: error: %s\n", err);
        rc = strstr(err, "pattern") || strstr(err, "vocabulary size") ? 2 : 1;
        goto done;
    }
    for (int i = 0; i < nfiles; i++) {
        size_t n;
        char *text = read_all(files[i], &n);
        if (!text) { tl_bpe_trainer_free(tr); goto done; }
        int bad = tl_bpe_trainer_feed(tr, text, n, err, sizeof err);
        free(text);
        if (bad) {
            fprintf(stderr, "%s: error: %s\n", files[i], err);
            tl_bpe_trainer_free(tr);
            goto done;
        }
    }
    TlTokenizer *t = tl_bpe_trainer_finish(tr, err, sizeof err);
    tl_bpe_trainer_free(tr);
    if (!t) {
        fprintf(stderr, "tlc tokenizer: error: %s\n", err);
        goto done;
    }
    size_t plen = strlen(out) + 32;
    char *hf = malloc(plen);
    if (hf) snprintf(hf, plen, "%s/tokenizer.json", out);
    if (!hf || tl_tok_save_gpt2(t, out, err, sizeof err) || tl_tok_save_hf(t, hf, err, sizeof err)) {
        fprintf(stderr, "%s\n", hf ? err : "tlc tokenizer: error: out of memory");
    } else {
        fprintf(stderr, "wrote %s/encoder.json, vocab.bpe, tokenizer.json (%zu tokens)\n", out,
                tl_tok_vocab_size(t));
        rc = 0;
    }
    free(hf);
    tl_tok_free(t);
done:
    free(specials);
    free(files);
    return rc;
}

/* ---- encode / decode ---------------------------------------------------------------- */

/* `--tokenizer FILE.tl:NAME`: checks FILE.tl (stdlib from $TL_STDLIB or next to tlc) and
 * builds its tokenizer NAME (compiler/tokdecl.h). Errors were printed; *rc set. */
static TlTokenizer *open_declared(const char *spec, int *rc) {
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1]) {
        usage_error("--tokenizer wants FILE.tl:NAME, not '%s'", spec);
        *rc = 2;
        return NULL;
    }
    char *path = strndup(spec, (size_t)(colon - spec)), err[1024];
    *rc = 1;
    if (!path) {
        fprintf(stderr, "tlc tokenizer: error: out of memory\n");
        return NULL;
    }
    int before = tl_diag_error_count();
    TlProgram *prog = tl_sema_check_file(path, NULL);
    TlTokenizer *t = NULL;
    if (tl_diag_error_count() == before) {
        t = tl_tokdecl_build(prog, colon + 1, err, sizeof err);
        /* declaration errors went through diag.h; only a missing NAME has no location */
        if (!t && tl_diag_error_count() == before) fprintf(stderr, "%s\n", err);
    }
    tl_program_free(prog);
    free(path);
    return t;
}

/* Parses the tokenizer flags at argv[2..]; *input = the file operand. NULL and *rc set on
 * error. */
static TlTokenizer *open_tokenizer(int argc, char **argv, const char **input, int *rc) {
    TlTokenizer *t = NULL;
    const char *in = NULL;
    char err[1024];
    int kinds = 0;
    *rc = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--gpt2") || !strcmp(a, "--wordpiece") || !strcmp(a, "--wordpiece-cased") ||
            !strcmp(a, "--tokenizer")) {
            if (!has) { usage_error("%s needs a path", a); goto fail; }
            const char *path = argv[++i];
            if (kinds++) { usage_error("give one tokenizer (second: %s)", a); goto fail; }
            if (!strcmp(a, "--tokenizer")) {
                t = open_declared(path, rc);
                if (!t) goto fail;
                continue;
            }
            if (!strcmp(a, "--gpt2")) {
                t = tl_tok_gpt2_load_dir(path, err, sizeof err);
            } else {
                TlWordPieceOpts o = {.lowercase = strcmp(a, "--wordpiece") == 0};
                t = tl_tok_wordpiece_load(path, &o, err, sizeof err);
            }
            if (!t) {
                fprintf(stderr, "%s\n", err);
                *rc = 1;
                goto fail;
            }
        } else if (!strcmp(a, "--bytes")) {
            if (kinds++) { usage_error("give one tokenizer (second: %s)", a); goto fail; }
            t = tl_tok_bytes_new();
        } else if (a[0] == '-' && a[1]) {
            usage_error("unknown flag '%s'", a);
            goto fail;
        } else if (in) {
            usage_error("one input file only (second: %s)", a);
            goto fail;
        } else {
            in = a;
        }
    }
    if (!t) {
        usage_error("%s needs a tokenizer: --gpt2 DIR, --wordpiece VOCAB, --bytes or --tokenizer FILE.tl:NAME", argv[1]);
        goto fail;
    }
    *input = in ? in : "-";
    return t;
fail:
    tl_tok_free(t);
    return NULL;
}

static int cmd_encode(int argc, char **argv) {
    const char *in;
    int rc;
    TlTokenizer *t = open_tokenizer(argc, argv, &in, &rc);
    if (!t) return rc;
    size_t n;
    char *text = read_all(in, &n), err[1024];
    rc = 1;
    TlTokIds ids = {0};
    if (text && tl_tok_encode(t, text, n, &ids, err, sizeof err) == 0) {
        /* Hand-formatted: printf per id would dominate the time on big inputs. */
        char buf[1 << 16];
        size_t k = 0;
        for (size_t i = 0; i < ids.n; i++) {
            if (k > sizeof buf - 16) {
                fwrite(buf, 1, k, stdout);
                k = 0;
            }
            char tmp[12];
            int m = 0;
            uint32_t v = (uint32_t)ids.v[i];
            do tmp[m++] = (char)('0' + v % 10); while (v /= 10);
            while (m) buf[k++] = tmp[--m];
            buf[k++] = i + 1 < ids.n ? ' ' : '\n';
        }
        fwrite(buf, 1, k, stdout);
        rc = fflush(stdout) == 0 ? 0 : 1;
        if (rc) fprintf(stderr, "tlc tokenizer: error: writing the ids failed\n");
    } else if (text) {
        fprintf(stderr, "%s: error: %s\n", in, err);
    }
    tl_tok_ids_free(&ids);
    free(text);
    tl_tok_free(t);
    return rc;
}

static int cmd_decode(int argc, char **argv) {
    const char *in;
    int rc;
    TlTokenizer *t = open_tokenizer(argc, argv, &in, &rc);
    if (!t) return rc;
    size_t n;
    char *text = read_all(in, &n), err[1024];
    rc = 1;
    TlTokIds ids = {0};
    TlTokBytes out = {0};
    if (!text) goto done;
    for (char *p = text; *p;) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX ||
            (*end && *end != ' ' && *end != '\n' && *end != '\t' && *end != '\r' && *end != ',')) {
            int w = (int)strcspn(p, " \t\r\n,");
            fprintf(stderr, "%s: error: '%.*s' at byte %zu is not a token id\n", in,
                    w > 20 ? 20 : w, p, (size_t)(p - text));
            goto done;
        }
        int32_t id = (int32_t)v;
        if (ids.n == ids.cap) {
            size_t cap = ids.cap ? ids.cap * 2 : 4096;
            int32_t *nv = realloc(ids.v, cap * sizeof *nv);
            if (!nv) {
                fprintf(stderr, "tlc tokenizer: error: out of memory\n");
                goto done;
            }
            ids.v = nv;
            ids.cap = cap;
        }
        ids.v[ids.n++] = id;
        p = end;
    }
    if (tl_tok_decode(t, ids.v, ids.n, &out, err, sizeof err)) {
        fprintf(stderr, "%s: error: %s\n", in, err);
        goto done;
    }
    if (out.n) fwrite(out.p, 1, out.n, stdout);
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    tl_tok_ids_free(&ids);
    tl_tok_bytes_free(&out);
    free(text);
    tl_tok_free(t);
    return rc;
}

int tl_cmd_tokenizer(int argc, char **argv) {
    if (argc < 2) return usage_error("tokenizer needs an action: train, encode or decode%s", "");
    const char *a = argv[1];
    if (!strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
    if (!strcmp(a, "train")) return cmd_train(argc, argv);
    if (!strcmp(a, "encode")) return cmd_encode(argc, argv);
    if (!strcmp(a, "decode")) return cmd_decode(argc, argv);
    return usage_error("unknown action '%s' (train, encode or decode)", a);
}
