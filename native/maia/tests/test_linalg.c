/* Tests of the Maia emulator's linalg kernels (src/kernels/linalg.c): cholesky, inv, det,
 * slogdet, solve, qr, eigh, eigvalsh, svd, svdvals. Results are checked by what defines them
 * (reconstruction, orthogonality, triangularity, ordering) and against known values; also
 * singular and non-positive-definite failures, strided/transposed/broadcast operands, empty
 * and 1x1 matrices, NaN input, float16/bfloat16, threads, and malformed calls. Standalone;
 * exits non-zero on any failure. Meant to run under -fsanitize=address,undefined. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/maia_kernels.h"
#include "kernel_call.h"
#include "kernel_check.h"

static double rndd(void) { return (double)(rnd() >> 11) / 9007199254740992.0 * 2 - 1; }

/* ---- views and calls ------------------------------------------------------------------------ */


/* element of a float view at a flat element offset */
static double getv(const maia_view *v, int64_t off) {
    switch (v->dtype) {
    case MAIA_FLOAT32: return ((const float *)v->data)[off];
    case MAIA_FLOAT16: return maia_f16_to_f32(((const uint16_t *)v->data)[off]);
    default: return maia_bf16_to_f32(((const uint16_t *)v->data)[off]);
    }
}
static void setv(const maia_view *v, int64_t off, double x) {
    switch (v->dtype) {
    case MAIA_FLOAT32: ((float *)v->data)[off] = (float)x; return;
    case MAIA_FLOAT16: ((uint16_t *)v->data)[off] = maia_f32_to_f16((float)x); return;
    default: ((uint16_t *)v->data)[off] = maia_f32_to_bf16((float)x); return;
    }
}

/* offset of batch index bi (C order over the first nb dims) */
static int64_t boff(const maia_view *v, int nb, int64_t bi) {
    int64_t off = 0;
    for (int d = nb - 1; d >= 0; d--) {
        off += (bi % v->shape[d]) * v->strides[d];
        bi /= v->shape[d];
    }
    return off;
}
/* matrix element (i, j) of batch bi of a view with nb batch dims */
static double mat(const maia_view *v, int nb, int64_t bi, int64_t i, int64_t j) {
    return getv(v, boff(v, nb, bi) + i * v->strides[nb] + j * v->strides[nb + 1]);
}
static double vec(const maia_view *v, int nb, int64_t bi, int64_t i) {
    return getv(v, boff(v, nb, bi) + i * v->strides[nb]);
}

/* a float32 buffer of n elements, to be freed */
static float *fbuf(int64_t n) { return (float *)calloc((size_t)(n > 0 ? n : 1), sizeof(float)); }

/* fill the batch of matrices of v (contiguous or not) with random values in [-1, 1] */
static void fill_random(const maia_view *v, int nb, int64_t batch, int64_t m, int64_t n) {
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                setv(v, boff(v, nb, b) + i * v->strides[nb] + j * v->strides[nb + 1], rndd());
}

static double frob_mat(const maia_view *v, int nb, int64_t b, int64_t m, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) s += mat(v, nb, b, i, j) * mat(v, nb, b, i, j);
    return sqrt(s);
}

#define EPS32 1.1920929e-07

/* ==== cholesky ================================================================================= */

static void test_cholesky(void) {
    static const int64_t sizes[] = {1, 2, 3, 5, 8, 17, 40};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int upper = 0; upper < 2; upper++) {
            int64_t n = sizes[si], batch = 3, shape[3] = {batch, n, n};
            float *a = fbuf(batch * n * n), *l = fbuf(batch * n * n);
            maia_view A = mkview(a, MAIA_FLOAT32, 3, shape, NULL);
            maia_view L = mkview(l, MAIA_FLOAT32, 3, shape, NULL);
            /* A = B B^T + n I in the lower triangle; garbage above (must not be read) */
            for (int64_t b = 0; b < batch; b++) {
                double *bb = (double *)malloc((size_t)(n * n) * sizeof(double));
                for (int64_t i = 0; i < n * n; i++) bb[i] = rndd();
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double s = i == j ? (double)n : 0;
                        for (int64_t k = 0; k < n; k++) s += bb[i * n + k] * bb[j * n + k];
                        a[(b * n + i) * n + j] = j <= i ? (float)s : 1e30f;
                    }
                free(bb);
            }
            maia_attrs at;
            memset(&at, 0, sizeof at);
            at.upper = upper;
            maia_kernel_cost cost;
            int rc = run_kernel("cholesky", 1, &A, 1, &L, &at, 2, &cost);
            CHECK(rc == 0, "cholesky n=%lld: %s", (long long)n, g_err);
            CHECK(cost.flops > 0 && cost.bytes_moved == 2.0 * (double)(batch * n * n) * 4,
                  "cholesky cost %g %g", cost.flops, cost.bytes_moved);
            double worst = 0;
            int tri = 1;
            for (int64_t b = 0; b < batch; b++) {
                double norm = 0;
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j <= i; j++) norm += pow(a[(b * n + i) * n + j], 2);
                norm = sqrt(norm);
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < n; j++) {
                        /* lower factor element L[i][j] */
                        double lij = upper ? l[(b * n + j) * n + i] : l[(b * n + i) * n + j];
                        if (j > i && lij != 0) tri = 0;
                        if (j > i) continue;
                        double s = 0;
                        for (int64_t k = 0; k <= j; k++) {
                            double lik = upper ? l[(b * n + k) * n + i] : l[(b * n + i) * n + k];
                            double ljk = upper ? l[(b * n + k) * n + j] : l[(b * n + j) * n + k];
                            s += lik * ljk;
                        }
                        double e = fabs(s - a[(b * n + i) * n + j]) / norm;
                        if (e > worst) worst = e;
                    }
            }
            CHECK(tri, "cholesky n=%lld upper=%d: not triangular", (long long)n, upper);
            CHECK(worst < 8 * EPS32 * (double)n, "cholesky n=%lld upper=%d: L L^T err %g",
                  (long long)n, upper, worst);
            free(a);
            free(l);
        }
    /* known: [[4, 2], [2, 5]] = [[2, 0], [1, 2]] [[2, 1], [0, 2]] */
    float a[4] = {4, 2, 2, 5}, l[4];
    int64_t s2[2] = {2, 2};
    maia_view A = mkview(a, MAIA_FLOAT32, 2, s2, NULL), L = mkview(l, MAIA_FLOAT32, 2, s2, NULL);
    CHECK(run_kernel("cholesky", 1, &A, 1, &L, NULL, 1, NULL) == 0 && l[0] == 2 && l[1] == 0 &&
              l[2] == 1 && l[3] == 2,
          "cholesky known: %g %g %g %g %s", l[0], l[1], l[2], l[3], g_err);
    /* not positive definite: matrix 1 of a stack of 3 */
    float st[12] = {1, 0, 0, 1, 1, 2, 2, 1, 2, 0, 0, 2}, so[12];
    int64_t s3[3] = {3, 2, 2};
    maia_view S = mkview(st, MAIA_FLOAT32, 3, s3, NULL), SO = mkview(so, MAIA_FLOAT32, 3, s3, NULL);
    int rc = run_kernel("cholesky", 1, &S, 1, &SO, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "not positive definite") &&
              strstr(g_err, "(1,)") && strstr(g_err, "order 2"),
          "cholesky non-PD: %d %s", rc, g_err);
    /* NaN goes into the factor (as LAPACK's potrf); -inf is not positive definite */
    float nan4[4] = {NAN, 0, 0, 1}, ninf[4] = {-INFINITY, 0, 0, 1};
    maia_view NA = mkview(nan4, MAIA_FLOAT32, 2, s2, NULL);
    rc = run_kernel("cholesky", 1, &NA, 1, &L, NULL, 1, NULL);
    CHECK(rc == 0 && isnan(l[0]) && l[1] == 0, "cholesky NaN: %d %s", rc, g_err);
    NA = mkview(ninf, MAIA_FLOAT32, 2, s2, NULL);
    rc = run_kernel("cholesky", 1, &NA, 1, &L, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "order 1"), "cholesky -inf: %d %s", rc, g_err);
}

