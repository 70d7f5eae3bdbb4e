/* Tests of the Maia emulator's kernels (src/kernels/): element conversions, elementwise,
 * reductions, matmul, nn. Standalone: build with the kernel sources (or the library) and run;
 * exits non-zero on any failure. Meant to run under -fsanitize=address,undefined. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/maia_kernels.h"
#include "kernel_call.h"
#include "kernel_check.h"

static int close_to(double got, double want, double rtol, double atol) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

static float rndf(void) { return (float)((double)(rnd() >> 11) / 9007199254740992.0 * 2 - 1); }

static size_t mk_sz(int dt) {
    static const size_t sizes[MAIA_DTYPE_COUNT] = {1, 1, 2, 4, 8, 1, 2, 4, 8, 1, 1, 2, 2, 4};
    return sizes[dt];
}

/* ---- views and calls -------------------------------------------------------------------- */


/* 1-D contiguous helpers */
static int run1(const char *k, int dt_in, void *x, int dt_out, void *y, int64_t n) {
    maia_view in = mkview(x, dt_in, 1, &n, NULL), out = mkview(y, dt_out, 1, &n, NULL);
    return run_call(k, 1, &in, &out, NULL, 1, NULL);
}
static int run2(const char *k, int dt_in, void *a, void *b, int dt_out, void *y, int64_t n) {
    maia_view in[2] = {mkview(a, dt_in, 1, &n, NULL), mkview(b, dt_in, 1, &n, NULL)};
    maia_view out = mkview(y, dt_out, 1, &n, NULL);
    return run_call(k, 2, in, &out, NULL, 1, NULL);
}

/* ==== 1. element conversions ============================================================== */

typedef struct fmt8 {
    const char *name;
    float (*dec)(uint8_t);
    uint8_t (*enc)(float);
} fmt8;

static void test_conversions_roundtrip(void) {
    fmt8 f8[2] = {{"e4m3fn", maia_f8e4m3_to_f32, maia_f32_to_f8e4m3},
                  {"e5m2", maia_f8e5m2_to_f32, maia_f32_to_f8e5m2}};
    for (int f = 0; f < 2; f++)
        for (int c = 0; c < 256; c++) {
            float v = f8[f].dec((uint8_t)c);
            uint8_t back = f8[f].enc(v);
            if (isnan(v))
                CHECK(isnan(f8[f].dec(back)), "%s %02x: NaN did not stay NaN", f8[f].name, c);
            else
                CHECK(back == c, "%s %02x -> %g -> %02x", f8[f].name, c, (double)v, back);
        }
    for (int c = 0; c < 65536; c++) {
        float v = maia_f16_to_f32((uint16_t)c);
        uint16_t back = maia_f32_to_f16(v);
        CHECK(back == c, "f16 %04x -> %g -> %04x", c, (double)v, back); /* NaNs too: payload */
        v = maia_bf16_to_f32((uint16_t)c);
        back = maia_f32_to_bf16(v);
        if (isnan(v))
            CHECK(isnan(maia_bf16_to_f32(back)) && (back & 0x8000) == (c & 0x8000),
                  "bf16 NaN %04x -> %04x", c, back);
        else
            CHECK(back == c, "bf16 %04x -> %04x", c, back);
    }
}

static void test_conversions_values(void) {
    /* specials and limits */
    CHECK(maia_f8e4m3_to_f32(0x7e) == 448.0f, "e4m3 max");
    CHECK(isnan(maia_f8e4m3_to_f32(0x7f)) && isnan(maia_f8e4m3_to_f32(0xff)), "e4m3 NaN");
    CHECK(maia_f8e4m3_to_f32(0x01) == ldexpf(1, -9), "e4m3 min subnormal");
    CHECK(maia_f32_to_f8e4m3(INFINITY) == 0x7f && maia_f32_to_f8e4m3(-INFINITY) == 0xff,
          "e4m3 inf -> NaN");
    CHECK(maia_f32_to_f8e4m3(NAN) == 0x7f, "e4m3 NaN");
    CHECK(maia_f32_to_f8e4m3(460.0f) == 0x7e, "460 -> 448");
    CHECK(maia_f32_to_f8e4m3(464.0f) == 0x7e, "464 tie -> 448 (even)");
    CHECK(maia_f32_to_f8e4m3(464.5f) == 0x7f, "above the tie overflows to NaN");
    CHECK(maia_f32_to_f8e4m3(1e6f) == 0x7f && maia_f32_to_f8e4m3(-1e6f) == 0xff, "overflow");
    CHECK(maia_f32_to_f8e4m3(-0.0f) == 0x80, "e4m3 -0");
    CHECK(maia_f8e5m2_to_f32(0x7b) == 57344.0f, "e5m2 max");
    CHECK(maia_f8e5m2_to_f32(0x7c) == INFINITY && maia_f8e5m2_to_f32(0xfc) == -INFINITY,
          "e5m2 inf");
    CHECK(maia_f32_to_f8e5m2(61439.0f) == 0x7b, "below the tie");
    CHECK(maia_f32_to_f8e5m2(61440.0f) == 0x7c, "e5m2 tie 61440 -> inf (even)");
    CHECK(maia_f32_to_f8e5m2(NAN) == 0x7e && maia_f32_to_f8e5m2(-NAN) == 0xfe, "e5m2 NaN");
    CHECK(maia_f32_to_f16(65504.0f) == 0x7bff, "f16 max");
    CHECK(maia_f32_to_f16(65519.99f) == 0x7bff && maia_f32_to_f16(65520.0f) == 0x7c00,
          "f16 overflow at the tie");
    CHECK(maia_f32_to_f16(-INFINITY) == 0xfc00, "f16 -inf");
    CHECK(maia_f32_to_f16(ldexpf(1, -24)) == 0x0001, "f16 min subnormal");
    CHECK(maia_f32_to_f16(ldexpf(1, -25)) == 0x0000, "f16 tie to 0 (even)");
    CHECK(maia_f32_to_f16(ldexpf(3, -25)) == 0x0002, "f16 1.5 ulp tie -> 2 (even)");
    CHECK(maia_f32_to_f16(ldexpf(1, -25) * 1.0000001f) == 0x0001, "above the tie");
    /* ties to even in the normal range */
    CHECK(maia_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00, "f16 1+half ulp -> 1");
    CHECK(maia_f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02, "f16 1+1.5ulp -> 1+2ulp");
    CHECK(maia_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80, "bf16 tie -> even 1.0");
    CHECK(maia_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)) == 0x3f82, "bf16 tie -> even up");
    CHECK(maia_f32_to_bf16(u2f(0x3f808001)) == 0x3f81, "bf16 above the tie");
    CHECK(maia_f32_to_bf16(u2f(0x7f7fffff)) == 0x7f80, "bf16 overflow to inf");
    CHECK(maia_f32_to_f8e4m3(1.0f + ldexpf(1, -4)) == 0x38, "e4m3 tie -> 1.0");
    CHECK(maia_f32_to_f8e4m3(1.0f + 3 * ldexpf(1, -4)) == 0x3a, "e4m3 tie -> even up");
    CHECK(maia_f32_to_f8e5m2(1.0f + ldexpf(1, -3)) == 0x3c, "e5m2 tie -> 1.0");
    CHECK(maia_f32_to_f8e5m2(1.0f + 3 * ldexpf(1, -3)) == 0x3e, "e5m2 tie -> even up");
    CHECK(maia_f32_to_f8e4m3(ldexpf(1, -10)) == 0x00, "e4m3 half min subnormal -> 0");
    CHECK(maia_f32_to_f8e4m3(ldexpf(3, -10)) == 0x02, "e4m3 1.5 subnormal -> 2");
}

/* Every encoding is the nearest representable value, ties to the even code: checked against
 * the decoded neighbours in double precision, for random float32 values near each range. */
static void nearest_check(const char *name, int bits, float (*dec)(uint32_t),
                          uint32_t (*enc)(float), float maxfinite, int has_inf, float scale) {
    for (int t = 0; t < 200000; t++) {
        float x = rndf() * scale;
        if (t % 3 == 0) x = ldexpf(rndf(), (int)(rnd() % 40) - 30);
        uint32_t c = enc(x);
        float d = dec(c);
        uint32_t signbit = 1u << (bits - 1);
        (void)signbit;
        if (fabsf(x) > maxfinite) {
            double ulp = (double)maxfinite - (double)dec(enc(maxfinite) - 1);
            if (fabs((double)x) < (double)maxfinite + ulp / 2)
                CHECK(d == copysignf(maxfinite, x), "%s %g -> %g", name, (double)x, (double)d);
            else if (fabs((double)x) > (double)maxfinite + ulp / 2)
                CHECK(has_inf ? isinf(d) : isnan(d), "%s %g overflow -> %g", name, (double)x,
                      (double)d);
            continue;
        }
        CHECK(!isnan(d), "%s %g -> NaN", name, (double)x);
        double err = fabs((double)d - (double)x);
        uint32_t mag = c & ((1u << (bits - 1)) - 1u);
        for (int dir = -1; dir <= 1; dir += 2) {
            uint32_t nb = (uint32_t)((int64_t)mag + dir);
            if ((int64_t)mag + dir < 0) continue;
            float dn = dec((c & ~((1u << (bits - 1)) - 1u)) | nb);
            if (isnan(dn) || isinf(dn)) continue;
            double en = fabs((double)dn - (double)x);
            CHECK(err < en || (err == en && (mag & 1u) == 0), "%s %a -> %a, neighbour %a closer",
                  name, (double)x, (double)d, (double)dn);
        }
    }
}
static float dec_f16(uint32_t c) { return maia_f16_to_f32((uint16_t)c); }
static uint32_t enc_f16(float f) { return maia_f32_to_f16(f); }
static float dec_bf16(uint32_t c) { return maia_bf16_to_f32((uint16_t)c); }
static uint32_t enc_bf16(float f) { return maia_f32_to_bf16(f); }
static float dec_e4(uint32_t c) { return maia_f8e4m3_to_f32((uint8_t)c); }
static uint32_t enc_e4(float f) { return maia_f32_to_f8e4m3(f); }
static float dec_e5(uint32_t c) { return maia_f8e5m2_to_f32((uint8_t)c); }
static uint32_t enc_e5(float f) { return maia_f32_to_f8e5m2(f); }

