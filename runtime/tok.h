/* tok.h — tokenizer engines of the tl runtime: bytes, characters, byte-level BPE (GPT-2
 * files or trained here), WordPiece (BERT). The whole contract of the tokenizer module;
 * the implementation is split over tok.c (object, vocabulary, specials, dispatch),
 * tok_pretok.c (pre-tokenizers), tok_bpe.c (BPE encode, GPT-2 files, writers),
 * tok_train.c (BPE training) and tok_wordpiece.c.
 *
 *   char err[512];
 *   TlTokenizer *t = tl_tok_gpt2_load_dir("../shared/data/gpt2", err, sizeof err);
 *   if (!t) { fprintf(stderr, "%s\n", err); return 1; }
 *   TlTokIds ids = {0};
 *   tl_tok_encode(t, text, len, &ids, err, sizeof err);      // appends to ids
 *   TlTokBytes out = {0};
 *   tl_tok_decode(t, ids.v, ids.n, &out, err, sizeof err);   // appends to out
 *
 * Ids equal tiktoken's (GPT-2) and Hugging Face tokenizers' (WordPiece). Every function
 * that can fail returns NULL or -1 with a one-line message in err naming the file and what
 * is wrong; nothing here aborts or exits on bad input. A tokenizer keeps a cache of split
 * words, so encoding mutates it: use one tokenizer per thread.
 *
 * Link with -lpcre2-8 -lutf8proc -lcjson. */
#ifndef TL_TOK_H
#define TL_TOK_H
#include <stddef.h>
#include <stdint.h>

typedef struct TlTokenizer TlTokenizer;

typedef enum TlTokKind {
    TL_TOK_BYTES,     /* 256 ids, id = byte value */
    TL_TOK_CHARS,     /* one id per distinct character (UTF-8 code point) of some data */
    TL_TOK_BPE,       /* byte-level BPE, GPT-2 style */
    TL_TOK_WORDPIECE, /* BERT WordPiece with the BERT basic tokenizer in front */
} TlTokKind;

/* Growable outputs; zero-initialise, then free with the functions below. */
typedef struct TlTokIds { int32_t *v; size_t n, cap; } TlTokIds;
typedef struct TlTokBytes { uint8_t *p; size_t n, cap; } TlTokBytes;
void tl_tok_ids_free(TlTokIds *ids);
void tl_tok_bytes_free(TlTokBytes *b);

/* ---- construction ----------------------------------------------------------------- */
TlTokenizer *tl_tok_bytes_new(void);
/* Vocabulary = the distinct characters of text, sorted by their UTF-8 bytes; a byte that
 * is not part of valid UTF-8 is a character of its own. */
TlTokenizer *tl_tok_chars_new(const void *text, size_t n, char *err, size_t errlen);
/* GPT-2 files: encoder.json (token -> id, GPT-2's byte-to-unicode spelling) and vocab.bpe
 * (merges). The split pattern is GPT-2's (built-in fast scanner); "<|endoftext|>" is a
 * special token when the encoder has it. */
TlTokenizer *tl_tok_gpt2_load(const char *encoder_json, const char *vocab_bpe, char *err,
                              size_t errlen);
TlTokenizer *tl_tok_gpt2_load_dir(const char *dir, char *err, size_t errlen);

typedef struct TlWordPieceOpts {
    int lowercase;     /* lower-case and strip accents (BERT uncased); default 1 */
    int max_word_chars; /* longer words become [UNK]; default 100 */
    const char *unk;   /* default "[UNK]" */
    const char *prefix; /* continuation prefix; default "##" */
} TlWordPieceOpts;
/* BERT vocab.txt (one token a line, id = line number). opts may be NULL (uncased BERT).
 * [PAD] [UNK] [CLS] [SEP] [MASK], where the vocab has them, are special: matched in the raw
 * text before normalisation. Encoding adds no [CLS]/[SEP] around the text. */
TlTokenizer *tl_tok_wordpiece_load(const char *vocab_txt, const TlWordPieceOpts *opts,
                                   char *err, size_t errlen);

void tl_tok_free(TlTokenizer *t);

/* Pre-tokenizer of a BPE tokenizer: NULL or "gpt2" selects GPT-2's pattern on the built-in
 * scanner; anything else is a PCRE2 regex (UTF + UCP, JIT), whose matches are the pieces
 * (text between matches becomes a piece of its own, so nothing is ever dropped). */
int tl_tok_set_pattern(TlTokenizer *t, const char *pattern, char *err, size_t errlen);
/* A special token: matched verbatim in the text before pre-tokenization, never split.
 * id < 0 appends a new id at the end of the vocabulary; an existing id must hold the same
 * bytes (or be a fresh id == vocab size). */
int tl_tok_add_special(TlTokenizer *t, const char *s, int32_t id, char *err, size_t errlen);

