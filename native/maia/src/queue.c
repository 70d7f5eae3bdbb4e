/* Hardware queues (one worker thread each), commands, events, the performance model's
 * per-queue timelines and the asynchronous error reporting. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#include "maia_internal.h"

/* A spin-wait hint: lets the sibling hyper-thread run and saves power while polling. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Recycled command objects kept per queue (each is ~5 KB; see cmd_new). */
#define CMD_CACHE_MAX 64

/* ---- objects -------------------------------------------------------------------------- */

typedef struct qerror {
    atomic_int refs;
    atomic_int reported;
    maia_status status;
    char msg[768];
} qerror;

typedef struct event {
    atomic_int refs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;             /* under mu */
    atomic_int done_fast; /* mirrors done for lock-free queries */
    int user;
    uint64_t queue_handle, seq;
    int64_t wall_ns;
    uint64_t modeled_ps;
    qerror *err; /* an unreported failure of the queue before this event, set when reached */
} event;

enum { C_H2D, C_H2D_DONE, C_D2H, C_D2D, C_KERNEL, C_RECORD, C_WAIT };

typedef struct copy_desc {
    unsigned char *dst;
    const unsigned char *src;
    int ndim;
    size_t isz;
    int64_t shape[MAIA_MAX_DIMS];
    int64_t dstride[MAIA_MAX_DIMS]; /* bytes */
    int64_t sstride[MAIA_MAX_DIMS]; /* bytes */
} copy_desc;

typedef struct cmd {
    struct cmd *next;
    int kind;
    uint64_t seq;
    block *blocks[2 * MAIA_MAX_OPERANDS];
    int nblocks;
    uint64_t bytes;
    int link; /* 0 host link, 1 HBM, 2 peer */
    int src_device; /* copy d2d: the source's device */
    void *staging;
    event *ev;
    int inject_fault;
    char kernel[MAIA_MAX_KERNEL_NAME + 1];
    union {
        copy_desc copy;
        maia_kernel_call call;
    } u;
} cmd;

struct queue {
    device *dev;
    int index;
    uint64_t handle;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    cmd *head, *tail;
    atomic_uint_least64_t submitted; /* written under mu; read lock-free by spinners */
    atomic_uint_least64_t completed;
    atomic_int stop;                /* written under mu; read lock-free by the spinning worker */
    atomic_int waiters;             /* written under mu; read lock-free by the worker */
    int worker_idle;                /* under mu: the worker sleeps on cv_work */
    uint64_t spin_ns;               /* how long waits on this queue poll before sleeping */
    pthread_mutex_t cache_mu;       /* the command cache */
    cmd *cache;                     /* recycled commands, at most CMD_CACHE_MAX */
    int ncache;
    int api_refs;                   /* under g_rt->qmu */
    atomic_uint_least64_t clock_ps; /* modeled timeline, written by the worker */
    atomic_uint delay_us;
    qerror *err;                    /* first unreported failure, under mu */
};

static pthread_cond_t g_qcv = PTHREAD_COND_INITIALIZER; /* api_refs reached 0 */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void qerror_unref(qerror *e) {
    if (e && atomic_fetch_sub(&e->refs, 1) == 1) free(e);
}

static void event_unref(event *ev) {
    if (ev && atomic_fetch_sub(&ev->refs, 1) == 1) {
        qerror_unref(ev->err);
        pthread_mutex_destroy(&ev->mu);
        pthread_cond_destroy(&ev->cv);
        free(ev);
    }
}

static void event_signal(event *ev, int64_t wall, uint64_t modeled, qerror *err) {
    pthread_mutex_lock(&ev->mu);
    if (!ev->done) {
        ev->wall_ns = wall;
        ev->modeled_ps = modeled;
        ev->err = err;
        err = NULL;
        ev->done = 1;
        atomic_store(&ev->done_fast, 1);
        pthread_cond_broadcast(&ev->cv);
    }
    pthread_mutex_unlock(&ev->mu);
    qerror_unref(err);
}

static event *event_new(int user) {
    event *ev = calloc(1, sizeof *ev);
    if (!ev) return NULL;
    atomic_init(&ev->refs, 1);
    atomic_init(&ev->done_fast, 0);
    pthread_mutex_init(&ev->mu, NULL);
    pthread_cond_init(&ev->cv, NULL);
    ev->user = user;
    return ev;
}

/* ---- handle acquisition --------------------------------------------------------------- */

static maia_status q_acquire(uint64_t h, queue **out, const char *what) {
    runtime *rt = rt_get();
    if (!rt) return MAIA_ERROR_NOT_INITIALIZED;
    pthread_mutex_lock(&rt->qmu);
    void *obj;
    maia_status st = ht_lookup(&rt->queues, h, -1, false, &obj, what);
    if (!st) ((queue *)obj)->api_refs++;
    pthread_mutex_unlock(&rt->qmu);
    if (!st) *out = obj;
    return st;
}

static void q_release(queue *q) {
    pthread_mutex_lock(&g_rt->qmu);
    if (--q->api_refs == 0) pthread_cond_broadcast(&g_qcv);
    pthread_mutex_unlock(&g_rt->qmu);
}

/* q_acquire for a call that uses the queue's device: refused once the device is lost. */
static maia_status q_acquire_live(uint64_t h, queue **out, const char *what) {
    maia_status st = q_acquire(h, out, what);
    if (st) return st;
    st = dev_check_lost((*out)->dev, what);
    if (st) q_release(*out);
    return st;
}

/* An event of a lost device reports the loss (a user event belongs to no device). */
static maia_status ev_check_lost(const event *ev, const char *what) {
    if (ev->user) return MAIA_OK;
    int index = handle_device(ev->queue_handle);
    if (index < 0 || index >= g_rt->ndev) return MAIA_OK;
    return dev_check_lost(&g_rt->devs[index], what);
}

static maia_status ev_acquire(uint64_t h, event **out, const char *what) {
    runtime *rt = rt_get();
    if (!rt) return MAIA_ERROR_NOT_INITIALIZED;
    pthread_mutex_lock(&rt->emu);
    void *obj;
    maia_status st = ht_lookup(&rt->events, h, -1, false, &obj, what);
    if (!st) atomic_fetch_add(&((event *)obj)->refs, 1);
    pthread_mutex_unlock(&rt->emu);
    if (!st) *out = obj;
    return st;
}

