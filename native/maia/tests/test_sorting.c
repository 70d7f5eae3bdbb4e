/* Tests of the sorting, indexing and cumulative kernels (src/kernels/sorting.c, indexing.c,
 * cumulative.c): sort, argsort, searchsorted, take, take_along_axis, flatnonzero,
 * cumulative_sum and cumulative_prod, against brute-force references written here from the
 * specs (every dtype each declares; NaN, -0.0, ties, descending, strided and negative-stride
 * views, empty operands, bad indices). Exits non-zero on any failure. Meant to run under
 * -fsanitize=address,undefined too. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/maia_kernels.h"
#include "kernel_call.h"
#include "kernel_check.h"


/* ---- dtype facts, written independently of the kernels ---------------------------------- */

static const size_t SIZES[MAIA_DTYPE_COUNT] = {1, 1, 2, 4, 8, 1, 2, 4, 8, 1, 1, 2, 2, 4};
static const char *const NAMES[MAIA_DTYPE_COUNT] = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float8_e4m3fn", "float8_e5m2", "bfloat16", "float16", "float32"};

static int is_float(int dt) { return dt >= MAIA_FLOAT8_E4M3FN; }
static int is_unsigned(int dt) { return dt >= MAIA_UINT8 && dt <= MAIA_UINT64; }

static uint64_t get_bits(int dt, const void *base, int64_t i) {
    const char *p = (const char *)base + i * (int64_t)SIZES[dt];
    uint64_t v = 0;
    memcpy(&v, p, SIZES[dt]); /* little-endian host */
    return v;
}
static void put_bits(int dt, void *base, int64_t i, uint64_t v) {
    memcpy((char *)base + i * (int64_t)SIZES[dt], &v, SIZES[dt]);
}

static float to_f32(int dt, uint64_t b) {
    switch (dt) {
    case MAIA_FLOAT32: return u2f((uint32_t)b);
    case MAIA_FLOAT16: return maia_f16_to_f32((uint16_t)b);
    case MAIA_BFLOAT16: return maia_bf16_to_f32((uint16_t)b);
    case MAIA_FLOAT8_E4M3FN: return maia_f8e4m3_to_f32((uint8_t)b);
    default: return maia_f8e5m2_to_f32((uint8_t)b);
    }
}
static uint64_t from_f32(int dt, float f) {
    switch (dt) {
    case MAIA_FLOAT32: return f2u(f);
    case MAIA_FLOAT16: return maia_f32_to_f16(f);
    case MAIA_BFLOAT16: return maia_f32_to_bf16(f);
    case MAIA_FLOAT8_E4M3FN: return maia_f32_to_f8e4m3(f);
    default: return maia_f32_to_f8e5m2(f);
    }
}
static int64_t to_i64(int dt, uint64_t b) { /* sign-extend signed dtypes */
    int bits = (int)SIZES[dt] * 8;
    if (!is_unsigned(dt) && bits < 64 && ((b >> (bits - 1)) & 1)) b |= ~((1ull << bits) - 1);
    return (int64_t)b;
}

/* The spec's order: numbers by value (-0.0 == +0.0), NaN after everything, NaNs tie. */
static int cmp_bits(int dt, uint64_t a, uint64_t b) {
    if (is_float(dt)) {
        float x = to_f32(dt, a), y = to_f32(dt, b);
        int nx = isnan(x), ny = isnan(y);
        if (nx || ny) return nx - ny;
        return (x > y) - (x < y);
    }
    if (is_unsigned(dt)) return (a > b) - (a < b);
    int64_t x = to_i64(dt, a), y = to_i64(dt, b);
    return (x > y) - (x < y);
}

/* A random element with many ties and the specials of its dtype. */
static uint64_t rand_elem(int dt) {
    if (is_float(dt)) {
        static const float vals[] = {0.0f, -0.0f, 1.0f, -1.0f, 2.5f, -2.5f, 0.5f, 3.0f,
                                     INFINITY, -INFINITY, NAN, -7.0f, 100.0f};
        uint64_t r = rnd() % 15;
        if (r == 13) /* a negative NaN (a payload too for float32) */
            return dt == MAIA_FLOAT32 ? 0xffc00001u
                   : dt == MAIA_FLOAT8_E4M3FN ? 0xff
                                              : from_f32(dt, -NAN);
        if (r == 14) return from_f32(dt, (float)((int)(rnd() % 200) - 100) / 8.0f);
        return from_f32(dt, vals[r]);
    }
    int bits = (int)SIZES[dt] * 8;
    uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
    uint64_t r = rnd() % 16;
    if (r == 0) return mask; /* -1 or the unsigned max */
    if (r == 1) return is_unsigned(dt) ? 0 : (1ull << (bits - 1)); /* the minimum */
    if (r == 2) return is_unsigned(dt) ? mask : (mask >> 1); /* the maximum */
    return (uint64_t)((int64_t)(rnd() % 11) - (is_unsigned(dt) ? 0 : 5)) & mask;
}

/* ---- views and calls -------------------------------------------------------------------- */


static const int REAL[] = {MAIA_INT8, MAIA_INT16, MAIA_INT32, MAIA_INT64, MAIA_UINT8,
                           MAIA_UINT16, MAIA_UINT32, MAIA_UINT64, MAIA_FLOAT8_E4M3FN,
                           MAIA_FLOAT8_E5M2, MAIA_BFLOAT16, MAIA_FLOAT16, MAIA_FLOAT32};
#define NREAL (int)(sizeof REAL / sizeof REAL[0])

/* ==== 1. sort and argsort ================================================================= */

/* Brute force: the stable order's position of every element (O(n^2)). */
static void brute_argsort(int dt, const void *x, int64_t xs, int64_t n, int desc, int64_t *ref) {
    for (int64_t i = 0; i < n; i++) {
        int64_t pos = 0;
        uint64_t xi = get_bits(dt, x, i * xs);
        for (int64_t j = 0; j < n; j++) {
            int c = cmp_bits(dt, get_bits(dt, x, j * xs), xi);
            if (desc) c = -c;
            if (c < 0 || (c == 0 && j < i)) pos++;
        }
        ref[pos] = i;
    }
}

/* A valid stable (arg)sort of a row: a permutation, in order, ties by increasing index. */
static int check_stable(int dt, const void *x, int64_t xs, int64_t n, int desc,
                        const int64_t *idx, int64_t is) {
    char *seen = calloc((size_t)n + 1, 1);
    int ok = seen != NULL;
    for (int64_t j = 0; ok && j < n; j++) {
        int64_t k = idx[j * is];
        if (k < 0 || k >= n || seen[k]) ok = 0;
        else seen[k] = 1;
    }
    for (int64_t j = 0; ok && j + 1 < n; j++) {
        int64_t a = idx[j * is], b = idx[(j + 1) * is];
        int c = cmp_bits(dt, get_bits(dt, x, a * xs), get_bits(dt, x, b * xs));
        if (desc) c = -c;
        if (c > 0 || (c == 0 && a > b)) ok = 0;
    }
    free(seen);
    return ok;
}

