/* parser.y — the grammar of tl (docs/language.md; its "Grammar summary" mirrors this file).
 *
 * Bison 3.8, pure, with TlLoc locations. The lexer (lexer.re) ends every statement with a
 * TERM token (a newline where a statement can end, `;`, before `}` and at the end of the
 * file), so every list below is "items separated by TERM". Errors recover at statement and
 * item level (`error TERM`), so one run reports several syntax errors; messages name tokens
 * the way a user writes them ("expected ')' before end of line").
 */
%code requires {
#include "ast.h"
#include "lex.h"
typedef struct TlParseCtx {
    TlLexer lex;
    TlAst *ast;
} TlParseCtx;
}

%code provides {
int yyparse(TlParseCtx *ctx);
}

%code {
#include <string.h>
#include "diag.h"
#include "source.h"

#define YYLLOC_DEFAULT(Cur, Rhs, N)                                        \
    do {                                                                   \
        if (N) {                                                           \
            (Cur) = YYRHSLOC(Rhs, 1);                                      \
            (Cur).end_line = YYRHSLOC(Rhs, N).end_line;                    \
            (Cur).end_col = YYRHSLOC(Rhs, N).end_col;                      \
        } else {                                                           \
            (Cur) = YYRHSLOC(Rhs, 0);                                      \
            (Cur).line = (Cur).end_line;                                   \
            (Cur).col = (Cur).end_col;                                     \
        }                                                                  \
    } while (0)

static int yylex(TlTokVal *val, TlLoc *loc, TlParseCtx *ctx) {
    return tl_lex(&ctx->lex, val, loc);
}

static void yyerror(TlLoc *loc, TlParseCtx *ctx, const char *msg) {
    if (ctx->lex.fatal) return;
    if (strcmp(msg, "memory exhausted") == 0)
        tl_error(*loc, "expression nested too deeply");
    else
        tl_error(*loc, "%s", msg);
}

static TlNode *mk(TlParseCtx *ctx, TlNodeKind kind, TlLoc loc) {
    return tl_node_new(ctx->ast, kind, loc);
}

static TlNode *mk_bin(TlParseCtx *ctx, TlOp op, TlNode *a, TlNode *b, TlLoc loc) {
    TlNode *n = mk(ctx, TL_N_BINARY, loc);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static TlNode *mk_un(TlParseCtx *ctx, TlOp op, TlNode *a, TlLoc loc) {
    TlNode *n = mk(ctx, TL_N_UNARY, loc);
    n->op = op;
    n->a = a;
    return n;
}

static TlList one(TlParseCtx *ctx, TlNode *n) {
    TlList l = {0};
    if (n) tl_list_push(ctx->ast, &l, n);
    return l;
}

static TlNode *mk_block(TlParseCtx *ctx, TlList list, TlLoc loc) {
    TlNode *n = mk(ctx, TL_N_BLOCK, loc);
    n->list = list;
    return n;
}

/* A comma list of expressions as one value: the expression itself, or a tuple. */
static TlNode *as_value(TlParseCtx *ctx, TlList l, TlLoc loc) {
    if (l.n == 1) return l.v[0];
    TlNode *t = mk(ctx, TL_N_TUPLE, loc);
    t->list = l;
    return t;
}

static int assignable(const TlNode *n) {
    return n->kind == TL_N_IDENT || n->kind == TL_N_FIELD || n->kind == TL_N_INDEX;
}

static TlNode *mk_assign(TlParseCtx *ctx, TlList targets, TlNode *value, TlNode *type,
                         TlOp op, TlLoc loc) {
    for (int i = 0; i < targets.n; i++)
        if (!assignable(targets.v[i]) || (targets.v[i]->flags & TL_F_PAREN))
            tl_error(targets.v[i]->loc, "cannot assign to this expression (a target is a name, "
                     "a field or an indexed element)");
    TlNode *n = mk(ctx, TL_N_ASSIGN, loc);
    n->list = targets;
    n->a = value;
    n->b = type;
    n->op = op;
    return n;
}

/* `f32`, `f32[B, T]`, `int`, `nn.Block`, `Block[...]` (an error) */
static TlNode *mk_type(TlParseCtx *ctx, TlNode *name, int shaped, TlList dims, TlLoc loc) {
    TlDType dt = tl_dtype_from_name(name->name);
    if (dt == TL_DT_INVALID) {
        if (shaped)
            tl_error(name->loc, "'%s' is not an element type; a shape follows one of f32 bf16 "
                     "f16 f64 i32 i64 bool", name->name);
        TlNode *n = mk(ctx, TL_N_TYPE_NAME, loc);
        n->name = name->name;
        return n;
    }
    TlNode *n = mk(ctx, TL_N_TYPE_TENSOR, loc);
    n->dtype = dt;
    n->name = name->name;
    n->list = dims;
    if (shaped) n->flags |= TL_F_SHAPED;
    return n;
}

static TlNode *mk_call(TlParseCtx *ctx, TlNode *callee, TlList args, TlLoc loc) {
    int seen_kw = 0;
    for (int i = 0; i < args.n; i++) {
        if (args.v[i]->kind == TL_N_KWARG) {
            seen_kw = 1;
        } else if (seen_kw) {
            tl_error(args.v[i]->loc, "positional argument after a keyword argument");
            break;
        }
    }
    TlNode *n = mk(ctx, TL_N_CALL, loc);
    n->a = callee;
    n->list = args;
    return n;
}

/* In an index, a range `lo..hi` means a slice. */
static TlNode *index_item(TlParseCtx *ctx, TlNode *e) {
    if (e->kind == TL_N_RANGE && !(e->flags & TL_F_PAREN)) {
        TlNode *s = mk(ctx, TL_N_SLICE, e->loc);
        s->a = e->a;
        s->b = e->b;
        return s;
    }
    return e;
}

static TlNode *dotted(TlParseCtx *ctx, TlNode *a, TlNode *b, TlLoc loc) {
    TlNode *n = mk(ctx, TL_N_IDENT, loc);
    n->name = tl_arena_printf(ctx->ast->arena, "%s.%s", a->name, b->name);
    return n;
}
}

%define api.pure full
%define api.value.type {TlTokVal}
%define api.location.type {TlLoc}
%define parse.error custom
%define parse.lac full
%locations
%param {TlParseCtx *ctx}
%expect 0

%initial-action {
    @$ = (TlLoc){.file = ctx->lex.file, .line = 1, .col = 1, .end_line = 1, .end_col = 0};
}

%token END 0 "end of file"
%token TERM "end of line"
%token <node> IDENT "identifier" INT "integer" FLOAT "float" STRING "string"
%token <node> TRUE "'true'" FALSE "'false'" REDUCE "reduction"
%token <op> OPASSIGN "compound assignment"
%token IMPORT "'import'" AS "'as'" CONST "'const'" DIM "'dim'" FN "'fn'" HOST "'host'"
%token MODEL "'model'" PARAM "'param'" BUFFER "'buffer'" KERNEL "'kernel'"
%token SCHEDULE "'schedule'" TOKENIZER "'tokenizer'" TRAIN "'train'" RETURN "'return'"
%token YIELD "'yield'" FOR "'for'" IN "'in'" IF "'if'" ELSE "'else'" WHILE "'while'"
%token BREAK "'break'" CONTINUE "'continue'" SCAN "'scan'" CARRY "'carry'"
%token AND "'and'" OR "'or'" NOT "'not'"
%token DOTDOT "'..'" ELLIPSIS "'...'" POW "'**'" ARROW "'->'" TRANSPOSE "'^T'"
%token EQ "'=='" NE "'!='" LE "'<='" GE "'>='"

%type <node> item_one fn_decl param ret_opt type type_name dim dexpr
%type <node> model_item model_if model_block kstmt kernel_block sched_item
%type <node> soft_keyword name stmt if_stmt block train_block expr postfix primary arg
%type <node> index_item kwarg
%type <list> model_body item params param_list dims types model_items kstmts sched_items stmts
%type <list> train_stmts exprs args arg_list index_items idents kwargs dim_decls

/* loosest first (docs/language.md, "Expressions") */
%precedence REDUCE
%left '|'
%left OR
%left AND
%precedence NOT
%nonassoc EQ NE '<' LE '>' GE
%nonassoc DOTDOT
%left '+' '-'
%left '*' '/' '%' '@'
%precedence AS
%precedence UNARY
%right POW

%%

program:
    items { (void)yynerrs; /* counted by dsl/diag instead (clang: set but not used) */ }
    ;

/* items: item (TERM item)* — declarations at the top of a file */
items:
    %empty
  | items TERM
  | items item TERM {
        for (int i = 0; i < $2.n; i++) tl_list_push(ctx->ast, &ctx->ast->root->list, $2.v[i]);
    }
  | items error TERM { yyerrok; }
  ;

item:
    item_one { $$ = one(ctx, $1); }
  | DIM dim_decls { $$ = $2; }
  ;

dim_decls:
    IDENT { TlNode *n = mk(ctx, TL_N_DIM, @1); n->name = $1->name; $$ = one(ctx, n); }
  | IDENT '=' expr {
        TlNode *n = mk(ctx, TL_N_DIM, @$); n->name = $1->name; n->a = $3; $$ = one(ctx, n);
    }
  | dim_decls ',' IDENT {
        TlNode *n = mk(ctx, TL_N_DIM, @3); n->name = $3->name; $$ = $1;
        tl_list_push(ctx->ast, &$$, n);
    }
  | dim_decls ',' IDENT '=' expr {
        TlNode *n = mk(ctx, TL_N_DIM, @3); n->name = $3->name; n->a = $5; $$ = $1;
        n->loc.end_line = @5.end_line; n->loc.end_col = @5.end_col;
        tl_list_push(ctx->ast, &$$, n);
    }
  ;

item_one:
    IMPORT type_name {
        $$ = mk(ctx, TL_N_IMPORT, @$); $$->name = $2->name;
    }
  | IMPORT type_name AS IDENT {
        $$ = mk(ctx, TL_N_IMPORT, @$); $$->name = $2->name; $$->alias = $4->name;
    }
  | IMPORT STRING {
        $$ = mk(ctx, TL_N_IMPORT, @$); $$->str = $2->str; $$->slen = $2->slen;
    }
  | IMPORT STRING AS IDENT {
        $$ = mk(ctx, TL_N_IMPORT, @$); $$->str = $2->str; $$->slen = $2->slen;
        $$->alias = $4->name;
    }
  | CONST IDENT '=' expr {
        $$ = mk(ctx, TL_N_CONST, @$); $$->name = $2->name; $$->b = $4;
    }
  | CONST IDENT ':' type '=' expr {
        $$ = mk(ctx, TL_N_CONST, @$); $$->name = $2->name; $$->a = $4; $$->b = $6;
    }
  | fn_decl
  | MODEL IDENT model_block {
        $$ = $3; $$->loc = @$; $$->name = $2->name;
    }
  | MODEL IDENT '(' params ')' model_block {
        $$ = $6; $$->loc = @$; $$->name = $2->name; $$->list = $4;
    }
  | KERNEL IDENT '(' params ')' ARROW type kernel_block {
        $$ = mk(ctx, TL_N_KERNEL, @$); $$->name = $2->name; $$->list = $4; $$->a = $7;
        $$->b = $8;
    }
  | SCHEDULE IDENT '{' sched_items '}' {
        $$ = mk(ctx, TL_N_SCHEDULE, @$); $$->name = $2->name; $$->list = $4;
    }
  | SCHEDULE IDENT '{' sched_items error '}' {
        $$ = mk(ctx, TL_N_SCHEDULE, @$); $$->name = $2->name; $$->list = $4; yyerrok;
    }
  | TOKENIZER IDENT '=' expr {
        $$ = mk(ctx, TL_N_TOKENIZER, @$); $$->name = $2->name; $$->a = $4;
    }
  | TRAIN IDENT train_block {
        $$ = mk(ctx, TL_N_TRAIN, @$); $$->name = $2->name; $$->b = $3;
    }
  ;

/* ---- functions ---- */

fn_decl:
    FN IDENT '(' params ')' ret_opt block {
        $$ = mk(ctx, TL_N_FN, @$); $$->name = $2->name; $$->list = $4; $$->a = $6; $$->b = $7;
    }
  | HOST FN IDENT '(' params ')' ret_opt block {
        $$ = mk(ctx, TL_N_FN, @$); $$->name = $3->name; $$->list = $5; $$->a = $7; $$->b = $8;
        $$->flags |= TL_F_HOST;
    }
  ;

ret_opt:
    %empty { $$ = NULL; }
  | ARROW type { $$ = $2; }
  ;

params:
    %empty { $$ = (TlList){0}; }
  | param_list
  | param_list ','
  ;

param_list:
    param { $$ = one(ctx, $1); }
  | param_list ',' param { $$ = $1; tl_list_push(ctx->ast, &$$, $3); }
  ;

param:
    IDENT { $$ = mk(ctx, TL_N_PARAM, @$); $$->name = $1->name; }
  | IDENT ':' type { $$ = mk(ctx, TL_N_PARAM, @$); $$->name = $1->name; $$->a = $3; }
  | IDENT '=' expr { $$ = mk(ctx, TL_N_PARAM, @$); $$->name = $1->name; $$->b = $3; }
  | IDENT ':' type '=' expr {
        $$ = mk(ctx, TL_N_PARAM, @$); $$->name = $1->name; $$->a = $3; $$->b = $5;
    }
  ;

/* ---- types: f32[B, T, D], int, nn.Block, (f32[B], f32[B]) ---- */

type:
    type_name { $$ = mk_type(ctx, $1, 0, (TlList){0}, @$); }
  | type_name '[' ']' { $$ = mk_type(ctx, $1, 1, (TlList){0}, @$); }
  | type_name '[' dims ']' { $$ = mk_type(ctx, $1, 1, $3, @$); }
  | '(' type ',' types ')' {
        $$ = mk(ctx, TL_N_TYPE_TUPLE, @$); $$->list = one(ctx, $2);
        for (int i = 0; i < $4.n; i++) tl_list_push(ctx->ast, &$$->list, $4.v[i]);
    }
  ;

type_name:
    IDENT
  | type_name '.' IDENT { $$ = dotted(ctx, $1, $3, @$); }
  ;

types:
    type { $$ = one(ctx, $1); }
  | types ',' type { $$ = $1; tl_list_push(ctx->ast, &$$, $3); }
  ;

dims:
    dim { $$ = one(ctx, $1); }
  | dims ',' dim { $$ = $1; tl_list_push(ctx->ast, &$$, $3); }
  ;

dim:
    dexpr {
        $$ = $1;
        if ($$->kind == TL_N_IDENT && strcmp($$->name, "_") == 0) $$->kind = TL_N_WILDCARD;
    }
  | ELLIPSIS { $$ = mk(ctx, TL_N_ELLIPSIS, @$); }
  | '?' { $$ = mk(ctx, TL_N_DYNAMIC, @$); }
  ;

/* integer expressions over dimension names */
dexpr:
    IDENT
  | INT
  | dexpr '+' dexpr { $$ = mk_bin(ctx, TL_OP_ADD, $1, $3, @$); }
  | dexpr '-' dexpr { $$ = mk_bin(ctx, TL_OP_SUB, $1, $3, @$); }
  | dexpr '*' dexpr { $$ = mk_bin(ctx, TL_OP_MUL, $1, $3, @$); }
  | dexpr '/' dexpr { $$ = mk_bin(ctx, TL_OP_DIV, $1, $3, @$); }
  | dexpr '%' dexpr { $$ = mk_bin(ctx, TL_OP_MOD, $1, $3, @$); }
  | '(' dexpr ')' { $$ = $2; $$->flags |= TL_F_PAREN; }
  ;

/* ---- models ---- */

model_block:
    model_body { $$ = mk(ctx, TL_N_MODEL, @$); $$->list2 = $1; }
  ;

/* `error '}'`: a statement broken right before the closing brace still closes the block */
model_body:
    '{' model_items '}' { $$ = $2; }
  | '{' model_items error '}' { $$ = $2; yyerrok; }
  ;

model_items:
    %empty { $$ = (TlList){0}; }
  | model_items TERM
  | model_items model_item TERM { $$ = $1; tl_list_push(ctx->ast, &$$, $2); }
  | model_items error TERM { yyerrok; }
  ;

model_item:
    IDENT ':' PARAM type {
        $$ = mk(ctx, TL_N_MEMBER, @$); $$->name = $1->name; $$->a = $4;
    }
  | IDENT ':' PARAM type '=' expr {
        $$ = mk(ctx, TL_N_MEMBER, @$); $$->name = $1->name; $$->a = $4; $$->b = $6;
    }
  | IDENT ':' BUFFER type {
        $$ = mk(ctx, TL_N_MEMBER, @$); $$->name = $1->name; $$->a = $4;
        $$->flags |= TL_F_BUFFER;
    }
  | IDENT ':' BUFFER type '=' expr {
        $$ = mk(ctx, TL_N_MEMBER, @$); $$->name = $1->name; $$->a = $4; $$->b = $6;
        $$->flags |= TL_F_BUFFER;
    }
  | exprs '=' exprs { $$ = mk_assign(ctx, $1, as_value(ctx, $3, @3), NULL, TL_OP_NONE, @$); }
  | IDENT ':' type '=' exprs {
        $$ = mk_assign(ctx, one(ctx, $1), as_value(ctx, $5, @5), $3, TL_OP_NONE, @$);
    }
  | fn_decl
  | model_if
  | FOR idents IN expr model_body {
        $$ = mk(ctx, TL_N_FOR, @$); $$->list = $2; $$->a = $4; $$->b = mk_block(ctx, $5, @5);
    }
  ;

model_if:
    IF expr model_body {
        $$ = mk(ctx, TL_N_IF, @$); $$->a = $2; $$->b = mk_block(ctx, $3, @3);
    }
  | IF expr model_body ELSE model_body {
        $$ = mk(ctx, TL_N_IF, @$); $$->a = $2; $$->b = mk_block(ctx, $3, @3);
        $$->c = mk_block(ctx, $5, @5);
    }
  | IF expr model_body ELSE model_if {
        $$ = mk(ctx, TL_N_IF, @$); $$->a = $2; $$->b = mk_block(ctx, $3, @3); $$->c = $5;
    }
  ;

/* ---- kernels and schedules ---- */

kernel_block:
    '{' kstmts '}' { $$ = mk_block(ctx, $2, @$); }
  | '{' kstmts error '}' { $$ = mk_block(ctx, $2, @$); yyerrok; }
  ;

kstmts:
    %empty { $$ = (TlList){0}; }
  | kstmts TERM
  | kstmts kstmt TERM { $$ = $1; tl_list_push(ctx->ast, &$$, $2); }
  | kstmts error TERM { yyerrok; }
  ;

kstmt:
    IDENT '[' idents ']' '=' expr {
        $$ = mk(ctx, TL_N_KSTMT, @$); $$->name = $1->name; $$->list = $3; $$->a = $6;
    }
  | IDENT '=' expr { $$ = mk(ctx, TL_N_KSTMT, @$); $$->name = $1->name; $$->a = $3; }
  ;

sched_items:
    %empty { $$ = (TlList){0}; }
  | sched_items TERM
  | sched_items sched_item TERM { $$ = $1; tl_list_push(ctx->ast, &$$, $2); }
  | sched_items error TERM { yyerrok; }
  ;

sched_item:
    postfix {
        $$ = $1;
        if ($$->kind != TL_N_CALL)
            tl_error($$->loc, "expected a schedule directive, such as tile(i = 32) or "
                     "vectorize(j, 8)");
    }
  ;

/* ---- statements ---- */

block:
    '{' stmts '}' { $$ = mk_block(ctx, $2, @$); }
  | '{' stmts error '}' { $$ = mk_block(ctx, $2, @$); yyerrok; }
  ;

stmts:
    %empty { $$ = (TlList){0}; }
  | stmts TERM
  | stmts stmt TERM { $$ = $1; tl_list_push(ctx->ast, &$$, $2); }
  | stmts error TERM { yyerrok; }
  ;

train_block:
    '{' train_stmts '}' { $$ = mk_block(ctx, $2, @$); }
  | '{' train_stmts error '}' { $$ = mk_block(ctx, $2, @$); yyerrok; }
  ;

train_stmts:
    %empty { $$ = (TlList){0}; }
  | train_stmts TERM
  | train_stmts stmt TERM { $$ = $1; tl_list_push(ctx->ast, &$$, $2); }
  | train_stmts fn_decl TERM { $$ = $1; tl_list_push(ctx->ast, &$$, $2); }
  | train_stmts error TERM { yyerrok; }
  ;

stmt:
    exprs {
        if ($1.n > 1) tl_error(@$, "a list of expressions is not a statement; did you mean "
                                   "to assign it with '='?");
        $$ = mk(ctx, TL_N_EXPR_STMT, @$); $$->a = as_value(ctx, $1, @1);
    }
  | exprs '=' exprs { $$ = mk_assign(ctx, $1, as_value(ctx, $3, @3), NULL, TL_OP_NONE, @$); }
  | IDENT ':' type '=' exprs {
        $$ = mk_assign(ctx, one(ctx, $1), as_value(ctx, $5, @5), $3, TL_OP_NONE, @$);
    }
  | expr OPASSIGN expr { $$ = mk_assign(ctx, one(ctx, $1), $3, NULL, $2, @$); }
  | RETURN { $$ = mk(ctx, TL_N_RETURN, @$); }
  | RETURN exprs { $$ = mk(ctx, TL_N_RETURN, @$); $$->a = as_value(ctx, $2, @2); }
  | YIELD exprs { $$ = mk(ctx, TL_N_YIELD, @$); $$->a = as_value(ctx, $2, @2); }
  | BREAK { $$ = mk(ctx, TL_N_BREAK, @$); }
  | CONTINUE { $$ = mk(ctx, TL_N_CONTINUE, @$); }
  | FOR idents IN expr block {
        $$ = mk(ctx, TL_N_FOR, @$); $$->list = $2; $$->a = $4; $$->b = $5;
    }
  | WHILE expr block { $$ = mk(ctx, TL_N_WHILE, @$); $$->a = $2; $$->b = $3; }
  | if_stmt
  ;

if_stmt:
    IF expr block { $$ = mk(ctx, TL_N_IF, @$); $$->a = $2; $$->b = $3; }
  | IF expr block ELSE block { $$ = mk(ctx, TL_N_IF, @$); $$->a = $2; $$->b = $3; $$->c = $5; }
  | IF expr block ELSE if_stmt {
        $$ = mk(ctx, TL_N_IF, @$); $$->a = $2; $$->b = $3; $$->c = $5;
    }
  ;

idents:
    IDENT { $$ = one(ctx, $1); }
  | idents ',' IDENT { $$ = $1; tl_list_push(ctx->ast, &$$, $3); }
  ;

/* ---- expressions ---- */

exprs:
    expr { $$ = one(ctx, $1); }
  | exprs ',' expr { $$ = $1; tl_list_push(ctx->ast, &$$, $3); }
  ;

expr:
    postfix
  | expr '|' expr { $$ = mk_bin(ctx, TL_OP_PIPE, $1, $3, @$); }
  | expr OR expr  { $$ = mk_bin(ctx, TL_OP_OR, $1, $3, @$); }
  | expr AND expr { $$ = mk_bin(ctx, TL_OP_AND, $1, $3, @$); }
  | NOT expr      { $$ = mk_un(ctx, TL_OP_NOT, $2, @$); }
  | expr EQ expr  { $$ = mk_bin(ctx, TL_OP_EQ, $1, $3, @$); }
  | expr NE expr  { $$ = mk_bin(ctx, TL_OP_NE, $1, $3, @$); }
  | expr '<' expr { $$ = mk_bin(ctx, TL_OP_LT, $1, $3, @$); }
  | expr LE expr  { $$ = mk_bin(ctx, TL_OP_LE, $1, $3, @$); }
  | expr '>' expr { $$ = mk_bin(ctx, TL_OP_GT, $1, $3, @$); }
  | expr GE expr  { $$ = mk_bin(ctx, TL_OP_GE, $1, $3, @$); }
  | expr DOTDOT expr { $$ = mk(ctx, TL_N_RANGE, @$); $$->a = $1; $$->b = $3; }
  | expr '+' expr { $$ = mk_bin(ctx, TL_OP_ADD, $1, $3, @$); }
  | expr '-' expr { $$ = mk_bin(ctx, TL_OP_SUB, $1, $3, @$); }
  | expr '*' expr { $$ = mk_bin(ctx, TL_OP_MUL, $1, $3, @$); }
  | expr '/' expr { $$ = mk_bin(ctx, TL_OP_DIV, $1, $3, @$); }
  | expr '%' expr { $$ = mk_bin(ctx, TL_OP_MOD, $1, $3, @$); }
  | expr '@' expr { $$ = mk_bin(ctx, TL_OP_MATMUL, $1, $3, @$); }
  | expr AS type  { $$ = mk(ctx, TL_N_CAST, @$); $$->a = $1; $$->b = $3; }
  | '-' expr %prec UNARY { $$ = mk_un(ctx, TL_OP_NEG, $2, @$); }
  | '+' expr %prec UNARY { $$ = mk_un(ctx, TL_OP_POS, $2, @$); }
  | expr POW expr { $$ = mk_bin(ctx, TL_OP_POW, $1, $3, @$); }
  | REDUCE expr %prec REDUCE { $$ = $1; $$->a = $2; $$->loc = @$; }
  ;

postfix:
    primary
  | postfix '(' args ')' { $$ = mk_call(ctx, $1, $3, @$); }
  | postfix '[' index_items ']' { $$ = mk(ctx, TL_N_INDEX, @$); $$->a = $1; $$->list = $3; }
  | postfix '.' name { $$ = mk(ctx, TL_N_FIELD, @$); $$->a = $1; $$->name = $3->name; }
  | postfix TRANSPOSE { $$ = mk(ctx, TL_N_TRANSPOSE, @$); $$->a = $1; }
  ;

primary:
    IDENT
  | soft_keyword
  | INT
  | FLOAT
  | STRING
  | TRUE
  | FALSE
  | '(' expr ')' { $$ = $2; $$->flags |= TL_F_PAREN; }
  | '(' ')' { $$ = mk(ctx, TL_N_TUPLE, @$); }
  | '(' expr ',' ')' { $$ = mk(ctx, TL_N_TUPLE, @$); $$->list = one(ctx, $2); }
  | '(' expr ',' exprs ')' {
        $$ = mk(ctx, TL_N_TUPLE, @$); $$->list = one(ctx, $2);
        for (int i = 0; i < $4.n; i++) tl_list_push(ctx->ast, &$$->list, $4.v[i]);
    }
  | '(' expr ',' exprs ',' ')' {
        $$ = mk(ctx, TL_N_TUPLE, @$); $$->list = one(ctx, $2);
        for (int i = 0; i < $4.n; i++) tl_list_push(ctx->ast, &$$->list, $4.v[i]);
    }
  | '[' ']' { $$ = mk(ctx, TL_N_LIST, @$); }
  | '[' exprs ']' { $$ = mk(ctx, TL_N_LIST, @$); $$->list = $2; }
  | '[' exprs ',' ']' { $$ = mk(ctx, TL_N_LIST, @$); $$->list = $2; }
  | '[' expr FOR idents IN expr ']' {
        $$ = mk(ctx, TL_N_LISTCOMP, @$); $$->a = $2; $$->list = $4; $$->b = $6;
    }
  | SCAN IDENT IN expr CARRY '(' kwargs ')' block {
        $$ = mk(ctx, TL_N_SCAN, @$); $$->name = $2->name; $$->a = $4; $$->list = $7;
        $$->b = $9;
    }
  ;

/* Keywords that start declarations are names elsewhere: `model = GPT(...)` in a train
 * block, `m.param`, `dim = 1` as a keyword argument. */
soft_keyword:
    MODEL     { $$ = mk(ctx, TL_N_IDENT, @$); $$->name = "model"; }
  | DIM       { $$ = mk(ctx, TL_N_IDENT, @$); $$->name = "dim"; }
  | PARAM     { $$ = mk(ctx, TL_N_IDENT, @$); $$->name = "param"; }
  | BUFFER    { $$ = mk(ctx, TL_N_IDENT, @$); $$->name = "buffer"; }
  | TRAIN     { $$ = mk(ctx, TL_N_IDENT, @$); $$->name = "train"; }
  | HOST      { $$ = mk(ctx, TL_N_IDENT, @$); $$->name = "host"; }
  | CARRY     { $$ = mk(ctx, TL_N_IDENT, @$); $$->name = "carry"; }
  | KERNEL    { $$ = mk(ctx, TL_N_IDENT, @$); $$->name = "kernel"; }
  | SCHEDULE  { $$ = mk(ctx, TL_N_IDENT, @$); $$->name = "schedule"; }
  | TOKENIZER { $$ = mk(ctx, TL_N_IDENT, @$); $$->name = "tokenizer"; }
  ;

name:
    IDENT
  | soft_keyword
  ;

args:
    %empty { $$ = (TlList){0}; }
  | arg_list
  | arg_list ','
  ;

arg_list:
    arg { $$ = one(ctx, $1); }
  | arg_list ',' arg { $$ = $1; tl_list_push(ctx->ast, &$$, $3); }
  ;

arg:
    expr
  | kwarg
  ;

kwarg:
    name '=' expr { $$ = mk(ctx, TL_N_KWARG, @$); $$->name = $1->name; $$->a = $3; }
  ;

kwargs:
    kwarg { $$ = one(ctx, $1); }
  | kwargs ',' kwarg { $$ = $1; tl_list_push(ctx->ast, &$$, $3); }
  ;

index_items:
    index_item { $$ = one(ctx, $1); }
  | index_items ',' index_item { $$ = $1; tl_list_push(ctx->ast, &$$, $3); }
  ;

index_item:
    expr { $$ = index_item(ctx, $1); }
  | ':' { $$ = mk(ctx, TL_N_SLICE, @$); }
  | ELLIPSIS { $$ = mk(ctx, TL_N_ELLIPSIS, @$); }
  | expr DOTDOT { $$ = mk(ctx, TL_N_SLICE, @$); $$->a = $1; }
  | DOTDOT expr { $$ = mk(ctx, TL_N_SLICE, @$); $$->b = $2; }
  ;

%%

/* ---- syntax errors a user can read ---- */

/* Expected tokens are handled by the names users see ("')'", "'return'"). */
static int has(const yysymbol_kind_t *v, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(yysymbol_name(v[i]), name) == 0) return 1;
    return 0;
}