/* ==== LU family: inv, det, slogdet, solve ======================================================== */

/* det by Gaussian elimination with partial pivoting, in long double (independent check) */
static double det_ref(const double *a0, int64_t n) {
    long double *a = (long double *)malloc((size_t)(n * n + 1) * sizeof(long double));
    for (int64_t i = 0; i < n * n; i++) a[i] = a0[i];
    long double det = 1;
    for (int64_t k = 0; k < n; k++) {
        int64_t p = k;
        for (int64_t i = k + 1; i < n; i++)
            if (fabsl(a[i * n + k]) > fabsl(a[p * n + k])) p = i;
        if (a[p * n + k] == 0) {
            free(a);
            return 0;
        }
        if (p != k) {
            det = -det;
            for (int64_t j = 0; j < n; j++) {
                long double t = a[k * n + j];
                a[k * n + j] = a[p * n + j];
                a[p * n + j] = t;
            }
        }
        det *= a[k * n + k];
        for (int64_t i = k + 1; i < n; i++) {
            long double f = a[i * n + k] / a[k * n + k];
            for (int64_t j = k; j < n; j++) a[i * n + j] -= f * a[k * n + j];
        }
    }
    free(a);
    return (double)det;
}

static void test_inv_solve(void) {
    static const int64_t sizes[] = {1, 2, 3, 4, 7, 16, 33};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int transposed = 0; transposed < 2; transposed++) {
            int64_t n = sizes[si], batch = 2, shape[3] = {batch, n, n};
            float *a = fbuf(batch * n * n), *x = fbuf(batch * n * n);
            /* the input may be a transposed view: strides (n*n, 1, n) */
            int64_t tstr[3] = {n * n, 1, n};
            maia_view A = mkview(a, MAIA_FLOAT32, 3, shape, transposed ? tstr : NULL);
            maia_view X = mkview(x, MAIA_FLOAT32, 3, shape, NULL);
            fill_random(&A, 1, batch, n, n);
            for (int64_t b = 0; b < batch; b++) /* diagonally dominant enough */
                for (int64_t i = 0; i < n; i++)
                    setv(&A, boff(&A, 1, b) + i * (A.strides[1] + A.strides[2]),
                         mat(&A, 1, b, i, i) + 2);
            int rc = run_kernel("inv", 1, &A, 1, &X, NULL, 1, NULL);
            CHECK(rc == 0, "inv n=%lld: %s", (long long)n, g_err);
            double worst = 0;
            for (int64_t b = 0; b < batch; b++)
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double s = 0;
                        for (int64_t k = 0; k < n; k++) s += mat(&A, 1, b, i, k) * mat(&X, 1, b, k, j);
                        double e = fabs(s - (i == j));
                        if (e > worst) worst = e;
                    }
            CHECK(worst < 1e-5 * (double)n, "inv n=%lld T=%d: A inv(A) - I = %g", (long long)n,
                  transposed, worst);

            /* det and slogdet of the same matrices */
            float *d = fbuf(batch), *sg = fbuf(batch), *la = fbuf(batch);
            int64_t bs[1] = {batch};
            maia_view D = mkview(d, MAIA_FLOAT32, 1, bs, NULL);
            maia_view SL[2] = {mkview(sg, MAIA_FLOAT32, 1, bs, NULL),
                               mkview(la, MAIA_FLOAT32, 1, bs, NULL)};
            CHECK(run_kernel("det", 1, &A, 1, &D, NULL, 1, NULL) == 0, "det: %s", g_err);
            CHECK(run_kernel("slogdet", 1, &A, 2, SL, NULL, 1, NULL) == 0, "slogdet: %s", g_err);
            for (int64_t b = 0; b < batch; b++) {
                double *ad = (double *)malloc((size_t)(n * n) * sizeof(double));
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < n; j++) ad[i * n + j] = mat(&A, 1, b, i, j);
                double want = det_ref(ad, n);
                free(ad);
                CHECK(fabs(d[b] - want) <= 4 * EPS32 * fabs(want), "det n=%lld: %.9g vs %.9g",
                      (long long)n, d[b], want);
                CHECK(sg[b] == (want > 0 ? 1 : -1) &&
                          fabs(la[b] - log(fabs(want))) <= 4 * EPS32 * (1 + fabs(log(fabs(want)))),
                      "slogdet n=%lld: %g %.9g vs %.9g", (long long)n, sg[b], la[b],
                      log(fabs(want)));
            }
            free(d);
            free(sg);
            free(la);

            /* solve with 3 right-hand sides, x1 broadcast over a batch of 2 (stride 0) */
            int64_t K = 3, bsh[3] = {batch, n, K};
            maia_view A0 = A;
            A0.strides[0] = 0;
            float *bb = fbuf(batch * n * K), *xx = fbuf(batch * n * K);
            maia_view B = mkview(bb, MAIA_FLOAT32, 3, bsh, NULL), XX = mkview(xx, MAIA_FLOAT32, 3, bsh, NULL);
            fill_random(&B, 1, batch, n, K);
            maia_view ins[2] = {A0, B};
            CHECK(run_kernel("solve", 2, ins, 1, &XX, NULL, 1, NULL) == 0, "solve: %s", g_err);
            worst = 0;
            for (int64_t b = 0; b < batch; b++)
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < K; j++) {
                        double s = 0;
                        for (int64_t k = 0; k < n; k++) s += mat(&A0, 1, b, i, k) * mat(&XX, 1, b, k, j);
                        double e = fabs(s - mat(&B, 1, b, i, j));
                        if (e > worst) worst = e;
                    }
            CHECK(worst < 1e-5 * (double)n, "solve n=%lld: residual %g", (long long)n, worst);
            free(bb);
            free(xx);
            free(a);
            free(x);
        }

    /* known determinants */
    int64_t s2[2] = {2, 2}, s3[2] = {3, 3}, s0[1] = {0};
    float a2[4] = {1, 2, 3, 4}, a3[9] = {2, 0, 1, 1, 3, 2, 1, 1, 2}, p3[9] = {0, 1, 0, 1, 0, 0, 0, 0, 1};
    float sing[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, out1, sgn, lab;
    maia_view O = mkview(&out1, MAIA_FLOAT32, 0, s0, NULL);
    maia_view SL[2] = {mkview(&sgn, MAIA_FLOAT32, 0, s0, NULL), mkview(&lab, MAIA_FLOAT32, 0, s0, NULL)};
    maia_view V = mkview(a2, MAIA_FLOAT32, 2, s2, NULL);
    CHECK(run_kernel("det", 1, &V, 1, &O, NULL, 1, NULL) == 0 && out1 == -2, "det [[1,2],[3,4]] = %g", out1);
    V = mkview(a3, MAIA_FLOAT32, 2, s3, NULL);
    CHECK(run_kernel("det", 1, &V, 1, &O, NULL, 1, NULL) == 0 && out1 == 6, "det 3x3 = %g", out1);
    V = mkview(p3, MAIA_FLOAT32, 2, s3, NULL);
    CHECK(run_kernel("det", 1, &V, 1, &O, NULL, 1, NULL) == 0 && out1 == -1, "det perm = %g", out1);
    CHECK(run_kernel("slogdet", 1, &V, 2, SL, NULL, 1, NULL) == 0 && sgn == -1 && lab == 0,
          "slogdet perm = %g %g", sgn, lab);
    V = mkview(sing, MAIA_FLOAT32, 2, s3, NULL);
    float sing_exact[9] = {1, 2, 3, 2, 4, 6, 7, 8, 9};
    maia_view VS = mkview(sing_exact, MAIA_FLOAT32, 2, s3, NULL);
    CHECK(run_kernel("det", 1, &VS, 1, &O, NULL, 1, NULL) == 0 && out1 == 0, "det singular = %g", out1);
    CHECK(run_kernel("slogdet", 1, &VS, 2, SL, NULL, 1, NULL) == 0 && sgn == 0 && isinf(lab) && lab < 0,
          "slogdet singular = %g %g", sgn, lab);
    CHECK(run_kernel("det", 1, &V, 1, &O, NULL, 1, NULL) == 0 && fabs(out1) < 1e-5, "det 1..9 = %g", out1);
    float inv9[9];
    maia_view IO = mkview(inv9, MAIA_FLOAT32, 2, s3, NULL);
    int rc = run_kernel("inv", 1, &VS, 1, &IO, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "singular"), "inv singular: %d %s", rc, g_err);
    float bsol[3] = {1, 2, 3}, xsol[3];
    int64_t s31[2] = {3, 1};
    maia_view sin2[2] = {VS, mkview(bsol, MAIA_FLOAT32, 2, s31, NULL)};
    maia_view XS = mkview(xsol, MAIA_FLOAT32, 2, s31, NULL);
    rc = run_kernel("solve", 2, sin2, 1, &XS, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "singular"), "solve singular: %d %s", rc, g_err);
    /* big / tiny scales: the determinant is kept in range while multiplying */
    float big[4] = {1e30f, 0, 0, 1e-30f};
    V = mkview(big, MAIA_FLOAT32, 2, s2, NULL);
    CHECK(run_kernel("det", 1, &V, 1, &O, NULL, 1, NULL) == 0 && fabs(out1 - 1) < 1e-6, "det scales %g", out1);
    float huge[4] = {3e38f, 0, 0, 3e38f};
    V = mkview(huge, MAIA_FLOAT32, 2, s2, NULL);
    CHECK(run_kernel("det", 1, &V, 1, &O, NULL, 1, NULL) == 0 && isinf(out1), "det overflow %g", out1);
    CHECK(run_kernel("slogdet", 1, &V, 2, SL, NULL, 1, NULL) == 0 && sgn == 1 &&
              fabs(lab - 2 * log(3e38)) < 1e-4,
          "slogdet huge %g %g", sgn, lab);
    /* NaN: no failure, NaN out */
    float nan4[4] = {NAN, 1, 1, 1}, ninv[4];
    V = mkview(nan4, MAIA_FLOAT32, 2, s2, NULL);
    maia_view NI = mkview(ninv, MAIA_FLOAT32, 2, s2, NULL);
    CHECK(run_kernel("det", 1, &V, 1, &O, NULL, 1, NULL) == 0 && isnan(out1), "det NaN %g", out1);
    CHECK(run_kernel("inv", 1, &V, 1, &NI, NULL, 1, NULL) == 0 && isnan(ninv[0]), "inv NaN %g", ninv[0]);
}

