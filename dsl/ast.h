/* ast.h — the abstract syntax tree of a .tl file: the contract between the parser
 * (dsl/parser.y) and semantic analysis (compiler/sema).
 *
 * One node type, chibicc style: a kind, a location, and a few fields whose meaning depends
 * on the kind (documented per kind below). Nodes live in the arena of the TlAst that owns
 * them and are freed with it. Lists are arena arrays (TlList). Fields not named for a kind
 * are zero/NULL.
 */
#ifndef TL_AST_H
#define TL_AST_H
#include <stdint.h>
#include <stdio.h>
#include "arena.h"
#include "dtype.h"
#include "loc.h"

typedef struct TlNode TlNode;
struct TlType; /* compiler/types.h: filled in by sema */

typedef struct TlList {
    TlNode **v;
    int n, cap;
} TlList;

typedef enum TlNodeKind {
    TL_N_INVALID = 0,
    /* ---- items (top level) ---- */
    TL_N_PROGRAM,   /* list: items */
    TL_N_IMPORT,    /* name: module path "nn" / "a.b" (stdlib), or NULL when str is set;
                       str: local file path ("blocks.tl"); alias: `as` name or NULL */
    TL_N_CONST,     /* name; a: declared type or NULL; b: value */
    TL_N_DIM,       /* name; a: fixed value or NULL (`dim B` or `dim V = 256`) */
    TL_N_FN,        /* name; list: params (TL_N_PARAM); a: return type or NULL;
                       b: body (TL_N_BLOCK); flags: TL_F_HOST for `host fn` */
    TL_N_PARAM,     /* name; a: type or NULL; b: default value or NULL */
    TL_N_MODEL,     /* name; list: params (TL_N_PARAM); list2: members: TL_N_MEMBER,
                       TL_N_ASSIGN (sub-models, lists of them, constants), TL_N_FN, TL_N_IF
                       (compile-time conditional members), TL_N_FOR */
    TL_N_MEMBER,    /* `name: param T = init` / `name: buffer T = init`;
                       name; a: type; b: initializer or NULL; flags: TL_F_BUFFER */
    TL_N_KERNEL,    /* name; list: params; a: return type; b: body (TL_N_BLOCK of TL_N_KSTMT) */
    TL_N_KSTMT,     /* `out[i, j] = expr`: name: target; list: index names (TL_N_IDENT);
                       a: right-hand side (may be TL_N_REDUCE) */
    TL_N_SCHEDULE,  /* name: kernel it applies to; list: directives (TL_N_CALL nodes,
                       e.g. tile(i = 32, j = 64), vectorize(j, 16), parallel(i)) */
    TL_N_TOKENIZER, /* name; a: value expression, e.g. bytes(), bpe(merges = ..., ...) */
    TL_N_TRAIN,     /* name; b: body (TL_N_BLOCK of host statements, TL_N_FN allowed) */

    /* ---- types ---- */
    TL_N_TYPE_TENSOR, /* dtype; list: dims (TL_N_IDENT, TL_N_INT, TL_N_BINARY over them,
                         TL_N_ELLIPSIS, TL_N_WILDCARD, TL_N_DYNAMIC); flags: TL_F_SHAPED
                         when written with brackets (`f32[]` is shaped, rank 0;
                         a bare `f32` is a scalar too, but unshaped) */
    TL_N_TYPE_NAME,   /* name: int, float, str, or a model name (maybe dotted: nn.Block) */
    TL_N_TYPE_TUPLE,  /* list: element types */

    /* ---- statements ---- */
    TL_N_BLOCK,     /* list: statements */
    TL_N_ASSIGN,    /* list: targets (TL_N_IDENT; host code also TL_N_FIELD, TL_N_INDEX);
                       a: value; b: annotated type or NULL (`x: f32[B] = ...`);
                       op: TL_OP_NONE, or the compound operator of `+=`, `-=`, `*=`, `/=` */
    TL_N_EXPR_STMT, /* a: expression (a call) */
    TL_N_RETURN,    /* a: value or NULL */
    TL_N_YIELD,     /* a: value (inside a scan body) */
    TL_N_FOR,       /* list: loop variables (TL_N_IDENT); a: iterable (range, list, zip);
                       b: body */
    TL_N_IF,        /* a: condition; b: then block; c: else (TL_N_BLOCK, TL_N_IF) or NULL */
    TL_N_WHILE,     /* a: condition; b: body (host code only) */
    TL_N_BREAK,
    TL_N_CONTINUE,

    /* ---- expressions ---- */
    TL_N_INT,       /* ival */
    TL_N_FLOAT,     /* fval */
    TL_N_STRING,    /* str, slen (decoded; may contain NUL); flags: TL_F_RAW for r"..." */
    TL_N_BOOL,      /* ival: 0 or 1 */
    TL_N_IDENT,     /* name */
    TL_N_UNARY,     /* op: TL_OP_NEG, TL_OP_POS, TL_OP_NOT; a */
    TL_N_BINARY,    /* op; a, b */
    TL_N_TRANSPOSE, /* a^T: a (swaps the last two axes) */
    TL_N_CAST,      /* `a as T`: a; b: type */
    TL_N_CALL,      /* a: callee (TL_N_IDENT or TL_N_FIELD); list: arguments, positional
                       expressions first, then TL_N_KWARG */
    TL_N_KWARG,     /* name; a: value */
    TL_N_INDEX,     /* a: base; list: items: expressions, TL_N_SLICE, TL_N_ELLIPSIS */
    TL_N_SLICE,     /* `lo..hi`, `..hi`, `lo..`, or `:` (whole axis): a: lo or NULL;
                       b: hi or NULL */
    TL_N_FIELD,     /* a.name: a; name */
    TL_N_TUPLE,     /* (a, b, ...): list */
    TL_N_LIST,      /* [a, b, ...]: list */
    TL_N_LISTCOMP,  /* [elem for vars in iterable]: a: elem; list: vars; b: iterable */
    TL_N_RANGE,     /* lo..hi outside of indexing: a: lo; b: hi */
    TL_N_REDUCE,    /* `sum(j, k) body`: op: TL_OP_SUM/MAX/MIN/PROD; list: index names
                       (TL_N_IDENT); a: body */
    TL_N_SCAN,      /* `scan t in 0..T carry (h = h0, c = c0) { ... yield y }`:
                       name: step variable; a: range; list: carries (TL_N_KWARG);
                       b: body (TL_N_BLOCK). Value: a tuple of the final carries followed by
                       the yielded values stacked along a new leading axis */
    TL_N_ELLIPSIS,  /* `...` in a shape or an index */
    TL_N_WILDCARD,  /* `_` in a shape: any size */
    TL_N_DYNAMIC,   /* `?` in a shape: known only at run time (host code) */

    TL_N_COUNT
} TlNodeKind;