static void test_conversions_nearest(void) {
    nearest_check("f16", 16, dec_f16, enc_f16, 65504.0f, 1, 70000.0f);
    nearest_check("bf16", 16, dec_bf16, enc_bf16, u2f(0x7f7f0000), 1, 1e30f);
    nearest_check("e4m3", 8, dec_e4, enc_e4, 448.0f, 0, 500.0f);
    nearest_check("e5m2", 8, dec_e5, enc_e5, 57344.0f, 1, 65000.0f);
}

/* ==== 2. elementwise ====================================================================== */

static void test_add_strided(void) {
    /* broadcast: (2,3) + (1,3) row via zero stride; negative strides reverse */
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 30}, y[6];
    int64_t shape[2] = {2, 3}, bst[2] = {0, 1};
    maia_view in[2] = {mkview(a, MAIA_FLOAT32, 2, shape, NULL),
                       mkview(b, MAIA_FLOAT32, 2, shape, bst)};
    maia_view out = mkview(y, MAIA_FLOAT32, 2, shape, NULL);
    CHECK(run_call("add", 2, in, &out, NULL, 1, NULL) == 0, "%s", g_err);
    float want[6] = {11, 22, 33, 14, 25, 36};
    for (int i = 0; i < 6; i++) CHECK(y[i] == want[i], "broadcast add [%d] %g", i, (double)y[i]);
    /* a reversed along both axes: data pointer at the last element, negative strides */
    int64_t nst[2] = {-3, -1};
    in[0] = mkview(a + 5, MAIA_FLOAT32, 2, shape, nst);
    CHECK(run_call("add", 2, in, &out, NULL, 1, NULL) == 0, "%s", g_err);
    float want2[6] = {16, 25, 34, 13, 22, 31};
    for (int i = 0; i < 6; i++) CHECK(y[i] == want2[i], "negative strides [%d] %g", i, (double)y[i]);
    /* output written through a transposed view */
    int64_t tsh[2] = {3, 2}, tst[2] = {1, 3};
    float z[6];
    maia_view tin[2] = {mkview(a, MAIA_FLOAT32, 2, tsh, tst), mkview(a, MAIA_FLOAT32, 2, tsh, tst)};
    maia_view tout = mkview(z, MAIA_FLOAT32, 2, tsh, tst);
    CHECK(run_call("multiply", 2, tin, &tout, NULL, 1, NULL) == 0, "%s", g_err);
    for (int i = 0; i < 6; i++) CHECK(z[i] == a[i] * a[i], "transposed [%d]", i);
    /* 0-d */
    float s1 = 2.5f, s2 = 4.0f, s3 = 0;
    maia_view z0[2] = {mkview(&s1, MAIA_FLOAT32, 0, NULL, NULL), mkview(&s2, MAIA_FLOAT32, 0, NULL, NULL)};
    maia_view zo = mkview(&s3, MAIA_FLOAT32, 0, NULL, NULL);
    CHECK(run_call("subtract", 2, z0, &zo, NULL, 1, NULL) == 0 && s3 == -1.5f, "0-d: %g", (double)s3);
    /* empty: nothing touched, data may be NULL */
    int64_t eshape[2] = {0, 5};
    maia_view e[2] = {mkview(NULL, MAIA_FLOAT32, 2, eshape, NULL), mkview(NULL, MAIA_FLOAT32, 2, eshape, NULL)};
    maia_view eo = mkview(NULL, MAIA_FLOAT32, 2, eshape, NULL);
    CHECK(run_call("add", 2, e, &eo, NULL, 1, NULL) == 0, "empty: %s", g_err);
    /* many dims with size-1 and broadcast dims mixed, int16 */
    int64_t sh4[4] = {2, 1, 3, 2}, bst4[4] = {0, 0, 1, 0};
    int16_t xa[12], xb[3] = {100, 200, 300}, xy[12];
    for (int i = 0; i < 12; i++) xa[i] = (int16_t)i;
    maia_view i4[2] = {mkview(xa, MAIA_INT16, 4, sh4, NULL), mkview(xb, MAIA_INT16, 4, sh4, bst4)};
    maia_view o4 = mkview(xy, MAIA_INT16, 4, sh4, NULL);
    CHECK(run_call("add", 2, i4, &o4, NULL, 1, NULL) == 0, "%s", g_err);
    for (int i = 0; i < 12; i++) CHECK(xy[i] == i + 100 * ((i / 2) % 3 + 1), "4-d [%d] %d", i, xy[i]);
}

static void test_add_large_threads(void) {
    int64_t n = 1000003;
    float *a = malloc(n * 4), *b = malloc(n * 4), *y = malloc(n * 4);
    uint16_t *h = malloc(n * 2), *hy = malloc(n * 2);
    for (int64_t i = 0; i < n; i++) {
        a[i] = (float)i;
        b[i] = 0.5f;
        h[i] = maia_f32_to_f16((float)(i % 1000));
    }
    for (int t = 1; t <= 5; t += 2) {
        maia_view in[2] = {mkview(a, MAIA_FLOAT32, 1, &n, NULL), mkview(b, MAIA_FLOAT32, 1, &n, NULL)};
        maia_view out = mkview(y, MAIA_FLOAT32, 1, &n, NULL);
        maia_kernel_cost cost;
        CHECK(run_call("add", 2, in, &out, NULL, t, &cost) == 0, "%s", g_err);
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += y[i] != (float)i + 0.5f;
        CHECK(bad == 0, "threads=%d: %lld wrong", t, (long long)bad);
        CHECK(cost.flops == (double)n && cost.bytes_moved == 12.0 * (double)n &&
                  cost.compute_dtype == MAIA_FLOAT32,
              "cost %g %g", cost.flops, cost.bytes_moved);
        maia_view hin[2] = {mkview(h, MAIA_FLOAT16, 1, &n, NULL), mkview(h, MAIA_FLOAT16, 1, &n, NULL)};
        maia_view hout = mkview(hy, MAIA_FLOAT16, 1, &n, NULL);
        CHECK(run_call("add", 2, hin, &hout, NULL, t, NULL) == 0, "%s", g_err);
        bad = 0;
        for (int64_t i = 0; i < n; i++) bad += hy[i] != maia_f32_to_f16((float)(2 * (i % 1000)));
        CHECK(bad == 0, "f16 threads=%d: %lld wrong", t, (long long)bad);
    }
    free(a), free(b), free(y), free(h), free(hy);
}

/* The contiguous fast path: in place (out is an input) and partially overlapping outputs
 * (which must keep the element-by-element order), and integer wrap-around. */
static void test_add_fast_path_aliasing(void) {
    int64_t n = 1037;
    float *buf = malloc((size_t)(n + 8) * 4), *b = malloc((size_t)n * 4), *ref = malloc((size_t)(n + 8) * 4);
    for (int64_t i = 0; i < n + 8; i++) buf[i] = (float)i;
    for (int64_t i = 0; i < n; i++) b[i] = 1.0f;
    /* in place: buf[0..n) += b */
    maia_view in[2] = {mkview(buf, MAIA_FLOAT32, 1, &n, NULL), mkview(b, MAIA_FLOAT32, 1, &n, NULL)};
    maia_view out = mkview(buf, MAIA_FLOAT32, 1, &n, NULL);
    CHECK(run_call("add", 2, in, &out, NULL, 1, NULL) == 0, "%s", g_err);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += buf[i] != (float)i + 1.0f;
    CHECK(bad == 0, "in-place add: %lld wrong", (long long)bad);
    /* out = buf + 1, in = buf: sequential semantics propagate the running sum */
    for (int64_t i = 0; i < n + 8; i++) buf[i] = ref[i] = (float)(i % 7);
    for (int64_t i = 0; i < n; i++) ref[i + 1] = ref[i] + b[i];
    out = mkview(buf + 1, MAIA_FLOAT32, 1, &n, NULL);
    CHECK(run_call("add", 2, in, &out, NULL, 1, NULL) == 0, "%s", g_err);
    bad = 0;
    for (int64_t i = 0; i < n + 8; i++) bad += buf[i] != ref[i];
    CHECK(bad == 0, "overlapping add: %lld wrong", (long long)bad);
    free(buf), free(b), free(ref);

    int32_t x[67], y[67], z[67];
    int64_t m = 67;
    for (int i = 0; i < 67; i++) x[i] = INT32_MAX - i, y[i] = i * 3 + 1;
    maia_view iin[2] = {mkview(x, MAIA_INT32, 1, &m, NULL), mkview(y, MAIA_INT32, 1, &m, NULL)};
    maia_view iout = mkview(z, MAIA_INT32, 1, &m, NULL);
    CHECK(run_call("add", 2, iin, &iout, NULL, 1, NULL) == 0, "%s", g_err);
    bad = 0;
    for (int i = 0; i < 67; i++) bad += z[i] != (int32_t)((uint32_t)x[i] + (uint32_t)y[i]);
    CHECK(bad == 0, "int32 wrapping add: %lld wrong", (long long)bad);
    CHECK(run_call("multiply", 2, iin, &iout, NULL, 1, NULL) == 0, "%s", g_err);
    bad = 0;
    for (int i = 0; i < 67; i++) bad += z[i] != (int32_t)((uint32_t)x[i] * (uint32_t)y[i]);
    CHECK(bad == 0, "int32 wrapping multiply: %lld wrong", (long long)bad);
}

