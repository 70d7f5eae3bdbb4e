/* Reductions over any set of axes (attrs.axes_mask), with keepdims.
 *
 *   sum, prod   floats accumulate in double (at least the float32 accumulation the spec
 *               asks for; 8/16-bit floats round once at the end); integers and bools in
 *               64 bits with wrapping; the result is converted to the output view's dtype
 *               (the core makes it attrs.dtype, int64 or uint64).
 *   min, max    NaN propagates (the first NaN is the result). An empty reduction (the core
 *               rejects it) gives NaN for floats and 0 for integers.
 *   mean        double sum / N; NaN for an empty reduction.
 *   var, std    two passes in double; NaN where N - correction <= 0.
 *   argmin/max  int64 output; the first occurrence; the first NaN wins; the index is the
 *               C-order flat index over the reduced axes (over all axes: the flattened index).
 *   any, all    any dtype; nonzero (NaN is true, -0.0 false); empty: any false, all true.
 */
#include <math.h>
#include <string.h>

#include "kernels_internal.h"

#define RBLK 256

typedef struct red_ctx {
    int op;
    int32_t in_dt, out_dt;
    int kind;
    int outer_ndim;
    int64_t outer_shape[MAIA_MAX_DIMS];
    int64_t outer_in_strides[MAIA_MAX_DIMS];
    int64_t outer_out_strides[MAIA_MAX_DIMS];
    mk_iter inner;
    char *in_base, *out_base;
    size_t in_es, out_es;
    int64_t count;
    double correction;
} red_ctx;

typedef struct acc {
    const red_ctx *c;
    int pass;
    double fsum, fprod, mean;
    uint64_t isum, iprod;
    float fbest;
    int64_t ibest;
    int64_t best_idx, pos;
    int found, nan;
    uint8_t any, all;
} acc;

static void acc_inner(void *va, size_t n, char **ptrs, const int64_t *st) {
    acc *a = (acc *)va;
    const red_ctx *c = a->c;
    int32_t dt = c->in_dt;
    int64_t s = st[0];
    int op = c->op;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < RBLK ? n - done : RBLK;
        const char *p = ptrs[0] + (int64_t)done * s * (int64_t)c->in_es;
        if (op == RED_ANY || op == RED_ALL) {
            uint8_t b[RBLK];
            mk_load_bool(dt, p, s, k, b);
            for (size_t i = 0; i < k; i++) {
                a->any |= b[i];
                a->all &= b[i];
            }
        } else if (c->kind == MK_KIND_FLOAT) {
            float f[RBLK];
            mk_load_f32(dt, p, s, k, f);
            switch (op) {
            case RED_SUM: case RED_MEAN:
                for (size_t i = 0; i < k; i++) a->fsum += f[i];
                break;
            case RED_VAR: case RED_STD:
                if (a->pass == 0)
                    for (size_t i = 0; i < k; i++) a->fsum += f[i];
                else
                    for (size_t i = 0; i < k; i++) {
                        double d = f[i] - a->mean;
                        a->fsum += d * d;
                    }
                break;
            case RED_PROD:
                for (size_t i = 0; i < k; i++) a->fprod *= f[i];
                break;
            default: /* min, max, argmin, argmax */
                for (size_t i = 0; i < k; i++, a->pos++) {
                    float x = f[i];
                    if (a->nan) break;
                    int take;
                    if (x != x) {
                        take = 1;
                        a->nan = 1;
                    } else if (!a->found) {
                        take = 1;
                    } else if (op == RED_MIN || op == RED_ARGMIN) {
                        take = x < a->fbest;
                    } else {
                        take = x > a->fbest;
                    }
                    if (take) {
                        a->fbest = x;
                        a->best_idx = a->pos;
                        a->found = 1;
                    }
                }
                break;
            }
        } else {
            int64_t v[RBLK];
            mk_load_i64(dt, p, s, k, v);
            int u = c->kind == MK_KIND_UINT;
            switch (op) {
            case RED_SUM:
                for (size_t i = 0; i < k; i++) a->isum += (uint64_t)v[i];
                break;
            case RED_PROD:
                for (size_t i = 0; i < k; i++) a->iprod *= (uint64_t)v[i];
                break;
            case RED_MIN: case RED_MAX: case RED_ARGMIN: case RED_ARGMAX: {
                int lo = op == RED_MIN || op == RED_ARGMIN;
                for (size_t i = 0; i < k; i++, a->pos++) {
                    int64_t x = v[i];
                    int take;
                    if (!a->found)
                        take = 1;
                    else if (u)
                        take = lo ? (uint64_t)x < (uint64_t)a->ibest
                                  : (uint64_t)x > (uint64_t)a->ibest;
                    else
                        take = lo ? x < a->ibest : x > a->ibest;
                    if (take) {
                        a->ibest = x;
                        a->best_idx = a->pos;
                        a->found = 1;
                    }
                }
                break;
            }
            default: break;
            }
        }
        done += k;
    }
}