static void test_sort_1d(void) {
    static const int64_t lens[] = {0, 1, 2, 3, 31, 32, 33, 65, 200, 1100};
    maia_attrs at;
    for (int t = 0; t < NREAL; t++) {
        int dt = REAL[t];
        CHECK(maia_kernel_supports("sort", dt) && maia_kernel_supports("argsort", dt) &&
                  maia_kernel_supports("searchsorted", dt), "%s declared", NAMES[dt]);
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            int64_t n = lens[li];
            size_t es = SIZES[dt];
            char *x = malloc((size_t)n * es + 8), *y = malloc((size_t)n * es + 8);
            int64_t *idx = malloc((size_t)n * 8 + 8), *ref = malloc((size_t)n * 8 + 8);
            for (int64_t i = 0; i < n; i++) put_bits(dt, x, i, rand_elem(dt));
            for (int desc = 0; desc < 2; desc++) {
                memset(&at, 0, sizeof at);
                at.descending = desc;
                at.stable = 1;
                maia_view in = mkview(x, dt, 1, &n, NULL), out = mkview(y, dt, 1, &n, NULL);
                maia_view iout = mkview(idx, MAIA_INT64, 1, &n, NULL);
                CHECK(run_call("argsort", 1, &in, &iout, &at, 1, NULL) == 0, "%s", g_err);
                CHECK(run_call("sort", 1, &in, &out, &at, 1, NULL) == 0, "%s", g_err);
                brute_argsort(dt, x, 1, n, desc, ref);
                int ok = 1, okv = 1;
                for (int64_t i = 0; i < n; i++) {
                    ok &= idx[i] == ref[i];
                    okv &= get_bits(dt, y, i) == get_bits(dt, x, ref[i]); /* bits, -0 and NaN kept */
                }
                CHECK(ok, "argsort %s n=%lld desc=%d", NAMES[dt], (long long)n, desc);
                CHECK(okv, "sort %s n=%lld desc=%d", NAMES[dt], (long long)n, desc);
            }
            free(x), free(y), free(idx), free(ref);
        }
    }
}

static void test_sort_specials(void) {
    /* NaN last ascending, first descending; -0.0 and +0.0 tie and keep their order */
    float x[8] = {NAN, -0.0f, 1.0f, 0.0f, -INFINITY, u2f(0xffc00000u), -0.0f, -1.0f};
    float y[8];
    int64_t idx[8], n = 8;
    maia_attrs at;
    memset(&at, 0, sizeof at);
    maia_view in = mkview(x, MAIA_FLOAT32, 1, &n, NULL), out = mkview(y, MAIA_FLOAT32, 1, &n, NULL);
    maia_view iout = mkview(idx, MAIA_INT64, 1, &n, NULL);
    CHECK(run_call("argsort", 1, &in, &iout, &at, 1, NULL) == 0, "%s", g_err);
    static const int64_t asc[8] = {4, 7, 1, 3, 6, 2, 0, 5};
    CHECK(memcmp(idx, asc, sizeof asc) == 0, "ascending specials: %lld %lld %lld %lld %lld",
          (long long)idx[0], (long long)idx[1], (long long)idx[2], (long long)idx[3],
          (long long)idx[4]);
    CHECK(run_call("sort", 1, &in, &out, &at, 1, NULL) == 0, "%s", g_err);
    CHECK(f2u(y[2]) == 0x80000000u && f2u(y[3]) == 0 && f2u(y[4]) == 0x80000000u &&
              f2u(y[7]) == 0xffc00000u && isnan(y[6]),
          "sort keeps -0.0 and NaN bits in place");
    at.descending = 1;
    CHECK(run_call("argsort", 1, &in, &iout, &at, 1, NULL) == 0, "%s", g_err);
    static const int64_t desc[8] = {0, 5, 2, 1, 3, 6, 7, 4};
    CHECK(memcmp(idx, desc, sizeof desc) == 0, "descending specials: %lld %lld %lld %lld",
          (long long)idx[0], (long long)idx[1], (long long)idx[2], (long long)idx[3]);
    /* stable = 0 still sorts stably (a stable result is a valid unstable one) */
    at.stable = 0;
    CHECK(run_call("argsort", 1, &in, &iout, &at, 1, NULL) == 0 &&
              memcmp(idx, desc, sizeof desc) == 0, "unstable request");
    /* ties of integers */
    int32_t ti[6] = {3, 1, 3, 1, 2, 3};
    int64_t six = 6;
    maia_view tin = mkview(ti, MAIA_INT32, 1, &six, NULL), tout = mkview(idx, MAIA_INT64, 1, &six, NULL);
    at.descending = 1;
    CHECK(run_call("argsort", 1, &tin, &tout, &at, 1, NULL) == 0, "%s", g_err);
    CHECK(idx[0] == 0 && idx[1] == 2 && idx[2] == 5 && idx[3] == 4 && idx[4] == 1 && idx[5] == 3,
          "descending ties keep their order");
    /* int64 and uint64 extremes */
    int64_t e[4] = {INT64_MAX, INT64_MIN, -1, 0}, eo[4];
    int64_t four = 4;
    maia_view ein = mkview(e, MAIA_INT64, 1, &four, NULL), eout = mkview(eo, MAIA_INT64, 1, &four, NULL);
    at.descending = 0;
    CHECK(run_call("sort", 1, &ein, &eout, &at, 1, NULL) == 0 && eo[0] == INT64_MIN &&
              eo[1] == -1 && eo[2] == 0 && eo[3] == INT64_MAX, "int64 extremes");
    ein.dtype = eout.dtype = MAIA_UINT64;
    CHECK(run_call("sort", 1, &ein, &eout, &at, 1, NULL) == 0 && eo[0] == 0 &&
              eo[1] == INT64_MAX && eo[2] == INT64_MIN && eo[3] == -1, "uint64 extremes");
}

