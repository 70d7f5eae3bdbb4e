/* Tests of the OCP MX v1.0 kernels (src/kernels/mx.c): mx_quantize, mx_dequantize and
 * mx_matmul, against rules written out here independently of the implementation (a
 * brute-force nearest-code search, the spec's block rules, exact sums), and their modeled
 * durations through the runtime. Standalone; exits non-zero on any failure. Meant to run
 * under -fsanitize=address,undefined too. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maia.h"
#include "kernel_call.h"
#include "kernel_check.h"


/* ---- the formats, written out from the OCP MX v1.0 spec -------------------------------- */

typedef struct fmtinfo {
    int code;
    const char *name;
    int bits, ebits, mbits, bias, emax;
    double max_normal;
    int has_inf, has_nan, is_int, bb;
} fmtinfo;

static const fmtinfo FMTS[6] = {
    {MAIA_MXFP8_E4M3, "mxfp8_e4m3", 8, 4, 3, 7, 8, 448.0, 0, 1, 0, 32},
    {MAIA_MXFP8_E5M2, "mxfp8_e5m2", 8, 5, 2, 15, 15, 57344.0, 1, 1, 0, 32},
    {MAIA_MXFP6_E3M2, "mxfp6_e3m2", 6, 3, 2, 3, 4, 28.0, 0, 0, 0, 24},
    {MAIA_MXFP6_E2M3, "mxfp6_e2m3", 6, 2, 3, 1, 2, 7.5, 0, 0, 0, 24},
    {MAIA_MXFP4_E2M1, "mxfp4_e2m1", 4, 2, 1, 1, 2, 6.0, 0, 0, 0, 16},
    {MAIA_MXINT8, "mxint8", 8, 0, 6, 0, 0, 127.0 / 64.0, 0, 0, 1, 32},
};

/* The value of a code straight from the definition (NaN and Inf included). */
static double ref_value(const fmtinfo *f, int c) {
    if (f->is_int) return (double)(c >= 128 ? c - 256 : c) / 64.0;
    int sign = (c >> (f->bits - 1)) & 1;
    int ef = (c >> f->mbits) & ((1 << f->ebits) - 1), m = c & ((1 << f->mbits) - 1);
    double v;
    if (f->has_inf && ef == (1 << f->ebits) - 1)
        v = m ? NAN : INFINITY;
    else if (f->has_nan && ef == (1 << f->ebits) - 1 && m == (1 << f->mbits) - 1)
        v = NAN;
    else if (ef == 0)
        v = ldexp(m, 1 - f->bias - f->mbits);
    else
        v = ldexp(m + (1 << f->mbits), ef - f->bias - f->mbits);
    return sign ? -v : v;
}

/* Brute force: the finite code nearest to y (already divided by the scale), ties to the code
 * with an even last bit, after saturating |y| to max_normal. Signs of zero kept (not INT8). */
static int ref_encode(const fmtinfo *f, double y) {
    int neg = signbit(y);
    double a = fabs(y);
    if (f->is_int) {
        double lo = -2.0, hi = 127.0 / 64.0;
        double t = y < lo ? lo : y > hi ? hi : y;
        int best = 0;
        double bd = INFINITY;
        for (int c = 0; c < 256; c++) {
            double d = fabs(ref_value(f, c) - t);
            if (d < bd || (d == bd && !(c & 1))) {
                bd = d;
                best = c;
            }
        }
        return best;
    }
    if (a > f->max_normal) a = f->max_normal;
    int half = 1 << (f->bits - 1), best = 0;
    double bd = INFINITY;
    for (int c = 0; c < half; c++) { /* positive magnitudes */
        double v = ref_value(f, c);
        if (!isfinite(v)) continue;
        double d = fabs(v - a);
        if (d < bd || (d == bd && !(c & 1))) {
            bd = d;
            best = c;
        }
    }
    return best | (neg ? half : 0);
}

/* ---- kernel calls ----------------------------------------------------------------------- */

static maia_view view2(void *data, int dt, int64_t r, int64_t c, int64_t rs, int64_t cs) {
    const int64_t shape[2] = {r, c}, strides[2] = {rs, cs};
    return mkview(data, dt, 2, shape, strides);
}

/* Quantize rows x (R x n float32, row stride rs) -> el (R x blocks*bb), sc (R x blocks). */
static int quantize(const fmtinfo *f, const float *x, int64_t R, int64_t n, int64_t rs,
                    int64_t cs, uint8_t *el, uint8_t *sc, int threads) {
    int64_t blocks = (n + 31) / 32;
    maia_view in = view2((void *)x, MAIA_FLOAT32, R, n, rs, cs);
    maia_view out[2] = {view2(el, MAIA_UINT8, R, blocks * f->bb, blocks * f->bb, 1),
                        view2(sc, MAIA_UINT8, R, blocks, blocks, 1)};
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.mx_format = f->code;
    return run_kernel("mx_quantize", 1, &in, 2, out, &at, threads, NULL);
}

static int dequantize(const fmtinfo *f, const uint8_t *el, const uint8_t *sc, int64_t R,
                      int64_t n, int dt, void *y) {
    int64_t blocks = (n + 31) / 32;
    maia_view in[2] = {view2((void *)el, MAIA_UINT8, R, blocks * f->bb, blocks * f->bb, 1),
                       view2((void *)sc, MAIA_UINT8, R, blocks, blocks, 1)};
    maia_view out = view2(y, dt, R, n, n, 1);
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.mx_format = f->code;
    at.mx_n = n;
    return run_kernel("mx_dequantize", 2, in, 1, &out, &at, 1, NULL);
}

/* element i of a packed row (little bit-endian) */
static int code_at(const fmtinfo *f, const uint8_t *row, int64_t i) {
    if (f->bits == 8) return row[i];
    if (f->bits == 4) return (row[i / 2] >> (4 * (i & 1))) & 0xf;
    int64_t g = i / 4;
    uint32_t w = row[3 * g] | (uint32_t)row[3 * g + 1] << 8 | (uint32_t)row[3 * g + 2] << 16;
    return (int)((w >> (6 * (i % 4))) & 0x3f);
}

/* ==== 1. every code decodes and re-encodes ================================================ */

