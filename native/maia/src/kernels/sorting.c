/* sort, argsort and searchsorted (hwabstract's kernels/sorting.py).
 *
 *   sort, argsort  along attrs.axis, always stably (a stable result is a valid unstable one,
 *                  so attrs.stable needs no other path). Elements compare through a 64-bit
 *                  order key: integers by value; floats widened to float32, -0.0 equal to
 *                  +0.0 and every NaN above +inf (NaNs last, in their original order).
 *                  attrs.descending sorts by the complemented key: exactly the reverse of a
 *                  stable ascending sort of the reversed row (NaNs first, ties in their
 *                  original order). The sort is a bottom-up merge sort of (key, payload)
 *                  pairs in a malloc'd scratch, so no recursion and O(n log n) on any input;
 *                  sort's payload is the element's bits (written back verbatim, so -0.0 and
 *                  NaN payloads survive), argsort's the element's index (int64 output).
 *                  Rows fan out over host threads; a few long rows each sort their runs and
 *                  merge every pass in parallel instead (merge-path splits).
 *   searchsorted   x1 1-D, sorted as sort orders it; x2 any shape, the same dtype; int64 output
 *                  of x2's shape: the first (attrs.side 0, "left") or last (1, "right")
 *                  insertion index. NaN is above every number, as in NumPy. x1 need not be
 *                  sorted for memory safety (the indices are then meaningless, as in NumPy).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_internal.h"

#define SBLK 256
#define RUN 32 /* insertion-sorted run length before merging */

typedef struct skv {
    uint64_t key;
    uint64_t val;
} skv;

/* ---- order keys -------------------------------------------------------------------------- */

static inline uint64_t float_key(float f) {
    if (f != f) return UINT64_MAX; /* NaN: above +inf; all NaNs tie */
    if (f == 0.0f) f = 0.0f;       /* -0.0 ties with +0.0 */
    uint32_t u = f2u(f);
    return (u >> 31) ? (uint64_t)(~u) : (uint64_t)(u | 0x80000000u);
}

/* keys[i] for n elements of `dt` at p (stride s elements): unsigned compare = sort order. */
static void load_keys(int32_t dt, const char *p, int64_t s, int64_t n, uint64_t *keys) {
    int kind = mk_kind(dt);
    int64_t es = (int64_t)mk_elsize(dt);
    for (int64_t done = 0; done < n;) {
        size_t k = (size_t)(n - done < SBLK ? n - done : SBLK);
        const char *q = p + done * s * es;
        uint64_t *o = keys + done;
        if (kind == MK_KIND_FLOAT) {
            float f[SBLK];
            mk_load_f32(dt, q, s, k, f);
            for (size_t i = 0; i < k; i++) o[i] = float_key(f[i]);
        } else {
            int64_t v[SBLK];
            mk_load_i64(dt, q, s, k, v);
            uint64_t flip = kind == MK_KIND_SINT ? (uint64_t)1 << 63 : 0;
            for (size_t i = 0; i < k; i++) o[i] = (uint64_t)v[i] ^ flip;
        }
        done += (int64_t)k;
    }
}

