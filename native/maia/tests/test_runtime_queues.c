/* Runtime tests: queues, copies, kernel launches, events and fences, asynchronous errors,
 * fault injection, concurrency, shutdown and the performance model. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime_check.h"

extern atomic_long runtime_double_calls; /* tests/runtime_kernel_double.c */

static maia_attrs fill_value(double v) {
    maia_attrs a;
    memset(&a, 0, sizeof a);
    a.eps = v;
    return a;
}

static void launch_fill(uint64_t q, uint64_t buf, int64_t n, double v) {
    maia_buffer_view o = view1(buf, MAIA_FLOAT32, n, 0);
    maia_attrs a = fill_value(v);
    CHECK_OK(maia_launch(q, "fill", NULL, 0, &o, 1, &a));
}

static void read_back(uint64_t q, uint64_t buf, float *host, int64_t n) {
    maia_buffer_view v = view1(buf, MAIA_FLOAT32, n, 0);
    CHECK_OK(maia_copy_d2h(q, host, (uint64_t)n * 4, &v));
    CHECK_OK(maia_queue_synchronize(q));
}

static int all_equal(const float *p, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++)
        if (p[i] != v) return 0;
    return 1;
}

static void test_h2d_d2h_roundtrip(void) {
    rt_up(1, 16);
    enum { N = 10000 };
    float *src = malloc(N * 4), *dst = calloc(N, 4);
    for (int i = 0; i < N; i++) src[i] = (float)i * 0.5f;
    uint64_t q, b, u;
    CHECK_OK(maia_queue_create(0, &q));
    CHECK_OK(maia_malloc(0, N * 4, &b));
    maia_buffer_view v = view1(b, MAIA_FLOAT32, N, 0);
    /* idle queue: direct path */
    CHECK_OK(maia_copy_h2d(q, &v, src, N * 4));
    read_back(q, b, dst, N);
    CHECK(memcmp(src, dst, N * 4) == 0);
    /* busy queue: the source is staged, the caller may overwrite it at once */
    CHECK_OK(maia_user_event_create(&u));
    CHECK_OK(maia_queue_wait_event(q, u));
    for (int i = 0; i < N; i++) src[i] = 7.0f;
    CHECK_OK(maia_copy_h2d(q, &v, src, N * 4));
    for (int i = 0; i < N; i++) src[i] = -1.0f; /* must not be seen */
    CHECK_ST(maia_queue_query(q), MAIA_NOT_READY);
    CHECK_OK(maia_user_event_signal(u));
    read_back(q, b, dst, N);
    CHECK(all_equal(dst, N, 7.0f));
    CHECK_OK(maia_event_destroy(u));
    CHECK_OK(maia_free(0, b));
    CHECK_OK(maia_queue_destroy(q));
    free(src);
    free(dst);
    RT_DOWN();
}

static void test_strided_d2d(void) {
    rt_up(1, 16);
    enum { R = 8, C = 6 };
    float m[R * C], out[R * C];
    for (int i = 0; i < R * C; i++) m[i] = (float)i;
    uint64_t q, a, t;
    CHECK_OK(maia_queue_create(0, &q));
    CHECK_OK(maia_malloc(0, sizeof m, &a));
    CHECK_OK(maia_malloc(0, sizeof m, &t));
    maia_buffer_view va = view2(a, MAIA_FLOAT32, R, C, C, 1, 0);
    CHECK_OK(maia_copy_h2d(q, &va, m, sizeof m));
    /* transpose: t (C x R, row-major) gets a viewed as (C x R) with strides (1, C) */
    maia_buffer_view vt = view2(t, MAIA_FLOAT32, C, R, R, 1, 0);
    maia_buffer_view vaT = view2(a, MAIA_FLOAT32, C, R, 1, C, 0);
    CHECK_OK(maia_copy_d2d(q, &vt, &vaT));
    CHECK_OK(maia_copy_d2h(q, out, sizeof out, &vt));
    CHECK_OK(maia_queue_synchronize(q));
    int ok = 1;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < R; j++) ok &= out[i * R + j] == m[j * C + i];
    CHECK(ok);
    /* broadcast: row 2 of a into every row of t (zero stride), as an R x C matrix */
    maia_buffer_view vt2 = view2(t, MAIA_FLOAT32, R, C, C, 1, 0);
    maia_buffer_view row = view2(a, MAIA_FLOAT32, R, C, 0, 1, 2 * C * 4);
    CHECK_OK(maia_copy_d2d(q, &vt2, &row));
    CHECK_OK(maia_copy_d2h(q, out, sizeof out, &vt2));
    CHECK_OK(maia_queue_synchronize(q));
    ok = 1;
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) ok &= out[i * C + j] == m[2 * C + j];
    CHECK(ok);
    /* reversed: negative strides from the last element, read back strided (every other col) */
    maia_buffer_view rev = view1(a, MAIA_FLOAT32, R * C, (R * C - 1) * 4);
    rev.strides[0] = -1;
    maia_buffer_view vt1 = view1(t, MAIA_FLOAT32, R * C, 0);
    CHECK_OK(maia_copy_d2d(q, &vt1, &rev));
    float half[R * C / 2];
    maia_buffer_view every2 = view1(t, MAIA_FLOAT32, R * C / 2, 4);
    every2.strides[0] = 2;
    CHECK_OK(maia_copy_d2h(q, half, sizeof half, &every2));
    CHECK_OK(maia_queue_synchronize(q));
    ok = 1;
    for (int i = 0; i < R * C / 2; i++) ok &= half[i] == m[R * C - 1 - (2 * i + 1)];
    CHECK(ok);
    /* strided h2d: write a column */
    float col[R];
    for (int i = 0; i < R; i++) col[i] = 100.0f + (float)i;
    maia_buffer_view c3 = view1(a, MAIA_FLOAT32, R, 3 * 4);
    c3.strides[0] = C;
    CHECK_OK(maia_copy_h2d(q, &c3, col, sizeof col));
    CHECK_OK(maia_copy_d2h(q, out, sizeof out, &va));
    CHECK_OK(maia_queue_synchronize(q));
    ok = 1;
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) ok &= out[i * C + j] == (j == 3 ? col[i] : m[i * C + j]);
    CHECK(ok);
    /* a 0-d (scalar) view */
    maia_buffer_view s = view1(a, MAIA_FLOAT32, 1, 4 * 5);
    s.ndim = 0;
    float one = 0;
    CHECK_OK(maia_copy_d2h(q, &one, 4, &s));
    CHECK_OK(maia_queue_synchronize(q));
    CHECK(one == m[5]);
    CHECK_OK(maia_free(0, a));
    CHECK_OK(maia_free(0, t));
    CHECK_OK(maia_queue_destroy(q));
    RT_DOWN();
}

