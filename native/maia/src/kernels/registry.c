/* The kernel table: names, capability manifest and the maia_kernel_execute entry point. */
#include <string.h>

#include "kernels_internal.h"

enum { FAM_EW, FAM_RED, FAM_MATMUL, FAM_NN, FAM_MX, FAM_SORT, FAM_INDEX, FAM_CUM, FAM_LINALG };

typedef struct kentry {
    const char *name;
    int family;
    int op;
} kentry;

static const kentry TABLE[] = {
    {"abs", FAM_EW, EW_ABS}, {"negative", FAM_EW, EW_NEGATIVE},
    {"positive", FAM_EW, EW_POSITIVE}, {"conj", FAM_EW, EW_CONJ}, {"real", FAM_EW, EW_REAL},
    {"imag", FAM_EW, EW_IMAG}, {"sign", FAM_EW, EW_SIGN}, {"square", FAM_EW, EW_SQUARE},
    {"sqrt", FAM_EW, EW_SQRT}, {"exp", FAM_EW, EW_EXP}, {"expm1", FAM_EW, EW_EXPM1},
    {"log", FAM_EW, EW_LOG}, {"log1p", FAM_EW, EW_LOG1P}, {"log2", FAM_EW, EW_LOG2},
    {"log10", FAM_EW, EW_LOG10}, {"sin", FAM_EW, EW_SIN}, {"cos", FAM_EW, EW_COS},
    {"tan", FAM_EW, EW_TAN}, {"asin", FAM_EW, EW_ASIN}, {"acos", FAM_EW, EW_ACOS},
    {"atan", FAM_EW, EW_ATAN}, {"sinh", FAM_EW, EW_SINH}, {"cosh", FAM_EW, EW_COSH},
    {"tanh", FAM_EW, EW_TANH}, {"asinh", FAM_EW, EW_ASINH}, {"acosh", FAM_EW, EW_ACOSH},
    {"atanh", FAM_EW, EW_ATANH}, {"reciprocal", FAM_EW, EW_RECIPROCAL},
    {"floor", FAM_EW, EW_FLOOR}, {"ceil", FAM_EW, EW_CEIL}, {"trunc", FAM_EW, EW_TRUNC},
    {"round", FAM_EW, EW_ROUND}, {"bitwise_invert", FAM_EW, EW_BITWISE_INVERT},
    {"logical_not", FAM_EW, EW_LOGICAL_NOT}, {"isnan", FAM_EW, EW_ISNAN},
    {"isinf", FAM_EW, EW_ISINF}, {"isfinite", FAM_EW, EW_ISFINITE},
    {"signbit", FAM_EW, EW_SIGNBIT}, {"add", FAM_EW, EW_ADD},
    {"subtract", FAM_EW, EW_SUBTRACT}, {"multiply", FAM_EW, EW_MULTIPLY},
    {"divide", FAM_EW, EW_DIVIDE}, {"floor_divide", FAM_EW, EW_FLOOR_DIVIDE},
    {"remainder", FAM_EW, EW_REMAINDER}, {"pow", FAM_EW, EW_POW},
    {"maximum", FAM_EW, EW_MAXIMUM}, {"minimum", FAM_EW, EW_MINIMUM},
    {"atan2", FAM_EW, EW_ATAN2}, {"hypot", FAM_EW, EW_HYPOT},
    {"copysign", FAM_EW, EW_COPYSIGN}, {"logaddexp", FAM_EW, EW_LOGADDEXP},
    {"nextafter", FAM_EW, EW_NEXTAFTER}, {"logical_and", FAM_EW, EW_LOGICAL_AND},
    {"logical_or", FAM_EW, EW_LOGICAL_OR}, {"logical_xor", FAM_EW, EW_LOGICAL_XOR},
    {"bitwise_and", FAM_EW, EW_BITWISE_AND}, {"bitwise_or", FAM_EW, EW_BITWISE_OR},
    {"bitwise_xor", FAM_EW, EW_BITWISE_XOR}, {"bitwise_left_shift", FAM_EW, EW_LEFT_SHIFT},
    {"bitwise_right_shift", FAM_EW, EW_RIGHT_SHIFT}, {"equal", FAM_EW, EW_EQUAL},
    {"not_equal", FAM_EW, EW_NOT_EQUAL}, {"less", FAM_EW, EW_LESS},
    {"less_equal", FAM_EW, EW_LESS_EQUAL}, {"greater", FAM_EW, EW_GREATER},
    {"greater_equal", FAM_EW, EW_GREATER_EQUAL}, {"where", FAM_EW, EW_WHERE},
    {"clip", FAM_EW, EW_CLIP}, {"astype", FAM_EW, EW_ASTYPE}, {"relu", FAM_EW, EW_RELU},
    {"gelu", FAM_EW, EW_GELU}, {"silu", FAM_EW, EW_SILU},
    {"sum", FAM_RED, RED_SUM}, {"prod", FAM_RED, RED_PROD}, {"min", FAM_RED, RED_MIN},
    {"max", FAM_RED, RED_MAX}, {"mean", FAM_RED, RED_MEAN}, {"var", FAM_RED, RED_VAR},
    {"std", FAM_RED, RED_STD}, {"argmin", FAM_RED, RED_ARGMIN},
    {"argmax", FAM_RED, RED_ARGMAX}, {"any", FAM_RED, RED_ANY}, {"all", FAM_RED, RED_ALL},
    {"matmul", FAM_MATMUL, 0},
    {"softmax", FAM_NN, NN_SOFTMAX}, {"log_softmax", FAM_NN, NN_LOG_SOFTMAX},
    {"layer_norm", FAM_NN, NN_LAYER_NORM},
    {"mx_quantize", FAM_MX, MX_QUANTIZE}, {"mx_dequantize", FAM_MX, MX_DEQUANTIZE},
    {"mx_matmul", FAM_MX, MX_MATMUL},
    {"sort", FAM_SORT, SORT_SORT}, {"argsort", FAM_SORT, SORT_ARGSORT},
    {"searchsorted", FAM_SORT, SORT_SEARCHSORTED}, {"take", FAM_INDEX, IDX_TAKE},
    {"take_along_axis", FAM_INDEX, IDX_TAKE_ALONG_AXIS},
    {"flatnonzero", FAM_INDEX, IDX_FLATNONZERO}, {"cumulative_sum", FAM_CUM, CUM_SUM},
    {"cumulative_prod", FAM_CUM, CUM_PROD},
    {"cholesky", FAM_LINALG, LA_CHOLESKY}, {"inv", FAM_LINALG, LA_INV},
    {"det", FAM_LINALG, LA_DET}, {"slogdet", FAM_LINALG, LA_SLOGDET},
    {"solve", FAM_LINALG, LA_SOLVE}, {"qr", FAM_LINALG, LA_QR}, {"eigh", FAM_LINALG, LA_EIGH},
    {"eigvalsh", FAM_LINALG, LA_EIGVALSH}, {"svd", FAM_LINALG, LA_SVD},
    {"svdvals", FAM_LINALG, LA_SVDVALS},
};

