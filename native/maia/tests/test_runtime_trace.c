/* The timeline trace: one entry per executed command, in order per queue, with the modeled
 * durations of the performance model, a bounded ring that counts what it drops, and
 * concurrent writers (workers) and readers (the host). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "runtime_check.h"

static void launch_fill(uint64_t q, uint64_t buf, int64_t n, double v) {
    maia_buffer_view o = view1(buf, MAIA_FLOAT32, n, 0);
    maia_attrs a;
    memset(&a, 0, sizeof a);
    a.eps = v;
    CHECK_OK(maia_launch(q, "fill", NULL, 0, &o, 1, &a));
}

static maia_trace_entry *read_all(int dev, uint64_t *n, uint64_t *dropped) {
    maia_trace_info info;
    CHECK_OK(maia_trace_get_info(dev, &info));
    maia_trace_entry *e = calloc(info.held ? info.held : 1, sizeof *e);
    CHECK_OK(maia_trace_read(dev, e, info.held, n, dropped));
    CHECK(*n == info.held);
    return e;
}

static uint64_t copy_ps(const maia_perf_model *m, uint64_t bytes, int link) {
    double bw = link == 0 ? m->host_bandwidth : link == 2 ? m->peer_bandwidth : m->hbm_bandwidth;
    double moved = link == 1 ? 2.0 * (double)bytes : (double)bytes;
    return (uint64_t)((moved / bw * 1e9 + m->copy_launch_ns) * 1000.0 + 0.5);
}

static void test_entries_in_order_with_modeled_durations(void) {
    rt_up(2, 64);
    maia_trace_info info;
    CHECK_OK(maia_trace_get_info(0, &info));
    CHECK(info.capacity == MAIA_TRACE_DEFAULT_EVENTS && info.held == 0);
    maia_perf_model m;
    CHECK_OK(maia_device_get_model(0, &m));
    enum { N = 1 << 18 }; /* 1 MiB of float32 */
    float *host = calloc(N, sizeof *host);
    uint64_t a, b, p, q0, q1, pq, ev;
    CHECK_OK(maia_malloc(0, N * 4, &a));
    CHECK_OK(maia_malloc(0, N * 4, &b));
    CHECK_OK(maia_malloc(1, N * 4, &p));
    CHECK_OK(maia_queue_create(0, &q0));
    CHECK_OK(maia_queue_create(0, &q1));
    CHECK_OK(maia_queue_create(1, &pq));
    maia_buffer_view va = view1(a, MAIA_FLOAT32, N, 0), vb = view1(b, MAIA_FLOAT32, N, 0);
    maia_buffer_view vp = view1(p, MAIA_FLOAT32, N, 0);
    CHECK_OK(maia_copy_h2d(q0, &va, host, N * 4));           /* q0 #1 */
    launch_fill(q0, a, N, 2.0);                              /* q0 #2 */
    CHECK_OK(maia_event_record(q0, &ev));                    /* q0 #3 */
    CHECK_OK(maia_queue_wait_event(q1, ev));                 /* q1 #1 */
    CHECK_OK(maia_copy_d2d(q1, &vb, &va));                   /* q1 #2 */
    CHECK_OK(maia_copy_d2h(q1, host, N * 4, &vb));           /* q1 #3 */
    CHECK_OK(maia_launch(q1, "fail", NULL, 0, &vb, 1, NULL)); /* q1 #4: fails */
    CHECK_OK(maia_queue_wait_event(pq, ev));                 /* maia:1: after the fill */
    CHECK_OK(maia_copy_d2d(pq, &vp, &va));                   /* peer, on maia:1 */
    CHECK_OK(maia_queue_synchronize(q0));
    CHECK_ST(maia_queue_synchronize(q1), MAIA_ERROR_KERNEL_FAILED);
    CHECK_OK(maia_queue_synchronize(pq));

    uint64_t n = 0, dropped = 1;
    maia_trace_entry *e = read_all(0, &n, &dropped);
    CHECK(n == 7 && dropped == 0);
    maia_queue_info i0, i1;
    CHECK_OK(maia_queue_get_info(q0, &i0));
    CHECK_OK(maia_queue_get_info(q1, &i1));
    const char *want0[] = {"copy h2d", "fill", "event"};
    const char *want1[] = {"wait", "copy d2d", "copy d2h", "fail"};
    const int kinds0[] = {MAIA_TRACE_COPY_H2D, MAIA_TRACE_KERNEL, MAIA_TRACE_EVENT};
    const int kinds1[] = {MAIA_TRACE_WAIT, MAIA_TRACE_COPY_D2D, MAIA_TRACE_COPY_D2H,
                          MAIA_TRACE_KERNEL};
    uint64_t seen0 = 0, seen1 = 0, end0 = 0, end1 = 0, ev_time = 0, wait_end = 1;
    for (uint64_t i = 0; i < n && e; i++) {
        maia_trace_entry *t = &e[i];
        CHECK(t->device == 0 && t->src_device == 0);
        CHECK(t->wall_start_ns > 0);
        if (t->queue == q0) {
            CHECK(t->queue_index == i0.index);
            CHECK(t->sequence == ++seen0);
            if (seen0 > 3) continue;
            CHECK(strcmp(t->name, want0[seen0 - 1]) == 0);
            CHECK(t->kind == kinds0[seen0 - 1]);
            CHECK(t->modeled_start_ps == end0); /* back to back, no overlap */
            end0 = t->modeled_start_ps + t->modeled_duration_ps;
            CHECK(t->status == MAIA_OK);
            if (seen0 == 1) {
                CHECK(t->bytes == N * 4);
                CHECK(t->modeled_duration_ps == copy_ps(&m, N * 4, 0));
            }
            if (seen0 == 2) { /* the double's fill: 4 bytes per element, no flops */
                CHECK(t->bytes == N * 4 && t->flops == 0);
                CHECK(t->modeled_duration_ps ==
                      (uint64_t)(((double)N * 4 / m.hbm_bandwidth * 1e9 + m.kernel_launch_ns) *
                                     1000.0 + 0.5));
            }
            if (seen0 == 3) {
                CHECK(t->modeled_duration_ps == 0);
                ev_time = t->modeled_start_ps;
            }
        } else {
            CHECK(t->queue == q1 && t->queue_index == i1.index);
            CHECK(t->sequence == ++seen1);
            if (seen1 > 4) continue;
            CHECK(strcmp(t->name, want1[seen1 - 1]) == 0);
            CHECK(t->kind == kinds1[seen1 - 1]);
            CHECK(t->modeled_start_ps == end1);
            end1 = t->modeled_start_ps + t->modeled_duration_ps;
            if (seen1 == 1) wait_end = end1;
            if (seen1 == 2) CHECK(t->modeled_duration_ps == copy_ps(&m, N * 4, 1));
            if (seen1 == 3) CHECK(t->modeled_duration_ps == copy_ps(&m, N * 4, 0));
            CHECK(t->status == (seen1 == 4 ? MAIA_ERROR_KERNEL_FAILED : MAIA_OK));
        }
    }
    CHECK(seen0 == 3 && seen1 == 4);
    CHECK(wait_end == ev_time); /* the wait moved q1's clock to the event's */
    free(e);
    CHECK_OK(maia_queue_get_info(q0, &i0));
    CHECK_NEAR(i0.modeled_clock_ns, (double)end0 / 1000.0, 1e-12);

    e = read_all(1, &n, &dropped);
    CHECK(n == 2);
    if (n == 2) {
        CHECK(e[0].kind == MAIA_TRACE_WAIT && e[0].device == 1 && e[0].src_device == 1);
        CHECK(e[1].kind == MAIA_TRACE_COPY_D2D && e[1].device == 1 && e[1].src_device == 0);
        CHECK(strcmp(e[1].name, "copy d2d") == 0);
        CHECK(e[1].modeled_duration_ps == copy_ps(&m, N * 4, 2));
        CHECK(e[1].queue == pq && e[1].sequence == 2);
    }
    free(e);

    /* clear forgets; read never removes */
    CHECK_OK(maia_trace_read(0, NULL, 0, &n, &dropped));
    CHECK(n == 0);
    CHECK_OK(maia_trace_get_info(0, &info));
    CHECK(info.held == 7 && info.recorded == 7);
    CHECK_OK(maia_trace_clear(0));
    CHECK_OK(maia_trace_get_info(0, &info));
    CHECK(info.held == 0 && info.recorded == 0 && info.capacity == MAIA_TRACE_DEFAULT_EVENTS);

    CHECK_OK(maia_event_destroy(ev));
    CHECK_OK(maia_queue_destroy(q0));
    CHECK_OK(maia_queue_destroy(q1));
    CHECK_OK(maia_queue_destroy(pq));
    CHECK_OK(maia_free(0, a));
    CHECK_OK(maia_free(0, b));
    CHECK_OK(maia_free(1, p));
    free(host);
    RT_DOWN();
}

