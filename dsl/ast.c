/* ast.c — AST construction, tl_parse, and the `--emit=ast` dump.
 *
 * The dump is an S-expression, one node per line where a node is long or holds a body,
 * on one line where it is short:
 *
 *   (fn gelu 1:1
 *     (param x (tensor f32 [...]))
 *     (tensor f32 [...])
 *     (block
 *       (return 2:5 (* (* 0.5 x) (+ 1.0 (call tanh ...))))))
 *
 * Declarations and statements show line:col; expressions show a type (`: f32[B, T]`) once
 * sema has annotated them. The format is golden-tested: change it deliberately.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "ast.h"
#include "diag.h"
#include "lex.h"
#include "source.h"

/* ---- construction ---- */

TlNode *tl_node_new(TlAst *ast, TlNodeKind kind, TlLoc loc) {
    TlNode *n = tl_arena_alloc(ast->arena, sizeof *n);
    n->kind = kind;
    n->loc = loc;
    return n;
}

void tl_list_push(TlAst *ast, TlList *list, TlNode *node) {
    list->v = tl_arena_grow(ast->arena, list->v, &list->cap, list->n + 1, sizeof *list->v);
    list->v[list->n++] = node;
}

/* ---- depth limit ---- */

/* Later stages walk the tree recursively; a tree deeper than TL_MAX_AST_DEPTH (`- - - x`
 * a thousand times, or `a ** b ** ...`) is an error, and the item holding it is dropped so
 * that no later stage sees it. Iterative, so the check itself cannot overflow the stack. */
typedef struct DepthEntry {
    const TlNode *n;
    int depth;
} DepthEntry;

static const TlNode *too_deep(const TlNode *root) {
    int cap = 256, sp = 0;
    DepthEntry *st = malloc(sizeof *st * (size_t)cap);
    const TlNode *bad = NULL;
    if (!st) abort();
    st[sp++] = (DepthEntry){root, 1};
    while (sp > 0 && !bad) {
        DepthEntry e = st[--sp];
        if (e.depth > TL_MAX_AST_DEPTH) {
            bad = e.n;
            break;
        }
        const TlNode *kids[3] = {e.n->a, e.n->b, e.n->c};
        int need = sp + 3 + e.n->list.n + e.n->list2.n;
        if (need > cap) {
            while (cap < need) cap *= 2;
            DepthEntry *ns = realloc(st, sizeof *st * (size_t)cap);
            if (!ns) abort();
            st = ns;
        }
        for (int i = 0; i < 3; i++)
            if (kids[i]) st[sp++] = (DepthEntry){kids[i], e.depth + 1};
        for (int i = 0; i < e.n->list.n; i++)
            if (e.n->list.v[i]) st[sp++] = (DepthEntry){e.n->list.v[i], e.depth + 1};
        for (int i = 0; i < e.n->list2.n; i++)
            if (e.n->list2.v[i]) st[sp++] = (DepthEntry){e.n->list2.v[i], e.depth + 1};
    }
    free(st);
    return bad;
}

TlAst *tl_parse(int file) {
    TlAst *ast = calloc(1, sizeof *ast);
    if (!ast) abort();
    ast->arena = tl_arena_new();
    ast->file = file;
    TlLoc start = {.file = file, .line = 1, .col = 1, .end_line = 1, .end_col = 1};
    ast->root = tl_node_new(ast, TL_N_PROGRAM, start);
    tl_parse_run(ast, file);
    TlList *items = &ast->root->list;
    int m = 0;
    for (int i = 0; i < items->n; i++) {
        const TlNode *bad = too_deep(items->v[i]);
        if (bad) {
            tl_error(bad->loc, "nested too deeply (more than %d levels)", TL_MAX_AST_DEPTH);
            continue;
        }
        items->v[m++] = items->v[i];
    }
    items->n = m;
    return ast;
}

void tl_ast_free(TlAst *ast) {
    if (!ast) return;
    tl_arena_free(ast->arena);
    free(ast);
}

