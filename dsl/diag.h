/* diag.h — diagnostics in the form users of clang and rustc expect:
 *
 *   model.tl:12:9: error: cannot add f32[B, T, 256] and f32[B, T, 512]
 *      12 |     x = h + y
 *         |         ^~~~~
 *   model.tl:4:5: note: y declared here
 *       4 |     y: f32[B, T, 512]
 *         |     ^
 *
 * Messages print as they are reported (to stderr unless redirected). Library code reports
 * and returns; only main decides the exit status from tl_diag_error_count(). */
#ifndef TL_DIAG_H
#define TL_DIAG_H
#include <stdio.h>
#include "loc.h"

typedef enum TlDiagLevel { TL_ERROR, TL_WARNING, TL_NOTE } TlDiagLevel;

void tl_diag(TlDiagLevel level, TlLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define tl_error(loc, ...) tl_diag(TL_ERROR, (loc), __VA_ARGS__)
#define tl_warning(loc, ...) tl_diag(TL_WARNING, (loc), __VA_ARGS__)
#define tl_note(loc, ...) tl_diag(TL_NOTE, (loc), __VA_ARGS__)

int tl_diag_error_count(void);
int tl_diag_warning_count(void);
/* After this many errors further ones are dropped (and one line says so). Default 50. */
void tl_diag_set_max_errors(int n);
void tl_diag_set_output(FILE *out); /* default stderr */
void tl_diag_set_werror(int on);    /* warnings count as errors */
void tl_diag_reset(void);           /* counts back to zero */

#endif
