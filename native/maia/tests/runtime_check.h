/* A tiny assertion framework for the runtime tests. A failed CHECK reports and counts; the
 * test binary exits non-zero if any check failed. */
#ifndef RUNTIME_CHECK_H
#define RUNTIME_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maia.h"

static int g_checks, g_failures;
static const char *g_test = "";

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        g_checks++;                                                                          \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: [%s] CHECK(%s) failed\n", __FILE__, __LINE__, g_test,    \
                    #cond);                                                                  \
            g_failures++;                                                                    \
        }                                                                                    \
    } while (0)

#define CHECK_ST(expr, want)                                                                 \
    do {                                                                                     \
        g_checks++;                                                                          \
        int _got = (int)(expr);                                                              \
        if (_got != (int)(want)) {                                                           \
            fprintf(stderr, "%s:%d: [%s] %s returned %s, expected %s (last error: %s)\n",     \
                    __FILE__, __LINE__, g_test, #expr, maia_status_name(_got),               \
                    maia_status_name((int)(want)), maia_last_error());                       \
            g_failures++;                                                                    \
        }                                                                                    \
    } while (0)

#define CHECK_OK(expr) CHECK_ST(expr, MAIA_OK)

#define CHECK_NEAR(a, b, rel)                                                                \
    do {                                                                                     \
        g_checks++;                                                                          \
        double _a = (a), _b = (b);                                                           \
        double _d = _a > _b ? _a - _b : _b - _a;                                             \
        double _m = (_a > 0 ? _a : -_a) > (_b > 0 ? _b : -_b) ? (_a > 0 ? _a : -_a)         \
                                                              : (_b > 0 ? _b : -_b);         \
        if (_d > (rel) * _m + 1e-12) {                                                       \
            fprintf(stderr, "%s:%d: [%s] %s = %.9g, expected %s = %.9g\n", __FILE__,          \
                    __LINE__, g_test, #a, _a, #b, _b);                                       \
            g_failures++;                                                                    \
        }                                                                                    \
    } while (0)

#define CHECK_MSG_HAS(sub)                                                                   \
    do {                                                                                     \
        g_checks++;                                                                          \
        if (!strstr(maia_last_error(), (sub))) {                                             \
            fprintf(stderr, "%s:%d: [%s] last error \"%s\" lacks \"%s\"\n", __FILE__,         \
                    __LINE__, g_test, maia_last_error(), (sub));                             \
            g_failures++;                                                                    \
        }                                                                                    \
    } while (0)

#define RUN(fn)                                                                              \
    do {                                                                                     \
        g_test = #fn;                                                                        \
        int _before = g_failures;                                                            \
        fn();                                                                                \
        fprintf(stderr, "  %-44s %s\n", #fn, g_failures == _before ? "ok" : "FAILED");       \
    } while (0)

#define CHECK_REPORT()                                                                       \
    (fprintf(stderr, "%d checks, %d failed\n", g_checks, g_failures), g_failures ? 1 : 0)

/* Runtime with `devices` devices of `mib` MiB each, no environment. */
static inline void rt_up(int devices, unsigned mib) {
    maia_config cfg = {0};
    cfg.device_count = devices;
    cfg.memory_bytes = (uint64_t)mib << 20;
    cfg.kernel_threads = 1;
    cfg.ignore_env = 1;
    int st = maia_init(&cfg);
    if (st != MAIA_OK) {
        fprintf(stderr, "maia_init failed: %s %s\n", maia_status_name(st), maia_last_error());
        exit(2);
    }
}

/* Shut down and check nothing leaked. */
#define RT_DOWN() CHECK_OK(maia_shutdown(NULL))

/* A 1-D view of n elements of dtype at byte offset off, stride 1. */
static inline maia_buffer_view view1(uint64_t buf, int32_t dtype, int64_t n, int64_t off) {
    maia_buffer_view v;
    memset(&v, 0, sizeof v);
    v.buffer = buf;
    v.dtype = dtype;
    v.ndim = 1;
    v.shape[0] = n;
    v.strides[0] = 1;
    v.offset = off;
    return v;
}

static inline maia_buffer_view view2(uint64_t buf, int32_t dtype, int64_t r, int64_t c,
                                     int64_t sr, int64_t sc, int64_t off) {
    maia_buffer_view v;
    memset(&v, 0, sizeof v);
    v.buffer = buf;
    v.dtype = dtype;
    v.ndim = 2;
    v.shape[0] = r;
    v.shape[1] = c;
    v.strides[0] = sr;
    v.strides[1] = sc;
    v.offset = off;
    return v;
}

#endif