/* ---- names ---- */

const char *tl_node_kind_name(TlNodeKind kind) {
    static const char *names[TL_N_COUNT] = {
        [TL_N_INVALID] = "invalid", [TL_N_PROGRAM] = "program", [TL_N_IMPORT] = "import",
        [TL_N_CONST] = "const", [TL_N_DIM] = "dim", [TL_N_FN] = "fn", [TL_N_PARAM] = "param",
        [TL_N_MODEL] = "model", [TL_N_MEMBER] = "member", [TL_N_KERNEL] = "kernel",
        [TL_N_KSTMT] = "kstmt", [TL_N_SCHEDULE] = "schedule", [TL_N_TOKENIZER] = "tokenizer",
        [TL_N_TRAIN] = "train", [TL_N_TYPE_TENSOR] = "tensor", [TL_N_TYPE_NAME] = "type",
        [TL_N_TYPE_TUPLE] = "tuple-type", [TL_N_BLOCK] = "block", [TL_N_ASSIGN] = "assign",
        [TL_N_EXPR_STMT] = "expr", [TL_N_RETURN] = "return", [TL_N_YIELD] = "yield",
        [TL_N_FOR] = "for", [TL_N_IF] = "if", [TL_N_WHILE] = "while", [TL_N_BREAK] = "break",
        [TL_N_CONTINUE] = "continue", [TL_N_INT] = "int", [TL_N_FLOAT] = "float",
        [TL_N_STRING] = "string", [TL_N_BOOL] = "bool", [TL_N_IDENT] = "ident",
        [TL_N_UNARY] = "unary", [TL_N_BINARY] = "binary", [TL_N_TRANSPOSE] = "transpose",
        [TL_N_CAST] = "as", [TL_N_CALL] = "call", [TL_N_KWARG] = "kwarg",
        [TL_N_INDEX] = "index", [TL_N_SLICE] = "slice", [TL_N_FIELD] = "field",
        [TL_N_TUPLE] = "tuple", [TL_N_LIST] = "list", [TL_N_LISTCOMP] = "listcomp",
        [TL_N_RANGE] = "range", [TL_N_REDUCE] = "reduce", [TL_N_SCAN] = "scan",
        [TL_N_ELLIPSIS] = "...", [TL_N_WILDCARD] = "_", [TL_N_DYNAMIC] = "?",
    };
    return kind >= 0 && kind < TL_N_COUNT && names[kind] ? names[kind] : "?kind";
}

const char *tl_op_name(TlOp op) {
    static const char *names[TL_OP_COUNT] = {
        [TL_OP_NONE] = "", [TL_OP_ADD] = "+", [TL_OP_SUB] = "-", [TL_OP_MUL] = "*",
        [TL_OP_DIV] = "/", [TL_OP_MOD] = "%", [TL_OP_POW] = "**", [TL_OP_MATMUL] = "@",
        [TL_OP_EQ] = "==", [TL_OP_NE] = "!=", [TL_OP_LT] = "<", [TL_OP_LE] = "<=",
        [TL_OP_GT] = ">", [TL_OP_GE] = ">=", [TL_OP_AND] = "and", [TL_OP_OR] = "or",
        [TL_OP_PIPE] = "|", [TL_OP_NEG] = "neg", [TL_OP_POS] = "pos", [TL_OP_NOT] = "not",
        [TL_OP_SUM] = "sum", [TL_OP_MAX] = "max", [TL_OP_MIN] = "min", [TL_OP_PROD] = "prod",
    };
    return op >= 0 && op < TL_OP_COUNT && names[op] ? names[op] : "?op";
}

/* ---- printing ---- */

static void (*type_printer)(FILE *out, const struct TlType *type);

void tl_ast_set_type_printer(void (*print_type)(FILE *out, const struct TlType *type)) {
    type_printer = print_type;
}