/* ==== QR ======================================================================================= */

static void test_qr(void) {
    static const int64_t dims[][2] = {{1, 1}, {3, 3}, {5, 3}, {3, 5}, {8, 1}, {1, 8},
                                      {17, 9}, {9, 17}, {30, 30}, {4, 0}, {0, 4}, {0, 0}};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
        for (int complete = 0; complete < 2; complete++) {
            int64_t m = dims[di][0], n = dims[di][1], k = m < n ? m : n, qc = complete ? m : k;
            int64_t batch = 2;
            /* the input reversed along its rows (negative stride) */
            float *a = fbuf(batch * m * n), *q = fbuf(batch * m * qc), *r = fbuf(batch * qc * n);
            int64_t ash[3] = {batch, m, n}, astr[3] = {m * n, -n, 1};
            maia_view A = mkview(a, MAIA_FLOAT32, 3, ash, astr);
            if (m > 0) A.data = a + (m - 1) * n;
            fill_random(&A, 1, batch, m, n);
            int64_t qs[3] = {batch, m, qc}, rs[3] = {batch, qc, n};
            /* Q written transposed in memory (strides (m*qc, 1, m)) */
            int64_t qstr[3] = {m * qc, 1, m};
            maia_view outs[2] = {mkview(q, MAIA_FLOAT32, 3, qs, qstr), mkview(r, MAIA_FLOAT32, 3, rs, NULL)};
            maia_attrs at;
            memset(&at, 0, sizeof at);
            at.qr_complete = complete;
            int rc = run_kernel("qr", 1, &A, 2, outs, &at, 1, NULL);
            CHECK(rc == 0, "qr %lldx%lld complete=%d: %s", (long long)m, (long long)n, complete, g_err);
            double rec = 0, orth = 0;
            int upper = 1;
            for (int64_t b = 0; b < batch; b++) {
                double norm = frob_mat(&A, 1, b, m, n) + 1e-30;
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double s = 0;
                        for (int64_t t = 0; t < qc; t++) s += mat(&outs[0], 1, b, i, t) * mat(&outs[1], 1, b, t, j);
                        double e = fabs(s - mat(&A, 1, b, i, j)) / norm;
                        if (e > rec) rec = e;
                    }
                for (int64_t i = 0; i < qc; i++)
                    for (int64_t j = 0; j < qc; j++) {
                        double s = 0;
                        for (int64_t t = 0; t < m; t++) s += mat(&outs[0], 1, b, t, i) * mat(&outs[0], 1, b, t, j);
                        double e = fabs(s - (i == j));
                        if (e > orth) orth = e;
                    }
                for (int64_t i = 0; i < qc; i++)
                    for (int64_t j = 0; j < i && j < n; j++)
                        if (mat(&outs[1], 1, b, i, j) != 0) upper = 0;
            }
            double tol = 4 * EPS32 * (double)(m + n + 1);
            CHECK(rec < tol && orth < tol && upper, "qr %lldx%lld c=%d: QR-A %g, QtQ-I %g, upper %d",
                  (long long)m, (long long)n, complete, rec, orth, upper);
            free(a);
            free(q);
            free(r);
        }
    /* the mode must match the output shapes */
    float a[6] = {1, 2, 3, 4, 5, 6}, q[9], r[6];
    int64_t as[2] = {3, 2}, qs[2] = {3, 3}, rs[2] = {3, 2};
    maia_view A = mkview(a, MAIA_FLOAT32, 2, as, NULL);
    maia_view outs[2] = {mkview(q, MAIA_FLOAT32, 2, qs, NULL), mkview(r, MAIA_FLOAT32, 2, rs, NULL)};
    int rc = run_kernel("qr", 1, &A, 2, outs, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "reduced") && strstr(g_err, "Q"),
          "qr mode mismatch: %d %s", rc, g_err);
}

