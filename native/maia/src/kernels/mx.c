/* OCP Microscaling (MX) v1.0 kernels: mx_quantize, mx_dequantize, mx_matmul.
 *
 * Bit-identical to hwabstract's NumPy reference (src/hwabstract/mx/reference.py), whose
 * docstrings state every rule; in short, for a block V of 32 values and element format F:
 *
 *   scale     X = 2^e, e = floor(log2(max |V_i| over finite V_i)) - F.emax, clamped to
 *             [-127, 127]; an all-zero block gets e = -127. E8M0 code e + 127.
 *   elements  P_i = V_i / X (exact) rounded to nearest, ties to even, with subnormals,
 *             saturating to +-F.max_normal. MXINT8: round(clamp(V_i / X, -2, 127/64) * 64).
 *   specials  NaN -> the element NaN code 0x7f where F has one (E4M3, E5M2), +-Inf -> the
 *             element Inf code where F has one (E5M2); otherwise the block's scale becomes
 *             NaN (0xff) and its element codes 0. Signs of zero are kept (not by MXINT8).
 *   packing   little bit-endian: element i is bits [i*bits, (i+1)*bits) of the block's
 *             bytes (FP4: element 0 in the low nibble; FP6: 4 elements in 3 bytes).
 *   padding   a partial last block is padded with +0.0 (codes 0).
 *
 * Quantization works on the float32 bits of the input (float16 and bfloat16 widen exactly).
 * Three paths give identical codes: AVX2 and portable float32 arithmetic for blocks of 32
 * finite values (V / X is exact in float32 except below 2^-126, where every format's code is
 * +-0 anyway; the rounding to the element grid is an exact RNE add/subtract), and an
 * integer-only path for partial blocks, blocks holding a NaN or an infinity, and threads whose
 * floating-point environment is not the default (no rounding mode or flush-to-zero setting
 * can change a code). Dequantization multiplies the element's value by the scale in float32,
 * which is exact for every element code and scale (at most 8 significant bits, exponents
 * within [-143, 143]) except where the product overflows float32 -- then it is +-inf, as
 * the reference's conversion gives -- and rounds that once into bfloat16/float16. A NaN
 * result is always the positive quiet NaN the reference produces. Dequantization and matmul,
 * like libmaia's other float kernels, assume the default environment (round to nearest, no
 * flush-to-zero).
 *
 * mx_matmul: out[m, n] = sum_j Xa[m,j] * Xb[n,j] * sum_i Pa[m,32j+i] * Pb[n,32j+i]. Each
 * block's dot product is accumulated in double in a fixed order (4 lanes over i = l mod 4,
 * combined as (lane0 + lane2) + (lane1 + lane3)); every product of two elements is exact in
 * double, and so is every partial sum except when one operand is MXFP8_E5M2 and the other
 * MXFP8_E5M2 or MXFP8_E4M3 (their integer spans exceed 53 bits). The block sum is scaled by
 * Xa * Xb exactly (a power of two; no underflow or overflow is possible in double), the
 * blocks are accumulated in double in order j = 0, 1, ..., and the total is rounded once
 * (RNE) to the output dtype. The AVX2 and portable paths run the same operations in the same
 * order, so results do not depend on the CPU or the thread count.
 *
 * Performance model: quantize and dequantize are memory-bound (flops 0, bytes read +
 * written, unique elements as for every kernel); mx_matmul counts 2 * M * N * 32 * blocks
 * flops (whole blocks, as the tensor unit processes them) at the MX rate of the wider
 * element format: MAIA_COMPUTE_MX8 (FP8 rate; also INT8 and FP6) or MAIA_COMPUTE_MX4 (FP4
 * rate, both operands MXFP4).
 */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_internal.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define MX_X86 1
#include <immintrin.h>
#endif

#define BLK 32

/* Tests: force the portable paths (maia_mx_set_portable). */
static _Atomic int g_portable;

void maia_mx_set_portable(int level) { g_portable = level < 0 ? 0 : level > 2 ? 2 : level; }

/* ---- formats -------------------------------------------------------------------------- */

typedef struct mxfmt {
    const char *name;
    int bits, ebits, mbits, bias, emax, emin;
    uint32_t maxcode; /* largest finite magnitude code (saturation) */
    int has_inf, has_nan, is_int;
    int bb; /* bytes per block */
} mxfmt;

static const mxfmt FORMATS[MAIA_MX_FORMAT_COUNT] = {
    [MAIA_MXFP8_E4M3] = {"mxfp8_e4m3", 8, 4, 3, 7, 8, -6, 0x7eu, 0, 1, 0, 32},
    [MAIA_MXFP8_E5M2] = {"mxfp8_e5m2", 8, 5, 2, 15, 15, -14, 0x7bu, 1, 1, 0, 32},
    [MAIA_MXFP6_E3M2] = {"mxfp6_e3m2", 6, 3, 2, 3, 4, -2, 0x1fu, 0, 0, 0, 24},
    [MAIA_MXFP6_E2M3] = {"mxfp6_e2m3", 6, 2, 3, 1, 2, 0, 0x1fu, 0, 0, 0, 24},
    [MAIA_MXFP4_E2M1] = {"mxfp4_e2m1", 4, 2, 1, 1, 2, 0, 0x7u, 0, 0, 0, 16},
    [MAIA_MXINT8] = {"mxint8", 8, 0, 6, 0, 0, 0, 0x7fu, 0, 0, 1, 32},
};

static const mxfmt *fmt_of(int32_t code) {
    return code > MAIA_MX_NONE && code < MAIA_MX_FORMAT_COUNT ? &FORMATS[code] : NULL;
}