#define NKERNELS (sizeof TABLE / sizeof TABLE[0])

static const kentry *lookup(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < NKERNELS; i++)
        if (strcmp(TABLE[i].name, name) == 0) return &TABLE[i];
    return NULL;
}

/* The names, NULL-terminated: a static table built from TABLE at compile time. */
static const char *const NAMES[] = {
    "abs", "negative", "positive", "conj", "real", "imag", "sign", "square", "sqrt", "exp",
    "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "tan", "asin", "acos", "atan",
    "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "reciprocal", "floor", "ceil", "trunc",
    "round", "bitwise_invert", "logical_not", "isnan", "isinf", "isfinite", "signbit", "add",
    "subtract", "multiply", "divide", "floor_divide", "remainder", "pow", "maximum",
    "minimum", "atan2", "hypot", "copysign", "logaddexp", "nextafter", "logical_and",
    "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
    "bitwise_left_shift", "bitwise_right_shift", "equal", "not_equal", "less", "less_equal",
    "greater", "greater_equal", "where", "clip", "astype", "relu", "gelu", "silu", "sum",
    "prod", "min", "max", "mean", "var", "std", "argmin", "argmax", "any", "all", "matmul",
    "softmax", "log_softmax", "layer_norm", "mx_quantize", "mx_dequantize", "mx_matmul",
    "sort", "argsort", "searchsorted", "take", "take_along_axis", "flatnonzero",
    "cumulative_sum", "cumulative_prod",
    "cholesky", "inv", "det", "slogdet", "solve", "qr", "eigh", "eigvalsh", "svd", "svdvals",
    NULL};