/* Several threads launching multi-threaded kernels at once share the worker pool; shutting
 * the pool down between rounds and recreating it must work (and leave nothing behind). */
typedef struct conc_arg {
    int64_t n;
    int threads;
    int seed;
    long bad;
} conc_arg;

static void *conc_main(void *vp) {
    conc_arg *c = (conc_arg *)vp;
    float *a = malloc((size_t)c->n * 4), *b = malloc((size_t)c->n * 4), *y = malloc((size_t)c->n * 4);
    for (int64_t i = 0; i < c->n; i++) a[i] = (float)(i % 1000), b[i] = (float)c->seed;
    for (int rep = 0; rep < 6; rep++) {
        maia_view in[2] = {mkview(a, MAIA_FLOAT32, 1, &c->n, NULL), mkview(b, MAIA_FLOAT32, 1, &c->n, NULL)};
        maia_view out = mkview(y, MAIA_FLOAT32, 1, &c->n, NULL);
        maia_kernel_call call;
        memset(&call, 0, sizeof call);
        call.kernel = rep % 2 ? "subtract" : "add";
        call.n_inputs = 2;
        call.n_outputs = 1;
        call.inputs[0] = in[0];
        call.inputs[1] = in[1];
        call.outputs[0] = out;
        call.threads = c->threads;
        maia_kernel_cost cost;
        char err[256];
        if (maia_kernel_execute(&call, &cost, err, sizeof err) != 0) {
            c->bad++;
            continue;
        }
        for (int64_t i = 0; i < c->n; i++)
            c->bad += y[i] != (rep % 2 ? (float)(i % 1000) - (float)c->seed
                                       : (float)(i % 1000) + (float)c->seed);
    }
    free(a), free(b), free(y);
    return NULL;
}

static void test_pool_concurrent_callers(void) {
    for (int round = 0; round < 3; round++) {
        pthread_t tid[4];
        conc_arg args[4];
        for (int k = 0; k < 4; k++) {
            args[k] = (conc_arg){(int64_t)400009 + k, 2 + (k + round) % 3, k + 1, 0};
            CHECK(pthread_create(&tid[k], NULL, conc_main, &args[k]) == 0, "pthread_create");
        }
        for (int k = 0; k < 4; k++) {
            pthread_join(tid[k], NULL);
            CHECK(args[k].bad == 0, "round %d caller %d: %ld wrong", round, k, args[k].bad);
        }
        maia_kernel_shutdown();
    }
}

static void test_float_semantics(void) {
    float x[8] = {NAN, 1, -0.0f, 0.0f, -INFINITY, 2.5f, -2.5f, 0.5f};
    float w[8] = {1, NAN, 0.0f, -0.0f, 3, 1.5f, 0.5f, -0.5f};
    float y[8];
    uint8_t b[8];
    CHECK(run2("maximum", MAIA_FLOAT32, x, w, MAIA_FLOAT32, y, 8) == 0, "%s", g_err);
    CHECK(isnan(y[0]) && isnan(y[1]) && y[4] == 3 && y[5] == 2.5f, "maximum NaN propagation");
    CHECK(run2("minimum", MAIA_FLOAT32, x, w, MAIA_FLOAT32, y, 8) == 0, "%s", g_err);
    CHECK(isnan(y[0]) && isnan(y[1]) && y[4] == -INFINITY && y[6] == -2.5f, "minimum");
    CHECK(run1("sign", MAIA_FLOAT32, x, MAIA_FLOAT32, y, 8) == 0, "%s", g_err);
    CHECK(isnan(y[0]) && y[1] == 1 && f2u(y[2]) == 0 && f2u(y[3]) == 0 && y[4] == -1 && y[6] == -1,
          "sign: NaN, 1, +0 for -0.0");
    CHECK(run1("round", MAIA_FLOAT32, x, MAIA_FLOAT32, y, 8) == 0, "%s", g_err);
    CHECK(y[5] == 2 && y[6] == -2 && y[7] == 0 && signbit(y[2]), "round half to even");
    float r[4] = {0.5f, 1.5f, 2.5f, -3.5f}, ry[4];
    uint16_t rb[4], rby[4];
    for (int i = 0; i < 4; i++) rb[i] = maia_f32_to_bf16(r[i]);
    CHECK(run1("round", MAIA_FLOAT32, r, MAIA_FLOAT32, ry, 4) == 0 && ry[0] == 0 && ry[1] == 2 &&
              ry[2] == 2 && ry[3] == -4, "round ties");
    CHECK(run1("round", MAIA_BFLOAT16, rb, MAIA_BFLOAT16, rby, 4) == 0 &&
              maia_bf16_to_f32(rby[2]) == 2 && maia_bf16_to_f32(rby[3]) == -4, "bf16 round");
    CHECK(run1("isnan", MAIA_FLOAT32, x, MAIA_BOOL, b, 8) == 0 && b[0] == 1 && b[1] == 0, "isnan");
    CHECK(run1("isinf", MAIA_FLOAT32, x, MAIA_BOOL, b, 8) == 0 && b[4] == 1 && b[0] == 0, "isinf");
    CHECK(run1("isfinite", MAIA_FLOAT32, x, MAIA_BOOL, b, 8) == 0 && b[0] == 0 && b[4] == 0 && b[5] == 1,
          "isfinite");
    CHECK(run1("signbit", MAIA_FLOAT32, x, MAIA_BOOL, b, 8) == 0 && b[2] == 1 && b[3] == 0 && b[6] == 1,
          "signbit");
    CHECK(run2("equal", MAIA_FLOAT32, x, w, MAIA_BOOL, b, 8) == 0 && b[0] == 0 && b[2] == 1, "equal -0 == 0");
    CHECK(run2("less", MAIA_FLOAT32, x, w, MAIA_BOOL, b, 8) == 0 && b[0] == 0 && b[4] == 1, "less");
    /* floor_divide / remainder follow Python: sign of the divisor */
    float p[4] = {7, -7, 7, -7}, q[4] = {2, 2, -2, -2}, fd[4], rm[4];
    CHECK(run2("floor_divide", MAIA_FLOAT32, p, q, MAIA_FLOAT32, fd, 4) == 0, "%s", g_err);
    CHECK(run2("remainder", MAIA_FLOAT32, p, q, MAIA_FLOAT32, rm, 4) == 0, "%s", g_err);
    CHECK(fd[0] == 3 && fd[1] == -4 && fd[2] == -4 && fd[3] == 3, "floor_divide %g %g %g %g",
          (double)fd[0], (double)fd[1], (double)fd[2], (double)fd[3]);
    CHECK(rm[0] == 1 && rm[1] == 1 && rm[2] == -1 && rm[3] == -1, "remainder");
    float z0[2] = {1, 0}, zz[2] = {0, 0};
    CHECK(run2("floor_divide", MAIA_FLOAT32, z0, zz, MAIA_FLOAT32, fd, 2) == 0 && fd[0] == INFINITY &&
              isnan(fd[1]), "x // 0.0");
    CHECK(run2("remainder", MAIA_FLOAT32, z0, zz, MAIA_FLOAT32, rm, 2) == 0 && isnan(rm[0]), "x %% 0.0");
    /* logaddexp, copysign, hypot, atan2 vs double */
    float la[3] = {INFINITY, 1, -INFINITY}, lb[3] = {INFINITY, 2, -INFINITY}, ly[3];
    CHECK(run2("logaddexp", MAIA_FLOAT32, la, lb, MAIA_FLOAT32, ly, 3) == 0 && ly[0] == INFINITY &&
              close_to(ly[1], log(exp(1.0) + exp(2.0)), 1e-6, 0) && ly[2] == -INFINITY, "logaddexp");
    CHECK(run2("copysign", MAIA_FLOAT32, la, x + 2, MAIA_FLOAT32, ly, 1) == 0 && ly[0] == -INFINITY,
          "copysign(inf, -0.0)");
    /* nextafter, on the storage format */
    float n1[3] = {1, 0, 2}, n2[3] = {2, -1, 2}, ny[3];
    CHECK(run2("nextafter", MAIA_FLOAT32, n1, n2, MAIA_FLOAT32, ny, 3) == 0 &&
              ny[0] == nextafterf(1, 2) && f2u(ny[1]) == 0x80000001u && ny[2] == 2, "nextafter f32");
    uint16_t h1[3], h2[3], hy[3];
    for (int i = 0; i < 3; i++) h1[i] = maia_f32_to_f16(n1[i]), h2[i] = maia_f32_to_f16(n2[i]);
    CHECK(run2("nextafter", MAIA_FLOAT16, h1, h2, MAIA_FLOAT16, hy, 3) == 0 && hy[0] == 0x3c01 &&
              hy[1] == 0x8001 && hy[2] == h2[2], "nextafter f16 %04x %04x", hy[0], hy[1]);
    uint8_t e1[2] = {maia_f32_to_f8e4m3(448), maia_f32_to_f8e4m3(1)}, e2[2] = {0x00, 0x7e}, ey[2];
    CHECK(run2("nextafter", MAIA_FLOAT8_E4M3FN, e1, e2, MAIA_FLOAT8_E4M3FN, ey, 2) == 0 &&
              ey[0] == 0x7d && ey[1] == 0x39, "nextafter e4m3");
    /* transcendental vs double (float32 within a few ulp) */
    const char *names[] = {"exp", "log", "sin", "cos", "tanh", "sqrt", "expm1", "log1p", "atan", "asinh"};
    double (*fns[])(double) = {exp, log, sin, cos, tanh, sqrt, expm1, log1p, atan, asinh};
    float in[64], out[64];
    for (int i = 0; i < 64; i++) in[i] = 0.05f + (float)i * 0.37f;
    for (int k = 0; k < 10; k++) {
        CHECK(run1(names[k], MAIA_FLOAT32, in, MAIA_FLOAT32, out, 64) == 0, "%s", g_err);
        for (int i = 0; i < 64; i++)
            CHECK(close_to(out[i], fns[k](in[i]), 4e-7, 1e-30), "%s(%g) = %g", names[k],
                  (double)in[i], (double)out[i]);
    }
    /* low precision computes in float32 and rounds once: bf16 1 + 2^-9 ... */
    uint16_t ba[1] = {maia_f32_to_bf16(1.0f)}, bb[1] = {maia_f32_to_bf16(ldexpf(1, -8) + ldexpf(1, -15))}, by[1];
    CHECK(run2("add", MAIA_BFLOAT16, ba, bb, MAIA_BFLOAT16, by, 1) == 0 && by[0] == 0x3f81,
          "bf16 add rounds once: %04x", by[0]);
    uint8_t fa[1] = {maia_f32_to_f8e4m3(448)}, fy[1];
    CHECK(run2("add", MAIA_FLOAT8_E4M3FN, fa, fa, MAIA_FLOAT8_E4M3FN, fy, 1) == 0 && fy[0] == 0x7f,
          "e4m3 overflow -> NaN");
    /* gelu, silu, relu */
    float g[5] = {-INFINITY, -1, 0, 1, INFINITY}, gy[5];
    CHECK(run1("gelu", MAIA_FLOAT32, g, MAIA_FLOAT32, gy, 5) == 0 && f2u(gy[0]) == 0x80000000u &&
              close_to(gy[3], 0.5 * (1 + erf(1 / sqrt(2.0))), 1e-6, 0) && gy[4] == INFINITY,
          "gelu");
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.approximate = 1;
    int64_t five = 5;
    maia_view gi = mkview(g, MAIA_FLOAT32, 1, &five, NULL), go = mkview(gy, MAIA_FLOAT32, 1, &five, NULL);
    double t1 = 0.5 * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (1 + 0.044715)));
    CHECK(run_call("gelu", 1, &gi, &go, &at, 1, NULL) == 0 && close_to(gy[3], t1, 1e-6, 0) &&
              f2u(gy[0]) == 0x80000000u, "gelu tanh %g", (double)gy[3]);
    CHECK(run1("silu", MAIA_FLOAT32, g, MAIA_FLOAT32, gy, 5) == 0 && f2u(gy[0]) == 0x80000000u &&
              close_to(gy[1], -1 / (1 + exp(1.0)), 1e-6, 0), "silu");
    float rl[3] = {-1, NAN, -0.0f}, rly[3];
    CHECK(run1("relu", MAIA_FLOAT32, rl, MAIA_FLOAT32, rly, 3) == 0 && rly[0] == 0 && isnan(rly[1]) &&
              f2u(rly[2]) == 0x80000000u, "relu keeps NaN and -0.0");
}