static inline uint64_t d2u(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

/* floor(log2(x)) of a positive finite float32 magnitude `a` (bits, sign cleared). */
static inline int f32_ilog2(uint32_t a) {
    uint32_t E = a >> 23;
    return E ? (int)E - 127 : 31 - __builtin_clz(a) - 149;
}

/* Round-to-nearest-even of m * 2^-sh (m < 2^25), as an unsigned integer. sh may be <= 0
 * only where the caller knows the result is small. */
static inline uint32_t rne_shift(uint32_t m, int sh) {
    if (sh <= 0) return m << -sh;
    if (sh > 25) return 0;
    uint32_t n = m >> sh, rem = m & ((1u << sh) - 1u), half = 1u << (sh - 1);
    return n + (rem > half || (rem == half && (n & 1u)));
}

/* The element code of float32 bits `u` (finite, or NaN/Inf for formats encoding them)
 * divided by 2^e. */
static inline uint8_t encode(uint32_t u, int e, const mxfmt *f) {
    uint32_t a = u & 0x7fffffffu, sign = u >> 31;
    if (f->is_int) {
        if (a == 0) return 0;
        uint32_t m = a >> 23 ? (a & 0x7fffffu) | 0x800000u : a;
        int q = a >> 23 ? (int)(a >> 23) - 150 : -149; /* |V| = m * 2^q */
        int sh = e - q - 6;                             /* |V| / 2^e * 64 = m * 2^-sh */
        uint32_t n = sh < -8 ? 255u : rne_shift(m, sh);
        if (sign) return (uint8_t)(0u - (n > 128u ? 128u : n));
        return (uint8_t)(n > 127u ? 127u : n);
    }
    uint32_t s = sign << (f->bits - 1);
    if (a >= 0x7f800000u) {
        if (a > 0x7f800000u) return (uint8_t)((1u << (f->bits - 1)) - 1u); /* NaN: S.1111.111 */
        return (uint8_t)(s | (((1u << f->ebits) - 1u) << f->mbits));  /* Inf (E5M2) */
    }
    if (a == 0) return (uint8_t)s;
    uint32_t m = a >> 23 ? (a & 0x7fffffu) | 0x800000u : a;
    int q = a >> 23 ? (int)(a >> 23) - 150 : -149;
    int top = 31 - __builtin_clz(m);
    int ey = top + q - e; /* floor(log2(|V| / 2^e)) */
    int ee = ey > f->emin ? ey : f->emin;
    if (ey > f->emax + 1) return (uint8_t)(s | f->maxcode); /* beyond the format: saturate */
    uint32_t n = rne_shift(m, ee - f->mbits - q + e);         /* in units of 2^(ee - mbits) */
    if (n >= (2u << f->mbits)) { /* rounded up to the next power of two */
        n >>= 1;
        ee++;
    }
    uint32_t code = n >= (1u << f->mbits)
                        ? ((uint32_t)(ee + f->bias) << f->mbits) | (n - (1u << f->mbits))
                        : n;
    return (uint8_t)(s | (code > f->maxcode ? f->maxcode : code));
}

/* The fast path of encode() for a block of finite values, in float32 arithmetic: y = x / 2^e
 * is exact except below 2^-126, where every format's code is +-0 either way; the rounding to
 * the element grid is (a + 2^(q+23)) - 2^(q+23), exact RNE to a multiple of 2^q. Needs the
 * default floating-point environment (see fp_env_default); gives encode()'s codes. */
static void encode_block_fast(const mxfmt *f, const float *x, int e, uint8_t *codes) {
    float inv = e == 127 ? u2f(0x00400000u) : u2f((uint32_t)(127 - e) << 23); /* 2^-e */
    if (f->is_int) {
        for (int i = 0; i < BLK; i++) {
            float t = x[i] * inv;
            t = t < -2.0f ? -2.0f : t;
            t = t > 127.0f / 64.0f ? 127.0f / 64.0f : t;
            t = (t * 64.0f + 12582912.0f) - 12582912.0f; /* RNE to an integer: 1.5 * 2^23 */
            codes[i] = (uint8_t)(int32_t)t;
        }
        return;
    }
    const float maxn = u2f(((uint32_t)(f->maxcode >> f->mbits) - (uint32_t)f->bias + 127u) << 23 |
                           (f->maxcode & ((1u << f->mbits) - 1u)) << (23 - f->mbits));
    const float min_normal = u2f((uint32_t)(f->emin + 127) << 23);
    const float sub_scale = u2f((uint32_t)(f->mbits - f->emin + 127) << 23); /* 1 / quantum */
    const uint32_t rebias = (uint32_t)(127 - f->bias) << f->mbits;
    const int shift = 23 - f->mbits, sbit = f->bits - 1;
    for (int i = 0; i < BLK; i++) {
        float y = x[i] * inv;
        uint32_t sign = (f2u(y) >> 31) << sbit;
        float a = u2f(f2u(y) & 0x7fffffffu);
        a = a < maxn ? a : maxn; /* saturate */
        int ex = (int)(f2u(a) >> 23) - 127;
        int qe = (ex > f->emin ? ex : f->emin) - f->mbits;
        float c = u2f((uint32_t)(qe + 150) << 23);
        float r = (a + c) - c;
        uint32_t normal = (f2u(r) >> shift) - rebias;
        uint32_t sub = (uint32_t)(int32_t)(r * sub_scale);
        uint32_t is_normal = 0u - (uint32_t)(r >= min_normal); /* a mask: no branch */
        codes[i] = (uint8_t)(sign | (normal & is_normal) | (sub & ~is_normal));
    }
}

#ifdef MX_X86
/* encode_block_fast with AVX2: the same operations, 8 elements at a time. */
__attribute__((target("avx2"))) static void encode_block_avx2(const mxfmt *f, const float *x,
                                                               int e, uint8_t *codes) {
    const float inv = e == 127 ? u2f(0x00400000u) : u2f((uint32_t)(127 - e) << 23);
    const __m256 vinv = _mm256_set1_ps(inv);
    __m256i out[4];
    if (f->is_int) {
        const __m256 lo = _mm256_set1_ps(-2.0f), hi = _mm256_set1_ps(127.0f / 64.0f);
        const __m256 k64 = _mm256_set1_ps(64.0f), magic = _mm256_set1_ps(12582912.0f);
        for (int v = 0; v < 4; v++) {
            __m256 t = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * v), vinv);
            t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
            t = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(t, k64), magic), magic);
            out[v] = _mm256_and_si256(_mm256_cvttps_epi32(t), _mm256_set1_epi32(0xff));
        }
    } else {
        const __m256 maxn = _mm256_set1_ps(
            u2f(((uint32_t)(f->maxcode >> f->mbits) - (uint32_t)f->bias + 127u) << 23 |
                (f->maxcode & ((1u << f->mbits) - 1u)) << (23 - f->mbits)));
        const __m256 min_normal = _mm256_set1_ps(u2f((uint32_t)(f->emin + 127) << 23));
        const __m256 sub_scale = _mm256_set1_ps(u2f((uint32_t)(f->mbits - f->emin + 127) << 23));
        const __m256i rebias = _mm256_set1_epi32((int32_t)((127 - f->bias) << f->mbits));
        const __m256i emin = _mm256_set1_epi32(f->emin), k = _mm256_set1_epi32(150 - f->mbits);
        const __m256i absmask = _mm256_set1_epi32(0x7fffffff), k127 = _mm256_set1_epi32(127);
        const __m128i shift = _mm_cvtsi32_si128(23 - f->mbits);
        const __m128i sshift = _mm_cvtsi32_si128(32 - f->bits); /* sign bit -> bit bits-1 */
        for (int v = 0; v < 4; v++) {
            __m256i y = _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * v), vinv));
            __m256i sign = _mm256_srl_epi32(_mm256_andnot_si256(absmask, y), sshift);
            __m256 a = _mm256_min_ps(_mm256_castsi256_ps(_mm256_and_si256(y, absmask)), maxn);
            __m256i ex = _mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(a), 23), k127);
            ex = _mm256_max_epi32(ex, emin);
            __m256 c = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ex, k), 23));
            __m256 r = _mm256_sub_ps(_mm256_add_ps(a, c), c);
            __m256i rb = _mm256_castps_si256(r);
            __m256i normal = _mm256_sub_epi32(_mm256_srl_epi32(rb, shift), rebias);
            __m256i sub = _mm256_cvttps_epi32(_mm256_mul_ps(r, sub_scale));
            __m256i is_normal = _mm256_castps_si256(_mm256_cmp_ps(r, min_normal, _CMP_GE_OQ));
            out[v] = _mm256_or_si256(sign, _mm256_blendv_epi8(sub, normal, is_normal));
        }
    }
    __m256i p = _mm256_packus_epi16(_mm256_packus_epi32(out[0], out[1]),
                                    _mm256_packus_epi32(out[2], out[3]));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)codes, p);
}