static void test_every_code_roundtrips(void) {
    for (int fi = 0; fi < 6; fi++) {
        const fmtinfo *f = &FMTS[fi];
        for (int c = 0; c < (1 << f->bits); c++) {
            double want = ref_value(f, c);
            float v = maia_mx_decode(f->code, (uint8_t)c);
            if (isnan(want)) {
                CHECK(isnan(v) && f2u(v) == 0x7fc00000u, "%s code %#x decodes to %g", f->name, c, v);
                CHECK(maia_mx_encode(f->code, v, 0) == (1 << (f->bits - 1)) - 1,
                      "%s: NaN encodes as S.1111.111", f->name);
                continue;
            }
            CHECK(v == want && !signbit(v) == !signbit(want), "%s code %#x: %g, want %g", f->name,
                  c, v, want);
            int back = f->is_int && c == 0 ? 0 : c;
            for (int e = -20; e <= 20; e += 5) { /* value * 2^e / 2^e: the same code */
                float x = ldexpf(v, e);
                CHECK(maia_mx_encode(f->code, x, e) == back, "%s code %#x, scale 2^%d: got %#x",
                      f->name, c, e, maia_mx_encode(f->code, x, e));
            }
        }
    }
}

/* ==== 2. rounding: midpoints tie to even, everything else to nearest ========================= */

static void test_ties_and_nearest(void) {
    for (int fi = 0; fi < 6; fi++) {
        const fmtinfo *f = &FMTS[fi];
        int top = f->is_int ? 127 : (1 << (f->bits - 1)) - 1;
        for (int c = 0; c < top; c++) { /* adjacent positive codes c, c + 1 */
            double lo = ref_value(f, c), hi = ref_value(f, c + 1);
            if (!isfinite(hi)) continue;
            float mid = (float)((lo + hi) / 2); /* exact: a few significant bits */
            int even = (c & 1) ? c + 1 : c;
            CHECK(maia_mx_encode(f->code, mid, 0) == even, "%s tie %g between %#x and %#x: %#x",
                  f->name, mid, c, c + 1, maia_mx_encode(f->code, mid, 0));
            CHECK(maia_mx_encode(f->code, nextafterf(mid, 0), 0) == c, "%s below tie %g",
                  f->name, mid);
            CHECK(maia_mx_encode(f->code, nextafterf(mid, INFINITY), 0) == c + 1,
                  "%s above tie %g", f->name, mid);
            if (!f->is_int) { /* negative side: the same magnitude code with the sign bit */
                int s = 1 << (f->bits - 1);
                CHECK(maia_mx_encode(f->code, -mid, 0) == (even | s), "%s tie -%g", f->name, mid);
            } else {
                CHECK(maia_mx_encode(f->code, -mid, 0) == ((256 - even) & 0xff), "int8 tie -%g",
                      mid);
            }
        }
        /* random float32 values and scales against the brute-force search */
        for (int t = 0; t < 200000; t++) {
            uint32_t u = (uint32_t)rnd();
            if ((u & 0x7f800000u) == 0x7f800000u) continue;
            int e = (int)(rnd() % 255) - 127;
            float x = u2f(u);
            double y = ldexp((double)x, -e);
            int want = ref_encode(f, y);
            int got = maia_mx_encode(f->code, x, e);
            CHECK(got == want, "%s: %a / 2^%d -> %#x, want %#x", f->name, x, e, got, want);
        }
        /* values near the element range: random significands at every element exponent */
        for (int t = 0; t < 100000; t++) {
            int ex = (int)(rnd() % 40) - 25;
            float x = ldexpf(1.0f + (float)(rnd() >> 40) / 16777216.0f, ex);
            if (rnd() & 1) x = -x;
            CHECK(maia_mx_encode(f->code, x, 0) == ref_encode(f, x), "%s: %a -> %#x, want %#x",
                  f->name, x, maia_mx_encode(f->code, x, 0), ref_encode(f, x));
        }
    }
}

/* The kernel's block path (float32 arithmetic in the default environment) against the
 * integer path (maia_mx_set_portable) and the brute force: midpoints and their neighbours at
 * several scales, and random bit patterns of every finite float32. */
static void test_block_paths_agree(void) {
    enum { R = 64, N = 32 * 64 };
    float *x = malloc(sizeof(float) * R * N);
    uint8_t *el = malloc(R * N), *el2 = malloc(R * N);
    uint8_t sc[R * 64], sc2[R * 64];
    for (int fi = 0; fi < 6; fi++) {
        const fmtinfo *f = &FMTS[fi];
        /* rows 0..31: ties; block b of row r is scaled by 2^(r - 16) with its amax fixed */
        int top = ref_encode(f, f->max_normal), k = 0; /* the largest finite code */
        for (int r = 0; r < 32; r++)
            for (int b = 0; b < 64; b++)
                for (int i = 0; i < 32; i++) {
                    float v;
                    if (i == 0) {
                        v = (float)f->max_normal; /* fixes the scale at 2^0 */
                    } else {
                        int c = (k++) % top;
                        double lo = ref_value(f, c), hi = ref_value(f, c + 1);
                        float mid = isfinite(hi) ? (float)((lo + hi) / 2) : (float)lo;
                        int which = (int)(rnd() % 3);
                        v = which == 0 ? mid : which == 1 ? nextafterf(mid, 0) : nextafterf(mid, INFINITY);
                        if (rnd() & 1) v = -v;
                    }
                    x[(int64_t)r * N + b * 32 + i] = ldexpf(v, r - 16);
                }
        /* rows 32..63: random finite bit patterns, some blocks tiny, some huge */
        for (int r = 32; r < R; r++)
            for (int i = 0; i < N; i++) {
                uint32_t u = (uint32_t)rnd();
                if ((u & 0x7f800000u) == 0x7f800000u) u &= 0xbfffffffu;
                if (r % 4 == 1) u &= 0x807fffffu | (rnd() & 1 ? 0 : 0x00800000u); /* subnormal */
                x[(int64_t)r * N + i] = u2f(u);
            }
        CHECK(quantize(f, x, R, N, N, 1, el, sc, 2) == 0, "%s: %s", f->name, g_err);
        int64_t nb = (int64_t)R * 64 * f->bb;
        for (int level = 1; level <= 2; level++) { /* portable float32, then integer only */
            maia_mx_set_portable(level);
            CHECK(quantize(f, x, R, N, N, 1, el2, sc2, 2) == 0, "%s: %s", f->name, g_err);
            maia_mx_set_portable(0);
            CHECK(memcmp(el, el2, (size_t)nb) == 0 && memcmp(sc, sc2, sizeof sc) == 0,
                  "%s: path %d differs from the default", f->name, level);
        }
        int bad = 0;
        for (int r = 0; r < R; r++)
            for (int i = 0; i < N; i++) {
                int e = sc[r * 64 + i / 32] - 127;
                int want = ref_encode(f, ldexp(x[(int64_t)r * N + i], -e));
                bad += code_at(f, el + (int64_t)r * 64 * f->bb, i) != want;
            }
        CHECK(bad == 0, "%s: %d block codes differ from the brute force", f->name, bad);
    }
    free(x);
    free(el);
    free(el2);
}