static inline uint64_t load_bits(const char *p, size_t es) {
    switch (es) {
    case 1: return *(const uint8_t *)p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

static inline void store_bits(char *p, size_t es, uint64_t bits) {
    switch (es) {
    case 1: *(uint8_t *)p = (uint8_t)bits; return;
    case 2: { uint16_t v = (uint16_t)bits; memcpy(p, &v, 2); return; }
    case 4: { uint32_t v = (uint32_t)bits; memcpy(p, &v, 4); return; }
    default: memcpy(p, &bits, 8); return;
    }
}

/* ---- the stable merge sort --------------------------------------------------------------- */

static void insertion_sort(skv *a, int64_t n) {
    for (int64_t i = 1; i < n; i++) {
        skv t = a[i];
        int64_t j = i;
        while (j > 0 && a[j - 1].key > t.key) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = t;
    }
}

/* How many of the first k outputs of the stable merge of a (na) and b (nb) come from a (a
 * wins ties): the smallest i with no b element before a[i] that a[i] should precede. */
static int64_t corank(int64_t k, const skv *a, int64_t na, const skv *b, int64_t nb) {
    int64_t lo = k - nb > 0 ? k - nb : 0, hi = k < na ? k : na;
    while (lo < hi) {
        int64_t i = lo + (hi - lo) / 2, j = k - i;
        if (j > 0 && b[j - 1].key >= a[i].key)
            lo = i + 1; /* a[i] precedes b[j - 1]: take more of a */
        else
            hi = i;
    }
    return lo;
}

/* One merge pass of width `w` over src[0, n) into dst, output positions [s, e) only (a range
 * may straddle merge pairs and start mid-pair). */
static void merge_range(const skv *src, skv *dst, int64_t n, int64_t w, int64_t s, int64_t e) {
    while (s < e) {
        int64_t lo = s / (2 * w) * (2 * w);
        int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
        int64_t stop = e < hi ? e : hi;
        const skv *a = src + lo, *b = src + mid;
        int64_t na = mid - lo, nb = hi - mid;
        int64_t i = corank(s - lo, a, na, b, nb), j = s - lo - i;
        skv *o = dst + s;
        for (int64_t k = 0, cnt = stop - s; k < cnt; k++) {
            if (j >= nb || (i < na && a[i].key <= b[j].key))
                o[k] = a[i++];
            else
                o[k] = b[j++];
        }
        s = stop;
    }
}

typedef struct msort_ctx {
    skv *src, *dst;
    int64_t n, w;
} msort_ctx;

static void runs_range(void *vc, int64_t begin, int64_t end) {
    const msort_ctx *c = (const msort_ctx *)vc;
    for (int64_t r = begin; r < end; r++) {
        int64_t lo = r * RUN, len = c->n - lo < RUN ? c->n - lo : RUN;
        insertion_sort(c->src + lo, len);
    }
}

static void pass_range(void *vc, int64_t begin, int64_t end) {
    const msort_ctx *c = (const msort_ctx *)vc;
    merge_range(c->src, c->dst, c->n, c->w, begin, end);
}

/* Sort a[0, n) stably by key using tmp[0, n); returns whichever of the two holds the result.
 * threads > 1 runs the runs and every merge pass on host threads. */
static skv *merge_sort(skv *a, skv *tmp, int64_t n, int threads) {
    msort_ctx c = {a, tmp, n, RUN};
    int64_t nruns = (n + RUN - 1) / RUN;
    if (threads > 1)
        mk_parallel_for(threads, nruns, 256, runs_range, &c);
    else
        runs_range(&c, 0, nruns);
    for (int64_t w = RUN; w < n; w *= 2) {
        c.w = w;
        if (threads > 1)
            mk_parallel_for(threads, n, (int64_t)1 << 14, pass_range, &c);
        else
            pass_range(&c, 0, n);
        skv *t = c.src;
        c.src = c.dst;
        c.dst = t;
    }
    return c.src;
}

/* ---- sort / argsort ---------------------------------------------------------------------- */

typedef struct sort_ctx {
    int arg;
    uint64_t flip; /* XORed into every key: ~0 for descending */
    int32_t dt;
    size_t es;
    mk_rows r;
    const char *x;
    char *y;
    int row_threads; /* threads for each row's own sort (1 when rows fan out) */
    atomic_int nomem;
} sort_ctx;

static void sort_row(const sort_ctx *c, int64_t o, skv *a, skv *tmp) {
    int64_t xo, yo;
    mk_rows_offsets(&c->r, o, &xo, &yo);
    int64_t n = c->r.len, xs = c->r.xs, es = (int64_t)c->es;
    const char *x = c->x + xo * es;
    for (int64_t done = 0; done < n; done += SBLK) {
        int64_t k = n - done < SBLK ? n - done : SBLK;
        uint64_t keys[SBLK];
        load_keys(c->dt, x + done * xs * es, xs, k, keys);
        for (int64_t i = 0; i < k; i++) {
            skv *e = &a[done + i];
            e->key = keys[i] ^ c->flip;
            e->val = c->arg ? (uint64_t)(done + i) : load_bits(x + (done + i) * xs * es, c->es);
        }
    }
    const skv *r = merge_sort(a, tmp, n, c->row_threads);
    if (c->arg) {
        int64_t *y = (int64_t *)c->y + yo;
        for (int64_t i = 0; i < n; i++) y[i * c->r.ys] = (int64_t)r[i].val;
    } else {
        char *y = c->y + yo * es;
        for (int64_t i = 0; i < n; i++) store_bits(y + i * c->r.ys * es, c->es, r[i].val);
    }
}

static void sort_range(void *vc, int64_t begin, int64_t end) {
    sort_ctx *c = (sort_ctx *)vc;
    skv *a = (skv *)malloc(2 * (size_t)c->r.len * sizeof(skv));
    if (!a) {
        atomic_store(&c->nomem, 1);
        return;
    }
    for (int64_t o = begin; o < end; o++) sort_row(c, o, a, a + c->r.len);
    free(a);
}

static int sort_kernel(const maia_kernel_call *call, int arg, maia_kernel_cost *cost,
                       mk_status *st) {
    const char *name = arg ? "argsort" : "sort";
    if (mk_check_counts(call, 1, 1, st)) return st->code;
    const maia_view *x = &call->inputs[0], *y = &call->outputs[0];
    const maia_attrs *at = &call->attrs;
    if (!((mk_sorting_kinds(arg ? SORT_ARGSORT : SORT_SORT) >> mk_kind(x->dtype)) & 1u))
        return mk_fail(st, MAIA_KERNEL_UNSUPPORTED, "%s is not implemented for %s", name,
                       mk_dtype_name(x->dtype));
    int32_t want = arg ? MAIA_INT64 : x->dtype;
    if (y->dtype != want)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: the output is %s, expected %s", name,
                       mk_dtype_name(y->dtype), mk_dtype_name(want));
    if (!mk_same_shape(x, y))
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: the output's shape differs from x's", name);
    if (at->axis < 0 || at->axis >= x->ndim)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: axis %d is out of range for %d dims",
                       name, (int)at->axis, (int)x->ndim);

    sort_ctx c;
    memset(&c, 0, sizeof c);
    c.arg = arg;
    c.flip = at->descending ? UINT64_MAX : 0;
    c.dt = x->dtype;
    c.es = mk_elsize(x->dtype);
    c.x = (const char *)x->data;
    c.y = (char *)y->data;
    atomic_init(&c.nomem, 0);
    mk_rows_init(&c.r, x, y, at->axis);
    int64_t rows = c.r.rows;
    if ((uint64_t)c.r.len > SIZE_MAX / (2 * sizeof(skv)))
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: a row of %lld elements is too long to sort",
                       name, (long long)c.r.len);
    int threads = call->threads < 1 ? 1 : call->threads;
    int64_t total = rows * c.r.len;
    if (rows > 0 && c.r.len > 0) {
        if (threads > 1 && total >= ((int64_t)1 << 15) && rows < 2 * (int64_t)threads &&
            c.r.len >= ((int64_t)1 << 14)) {
            c.row_threads = threads; /* few long rows: each row sorts in parallel */
            sort_range(&c, 0, rows);
        } else {
            c.row_threads = 1;
            int64_t grain = ((int64_t)1 << 14) / c.r.len + 1;
            if (threads > 1 && total >= ((int64_t)1 << 15))
                mk_parallel_for(threads, rows, grain, sort_range, &c);
            else
                sort_range(&c, 0, rows);
        }
        if (atomic_load(&c.nomem))
            return mk_fail(st, MAIA_KERNEL_INVALID,
                           "%s: cannot allocate %llu bytes of host scratch for a row of %lld "
                           "elements",
                           name, (unsigned long long)(2 * (uint64_t)c.r.len * sizeof(skv)),
                           (long long)c.r.len);
    }
    double lg = 0;
    for (int64_t m = 1; m < c.r.len; m *= 2) lg += 1;
    cost->flops = (double)total * lg; /* comparisons */
    cost->bytes_moved = mk_view_unique(x) * (double)c.es + (double)total * (double)mk_elsize(want);
    cost->compute_dtype = x->dtype;
    return MAIA_KERNEL_OK;
}