/* max |x_i| of a block of 32, as float32 bits (NaN and Inf compare above every finite). */
__attribute__((target("avx2"))) static uint32_t amax_bits_avx2(const float *x) {
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    __m256i m = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)x), absmask);
    for (int v = 1; v < 4; v++)
        m = _mm256_max_epu32(m, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + 8 * v)),
                                                 absmask));
    __m128i h = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
    h = _mm_max_epu32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_max_epu32(h, _mm_shuffle_epi32(h, 0xb1));
    return (uint32_t)_mm_cvtsi128_si32(h);
}
#endif

/* 1 when this thread rounds to nearest, keeps subnormals and evaluates float in float. */
static int fp_env_default(void) {
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0
    return 0;
#else
    if (fegetround() != FE_TONEAREST) return 0;
#ifdef MX_X86
    return (_mm_getcsr() & 0x8040u) == 0; /* FTZ, DAZ */
#else
    return 1;
#endif
#endif
}

/* Quantize one block of `cnt` (1..32) float32 values: its scale code, and 32 codes. */
enum { Q_EXACT = 0, Q_FLOAT = 1, Q_AVX2 = 2 }; /* quantize paths: identical codes */

static uint8_t quantize_block(const mxfmt *f, const float *x, int cnt, uint8_t *codes,
                              int path) {
    uint32_t amax = 0, special = 0;
#ifdef MX_X86
    if (path == Q_AVX2 && cnt == BLK) {
        amax = amax_bits_avx2(x);
    } else
#endif
        for (int i = 0; i < cnt; i++) {
            uint32_t a = f2u(x[i]) & 0x7fffffffu;
            amax = a > amax ? a : amax;
        }
    if (amax >= 0x7f800000u) { /* a NaN or an infinity: the exact path, amax of the finite */
        int nan_scale = 0;
        amax = 0;
        for (int i = 0; i < cnt; i++) {
            uint32_t a = f2u(x[i]) & 0x7fffffffu;
            if (a < 0x7f800000u) {
                if (a > amax) amax = a;
            } else if (a == 0x7f800000u) {
                nan_scale |= !f->has_inf;
            } else {
                nan_scale |= !f->has_nan;
            }
        }
        if (nan_scale) {
            memset(codes, 0, BLK);
            return 0xff;
        }
        special = 1;
    }
    int e = -127;
    if (amax) {
        e = f32_ilog2(amax) - f->emax;
        if (e < -127) e = -127;
        if (e > 127) e = 127;
    }
    if (path != Q_EXACT && !special && cnt == BLK) {
#ifdef MX_X86
        if (path == Q_AVX2) {
            encode_block_avx2(f, x, e, codes);
            return (uint8_t)(e + 127);
        }
#endif
        encode_block_fast(f, x, e, codes);
    } else {
        for (int i = 0; i < cnt; i++) codes[i] = encode(f2u(x[i]), e, f);
        for (int i = cnt; i < BLK; i++) codes[i] = 0;
    }
    return (uint8_t)(e + 127);
}

static void pack_block(int bits, const uint8_t *codes, uint8_t *out) {
    if (bits == 8) {
        memcpy(out, codes, BLK);
    } else if (bits == 4) {
        for (int i = 0; i < BLK / 2; i++)
            out[i] = (uint8_t)((codes[2 * i] & 0xfu) | ((codes[2 * i + 1] & 0xfu) << 4));
    } else {
        for (int g = 0; g < BLK / 4; g++) {
            uint32_t w = (codes[4 * g] & 0x3fu) | (uint32_t)(codes[4 * g + 1] & 0x3fu) << 6 |
                         (uint32_t)(codes[4 * g + 2] & 0x3fu) << 12 |
                         (uint32_t)(codes[4 * g + 3] & 0x3fu) << 18;
            out[3 * g] = (uint8_t)w;
            out[3 * g + 1] = (uint8_t)(w >> 8);
            out[3 * g + 2] = (uint8_t)(w >> 16);
        }
    }
}