/* ==== 3. saturation ========================================================================= */

static void test_saturation(void) {
    for (int fi = 0; fi < 6; fi++) {
        const fmtinfo *f = &FMTS[fi];
        int maxc = ref_encode(f, f->max_normal), minc = ref_encode(f, -f->max_normal);
        CHECK(ref_value(f, maxc) == f->max_normal, "%s max code", f->name);
        float big[] = {(float)f->max_normal * 1.01f, (float)f->max_normal * 2.0f, 1e30f, 3.4e38f};
        for (int i = 0; i < 4; i++) {
            CHECK(maia_mx_encode(f->code, big[i], 0) == maxc, "%s: %g saturates", f->name, big[i]);
            int neg = f->is_int ? 0x80 : minc; /* int8: clamps at -2 (code 0x80) */
            CHECK(maia_mx_encode(f->code, -big[i], 0) == neg, "%s: -%g saturates", f->name, big[i]);
        }
    }
    CHECK(maia_mx_encode(MAIA_MXFP8_E4M3, 464.0f, 0) == 0x7e, "e4m3: 464 -> 448, never NaN");
    CHECK(maia_mx_encode(MAIA_MXFP8_E4M3, 479.0f, 0) == 0x7e, "e4m3: 479 -> 448");
    CHECK(maia_mx_encode(MAIA_MXFP8_E5M2, 61440.0f, 0) == 0x7b, "e5m2: 61440 -> 57344, not Inf");
    CHECK(maia_mx_encode(MAIA_MXFP4_E2M1, 5.0f, 0) == 0x6, "e2m1: tie 5 -> 4 (even)");
    CHECK(maia_mx_encode(MAIA_MXFP4_E2M1, 7.0f, 0) == 0x7, "e2m1: 7 -> 6");
    CHECK(maia_mx_encode(MAIA_MXINT8, -2.0f, 0) == 0x80, "int8: -2 -> -128");
    CHECK(maia_mx_encode(MAIA_MXINT8, 2.0f, 0) == 0x7f, "int8: 2 -> 127/64");
    CHECK(maia_mx_encode(MAIA_MXINT8, -0.0f, 0) == 0x00, "int8: -0 -> 0");
    CHECK(maia_mx_encode(MAIA_MXFP6_E3M2, -0.0f, 0) == 0x20, "e3m2: -0 keeps its sign");
}

/* ==== 4. blocks: scales, NaN/Inf rules, zeros, partial blocks, packing ===================== */

static void test_block_rules(void) {
    for (int fi = 0; fi < 6; fi++) {
        const fmtinfo *f = &FMTS[fi];
        float x[64];
        uint8_t el[64], sc[2];
        /* scale: amax 1.0 -> e = -emax; amax in [2^k, 2^(k+1)) -> k - emax */
        for (int i = 0; i < 32; i++) x[i] = (float)(i % 7) * 0.125f;
        x[5] = 1.5f;
        CHECK(quantize(f, x, 1, 32, 32, 1, el, sc, 1) == 0, "%s: %s", f->name, g_err);
        CHECK(sc[0] == 127 - f->emax, "%s: scale of amax 1.5 is %d", f->name, sc[0]);
        /* extremes of float32: max -> 127 - emax + 127; the smallest subnormal -> clamped 0 */
        x[5] = 3.4028235e38f;
        quantize(f, x, 1, 32, 32, 1, el, sc, 1);
        CHECK(sc[0] == 254 - f->emax, "%s: scale of float32 max is %d", f->name, sc[0]);
        for (int i = 0; i < 32; i++) x[i] = 0.0f;
        x[3] = u2f(1); /* 2^-149 */
        quantize(f, x, 1, 32, 32, 1, el, sc, 1);
        CHECK(sc[0] == 0, "%s: tiny block scale is clamped to 2^-127, got %d", f->name, sc[0]);
        /* all-zero block: scale code 0 (2^-127), codes 0; -0.0 keeps its sign (not INT8) */
        for (int i = 0; i < 32; i++) x[i] = (i & 1) ? -0.0f : 0.0f;
        quantize(f, x, 1, 32, 32, 1, el, sc, 1);
        CHECK(sc[0] == 0, "%s: zero block scale %d", f->name, sc[0]);
        for (int i = 0; i < 32; i++) {
            int want = (i & 1) && !f->is_int ? 1 << (f->bits - 1) : 0;
            CHECK(code_at(f, el, i) == want, "%s: zero %d -> %#x", f->name, i, code_at(f, el, i));
        }
        /* NaN and Inf */
        float specials[2] = {NAN, -INFINITY};
        for (int s = 0; s < 2; s++) {
            for (int i = 0; i < 32; i++) x[i] = (float)i - 10.0f;
            x[7] = specials[s];
            quantize(f, x, 1, 32, 32, 1, el, sc, 1);
            int representable = s == 0 ? f->has_nan : f->has_inf;
            if (representable) {
                CHECK(sc[0] == 4 - f->emax + 127, "%s: scale ignores the special (%d)", f->name,
                      sc[0]);
                int want = s == 0 ? 0x7f : 0xfc; /* NaN: S.1111.111; -Inf: E5M2's 1.11111.00 */
                CHECK(code_at(f, el, 7) == want, "%s special %d -> %#x", f->name, s,
                      code_at(f, el, 7));
                CHECK(code_at(f, el, 8) == ref_encode(f, ldexp(-2.0, -(4 - f->emax))),
                      "%s: the rest of the block is encoded as usual", f->name);
            } else {
                CHECK(sc[0] == 0xff, "%s: an unrepresentable special gives scale NaN (%d)",
                      f->name, sc[0]);
                int zero = 1;
                for (int i = 0; i < f->bb; i++) zero &= el[i] == 0;
                CHECK(zero, "%s: NaN-scale block has element codes 0", f->name);
            }
        }
        /* partial blocks: n = 33 -> the second block has one element, padded with zeros */
        for (int i = 0; i < 33; i++) x[i] = 1.0f;
        x[32] = -0.75f;
        uint8_t el2[64], sc2[2];
        memset(el2, 0xaa, sizeof el2);
        CHECK(quantize(f, x, 1, 33, 33, 1, el2, sc2, 1) == 0, "%s: %s", f->name, g_err);
        CHECK(sc2[1] == 127 - 1 - f->emax, "%s: partial block scale %d", f->name, sc2[1]);
        CHECK(code_at(f, el2 + f->bb, 0) == ref_encode(f, ldexp(-0.75, 1 + f->emax)),
              "%s: partial block element", f->name);
        for (int i = 1; i < 32; i++)
            CHECK(code_at(f, el2 + f->bb, i) == 0, "%s: padding %d is code 0", f->name, i);
        /* dequantize of a partial block writes exactly n values */
        float y[34];
        y[33] = 12345.0f;
        CHECK(dequantize(f, el2, sc2, 1, 33, MAIA_FLOAT32, y) == 0, "%s: %s", f->name, g_err);
        CHECK(y[0] == 1.0f && y[32] == -0.75f && y[33] == 12345.0f, "%s: partial dequantize",
              f->name);
    }
    /* packing bit positions: FP4 element 0 in the low nibble, FP6 4 elements in 3 bytes */
    float x[32] = {0};
    uint8_t el[32], sc[1];
    x[0] = 0.5f; /* with amax 6 -> scale 1: codes 1, 2, 3, 4 */
    x[1] = 1.0f;
    x[2] = 1.5f;
    x[3] = 2.0f;
    x[31] = 6.0f;
    quantize(&FMTS[4], x, 1, 32, 32, 1, el, sc, 1);
    CHECK(sc[0] == 127 && el[0] == 0x21 && el[1] == 0x43 && el[15] == 0x70,
          "fp4 packing: %02x %02x %02x", el[0], el[1], el[15]);
    x[31] = 7.5f; /* e2m3: amax 7.5 -> scale 1; 0.5 -> 4, 1 -> 8, 1.5 -> 12, 2 -> 16 */
    quantize(&FMTS[3], x, 1, 32, 32, 1, el, sc, 1);
    uint32_t w = 4u | 8u << 6 | 12u << 12 | 16u << 18;
    CHECK(sc[0] == 127 && el[0] == (uint8_t)w && el[1] == (uint8_t)(w >> 8) &&
              el[2] == (uint8_t)(w >> 16) && el[23] == (0x1f << 2),
          "fp6 packing: %02x %02x %02x / %02x", el[0], el[1], el[2], el[23]);
    /* dequantize reads the same positions */
    uint8_t pk[16] = {0x21, 0x43};
    uint8_t s1 = 128; /* 2.0 */
    float y[32];
    dequantize(&FMTS[4], pk, &s1, 1, 32, MAIA_FLOAT32, y);
    CHECK(y[0] == 1.0f && y[1] == 2.0f && y[2] == 3.0f && y[3] == 4.0f && y[4] == 0.0f,
          "fp4 unpacking: %g %g %g %g", y[0], y[1], y[2], y[3]);
}

