/* source.h — the table of loaded source files. A TlLoc names a file by its index here, so
 * that diagnostics and every later stage can print `file:line:col` and the source line. */
#ifndef TL_SOURCE_H
#define TL_SOURCE_H
#include <stddef.h>
#include "loc.h"

typedef struct TlSource {
    char *path;      /* as given (for messages) */
    char *text;      /* contents, NUL-terminated (a NUL inside the file is a lexer error) */
    size_t len;
    int *line_start; /* byte offset of each line, line_start[0] is line 1 */
    int nlines;
} TlSource;

/* Load a file; returns its index (>= 1), or 0 with a message in err (naming the file). */
int tl_source_load(const char *path, char *err, size_t errlen);
/* Register in-memory text (tests, fuzzing). Returns its index (>= 1). */
int tl_source_add(const char *path, const char *text, size_t len);
const TlSource *tl_source_get(int file);
const char *tl_source_path(int file);          /* "" for file 0 */
/* The text of a 1-based line without its newline; *len receives its length. */
const char *tl_source_line(int file, int line, int *len);
/* Converts a byte offset into line and column (both 1-based). */
void tl_source_linecol(int file, size_t offset, int *line, int *col);
/* Frees every loaded source (end of a compilation, or between fuzz iterations). */
void tl_source_reset(void);

#endif
