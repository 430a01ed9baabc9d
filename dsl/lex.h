/* lex.h — the lexer's private interface, shared by dsl/lexer.re, dsl/parser.y and
 * dsl/ast.c only. The public contract of the front end is dsl/ast.h (tl_parse).
 *
 * The lexer is reentrant: all its state is in a TlLexer. It works in two layers:
 *   - tl_lex_raw (lexer.re, re2c) turns bytes into tokens, NEWLINE included;
 *   - tl_lex (lexer.re) decides which newlines end a statement (docs/language.md,
 *     "Lexical structure"), with one token of lookahead, and inserts a statement
 *     terminator before `}` and at the end of the file where a statement can end, so the
 *     grammar can say "every statement ends with TERM".
 */
#ifndef TL_LEX_H
#define TL_LEX_H
#include <stddef.h>
#include <stdint.h>
#include "ast.h"

#define TL_MAX_NESTING 256 /* brackets, braces and parentheses, all kinds together */
#define TL_MAX_AST_DEPTH 512

/* Why a TERM token was produced; the parser uses it to name the token in messages. */
enum { TL_TERM_NEWLINE, TL_TERM_SEMI, TL_TERM_BRACE, TL_TERM_EOF };

/* A token as the grammar sees it (semantic value). */
typedef union TlTokVal {
    TlNode *node;     /* INT, FLOAT, STRING, IDENT (TL_N_IDENT), REDUCE (TL_N_REDUCE, a unset) */
    int term;         /* TERM: TL_TERM_* */
    TlOp op;          /* OPASSIGN: TL_OP_ADD ... */
    TlList list;      /* grammar lists */
} TlTokVal;

typedef struct TlTok {
    int kind; /* parser token code */
    TlTokVal val;
    TlLoc loc;
    int nl_before; /* a newline inside ( ) or [ ] was skipped right before this token */
    TlLoc nl_loc;  /* where that newline was */
    int open;      /* innermost open bracket before this token ('(' '[' '{' or 0) */
    TlLoc open_loc;
} TlTok;

typedef struct TlLexer {
    int file;
    TlAst *ast;
    const unsigned char *text, *cur, *end; /* text[len] == 0 (sentinel) */
    /* open brackets: '(' '[' '{' ; a newline matters when the innermost is '{' or none */
    char stack[TL_MAX_NESTING];
    TlLoc stack_loc[TL_MAX_NESTING];
    int depth;
    int fatal;        /* nesting limit hit: the lexer returns end of file from now on */
    int prev;         /* kind of the last token handed to the parser (0 at start) */
    int prev_can_end; /* it could end a statement */
    int have_peek;
    TlTok peek;       /* one token of lookahead (already lexed, not yet returned) */
    int error_line;   /* the lexer reported an error on this line: the parser stays quiet */
    int replay;       /* error recovery: return TERM, then `saved` (see parser.y) */
    TlTok saved;
    int replay_line;  /* never replay twice for one line (no loops) */
    int replayed;     /* `saved` has been handed back to the parser */
    TlTok last;           /* the token last handed to the parser (the lookahead on errors) */
    int before_can_end;   /* the token before `last` could end a statement */
    char *buf;        /* scratch for decoding strings */
    size_t buflen, bufcap;
} TlLexer;

void tl_lex_init(TlLexer *L, TlAst *ast, int file);
void tl_lex_done(TlLexer *L);
/* The next token for the parser (statement terminators decided). */
int tl_lex(TlLexer *L, TlTokVal *val, TlLoc *loc);
/* After a syntax error: forget open ( and [ back to the innermost {, so the next newline
 * ends the broken statement and recovery resumes on the following line. */
void tl_lex_recover(TlLexer *L);
/* Describes a token for messages: "identifier 'x'", "')'", "end of line". */
const char *tl_lex_describe(const TlTok *t, char *buf, size_t n);

/* parser.y: parses the file into ast->root (a TL_N_PROGRAM). */
void tl_parse_run(TlAst *ast, int file);

#endif
