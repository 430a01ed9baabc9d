/* test_dims.c — symbolic dimension arithmetic: canonical forms, equality, division,
 * printing, unification and broadcasting (compiler/dims.h). */
#include <string.h>
#include "check.h"
#include "dims.h"

static TlArena *A;
static const TlDim *S(const char *n) { return tl_dim_sym(A, n); }
static const TlDim *C(int64_t v) { return tl_dim_const(A, v); }
static const TlDim *add(const TlDim *x, const TlDim *y) { return tl_dim_add(A, x, y); }
static const TlDim *sub(const TlDim *x, const TlDim *y) { return tl_dim_sub(A, x, y); }
static const TlDim *mul(const TlDim *x, const TlDim *y) { return tl_dim_mul(A, x, y); }
static const TlDim *dv(const TlDim *x, const TlDim *y) { return tl_dim_div(A, x, y, NULL); }
static const char *str(const TlDim *d) { return tl_dim_str(A, d); }
#define EXPECT_STR(d, s) EXPECTF(strcmp(str(d), (s)) == 0, "got '%s', want '%s'", str(d), (s))

TEST(commutative_product) {
    EXPECT(tl_dim_cmp(mul(C(4), S("D")), mul(S("D"), C(4))) == TL_DIM_EQ);
    EXPECT_STR(mul(S("D"), C(4)), "4 * D");
    EXPECT(tl_dim_cmp(mul(S("B"), S("T")), mul(S("T"), S("B"))) == TL_DIM_EQ);
}

TEST(exact_division_cancels) {
    const TlDim *d = mul(dv(S("D"), S("H")), S("H"));
    EXPECT(tl_dim_cmp(d, S("D")) == TL_DIM_EQ);
    EXPECT_STR(dv(S("D"), S("H")), "D / H");
    EXPECT_STR(dv(mul(C(4), S("D")), C(2)), "2 * D");
    EXPECT_STR(dv(S("D"), mul(C(2), S("H"))), "D / (2 * H)");
}

TEST(sums_merge_and_cancel) {
    EXPECT(tl_dim_cmp(sub(add(S("T"), C(1)), C(1)), S("T")) == TL_DIM_EQ);
    EXPECT_STR(sub(S("T"), C(1)), "T - 1");
    EXPECT_STR(add(mul(C(2), S("T")), C(1)), "2 * T + 1");
    EXPECT_STR(sub(S("T"), S("T")), "0");
    EXPECT_STR(add(S("B"), S("B")), "2 * B");
    EXPECT_STR(dv(add(S("T"), C(1)), C(2)), "(T + 1) / 2");
}

TEST(constants_fold) {
    int64_t v = 0;
    EXPECT(tl_dim_is_const(mul(add(C(3), C(5)), C(32)), &v) && v == 256);
    int err = 0;
    const TlDim *d = tl_dim_div(A, C(256), C(6), &err);
    EXPECT(err == 2 && d->kind == TL_DIM_ANY);
    err = 0;
    EXPECT(tl_dim_is_const(tl_dim_div(A, C(256), C(4), &err), &v) && v == 64 && err == 0);
    err = 0;
    tl_dim_div(A, S("D"), C(0), &err);
    EXPECT(err == 1);
    EXPECT(tl_dim_is_const(tl_dim_mod(A, C(-7), C(3), NULL), &v) && v == 2);
}

TEST(opaque_floor_division) {
    const TlDim *d = dv(S("T"), add(S("K"), C(1)));
    EXPECT_STR(d, "(T / (K + 1))");
    EXPECT(tl_dim_cmp(d, dv(S("T"), add(C(1), S("K")))) == TL_DIM_EQ);
    /* substituting concrete values floors */
    TlDimEnv env = {0};
    tl_dim_env_bind(A, &env, "T", C(10));
    tl_dim_env_bind(A, &env, "K", C(2));
    int64_t v = 0;
    EXPECT(tl_dim_is_const(tl_dim_subst(A, d, &env), &v) && v == 3);
}

TEST(distinct_and_unknown) {
    EXPECT(tl_dim_cmp(C(256), C(512)) == TL_DIM_NE);
    EXPECT(tl_dim_cmp(S("T"), S("D")) == TL_DIM_NE);
    EXPECT(tl_dim_cmp(tl_dim_any(), C(3)) == TL_DIM_MAYBE);
    EXPECT(tl_dim_cmp(tl_dim_dyn(), S("T")) == TL_DIM_MAYBE);
    EXPECT(tl_dim_add(A, tl_dim_any(), C(1))->kind == TL_DIM_ANY);
}

TEST(overflow_is_unknown) {
    const TlDim *big = C(INT64_MAX);
    EXPECT(mul(big, C(4))->kind == TL_DIM_ANY);
    EXPECT(add(big, big)->kind == TL_DIM_ANY);
}