_Static_assert(sizeof NAMES / sizeof NAMES[0] == NKERNELS + 1, "NAMES must list TABLE");

const char *const *maia_kernel_names(void) { return NAMES; }

static unsigned kinds_of(const kentry *e) {
    switch (e->family) {
    case FAM_EW: return mk_elementwise_kinds(e->op);
    case FAM_RED: return mk_reduction_kinds(e->op);
    case FAM_MATMUL: return MK_I | MK_U | MK_F;
    case FAM_MX: return MK_F; /* narrowed to float32/bfloat16/float16 by mk_mx_supports */
    case FAM_SORT: return mk_sorting_kinds(e->op);
    case FAM_INDEX: return mk_indexing_kinds(e->op);
    case FAM_CUM: return mk_cumulative_kinds(e->op);
    case FAM_LINALG: return MK_F; /* narrowed to float32/float16/bfloat16 by mk_linalg_supports */
    default: return mk_nn_kinds(e->op);
    }
}

int maia_kernel_supports(const char *kernel, int32_t dtype) {
    const kentry *e = lookup(kernel);
    if (!e || !mk_dtype_valid(dtype)) return 0;
    if (e->family == FAM_MX) return mk_mx_supports(dtype); /* the float operand's dtype */
    if (e->family == FAM_LINALG) return mk_linalg_supports(dtype);
    return (kinds_of(e) >> mk_kind(dtype)) & 1u;
}

int maia_kernel_execute(const maia_kernel_call *call, maia_kernel_cost *cost, char *err,
                        size_t errlen) {
    mk_status st = {MAIA_KERNEL_OK, err, errlen};
    maia_kernel_cost local;
    if (!cost) cost = &local;
    memset(cost, 0, sizeof *cost);
    if (err && errlen) err[0] = '\0';
    if (!call) return mk_fail(&st, MAIA_KERNEL_INVALID, "no kernel call");
    const kentry *e = lookup(call->kernel);
    if (!e)
        return mk_fail(&st, MAIA_KERNEL_UNKNOWN, "no kernel named '%.64s'",
                       call->kernel ? call->kernel : "(null)");
    if (call->n_inputs < 0 || call->n_inputs > MAIA_MAX_OPERANDS || call->n_outputs < 0 ||
        call->n_outputs > MAIA_MAX_OPERANDS)
        return mk_fail(&st, MAIA_KERNEL_INVALID, "%s: operand counts out of range",
                       call->kernel);
    switch (e->family) {
    case FAM_EW: return mk_elementwise(call, e->op, cost, &st);
    case FAM_RED: return mk_reduction(call, e->op, cost, &st);
    case FAM_MATMUL: return mk_matmul(call, cost, &st);
    case FAM_MX: return mk_mx(call, e->op, cost, &st);
    case FAM_SORT: return mk_sorting(call, e->op, cost, &st);
    case FAM_INDEX: return mk_indexing(call, e->op, cost, &st);
    case FAM_CUM: return mk_cumulative(call, e->op, cost, &st);
    case FAM_LINALG: return mk_linalg(call, e->op, cost, &st);
    default: return mk_nn(call, e->op, cost, &st);
    }
}