static void red_range(void *vc, int64_t begin, int64_t end) {
    const red_ctx *c = (const red_ctx *)vc;
    mk_iter it = c->inner; /* a private copy: its base moves per output element */
    for (int64_t o = begin; o < end; o++) {
        int64_t in_off, out_off;
        mk_unravel2(c->outer_ndim, c->outer_shape, c->outer_in_strides, c->outer_out_strides, o,
                    &in_off, &out_off);
        it.base[0] = c->in_base + in_off * (int64_t)c->in_es;
        char *out = c->out_base + out_off * (int64_t)c->out_es;
        acc a;
        memset(&a, 0, sizeof a);
        a.c = c;
        a.fprod = 1.0;
        a.iprod = 1;
        a.all = 1;
        mk_iter_run(&it, 0, c->count, acc_inner, &a);
        if ((c->op == RED_VAR || c->op == RED_STD) && c->count > 0) {
            a.mean = a.fsum / (double)c->count;
            a.fsum = 0;
            a.pass = 1;
            mk_iter_run(&it, 0, c->count, acc_inner, &a);
        }
        float f;
        int64_t iv;
        uint8_t b;
        switch (c->op) {
        case RED_ANY: case RED_ALL:
            b = c->op == RED_ANY ? a.any : a.all;
            mk_store_bool(c->out_dt, out, 1, 1, &b);
            break;
        case RED_ARGMIN: case RED_ARGMAX:
            iv = a.best_idx;
            mk_store_i64(c->out_dt, out, 1, 1, &iv);
            break;
        case RED_SUM: case RED_PROD:
            if (c->kind == MK_KIND_FLOAT) {
                f = (float)(c->op == RED_SUM ? a.fsum : a.fprod);
                mk_store_f32(c->out_dt, out, 1, 1, &f);
            } else {
                iv = (int64_t)(c->op == RED_SUM ? a.isum : a.iprod);
                if (c->kind == MK_KIND_UINT && mk_kind(c->out_dt) == MK_KIND_FLOAT) {
                    f = (float)(uint64_t)iv;
                    mk_store_f32(c->out_dt, out, 1, 1, &f);
                } else {
                    mk_store_i64(c->out_dt, out, 1, 1, &iv);
                }
            }
            break;
        case RED_MIN: case RED_MAX:
            if (c->kind == MK_KIND_FLOAT) {
                f = a.found ? a.fbest : NAN;
                mk_store_f32(c->out_dt, out, 1, 1, &f);
            } else {
                iv = a.found ? a.ibest : 0;
                mk_store_i64(c->out_dt, out, 1, 1, &iv);
            }
            break;
        case RED_MEAN:
            f = (float)(c->count ? a.fsum / (double)c->count : NAN);
            mk_store_f32(c->out_dt, out, 1, 1, &f);
            break;
        default: { /* var, std */
            double dof = (double)c->count - c->correction;
            double v = (dof > 0 && c->count > 0) ? a.fsum / dof : NAN;
            if (c->op == RED_STD) v = sqrt(v);
            f = (float)v;
            mk_store_f32(c->out_dt, out, 1, 1, &f);
            break;
        }
        }
    }
}

unsigned mk_reduction_kinds(int op) {
    switch (op) {
    case RED_SUM: case RED_PROD: return MK_B | MK_I | MK_U | MK_F;
    case RED_MIN: case RED_MAX: case RED_ARGMIN: case RED_ARGMAX: return MK_I | MK_U | MK_F;
    case RED_MEAN: case RED_VAR: case RED_STD: return MK_F;
    default: return MK_B | MK_I | MK_U | MK_F; /* any, all */
    }
}