/* ==== eigh ===================================================================================== */

static void test_eigh(void) {
    static const int64_t sizes[] = {1, 2, 3, 6, 10, 25, 50};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int64_t n = sizes[si], batch = 3, shape[3] = {batch, n, n}, ws[2] = {batch, n};
        float *a = fbuf(batch * n * n), *w = fbuf(batch * n), *v = fbuf(batch * n * n),
              *w2 = fbuf(batch * n);
        /* lower triangle random; upper garbage (must not be read); matrix 2 has repeated
         * eigenvalues (a multiple of the identity plus a rank-1 term) */
        for (int64_t b = 0; b < batch; b++)
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++) {
                    double x = b == 2 ? (i == j) * 2.0 + 0.5 : rndd();
                    a[(b * n + i) * n + j] = j <= i ? (float)x : 7e20f;
                }
        maia_view A = mkview(a, MAIA_FLOAT32, 3, shape, NULL);
        maia_view outs[2] = {mkview(w, MAIA_FLOAT32, 2, ws, NULL), mkview(v, MAIA_FLOAT32, 3, shape, NULL)};
        maia_kernel_cost cost;
        int rc = run_kernel("eigh", 1, &A, 2, outs, NULL, 3, &cost);
        CHECK(rc == 0, "eigh n=%lld: %s", (long long)n, g_err);
        CHECK(cost.flops > 0, "eigh flops");
        maia_view W2 = mkview(w2, MAIA_FLOAT32, 2, ws, NULL);
        CHECK(run_kernel("eigvalsh", 1, &A, 1, &W2, NULL, 1, NULL) == 0, "eigvalsh: %s", g_err);
        double rec = 0, orth = 0, vals = 0;
        int asc = 1;
        for (int64_t b = 0; b < batch; b++) {
            double norm = 0;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++) {
                    double x = a[(b * n + (i > j ? i : j)) * n + (i > j ? j : i)];
                    norm += x * x;
                }
            norm = sqrt(norm);
            for (int64_t i = 0; i < n; i++) {
                if (i && w[b * n + i] < w[b * n + i - 1]) asc = 0;
                double e = fabs(w[b * n + i] - w2[b * n + i]) / norm;
                if (e > vals) vals = e;
                for (int64_t j = 0; j < n; j++) {
                    double s = 0, o = 0;
                    for (int64_t t = 0; t < n; t++) {
                        s += v[(b * n + i) * n + t] * w[b * n + t] * v[(b * n + j) * n + t];
                        o += v[(b * n + t) * n + i] * v[(b * n + t) * n + j];
                    }
                    double x = a[(b * n + (i > j ? i : j)) * n + (i > j ? j : i)];
                    if (fabs(s - x) / norm > rec) rec = fabs(s - x) / norm;
                    if (fabs(o - (i == j)) > orth) orth = fabs(o - (i == j));
                }
            }
        }
        double tol = 4 * EPS32 * (double)(n + 1);
        CHECK(rec < tol && orth < tol && asc && vals <= 2 * EPS32,
              "eigh n=%lld: V W V^T - A %g, V^T V - I %g, ascending %d, eigvalsh %g", (long long)n,
              rec, orth, asc, vals);
        free(a);
        free(w);
        free(v);
        free(w2);
    }
    /* known: [[2, 1], [1, 2]] -> 1, 3; diagonal unsorted -> sorted */
    float a[4] = {2, 1, 1, 2}, w[2], v[4], d3[9] = {3, 0, 0, 0, -1, 0, 0, 0, 2}, w3[3], v3[9];
    int64_t s2[2] = {2, 2}, s1[1] = {2}, s3[2] = {3, 3}, s31[1] = {3};
    maia_view A = mkview(a, MAIA_FLOAT32, 2, s2, NULL);
    maia_view outs[2] = {mkview(w, MAIA_FLOAT32, 1, s1, NULL), mkview(v, MAIA_FLOAT32, 2, s2, NULL)};
    CHECK(run_kernel("eigh", 1, &A, 2, outs, NULL, 1, NULL) == 0 && fabs(w[0] - 1) < 1e-6 &&
              fabs(w[1] - 3) < 1e-6 && fabs(fabs(v[0]) - sqrtf(0.5f)) < 1e-6,
          "eigh 2x2: %g %g", w[0], w[1]);
    maia_view D = mkview(d3, MAIA_FLOAT32, 2, s3, NULL);
    maia_view o3[2] = {mkview(w3, MAIA_FLOAT32, 1, s31, NULL), mkview(v3, MAIA_FLOAT32, 2, s3, NULL)};
    CHECK(run_kernel("eigh", 1, &D, 2, o3, NULL, 1, NULL) == 0 && w3[0] == -1 && w3[1] == 2 && w3[2] == 3 &&
              fabs(v3[1 * 3 + 0]) == 1 && fabs(v3[2 * 3 + 1]) == 1 && fabs(v3[0 * 3 + 2]) == 1,
          "eigh diagonal: %g %g %g", w3[0], w3[1], w3[2]);
    /* NaN / inf input: NaN out, no failure */
    float nan4[4] = {NAN, 0, 0, 1}, inf4[4] = {1, 0, INFINITY, 1};
    A = mkview(nan4, MAIA_FLOAT32, 2, s2, NULL);
    CHECK(run_kernel("eigh", 1, &A, 2, outs, NULL, 1, NULL) == 0 && isnan(w[0]) && isnan(w[1]) && isnan(v[3]),
          "eigh NaN: %s", g_err);
    A = mkview(inf4, MAIA_FLOAT32, 2, s2, NULL);
    CHECK(run_kernel("eigvalsh", 1, &A, 1, outs, NULL, 1, NULL) == 0 && isnan(w[0]), "eigvalsh inf: %s", g_err);
    float up[4] = {1, NAN, 0, 1}; /* NaN only in the upper triangle: never read */
    A = mkview(up, MAIA_FLOAT32, 2, s2, NULL);
    CHECK(run_kernel("eigvalsh", 1, &A, 1, outs, NULL, 1, NULL) == 0 && w[0] == 1 && w[1] == 1,
          "eigvalsh reads the lower triangle: %g %g", w[0], w[1]);
}

