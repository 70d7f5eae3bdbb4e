/* matmul: (..., M, K) x (..., K, N) -> (..., M, N), batch dimensions already broadcast by
 * the core (zero strides where an operand is broadcast). Operands may have any strides.
 *
 * Floats (float32, and bfloat16/float16/float8 converted while packing) accumulate in float32
 * and round once into the output. The float path is a packed, cache-blocked GEMM (KC x NC
 * panels of B, MC x KC blocks of A, an MR x NR register-blocked micro-kernel). The
 * micro-kernel has an AVX2+FMA version chosen at run time with __builtin_cpu_supports and a
 * portable version the compiler may vectorize; nothing is built with -march=native.
 * Integers accumulate in 64 bits with wrapping and are truncated into the output dtype.
 * Work is split over `threads` host threads by batches and row blocks.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels_internal.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define MK_X86 1
#include <immintrin.h>
#endif

#define MR 6
#define NR 16
#ifndef KC
#define KC 256
#endif
#ifndef MC
#define MC 96
#endif
#ifndef NC
#define NC 2048
#endif
#define MAX_TASK_ROWS 480

typedef struct mm_ctx {
    int32_t dt;
    int kind;
    int64_t M, N, K;
    int nb; /* batch dims */
    int64_t bshape[MAIA_MAX_DIMS], abs_[MAIA_MAX_DIMS], bbs[MAIA_MAX_DIMS], cbs[MAIA_MAX_DIMS];
    int64_t batch;
    char *a, *b, *c;
    size_t es;
    int64_t ars, acs, brs, bcs, crs, ccs;
    int64_t rows_per_task, tasks_per_batch, ntasks;
    int nthreads;
    int avx2;
    int64_t ap_elems, bp_elems; /* floats of the packed A block and B panel, rounded to 64 B */
    float **fbuf;   /* per thread: packed A, packed B, C scratch */
    int64_t **ibuf; /* per thread: accumulator row, B row */
} mm_ctx;

/* ---- micro-kernels: C[MR x NR] (+)= A panel (kc x MR) * B panel (kc x NR) ---------------- */

static void ukernel_generic(int64_t kc, const float *A, const float *B, float *C, int64_t ldc,
                            int accumulate) {
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < kc; k++) {
        const float *b = B + k * NR;
        for (int i = 0; i < MR; i++) {
            float a = A[k * MR + i];
            for (int j = 0; j < NR; j++) acc[i][j] += a * b[j];
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            C[i * ldc + j] = accumulate ? C[i * ldc + j] + acc[i][j] : acc[i][j];
}

#ifdef MK_X86
__attribute__((target("avx2,fma"))) static void
ukernel_avx2(int64_t kc, const float *A, const float *B, float *C, int64_t ldc, int accumulate) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#define MK_STEP(kk)                                                                         \
    do {                                                                                    \
        const float *bk = B + (kk) * NR, *a = A + (kk) * MR;                                \
        __m256 b0 = _mm256_load_ps(bk), b1 = _mm256_load_ps(bk + 8), t;                     \
        t = _mm256_broadcast_ss(a + 0);                                                     \
        c00 = _mm256_fmadd_ps(t, b0, c00);                                                  \
        c01 = _mm256_fmadd_ps(t, b1, c01);                                                  \
        t = _mm256_broadcast_ss(a + 1);                                                     \
        c10 = _mm256_fmadd_ps(t, b0, c10);                                                  \
        c11 = _mm256_fmadd_ps(t, b1, c11);                                                  \
        t = _mm256_broadcast_ss(a + 2);                                                     \
        c20 = _mm256_fmadd_ps(t, b0, c20);                                                  \
        c21 = _mm256_fmadd_ps(t, b1, c21);                                                  \
        t = _mm256_broadcast_ss(a + 3);                                                     \
        c30 = _mm256_fmadd_ps(t, b0, c30);                                                  \
        c31 = _mm256_fmadd_ps(t, b1, c31);                                                  \
        t = _mm256_broadcast_ss(a + 4);                                                     \
        c40 = _mm256_fmadd_ps(t, b0, c40);                                                  \
        c41 = _mm256_fmadd_ps(t, b1, c41);                                                  \
        t = _mm256_broadcast_ss(a + 5);                                                     \
        c50 = _mm256_fmadd_ps(t, b0, c50);                                                  \
        c51 = _mm256_fmadd_ps(t, b1, c51);                                                  \
    } while (0)
    for (int i = 0; i < MR; i++) _mm_prefetch((const char *)(C + i * ldc), _MM_HINT_T0);
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4) {
        _mm_prefetch((const char *)(B + (k + 8) * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(B + (k + 10) * NR), _MM_HINT_T0);
        MK_STEP(k);
        MK_STEP(k + 1);
        MK_STEP(k + 2);
        MK_STEP(k + 3);
    }
    for (; k < kc; k++) MK_STEP(k);
#undef MK_STEP
    __m256 r[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int i = 0; i < MR; i++) {
        float *c = C + i * ldc;
        if (accumulate) {
            r[i][0] = _mm256_add_ps(r[i][0], _mm256_loadu_ps(c));
            r[i][1] = _mm256_add_ps(r[i][1], _mm256_loadu_ps(c + 8));
        }
        _mm256_storeu_ps(c, r[i][0]);
        _mm256_storeu_ps(c + 8, r[i][1]);
    }
}
#endif

