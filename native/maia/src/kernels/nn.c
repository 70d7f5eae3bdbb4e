/* softmax and log_softmax along attrs.axis, and layer_norm over attrs.axes_mask. Values
 * compute in float32 (sums in double) and round once into the output dtype. gelu, silu and
 * relu are elementwise (elementwise.c). No allocation: rows are streamed in chunks. */
#include <math.h>
#include <string.h>

#include "kernels_internal.h"

#define NBLK 256

/* ---- softmax / log_softmax --------------------------------------------------------------- */

typedef struct sm_ctx {
    int log;
    int32_t dt;
    size_t es;
    mk_rows r;
    char *x, *y;
} sm_ctx;

static void sm_range(void *vc, int64_t begin, int64_t end) {
    const sm_ctx *c = (const sm_ctx *)vc;
    const mk_rows *r = &c->r;
    float buf[NBLK];
    for (int64_t o = begin; o < end; o++) {
        int64_t xo, yo;
        mk_rows_offsets(r, o, &xo, &yo);
        const char *x = c->x + xo * (int64_t)c->es;
        char *y = c->y + yo * (int64_t)c->es;
        float mx = -INFINITY;
        int nan = 0;
        for (int64_t j = 0; j < r->len; j += NBLK) {
            size_t k = (size_t)(r->len - j < NBLK ? r->len - j : NBLK);
            mk_load_f32(c->dt, x + j * r->xs * (int64_t)c->es, r->xs, k, buf);
            for (size_t i = 0; i < k; i++) {
                if (buf[i] != buf[i]) nan = 1;
                if (buf[i] > mx) mx = buf[i];
            }
        }
        if (nan) mx = NAN;
        double sum = 0;
        for (int64_t j = 0; j < r->len; j += NBLK) {
            size_t k = (size_t)(r->len - j < NBLK ? r->len - j : NBLK);
            mk_load_f32(c->dt, x + j * r->xs * (int64_t)c->es, r->xs, k, buf);
            for (size_t i = 0; i < k; i++) sum += expf(buf[i] - mx);
        }
        float lse = (float)log(sum);
        for (int64_t j = 0; j < r->len; j += NBLK) {
            size_t k = (size_t)(r->len - j < NBLK ? r->len - j : NBLK);
            mk_load_f32(c->dt, x + j * r->xs * (int64_t)c->es, r->xs, k, buf);
            for (size_t i = 0; i < k; i++) {
                float s = buf[i] - mx;
                buf[i] = c->log ? s - lse : (float)((double)expf(s) / sum);
            }
            mk_store_f32(c->dt, y + j * r->ys * (int64_t)c->es, r->ys, k, buf);
        }
    }
}

/* ---- layer_norm --------------------------------------------------------------------------- */

typedef struct ln_ctx {
    int32_t dt;
    size_t es;
    int has_w, has_b;
    int nop; /* x, [w], [b], y */
    int outer_ndim;
    int64_t outer_shape[MAIA_MAX_DIMS];
    int64_t outer_strides[4][MAIA_MAX_DIMS];
    char *base[4];
    mk_iter inner;
    int64_t count;
    double eps;
} ln_ctx;

typedef struct ln_acc {
    const ln_ctx *c;
    int pass;
    double sum, mean, rstd;
} ln_acc;

static void ln_inner(void *va, size_t n, char **ptrs, const int64_t *st) {
    ln_acc *a = (ln_acc *)va;
    const ln_ctx *c = a->c;
    float xb[NBLK], wb[NBLK], bb[NBLK];
    int yi = c->nop - 1;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < NBLK ? n - done : NBLK;
        int64_t es = (int64_t)c->es;
        mk_load_f32(c->dt, ptrs[0] + (int64_t)done * st[0] * es, st[0], k, xb);
        if (a->pass == 0) {
            for (size_t i = 0; i < k; i++) a->sum += xb[i];
        } else if (a->pass == 1) {
            for (size_t i = 0; i < k; i++) {
                double d = xb[i] - a->mean;
                a->sum += d * d;
            }
        } else {
            int pi = 1;
            if (c->has_w) {
                mk_load_f32(c->dt, ptrs[pi] + (int64_t)done * st[pi] * es, st[pi], k, wb);
                pi++;
            }
            if (c->has_b)
                mk_load_f32(c->dt, ptrs[pi] + (int64_t)done * st[pi] * es, st[pi], k, bb);
            for (size_t i = 0; i < k; i++) {
                double v = ((double)xb[i] - a->mean) * a->rstd;
                if (c->has_w) v *= wb[i];
                if (c->has_b) v += bb[i];
                xb[i] = (float)v;
            }
            mk_store_f32(c->dt, ptrs[yi] + (int64_t)done * st[yi] * es, st[yi], k, xb);
        }
        done += k;
    }
}

static void ln_range(void *vc, int64_t begin, int64_t end) {
    const ln_ctx *c = (const ln_ctx *)vc;
    mk_iter it = c->inner;
    for (int64_t o = begin; o < end; o++) {
        int64_t rem = o, off[4] = {0, 0, 0, 0};
        for (int d = c->outer_ndim - 1; d >= 0; d--) {
            int64_t i = rem % c->outer_shape[d];
            rem /= c->outer_shape[d];
            for (int k = 0; k < c->nop; k++) off[k] += i * c->outer_strides[k][d];
        }
        for (int k = 0; k < c->nop; k++) it.base[k] = c->base[k] + off[k] * (int64_t)c->es;
        ln_acc a = {c, 0, 0, 0, 0};
        mk_iter_run(&it, 0, c->count, ln_inner, &a);
        a.mean = c->count ? a.sum / (double)c->count : NAN;
        a.sum = 0;
        a.pass = 1;
        mk_iter_run(&it, 0, c->count, ln_inner, &a);
        double var = c->count ? a.sum / (double)c->count : NAN;
        a.rstd = 1.0 / sqrt(var + (double)(float)c->eps);
        a.pass = 2;
        mk_iter_run(&it, 0, c->count, ln_inner, &a);
    }
}