typedef enum TlOp {
    TL_OP_NONE = 0,
    TL_OP_ADD, TL_OP_SUB, TL_OP_MUL, TL_OP_DIV, TL_OP_MOD, TL_OP_POW, TL_OP_MATMUL,
    TL_OP_EQ, TL_OP_NE, TL_OP_LT, TL_OP_LE, TL_OP_GT, TL_OP_GE,
    TL_OP_AND, TL_OP_OR, TL_OP_PIPE,
    TL_OP_NEG, TL_OP_POS, TL_OP_NOT,
    TL_OP_SUM, TL_OP_MAX, TL_OP_MIN, TL_OP_PROD,
    TL_OP_COUNT
} TlOp;

enum {
    TL_F_HOST = 1 << 0,   /* TL_N_FN: host function (runtime control flow) */
    TL_F_BUFFER = 1 << 1, /* TL_N_MEMBER: non-trainable state */
    TL_F_SHAPED = 1 << 2, /* TL_N_TYPE_TENSOR: written with [...] */
    TL_F_RAW = 1 << 3,    /* TL_N_STRING: raw string r"..." */
    TL_F_PAREN = 1 << 4,  /* expression was parenthesized (for printing / diagnostics) */
};

struct TlNode {
    TlNodeKind kind;
    TlLoc loc;
    TlOp op;
    int flags;
    TlDType dtype;      /* TL_N_TYPE_TENSOR */
    const char *name;
    const char *alias;  /* TL_N_IMPORT */
    const char *str;    /* TL_N_STRING, TL_N_IMPORT */
    size_t slen;
    int64_t ival;
    double fval;
    TlNode *a, *b, *c;
    TlList list, list2;
    struct TlType *type; /* set by sema on expressions and declarations */
    void *sema;          /* sema's private annotation (resolved declaration, etc.) */
};

/* A parsed file. */
typedef struct TlAst {
    TlArena *arena;
    TlNode *root; /* TL_N_PROGRAM */
    int file;     /* source index (dsl/source.h) */
} TlAst;

/* Parses a loaded source file. Syntax errors are reported through dsl/diag.h; the parser
 * recovers and keeps going, so one run reports several errors. Returns an AST (possibly
 * partial) even when there were errors; check tl_diag_error_count(). */
TlAst *tl_parse(int file);
void tl_ast_free(TlAst *ast);

/* Constructors used by the parser. */
TlNode *tl_node_new(TlAst *ast, TlNodeKind kind, TlLoc loc);
void tl_list_push(TlAst *ast, TlList *list, TlNode *node);

/* `tlc --emit=ast`: an indented, stable S-expression-like dump (golden-tested). When sema
 * has run, each typed expression also shows its type. */
void tl_ast_print(FILE *out, const TlNode *node);
/* Sema registers how types are printed, so that the AST dump needs no sema headers. */
void tl_ast_set_type_printer(void (*print_type)(FILE *out, const struct TlType *type));
const char *tl_node_kind_name(TlNodeKind kind);
const char *tl_op_name(TlOp op); /* "+", "@", "sum", ... */

#endif