/* ---- use ---------------------------------------------------------------------------- */
TlTokKind tl_tok_kind(const TlTokenizer *t);
size_t tl_tok_vocab_size(const TlTokenizer *t);
/* The bytes of token id (NULL if out of range). For WordPiece, the vocab.txt spelling. */
const uint8_t *tl_tok_token(const TlTokenizer *t, int32_t id, size_t *len);
/* The id of a token spelled by these bytes, or -1. */
int32_t tl_tok_lookup(const TlTokenizer *t, const void *s, size_t n);

/* Appends the ids of text[0..n) to out. 0, or -1 with a message (e.g. a character outside
 * a character vocabulary, out of memory). Byte-level BPE encodes any byte sequence. */
int tl_tok_encode(TlTokenizer *t, const void *text, size_t n, TlTokIds *out, char *err,
                  size_t errlen);
/* Appends the bytes of ids to out. WordPiece joins pieces BERT-style ("##" glued, words
 * separated by spaces). -1 with a message on an id out of range. */
int tl_tok_decode(const TlTokenizer *t, const int32_t *ids, size_t n, TlTokBytes *out,
                  char *err, size_t errlen);

/* ---- pre-tokenizers (exposed for tests and the CLI) --------------------------------- */
typedef struct TlPretok TlPretok;
/* pattern NULL or "gpt2": the built-in scanner, unless force_pcre, which compiles GPT-2's
 * pattern with PCRE2 instead (the oracle the scanner is tested against). */
TlPretok *tl_pretok_new(const char *pattern, int force_pcre, char *err, size_t errlen);
void tl_pretok_free(TlPretok *p);
/* Calls fn on every piece of s[0..n) in order; the pieces cover s exactly. Stops and
 * returns fn's value when it is non-zero; -1 with err on a regex matching error. */
typedef int (*TlPieceFn)(void *ud, const uint8_t *piece, size_t len);
int tl_pretok_split(TlPretok *p, const void *s, size_t n, TlPieceFn fn, void *ud, char *err,
                    size_t errlen);
/* GPT-2's pattern, as a PCRE2 / tiktoken regex. */
extern const char tl_tok_gpt2_pattern[];

/* ---- BPE training ------------------------------------------------------------------ */
/* The classic algorithm: word frequencies from the pre-tokenizer, pair counts over them,
 * repeatedly merge the most frequent pair, with incremental pair-count updates and a
 * max-heap with lazy deletion. Ties: the highest count wins, then the pair whose
 * (left bytes, right bytes) is lexicographically smallest (left compared first, as
 * unsigned bytes; a prefix sorts before its extensions). Training stops early when no
 * pair occurs min_count times. Ids: 0..255 the byte tokens in GPT-2's byte order, 256+k the
 * token made by merge k, then the specials. */
typedef struct TlBpeTrainOpts {
    size_t vocab_size;      /* including the 256 byte tokens and the specials */
    const char *pattern;    /* NULL or "gpt2", or a PCRE2 regex */
    const char *const *specials; /* NULL-terminated, may be NULL */
    uint64_t min_count;     /* 0 means 1 */
    /* Ties as Hugging Face tokenizers' BpeTrainer breaks them: among equal counts the pair
     * of smallest (left id, right id), ids in creation order (bytes in GPT-2's order, then
     * merged tokens). With its ByteLevel pre-tokenizer and initial alphabet, the merges
     * are then HF's exactly (tested on the fortunes corpus). 0: the byte order above. */
    int hf_ties;
    /* Called now and then with the number of merges done out of the planned total. */
    void (*progress)(void *ud, size_t done, size_t total);
    void *progress_ud;
} TlBpeTrainOpts;
typedef struct TlBpeTrainer TlBpeTrainer;
TlBpeTrainer *tl_bpe_trainer_new(const TlBpeTrainOpts *opts, char *err, size_t errlen);
/* Counts the words of one text (call once per file or chunk). */
int tl_bpe_trainer_feed(TlBpeTrainer *tr, const void *text, size_t n, char *err,
                        size_t errlen);
/* Runs the merges and returns the tokenizer (the trainer stays to be freed). */
TlTokenizer *tl_bpe_trainer_finish(TlBpeTrainer *tr, char *err, size_t errlen);
void tl_bpe_trainer_free(TlBpeTrainer *tr);

/* ---- writing (atomically: temp file, fsync, rename) --------------------------------- */
/* dir/encoder.json and dir/vocab.bpe, GPT-2's format (dir must exist). BPE only. */
int tl_tok_save_gpt2(const TlTokenizer *t, const char *dir, char *err, size_t errlen);
/* A Hugging Face tokenizer.json: model BPE, ByteLevel pre-tokenizer and decoder (plus the
 * split regex when it is not GPT-2's), specials as added tokens. BPE only. */
int tl_tok_save_hf(const TlTokenizer *t, const char *path, char *err, size_t errlen);

#endif
