/* lower_train.c — a train block to a TlTrainPlan: the step graph (forward, backward,
 * clipping, schedule, optimizer update) and the eval graph. See train.h. */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "lower_internal.h"
#include "simplify.h"
#include "train.h"

TlNode *tl_train_find(TlProgram *prog, const char *name) {
    if (!prog || prog->nmodules == 0 || !prog->modules[0]->ast || !prog->modules[0]->ast->root) return NULL;
    TlList *items = &prog->modules[0]->ast->root->list;
    TlNode *found = NULL;
    for (int i = 0; i < items->n; i++) {
        TlNode *it = items->v[i];
        if (it->kind != TL_N_TRAIN) continue;
        if (name && it->name && strcmp(it->name, name) == 0) return it;
        if (!name) {
            if (found) return NULL; /* several: the caller must name one */
            found = it;
        }
    }
    return found;
}

/* ---- flags ---- */

static int register_in(TlNode *e, TlArgs *args, int *failed);

static int register_list(TlList *l, TlArgs *args, int *failed) {
    for (int i = 0; i < l->n; i++) register_in(l->v[i], args, failed);
    return 0;
}

static int register_in(TlNode *e, TlArgs *args, int *failed) {
    if (!e) return 0;
    if (e->kind == TL_N_CALL && e->a && e->a->kind == TL_N_IDENT && strcmp(e->a->name, "arg") == 0 && e->list.n == 2) {
        TlNode *n = e->list.v[0], *d = e->list.v[1];
        if (n->kind != TL_N_STRING) {
            tl_error(n->loc, "arg(): the flag name must be a string literal");
            *failed = 1;
            return 0;
        }
        char def[64], err[256];
        TlArgKind kind;
        const char *defstr = def;
        int neg = d->kind == TL_N_UNARY && d->op == TL_OP_NEG && d->a;
        TlNode *lit = neg ? d->a : d;
        switch (lit->kind) {
        case TL_N_INT:
            kind = TL_ARG_INT;
            snprintf(def, sizeof def, "%s%lld", neg ? "-" : "", (long long)lit->ival);
            break;
        case TL_N_FLOAT:
            kind = TL_ARG_FLOAT;
            /* 15 significant digits: 3e-4 shows as 0.0003, as written */
            snprintf(def, sizeof def, "%s%.15g", neg ? "-" : "", lit->fval);
            break;
        case TL_N_BOOL:
            kind = TL_ARG_BOOL;
            defstr = lit->ival ? "true" : "false";
            break;
        case TL_N_STRING:
            kind = TL_ARG_STRING;
            defstr = lit->str;
            break;
        default:
            tl_error(d->loc, "arg(): the default must be a literal number, bool or string");
            *failed = 1;
            return 0;
        }
        /* the same flag may be read in several places: register once */
        int was = 0;
        for (int k = 0; n->str[k]; k++) (void)k;
        if (tl_args_add(args, n->str, kind, defstr, NULL, err, sizeof err) != 0) {
            /* already registered with the same kind is fine */
            was = strstr(err, "registered") != NULL || strstr(err, "twice") != NULL || strstr(err, "already") != NULL;
            if (!was) {
                tl_error(n->loc, "%s", err);
                *failed = 1;
            }
        }
    }
    register_in(e->a, args, failed);
    register_in(e->b, args, failed);
    register_in(e->c, args, failed);
    register_list(&e->list, args, failed);
    register_list(&e->list2, args, failed);
    return 0;
}

int tl_train_register_args(TlNode *train, TlArgs *args) {
    int failed = 0;
    register_in(train, args, &failed);
    return failed ? -1 : 0;
}

/* ---- the data pipeline ---- */