/* ==== 5. quantize == brute force, strided and threaded; dequantize exact ================== */

static void test_quantize_random_rows(void) {
    enum { R = 37, N = 300, BLOCKS = (N + 31) / 32 };
    float *x = malloc(sizeof(float) * R * N * 2);
    uint8_t *el = malloc(R * BLOCKS * 32), *el4 = malloc(R * BLOCKS * 32);
    uint8_t sc[R * BLOCKS], sc4[R * BLOCKS];
    float *y = malloc(sizeof(float) * R * N);
    for (int i = 0; i < R * N * 2; i++) {
        int ex = (int)(rnd() % 80) - 40;
        x[i] = ldexpf((float)((int64_t)(rnd() >> 40) - (1 << 23)) / 8388608.0f, ex);
        if (rnd() % 50 == 0) x[i] = 0.0f;
    }
    for (int fi = 0; fi < 6; fi++) {
        const fmtinfo *f = &FMTS[fi];
        /* every other column of a (R, 2N) array: a strided view */
        CHECK(quantize(f, x, R, N, 2 * N, 2, el, sc, 1) == 0, "%s: %s", f->name, g_err);
        CHECK(quantize(f, x, R, N, 2 * N, 2, el4, sc4, 4) == 0, "%s: %s", f->name, g_err);
        CHECK(memcmp(el, el4, (size_t)R * BLOCKS * f->bb) == 0 && memcmp(sc, sc4, sizeof sc) == 0,
              "%s: threads change nothing", f->name);
        for (int r = 0; r < R; r++)
            for (int b = 0; b < BLOCKS; b++) {
                double amax = 0;
                for (int i = b * 32; i < N && i < b * 32 + 32; i++)
                    amax = fmax(amax, fabs(x[r * 2 * N + 2 * i]));
                int e = amax > 0 ? (int)floor(log2(amax)) - f->emax : -127;
                e = e < -127 ? -127 : e;
                CHECK(sc[r * BLOCKS + b] == e + 127, "%s: scale r%d b%d", f->name, r, b);
                for (int i = b * 32; i < N && i < b * 32 + 32; i++) {
                    int want = ref_encode(f, ldexp(x[r * 2 * N + 2 * i], -e));
                    int got = code_at(f, el + r * BLOCKS * f->bb, i);
                    CHECK(got == want, "%s: r%d i%d %a -> %#x, want %#x", f->name, r, i,
                          x[r * 2 * N + 2 * i], got, want);
                }
            }
        /* dequantize: exactly scale * element, in float32 */
        CHECK(dequantize(f, el, sc, R, N, MAIA_FLOAT32, y) == 0, "%s: %s", f->name, g_err);
        for (int r = 0; r < R; r++)
            for (int i = 0; i < N; i++) {
                int c = code_at(f, el + r * BLOCKS * f->bb, i);
                double want = ldexp(ref_value(f, c), sc[r * BLOCKS + i / 32] - 127);
                CHECK((double)y[r * N + i] == want, "%s: dequantized r%d i%d", f->name, r, i);
            }
    }
    free(x);
    free(el);
    free(el4);
    free(y);
}