/* ==== SVD ====================================================================================== */

static void test_svd(void) {
    static const int64_t dims[][2] = {{1, 1}, {2, 2}, {4, 3}, {3, 4}, {7, 1}, {1, 7}, {12, 5},
                                      {5, 12}, {20, 20}, {3, 0}, {0, 3}, {0, 0}, {40, 17}};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
        for (int full = 0; full < 2; full++)
            for (int rank_def = 0; rank_def < 2; rank_def++) {
                int64_t m = dims[di][0], n = dims[di][1], k = m < n ? m : n;
                int64_t uc = full ? m : k, vr = full ? n : k, batch = 2;
                float *a = fbuf(batch * m * n), *u = fbuf(batch * m * uc), *s = fbuf(batch * k),
                      *vh = fbuf(batch * vr * n), *s2 = fbuf(batch * k);
                int64_t ash[3] = {batch, m, n}, astr[3] = {m * n, 1, m}; /* transposed input */
                maia_view A = mkview(a, MAIA_FLOAT32, 3, ash, astr);
                fill_random(&A, 1, batch, m, n);
                if (rank_def && m > 1 && n > 1) /* two equal rows, one zero column */
                    for (int64_t b = 0; b < batch; b++)
                        for (int64_t j = 0; j < n; j++) {
                            setv(&A, boff(&A, 1, b) + 1 * A.strides[1] + j * A.strides[2],
                                 mat(&A, 1, b, 0, j));
                            for (int64_t i = 0; i < m; i++)
                                if (j == n - 1) setv(&A, boff(&A, 1, b) + i * A.strides[1] + j * A.strides[2], 0);
                        }
                int64_t us[3] = {batch, m, uc}, ss[2] = {batch, k}, vs[3] = {batch, vr, n};
                maia_view outs[3] = {mkview(u, MAIA_FLOAT32, 3, us, NULL), mkview(s, MAIA_FLOAT32, 2, ss, NULL),
                                     mkview(vh, MAIA_FLOAT32, 3, vs, NULL)};
                maia_attrs at;
                memset(&at, 0, sizeof at);
                at.full_matrices = full;
                int rc = run_kernel("svd", 1, &A, 3, outs, &at, 2, NULL);
                CHECK(rc == 0, "svd %lldx%lld full=%d: %s", (long long)m, (long long)n, full, g_err);
                maia_view S2 = mkview(s2, MAIA_FLOAT32, 2, ss, NULL);
                CHECK(run_kernel("svdvals", 1, &A, 1, &S2, NULL, 1, NULL) == 0, "svdvals: %s", g_err);
                double rec = 0, uo = 0, vo = 0, sv = 0;
                int desc = 1;
                for (int64_t b = 0; b < batch; b++) {
                    double norm = frob_mat(&A, 1, b, m, n) + 1e-30;
                    for (int64_t i = 0; i < k; i++) {
                        if (s[b * k + i] < 0 || (i && s[b * k + i] > s[b * k + i - 1])) desc = 0;
                        if (fabs(s[b * k + i] - s2[b * k + i]) / norm > sv)
                            sv = fabs(s[b * k + i] - s2[b * k + i]) / norm;
                    }
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = 0; j < n; j++) {
                            double t = 0;
                            for (int64_t p = 0; p < k; p++)
                                t += mat(&outs[0], 1, b, i, p) * vec(&outs[1], 1, b, p) * mat(&outs[2], 1, b, p, j);
                            if (fabs(t - mat(&A, 1, b, i, j)) / norm > rec)
                                rec = fabs(t - mat(&A, 1, b, i, j)) / norm;
                        }
                    for (int64_t i = 0; i < uc; i++)
                        for (int64_t j = 0; j < uc; j++) {
                            double t = 0;
                            for (int64_t p = 0; p < m; p++) t += mat(&outs[0], 1, b, p, i) * mat(&outs[0], 1, b, p, j);
                            if (fabs(t - (i == j)) > uo) uo = fabs(t - (i == j));
                        }
                    for (int64_t i = 0; i < vr; i++)
                        for (int64_t j = 0; j < vr; j++) {
                            double t = 0;
                            for (int64_t p = 0; p < n; p++) t += mat(&outs[2], 1, b, i, p) * mat(&outs[2], 1, b, j, p);
                            if (fabs(t - (i == j)) > vo) vo = fabs(t - (i == j));
                        }
                }
                double tol = 4 * EPS32 * (double)(m + n + 1);
                CHECK(rec < tol && uo < tol && vo < tol && desc && sv <= 2 * EPS32,
                      "svd %lldx%lld full=%d rankdef=%d: USVh-A %g, UtU-I %g, VVt-I %g, desc %d, "
                      "svdvals %g",
                      (long long)m, (long long)n, full, rank_def, rec, uo, vo, desc, sv);
                free(a);
                free(u);
                free(s);
                free(vh);
                free(s2);
            }
    /* known: [[3, 0], [0, -4]] -> 4, 3; zero matrix -> 0, 0 with orthonormal U, Vh */
    float a[4] = {3, 0, 0, -4}, z[4] = {0, 0, 0, 0}, u[4], s[2], vh[4];
    int64_t s22[2] = {2, 2}, s1[1] = {2};
    maia_view outs[3] = {mkview(u, MAIA_FLOAT32, 2, s22, NULL), mkview(s, MAIA_FLOAT32, 1, s1, NULL),
                         mkview(vh, MAIA_FLOAT32, 2, s22, NULL)};
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.full_matrices = 1;
    maia_view A = mkview(a, MAIA_FLOAT32, 2, s22, NULL);
    CHECK(run_kernel("svd", 1, &A, 3, outs, &at, 1, NULL) == 0 && s[0] == 4 && s[1] == 3, "svd diag: %g %g",
          s[0], s[1]);
    A = mkview(z, MAIA_FLOAT32, 2, s22, NULL);
    CHECK(run_kernel("svd", 1, &A, 3, outs, &at, 1, NULL) == 0 && s[0] == 0 && s[1] == 0 &&
              fabs(u[0] * u[1] + u[2] * u[3]) < 1e-7 && fabs(u[0] * u[0] + u[2] * u[2] - 1) < 1e-7,
          "svd zero: %g %g", s[0], s[1]);
    /* NaN: NaN out, no failure; wrong full_matrices for the shapes: a failure */
    float nan6[6] = {1, 2, NAN, 4, 5, 6}, u3[9], s3[2], v2[4];
    int64_t a32[2] = {3, 2}, u33[2] = {3, 3};
    maia_view N = mkview(nan6, MAIA_FLOAT32, 2, a32, NULL);
    maia_view o3[3] = {mkview(u3, MAIA_FLOAT32, 2, u33, NULL), mkview(s3, MAIA_FLOAT32, 1, s1, NULL),
                       mkview(v2, MAIA_FLOAT32, 2, s22, NULL)};
    CHECK(run_kernel("svd", 1, &N, 3, o3, &at, 1, NULL) == 0 && isnan(s3[0]) && isnan(u3[8]) && isnan(v2[3]),
          "svd NaN: %s", g_err);
    int rc = run_kernel("svd", 1, &N, 3, o3, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "full_matrices=false"), "svd shape/attr: %s", g_err);
}

