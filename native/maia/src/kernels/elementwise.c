/* Elementwise kernels over strided, broadcast (zero-stride) operands, for every dtype.
 *
 * Compute model: floats (float8_e4m3fn, float8_e5m2, bfloat16, float16, float32) compute in
 * float32 and round once per element into the output; signed integers compute in int64 and
 * unsigned ones in uint64, with wrapping (unsigned) arithmetic, and are truncated modulo
 * 2^width into the output, which is exactly the wrapped result at the narrow width; bools
 * compute as 0/1 bytes (any nonzero input byte reads as true).
 *
 * Defined behaviour where C or NumPy leaves it open (the kernels never trap):
 *   integer floor_divide / remainder by zero -> 0 (NumPy's value, without its warning);
 *   INT_MIN // -1 -> INT_MIN (wraps), INT_MIN % -1 -> 0;
 *   integer pow with a negative exponent -> 1 for x1 == 1, +-1 for x1 == -1, else 0 (the spec);
 *   shifts by a count < 0 or >= the width of the dtype: left -> 0; right -> 0, or -1 for a
 *   negative signed x1 (NumPy's definition); right shifts of signed values are arithmetic;
 *   abs/negative of INT_MIN -> INT_MIN (wraps);
 *   astype float -> int: NaN -> 0; truncation toward zero; values that fit int64 (uint64 for
 *   a uint64 target) wrap modulo 2^width (so -1.0 -> uint8 gives 255, as NumPy on x86-64);
 *   beyond that, and +-inf, saturate to the target's min/max;
 *   astype to bool: != 0 (NaN is true, -0.0 false); int -> float rounds to nearest even
 *   (through float32 for the narrow floats, as ml_dtypes does);
 *   astype's target is the output view's dtype (attrs.dtype is not consulted).
 */
#include <math.h>
#include <string.h>

#include "kernels_internal.h"

#define BLK 256

typedef struct ew_ctx {
    int op;
    int kind; /* compute kind */
    int nin;
    int32_t in_dt[MAIA_MAX_OPERANDS];
    int32_t out_dt;
    int bits; /* integer width of the compute dtype (shifts) */
    int has_min, has_max;
    int fast; /* the op and dtypes qualify for ew_fast (strides are checked per run) */
    mk_iter it;
} ew_ctx;

static int is_bool_out(int op) {
    return (op >= EW_ISNAN && op <= EW_SIGNBIT) || (op >= EW_EQUAL && op <= EW_GREATER_EQUAL);
}
static int is_binary(int op) { return op >= EW_ADD && op <= EW_GREATER_EQUAL; }

/* ---- float32 ops ------------------------------------------------------------------------- */

/* NumPy's npy_divmodf: floor division and the Python-convention remainder. */
static float f_divmod(float a, float b, float *modulus) {
    float mod = fmodf(a, b), div, floordiv;
    if (b == 0.0f) {
        *modulus = mod;
        return a / b;
    }
    div = (a - mod) / b;
    if (mod != 0.0f) {
        if ((b < 0) != (mod < 0)) {
            mod += b;
            div -= 1.0f;
        }
    } else {
        mod = copysignf(0.0f, b);
    }
    if (div != 0.0f) {
        floordiv = floorf(div);
        if (div - floordiv > 0.5f) floordiv += 1.0f;
    } else {
        floordiv = copysignf(0.0f, a / b);
    }
    *modulus = mod;
    return floordiv;
}

static float f_logaddexp(float x, float y) {
    if (x == y) return x + 0.693147180559945309417232121458176568f;
    float t = x - y;
    if (t > 0) return x + log1pf(expf(-t));
    if (t <= 0) return y + log1pf(expf(t));
    return t; /* NaN */
}

/* In double, and without cancellation: 0.5 * (1 + tanh(u)) is the sigmoid 1 / (1 + exp(-2u))
 * and 0.5 * (1 + erf(z)) is 0.5 * erfc(-z); the textbook forms lose every digit of the result
 * for negative x, where 1 + tanh(u) is a difference of two numbers close to 1. */
static float f_gelu(float x, int tanh_form) {
    if (x == -INFINITY) return -0.0f;
    double w = (double)x;
    if (tanh_form) {
        double inner = 0.7978845608028654 * (w + 0.044715 * (w * w * w));
        return (float)(w / (1.0 + exp(-2.0 * inner)));
    }
    return (float)(0.5 * w * erfc(-w / 1.4142135623730951));
}

static float f_silu(float x) {
    if (x == -INFINITY) return -0.0f;
    return x / (1.0f + expf(-x));
}

#define FL1(EXPR)                                                                              \
    for (size_t i = 0; i < n; i++) {                                                           \
        float x = a[0][i];                                                                     \
        o[i] = (EXPR);                                                                         \
    }                                                                                          \
    return
#define FL2(EXPR)                                                                              \
    for (size_t i = 0; i < n; i++) {                                                           \
        float x = a[0][i], y = a[1][i];                                                        \
        o[i] = (EXPR);                                                                         \
    }                                                                                          \
    return

static float f_max(float x, float y) { return (x >= y || x != x) ? x : y; }
static float f_min(float x, float y) { return (x <= y || x != x) ? x : y; }

