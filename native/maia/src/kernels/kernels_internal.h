/* Internal interface shared by the Maia emulator's kernels (src/kernels/). Not installed;
 * the runtime sees only maia_kernels.h. */
#ifndef MAIA_KERNELS_INTERNAL_H
#define MAIA_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../maia_kernels.h"

/* The bits of a float32, and the float32 of bits (no aliasing games). */
static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Element kinds: how a dtype computes. */
enum { MK_KIND_BOOL = 0, MK_KIND_SINT = 1, MK_KIND_UINT = 2, MK_KIND_FLOAT = 3 };

/* Kind bit masks (which kinds a kernel accepts). */
#define MK_B (1u << MK_KIND_BOOL)
#define MK_I (1u << MK_KIND_SINT)
#define MK_U (1u << MK_KIND_UINT)
#define MK_F (1u << MK_KIND_FLOAT)

int mk_dtype_valid(int32_t dt);
int mk_kind(int32_t dt);
size_t mk_elsize(int32_t dt);
int mk_int_bits(int32_t dt); /* width in bits of an integer dtype (8 for bool) */
const char *mk_dtype_name(int32_t dt);

/* Chunk conversions between a strided array of `dt` (stride in elements) and a contiguous
 * compute buffer. float buffers hold every float dtype exactly (all are <= 32 bits); int64
 * buffers hold signed ints sign-extended, unsigned ints zero-extended (uint64 as its bits)
 * and bools as 0/1. */
void mk_load_f32(int32_t dt, const void *p, int64_t s, size_t n, float *out);
void mk_store_f32(int32_t dt, void *p, int64_t s, size_t n, const float *in);
void mk_load_i64(int32_t dt, const void *p, int64_t s, size_t n, int64_t *out);
void mk_store_i64(int32_t dt, void *p, int64_t s, size_t n, const int64_t *in);
void mk_load_bool(int32_t dt, const void *p, int64_t s, size_t n, uint8_t *out); /* != 0 */
void mk_store_bool(int32_t dt, void *p, int64_t s, size_t n, const uint8_t *in);
/* float -> integer dtype `dt`, element by element, with the documented defined behaviour for
 * NaN and out-of-range values (see astype in elementwise.c). */
void mk_store_f32_as_int(int32_t dt, void *p, int64_t s, size_t n, const float *in);
int64_t mk_f64_to_int_bits(double x, int32_t dt);

/* ---- the strided N-d iteration core ------------------------------------------------------ */

#define MK_MAX_ITER_OPS (2 * MAIA_MAX_OPERANDS)

/* An iteration over a common shape by up to MK_MAX_ITER_OPS operands, each with its own
 * element strides (zero for broadcast, negative allowed). mk_iter_init drops size-1
 * dimensions and merges dimensions that are contiguous for every operand, so a contiguous
 * operation becomes a single inner loop. */
typedef struct mk_iter {
    int nop;
    int ndim; /* >= 1 after init (a 0-d iteration becomes shape [1]) */
    int64_t total;
    int64_t shape[MAIA_MAX_DIMS];
    int64_t strides[MK_MAX_ITER_OPS][MAIA_MAX_DIMS]; /* elements */
    size_t elsize[MK_MAX_ITER_OPS];
    char *base[MK_MAX_ITER_OPS];
} mk_iter;

/* The inner loop: n elements; ptrs[k] is operand k's first element, strides[k] its stride
 * in elements along the loop. */
typedef void (*mk_inner_fn)(void *ctx, size_t n, char **ptrs, const int64_t *strides);

void mk_iter_init(mk_iter *it, int ndim, const int64_t *shape, int nop,
                  const int64_t *const *strides, char *const *base, const size_t *elsize);
/* Visit flat (C-order) indices [begin, end) of the iteration. */
void mk_iter_run(const mk_iter *it, int64_t begin, int64_t end, mk_inner_fn fn, void *ctx);
/* 1 if, after init, every operand is one contiguous unit-stride run. */
int mk_iter_contiguous(const mk_iter *it);

/* x and y (same ndim, same shape but for the axis) split into rows along `axis`: row r
 * unravels (C order) over the other axes, outer_*, and holds len elements of x at stride xs
 * and those of y at stride ys (y may be longer along the axis; len is x's length). */
typedef struct mk_rows {
    int outer_ndim;
    int64_t outer_shape[MAIA_MAX_DIMS], outer_xs[MAIA_MAX_DIMS], outer_ys[MAIA_MAX_DIMS];
    int64_t len, xs, ys;
    int64_t rows; /* product of outer_shape */
} mk_rows;

void mk_rows_init(mk_rows *r, const maia_view *x, const maia_view *y, int axis);
/* The C-order position `index` of a `shape` (ndim dims) as element offsets in two layouts
 * (strides xs and ys): how the row- and output-parallel kernels find their starts. */
static inline void mk_unravel2(int ndim, const int64_t *shape, const int64_t *xs,
                               const int64_t *ys, int64_t index, int64_t *xo, int64_t *yo) {
    int64_t rem = index, x = 0, y = 0;
    for (int d = ndim - 1; d >= 0; d--) {
        int64_t i = rem % shape[d];
        rem /= shape[d];
        x += i * xs[d];
        y += i * ys[d];
    }
    *xo = x;
    *yo = y;
}

/* The element offsets of row `row`'s first x and y elements. */
static inline void mk_rows_offsets(const mk_rows *r, int64_t row, int64_t *xo, int64_t *yo) {
    mk_unravel2(r->outer_ndim, r->outer_shape, r->outer_xs, r->outer_ys, row, xo, yo);
}

