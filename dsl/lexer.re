/* lexer.re — tokens of a .tl file (docs/language.md, "Lexical structure").
 *
 * re2c generates the scanner (build/gen/lexer.c, `re2c -W -Werror --utf8`). The input is
 * the NUL-terminated text of a loaded source; a NUL before the end is an error. Strings,
 * raw strings and comments are scanned by hand (they validate UTF-8 and decode escapes).
 *
 * Two layers: lex_raw() produces every token including NEWLINE; tl_lex() decides which
 * newlines end a statement and inserts a terminator before `}` and at the end of the file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diag.h"
#include "lex.h"
#include "parser.h"
#include "source.h"

enum { TOK_NEWLINE = -1 };

/* ---- locations ---- */

static TlLoc loc_span(TlLexer *L, const unsigned char *start, const unsigned char *end) {
    TlLoc loc = {.file = L->file};
    tl_source_linecol(L->file, (size_t)(start - L->text), &loc.line, &loc.col);
    if (end > start) {
        tl_source_linecol(L->file, (size_t)(end - 1 - L->text), &loc.end_line, &loc.end_col);
    } else {
        loc.end_line = loc.line;
        loc.end_col = loc.col;
    }
    return loc;
}

/* Every lexer error goes through here: the parser stays quiet about a line the lexer
 * already complained about (one error per bad line, not a cascade). */
#define lex_error(L, loc, ...)                                                           \
    do {                                                                                 \
        TlLoc lex_error_loc_ = (loc);                                                    \
        (L)->error_line = lex_error_loc_.line;                                           \
        tl_error(lex_error_loc_, __VA_ARGS__);                                           \
    } while (0)

/* ---- UTF-8 ---- */

/* Decodes one UTF-8 character at s (s < end). Returns its length, or 0 when the bytes are
 * not valid UTF-8 (overlong forms, surrogates and values past U+10FFFF included). */
