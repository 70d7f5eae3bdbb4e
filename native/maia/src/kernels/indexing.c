/* take, take_along_axis and flatnonzero (hwabstract's kernels/indexing.py). Any element dtype;
 * elements are copied as bits.
 *
 *   take              x, 1-D indices of any integer dtype; along attrs.axis:
 *                     out[pre, j, post] = x[pre, indices[j], post].
 *   take_along_axis   x and indices already broadcast to the output's shape except along
 *                     attrs.axis: out[..., j, ...] = x[..., indices[..., j, ...], ...].
 *
 *   Both run as one gather over the output's shape: x is iterated with a zero stride along
 *   the axis (its row start) and each element adds index * x's axis stride; the indices are
 *   iterated with their own strides (take's 1-D indices broadcast over the other axes). A
 *   negative index counts from the end; one outside [-n, n) (a uint64 index above INT64_MAX
 *   included) is never dereferenced and fails the kernel, naming the first bad index in the
 *   output's C order and the axis size.
 *
 *   flatnonzero       the C-order flat indices (int64) of x's nonzero elements (NaN is nonzero,
 *                     -0.0 zero) into the 1-D output of attrs.count elements; a different
 *                     number of nonzeros fails the kernel (nothing is written then). Two
 *                     passes over chunks of x on host threads: count, then write at each
 *                     chunk's prefix offset.
 */
#include <stdatomic.h>
#include <string.h>

#include "kernels_internal.h"

#define IBLK 256

/* ---- the gather shared by take and take_along_axis -------------------------------------- */

typedef struct gather_ctx {
    mk_iter it;    /* over the output's shape: x (zero stride along axis), indices, out */
    int32_t idx_dt;
    int idx_u64;   /* uint64 indices: values above INT64_MAX are out of range */
    size_t es, ies;
    int64_t n;     /* x's length along the axis */
    int64_t axs;   /* x's stride along the axis */
    atomic_int bad;
    /* the serial search for the first bad index (after a failed gather) */
    int found;
    int64_t bad_value;
} gather_ctx;

/* The index at position i of a loaded chunk made non-negative, or -1 if out of range. */
static inline int64_t wrap_index(const gather_ctx *c, int64_t v) {
    if (c->idx_u64 && v < 0) return -1; /* >= 2^63 as a uint64 */
    if (v < 0) v += c->n;
    return v >= 0 && v < c->n ? v : -1;
}

static void gather_inner(void *vc, size_t n, char **ptrs, const int64_t *st) {
    gather_ctx *c = (gather_ctx *)vc;
    int64_t es = (int64_t)c->es;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < IBLK ? n - done : IBLK;
        int64_t iv[IBLK];
        mk_load_i64(c->idx_dt, ptrs[1] + (int64_t)done * st[1] * (int64_t)c->ies, st[1], k, iv);
        const char *x = ptrs[0] + (int64_t)done * st[0] * es;
        char *y = ptrs[2] + (int64_t)done * st[2] * es;
        int64_t xs = st[0] * es, ys = st[2] * es, ax = c->axs * es;
        for (size_t i = 0; i < k; i++) {
            int64_t v = wrap_index(c, iv[i]);
            if (v < 0) {
                atomic_store_explicit(&c->bad, 1, memory_order_relaxed);
                continue;
            }
            memcpy(y + (int64_t)i * ys, x + (int64_t)i * xs + v * ax, c->es);
        }
        done += k;
    }
}

static void gather_range(void *vc, int64_t begin, int64_t end) {
    gather_ctx *c = (gather_ctx *)vc;
    mk_iter_run(&c->it, begin, end, gather_inner, c);
}

static void find_bad_inner(void *vc, size_t n, char **ptrs, const int64_t *st) {
    gather_ctx *c = (gather_ctx *)vc;
    for (size_t done = 0; done < n && !c->found;) {
        size_t k = n - done < IBLK ? n - done : IBLK;
        int64_t iv[IBLK];
        mk_load_i64(c->idx_dt, ptrs[1] + (int64_t)done * st[1] * (int64_t)c->ies, st[1], k, iv);
        for (size_t i = 0; i < k; i++)
            if (wrap_index(c, iv[i]) < 0) {
                c->found = 1;
                c->bad_value = iv[i];
                break;
            }
        done += k;
    }
}

static int bad_index(gather_ctx *c, const char *name, int axis, int64_t value, mk_status *st) {
    if (c->idx_u64 && value < 0)
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "%s: index %llu is out of bounds for axis %d of size %lld", name,
                       (unsigned long long)value, axis, (long long)c->n);
    return mk_fail(st, MAIA_KERNEL_INVALID,
                   "%s: index %lld is out of bounds for axis %d of size %lld", name,
                   (long long)value, axis, (long long)c->n);
}