static void test_dequantize_every_code_and_scale(void) {
    for (int fi = 0; fi < 6; fi++) {
        const fmtinfo *f = &FMTS[fi];
        int nc = 1 << f->bits;
        /* one row per scale code, every element code in it (the codes cycle) */
        int64_t n = 256, blocks = n / 32;
        uint8_t *el = calloc(256 * blocks * 32, 1), *sc = malloc(256 * blocks);
        for (int r = 0; r < 256; r++) {
            uint8_t codes[256];
            for (int i = 0; i < n; i++) codes[i] = (uint8_t)((i + r) % nc);
            for (int i = 0; i < n; i++) { /* pack little bit-endian, bit by bit */
                for (int b = 0; b < f->bits; b++) {
                    int64_t bit = (int64_t)i * f->bits + b;
                    if ((codes[i] >> b) & 1) el[r * blocks * f->bb + bit / 8] |= (uint8_t)(1 << (bit % 8));
                }
            }
            for (int j = 0; j < blocks; j++) sc[r * blocks + j] = (uint8_t)r;
        }
        float *y = malloc(sizeof(float) * 256 * n);
        uint16_t *h = malloc(sizeof(uint16_t) * 256 * n);
        CHECK(dequantize(f, el, sc, 256, n, MAIA_FLOAT32, y) == 0, "%s: %s", f->name, g_err);
        int bad32 = 0, bad16 = 0, badbf = 0;
        for (int r = 0; r < 256; r++)
            for (int i = 0; i < n; i++) {
                double v = ref_value(f, (i + r) % nc), want = r == 255 ? NAN : ldexp(v, r - 127);
                float w = (float)want; /* one rounding (here exact or overflow) */
                if (isnan(want)) w = u2f(0x7fc00000u);
                bad32 += f2u(y[r * n + i]) != f2u(w);
            }
        CHECK(bad32 == 0, "%s: %d float32 values differ", f->name, bad32);
        CHECK(dequantize(f, el, sc, 256, n, MAIA_FLOAT16, h) == 0, "%s: %s", f->name, g_err);
        for (int r = 0; r < 256; r++)
            for (int i = 0; i < n; i++) {
                double v = ref_value(f, (i + r) % nc), want = r == 255 ? NAN : ldexp(v, r - 127);
                bad16 += h[r * n + i] != maia_f32_to_f16(isnan(want) ? u2f(0x7fc00000u) : (float)want);
            }
        CHECK(bad16 == 0, "%s: %d float16 values differ", f->name, bad16);
        CHECK(dequantize(f, el, sc, 256, n, MAIA_BFLOAT16, h) == 0, "%s: %s", f->name, g_err);
        for (int r = 0; r < 256; r++)
            for (int i = 0; i < n; i++) {
                double v = ref_value(f, (i + r) % nc), want = r == 255 ? NAN : ldexp(v, r - 127);
                badbf += h[r * n + i] != maia_f32_to_bf16(isnan(want) ? u2f(0x7fc00000u) : (float)want);
            }
        CHECK(badbf == 0, "%s: %d bfloat16 values differ", f->name, badbf);
        free(y);
        free(h);
        free(el);
        free(sc);
    }
}

/* ==== 6. mx_matmul ========================================================================== */

static int matmul(const fmtinfo *fa, const fmtinfo *fb, const uint8_t *ae, const uint8_t *as,
                  const uint8_t *be, const uint8_t *bs, int64_t M, int64_t N, int64_t k, int dt,
                  void *out, int threads, maia_kernel_cost *cost) {
    int64_t blocks = (k + 31) / 32;
    maia_view in[4] = {view2((void *)ae, MAIA_UINT8, M, blocks * fa->bb, blocks * fa->bb, 1),
                       view2((void *)as, MAIA_UINT8, M, blocks, blocks, 1),
                       view2((void *)be, MAIA_UINT8, N, blocks * fb->bb, blocks * fb->bb, 1),
                       view2((void *)bs, MAIA_UINT8, N, blocks, blocks, 1)};
    maia_view o = view2(out, dt, M, N, N, 1);
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.mx_format = fa->code;
    at.mx_b_format = fb->code;
    at.mx_n = k;
    return run_kernel("mx_matmul", 4, in, 1, &o, &at, threads, cost);
}

