/* cumulative_sum and cumulative_prod along attrs.axis (hwabstract's kernels/cumulative.py).
 *
 * The core casts the input to the output dtype first, so x and the output share a dtype
 * (attrs.dtype names it and is not needed here). attrs.include_initial makes the output one
 * longer along the axis, starting with the identity (0 or 1).
 *
 *   floats    accumulate sequentially in float32, as NumPy's float32 accumulate does (bit for
 *             bit); 8- and 16-bit floats widen to float32 and round each output element once.
 *   integers  accumulate in 64 bits with two's-complement wrapping, so every narrower output
 *             wraps exactly as NumPy's running sum/product in that dtype does.
 *
 * Rows (the other axes) fan out over host threads; each row is one sequential scan.
 */
#include <string.h>

#include "kernels_internal.h"

#define CBLK 256

typedef struct cum_ctx {
    int prod;
    int32_t dt;
    int kind;
    size_t es;
    int initial;
    mk_rows r; /* r.len: x's length along the axis */
    const char *x;
    char *y;
} cum_ctx;

static void cum_range(void *vc, int64_t begin, int64_t end) {
    const cum_ctx *c = (const cum_ctx *)vc;
    const mk_rows *r = &c->r;
    int64_t es = (int64_t)c->es;
    for (int64_t o = begin; o < end; o++) {
        int64_t xo, yo;
        mk_rows_offsets(r, o, &xo, &yo);
        char *y = c->y + yo * es;
        if (c->kind == MK_KIND_FLOAT) {
            float acc = c->prod ? 1.0f : 0.0f;
            if (c->initial) {
                mk_store_f32(c->dt, y, 1, 1, &acc);
                y += r->ys * es;
            }
            for (int64_t j = 0; j < r->len; j += CBLK) {
                size_t k = (size_t)(r->len - j < CBLK ? r->len - j : CBLK);
                float buf[CBLK];
                mk_load_f32(c->dt, c->x + (xo + j * r->xs) * es, r->xs, k, buf);
                if (c->prod)
                    for (size_t i = 0; i < k; i++) buf[i] = acc = acc * buf[i];
                else
                    for (size_t i = 0; i < k; i++) buf[i] = acc = acc + buf[i];
                mk_store_f32(c->dt, y + j * r->ys * es, r->ys, k, buf);
            }
        } else {
            uint64_t acc = c->prod ? 1u : 0u;
            if (c->initial) {
                int64_t v = (int64_t)acc;
                mk_store_i64(c->dt, y, 1, 1, &v);
                y += r->ys * es;
            }
            for (int64_t j = 0; j < r->len; j += CBLK) {
                size_t k = (size_t)(r->len - j < CBLK ? r->len - j : CBLK);
                int64_t buf[CBLK];
                mk_load_i64(c->dt, c->x + (xo + j * r->xs) * es, r->xs, k, buf);
                if (c->prod)
                    for (size_t i = 0; i < k; i++) buf[i] = (int64_t)(acc *= (uint64_t)buf[i]);
                else
                    for (size_t i = 0; i < k; i++) buf[i] = (int64_t)(acc += (uint64_t)buf[i]);
                mk_store_i64(c->dt, y + j * r->ys * es, r->ys, k, buf);
            }
        }
    }
}

unsigned mk_cumulative_kinds(int op) {
    (void)op; /* the numeric dtypes (bool inputs are cast to an integer output first) */
    return MK_I | MK_U | MK_F;
}

int mk_cumulative(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st) {
    const char *name = op == CUM_PROD ? "cumulative_prod" : "cumulative_sum";
    if (mk_check_counts(call, 1, 1, st)) return st->code;
    const maia_view *x = &call->inputs[0], *y = &call->outputs[0];
    const maia_attrs *at = &call->attrs;
    if (!((mk_cumulative_kinds(op) >> mk_kind(x->dtype)) & 1u))
        return mk_fail(st, MAIA_KERNEL_UNSUPPORTED, "%s is not implemented for %s", name,
                       mk_dtype_name(x->dtype));
    if (y->dtype != x->dtype)
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "%s: the output is %s, expected x's %s (the core casts x first)", name,
                       mk_dtype_name(y->dtype), mk_dtype_name(x->dtype));
    if (at->axis < 0 || at->axis >= x->ndim)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: axis %d is out of range for %d dims", name,
                       (int)at->axis, (int)x->ndim);
    int initial = at->include_initial != 0;
    int ok = y->ndim == x->ndim;
    for (int d = 0; ok && d < x->ndim; d++)
        ok = y->shape[d] == x->shape[d] + (d == at->axis ? initial : 0);
    if (!ok)
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "%s: the output's shape does not match x's%s", name,
                       initial ? " with axis one longer (include_initial)" : "");

    cum_ctx c;
    memset(&c, 0, sizeof c);
    c.prod = op == CUM_PROD;
    c.dt = x->dtype;
    c.kind = mk_kind(x->dtype);
    c.es = mk_elsize(x->dtype);
    c.initial = initial;
    c.x = (const char *)x->data;
    c.y = (char *)y->data;
    mk_rows_init(&c.r, x, y, at->axis);
    int64_t rows = c.r.rows, out_len = c.r.len + initial, total = rows * out_len;
    if (total > 0) {
        int threads = call->threads < 1 ? 1 : call->threads;
        int64_t grain = ((int64_t)1 << 14) / out_len + 1;
        if (threads > 1 && total >= ((int64_t)1 << 16))
            mk_parallel_for(threads, rows, grain, cum_range, &c);
        else
            cum_range(&c, 0, rows);
    }
    cost->flops = (double)rows * (double)c.r.len;
    cost->bytes_moved = mk_view_unique(x) * (double)c.es + (double)total * (double)c.es;
    cost->compute_dtype = x->dtype;
    return MAIA_KERNEL_OK;
}