static void ukernel(const mm_ctx *m, int64_t kc, const float *A, const float *B, float *C,
                    int64_t ldc, int accumulate) {
#ifdef MK_X86
    if (m->avx2) {
        ukernel_avx2(kc, A, B, C, ldc, accumulate);
        return;
    }
#endif
    (void)m;
    ukernel_generic(kc, A, B, C, ldc, accumulate);
}

/* ---- packing ------------------------------------------------------------------------------- */

static inline float ld(int32_t dt, const char *base, int64_t off) {
    switch (dt) {
    case MAIA_FLOAT32: return ((const float *)base)[off];
    case MAIA_FLOAT16: return maia_f16_to_f32(((const uint16_t *)base)[off]);
    case MAIA_BFLOAT16: return maia_bf16_to_f32(((const uint16_t *)base)[off]);
    case MAIA_FLOAT8_E4M3FN: return maia_f8e4m3_to_f32(((const uint8_t *)base)[off]);
    default: return maia_f8e5m2_to_f32(((const uint8_t *)base)[off]);
    }
}

/* A rows [i0, i0+mc), cols [k0, k0+kc) -> panels of MR rows, kc x MR each, zero-padded. */
static void pack_a(const mm_ctx *m, const char *a, int64_t i0, int64_t mc, int64_t k0,
                   int64_t kc, float *Ap) {
    for (int64_t p = 0; p < mc; p += MR) {
        float *dst = Ap + p * kc;
        for (int i = 0; i < MR; i++) {
            if (p + i < mc) {
                int64_t row = (i0 + p + i) * m->ars;
                if (m->dt == MAIA_FLOAT32 && m->acs == 1) {
                    const float *src = (const float *)a + row + k0;
                    for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = src[k];
                } else {
                    for (int64_t k = 0; k < kc; k++)
                        dst[k * MR + i] = ld(m->dt, a, row + (k0 + k) * m->acs);
                }
            } else {
                for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = 0.0f;
            }
        }
    }
}

/* B rows [k0, k0+kc), cols [j0, j0+nc) -> panels of NR cols, kc x NR each, zero-padded. */
static void pack_b(const mm_ctx *m, const char *b, int64_t k0, int64_t kc, int64_t j0,
                   int64_t nc, float *Bp) {
    for (int64_t q = 0; q < nc; q += NR) {
        float *dst = Bp + q * kc;
        int64_t w = nc - q < NR ? nc - q : NR;
        for (int64_t k = 0; k < kc; k++) {
            int64_t row = (k0 + k) * m->brs;
            float *d = dst + k * NR;
            if (m->dt == MAIA_FLOAT32 && m->bcs == 1) {
                const float *src = (const float *)b + row + j0 + q;
                for (int64_t j = 0; j < w; j++) d[j] = src[j];
            } else {
                for (int64_t j = 0; j < w; j++) d[j] = ld(m->dt, b, row + (j0 + q + j) * m->bcs);
            }
            for (int64_t j = w; j < NR; j++) d[j] = 0.0f;
        }
    }
}