/* Output goes either to a FILE or, when trying a node on one line, to a bounded buffer. */
typedef struct Out {
    FILE *f;
    char *buf;
    size_t len, cap;
    int overflow;
} Out;

static void put(Out *o, const char *s, size_t n) {
    if (o->f) {
        fwrite(s, 1, n, o->f);
        return;
    }
    if (o->overflow || o->len + n >= o->cap) {
        o->overflow = 1;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void puts_(Out *o, const char *s) { put(o, s, strlen(s)); }

static void putf(Out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(Out *o, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_type_of(Out *o, const TlNode *n) {
    if (!n->type || !type_printer) return;
    char *s = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&s, &len);
    if (!m) return;
    type_printer(m, n->type);
    fclose(m);
    puts_(o, " : ");
    put(o, s, len);
    free(s);
}

static void put_string(Out *o, const char *s, size_t n) {
    puts_(o, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '\n': puts_(o, "\\n"); break;
        case '\t': puts_(o, "\\t"); break;
        case '\r': puts_(o, "\\r"); break;
        case '\\': puts_(o, "\\\\"); break;
        case '"': puts_(o, "\\\""); break;
        default:
            if (c < 0x20 || c == 0x7F) putf(o, "\\x%02X", c);
            else put(o, (const char *)&c, 1);
        }
    }
    puts_(o, "\"");
}

/* The shortest text that reads back as v: 0.02, 1e-05, 2000.0 */
/* r"..." as written when it has no line breaks or control characters, else escaped */
static void put_raw_string(Out *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F) {
            put_string(o, s, n);
            return;
        }
    int hashes = memchr(s, '"', n) ? 1 : 0;
    while (hashes && hashes < 8) { /* enough #s that "### does not occur inside */
        char close[10] = "\"";
        memset(close + 1, '#', (size_t)hashes);
        close[hashes + 1] = 0;
        if (!memmem(s, n, close, (size_t)hashes + 1)) break;
        hashes++;
    }
    puts_(o, "r");
    for (int i = 0; i < hashes; i++) puts_(o, "#");
    puts_(o, "\"");
    put(o, s, n);
    puts_(o, "\"");
    for (int i = 0; i < hashes; i++) puts_(o, "#");
}

static void put_float(Out *o, double v) {
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    if (strchr(tmp, 'e') && fabs(v) >= 1 && fabs(v) < 1e16) {
        for (int prec = 0; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*f", prec, v);
            if (strtod(tmp, NULL) == v) break;
        }
    }
    puts_(o, tmp);
    if (!strpbrk(tmp, ".eni")) puts_(o, ".0");
}

static void put_loc(Out *o, const TlNode *n) { putf(o, " %d:%d", n->loc.line, n->loc.col); }

/* Names in brackets: `[i, j]`. */
static void put_names(Out *o, const TlList *l) {
    puts_(o, "[");
    for (int i = 0; i < l->n; i++) {
        if (i) puts_(o, ", ");
        puts_(o, l->v[i] && l->v[i]->name ? l->v[i]->name : "?");
    }
    puts_(o, "]");
}

/* A dimension expression in infix: `4 * D`, `(T + 1) / 2`. */
static void put_dim(Out *o, const TlNode *d, int depth) {
    if (!d || depth > TL_MAX_AST_DEPTH) { puts_(o, "?"); return; }
    int paren = (d->flags & TL_F_PAREN) != 0;
    if (paren) puts_(o, "(");
    switch (d->kind) {
    case TL_N_IDENT: puts_(o, d->name); break;
    case TL_N_INT: putf(o, "%lld", (long long)d->ival); break;
    case TL_N_ELLIPSIS: puts_(o, "..."); break;
    case TL_N_WILDCARD: puts_(o, "_"); break;
    case TL_N_DYNAMIC: puts_(o, "?"); break;
    case TL_N_BINARY:
        put_dim(o, d->a, depth + 1);
        putf(o, " %s ", tl_op_name(d->op));
        put_dim(o, d->b, depth + 1);
        break;
    default: puts_(o, "?"); break;
    }
    if (paren) puts_(o, ")");
}

/* Kinds always printed over several lines (they hold bodies). */
static int is_tall(const TlNode *n) {
    switch (n->kind) {
    case TL_N_PROGRAM: case TL_N_FN: case TL_N_MODEL: case TL_N_KERNEL: case TL_N_SCHEDULE:
    case TL_N_TRAIN: case TL_N_BLOCK: case TL_N_FOR: case TL_N_IF: case TL_N_WHILE:
    case TL_N_SCAN:
        return 1;
    default:
        return 0;
    }
}

/* Declarations and statements carry their line:col in the dump. */
static int shows_loc(const TlNode *n) {
    switch (n->kind) {
    case TL_N_IMPORT: case TL_N_CONST: case TL_N_DIM: case TL_N_FN: case TL_N_MODEL:
    case TL_N_MEMBER: case TL_N_KERNEL: case TL_N_KSTMT: case TL_N_SCHEDULE:
    case TL_N_TOKENIZER: case TL_N_TRAIN: case TL_N_ASSIGN: case TL_N_EXPR_STMT:
    case TL_N_RETURN: case TL_N_YIELD: case TL_N_FOR: case TL_N_IF: case TL_N_WHILE:
    case TL_N_BREAK: case TL_N_CONTINUE:
        return 1;
    default:
        return 0;
    }
}

enum { MAX_KIDS = 8 };
typedef struct Kids {
    const TlNode *one[MAX_KIDS];
    int n;
    const TlList *lists[2];
    int nlists;
} Kids;

static void kid(Kids *k, const TlNode *n) {
    if (n && k->n < MAX_KIDS) k->one[k->n++] = n;
}

/* The header of a node (after "(") and its children in print order. Returns 1 when the
 * node is a leaf printed without parentheses (`x`, `42`). */
static int describe(Out *o, const TlNode *n, Kids *k) {
    memset(k, 0, sizeof *k);
    switch (n->kind) {
    case TL_N_IDENT: puts_(o, n->name ? n->name : "?"); return 1;
    case TL_N_INT: putf(o, "%lld", (long long)n->ival); return 1;
    case TL_N_FLOAT: put_float(o, n->fval); return 1;
    case TL_N_BOOL: puts_(o, n->ival ? "true" : "false"); return 1;
    case TL_N_STRING:
        if (n->flags & TL_F_RAW) put_raw_string(o, n->str ? n->str : "", n->slen);
        else put_string(o, n->str ? n->str : "", n->slen);
        return 1;
    case TL_N_ELLIPSIS: case TL_N_WILDCARD: case TL_N_DYNAMIC:
        puts_(o, tl_node_kind_name(n->kind));
        return 1;
    default: break;
    }
    puts_(o, tl_node_kind_name(n->kind));
    switch (n->kind) {
    case TL_N_IMPORT:
        if (n->name) putf(o, " %s", n->name);
        if (n->str) { puts_(o, " "); put_string(o, n->str, n->slen); }
        if (n->alias) putf(o, " as %s", n->alias);
        break;
    case TL_N_FN:
        if (n->flags & TL_F_HOST) puts_(o, " host");
        putf(o, " %s", n->name);
        k->lists[k->nlists++] = &n->list;
        kid(k, n->a);
        kid(k, n->b);
        break;
    case TL_N_MODEL:
        putf(o, " %s", n->name);
        k->lists[k->nlists++] = &n->list;
        k->lists[k->nlists++] = &n->list2;
        break;
    case TL_N_MEMBER:
        putf(o, " %s %s", n->name, (n->flags & TL_F_BUFFER) ? "buffer" : "param");
        kid(k, n->a);
        kid(k, n->b);
        break;
    case TL_N_KSTMT:
        putf(o, " %s", n->name);
        if (n->list.n) put_names(o, &n->list);
        kid(k, n->a);
        break;
    case TL_N_TYPE_TENSOR:
        putf(o, " %s", n->name ? n->name : "?");
        if (n->flags & TL_F_SHAPED) {
            puts_(o, " [");
            for (int i = 0; i < n->list.n; i++) {
                if (i) puts_(o, ", ");
                put_dim(o, n->list.v[i], 0);
            }
            puts_(o, "]");
        }
        break;
    case TL_N_TYPE_NAME: putf(o, " %s", n->name); break;
    case TL_N_FOR: case TL_N_LISTCOMP:
        if (n->kind == TL_N_LISTCOMP) kid(k, n->a);
        break;
    case TL_N_REDUCE:
        putf(o, " %s ", tl_op_name(n->op));
        put_names(o, &n->list);
        kid(k, n->a);
        break;
    case TL_N_SCAN:
        putf(o, " %s", n->name);
        kid(k, n->a);
        k->lists[k->nlists++] = &n->list;
        break;
    case TL_N_FIELD: /* (field x name): the name prints after x */
        break;
    default:
        if (n->name) putf(o, " %s", n->name);
        if (n->op) putf(o, " %s", tl_op_name(n->op));
        break;
    }
    if (shows_loc(n)) put_loc(o, n);
    switch (n->kind) {
    case TL_N_FOR:
        puts_(o, " ");
        put_names(o, &n->list);
        kid(k, n->a);
        kid(k, n->b);
        break;
    case TL_N_LISTCOMP:
        puts_(o, " ");
        put_names(o, &n->list);
        kid(k, n->b);
        break;
    case TL_N_PARAM: case TL_N_CONST: case TL_N_DIM: case TL_N_TOKENIZER: case TL_N_TRAIN:
    case TL_N_RETURN: case TL_N_YIELD: case TL_N_WHILE: case TL_N_IF: case TL_N_UNARY:
    case TL_N_BINARY: case TL_N_TRANSPOSE: case TL_N_CAST: case TL_N_KWARG:
    case TL_N_RANGE: case TL_N_EXPR_STMT: case TL_N_FIELD:
        kid(k, n->a);
        kid(k, n->b);
        kid(k, n->c);
        break;
    case TL_N_SLICE: /* (slice lo hi), (slice - hi), (slice lo -), (slice) for `:` */
        break;
    case TL_N_ASSIGN:
        if (n->op) putf(o, " %s=", tl_op_name(n->op));
        k->lists[k->nlists++] = &n->list;
        break;
    case TL_N_CALL: case TL_N_INDEX:
        kid(k, n->a);
        k->lists[k->nlists++] = &n->list;
        break;
    case TL_N_PROGRAM: case TL_N_BLOCK: case TL_N_TUPLE: case TL_N_LIST: case TL_N_SCHEDULE:
    case TL_N_TYPE_TUPLE:
        k->lists[k->nlists++] = &n->list;
        break;
    case TL_N_KERNEL:
        k->lists[k->nlists++] = &n->list;
        kid(k, n->a);
        kid(k, n->b);
        break;
    case TL_N_SCAN:
        kid(k, n->b);
        break;
    default:
        break;
    }
    return 0;
}

static void print_node(Out *o, const TlNode *n, int indent, int depth);

/* Lists print after the single children, except where the order reads better otherwise. */
static int lists_first(const TlNode *n) {
    return n->kind == TL_N_FN || n->kind == TL_N_KERNEL || n->kind == TL_N_ASSIGN;
}

static void print_kids_inline(Out *o, const TlNode *n, const Kids *k, int depth) {
    int lf = lists_first(n);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == !lf) {
            for (int l = 0; l < k->nlists; l++)
                for (int i = 0; i < k->lists[l]->n; i++) {
                    puts_(o, " ");
                    print_node(o, k->lists[l]->v[i], -1, depth + 1);
                }
        } else {
            for (int i = 0; i < k->n; i++) {
                puts_(o, " ");
                print_node(o, k->one[i], -1, depth + 1);
            }
        }
    }
    if (n->kind == TL_N_SLICE) {
        if (n->a || n->b) {
            puts_(o, " ");
            if (n->a) print_node(o, n->a, -1, depth + 1); else puts_(o, "-");
            puts_(o, " ");
            if (n->b) print_node(o, n->b, -1, depth + 1); else puts_(o, "-");
        }
    }
    if (n->kind == TL_N_ASSIGN) {
        if (n->b) { puts_(o, " "); print_node(o, n->b, -1, depth + 1); }
        if (n->a) { puts_(o, " "); print_node(o, n->a, -1, depth + 1); }
    }
    if (n->kind == TL_N_FIELD) putf(o, " %s", n->name ? n->name : "?");
}