static void test_matmul(void) {
    enum { M = 13, N = 11, K = 77, BL = 3 };
    float a[M * K], b[N * K];
    uint8_t ae[M * BL * 32], as[M * BL], be[N * BL * 32], bs[N * BL];
    float out[M * N], out4[M * N];
    for (int i = 0; i < M * K; i++) a[i] = ldexpf((float)((int)(rnd() % 2001) - 1000), -(int)(rnd() % 12));
    for (int i = 0; i < N * K; i++) b[i] = ldexpf((float)((int)(rnd() % 2001) - 1000), -(int)(rnd() % 12));
    for (int ia = 0; ia < 6; ia++)
        for (int ib = 0; ib < 6; ib++) {
            const fmtinfo *fa = &FMTS[ia], *fb = &FMTS[ib];
            quantize(fa, a, M, K, K, 1, ae, as, 1);
            quantize(fb, b, N, K, K, 1, be, bs, 1);
            /* garbage in the padding of the last block must be ignored */
            for (int r = 0; r < M; r++) ae[r * BL * fa->bb + BL * fa->bb - 1] = 0x55;
            for (int r = 0; r < N; r++) be[r * BL * fb->bb + BL * fb->bb - 1] = 0x33;
            maia_kernel_cost cost;
            CHECK(matmul(fa, fb, ae, as, be, bs, M, N, K, MAIA_FLOAT32, out, 1, &cost) == 0,
                  "%s x %s: %s", fa->name, fb->name, g_err);
            CHECK(matmul(fa, fb, ae, as, be, bs, M, N, K, MAIA_FLOAT32, out4, 3, NULL) == 0,
                  "%s", g_err);
            CHECK(memcmp(out, out4, sizeof out) == 0, "%s x %s: threads change bits", fa->name,
                  fb->name);
            maia_mx_set_portable(1);
            CHECK(matmul(fa, fb, ae, as, be, bs, M, N, K, MAIA_FLOAT32, out4, 2, NULL) == 0,
                  "%s", g_err);
            maia_mx_set_portable(0);
            CHECK(memcmp(out, out4, sizeof out) == 0, "%s x %s: the portable path differs",
                  fa->name, fb->name);
            /* a work budget of a few rows: panels of a's and b's rows, the same bits */
            for (long long budget = 800; budget <= 8000; budget *= 10) {
                maia_mx_set_work_bytes(budget);
                CHECK(matmul(fa, fb, ae, as, be, bs, M, N, K, MAIA_FLOAT32, out4, 2, NULL) == 0,
                      "%s", g_err);
                maia_mx_set_work_bytes(0);
                CHECK(memcmp(out, out4, sizeof out) == 0, "%s x %s: panels (%lld B) differ",
                      fa->name, fb->name, budget);
            }
            CHECK(cost.flops == 2.0 * M * N * BL * 32 &&
                      cost.compute_dtype == (fa->bits == 4 && fb->bits == 4 ? MAIA_COMPUTE_MX4
                                                                            : MAIA_COMPUTE_MX8),
                  "%s x %s: cost", fa->name, fb->name);
            int bad = 0;
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    long double s = 0, sabs = 0; /* 64-bit significand: exact for these data */
                    for (int i = 0; i < K; i++) {
                        long double pa = ldexpl(ref_value(fa, code_at(fa, ae + m * BL * fa->bb, i)),
                                                as[m * BL + i / 32] - 127);
                        long double pb = ldexpl(ref_value(fb, code_at(fb, be + n * BL * fb->bb, i)),
                                                bs[n * BL + i / 32] - 127);
                        s += pa * pb;
                        sabs += fabsl(pa * pb);
                    }
                    double got = out[m * N + n], want = (double)(float)s;
                    /* the bound: one float32 ulp (both are rounded once, from sums that
                     * differ by at most the double accumulation's error) beside that
                     * error, (blocks + 9) * 2^-53 * sum |a_i b_i| */
                    double tol = fabs(want) * 0x1p-23 + (double)sabs * (BL + 9) * 0x1p-53;
                    if (!(fabs(got - want) <= tol)) bad++;
                }
            CHECK(bad == 0, "%s x %s: %d results outside the bound", fa->name, fb->name, bad);
        }
    /* E5M2 x E5M2 over the whole code range, where block sums round in double: the AVX2 and
     * portable paths still agree bit for bit */
    {
        const fmtinfo *f5 = &FMTS[1];
        for (int i = 0; i < M * BL * 32; i++) {
            ae[i] = (uint8_t)rnd();
            if ((ae[i] & 0x7c) == 0x7c) ae[i] &= 0x83; /* no Inf/NaN codes */
        }
        for (int i = 0; i < N * BL * 32; i++) {
            be[i] = (uint8_t)rnd();
            if ((be[i] & 0x7c) == 0x7c) be[i] &= 0x83;
        }
        for (int i = 0; i < M * BL; i++) as[i] = (uint8_t)(100 + rnd() % 50);
        for (int i = 0; i < N * BL; i++) bs[i] = (uint8_t)(100 + rnd() % 50);
        matmul(f5, f5, ae, as, be, bs, M, N, K, MAIA_FLOAT32, out, 2, NULL);
        maia_mx_set_portable(1);
        matmul(f5, f5, ae, as, be, bs, M, N, K, MAIA_FLOAT32, out4, 1, NULL);
        maia_mx_set_portable(0);
        CHECK(memcmp(out, out4, sizeof out) == 0, "e5m2 full range: the portable path differs");
    }
    /* NaN scale: its row / column is NaN, the rest is not */
    const fmtinfo *f = &FMTS[0];
    quantize(f, a, M, K, K, 1, ae, as, 1);
    quantize(f, b, N, K, K, 1, be, bs, 1);
    as[2 * BL + 1] = 0xff;
    bs[4 * BL] = 0xff;
    matmul(f, f, ae, as, be, bs, M, N, K, MAIA_FLOAT32, out, 2, NULL);
    int ok = 1;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) ok &= (m == 2 || n == 4) == (isnan(out[m * N + n]) != 0);
    CHECK(ok, "NaN scales give NaN exactly in their row and column");
    /* one rounding into bfloat16 / float16 from the double sum: 1 + 2^-8 + 2^-30 -> bf16
     * 1.0078125 (rounding through float32 would give 1.0); 1 + 2^-11 + 2^-30 -> f16 1 + 2^-10 */
    uint8_t e1[3 * 32] = {0}, s1[3], e2[3 * 32] = {0}, s2[3] = {127, 127, 127};
    e1[0] = e1[32] = e1[64] = 0x38; /* e4m3 1.0 */
    e2[0] = e2[32] = e2[64] = 0x38;
    uint16_t r16;
    s1[0] = 127;
    s1[1] = 127 - 8;
    s1[2] = 127 - 30;
    matmul(f, f, e1, s1, e2, s2, 1, 1, 96, MAIA_BFLOAT16, &r16, 1, NULL);
    CHECK(r16 == 0x3f81, "bf16 single rounding: %#x", r16);
    s1[1] = 127 - 11;
    matmul(f, f, e1, s1, e2, s2, 1, 1, 96, MAIA_FLOAT16, &r16, 1, NULL);
    CHECK(r16 == 0x3c01, "f16 single rounding: %#x", r16);
    /* overflow of the output dtype -> inf; k = 0 -> zeros */
    s1[0] = s1[1] = s1[2] = 200;
    s2[0] = 200;
    matmul(f, f, e1, s1, e2, s2, 1, 1, 96, MAIA_FLOAT16, &r16, 1, NULL);
    CHECK(r16 == 0x7c00, "f16 overflow: %#x", r16);
    float z[4] = {1, 1, 1, 1};
    CHECK(matmul(f, f, e1, s1, e2, s2, 2, 2, 0, MAIA_FLOAT32, z, 1, NULL) == 0 && z[0] == 0 &&
              z[3] == 0,
          "k = 0 gives zeros: %s", g_err);
}

/* ==== 7. invalid operands are errors, never crashes ======================================== */