/* ---- one task: batch `bi`, rows [r0, r1) ------------------------------------------------- */

static void batch_offsets(const mm_ctx *m, int64_t bi, int64_t *ao, int64_t *bo, int64_t *co) {
    *ao = *bo = *co = 0;
    for (int d = m->nb - 1; d >= 0; d--) {
        int64_t i = bi % m->bshape[d];
        bi /= m->bshape[d];
        *ao += i * m->abs_[d];
        *bo += i * m->bbs[d];
        *co += i * m->cbs[d];
    }
}

static void task_float(const mm_ctx *m, int t, int64_t bi, int64_t r0, int64_t r1) {
    int64_t ao, bo, co;
    batch_offsets(m, bi, &ao, &bo, &co);
    const char *a = m->a + ao * (int64_t)m->es;
    const char *b = m->b + bo * (int64_t)m->es;
    char *c = m->c + co * (int64_t)m->es;
    float *Ap = m->fbuf[t];
    float *Bp = Ap + m->ap_elems;
    float *scratch = Bp + m->bp_elems;
    int direct = m->dt == MAIA_FLOAT32 && m->ccs == 1;
    int64_t rows = r1 - r0;
    for (int64_t j0 = 0; j0 < m->N; j0 += NC) {
        int64_t nc = m->N - j0 < NC ? m->N - j0 : NC;
        float *C;
        int64_t ldc;
        if (direct) {
            C = (float *)c + r0 * m->crs + j0;
            ldc = m->crs;
        } else {
            C = scratch;
            ldc = nc;
        }
        for (int64_t k0 = 0; k0 < m->K; k0 += KC) {
            int64_t kc = m->K - k0 < KC ? m->K - k0 : KC;
            int accumulate = k0 > 0;
            pack_b(m, b, k0, kc, j0, nc, Bp);
            for (int64_t i0 = 0; i0 < rows; i0 += MC) {
                int64_t mc = rows - i0 < MC ? rows - i0 : MC;
                pack_a(m, a, r0 + i0, mc, k0, kc, Ap);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    int64_t nr = nc - jr < NR ? nc - jr : NR;
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        int64_t mr = mc - ir < MR ? mc - ir : MR;
                        float *cp = C + (i0 + ir) * ldc + jr;
                        const float *ap = Ap + ir * kc, *bp = Bp + jr * kc;
                        if (mr == MR && nr == NR) {
                            ukernel(m, kc, ap, bp, cp, ldc, accumulate);
                        } else {
                            float tile[MR * NR];
                            ukernel(m, kc, ap, bp, tile, NR, 0);
                            for (int64_t i = 0; i < mr; i++)
                                for (int64_t j = 0; j < nr; j++)
                                    cp[i * ldc + j] = accumulate ? cp[i * ldc + j] + tile[i * NR + j]
                                                                 : tile[i * NR + j];
                        }
                    }
                }
            }
        }
        if (!direct)
            for (int64_t i = 0; i < rows; i++)
                mk_store_f32(m->dt, c + ((r0 + i) * m->crs + j0 * m->ccs) * (int64_t)m->es,
                             m->ccs, (size_t)nc, scratch + i * nc);
    }
}

static void task_int(const mm_ctx *m, int t, int64_t bi, int64_t r0, int64_t r1) {
    int64_t ao, bo, co;
    batch_offsets(m, bi, &ao, &bo, &co);
    const char *a = m->a + ao * (int64_t)m->es;
    const char *b = m->b + bo * (int64_t)m->es;
    char *c = m->c + co * (int64_t)m->es;
    int64_t *acc = m->ibuf[t], *brow = acc + m->N;
    for (int64_t i = r0; i < r1; i++) {
        memset(acc, 0, (size_t)m->N * sizeof *acc);
        for (int64_t k = 0; k < m->K; k++) {
            int64_t av;
            mk_load_i64(m->dt, a + (i * m->ars + k * m->acs) * (int64_t)m->es, 1, 1, &av);
            if (av == 0) continue;
            mk_load_i64(m->dt, b + k * m->brs * (int64_t)m->es, m->bcs, (size_t)m->N, brow);
            uint64_t ua = (uint64_t)av;
            for (int64_t j = 0; j < m->N; j++)
                acc[j] = (int64_t)((uint64_t)acc[j] + ua * (uint64_t)brow[j]);
        }
        mk_store_i64(m->dt, c + i * m->crs * (int64_t)m->es, m->ccs, (size_t)m->N, acc);
    }
}