static void f32_op(const ew_ctx *c, size_t n, const float *const *a, float *o) {
    float m;
    switch (c->op) {
    case EW_ABS: FL1(fabsf(x));
    case EW_NEGATIVE: FL1(-x);
    case EW_POSITIVE: case EW_CONJ: case EW_REAL: FL1(x);
    case EW_IMAG: FL1(((void)x, 0.0f));
    case EW_SIGN: FL1(x > 0 ? 1.0f : x < 0 ? -1.0f : x == 0 ? 0.0f : x);
    case EW_SQUARE: FL1(x * x);
    case EW_SQRT: FL1(sqrtf(x));
    case EW_EXP: FL1(expf(x));
    case EW_EXPM1: FL1(expm1f(x));
    case EW_LOG: FL1(logf(x));
    case EW_LOG1P: FL1(log1pf(x));
    case EW_LOG2: FL1(log2f(x));
    case EW_LOG10: FL1(log10f(x));
    case EW_SIN: FL1(sinf(x));
    case EW_COS: FL1(cosf(x));
    case EW_TAN: FL1(tanf(x));
    case EW_ASIN: FL1(asinf(x));
    case EW_ACOS: FL1(acosf(x));
    case EW_ATAN: FL1(atanf(x));
    case EW_SINH: FL1(sinhf(x));
    case EW_COSH: FL1(coshf(x));
    case EW_TANH: FL1(tanhf(x));
    case EW_ASINH: FL1(asinhf(x));
    case EW_ACOSH: FL1(acoshf(x));
    case EW_ATANH: FL1(atanhf(x));
    case EW_RECIPROCAL: FL1(1.0f / x);
    case EW_FLOOR: FL1(floorf(x));
    case EW_CEIL: FL1(ceilf(x));
    case EW_TRUNC: FL1(truncf(x));
    case EW_ROUND: FL1(nearbyintf(x)); /* half to even in the default rounding mode */
    case EW_RELU: FL1(x < 0 ? 0.0f : x);
    case EW_GELU: FL1(f_gelu(x, 0));
    case EW_GELU_TANH: FL1(f_gelu(x, 1));
    case EW_SILU: FL1(f_silu(x));
    case EW_ADD: FL2(x + y);
    case EW_SUBTRACT: FL2(x - y);
    case EW_MULTIPLY: FL2(x * y);
    case EW_DIVIDE: FL2(x / y);
    case EW_FLOOR_DIVIDE: FL2(y == 0.0f ? x / y : f_divmod(x, y, &m));
    case EW_REMAINDER: FL2(y == 0.0f ? fmodf(x, y) : (f_divmod(x, y, &m), m));
    case EW_POW: FL2(powf(x, y));
    case EW_MAXIMUM: FL2(f_max(x, y));
    case EW_MINIMUM: FL2(f_min(x, y));
    case EW_ATAN2: FL2(atan2f(x, y));
    case EW_HYPOT: FL2(hypotf(x, y));
    case EW_COPYSIGN: FL2(copysignf(x, y));
    case EW_LOGADDEXP: FL2(f_logaddexp(x, y));
    case EW_CLIP: {
        int k = 1;
        const float *lo = c->has_min ? a[k++] : NULL;
        const float *hi = c->has_max ? a[k++] : NULL;
        for (size_t i = 0; i < n; i++) {
            float x = a[0][i];
            if (lo) x = f_max(x, lo[i]);
            if (hi) x = f_min(x, hi[i]);
            o[i] = x;
        }
        return;
    }
    default: memset(o, 0, n * sizeof *o); return;
    }
}

#define BL1(EXPR)                                                                              \
    for (size_t i = 0; i < n; i++) {                                                           \
        float x = a[0][i];                                                                     \
        o[i] = (uint8_t)(EXPR);                                                                \
    }                                                                                          \
    return
#define BL2(EXPR)                                                                              \
    for (size_t i = 0; i < n; i++) {                                                           \
        float x = a[0][i], y = a[1][i];                                                        \
        o[i] = (uint8_t)(EXPR);                                                                \
    }                                                                                          \
    return

static void f32_op_bool(const ew_ctx *c, size_t n, const float *const *a, uint8_t *o) {
    switch (c->op) {
    case EW_ISNAN: BL1(isnan(x) != 0);
    case EW_ISINF: BL1(isinf(x) != 0);
    case EW_ISFINITE: BL1(isfinite(x) != 0);
    case EW_SIGNBIT: BL1(signbit(x) != 0);
    case EW_EQUAL: BL2(x == y);
    case EW_NOT_EQUAL: BL2(x != y);
    case EW_LESS: BL2(x < y);
    case EW_LESS_EQUAL: BL2(x <= y);
    case EW_GREATER: BL2(x > y);
    case EW_GREATER_EQUAL: BL2(x >= y);
    default: memset(o, 0, n); return;
    }
}

/* ---- integer ops ------------------------------------------------------------------------- */

static int64_t wrap(uint64_t u) { return (int64_t)u; }

static uint64_t upow(uint64_t x, uint64_t y) {
    uint64_t r = 1;
    while (y) {
        if (y & 1u) r *= x;
        x *= x;
        y >>= 1;
    }
    return r;
}

