/* The boundary between the Maia emulator's runtime (queues, memory, commands) and its
 * kernels. The runtime resolves buffer handles and offsets into raw pointers and calls
 * maia_kernel_execute() on a worker thread; kernels never see handles, queues or Python.
 *
 * Kernel names, operand order, attribute meanings and results follow hwabstract's kernel
 * specs (src/hwabstract/kernels/): the core has already validated dtypes and shapes and
 * broadcast the inputs (zero strides), so a kernel checks only what it relies on for memory
 * safety and reports anything else as an error string, never by crashing.
 */
#ifndef MAIA_KERNELS_H
#define MAIA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MAIA_MAX_DIMS 32
#define MAIA_MAX_OPERANDS 4

/* Element types. The numbering is part of the binary interface with the Python binding. */
typedef enum maia_dtype {
    MAIA_BOOL = 0,
    MAIA_INT8 = 1,
    MAIA_INT16 = 2,
    MAIA_INT32 = 3,
    MAIA_INT64 = 4,
    MAIA_UINT8 = 5,
    MAIA_UINT16 = 6,
    MAIA_UINT32 = 7,
    MAIA_UINT64 = 8,
    MAIA_FLOAT8_E4M3FN = 9,
    MAIA_FLOAT8_E5M2 = 10,
    MAIA_BFLOAT16 = 11,
    MAIA_FLOAT16 = 12,
    MAIA_FLOAT32 = 13,
    MAIA_DTYPE_COUNT = 14
} maia_dtype;

/* OCP Microscaling (MX) v1.0 element formats of the mx_quantize, mx_dequantize and mx_matmul
 * kernels (maia_attrs.mx_format, mx_b_format). 0 is "none", so a missing attribute is an
 * error. The numbering is part of the binary interface with the Python binding. */
typedef enum maia_mx_format {
    MAIA_MX_NONE = 0,
    MAIA_MXFP8_E4M3 = 1,
    MAIA_MXFP8_E5M2 = 2,
    MAIA_MXFP6_E3M2 = 3,
    MAIA_MXFP6_E2M3 = 4,
    MAIA_MXFP4_E2M1 = 5,
    MAIA_MXINT8 = 6,
    MAIA_MX_FORMAT_COUNT = 7
} maia_mx_format;

/* A strided view: `data` points at element (0, ..., 0); strides are in elements and may be
 * zero (broadcast) or negative. */
typedef struct maia_view {
    void *data;
    int32_t dtype; /* maia_dtype */
    int32_t ndim;
    int64_t shape[MAIA_MAX_DIMS];
    int64_t strides[MAIA_MAX_DIMS];
} maia_view;

/* Normalized attributes (the union of what the standard kernels take). */
typedef struct maia_attrs {
    uint64_t axes_mask;    /* reductions, layer_norm: bit k set = axis k reduced/normalized */
    int32_t keepdims;      /* reductions */
    int32_t axis;          /* softmax, log_softmax: the (non-negative) axis */
    double eps;            /* layer_norm */
    double correction;     /* var, std */
    int32_t approximate;   /* gelu: 0 = erf form, 1 = tanh form */
    int32_t has_min;       /* clip: inputs are x[, min][, max] */
    int32_t has_max;
    int32_t has_weight;    /* layer_norm: inputs are x[, weight][, bias] */
    int32_t has_bias;
    int32_t dtype;         /* astype: target dtype; sum/prod: output dtype */
    int32_t mx_format;     /* mx_quantize, mx_dequantize: the format; mx_matmul: a's format */
    int32_t mx_b_format;   /* mx_matmul: b's format (maia_mx_format) */
    int64_t mx_n;          /* mx_dequantize: n, the row length; mx_matmul: k */
    int32_t descending;    /* sort, argsort */
    int32_t stable;        /* sort, argsort (they always sort stably) */
    int32_t side;          /* searchsorted: 0 left, 1 right */
    int32_t include_initial; /* cumulative_sum, cumulative_prod */
    int64_t count;         /* flatnonzero: the number of nonzeros (the output's length) */
    int32_t upper;         /* cholesky: 1 = the upper factor L^T */
    int32_t full_matrices; /* svd: 1 = U (..., M, M) and Vh (..., N, N) */
    int32_t qr_complete;   /* qr: 1 = mode "complete" (Q (..., M, M)), 0 = "reduced" */
} maia_attrs;