/* ---- copies --------------------------------------------------------------------------- */

/* Drop size-1 dimensions and merge dimensions contiguous in both operands. */
static void copy_normalize(copy_desc *c) {
    int n = 0;
    for (int i = 0; i < c->ndim; i++) {
        if (c->shape[i] == 1) continue;
        if (n > 0 && c->dstride[n - 1] == c->dstride[i] * c->shape[i] &&
            c->sstride[n - 1] == c->sstride[i] * c->shape[i]) {
            c->shape[n - 1] *= c->shape[i];
            c->dstride[n - 1] = c->dstride[i];
            c->sstride[n - 1] = c->sstride[i];
            continue;
        }
        c->shape[n] = c->shape[i];
        c->dstride[n] = c->dstride[i];
        c->sstride[n] = c->sstride[i];
        n++;
    }
    c->ndim = n;
}

static void copy_elem(unsigned char *d, const unsigned char *s, size_t isz) {
    switch (isz) {
    case 1: *d = *s; break;
    case 2: { uint16_t v; memcpy(&v, s, 2); memcpy(d, &v, 2); break; }
    case 4: { uint32_t v; memcpy(&v, s, 4); memcpy(d, &v, 4); break; }
    case 8: { uint64_t v; memcpy(&v, s, 8); memcpy(d, &v, 8); break; }
    default: memmove(d, s, isz);
    }
}

static void copy_run(const copy_desc *c0) {
    copy_desc c = *c0;
    for (int i = 0; i < c.ndim; i++)
        if (c.shape[i] == 0) return;
    copy_normalize(&c);
    if (c.ndim == 0) {
        copy_elem(c.dst, c.src, c.isz);
        return;
    }
    int inner = c.ndim - 1;
    bool rows = c.dstride[inner] == (int64_t)c.isz && c.sstride[inner] == (int64_t)c.isz;
    int64_t idx[MAIA_MAX_DIMS] = {0};
    unsigned char *d = c.dst;
    const unsigned char *s = c.src;
    int64_t n = c.shape[inner];
    for (;;) {
        if (rows) {
            memmove(d, s, (size_t)n * c.isz);
        } else {
            unsigned char *dd = d;
            const unsigned char *ss = s;
            for (int64_t k = 0; k < n; k++, dd += c.dstride[inner], ss += c.sstride[inner])
                copy_elem(dd, ss, c.isz);
        }
        int k = inner - 1;
        for (; k >= 0; k--) {
            d += c.dstride[k];
            s += c.sstride[k];
            if (++idx[k] < c.shape[k]) break;
            d -= c.dstride[k] * c.shape[k];
            s -= c.sstride[k] * c.shape[k];
            idx[k] = 0;
        }
        if (k < 0) return;
    }
}

static void view_byte_strides(const maia_buffer_view *v, int64_t *out) {
    size_t isz = maia_dtype_size(v->dtype);
    for (int i = 0; i < v->ndim; i++) out[i] = v->strides[i] * (int64_t)isz;
}

