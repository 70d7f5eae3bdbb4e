/* Element formats: bfloat16, float16, float8_e4m3fn and float8_e5m2 to and from float32,
 * bit-exact round-to-nearest-even (ties to even), and the chunk loaders/storers every kernel
 * uses to move between a strided operand and a contiguous compute buffer.
 *
 * NaN encodings (matching NumPy's float16 and ml_dtypes):
 *   bfloat16   f32 NaN -> 0x7fc0 / 0xffc0 (sign kept);
 *   float16    f32 NaN -> 0x7c00 | payload >> 13 (1 if that is 0), sign kept (NumPy);
 *   e5m2       f32 NaN -> 0x7e / 0xfe (sign kept), infinities to 0x7c / 0xfc;
 *   e4m3fn     no infinities: NaN, +-inf and overflow (|x| >= 464 after rounding) -> 0x7f / 0xff.
 * Decoding float16 NaNs keeps their payload (so every float16 code round-trips exactly).
 */
#include <math.h>
#include <string.h>

#include "kernels_internal.h"

/* ---- bfloat16 --------------------------------------------------------------------------- */

float maia_bf16_to_f32(uint16_t v) { return u2f((uint32_t)v << 16); }

uint16_t maia_f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(((u >> 16) & 0x8000u) | 0x7fc0u);
    u += 0x7fffu + ((u >> 16) & 1u); /* carries into the exponent, up to infinity */
    return (uint16_t)(u >> 16);
}

/* ---- IEEE-like small formats ------------------------------------------------------------- */

typedef struct small_fmt {
    int mbits;       /* explicit mantissa bits */
    int bias;
    uint32_t maxcode; /* largest finite magnitude code */
    uint32_t ovf;     /* magnitude code for overflow and infinity */
    int fn;           /* 1: no infinities, the all-ones code is NaN (e4m3fn) */
} small_fmt;

static const small_fmt F16 = {10, 15, 0x7bffu, 0x7c00u, 0};
static const small_fmt E5M2 = {2, 15, 0x7bu, 0x7cu, 0};
static const small_fmt E4M3 = {3, 7, 0x7eu, 0x7fu, 1};

/* Round |x| (finite, f32 bits `a` without sign) to the format's magnitude code, RNE. */
static uint32_t encode_mag(uint32_t a, const small_fmt *fmt) {
    int E = (int)(a >> 23);
    if (E == 0) return 0; /* f32 zero/subnormal: far below every format's smallest subnormal */
    uint32_t m = (a & 0x7fffffu) | 0x800000u; /* 24-bit significand, value m * 2^(E-150) */
    int e = E - 127;
    int emin = 1 - fmt->bias;
    uint32_t code;
    if (e >= emin) {
        if (e > 127) return fmt->ovf;
        int sh = 23 - fmt->mbits;
        uint32_t rem = m & ((1u << sh) - 1u), half = 1u << (sh - 1);
        code = ((uint32_t)(e + fmt->bias) << fmt->mbits) + ((m & 0x7fffffu) >> sh);
        if (rem > half || (rem == half && (code & 1u))) code++;
    } else {
        /* subnormal: units of 2^(emin - mbits) */
        int sh = 23 + emin - fmt->mbits - e;
        if (sh > 24) return 0;
        uint32_t rem = m & ((1u << sh) - 1u), half = 1u << (sh - 1);
        code = m >> sh;
        if (rem > half || (rem == half && (code & 1u))) code++;
    }
    if (code > fmt->maxcode) return fmt->ovf;
    return code;
}

static uint32_t encode_small(float f, const small_fmt *fmt, int total_bits) {
    uint32_t u = f2u(f);
    uint32_t sign = (u >> 31) << (total_bits - 1);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) { /* NaN */
        if (fmt->fn) return sign | 0x7fu;
        if (fmt->mbits == 10) {
            uint32_t p = (a & 0x7fffffu) >> 13;
            return sign | 0x7c00u | (p ? p : 1u);
        }
        return sign | fmt->ovf | (1u << (fmt->mbits - 1));
    }
    if (a == 0x7f800000u) return sign | fmt->ovf;
    return sign | encode_mag(a, fmt);
}

static float decode_small(uint32_t v, const small_fmt *fmt, int total_bits) {
    uint32_t sign = (v >> (total_bits - 1)) & 1u;
    uint32_t mag = v & ((1u << (total_bits - 1)) - 1u);
    uint32_t mant = mag & ((1u << fmt->mbits) - 1u);
    uint32_t expf_ = mag >> fmt->mbits;
    uint32_t out;
    if (fmt->fn ? mag == fmt->ovf : mag >= fmt->ovf) {
        if (!fmt->fn && mant == 0)
            out = 0x7f800000u;
        else if (fmt->mbits == 10)
            out = 0x7f800000u | (mant << 13);
        else
            out = 0x7fc00000u;
    } else if (expf_ == 0) {
        float r = ldexpf((float)mant, 1 - fmt->bias - fmt->mbits);
        return sign ? -r : r;
    } else {
        out = ((expf_ - (uint32_t)fmt->bias + 127u) << 23) | (mant << (23 - fmt->mbits));
    }
    return u2f(out | (sign << 31));
}