static void unpack_block(int bits, const uint8_t *in, uint8_t *codes) {
    if (bits == 8) {
        memcpy(codes, in, BLK);
    } else if (bits == 4) {
        for (int i = 0; i < BLK / 2; i++) {
            codes[2 * i] = in[i] & 0xfu;
            codes[2 * i + 1] = in[i] >> 4;
        }
    } else {
        for (int g = 0; g < BLK / 4; g++) {
            uint32_t w = in[3 * g] | (uint32_t)in[3 * g + 1] << 8 | (uint32_t)in[3 * g + 2] << 16;
            codes[4 * g] = w & 0x3fu;
            codes[4 * g + 1] = (w >> 6) & 0x3fu;
            codes[4 * g + 2] = (w >> 12) & 0x3fu;
            codes[4 * g + 3] = (w >> 18) & 0x3fu;
        }
    }
}

/* The value of every element code (NaN codes: the positive quiet NaN). */
static void decode_table(const mxfmt *f, float *table) {
    int ncodes = 1 << f->bits;
    for (int c = 0; c < ncodes; c++) {
        if (f->is_int) {
            table[c] = (float)(c >= 128 ? c - 256 : c) / 64.0f;
            continue;
        }
        int sign = (c >> (f->bits - 1)) & 1;
        int ef = (c >> f->mbits) & ((1 << f->ebits) - 1);
        int mant = c & ((1 << f->mbits) - 1);
        float v;
        if (f->has_inf && ef == (1 << f->ebits) - 1)
            v = mant ? NAN : INFINITY;
        else if (f->has_nan && ef == (1 << f->ebits) - 1 && mant == (1 << f->mbits) - 1)
            v = NAN;
        else if (ef == 0)
            v = ldexpf((float)mant, f->emin - f->mbits);
        else
            v = ldexpf((float)(mant + (1 << f->mbits)), ef - f->bias - f->mbits);
        table[c] = isnan(v) ? u2f(0x7fc00000u) : sign ? -v : v;
    }
}

/* E8M0 scale code -> float32 (2^-127 is a float32 subnormal; 255 is NaN). */
static inline float scale_f32(uint8_t c) {
    if (c == 0xff) return u2f(0x7fc00000u);
    return c == 0 ? u2f(0x00400000u) : u2f((uint32_t)c << 23);
}

/* double -> an IEEE binary format with `mbits` mantissa bits and bias `bias` (float16,
 * bfloat16): one rounding, to nearest even, overflowing to infinity; NaN -> the positive
 * quiet NaN. */
static uint16_t f64_to_ieee16(double x, int mbits, int bias) {
    uint64_t u = d2u(x), a = u & 0x7fffffffffffffffull;
    uint16_t sign = (uint16_t)((u >> 63) << 15);
    uint16_t expmask = (uint16_t)(((1u << (15 - mbits)) - 1u) << mbits);
    if (a > 0x7ff0000000000000ull) return (uint16_t)(expmask | (1u << (mbits - 1)));
    if (a == 0x7ff0000000000000ull) return (uint16_t)(sign | expmask);
    int e = (int)(a >> 52) - 1023;
    if (e >= 1 - bias) { /* normal (or overflowing) */
        int sh = 52 - mbits;
        a += (1ull << (sh - 1)) - 1u + ((a >> sh) & 1u);
        a >>= sh; /* (biased double exponent << mbits) | mantissa, after any carry */
        int e2 = (int)(a >> mbits) - 1023;
        if (e2 > bias) return (uint16_t)(sign | expmask);
        return (uint16_t)(sign | ((uint32_t)(e2 + bias) << mbits) | (a & ((1u << mbits) - 1u)));
    }
    /* subnormal: units of 2^(1 - bias - mbits); |x| * 2^(bias - 1 + mbits) < 2^mbits */
    double t = ldexp(fabs(x), bias - 1 + mbits);
    return (uint16_t)(sign | (uint16_t)nearbyint(t));
}

static inline void store_f32_out(int32_t dt, char *base, int64_t off, float v) {
    if (isnan(v)) v = u2f(0x7fc00000u);
    switch (dt) {
    case MAIA_FLOAT32: ((float *)base)[off] = v; return;
    case MAIA_BFLOAT16: ((uint16_t *)base)[off] = maia_f32_to_bf16(v); return;
    default: ((uint16_t *)base)[off] = maia_f32_to_f16(v); return;
    }
}

static inline void store_f64_out(int32_t dt, char *base, int64_t off, double v) {
    switch (dt) {
    case MAIA_FLOAT32: ((float *)base)[off] = isnan(v) ? u2f(0x7fc00000u) : (float)v; return;
    case MAIA_BFLOAT16: ((uint16_t *)base)[off] = f64_to_ieee16(v, 7, 127); return;
    default: ((uint16_t *)base)[off] = f64_to_ieee16(v, 10, 15); return;
    }
}

/* ---- validation ------------------------------------------------------------------------- */

static int is_io_float(int32_t dt) {
    return dt == MAIA_FLOAT32 || dt == MAIA_BFLOAT16 || dt == MAIA_FLOAT16;
}

static int check_2d(const maia_view *v, const char *kernel, const char *what, int64_t rows,
                    int64_t cols, int want_u8, mk_status *st) {
    if (v->ndim != 2)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: %s must be 2-D, got %d dimension(s)",
                       kernel, what, (int)v->ndim);
    if (want_u8 && v->dtype != MAIA_UINT8)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: %s must be uint8, got %s", kernel, what,
                       mk_dtype_name(v->dtype));
    if (!want_u8 && !is_io_float(v->dtype))
        return mk_fail(st, MAIA_KERNEL_UNSUPPORTED,
                       "%s: %s must be float32, bfloat16 or float16, got %s", kernel, what,
                       mk_dtype_name(v->dtype));
    if ((rows >= 0 && v->shape[0] != rows) || (cols >= 0 && v->shape[1] != cols))
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "%s: %s has shape (%lld, %lld), expected (%lld, %lld)", kernel, what,
                       (long long)v->shape[0], (long long)v->shape[1],
                       (long long)(rows >= 0 ? rows : v->shape[0]),
                       (long long)(cols >= 0 ? cols : v->shape[1]));
    return MAIA_KERNEL_OK;
}

static const mxfmt *check_format(int32_t code, const char *kernel, const char *what,
                                 mk_status *st) {
    const mxfmt *f = fmt_of(code);
    if (!f)
        mk_fail(st, MAIA_KERNEL_INVALID,
                "%s: %s is not an MX format code (%d; 1..%d are mxfp8_e4m3, mxfp8_e5m2, "
                "mxfp6_e3m2, mxfp6_e2m3, mxfp4_e2m1, mxint8)",
                kernel, what, (int)code, MAIA_MX_FORMAT_COUNT - 1);
    return f;
}