/* 2-D, along either axis, input with a negative stride, output transposed. */
static void test_sort_strided(void) {
    enum { R = 9, C = 37 };
    for (int t = 0; t < NREAL; t++) {
        int dt = REAL[t];
        size_t es = SIZES[dt];
        char *buf = malloc(R * C * es), *y = malloc(R * C * es);
        int64_t *idx = malloc(R * C * 8);
        for (int i = 0; i < R * C; i++) put_bits(dt, buf, i, rand_elem(dt));
        /* x = buf[::-1, :] viewed as (R, C): data at the last row, row stride -C */
        int64_t shape[2] = {R, C}, xs[2] = {-C, 1}, ys[2] = {1, R}; /* y: column-major */
        char *x0 = buf + (size_t)(R - 1) * C * es;
        for (int axis = 0; axis < 2; axis++)
            for (int desc = 0; desc < 2; desc++) {
                maia_attrs at;
                memset(&at, 0, sizeof at);
                at.axis = axis;
                at.descending = desc;
                maia_view in = mkview(x0, dt, 2, shape, xs), out = mkview(y, dt, 2, shape, ys);
                maia_view iout = mkview(idx, MAIA_INT64, 2, shape, ys);
                CHECK(run_call("argsort", 1, &in, &iout, &at, 1, NULL) == 0, "%s", g_err);
                CHECK(run_call("sort", 1, &in, &out, &at, 1, NULL) == 0, "%s", g_err);
                int rows = axis == 0 ? C : R, len = axis == 0 ? R : C;
                for (int r = 0; r < rows; r++) {
                    /* the row's start and element stride in x, idx/y */
                    int64_t xo = axis == 0 ? r * xs[1] : r * xs[0];
                    int64_t xstep = xs[axis];
                    int64_t yo = axis == 0 ? r * ys[1] : r * ys[0];
                    int64_t ystep = ys[axis];
                    CHECK(check_stable(dt, x0 + xo * (int64_t)es, xstep, len, desc, idx + yo, ystep),
                          "strided argsort %s axis %d desc %d row %d", NAMES[dt], axis, desc, r);
                    int okv = 1;
                    for (int j = 0; j < len; j++)
                        okv &= get_bits(dt, y, yo + j * ystep) ==
                               get_bits(dt, x0, xo + idx[yo + j * ystep] * xstep);
                    CHECK(okv, "strided sort %s axis %d desc %d row %d", NAMES[dt], axis, desc, r);
                }
            }
        free(buf), free(y), free(idx);
    }
}

/* Long rows with host threads: the parallel runs and merge passes, and many rows in parallel. */
static void test_sort_threads(void) {
    static const int dts[] = {MAIA_FLOAT32, MAIA_INT16, MAIA_BFLOAT16, MAIA_UINT64};
    for (size_t t = 0; t < sizeof dts / sizeof dts[0]; t++) {
        int dt = dts[t];
        size_t es = SIZES[dt];
        int64_t n = 100003;
        char *x = malloc((size_t)n * es), *y = malloc((size_t)n * es);
        int64_t *idx = malloc((size_t)n * 8);
        for (int64_t i = 0; i < n; i++) put_bits(dt, x, i, rand_elem(dt));
        for (int shape_kind = 0; shape_kind < 2; shape_kind++)
            for (int desc = 0; desc < 2; desc++) {
                /* one row of n, or 7 rows (7 * 14286 = n - 1 elements used) */
                int64_t shape1[1] = {n}, shape2[2] = {7, 14286};
                int nd = shape_kind ? 2 : 1;
                const int64_t *shape = shape_kind ? shape2 : shape1;
                maia_attrs at;
                memset(&at, 0, sizeof at);
                at.axis = nd - 1;
                at.descending = desc;
                maia_view in = mkview(x, dt, nd, shape, NULL), out = mkview(y, dt, nd, shape, NULL);
                maia_view iout = mkview(idx, MAIA_INT64, nd, shape, NULL);
                CHECK(run_call("argsort", 1, &in, &iout, &at, 4, NULL) == 0, "%s", g_err);
                CHECK(run_call("sort", 1, &in, &out, &at, 4, NULL) == 0, "%s", g_err);
                int64_t rows = shape_kind ? 7 : 1, len = shape[nd - 1];
                for (int64_t r = 0; r < rows; r++) {
                    const char *xr = x + r * len * (int64_t)es;
                    CHECK(check_stable(dt, xr, 1, len, desc, idx + r * len, 1),
                          "threaded argsort %s rows %lld desc %d", NAMES[dt], (long long)rows, desc);
                    int okv = 1;
                    for (int64_t j = 0; j < len; j++)
                        okv &= get_bits(dt, y, r * len + j) == get_bits(dt, xr, idx[r * len + j]);
                    CHECK(okv, "threaded sort %s", NAMES[dt]);
                }
            }
        free(x), free(y), free(idx);
    }
    /* already sorted and reversed inputs (adversarial for naive quicksorts) */
    int64_t n = 300000;
    int32_t *a = malloc((size_t)n * 4);
    int64_t *idx = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) a[i] = (int32_t)(n - i);
    maia_attrs at;
    memset(&at, 0, sizeof at);
    maia_view in = mkview(a, MAIA_INT32, 1, &n, NULL), iout = mkview(idx, MAIA_INT64, 1, &n, NULL);
    maia_kernel_cost cost;
    CHECK(run_call("argsort", 1, &in, &iout, &at, 8, &cost) == 0, "%s", g_err);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= idx[i] == n - 1 - i;
    CHECK(ok, "reversed input");
    CHECK(cost.flops > (double)n * 17 && cost.bytes_moved >= (double)n * 12 &&
              cost.compute_dtype == MAIA_INT32, "sort cost %g %g", cost.flops, cost.bytes_moved);
    free(a), free(idx);
}

/* ==== 2. searchsorted ===================================================================== */

