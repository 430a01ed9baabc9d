/* sema_decl.c — functions (signatures with dimension variables, bodies checked once
 * against them) and models (hyper-parameters, members, methods). */
#include <string.h>
#include "diag.h"
#include "sema_internal.h"

/* ---- functions ---- */

void sema_ensure_fn(Sema *S, TlNode *fn) {
    DeclInfo *info = sema_info(S, fn);
    if (info->state) return;
    info->state = 1;
    Saved sv = sema_enter(S, info, info->outer);
    info->scope = sema_push(S, fn->kind == TL_N_KERNEL ? SC_KERNEL : SC_FN);
    info->np = fn->list.n;
    info->ptypes = tl_arena_alloc(S->arena, sizeof *info->ptypes * (size_t)(info->np + 1));
    for (int i = 0; i < fn->list.n; i++) {
        TlNode *p = fn->list.v[i];
        const TlType *t = tl_type_error();
        if (!p) { info->ptypes[i] = t; continue; }
        if (p->a) t = sema_resolve_type(S, p->a, 1);
        if (p->b) {
            /* defaults are evaluated where the function is declared */
            Scope *in = S->scope;
            S->scope = info->outer;
            const TlType *dt = sema_expr(S, p->b);
            S->scope = in;
            if (!p->a) t = dt;
            else if (!sema_types_match(S, t, dt)) {
                char w[256], g[256];
                tl_type_format(w, sizeof w, t);
                tl_type_format(g, sizeof g, dt);
                tl_error(p->b->loc, "default value of '%s' is %s, but the parameter is %s",
                         p->name ? p->name : "?", g, w);
            }
        }
        /* an int parameter is symbolic in the body and may size shapes: f32[B, H, T, D / H] */
        if (t->kind == TL_T_INT && p->name) t = tl_type_int(S->arena, tl_dim_sym(S->arena, p->name));
        t = tl_type_with_origin(S->arena, t, p->loc, p->name, 1);
        info->ptypes[i] = t;
        p->type = (struct TlType *)t;
        Sym *dv = sema_lookup_in(info->scope, p->name);
        if (dv && dv->kind == SYM_DIM && t->kind == TL_T_INT) {
            /* used in an earlier shape: `fn f(x: f32[N], N: int)` */
            dv->kind = SYM_PARAM;
            dv->decl = p;
            dv->loc = p->loc;
            dv->used = 1;
            continue;
        }
        Sym *s = sema_declare(S, info->scope, p->name, SYM_PARAM, p, p->loc, t);
        if (s) s->warn = 1;
    }
    info->type = fn->a ? sema_resolve_type(S, fn->a, 1) : NULL;
    S->scope = info->outer;
    sema_leave(S, sv);
    info->state = 2;
}

void sema_check_fn_body(Sema *S, TlNode *fn) {
    DeclInfo *info = sema_info(S, fn);
    sema_ensure_fn(S, fn);
    if (info->body_checked) return;
    info->body_checked = 1;
    Saved sv = sema_enter(S, info, info->scope);
    FnCtx ctx = {0};
    ctx.decl = fn;
    ctx.host = (fn->flags & TL_F_HOST) != 0;
    ctx.ret = info->type;
    S->fn = &ctx;
    sema_check_block(S, fn->b, SC_BLOCK);
    if (info->type && !ctx.returned && fn->b) {
        char b[256];
        tl_type_format(b, sizeof b, info->type);
        tl_error(fn->loc, "function '%s' is declared to return %s but has no return statement",
                 fn->name ? fn->name : "?", b);
    }
    sema_warn_unused(S, info->scope);
    sema_leave(S, sv);
}

/* ---- models ---- */

static void declare_members(Sema *S, TlNode *model, DeclInfo *info, TlList *list);

static void declare_member(Sema *S, TlNode *model, DeclInfo *info, TlNode *m) {
    if (!m) return;
    switch (m->kind) {
    case TL_N_MEMBER: {
        const TlType *t = sema_resolve_type(S, m->a, 0);
        if (!tl_type_is_error(t) && t->kind != TL_T_TENSOR) {
            char b[256];
            tl_type_format(b, sizeof b, t);
            tl_error(m->a ? m->a->loc : m->loc, "a %s must be a tensor, not %s",
                     (m->flags & TL_F_BUFFER) ? "buffer" : "param", b);
            t = tl_type_error();
        }
        if (m->b) sema_check_initializer(S, m->b, t);
        t = tl_type_with_origin(S->arena, t, m->loc, m->name, 1);
        m->type = (struct TlType *)t;
        sema_declare(S, info->scope, m->name, SYM_MEMBER, m, m->loc, t);
        break;
    }
    case TL_N_ASSIGN: {
        const TlType *t = sema_expr(S, m->a);
        if (m->b) {
            const TlType *want = sema_resolve_type(S, m->b, 0);
            if (!sema_types_match(S, want, t)) {
                char w[256], g[256];
                tl_type_format(w, sizeof w, want);
                tl_type_format(g, sizeof g, t);
                tl_error(m->a ? m->a->loc : m->loc, "member is declared as %s but its value is %s", w, g);
            }
            t = want;
        }
        if (m->list.n != 1 || !m->list.v[0] || m->list.v[0]->kind != TL_N_IDENT) {
            tl_error(m->loc, "a model member binds exactly one name");
            break;
        }
        TlNode *id = m->list.v[0];
        t = tl_type_with_origin(S->arena, t, id->loc, id->name, 2);
        id->type = (struct TlType *)t;
        sema_declare(S, info->scope, id->name, SYM_MEMBER, m, id->loc, t);
        break;
    }
    case TL_N_FN: {
        DeclInfo *fi = sema_info(S, m);
        fi->model = model;
        fi->module = info->module;
        fi->outer = info->scope;
        sema_declare(S, info->scope, m->name, SYM_FN, m, m->loc, NULL);
        break;
    }
    case TL_N_IF: {
        const TlType *c = sema_expr(S, m->a);
        if (!tl_type_is_error(c) && c->kind != TL_T_BOOL) {
            char b[256];
            tl_type_format(b, sizeof b, c);
            tl_error(m->a->loc, "condition of a model's 'if' must be a compile-time bool, not %s", b);
        }
        if (m->b) declare_members(S, model, info, &m->b->list);
        if (m->c) {
            if (m->c->kind == TL_N_IF) declare_member(S, model, info, m->c);
            else declare_members(S, model, info, &m->c->list);
        }
        break;
    }
    case TL_N_FOR: {
        const TlType *it = sema_expr(S, m->a);
        sema_push(S, SC_LOOP);
        for (int i = 0; i < m->list.n; i++) {
            TlNode *v = m->list.v[i];
            if (!v) continue;
            const TlType *vt = it && it->kind == TL_T_LIST ? it->elems[0] : tl_type_int(S->arena, NULL);
            Sym *s = sema_declare(S, S->scope, v->name, SYM_LOOPVAR, v, v->loc, vt);
            if (s) s->used = 1;
        }
        /* members in the loop body still belong to the model */
        if (m->b) declare_members(S, model, info, &m->b->list);
        sema_pop(S);
        break;
    }
    case TL_N_BLOCK: declare_members(S, model, info, &m->list); break;
    default:
        tl_error(m->loc, "unexpected %s in a model body", tl_node_kind_name(m->kind));
        break;
    }
}