static void contiguous_byte_strides(int ndim, const int64_t *shape, size_t isz, int64_t *out) {
    int64_t s = (int64_t)isz;
    for (int i = ndim - 1; i >= 0; i--) {
        out[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

/* ---- the performance model ------------------------------------------------------------ */

static double model_copy_ns(const maia_perf_model *m, uint64_t bytes, int link) {
    double bw = link == 0 ? m->host_bandwidth : link == 2 ? m->peer_bandwidth : m->hbm_bandwidth;
    double moved = link == 1 ? 2.0 * (double)bytes : (double)bytes; /* HBM: read + write */
    return moved / bw * 1e9 + m->copy_launch_ns;
}

static double model_kernel_ns(const maia_perf_model *m, const maia_kernel_cost *cost) {
    int dt = cost->compute_dtype;
    double peak = (dt >= 0 && dt < MAIA_DTYPE_COUNT) ? m->peak_flops[dt]
                  : dt == MAIA_COMPUTE_MX8            ? m->peak_mx8_flops
                  : dt == MAIA_COMPUTE_MX4            ? m->peak_mx4_flops
                                                      : m->peak_flops[MAIA_FLOAT32];
    double tc = cost->flops > 0 ? cost->flops / peak * 1e9 : 0.0;
    double tm = cost->bytes_moved > 0 ? cost->bytes_moved / m->hbm_bandwidth * 1e9 : 0.0;
    return (tc > tm ? tc : tm) + m->kernel_launch_ns;
}

/* ---- the worker ----------------------------------------------------------------------- */

static void queue_fail(queue *q, const cmd *c, const char *what, const char *detail) {
    qerror *e = calloc(1, sizeof *e);
    atomic_fetch_add(&q->dev->failed, 1);
    if (!e) return; /* cannot record it; counters still show the failure */
    atomic_init(&e->refs, 1);
    atomic_init(&e->reported, 0);
    e->status = MAIA_ERROR_KERNEL_FAILED;
    snprintf(e->msg, sizeof e->msg, "maia:%d queue %d, command #%llu (%s) failed: %s",
             q->dev->index, q->index, (unsigned long long)c->seq, what, detail);
    pthread_mutex_lock(&q->mu);
    if (!q->err || atomic_load(&q->err->reported)) {
        qerror_unref(q->err);
        q->err = e;
        e = NULL;
    }
    pthread_mutex_unlock(&q->mu);
    qerror_unref(e);
}

/* Run one command and advance the queue's modeled clock. When `t` is not NULL it receives the
 * command's trace entry, less the wall times (the caller's). */
static void execute(queue *q, cmd *c, maia_trace_entry *t) {
    device *d = q->dev;
    const maia_perf_model *m = &g_rt->model;
    uint64_t clock = atomic_load(&q->clock_ps);
    uint64_t start = clock;
    double dur_ns = 0.0;
    static const char *const copy_names[] = {"copy h2d", "copy h2d", "copy d2h", "copy d2d"};
    static const int copy_kinds[] = {MAIA_TRACE_COPY_H2D, MAIA_TRACE_COPY_H2D,
                                     MAIA_TRACE_COPY_D2H, MAIA_TRACE_COPY_D2D};
    if (t) {
        t->queue = q->handle;
        t->sequence = c->seq;
        t->device = t->src_device = d->index;
        t->queue_index = q->index;
        t->status = MAIA_OK;
    }
    switch (c->kind) {
    case C_H2D:
    case C_D2H:
    case C_D2D:
        copy_run(&c->u.copy);
        /* fallthrough */
    case C_H2D_DONE:
        dur_ns = model_copy_ns(m, c->bytes, c->link);
        if (t) {
            t->kind = copy_kinds[c->kind];
            snprintf(t->name, sizeof t->name, "%s", copy_names[c->kind]);
            t->bytes = c->bytes;
            if (c->link == 2) t->src_device = c->src_device;
        }
        atomic_fetch_add(&d->copies, 1);
        atomic_fetch_add(&d->bytes_copied, c->bytes);
        break;
    case C_KERNEL: {
        maia_kernel_cost cost = {0, 0, MAIA_FLOAT32};
        int failed = 0;
        char err[512] = "";
        char what[MAIA_MAX_KERNEL_NAME + 16];
        snprintf(what, sizeof what, "kernel '%s'", c->u.call.kernel);
        if (c->inject_fault) {
            failed = 1;
            queue_fail(q, c, what, "injected fault");
        } else {
            int rc = maia_kernel_execute(&c->u.call, &cost, err, sizeof err);
            if (rc != MAIA_KERNEL_OK) {
                err[sizeof err - 1] = '\0';
                char detail[600];
                snprintf(detail, sizeof detail, "%s%s",
                         rc == MAIA_KERNEL_UNKNOWN ? "unknown kernel: "
                         : rc == MAIA_KERNEL_UNSUPPORTED ? "unsupported: "
                         : rc == MAIA_KERNEL_INVALID ? "invalid operands: " : "",
                         err[0] ? err : "(no message)");
                queue_fail(q, c, what, detail);
                memset(&cost, 0, sizeof cost);
                failed = 1;
            }
        }
        dur_ns = model_kernel_ns(m, &cost);
        atomic_fetch_add(&d->kernels, 1);
        if (t) {
            t->kind = MAIA_TRACE_KERNEL;
            snprintf(t->name, sizeof t->name, "%s", c->u.call.kernel);
            t->flops = cost.flops;
            t->bytes = cost.bytes_moved > 0 ? (uint64_t)cost.bytes_moved : 0;
            t->status = failed ? MAIA_ERROR_KERNEL_FAILED : MAIA_OK;
        }
        break;
    }
    case C_RECORD: {
        qerror *e = NULL;
        pthread_mutex_lock(&q->mu);
        if (q->err && !atomic_load(&q->err->reported)) {
            e = q->err;
            atomic_fetch_add(&e->refs, 1);
        }
        pthread_mutex_unlock(&q->mu);
        event_signal(c->ev, now_ns(), clock, e);
        if (t) {
            t->kind = MAIA_TRACE_EVENT;
            snprintf(t->name, sizeof t->name, "event");
        }
        break;
    }
    case C_WAIT: {
        event *ev = c->ev;
        pthread_mutex_lock(&ev->mu);
        while (!ev->done) pthread_cond_wait(&ev->cv, &ev->mu);
        uint64_t reached = ev->modeled_ps;
        pthread_mutex_unlock(&ev->mu);
        if (reached > clock) clock = reached; /* a wait takes the max of the two timelines */
        break;
    }
    }
    uint64_t dur = model_ps(dur_ns);
    atomic_store(&q->clock_ps, clock + dur);
    atomic_fetch_add(&d->modeled_busy_ps, dur);
    if (t) {
        if (c->kind == C_WAIT) {
            t->kind = MAIA_TRACE_WAIT;
            snprintf(t->name, sizeof t->name, "wait");
        }
        t->modeled_start_ps = start;
        t->modeled_duration_ps = clock + dur - start; /* a wait: how far it moved the clock */
    }
}

static void cmd_release_parts(cmd *c) {
    for (int i = 0; i < c->nblocks; i++) mem_release_ref(c->blocks[i]);
    free(c->staging);
    event_unref(c->ev);
}

static void cmd_free(cmd *c) {
    cmd_release_parts(c);
    free(c);
}

/* Release what a command holds and keep the object in the queue's cache (bounded) for the
 * next cmd_new; every cached object is its own malloc block, freed at queue teardown. */
static void cmd_recycle(queue *q, cmd *c) {
    cmd_release_parts(c);
    pthread_mutex_lock(&q->cache_mu);
    if (q->ncache < CMD_CACHE_MAX) {
        c->next = q->cache;
        q->cache = c;
        q->ncache++;
        c = NULL;
    }
    pthread_mutex_unlock(&q->cache_mu);
    free(c);
}

static void cmd_cache_destroy(queue *q) {
    cmd *c = q->cache;
    while (c) {
        cmd *n = c->next;
        free(c);
        c = n;
    }
    q->cache = NULL;
    q->ncache = 0;
}

/* Poll until *ctr != seen (ne) or *ctr >= seen (!ne), or until `stop` is set, for at most
 * spin_ns. Returns true when the condition came true. pause between reads, sched_yield now and
 * then so an oversubscribed host still makes progress. */
static bool spin_until(const atomic_uint_least64_t *ctr, uint64_t seen, bool ne,
                       const atomic_int *stop, uint64_t spin_ns) {
    if (!spin_ns) return false;
    int64_t deadline = 0;
    for (unsigned round = 0;; round++) {
        for (int i = 0; i < 32; i++) {
            uint64_t v = atomic_load_explicit(ctr, memory_order_acquire);
            if (ne ? v != seen : v >= seen) return true;
            if (stop && atomic_load_explicit(stop, memory_order_relaxed)) return false;
            cpu_relax();
        }
        int64_t t = now_ns();
        if (round == 0) deadline = t + (int64_t)spin_ns;
        else if (t >= deadline) return false;
        if ((round & 15) == 15) sched_yield();
    }
}

static void *worker_main(void *arg) {
    queue *q = arg;
    device *d = q->dev;
    uint64_t taken = 0; /* sequence number of the last command dequeued */
    for (;;) {
        /* Poll the submission counter for a while before sleeping on cv_work, so a command
         * submitted soon after the last one starts without a wake-up. */
        if (atomic_load(&q->submitted) == taken && !atomic_load(&q->stop))
            (void)spin_until(&q->submitted, taken, true, &q->stop, q->spin_ns);
        pthread_mutex_lock(&q->mu);
        while (!q->head && !q->stop) {
            q->worker_idle = 1;
            pthread_cond_wait(&q->cv_work, &q->mu);
            q->worker_idle = 0;
        }
        cmd *c = q->head;
        if (!c) { /* stopping and drained */
            pthread_mutex_unlock(&q->mu);
            break;
        }
        q->head = c->next;
        if (!q->head) q->tail = NULL;
        taken = c->seq;
        pthread_mutex_unlock(&q->mu);

        unsigned delay = atomic_load(&q->delay_us);
        if (delay) {
            struct timespec ts = {(time_t)(delay / 1000000u), (long)(delay % 1000000u) * 1000L};
            while (nanosleep(&ts, &ts) != 0) {
            }
        }
        int64_t t0 = now_ns();
        maia_trace_entry te;
        int tracing = (int)atomic_load_explicit(&d->trace_on, memory_order_relaxed);
        if (tracing) memset(&te, 0, sizeof te);
        if (c->kind <= C_KERNEL && atomic_load(&d->lost)) {
            /* the device is gone: its copies and kernels are dropped without running, while
             * records and waits still run, so every event is reached and nothing hangs */
            if (tracing) tracing = 0;
        } else {
            execute(q, c, tracing ? &te : NULL);
        }
        uint64_t seq = c->seq;
        cmd_recycle(q, c); /* releases block references before completion is visible */
        int64_t t1 = now_ns();
        atomic_fetch_add(&d->wall_busy_ns, (uint64_t)(t1 - t0));
        if (tracing) {
            te.wall_start_ns = t0;
            te.wall_duration_ns = (uint64_t)(t1 - t0);
            trace_push(d, &te); /* before completion is visible: a synchronize sees it */
        }
        atomic_fetch_add(&d->commands, 1);

        /* A sleeping waiter increments waiters (under mu) before it checks completed, and
         * both are seq_cst: either it sees this store or this load sees it, and then the
         * broadcast under mu cannot fall between its check and its wait. */
        atomic_store(&q->completed, seq);
        if (atomic_load(&q->waiters)) {
            pthread_mutex_lock(&q->mu);
            pthread_cond_broadcast(&q->cv_done);
            pthread_mutex_unlock(&q->mu);
        }
    }
    return NULL;
}

/* Append a command. Caller holds q->mu. */
static void enqueue_locked(queue *q, cmd *c) {
    c->seq = ++q->submitted;
    c->next = NULL;
    if (q->tail) q->tail->next = c;
    else q->head = c;
    q->tail = c;
    if (q->worker_idle) pthread_cond_signal(&q->cv_work); /* a busy worker finds it anyway */
}

static void wait_completed(queue *q, uint64_t target) {
    if (atomic_load(&q->completed) >= target) return;
    if (spin_until(&q->completed, target, false, NULL, q->spin_ns)) return;
    pthread_mutex_lock(&q->mu);
    q->waiters++;
    while (atomic_load(&q->completed) < target) pthread_cond_wait(&q->cv_done, &q->mu);
    q->waiters--;
    pthread_mutex_unlock(&q->mu);
}

/* Report (once) the queue's first unreported failure. */
static maia_status take_error(queue *q) {
    qerror *e = NULL;
    pthread_mutex_lock(&q->mu);
    e = q->err;
    q->err = NULL;
    pthread_mutex_unlock(&q->mu);
    if (!e) return MAIA_OK;
    maia_status st = MAIA_OK;
    if (!atomic_exchange(&e->reported, 1)) st = maia_set_error(e->status, "%s", e->msg);
    qerror_unref(e);
    return st;
}

/* ---- queues --------------------------------------------------------------------------- */

maia_status maia_queue_create(int32_t index, uint64_t *out) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    if (!out) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "maia_queue_create: queue is NULL");
    *out = 0;
    st = dev_check_lost(d, "maia_queue_create");
    if (st) return st;
    queue *q = calloc(1, sizeof *q);
    if (!q) return maia_set_error(MAIA_ERROR_HOST_OUT_OF_MEMORY, "maia_queue_create: host out of memory");
    q->dev = d;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv_work, NULL);
    pthread_cond_init(&q->cv_done, NULL);
    atomic_init(&q->completed, 0);
    atomic_init(&q->clock_ps, 0);
    atomic_init(&q->delay_us, g_rt->default_delay_us);
    atomic_init(&q->submitted, 0);
    atomic_init(&q->stop, 0);
    atomic_init(&q->waiters, 0);
    q->spin_ns = g_rt->spin_ns;
    pthread_mutex_init(&q->cache_mu, NULL);

    /* reserve a place in d->queues (sized for the maximum) before the slow part */
    pthread_mutex_lock(&d->mu);
    if (d->nqueues + d->creating >= g_rt->cfg.max_queues_per_device) {
        pthread_mutex_unlock(&d->mu);
        st = maia_set_error(MAIA_ERROR_LIMIT, "maia:%d already has %d queues (the maximum)", index,
                            d->nqueues + d->creating);
        goto fail;
    }
    if (!d->queues) {
        d->queues = calloc((size_t)g_rt->cfg.max_queues_per_device, sizeof *d->queues);
        if (!d->queues) {
            pthread_mutex_unlock(&d->mu);
            st = maia_set_error(MAIA_ERROR_HOST_OUT_OF_MEMORY, "maia_queue_create: host out of memory");
            goto fail;
        }
    }
    d->creating++;
    q->index = d->queue_serial++;
    pthread_mutex_unlock(&d->mu);

    if (pthread_create(&q->thread, NULL, worker_main, q) != 0) {
        st = maia_set_error(MAIA_ERROR_SYSTEM, "maia_queue_create: cannot start a worker thread");
        goto fail_reserved;
    }
    pthread_mutex_lock(&g_rt->qmu);
    q->handle = ht_insert(&g_rt->queues, index, q);
    pthread_mutex_unlock(&g_rt->qmu);
    if (!q->handle) {
        pthread_mutex_lock(&q->mu);
        q->stop = 1;
        pthread_cond_signal(&q->cv_work);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->thread, NULL);
        st = maia_set_error(MAIA_ERROR_LIMIT, "maia_queue_create: too many queues");
        goto fail_reserved;
    }
    pthread_mutex_lock(&d->mu);
    d->creating--;
    d->queues[d->nqueues++] = q;
    pthread_mutex_unlock(&d->mu);
    *out = q->handle;
    return MAIA_OK;