static int thread_count(const maia_kernel_call *call) {
    int t = call->threads < 1 ? 1 : call->threads;
    return t > 256 ? 256 : t;
}

/* ---- mx_quantize ------------------------------------------------------------------------ */

static int cpu_avx2_fma(void);

#define QCHUNK 64 /* blocks loaded per row segment */

typedef struct q_ctx {
    const mxfmt *f;
    int64_t n, blocks;
    int32_t xdt;
    const char *x, *el, *sc; /* sc, el: outputs (written) */
    int64_t xrs, xcs, ers, ecs, srs, scs;
    size_t xes;
    int path; /* Q_EXACT, Q_FLOAT or Q_AVX2 (the float ones where the environment allows) */
} q_ctx;

static void quantize_range(void *vc, int64_t begin, int64_t end) {
    const q_ctx *c = (const q_ctx *)vc;
    const mxfmt *f = c->f;
    float buf[QCHUNK * BLK];
    uint8_t codes[BLK], packed[BLK];
    int path = c->path == Q_EXACT || !fp_env_default() ? Q_EXACT : c->path;
    for (int64_t b = begin; b < end;) {
        int64_t r = b / c->blocks, j0 = b % c->blocks;
        int64_t jn = c->blocks - j0;
        if (jn > end - b) jn = end - b;
        if (jn > QCHUNK) jn = QCHUNK;
        int64_t i0 = j0 * BLK, cnt = jn * BLK;
        if (cnt > c->n - i0) cnt = c->n - i0;
        mk_load_f32(c->xdt, c->x + (r * c->xrs + i0 * c->xcs) * (int64_t)c->xes, c->xcs,
                    (size_t)cnt, buf);
        for (int64_t j = 0; j < jn; j++) {
            int64_t left = cnt - j * BLK;
            uint8_t s =
                quantize_block(f, buf + j * BLK, left < BLK ? (int)left : BLK, codes, path);
            uint8_t *sp = (uint8_t *)c->sc + r * c->srs + (j0 + j) * c->scs;
            *sp = s;
            uint8_t *ep = (uint8_t *)c->el + r * c->ers + (j0 + j) * f->bb * c->ecs;
            if (c->ecs == 1) {
                pack_block(f->bits, codes, ep);
            } else {
                pack_block(f->bits, codes, packed);
                for (int k = 0; k < f->bb; k++) ep[k * c->ecs] = packed[k];
            }
        }
        b += jn;
    }
}

static int mx_quantize(const maia_kernel_call *call, maia_kernel_cost *cost, mk_status *st) {
    static const char *K = "mx_quantize";
    if (mk_check_counts(call, 1, 2, st)) return st->code;
    const mxfmt *f = check_format(call->attrs.mx_format, K, "attribute format", st);
    if (!f) return st->code;
    const maia_view *X = &call->inputs[0], *E = &call->outputs[0], *S = &call->outputs[1];
    if (check_2d(X, K, "x", -1, -1, 0, st)) return st->code;
    int64_t R = X->shape[0], n = X->shape[1], blocks = (n + BLK - 1) / BLK;
    if (check_2d(E, K, "elements", R, blocks * f->bb, 1, st)) return st->code;
    if (check_2d(S, K, "scales", R, blocks, 1, st)) return st->code;
    q_ctx c = {f, n, blocks, X->dtype, (const char *)X->data, (const char *)E->data,
               (const char *)S->data, X->strides[0], X->strides[1], E->strides[0],
               E->strides[1], S->strides[0], S->strides[1], mk_elsize(X->dtype),
               g_portable == 2 ? Q_EXACT : g_portable == 1 || !cpu_avx2_fma() ? Q_FLOAT : Q_AVX2};
    cost->flops = 0;
    cost->bytes_moved = mk_view_unique(X) * (double)c.xes + mk_view_unique(E) + mk_view_unique(S);
    cost->compute_dtype = X->dtype;
    int64_t total = R * blocks;
    if (total == 0) return MAIA_KERNEL_OK;
    mk_parallel_for(thread_count(call), total, 2048, quantize_range, &c);
    return MAIA_KERNEL_OK;
}

/* ---- mx_dequantize ---------------------------------------------------------------------- */

typedef struct dq_ctx {
    const mxfmt *f;
    int64_t n, blocks;
    int32_t ydt;
    const char *el, *sc, *y;
    int64_t ers, ecs, srs, scs, yrs, ycs;
    float table[256];
} dq_ctx;

/* The bb bytes of block j of row r, contiguous (a pointer into the operand or into tmp). */
static inline const uint8_t *block_bytes(const char *el, int64_t rs, int64_t cs, int bb,
                                         int64_t r, int64_t j, uint8_t *tmp) {
    const uint8_t *p = (const uint8_t *)el + r * rs + j * bb * cs;
    if (cs == 1) return p;
    for (int k = 0; k < bb; k++) tmp[k] = p[k * cs];
    return tmp;
}

static void dequantize_range(void *vc, int64_t begin, int64_t end) {
    const dq_ctx *c = (const dq_ctx *)vc;
    const mxfmt *f = c->f;
    uint8_t codes[BLK], tmp[BLK];
    for (int64_t b = begin; b < end; b++) {
        int64_t r = b / c->blocks, j = b % c->blocks;
        unpack_block(f->bits, block_bytes(c->el, c->ers, c->ecs, f->bb, r, j, tmp), codes);
        float s = scale_f32(((const uint8_t *)c->sc)[r * c->srs + j * c->scs]);
        int64_t i0 = j * BLK, cnt = c->n - i0 < BLK ? c->n - i0 : BLK;
        char *y = (char *)c->y;
        int64_t off = r * c->yrs + i0 * c->ycs;
        if (c->ydt == MAIA_FLOAT32 && !isnan(s)) {
            float *yp = (float *)y + off;
            for (int64_t i = 0; i < cnt; i++) {
                float v = c->table[codes[i]] * s; /* exact, or +-inf on float32 overflow */
                yp[i * c->ycs] = v == v ? v : u2f(0x7fc00000u);
            }
        } else {
            for (int64_t i = 0; i < cnt; i++)
                store_f32_out(c->ydt, y, off + i * c->ycs, c->table[codes[i]] * s);
        }
    }
}

