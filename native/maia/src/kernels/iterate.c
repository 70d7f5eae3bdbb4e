/* The strided N-d iteration core, host-thread fan-out, and the validation helpers shared by
 * the kernel families. */
#include <pthread.h>
#include <stdatomic.h>
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

void mk_rows_init(mk_rows *r, const maia_view *x, const maia_view *y, int axis) {
    memset(r, 0, sizeof *r);
    r->rows = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (d == axis) continue;
        r->outer_shape[r->outer_ndim] = x->shape[d];
        r->outer_xs[r->outer_ndim] = x->strides[d];
        r->outer_ys[r->outer_ndim] = y->strides[d];
        r->outer_ndim++;
        r->rows *= x->shape[d];
    }
    r->len = x->shape[axis];
    r->xs = x->strides[axis];
    r->ys = y->strides[axis];
}

/* ---- host threads ------------------------------------------------------------------------ */

/* A persistent pool of worker threads shared by every caller in the process (several queues
 * may run kernels at once). mk_parallel_for publishes a task (its chunks are claimed with an
 * atomic counter), wakes the workers, runs chunks itself too, then unlists the task and waits
 * until no worker is still inside it. The pool grows lazily to `threads - 1` workers (the
 * caller is the other one) and maia_kernel_shutdown() joins them all. */

#define MK_MAX_THREADS 256
#define MK_CHUNKS_PER_THREAD 8

typedef struct par_task {
    mk_range_fn fn;
    void *ctx;
    int64_t total, nchunks;
    _Atomic int64_t next; /* next chunk to claim */
    int active;           /* workers running chunks of this task (under g_pool.mu) */
    int max_helpers;      /* threads - 1: the caller is the other one */
    int listed;           /* still on the task list (under g_pool.mu) */
    struct par_task *prev, *nxt;
} par_task;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a task was listed, or stop */
    pthread_cond_t idle; /* some task's active count reached 0 */
    par_task *head, *tail;
    pthread_t tids[MK_MAX_THREADS];
    int nworkers;
    int stop;
} g_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
            NULL, NULL, {0}, 0, 0};

static void task_unlink(par_task *t) { /* under g_pool.mu */
    if (!t->listed) return;
    if (t->prev) t->prev->nxt = t->nxt; else g_pool.head = t->nxt;
    if (t->nxt) t->nxt->prev = t->prev; else g_pool.tail = t->prev;
    t->prev = t->nxt = NULL;
    t->listed = 0;
}

static void task_run_chunks(par_task *t) {
    for (;;) {
        int64_t k = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed);
        if (k >= t->nchunks) return;
        t->fn(t->ctx, t->total * k / t->nchunks, t->total * (k + 1) / t->nchunks);
    }
}

static void *pool_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&g_pool.mu);
    for (;;) {
        /* the oldest listed task that still has chunks and room for another helper */
        par_task *t = g_pool.head;
        while (t) {
            par_task *nx = t->nxt;
            if (atomic_load_explicit(&t->next, memory_order_relaxed) >= t->nchunks)
                task_unlink(t); /* every chunk claimed: its caller waits only for active ones */
            else if (t->active < t->max_helpers)
                break;
            t = nx;
        }
        if (!t) {
            if (g_pool.stop) break;
            pthread_cond_wait(&g_pool.work, &g_pool.mu);
            continue;
        }
        t->active++;
        pthread_mutex_unlock(&g_pool.mu);
        task_run_chunks(t);
        pthread_mutex_lock(&g_pool.mu);
        if (--t->active == 0) pthread_cond_broadcast(&g_pool.idle);
        /* t may be gone from here on: its caller returns once active is 0 and it is unlisted */
    }
    pthread_mutex_unlock(&g_pool.mu);
    return NULL;
}

void maia_kernel_shutdown(void) {
    pthread_mutex_lock(&g_pool.mu);
    g_pool.stop = 1;
    int n = g_pool.nworkers;
    pthread_cond_broadcast(&g_pool.work);
    pthread_mutex_unlock(&g_pool.mu);
    for (int i = 0; i < n; i++) pthread_join(g_pool.tids[i], NULL);
    pthread_mutex_lock(&g_pool.mu);
    g_pool.nworkers = 0;
    g_pool.stop = 0;
    pthread_mutex_unlock(&g_pool.mu);
}

void mk_parallel_for(int threads, int64_t total, int64_t grain, mk_range_fn fn, void *ctx) {
    if (total <= 0) return;
    if (grain < 1) grain = 1;
    int64_t nt = threads < 1 ? 1 : threads;
    if (nt > MK_MAX_THREADS) nt = MK_MAX_THREADS;
    int64_t maxchunks = (total + grain - 1) / grain;
    if (nt > maxchunks) nt = maxchunks;
    if (nt <= 1) {
        fn(ctx, 0, total);
        return;
    }
    par_task t;
    t.fn = fn;
    t.ctx = ctx;
    t.total = total;
    t.nchunks = nt * MK_CHUNKS_PER_THREAD < maxchunks ? nt * MK_CHUNKS_PER_THREAD : maxchunks;
    atomic_init(&t.next, 0);
    t.active = 0;
    t.max_helpers = (int)nt - 1;
    t.prev = t.nxt = NULL;

    pthread_mutex_lock(&g_pool.mu);
    if (!g_pool.stop) /* grow to nt - 1 workers; a failed create leaves fewer (chunks still run) */
        while (g_pool.nworkers < nt - 1 &&
               pthread_create(&g_pool.tids[g_pool.nworkers], NULL, pool_main, NULL) == 0)
            g_pool.nworkers++;
    int helpers = g_pool.nworkers > 0;
    if (helpers) {
        t.listed = 1;
        t.prev = g_pool.tail;
        if (g_pool.tail) g_pool.tail->nxt = &t; else g_pool.head = &t;
        g_pool.tail = &t;
        pthread_cond_broadcast(&g_pool.work);
    } else {
        t.listed = 0;
    }
    pthread_mutex_unlock(&g_pool.mu);

    task_run_chunks(&t);
    if (!helpers) return;
    pthread_mutex_lock(&g_pool.mu);
    task_unlink(&t);
    while (t.active > 0) pthread_cond_wait(&g_pool.idle, &g_pool.mu);
    pthread_mutex_unlock(&g_pool.mu);
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