static void declare_members(Sema *S, TlNode *model, DeclInfo *info, TlList *list) {
    for (int i = 0; i < list->n; i++) declare_member(S, model, info, list->v[i]);
}

void sema_ensure_model(Sema *S, TlNode *model) {
    DeclInfo *info = sema_info(S, model);
    if (info->state == 2) return;
    if (info->state == 1) {
        tl_error(model->loc, "model '%s' contains itself", model->name ? model->name : "?");
        return;
    }
    if (S->depth > 100) return;
    S->depth++;
    info->state = 1;
    Saved sv = sema_enter(S, info, info->outer);
    info->scope = sema_push(S, SC_MODEL);
    TlType *self = tl_type_new(S->arena, TL_T_INSTANCE);
    self->decl = model;
    self->env = tl_arena_alloc(S->arena, sizeof *self->env);
    self->nh = model->list.n;
    self->hnames = tl_arena_alloc(S->arena, sizeof *self->hnames * (size_t)(self->nh + 1));
    self->hvals = tl_arena_alloc(S->arena, sizeof *self->hvals * (size_t)(self->nh + 1));
    for (int i = 0; i < model->list.n; i++) {
        TlNode *p = model->list.v[i];
        if (!p || !p->name) continue;
        const TlType *t = NULL, *dt = NULL;
        if (p->b) {
            S->scope = info->outer;
            dt = sema_expr(S, p->b);
            S->scope = info->scope;
            if (!sema_is_const_value(dt)) {
                tl_error(p->b->loc, "the default of hyper-parameter '%s' must be known at compile time",
                         p->name);
                dt = tl_type_error();
            }
            p->b->type = (struct TlType *)dt;
        }
        const TlType *decl = p->a ? sema_resolve_type(S, p->a, 0) : dt;
        TlTypeKind k = decl && !tl_type_is_error(decl) ? decl->kind : TL_T_INT;
        if (k == TL_T_INT) t = tl_type_int(S->arena, tl_dim_sym(S->arena, p->name));
        else if (k == TL_T_FLOAT) t = tl_type_float(S->arena, 0, 0);
        else if (k == TL_T_BOOL) t = tl_type_bool(S->arena, 0, 0);
        else if (k == TL_T_STR) t = tl_type_str(S->arena, NULL);
        else if (k == TL_T_TUPLE && !p->a) t = dt;
        else {
            char b[256];
            tl_type_format(b, sizeof b, decl);
            tl_error(p->loc, "hyper-parameter '%s' must be an int, float, bool or str, not %s", p->name, b);
            t = tl_type_error();
        }
        if (p->a && dt && !tl_type_is_error(dt) && !sema_types_match(S, t, dt)) {
            char w[256], g[256];
            tl_type_format(w, sizeof w, t);
            tl_type_format(g, sizeof g, dt);
            tl_error(p->b->loc, "default value of '%s' is %s, but the hyper-parameter is %s", p->name, g, w);
        }
        p->type = (struct TlType *)t;
        sema_declare(S, info->scope, p->name, SYM_HYPER, p, p->loc, t);
        if (t->kind == TL_T_INT) tl_dim_env_bind(S->arena, self->env, p->name, t->val);
        self->hnames[i] = p->name;
        self->hvals[i] = t;
    }
    info->type = self;
    declare_members(S, model, info, &model->list2);
    S->scope = info->outer;
    sema_leave(S, sv);
    info->state = 2;
    S->depth--;
}

void sema_check_model(Sema *S, TlNode *model) {
    sema_ensure_model(S, model);
    DeclInfo *info = sema_info(S, model);
    if (!info->scope) return;
    for (Sym *s = info->scope->syms; s; s = s->next)
        if (s->kind == SYM_FN && s->decl) sema_check_fn_body(S, s->decl);
    Sym *fwd = sema_lookup_in(info->scope, "forward");
    (void)fwd;
}