static void mm_thread(void *vc, int64_t begin, int64_t end) {
    const mm_ctx *m = (const mm_ctx *)vc;
    for (int64_t t = begin; t < end; t++) {
        int64_t lo = m->ntasks * t / m->nthreads, hi = m->ntasks * (t + 1) / m->nthreads;
        for (int64_t task = lo; task < hi; task++) {
            int64_t bi = task / m->tasks_per_batch, chunk = task % m->tasks_per_batch;
            int64_t r0 = chunk * m->rows_per_task;
            int64_t r1 = r0 + m->rows_per_task < m->M ? r0 + m->rows_per_task : m->M;
            if (m->kind == MK_KIND_FLOAT)
                task_float(m, (int)t, bi, r0, r1);
            else
                task_int(m, (int)t, bi, r0, r1);
        }
    }
}

static int cpu_has_avx2_fma(void) {
#ifdef MK_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int mk_matmul(const maia_kernel_call *call, maia_kernel_cost *cost, mk_status *st) {
    if (mk_check_counts(call, 2, 1, st)) return st->code;
    const maia_view *A = &call->inputs[0], *B = &call->inputs[1], *Cv = &call->outputs[0];
    int nd = A->ndim;
    if (nd < 2 || B->ndim != nd || Cv->ndim != nd)
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "matmul: operands need the same number (>= 2) of dimensions, got %d, %d "
                       "and %d",
                       (int)A->ndim, (int)B->ndim, (int)Cv->ndim);
    if (A->dtype != B->dtype || Cv->dtype != A->dtype)
        return mk_fail(st, MAIA_KERNEL_INVALID, "matmul: operand dtypes differ (%s, %s -> %s)",
                       mk_dtype_name(A->dtype), mk_dtype_name(B->dtype),
                       mk_dtype_name(Cv->dtype));
    if (mk_kind(A->dtype) == MK_KIND_BOOL)
        return mk_fail(st, MAIA_KERNEL_UNSUPPORTED, "matmul is not implemented for bool");
    for (int d = 0; d < nd - 2; d++)
        if (A->shape[d] != Cv->shape[d] || B->shape[d] != Cv->shape[d])
            return mk_fail(st, MAIA_KERNEL_INVALID,
                           "matmul: batch dimension %d differs (%lld, %lld -> %lld)", d,
                           (long long)A->shape[d], (long long)B->shape[d],
                           (long long)Cv->shape[d]);
    int64_t M = A->shape[nd - 2], K = A->shape[nd - 1], N = B->shape[nd - 1];
    if (B->shape[nd - 2] != K || Cv->shape[nd - 2] != M || Cv->shape[nd - 1] != N)
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "matmul: shapes (%lld, %lld) x (%lld, %lld) -> (%lld, %lld) do not match",
                       (long long)M, (long long)K, (long long)B->shape[nd - 2], (long long)N,
                       (long long)Cv->shape[nd - 2], (long long)Cv->shape[nd - 1]);

    mm_ctx m;
    memset(&m, 0, sizeof m);
    m.dt = A->dtype;
    m.kind = mk_kind(A->dtype);
    m.M = M;
    m.N = N;
    m.K = K;
    m.nb = nd - 2;
    m.batch = 1;
    for (int d = 0; d < m.nb; d++) {
        m.bshape[d] = Cv->shape[d];
        m.abs_[d] = A->strides[d];
        m.bbs[d] = B->strides[d];
        m.cbs[d] = Cv->strides[d];
        m.batch *= Cv->shape[d];
    }
    m.a = (char *)A->data;
    m.b = (char *)B->data;
    m.c = (char *)Cv->data;
    m.es = mk_elsize(A->dtype);
    m.ars = A->strides[nd - 2];
    m.acs = A->strides[nd - 1];
    m.brs = B->strides[nd - 2];
    m.bcs = B->strides[nd - 1];
    m.crs = Cv->strides[nd - 2];
    m.ccs = Cv->strides[nd - 1];

    double flops = 2.0 * (double)m.batch * (double)M * (double)N * (double)K;
    cost->flops = flops;
    cost->bytes_moved =
        (mk_view_unique(A) + mk_view_unique(B) + mk_view_unique(Cv)) * (double)m.es;
    cost->compute_dtype = A->dtype;
    if (m.batch == 0 || M == 0 || N == 0) return MAIA_KERNEL_OK;

    if (K == 0) { /* an empty sum: zeros */
        int64_t zeros[256];
        memset(zeros, 0, sizeof zeros);
        for (int64_t bi = 0; bi < m.batch; bi++) {
            int64_t ao, bo, co;
            batch_offsets(&m, bi, &ao, &bo, &co);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j += 256)
                    mk_store_i64(m.dt, m.c + (co + i * m.crs + j * m.ccs) * (int64_t)m.es, m.ccs,
                                 (size_t)(N - j < 256 ? N - j : 256), zeros);
        }
        return MAIA_KERNEL_OK;
    }

    int threads = call->threads < 1 ? 1 : call->threads;
    if (threads > 256) threads = 256;
    if (flops < (double)(1 << 21)) threads = 1;
    int64_t splits = 1;
    if (m.batch < threads) splits = (threads + m.batch - 1) / m.batch;
    int64_t rows = (M + splits - 1) / splits;
    /* float32 written in place needs no per-task scratch: one balanced row block per thread
     * (each packs its own B panels; packing is O(K*N) against O(rows*K*N) arithmetic) */
    int direct = m.kind == MK_KIND_FLOAT && m.dt == MAIA_FLOAT32 && m.ccs == 1;
    if (rows > MAX_TASK_ROWS && !direct) rows = MAX_TASK_ROWS;
    rows = (rows + MR - 1) / MR * MR;
    m.rows_per_task = rows;
    m.tasks_per_batch = (M + rows - 1) / rows;
    m.ntasks = m.batch * m.tasks_per_batch;
    if (threads > m.ntasks) threads = (int)m.ntasks;
    m.nthreads = threads;
    m.avx2 = cpu_has_avx2_fma();

    /* per-thread buffers, allocated here so a failure is reported, not crashed on, and
     * sized to the problem: a small matmul gets small buffers from the heap instead of
     * fresh pages of a full-size panel (an mmap and munmap per call, which serialize the
     * queues' threads on the process's memory map) */
    size_t per;
    if (m.kind == MK_KIND_FLOAT) {
        int64_t ncols = N < NC ? N : NC;
        int64_t kc = K < KC ? K : KC;
        int64_t mc = rows < MC ? rows : MC; /* rows is a multiple of MR */
        int64_t nc = (ncols + NR - 1) / NR * NR;
        m.ap_elems = (mc * kc + 15) / 16 * 16;
        m.bp_elems = (kc * nc + 15) / 16 * 16;
        per = (size_t)(m.ap_elems + m.bp_elems + (direct ? 0 : rows * ncols)) * sizeof(float);
    } else {
        per = (size_t)(2 * N) * sizeof(int64_t);
    }
    float *fb[256];
    int64_t *ib[256];
    int ok = 1;
    for (int t = 0; t < threads; t++) {
        fb[t] = NULL;
        ib[t] = NULL;
        if (m.kind == MK_KIND_FLOAT)
            fb[t] = (float *)aligned_alloc(64, (per + 63) / 64 * 64); /* aligned B panels */
        else
            ib[t] = (int64_t *)malloc(per);
        if (!fb[t] && !ib[t]) ok = 0;
    }
    m.fbuf = fb;
    m.ibuf = ib;
    if (ok) mk_parallel_for(threads, threads, 1, mm_thread, &m);
    for (int t = 0; t < threads; t++) {
        free(fb[t]);
        free(ib[t]);
    }
    if (!ok)
        return mk_fail(st, MAIA_KERNEL_INVALID, "matmul: out of host memory for work buffers");
    return MAIA_KERNEL_OK;
}