fail_reserved:
    pthread_mutex_lock(&d->mu);
    d->creating--;
    pthread_mutex_unlock(&d->mu);
fail:
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv_work);
    pthread_cond_destroy(&q->cv_done);
    pthread_mutex_destroy(&q->cache_mu);
    cmd_cache_destroy(q);
    free(q);
    return st;
}

/* Stop, drain and free a queue already removed from the handle table. */
static maia_status queue_teardown(queue *q) {
    device *d = q->dev;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->nqueues; i++)
        if (d->queues[i] == q) {
            d->queues[i] = d->queues[--d->nqueues];
            break;
        }
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_signal(&q->cv_work);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    maia_status st = take_error(q);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv_work);
    pthread_cond_destroy(&q->cv_done);
    cmd_cache_destroy(q);
    pthread_mutex_destroy(&q->cache_mu);
    free(q);
    return st;
}

maia_status maia_queue_destroy(uint64_t h) {
    runtime *rt = rt_get();
    if (!rt) return MAIA_ERROR_NOT_INITIALIZED;
    pthread_mutex_lock(&rt->qmu);
    void *obj;
    maia_status st = ht_lookup(&rt->queues, h, -1, true, &obj, "maia_queue_destroy");
    if (st) {
        pthread_mutex_unlock(&rt->qmu);
        return st;
    }
    queue *q = obj;
    ht_remove(&rt->queues, h);
    while (q->api_refs > 0) pthread_cond_wait(&g_qcv, &rt->qmu);
    pthread_mutex_unlock(&rt->qmu);
    return queue_teardown(q);
}