static void test_invalid(void) {
    float x[64] = {0};
    uint8_t el[64], sc[2];
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.mx_format = MAIA_MXFP8_E4M3;
    maia_view in = view2(x, MAIA_FLOAT32, 2, 32, 32, 1);
    maia_view outs[2] = {view2(el, MAIA_UINT8, 2, 32, 32, 1), view2(sc, MAIA_UINT8, 2, 1, 1, 1)};
    CHECK(run_kernel("mx_quantize", 1, &in, 2, outs, &at, 1, NULL) == 0, "valid: %s", g_err);
    maia_attrs bad = at;
    bad.mx_format = 0;
    CHECK(run_kernel("mx_quantize", 1, &in, 2, outs, &bad, 1, NULL) == MAIA_KERNEL_INVALID &&
              strstr(g_err, "format"),
          "missing format: %s", g_err);
    bad.mx_format = 99;
    CHECK(run_kernel("mx_quantize", 1, &in, 2, outs, &bad, 1, NULL) == MAIA_KERNEL_INVALID, "format 99");
    maia_view wrong = view2(x, MAIA_INT32, 2, 32, 32, 1);
    CHECK(run_kernel("mx_quantize", 1, &wrong, 2, outs, &at, 1, NULL) == MAIA_KERNEL_UNSUPPORTED,
          "int32 input: %s", g_err);
    maia_view o2[2] = {view2(el, MAIA_UINT8, 2, 24, 24, 1), outs[1]}; /* fp8 needs 32 bytes */
    CHECK(run_kernel("mx_quantize", 1, &in, 2, o2, &at, 1, NULL) == MAIA_KERNEL_INVALID &&
              strstr(g_err, "elements"),
          "short elements: %s", g_err);
    maia_view o3[2] = {outs[0], view2(sc, MAIA_INT8, 2, 1, 1, 1)};
    CHECK(run_kernel("mx_quantize", 1, &in, 2, o3, &at, 1, NULL) == MAIA_KERNEL_INVALID, "int8 scales");
    maia_view one = view2(x, MAIA_FLOAT32, 64, 1, 1, 1);
    one.ndim = 1;
    CHECK(run_kernel("mx_quantize", 1, &one, 2, outs, &at, 1, NULL) == MAIA_KERNEL_INVALID, "1-D x");
    CHECK(run_kernel("mx_quantize", 1, &in, 1, outs, &at, 1, NULL) == MAIA_KERNEL_INVALID, "1 output");
    /* dequantize: n inconsistent with the operands, negative, wrong output dtype */
    float y[64];
    maia_view din[2] = {outs[0], outs[1]};
    maia_view dout = view2(y, MAIA_FLOAT32, 2, 32, 32, 1);
    at.mx_n = 32;
    CHECK(run_kernel("mx_dequantize", 2, din, 1, &dout, &at, 1, NULL) == 0, "valid: %s", g_err);
    at.mx_n = 33;
    CHECK(run_kernel("mx_dequantize", 2, din, 1, &dout, &at, 1, NULL) == MAIA_KERNEL_INVALID, "n 33");
    at.mx_n = -1;
    CHECK(run_kernel("mx_dequantize", 2, din, 1, &dout, &at, 1, NULL) == MAIA_KERNEL_INVALID, "n -1");
    at.mx_n = 32;
    maia_view dout8 = view2(y, MAIA_FLOAT8_E4M3FN, 2, 32, 32, 1);
    CHECK(run_kernel("mx_dequantize", 2, din, 1, &dout8, &at, 1, NULL) == MAIA_KERNEL_UNSUPPORTED,
          "float8 output");
    at.mx_format = MAIA_MXFP4_E2M1; /* 16 bytes per block, given 32 */
    CHECK(run_kernel("mx_dequantize", 2, din, 1, &dout, &at, 1, NULL) == MAIA_KERNEL_INVALID, "fp4 size");
    /* matmul: K mismatch between a and b, bad b format, wrong scales rows */
    maia_view min[4] = {outs[0], outs[1], outs[0], outs[1]};
    maia_view mo = view2(y, MAIA_FLOAT32, 2, 2, 2, 1);
    maia_attrs mat;
    memset(&mat, 0, sizeof mat);
    mat.mx_format = mat.mx_b_format = MAIA_MXFP8_E5M2;
    mat.mx_n = 32;
    CHECK(run_kernel("mx_matmul", 4, min, 1, &mo, &mat, 1, NULL) == 0, "valid: %s", g_err);
    mat.mx_b_format = MAIA_MXFP6_E3M2;
    CHECK(run_kernel("mx_matmul", 4, min, 1, &mo, &mat, 1, NULL) == MAIA_KERNEL_INVALID, "b size");
    mat.mx_b_format = 0;
    CHECK(run_kernel("mx_matmul", 4, min, 1, &mo, &mat, 1, NULL) == MAIA_KERNEL_INVALID, "b format");
    mat.mx_b_format = MAIA_MXFP8_E5M2;
    mat.mx_n = 64;
    CHECK(run_kernel("mx_matmul", 4, min, 1, &mo, &mat, 1, NULL) == MAIA_KERNEL_INVALID, "k 64");
    mat.mx_n = 32;
    maia_view mo3 = view2(y, MAIA_FLOAT32, 3, 2, 2, 1);
    CHECK(run_kernel("mx_matmul", 4, min, 1, &mo3, &mat, 1, NULL) == MAIA_KERNEL_INVALID, "M 3");
    CHECK(run_kernel("mx_matmul", 3, min, 1, &mo, &mat, 1, NULL) == MAIA_KERNEL_INVALID, "3 inputs");
    /* empty operands are fine */
    maia_view e_in = view2(x, MAIA_FLOAT32, 0, 5, 5, 1);
    maia_view e_out[2] = {view2(el, MAIA_UINT8, 0, 32, 32, 1), view2(sc, MAIA_UINT8, 0, 1, 1, 1)};
    at.mx_format = MAIA_MXINT8;
    CHECK(run_kernel("mx_quantize", 1, &e_in, 2, e_out, &at, 1, NULL) == 0, "empty: %s", g_err);
    /* the manifest */
    CHECK(maia_kernel_supports("mx_quantize", MAIA_BFLOAT16) &&
              maia_kernel_supports("mx_matmul", MAIA_FLOAT32) &&
              !maia_kernel_supports("mx_dequantize", MAIA_FLOAT8_E4M3FN) &&
              !maia_kernel_supports("mx_quantize", MAIA_UINT8),
          "supports");
}

/* ==== 8. modeled durations through the runtime ============================================= */

static double launch_ms(uint64_t q, const char *k, const maia_buffer_view *in, int nin,
                        const maia_buffer_view *out, int nout, const maia_attrs *at) {
    uint64_t e0, e1;
    double wall, modeled = -1;
    if (maia_event_record(q, &e0) || maia_launch(q, k, in, nin, out, nout, at) ||
        maia_event_record(q, &e1) || maia_event_synchronize(e1) ||
        maia_event_elapsed(e0, e1, &wall, &modeled))
        fprintf(stderr, "launch %s: %s\n", k, maia_last_error());
    maia_event_destroy(e0);
    maia_event_destroy(e1);
    return modeled;
}

static maia_buffer_view bview(uint64_t buf, int dt, int64_t r, int64_t c) {
    maia_buffer_view v;
    memset(&v, 0, sizeof v);
    v.buffer = buf;
    v.dtype = dt;
    v.ndim = 2;
    v.shape[0] = r;
    v.shape[1] = c;
    v.strides[0] = c;
    v.strides[1] = 1;
    return v;
}