static void test_integer_semantics(void) {
    int64_t a[6] = {INT64_MIN, INT64_MIN, 7, -7, 5, INT64_MAX}, b[6] = {-1, 0, -2, 2, 0, 1}, y[6];
    CHECK(run2("floor_divide", MAIA_INT64, a, b, MAIA_INT64, y, 6) == 0, "%s", g_err);
    CHECK(y[0] == INT64_MIN && y[1] == 0 && y[2] == -4 && y[3] == -4 && y[4] == 0 && y[5] == INT64_MAX,
          "int64 floor_divide");
    CHECK(run2("remainder", MAIA_INT64, a, b, MAIA_INT64, y, 6) == 0, "%s", g_err);
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == -1 && y[3] == 1 && y[4] == 0 && y[5] == 0, "remainder");
    CHECK(run2("add", MAIA_INT64, a, b, MAIA_INT64, y, 6) == 0 && y[0] == INT64_MAX && y[5] == INT64_MIN,
          "int64 add wraps");
    CHECK(run2("multiply", MAIA_INT64, a, b, MAIA_INT64, y, 6) == 0 && y[0] == INT64_MIN, "INT_MIN * -1");
    CHECK(run1("abs", MAIA_INT64, a, MAIA_INT64, y, 6) == 0 && y[0] == INT64_MIN && y[3] == 7, "abs");
    CHECK(run1("negative", MAIA_INT64, a, MAIA_INT64, y, 6) == 0 && y[0] == INT64_MIN && y[2] == -7, "neg");
    int8_t c[5] = {-128, 127, -128, 100, -3}, d[5] = {-1, 1, 1, 100, 2}, e[5];
    CHECK(run2("floor_divide", MAIA_INT8, c, d, MAIA_INT8, e, 5) == 0 && e[0] == -128 && e[4] == -2,
          "int8 floor_divide");
    CHECK(run2("add", MAIA_INT8, c, d, MAIA_INT8, e, 5) == 0 && e[0] == 127 && e[1] == -128 &&
              e[3] == -56, "int8 add wraps");
    CHECK(run2("subtract", MAIA_INT8, c, d, MAIA_INT8, e, 5) == 0 && e[2] == 127, "int8 sub wraps");
    /* shifts */
    int8_t s1[6] = {1, 1, -8, -8, 1, 5}, s2[6] = {7, 8, 1, 100, -1, 0}, s3[6];
    CHECK(run2("bitwise_left_shift", MAIA_INT8, s1, s2, MAIA_INT8, s3, 6) == 0 && s3[0] == -128 &&
              s3[1] == 0 && s3[2] == -16 && s3[3] == 0 && s3[4] == 0 && s3[5] == 5, "int8 <<");
    CHECK(run2("bitwise_right_shift", MAIA_INT8, s1, s2, MAIA_INT8, s3, 6) == 0 && s3[0] == 0 &&
              s3[2] == -4 && s3[3] == -1 && s3[4] == 0 && s3[5] == 5, "int8 >>");
    int64_t l1[3] = {-1, 1, INT64_MIN}, l2[3] = {64, 63, 63}, l3[3];
    CHECK(run2("bitwise_left_shift", MAIA_INT64, l1, l2, MAIA_INT64, l3, 3) == 0 && l3[0] == 0 &&
              l3[1] == INT64_MIN, "int64 <<");
    CHECK(run2("bitwise_right_shift", MAIA_INT64, l1, l2, MAIA_INT64, l3, 3) == 0 && l3[0] == -1 &&
              l3[2] == -1, "int64 >>");
    uint32_t u1[3] = {0xffffffffu, 1, 8}, u2[3] = {31, 32, 1}, u3[3];
    uint8_t ub[3];
    CHECK(run2("bitwise_right_shift", MAIA_UINT32, u1, u2, MAIA_UINT32, u3, 3) == 0 && u3[0] == 1 &&
              u3[1] == 0 && u3[2] == 4, "uint32 >>");
    CHECK(run2("bitwise_left_shift", MAIA_UINT32, u1, u2, MAIA_UINT32, u3, 3) == 0 &&
              u3[0] == 0x80000000u && u3[1] == 0, "uint32 <<");
    uint64_t g1[2] = {UINT64_MAX, 1}, g2[2] = {1, UINT64_MAX};
    CHECK(run2("greater", MAIA_UINT64, g1, g2, MAIA_BOOL, ub, 2) == 0 && ub[0] == 1 && ub[1] == 0,
          "uint64 compare unsigned");
    CHECK(run2("floor_divide", MAIA_UINT64, g1, g2, MAIA_UINT64, u3, 0) == 0, "empty");
    uint64_t gy[2];
    CHECK(run2("floor_divide", MAIA_UINT64, g1, g2, MAIA_UINT64, gy, 2) == 0 && gy[0] == UINT64_MAX &&
              gy[1] == 0, "uint64 //");
    /* pow, including negative exponents */
    int32_t p1[6] = {2, 3, 1, -1, -1, 5}, p2[6] = {10, 21, -5, -3, -2, -1}, p3[6];
    CHECK(run2("pow", MAIA_INT32, p1, p2, MAIA_INT32, p3, 6) == 0 && p3[0] == 1024 &&
              p3[1] == (int32_t)(uint32_t)10460353203ull && p3[2] == 1 && p3[3] == -1 && p3[4] == 1 &&
              p3[5] == 0, "int pow");
    int16_t sg[3] = {-5, 0, 7}, sgy[3];
    CHECK(run1("sign", MAIA_INT16, sg, MAIA_INT16, sgy, 3) == 0 && sgy[0] == -1 && sgy[1] == 0 &&
              sgy[2] == 1, "int sign");
    uint8_t uu[3] = {0, 1, 255}, uuy[3];
    CHECK(run1("negative", MAIA_UINT8, uu, MAIA_UINT8, uuy, 3) == 0 && uuy[1] == 255 && uuy[2] == 1,
          "uint8 negative wraps");
    CHECK(run1("bitwise_invert", MAIA_UINT8, uu, MAIA_UINT8, uuy, 3) == 0 && uuy[0] == 255, "invert");
    /* bool logic */
    uint8_t x1[4] = {0, 0, 1, 1}, x2[4] = {0, 1, 0, 1}, bo[4];
    CHECK(run2("logical_xor", MAIA_BOOL, x1, x2, MAIA_BOOL, bo, 4) == 0 && bo[0] == 0 && bo[1] == 1 &&
              bo[3] == 0, "xor");
    CHECK(run2("bitwise_and", MAIA_BOOL, x1, x2, MAIA_BOOL, bo, 4) == 0 && bo[3] == 1 && bo[1] == 0, "and");
    CHECK(run1("logical_not", MAIA_BOOL, x1, MAIA_BOOL, bo, 4) == 0 && bo[0] == 1 && bo[2] == 0, "not");
    CHECK(run2("not_equal", MAIA_BOOL, x1, x2, MAIA_BOOL, bo, 4) == 0 && bo[1] == 1 && bo[0] == 0, "ne");
}