static void test_searchsorted(void) {
    for (int t = 0; t < NREAL; t++) {
        int dt = REAL[t];
        size_t es = SIZES[dt];
        int64_t n1 = 40, n2 = 60;
        char *raw = malloc((size_t)n1 * es), *x1 = malloc((size_t)n1 * es);
        char *x2 = malloc((size_t)n2 * 2 * es);
        int64_t *out = malloc((size_t)n2 * 8), ord[40];
        for (int64_t i = 0; i < n1; i++) put_bits(dt, raw, i, rand_elem(dt));
        brute_argsort(dt, raw, 1, n1, 0, ord);
        /* x1 stored descending, read through a negative stride: ascending */
        for (int64_t i = 0; i < n1; i++) put_bits(dt, x1, n1 - 1 - i, get_bits(dt, raw, ord[i]));
        for (int64_t i = 0; i < 2 * n2; i++)
            put_bits(dt, x2, i, i < n1 ? get_bits(dt, raw, i) : rand_elem(dt));
        for (int side = 0; side < 2; side++) {
            maia_attrs at;
            memset(&at, 0, sizeof at);
            at.side = side;
            int64_t s1 = -1, s2 = 2;
            maia_view in[2] = {mkview(x1 + (size_t)(n1 - 1) * es, dt, 1, &n1, &s1),
                               mkview(x2, dt, 1, &n2, &s2)};
            maia_view o = mkview(out, MAIA_INT64, 1, &n2, NULL);
            CHECK(run_call("searchsorted", 2, in, &o, &at, 1, NULL) == 0, "%s", g_err);
            int ok = 1;
            for (int64_t i = 0; i < n2; i++) {
                uint64_t v = get_bits(dt, x2, 2 * i);
                int64_t want = 0;
                for (int64_t j = 0; j < n1; j++) {
                    int c = cmp_bits(dt, get_bits(dt, raw, ord[j]), v);
                    want += side ? c <= 0 : c < 0;
                }
                ok &= out[i] == want;
            }
            CHECK(ok, "searchsorted %s side %d", NAMES[dt], side);
        }
        free(raw), free(x1), free(x2), free(out);
    }
    /* NaN above everything; -0.0 == +0.0; empty x1; 2-D x2 with a broadcast dimension */
    float x1[5] = {-1.0f, -0.0f, 0.0f, 2.0f, NAN}, q[3] = {NAN, 0.0f, INFINITY};
    int64_t o[6], n1 = 5, qs[2] = {2, 3}, qst[2] = {0, 1};
    maia_view in[2] = {mkview(x1, MAIA_FLOAT32, 1, &n1, NULL), mkview(q, MAIA_FLOAT32, 2, qs, qst)};
    maia_view ov = mkview(o, MAIA_INT64, 2, qs, NULL);
    maia_attrs at;
    memset(&at, 0, sizeof at);
    CHECK(run_call("searchsorted", 2, in, &ov, &at, 1, NULL) == 0 && o[0] == 4 && o[1] == 1 &&
              o[2] == 4 && o[3] == 4, "left: %lld %lld %lld", (long long)o[0], (long long)o[1],
          (long long)o[2]);
    at.side = 1;
    CHECK(run_call("searchsorted", 2, in, &ov, &at, 1, NULL) == 0 && o[0] == 5 && o[1] == 3 &&
              o[2] == 4 && o[5] == 4, "right: %lld %lld %lld", (long long)o[0], (long long)o[1],
          (long long)o[2]);
    int64_t zero = 0;
    in[0] = mkview(NULL, MAIA_FLOAT32, 1, &zero, NULL);
    CHECK(run_call("searchsorted", 2, in, &ov, &at, 1, NULL) == 0 && o[0] == 0 && o[5] == 0,
          "empty x1");
    at.side = 2;
    in[0] = mkview(x1, MAIA_FLOAT32, 1, &n1, NULL);
    CHECK(run_call("searchsorted", 2, in, &ov, &at, 1, NULL) == MAIA_KERNEL_INVALID &&
              strstr(g_err, "side"), "bad side: %s", g_err);
    /* threads */
    int64_t n = 200000, big1 = 1000;
    int32_t *a = malloc((size_t)big1 * 4), *b = malloc((size_t)n * 4);
    int64_t *r = malloc((size_t)n * 8);
    for (int64_t i = 0; i < big1; i++) a[i] = (int32_t)(2 * i);
    for (int64_t i = 0; i < n; i++) b[i] = (int32_t)(rnd() % 2100) - 50;
    maia_view bin[2] = {mkview(a, MAIA_INT32, 1, &big1, NULL), mkview(b, MAIA_INT32, 1, &n, NULL)};
    maia_view bo = mkview(r, MAIA_INT64, 1, &n, NULL);
    at.side = 0;
    CHECK(run_call("searchsorted", 2, bin, &bo, &at, 8, NULL) == 0, "%s", g_err);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t want = b[i] <= 0 ? 0 : b[i] > 2 * (big1 - 1) ? big1 : (b[i] + 1) / 2;
        ok &= r[i] == want;
    }
    CHECK(ok, "threaded searchsorted");
    free(a), free(b), free(r);
}

/* ==== 3. take and take_along_axis ========================================================= */

static const int ANYDT[] = {MAIA_BOOL, MAIA_INT8, MAIA_INT16, MAIA_INT32, MAIA_INT64,
                            MAIA_UINT8, MAIA_UINT16, MAIA_UINT32, MAIA_UINT64,
                            MAIA_FLOAT8_E4M3FN, MAIA_FLOAT8_E5M2, MAIA_BFLOAT16,
                            MAIA_FLOAT16, MAIA_FLOAT32};
#define NANY (int)(sizeof ANYDT / sizeof ANYDT[0])
static const int INTDT[] = {MAIA_INT8, MAIA_INT16, MAIA_INT32, MAIA_INT64,
                            MAIA_UINT8, MAIA_UINT16, MAIA_UINT32, MAIA_UINT64};

/* Whether y (C-contiguous, shape oshape) holds x's elements picked along `axis` at
 * want_idx, where x is a (., b, c) tensor read through a negative stride on its last axis. */
static int gathered(int dt, const char *x, const char *y, const int64_t *oshape, int axis,
                    const int64_t *want_idx, int64_t b, int64_t c) {
    int ok = 1;
    for (int64_t i0 = 0; i0 < oshape[0]; i0++)
        for (int64_t i1 = 0; i1 < oshape[1]; i1++)
            for (int64_t i2 = 0; i2 < oshape[2]; i2++) {
                int64_t s[3] = {i0, i1, i2};
                s[axis] = want_idx[s[axis]];
                int64_t xoff = s[0] * b * c + s[1] * c + (c - 1 - s[2]);
                int64_t yoff = (i0 * oshape[1] + i1) * oshape[2] + i2;
                ok &= get_bits(dt, y, yoff) == get_bits(dt, x, xoff);
            }
    return ok;
}

static void test_take(void) {
    enum { A = 3, B = 4, C = 5 };
    for (int t = 0; t < NANY; t++) {
        int dt = ANYDT[t], it = INTDT[t % 8];
        size_t es = SIZES[dt];
        CHECK(maia_kernel_supports("take", dt) && maia_kernel_supports("take_along_axis", dt) &&
                  maia_kernel_supports("flatnonzero", dt), "%s declared", NAMES[dt]);
        char *x = malloc(A * B * C * es);
        for (int i = 0; i < A * B * C; i++) put_bits(dt, x, i, rnd());
        int64_t shape[3] = {A, B, C};
        for (int axis = 0; axis < 3; axis++) {
            int64_t n = shape[axis], m = 7;
            int64_t want_idx[7];
            char ib[7 * 8];
            for (int j = 0; j < m; j++) {
                int64_t v = (int64_t)(rnd() % (uint64_t)n);
                if (!is_unsigned(it) && (j & 1)) v -= n; /* negative: from the end */
                want_idx[j] = v < 0 ? v + n : v;
                put_bits(it, ib, j, (uint64_t)v);
            }
            int64_t oshape[3] = {A, B, C};
            oshape[axis] = m;
            char *y = malloc((size_t)(m * A * B * C / n) * es);
            /* x through a negative stride on its last axis */
            int64_t xst[3] = {B * C, C, -1};
            maia_view in[2] = {mkview(x + (C - 1) * es, dt, 3, shape, xst),
                               mkview(ib, it, 1, &m, NULL)};
            maia_view o = mkview(y, dt, 3, oshape, NULL);
            maia_attrs at;
            memset(&at, 0, sizeof at);
            at.axis = axis;
            CHECK(run_call("take", 2, in, &o, &at, 1, NULL) == 0, "%s", g_err);
            CHECK(gathered(dt, x, y, oshape, axis, want_idx, B, C), "take %s indices %s axis %d",
                  NAMES[dt], NAMES[it], axis);
            /* the same through take_along_axis: indices of x's rank, broadcast (zero strides) */
            int64_t ist[3] = {0, 0, 0};
            ist[axis] = 1;
            maia_view in2[2] = {in[0], mkview(ib, it, 3, oshape, ist)};
            CHECK(run_call("take_along_axis", 2, in2, &o, &at, 1, NULL) == 0, "%s", g_err);
            CHECK(gathered(dt, x, y, oshape, axis, want_idx, B, C),
                  "take_along_axis (broadcast indices) %s axis %d", NAMES[dt], axis);
            free(y);
        }
        free(x);
    }
}