float maia_f16_to_f32(uint16_t v) { return decode_small(v, &F16, 16); }
uint16_t maia_f32_to_f16(float f) { return (uint16_t)encode_small(f, &F16, 16); }
float maia_f8e4m3_to_f32(uint8_t v) { return decode_small(v, &E4M3, 8); }
uint8_t maia_f32_to_f8e4m3(float f) { return (uint8_t)encode_small(f, &E4M3, 8); }
float maia_f8e5m2_to_f32(uint8_t v) { return decode_small(v, &E5M2, 8); }
uint8_t maia_f32_to_f8e5m2(float f) { return (uint8_t)encode_small(f, &E5M2, 8); }

/* ---- dtype facts --------------------------------------------------------------------------- */

int mk_dtype_valid(int32_t dt) { return dt >= 0 && dt < MAIA_DTYPE_COUNT; }

int mk_kind(int32_t dt) {
    switch (dt) {
    case MAIA_BOOL: return MK_KIND_BOOL;
    case MAIA_INT8: case MAIA_INT16: case MAIA_INT32: case MAIA_INT64: return MK_KIND_SINT;
    case MAIA_UINT8: case MAIA_UINT16: case MAIA_UINT32: case MAIA_UINT64: return MK_KIND_UINT;
    default: return MK_KIND_FLOAT;
    }
}

size_t mk_elsize(int32_t dt) {
    static const size_t sizes[MAIA_DTYPE_COUNT] = {1, 1, 2, 4, 8, 1, 2, 4, 8, 1, 1, 2, 2, 4};
    return mk_dtype_valid(dt) ? sizes[dt] : 0;
}

int mk_int_bits(int32_t dt) { return (int)mk_elsize(dt) * 8; }

const char *mk_dtype_name(int32_t dt) {
    static const char *const names[MAIA_DTYPE_COUNT] = {
        "bool",   "int8",   "int16",  "int32",          "int64",         "uint8",    "uint16",
        "uint32", "uint64", "float8_e4m3fn", "float8_e5m2", "bfloat16", "float16", "float32"};
    return mk_dtype_valid(dt) ? names[dt] : "invalid dtype";
}

/* ---- chunk loads and stores ------------------------------------------------------------- */

#define LOAD_LOOP(T, EXPR)                                                                     \
    do {                                                                                       \
        const T *q = (const T *)p;                                                             \
        for (size_t i = 0; i < n; i++) {                                                       \
            T v = q[(int64_t)i * s];                                                           \
            out[i] = (EXPR);                                                                   \
        }                                                                                      \
    } while (0)

#define STORE_LOOP(T, EXPR)                                                                    \
    do {                                                                                       \
        T *q = (T *)p;                                                                         \
        for (size_t i = 0; i < n; i++) q[(int64_t)i * s] = (EXPR);                             \
    } while (0)

void mk_load_f32(int32_t dt, const void *p, int64_t s, size_t n, float *out) {
    switch (dt) {
    case MAIA_FLOAT32:
        if (s == 1) {
            memcpy(out, p, n * 4);
            return;
        }
        LOAD_LOOP(float, v);
        return;
    case MAIA_FLOAT16: LOAD_LOOP(uint16_t, maia_f16_to_f32(v)); return;
    case MAIA_BFLOAT16: LOAD_LOOP(uint16_t, maia_bf16_to_f32(v)); return;
    case MAIA_FLOAT8_E4M3FN: LOAD_LOOP(uint8_t, maia_f8e4m3_to_f32(v)); return;
    case MAIA_FLOAT8_E5M2: LOAD_LOOP(uint8_t, maia_f8e5m2_to_f32(v)); return;
    case MAIA_BOOL: LOAD_LOOP(uint8_t, v ? 1.0f : 0.0f); return;
    case MAIA_INT8: LOAD_LOOP(int8_t, (float)v); return;
    case MAIA_INT16: LOAD_LOOP(int16_t, (float)v); return;
    case MAIA_INT32: LOAD_LOOP(int32_t, (float)v); return;
    case MAIA_INT64: LOAD_LOOP(int64_t, (float)v); return;
    case MAIA_UINT8: LOAD_LOOP(uint8_t, (float)v); return;
    case MAIA_UINT16: LOAD_LOOP(uint16_t, (float)v); return;
    case MAIA_UINT32: LOAD_LOOP(uint32_t, (float)v); return;
    case MAIA_UINT64: LOAD_LOOP(uint64_t, (float)v); return;
    default: return;
    }
}