maia_status maia_queue_synchronize(uint64_t h) {
    queue *q;
    maia_status st = q_acquire(h, &q, "maia_queue_synchronize");
    if (st) return st;
    wait_completed(q, atomic_load(&q->submitted));
    st = take_error(q);
    if (!st) st = dev_check_lost(q->dev, "maia_queue_synchronize");
    q_release(q);
    return st;
}

maia_status maia_queue_query(uint64_t h) {
    queue *q;
    maia_status st = q_acquire_live(h, &q, "maia_queue_query");
    if (st) return st;
    st = take_error(q);
    if (!st) {
        pthread_mutex_lock(&q->mu);
        bool done = atomic_load(&q->completed) >= q->submitted;
        pthread_mutex_unlock(&q->mu);
        st = done ? MAIA_OK : MAIA_NOT_READY;
    }
    q_release(q);
    return st;
}

maia_status maia_queue_get_info(uint64_t h, maia_queue_info *info) {
    if (!info) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "maia_queue_get_info: info is NULL");
    queue *q;
    maia_status st = q_acquire(h, &q, "maia_queue_get_info");
    if (st) return st;
    pthread_mutex_lock(&q->mu);
    info->device = q->dev->index;
    info->index = q->index;
    info->submitted = q->submitted;
    info->completed = atomic_load(&q->completed);
    info->modeled_clock_ns = (double)atomic_load(&q->clock_ps) / 1000.0;
    info->delay_us = atomic_load(&q->delay_us);
    pthread_mutex_unlock(&q->mu);
    q_release(q);
    return MAIA_OK;
}

maia_status maia_fault_queue_delay(uint64_t h, uint32_t us) {
    queue *q;
    maia_status st = q_acquire(h, &q, "maia_fault_queue_delay");
    if (st) return st;
    atomic_store(&q->delay_us, us);
    q_release(q);
    return MAIA_OK;
}

maia_status maia_device_synchronize(int32_t index) {
    device *d = NULL;
    maia_status st = rt_device(index, &d);
    if (st) return st;
    pthread_mutex_lock(&d->mu);
    int n = d->nqueues;
    uint64_t *hs = n ? malloc((size_t)n * sizeof *hs) : NULL;
    if (n && !hs) {
        pthread_mutex_unlock(&d->mu);
        return maia_set_error(MAIA_ERROR_HOST_OUT_OF_MEMORY, "maia_device_synchronize: host out of memory");
    }
    for (int i = 0; i < n; i++) hs[i] = d->queues[i]->handle;
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < n; i++) {
        queue *q;
        if (q_acquire(hs[i], &q, "maia_device_synchronize")) continue; /* destroyed meanwhile */
        pthread_mutex_lock(&q->mu);
        uint64_t target = q->submitted;
        pthread_mutex_unlock(&q->mu);
        wait_completed(q, target);
        q_release(q);
    }
    free(hs);
    maia_clear_error();
    return dev_check_lost(d, "maia_device_synchronize");
}

/* ---- commands ------------------------------------------------------------------------- */

/* A command object: from the queue's cache when it has one (no malloc of ~5 KB per command),
 * else malloc. Not zeroed beyond the header: the submitting call fills what its kind uses. */
static cmd *cmd_new(queue *q, int kind) {
    pthread_mutex_lock(&q->cache_mu);
    cmd *c = q->cache;
    if (c) {
        q->cache = c->next;
        q->ncache--;
    }
    pthread_mutex_unlock(&q->cache_mu);
    if (!c) c = malloc(sizeof *c);
    if (!c) return NULL;
    c->next = NULL;
    c->kind = kind;
    c->seq = 0;
    c->nblocks = 0;
    c->bytes = 0;
    c->link = 0;
    c->staging = NULL;
    c->ev = NULL;
    c->inject_fault = 0;
    return c;
}