/* ---- searchsorted ------------------------------------------------------------------------ */

typedef struct ss_ctx {
    const uint64_t *keys; /* x1's keys, n1 of them */
    int64_t n1;
    int right;
    int32_t dt;
    mk_iter it; /* x2, out */
} ss_ctx;

static void ss_inner(void *vc, size_t n, char **ptrs, const int64_t *st) {
    const ss_ctx *c = (const ss_ctx *)vc;
    size_t es = mk_elsize(c->dt);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < SBLK ? n - done : SBLK;
        uint64_t q[SBLK];
        load_keys(c->dt, ptrs[0] + (int64_t)done * st[0] * (int64_t)es, st[0], (int64_t)k, q);
        int64_t *out = (int64_t *)ptrs[1] + (int64_t)done * st[1];
        for (size_t i = 0; i < k; i++) {
            uint64_t v = q[i];
            int64_t lo = 0, hi = c->n1; /* first index whose key is >= v (left) or > v (right) */
            while (lo < hi) {
                int64_t mid = lo + (hi - lo) / 2;
                uint64_t m = c->keys[mid];
                if (m < v || (c->right && m == v))
                    lo = mid + 1;
                else
                    hi = mid;
            }
            out[(int64_t)i * st[1]] = lo;
        }
        done += k;
    }
}