/* ==== float16, bfloat16, empty stacks, threads ================================================= */

static void test_narrow_dtypes(void) {
    int dts[2] = {MAIA_FLOAT16, MAIA_BFLOAT16};
    for (int t = 0; t < 2; t++) {
        int dt = dts[t];
        double eps = dt == MAIA_FLOAT16 ? 9.77e-4 : 7.82e-3;
        uint16_t a[16], o[16], w[4], v[16], s0;
        int64_t s44[2] = {4, 4}, s4[1] = {4}, sc[1] = {0};
        maia_view A = mkview(a, dt, 2, s44, NULL);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j <= i; j++) {
                double x = i == j ? 4 + i : 0.25 * (i + j) - 0.5;
                setv(&A, i * 4 + j, x);
                setv(&A, j * 4 + i, x);
            }
        maia_view O = mkview(o, dt, 2, s44, NULL);
        CHECK(run_kernel("inv", 1, &A, 1, &O, NULL, 1, NULL) == 0, "inv %d: %s", dt, g_err);
        double worst = 0;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                double sum = 0;
                for (int k = 0; k < 4; k++) sum += getv(&A, i * 4 + k) * getv(&O, k * 4 + j);
                if (fabs(sum - (i == j)) > worst) worst = fabs(sum - (i == j));
            }
        CHECK(worst < 8 * eps, "inv dt %d: %g", dt, worst);
        maia_view outs[2] = {mkview(w, dt, 1, s4, NULL), mkview(v, dt, 2, s44, NULL)};
        CHECK(run_kernel("eigh", 1, &A, 2, outs, NULL, 1, NULL) == 0, "eigh %d: %s", dt, g_err);
        worst = 0;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                double sum = 0;
                for (int k = 0; k < 4; k++)
                    sum += getv(&outs[1], i * 4 + k) * getv(&outs[0], k) * getv(&outs[1], j * 4 + k);
                if (fabs(sum - getv(&A, i * 4 + j)) > worst) worst = fabs(sum - getv(&A, i * 4 + j));
            }
        CHECK(worst < 16 * eps * 7, "eigh dt %d: %g", dt, worst);
        /* an exact determinant */
        uint16_t d2[4];
        int64_t s22[2] = {2, 2};
        maia_view D = mkview(d2, dt, 2, s22, NULL);
        setv(&D, 0, 3), setv(&D, 1, 0), setv(&D, 2, 0), setv(&D, 3, 5);
        maia_view S = mkview(&s0, dt, 0, sc, NULL);
        CHECK(run_kernel("det", 1, &D, 1, &S, NULL, 1, NULL) == 0 && getv(&S, 0) == 15, "det dt %d: %g", dt,
              getv(&S, 0));
    }
}

