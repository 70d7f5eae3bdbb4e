/* Views and kernel calls the kernel tests (test_kernels.c, test_sorting.c, test_linalg.c)
 * share: a maia_view over host memory, and one maia_kernel_execute call whose error message
 * lands in g_err. */
#ifndef KERNEL_CALL_H
#define KERNEL_CALL_H

#include <stdint.h>
#include <string.h>

#include "../src/maia_kernels.h"

/* A view of `data`: `strides` in elements, or C-contiguous when NULL. */
static inline maia_view mkview(void *data, int dt, int ndim, const int64_t *shape,
                               const int64_t *strides) {
    maia_view v;
    memset(&v, 0, sizeof v);
    v.data = data;
    v.dtype = dt;
    v.ndim = ndim;
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        v.shape[d] = shape[d];
        v.strides[d] = strides ? strides[d] : s;
        if (!strides) s *= shape[d]; /* (given strides: huge shapes must not overflow s) */
    }
    return v;
}

static char g_err[512];

/* Run kernel `k` on `nin` inputs and `nout` outputs; returns the status, message in g_err. */
static inline int run_kernel(const char *k, int nin, const maia_view *ins, int nout,
                             const maia_view *outs, const maia_attrs *at, int threads,
                             maia_kernel_cost *cost) {
    maia_kernel_call c;
    memset(&c, 0, sizeof c);
    c.kernel = k;
    c.n_inputs = nin;
    c.n_outputs = nout;
    for (int i = 0; i < nin; i++) c.inputs[i] = ins[i];
    for (int i = 0; i < nout; i++) c.outputs[i] = outs[i];
    if (at) c.attrs = *at;
    c.threads = threads;
    maia_kernel_cost local;
    g_err[0] = '\0';
    return maia_kernel_execute(&c, cost ? cost : &local, g_err, sizeof g_err);
}

/* The single-output form. */
static inline int run_call(const char *k, int nin, const maia_view *ins, const maia_view *out,
                           const maia_attrs *at, int threads, maia_kernel_cost *cost) {
    return run_kernel(k, nin, ins, 1, out, at, threads, cost);
}

#endif