void mk_store_f32(int32_t dt, void *p, int64_t s, size_t n, const float *in) {
    switch (dt) {
    case MAIA_FLOAT32:
        if (s == 1) {
            memcpy(p, in, n * 4);
            return;
        }
        STORE_LOOP(float, in[i]);
        return;
    case MAIA_FLOAT16: STORE_LOOP(uint16_t, maia_f32_to_f16(in[i])); return;
    case MAIA_BFLOAT16: STORE_LOOP(uint16_t, maia_f32_to_bf16(in[i])); return;
    case MAIA_FLOAT8_E4M3FN: STORE_LOOP(uint8_t, maia_f32_to_f8e4m3(in[i])); return;
    case MAIA_FLOAT8_E5M2: STORE_LOOP(uint8_t, maia_f32_to_f8e5m2(in[i])); return;
    case MAIA_BOOL: STORE_LOOP(uint8_t, (uint8_t)(in[i] != 0.0f)); return;
    default: mk_store_f32_as_int(dt, p, s, n, in); return;
    }
}

/* float -> integer: NaN -> 0; truncate toward zero; a value that fits int64 (uint64 for a
 * uint64 target) wraps modulo 2^width into the target, as C does on x86-64 and NumPy does for
 * the narrow types; beyond that (and +-inf) saturate to the target's range. */
int64_t mk_f64_to_int_bits(double x, int32_t dt) {
    int bits = mk_int_bits(dt);
    int is_signed = mk_kind(dt) == MK_KIND_SINT;
    if (isnan(x)) return 0;
    double t = trunc(x);
    uint64_t v;
    if (t >= -9223372036854775808.0 && t < 9223372036854775808.0) {
        v = (uint64_t)(int64_t)t;
    } else if (!is_signed && bits == 64 && t >= 0.0 && t < 18446744073709551616.0) {
        v = (uint64_t)t;
    } else if (t > 0) { /* saturate high */
        if (is_signed) return bits == 64 ? INT64_MAX : (int64_t)((1ull << (bits - 1)) - 1u);
        return bits == 64 ? -1 : (int64_t)((1ull << bits) - 1u);
    } else { /* saturate low */
        if (is_signed) return bits == 64 ? INT64_MIN : -(int64_t)(1ull << (bits - 1));
        return 0;
    }
    if (bits < 64) {
        v &= (1ull << bits) - 1u;
        if (is_signed && (v >> (bits - 1))) v |= ~((1ull << bits) - 1u); /* sign-extend */
    }
    return (int64_t)v;
}

void mk_store_f32_as_int(int32_t dt, void *p, int64_t s, size_t n, const float *in) {
    switch (dt) {
    case MAIA_INT8: STORE_LOOP(int8_t, (int8_t)mk_f64_to_int_bits(in[i], dt)); return;
    case MAIA_INT16: STORE_LOOP(int16_t, (int16_t)mk_f64_to_int_bits(in[i], dt)); return;
    case MAIA_INT32: STORE_LOOP(int32_t, (int32_t)mk_f64_to_int_bits(in[i], dt)); return;
    case MAIA_INT64: STORE_LOOP(int64_t, mk_f64_to_int_bits(in[i], dt)); return;
    case MAIA_UINT8: STORE_LOOP(uint8_t, (uint8_t)mk_f64_to_int_bits(in[i], dt)); return;
    case MAIA_UINT16: STORE_LOOP(uint16_t, (uint16_t)mk_f64_to_int_bits(in[i], dt)); return;
    case MAIA_UINT32: STORE_LOOP(uint32_t, (uint32_t)mk_f64_to_int_bits(in[i], dt)); return;
    case MAIA_UINT64: STORE_LOOP(uint64_t, (uint64_t)mk_f64_to_int_bits(in[i], dt)); return;
    case MAIA_BOOL: STORE_LOOP(uint8_t, (uint8_t)(in[i] != 0.0f)); return;
    default: mk_store_f32(dt, p, s, n, in); return;
    }
}

