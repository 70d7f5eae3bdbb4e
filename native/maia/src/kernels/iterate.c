/* The strided N-d iteration core, host-thread fan-out, and the validation helpers shared by
 * the kernel families. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernels_internal.h"

void mk_iter_init(mk_iter *it, int ndim, const int64_t *shape, int nop,
                  const int64_t *const *strides, char *const *base, const size_t *elsize) {
    memset(it, 0, sizeof *it);
    it->nop = nop;
    it->total = 1;
    for (int k = 0; k < nop; k++) {
        it->base[k] = base ? base[k] : NULL;
        it->elsize[k] = elsize[k];
    }
    int nd = 0;
    for (int d = 0; d < ndim; d++) {
        it->total *= shape[d];
        if (shape[d] == 1) continue; /* size-1 dims never move */
        /* merge with the previous kept dim if every operand is contiguous across them */
        int merge = nd > 0;
        for (int k = 0; merge && k < nop; k++)
            if (it->strides[k][nd - 1] != strides[k][d] * shape[d]) merge = 0;
        if (merge) {
            it->shape[nd - 1] *= shape[d];
            for (int k = 0; k < nop; k++) it->strides[k][nd - 1] = strides[k][d];
        } else {
            it->shape[nd] = shape[d];
            for (int k = 0; k < nop; k++) it->strides[k][nd] = strides[k][d];
            nd++;
        }
    }
    if (nd == 0) { /* 0-d or all size 1 (or empty: total is 0 then) */
        it->shape[0] = it->total == 0 ? 0 : 1;
        for (int k = 0; k < nop; k++) it->strides[k][0] = 0;
        nd = 1;
    }
    it->ndim = nd;
}

int mk_iter_contiguous(const mk_iter *it) {
    if (it->ndim != 1) return 0;
    for (int k = 0; k < it->nop; k++)
        if (it->strides[k][0] != 1 && it->shape[0] > 1) return 0;
    return 1;
}

void mk_iter_run(const mk_iter *it, int64_t begin, int64_t end, mk_inner_fn fn, void *ctx) {
    if (end > it->total) end = it->total;
    if (begin >= end) return;
    int nd = it->ndim, last = nd - 1;
    int64_t idx[MAIA_MAX_DIMS];
    int64_t rem = begin;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % it->shape[d];
        rem /= it->shape[d];
    }
    int64_t inner_strides[MK_MAX_ITER_OPS];
    for (int k = 0; k < it->nop; k++) inner_strides[k] = it->strides[k][last];
    int64_t left = end - begin;
    char *ptrs[MK_MAX_ITER_OPS];
    while (left > 0) {
        for (int k = 0; k < it->nop; k++) {
            int64_t off = 0;
            for (int d = 0; d < nd; d++) off += idx[d] * it->strides[k][d];
            ptrs[k] = it->base[k] + off * (int64_t)it->elsize[k];
        }
        int64_t n = it->shape[last] - idx[last];
        if (n > left) n = left;
        fn(ctx, (size_t)n, ptrs, inner_strides);
        left -= n;
        idx[last] += n;
        for (int d = last; d > 0 && idx[d] >= it->shape[d]; d--) {
            idx[d] = 0;
            idx[d - 1]++;
        }
    }
}

/* ---- host threads ------------------------------------------------------------------------ */

typedef struct par_job {
    mk_range_fn fn;
    void *ctx;
    int64_t begin, end;
} par_job;

static void *par_main(void *arg) {
    par_job *j = (par_job *)arg;
    j->fn(j->ctx, j->begin, j->end);
    return NULL;
}

#define MK_MAX_THREADS 256