static void test_peer_copy(void) {
    rt_up(2, 16);
    enum { N = 4096 };
    float *h = malloc(N * 4), *o = calloc(N, 4);
    for (int i = 0; i < N; i++) h[i] = (float)(i % 97);
    uint64_t q0, q1, b0, b1;
    CHECK_OK(maia_queue_create(0, &q0));
    CHECK_OK(maia_queue_create(1, &q1));
    CHECK_OK(maia_malloc(0, N * 4, &b0));
    CHECK_OK(maia_malloc(1, N * 4, &b1));
    maia_buffer_view v0 = view1(b0, MAIA_FLOAT32, N, 0), v1 = view1(b1, MAIA_FLOAT32, N, 0);
    CHECK_OK(maia_copy_h2d(q1, &v1, h, N * 4));
    CHECK_OK(maia_queue_synchronize(q1));
    CHECK_OK(maia_copy_d2d(q0, &v0, &v1)); /* src on device 1, queue and dst on device 0 */
    read_back(q0, b0, o, N);
    CHECK(memcmp(h, o, N * 4) == 0);
    /* dst must belong to the queue's device */
    CHECK_ST(maia_copy_d2d(q0, &v1, &v0), MAIA_ERROR_FOREIGN_HANDLE);
    CHECK_ST(maia_copy_h2d(q0, &v1, h, N * 4), MAIA_ERROR_FOREIGN_HANDLE);
    CHECK_ST(maia_copy_d2h(q0, o, N * 4, &v1), MAIA_ERROR_FOREIGN_HANDLE);
    CHECK_ST(maia_launch(q0, "fill", NULL, 0, &v1, 1, NULL), MAIA_ERROR_FOREIGN_HANDLE);
    maia_device_counters c0;
    CHECK_OK(maia_device_get_counters(0, &c0));
    CHECK(c0.copies == 2 && c0.bytes_copied == 2 * N * 4);
    CHECK_OK(maia_free(0, b0));
    CHECK_OK(maia_free(1, b1));
    CHECK_OK(maia_queue_destroy(q0));
    CHECK_OK(maia_queue_destroy(q1));
    free(h);
    free(o);
    RT_DOWN();
}