static void test_take_along_axis(void) {
    /* per-row indices, x broadcast along axis 0 (zero stride) */
    float x[6] = {10, 11, 12, 13, 14, 15}, y[4 * 3];
    int16_t idx[4 * 3] = {0, -1, 2, 5, 4, -6, 1, 1, 1, -2, 3, 0};
    int64_t xs[2] = {4, 6}, xst[2] = {0, 1}, os[2] = {4, 3};
    maia_view in[2] = {mkview(x, MAIA_FLOAT32, 2, xs, xst), mkview(idx, MAIA_INT16, 2, os, NULL)};
    maia_view o = mkview(y, MAIA_FLOAT32, 2, os, NULL);
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.axis = 1;
    CHECK(run_call("take_along_axis", 2, in, &o, &at, 1, NULL) == 0, "%s", g_err);
    int ok = 1;
    for (int i = 0; i < 12; i++) ok &= y[i] == x[idx[i] < 0 ? idx[i] + 6 : idx[i]];
    CHECK(ok, "take_along_axis rows");
    /* along axis 0 of a (3, 2) int64 */
    int64_t xa[6] = {1, 2, 3, 4, 5, 6}, ya[4];
    uint8_t ia[4] = {2, 0, 1, 1};
    int64_t xsh[2] = {3, 2}, ish[2] = {2, 2};
    maia_view in2[2] = {mkview(xa, MAIA_INT64, 2, xsh, NULL), mkview(ia, MAIA_UINT8, 2, ish, NULL)};
    maia_view o2 = mkview(ya, MAIA_INT64, 2, ish, NULL);
    at.axis = 0;
    CHECK(run_call("take_along_axis", 2, in2, &o2, &at, 1, NULL) == 0 && ya[0] == 5 &&
              ya[1] == 2 && ya[2] == 3 && ya[3] == 4, "take_along_axis axis 0");
    /* a large one on threads */
    int64_t R = 600, Cn = 500, M = 300;
    int32_t *bx = malloc((size_t)(R * Cn) * 4), *by = malloc((size_t)(R * M) * 4);
    int64_t *bi = malloc((size_t)(R * M) * 8);
    for (int64_t i = 0; i < R * Cn; i++) bx[i] = (int32_t)i;
    for (int64_t i = 0; i < R * M; i++) bi[i] = (int64_t)(rnd() % (uint64_t)(2 * Cn)) - Cn;
    int64_t bxs[2] = {R, Cn}, bos[2] = {R, M};
    maia_view bin[2] = {mkview(bx, MAIA_INT32, 2, bxs, NULL), mkview(bi, MAIA_INT64, 2, bos, NULL)};
    maia_view bo = mkview(by, MAIA_INT32, 2, bos, NULL);
    at.axis = 1;
    CHECK(run_call("take_along_axis", 2, bin, &bo, &at, 8, NULL) == 0, "%s", g_err);
    ok = 1;
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < M; j++) {
            int64_t v = bi[r * M + j];
            ok &= by[r * M + j] == (int32_t)(r * Cn + (v < 0 ? v + Cn : v));
        }
    CHECK(ok, "threaded take_along_axis");
    free(bx), free(by), free(bi);
}

static void test_take_bad_indices(void) {
    float x[4] = {1, 2, 3, 4}, y[3] = {-9, -9, -9};
    int64_t n = 4, m = 3;
    maia_attrs at;
    memset(&at, 0, sizeof at);
    int32_t i1[3] = {0, 4, -9};
    maia_view in[2] = {mkview(x, MAIA_FLOAT32, 1, &n, NULL), mkview(i1, MAIA_INT32, 1, &m, NULL)};
    maia_view o = mkview(y, MAIA_FLOAT32, 1, &m, NULL);
    CHECK(run_call("take", 2, in, &o, &at, 1, NULL) == MAIA_KERNEL_INVALID &&
              strstr(g_err, "index 4 ") && strstr(g_err, "size 4"), "take 4: %s", g_err);
    int32_t i2[3] = {-5, 0, 0};
    in[1].data = i2;
    CHECK(run_call("take", 2, in, &o, &at, 1, NULL) == MAIA_KERNEL_INVALID &&
              strstr(g_err, "index -5 "), "take -5: %s", g_err);
    int32_t i3[3] = {-4, 3, 0};
    in[1].data = i3;
    CHECK(run_call("take", 2, in, &o, &at, 1, NULL) == 0 && y[0] == 1 && y[1] == 4 && y[2] == 1,
          "edges -n and n-1");
    uint64_t i4[3] = {0, UINT64_MAX, 1};
    in[1] = mkview(i4, MAIA_UINT64, 1, &m, NULL);
    CHECK(run_call("take", 2, in, &o, &at, 1, NULL) == MAIA_KERNEL_INVALID &&
              strstr(g_err, "18446744073709551615"), "uint64 max is out of range: %s", g_err);
    /* x empty along the axis: any index fails, nothing is read */
    int64_t zero = 0;
    int32_t i5[3] = {0, 0, 0};
    maia_view ein[2] = {mkview(NULL, MAIA_FLOAT32, 1, &zero, NULL), mkview(i5, MAIA_INT32, 1, &m, NULL)};
    CHECK(run_call("take", 2, ein, &o, &at, 1, NULL) == MAIA_KERNEL_INVALID &&
              strstr(g_err, "size 0"), "empty x: %s", g_err);
    /* empty indices: an empty output, fine */
    maia_view zin[2] = {in[0], mkview(NULL, MAIA_INT32, 1, &zero, NULL)};
    maia_view zo = mkview(NULL, MAIA_FLOAT32, 1, &zero, NULL);
    CHECK(run_call("take", 2, zin, &zo, &at, 1, NULL) == 0, "empty indices: %s", g_err);
    /* take_along_axis: the first bad index in C order, on threads too */
    int64_t R = 400, C = 400;
    float *bx = calloc((size_t)(R * C), 4), *by = malloc((size_t)(R * C) * 4);
    int64_t *bi = calloc((size_t)(R * C), 8);
    bi[R * C - 5] = C;
    bi[R * C - 2] = -C - 1;
    int64_t sh[2] = {R, C};
    maia_view tin[2] = {mkview(bx, MAIA_FLOAT32, 2, sh, NULL), mkview(bi, MAIA_INT64, 2, sh, NULL)};
    maia_view to = mkview(by, MAIA_FLOAT32, 2, sh, NULL);
    at.axis = 1;
    CHECK(run_call("take_along_axis", 2, tin, &to, &at, 8, NULL) == MAIA_KERNEL_INVALID &&
              strstr(g_err, "take_along_axis: index 400 ") && strstr(g_err, "axis 1 of size 400"),
          "take_along_axis bad: %s", g_err);
    free(bx), free(by), free(bi);
    /* float indices and a mismatched output are rejected */
    float fi[3] = {0, 1, 2};
    maia_view fin[2] = {mkview(x, MAIA_FLOAT32, 1, &n, NULL), mkview(fi, MAIA_FLOAT32, 1, &m, NULL)};
    at.axis = 0;
    CHECK(run_call("take", 2, fin, &o, &at, 1, NULL) == MAIA_KERNEL_INVALID, "float indices");
    in[1] = mkview(i3, MAIA_INT32, 1, &m, NULL);
    maia_view o4 = mkview(y, MAIA_FLOAT32, 1, &n, NULL);
    CHECK(run_call("take", 2, in, &o4, &at, 1, NULL) == MAIA_KERNEL_INVALID, "output shape");
    at.axis = 1;
    CHECK(run_call("take", 2, in, &o, &at, 1, NULL) == MAIA_KERNEL_INVALID, "axis range");
}