static void test_ring_wraps_and_counts_dropped(void) {
    rt_up(1, 16);
    uint64_t b, q;
    CHECK_OK(maia_malloc(0, 1024, &b));
    CHECK_OK(maia_queue_create(0, &q));
    CHECK_OK(maia_trace_set_capacity(0, 4));
    for (int i = 0; i < 10; i++) launch_fill(q, b, 256, (double)i);
    CHECK_OK(maia_queue_synchronize(q));
    maia_trace_info info;
    CHECK_OK(maia_trace_get_info(0, &info));
    CHECK(info.capacity == 4 && info.held == 4 && info.recorded == 10 && info.dropped == 6);
    maia_trace_entry e[8];
    uint64_t n = 0, dropped = 0;
    CHECK_OK(maia_trace_read(0, e, 8, &n, &dropped));
    CHECK(n == 4 && dropped == 6);
    for (uint64_t i = 0; i < n; i++) CHECK(e[i].sequence == 7 + i); /* the newest, oldest first */
    CHECK_OK(maia_trace_read(0, e, 2, &n, &dropped)); /* a short read: the oldest two */
    CHECK(n == 2 && e[0].sequence == 7 && e[1].sequence == 8);

    /* 0 turns recording off */
    CHECK_OK(maia_trace_set_capacity(0, 0));
    launch_fill(q, b, 256, 1.0);
    CHECK_OK(maia_queue_synchronize(q));
    CHECK_OK(maia_trace_get_info(0, &info));
    CHECK(info.capacity == 0 && info.held == 0 && info.recorded == 0);
    CHECK_OK(maia_trace_read(0, e, 8, &n, &dropped));
    CHECK(n == 0 && dropped == 0);

    /* bad arguments are errors, not crashes */
    CHECK_ST(maia_trace_set_capacity(0, (uint64_t)MAIA_TRACE_MAX_EVENTS + 1),
             MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_ST(maia_trace_read(0, NULL, 3, &n, &dropped), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_ST(maia_trace_read(5, e, 8, &n, &dropped), MAIA_ERROR_INVALID_DEVICE);
    CHECK_ST(maia_trace_get_info(0, NULL), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_ST(maia_trace_clear(-1), MAIA_ERROR_INVALID_DEVICE);

    CHECK_OK(maia_queue_destroy(q));
    CHECK_OK(maia_free(0, b));
    RT_DOWN();
    CHECK_ST(maia_trace_clear(0), MAIA_ERROR_NOT_INITIALIZED);
}

static void test_env_capacity(void) {
    setenv("HWABSTRACT_MAIA_TRACE_EVENTS", "17", 1);
    CHECK_OK(maia_init(NULL));
    maia_trace_info info;
    CHECK_OK(maia_trace_get_info(0, &info));
    CHECK(info.capacity == 17);
    RT_DOWN();
    setenv("HWABSTRACT_MAIA_TRACE_EVENTS", "lots", 1);
    CHECK_ST(maia_init(NULL), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_MSG_HAS("HWABSTRACT_MAIA_TRACE_EVENTS");
    unsetenv("HWABSTRACT_MAIA_TRACE_EVENTS");
}

/* Four queues write while host threads submit and another thread reads and resizes. */
enum { CQ = 4, CN = 300 };
static uint64_t g_q[CQ], g_buf[CQ]; /* one buffer per queue: no race between queues */
static atomic_int g_stop, g_bad; /* CHECK is not thread-safe: threads count failures here */

static void *submitter(void *arg) {
    uint64_t q = g_q[(intptr_t)arg];
    maia_buffer_view o = view1(g_buf[(intptr_t)arg], MAIA_FLOAT32, 64, 0);
    maia_attrs a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < CN; i++)
        if (maia_launch(q, "fill", NULL, 0, &o, 1, &a) != MAIA_OK) atomic_fetch_add(&g_bad, 1);
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    maia_trace_entry *e = calloc(64, sizeof *e);
    uint64_t n, dropped;
    while (!atomic_load(&g_stop)) {
        if (maia_trace_read(0, e, 64, &n, &dropped) != MAIA_OK) atomic_fetch_add(&g_bad, 1);
        for (uint64_t i = 1; i < n; i++)
            if (e[i].queue == e[0].queue && e[i].sequence <= e[0].sequence)
                atomic_fetch_add(&g_bad, 1);
    }
    free(e);
    return NULL;
}

static void test_concurrent_writers_and_readers(void) {
    rt_up(1, 16);
    for (int i = 0; i < CQ; i++) CHECK_OK(maia_malloc(0, 256, &g_buf[i]));
    for (int i = 0; i < CQ; i++) CHECK_OK(maia_queue_create(0, &g_q[i]));
    CHECK_OK(maia_trace_set_capacity(0, CQ * CN));
    atomic_store(&g_stop, 0);
    atomic_store(&g_bad, 0);
    pthread_t sub[CQ], rd;
    pthread_create(&rd, NULL, reader, NULL);
    for (intptr_t i = 0; i < CQ; i++) pthread_create(&sub[i], NULL, submitter, (void *)i);
    for (int i = 0; i < CQ; i++) pthread_join(sub[i], NULL);
    CHECK_OK(maia_device_synchronize(0));
    atomic_store(&g_stop, 1);
    pthread_join(rd, NULL);
    CHECK(atomic_load(&g_bad) == 0);
    uint64_t n = 0, dropped = 1;
    maia_trace_entry *e = read_all(0, &n, &dropped);
    CHECK(n == CQ * CN && dropped == 0);
    uint64_t last[CQ] = {0}, end[CQ] = {0};
    for (uint64_t i = 0; i < n; i++) {
        int k = -1;
        for (int j = 0; j < CQ; j++)
            if (e[i].queue == g_q[j]) k = j;
        CHECK(k >= 0);
        if (k < 0) continue;
        CHECK(e[i].sequence == last[k] + 1);
        CHECK(e[i].modeled_start_ps == end[k]);
        last[k] = e[i].sequence;
        end[k] = e[i].modeled_start_ps + e[i].modeled_duration_ps;
    }
    for (int j = 0; j < CQ; j++) CHECK(last[j] == CN);
    free(e);
    /* resizing while workers write is safe */
    for (int i = 0; i < CQ; i++) launch_fill(g_q[i], g_buf[i], 64, 1.0);
    CHECK_OK(maia_trace_set_capacity(0, 8));
    CHECK_OK(maia_device_synchronize(0));
    maia_trace_info info;
    CHECK_OK(maia_trace_get_info(0, &info));
    CHECK(info.capacity == 8 && info.held <= CQ);
    for (int i = 0; i < CQ; i++) CHECK_OK(maia_queue_destroy(g_q[i]));
    for (int i = 0; i < CQ; i++) CHECK_OK(maia_free(0, g_buf[i]));
    RT_DOWN();
}

int main(void) {
    RUN(test_entries_in_order_with_modeled_durations);
    RUN(test_ring_wraps_and_counts_dropped);
    RUN(test_env_capacity);
    RUN(test_concurrent_writers_and_readers);
    return CHECK_REPORT();
}