unsigned mk_nn_kinds(int op) {
    (void)op;
    return MK_F;
}

int mk_nn(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st) {
    const maia_attrs *at = &call->attrs;
    const char *name = op == NN_SOFTMAX ? "softmax" : op == NN_LOG_SOFTMAX ? "log_softmax"
                                                                             : "layer_norm";
    int nin = op == NN_LAYER_NORM ? 1 + (at->has_weight != 0) + (at->has_bias != 0) : 1;
    if (mk_check_counts(call, nin, 1, st)) return st->code;
    const maia_view *x = &call->inputs[0], *y = &call->outputs[0];
    if (mk_kind(x->dtype) != MK_KIND_FLOAT)
        return mk_fail(st, MAIA_KERNEL_UNSUPPORTED, "%s is not implemented for %s", name,
                       mk_dtype_name(x->dtype));
    for (int i = 0; i < nin; i++) {
        if (!mk_same_shape(&call->inputs[i], y))
            return mk_fail(st, MAIA_KERNEL_INVALID,
                           "%s: operand %d's shape does not match the output's", name, i);
        if (call->inputs[i].dtype != x->dtype)
            return mk_fail(st, MAIA_KERNEL_INVALID, "%s: operand %d is %s, expected %s", name,
                           i, mk_dtype_name(call->inputs[i].dtype), mk_dtype_name(x->dtype));
    }
    if (y->dtype != x->dtype)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: the output is %s, expected %s", name,
                       mk_dtype_name(y->dtype), mk_dtype_name(x->dtype));
    int threads = call->threads < 1 ? 1 : call->threads;
    double n = (double)mk_view_size(x);

    if (op != NN_LAYER_NORM) {
        if (at->axis < 0 || at->axis >= x->ndim)
            return mk_fail(st, MAIA_KERNEL_INVALID, "%s: axis %d is out of range for %d dims",
                           name, (int)at->axis, (int)x->ndim);
        sm_ctx c;
        memset(&c, 0, sizeof c);
        c.log = op == NN_LOG_SOFTMAX;
        c.dt = x->dtype;
        c.es = mk_elsize(x->dtype);
        c.x = (char *)x->data;
        c.y = (char *)y->data;
        mk_rows_init(&c.r, x, y, at->axis);
        if (c.r.len > 0 && c.r.rows > 0) {
            int64_t grain = ((int64_t)1 << 14) / c.r.len + 1;
            if (threads > 1 && n >= (double)((int64_t)1 << 16))
                mk_parallel_for(threads, c.r.rows, grain, sm_range, &c);
            else
                sm_range(&c, 0, c.r.rows);
        }
        cost->flops = 5 * n;
        cost->bytes_moved = 4 * n * (double)c.es; /* three reads, one write */
        cost->compute_dtype = x->dtype;
        return MAIA_KERNEL_OK;
    }

    uint64_t mask = at->axes_mask;
    if (x->ndim < 64 && (mask >> x->ndim) != 0)
        return mk_fail(st, MAIA_KERNEL_INVALID, "layer_norm: axes_mask names an axis >= ndim");
    ln_ctx c;
    memset(&c, 0, sizeof c);
    c.dt = x->dtype;
    c.es = mk_elsize(x->dtype);
    c.has_w = at->has_weight != 0;
    c.has_b = at->has_bias != 0;
    c.nop = nin + 1;
    c.eps = at->eps;
    for (int i = 0; i < nin; i++) c.base[i] = (char *)call->inputs[i].data;
    c.base[nin] = (char *)y->data;
    int64_t red_shape[MAIA_MAX_DIMS], red_strides[4][MAIA_MAX_DIMS];
    int nred = 0;
    int64_t rows = 1;
    c.count = 1;
    for (int d = 0; d < x->ndim; d++) {
        const maia_view *v[4];
        for (int i = 0; i < nin; i++) v[i] = &call->inputs[i];
        v[nin] = y;
        if ((mask >> d) & 1u) {
            red_shape[nred] = x->shape[d];
            for (int k = 0; k < c.nop; k++) red_strides[k][nred] = v[k]->strides[d];
            nred++;
            c.count *= x->shape[d];
        } else {
            c.outer_shape[c.outer_ndim] = x->shape[d];
            for (int k = 0; k < c.nop; k++) c.outer_strides[k][c.outer_ndim] = v[k]->strides[d];
            c.outer_ndim++;
            rows *= x->shape[d];
        }
    }
    const int64_t *sp[4] = {red_strides[0], red_strides[1], red_strides[2], red_strides[3]};
    size_t es[4] = {c.es, c.es, c.es, c.es};
    mk_iter_init(&c.inner, nred, red_shape, c.nop, sp, c.base, es);
    if (c.count > 0 && rows > 0) {
        int64_t grain = ((int64_t)1 << 14) / c.count + 1;
        if (threads > 1 && n >= (double)((int64_t)1 << 16))
            mk_parallel_for(threads, rows, grain, ln_range, &c);
        else
            ln_range(&c, 0, rows);
    }
    cost->flops = 8 * n;
    cost->bytes_moved = (3 + nin) * n * (double)c.es;
    cost->compute_dtype = x->dtype;
    return MAIA_KERNEL_OK;
}