static int mx_dequantize(const maia_kernel_call *call, maia_kernel_cost *cost, mk_status *st) {
    static const char *K = "mx_dequantize";
    if (mk_check_counts(call, 2, 1, st)) return st->code;
    const mxfmt *f = check_format(call->attrs.mx_format, K, "attribute format", st);
    if (!f) return st->code;
    const maia_view *E = &call->inputs[0], *S = &call->inputs[1], *Y = &call->outputs[0];
    int64_t n = call->attrs.mx_n;
    if (n < 0)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: attribute n is negative (%lld)", K,
                       (long long)n);
    if (check_2d(Y, K, "y", -1, n, 0, st)) return st->code;
    int64_t R = Y->shape[0], blocks = (n + BLK - 1) / BLK;
    if (check_2d(E, K, "elements", R, blocks * f->bb, 1, st)) return st->code;
    if (check_2d(S, K, "scales", R, blocks, 1, st)) return st->code;
    dq_ctx *c = (dq_ctx *)malloc(sizeof *c);
    if (!c) return mk_fail(st, MAIA_KERNEL_INVALID, "%s: out of host memory", K);
    c->f = f;
    c->n = n;
    c->blocks = blocks;
    c->ydt = Y->dtype;
    c->el = (const char *)E->data;
    c->sc = (const char *)S->data;
    c->y = (const char *)Y->data;
    c->ers = E->strides[0];
    c->ecs = E->strides[1];
    c->srs = S->strides[0];
    c->scs = S->strides[1];
    c->yrs = Y->strides[0];
    c->ycs = Y->strides[1];
    decode_table(f, c->table);
    cost->flops = 0;
    cost->bytes_moved =
        mk_view_unique(E) + mk_view_unique(S) + mk_view_unique(Y) * (double)mk_elsize(Y->dtype);
    cost->compute_dtype = Y->dtype;
    int64_t total = R * blocks;
    if (total > 0) mk_parallel_for(thread_count(call), total, 2048, dequantize_range, c);
    free(c);
    return MAIA_KERNEL_OK;
}

/* ---- mx_matmul -------------------------------------------------------------------------- */

/* Host memory for decoded operands of one mx_matmul (see mx_matmul); a variable so that
 * tests can exercise the panel loop on small problems. */
static _Atomic long long g_mm_work_bytes = 512ll << 20;

void maia_mx_set_work_bytes(long long bytes) { g_mm_work_bytes = bytes > 0 ? bytes : 512ll << 20; }

typedef struct mm_mx_ctx {
    const mxfmt *fa, *fb;
    int64_t M, N, k, blocks, kp; /* kp = blocks * 32 */
    int32_t odt;
    const char *ae, *as, *be, *bs;
    char *out;
    int64_t aers, aecs, asrs, ascs, bers, becs, bsrs, bscs, ors, ocs;
    /* the panels being computed: rows [m0, m0 + mp) of a against rows [n0, n0 + np) of b,
     * decoded into da (mp x kp), db (np x kp), zero beyond k, and sa, sb (mp x blocks,
     * np x blocks; NaN for 0xff); indices into them are panel-local */
    int64_t m0, mp, n0, np;
    double *da, *db;
    double *sa, *sb;
    double ta[256], tb[256];
    int avx2;
    int64_t nb; /* B rows per cache tile */
} mm_mx_ctx;

/* Decode rows [begin, end) of the mp + np rows of the two panels. */
static void mm_decode_range(void *vc, int64_t begin, int64_t end) {
    mm_mx_ctx *c = (mm_mx_ctx *)vc;
    uint8_t codes[BLK], tmp[BLK];
    for (int64_t row = begin; row < end; row++) {
        int is_a = row < c->mp;
        int64_t local = is_a ? row : row - c->mp, r = local + (is_a ? c->m0 : c->n0);
        const mxfmt *f = is_a ? c->fa : c->fb;
        const char *el = is_a ? c->ae : c->be, *sc = is_a ? c->as : c->bs;
        int64_t ers = is_a ? c->aers : c->bers, ecs = is_a ? c->aecs : c->becs;
        int64_t srs = is_a ? c->asrs : c->bsrs, scs = is_a ? c->ascs : c->bscs;
        const double *table = is_a ? c->ta : c->tb;
        double *d = (is_a ? c->da : c->db) + local * c->kp;
        double *s = (is_a ? c->sa : c->sb) + local * c->blocks;
        for (int64_t j = 0; j < c->blocks; j++) {
            unpack_block(f->bits, block_bytes(el, ers, ecs, f->bb, r, j, tmp), codes);
            int64_t cnt = c->k - j * BLK < BLK ? c->k - j * BLK : BLK;
            for (int64_t i = 0; i < BLK; i++) d[j * BLK + i] = i < cnt ? table[codes[i]] : 0.0;
            uint8_t code = ((const uint8_t *)sc)[r * srs + j * scs];
            s[j] = code == 0xff ? NAN : ldexp(1.0, (int)code - 127);
        }
    }
}

static void mm_decode_b_range(void *vc, int64_t begin, int64_t end) {
    const mm_mx_ctx *c = (const mm_mx_ctx *)vc;
    mm_decode_range(vc, begin + c->mp, end + c->mp);
}

static void mm_decode_b(mm_mx_ctx *c, int threads) {
    mk_parallel_for(threads, c->np, 64, mm_decode_b_range, c);
}

/* sum_j (dot_j * sa[j]) * sb[j] for rows a, b: the portable path. */
static double dot_generic(const double *a, const double *b, const double *sa, const double *sb,
                          int64_t blocks) {
    double t = 0.0;
    for (int64_t j = 0; j < blocks; j++) {
        const double *x = a + j * BLK, *y = b + j * BLK;
        double l0 = 0.0, l1 = 0.0, l2 = 0.0, l3 = 0.0;
        for (int i = 0; i < BLK; i += 4) {
            l0 += x[i] * y[i]; /* exact products: a fused multiply-add rounds the same */
            l1 += x[i + 1] * y[i + 1];
            l2 += x[i + 2] * y[i + 2];
            l3 += x[i + 3] * y[i + 3];
        }
        double d = (l0 + l2) + (l1 + l3);
        t += (d * sa[j]) * sb[j];
    }
    return t;
}