static int64_t s_floordiv(int64_t x, int64_t y) {
    if (y == 0) return 0;
    if (y == -1) return wrap(0u - (uint64_t)x);
    int64_t q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
    return q;
}
static int64_t s_rem(int64_t x, int64_t y) {
    if (y == 0 || y == -1) return 0;
    int64_t r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return r;
}
static int64_t s_pow(int64_t x, int64_t y) {
    if (y < 0) return x == 1 ? 1 : x == -1 ? ((y & 1) ? -1 : 1) : 0;
    return wrap(upow((uint64_t)x, (uint64_t)y));
}
static int64_t s_shl(int64_t x, int64_t y, int bits) {
    return (y < 0 || y >= bits) ? 0 : wrap((uint64_t)x << y);
}
static int64_t s_shr(int64_t x, int64_t y, int bits) {
    if (y < 0 || y >= bits) return x < 0 ? -1 : 0;
    return x < 0 ? ~(~x >> y) : x >> y;
}

#define IL1(EXPR)                                                                              \
    for (size_t i = 0; i < n; i++) {                                                           \
        int64_t x = a[0][i];                                                                   \
        o[i] = (EXPR);                                                                         \
    }                                                                                          \
    return
#define IL2(EXPR)                                                                              \
    for (size_t i = 0; i < n; i++) {                                                           \
        int64_t x = a[0][i], y = a[1][i];                                                      \
        o[i] = (EXPR);                                                                         \
    }                                                                                          \
    return

static void i64_op(const ew_ctx *c, size_t n, const int64_t *const *a, int64_t *o) {
    int bits = c->bits;
    switch (c->op) {
    case EW_ABS: IL1(x < 0 ? wrap(0u - (uint64_t)x) : x);
    case EW_NEGATIVE: IL1(wrap(0u - (uint64_t)x));
    case EW_POSITIVE: case EW_CONJ: case EW_REAL: case EW_FLOOR: case EW_CEIL: case EW_TRUNC:
    case EW_ROUND: IL1(x);
    case EW_IMAG: IL1(x & 0);
    case EW_SIGN: IL1((x > 0) - (x < 0));
    case EW_SQUARE: IL1(wrap((uint64_t)x * (uint64_t)x));
    case EW_BITWISE_INVERT: IL1(~x);
    case EW_RELU: IL1(x < 0 ? 0 : x);
    case EW_ADD: IL2(wrap((uint64_t)x + (uint64_t)y));
    case EW_SUBTRACT: IL2(wrap((uint64_t)x - (uint64_t)y));
    case EW_MULTIPLY: IL2(wrap((uint64_t)x * (uint64_t)y));
    case EW_FLOOR_DIVIDE: IL2(s_floordiv(x, y));
    case EW_REMAINDER: IL2(s_rem(x, y));
    case EW_POW: IL2(s_pow(x, y));
    case EW_MAXIMUM: IL2(x >= y ? x : y);
    case EW_MINIMUM: IL2(x <= y ? x : y);
    case EW_BITWISE_AND: IL2(x & y);
    case EW_BITWISE_OR: IL2(x | y);
    case EW_BITWISE_XOR: IL2(x ^ y);
    case EW_LEFT_SHIFT: IL2(s_shl(x, y, bits));
    case EW_RIGHT_SHIFT: IL2(s_shr(x, y, bits));
    case EW_CLIP: {
        int k = 1;
        const int64_t *lo = c->has_min ? a[k++] : NULL;
        const int64_t *hi = c->has_max ? a[k++] : NULL;
        for (size_t i = 0; i < n; i++) {
            int64_t x = a[0][i];
            if (lo && lo[i] > x) x = lo[i];
            if (hi && hi[i] < x) x = hi[i];
            o[i] = x;
        }
        return;
    }
    default: memset(o, 0, n * sizeof *o); return;
    }
}

#define UL1(EXPR)                                                                              \
    for (size_t i = 0; i < n; i++) {                                                           \
        uint64_t x = a[0][i];                                                                  \
        o[i] = (EXPR);                                                                         \
    }                                                                                          \
    return
#define UL2(EXPR)                                                                              \
    for (size_t i = 0; i < n; i++) {                                                           \
        uint64_t x = a[0][i], y = a[1][i];                                                     \
        o[i] = (EXPR);                                                                         \
    }                                                                                          \
    return