static void test_where_clip_astype(void) {
    uint8_t cond[4] = {1, 0, 1, 0};
    int32_t a[4] = {1, 2, 3, 4}, b = -9, y[4];
    int64_t n = 4, zero = 0;
    maia_view in[3] = {mkview(cond, MAIA_BOOL, 1, &n, NULL), mkview(a, MAIA_INT32, 1, &n, NULL),
                       mkview(&b, MAIA_INT32, 1, &n, &zero)};
    maia_view out = mkview(y, MAIA_INT32, 1, &n, NULL);
    CHECK(run_call("where", 3, in, &out, NULL, 1, NULL) == 0 && y[0] == 1 && y[1] == -9 && y[2] == 3 &&
              y[3] == -9, "where");
    /* clip with both, only min, only max; NaN propagates */
    float x[4] = {-5, 0.5f, 5, NAN}, lo = 0, hi = 1, cy[4];
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.has_min = at.has_max = 1;
    maia_view cin[3] = {mkview(x, MAIA_FLOAT32, 1, &n, NULL), mkview(&lo, MAIA_FLOAT32, 1, &n, &zero),
                        mkview(&hi, MAIA_FLOAT32, 1, &n, &zero)};
    maia_view cout = mkview(cy, MAIA_FLOAT32, 1, &n, NULL);
    CHECK(run_call("clip", 3, cin, &cout, &at, 1, NULL) == 0 && cy[0] == 0 && cy[1] == 0.5f &&
              cy[2] == 1 && isnan(cy[3]), "clip");
    at.has_min = 0;
    cin[1] = cin[2];
    CHECK(run_call("clip", 2, cin, &cout, &at, 1, NULL) == 0 && cy[0] == -5 && cy[2] == 1, "clip max");
    CHECK(run_call("clip", 3, cin, &cout, &at, 1, NULL) == MAIA_KERNEL_INVALID, "clip count");
    /* astype: every pair runs and round-trips small integers */
    for (int from = 0; from < MAIA_DTYPE_COUNT; from++)
        for (int to = 0; to < MAIA_DTYPE_COUNT; to++) {
            unsigned char src[8 * 8], mid[8 * 8], back[8 * 8];
            float vals[8] = {0, 1, 2, 3, 0, 1, 1, 0};
            int64_t eight = 8;
            int64_t iv[8];
            for (int i = 0; i < 8; i++) iv[i] = (int64_t)vals[i];
            /* write vals in `from` through astype from int64 */
            maia_view vi = mkview(iv, MAIA_INT64, 1, &eight, NULL);
            maia_view vs = mkview(src, from, 1, &eight, NULL);
            CHECK(run_call("astype", 1, &vi, &vs, NULL, 1, NULL) == 0, "%s", g_err);
            maia_view vm = mkview(mid, to, 1, &eight, NULL);
            CHECK(run_call("astype", 1, &vs, &vm, NULL, 1, NULL) == 0, "astype %d->%d: %s", from, to, g_err);
            maia_view vb = mkview(back, MAIA_INT64, 1, &eight, NULL);
            CHECK(run_call("astype", 1, &vm, &vb, NULL, 1, NULL) == 0, "%s", g_err);
            int64_t *bk = (int64_t *)back;
            int lossy = from == MAIA_BOOL || to == MAIA_BOOL;
            for (int i = 0; i < 8; i++)
                CHECK(lossy ? (bk[i] != 0) == (iv[i] != 0) : bk[i] == iv[i], "astype %d->%d [%d] = %lld",
                      from, to, i, (long long)bk[i]);
        }
    /* float -> int defined behaviour */
    float f[8] = {NAN, -1.0f, 300.0f, 1e20f, -1e20f, INFINITY, -2.7f, 2.7f};
    uint8_t u8[8];
    int32_t i32[8];
    int64_t eight = 8;
    maia_view fv = mkview(f, MAIA_FLOAT32, 1, &eight, NULL);
    maia_view uv = mkview(u8, MAIA_UINT8, 1, &eight, NULL), iv = mkview(i32, MAIA_INT32, 1, &eight, NULL);
    CHECK(run_call("astype", 1, &fv, &uv, NULL, 1, NULL) == 0 && u8[0] == 0 && u8[1] == 255 && u8[2] == 44 &&
              u8[3] == 255 && u8[4] == 0 && u8[5] == 255 && u8[7] == 2, "float -> uint8");
    CHECK(run_call("astype", 1, &fv, &iv, NULL, 1, NULL) == 0 && i32[0] == 0 && i32[3] == INT32_MAX &&
              i32[4] == INT32_MIN && i32[6] == -2 && i32[7] == 2, "float -> int32");
    uint64_t big = UINT64_MAX;
    float fb;
    int64_t one = 1;
    maia_view bv = mkview(&big, MAIA_UINT64, 1, &one, NULL), fbv = mkview(&fb, MAIA_FLOAT32, 1, &one, NULL);
    CHECK(run_call("astype", 1, &bv, &fbv, NULL, 1, NULL) == 0 && fb == 18446744073709551616.0f,
          "uint64 max -> float");
    /* float32 -> bf16 rounds to nearest even, NaN to bool is true, -0.0 false */
    float fx[3] = {1.0f + ldexpf(1, -8), NAN, -0.0f};
    uint16_t bfy[3];
    uint8_t bl[3];
    int64_t three = 3;
    maia_view fxv = mkview(fx, MAIA_FLOAT32, 1, &three, NULL);
    maia_view bfv = mkview(bfy, MAIA_BFLOAT16, 1, &three, NULL), blv = mkview(bl, MAIA_BOOL, 1, &three, NULL);
    CHECK(run_call("astype", 1, &fxv, &bfv, NULL, 1, NULL) == 0 && bfy[0] == 0x3f80, "f32->bf16");
    CHECK(run_call("astype", 1, &fxv, &blv, NULL, 1, NULL) == 0 && bl[0] == 1 && bl[1] == 1 && bl[2] == 0,
          "float -> bool");
    CHECK(run_call("astype", 1, &bfv, &blv, NULL, 1, NULL) == 0 && bl[1] == 1 && bl[2] == 0, "bf16->bool");
}

/* Every elementwise kernel x every dtype it declares runs on strided broadcast operands. */
static void test_elementwise_all_dtypes(void) {
    const char *const *names = maia_kernel_names();
    int ran = 0;
    for (int k = 0; names[k]; k++) {
        const char *name = names[k];
        int nin;
        if (!strcmp(name, "where")) nin = 3;
        else if (!strcmp(name, "astype") || !strcmp(name, "clip")) nin = 1;
        else if (!strcmp(name, "matmul") || !strcmp(name, "softmax") || !strcmp(name, "log_softmax") ||
                 !strcmp(name, "layer_norm") || !strcmp(name, "sum") || !strcmp(name, "prod") ||
                 !strcmp(name, "min") || !strcmp(name, "max") || !strcmp(name, "mean") ||
                 !strcmp(name, "var") || !strcmp(name, "std") || !strcmp(name, "argmin") ||
                 !strcmp(name, "argmax") || !strcmp(name, "any") || !strcmp(name, "all") ||
                 !strncmp(name, "mx_", 3)) /* the MX kernels: tests/test_mx.c */
            continue;
        else if (!strcmp(name, "sort") || !strcmp(name, "argsort") ||
                 !strcmp(name, "searchsorted") || !strcmp(name, "take") ||
                 !strcmp(name, "take_along_axis") || !strcmp(name, "flatnonzero") ||
                 !strcmp(name, "cumulative_sum") || !strcmp(name, "cumulative_prod"))
            continue; /* tests/test_sorting.c */
        else if (!strcmp(name, "cholesky") || !strcmp(name, "inv") || !strcmp(name, "det") ||
                 !strcmp(name, "slogdet") || !strcmp(name, "solve") || !strcmp(name, "qr") ||
                 !strcmp(name, "eigh") || !strcmp(name, "eigvalsh") || !strcmp(name, "svd") ||
                 !strcmp(name, "svdvals"))
            continue; /* tests/test_linalg.c */
        else nin = 0;
        for (int dt = 0; dt < MAIA_DTYPE_COUNT; dt++) {
            int sup = maia_kernel_supports(name, dt);
            unsigned char xa[3 * 5 * 8], xb[5 * 8], xc[3 * 5 * 8], yo[3 * 5 * 8];
            for (size_t i = 0; i < sizeof xa; i++) xa[i] = (unsigned char)(rnd() & 0x3f);
            for (size_t i = 0; i < sizeof xb; i++) xb[i] = (unsigned char)(rnd() & 0x3f);
            for (size_t i = 0; i < sizeof xc; i++) xc[i] = (unsigned char)(rnd() & 1);
            int64_t shape[2] = {3, 5}, bst[2] = {0, -1};
            int binary = nin == 0;
            maia_view in[3];
            int n_in;
            int out_dt = dt;
            if (!strcmp(name, "where")) {
                in[0] = mkview(xc, MAIA_BOOL, 2, shape, NULL);
                in[1] = mkview(xa, dt, 2, shape, NULL);
                in[2] = mkview(xb + 4 * mk_sz(dt), dt, 2, shape, bst);
                n_in = 3;
            } else {
                in[0] = mkview(xa, dt, 2, shape, NULL);
                in[1] = mkview(xb + 4 * mk_sz(dt), dt, 2, shape, bst);
                /* unary or binary: try 1 then 2 inputs (the wrong count is INVALID) */
                maia_view out = mkview(yo, dt, 2, shape, NULL);
                int r1 = run_call(name, 1, in, &out, NULL, 1, NULL);
                (void)binary;
                n_in = (r1 == MAIA_KERNEL_INVALID && strstr(g_err, "input(s)")) ? 2 : 1;
            }
            /* output dtype: bool for predicates and comparisons, else the compute dtype */
            static const char *const boolish[] = {"isnan", "isinf", "isfinite", "signbit", "equal",
                                                  "not_equal", "less", "less_equal", "greater",
                                                  "greater_equal", NULL};
            for (int j = 0; boolish[j]; j++)
                if (!strcmp(boolish[j], name)) out_dt = MAIA_BOOL;
            if (!strcmp(name, "astype")) out_dt = (dt + 5) % MAIA_DTYPE_COUNT;
            maia_view out = mkview(yo, out_dt, 2, shape, NULL);
            int r = run_call(name, n_in, in, &out, NULL, 2, NULL);
            if (sup) {
                CHECK(r == 0, "%s[%d] declared but failed: %s", name, dt, g_err);
                ran++;
            } else {
                CHECK(r == MAIA_KERNEL_UNSUPPORTED, "%s[%d] undeclared but returned %d", name, dt, r);
            }
        }
    }
    CHECK(ran > 500, "ran %d kernel x dtype combinations", ran);
}

