/* tok_io.c — writing BPE tokenizers: GPT-2's encoder.json + vocab.bpe, and a Hugging Face
 * tokenizer.json. Both atomically (fsutil: temp file, fsync, rename).
 *
 * encoder.json is written as OpenAI wrote it (Python's json.dumps: ", " and ": ", non-ASCII
 * as \uXXXX), so saving the GPT-2 tokenizer reproduces its files byte for byte. */
#include "tok_internal.h"

#include <stdlib.h>

#include "fsutil.h"

/* A JSON string of the UTF-8 text s; ascii selects \uXXXX for every non-ASCII character. */
static void put_json_str(FILE *f, const uint8_t *s, size_t n, int ascii) {
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t l = tl_utf8_next(s, n, i, &cp);
        if (cp < 0) cp = 0xFFFD;
        if (cp == '"') fputs("\\\"", f);
        else if (cp == '\\') fputs("\\\\", f);
        else if (cp == '\n') fputs("\\n", f);
        else if (cp == '\t') fputs("\\t", f);
        else if (cp == '\r') fputs("\\r", f);
        else if (cp < 0x20) fprintf(f, "\\u%04x", (unsigned)cp);
        else if (cp < 0x80) fputc(cp, f);
        else if (!ascii && s[i] >= 0x80 && l > 1) fwrite(s + i, 1, l, f);
        else if (cp < 0x10000) fprintf(f, "\\u%04x", (unsigned)cp);
        else {
            unsigned v = (unsigned)cp - 0x10000;
            fprintf(f, "\\ud%03x\\ud%03x", 0x800 | (v >> 10), 0xC00 | (v & 0x3FF));
        }
        i += l;
    }
    fputc('"', f);
}

/* The GPT-2 spelling of token id (each byte as its printable stand-in), UTF-8. */
static size_t spell(const TlTokenizer *t, int32_t id, uint8_t *buf, size_t cap) {
    const uint8_t *s = t->blob + t->tok_off[id];
    size_t n = t->tok_len[id], o = 0;
    for (size_t i = 0; i < n && o + 2 <= cap; i++) {
        int cp = tl_gpt2_byte_cp(s[i]);
        if (cp < 0x80) {
            buf[o++] = (uint8_t)cp;
        } else {
            buf[o++] = (uint8_t)(0xC0 | (cp >> 6));
            buf[o++] = (uint8_t)(0x80 | (cp & 0x3F));
        }
    }
    return o;
}

static int check_bpe(const TlTokenizer *t, const char *path, char *err, size_t errlen) {
    if (t->kind != TL_TOK_BPE) {
        tl_tok_errf(err, errlen, "%s: error: only BPE tokenizers can be written in this format",
                    path);
        return -1;
    }
    return 0;
}

static int is_special(const TlTokenizer *t, int32_t id) {
    for (size_t k = 0; k < t->nspecial; k++)
        if (t->special_id[k] == id) return 1;
    return 0;
}

/* Tokens are spelled GPT-2 style, except specials, which are written as they are. */
static void put_token(FILE *f, const TlTokenizer *t, int32_t id, int ascii, uint8_t *buf,
                      size_t cap) {
    if (is_special(t, id)) {
        put_json_str(f, t->blob + t->tok_off[id], t->tok_len[id], ascii);
    } else {
        size_t n = spell(t, id, buf, cap);
        put_json_str(f, buf, n, ascii);
    }
}

static uint8_t *spell_buf(const TlTokenizer *t, size_t *cap) {
    size_t m = 16;
    for (uint32_t i = 0; i < t->nvocab; i++)
        if (t->tok_len[i] * 2 + 16 > m) m = t->tok_len[i] * 2 + 16;
    *cap = m;
    return malloc(m);
}