static int is_index_dtype(int32_t dt) {
    int k = mk_kind(dt);
    return k == MK_KIND_SINT || k == MK_KIND_UINT;
}

static int gather_kernel(const maia_kernel_call *call, int along, maia_kernel_cost *cost,
                         mk_status *st) {
    const char *name = along ? "take_along_axis" : "take";
    if (mk_check_counts(call, 2, 1, st)) return st->code;
    const maia_view *x = &call->inputs[0], *idx = &call->inputs[1], *y = &call->outputs[0];
    int axis = call->attrs.axis;
    if (!is_index_dtype(idx->dtype))
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: indices must be integers, got %s", name,
                       mk_dtype_name(idx->dtype));
    if (y->dtype != x->dtype)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: the output is %s, expected x's %s", name,
                       mk_dtype_name(y->dtype), mk_dtype_name(x->dtype));
    if (axis < 0 || axis >= x->ndim)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: axis %d is out of range for %d dims", name,
                       axis, (int)x->ndim);
    int64_t m; /* the output's length along the axis */
    if (along) {
        if (idx->ndim != x->ndim || !mk_same_shape(idx, y))
            return mk_fail(st, MAIA_KERNEL_INVALID,
                           "%s: indices must have the output's shape (x's rank %d)", name,
                           (int)x->ndim);
        m = idx->shape[axis];
    } else {
        if (idx->ndim != 1)
            return mk_fail(st, MAIA_KERNEL_INVALID, "%s: indices must be 1-D, got %d dims",
                           name, (int)idx->ndim);
        m = idx->shape[0];
    }
    if (y->ndim != x->ndim || y->shape[axis] != m)
        goto bad_shape;
    for (int d = 0; d < x->ndim; d++)
        if (d != axis && y->shape[d] != x->shape[d]) goto bad_shape;

    gather_ctx c;
    memset(&c, 0, sizeof c);
    c.idx_dt = idx->dtype;
    c.idx_u64 = idx->dtype == MAIA_UINT64;
    c.es = mk_elsize(x->dtype);
    c.ies = mk_elsize(idx->dtype);
    c.n = x->shape[axis];
    c.axs = x->strides[axis];
    atomic_init(&c.bad, 0);
    int64_t total = mk_view_size(y);
    if (total > 0 && c.n == 0) { /* every index is out of range; x has no element to read */
        int64_t first;
        mk_load_i64(idx->dtype, idx->data, 1, 1, &first);
        return bad_index(&c, name, axis, first, st);
    }
    int64_t xs[MAIA_MAX_DIMS], is[MAIA_MAX_DIMS];
    for (int d = 0; d < y->ndim; d++) {
        xs[d] = d == axis ? 0 : x->strides[d];
        is[d] = along ? idx->strides[d] : d == axis ? idx->strides[0] : 0;
    }
    const int64_t *strides[3] = {xs, is, y->strides};
    char *base[3] = {(char *)x->data, (char *)idx->data, (char *)y->data};
    size_t esz[3] = {c.es, c.ies, c.es};
    if (total > 0) {
        mk_iter_init(&c.it, y->ndim, y->shape, 3, strides, base, esz);
        int threads = call->threads < 1 ? 1 : call->threads;
        if (threads > 1 && total >= ((int64_t)1 << 17))
            mk_parallel_for(threads, total, (int64_t)1 << 15, gather_range, &c);
        else
            gather_range(&c, 0, total);
        if (atomic_load(&c.bad)) {
            mk_iter_run(&c.it, 0, total, find_bad_inner, &c);
            return bad_index(&c, name, axis, c.bad_value, st);
        }
    }
    cost->flops = (double)total; /* an address computation per element */
    cost->bytes_moved = (double)total * (double)(2 * c.es) +
                        mk_view_unique(idx) * (double)c.ies;
    cost->compute_dtype = x->dtype;
    return MAIA_KERNEL_OK;

bad_shape:
    return mk_fail(st, MAIA_KERNEL_INVALID,
                   "%s: the output's shape does not match x's with axis %d replaced by the "
                   "indices' length",
                   name, axis);
}

/* ---- flatnonzero ------------------------------------------------------------------------- */

#define NZ_MAX_CHUNKS 2048

typedef struct nz_ctx {
    mk_iter it; /* x alone */
    int32_t dt;
    size_t es;
    int64_t total, nchunks;
    int64_t counts[NZ_MAX_CHUNKS]; /* pass 1: nonzeros per chunk; pass 2: its first slot */
    int64_t *out;
    int64_t os;
} nz_ctx;

typedef struct nz_run {
    const nz_ctx *c;
    int write;
    int64_t pos;  /* flat index of the next element */
    int64_t slot; /* pass 1: count; pass 2: next output slot */
} nz_run;