static void test_empty_and_trivial(void) {
    float dummy[16], one = 0, sgn = 0, lab = 5;
    int64_t z[2] = {0, 0}, sc[1] = {0};
    maia_view Z = mkview(dummy, MAIA_FLOAT32, 2, z, NULL);
    maia_view O = mkview(&one, MAIA_FLOAT32, 0, sc, NULL);
    CHECK(run_kernel("det", 1, &Z, 1, &O, NULL, 1, NULL) == 0 && one == 1, "det 0x0 = %g %s", one, g_err);
    maia_view SL[2] = {mkview(&sgn, MAIA_FLOAT32, 0, sc, NULL), mkview(&lab, MAIA_FLOAT32, 0, sc, NULL)};
    CHECK(run_kernel("slogdet", 1, &Z, 2, SL, NULL, 1, NULL) == 0 && sgn == 1 && lab == 0,
          "slogdet 0x0 = %g %g", sgn, lab);
    maia_view Z2 = Z;
    CHECK(run_kernel("inv", 1, &Z, 1, &Z2, NULL, 1, NULL) == 0, "inv 0x0: %s", g_err);
    CHECK(run_kernel("cholesky", 1, &Z, 1, &Z2, NULL, 1, NULL) == 0, "cholesky 0x0: %s", g_err);
    int64_t z1[1] = {0};
    maia_view ZW = mkview(dummy, MAIA_FLOAT32, 1, z1, NULL);
    maia_view eo[2] = {ZW, Z2};
    CHECK(run_kernel("eigh", 1, &Z, 2, eo, NULL, 1, NULL) == 0, "eigh 0x0: %s", g_err);
    /* an empty batch of large matrices: nothing to do, nothing allocated */
    int64_t eb[3] = {0, (int64_t)1 << 40, (int64_t)1 << 40}, ebw[2] = {0, (int64_t)1 << 40};
    int64_t ones[3] = {1, 1, 1}; /* (the contiguous strides would overflow) */
    maia_view E = mkview(dummy, MAIA_FLOAT32, 3, eb, ones);
    maia_view EO[2] = {mkview(dummy, MAIA_FLOAT32, 2, ebw, ones), E};
    CHECK(run_kernel("eigh", 1, &E, 2, EO, NULL, 4, NULL) == 0, "eigh empty batch: %s", g_err);
    maia_attrs at;
    memset(&at, 0, sizeof at);
    at.qr_complete = 1;
    int64_t tall0[3] = {0, (int64_t)1 << 40, 0}, qq[3] = {0, (int64_t)1 << 40, (int64_t)1 << 40};
    maia_view T0 = mkview(dummy, MAIA_FLOAT32, 3, tall0, ones);
    maia_view QO[2] = {mkview(dummy, MAIA_FLOAT32, 3, qq, ones), T0};
    CHECK(run_kernel("qr", 1, &T0, 2, QO, &at, 1, NULL) == 0, "qr empty batch: %s", g_err);
    /* 1x1 */
    float x = -3, l, inv, w, v, u, s, vh;
    int64_t s11[2] = {1, 1}, s1[1] = {1};
    maia_view X = mkview(&x, MAIA_FLOAT32, 2, s11, NULL);
    maia_view I = mkview(&inv, MAIA_FLOAT32, 2, s11, NULL);
    CHECK(run_kernel("inv", 1, &X, 1, &I, NULL, 1, NULL) == 0 && inv == -1.0f / 3, "inv 1x1 %g", inv);
    maia_view L = mkview(&l, MAIA_FLOAT32, 2, s11, NULL);
    CHECK(run_kernel("cholesky", 1, &X, 1, &L, NULL, 1, NULL) == MAIA_KERNEL_INVALID, "cholesky -3");
    maia_view eo1[2] = {mkview(&w, MAIA_FLOAT32, 1, s1, NULL), mkview(&v, MAIA_FLOAT32, 2, s11, NULL)};
    CHECK(run_kernel("eigh", 1, &X, 2, eo1, NULL, 1, NULL) == 0 && w == -3 && fabsf(v) == 1, "eigh 1x1");
    maia_view so[3] = {mkview(&u, MAIA_FLOAT32, 2, s11, NULL), mkview(&s, MAIA_FLOAT32, 1, s1, NULL),
                       mkview(&vh, MAIA_FLOAT32, 2, s11, NULL)};
    CHECK(run_kernel("svd", 1, &X, 3, so, NULL, 1, NULL) == 0 && s == 3 && u * s * vh == -3, "svd 1x1 %g %g %g",
          u, s, vh);
    /* qr complete of a 3x0 matrix: Q = I, R empty; svd full of 0x3: U empty, Vh = I */
    float q9[9], vh9[9];
    int64_t s30[2] = {3, 0}, s33[2] = {3, 3}, s03[2] = {0, 3}, s00[2] = {0, 0}, s0[1] = {0};
    maia_view A30 = mkview(dummy, MAIA_FLOAT32, 2, s30, NULL);
    maia_view qo[2] = {mkview(q9, MAIA_FLOAT32, 2, s33, NULL), mkview(dummy, MAIA_FLOAT32, 2, s30, NULL)};
    CHECK(run_kernel("qr", 1, &A30, 2, qo, &at, 1, NULL) == 0 && q9[0] == 1 && q9[4] == 1 && q9[8] == 1 &&
              q9[1] == 0 && q9[3] == 0,
          "qr 3x0 complete: %s", g_err);
    at.full_matrices = 1;
    maia_view A03 = mkview(dummy, MAIA_FLOAT32, 2, s03, NULL);
    maia_view svo[3] = {mkview(dummy, MAIA_FLOAT32, 2, s00, NULL), mkview(dummy, MAIA_FLOAT32, 1, s0, NULL),
                        mkview(vh9, MAIA_FLOAT32, 2, s33, NULL)};
    CHECK(run_kernel("svd", 1, &A03, 3, svo, &at, 1, NULL) == 0 && vh9[0] == 1 && vh9[4] == 1 && vh9[8] == 1 &&
              vh9[2] == 0,
          "svd 0x3 full: %s", g_err);
}

static void test_threads_and_broadcast(void) {
    /* 64 matrices of 12x12 through a batch of shape (4, 16) whose first dim is broadcast
     * (stride 0); threads 1 and 4 agree bit for bit */
    int64_t n = 12, b1 = 4, b2 = 16;
    float *a = fbuf(b2 * n * n), *o1 = fbuf(b1 * b2 * n * n), *o4 = fbuf(b1 * b2 * n * n);
    int64_t ash[4] = {b1, b2, n, n}, astr[4] = {0, n * n, n, 1};
    maia_view A = mkview(a, MAIA_FLOAT32, 4, ash, astr);
    fill_random(&A, 2, b2, n, n);
    const char *ks[3] = {"inv", "cholesky", "eigh"};
    for (int kk = 0; kk < 3; kk++) {
        int eig = kk == 2;
        float *w1 = fbuf(b1 * b2 * n), *w4 = fbuf(b1 * b2 * n);
        int64_t ws[3] = {b1, b2, n};
        if (kk == 1) /* make them SPD: A A^T + n I, in place */
            for (int64_t b = 0; b < b2; b++) {
                float t[144];
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double s = i == j ? (double)n : 0;
                        for (int64_t k = 0; k < n; k++) s += a[b * 144 + i * n + k] * a[b * 144 + j * n + k];
                        t[i * n + j] = (float)s;
                    }
                memcpy(a + b * 144, t, sizeof t);
            }
        maia_view O1 = mkview(o1, MAIA_FLOAT32, 4, ash, NULL), O4 = mkview(o4, MAIA_FLOAT32, 4, ash, NULL);
        maia_view e1[2] = {mkview(w1, MAIA_FLOAT32, 3, ws, NULL), O1};
        maia_view e4[2] = {mkview(w4, MAIA_FLOAT32, 3, ws, NULL), O4};
        int r1 = run_kernel(ks[kk], 1, &A, eig ? 2 : 1, eig ? e1 : &O1, NULL, 1, NULL);
        int r4 = run_kernel(ks[kk], 1, &A, eig ? 2 : 1, eig ? e4 : &O4, NULL, 4, NULL);
        CHECK(r1 == 0 && r4 == 0, "%s threads: %s", ks[kk], g_err);
        CHECK(memcmp(o1, o4, (size_t)(b1 * b2 * n * n) * sizeof(float)) == 0 &&
                  memcmp(w1, w4, (size_t)(b1 * b2 * n) * sizeof(float)) == 0,
              "%s: threads 1 and 4 differ", ks[kk]);
        /* the broadcast copies agree */
        CHECK(memcmp(o1, o1 + 3 * b2 * n * n, (size_t)(b2 * n * n) * sizeof(float)) == 0,
              "%s: broadcast copies differ", ks[kk]);
        free(w1);
        free(w4);
    }
    /* one large matrix: the Jacobi rounds run on several threads, bit for bit as on one */
    {
        int64_t m = 160, nn = 150, sq[2] = {nn, nn}, w1s[1] = {nn}, us[2] = {m, m}, ks[1] = {nn};
        int64_t rect[2] = {m, nn};
        float *x = fbuf(m * nn), *r1 = fbuf(m * m), *r4 = fbuf(m * m), *q1 = fbuf(nn * nn),
              *q4 = fbuf(nn * nn), *e1 = fbuf(nn), *e4 = fbuf(nn);
        maia_view X = mkview(x, MAIA_FLOAT32, 2, sq, NULL);
        fill_random(&X, 0, 1, nn, nn);
        maia_view o1[2] = {mkview(e1, MAIA_FLOAT32, 1, w1s, NULL), mkview(q1, MAIA_FLOAT32, 2, sq, NULL)};
        maia_view o4[2] = {mkview(e4, MAIA_FLOAT32, 1, w1s, NULL), mkview(q4, MAIA_FLOAT32, 2, sq, NULL)};
        CHECK(run_kernel("eigh", 1, &X, 2, o1, NULL, 1, NULL) == 0 && run_kernel("eigh", 1, &X, 2, o4, NULL, 4, NULL) == 0,
              "eigh 150: %s", g_err);
        CHECK(memcmp(e1, e4, (size_t)nn * 4) == 0 && memcmp(q1, q4, (size_t)(nn * nn) * 4) == 0,
              "eigh 150: threads 1 and 4 differ");
        double worst = 0; /* V diag(w) V^T against the lower triangle */
        for (int64_t i = 0; i < nn; i++)
            for (int64_t j = 0; j <= i; j++) {
                double t = 0;
                for (int64_t k = 0; k < nn; k++) t += q1[i * nn + k] * e1[k] * q1[j * nn + k];
                if (fabs(t - x[i * nn + j]) > worst) worst = fabs(t - x[i * nn + j]);
            }
        CHECK(worst < 1e-4, "eigh 150: reconstruction %g", worst);
        maia_attrs at;
        memset(&at, 0, sizeof at);
        at.full_matrices = 1;
        X = mkview(x, MAIA_FLOAT32, 2, rect, NULL);
        fill_random(&X, 0, 1, m, nn);
        maia_view s1[3] = {mkview(r1, MAIA_FLOAT32, 2, us, NULL), mkview(e1, MAIA_FLOAT32, 1, ks, NULL),
                           mkview(q1, MAIA_FLOAT32, 2, sq, NULL)};
        maia_view s4[3] = {mkview(r4, MAIA_FLOAT32, 2, us, NULL), mkview(e4, MAIA_FLOAT32, 1, ks, NULL),
                           mkview(q4, MAIA_FLOAT32, 2, sq, NULL)};
        CHECK(run_kernel("svd", 1, &X, 3, s1, &at, 1, NULL) == 0 && run_kernel("svd", 1, &X, 3, s4, &at, 4, NULL) == 0,
              "svd 160x150: %s", g_err);
        CHECK(memcmp(e1, e4, (size_t)nn * 4) == 0 && memcmp(q1, q4, (size_t)(nn * nn) * 4) == 0 &&
                  memcmp(r1, r4, (size_t)(m * m) * 4) == 0,
              "svd 160x150: threads 1 and 4 differ");
        free(x);
        free(r1);
        free(r4);
        free(q1);
        free(q4);
        free(e1);
        free(e4);
    }
    /* a failure in a threaded stack names the first failing matrix */
    for (int64_t i = 0; i < n; i++) a[5 * 144 + i * n + i] = -100;
    for (int64_t i = 0; i < n; i++) a[9 * 144 + i * n + i] = -100;
    maia_view O4 = mkview(o4, MAIA_FLOAT32, 4, ash, NULL);
    int rc = run_kernel("cholesky", 1, &A, 1, &O4, NULL, 4, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "(0, 5)"), "threaded failure: %s", g_err);
    free(a);
    free(o1);
    free(o4);
}