static int eval_pipeline(Lower *L, Env *env, TlNode *e, TlTrainPlan *p) {
    if (e && e->kind == TL_N_BINARY && e->op == TL_OP_PIPE) {
        if (eval_pipeline(L, env, e->a, p) < 0) return -1;
        return eval_pipeline(L, env, e->b, p);
    }
    if (!e || e->kind != TL_N_CALL || !e->a || e->a->kind != TL_N_IDENT) {
        lower_error(L, e ? e->loc : (TlLoc){0}, "a data pipeline is a chain of calls: text(path) | tokenize(t) | batches(B, T)");
        return -1;
    }
    const char *f = e->a->name;
    Value *a[4] = {0};
    int n = 0;
    for (int i = 0; i < e->list.n && n < 4; i++) {
        TlNode *x = e->list.v[i];
        a[n] = lower_expr(L, env, x->kind == TL_N_KWARG ? x->a : x);
        if (!a[n++]) return -1;
    }
    int64_t v;
    if (!strcmp(f, "text")) {
        if (n != 1 || a[0]->kind != V_STR) return lower_error(L, e->loc, "text() takes a path"), -1;
        p->data_path = strdup(a[0]->s);
        p->flag_data = a[0]->flag ? strdup(a[0]->flag) : NULL;
    } else if (!strcmp(f, "tokenize")) {
        if (n != 1 || a[0]->kind != V_TOKENIZER) return lower_error(L, e->loc, "tokenize() takes a tokenizer"), -1;
        p->vocab = a[0]->ival;
        free((char *)p->tokenizer);
        /* byte-level needs no tokenizer object; any other is built from its declaration */
        p->tokenizer = a[0]->ival == 256 && a[0]->decl && a[0]->decl->a && a[0]->decl->a->kind == TL_N_CALL &&
                               a[0]->decl->a->a && a[0]->decl->a->a->kind == TL_N_IDENT &&
                               !strcmp(a[0]->decl->a->a->name, "bytes")
                           ? NULL
                           : strdup(a[0]->decl->name);
    } else if (!strcmp(f, "batches")) {
        if (n != 2 || !lv_const_int(L, a[0], &p->B) || !lv_const_int(L, a[1], &v))
            return lower_error(L, e->loc, "batches(B, T) takes two integers"), -1;
        p->T = v;
        if (p->B < 1 || p->T < 1) return lower_error(L, e->loc, "batches(B, T): sizes must be positive"), -1;
    } else {
        return lower_error(L, e->loc, "%s() is not a data stage that can train here yet (text, tokenize, batches)", f), -1;
    }
    return 0;
}

/* ---- settings ---- */

static int64_t setting_int(Lower *L, Env *env, const char *name, int64_t def) {
    Value *v = env_get(env, name);
    int64_t c;
    if (!v) return def;
    if (lv_const_int(L, v, &c)) return c;
    if (v->kind == V_FLOAT) return (int64_t)v->f;
    lower_error(L, (TlLoc){0}, "setting '%s' must be an integer", name);
    return def;
}

static double setting_float(Lower *L, Env *env, const char *name, double def) {
    Value *v = env_get(env, name);
    int64_t c;
    if (!v) return def;
    if (v->kind == V_FLOAT) return v->f;
    if (lv_const_int(L, v, &c)) return (double)c;
    lower_error(L, (TlLoc){0}, "setting '%s' must be a number", name);
    return def;
}

static const char *setting_flag(Env *env, const char *name) {
    Value *v = env_get(env, name);
    return v && v->flag ? strdup(v->flag) : NULL;
}

/* Evaluates the train block's bindings into env (the model is instantiated, so its params
 * exist in L->g). */
static Env *eval_bindings(Lower *L, TlNode *train, TlTrainPlan *p) {
    Module *main = L->mods[0];
    Env *env = env_frame(L, main->globals);
    Instance *self = tl_arena_alloc(L->arena, sizeof *self);
    self->decl = train;
    self->mod = main;
    self->env = env;
    self->path = "";
    TlNode *body = train->b;
    for (int i = 0; body && i < body->list.n && !L->failed; i++) {
        TlNode *s = body->list.v[i];
        if (s->kind == TL_N_FN) {
            Value *f = lv_new(L, V_FUNC);
            f->decl = s;
            f->mod = main;
            f->inst = self;
            env_set(L, env, s->name, f);
            continue;
        }
        if (s->kind == TL_N_IF) {
            /* a condition on the flags, decided when the plan is made */
            if (lower_exec_stmt(L, env, s) < 0) return NULL;
            continue;
        }
        if (s->kind != TL_N_ASSIGN || s->list.n != 1 || s->list.v[0]->kind != TL_N_IDENT) {
            lower_error(L, s->loc, "a train block holds `name = value` bindings, fns and ifs on its flags");
            return NULL;
        }
        const char *name = s->list.v[0]->name;
        if (!strcmp(name, "data")) {
            if (p && eval_pipeline(L, env, s->a, p) < 0) return NULL;
            continue;
        }
        /* sub-models of the model are named from its root: "wte", "blocks.0.ln1.w" */
        Value *v = lower_expr(L, env, s->a);
        if (!v) return NULL;
        env_set(L, env, name, v);
    }
    return L->failed ? NULL : env;
}