static const char *const RED_NAMES[RED_COUNT] = {"sum", "prod", "min", "max", "mean", "var",
                                                 "std", "argmin", "argmax", "any", "all"};

int mk_reduction(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st) {
    if (mk_check_counts(call, 1, 1, st)) return st->code;
    const maia_view *x = &call->inputs[0], *out = &call->outputs[0];
    const char *name = RED_NAMES[op];
    uint64_t mask = call->attrs.axes_mask;
    if (x->ndim < 64 && (mask >> x->ndim) != 0)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: axes_mask names an axis >= ndim %d", name,
                       (int)x->ndim);
    if (!((mk_reduction_kinds(op) >> mk_kind(x->dtype)) & 1u))
        return mk_fail(st, MAIA_KERNEL_UNSUPPORTED, "%s is not implemented for %s", name,
                       mk_dtype_name(x->dtype));
    int32_t want = -1;
    switch (op) {
    case RED_MIN: case RED_MAX: case RED_MEAN: case RED_VAR: case RED_STD: want = x->dtype; break;
    case RED_ARGMIN: case RED_ARGMAX: want = MAIA_INT64; break;
    case RED_ANY: case RED_ALL: want = MAIA_BOOL; break;
    default: break; /* sum, prod: converted to whatever the output's dtype is */
    }
    if (want >= 0 && out->dtype != want)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: the output is %s, expected %s", name,
                       mk_dtype_name(out->dtype), mk_dtype_name(want));

    red_ctx c;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.in_dt = x->dtype;
    c.out_dt = out->dtype;
    c.kind = mk_kind(x->dtype);
    c.in_base = (char *)x->data;
    c.out_base = (char *)out->data;
    c.in_es = mk_elsize(x->dtype);
    c.out_es = mk_elsize(out->dtype);
    c.correction = call->attrs.correction;

    /* the expected output shape, and the outer (kept) / inner (reduced) split */
    int keep = call->attrs.keepdims != 0;
    int od = 0, nred = 0;
    int64_t red_shape[MAIA_MAX_DIMS], red_strides[MAIA_MAX_DIMS];
    int expect_ndim = 0;
    c.count = 1;
    for (int d = 0; d < x->ndim; d++) {
        int reduced = (int)((mask >> d) & 1u);
        if (reduced) {
            red_shape[nred] = x->shape[d];
            red_strides[nred] = x->strides[d];
            nred++;
            c.count *= x->shape[d];
            if (keep) {
                if (expect_ndim >= out->ndim || out->shape[expect_ndim] != 1) goto bad_shape;
                expect_ndim++;
            }
        } else {
            if (expect_ndim >= out->ndim || out->shape[expect_ndim] != x->shape[d]) goto bad_shape;
            c.outer_shape[od] = x->shape[d];
            c.outer_in_strides[od] = x->strides[d];
            c.outer_out_strides[od] = out->strides[expect_ndim];
            od++;
            expect_ndim++;
        }
    }
    if (expect_ndim != out->ndim) goto bad_shape;
    c.outer_ndim = od;
    int64_t n_out = mk_view_size(out);
    {
        const int64_t *sp[1] = {red_strides};
        char *bp[1] = {NULL};
        size_t es[1] = {c.in_es};
        mk_iter_init(&c.inner, nred, red_shape, 1, sp, bp, es);
    }
    if (n_out > 0) {
        int threads = call->threads < 1 ? 1 : call->threads;
        int64_t per = c.count > 0 ? c.count : 1;
        int64_t grain = ((int64_t)1 << 15) / per + 1;
        if (threads > 1 && n_out * per >= ((int64_t)1 << 17))
            mk_parallel_for(threads, n_out, grain, red_range, &c);
        else
            red_range(&c, 0, n_out);
    }
    cost->flops = (double)n_out * (double)c.count * ((op == RED_VAR || op == RED_STD) ? 3 : 1);
    cost->bytes_moved = mk_view_unique(x) * (double)c.in_es * ((op == RED_VAR || op == RED_STD) ? 2 : 1) +
                        (double)n_out * (double)c.out_es;
    cost->compute_dtype = x->dtype;
    return MAIA_KERNEL_OK;

bad_shape:
    return mk_fail(st, MAIA_KERNEL_INVALID,
                   "%s: the output's shape does not match the input reduced over axes_mask "
                   "0x%llx with keepdims=%d",
                   name, (unsigned long long)mask, keep);
}