/* ==== 3. reductions ======================================================================= */

static int red(const char *k, const maia_view *x, const maia_view *y, uint64_t mask, int keep,
               double correction, int threads) {
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.axes_mask = mask;
    at.keepdims = keep;
    at.correction = correction;
    return run_call(k, 1, x, y, &at, threads, NULL);
}

static void test_reductions(void) {
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)((i * 7) % 11) - 3.0f;
    int64_t sh[3] = {2, 3, 4};
    maia_view xv = mkview(x, MAIA_FLOAT32, 3, sh, NULL);
    /* every axes mask, with and without keepdims, sum/mean/max vs double loops */
    for (uint64_t mask = 0; mask < 8; mask++)
        for (int keep = 0; keep < 2; keep++) {
            int64_t osh[3];
            int on = 0;
            for (int d = 0; d < 3; d++) {
                if ((mask >> d) & 1) {
                    if (keep) osh[on++] = 1;
                } else {
                    osh[on++] = sh[d];
                }
            }
            float y[24], ym[24], yx[24];
            int64_t yi[24];
            maia_view yv = mkview(y, MAIA_FLOAT32, on, osh, NULL);
            maia_view ymv = mkview(ym, MAIA_FLOAT32, on, osh, NULL);
            maia_view yxv = mkview(yx, MAIA_FLOAT32, on, osh, NULL);
            maia_view yiv = mkview(yi, MAIA_INT64, on, osh, NULL);
            CHECK(red("sum", &xv, &yv, mask, keep, 0, 1) == 0, "%s", g_err);
            CHECK(red("mean", &xv, &ymv, mask, keep, 0, 2) == 0, "%s", g_err);
            CHECK(red("max", &xv, &yxv, mask, keep, 0, 1) == 0, "%s", g_err);
            CHECK(red("argmax", &xv, &yiv, mask, keep, 0, 1) == 0, "%s", g_err);
            /* expected */
            double es[24];
            double emx[24];
            int64_t earg[24], cnt[24];
            for (int i = 0; i < 24; i++) es[i] = 0, emx[i] = -INFINITY, earg[i] = 0, cnt[i] = 0;
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 3; j++)
                    for (int k = 0; k < 4; k++) {
                        int idx[3] = {i, j, k};
                        int o = 0, r = 0;
                        for (int d = 0; d < 3; d++) {
                            if (!((mask >> d) & 1)) o = o * (int)sh[d] + idx[d];
                            else r = r * (int)sh[d] + idx[d];
                        }
                        double v = x[i * 12 + j * 4 + k];
                        es[o] += v;
                        if (v > emx[o]) emx[o] = v, earg[o] = r;
                        cnt[o]++;
                    }
            int64_t nout = 1;
            for (int d = 0; d < on; d++) nout *= osh[d];
            for (int o = 0; o < nout; o++) {
                CHECK(y[o] == (float)es[o], "sum mask %d keep %d [%d] %g vs %g", (int)mask, keep, o,
                      (double)y[o], es[o]);
                CHECK(close_to(ym[o], es[o] / (double)cnt[o], 1e-6, 1e-6), "mean mask %d [%d]", (int)mask, o);
                CHECK(yx[o] == (float)emx[o], "max mask %d [%d]", (int)mask, o);
                CHECK(yi[o] == earg[o], "argmax mask %d [%d]: %lld vs %lld", (int)mask, o,
                      (long long)yi[o], (long long)earg[o]);
            }
        }
    /* wrong output shape is INVALID, not a crash */
    float bad[5];
    int64_t bsh[1] = {5};
    maia_view bv = mkview(bad, MAIA_FLOAT32, 1, bsh, NULL);
    CHECK(red("sum", &xv, &bv, 1, 0, 0, 1) == MAIA_KERNEL_INVALID, "bad shape");
    CHECK(red("sum", &xv, &bv, 1u << 5, 0, 0, 1) == MAIA_KERNEL_INVALID, "mask beyond ndim");
    /* NaN propagation, first occurrence, var/std with correction */
    float v[6] = {3, 1, NAN, 1, 5, NAN}, r1;
    int64_t six = 6, ai;
    maia_view vv = mkview(v, MAIA_FLOAT32, 1, &six, NULL);
    maia_view rv = mkview(&r1, MAIA_FLOAT32, 0, NULL, NULL), av = mkview(&ai, MAIA_INT64, 0, NULL, NULL);
    CHECK(red("min", &vv, &rv, 1, 0, 0, 1) == 0 && isnan(r1), "min NaN");
    CHECK(red("argmin", &vv, &av, 1, 0, 0, 1) == 0 && ai == 2, "argmin first NaN %lld", (long long)ai);
    float w[6] = {3, 1, 4, 1, 5, 9};
    maia_view wv = mkview(w, MAIA_FLOAT32, 1, &six, NULL);
    CHECK(red("argmin", &wv, &av, 1, 0, 0, 1) == 0 && ai == 1, "argmin first occurrence");
    double mean = 23.0 / 6, ss = 0;
    for (int i = 0; i < 6; i++) ss += (w[i] - mean) * (w[i] - mean);
    CHECK(red("var", &wv, &rv, 1, 0, 1, 1) == 0 && close_to(r1, ss / 5, 1e-6, 0), "var ddof=1 %g", (double)r1);
    CHECK(red("std", &wv, &rv, 1, 0, 0, 1) == 0 && close_to(r1, sqrt(ss / 6), 1e-6, 0), "std");
    CHECK(red("var", &wv, &rv, 1, 0, 6, 1) == 0 && isnan(r1), "var N - correction <= 0 -> NaN");
    /* empty reductions */
    int64_t e0 = 0;
    maia_view ev = mkview(NULL, MAIA_FLOAT32, 1, &e0, NULL);
    CHECK(red("sum", &ev, &rv, 1, 0, 0, 1) == 0 && r1 == 0 && !signbit(r1), "empty sum");
    CHECK(red("prod", &ev, &rv, 1, 0, 0, 1) == 0 && r1 == 1, "empty prod");
    CHECK(red("mean", &ev, &rv, 1, 0, 0, 1) == 0 && isnan(r1), "empty mean");
    uint8_t bres;
    maia_view bo = mkview(&bres, MAIA_BOOL, 0, NULL, NULL);
    CHECK(red("all", &ev, &bo, 1, 0, 0, 1) == 0 && bres == 1, "empty all");
    CHECK(red("any", &ev, &bo, 1, 0, 0, 1) == 0 && bres == 0, "empty any");
    /* integer sum/prod in 64 bits with wrapping, into int64 */
    int8_t i8[4] = {127, 127, 127, -128};
    int64_t four = 4, s64;
    maia_view i8v = mkview(i8, MAIA_INT8, 1, &four, NULL), s64v = mkview(&s64, MAIA_INT64, 0, NULL, NULL);
    CHECK(red("sum", &i8v, &s64v, 1, 0, 0, 1) == 0 && s64 == 253, "int8 sum in int64");
    CHECK(red("prod", &i8v, &s64v, 1, 0, 0, 1) == 0 && s64 == -(int64_t)127 * 127 * 127 * 128, "prod");
    int64_t big[2] = {INT64_MAX, 1};
    int64_t two = 2;
    maia_view bigv = mkview(big, MAIA_INT64, 1, &two, NULL);
    CHECK(red("sum", &bigv, &s64v, 1, 0, 0, 1) == 0 && s64 == INT64_MIN, "sum wraps");
    uint8_t bb[3] = {1, 0, 1};
    int64_t three = 3;
    maia_view bbv = mkview(bb, MAIA_BOOL, 1, &three, NULL);
    CHECK(red("sum", &bbv, &s64v, 1, 0, 0, 1) == 0 && s64 == 2, "bool sum");
    CHECK(red("any", &bbv, &bo, 1, 0, 0, 1) == 0 && bres == 1, "any");
    CHECK(red("all", &bbv, &bo, 1, 0, 0, 1) == 0 && bres == 0, "all");
    uint32_t ux[3] = {0xffffffffu, 5, 7};
    uint32_t umax;
    maia_view uxv = mkview(ux, MAIA_UINT32, 1, &three, NULL), umv = mkview(&umax, MAIA_UINT32, 0, NULL, NULL);
    CHECK(red("max", &uxv, &umv, 1, 0, 0, 1) == 0 && umax == 0xffffffffu, "uint max");
    CHECK(red("min", &uxv, &umv, 1, 0, 0, 1) == 0 && umax == 5, "uint min");
    /* float16 sum accumulates wider and rounds once: 2048 + 1 + 1 (each add would round away) */
    uint16_t h[3] = {maia_f32_to_f16(2048), maia_f32_to_f16(1), maia_f32_to_f16(1)}, hs;
    maia_view hv = mkview(h, MAIA_FLOAT16, 1, &three, NULL), hsv = mkview(&hs, MAIA_FLOAT16, 0, NULL, NULL);
    CHECK(red("sum", &hv, &hsv, 1, 0, 0, 1) == 0 && maia_f16_to_f32(hs) == 2050, "f16 sum %g",
          (double)maia_f16_to_f32(hs));
    /* large, many outputs, threaded: row sums of a 1000 x 300 matrix through a transposed view */
    int64_t R = 1000, C = 300;
    float *m = malloc((size_t)(R * C) * 4), *rs = malloc((size_t)C * 4);
    for (int64_t i = 0; i < R * C; i++) m[i] = (float)(i % 13);
    int64_t tsh[2] = {C, R}, tst[2] = {1, C};
    maia_view mv = mkview(m, MAIA_FLOAT32, 2, tsh, tst), rsv = mkview(rs, MAIA_FLOAT32, 1, &C, NULL);
    CHECK(red("sum", &mv, &rsv, 2, 0, 0, 4) == 0, "%s", g_err);
    int badc = 0;
    for (int64_t j = 0; j < C; j++) {
        double s = 0;
        for (int64_t i = 0; i < R; i++) s += m[i * C + j];
        badc += rs[j] != (float)s;
    }
    CHECK(badc == 0, "threaded column sums: %d wrong", badc);
    free(m), free(rs);
}

