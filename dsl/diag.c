#include "diag.h"
#include <stdarg.h>
#include <string.h>
#include "source.h"

static FILE *diag_out;
static int nerrors, nwarnings, max_errors = 50, werror, suppressed;

void tl_diag_set_output(FILE *out) { diag_out = out; }
void tl_diag_set_max_errors(int n) { max_errors = n; }
void tl_diag_set_werror(int on) { werror = on; }
int tl_diag_error_count(void) { return nerrors; }
int tl_diag_warning_count(void) { return nwarnings; }
void tl_diag_reset(void) { nerrors = nwarnings = suppressed = 0; }

/* Display width of the bytes [s, s+n): one column per UTF-8 character. */
static int display_cols(const char *s, int n) {
    int cols = 0;
    for (int i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) cols++;
    return cols;
}

static void print_snippet(FILE *out, TlLoc loc) {
    int len;
    const char *text = tl_source_line(loc.file, loc.line, &len);
    if (!tl_source_get(loc.file) || loc.line < 1) return;
    fprintf(out, "%5d | %.*s\n", loc.line, len, text);
    fprintf(out, "      | ");
    int col = loc.col < 1 ? 1 : loc.col;
    if (col - 1 > len) col = len + 1;
    /* keep tabs so the caret lines up under tab-indented code */
    for (int i = 0; i < col - 1; i++) {
        if (((unsigned char)text[i] & 0xC0) == 0x80) continue;
        fputc(text[i] == '\t' ? '\t' : ' ', out);
    }
    fputc('^', out);
    if (loc.end_line == loc.line && loc.end_col > col) {
        int end = loc.end_col > len ? len : loc.end_col;
        int w = display_cols(text + col, end - col);
        for (int i = 0; i < w; i++) fputc('~', out);
    }
    fputc('\n', out);
}

void tl_diag(TlDiagLevel level, TlLoc loc, const char *fmt, ...) {
    FILE *out = diag_out ? diag_out : stderr;
    if (level == TL_WARNING && werror) level = TL_ERROR;
    if (level == TL_ERROR) {
        if (nerrors >= max_errors) {
            if (!suppressed++) fprintf(out, "tlc: too many errors (%d), stopping\n", nerrors);
            nerrors++;
            return;
        }
        nerrors++;
    } else if (level == TL_WARNING) {
        nwarnings++;
    } else if (suppressed) {
        return; /* a note belongs to a dropped error */
    }
    static const char *names[] = {"error", "warning", "note"};
    if (tl_source_get(loc.file) && loc.line > 0)
        fprintf(out, "%s:%d:%d: %s: ", tl_source_path(loc.file), loc.line, loc.col, names[level]);
    else if (tl_source_get(loc.file))
        fprintf(out, "%s: %s: ", tl_source_path(loc.file), names[level]);
    else
        fprintf(out, "tlc: %s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    print_snippet(out, loc);
}