#ifdef MX_X86
__attribute__((target("avx2,fma"))) static inline double hsum_lanes(__m256d v) {
    /* (lane0 + lane2) + (lane1 + lane3), as dot_generic */
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* Two rows of A against two rows of B: out[0..3] = (a0,b0), (a0,b1), (a1,b0), (a1,b1). */
__attribute__((target("avx2,fma"))) static void
dot2x2_avx2(const double *a0, const double *a1, const double *b0, const double *b1,
            const double *sa0, const double *sa1, const double *sb0, const double *sb1,
            int64_t blocks, double *out) {
    double t00 = 0.0, t01 = 0.0, t10 = 0.0, t11 = 0.0;
    for (int64_t j = 0; j < blocks; j++) {
        __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
        __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
        const double *x0 = a0 + j * BLK, *x1 = a1 + j * BLK;
        const double *y0 = b0 + j * BLK, *y1 = b1 + j * BLK;
        for (int i = 0; i < BLK; i += 4) {
            __m256d va0 = _mm256_loadu_pd(x0 + i), va1 = _mm256_loadu_pd(x1 + i);
            __m256d vb0 = _mm256_loadu_pd(y0 + i), vb1 = _mm256_loadu_pd(y1 + i);
            c00 = _mm256_fmadd_pd(va0, vb0, c00);
            c01 = _mm256_fmadd_pd(va0, vb1, c01);
            c10 = _mm256_fmadd_pd(va1, vb0, c10);
            c11 = _mm256_fmadd_pd(va1, vb1, c11);
        }
        t00 += (hsum_lanes(c00) * sa0[j]) * sb0[j];
        t01 += (hsum_lanes(c01) * sa0[j]) * sb1[j];
        t10 += (hsum_lanes(c10) * sa1[j]) * sb0[j];
        t11 += (hsum_lanes(c11) * sa1[j]) * sb1[j];
    }
    out[0] = t00;
    out[1] = t01;
    out[2] = t10;
    out[3] = t11;
}
#endif

static void dot2x2(const mm_mx_ctx *c, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                   double *out) {
    const double *a0 = c->da + m0 * c->kp, *a1 = c->da + m1 * c->kp;
    const double *b0 = c->db + n0 * c->kp, *b1 = c->db + n1 * c->kp;
    const double *sa0 = c->sa + m0 * c->blocks, *sa1 = c->sa + m1 * c->blocks;
    const double *sb0 = c->sb + n0 * c->blocks, *sb1 = c->sb + n1 * c->blocks;
#ifdef MX_X86
    if (c->avx2) {
        dot2x2_avx2(a0, a1, b0, b1, sa0, sa1, sb0, sb1, c->blocks, out);
        return;
    }
#endif
    out[0] = dot_generic(a0, b0, sa0, sb0, c->blocks);
    out[1] = dot_generic(a0, b1, sa0, sb1, c->blocks);
    out[2] = dot_generic(a1, b0, sa1, sb0, c->blocks);
    out[3] = dot_generic(a1, b1, sa1, sb1, c->blocks);
}

/* Panel rows [begin, end) of a, in row pairs, against tiles of the panel's b rows (column
 * pairs); writes out[m0 + m, n0 + n]. */
static void mm_rows(void *vc, int64_t begin, int64_t end) {
    const mm_mx_ctx *c = (const mm_mx_ctx *)vc;
    double r[4];
    for (int64_t t0 = 0; t0 < c->np; t0 += c->nb) {
        int64_t t1 = t0 + c->nb < c->np ? t0 + c->nb : c->np;
        for (int64_t m = begin; m < end; m += 2) {
            int64_t m2 = m + 1 < end ? m + 1 : m; /* an odd last row pairs with itself */
            int64_t o1 = (c->m0 + m) * c->ors, o2 = (c->m0 + m2) * c->ors;
            for (int64_t n = t0; n < t1; n += 2) {
                int64_t nn = n + 1 < t1 ? n + 1 : n;
                int64_t p1 = (c->n0 + n) * c->ocs, p2 = (c->n0 + nn) * c->ocs;
                dot2x2(c, m, m2, n, nn, r);
                store_f64_out(c->odt, c->out, o1 + p1, r[0]);
                if (nn != n) store_f64_out(c->odt, c->out, o1 + p2, r[1]);
                if (m2 != m) {
                    store_f64_out(c->odt, c->out, o2 + p1, r[2]);
                    if (nn != n) store_f64_out(c->odt, c->out, o2 + p2, r[3]);
                }
            }
        }
    }
}

static void mm_rows_paired(void *vc, int64_t begin, int64_t end) {
    const mm_mx_ctx *c = (const mm_mx_ctx *)vc;
    /* ranges are over row pairs, so a pair is never split between threads */
    int64_t r0 = 2 * begin, r1 = 2 * end < c->mp ? 2 * end : c->mp;
    mm_rows(vc, r0, r1);
}

static int cpu_avx2_fma(void) {
#ifdef MX_X86
    if (g_portable) return 0;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int mx_matmul(const maia_kernel_call *call, maia_kernel_cost *cost, mk_status *st) {
    static const char *K = "mx_matmul";
    if (mk_check_counts(call, 4, 1, st)) return st->code;
    const mxfmt *fa = check_format(call->attrs.mx_format, K, "attribute a_format", st);
    if (!fa) return st->code;
    const mxfmt *fb = check_format(call->attrs.mx_b_format, K, "attribute b_format", st);
    if (!fb) return st->code;
    const maia_view *AE = &call->inputs[0], *AS = &call->inputs[1], *BE = &call->inputs[2],
                    *BS = &call->inputs[3], *O = &call->outputs[0];
    int64_t k = call->attrs.mx_n;
    if (k < 0)
        return mk_fail(st, MAIA_KERNEL_INVALID, "%s: attribute k is negative (%lld)", K,
                       (long long)k);
    if (check_2d(O, K, "out", -1, -1, 0, st)) return st->code;
    int64_t M = O->shape[0], N = O->shape[1], blocks = (k + BLK - 1) / BLK;
    if (check_2d(AE, K, "a_elements", M, blocks * fa->bb, 1, st)) return st->code;
    if (check_2d(AS, K, "a_scales", M, blocks, 1, st)) return st->code;
    if (check_2d(BE, K, "b_elements", N, blocks * fb->bb, 1, st)) return st->code;
    if (check_2d(BS, K, "b_scales", N, blocks, 1, st)) return st->code;

    double flops = 2.0 * (double)M * (double)N * (double)(blocks * BLK);
    cost->flops = flops;
    cost->bytes_moved = mk_view_unique(AE) + mk_view_unique(AS) + mk_view_unique(BE) +
                        mk_view_unique(BS) + mk_view_unique(O) * (double)mk_elsize(O->dtype);
    cost->compute_dtype = (fa->bits > 4 || fb->bits > 4) ? MAIA_COMPUTE_MX8 : MAIA_COMPUTE_MX4;
    if (M == 0 || N == 0) return MAIA_KERNEL_OK;

    mm_mx_ctx *c = (mm_mx_ctx *)calloc(1, sizeof *c);
    if (!c) return mk_fail(st, MAIA_KERNEL_INVALID, "%s: out of host memory", K);
    c->fa = fa;
    c->fb = fb;
    c->M = M;
    c->N = N;
    c->k = k;
    c->blocks = blocks;
    c->kp = blocks * BLK;
    c->odt = O->dtype;
    c->ae = (const char *)AE->data;
    c->as = (const char *)AS->data;
    c->be = (const char *)BE->data;
    c->bs = (const char *)BS->data;
    c->out = (char *)O->data;
    c->aers = AE->strides[0];
    c->aecs = AE->strides[1];
    c->asrs = AS->strides[0];
    c->ascs = AS->strides[1];
    c->bers = BE->strides[0];
    c->becs = BE->strides[1];
    c->bsrs = BS->strides[0];
    c->bscs = BS->strides[1];
    c->ors = O->strides[0];
    c->ocs = O->strides[1];
    c->avx2 = cpu_avx2_fma();
    float tf[256];
    decode_table(fa, tf);
    for (int i = 0; i < (1 << fa->bits); i++) c->ta[i] = tf[i];
    decode_table(fb, tf);
    for (int i = 0; i < (1 << fb->bits); i++) c->tb[i] = tf[i];
    /* a tile of B rows that stays in cache (~256 KiB) while a row range passes over it */
    c->nb = (int64_t)(256 * 1024 / 8) / (c->kp ? c->kp : 1);
    if (c->nb < 2) c->nb = 2;
    c->nb &= ~(int64_t)1;

    /* Decoded panels take (kp + blocks) doubles a row; up to 512 MiB of them at once:
     * a problem that fits is decoded once; a larger one in panels of a's and b's rows (b's
     * decoded again for each panel of a's, a small cost at these panel sizes). */
    int rc = MAIA_KERNEL_OK;
    double row_bytes = ((double)c->kp + (double)blocks) * 8.0;
    double fit = (double)g_mm_work_bytes / row_bytes; /* rows that fit the budget */
    if (fit >= (double)(M + N)) {
        c->mp = M;
        c->np = N;
    } else {
        int64_t half = fit / 2 >= 1 ? (int64_t)(fit / 2) : 1;
        c->mp = M < half ? M : half;
        int64_t rest = fit - (double)c->mp >= 1 ? (int64_t)(fit - (double)c->mp) : 1;
        c->np = N < rest ? N : rest;
    }
    double need = (double)(c->mp + c->np) * row_bytes;
    if (need > (double)(SIZE_MAX / 4)) {
        rc = mk_fail(st, MAIA_KERNEL_INVALID, "%s: k is too large for host work buffers", K);
    } else {
        size_t nel = (size_t)((c->mp + c->np) * c->kp), nsc = (size_t)((c->mp + c->np) * blocks);
        c->da = (double *)malloc((nel ? nel : 1) * sizeof(double));
        c->sa = (double *)malloc((nsc ? nsc : 1) * sizeof(double));
        if (!c->da || !c->sa) {
            rc = mk_fail(st, MAIA_KERNEL_INVALID,
                         "%s: out of host memory for decoded operands (%.0f bytes)", K, need);
        } else {
            c->db = c->da + c->mp * c->kp;
            c->sb = c->sa + c->mp * blocks;
            int threads = thread_count(call);
            if (flops < (double)(1 << 21)) threads = 1;
            int64_t mp = c->mp, np = c->np;
            for (c->m0 = 0; c->m0 < M; c->m0 += mp) {
                c->mp = M - c->m0 < mp ? M - c->m0 : mp;
                for (c->n0 = 0; c->n0 < N; c->n0 += np) {
                    c->np = N - c->n0 < np ? N - c->n0 : np;
                    c->db = c->da + c->mp * c->kp; /* right after this panel of a */
                    c->sb = c->sa + c->mp * blocks;
                    if (c->n0 == 0)
                        mk_parallel_for(threads, c->mp + c->np, 64, mm_decode_range, c);
                    else /* a's panel is decoded already: only b's */
                        mm_decode_b(c, threads);
                    int64_t pairs = (c->mp + 1) / 2;
                    double per_pair = 4.0 * (double)c->np * (double)c->kp; /* multiply-adds */
                    double want = (double)(1 << 20);                        /* per chunk */
                    int64_t grain = per_pair >= want ? 1 : (int64_t)(want / (per_pair + 1.0)) + 1;
                    mk_parallel_for(threads, pairs, grain, mm_rows_paired, c);
                }
            }
        }
    }
    free(c->da);
    free(c->sa);
    free(c);
    return rc;
}

/* ---- entry ------------------------------------------------------------------------------ */

int mk_mx(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st) {
    switch (op) {
    case MX_QUANTIZE: return mx_quantize(call, cost, st);
    case MX_DEQUANTIZE: return mx_dequantize(call, cost, st);
    default: return mx_matmul(call, cost, st);
    }
}

int mk_mx_supports(int32_t dtype) { return is_io_float(dtype); }

/* Exposed for tests (maia_kernels.h). */
uint8_t maia_mx_encode(int32_t format, float value, int32_t scale_exponent) {
    const mxfmt *f = fmt_of(format);
    if (!f || scale_exponent < -127 || scale_exponent > 127) return 0;
    return encode(f2u(value), scale_exponent, f);
}

float maia_mx_decode(int32_t format, uint8_t code) {
    const mxfmt *f = fmt_of(format);
    if (!f) return u2f(0x7fc00000u);
    float table[256];
    decode_table(f, table);
    return table[code & ((1u << f->bits) - 1u)];
}