static void test_zero_size_and_bounds(void) {
    rt_up(1, 4);
    uint64_t q, z, b, gone;
    float h[64] = {0};
    CHECK_OK(maia_queue_create(0, &q));
    CHECK_OK(maia_malloc(0, 0, &z));
    CHECK_OK(maia_malloc(0, 64 * 4, &b));
    CHECK_OK(maia_malloc(0, 16, &gone));
    CHECK_OK(maia_free(0, gone));
    /* zero-size: empty views are fine, on a zero-size buffer too */
    maia_buffer_view ez = view1(z, MAIA_FLOAT32, 0, 0);
    CHECK_OK(maia_copy_h2d(q, &ez, NULL, 0));
    CHECK_OK(maia_copy_d2h(q, NULL, 0, &ez));
    maia_buffer_view eb = view2(b, MAIA_FLOAT32, 0, 5, 1000000, 1, 0);
    CHECK_OK(maia_copy_d2d(q, &eb, &eb));
    CHECK_OK(maia_queue_synchronize(q));
    maia_buffer_view one_z = view1(z, MAIA_FLOAT32, 1, 0);
    CHECK_ST(maia_copy_d2h(q, h, 4, &one_z), MAIA_ERROR_OUT_OF_BOUNDS);
    /* out of bounds, each way */
    maia_buffer_view v = view1(b, MAIA_FLOAT32, 64, 4); /* one element past the end */
    CHECK_ST(maia_copy_h2d(q, &v, h, 256), MAIA_ERROR_OUT_OF_BOUNDS);
    CHECK_MSG_HAS("outside buffer");
    v = view1(b, MAIA_FLOAT32, 64, -4);
    CHECK_ST(maia_copy_d2h(q, h, 256, &v), MAIA_ERROR_OUT_OF_BOUNDS);
    v = view1(b, MAIA_FLOAT32, 8, 0);
    v.strides[0] = 9; /* reaches element 63: fine */
    CHECK_OK(maia_copy_d2h(q, h, 32, &v));
    v.strides[0] = 10; /* reaches element 70 */
    CHECK_ST(maia_copy_d2h(q, h, 32, &v), MAIA_ERROR_OUT_OF_BOUNDS);
    v = view1(b, MAIA_FLOAT32, 8, 0);
    v.strides[0] = -1; /* reaches before the start */
    CHECK_ST(maia_copy_d2h(q, h, 32, &v), MAIA_ERROR_OUT_OF_BOUNDS);
    v = view1(b, MAIA_FLOAT32, 2, 0);
    v.strides[0] = INT64_MAX; /* overflowing reach */
    CHECK_ST(maia_copy_d2h(q, h, 8, &v), MAIA_ERROR_OUT_OF_BOUNDS);
    v = view1(b, MAIA_FLOAT32, 1, INT64_MAX - 2);
    CHECK_ST(maia_copy_d2h(q, h, 4, &v), MAIA_ERROR_OUT_OF_BOUNDS);
    v = view2(b, MAIA_FLOAT32, INT64_MAX, INT64_MAX, 1, 1, 0);
    CHECK_ST(maia_copy_d2h(q, h, 4, &v), MAIA_ERROR_INVALID_ARGUMENT);
    /* a size mismatch, bad dtype, ndim, negative extents, NULL pointers */
    v = view1(b, MAIA_FLOAT32, 64, 0);
    CHECK_ST(maia_copy_h2d(q, &v, h, 255), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_ST(maia_copy_h2d(q, &v, NULL, 256), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_ST(maia_copy_d2h(q, NULL, 256, &v), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_ST(maia_copy_d2h(q, h, 256, NULL), MAIA_ERROR_INVALID_ARGUMENT);
    v.dtype = 77;
    CHECK_ST(maia_copy_d2h(q, h, 256, &v), MAIA_ERROR_INVALID_ARGUMENT);
    v.dtype = MAIA_FLOAT32;
    v.ndim = 33;
    CHECK_ST(maia_copy_d2h(q, h, 256, &v), MAIA_ERROR_INVALID_ARGUMENT);
    v.ndim = -1;
    CHECK_ST(maia_copy_d2h(q, h, 256, &v), MAIA_ERROR_INVALID_ARGUMENT);
    v = view1(b, MAIA_FLOAT32, -3, 0);
    CHECK_ST(maia_copy_d2h(q, h, 0, &v), MAIA_ERROR_INVALID_ARGUMENT);
    maia_buffer_view s1 = view1(b, MAIA_FLOAT32, 4, 0), s2 = view1(b, MAIA_FLOAT32, 5, 0);
    CHECK_ST(maia_copy_d2d(q, &s1, &s2), MAIA_ERROR_INVALID_ARGUMENT);
    /* stale and forged buffers in copies and launches */
    v = view1(gone, MAIA_FLOAT32, 1, 0);
    CHECK_ST(maia_copy_d2h(q, h, 4, &v), MAIA_ERROR_USE_AFTER_FREE);
    CHECK_ST(maia_launch(q, "fill", NULL, 0, &v, 1, NULL), MAIA_ERROR_USE_AFTER_FREE);
    v.buffer = 0x123456789abcdefull;
    CHECK_ST(maia_copy_h2d(q, &v, h, 4), MAIA_ERROR_INVALID_HANDLE);
    v.buffer = q; /* a queue handle */
    CHECK_ST(maia_copy_h2d(q, &v, h, 4), MAIA_ERROR_INVALID_HANDLE);
    /* launch argument checks */
    maia_buffer_view ok = view1(b, MAIA_FLOAT32, 64, 0);
    CHECK_ST(maia_launch(q, NULL, NULL, 0, &ok, 1, NULL), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_ST(maia_launch(q, "", NULL, 0, &ok, 1, NULL), MAIA_ERROR_INVALID_ARGUMENT);
    char longname[100];
    memset(longname, 'k', sizeof longname - 1);
    longname[99] = 0;
    CHECK_ST(maia_launch(q, longname, NULL, 0, &ok, 1, NULL), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_ST(maia_launch(q, "fill", NULL, 0, &ok, 5, NULL), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_ST(maia_launch(q, "fill", NULL, 1, &ok, 1, NULL), MAIA_ERROR_INVALID_ARGUMENT);
    /* a bad queue */
    CHECK_ST(maia_copy_d2h(b, h, 256, &ok), MAIA_ERROR_INVALID_HANDLE);
    /* none of that left references behind: everything frees and stats return to zero */
    CHECK_OK(maia_queue_synchronize(q));
    CHECK_OK(maia_free(0, b));
    CHECK_OK(maia_free(0, z));
    maia_memory_stats st;
    CHECK_OK(maia_device_memory_stats(0, &st));
    CHECK(st.in_use == 0 && st.pending_free == 0 && st.free_blocks == 1);
    CHECK_OK(maia_queue_destroy(q));
    RT_DOWN();
}

static void test_async_blocked_on_unreached_event(void) {
    rt_up(1, 4);
    uint64_t q1, q2, u, e1, e2, b;
    enum { N = 256 };
    float out[N];
    CHECK_OK(maia_queue_create(0, &q1));
    CHECK_OK(maia_queue_create(0, &q2));
    CHECK_OK(maia_malloc(0, N * 4, &b));
    CHECK_OK(maia_user_event_create(&u));
    long calls0 = atomic_load(&runtime_double_calls);
    /* q2 is held at u; q1 waits for q2's event e2, which q2 has not reached */
    CHECK_OK(maia_queue_wait_event(q2, u));
    CHECK_OK(maia_event_record(q2, &e2));
    CHECK_OK(maia_queue_wait_event(q1, e2));
    launch_fill(q1, b, N, 3.0);
    CHECK_OK(maia_event_record(q1, &e1));
    /* the launch returned, nothing ran */
    CHECK_ST(maia_event_query(e1), MAIA_NOT_READY);
    CHECK_ST(maia_event_query(e2), MAIA_NOT_READY);
    CHECK_ST(maia_queue_query(q1), MAIA_NOT_READY);
    CHECK_ST(maia_queue_query(q2), MAIA_NOT_READY);
    CHECK(atomic_load(&runtime_double_calls) == calls0);
    maia_queue_info qi;
    CHECK_OK(maia_queue_get_info(q1, &qi));
    CHECK(qi.submitted == 3 && qi.completed == 0);
    double w, m;
    CHECK_ST(maia_event_elapsed(e2, e1, &w, &m), MAIA_NOT_READY);
    /* release the gate: everything completes */
    CHECK_OK(maia_user_event_signal(u));
    CHECK_OK(maia_event_synchronize(e1));
    CHECK_OK(maia_event_query(e1));
    CHECK_OK(maia_event_query(e2));
    CHECK(atomic_load(&runtime_double_calls) == calls0 + 1);
    read_back(q1, b, out, N);
    CHECK(all_equal(out, N, 3.0f));
    /* e2 being reached does not order q2's own completion count before it (the worker marks
     * the event, then the command complete): synchronize q2 before asking it. */
    CHECK_OK(maia_queue_synchronize(q2));
    CHECK_OK(maia_queue_query(q2));
    uint64_t eq, seq;
    CHECK_OK(maia_event_get_info(e1, &eq, &seq));
    CHECK(eq == q1 && seq == 3);
    CHECK_OK(maia_event_get_info(u, &eq, &seq));
    CHECK(eq == 0);
    /* event misuse */
    CHECK_ST(maia_user_event_signal(e1), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_ST(maia_event_elapsed(u, e1, &w, &m), MAIA_ERROR_INVALID_ARGUMENT);
    CHECK_ST(maia_queue_wait_event(q1, b), MAIA_ERROR_INVALID_HANDLE);
    CHECK_ST(maia_event_query(q1), MAIA_ERROR_INVALID_HANDLE);
    CHECK_OK(maia_event_destroy(e1));
    CHECK_ST(maia_event_query(e1), MAIA_ERROR_USE_AFTER_FREE);
    CHECK_ST(maia_event_synchronize(e1), MAIA_ERROR_USE_AFTER_FREE);
    CHECK_ST(maia_event_destroy(e1), MAIA_ERROR_DOUBLE_FREE);
    CHECK_OK(maia_event_destroy(e2));
    CHECK_OK(maia_event_destroy(u));
    CHECK_OK(maia_free(0, b));
    CHECK_OK(maia_queue_destroy(q1));
    CHECK_OK(maia_queue_destroy(q2));
    RT_DOWN();
}

/* q_producer (held at a gate) fills `src`; q_consumer waits on its event, then copies src to
 * dst (a peer copy when they are on different devices) and reads dst back. Without the fence
 * the consumer would read zeros, since the producer is held until after the submission. */
static void fence_case(int dev_p, int dev_c) {
    enum { N = 1024 };
    uint64_t qp, qc, u, e, src, dst;
    float out[N];
    CHECK_OK(maia_queue_create(dev_p, &qp));
    CHECK_OK(maia_queue_create(dev_c, &qc));
    CHECK_OK(maia_malloc(dev_p, N * 4, &src));
    CHECK_OK(maia_malloc(dev_c, N * 4, &dst));
    CHECK_OK(maia_user_event_create(&u));
    CHECK_OK(maia_queue_wait_event(qp, u));
    launch_fill(qp, src, N, 42.0);
    CHECK_OK(maia_event_record(qp, &e));
    CHECK_OK(maia_queue_wait_event(qc, e));
    maia_buffer_view vd = view1(dst, MAIA_FLOAT32, N, 0), vs = view1(src, MAIA_FLOAT32, N, 0);
    CHECK_OK(maia_copy_d2d(qc, &vd, &vs));
    memset(out, 0, sizeof out);
    CHECK_OK(maia_copy_d2h(qc, out, sizeof out, &vd));
    CHECK_ST(maia_queue_query(qc), MAIA_NOT_READY);
    CHECK(out[0] == 0.0f);
    CHECK_OK(maia_user_event_signal(u));
    CHECK_OK(maia_queue_synchronize(qc));
    CHECK(all_equal(out, N, 42.0f));
    CHECK_OK(maia_event_destroy(u));
    CHECK_OK(maia_event_destroy(e));
    CHECK_OK(maia_free(dev_p, src));
    CHECK_OK(maia_free(dev_c, dst));
    CHECK_OK(maia_queue_destroy(qp));
    CHECK_OK(maia_queue_destroy(qc));
}

static void test_fences_order_work(void) {
    rt_up(2, 4);
    fence_case(0, 0); /* across queues of one device */
    fence_case(1, 0); /* across devices */
    RT_DOWN();
}

static void test_error_reported_once_queue_reusable(void) {
    rt_up(1, 4);
    enum { N = 64 };
    uint64_t q, q2, b, b2, e_before, e_after, e_late;
    float out[N];
    CHECK_OK(maia_queue_create(0, &q));
    CHECK_OK(maia_queue_create(0, &q2));
    CHECK_OK(maia_malloc(0, N * 4, &b));
    CHECK_OK(maia_malloc(0, N * 4, &b2));
    maia_buffer_view v = view1(b, MAIA_FLOAT32, N, 0);
    CHECK_OK(maia_event_record(q, &e_before));
    CHECK_OK(maia_launch(q, "fail", NULL, 0, &v, 1, NULL)); /* submission succeeds */
    launch_fill(q, b, N, 5.0);                                /* runs after the failure */
    CHECK_OK(maia_event_record(q, &e_after));
    launch_fill(q2, b2, N, 6.0); /* another queue, unaffected */
    CHECK_OK(maia_queue_synchronize(q2));
    CHECK_OK(maia_event_synchronize(e_before)); /* recorded before the failure */
    CHECK_ST(maia_event_synchronize(e_after), MAIA_ERROR_KERNEL_FAILED);
    CHECK_MSG_HAS("kernel 'fail'");
    CHECK_MSG_HAS("asked to fail");
    CHECK_MSG_HAS("command #2");
    CHECK_OK(maia_event_synchronize(e_after)); /* once */
    CHECK_OK(maia_queue_synchronize(q));       /* already reported */
    read_back(q, b, out, N);
    CHECK(all_equal(out, N, 5.0f));
    /* reported through queue synchronize */
    CHECK_OK(maia_launch(q, "no_such_kernel", NULL, 0, &v, 1, NULL));
    CHECK_OK(maia_launch(q, "fail", NULL, 0, &v, 1, NULL)); /* a second failure: not reported */
    CHECK_ST(maia_queue_synchronize(q), MAIA_ERROR_KERNEL_FAILED);
    CHECK_MSG_HAS("no_such_kernel");
    CHECK_MSG_HAS("unknown kernel");
    CHECK_OK(maia_queue_synchronize(q));
    /* reported through queue query; the event query reports nothing */
    CHECK_OK(maia_launch(q, "fail", NULL, 0, &v, 1, NULL));
    CHECK_OK(maia_event_record(q, &e_late));
    while (maia_event_query(e_late) == MAIA_NOT_READY) {
    }
    CHECK_OK(maia_event_query(e_late));
    CHECK_ST(maia_queue_query(q), MAIA_ERROR_KERNEL_FAILED);
    CHECK_OK(maia_queue_query(q));
    CHECK_OK(maia_event_synchronize(e_late)); /* already reported by the query */
    /* still working */
    launch_fill(q, b, N, 9.0);
    read_back(q, b, out, N);
    CHECK(all_equal(out, N, 9.0f));
    /* an unreported failure surfaces when the queue is destroyed */
    CHECK_OK(maia_launch(q, "fail", NULL, 0, &v, 1, NULL));
    CHECK_ST(maia_queue_destroy(q), MAIA_ERROR_KERNEL_FAILED);
    maia_device_counters c;
    CHECK_OK(maia_device_get_counters(0, &c));
    CHECK(c.failed_commands == 5);
    CHECK_OK(maia_event_destroy(e_before));
    CHECK_OK(maia_event_destroy(e_after));
    CHECK_OK(maia_event_destroy(e_late));
    CHECK_OK(maia_free(0, b));
    CHECK_OK(maia_free(0, b2));
    CHECK_OK(maia_queue_destroy(q2));
    RT_DOWN();
}

/* A lost device: queued work is dropped without running, events are still reached (a queue
 * waiting on one does not hang), every call that uses the device says it is lost, releases
 * still work (the shutdown finds no leak), and the other device is unaffected. */
static void test_lost_device(void) {
    rt_up(2, 4);
    enum { N = 64 };
    uint64_t q0, q1, a, b, u;
    float out[N];
    CHECK_OK(maia_queue_create(0, &q0));
    CHECK_OK(maia_queue_create(1, &q1));
    CHECK_OK(maia_malloc(0, N * 4, &a));
    CHECK_OK(maia_malloc(1, N * 4, &b));
    CHECK_OK(maia_user_event_create(&u));
    CHECK_OK(maia_queue_wait_event(q0, u)); /* holds q0's work back until u is signalled */
    launch_fill(q0, a, N, 2.0);             /* queued before the loss: dropped */
    uint64_t e0;
    CHECK_OK(maia_event_record(q0, &e0));
    CHECK_OK(maia_fault_lose_device(0));
    CHECK_OK(maia_user_event_signal(u));
    CHECK_ST(maia_queue_synchronize(q0), MAIA_ERROR_DEVICE_LOST);
    CHECK_MSG_HAS("device 0 is lost");
    CHECK_ST(maia_event_synchronize(e0), MAIA_ERROR_DEVICE_LOST); /* reached: no hang */
    CHECK_ST(maia_event_query(e0), MAIA_ERROR_DEVICE_LOST);
    CHECK_ST(maia_queue_query(q0), MAIA_ERROR_DEVICE_LOST);
    uint64_t c;
    CHECK_ST(maia_malloc(0, N * 4, &c), MAIA_ERROR_DEVICE_LOST);
    CHECK(c == 0);
    maia_buffer_view va = view1(a, MAIA_FLOAT32, N, 0);
    CHECK_ST(maia_copy_d2h(q0, out, N * 4, &va), MAIA_ERROR_DEVICE_LOST);
    CHECK_ST(maia_launch(q0, "fill", NULL, 0, &va, 1, NULL), MAIA_ERROR_DEVICE_LOST);
    uint64_t e1, q2;
    CHECK_ST(maia_event_record(q0, &e1), MAIA_ERROR_DEVICE_LOST);
    CHECK_ST(maia_queue_create(0, &q2), MAIA_ERROR_DEVICE_LOST);
    CHECK_ST(maia_device_synchronize(0), MAIA_ERROR_DEVICE_LOST);
    CHECK(strcmp(maia_status_name(MAIA_ERROR_DEVICE_LOST), "MAIA_ERROR_DEVICE_LOST") == 0);
    /* the other device works */
    launch_fill(q1, b, N, 3.0);
    read_back(q1, b, out, N);
    CHECK(all_equal(out, N, 3.0f));
    CHECK_OK(maia_device_synchronize(1));
    /* releases work: nothing leaks */
    CHECK_OK(maia_event_destroy(e0));
    CHECK_OK(maia_event_destroy(u));
    CHECK_OK(maia_free(0, a));
    CHECK_OK(maia_free(1, b));
    CHECK_OK(maia_queue_destroy(q0));
    CHECK_OK(maia_queue_destroy(q1));
    RT_DOWN();
}

static void add_case(uint64_t q, uint64_t a, uint64_t b, uint64_t o, int n) {
    maia_buffer_view in[2] = {view1(a, MAIA_FLOAT32, n, 0), view1(b, MAIA_FLOAT32, n, 0)};
    maia_buffer_view out = view1(o, MAIA_FLOAT32, n, 0);
    CHECK_OK(maia_launch(q, "add", in, 2, &out, 1, NULL));
}

static void test_fault_injection_kernel_and_delay(void) {
    rt_up(2, 4);
    enum { N = 32 };
    uint64_t q, a, b, o1, o2;
    float out[N];
    CHECK_OK(maia_queue_create(0, &q));
    CHECK_OK(maia_malloc(0, N * 4, &a));
    CHECK_OK(maia_malloc(0, N * 4, &b));
    CHECK_OK(maia_malloc(0, N * 4, &o1));
    CHECK_OK(maia_malloc(0, N * 4, &o2));
    launch_fill(q, a, N, 1.5);
    launch_fill(q, b, N, 2.0);
    CHECK_OK(maia_fault_fail_kernel(0, "add"));
    CHECK_OK(maia_fault_fail_kernel(1, "fill")); /* another device: no effect here */
    launch_fill(q, o1, N, -1.0);                 /* not the named kernel: runs */
    add_case(q, a, b, o1, N);                    /* fails, without running */
    add_case(q, a, b, o2, N);                    /* runs */
    CHECK_ST(maia_queue_synchronize(q), MAIA_ERROR_KERNEL_FAILED);
    CHECK_MSG_HAS("injected fault");
    CHECK_MSG_HAS("kernel 'add'");
    read_back(q, o1, out, N);
    CHECK(all_equal(out, N, -1.0f));
    read_back(q, o2, out, N);
    CHECK(all_equal(out, N, 3.5f));
    CHECK_OK(maia_fault_fail_kernel(1, NULL));
    CHECK_ST(maia_fault_fail_kernel(0, ""), MAIA_ERROR_INVALID_ARGUMENT);
    /* delay: every command waits at least the delay (a lower bound, not a threshold guess) */
    uint64_t e0, e1;
    CHECK_OK(maia_fault_queue_delay(q, 3000));
    maia_queue_info qi;
    CHECK_OK(maia_queue_get_info(q, &qi));
    CHECK(qi.delay_us == 3000);
    CHECK_OK(maia_event_record(q, &e0));
    for (int i = 0; i < 3; i++) launch_fill(q, o1, N, 4.0);
    CHECK_OK(maia_event_record(q, &e1));
    CHECK_OK(maia_event_synchronize(e1));
    double wall, modeled;
    CHECK_OK(maia_event_elapsed(e0, e1, &wall, &modeled));
    CHECK(wall >= 4 * 3.0); /* 3 fills + the record of e1, 3 ms each */
    maia_perf_model m;
    CHECK_OK(maia_device_get_model(0, &m));
    CHECK(modeled < 4 * 3.0); /* the delay is host time, not modeled time */
    CHECK_OK(maia_fault_queue_delay(q, 0));
    CHECK_ST(maia_fault_queue_delay(a, 1), MAIA_ERROR_INVALID_HANDLE);
    CHECK_OK(maia_event_destroy(e0));
    CHECK_OK(maia_event_destroy(e1));
    CHECK_OK(maia_free(0, a));
    CHECK_OK(maia_free(0, b));
    CHECK_OK(maia_free(0, o1));
    CHECK_OK(maia_free(0, o2));
    CHECK_OK(maia_queue_destroy(q));
    RT_DOWN();

    /* the environment arms the same faults */
    setenv("HWABSTRACT_MAIA_FAIL_KERNEL", "fill", 1);
    setenv("HWABSTRACT_MAIA_QUEUE_DELAY_US", "10", 1);
    CHECK_OK(maia_init(NULL));
    CHECK_OK(maia_queue_create(1, &q));
    CHECK_OK(maia_queue_get_info(q, &qi));
    CHECK(qi.delay_us == 10);
    CHECK_OK(maia_malloc(1, 64, &a));
    maia_buffer_view v = view1(a, MAIA_FLOAT32, 16, 0);
    CHECK_OK(maia_launch(q, "fill", NULL, 0, &v, 1, NULL));
    CHECK_ST(maia_queue_synchronize(q), MAIA_ERROR_KERNEL_FAILED);
    CHECK_MSG_HAS("injected fault");
    CHECK_OK(maia_launch(q, "fill", NULL, 0, &v, 1, NULL));
    CHECK_OK(maia_queue_synchronize(q));
    CHECK_OK(maia_free(1, a));
    CHECK_OK(maia_queue_destroy(q));
    RT_DOWN();
    unsetenv("HWABSTRACT_MAIA_FAIL_KERNEL");
    unsetenv("HWABSTRACT_MAIA_QUEUE_DELAY_US");
}

static void test_stream_ordered_free(void) {
    rt_up(1, 1);
    const uint64_t all = 1u << 20;
    uint64_t q, u, b, b2;
    CHECK_OK(maia_queue_create(0, &q));
    CHECK_OK(maia_user_event_create(&u));
    CHECK_OK(maia_malloc(0, all, &b));
    CHECK_OK(maia_queue_wait_event(q, u));
    launch_fill(q, b, (int64_t)(all / 4), 1.0);
    CHECK_OK(maia_free(0, b)); /* returns at once; the fill still owns the memory */
    maia_memory_stats s;
    CHECK_OK(maia_device_memory_stats(0, &s));
    CHECK(s.in_use == 0 && s.live_allocations == 0 && s.pending_free == all && s.free == 0);
    CHECK_ST(maia_malloc(0, 256, &b2), MAIA_ERROR_OUT_OF_MEMORY); /* not reused yet */
    CHECK_MSG_HAS("awaiting queued commands 1048576 bytes");
    maia_buffer_view v = view1(b, MAIA_FLOAT32, 4, 0);
    float h[4];
    CHECK_ST(maia_copy_d2h(q, h, 16, &v), MAIA_ERROR_USE_AFTER_FREE);
    CHECK_OK(maia_user_event_signal(u));
    CHECK_OK(maia_queue_synchronize(q));
    CHECK_OK(maia_device_memory_stats(0, &s));
    CHECK(s.pending_free == 0 && s.free == all && s.free_blocks == 1);
    CHECK_OK(maia_malloc(0, all, &b2));
    CHECK_OK(maia_free(0, b2));
    CHECK_OK(maia_event_destroy(u));
    CHECK_OK(maia_queue_destroy(q));
    RT_DOWN();
}

/* ---- many host threads ---------------------------------------------------------------- */

enum { THREADS = 8, ITERS = 150, TN = 512 };
static uint64_t g_shared_q[2];
static atomic_int g_thread_failures;

static void *hammer(void *arg) {
    int id = (int)(intptr_t)arg;
    int dev = id % 2;
    uint64_t own;
    int bad = 0;
    if (maia_queue_create(dev, &own) != MAIA_OK) bad++;
    float *in = malloc(TN * 4), *out = malloc(TN * 4);
    for (int it = 0; it < ITERS && !bad; it++) {
        uint64_t q = (it % 3 == 0) ? g_shared_q[dev] : own;
        uint64_t a, o, e;
        if (maia_malloc(dev, TN * 4, &a) || maia_malloc(dev, TN * 4, &o)) { bad++; break; }
        for (int i = 0; i < TN; i++) in[i] = (float)(id * 1000 + it + i);
        maia_buffer_view va = view1(a, MAIA_FLOAT32, TN, 0), vo = view1(o, MAIA_FLOAT32, TN, 0);
        maia_buffer_view ins[2] = {va, va};
        bad += maia_copy_h2d(q, &va, in, TN * 4) != MAIA_OK;
        bad += maia_launch(q, "add", ins, 2, &vo, 1, NULL) != MAIA_OK;
        bad += maia_copy_d2h(q, out, TN * 4, &vo) != MAIA_OK;
        bad += maia_event_record(q, &e) != MAIA_OK;
        /* free before the work is done: stream-ordered */
        bad += maia_free(dev, a) != MAIA_OK;
        bad += maia_free(dev, o) != MAIA_OK;
        bad += maia_event_synchronize(e) != MAIA_OK;
        bad += maia_event_destroy(e) != MAIA_OK;
        for (int i = 0; i < TN; i++) bad += out[i] != 2.0f * in[i];
    }
    if (maia_queue_destroy(own) != MAIA_OK) bad++;
    free(in);
    free(out);
    atomic_fetch_add(&g_thread_failures, bad);
    return NULL;
}

static void test_many_threads(void) {
    rt_up(2, 8);
    CHECK_OK(maia_queue_create(0, &g_shared_q[0]));
    CHECK_OK(maia_queue_create(1, &g_shared_q[1]));
    maia_device_counters c0a, c1a, c0b, c1b;
    CHECK_OK(maia_device_get_counters(0, &c0a));
    CHECK_OK(maia_device_get_counters(1, &c1a));
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, hammer, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    CHECK(atomic_load(&g_thread_failures) == 0);
    CHECK_OK(maia_queue_synchronize(g_shared_q[0]));
    CHECK_OK(maia_queue_synchronize(g_shared_q[1]));
    CHECK_OK(maia_device_get_counters(0, &c0b));
    CHECK_OK(maia_device_get_counters(1, &c1b));
    uint64_t cmds = (c0b.commands - c0a.commands) + (c1b.commands - c1a.commands);
    CHECK(cmds == (uint64_t)THREADS * ITERS * 4);
    CHECK((c0b.kernels - c0a.kernels) + (c1b.kernels - c1a.kernels) == (uint64_t)THREADS * ITERS);
    for (int d = 0; d < 2; d++) {
        maia_memory_stats s;
        CHECK_OK(maia_device_memory_stats(d, &s));
        CHECK(s.in_use == 0 && s.pending_free == 0 && s.live_allocations == 0 &&
              s.free_blocks == 1);
        CHECK(s.total_allocations == (uint64_t)THREADS / 2 * ITERS * 2);
    }
    CHECK_OK(maia_queue_destroy(g_shared_q[0]));
    CHECK_OK(maia_queue_destroy(g_shared_q[1]));
    RT_DOWN();
}

static void test_destroy_and_shutdown_drain(void) {
    rt_up(1, 4);
    enum { N = 128 };
    uint64_t q, b, u;
    float out[N];
    CHECK_OK(maia_queue_create(0, &q));
    CHECK_OK(maia_malloc(0, N * 4, &b));
    CHECK_OK(maia_fault_queue_delay(q, 200));
    for (int i = 0; i < 20; i++) launch_fill(q, b, N, (double)i);
    memset(out, 0, sizeof out);
    maia_buffer_view v = view1(b, MAIA_FLOAT32, N, 0);
    CHECK_OK(maia_copy_d2h(q, out, sizeof out, &v));
    CHECK_OK(maia_queue_destroy(q)); /* drains */
    CHECK(all_equal(out, N, 19.0f));
    /* shutdown with work held behind a user event: the event is released, work drains,
     * buffers freed while in use and the unreleased objects are reported */
    CHECK_OK(maia_queue_create(0, &q));
    CHECK_OK(maia_user_event_create(&u));
    CHECK_OK(maia_queue_wait_event(q, u));
    for (int i = 0; i < 50; i++) launch_fill(q, b, N, 7.0);
    memset(out, 0, sizeof out);
    CHECK_OK(maia_copy_d2h(q, out, sizeof out, &v));
    CHECK_OK(maia_free(0, b)); /* pending */
    CHECK_ST(maia_queue_query(q), MAIA_NOT_READY);
    maia_leak_report rep;
    CHECK_ST(maia_shutdown(&rep), MAIA_ERROR_LEAKED_RESOURCES);
    CHECK(rep.queues == 1 && rep.events == 1 && rep.buffers == 0);
    CHECK(all_equal(out, N, 7.0f));
}

static void test_queue_limit(void) {
    maia_config cfg = {0};
    cfg.device_count = 1;
    cfg.memory_bytes = 1u << 20;
    cfg.max_queues_per_device = 3;
    cfg.ignore_env = 1;
    CHECK_OK(maia_init(&cfg));
    uint64_t q[4];
    for (int i = 0; i < 3; i++) CHECK_OK(maia_queue_create(0, &q[i]));
    CHECK_ST(maia_queue_create(0, &q[3]), MAIA_ERROR_LIMIT);
    CHECK_ST(maia_queue_create(1, &q[3]), MAIA_ERROR_INVALID_DEVICE);
    CHECK_OK(maia_queue_destroy(q[1]));
    CHECK_OK(maia_queue_create(0, &q[1]));
    maia_queue_info qi;
    CHECK_OK(maia_queue_get_info(q[1], &qi));
    CHECK(qi.index == 3 && qi.device == 0);
    CHECK_OK(maia_device_synchronize(0));
    for (int i = 0; i < 3; i++) CHECK_OK(maia_queue_destroy(q[i]));
    RT_DOWN();
}

/* ---- the performance model ------------------------------------------------------------ */

static double ms(uint64_t a, uint64_t b) {
    double w = 0, m = -1;
    CHECK_OK(maia_event_elapsed(a, b, &w, &m));
    CHECK(w >= 0);
    return m;
}

static void test_performance_model(void) {
    rt_up(2, 64);
    maia_perf_model m;
    CHECK_OK(maia_device_get_model(0, &m));
    const uint64_t N = 8u << 20; /* bytes */
    const int64_t n = (int64_t)(N / 4);
    uint64_t q, q1, a, b, p, e[6];
    void *host = calloc(1, N);
    CHECK_OK(maia_queue_create(0, &q));
    CHECK_OK(maia_queue_create(1, &q1));
    CHECK_OK(maia_malloc(0, N, &a));
    CHECK_OK(maia_malloc(0, N, &b));
    CHECK_OK(maia_malloc(1, N, &p));
    maia_buffer_view va = view1(a, MAIA_FLOAT32, n, 0), vb = view1(b, MAIA_FLOAT32, n, 0),
                     vp = view1(p, MAIA_FLOAT32, n, 0);
    maia_device_counters c0;
    CHECK_OK(maia_device_get_counters(0, &c0));
    CHECK_OK(maia_event_record(q, &e[0]));
    CHECK_OK(maia_copy_h2d(q, &va, host, N));
    CHECK_OK(maia_event_record(q, &e[1]));
    CHECK_OK(maia_copy_d2d(q, &vb, &va));
    CHECK_OK(maia_event_record(q, &e[2]));
    CHECK_OK(maia_copy_d2d(q, &vb, &vp)); /* peer */
    CHECK_OK(maia_event_record(q, &e[3]));
    maia_buffer_view ins[2] = {va, vb};
    CHECK_OK(maia_launch(q, "add", ins, 2, &vb, 1, NULL));
    CHECK_OK(maia_event_record(q, &e[4]));
    CHECK_OK(maia_copy_d2h(q, host, N, &vb));
    CHECK_OK(maia_event_record(q, &e[5]));
    CHECK_OK(maia_event_synchronize(e[5]));
    CHECK_OK(maia_queue_synchronize(q)); /* counters settle when the queue has drained */
    double h2d = (double)N / m.host_bandwidth * 1e3 + m.copy_launch_ns * 1e-6;
    double d2d = 2.0 * (double)N / m.hbm_bandwidth * 1e3 + m.copy_launch_ns * 1e-6;
    double peer = (double)N / m.peer_bandwidth * 1e3 + m.copy_launch_ns * 1e-6;
    double tc = (double)n / m.peak_flops[MAIA_FLOAT32], tm = 12.0 * (double)n / m.hbm_bandwidth;
    double kern = (tc > tm ? tc : tm) * 1e3 + m.kernel_launch_ns * 1e-6;
    CHECK_NEAR(ms(e[0], e[1]), h2d, 1e-6);
    CHECK_NEAR(ms(e[1], e[2]), d2d, 1e-6);
    CHECK_NEAR(ms(e[2], e[3]), peer, 1e-6);
    CHECK_NEAR(ms(e[3], e[4]), kern, 1e-6);
    CHECK_NEAR(ms(e[4], e[5]), h2d, 1e-6);
    CHECK_NEAR(ms(e[0], e[5]), 2 * h2d + d2d + peer + kern, 1e-6);
    /* 8 MiB over 64 GB/s is 131 us: the figure itself, not just self-consistency */
    CHECK_NEAR(ms(e[0], e[1]), 0.131072 + 0.001, 1e-6);
    maia_device_counters c1;
    CHECK_OK(maia_device_get_counters(0, &c1));
    CHECK_NEAR((c1.modeled_busy_ns - c0.modeled_busy_ns) * 1e-6, 2 * h2d + d2d + peer + kern, 1e-6);
    CHECK(c1.commands - c0.commands == 11);
    CHECK(c1.kernels - c0.kernels == 1 && c1.copies - c0.copies == 4);
    /* a wait takes the max of the two timelines: q1 (at 0) waits on e[5] */
    maia_queue_info qi;
    uint64_t ew;
    CHECK_OK(maia_queue_wait_event(q1, e[5]));
    CHECK_OK(maia_event_record(q1, &ew));
    CHECK_OK(maia_event_synchronize(ew));
    CHECK_OK(maia_queue_get_info(q1, &qi));
    maia_queue_info q0i;
    CHECK_OK(maia_queue_get_info(q, &q0i));
    CHECK_NEAR(qi.modeled_clock_ns, q0i.modeled_clock_ns, 1e-9);
    CHECK_NEAR(q0i.modeled_clock_ns * 1e-6, 2 * h2d + d2d + peer + kern, 1e-6);
    /* a waiting queue that is already later keeps its own clock */
    CHECK_OK(maia_copy_h2d(q1, &vp, host, N));
    CHECK_OK(maia_copy_h2d(q1, &vp, host, N));
    uint64_t e_q0;
    CHECK_OK(maia_event_record(q, &e_q0));
    CHECK_OK(maia_queue_wait_event(q1, e_q0));
    CHECK_OK(maia_queue_synchronize(q1));
    CHECK_OK(maia_queue_get_info(q1, &qi));
    CHECK_NEAR(qi.modeled_clock_ns * 1e-6, 2 * h2d + d2d + peer + kern + 2 * h2d, 1e-6);
    for (int i = 0; i < 6; i++) CHECK_OK(maia_event_destroy(e[i]));
    CHECK_OK(maia_event_destroy(ew));
    CHECK_OK(maia_event_destroy(e_q0));
    CHECK_OK(maia_free(0, a));
    CHECK_OK(maia_free(0, b));
    CHECK_OK(maia_free(1, p));
    CHECK_OK(maia_queue_destroy(q));
    CHECK_OK(maia_queue_destroy(q1));
    free(host);
    RT_DOWN();
}

/* HWABSTRACT_MAIA_SPIN_US: never poll, poll briefly, poll long; every wait path (worker
 * idle, queue synchronize, event synchronize, a queue waiting on a user event) stays correct,
 * and more commands in flight than the per-queue command cache holds are freed at shutdown. */
static void test_spin_settings(void) {
    static const char *const spins[] = {"0", "1", "200"};
    enum { N = 64 };
    float out[N];
    for (size_t k = 0; k < sizeof spins / sizeof spins[0]; k++) {
        setenv("HWABSTRACT_MAIA_SPIN_US", spins[k], 1);
        maia_config cfg = {0};
        cfg.device_count = 1;
        cfg.memory_bytes = 4u << 20;
        cfg.kernel_threads = 1;
        CHECK_OK(maia_init(&cfg));
        uint64_t q, q2, b, ev, u;
        CHECK_OK(maia_queue_create(0, &q));
        CHECK_OK(maia_queue_create(0, &q2));
        CHECK_OK(maia_malloc(0, N * 4, &b));
        maia_buffer_view v = view1(b, MAIA_FLOAT32, N, 0);
        for (int i = 0; i < 50; i++) { /* round trips, some after the worker went to sleep */
            launch_fill(q, b, N, (double)i);
            if (i % 10 == 9) usleep(300);
            CHECK_OK(maia_queue_synchronize(q));
        }
        CHECK_OK(maia_copy_d2h(q, out, sizeof out, &v));
        CHECK_OK(maia_event_record(q, &ev));
        CHECK_OK(maia_event_synchronize(ev));
        CHECK(all_equal(out, N, 49.0f));
        CHECK_OK(maia_event_destroy(ev));
        /* many commands in flight (more than the cache keeps), then drained */
        CHECK_OK(maia_fault_queue_delay(q, 20));
        for (int i = 0; i < 150; i++) launch_fill(q, b, N, (double)i);
        CHECK_OK(maia_fault_queue_delay(q, 0));
        CHECK_OK(maia_event_record(q, &ev));
        CHECK_OK(maia_event_synchronize(ev)); /* long wait: polls, then sleeps */
        CHECK_OK(maia_event_destroy(ev));
        /* a queue blocked on a user event, released later from this thread */
        CHECK_OK(maia_user_event_create(&u));
        CHECK_OK(maia_queue_wait_event(q2, u));
        launch_fill(q2, b, N, 5.0);
        usleep(2000);
        CHECK_ST(maia_queue_query(q2), MAIA_NOT_READY);
        CHECK_OK(maia_user_event_signal(u));
        CHECK_OK(maia_queue_synchronize(q2));
        memset(out, 0, sizeof out);
        CHECK_OK(maia_copy_d2h(q2, out, sizeof out, &v));
        CHECK_OK(maia_queue_synchronize(q2));
        CHECK(all_equal(out, N, 5.0f));
        CHECK_OK(maia_event_destroy(u));
        CHECK_OK(maia_free(0, b));
        CHECK_OK(maia_queue_destroy(q));
        CHECK_OK(maia_queue_destroy(q2));
        RT_DOWN();
    }
    static const char *const bad[] = {"-1", "fast", "1000001"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        setenv("HWABSTRACT_MAIA_SPIN_US", bad[k], 1);
        CHECK_ST(maia_init(NULL), MAIA_ERROR_INVALID_ARGUMENT);
        CHECK(strstr(maia_last_error(), "HWABSTRACT_MAIA_SPIN_US") != NULL);
    }
    unsetenv("HWABSTRACT_MAIA_SPIN_US");
}

int main(void) {
    unsetenv("HWABSTRACT_MAIA_FAIL_KERNEL");
    unsetenv("HWABSTRACT_MAIA_QUEUE_DELAY_US");
    unsetenv("HWABSTRACT_MAIA_FAIL_ALLOC");
    RUN(test_h2d_d2h_roundtrip);
    RUN(test_strided_d2d);
    RUN(test_peer_copy);
    RUN(test_zero_size_and_bounds);
    RUN(test_async_blocked_on_unreached_event);
    RUN(test_fences_order_work);
    RUN(test_error_reported_once_queue_reusable);
    RUN(test_fault_injection_kernel_and_delay);
    RUN(test_lost_device);
    RUN(test_stream_ordered_free);
    RUN(test_many_threads);
    RUN(test_destroy_and_shutdown_drain);
    RUN(test_queue_limit);
    RUN(test_performance_model);
    RUN(test_spin_settings);
    return CHECK_REPORT();
}