static void indent_to(Out *o, int indent) {
    puts_(o, "\n");
    for (int i = 0; i < indent; i++) puts_(o, " ");
}

/* indent < 0: print on one line. */
static void print_node(Out *o, const TlNode *n, int indent, int depth) {
    if (!n) { puts_(o, "-"); return; }
    if (depth > TL_MAX_AST_DEPTH + 8) { puts_(o, "..."); return; }
    Kids k;
    if (n->kind == TL_N_UNARY || n->kind == TL_N_BINARY) {
        puts_(o, "(");
        puts_(o, tl_op_name(n->op));
        memset(&k, 0, sizeof k);
        kid(&k, n->a);
        kid(&k, n->b);
    } else {
        /* describe() prints the header; for leaves that is all */
        if (n->kind == TL_N_IDENT || n->kind == TL_N_INT || n->kind == TL_N_FLOAT ||
            n->kind == TL_N_BOOL || n->kind == TL_N_STRING || n->kind == TL_N_ELLIPSIS ||
            n->kind == TL_N_WILDCARD || n->kind == TL_N_DYNAMIC) {
            int typed = n->type && type_printer;
            if (typed) puts_(o, "(");
            describe(o, n, &k);
            if (typed) { put_type_of(o, n); puts_(o, ")"); }
            return;
        }
        puts_(o, "(");
        describe(o, n, &k);
    }
    put_type_of(o, n);

    int inline_ok = indent < 0;
    if (!inline_ok && !is_tall(n)) {
        /* try it on one line within 80 columns */
        char buf[96];
        Out t = {.buf = buf, .cap = (size_t)(indent < 70 ? 80 - indent : 10)};
        print_kids_inline(&t, n, &k, depth);
        if (!t.overflow) {
            put(o, buf, t.len);
            puts_(o, ")");
            return;
        }
    }
    if (inline_ok) {
        print_kids_inline(o, n, &k, depth);
        puts_(o, ")");
        return;
    }
    /* one child per line */
    int lf = lists_first(n);
    int ci = indent + 2;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == !lf) {
            for (int l = 0; l < k.nlists; l++)
                for (int i = 0; i < k.lists[l]->n; i++) {
                    indent_to(o, ci);
                    print_node(o, k.lists[l]->v[i], ci, depth + 1);
                }
        } else {
            for (int i = 0; i < k.n; i++) {
                indent_to(o, ci);
                print_node(o, k.one[i], ci, depth + 1);
            }
        }
    }
    if (n->kind == TL_N_SLICE) {
        indent_to(o, ci);
        print_node(o, n->a, ci, depth + 1);
        indent_to(o, ci);
        print_node(o, n->b, ci, depth + 1);
    }
    if (n->kind == TL_N_ASSIGN) {
        if (n->b) { indent_to(o, ci); print_node(o, n->b, ci, depth + 1); }
        indent_to(o, ci);
        print_node(o, n->a, ci, depth + 1);
    }
    if (n->kind == TL_N_FIELD) {
        indent_to(o, ci);
        puts_(o, n->name ? n->name : "?");
    }
    puts_(o, ")");
}

void tl_ast_print(FILE *out, const TlNode *node) {
    Out o = {.f = out};
    print_node(&o, node, 0, 0);
    puts_(&o, "\n");
}