/* ---- host threads ------------------------------------------------------------------------ */

typedef void (*mk_range_fn)(void *ctx, int64_t begin, int64_t end);
/* Split [0, total) into contiguous ranges of at least `grain` items (up to 8 per thread) and
 * run them on at most `threads` host threads: the caller plus workers of a persistent
 * process-wide pool (see maia_kernel_shutdown), which several callers may share at once.
 * Ranges are claimed dynamically, so fn must not assume which thread runs a range; it may
 * run on fewer threads (down to the caller alone) if workers cannot be created. */
void mk_parallel_for(int threads, int64_t total, int64_t grain, mk_range_fn fn, void *ctx);

/* ---- kernel families --------------------------------------------------------------------- */

typedef struct mk_status {
    int code;
    char *err;
    size_t errlen;
} mk_status;

int mk_fail(mk_status *st, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Unique elements addressed by a view (broadcast dimensions count once). */
double mk_view_unique(const maia_view *v);
int64_t mk_view_size(const maia_view *v);
int mk_same_shape(const maia_view *a, const maia_view *b);

/* Each family validates what it relies on, runs, and fills cost (never NULL here). */
int mk_elementwise(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st);
int mk_reduction(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st);
int mk_matmul(const maia_kernel_call *call, maia_kernel_cost *cost, mk_status *st);
int mk_nn(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st);
int mk_mx(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st);
int mk_linalg(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st);
int mk_sorting(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st);
int mk_indexing(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st);
int mk_cumulative(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st);

/* Which dtype kinds an op accepts, by family and op id (for maia_kernel_supports). */
unsigned mk_elementwise_kinds(int op);
unsigned mk_reduction_kinds(int op);
unsigned mk_nn_kinds(int op);
/* 1 if the MX kernels take `dtype` as their float operand (float32, bfloat16, float16). */
int mk_mx_supports(int32_t dtype);
/* 1 if the linalg kernels take `dtype` (float32, float16, bfloat16). */
int mk_linalg_supports(int32_t dtype);
unsigned mk_sorting_kinds(int op);
unsigned mk_indexing_kinds(int op);
unsigned mk_cumulative_kinds(int op);

/* Elementwise op ids. */
enum mk_ew_op {
    /* unary, result in the compute dtype */
    EW_ABS, EW_NEGATIVE, EW_POSITIVE, EW_CONJ, EW_REAL, EW_IMAG, EW_SIGN, EW_SQUARE, EW_SQRT,
    EW_EXP, EW_EXPM1, EW_LOG, EW_LOG1P, EW_LOG2, EW_LOG10, EW_SIN, EW_COS, EW_TAN, EW_ASIN,
    EW_ACOS, EW_ATAN, EW_SINH, EW_COSH, EW_TANH, EW_ASINH, EW_ACOSH, EW_ATANH, EW_RECIPROCAL,
    EW_FLOOR, EW_CEIL, EW_TRUNC, EW_ROUND, EW_BITWISE_INVERT, EW_LOGICAL_NOT,
    EW_RELU, EW_GELU, EW_GELU_TANH, EW_SILU,
    /* unary -> bool */
    EW_ISNAN, EW_ISINF, EW_ISFINITE, EW_SIGNBIT,
    /* binary, result in the compute dtype */
    EW_ADD, EW_SUBTRACT, EW_MULTIPLY, EW_DIVIDE, EW_FLOOR_DIVIDE, EW_REMAINDER, EW_POW,
    EW_MAXIMUM, EW_MINIMUM, EW_ATAN2, EW_HYPOT, EW_COPYSIGN, EW_LOGADDEXP, EW_NEXTAFTER,
    EW_LOGICAL_AND, EW_LOGICAL_OR, EW_LOGICAL_XOR, EW_BITWISE_AND, EW_BITWISE_OR,
    EW_BITWISE_XOR, EW_LEFT_SHIFT, EW_RIGHT_SHIFT,
    /* binary -> bool */
    EW_EQUAL, EW_NOT_EQUAL, EW_LESS, EW_LESS_EQUAL, EW_GREATER, EW_GREATER_EQUAL,
    /* special */
    EW_WHERE, EW_CLIP, EW_ASTYPE,
    EW_COUNT
};

enum mk_red_op {
    RED_SUM, RED_PROD, RED_MIN, RED_MAX, RED_MEAN, RED_VAR, RED_STD, RED_ARGMIN, RED_ARGMAX,
    RED_ANY, RED_ALL, RED_COUNT
};

enum mk_nn_op { NN_SOFTMAX, NN_LOG_SOFTMAX, NN_LAYER_NORM, NN_COUNT };

enum mk_mx_op { MX_QUANTIZE, MX_DEQUANTIZE, MX_MATMUL, MX_COUNT };

enum mk_linalg_op {
    LA_CHOLESKY, LA_INV, LA_DET, LA_SLOGDET, LA_SOLVE, LA_QR, LA_EIGH, LA_EIGVALSH, LA_SVD,
    LA_SVDVALS, LA_COUNT
};

enum mk_sort_op { SORT_SORT, SORT_ARGSORT, SORT_SEARCHSORTED, SORT_COUNT };

enum mk_index_op { IDX_TAKE, IDX_TAKE_ALONG_AXIS, IDX_FLATNONZERO, IDX_COUNT };

enum mk_cum_op { CUM_SUM, CUM_PROD, CUM_COUNT };

/* Validation shared by the families. */
int mk_check_view(const maia_view *v, const char *what, mk_status *st);
int mk_check_counts(const maia_kernel_call *call, int n_in, int n_out, mk_status *st);

#endif /* MAIA_KERNELS_INTERNAL_H */