static maia_status host_oom(cmd *c, const char *what) {
    if (c) cmd_free(c);
    return maia_set_error(MAIA_ERROR_HOST_OUT_OF_MEMORY, "%s: host out of memory", what);
}

static void submit(queue *q, cmd *c) {
    pthread_mutex_lock(&q->mu);
    enqueue_locked(q, c);
    pthread_mutex_unlock(&q->mu);
}

/* The checks and the descriptor both host copies share: a command of `kind` between the
 * device view `view` and `nbytes` of contiguous host memory at `host`. to_device says which
 * way the bytes go. On failure the command is freed and the status returned (the caller
 * still releases the queue). */
static maia_status host_copy_prepare(queue *q, int kind, const maia_buffer_view *view,
                                     const void *host, uint64_t nbytes, int to_device,
                                     const char *what, cmd **out) {
    cmd *c = cmd_new(q, kind);
    if (!c) return host_oom(NULL, what);
    void *data;
    uint64_t touched;
    maia_status st = mem_resolve_view(view, q->dev->index, &data, &c->blocks[0], &touched, what);
    if (st) {
        free(c); /* no block reference was taken */
        return st;
    }
    c->nblocks = 1;
    if (touched != nbytes) {
        st = maia_set_error(MAIA_ERROR_INVALID_ARGUMENT,
                            "%s: the view holds %llu bytes but %llu were given", what,
                            (unsigned long long)touched, (unsigned long long)nbytes);
    } else if (nbytes && !host) {
        st = maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", what,
                            to_device ? "src" : "dst");
    }
    if (st) {
        cmd_free(c);
        return st;
    }
    copy_desc *cd = &c->u.copy;
    cd->ndim = view->ndim;
    cd->isz = maia_dtype_size(view->dtype);
    memcpy(cd->shape, view->shape, sizeof(int64_t) * (size_t)view->ndim);
    if (to_device) {
        cd->dst = data;
        cd->src = host;
        view_byte_strides(view, cd->dstride);
        contiguous_byte_strides(view->ndim, view->shape, cd->isz, cd->sstride);
    } else {
        cd->dst = (void *)host;
        cd->src = data;
        view_byte_strides(view, cd->sstride);
        contiguous_byte_strides(view->ndim, view->shape, cd->isz, cd->dstride);
    }
    c->bytes = nbytes;
    c->link = 0;
    *out = c;
    return MAIA_OK;
}

maia_status maia_copy_h2d(uint64_t qh, const maia_buffer_view *dst, const void *src,
                          uint64_t nbytes) {
    const char *what = "maia_copy_h2d";
    queue *q;
    maia_status st = q_acquire_live(qh, &q, what);
    if (st) return st;
    cmd *c;
    st = host_copy_prepare(q, C_H2D, dst, src, nbytes, 1, what, &c);
    if (st) {
        q_release(q);
        return st;
    }
    copy_desc *cd = &c->u.copy;
    pthread_mutex_lock(&q->mu);
    if (atomic_load(&q->completed) == q->submitted) {
        /* idle queue: nothing before this command can touch dst, copy now */
        copy_run(cd);
        c->kind = C_H2D_DONE;
        enqueue_locked(q, c);
        pthread_mutex_unlock(&q->mu);
    } else {
        pthread_mutex_unlock(&q->mu);
        if (nbytes) {
            c->staging = malloc((size_t)nbytes);
            if (!c->staging) {
                st = host_oom(c, what);
                q_release(q);
                return st;
            }
            memcpy(c->staging, src, (size_t)nbytes);
            cd->src = c->staging;
        }
        submit(q, c);
    }
    q_release(q);
    return MAIA_OK;
}

maia_status maia_copy_d2h(uint64_t qh, void *dst, uint64_t nbytes, const maia_buffer_view *src) {
    const char *what = "maia_copy_d2h";
    queue *q;
    maia_status st = q_acquire_live(qh, &q, what);
    if (st) return st;
    cmd *c;
    st = host_copy_prepare(q, C_D2H, src, dst, nbytes, 0, what, &c);
    if (!st) submit(q, c);
    q_release(q);
    return st;
}

maia_status maia_copy_d2d(uint64_t qh, const maia_buffer_view *dst, const maia_buffer_view *src) {
    const char *what = "maia_copy_d2d";
    queue *q;
    maia_status st = q_acquire_live(qh, &q, what);
    if (st) return st;
    if (!dst || !src) {
        q_release(q);
        return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "%s: view is NULL", what);
    }
    cmd *c = cmd_new(q, C_D2D);
    if (!c) {
        q_release(q);
        return host_oom(NULL, what);
    }
    void *dd, *sd;
    uint64_t dn, sn;
    st = mem_resolve_view(dst, q->dev->index, &dd, &c->blocks[0], &dn, "maia_copy_d2d (dst)");
    if (st) {
        free(c);
        q_release(q);
        return st;
    }
    c->nblocks = 1;
    st = mem_resolve_view(src, -1, &sd, &c->blocks[1], &sn, "maia_copy_d2d (src)");
    if (st) goto fail;
    c->nblocks = 2;
    bool same = maia_dtype_size(dst->dtype) == maia_dtype_size(src->dtype) && dst->ndim == src->ndim;
    for (int i = 0; same && i < dst->ndim; i++) same = dst->shape[i] == src->shape[i];
    if (!same) {
        st = maia_set_error(MAIA_ERROR_INVALID_ARGUMENT,
                            "%s: dst and src differ in shape or element size", what);
        goto fail;
    }
    copy_desc *cd = &c->u.copy;
    cd->dst = dd;
    cd->src = sd;
    cd->ndim = dst->ndim;
    cd->isz = maia_dtype_size(dst->dtype);
    memcpy(cd->shape, dst->shape, sizeof(int64_t) * (size_t)dst->ndim);
    view_byte_strides(dst, cd->dstride);
    view_byte_strides(src, cd->sstride);
    c->bytes = dn;
    c->src_device = handle_device(src->buffer);
    c->link = c->src_device == q->dev->index ? 1 : 2;
    submit(q, c);
    q_release(q);
    return MAIA_OK;