/* The bindings alone (the data pipeline skipped), for other graphs of the same model, such
 * as the sampling graphs of compiler/sample.c. */
Env *lower_train_bindings(Lower *L, TlNode *train) { return eval_bindings(L, train, NULL); }

static Value *call_method(Lower *L, Value *model, const char *method, Value **args, int n, TlLoc loc) {
    Value *m = env_get(model->inst->env, method);
    if (!m || m->kind != V_FUNC) return lower_error(L, loc, "'%s' has no method '%s'", model->inst->decl->name, method);
    return lower_call_value(L, m, args, NULL, NULL, n, 0, loc);
}

static Value *tensor_value(Lower *L, TlGraph *g, int id) {
    Value *v = lv_new(L, V_TENSOR);
    v->g = g;
    v->id = id;
    return v;
}

static int find_param(TlGraph *g, int node) {
    (void)g;
    return node;
}

/* The loss of a batch: the train block's `loss(x, y)`. */
static int build_loss(Lower *L, Env *env, TlTrainPlan *p, int *x, int *y, TlLoc loc) {
    TlGDim d[2] = {tl_gdim_const(L->g, p->B), tl_gdim_const(L->g, p->T)};
    *x = tl_g_input(L->g, "x", TL_I32, tl_gshape_dims(2, d), loc);
    *y = tl_g_input(L->g, "y", TL_I32, tl_gshape_dims(2, d), loc);
    Value *loss_fn = env_get(env, "loss");
    if (!loss_fn || loss_fn->kind != V_FUNC) {
        lower_error(L, loc, "the train block needs `fn loss(x: i32[B, T], y: i32[B, T]) -> f32`");
        return -1;
    }
    Value *args[2] = {tensor_value(L, L->g, *x), tensor_value(L, L->g, *y)};
    Value *r = lower_call_value(L, loss_fn, args, NULL, NULL, 2, 0, loc);
    if (!r) return -1;
    int id = lower_tensor(L, r, 0, loc);
    if (id < 0) return -1;
    if (L->g->nodes[id].shape.rank != 0 || !tl_dtype_is_float(L->g->nodes[id].dtype)) {
        lower_error(L, loss_fn->decl->loc, "the loss must be a float scalar");
        return -1;
    }
    return id;
}

/* Gradient accumulation over k micro-batches (x, y: i32[k, B, T]): one scan whose body
 * computes a micro-batch's loss and its gradients and adds them to carried accumulators,
 * so only one micro-batch's activations are alive at a time. Returns the mean loss and
 * sets grads[i] to the mean gradients. */