static void test_modeled_time(void) {
    maia_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.device_count = 1;
    cfg.memory_bytes = 256ull << 20;
    cfg.kernel_threads = 2;
    cfg.ignore_env = 1;
    if (maia_init(&cfg) != MAIA_OK) {
        CHECK(0, "maia_init: %s", maia_last_error());
        return;
    }
    maia_perf_model pm;
    CHECK(maia_device_get_model(0, &pm) == MAIA_OK && pm.peak_mx8_flops == 5e15 &&
              pm.peak_mx4_flops == 10e15,
          "model figures");
    uint64_t q, bx, be, bs, by;
    const int64_t R = 2048, n = 2048, blocks = n / 32;
    maia_queue_create(0, &q);
    maia_malloc(0, (uint64_t)(R * n * 4), &bx);
    maia_malloc(0, (uint64_t)(R * blocks * 32), &be);
    maia_malloc(0, (uint64_t)(R * blocks), &bs);
    maia_malloc(0, (uint64_t)(R * R * 4), &by);
    maia_buffer_view x = bview(bx, MAIA_FLOAT32, R, n);
    maia_buffer_view qo[2] = {bview(be, MAIA_UINT8, R, blocks * 32), bview(bs, MAIA_UINT8, R, blocks)};
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.mx_format = MAIA_MXFP8_E4M3;
    double launch = pm.kernel_launch_ns * 1e-6;
    double tq = launch_ms(q, "mx_quantize", &x, 1, qo, 2, &at);
    double bytes_q = (double)R * n * 4 + (double)R * blocks * 33;
    CHECK(fabs(tq - (bytes_q / pm.hbm_bandwidth * 1e3 + launch)) < 1e-6, "quantize modeled %g ms",
          tq);
    maia_buffer_view x_half = bview(bx, MAIA_FLOAT32, R / 2, n);
    maia_buffer_view qo_half[2] = {bview(be, MAIA_UINT8, R / 2, blocks * 32),
                                   bview(bs, MAIA_UINT8, R / 2, blocks)};
    CHECK(launch_ms(q, "mx_quantize", &x_half, 1, qo_half, 2, &at) < tq, "smaller is faster");
    at.mx_n = n;
    double td = launch_ms(q, "mx_dequantize", qo, 2, &x, 1, &at);
    CHECK(fabs(td - (bytes_q / pm.hbm_bandwidth * 1e3 + launch)) < 1e-6, "dequantize %g ms", td);
    /* matmul: memory-bound at this size (the model needs ~700 flops per byte to be
     * compute-bound at 5 PFLOPS and 7 TB/s) */
    const int64_t Mm = 256;
    maia_buffer_view a8 = bview(be, MAIA_UINT8, Mm, blocks * 32), s8 = bview(bs, MAIA_UINT8, Mm, blocks);
    maia_buffer_view mi[4] = {a8, s8, a8, s8};
    maia_buffer_view mo = bview(by, MAIA_FLOAT32, Mm, Mm);
    at.mx_b_format = MAIA_MXFP8_E4M3;
    double t8 = launch_ms(q, "mx_matmul", mi, 4, &mo, 1, &at);
    double flops = 2.0 * Mm * Mm * n;
    double bytes_m = 2.0 * Mm * blocks * 33 + (double)Mm * Mm * 4;
    double want8 = fmax(flops / pm.peak_mx8_flops, bytes_m / pm.hbm_bandwidth) * 1e3 + launch;
    CHECK(fabs(t8 - want8) < 1e-9 && flops / pm.peak_mx8_flops < bytes_m / pm.hbm_bandwidth,
          "mx_matmul modeled %g ms, want %g", t8, want8);
    /* compute-bound: every row of a and b the same (zero row strides: few unique bytes),
     * bfloat16 out. FP8 rate; two FP4 operands at twice the rate; FP8 x FP4 at FP8's */
    a8.strides[0] = 0;
    s8.strides[0] = 0;
    maia_buffer_view a4 = bview(be, MAIA_UINT8, Mm, blocks * 16);
    a4.strides[0] = 0;
    mo.dtype = MAIA_BFLOAT16;
    maia_buffer_view c8[4] = {a8, s8, a8, s8}, c4[4] = {a4, s8, a4, s8}, c84[4] = {a8, s8, a4, s8};
    double t_8 = launch_ms(q, "mx_matmul", c8, 4, &mo, 1, &at);
    CHECK(fabs(t_8 - (flops / pm.peak_mx8_flops * 1e3 + launch)) < 1e-9, "fp8 %g ms", t_8);
    at.mx_format = at.mx_b_format = MAIA_MXFP4_E2M1;
    double t_4 = launch_ms(q, "mx_matmul", c4, 4, &mo, 1, &at);
    CHECK(fabs(t_4 - (flops / pm.peak_mx4_flops * 1e3 + launch)) < 1e-9, "fp4 %g ms", t_4);
    at.mx_format = MAIA_MXFP8_E4M3;
    double t_84 = launch_ms(q, "mx_matmul", c84, 4, &mo, 1, &at);
    CHECK(fabs(t_84 - t_8) < 1e-9, "fp8 x fp4 %g ms, fp8 %g ms", t_84, t_8);
    at.mx_format = at.mx_b_format = MAIA_MXFP6_E2M3;
    maia_buffer_view a6 = bview(be, MAIA_UINT8, Mm, blocks * 24);
    a6.strides[0] = 0;
    maia_buffer_view c6[4] = {a6, s8, a6, s8};
    double t_6 = launch_ms(q, "mx_matmul", c6, 4, &mo, 1, &at);
    CHECK(fabs(t_6 - t_8) < 1e-9, "fp6 at the FP8 rate: %g ms", t_6);
    /* a bad launch fails at synchronization, and the queue keeps working */
    at.mx_format = 42;
    CHECK(maia_launch(q, "mx_quantize", &x, 1, qo, 2, &at) == MAIA_OK, "submission");
    CHECK(maia_queue_synchronize(q) == MAIA_ERROR_KERNEL_FAILED &&
              strstr(maia_last_error(), "format"),
          "reported: %s", maia_last_error());
    at.mx_format = MAIA_MXINT8;
    CHECK(launch_ms(q, "mx_quantize", &x, 1, qo, 2, &at) > 0, "queue still works");
    maia_free(0, bx);
    maia_free(0, be);
    maia_free(0, bs);
    maia_free(0, by);
    maia_queue_destroy(q);
    CHECK(maia_shutdown(NULL) == MAIA_OK, "shutdown: %s", maia_last_error());
}

int main(void) {
    test_every_code_roundtrips();
    test_ties_and_nearest();
    test_saturation();
    test_block_paths_agree();
    test_block_rules();
    test_quantize_random_rows();
    test_dequantize_every_code_and_scale();
    test_matmul();
    test_invalid();
    test_modeled_time();
    printf("test_mx: %ld checks, %ld failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