void mk_load_i64(int32_t dt, const void *p, int64_t s, size_t n, int64_t *out) {
    switch (dt) {
    case MAIA_BOOL: LOAD_LOOP(uint8_t, v != 0); return;
    case MAIA_INT8: LOAD_LOOP(int8_t, v); return;
    case MAIA_INT16: LOAD_LOOP(int16_t, v); return;
    case MAIA_INT32: LOAD_LOOP(int32_t, v); return;
    case MAIA_INT64:
        if (s == 1) {
            memcpy(out, p, n * 8);
            return;
        }
        LOAD_LOOP(int64_t, v);
        return;
    case MAIA_UINT8: LOAD_LOOP(uint8_t, (int64_t)v); return;
    case MAIA_UINT16: LOAD_LOOP(uint16_t, (int64_t)v); return;
    case MAIA_UINT32: LOAD_LOOP(uint32_t, (int64_t)v); return;
    case MAIA_UINT64: LOAD_LOOP(uint64_t, (int64_t)v); return;
    default: { /* floats: truncate with the defined behaviour of float -> int64 */
        float tmp[256];
        const char *c = (const char *)p;
        size_t es = mk_elsize(dt);
        for (size_t done = 0; done < n;) {
            size_t k = n - done < 256 ? n - done : 256;
            mk_load_f32(dt, c + (int64_t)done * s * (int64_t)es, s, k, tmp);
            for (size_t i = 0; i < k; i++) out[done + i] = mk_f64_to_int_bits(tmp[i], MAIA_INT64);
            done += k;
        }
        return;
    }
    }
}

/* int64 buffer -> dtype: integers wrap modulo 2^width; bool is != 0; floats round to
 * nearest from the value (signed interpretation). */
void mk_store_i64(int32_t dt, void *p, int64_t s, size_t n, const int64_t *in) {
    switch (dt) {
    case MAIA_BOOL: STORE_LOOP(uint8_t, (uint8_t)(in[i] != 0)); return;
    case MAIA_INT8: STORE_LOOP(int8_t, (int8_t)(uint8_t)(uint64_t)in[i]); return;
    case MAIA_INT16: STORE_LOOP(int16_t, (int16_t)(uint16_t)(uint64_t)in[i]); return;
    case MAIA_INT32: STORE_LOOP(int32_t, (int32_t)(uint32_t)(uint64_t)in[i]); return;
    case MAIA_INT64:
        if (s == 1) {
            memcpy(p, in, n * 8);
            return;
        }
        STORE_LOOP(int64_t, in[i]);
        return;
    case MAIA_UINT8: STORE_LOOP(uint8_t, (uint8_t)(uint64_t)in[i]); return;
    case MAIA_UINT16: STORE_LOOP(uint16_t, (uint16_t)(uint64_t)in[i]); return;
    case MAIA_UINT32: STORE_LOOP(uint32_t, (uint32_t)(uint64_t)in[i]); return;
    case MAIA_UINT64: STORE_LOOP(uint64_t, (uint64_t)in[i]); return;
    case MAIA_FLOAT32: STORE_LOOP(float, (float)in[i]); return;
    case MAIA_FLOAT16: STORE_LOOP(uint16_t, maia_f32_to_f16((float)in[i])); return;
    case MAIA_BFLOAT16: STORE_LOOP(uint16_t, maia_f32_to_bf16((float)in[i])); return;
    case MAIA_FLOAT8_E4M3FN: STORE_LOOP(uint8_t, maia_f32_to_f8e4m3((float)in[i])); return;
    case MAIA_FLOAT8_E5M2: STORE_LOOP(uint8_t, maia_f32_to_f8e5m2((float)in[i])); return;
    default: return;
    }
}

void mk_load_bool(int32_t dt, const void *p, int64_t s, size_t n, uint8_t *out) {
    switch (mk_elsize(dt)) {
    case 1:
        if (dt == MAIA_FLOAT8_E4M3FN || dt == MAIA_FLOAT8_E5M2)
            LOAD_LOOP(uint8_t, (uint8_t)((v & 0x7fu) != 0)); /* -0.0 is false */
        else
            LOAD_LOOP(uint8_t, (uint8_t)(v != 0));
        return;
    case 2:
        if (dt == MAIA_FLOAT16 || dt == MAIA_BFLOAT16)
            LOAD_LOOP(uint16_t, (uint8_t)((v & 0x7fffu) != 0));
        else
            LOAD_LOOP(uint16_t, (uint8_t)(v != 0));
        return;
    case 4:
        if (dt == MAIA_FLOAT32)
            LOAD_LOOP(uint32_t, (uint8_t)((v & 0x7fffffffu) != 0));
        else
            LOAD_LOOP(uint32_t, (uint8_t)(v != 0));
        return;
    case 8: LOAD_LOOP(uint64_t, (uint8_t)(v != 0)); return;
    default: return;
    }
}

void mk_store_bool(int32_t dt, void *p, int64_t s, size_t n, const uint8_t *in) {
    if (dt == MAIA_BOOL) {
        if (s == 1) {
            memcpy(p, in, n);
            return;
        }
        STORE_LOOP(uint8_t, in[i]);
        return;
    }
    int64_t tmp[256];
    size_t es = mk_elsize(dt);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < 256 ? n - done : 256;
        for (size_t i = 0; i < k; i++) tmp[i] = in[done + i] != 0;
        mk_store_i64(dt, (char *)p + (int64_t)done * s * (int64_t)es, s, k, tmp);
        done += k;
    }
}