fail:
    cmd_free(c);
    q_release(q);
    return st;
}

static void to_kernel_view(const maia_buffer_view *v, void *data, maia_view *out) {
    out->data = data;
    out->dtype = v->dtype;
    out->ndim = v->ndim;
    memcpy(out->shape, v->shape, sizeof(int64_t) * (size_t)v->ndim);
    memcpy(out->strides, v->strides, sizeof(int64_t) * (size_t)v->ndim);
}

maia_status maia_launch(uint64_t qh, const char *kernel, const maia_buffer_view *inputs,
                        int32_t n_inputs, const maia_buffer_view *outputs, int32_t n_outputs,
                        const maia_attrs *attrs) {
    const char *what = "maia_launch";
    queue *q;
    maia_status st = q_acquire_live(qh, &q, what);
    if (st) return st;
    size_t klen = kernel ? strnlen(kernel, MAIA_MAX_KERNEL_NAME + 1) : 0;
    if (!kernel || klen == 0 || klen > MAIA_MAX_KERNEL_NAME || n_inputs < 0 ||
        n_inputs > MAIA_MAX_OPERANDS || n_outputs < 0 || n_outputs > MAIA_MAX_OPERANDS ||
        (n_inputs && !inputs) || (n_outputs && !outputs)) {
        q_release(q);
        return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT,
                              "%s: needs a kernel name of 1..%d chars and 0..%d inputs and "
                              "outputs", what, MAIA_MAX_KERNEL_NAME, MAIA_MAX_OPERANDS);
    }
    cmd *c = cmd_new(q, C_KERNEL);
    if (!c) {
        q_release(q);
        return host_oom(NULL, what);
    }
    char *name = c->kernel;
    memcpy(name, kernel, klen);
    name[klen] = '\0';
    maia_kernel_call *call = &c->u.call;
    call->kernel = name;
    call->n_inputs = n_inputs;
    call->n_outputs = n_outputs;
    call->threads = g_rt->cfg.kernel_threads;
    if (attrs) call->attrs = *attrs;
    else memset(&call->attrs, 0, sizeof call->attrs);
    for (int i = 0; i < n_inputs + n_outputs; i++) {
        const maia_buffer_view *v = i < n_inputs ? &inputs[i] : &outputs[i - n_inputs];
        static const char *const labels[2][MAIA_MAX_OPERANDS] = {
            {"maia_launch (input 0)", "maia_launch (input 1)", "maia_launch (input 2)",
             "maia_launch (input 3)"},
            {"maia_launch (output 0)", "maia_launch (output 1)", "maia_launch (output 2)",
             "maia_launch (output 3)"}};
        const char *w = i < n_inputs ? labels[0][i] : labels[1][i - n_inputs];
        void *data;
        st = mem_resolve_view(v, q->dev->index, &data, &c->blocks[c->nblocks], NULL, w);
        if (st) goto fail;
        c->nblocks++;
        to_kernel_view(v, data, i < n_inputs ? &call->inputs[i] : &call->outputs[i - n_inputs]);
    }
    device *d = q->dev;
    if (atomic_load(&d->fault_armed)) {
        pthread_mutex_lock(&d->mu);
        if (d->fail_kernel[0] && strcmp(d->fail_kernel, name) == 0) {
            c->inject_fault = 1;
            d->fail_kernel[0] = '\0';
            atomic_store(&d->fault_armed, 0);
        }
        pthread_mutex_unlock(&d->mu);
    }
    submit(q, c);
    q_release(q);
    return MAIA_OK;
fail:
    cmd_free(c);
    q_release(q);
    return st;
}

/* ---- events --------------------------------------------------------------------------- */

maia_status maia_event_record(uint64_t qh, uint64_t *out) {
    const char *what = "maia_event_record";
    if (!out) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "%s: event is NULL", what);
    *out = 0;
    queue *q;
    maia_status st = q_acquire_live(qh, &q, what);
    if (st) return st;
    event *ev = event_new(0);
    cmd *c = cmd_new(q, C_RECORD);
    if (!ev || !c) {
        free(c);
        if (ev) event_unref(ev);
        q_release(q);
        return host_oom(NULL, what);
    }
    pthread_mutex_lock(&g_rt->emu);
    uint64_t h = ht_insert(&g_rt->events, q->dev->index, ev);
    pthread_mutex_unlock(&g_rt->emu);
    if (!h) {
        free(c);
        event_unref(ev);
        q_release(q);
        return maia_set_error(MAIA_ERROR_LIMIT, "%s: too many live events", what);
    }
    atomic_fetch_add(&ev->refs, 1); /* the command's reference */
    c->ev = ev;
    ev->queue_handle = qh;
    pthread_mutex_lock(&q->mu);
    enqueue_locked(q, c);
    ev->seq = c->seq;
    pthread_mutex_unlock(&q->mu);
    q_release(q);
    *out = h;
    return MAIA_OK;
}

maia_status maia_user_event_create(uint64_t *out) {
    if (!out) return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT, "maia_user_event_create: event is NULL");
    *out = 0;
    runtime *rt = rt_get();
    if (!rt) return MAIA_ERROR_NOT_INITIALIZED;
    event *ev = event_new(1);
    if (!ev) return host_oom(NULL, "maia_user_event_create");
    pthread_mutex_lock(&rt->emu);
    uint64_t h = ht_insert(&rt->events, 0, ev);
    pthread_mutex_unlock(&rt->emu);
    if (!h) {
        event_unref(ev);
        return maia_set_error(MAIA_ERROR_LIMIT, "maia_user_event_create: too many live events");
    }
    *out = h;
    return MAIA_OK;
}

maia_status maia_user_event_signal(uint64_t h) {
    event *ev;
    maia_status st = ev_acquire(h, &ev, "maia_user_event_signal");
    if (st) return st;
    if (!ev->user) {
        event_unref(ev);
        return maia_set_error(MAIA_ERROR_INVALID_ARGUMENT,
                              "maia_user_event_signal: the event was recorded on a queue, not "
                              "created by maia_user_event_create");
    }
    event_signal(ev, now_ns(), 0, NULL);
    event_unref(ev);
    return MAIA_OK;
}