static void ss_range(void *vc, int64_t begin, int64_t end) {
    ss_ctx *c = (ss_ctx *)vc;
    mk_iter_run(&c->it, begin, end, ss_inner, c);
}

static int searchsorted_kernel(const maia_kernel_call *call, maia_kernel_cost *cost,
                               mk_status *st) {
    if (mk_check_counts(call, 2, 1, st)) return st->code;
    const maia_view *x1 = &call->inputs[0], *x2 = &call->inputs[1], *y = &call->outputs[0];
    int side = call->attrs.side;
    if (!((mk_sorting_kinds(SORT_SEARCHSORTED) >> mk_kind(x1->dtype)) & 1u))
        return mk_fail(st, MAIA_KERNEL_UNSUPPORTED, "searchsorted is not implemented for %s",
                       mk_dtype_name(x1->dtype));
    if (x2->dtype != x1->dtype)
        return mk_fail(st, MAIA_KERNEL_INVALID, "searchsorted: x2 is %s, expected x1's %s",
                       mk_dtype_name(x2->dtype), mk_dtype_name(x1->dtype));
    if (y->dtype != MAIA_INT64)
        return mk_fail(st, MAIA_KERNEL_INVALID, "searchsorted: the output is %s, expected int64",
                       mk_dtype_name(y->dtype));
    if (x1->ndim != 1)
        return mk_fail(st, MAIA_KERNEL_INVALID, "searchsorted: x1 must be 1-D, got %d dims",
                       (int)x1->ndim);
    if (!mk_same_shape(x2, y))
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "searchsorted: the output's shape differs from x2's");
    if (side != 0 && side != 1)
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "searchsorted: side is %d; 0 (left) and 1 (right) are defined", side);

    ss_ctx c;
    memset(&c, 0, sizeof c);
    c.n1 = x1->shape[0];
    c.right = side;
    c.dt = x1->dtype;
    uint64_t *keys = NULL;
    if (c.n1 > 0) {
        if ((uint64_t)c.n1 > SIZE_MAX / sizeof(uint64_t) ||
            !(keys = (uint64_t *)malloc((size_t)c.n1 * sizeof(uint64_t))))
            return mk_fail(st, MAIA_KERNEL_INVALID,
                           "searchsorted: cannot allocate host scratch for the %lld keys of x1",
                           (long long)c.n1);
        load_keys(c.dt, (const char *)x1->data, x1->strides[0], c.n1, keys);
    }
    c.keys = keys;
    const int64_t *strides[2] = {x2->strides, y->strides};
    char *base[2] = {(char *)x2->data, (char *)y->data};
    size_t es[2] = {mk_elsize(x2->dtype), 8};
    mk_iter_init(&c.it, y->ndim, y->shape, 2, strides, base, es);
    int64_t total = c.it.total;
    int threads = call->threads < 1 ? 1 : call->threads;
    if (threads > 1 && total >= ((int64_t)1 << 15))
        mk_parallel_for(threads, total, (int64_t)1 << 13, ss_range, &c);
    else
        ss_range(&c, 0, total);
    free(keys);
    double lg = 1;
    for (int64_t m = 1; m <= c.n1; m *= 2) lg += 1;
    cost->flops = (double)total * lg;
    cost->bytes_moved = mk_view_unique(x1) * (double)es[0] +
                        mk_view_unique(x2) * (double)es[0] + (double)total * 8;
    cost->compute_dtype = x1->dtype;
    return MAIA_KERNEL_OK;
}

/* ---- kinds and entry --------------------------------------------------------------------- */

unsigned mk_sorting_kinds(int op) {
    (void)op; /* sort, argsort and searchsorted are defined for the real dtypes */
    return MK_I | MK_U | MK_F;
}

int mk_sorting(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st) {
    switch (op) {
    case SORT_SORT: return sort_kernel(call, 0, cost, st);
    case SORT_ARGSORT: return sort_kernel(call, 1, cost, st);
    default: return searchsorted_kernel(call, cost, st);
    }
}