static void u64_op(const ew_ctx *c, size_t n, const uint64_t *const *a, uint64_t *o) {
    uint64_t bits = (uint64_t)c->bits;
    switch (c->op) {
    case EW_ABS: case EW_POSITIVE: case EW_CONJ: case EW_REAL: case EW_FLOOR: case EW_CEIL:
    case EW_TRUNC: case EW_ROUND: case EW_RELU: UL1(x);
    case EW_NEGATIVE: UL1(0u - x);
    case EW_IMAG: UL1(x & 0u);
    case EW_SIGN: UL1(x != 0);
    case EW_SQUARE: UL1(x * x);
    case EW_BITWISE_INVERT: UL1(~x);
    case EW_ADD: UL2(x + y);
    case EW_SUBTRACT: UL2(x - y);
    case EW_MULTIPLY: UL2(x * y);
    case EW_FLOOR_DIVIDE: UL2(y ? x / y : 0u);
    case EW_REMAINDER: UL2(y ? x % y : 0u);
    case EW_POW: UL2(upow(x, y));
    case EW_MAXIMUM: UL2(x >= y ? x : y);
    case EW_MINIMUM: UL2(x <= y ? x : y);
    case EW_BITWISE_AND: UL2(x & y);
    case EW_BITWISE_OR: UL2(x | y);
    case EW_BITWISE_XOR: UL2(x ^ y);
    case EW_LEFT_SHIFT: UL2(y >= bits ? 0u : x << y);
    case EW_RIGHT_SHIFT: UL2(y >= bits ? 0u : x >> y);
    case EW_CLIP: {
        int k = 1;
        const uint64_t *lo = c->has_min ? a[k++] : NULL;
        const uint64_t *hi = c->has_max ? a[k++] : NULL;
        for (size_t i = 0; i < n; i++) {
            uint64_t x = a[0][i];
            if (lo && lo[i] > x) x = lo[i];
            if (hi && hi[i] < x) x = hi[i];
            o[i] = x;
        }
        return;
    }
    default: memset(o, 0, n * sizeof *o); return;
    }
}

static void int_op_bool(const ew_ctx *c, size_t n, const int64_t *const *a, uint8_t *o) {
    int u = c->kind == MK_KIND_UINT;
    for (size_t i = 0; i < n; i++) {
        int64_t x = a[0][i], y = is_binary(c->op) ? a[1][i] : 0;
        uint64_t ux = (uint64_t)x, uy = (uint64_t)y;
        int r = 0;
        switch (c->op) {
        case EW_ISFINITE: r = 1; break;
        case EW_EQUAL: r = x == y; break;
        case EW_NOT_EQUAL: r = x != y; break;
        case EW_LESS: r = u ? ux < uy : x < y; break;
        case EW_LESS_EQUAL: r = u ? ux <= uy : x <= y; break;
        case EW_GREATER: r = u ? ux > uy : x > y; break;
        case EW_GREATER_EQUAL: r = u ? ux >= uy : x >= y; break;
        default: r = 0; break; /* isnan, isinf, signbit */
        }
        o[i] = (uint8_t)r;
    }
}

static void bool_op(const ew_ctx *c, size_t n, const uint8_t *const *a, uint8_t *o) {
    for (size_t i = 0; i < n; i++) {
        uint8_t x = a[0][i], y = is_binary(c->op) ? a[1][i] : 0;
        uint8_t r;
        switch (c->op) {
        case EW_EQUAL: r = x == y; break;
        case EW_NOT_EQUAL: case EW_LOGICAL_XOR: case EW_BITWISE_XOR: r = x != y; break;
        case EW_LOGICAL_AND: case EW_BITWISE_AND: r = x && y; break;
        case EW_LOGICAL_OR: case EW_BITWISE_OR: r = x || y; break;
        case EW_LOGICAL_NOT: case EW_BITWISE_INVERT: r = !x; break;
        default: r = 0; break;
        }
        o[i] = r;
    }
}

/* ---- the chunked inner loop ------------------------------------------------------------- */

static char *at(char *p, size_t done, int64_t stride, int32_t dt) {
    return p + (int64_t)done * stride * (int64_t)mk_elsize(dt);
}

static void ew_float(const ew_ctx *c, size_t n, char **ptrs, const int64_t *st) {
    float ib[MAIA_MAX_OPERANDS][BLK], ob[BLK];
    uint8_t bb[BLK];
    int bool_out = is_bool_out(c->op);
    int direct[MAIA_MAX_OPERANDS + 1], all_direct = 1;
    for (int i = 0; i < c->nin; i++) {
        direct[i] = c->in_dt[i] == MAIA_FLOAT32 && st[i] == 1;
        all_direct &= direct[i];
    }
    direct[c->nin] = st[c->nin] == 1 && c->out_dt == (bool_out ? MAIA_BOOL : MAIA_FLOAT32);
    all_direct &= direct[c->nin];
    for (size_t done = 0; done < n;) {
        size_t k = all_direct ? n - done : (n - done < BLK ? n - done : BLK);
        const float *a[MAIA_MAX_OPERANDS] = {NULL, NULL, NULL, NULL};
        for (int i = 0; i < c->nin; i++) {
            if (direct[i]) {
                a[i] = (const float *)ptrs[i] + done;
            } else {
                mk_load_f32(c->in_dt[i], at(ptrs[i], done, st[i], c->in_dt[i]), st[i], k, ib[i]);
                a[i] = ib[i];
            }
        }
        char *op = at(ptrs[c->nin], done, st[c->nin], c->out_dt);
        if (bool_out) {
            uint8_t *o = direct[c->nin] ? (uint8_t *)op : bb;
            f32_op_bool(c, k, a, o);
            if (!direct[c->nin]) mk_store_bool(c->out_dt, op, st[c->nin], k, bb);
        } else {
            float *o = direct[c->nin] ? (float *)op : ob;
            f32_op(c, k, a, o);
            if (!direct[c->nin]) mk_store_f32(c->out_dt, op, st[c->nin], k, ob);
        }
        done += k;
    }
}