void mk_parallel_for(int threads, int64_t total, int64_t grain, mk_range_fn fn, void *ctx) {
    if (total <= 0) return;
    if (grain < 1) grain = 1;
    int64_t nt = threads < 1 ? 1 : threads;
    if (nt > MK_MAX_THREADS) nt = MK_MAX_THREADS;
    if (nt > (total + grain - 1) / grain) nt = (total + grain - 1) / grain;
    if (nt <= 1) {
        fn(ctx, 0, total);
        return;
    }
    par_job jobs[MK_MAX_THREADS];
    pthread_t tids[MK_MAX_THREADS];
    int started[MK_MAX_THREADS];
    for (int64_t t = 0; t < nt; t++) {
        jobs[t].fn = fn;
        jobs[t].ctx = ctx;
        jobs[t].begin = total * t / nt;
        jobs[t].end = total * (t + 1) / nt;
    }
    for (int64_t t = 1; t < nt; t++)
        started[t] = pthread_create(&tids[t], NULL, par_main, &jobs[t]) == 0;
    fn(ctx, jobs[0].begin, jobs[0].end);
    for (int64_t t = 1; t < nt; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            fn(ctx, jobs[t].begin, jobs[t].end); /* could not start a thread: run it here */
    }
}

/* ---- status and validation --------------------------------------------------------------- */

int mk_fail(mk_status *st, int code, const char *fmt, ...) {
    st->code = code;
    if (st->err && st->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->err, st->errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

#define MK_MAX_ELEMENTS ((int64_t)1 << 56)

int64_t mk_view_size(const maia_view *v) {
    int64_t n = 1;
    for (int d = 0; d < v->ndim; d++) n *= v->shape[d];
    return n;
}

double mk_view_unique(const maia_view *v) {
    double n = 1;
    for (int d = 0; d < v->ndim; d++) {
        if (v->shape[d] == 0) return 0;
        if (v->strides[d] != 0) n *= (double)v->shape[d];
    }
    return n;
}

int mk_same_shape(const maia_view *a, const maia_view *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

int mk_check_view(const maia_view *v, const char *what, mk_status *st) {
    if (v->ndim < 0 || v->ndim > MAIA_MAX_DIMS)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s has %d dimensions; 0 to %d are supported",
                       what, (int)v->ndim, MAIA_MAX_DIMS);
    if (!mk_dtype_valid(v->dtype))
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s has an invalid dtype code %d", what,
                       (int)v->dtype);
    int64_t n = 1;
    int empty = 0;
    for (int d = 0; d < v->ndim; d++) {
        if (v->shape[d] < 0)
            return mk_fail(st, MAIA_KERNEL_INVALID, "%s has a negative dimension %lld", what,
                           (long long)v->shape[d]);
        if (v->shape[d] == 0) empty = 1;
        if (v->strides[d] > MK_MAX_ELEMENTS || v->strides[d] < -MK_MAX_ELEMENTS)
            return mk_fail(st, MAIA_KERNEL_INVALID, "%s has an out-of-range stride", what);
    }
    if (!empty)
        for (int d = 0; d < v->ndim; d++) {
            if (v->shape[d] > MK_MAX_ELEMENTS / n)
                return mk_fail(st, MAIA_KERNEL_INVALID, "%s has too many elements", what);
            n *= v->shape[d];
        }
    if (!empty && v->data == NULL)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s has no data pointer", what);
    return MAIA_KERNEL_OK;
}

int mk_check_counts(const maia_kernel_call *call, int n_in, int n_out, mk_status *st) {
    if (call->n_inputs != n_in || call->n_outputs != n_out)
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "%s takes %d input(s) and %d output(s), got %d and %d", call->kernel,
                       n_in, n_out, (int)call->n_inputs, (int)call->n_outputs);
    for (int i = 0; i < n_in; i++) {
        char what[32];
        snprintf(what, sizeof what, "input %d", i);
        if (mk_check_view(&call->inputs[i], what, st)) return st->code;
    }
    for (int i = 0; i < n_out; i++) {
        char what[32];
        snprintf(what, sizeof what, "output %d", i);
        if (mk_check_view(&call->outputs[i], what, st)) return st->code;
    }
    return MAIA_KERNEL_OK;
}