static int utf8_decode(const unsigned char *s, const unsigned char *end, uint32_t *cp) {
    unsigned c = s[0];
    int n;
    uint32_t v, min;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) { n = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (end - s < n) return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

/* Checks that [p, end) holds valid UTF-8 with no NUL; reports the first bad byte. */
static void check_utf8(TlLexer *L, const unsigned char *p, const unsigned char *end,
                       const char *where) {
    while (p < end) {
        uint32_t cp;
        int n = utf8_decode(p, end, &cp);
        if (n == 0) {
            lex_error(L, loc_span(L, p, p + 1), "invalid UTF-8 byte 0x%02X in %s", p[0], where);
            return;
        }
        if (cp == 0) {
            lex_error(L, loc_span(L, p, p + 1), "NUL character in %s", where);
            return;
        }
        p += n;
    }
}

/* ---- scratch buffer for decoded strings ---- */

static void buf_put(TlLexer *L, const void *p, size_t n) {
    if (n == 0) return; /* memcpy from or to NULL is undefined even for 0 bytes */
    if (L->buflen + n > L->bufcap) {
        size_t cap = L->bufcap ? L->bufcap : 64;
        while (cap < L->buflen + n) cap *= 2;
        char *nb = realloc(L->buf, cap);
        if (!nb) abort();
        L->buf = nb;
        L->bufcap = cap;
    }
    memcpy(L->buf + L->buflen, p, n);
    L->buflen += n;
}

static void buf_put_utf8(TlLexer *L, uint32_t cp) {
    unsigned char b[4];
    int n;
    if (cp < 0x80) { b[0] = (unsigned char)cp; n = 1; }
    else if (cp < 0x800) { b[0] = 0xC0 | (cp >> 6); b[1] = 0x80 | (cp & 0x3F); n = 2; }
    else if (cp < 0x10000) {
        b[0] = 0xE0 | (cp >> 12); b[1] = 0x80 | ((cp >> 6) & 0x3F); b[2] = 0x80 | (cp & 0x3F);
        n = 3;
    } else {
        b[0] = 0xF0 | (cp >> 18); b[1] = 0x80 | ((cp >> 12) & 0x3F);
        b[2] = 0x80 | ((cp >> 6) & 0x3F); b[3] = 0x80 | (cp & 0x3F);
        n = 4;
    }
    buf_put(L, b, (size_t)n);
}

static TlNode *string_node(TlLexer *L, TlLoc loc, int raw) {
    TlNode *n = tl_node_new(L->ast, TL_N_STRING, loc);
    n->str = tl_arena_strndup(L->ast->arena, L->buf ? L->buf : "", L->buflen);
    n->slen = L->buflen;
    if (raw) n->flags |= TL_F_RAW;
    return n;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "..." : L->cur is just past the opening quote. Ends on its line. */
static void lex_string(TlLexer *L, const unsigned char *start, TlTok *t) {
    const unsigned char *p = L->cur, *end = L->end;
    int bad_utf8 = 0;
    L->buflen = 0;
    for (;;) {
        if (p >= end || *p == '\n') {
            lex_error(L, loc_span(L, start, start + 1), "unterminated string (a string ends on its "
                     "line; use r\"...\" for text over several lines)");
            break;
        }
        if (*p == '"') { p++; break; }
        if (*p == '\\') {
            const unsigned char *esc = p;
            int c = p + 1 < end ? p[1] : 0;
            p += 2;
            switch (c) {
            case 'n': buf_put(L, "\n", 1); break;
            case 't': buf_put(L, "\t", 1); break;
            case 'r': buf_put(L, "\r", 1); break;
            case '\\': buf_put(L, "\\", 1); break;
            case '"': buf_put(L, "\"", 1); break;
            case '0': buf_put(L, "", 1); break;
            case 'x': {
                int h1 = p < end ? hexval(p[0]) : -1;
                int h2 = h1 >= 0 && p + 1 < end ? hexval(p[1]) : -1;
                if (h1 < 0 || h2 < 0) {
                    lex_error(L, loc_span(L, esc, p), "\\x needs two hex digits, as in \\x41");
                } else {
                    char b = (char)(h1 * 16 + h2);
                    buf_put(L, &b, 1);
                    p += 2;
                }
                break;
            }
            case 'u': {
                uint32_t v = 0;
                int nd = 0, ok = p < end && *p == '{';
                const unsigned char *q = p + 1;
                for (; ok && q < end && hexval(*q) >= 0 && nd < 7; q++, nd++)
                    v = v * 16 + (uint32_t)hexval(*q);
                if (!ok || q >= end || *q != '}' || nd == 0 || nd > 6) {
                    lex_error(L, loc_span(L, esc, p),
                              "\\u needs 1 to 6 hex digits in braces, as in "
                             "\\u{1F600}");
                } else if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
                    lex_error(L, loc_span(L, esc, q + 1),
                              "\\u{%X} is not a Unicode scalar value", v);
                    p = q + 1;
                } else {
                    buf_put_utf8(L, v);
                    p = q + 1;
                }
                break;
            }
            default:
                if (c == '\n' || c == 0) {
                    p--; /* let the loop report the unterminated string */
                    lex_error(L, loc_span(L, esc, esc + 1), "a backslash at the end of a line "
                             "does not continue a string");
                } else {
                    uint32_t cp = 0;
                    int n = utf8_decode(esc + 1, end, &cp);
                    if (n > 1) p = esc + 1 + n;
                    if (c >= 0x20 && c < 0x7F)
                        lex_error(L, loc_span(L, esc, esc + 2), "unknown escape '\\%c' (escapes: "
                                 "\\n \\t \\r \\\\ \\\" \\0 \\xHH \\u{HHHH})", c);
                    else
                        lex_error(L, loc_span(L, esc, esc + 1), "unknown escape in string");
                }
            }
            continue;
        }
        uint32_t cp;
        int n = utf8_decode(p, end, &cp);
        if (n == 0 || cp == 0) {
            if (!bad_utf8++) {
                if (n) lex_error(L, loc_span(L, p, p + 1), "NUL character in string");
                else lex_error(L, loc_span(L, p, p + 1),
                               "invalid UTF-8 byte 0x%02X in string", p[0]);
            }
            p++;
            continue;
        }
        buf_put(L, p, (size_t)n);
        p += n;
    }
    L->cur = p;
    t->loc = loc_span(L, start, p);
    t->kind = STRING;
    t->val.node = string_node(L, t->loc, 0);
}

/* r"..." or r#"..."# (any number of #): L->cur is just past the opening quote. */
static void lex_raw_string(TlLexer *L, const unsigned char *start, int hashes, TlTok *t) {
    const unsigned char *p = L->cur, *end = L->end, *body = p;
    const unsigned char *close = NULL;
    for (; p < end; p++) {
        if (*p != '"') continue;
        int k = 0;
        while (k < hashes && p + 1 + k < end && p[1 + k] == '#') k++;
        if (k == hashes) { close = p; break; }
    }
    L->buflen = 0;
    if (!close) {
        lex_error(L, loc_span(L, start, body), "unterminated raw string (it needs a closing "
                 "\"%.*s)", hashes > 8 ? 8 : hashes, "########");
        check_utf8(L, body, end, "raw string");
        buf_put(L, body, (size_t)(end - body));
        L->cur = end;
    } else {
        check_utf8(L, body, close, "raw string");
        buf_put(L, body, (size_t)(close - body));
        L->cur = close + 1 + hashes;
    }
    t->loc = loc_span(L, start, L->cur);
    t->kind = STRING;
    t->val.node = string_node(L, t->loc, 1);
}

/* ---- numbers ---- */

static void lex_int(TlLexer *L, const unsigned char *s, const unsigned char *e, int base,
                    TlTok *t) {
    t->loc = loc_span(L, s, e);
    uint64_t v = 0;
    int overflow = 0;
    for (const unsigned char *p = s + (base == 16 ? 2 : 0); p < e; p++) {
        if (*p == '_') continue;
        unsigned d = (unsigned)hexval(*p);
        if (v > (UINT64_C(0x7FFFFFFFFFFFFFFF) - d) / (unsigned)base) overflow = 1;
        else v = v * (unsigned)base + d;
    }
    if (overflow)
        lex_error(L, t->loc,
                  "integer literal %.*s is too large (the largest is 9223372036854775807)",
                 (int)(e - s), (const char *)s);
    t->kind = INT;
    t->val.node = tl_node_new(L->ast, TL_N_INT, t->loc);
    t->val.node->ival = (int64_t)v;
}

static void lex_float(TlLexer *L, const unsigned char *s, const unsigned char *e, TlTok *t) {
    char tmp[128];
    size_t n = 0;
    for (const unsigned char *p = s; p < e && n + 1 < sizeof tmp; p++)
        if (*p != '_') tmp[n++] = (char)*p;
    tmp[n] = 0;
    t->loc = loc_span(L, s, e);
    t->kind = FLOAT;
    t->val.node = tl_node_new(L->ast, TL_N_FLOAT, t->loc);
    t->val.node->fval = strtod(tmp, NULL);
    if (e - s >= (long)sizeof tmp || t->val.node->fval == HUGE_VAL)
        lex_error(L, t->loc, "float literal %.*s is out of range", (int)(e - s > 40 ? 40 : e - s),
                 (const char *)s);
}

/* ---- identifiers and reductions ---- */

static TlNode *ident_node(TlLexer *L, const unsigned char *s, const unsigned char *e) {
    TlNode *n = tl_node_new(L->ast, TL_N_IDENT, loc_span(L, s, e));
    n->name = tl_arena_strndup(L->ast->arena, (const char *)s, (size_t)(e - s));
    return n;
}

static int is_idchar(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Words that can follow `sum(x)` without it being a reduction: `[sum(x) for x in xs]`. */
static int follows_call(const unsigned char *p) {
    static const char *kw[] = {"and", "or", "as", "in", "for", "if", "else", "not"};
    size_t n = 0;
    while (is_idchar(p[n])) n++;
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (strlen(kw[i]) == n && memcmp(kw[i], p, n) == 0) return 1;
    return 0;
}

/* `sum(i, j)` followed by a space and an operand: one REDUCE token holding the op and the
 * index names. [s, e) is `sum(i, j)`. */
static int lex_reduce(TlLexer *L, const unsigned char *s, const unsigned char *e, TlTok *t) {
    const unsigned char *after = e;
    while (*after == ' ' || *after == '\t') after++;
    size_t oplen = 0;
    while (is_idchar(s[oplen])) oplen++;
    if (follows_call(after)) { /* an ordinary call after all */
        L->cur = s + oplen;
        t->kind = IDENT;
        t->loc = loc_span(L, s, s + oplen);
        t->val.node = ident_node(L, s, s + oplen);
        return 1;
    }
    t->kind = REDUCE;
    t->loc = loc_span(L, s, e);
    TlNode *r = tl_node_new(L->ast, TL_N_REDUCE, t->loc);
    r->op = s[1] == 'u' ? TL_OP_SUM : s[1] == 'r' ? TL_OP_PROD
          : s[1] == 'a' ? TL_OP_MAX : TL_OP_MIN;
    for (const unsigned char *p = s + oplen + 1; p < e;) {
        if (is_idchar(*p)) {
            const unsigned char *q = p;
            while (is_idchar(*q)) q++;
            tl_list_push(L->ast, &r->list, ident_node(L, p, q));
            p = q;
        } else {
            p++;
        }
    }
    t->val.node = r;
    return 1;
}

/* ---- the scanner ---- */

/*!re2c
    re2c:define:YYCTYPE = "unsigned char";
    re2c:define:YYCURSOR = "L->cur";
    re2c:define:YYMARKER = "mar";
    re2c:define:YYCTXMARKER = "ctx";
    re2c:yyfill:enable = 0;

    hsp    = [ \t\r\f\v];
    id     = [A-Za-z_][A-Za-z0-9_]*;
    dec    = [0-9][0-9_]*;
    hex    = "0" [xX] [0-9a-fA-F_]+;
    exp    = [eE] [+-]? [0-9][0-9_]*;
    flt    = dec "." [0-9][0-9_]* exp? | dec exp;
    badnum = [0-9][0-9A-Za-z_]* ("." [0-9][0-9A-Za-z_]*)?;
    redop  = "sum" | "max" | "min" | "prod";
    redix  = [ \t]* id [ \t]*;
*/

#define TOKEN(k) do { t->kind = (k); goto done; } while (0)

static void lex_raw(TlLexer *L, TlTok *t) {
    const unsigned char *mar, *ctx, *s;
    (void)ctx;
    memset(t, 0, sizeof *t);
again:
    s = L->cur;
    /*!re2c
    "\x00" {
        if (s >= L->end) { L->cur = s; t->kind = 0; t->loc = loc_span(L, s, s); return; }
        lex_error(L, loc_span(L, s, s + 1), "NUL character in source");
        goto again;
    }
    hsp+ { goto again; }
    "#" {
        const unsigned char *p = L->cur;
        while (p < L->end && *p != '\n') p++;
        check_utf8(L, L->cur, p, "comment");
        L->cur = p;
        goto again;
    }
    "\n" { TOKEN(TOK_NEWLINE); }
    ";"  { TOKEN(TERM); }

    "import"    { TOKEN(IMPORT); }
    "as"        { TOKEN(AS); }
    "const"     { TOKEN(CONST); }
    "dim"       { TOKEN(DIM); }
    "fn"        { TOKEN(FN); }
    "host"      { TOKEN(HOST); }
    "model"     { TOKEN(MODEL); }
    "param"     { TOKEN(PARAM); }
    "buffer"    { TOKEN(BUFFER); }
    "kernel"    { TOKEN(KERNEL); }
    "schedule"  { TOKEN(SCHEDULE); }
    "tokenizer" { TOKEN(TOKENIZER); }
    "train"     { TOKEN(TRAIN); }
    "return"    { TOKEN(RETURN); }
    "yield"     { TOKEN(YIELD); }
    "for"       { TOKEN(FOR); }
    "in"        { TOKEN(IN); }
    "if"        { TOKEN(IF); }
    "else"      { TOKEN(ELSE); }
    "while"     { TOKEN(WHILE); }
    "break"     { TOKEN(BREAK); }
    "continue"  { TOKEN(CONTINUE); }
    "scan"      { TOKEN(SCAN); }
    "carry"     { TOKEN(CARRY); }
    "and"       { TOKEN(AND); }
    "or"        { TOKEN(OR); }
    "not"       { TOKEN(NOT); }
    "true"      { t->val.node = tl_node_new(L->ast, TL_N_BOOL, loc_span(L, s, L->cur));
                  t->val.node->ival = 1; TOKEN(TRUE); }
    "false"     { t->val.node = tl_node_new(L->ast, TL_N_BOOL, loc_span(L, s, L->cur));
                  TOKEN(FALSE); }

    redop "(" redix ("," redix)* ")" / [ \t]+ [A-Za-z0-9_(] {
        lex_reduce(L, s, L->cur, t);
        return;
    }
    "r" "#"* "\"" {
        lex_raw_string(L, s, (int)(L->cur - s) - 2, t);
        return;
    }
    id { t->val.node = ident_node(L, s, L->cur); TOKEN(IDENT); }

    flt    { lex_float(L, s, L->cur, t); return; }
    hex    { lex_int(L, s, L->cur, 16, t); return; }
    dec    { lex_int(L, s, L->cur, 10, t); return; }
    dec "." / [^.0-9] {
        lex_error(L, loc_span(L, s, L->cur), "invalid number '%.*s' (write %.*s.0)",
                  (int)(L->cur - s > 40 ? 40 : L->cur - s), (const char *)s,
                  (int)(L->cur - s > 40 ? 40 : L->cur - s - 1), (const char *)s);
        lex_float(L, s, L->cur, t);
        return;
    }
    badnum {
        lex_error(L, loc_span(L, s, L->cur), "invalid number '%.*s'",
                 (int)(L->cur - s > 40 ? 40 : L->cur - s), (const char *)s);
        t->val.node = tl_node_new(L->ast, TL_N_INT, loc_span(L, s, L->cur));
        TOKEN(INT);
    }
    "\"" { lex_string(L, s, t); return; }

    "..." { TOKEN(ELLIPSIS); }
    ".."  { TOKEN(DOTDOT); }
    "**"  { TOKEN(POW); }
    "->"  { TOKEN(ARROW); }
    "=="  { TOKEN(EQ); }
    "!="  { TOKEN(NE); }
    "<="  { TOKEN(LE); }
    ">="  { TOKEN(GE); }
    "+="  { t->val.op = TL_OP_ADD; TOKEN(OPASSIGN); }
    "-="  { t->val.op = TL_OP_SUB; TOKEN(OPASSIGN); }
    "*="  { t->val.op = TL_OP_MUL; TOKEN(OPASSIGN); }
    "/="  { t->val.op = TL_OP_DIV; TOKEN(OPASSIGN); }
    "^"   {
        if (*L->cur == 'T' && !is_idchar(L->cur[1])) { L->cur++; TOKEN(TRANSPOSE); }
        lex_error(L, loc_span(L, s, L->cur), "unexpected '^' (write x ** y for a power and "
                 "x^T for a transpose)");
        goto again;
    }
    "!"   {
        lex_error(L, loc_span(L, s, L->cur), "unexpected '!' (use 'not' for logical negation)");
        goto again;
    }
    [()[\]{},:=+\-*/%@|.<>?] { TOKEN(*s); }

    * {
        uint32_t cp;
        int n = utf8_decode(s, L->end, &cp);
        if (n == 0) { /* one error for a run of bad bytes */
            const unsigned char *p = s + 1;
            while (p < L->end && p - s < 16 && *p >= 0x80 && !utf8_decode(p, L->end, &cp)) p++;
            lex_error(L, loc_span(L, s, p), "invalid UTF-8 byte 0x%02X (the source must be UTF-8)",
                      s[0]);
            L->cur = p;
        } else if (cp >= 0x80) {
            lex_error(L, loc_span(L, s, s + n), "unexpected character U+%04X '%.*s' (non-ASCII "
                     "characters may appear only in strings and comments)", cp, n, (const char *)s);
            L->cur = s + n;
        } else if (cp < 0x20 || cp == 0x7F) {
            lex_error(L, loc_span(L, s, s + 1), "unexpected control character U+%04X", cp);
            L->cur = s + 1;
        } else {
            lex_error(L, loc_span(L, s, s + 1), "unexpected character '%c'", (int)cp);
            L->cur = s + 1;
        }
        goto again;
    }
    */
done:
    t->loc = loc_span(L, s, L->cur);
}

/* ---- statement terminators ---- */

/* A token after which a newline may end the statement. */
static int can_end(int kind) {
    switch (kind) {
    case IDENT: case INT: case FLOAT: case STRING: case TRUE: case FALSE:
    case ')': case ']': case '}': case RETURN: case BREAK: case CONTINUE:
    case TRANSPOSE: case ELLIPSIS: case '?':
        return 1;
    default:
        return 0;
    }
}

/* A token that continues the previous line when it starts the next one. */
static int continues(int kind) {
    switch (kind) {
    case ELSE: case '|': case '.': case '*': case '/': case '%': case '@': case POW:
    case EQ: case NE: case '<': case LE: case '>': case GE: case AND: case OR: case AS:
    case DOTDOT: case ARROW: case TRANSPOSE:
        return 1;
    default:
        return 0;
    }
}

static int newline_matters(const TlLexer *L) {
    return L->depth == 0 || L->stack[L->depth - 1] == '{';
}

/* Tracks brackets as tokens are lexed. */
static void track(TlLexer *L, TlTok *t) {
    switch (t->kind) {
    case '(': case '[': case '{':
        if (L->depth == TL_MAX_NESTING) {
            lex_error(L, t->loc, "brackets nested too deeply (the limit is %d)", TL_MAX_NESTING);
            L->fatal = 1;
            return;
        }
        L->stack_loc[L->depth] = t->loc;
        L->stack[L->depth++] = (char)t->kind;
        break;
    case ')': case ']':
        if (L->depth > 0 && L->stack[L->depth - 1] != '{') L->depth--;
        break;
    case '}':
        while (L->depth > 0 && L->stack[--L->depth] != '{') {}
        break;
    default:
        break;
    }
}

/* The next raw token with the nesting tracked; newlines in ( ) and [ ] are skipped and
 * remembered on the following token. */
static void next_tracked(TlLexer *L, TlTok *t) {
    int nl = 0;
    TlLoc nl_loc = {0};
    for (;;) {
        if (L->fatal) {
            memset(t, 0, sizeof *t);
            t->loc = loc_span(L, L->end, L->end);
            return;
        }
        lex_raw(L, t);
        if (t->kind == TOK_NEWLINE && !newline_matters(L)) {
            if (!nl) nl_loc = t->loc;
            nl = 1;
            continue;
        }
        break;
    }
    t->nl_before = nl;
    t->nl_loc = nl_loc;
    t->open = L->depth ? L->stack[L->depth - 1] : 0;
    if (L->depth) t->open_loc = L->stack_loc[L->depth - 1];
    if (t->kind == 0 && L->last.kind) { /* end of file: point just past the last token */
        t->loc = L->last.loc;
        t->loc.line = t->loc.end_line;
        t->loc.col = t->loc.end_col + 1;
        t->loc.end_col = t->loc.col;
    }
    track(L, t);
    if (L->fatal) {
        memset(t, 0, sizeof *t);
        t->loc = loc_span(L, L->end, L->end);
    }
}

static void take(TlLexer *L, TlTok *t) {
    if (L->have_peek) {
        *t = L->peek;
        L->have_peek = 0;
    } else {
        next_tracked(L, t);
    }
}

static int hand_over(TlLexer *L, const TlTok *t, TlTokVal *val, TlLoc *loc) {
    *val = t->val;
    *loc = t->loc;
    L->prev = t->kind;
    L->before_can_end = L->prev_can_end;
    L->prev_can_end = can_end(t->kind);
    L->last = *t;
    return t->kind;
}

static int hand_term(TlLexer *L, int why, TlLoc where, TlTokVal *val, TlLoc *loc) {
    TlTok term = {.kind = TERM, .loc = where, .open = L->last.open, .open_loc = L->last.open_loc};
    term.val.term = why;
    return hand_over(L, &term, val, loc);
}

int tl_lex(TlLexer *L, TlTokVal *val, TlLoc *loc) {
    TlTok t;
    int skipped_nl = 0;
    TlLoc skipped_loc = {0};
    if (L->replay == 1) { /* error recovery: a terminator, then the token again */
        L->replay = 2;
        L->replayed = 0;
        return hand_term(L, TL_TERM_NEWLINE, L->saved.nl_loc, val, loc);
    }
    if (L->replay == 2) {
        L->replay = 0;
        L->replayed = 1;
        L->saved.nl_before = 0;
        return hand_over(L, &L->saved, val, loc);
    }
    for (;;) {
        take(L, &t);
        if (t.kind == TOK_NEWLINE) {
            if (!L->prev_can_end) { /* `x = a +` then a new line: the statement goes on */
                if (!skipped_nl && L->prev != 0 && L->prev != TERM && L->prev != '{') {
                    skipped_loc = t.loc;
                    skipped_nl = 1;
                }
                continue;
            }
            /* look at the first token of the next non-empty line */
            TlTok next;
            do next_tracked(L, &next); while (next.kind == TOK_NEWLINE);
            L->peek = next;
            L->have_peek = 1;
            if (continues(next.kind)) continue;
            return hand_term(L, TL_TERM_NEWLINE, t.loc, val, loc);
        }
        if (t.kind == TERM) { /* `;` */
            if (L->prev == TERM || L->prev == 0 || L->prev == '{') continue;
            t.val.term = TL_TERM_SEMI;
            return hand_over(L, &t, val, loc);
        }
        if ((t.kind == '}' || t.kind == 0) && L->prev_can_end) {
            L->peek = t;
            L->have_peek = 1;
            TlLoc where = t.loc;
            return hand_term(L, t.kind == 0 ? TL_TERM_EOF : TL_TERM_BRACE, where, val, loc);
        }
        if (skipped_nl && !t.nl_before) {
            t.nl_before = 1;
            t.nl_loc = skipped_loc;
        }
        return hand_over(L, &t, val, loc);
    }
}

void tl_lex_recover(TlLexer *L) {
    while (L->depth > 0 && L->stack[L->depth - 1] != '{') L->depth--;
}

void tl_lex_init(TlLexer *L, TlAst *ast, int file) {
    memset(L, 0, sizeof *L);
    const TlSource *src = tl_source_get(file);
    L->file = file;
    L->ast = ast;
    static const unsigned char empty[1] = {0};
    L->text = src ? (const unsigned char *)src->text : empty;
    L->end = L->text + (src ? src->len : 0);
    L->cur = L->text;
    /* a UTF-8 byte order mark is allowed at the very start */
    if (L->end - L->cur >= 3 && L->cur[0] == 0xEF && L->cur[1] == 0xBB && L->cur[2] == 0xBF)
        L->cur += 3;
}

void tl_lex_done(TlLexer *L) {
    free(L->buf);
    L->buf = NULL;
    L->buflen = L->bufcap = 0;
}

/* ---- describing tokens in messages ---- */

const char *tl_lex_describe(const TlTok *t, char *buf, size_t n) {
    const TlNode *v = t->val.node;
    switch (t->kind) {
    case 0: return "end of file";
    case TERM:
        return t->val.term == TL_TERM_SEMI ? "';'" : t->val.term == TL_TERM_BRACE ? "'}'"
             : t->val.term == TL_TERM_EOF ? "end of file" : "end of line";
    case IDENT: snprintf(buf, n, "identifier '%.40s'", v->name); return buf;
    case INT: case FLOAT: {
        const TlSource *src = tl_source_get(t->loc.file);
        int len;
        const char *line = src ? tl_source_line(t->loc.file, t->loc.line, &len) : "";
        int w = t->loc.end_line == t->loc.line ? t->loc.end_col - t->loc.col + 1 : 1;
        if (!src || t->loc.col - 1 + w > len || w > 40) return "number";
        snprintf(buf, n, "number '%.*s'", w, line + t->loc.col - 1);
        return buf;
    }
    case STRING: return "string";
    case REDUCE: snprintf(buf, n, "reduction '%s(...)'", tl_op_name(v->op)); return buf;
    case OPASSIGN: snprintf(buf, n, "'%s='", tl_op_name(t->val.op)); return buf;
    default: break;
    }
    return NULL; /* the parser names the rest from its own table */
}