/* ==== 4. flatnonzero ====================================================================== */

static void test_flatnonzero(void) {
    /* NaN is nonzero, -0.0 zero; x read through a transposed, negative-stride view */
    float x[6] = {0.0f, NAN, -0.0f, 2.0f, 0.0f, -1.0f};
    /* view: shape (3, 2), element (i, j) = x[5 - (i + 3 * j)] */
    int64_t shape[2] = {3, 2}, st[2] = {-1, -3};
    int64_t out[6], cnt = 3;
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.count = 3;
    maia_view in = mkview(x + 5, MAIA_FLOAT32, 2, shape, st), o = mkview(out, MAIA_INT64, 1, &cnt, NULL);
    CHECK(run_call("flatnonzero", 1, &in, &o, &at, 1, NULL) == 0, "%s", g_err);
    /* C order of the view: (0,0)=x5=-1 (0,1)=x2=-0 (1,0)=x4=0 (1,1)=x1=NaN (2,0)=x3=2 (2,1)=x0=0 */
    CHECK(out[0] == 0 && out[1] == 3 && out[2] == 4, "flatnonzero: %lld %lld %lld",
          (long long)out[0], (long long)out[1], (long long)out[2]);
    at.count = 2;
    cnt = 2;
    o = mkview(out, MAIA_INT64, 1, &cnt, NULL);
    CHECK(run_call("flatnonzero", 1, &in, &o, &at, 1, NULL) == MAIA_KERNEL_INVALID &&
              strstr(g_err, "count is 2") && strstr(g_err, "has 3"), "count mismatch: %s", g_err);
    /* every dtype: the narrow floats' -0 and NaN codes too */
    for (int t = 0; t < NANY; t++) {
        int dt = ANYDT[t];
        int64_t n = 50;
        char *b = malloc((size_t)n * SIZES[dt]);
        int64_t want[50], got[50], k = 0;
        for (int64_t i = 0; i < n; i++) {
            uint64_t v = rnd() % 3 == 0 ? rand_elem(dt) : 0;
            if (dt == MAIA_BOOL) v &= 1;
            if (is_float(dt) && i % 7 == 3) v = from_f32(dt, -0.0f);
            put_bits(dt, b, i, v);
            int nz = is_float(dt) ? (to_f32(dt, v) != 0.0f || isnan(to_f32(dt, v))) : v != 0;
            if (nz) want[k++] = i;
        }
        at.count = k;
        maia_view bi = mkview(b, dt, 1, &n, NULL), bo = mkview(got, MAIA_INT64, 1, &k, NULL);
        CHECK(run_call("flatnonzero", 1, &bi, &bo, &at, 1, NULL) == 0 &&
                  memcmp(got, want, (size_t)k * 8) == 0, "flatnonzero %s: %s", NAMES[dt], g_err);
        free(b);
    }
    /* empty input, count 0: fine; count 1: fails */
    int64_t zero = 0, one = 1;
    maia_view ein = mkview(NULL, MAIA_FLOAT32, 1, &zero, NULL);
    maia_view eo = mkview(NULL, MAIA_INT64, 1, &zero, NULL);
    at.count = 0;
    CHECK(run_call("flatnonzero", 1, &ein, &eo, &at, 1, NULL) == 0, "empty: %s", g_err);
    at.count = 1;
    eo = mkview(out, MAIA_INT64, 1, &one, NULL);
    CHECK(run_call("flatnonzero", 1, &ein, &eo, &at, 1, NULL) == MAIA_KERNEL_INVALID, "empty, count 1");
    /* large, threads, with a broadcast (zero-stride) dimension */
    int64_t R = 1000, C = 700;
    uint16_t *h = malloc((size_t)C * 2);
    int64_t ones = 0;
    for (int64_t j = 0; j < C; j++) {
        h[j] = rnd() % 4 == 0 ? maia_f32_to_bf16(1.5f) : 0;
        ones += h[j] != 0;
    }
    int64_t bsh[2] = {R, C}, bst[2] = {0, 1}, total = R * ones;
    int64_t *bo = malloc((size_t)total * 8);
    at.count = total;
    maia_view bi = mkview(h, MAIA_BFLOAT16, 2, bsh, bst), bov = mkview(bo, MAIA_INT64, 1, &total, NULL);
    CHECK(run_call("flatnonzero", 1, &bi, &bov, &at, 8, NULL) == 0, "%s", g_err);
    int ok = 1;
    int64_t k = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < C; j++)
            if (h[j]) ok &= bo[k++] == r * C + j;
    CHECK(ok, "threaded flatnonzero");
    free(h), free(bo);
}

/* ==== 5. cumulative_sum and cumulative_prod =============================================== */