int tl_tok_save_gpt2(const TlTokenizer *t, const char *dir, char *err, size_t errlen) {
    if (check_bpe(t, dir, err, errlen)) return -1;
    size_t plen = strlen(dir) + 32, cap;
    char *path = malloc(plen);
    uint8_t *buf = spell_buf(t, &cap);
    TlAtomicFile a;
    if (!path || !buf) {
        free(path);
        free(buf);
        tl_tok_errf(err, errlen, "%s: error: out of memory", dir);
        return -1;
    }
    snprintf(path, plen, "%s/encoder.json", dir);
    if (tl_fs_atomic_begin(&a, path, err, errlen)) goto fail;
    fputc('{', a.f);
    for (uint32_t id = 0; id < t->nvocab; id++) {
        if (id) fputs(", ", a.f);
        put_token(a.f, t, (int32_t)id, 1, buf, cap);
        fprintf(a.f, ": %u", id);
    }
    fputc('}', a.f);
    if (tl_fs_atomic_commit(&a, err, errlen)) goto fail;
    snprintf(path, plen, "%s/vocab.bpe", dir);
    if (tl_fs_atomic_begin(&a, path, err, errlen)) goto fail;
    fputs("#version: 0.2\n", a.f);
    for (size_t k = 0; k < t->nmerges; k++) {
        size_t n = spell(t, t->merges[k][0], buf, cap);
        fwrite(buf, 1, n, a.f);
        fputc(' ', a.f);
        n = spell(t, t->merges[k][1], buf, cap);
        fwrite(buf, 1, n, a.f);
        fputc('\n', a.f);
    }
    if (tl_fs_atomic_commit(&a, err, errlen)) goto fail;
    free(path);
    free(buf);
    return 0;
fail:
    free(path);
    free(buf);
    return -1;
}

int tl_tok_save_hf(const TlTokenizer *t, const char *path, char *err, size_t errlen) {
    if (check_bpe(t, path, err, errlen)) return -1;
    size_t cap;
    uint8_t *buf = spell_buf(t, &cap);
    if (!buf) {
        tl_tok_errf(err, errlen, "%s: error: out of memory", path);
        return -1;
    }
    TlAtomicFile a;
    if (tl_fs_atomic_begin(&a, path, err, errlen)) {
        free(buf);
        return -1;
    }
    FILE *f = a.f;
    fputs("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
          "  \"added_tokens\": [", f);
    for (size_t k = 0; k < t->nspecial; k++) {
        int32_t id = t->special_id[k];
        fprintf(f, "%s\n    {\"id\": %d, \"content\": ", k ? "," : "", (int)id);
        put_json_str(f, t->blob + t->tok_off[id], t->tok_len[id], 0);
        fputs(", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "
              "\"normalized\": false, \"special\": true}", f);
    }
    fputs(t->nspecial ? "\n  ],\n" : "],\n", f);
    fputs("  \"normalizer\": null,\n", f);
    const char *bl = "\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
                     "\"trim_offsets\": true, \"use_regex\": ";
    if (!t->pattern) {
        fprintf(f, "  \"pre_tokenizer\": {%strue},\n", bl);
    } else {
        fputs("  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [\n"
              "    {\"type\": \"Split\", \"pattern\": {\"Regex\": ", f);
        put_json_str(f, (const uint8_t *)t->pattern, strlen(t->pattern), 0);
        fprintf(f, "}, \"behavior\": \"Isolated\", \"invert\": false},\n    {%sfalse}]},\n", bl);
    }
    fputs("  \"post_processor\": null,\n", f);
    fprintf(f, "  \"decoder\": {%strue},\n", bl);
    fputs("  \"model\": {\n    \"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
          "\"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, "
          "\"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": false,\n"
          "    \"vocab\": {", f);
    int first = 1;
    for (uint32_t id = 0; id < t->nvocab; id++) {
        if (is_special(t, (int32_t)id)) continue;
        fputs(first ? "\n      " : ",\n      ", f);
        first = 0;
        put_token(f, t, (int32_t)id, 0, buf, cap);
        fprintf(f, ": %u", id);
    }
    fputs("\n    },\n    \"merges\": [", f);
    for (size_t k = 0; k < t->nmerges; k++) {
        fputs(k ? ",\n      [" : "\n      [", f);
        put_token(f, t, t->merges[k][0], 0, buf, cap);
        fputs(", ", f);
        put_token(f, t, t->merges[k][1], 0, buf, cap);
        fputc(']', f);
    }
    fputs("\n    ]\n  }\n}\n", f);
    free(buf);
    return tl_fs_atomic_commit(&a, err, errlen);
}