static void ew_int(const ew_ctx *c, size_t n, char **ptrs, const int64_t *st) {
    int64_t ib[MAIA_MAX_OPERANDS][BLK], ob[BLK];
    uint8_t bb[BLK];
    int bool_out = is_bool_out(c->op);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < BLK ? n - done : BLK;
        const int64_t *a[MAIA_MAX_OPERANDS] = {NULL, NULL, NULL, NULL};
        for (int i = 0; i < c->nin; i++) {
            mk_load_i64(c->in_dt[i], at(ptrs[i], done, st[i], c->in_dt[i]), st[i], k, ib[i]);
            a[i] = ib[i];
        }
        char *op = at(ptrs[c->nin], done, st[c->nin], c->out_dt);
        if (bool_out) {
            int_op_bool(c, k, a, bb);
            mk_store_bool(c->out_dt, op, st[c->nin], k, bb);
        } else {
            if (c->kind == MK_KIND_UINT) {
                const uint64_t *ua[MAIA_MAX_OPERANDS] = {NULL, NULL, NULL, NULL};
                uint64_t uo[BLK];
                for (int i = 0; i < c->nin; i++) ua[i] = (const uint64_t *)a[i];
                u64_op(c, k, ua, uo);
                for (size_t i = 0; i < k; i++) ob[i] = (int64_t)uo[i];
            } else {
                i64_op(c, k, a, ob);
            }
            mk_store_i64(c->out_dt, op, st[c->nin], k, ob);
        }
        done += k;
    }
}

static void ew_bool(const ew_ctx *c, size_t n, char **ptrs, const int64_t *st) {
    uint8_t ib[MAIA_MAX_OPERANDS][BLK], ob[BLK];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < BLK ? n - done : BLK;
        const uint8_t *a[MAIA_MAX_OPERANDS] = {NULL, NULL, NULL, NULL};
        for (int i = 0; i < c->nin; i++) {
            mk_load_bool(c->in_dt[i], at(ptrs[i], done, st[i], c->in_dt[i]), st[i], k, ib[i]);
            a[i] = ib[i];
        }
        bool_op(c, k, a, ob);
        mk_store_bool(c->out_dt, at(ptrs[c->nin], done, st[c->nin], c->out_dt), st[c->nin], k,
                      ob);
        done += k;
    }
}

/* nextafter steps the storage format itself (not float32), on the bit patterns. */
static uint32_t raw_get(const char *p, size_t es) {
    if (es == 1) return *(const uint8_t *)p;
    if (es == 2) return *(const uint16_t *)p;
    return *(const uint32_t *)p;
}
static void raw_put(char *p, size_t es, uint32_t v) {
    if (es == 1)
        *(uint8_t *)p = (uint8_t)v;
    else if (es == 2)
        *(uint16_t *)p = (uint16_t)v;
    else
        *(uint32_t *)p = v;
}
static float decode_any(int32_t dt, uint32_t v) {
    switch (dt) {
    case MAIA_FLOAT16: return maia_f16_to_f32((uint16_t)v);
    case MAIA_BFLOAT16: return maia_bf16_to_f32((uint16_t)v);
    case MAIA_FLOAT8_E4M3FN: return maia_f8e4m3_to_f32((uint8_t)v);
    case MAIA_FLOAT8_E5M2: return maia_f8e5m2_to_f32((uint8_t)v);
    default: {
        float f;
        memcpy(&f, &v, 4);
        return f;
    }
    }
}
static uint32_t canonical_nan(int32_t dt) {
    switch (dt) {
    case MAIA_FLOAT16: return 0x7e00u;
    case MAIA_BFLOAT16: return 0x7fc0u;
    case MAIA_FLOAT8_E4M3FN: return 0x7fu;
    case MAIA_FLOAT8_E5M2: return 0x7eu;
    default: return 0x7fc00000u;
    }
}

static void ew_nextafter(const ew_ctx *c, size_t n, char **ptrs, const int64_t *st) {
    int32_t dt = c->in_dt[0];
    size_t es = mk_elsize(dt);
    uint32_t sign = 1u << (es * 8 - 1);
    for (size_t i = 0; i < n; i++) {
        uint32_t ca = raw_get(at(ptrs[0], i, st[0], dt), es);
        uint32_t cb = raw_get(at(ptrs[1], i, st[1], dt), es);
        float x = decode_any(dt, ca), y = decode_any(dt, cb);
        uint32_t r;
        if (x != x || y != y)
            r = canonical_nan(dt);
        else if (x == y)
            r = cb;
        else if (x == 0)
            r = (y < 0 ? sign : 0u) | 1u;
        else if ((x < y) == (x > 0))
            r = ca + 1u; /* away from zero */
        else
            r = ca - 1u;
        raw_put(at(ptrs[2], i, st[2], dt), es, r);
    }
}