maia_status maia_queue_wait_event(uint64_t qh, uint64_t eh) {
    const char *what = "maia_queue_wait_event";
    queue *q;
    maia_status st = q_acquire_live(qh, &q, what);
    if (st) return st;
    event *ev;
    st = ev_acquire(eh, &ev, what);
    if (st) {
        q_release(q);
        return st;
    }
    cmd *c = cmd_new(q, C_WAIT);
    if (!c) {
        event_unref(ev);
        q_release(q);
        return host_oom(NULL, what);
    }
    c->ev = ev; /* the command keeps the acquired reference */
    submit(q, c);
    q_release(q);
    return MAIA_OK;
}

maia_status maia_event_query(uint64_t h) {
    event *ev;
    maia_status st = ev_acquire(h, &ev, "maia_event_query");
    if (st) return st;
    st = ev_check_lost(ev, "maia_event_query");
    if (!st) st = atomic_load(&ev->done_fast) ? MAIA_OK : MAIA_NOT_READY;
    event_unref(ev);
    return st;
}

maia_status maia_event_synchronize(uint64_t h) {
    event *ev;
    maia_status st = ev_acquire(h, &ev, "maia_event_synchronize");
    if (st) return st;
    /* poll briefly before sleeping on the event's condition variable */
    if (!atomic_load(&ev->done_fast)) {
        int64_t deadline = 0;
        uint64_t spin_ns = g_rt->spin_ns;
        for (unsigned round = 0; spin_ns && !atomic_load(&ev->done_fast); round++) {
            for (int i = 0; i < 32 && !atomic_load_explicit(&ev->done_fast, memory_order_relaxed); i++)
                cpu_relax();
            int64_t t = now_ns();
            if (round == 0) deadline = t + (int64_t)spin_ns;
            else if (t >= deadline) break;
            if ((round & 15) == 15) sched_yield();
        }
    }
    pthread_mutex_lock(&ev->mu);
    while (!ev->done) pthread_cond_wait(&ev->cv, &ev->mu);
    qerror *e = ev->err;
    pthread_mutex_unlock(&ev->mu);
    if (e && !atomic_exchange(&e->reported, 1)) st = maia_set_error(e->status, "%s", e->msg);
    if (!st) st = ev_check_lost(ev, "maia_event_synchronize");
    event_unref(ev);
    return st;
}

maia_status maia_event_elapsed(uint64_t start, uint64_t end, double *wall_ms, double *modeled_ms) {
    event *a, *b;
    maia_status st = ev_acquire(start, &a, "maia_event_elapsed (start)");
    if (st) return st;
    st = ev_acquire(end, &b, "maia_event_elapsed (end)");
    if (st) {
        event_unref(a);
        return st;
    }
    if (a->user || b->user) {
        st = maia_set_error(MAIA_ERROR_INVALID_ARGUMENT,
                            "maia_event_elapsed: user events carry no time");
    } else if (!atomic_load(&a->done_fast) || !atomic_load(&b->done_fast)) {
        st = maia_set_error(MAIA_NOT_READY, "maia_event_elapsed: an event is not reached yet");
    } else {
        pthread_mutex_lock(&a->mu);
        int64_t wa = a->wall_ns;
        uint64_t ma = a->modeled_ps;
        pthread_mutex_unlock(&a->mu);
        pthread_mutex_lock(&b->mu);
        int64_t wb = b->wall_ns;
        uint64_t mb = b->modeled_ps;
        pthread_mutex_unlock(&b->mu);
        if (wall_ms) *wall_ms = (double)(wb - wa) / 1e6;
        if (modeled_ms) *modeled_ms = ((double)mb - (double)ma) / 1e9;
    }
    event_unref(a);
    event_unref(b);
    return st;
}

maia_status maia_event_get_info(uint64_t h, uint64_t *queue_out, uint64_t *seq) {
    event *ev;
    maia_status st = ev_acquire(h, &ev, "maia_event_get_info");
    if (st) return st;
    if (queue_out) *queue_out = ev->user ? 0 : ev->queue_handle;
    if (seq) *seq = ev->seq;
    event_unref(ev);
    return MAIA_OK;
}

maia_status maia_event_destroy(uint64_t h) {
    runtime *rt = rt_get();
    if (!rt) return MAIA_ERROR_NOT_INITIALIZED;
    pthread_mutex_lock(&rt->emu);
    void *obj;
    maia_status st = ht_lookup(&rt->events, h, -1, true, &obj, "maia_event_destroy");
    if (!st) ht_remove(&rt->events, h);
    pthread_mutex_unlock(&rt->emu);
    if (st) return st;
    event *ev = obj;
    if (ev->user) event_signal(ev, now_ns(), 0, NULL); /* never leave a waiter stuck */
    event_unref(ev);
    return MAIA_OK;
}

/* ---- shutdown ------------------------------------------------------------------------- */

void queues_shutdown_all(runtime *rt, uint64_t *nqueues, uint64_t *nevents) {
    /* 1. release every user event, so no queue waits forever */
    for (uint32_t i = 0; i < rt->events.n; i++) {
        event *ev = rt->events.slots[i].obj;
        if (ev && ev->user) event_signal(ev, now_ns(), 0, NULL);
    }
    /* 2. drain and destroy every queue */
    *nqueues = 0;
    for (uint32_t i = 0; i < rt->queues.n; i++) {
        queue *q = rt->queues.slots[i].obj;
        if (!q) continue;
        rt->queues.slots[i].obj = NULL;
        rt->queues.live--;
        (void)queue_teardown(q);
        (*nqueues)++;
    }
    /* 3. release the events nobody destroyed */
    *nevents = 0;
    for (uint32_t i = 0; i < rt->events.n; i++) {
        event *ev = rt->events.slots[i].obj;
        if (!ev) continue;
        rt->events.slots[i].obj = NULL;
        rt->events.live--;
        event_unref(ev);
        (*nevents)++;
    }
}