static void test_cumulative(void) {
    /* float32: sequential float32 accumulation, bit for bit */
    int64_t n = 1000;
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)(n + 1) * 4);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)((double)(rnd() >> 11) / 9007199254740992.0) * 3.0f - 1.0f;
    maia_attrs at;
    memset(&at, 0, sizeof at);
    int64_t n1 = n + 1;
    maia_view in = mkview(x, MAIA_FLOAT32, 1, &n, NULL), o = mkview(y, MAIA_FLOAT32, 1, &n, NULL);
    CHECK(run_call("cumulative_sum", 1, &in, &o, &at, 1, NULL) == 0, "%s", g_err);
    volatile float acc = 0.0f;
    int ok = 1;
    for (int64_t i = 0; i < n; i++) {
        acc = acc + x[i];
        ok &= f2u(y[i]) == f2u(acc);
    }
    CHECK(ok, "float32 cumsum is sequential float32");
    at.include_initial = 1;
    o = mkview(y, MAIA_FLOAT32, 1, &n1, NULL);
    CHECK(run_call("cumulative_prod", 1, &in, &o, &at, 1, NULL) == 0, "%s", g_err);
    acc = 1.0f;
    ok = y[0] == 1.0f;
    for (int64_t i = 0; i < n; i++) {
        acc = acc * x[i];
        ok &= f2u(y[i + 1]) == f2u(acc);
    }
    CHECK(ok, "float32 cumprod with the initial 1");
    free(x), free(y);

    /* every numeric dtype, 2-D along either axis, negative-stride input, strided output */
    for (int t = 0; t < NREAL; t++) {
        int dt = REAL[t];
        size_t es = SIZES[dt];
        CHECK(maia_kernel_supports("cumulative_sum", dt) && maia_kernel_supports("cumulative_prod", dt),
              "%s declared", NAMES[dt]);
        enum { R = 4, C = 9 };
        char *bx = malloc(R * C * es), *by = malloc((R + 1) * (C + 1) * es * 2);
        for (int i = 0; i < R * C; i++) {
            uint64_t v = rand_elem(dt);
            if (is_float(dt) && isnan(to_f32(dt, v))) v = from_f32(dt, 1.25f);
            put_bits(dt, bx, i, v);
        }
        int64_t shape[2] = {R, C}, xs[2] = {C, -1}; /* columns reversed */
        char *x0 = bx + (C - 1) * es;
        for (int prod = 0; prod < 2; prod++)
            for (int axis = 0; axis < 2; axis++)
                for (int init = 0; init < 2; init++) {
                    memset(&at, 0, sizeof at);
                    at.axis = axis;
                    at.include_initial = init;
                    at.dtype = dt;
                    int64_t osh[2] = {R, C};
                    osh[axis] += init;
                    int64_t ost[2] = {2, 2 * osh[0]}; /* column-major, every other slot */
                    maia_view vin = mkview(x0, dt, 2, shape, xs), vout = mkview(by, dt, 2, osh, ost);
                    const char *k = prod ? "cumulative_prod" : "cumulative_sum";
                    CHECK(run_call(k, 1, &vin, &vout, &at, 1, NULL) == 0, "%s", g_err);
                    int good = 1;
                    for (int r = 0; r < (axis ? R : C); r++) {
                        float fa = prod ? 1.0f : 0.0f;
                        uint64_t ia = prod ? 1 : 0;
                        int len = axis ? C : R;
                        for (int j = -init; j < len; j++) {
                            uint64_t want;
                            if (j >= 0) {
                                int64_t xi = axis ? (int64_t)r * C + (C - 1 - j)
                                                  : (int64_t)j * C + (C - 1 - r);
                                uint64_t b = get_bits(dt, bx, xi);
                                if (is_float(dt)) {
                                    float v = to_f32(dt, b);
                                    fa = prod ? fa * v : fa + v;
                                } else {
                                    uint64_t v = (uint64_t)to_i64(dt, b);
                                    ia = prod ? ia * v : ia + v;
                                }
                            }
                            want = is_float(dt) ? from_f32(dt, fa) : ia;
                            if (!is_float(dt) && SIZES[dt] < 8) want &= (1ull << (8 * SIZES[dt])) - 1;
                            int64_t oi = axis ? r * ost[0] + (j + init) * ost[1]
                                              : (j + init) * ost[0] + r * ost[1];
                            uint64_t got = get_bits(dt, by, oi);
                            if (is_float(dt) && isnan(to_f32(dt, want)))
                                good &= isnan(to_f32(dt, got)) != 0;
                            else
                                good &= got == want;
                        }
                    }
                    CHECK(good, "%s %s axis %d initial %d", k, NAMES[dt], axis, init);
                }
        free(bx), free(by);
    }

    /* integers wrap: int8 sums past 127, uint64 products past 2^64 */
    int8_t i8[4] = {100, 100, -128, 1}, o8[4];
    int64_t four = 4;
    memset(&at, 0, sizeof at);
    maia_view i8v = mkview(i8, MAIA_INT8, 1, &four, NULL), o8v = mkview(o8, MAIA_INT8, 1, &four, NULL);
    CHECK(run_call("cumulative_sum", 1, &i8v, &o8v, &at, 1, NULL) == 0 && o8[0] == 100 &&
              o8[1] == -56 && o8[2] == 72 && o8[3] == 73, "int8 wraps");
    uint64_t u[3] = {UINT64_MAX, 3, (1ull << 62) + 5}, uo[3];
    int64_t three = 3;
    maia_view uv = mkview(u, MAIA_UINT64, 1, &three, NULL);
    maia_view uov = mkview(uo, MAIA_UINT64, 1, &three, NULL);
    CHECK(run_call("cumulative_prod", 1, &uv, &uov, &at, 1, NULL) == 0 && uo[0] == UINT64_MAX &&
              uo[1] == UINT64_MAX - 2 && uo[2] == (1ull << 62) - 15, "uint64 wraps");
    /* bfloat16 accumulates in float32 and rounds each output once */
    uint16_t bf[3] = {maia_f32_to_bf16(256.0f), maia_f32_to_bf16(1.0f), maia_f32_to_bf16(1.0f)}, bo[3];
    maia_view bv = mkview(bf, MAIA_BFLOAT16, 1, &three, NULL);
    maia_view bov = mkview(bo, MAIA_BFLOAT16, 1, &three, NULL);
    CHECK(run_call("cumulative_sum", 1, &bv, &bov, &at, 1, NULL) == 0 &&
              maia_bf16_to_f32(bo[1]) == 256.0f && maia_bf16_to_f32(bo[2]) == 258.0f,
          "bfloat16 accumulates in float32: %g %g", (double)maia_bf16_to_f32(bo[1]),
          (double)maia_bf16_to_f32(bo[2]));
    /* an empty axis with include_initial: just the identity */
    int64_t sh0[2] = {3, 0}, sh1[2] = {3, 1};
    float fo[3] = {5, 5, 5};
    at.axis = 1;
    at.include_initial = 1;
    maia_view ev = mkview(NULL, MAIA_FLOAT32, 2, sh0, NULL);
    maia_view eov = mkview(fo, MAIA_FLOAT32, 2, sh1, NULL);
    CHECK(run_call("cumulative_prod", 1, &ev, &eov, &at, 1, NULL) == 0 && fo[0] == 1 && fo[1] == 1 &&
              fo[2] == 1, "empty axis, include_initial");
    /* shape checks, bool rejected */
    at.include_initial = 0;
    CHECK(run_call("cumulative_prod", 1, &ev, &eov, &at, 1, NULL) == MAIA_KERNEL_INVALID,
          "shape without include_initial");
    uint8_t bb[4] = {1, 1, 0, 1}, bbo[4];
    maia_view bbv = mkview(bb, MAIA_BOOL, 1, &four, NULL), bbov = mkview(bbo, MAIA_BOOL, 1, &four, NULL);
    at.axis = 0;
    CHECK(run_call("cumulative_sum", 1, &bbv, &bbov, &at, 1, NULL) == MAIA_KERNEL_UNSUPPORTED &&
              !maia_kernel_supports("cumulative_sum", MAIA_BOOL), "bool cumulative_sum");
    /* threads: many rows */
    int64_t R = 3000, C = 100;
    int32_t *tx = malloc((size_t)(R * C) * 4), *ty = malloc((size_t)(R * C) * 4);
    for (int64_t i = 0; i < R * C; i++) tx[i] = (int32_t)(rnd() % 1000);
    int64_t tsh[2] = {R, C};
    maia_view tv = mkview(tx, MAIA_INT32, 2, tsh, NULL), tov = mkview(ty, MAIA_INT32, 2, tsh, NULL);
    at.axis = 1;
    CHECK(run_call("cumulative_sum", 1, &tv, &tov, &at, 8, NULL) == 0, "%s", g_err);
    ok = 1;
    for (int64_t r = 0; r < R; r++) {
        int64_t s = 0;
        for (int64_t j = 0; j < C; j++) {
            s += tx[r * C + j];
            ok &= ty[r * C + j] == (int32_t)s;
        }
    }
    CHECK(ok, "threaded cumulative_sum");
    free(tx), free(ty);
}