/* ==== 4. matmul =========================================================================== */

static void naive(const float *a, const float *b, double *c, int64_t M, int64_t K, int64_t N) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)a[i * K + k] * b[k * N + j];
            c[i * N + j] = s;
        }
}

static void test_matmul(void) {
    int64_t sizes[] = {1, 7, 65, 129};
    int threads[] = {1, 2, 3, 5};
    for (int si = 0; si < 4; si++)
        for (int sj = 0; sj < 4; sj++) {
            int64_t M = sizes[si], N = sizes[sj], K = sizes[(si + sj) % 4] + 3;
            float *a = malloc((size_t)(M * K) * 4), *b = malloc((size_t)(K * N) * 4), *c = malloc((size_t)(M * N) * 4);
            double *ref = malloc((size_t)(M * N) * 8);
            for (int64_t i = 0; i < M * K; i++) a[i] = rndf();
            for (int64_t i = 0; i < K * N; i++) b[i] = rndf();
            naive(a, b, ref, M, K, N);
            int64_t ash[2] = {M, K}, bsh[2] = {K, N}, csh[2] = {M, N};
            maia_view in[2] = {mkview(a, MAIA_FLOAT32, 2, ash, NULL), mkview(b, MAIA_FLOAT32, 2, bsh, NULL)};
            maia_view out = mkview(c, MAIA_FLOAT32, 2, csh, NULL);
            for (int t = 0; t < 4; t++) {
                memset(c, 0xff, (size_t)(M * N) * 4);
                CHECK(run_call("matmul", 2, in, &out, NULL, threads[t], NULL) == 0, "%s", g_err);
                int bad = 0;
                for (int64_t i = 0; i < M * N; i++) bad += !close_to(c[i], ref[i], 1e-4, 1e-4);
                CHECK(bad == 0, "matmul %lldx%lldx%lld threads %d: %d wrong", (long long)M, (long long)K,
                      (long long)N, threads[t], bad);
            }
            free(a), free(b), free(c), free(ref);
        }
    /* big enough to use several threads and blocks: 300 x 700 x 260, B transposed via strides */
    {
        int64_t M = 300, K = 700, N = 260;
        float *a = malloc((size_t)(M * K) * 4), *bt = malloc((size_t)(K * N) * 4), *b = malloc((size_t)(K * N) * 4);
        float *c = malloc((size_t)(M * N) * 4);
        double *ref = malloc((size_t)(M * N) * 8);
        for (int64_t i = 0; i < M * K; i++) a[i] = rndf();
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++) b[k * N + j] = bt[j * K + k] = rndf();
        naive(a, b, ref, M, K, N);
        int64_t ash[2] = {M, K}, bsh[2] = {K, N}, bst[2] = {1, K}, csh[2] = {M, N};
        maia_view in[2] = {mkview(a, MAIA_FLOAT32, 2, ash, NULL), mkview(bt, MAIA_FLOAT32, 2, bsh, bst)};
        maia_view out = mkview(c, MAIA_FLOAT32, 2, csh, NULL);
        maia_kernel_cost cost;
        CHECK(run_call("matmul", 2, in, &out, NULL, 4, &cost) == 0, "%s", g_err);
        int bad = 0;
        for (int64_t i = 0; i < M * N; i++) bad += !close_to(c[i], ref[i], 1e-4, 1e-4);
        CHECK(bad == 0, "big transposed matmul: %d wrong", bad);
        CHECK(cost.flops == 2.0 * M * N * K, "matmul flops %g", cost.flops);
        free(a), free(bt), free(b), free(c), free(ref);
    }
    /* batched, broadcast batch dims: a (3, 1->2, 5, 4) broadcast, b (1->3, 2, 4, 6) */
    {
        float a[3 * 5 * 4], b[2 * 4 * 6], c[3 * 2 * 5 * 6];
        for (int i = 0; i < 60; i++) a[i] = rndf();
        for (int i = 0; i < 48; i++) b[i] = rndf();
        int64_t ash[4] = {3, 2, 5, 4}, ast[4] = {20, 0, 4, 1};
        int64_t bsh[4] = {3, 2, 4, 6}, bst[4] = {0, 24, 6, 1};
        int64_t csh[4] = {3, 2, 5, 6};
        maia_view in[2] = {mkview(a, MAIA_FLOAT32, 4, ash, ast), mkview(b, MAIA_FLOAT32, 4, bsh, bst)};
        maia_view out = mkview(c, MAIA_FLOAT32, 4, csh, NULL);
        CHECK(run_call("matmul", 2, in, &out, NULL, 2, NULL) == 0, "%s", g_err);
        int bad = 0;
        for (int p = 0; p < 3; p++)
            for (int q = 0; q < 2; q++) {
                double ref[30];
                naive(a + p * 20, b + q * 24, ref, 5, 4, 6);
                for (int i = 0; i < 30; i++) bad += !close_to(c[(p * 2 + q) * 30 + i], ref[i], 1e-5, 1e-5);
            }
        CHECK(bad == 0, "batched broadcast matmul: %d wrong", bad);
    }
    /* bfloat16 accumulates in float32 and rounds once; int32 wraps; K == 0 gives zeros */
    {
        int64_t M = 9, K = 300, N = 17;
        uint16_t a[9 * 300], b[300 * 17], c[9 * 17];
        float af[9 * 300], bf[300 * 17];
        for (int i = 0; i < M * K; i++) a[i] = maia_f32_to_bf16(rndf()), af[i] = maia_bf16_to_f32(a[i]);
        for (int i = 0; i < K * N; i++) b[i] = maia_f32_to_bf16(rndf()), bf[i] = maia_bf16_to_f32(b[i]);
        double ref[9 * 17];
        naive(af, bf, ref, M, K, N);
        int64_t ash[2] = {M, K}, bsh[2] = {K, N}, csh[2] = {M, N};
        maia_view in[2] = {mkview(a, MAIA_BFLOAT16, 2, ash, NULL), mkview(b, MAIA_BFLOAT16, 2, bsh, NULL)};
        maia_view out = mkview(c, MAIA_BFLOAT16, 2, csh, NULL);
        CHECK(run_call("matmul", 2, in, &out, NULL, 3, NULL) == 0, "%s", g_err);
        int bad = 0;
        for (int i = 0; i < M * N; i++) {
            /* within one bf16 rounding of the exact result */
            double got = maia_bf16_to_f32(c[i]);
            bad += !close_to(got, ref[i], 1.0 / 128, 1e-4);
        }
        CHECK(bad == 0, "bf16 matmul: %d wrong", bad);
        int32_t ia[4] = {INT32_MAX, 1, 2, 3}, ib[4] = {2, 0, 1, 1}, ic[4];
        int64_t s2[2] = {2, 2};
        maia_view iin[2] = {mkview(ia, MAIA_INT32, 2, s2, NULL), mkview(ib, MAIA_INT32, 2, s2, NULL)};
        maia_view iout = mkview(ic, MAIA_INT32, 2, s2, NULL);
        CHECK(run_call("matmul", 2, iin, &iout, NULL, 1, NULL) == 0 && ic[0] == (int32_t)(uint32_t)(2ull * INT32_MAX + 1) &&
                  ic[1] == 1 && ic[2] == 7 && ic[3] == 3, "int32 matmul %d %d %d %d", ic[0], ic[1], ic[2], ic[3]);
        float z[6] = {1, 1, 1, 1, 1, 1};
        int64_t zsh[2] = {2, 0}, zsh2[2] = {0, 3}, zo[2] = {2, 3};
        maia_view zin[2] = {mkview(NULL, MAIA_FLOAT32, 2, zsh, NULL), mkview(NULL, MAIA_FLOAT32, 2, zsh2, NULL)};
        maia_view zout = mkview(z, MAIA_FLOAT32, 2, zo, NULL);
        CHECK(run_call("matmul", 2, zin, &zout, NULL, 1, NULL) == 0 && z[0] == 0 && z[5] == 0, "K=0");
        uint8_t bl[4];
        maia_view bin[2] = {mkview(bl, MAIA_BOOL, 2, s2, NULL), mkview(bl, MAIA_BOOL, 2, s2, NULL)};
        maia_view bout = mkview(bl, MAIA_BOOL, 2, s2, NULL);
        CHECK(run_call("matmul", 2, bin, &bout, NULL, 1, NULL) == MAIA_KERNEL_UNSUPPORTED, "bool matmul");
        int64_t bad3[2] = {2, 3};
        iin[1] = mkview(ib, MAIA_INT32, 2, bad3, NULL);
        CHECK(run_call("matmul", 2, iin, &iout, NULL, 1, NULL) == MAIA_KERNEL_INVALID, "K mismatch");
    }
}

