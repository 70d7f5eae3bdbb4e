/* TEST-ONLY stand-in for the kernels (src/kernels/), linked into tests/test_runtime*.c and
 * never into libmaia. It implements the maia_kernels.h boundary with a few kernels whose
 * effect and cost the runtime tests can predict:
 *   "fill"  outputs[0] (float32, any strides) = attrs.eps; cost: 0 flops, 4 bytes/element
 *   "add"   outputs[0] = inputs[0] + inputs[1] (float32, same shape, any strides);
 *           cost: 1 flop and 12 bytes per element
 *   "fail"  always fails with MAIA_KERNEL_INVALID and message "double: asked to fail"
 * Any other name returns MAIA_KERNEL_UNKNOWN. runtime_double_calls counts executions. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "maia_kernels.h"

atomic_long runtime_double_calls;

static int64_t count(const maia_view *v) {
    int64_t n = 1;
    for (int i = 0; i < v->ndim; i++) n *= v->shape[i];
    return n;
}

/* element offset of linear index k in C order */
static int64_t offset_of(const maia_view *v, int64_t k) {
    int64_t off = 0;
    for (int i = v->ndim - 1; i >= 0; i--) {
        int64_t ext = v->shape[i];
        off += (k % ext) * v->strides[i];
        k /= ext;
    }
    return off;
}

static int same_shape(const maia_view *a, const maia_view *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

int maia_kernel_execute(const maia_kernel_call *call, maia_kernel_cost *cost, char *err,
                        size_t errlen) {
    atomic_fetch_add(&runtime_double_calls, 1);
    cost->flops = 0;
    cost->bytes_moved = 0;
    cost->compute_dtype = MAIA_FLOAT32;
    if (strcmp(call->kernel, "fill") == 0) {
        if (call->n_outputs != 1 || call->outputs[0].dtype != MAIA_FLOAT32) {
            snprintf(err, errlen, "double: fill wants one float32 output");
            return MAIA_KERNEL_INVALID;
        }
        const maia_view *o = &call->outputs[0];
        int64_t n = count(o);
        float *p = o->data;
        for (int64_t k = 0; k < n; k++) p[offset_of(o, k)] = (float)call->attrs.eps;
        cost->bytes_moved = 4.0 * (double)n;
        return MAIA_KERNEL_OK;
    }
    if (strcmp(call->kernel, "add") == 0) {
        if (call->n_inputs != 2 || call->n_outputs != 1 ||
            call->inputs[0].dtype != MAIA_FLOAT32 || call->inputs[1].dtype != MAIA_FLOAT32 ||
            call->outputs[0].dtype != MAIA_FLOAT32 ||
            !same_shape(&call->inputs[0], &call->outputs[0]) ||
            !same_shape(&call->inputs[1], &call->outputs[0])) {
            snprintf(err, errlen, "double: add wants two float32 inputs of the output's shape");
            return MAIA_KERNEL_INVALID;
        }
        const maia_view *a = &call->inputs[0], *b = &call->inputs[1], *o = &call->outputs[0];
        int64_t n = count(o);
        const float *pa = a->data, *pb = b->data;
        float *po = o->data;
        for (int64_t k = 0; k < n; k++)
            po[offset_of(o, k)] = pa[offset_of(a, k)] + pb[offset_of(b, k)];
        cost->flops = (double)n;
        cost->bytes_moved = 12.0 * (double)n;
        return MAIA_KERNEL_OK;
    }
    if (strcmp(call->kernel, "fail") == 0) {
        snprintf(err, errlen, "double: asked to fail");
        return MAIA_KERNEL_INVALID;
    }
    snprintf(err, errlen, "double: no kernel named '%s'", call->kernel);
    return MAIA_KERNEL_UNKNOWN;
}

int maia_kernel_supports(const char *kernel, int32_t dtype) {
    return dtype == MAIA_FLOAT32 &&
           (!strcmp(kernel, "fill") || !strcmp(kernel, "add") || !strcmp(kernel, "fail"));
}

static const char *const names[] = {"add", "fail", "fill", NULL};
const char *const *maia_kernel_names(void) { return names; }

void maia_kernel_shutdown(void) {}