static void nz_inner(void *vr, size_t n, char **ptrs, const int64_t *st) {
    nz_run *r = (nz_run *)vr;
    const nz_ctx *c = r->c;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < IBLK ? n - done : IBLK;
        uint8_t b[IBLK];
        mk_load_bool(c->dt, ptrs[0] + (int64_t)done * st[0] * (int64_t)c->es, st[0], k, b);
        if (r->write) {
            for (size_t i = 0; i < k; i++)
                if (b[i]) c->out[r->slot++ * c->os] = r->pos + (int64_t)i;
        } else {
            for (size_t i = 0; i < k; i++) r->slot += b[i];
        }
        r->pos += (int64_t)k;
        done += k;
    }
}

static void nz_pass(nz_ctx *c, int write, int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ch++) {
        int64_t q = c->total / c->nchunks, extra = c->total % c->nchunks;
        int64_t lo = q * ch + (ch < extra ? ch : extra), len = q + (ch < extra ? 1 : 0);
        nz_run r = {c, write, lo, write ? c->counts[ch] : 0};
        mk_iter_run(&c->it, lo, lo + len, nz_inner, &r);
        if (!write) c->counts[ch] = r.slot;
    }
}

static void nz_count_range(void *vc, int64_t begin, int64_t end) {
    nz_pass((nz_ctx *)vc, 0, begin, end);
}

static void nz_write_range(void *vc, int64_t begin, int64_t end) {
    nz_pass((nz_ctx *)vc, 1, begin, end);
}

static int flatnonzero_kernel(const maia_kernel_call *call, maia_kernel_cost *cost,
                              mk_status *st) {
    if (mk_check_counts(call, 1, 1, st)) return st->code;
    const maia_view *x = &call->inputs[0], *y = &call->outputs[0];
    int64_t count = call->attrs.count;
    if (y->dtype != MAIA_INT64)
        return mk_fail(st, MAIA_KERNEL_INVALID, "flatnonzero: the output is %s, expected int64",
                       mk_dtype_name(y->dtype));
    if (y->ndim != 1 || y->shape[0] != count)
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "flatnonzero: the output must be 1-D of count = %lld elements",
                       (long long)count);
    nz_ctx ctx, *c = &ctx;
    memset(c, 0, sizeof *c);
    c->dt = x->dtype;
    c->es = mk_elsize(x->dtype);
    c->out = (int64_t *)y->data;
    c->os = y->strides[0];
    const int64_t *strides[1] = {x->strides};
    char *base[1] = {(char *)x->data};
    size_t es[1] = {c->es};
    mk_iter_init(&c->it, x->ndim, x->shape, 1, strides, base, es);
    c->total = c->it.total;
    int threads = call->threads < 1 ? 1 : call->threads;
    int par = threads > 1 && c->total >= ((int64_t)1 << 17);
    int64_t want = par ? 8 * (int64_t)threads : 1, most = c->total / ((int64_t)1 << 14) + 1;
    c->nchunks = want < most ? want : most;
    if (c->nchunks > NZ_MAX_CHUNKS) c->nchunks = NZ_MAX_CHUNKS;
    int64_t found = 0;
    if (c->total > 0) {
        if (par)
            mk_parallel_for(threads, c->nchunks, 1, nz_count_range, c);
        else
            nz_count_range(c, 0, c->nchunks);
        for (int64_t ch = 0; ch < c->nchunks; ch++) { /* counts -> first slots */
            int64_t k = c->counts[ch];
            c->counts[ch] = found;
            found += k;
        }
    }
    if (found != count)
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "flatnonzero: count is %lld but the input has %lld nonzero elements",
                       (long long)count, (long long)found);
    if (found > 0) {
        if (par)
            mk_parallel_for(threads, c->nchunks, 1, nz_write_range, c);
        else
            nz_write_range(c, 0, c->nchunks);
    }
    cost->flops = (double)c->total;
    cost->bytes_moved =
        mk_view_unique(x) * (double)c->es * (found > 0 ? 2 : 1) + (double)found * 8;
    cost->compute_dtype = x->dtype;
    return MAIA_KERNEL_OK;
}

/* ---- kinds and entry --------------------------------------------------------------------- */

unsigned mk_indexing_kinds(int op) {
    (void)op; /* take, take_along_axis and flatnonzero take any element dtype */
    return MK_B | MK_I | MK_U | MK_F;
}

int mk_indexing(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st) {
    switch (op) {
    case IDX_TAKE: return gather_kernel(call, 0, cost, st);
    case IDX_TAKE_ALONG_AXIS: return gather_kernel(call, 1, cost, st);
    default: return flatnonzero_kernel(call, cost, st);
    }
}