typedef struct maia_kernel_call {
    const char *kernel; /* a hwabstract kernel name: "add", "sum", "matmul", ... */
    int32_t n_inputs;
    int32_t n_outputs;
    maia_view inputs[MAIA_MAX_OPERANDS];
    maia_view outputs[MAIA_MAX_OPERANDS];
    maia_attrs attrs;
    int32_t threads; /* host threads the kernel may use (the emulated tiles); >= 1 */
} maia_kernel_call;

/* What a kernel did, for the performance model. */
typedef struct maia_kernel_cost {
    double flops;        /* arithmetic operations */
    double bytes_moved;  /* bytes read + written */
    int32_t compute_dtype; /* a maia_dtype, or one of the compute classes below */
} maia_kernel_cost;

/* Compute classes beyond the dtypes: the tensor unit's MX rates (maia_perf_model). */
enum {
    MAIA_COMPUTE_MX8 = 64, /* MX matmul with an 8- or 6-bit element operand: the FP8 rate */
    MAIA_COMPUTE_MX4 = 65  /* MX matmul of two FP4 (MXFP4_E2M1) operands: the FP4 rate */
};

/* Status codes of maia_kernel_execute. */
enum {
    MAIA_KERNEL_OK = 0,
    MAIA_KERNEL_UNKNOWN = 1,     /* no kernel of that name */
    MAIA_KERNEL_UNSUPPORTED = 2, /* the kernel exists but not for these dtypes */
    MAIA_KERNEL_INVALID = 3      /* operands inconsistent with the kernel (shape, count) */
};

/* Run one kernel to completion on the calling thread (it may fan out to `threads` host
 * threads internally). On failure returns a non-zero status and writes a message into
 * err[0..errlen). Never aborts the process on bad input. */
int maia_kernel_execute(const maia_kernel_call *call, maia_kernel_cost *cost, char *err,
                        size_t errlen);

/* Join the kernels' host worker threads (a pool created lazily by the first multi-threaded
 * kernel). The caller guarantees no kernel is running; a later kernel recreates the pool.
 * maia_shutdown calls it. */
void maia_kernel_shutdown(void);

/* 1 if `kernel` is implemented for compute dtype `dtype` (its capability manifest). */
int maia_kernel_supports(const char *kernel, int32_t dtype);

/* The names of all kernels implemented, NULL-terminated. */
const char *const *maia_kernel_names(void);

/* Element-format conversions used by the kernels, exposed for tests: round to nearest even;
 * float8_e4m3fn has no infinities (overflow gives NaN, as ml_dtypes does), float8_e5m2 and
 * the 16-bit formats overflow to infinity. */
float maia_bf16_to_f32(uint16_t v);
uint16_t maia_f32_to_bf16(float f);
float maia_f16_to_f32(uint16_t v);
uint16_t maia_f32_to_f16(float f);
float maia_f8e4m3_to_f32(uint8_t v);
uint8_t maia_f32_to_f8e4m3(float f);
float maia_f8e5m2_to_f32(uint8_t v);
uint8_t maia_f32_to_f8e5m2(float f);

/* MX element codes, exposed for tests: the code of value / 2^scale_exponent in `format`
 * (round to nearest even, saturating; NaN/Inf give the element NaN/Inf code only in formats
 * that have one), and the value of a code (NaN codes give the positive quiet NaN). */
uint8_t maia_mx_encode(int32_t format, float value, int32_t scale_exponent);
float maia_mx_decode(int32_t format, uint8_t code);
/* Tests: 1 makes mx_matmul and mx_quantize use their portable C paths even where AVX2 is
 * available; 2 also makes mx_quantize use its integer-only path instead of float32
 * arithmetic; 0 restores the run-time choice. Every path gives identical bits. */
void maia_mx_set_portable(int level);
/* Tests: the host memory mx_matmul may use for decoded operands before it works in panels
 * (default 512 MiB; <= 0 restores it). */
void maia_mx_set_work_bytes(long long bytes);

#ifdef __cplusplus
}
#endif
#endif /* MAIA_KERNELS_H */
