/* tokdecl.h — builds the runtime tokenizer (runtime/tok.h) of a `tokenizer NAME = ...`
 * declaration of a checked program's main module.
 *
 *   tokenizer b  = bytes()
 *   tokenizer c  = chars("abc...")                  # or chars(alphabet = "abc...")
 *   tokenizer g  = bpe(merges = "vocab.bpe", vocab = "encoder.json",
 *                      split = "gpt2" | r"REGEX", special = ["<|endoftext|>"])
 *   tokenizer t  = bpe(train = "corpus/", vocab_size = 4096, split = ..., special = [...])
 *   tokenizer wp = wordpiece(vocab = "vocab.txt", lowercase = true, strip_accents = true)
 *
 * Arguments are compile-time literals (strings, ints, bools, lists of strings); paths are
 * relative to the directory of the .tl file. bpe(train = ...) trains at build time on a
 * file or a directory (tl_data_load: every text file below it), keeping the result in
 * memory only (nothing is written next to the sources; train again or `tlc tokenizer
 * train` + bpe(merges = ...) to keep one). */
#ifndef TL_TOKDECL_H
#define TL_TOKDECL_H
#include <stddef.h>
#include "sema.h"
#include "tok.h"

/* The tokenizer declared as NAME in prog's main module, built; free with tl_tok_free.
 * NULL on failure: the error is reported through dsl/diag.h at the place in the
 * declaration that is wrong (tl_error: unknown kind or argument, a non-literal or
 * mistyped argument, a missing or malformed file named in the message) and the same
 * message, prefixed by file:line:col, is copied into err. A NAME that is not declared is
 * reported only in err (there is no location to point at). */
TlTokenizer *tl_tokdecl_build(TlProgram *prog, const char *name, char *err, size_t errlen);

#endif