/* ==== 5. nn =============================================================================== */

static void test_nn(void) {
    float x[2 * 5] = {1, 2, 3, 4, 5, -1000, 0, 1000, 1, NAN}, y[10];
    int64_t sh[2] = {2, 5};
    maia_view xv = mkview(x, MAIA_FLOAT32, 2, sh, NULL), yv = mkview(y, MAIA_FLOAT32, 2, sh, NULL);
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.axis = 1;
    CHECK(run_call("softmax", 1, &xv, &yv, &at, 1, NULL) == 0, "%s", g_err);
    double s = 0;
    for (int i = 0; i < 5; i++) s += y[i];
    CHECK(close_to(s, 1, 1e-6, 0) && close_to(y[4], exp(0) / (1 + exp(-1) + exp(-2) + exp(-3) + exp(-4)), 1e-6, 0),
          "softmax row 0");
    CHECK(isnan(y[5]) && isnan(y[9]), "NaN in a row propagates");
    x[9] = 2;
    CHECK(run_call("softmax", 1, &xv, &yv, &at, 1, NULL) == 0 && y[7] == 1 && y[5] == 0, "stable softmax");
    CHECK(run_call("log_softmax", 1, &xv, &yv, &at, 1, NULL) == 0 && y[7] == 0 && close_to(y[5], -2000, 1e-6, 0),
          "log_softmax");
    /* along axis 0 through a transposed output */
    int64_t yst[2] = {1, 2};
    float y2[10];
    maia_view y2v = mkview(y2, MAIA_FLOAT32, 2, sh, yst);
    at.axis = 0;
    CHECK(run_call("softmax", 1, &xv, &y2v, &at, 1, NULL) == 0, "%s", g_err);
    for (int j = 0; j < 5; j++)
        CHECK(close_to(y2[j * 2] + y2[j * 2 + 1], 1, 1e-6, 0), "axis-0 column %d", j);
    at.axis = 2;
    CHECK(run_call("softmax", 1, &xv, &yv, &at, 1, NULL) == MAIA_KERNEL_INVALID, "bad axis");
    /* layer_norm over the last axis with weight and bias, vs double */
    float ln[3 * 4], w[3 * 4], b[3 * 4], lo[3 * 4];
    for (int i = 0; i < 12; i++) ln[i] = rndf() * 3, w[i] = 1.0f + (float)(i % 4), b[i] = (float)(i % 4) * 0.5f;
    int64_t lsh[2] = {3, 4};
    maia_view lin[3] = {mkview(ln, MAIA_FLOAT32, 2, lsh, NULL), mkview(w, MAIA_FLOAT32, 2, lsh, NULL),
                        mkview(b, MAIA_FLOAT32, 2, lsh, NULL)};
    maia_view lout = mkview(lo, MAIA_FLOAT32, 2, lsh, NULL);
    memset(&at, 0, sizeof at);
    at.axes_mask = 2;
    at.eps = 1e-5;
    at.has_weight = at.has_bias = 1;
    CHECK(run_call("layer_norm", 3, lin, &lout, &at, 1, NULL) == 0, "%s", g_err);
    for (int r = 0; r < 3; r++) {
        double m = 0, v = 0;
        for (int j = 0; j < 4; j++) m += ln[r * 4 + j];
        m /= 4;
        for (int j = 0; j < 4; j++) v += (ln[r * 4 + j] - m) * (ln[r * 4 + j] - m);
        v /= 4;
        for (int j = 0; j < 4; j++) {
            double want = (ln[r * 4 + j] - m) / sqrt(v + (float)1e-5) * w[r * 4 + j] + b[r * 4 + j];
            CHECK(close_to(lo[r * 4 + j], want, 1e-5, 1e-5), "layer_norm [%d,%d]", r, j);
        }
    }
    at.has_bias = 0;
    CHECK(run_call("layer_norm", 2, lin, &lout, &at, 1, NULL) == 0, "%s", g_err);
    /* over both axes, float16 */
    uint16_t h[12], ho[12];
    for (int i = 0; i < 12; i++) h[i] = maia_f32_to_f16(ln[i]);
    maia_view hin = mkview(h, MAIA_FLOAT16, 2, lsh, NULL), hout = mkview(ho, MAIA_FLOAT16, 2, lsh, NULL);
    at.axes_mask = 3;
    at.has_weight = 0;
    CHECK(run_call("layer_norm", 1, &hin, &hout, &at, 1, NULL) == 0, "%s", g_err);
    double sm = 0;
    for (int i = 0; i < 12; i++) sm += maia_f16_to_f32(ho[i]);
    CHECK(fabs(sm) < 1e-2, "normalized f16 sums to ~0: %g", sm);
    CHECK(!maia_kernel_supports("softmax", MAIA_INT32) && maia_kernel_supports("softmax", MAIA_FLOAT8_E5M2),
          "nn manifest");
}

/* ==== robustness ========================================================================== */

static void test_invalid(void) {
    float a[4] = {0}, y[4];
    int64_t n = 4;
    maia_view in[2] = {mkview(a, MAIA_FLOAT32, 1, &n, NULL), mkview(a, MAIA_FLOAT32, 1, &n, NULL)};
    maia_view out = mkview(y, MAIA_FLOAT32, 1, &n, NULL);
    CHECK(run_call("no_such_kernel", 2, in, &out, NULL, 1, NULL) == MAIA_KERNEL_UNKNOWN &&
              strstr(g_err, "no_such_kernel"), "unknown: %s", g_err);
    CHECK(run_call(NULL, 2, in, &out, NULL, 1, NULL) == MAIA_KERNEL_UNKNOWN, "NULL name");
    CHECK(run_call("add", 1, in, &out, NULL, 1, NULL) == MAIA_KERNEL_INVALID, "count");
    {
        maia_kernel_call c;
        memset(&c, 0, sizeof c);
        c.kernel = "add";
        c.n_inputs = 7;
        c.n_outputs = 1;
        c.threads = 1;
        CHECK(maia_kernel_execute(&c, NULL, g_err, sizeof g_err) == MAIA_KERNEL_INVALID, "count range");
    }
    maia_view big = in[0];
    big.ndim = 33;
    maia_view bad2[2] = {big, in[1]};
    CHECK(run_call("add", 2, bad2, &out, NULL, 1, NULL) == MAIA_KERNEL_INVALID, "ndim 33");
    maia_view neg = in[0];
    neg.shape[0] = -1;
    maia_view bad3[2] = {neg, in[1]};
    CHECK(run_call("add", 2, bad3, &out, NULL, 1, NULL) == MAIA_KERNEL_INVALID, "negative dim");
    int64_t five = 5;
    maia_view o5 = mkview(y, MAIA_FLOAT32, 1, &five, NULL);
    CHECK(run_call("add", 2, in, &o5, NULL, 1, NULL) == MAIA_KERNEL_INVALID, "shape mismatch");
    maia_view wrong_dt = mkview(y, MAIA_INT32, 1, &n, NULL);
    CHECK(run_call("add", 2, in, &wrong_dt, NULL, 1, NULL) == MAIA_KERNEL_INVALID, "out dtype");
    maia_view bdt = in[0];
    bdt.dtype = 99;
    maia_view bad4[2] = {bdt, in[1]};
    CHECK(run_call("add", 2, bad4, &out, NULL, 1, NULL) == MAIA_KERNEL_INVALID, "dtype code");
    maia_view nul = in[0];
    nul.data = NULL;
    maia_view bad5[2] = {nul, in[1]};
    CHECK(run_call("add", 2, bad5, &out, NULL, 1, NULL) == MAIA_KERNEL_INVALID, "NULL data");
    int32_t ia[4];
    maia_view ii = mkview(ia, MAIA_INT32, 1, &n, NULL), io = mkview(ia, MAIA_INT32, 1, &n, NULL);
    CHECK(run_call("sqrt", 1, &ii, &io, NULL, 1, NULL) == MAIA_KERNEL_UNSUPPORTED, "sqrt int");
    CHECK(maia_kernel_execute(NULL, NULL, NULL, 0) == MAIA_KERNEL_INVALID, "NULL call");
    /* manifest */
    CHECK(maia_kernel_supports("add", MAIA_BFLOAT16) && !maia_kernel_supports("add", MAIA_BOOL) &&
              maia_kernel_supports("equal", MAIA_BOOL) && !maia_kernel_supports("nope", 0) &&
              !maia_kernel_supports("add", 14) && maia_kernel_supports("bitwise_left_shift", MAIA_UINT8) &&
              !maia_kernel_supports("bitwise_left_shift", MAIA_FLOAT32),
          "supports");
    int count = 0;
    for (const char *const *p = maia_kernel_names(); *p; p++) {
        count++;
        int any = 0;
        for (int d = 0; d < MAIA_DTYPE_COUNT; d++) any |= maia_kernel_supports(*p, d);
        CHECK(any, "%s supports no dtype", *p);
    }
    CHECK(count >= 85, "%d kernels", count);
}

int main(void) {
    rng_state = 0x9e3779b97f4a7c15ull; /* this binary's seed */
    test_conversions_roundtrip();
    test_conversions_values();
    test_conversions_nearest();
    test_add_strided();
    test_add_large_threads();
    test_add_fast_path_aliasing();
    test_pool_concurrent_callers();
    test_float_semantics();
    test_integer_semantics();
    test_where_clip_astype();
    test_elementwise_all_dtypes();
    test_reductions();
    test_matmul();
    test_nn();
    test_invalid();
    maia_kernel_shutdown(); /* join the pool's workers: none is left running at exit */
    printf("test_kernels: %ld checks, %ld failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