static void ew_where(const ew_ctx *c, size_t n, char **ptrs, const int64_t *st) {
    uint8_t cb[BLK];
    size_t es = mk_elsize(c->out_dt);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < BLK ? n - done : BLK;
        mk_load_bool(c->in_dt[0], at(ptrs[0], done, st[0], c->in_dt[0]), st[0], k, cb);
        for (size_t i = 0; i < k; i++) {
            const char *src = cb[i] ? at(ptrs[1], done + i, st[1], c->out_dt)
                                    : at(ptrs[2], done + i, st[2], c->out_dt);
            memcpy(at(ptrs[3], done + i, st[3], c->out_dt), src, es);
        }
        done += k;
    }
}

static void ew_astype(const ew_ctx *c, size_t n, char **ptrs, const int64_t *st) {
    int32_t from = c->in_dt[0], to = c->out_dt;
    int kf = mk_kind(from), kt = mk_kind(to);
    if (from == to) {
        size_t es = mk_elsize(to);
        if (st[0] == 1 && st[1] == 1) {
            memmove(ptrs[1], ptrs[0], n * es);
            return;
        }
        for (size_t i = 0; i < n; i++)
            memmove(at(ptrs[1], i, st[1], to), at(ptrs[0], i, st[0], from), es);
        return;
    }
    float fb[BLK];
    int64_t ib[BLK];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < BLK ? n - done : BLK;
        char *src = at(ptrs[0], done, st[0], from), *dst = at(ptrs[1], done, st[1], to);
        if (kf == MK_KIND_FLOAT) {
            mk_load_f32(from, src, st[0], k, fb);
            if (kt == MK_KIND_FLOAT || kt == MK_KIND_BOOL)
                mk_store_f32(to, dst, st[1], k, fb);
            else
                mk_store_f32_as_int(to, dst, st[1], k, fb);
        } else if (from == MAIA_UINT64 && kt == MK_KIND_FLOAT) {
            mk_load_i64(from, src, st[0], k, ib);
            for (size_t i = 0; i < k; i++) fb[i] = (float)(uint64_t)ib[i];
            mk_store_f32(to, dst, st[1], k, fb);
        } else {
            mk_load_i64(from, src, st[0], k, ib);
            mk_store_i64(to, dst, st[1], k, ib);
        }
        done += k;
    }
}

/* ---- contiguous same-dtype fast path ---------------------------------------------------- */

/* add, subtract, multiply (and divide for float32, bitwise and/or/xor for integers) over
 * unit-stride operands that all have the compute dtype: 32-byte vector-extension loops, with
 * an AVX2 clone chosen at run time. Integers compute in the unsigned type of their width,
 * which wraps exactly as the int64/uint64 path truncated to that width does; float32 ops are
 * the same single IEEE operations as f32_op, so results are bit-identical. */

#define VB 32
typedef float vf32 __attribute__((vector_size(VB)));
typedef uint8_t vu8 __attribute__((vector_size(VB)));
typedef uint16_t vu16 __attribute__((vector_size(VB)));
typedef uint32_t vu32 __attribute__((vector_size(VB)));
typedef uint64_t vu64 __attribute__((vector_size(VB)));

/* 4 vectors per step; loads precede stores within a vector, so an output that is exactly an
 * input (in place) is fine. Partial overlap is excluded by the caller. */
#define FAST_LOOP(T, V, OPX)                                                                   \
    do {                                                                                       \
        const size_t L = VB / sizeof(T);                                                       \
        size_t i = 0;                                                                          \
        for (; i + 4 * L <= n; i += 4 * L)                                                     \
            for (size_t u = 0; u < 4 * L; u += L) {                                            \
                V x, y, r;                                                                     \
                memcpy(&x, a + i + u, VB);                                                     \
                memcpy(&y, b + i + u, VB);                                                     \
                r = x OPX y;                                                                   \
                memcpy(o + i + u, &r, VB);                                                     \
            }                                                                                  \
        for (; i < n; i++) o[i] = (T)(a[i] OPX b[i]);                                          \
    } while (0)

#define FAST_FN(NAME, ATTR, T, V, INT_OPS)                                                     \
    ATTR static void NAME(int op, size_t n, const T *a, const T *b, T *o) {                    \
        switch (op) {                                                                          \
        case EW_ADD: FAST_LOOP(T, V, +); return;                                               \
        case EW_SUBTRACT: FAST_LOOP(T, V, -); return;                                          \
        case EW_MULTIPLY: FAST_LOOP(T, V, *); return;                                          \
        INT_OPS                                                                                \
        default: return;                                                                       \
        }                                                                                      \
    }
#define FAST_FLOAT_OPS case EW_DIVIDE: FAST_LOOP(float, vf32, /); return;
#define FAST_INT_OPS(T, V)                                                                     \
    case EW_BITWISE_AND: FAST_LOOP(T, V, &); return;                                           \
    case EW_BITWISE_OR: FAST_LOOP(T, V, |); return;                                            \
    case EW_BITWISE_XOR: FAST_LOOP(T, V, ^); return;