static void test_invalid(void) {
    float a[16], o[16];
    int32_t ia[16];
    int64_t s44[2] = {4, 4}, s34[2] = {3, 4}, s4[1] = {4}, s3[1] = {3};
    maia_view A = mkview(a, MAIA_FLOAT32, 2, s44, NULL), O = mkview(o, MAIA_FLOAT32, 2, s44, NULL);
    memset(a, 0, sizeof a);
    CHECK(run_kernel("inv", 1, &A, 2, (maia_view[]){O, O}, NULL, 1, NULL) == MAIA_KERNEL_INVALID, "inv counts");
    CHECK(run_kernel("eigh", 1, &A, 1, &O, NULL, 1, NULL) == MAIA_KERNEL_INVALID, "eigh counts");
    maia_view R = mkview(a, MAIA_FLOAT32, 2, s34, NULL);
    int rc = run_kernel("inv", 1, &R, 1, &O, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "square"), "inv 3x4: %s", g_err);
    maia_view O34 = mkview(o, MAIA_FLOAT32, 2, s34, NULL);
    rc = run_kernel("cholesky", 1, &A, 1, &O34, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "(..., 4, 4)"), "cholesky out shape: %s", g_err);
    maia_view I = mkview(ia, MAIA_INT32, 2, s44, NULL), IO = mkview(ia, MAIA_INT32, 2, s44, NULL);
    rc = run_kernel("inv", 1, &I, 1, &IO, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_UNSUPPORTED && strstr(g_err, "int32"), "inv int32: %s", g_err);
    maia_view Of16 = mkview(o, MAIA_FLOAT16, 2, s44, NULL);
    rc = run_kernel("inv", 1, &A, 1, &Of16, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "float16"), "inv dtype mix: %s", g_err);
    maia_view V = mkview(a, MAIA_FLOAT32, 1, s4, NULL);
    rc = run_kernel("det", 1, &V, 1, &V, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "matrices"), "det 1-d: %s", g_err);
    maia_view W3 = mkview(o, MAIA_FLOAT32, 1, s3, NULL);
    rc = run_kernel("eigvalsh", 1, &A, 1, &W3, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID, "eigvalsh out shape: %s", g_err);
    maia_view B3 = mkview(o, MAIA_FLOAT32, 2, s34, NULL);
    maia_view sin[2] = {A, B3};
    rc = run_kernel("solve", 2, sin, 1, &B3, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "x2"), "solve x2 shape: %s", g_err);
    int64_t s441[3] = {2, 4, 4};
    maia_view A2 = mkview(a, MAIA_FLOAT32, 3, s441, NULL);
    rc = run_kernel("det", 1, &A2, 1, &W3, NULL, 1, NULL);
    CHECK(rc == MAIA_KERNEL_INVALID && strstr(g_err, "batch"), "det batch: %s", g_err);
    /* manifest: exactly float32, float16, bfloat16 */
    const char *names[] = {"cholesky", "inv", "det", "slogdet", "solve", "qr", "eigh", "eigvalsh", "svd", "svdvals"};
    for (int k = 0; k < 10; k++)
        for (int d = 0; d < MAIA_DTYPE_COUNT; d++) {
            int want = d == MAIA_FLOAT32 || d == MAIA_FLOAT16 || d == MAIA_BFLOAT16;
            CHECK(maia_kernel_supports(names[k], d) == want, "supports(%s, %d)", names[k], d);
        }
    int found = 0;
    for (const char *const *p = maia_kernel_names(); *p; p++)
        for (int k = 0; k < 10; k++) found += strcmp(*p, names[k]) == 0;
    CHECK(found == 10, "names list %d of the linalg kernels", found);
}

int main(void) {
    test_cholesky();
    test_inv_solve();
    test_qr();
    test_eigh();
    test_svd();
    test_narrow_dtypes();
    test_empty_and_trivial();
    test_threads_and_broadcast();
    test_invalid();
    maia_kernel_shutdown();
    printf("test_linalg: %ld checks, %ld failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