TEST(substitution) {
    TlDimEnv env = {0};
    tl_dim_env_bind(A, &env, "D", mul(C(4), S("E")));
    tl_dim_env_bind(A, &env, "H", S("E"));
    EXPECT_STR(tl_dim_subst(A, dv(S("D"), S("H")), &env), "4");
}

TEST(unify_binds_variables) {
    const TlDim *pat[] = {S("B"), S("T"), S("D")};
    const TlDim *act[] = {C(8), S("N"), C(256)};
    TlDimEnv env = {0};
    TlUnifyErr err;
    EXPECT(tl_shape_unify(A, pat, 3, act, 3, &env, &err));
    EXPECT_STR(tl_dim_env_get(&env, "B"), "8");
    EXPECT_STR(tl_dim_env_get(&env, "T"), "N");
    /* the same variable twice must agree */
    const TlDim *pat2[] = {S("N"), S("N")};
    const TlDim *act2[] = {C(3), C(4)};
    TlDimEnv env2 = {0};
    EXPECT(!tl_shape_unify(A, pat2, 2, act2, 2, &env2, &err));
    EXPECT(err.kind == 2 && err.pat_axis == 1);
    EXPECT_STR(err.expected, "3");
}

TEST(unify_solves_linear) {
    const TlDim *pat[] = {mul(C(4), S("D")), S("D")};
    const TlDim *act[] = {C(1024), C(256)};
    TlDimEnv env = {0};
    EXPECT(tl_shape_unify(A, pat, 2, act, 2, &env, NULL));
    EXPECT_STR(tl_dim_env_get(&env, "D"), "256");
    const TlDim *act2[] = {C(1024), C(128)};
    TlDimEnv env2 = {0};
    TlUnifyErr err;
    EXPECT(!tl_shape_unify(A, pat, 2, act2, 2, &env2, &err));
    EXPECT(err.pat_axis == 1);
}

TEST(unify_ellipsis) {
    const TlDim *pat[] = {tl_dim_ellipsis(), S("D")};
    const TlDim *act[] = {S("B"), S("T"), C(64)};
    TlDimEnv env = {0};
    EXPECT(tl_shape_unify(A, pat, 2, act, 3, &env, NULL));
    EXPECT(env.ell_bound && env.nell == 2);
    const TlDim **out;
    int n = tl_shape_subst(A, pat, 2, &env, &out);
    EXPECT(n == 3 && strcmp(str(out[1]), "T") == 0 && strcmp(str(out[2]), "64") == 0);
    /* the same `...` must match the same dims */
    const TlDim *act2[] = {S("B"), C(64)};
    TlUnifyErr err;
    EXPECT(!tl_shape_unify(A, pat, 2, act2, 2, &env, &err));
    /* too few dims */
    const TlDim *pat3[] = {tl_dim_ellipsis(), S("X"), S("Y")};
    const TlDim *act3[] = {C(3)};
    TlDimEnv env3 = {0};
    EXPECT(!tl_shape_unify(A, pat3, 3, act3, 1, &env3, &err) && err.kind == 1);
}

TEST(broadcasting) {
    const TlDim *x[] = {S("B"), S("T"), C(256)};
    const TlDim *y[] = {C(256)};
    const TlDim **out;
    int n, bx, by;
    EXPECT(tl_shape_broadcast(A, x, 3, y, 1, &out, &n, &bx, &by) && n == 3);
    const TlDim *z[] = {S("T"), C(1)};
    EXPECT(tl_shape_broadcast(A, x, 3, z, 2, &out, &n, &bx, &by) && n == 3);
    EXPECT_STR(out[2], "256");
    const TlDim *w[] = {C(512)};
    EXPECT(!tl_shape_broadcast(A, x, 3, w, 1, &out, &n, &bx, &by) && bx == 2 && by == 0);
    const TlDim *e[] = {tl_dim_ellipsis(), S("D")};
    const TlDim *f[] = {S("D")};
    EXPECT(tl_shape_broadcast(A, e, 2, f, 1, &out, &n, &bx, &by) && n == 2 &&
           out[0]->kind == TL_DIM_ELLIPSIS);
}

int main(void) {
    A = tl_arena_new();
    RUN(commutative_product);
    RUN(exact_division_cancels);
    RUN(sums_merge_and_cancel);
    RUN(constants_fold);
    RUN(opaque_floor_division);
    RUN(distinct_and_unknown);
    RUN(overflow_is_unknown);
    RUN(substitution);
    RUN(unify_binds_variables);
    RUN(unify_solves_linear);
    RUN(unify_ellipsis);
    RUN(broadcasting);
    tl_arena_free(A);
    return check_done();
}