/* ==== 6. robustness ======================================================================= */

static void test_invalid(void) {
    uint8_t b[4] = {1, 0, 1, 0}, bo[4];
    int64_t idx[4], four = 4;
    maia_attrs at;
    memset(&at, 0, sizeof at);
    maia_view bv = mkview(b, MAIA_BOOL, 1, &four, NULL), bov = mkview(bo, MAIA_BOOL, 1, &four, NULL);
    maia_view iv = mkview(idx, MAIA_INT64, 1, &four, NULL);
    CHECK(run_call("sort", 1, &bv, &bov, &at, 1, NULL) == MAIA_KERNEL_UNSUPPORTED &&
              !maia_kernel_supports("sort", MAIA_BOOL) && !maia_kernel_supports("argsort", MAIA_BOOL) &&
              !maia_kernel_supports("searchsorted", MAIA_BOOL),
          "bool sort: %s", g_err);
    float f[4] = {3, 1, 2, 0};
    maia_view fv = mkview(f, MAIA_FLOAT32, 1, &four, NULL);
    CHECK(run_call("argsort", 1, &fv, &fv, &at, 1, NULL) == MAIA_KERNEL_INVALID, "argsort out dtype");
    CHECK(run_call("sort", 1, &fv, &iv, &at, 1, NULL) == MAIA_KERNEL_INVALID, "sort out dtype");
    at.axis = 1;
    CHECK(run_call("sort", 1, &fv, &fv, &at, 1, NULL) == MAIA_KERNEL_INVALID && strstr(g_err, "axis"),
          "sort axis: %s", g_err);
    at.axis = -1;
    CHECK(run_call("argsort", 1, &fv, &iv, &at, 1, NULL) == MAIA_KERNEL_INVALID, "negative axis");
    at.axis = 0;
    maia_view two[2] = {fv, iv};
    CHECK(run_call("searchsorted", 2, two, &iv, &at, 1, NULL) == MAIA_KERNEL_INVALID,
          "searchsorted mixed dtypes");
    int64_t sh2[2] = {2, 2};
    maia_view f2 = mkview(f, MAIA_FLOAT32, 2, sh2, NULL);
    maia_view two2[2] = {f2, fv};
    CHECK(run_call("searchsorted", 2, two2, &iv, &at, 1, NULL) == MAIA_KERNEL_INVALID, "2-D x1");
    CHECK(run_call("flatnonzero", 1, &fv, &fv, &at, 1, NULL) == MAIA_KERNEL_INVALID,
          "flatnonzero dtype");
    CHECK(run_call("cumulative_sum", 1, &fv, &iv, &at, 1, NULL) == MAIA_KERNEL_INVALID,
          "cumulative dtype mismatch");
    /* a (broadcast) row too long for host scratch fails cleanly instead of crashing; ASan
     * reports such requests as errors of its own, so only without it */
#ifndef __SANITIZE_ADDRESS__
    int64_t huge = (int64_t)1 << 55, zs = 0;
    maia_view hv = mkview(f, MAIA_FLOAT32, 1, &huge, &zs), hov = mkview(f, MAIA_FLOAT32, 1, &huge, &zs);
    CHECK(run_call("sort", 1, &hv, &hov, &at, 1, NULL) == MAIA_KERNEL_INVALID &&
              strstr(g_err, "cannot allocate"), "huge sort: %s", g_err);
    maia_view hs[2] = {hv, fv};
    CHECK(run_call("searchsorted", 2, hs, &iv, &at, 1, NULL) == MAIA_KERNEL_INVALID &&
              strstr(g_err, "cannot allocate"), "huge searchsorted: %s", g_err);
#endif
    int found = 0;
    static const char *const mine[] = {"sort", "argsort", "searchsorted", "take",
                                       "take_along_axis", "flatnonzero", "cumulative_sum",
                                       "cumulative_prod"};
    for (const char *const *p = maia_kernel_names(); *p; p++)
        for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++) found += strcmp(*p, mine[i]) == 0;
    CHECK(found == 8, "the eight kernels are listed (%d)", found);
}

int main(void) {
    test_sort_1d();
    test_sort_specials();
    test_sort_strided();
    test_sort_threads();
    test_searchsorted();
    test_take();
    test_take_along_axis();
    test_take_bad_indices();
    test_flatnonzero();
    test_cumulative();
    test_invalid();
    maia_kernel_shutdown();
    printf("test_sorting: %ld checks, %ld failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