static int build_accum(Lower *L, Env *env, TlTrainPlan *p, int k, int n, const int *pnodes, int *grads, TlLoc loc) {
    TlGraph *g = L->g;
    TlGDim d[3] = {tl_gdim_const(g, k), tl_gdim_const(g, p->B), tl_gdim_const(g, p->T)};
    p->x = tl_g_input(g, "x", TL_I32, tl_gshape_dims(3, d), loc);
    p->y = tl_g_input(g, "y", TL_I32, tl_gshape_dims(3, d), loc);
    Value *loss_fn = env_get(env, "loss");
    if (!loss_fn || loss_fn->kind != V_FUNC) {
        lower_error(L, loc, "the train block needs `fn loss(x: i32[B, T], y: i32[B, T]) -> f32`");
        return -1;
    }
    ScanFrame *f = tl_arena_alloc(L->arena, sizeof *f);
    f->parent = g;
    f->body = tl_graph_new_body(g);
    f->index_name = "";
    TlGraph *body = f->body;
    int *init = tl_arena_alloc(L->arena, sizeof(int) * (size_t)(n + 2));
    int *carry = tl_arena_alloc(L->arena, sizeof(int) * (size_t)(n + 2));
    TlGShape scalar = tl_gshape_dims(0, NULL);
    for (int i = 0; i < n; i++) {
        const TlGNode *pn = &g->nodes[pnodes[i]];
        init[i] = tl_g_const(g, 0.0, pn->dtype, pn->shape, loc);
        carry[i] = tl_g_input(body, tl_arena_printf(L->arena, "acc.%d", i), pn->dtype, pn->shape, loc);
    }
    init[n] = tl_g_const(g, 0.0, TL_F32, scalar, loc);
    carry[n] = tl_g_input(body, "acc.loss", TL_F32, scalar, loc);
    L->cur = body;
    L->scan = f;
    int xs = lower_seq_input(L, p->x, 0, loc), ys = lower_seq_input(L, p->y, 0, loc);
    Value *args[2] = {tensor_value(L, body, xs), tensor_value(L, body, ys)};
    Value *r = lower_call_value(L, loss_fn, args, NULL, NULL, 2, 0, loc);
    int lb = r ? lower_tensor(L, r, TL_F32, loc) : -1;
    int *pin = tl_arena_alloc(L->arena, sizeof(int) * (size_t)(n + 1));
    int *gb = tl_arena_alloc(L->arena, sizeof(int) * (size_t)(n + 1));
    int ok = lb >= 0 && !L->failed;
    for (int i = 0; ok && i < n; i++) pin[i] = lower_import(L, f, g, pnodes[i]);
    if (ok && tl_grad(body, lb, n, pin, gb) < 0) {
        lower_error(L, loc, "internal: autodiff: %s", tl_graph_error(body));
        ok = 0;
    }
    if (ok) {
        for (int i = 0; i < n; i++) tl_graph_add_output(body, tl_g_add(body, carry[i], gb[i], loc));
        tl_graph_add_output(body, tl_g_add(body, carry[n], lb, loc));
        int m = 0;
        for (int i = 0; i <= n; i++) body->inputs[m++] = carry[i];
        for (int i = 0; i < f->nseq; i++) body->inputs[m++] = f->seq_inner[i];
        for (int i = 0; i < f->ninv; i++) body->inputs[m++] = f->inv_inner[i];
        if (m != body->ninputs) {
            lower_error(L, loc, "internal: accumulation body has %d inputs, expected %d", body->ninputs, m);
            ok = 0;
        }
    }
    L->cur = g;
    L->scan = NULL;
    if (!ok) return -1;
    int *res = tl_arena_alloc(L->arena, sizeof(int) * (size_t)(n + 2));
    if (tl_g_scan(g, body, n + 1, init, f->nseq, f->seq_outer, f->ninv, f->inv_outer, 0, res, loc) < 0) {
        lower_error(L, loc, "internal: %s", tl_graph_error(g));
        return -1;
    }
    int kf = tl_g_const(g, (double)k, TL_F32, scalar, loc);
    for (int i = 0; i < n; i++) grads[i] = tl_g_broadcast_binary(g, TL_GOP_DIV, res[i], kf, loc);
    return tl_g_div(g, res[n], kf, loc);
}

static Value *optim_fn(Lower *L, const char *name) {
    for (int i = 0; i < L->nmods; i++)
        if (L->mods[i]->m->name && !strcmp(L->mods[i]->m->name, "optim")) return env_get(L->mods[i]->globals, name);
    return NULL;
}

