/* args.h — command-line flags for every tl executable: `arg(name, default)` in a train
 * block becomes one registered flag, and every program gets --help for free.
 *
 *   TlArgs *a = tl_args_new("gpt", "Train a small GPT on a text corpus.");
 *   tl_args_add(a, "steps", TL_ARG_INT, "5000", "number of optimizer steps", err, n);
 *   tl_args_add(a, "lr", TL_ARG_FLOAT, "3e-4", "peak learning rate", err, n);
 *   switch (tl_args_parse(a, argc, argv, stdout, err, sizeof err)) {
 *   case TL_ARGS_HELP:  return 0;                                  // usage printed
 *   case TL_ARGS_ERROR: fprintf(stderr, "%s\n", err); return 2;    // one line
 *   }
 *   int64_t steps = tl_args_int(a, "steps");
 *
 * Syntax: `--name value`, `--name=value`; booleans take `--name`, `--no-name` or
 * `--name=true|false|1|0|yes|no|on|off` (never the next word); `-h`/`--help` prints the
 * usage; `--` ends the flags. In a name, '-' and '_' are the same character, so an arg
 * registered as batch_size is also --batch-size. A flag given twice keeps the last value.
 *
 * Errors are one line naming the flag and the value: an unknown flag (with "did you mean
 * --x?" when a registered name is close), a missing value, a malformed or out-of-range
 * int (`--steps abc`, `--steps 1e3`, `--steps 99999999999999999999`), a malformed or
 * non-finite float (`--lr 1e-3x`, `--lr nan`), a bad boolean, or a stray positional. */
#ifndef TL_ARGS_H
#define TL_ARGS_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum TlArgKind {
    TL_ARG_INT,    /* int64 */
    TL_ARG_FLOAT,  /* double, finite */
    TL_ARG_STRING,
    TL_ARG_BOOL,
    TL_ARG_PATH    /* a string shown as <path>; existence is checked by whoever opens it */
} TlArgKind;

enum { TL_ARGS_OK = 0, TL_ARGS_HELP = 1, TL_ARGS_ERROR = -1 };

typedef struct TlArgs TlArgs;

/* prog is the name in "usage: prog"; summary (may be NULL) is printed under it. NULL when
 * out of memory. */
TlArgs *tl_args_new(const char *prog, const char *summary);
void tl_args_free(TlArgs *a);

/* Register a flag. name: letters, digits, '_' and '-', not "help", not starting with
 * "no-"/"no_" nor registered before. def is the default written as it would be on the
 * command line (NULL: 0, 0.0, "" or false) and must parse as kind. help may be NULL.
 * 0 on success; -1 with a message in err. */
int tl_args_add(TlArgs *a, const char *name, TlArgKind kind, const char *def,
                const char *help, char *err, size_t errlen);
/* Restrict an int or float flag to [lo, hi] (inclusive); checked on parse and against the
 * current default. */
int tl_args_set_range(TlArgs *a, const char *name, double lo, double hi, char *err,
                      size_t errlen);

/* Parse argv[1..argc). Returns TL_ARGS_OK, TL_ARGS_HELP (the usage was printed to
 * help_out, or stdout when NULL) or TL_ARGS_ERROR (a one-line message in err; the values
 * are then unspecified). */
int tl_args_parse(TlArgs *a, int argc, char **argv, FILE *help_out, char *err,
                  size_t errlen);
void tl_args_usage(const TlArgs *a, FILE *out);

/* Values by name. Asking for a name not registered, or of another kind, gives 0 / 0.0 /
 * NULL / 0 (a bug in the caller, never in the user's input). */
int64_t tl_args_int(const TlArgs *a, const char *name);
double tl_args_float(const TlArgs *a, const char *name); /* an INT flag converts too */
const char *tl_args_string(const TlArgs *a, const char *name); /* STRING or PATH */
int tl_args_bool(const TlArgs *a, const char *name);
int tl_args_was_set(const TlArgs *a, const char *name); /* given on the command line */

/* Iteration over the registered flags, in registration order: their names, kinds, and
 * current values written as they would be on the command line. */
int tl_args_count(const TlArgs *a);
const char *tl_args_name_at(const TlArgs *a, int i);
TlArgKind tl_args_kind_at(const TlArgs *a, int i);
int tl_args_value_text(const TlArgs *a, int i, char *buf, size_t n);

#endif