#define FAST_ALL(SUF, ATTR)                                                                    \
    FAST_FN(fast_f32##SUF, ATTR, float, vf32, FAST_FLOAT_OPS)                                  \
    FAST_FN(fast_u8##SUF, ATTR, uint8_t, vu8, FAST_INT_OPS(uint8_t, vu8))                      \
    FAST_FN(fast_u16##SUF, ATTR, uint16_t, vu16, FAST_INT_OPS(uint16_t, vu16))                 \
    FAST_FN(fast_u32##SUF, ATTR, uint32_t, vu32, FAST_INT_OPS(uint32_t, vu32))                 \
    FAST_FN(fast_u64##SUF, ATTR, uint64_t, vu64, FAST_INT_OPS(uint64_t, vu64))

FAST_ALL(_base, )
#if defined(__x86_64__) || defined(__i386__)
#define FAST_HAVE_AVX2 1
FAST_ALL(_avx2, __attribute__((target("avx2"))))
static int fast_use_avx2(void) {
    static int cached = -1; /* benign race: every thread computes the same value */
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}
#else
#define FAST_HAVE_AVX2 0
static int fast_use_avx2(void) { return 0; }
#endif

static int fast_op(const ew_ctx *c) {
    if (c->nin != 2) return 0;
    switch (c->op) {
    case EW_ADD: case EW_SUBTRACT: case EW_MULTIPLY: return c->kind != MK_KIND_BOOL;
    case EW_DIVIDE: return c->out_dt == MAIA_FLOAT32;
    case EW_BITWISE_AND: case EW_BITWISE_OR: case EW_BITWISE_XOR:
        return c->kind == MK_KIND_SINT || c->kind == MK_KIND_UINT;
    default: return 0;
    }
}

/* 1 if [p, p + bytes) and [q, q + bytes) are the same range or do not overlap */
static int same_or_disjoint(const char *p, const char *q, size_t bytes) {
    uintptr_t x = (uintptr_t)p, y = (uintptr_t)q;
    return x == y || x + bytes <= y || y + bytes <= x;
}

static int ew_fast(const ew_ctx *c, size_t n, char **ptrs, const int64_t *st) {
    if (!c->fast || st[0] != 1 || st[1] != 1 || st[2] != 1) return 0;
    size_t es = mk_elsize(c->out_dt), bytes = n * es;
    if (!same_or_disjoint(ptrs[0], ptrs[2], bytes) || !same_or_disjoint(ptrs[1], ptrs[2], bytes))
        return 0;
    int avx2 = FAST_HAVE_AVX2 && fast_use_avx2();
#if FAST_HAVE_AVX2
#define FAST_CALL(F, T)                                                                        \
    (avx2 ? F##_avx2 : F##_base)(c->op, n, (const T *)ptrs[0], (const T *)ptrs[1], (T *)ptrs[2])
#else
#define FAST_CALL(F, T) F##_base(c->op, n, (const T *)ptrs[0], (const T *)ptrs[1], (T *)ptrs[2])
#endif
    (void)avx2;
    if (c->kind == MK_KIND_FLOAT) {
        if (c->out_dt != MAIA_FLOAT32) return 0;
        FAST_CALL(fast_f32, float);
        return 1;
    }
    switch (es) {
    case 1: FAST_CALL(fast_u8, uint8_t); return 1;
    case 2: FAST_CALL(fast_u16, uint16_t); return 1;
    case 4: FAST_CALL(fast_u32, uint32_t); return 1;
    case 8: FAST_CALL(fast_u64, uint64_t); return 1;
    default: return 0;
    }
#undef FAST_CALL
}

static void ew_inner(void *vc, size_t n, char **ptrs, const int64_t *st) {
    const ew_ctx *c = (const ew_ctx *)vc;
    if (ew_fast(c, n, ptrs, st)) return;
    switch (c->op) {
    case EW_WHERE: ew_where(c, n, ptrs, st); return;
    case EW_ASTYPE: ew_astype(c, n, ptrs, st); return;
    case EW_NEXTAFTER: ew_nextafter(c, n, ptrs, st); return;
    default: break;
    }
    switch (c->kind) {
    case MK_KIND_FLOAT: ew_float(c, n, ptrs, st); return;
    case MK_KIND_BOOL: ew_bool(c, n, ptrs, st); return;
    default: ew_int(c, n, ptrs, st); return;
    }
}

static void ew_range(void *vc, int64_t begin, int64_t end) {
    ew_ctx *c = (ew_ctx *)vc;
    mk_iter_run(&c->it, begin, end, ew_inner, c);
}

/* ---- kinds, validation, entry ------------------------------------------------------------ */

unsigned mk_elementwise_kinds(int op) {
    const unsigned NUM = MK_I | MK_U | MK_F, ANY = MK_B | MK_I | MK_U | MK_F;
    switch (op) {
    case EW_ABS: case EW_NEGATIVE: case EW_POSITIVE: case EW_CONJ: case EW_REAL: case EW_IMAG:
    case EW_SIGN: case EW_SQUARE: case EW_ROUND: case EW_ISNAN: case EW_ISINF:
    case EW_ISFINITE: case EW_ADD: case EW_SUBTRACT: case EW_MULTIPLY: case EW_POW:
        return NUM;
    case EW_FLOOR: case EW_CEIL: case EW_TRUNC: case EW_FLOOR_DIVIDE: case EW_REMAINDER:
    case EW_MAXIMUM: case EW_MINIMUM: case EW_LESS: case EW_LESS_EQUAL: case EW_GREATER:
    case EW_GREATER_EQUAL: case EW_CLIP: case EW_RELU:
        return NUM;
    case EW_BITWISE_INVERT: case EW_BITWISE_AND: case EW_BITWISE_OR: case EW_BITWISE_XOR:
        return MK_B | MK_I | MK_U;
    case EW_LEFT_SHIFT: case EW_RIGHT_SHIFT: return MK_I | MK_U;
    case EW_LOGICAL_NOT: case EW_LOGICAL_AND: case EW_LOGICAL_OR: case EW_LOGICAL_XOR:
        return MK_B;
    case EW_EQUAL: case EW_NOT_EQUAL: case EW_WHERE: case EW_ASTYPE: return ANY;
    default: return MK_F; /* transcendental, divide, signbit, atan2, ..., gelu, silu */
    }
}

int mk_elementwise(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st) {
    int nin;
    const maia_attrs *at_ = &call->attrs;
    if (op == EW_WHERE)
        nin = 3;
    else if (op == EW_CLIP)
        nin = 1 + (at_->has_min != 0) + (at_->has_max != 0);
    else if (op == EW_ASTYPE || !is_binary(op))
        nin = 1;
    else
        nin = 2;
    if (mk_check_counts(call, nin, 1, st)) return st->code;
    if (op == EW_GELU && at_->approximate) op = EW_GELU_TANH;
    const maia_view *out = &call->outputs[0];
    for (int i = 0; i < nin; i++)
        if (!mk_same_shape(&call->inputs[i], out))
            return mk_fail(st, MAIA_KERNEL_INVALID,
                           "%s: input %d's shape does not match the output's (inputs must be "
                           "broadcast to the output shape)",
                           call->kernel, i);
    int first = op == EW_WHERE ? 1 : 0;
    int32_t cdt = call->inputs[first].dtype;
    unsigned kinds = mk_elementwise_kinds(op);
    if (!(kinds & (1u << mk_kind(cdt))))
        return mk_fail(st, MAIA_KERNEL_UNSUPPORTED, "%s is not implemented for %s",
                       call->kernel, mk_dtype_name(cdt));
    if (op != EW_ASTYPE) {
        for (int i = first; i < nin; i++)
            if (call->inputs[i].dtype != cdt)
                return mk_fail(st, MAIA_KERNEL_INVALID,
                               "%s: input %d is %s, expected the compute dtype %s",
                               call->kernel, i, mk_dtype_name(call->inputs[i].dtype),
                               mk_dtype_name(cdt));
        int32_t want = is_bool_out(op) ? MAIA_BOOL : cdt;
        if (out->dtype != want)
            return mk_fail(st, MAIA_KERNEL_INVALID, "%s: the output is %s, expected %s",
                           call->kernel, mk_dtype_name(out->dtype), mk_dtype_name(want));
    }
    if (op == EW_WHERE && call->inputs[0].dtype != MAIA_BOOL)
        return mk_fail(st, MAIA_KERNEL_INVALID, "where: the condition must be bool, got %s",
                       mk_dtype_name(call->inputs[0].dtype));

    ew_ctx c;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.kind = mk_kind(cdt);
    c.nin = nin;
    for (int i = 0; i < nin; i++) c.in_dt[i] = call->inputs[i].dtype;
    c.out_dt = out->dtype;
    c.bits = mk_int_bits(cdt);
    c.has_min = at_->has_min != 0;
    c.has_max = at_->has_max != 0;
    c.fast = fast_op(&c);

    const int64_t *strides[MAIA_MAX_OPERANDS + 1];
    char *base[MAIA_MAX_OPERANDS + 1];
    size_t es[MAIA_MAX_OPERANDS + 1];
    for (int i = 0; i < nin; i++) {
        strides[i] = call->inputs[i].strides;
        base[i] = (char *)call->inputs[i].data;
        es[i] = mk_elsize(call->inputs[i].dtype);
    }
    strides[nin] = out->strides;
    base[nin] = (char *)out->data;
    es[nin] = mk_elsize(out->dtype);
    mk_iter_init(&c.it, out->ndim, out->shape, nin + 1, strides, base, es);

    int64_t total = c.it.total;
    int threads = call->threads < 1 ? 1 : call->threads;
    if (total >= ((int64_t)1 << 17) && threads > 1)
        mk_parallel_for(threads, total, (int64_t)1 << 16, ew_range, &c);
    else
        mk_iter_run(&c.it, 0, total, ew_inner, &c);

    double bytes = 0;
    for (int i = 0; i < nin; i++)
        bytes += mk_view_unique(&call->inputs[i]) * (double)mk_elsize(call->inputs[i].dtype);
    bytes += (double)total * (double)mk_elsize(out->dtype);
    double per = 1;
    if (op == EW_GELU || op == EW_GELU_TANH) per = 8;
    else if (op == EW_SILU) per = 4;
    else if (op == EW_WHERE || op == EW_ASTYPE) per = 0;
    else if (op == EW_CLIP) per = (double)(nin - 1);
    cost->flops = per * (double)total;
    cost->bytes_moved = bytes;
    cost->compute_dtype = cdt;
    return MAIA_KERNEL_OK;
}