/* Removes the tokens named in `names` (NULL-terminated) from v; returns the new count. */
static int drop(yysymbol_kind_t *v, int n, const char *const *names) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (const char *const *p = names; *p; p++)
            if (strcmp(*p, yysymbol_name(v[i])) == 0) found = 1;
        if (!found) v[m++] = v[i];
    }
    return m;
}

static const char *sym_name(yysymbol_kind_t k) { return yysymbol_name(k); }

static int yyreport_syntax_error(const yypcontext_t *yyctx, TlParseCtx *ctx) {
    TlLexer *L = &ctx->lex;
    if (L->fatal) return 0;
    const TlTok *la = &L->last;
    TlLoc loc = *yypcontext_location(yyctx);
    if ((L->error_line == loc.line && loc.file == L->file) ||
        (L->replayed && la->loc.line == L->saved.loc.line && la->loc.col == L->saved.loc.col)) {
        /* the lexer already reported this line, or this token starts the line after an
         * error reported at the end of the previous one */
        tl_lex_recover(L); /* the lexer already reported this line */
        return 0;
    }
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(yyctx, exp, YYNTOKENS);
    if (n < 0) n = 0;

    char buf[96];
    const char *what = tl_lex_describe(la, buf, sizeof buf);
    if (!what) what = sym_name(yypcontext_token(yyctx));

    /* The error is at the first token of a line that did not end a statement: report it
     * at the end of the previous line, and let the next line parse on its own (recovery
     * discards this token: the lexer gives back a TERM, then the token again). */
    int at_eol = la->nl_before && la->kind != TERM && la->kind != 0 &&
                 la->loc.line != L->replay_line;
    if (at_eol) {
        loc = la->nl_loc;
        what = "end of line";
        L->saved = *la;
        L->replay = 1;
        L->replay_line = la->loc.line;
        int closer = la->open == '(' ? ')' : la->open == '[' ? ']' : 0;
        if (closer && L->before_can_end) { /* `f(a, b` then a new line */
            tl_error(loc, "expected '%c' before end of line", closer);
            tl_note(la->open_loc, "to match this '%c'", la->open);
            tl_lex_recover(L);
            return 0;
        }
    }

    /* `{` never closed */
    int want = la->open == '{' ? '}' : la->open == '(' ? ')' : la->open == '[' ? ']' : 0;
    char closer_name[4] = {'\'', (char)want, '\'', 0};
    if (la->kind == 0 && want && has(exp, n, closer_name)) {
        tl_error(loc, "expected '%c' before end of file", want);
        tl_note(la->open_loc, "to match this '%c'", la->open);
        return 0;
    }

    /* Name groups of tokens instead of listing them. */
    const char *group[4];
    int ng = 0;
    if (has(exp, n, "'model'") && has(exp, n, "'import'")) {
        n = drop(exp, n, (const char *const[]){
            "'import'", "'const'", "'dim'", "'fn'", "'host'", "'model'", "'kernel'",
            "'schedule'", "'tokenizer'", "'train'", "end of line", "end of file", NULL});
        group[ng++] = "a declaration (import, const, dim, fn, model, kernel, schedule, "
                      "tokenizer or train)";
    }
    if (has(exp, n, "'return'")) {
        n = drop(exp, n, (const char *const[]){
            "'return'", "'yield'", "'for'", "'if'", "'while'", "'break'", "'continue'", "'fn'",
            "'host'", "end of line", NULL});
        group[ng++] = "a statement";
    }
    if (has(exp, n, "integer")) {
        int had_ident = has(exp, n, "identifier");
        n = drop(exp, n, (const char *const[]){
            "identifier", "integer", "float", "string", "'true'", "'false'", "reduction",
            "'scan'", "'not'", "'('", "'['", "'-'", "'+'", "'model'", "'dim'", "'param'",
            "'buffer'", "'train'", "'host'", "'carry'", "'kernel'", "'schedule'",
            "'tokenizer'", NULL});
        if (had_ident && ng == 0) group[ng++] = "an expression";
    }
    if (has(exp, n, "'+'") && has(exp, n, "'*'")) {
        /* after a complete expression any operator could follow: not worth listing */
        n = drop(exp, n, (const char *const[]){
            "'|'", "'or'", "'and'", "'=='", "'!='", "'<'", "'<='", "'>'", "'>='", "'..'",
            "'+'", "'-'", "'*'", "'/'", "'%'", "'@'", "'as'", "'**'", "'('", "'['", "'.'",
            "'^T'", "compound assignment", NULL});
    }
    int total = ng + n;
    if (total == 0 || total > 4) {
        tl_error(loc, "unexpected %s", what);
    } else {
        char msg[512];
        size_t len = 0;
        for (int i = 0; i < total; i++) {
            const char *name = i < ng ? group[i] : sym_name(exp[i - ng]);
            const char *sep = i == 0 ? "" : i == total - 1 ? " or " : ", ";
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s", sep, name);
            if (len >= sizeof msg) len = sizeof msg - 1;
        }
        tl_error(loc, "expected %s before %s", msg, what);
    }
    if (la->kind == 0 && la->open)
        tl_note(la->open_loc, "this '%c' is not closed", la->open);
    tl_lex_recover(L);
    return 0;
}

void tl_parse_run(TlAst *ast, int file) {
    TlParseCtx ctx;
    tl_lex_init(&ctx.lex, ast, file);
    ctx.ast = ast;
    yyparse(&ctx);
    tl_lex_done(&ctx.lex);
}
