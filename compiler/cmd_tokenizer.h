/* cmd_tokenizer.h — `tlc tokenizer ...`: train, encode and decode with the runtime's
 * tokenizer engines (runtime/tok.h) from the command line.
 *
 *   tlc tokenizer train --vocab-size N --out DIR [--pattern gpt2|REGEX] [--special TOK]... FILES...
 *   tlc tokenizer encode (--gpt2 DIR | --wordpiece VOCAB | --bytes) [FILE|-]
 *   tlc tokenizer decode (--gpt2 DIR | --wordpiece VOCAB | --bytes) [FILE|-]
 *   tlc tokenizer --help
 *
 * argv[0] is the command's name ("tokenizer"), argv[1] the action. Errors are one line on
 * stderr naming the file or flag. Returns the exit status: 0 ok, 1 bad input (a file that
 * cannot be read or parsed), 2 usage. */
#ifndef TL_CMD_TOKENIZER_H
#define TL_CMD_TOKENIZER_H

int tl_cmd_tokenizer(int argc, char **argv);

#endif