TlTrainPlan *tl_train_plan(TlProgram *prog, TlNode *train, TlArgs *args) {
    TlTrainPlan *p = calloc(1, sizeof *p);
    p->name = train->name;
    p->seed_in = -1;
    p->eseed = -1;
    TlLoc loc = train->loc;
    Lower *L = lower_new(prog);
    L->args = args;
    Env *env = eval_bindings(L, train, p);
    Value *model = env ? env_get(env, "model") : NULL;
    Value *opt = env ? env_get(env, "opt") : NULL;
    if (env && (!model || model->kind != V_MODEL)) lower_error(L, loc, "the train block needs `model = SomeModel(...)`");
    if (env && !L->failed && (!opt || opt->kind != V_MODEL)) lower_error(L, loc, "the train block needs `opt = optim.AdamW(...)` (or another optimizer)");
    if (env && !L->failed && !p->data_path) lower_error(L, loc, "the train block needs `data = text(path) | tokenize(t) | batches(B, T)`");
    if (!L->failed) {
        p->steps = setting_int(L, env, "steps", 1000);
        p->log_every = setting_int(L, env, "log_every", 10);
        p->eval_every = setting_int(L, env, "eval_every", 0);
        p->checkpoint_every = setting_int(L, env, "checkpoint_every", 0);
        p->seed = setting_int(L, env, "seed", 1337);
        p->warmup = setting_int(L, env, "warmup", 0);
        p->grad_accum = setting_int(L, env, "grad_accum", 1);
        p->clip = setting_float(L, env, "clip", 0.0);
        Value *out = env_get(env, "out");
        p->out = strdup(out && out->kind == V_STR ? out->s : "out");
        p->flag_steps = setting_flag(env, "steps");
        p->flag_log_every = setting_flag(env, "log_every");
        p->flag_eval_every = setting_flag(env, "eval_every");
        p->flag_checkpoint_every = setting_flag(env, "checkpoint_every");
        p->flag_seed = setting_flag(env, "seed");
        p->flag_out = setting_flag(env, "out");
    }
    int loss = -1;
    TlGraph *g = L->g;
    int np = L->nparams;
    int *pnodes = calloc((size_t)np + 1, sizeof(int)), *grads = calloc((size_t)np + 1, sizeof(int));
    /* trainable = ["*.lora_a", "cls.*"]: only params matching a pattern train (the rest
     * stay as they are, like buffers: no gradient, no optimizer state) */
    Value *tr = env ? env_get(env, "trainable") : NULL;
    if (tr && tr->kind != V_LIST && tr->kind != V_TUPLE) lower_error(L, loc, "trainable must be a list of name patterns");
    for (int i = 0; tr && !L->failed && i < np; i++) {
        int match = 0;
        for (int k = 0; k < tr->n; k++) {
            if (tr->items[k]->kind != V_STR) {
                lower_error(L, loc, "trainable: patterns are strings such as \"*.lora_a\"");
                break;
            }
            if (fnmatch(tr->items[k]->s, L->params[i].name, 0) == 0) match = 1;
        }
        if (!match) L->params[i].buffer = 1;
    }
    int ntrain = 0;
    for (int i = 0; i < np; i++)
        if (!L->params[i].buffer) pnodes[ntrain++] = L->params[i].node;
    if (tr && !L->failed && ntrain == 0) lower_error(L, loc, "trainable matches no parameter");
    p->accum = p->grad_accum > 1 ? p->grad_accum : 1;
    if (L->failed) {
    } else if (p->accum > 1) {
        /* the mean loss and gradients of accum micro-batches */
        loss = build_accum(L, env, p, (int)p->accum, ntrain, pnodes, grads, loc);
    } else {
        loss = build_loss(L, env, p, &p->x, &p->y, loc);
        /* gradients of the trainable params */
        if (loss >= 0 && !L->failed && tl_grad(g, loss, ntrain, pnodes, grads) < 0)
            lower_error(L, loc, "internal: autodiff: %s", tl_graph_error(g));
    }
    /* schedule: lr(step) from optim.warmup_cosine, down to lr/10 at the last step */
    int stepnum = -1, lr = -1, t = -1;
    Value *base_lr = NULL;
    if (!L->failed) {
        stepnum = tl_g_input(g, "step", TL_F32, tl_gshape_dims(0, NULL), loc);
        t = tl_g_add(g, stepnum, tl_g_const(g, 1.0, TL_F32, tl_gshape_dims(0, NULL), loc), loc);
        base_lr = env_get(opt->inst->env, "lr");
        double lr0 = 1e-3;
        int64_t c;
        if (base_lr && base_lr->kind == V_FLOAT) lr0 = base_lr->f;
        else if (lv_const_int(L, base_lr, &c)) lr0 = (double)c;
        p->lr = lr0;
        p->flag_lr = base_lr && base_lr->flag ? strdup(base_lr->flag) : NULL;
        /* the peak rate and the step count are inputs, so a built program takes --lr and
         * --steps at run time */
        TlGShape scalar = tl_gshape_dims(0, NULL);
        int lr_in = tl_g_input(g, "lr", TL_F32, scalar, loc);
        int total = tl_g_input(g, "steps", TL_F32, scalar, loc);
        /* schedule = "cosine" (the default: warmup then cosine decay to lr/10), "linear"
         * (warmup then linear decay to 0), or "constant" */
        Value *sv = env_get(env, "schedule");
        const char *sname = sv && sv->kind == V_STR ? sv->s : "cosine";
        if (strcmp(sname, "cosine") && strcmp(sname, "linear") && strcmp(sname, "constant"))
            lower_error(L, loc, "schedule must be \"cosine\", \"linear\" or \"constant\", not \"%s\"", sname);
        Value *sched = optim_fn(L, !strcmp(sname, "linear") ? "warmup_linear" : "warmup_cosine");
        if (!strcmp(sname, "constant")) sched = NULL;
        if (sched && sched->kind == V_FUNC && !strcmp(sname, "linear")) {
            Value *a[4] = {tensor_value(L, g, stepnum), tensor_value(L, g, lr_in),
                           lv_float(L, (double)(p->warmup > 0 ? p->warmup : 0)), tensor_value(L, g, total)};
            Value *r = lower_call_value(L, sched, a, NULL, NULL, 4, 0, loc);
            lr = r ? lower_tensor(L, r, TL_F32, loc) : -1;
        } else if (sched && sched->kind == V_FUNC) {
            int lr_min = tl_g_mul(g, lr_in, tl_g_const(g, 0.1, TL_F32, scalar, loc), loc);
            Value *a[5] = {tensor_value(L, g, stepnum), tensor_value(L, g, lr_in),
                           lv_float(L, (double)(p->warmup > 0 ? p->warmup : 0)), tensor_value(L, g, total),
                           tensor_value(L, g, lr_min)};
            Value *r = lower_call_value(L, sched, a, NULL, NULL, 5, 0, loc);
            lr = r ? lower_tensor(L, r, TL_F32, loc) : -1;
        } else {
            lr = lr_in;
        }
        p->lr_in = lr_in;
        p->steps_in = total;
    }
    /* clipping by global norm: every gradient times min(1, clip / |g|) */
    if (!L->failed && p->clip > 0) {
        int sumsq = -1;
        for (int i = 0; i < ntrain; i++) {
            int sq = tl_g_mul(g, grads[i], grads[i], loc);
            int r = g->nodes[sq].shape.rank;
            int s = r ? tl_g_reduce(g, TL_GOP_SUM, sq, (uint32_t)((1u << r) - 1), 0, loc) : sq;
            sumsq = sumsq < 0 ? s : tl_g_add(g, sumsq, s, loc);
        }
        Value *cf = optim_fn(L, "clip_factor");
        if (sumsq >= 0 && cf && cf->kind == V_FUNC) {
            Value *a[2] = {tensor_value(L, g, sumsq), lv_float(L, p->clip)};
            Value *r = lower_call_value(L, cf, a, NULL, NULL, 2, 0, loc);
            int f = r ? lower_tensor(L, r, TL_F32, loc) : -1;
            for (int i = 0; i < ntrain && f >= 0; i++) grads[i] = tl_g_broadcast_binary(g, TL_GOP_MUL, grads[i], f, loc);
        }
    }
    /* the optimizer: state from opt.init(p), then opt.update(p, g, state.., lr, wd, t) */
    p->params = calloc((size_t)np + 1, sizeof *p->params);
    p->param_out = calloc((size_t)np + 1, sizeof(int));
    p->nparams = np;
    int cap = 0, outcount = 2;
    int *outs = calloc((size_t)np * 8 + 4, sizeof(int));
    outs[0] = loss;
    outs[1] = lr;
    Value *wdv = opt && opt->kind == V_MODEL ? env_get(opt->inst->env, "weight_decay") : NULL;
    double wd = wdv && wdv->kind == V_FLOAT ? wdv->f : 0.0;
    for (int i = 0, k = 0; i < np && !L->failed; i++) {
        p->params[i] = L->params[i];
        p->params[i].name = strdup(L->params[i].name);
        p->param_out[i] = -1;
        if (L->params[i].buffer) continue;
        int pn = L->params[i].node, gn = grads[k++];
        Value *pv = tensor_value(L, g, pn);
        Value *init = call_method(L, opt, "init", &pv, 1, loc);
        if (!init) break;
        int ns = init->kind == V_TUPLE ? init->n : 1;
        Value *uargs[16];
        int na = 0;
        uargs[na++] = pv;
        uargs[na++] = tensor_value(L, g, gn);
        for (int s = 0; s < ns && na < 12; s++) {
            Value *sv = init->kind == V_TUPLE ? init->items[s] : init;
            int sid = lower_tensor(L, sv, 0, loc);
            if (sid < 0) break;
            p->states = realloc(p->states, sizeof *p->states * (size_t)(p->nstates + 1));
            TlTrainState *st = &p->states[p->nstates++];
            st->name = tl_arena_printf(L->arena, "opt.%d.%s", s, L->params[i].name);
            st->name = strdup(st->name);
            st->param = i;
            st->input = tl_g_input(g, st->name, g->nodes[sid].dtype, g->nodes[sid].shape, loc);
            uargs[na++] = tensor_value(L, g, st->input);
        }
        /* no weight decay on biases and norms (rank < 2) */
        int rank = g->nodes[pn].shape.rank;
        uargs[na++] = tensor_value(L, g, lr);
        uargs[na++] = lv_float(L, rank >= 2 ? wd : 0.0);
        uargs[na++] = tensor_value(L, g, t);
        Value *r = call_method(L, opt, "update", uargs, na, loc);
        if (!r) break;
        if (r->kind != V_TUPLE || r->n != ns + 1) {
            lower_error(L, opt->inst->decl->loc, "%s.update must return the new param and its %d state tensors", opt->inst->decl->name, ns);
            break;
        }
        p->param_out[i] = outcount;
        outs[outcount++] = lower_tensor(L, r->items[0], 0, loc);
        for (int s = 0; s < ns; s++) outs[outcount++] = lower_tensor(L, r->items[1 + s], 0, loc);
    }
    (void)cap;
    (void)find_param;
    if (!L->failed) {
        p->state_out = calloc((size_t)p->nstates + 1, sizeof(int));
        int si = 0;
        for (int i = 0; i < np; i++) {
            if (p->param_out[i] < 0) continue;
            int k = p->param_out[i] + 1;
            while (si < p->nstates && p->states[si].param == i) p->state_out[si++] = k++;
        }
        for (int i = 0; i < outcount; i++) tl_graph_add_output(g, outs[i]);
        p->loss_out = 0;
        p->lr_out = 1;
        p->stepnum = stepnum;
        p->seed_in = L->seed_input;
        if (tl_graph_error(g)) lower_error(L, loc, "internal: graph: %s", tl_graph_error(g));
    }
    free(outs);
    free(pnodes);
    free(grads);
    int failed = L->failed;
    p->step = L->g;
    tl_arena_free(L->arena);
    free(L);
    if (failed) {
        tl_train_plan_free(p);
        return NULL;
    }
    /* simplify: CSE, folding and dead code (e.g. the optimizer's unused init values) */
    int *remap = calloc((size_t)p->step->nnodes + 1, sizeof(int));
    tl_simplify(p->step, TL_SIMPLIFY_ALL, NULL, remap);
    p->x = remap[p->x];
    p->y = remap[p->y];
    p->stepnum = remap[p->stepnum];
    p->lr_in = remap[p->lr_in];
    p->steps_in = remap[p->steps_in];
    if (p->seed_in >= 0) p->seed_in = remap[p->seed_in];
    for (int i = 0; i < p->nparams; i++) p->params[i].node = remap[p->params[i].node];
    for (int i = 0; i < p->nstates; i++) p->states[i].input = remap[p->states[i].input];
    free(remap);

    /* the eval graph: the same bindings, the loss only */
    Lower *E = lower_new(prog);
    E->args = args;
    Env *eenv = eval_bindings(E, train, NULL);
    int eloss = eenv ? build_loss(E, eenv, p, &p->ex, &p->ey, loc) : -1;
    if (eloss >= 0 && !E->failed) {
        tl_graph_add_output(E->g, eloss);
        p->eseed = E->seed_input;
        p->eval = E->g;
    } else {
        tl_graph_free(E->g);
    }
    int efailed = E->failed || eloss < 0;
    tl_arena_free(E->arena);
    free(E);
    if (efailed) {
        tl_train_plan_free(p);
        return NULL;
    }
    return p;
}

void tl_train_plan_free(TlTrainPlan *p) {
    if (!p) return;
    for (int i = 0; i < p->nparams; i++) free((char *)p->params[i].name);
    for (int i = 0; i < p->nstates; i++) free((char *)p->states[i].name);
    free(p->params);
    free(p->param_out);
    free(p->states);
    free(p->state_out);
    free((char *)p->data_path);
    free((char *)p->tokenizer);
    const char **flags[] = {&p->flag_steps, &p->flag_log_every, &p->flag_eval_every, &p->flag_checkpoint_every,
                            &p->flag_seed, &p->flag_out, &p->flag_data, &p->flag_lr};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) free((char *)*flags[i]);
    free((char *)p->out);
    if (p->step) tl_graph_free(p->step);
    if (p->eval) tl_graph_free(p->eval);
    free(p);
}
