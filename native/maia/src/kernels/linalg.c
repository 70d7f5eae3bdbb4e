/* linalg: the Array API linalg extension on stacks of matrices (..., M, N) for float32,
 * float16 and bfloat16 (maia has no float64 and no complex): cholesky, inv, det, slogdet,
 * solve, qr, eigh, eigvalsh, svd and svdvals. Names, operand order and results follow
 * hwabstract's specs (src/hwabstract/kernels/linalg.py); several outputs come in the order the
 * Array API names them.
 *
 * Each matrix of the stack is loaded into a double work buffer, whatever its strides (batch
 * dimensions may be broadcast with zero strides, matrices transposed or reversed), factored
 * in double, and each result element is rounded once into the output dtype (float16 and
 * bfloat16 through float32 rounded to odd, which makes the two roundings one). Outputs are
 * written through their strides. The stack is split over `threads` host threads.
 *
 * Algorithms:
 *   cholesky          reads the lower triangle; a pivot <= 0 is a failure (a NaN pivot goes
 *                     on into a NaN factor, as LAPACK's potrf)
 *   inv, det,         LU with partial pivoting (the first largest pivot, as LAPACK's getrf);
 *   slogdet, solve    a singular matrix is an exactly zero pivot: a failure for inv and
 *                     solve, 0 for det, (0, -inf) for slogdet
 *   qr                Householder reflectors (as LAPACK's geqrf), Q accumulated backwards
 *   eigh, eigvalsh    cyclic two-sided Jacobi (round-robin ordering) on the symmetric matrix
 *                     built from the lower triangle, until the off-diagonal norm is <= 1e-15
 *                     of the Frobenius norm
 *   svd, svdvals      one-sided (Hestenes) Jacobi on the columns of the taller orientation,
 *                     until every pair is orthogonal to max(1e-15, sqrt(rows) * DBL_EPSILON);
 *                     left vectors of zero singular values and the extra columns
 *                     full_matrices asks for are completed by Gram-Schmidt (two passes) on
 *                     standard basis vectors
 * Jacobi never runs on non-finite input: eigh, eigvalsh, svd and svdvals give NaN values and
 * vectors for a matrix holding NaN or infinity. A Jacobi that does not converge within its
 * sweep cap is a failure naming the matrix. The failure reported is that of the first matrix
 * (in C order of the batch) that failed.
 */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_internal.h"

#define LA_MAX_OPS 5           /* solve: 2 inputs + 1 output; svd: 1 input + 3 outputs */
#define LA_JACOBI_TOL 1e-15    /* relative off-diagonal norm (eigh), pair cosine (svd) */
#define LA_EIGH_MAX_SWEEPS 64  /* quadratic convergence: ~10 sweeps in practice */
#define LA_SVD_MAX_SWEEPS 64

static const char *const LA_NAMES[LA_COUNT] = {
    "cholesky", "inv", "det", "slogdet", "solve", "qr", "eigh", "eigvalsh", "svd", "svdvals"};

typedef struct la_ctx {
    int op;
    const char *name;
    int32_t dt;
    int nin, nops;
    int nb; /* batch dimensions */
    int64_t bshape[MAIA_MAX_DIMS];
    int64_t batch;
    char *base[LA_MAX_OPS];
    int64_t bstr[LA_MAX_OPS][MAIA_MAX_DIMS]; /* batch strides, elements */
    int64_t rs[LA_MAX_OPS], cs[LA_MAX_OPS];  /* matrix row/column (vector: rs) strides */
    size_t es;
    /* problem dimensions: m x n input; k = min(m, n); qc = Q's columns (qr); nrhs (solve);
     * svd: Jacobi on r x c (r >= c, transposed when m < n), left vectors r x lc */
    int64_t m, n, k, qc, nrhs, r, c, lc;
    int transposed, upper, full;
    int inner_threads; /* host threads for one matrix (eigh, svd: a stack smaller than threads) */
    size_t nd, ni; /* per-thread work: doubles, int64s */
    pthread_mutex_t mu;
    int failed;
    int64_t fail_index;
    char fail_why[200];
    double flops;
} la_ctx;

/* ---- elements ------------------------------------------------------------------------------ */

int mk_linalg_supports(int32_t dt) {
    return dt == MAIA_FLOAT32 || dt == MAIA_FLOAT16 || dt == MAIA_BFLOAT16;
}

static inline double ld(int32_t dt, const char *p, int64_t off) {
    switch (dt) {
    case MAIA_FLOAT32: return ((const float *)p)[off];
    case MAIA_FLOAT16: return maia_f16_to_f32(((const uint16_t *)p)[off]);
    default: return maia_bf16_to_f32(((const uint16_t *)p)[off]);
    }
}

/* d rounded to float32 with round-to-odd: rounding that to a format of at most 22
 * significand bits (float16, bfloat16) to nearest even is d rounded to it once. */
static float f32_odd(double d) {
    float f = (float)d;
    if (isnan(d) || (double)f == d) return f;
    if (fabs((double)f) > fabs(d)) f = nextafterf(f, 0.0f); /* truncate towards zero */
    return u2f(f2u(f) | 1u);
}

static inline void st(int32_t dt, char *p, int64_t off, double v) {
    switch (dt) {
    case MAIA_FLOAT32: ((float *)p)[off] = (float)v; return;
    case MAIA_FLOAT16: ((uint16_t *)p)[off] = maia_f32_to_f16(f32_odd(v)); return;
    default: ((uint16_t *)p)[off] = maia_f32_to_bf16(f32_odd(v)); return;
    }
}

/* rows x cols of operand `o` (at p) into dst[i * drs + j * dcs]; 0 if any is not finite */
static int load(const la_ctx *c, int o, const char *p, int64_t rows, int64_t cols, double *dst,
                int64_t drs, int64_t dcs) {
    int finite = 1;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double v = ld(c->dt, p, i * c->rs[o] + j * c->cs[o]);
            if (!isfinite(v)) finite = 0;
            dst[i * drs + j * dcs] = v;
        }
    return finite;
}

/* src[i * srs + j * scs] into rows x cols of operand `o` (at p) */
static void store(const la_ctx *c, int o, char *p, int64_t rows, int64_t cols, const double *src,
                  int64_t srs, int64_t scs) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            st(c->dt, p, i * c->rs[o] + j * c->cs[o], src[i * srs + j * scs]);
}

static void fill(const la_ctx *c, int o, char *p, int64_t rows, int64_t cols, double v) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) st(c->dt, p, i * c->rs[o] + j * c->cs[o], v);
}

static inline double dot(const double *x, const double *y, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

/* ---- Cholesky -------------------------------------------------------------------------------- */

/* In place on the lower triangle of the n x n row-major a. Returns 0, or the order of the
 * first leading minor found not positive (its pivot in *pivot). */
static int64_t cholesky(double *a, int64_t n, double *pivot, double *flops) {
    for (int64_t j = 0; j < n; j++) {
        double *rj = a + j * n;
        double d = rj[j] - dot(rj, rj, j);
        if (d <= 0) { /* (NaN goes on, into a NaN factor, as LAPACK's potrf) */
            *pivot = d;
            return j + 1;
        }
        d = sqrt(d);
        rj[j] = d;
        for (int64_t i = j + 1; i < n; i++) {
            double *ri = a + i * n;
            ri[j] = (ri[j] - dot(ri, rj, j)) / d;
        }
        *flops += 2.0 * (double)j + 1 + (double)(n - j - 1) * (2.0 * (double)j + 2);
    }
    return 0;
}

/* ---- LU ---------------------------------------------------------------------------------------- */

/* In place on the n x n row-major a: P a = L U, L unit lower (below the diagonal), U upper;
 * piv[k] is the row swapped with row k at step k, *sign the permutation's sign. Returns 0, or
 * the 1-based column of the first exactly zero pivot (the factorization still completes, as
 * LAPACK's getrf). */
static int64_t lu(double *a, int64_t n, int64_t *piv, int *sign, double *flops) {
    int64_t zero = 0;
    *sign = 1;
    for (int64_t k = 0; k < n; k++) {
        int64_t p = k;
        double big = fabs(a[k * n + k]);
        for (int64_t i = k + 1; i < n; i++) {
            double v = fabs(a[i * n + k]);
            if (v > big) {
                big = v;
                p = i;
            }
        }
        piv[k] = p;
        if (p != k) {
            double *x = a + k * n, *y = a + p * n;
            for (int64_t j = 0; j < n; j++) {
                double t = x[j];
                x[j] = y[j];
                y[j] = t;
            }
            *sign = -*sign;
        }
        const double *rk = a + k * n;
        double d = rk[k];
        if (d == 0) {
            if (!zero) zero = k + 1;
            continue;
        }
        for (int64_t i = k + 1; i < n; i++) {
            double *ri = a + i * n;
            double l = ri[k] / d;
            ri[k] = l;
            if (l != 0)
                for (int64_t j = k + 1; j < n; j++) ri[j] -= l * rk[j];
        }
        *flops += (double)(n - k - 1) * (2.0 * (double)(n - k - 1) + 1);
    }
    return zero;
}

/* b (n x nrhs row-major) <- A^-1 b from lu()'s factors of a nonsingular A */
static void lu_solve(const double *a, const int64_t *piv, int64_t n, double *b, int64_t nrhs,
                     double *flops) {
    for (int64_t k = 0; k < n; k++)
        if (piv[k] != k) {
            double *x = b + k * nrhs, *y = b + piv[k] * nrhs;
            for (int64_t j = 0; j < nrhs; j++) {
                double t = x[j];
                x[j] = y[j];
                y[j] = t;
            }
        }
    for (int64_t i = 0; i < n; i++) { /* L y = P b */
        double *bi = b + i * nrhs;
        for (int64_t k = 0; k < i; k++) {
            double l = a[i * n + k];
            if (l == 0) continue;
            const double *bk = b + k * nrhs;
            for (int64_t j = 0; j < nrhs; j++) bi[j] -= l * bk[j];
        }
    }
    for (int64_t i = n - 1; i >= 0; i--) { /* U x = y */
        double *bi = b + i * nrhs;
        for (int64_t k = i + 1; k < n; k++) {
            double u = a[i * n + k];
            if (u == 0) continue;
            const double *bk = b + k * nrhs;
            for (int64_t j = 0; j < nrhs; j++) bi[j] -= u * bk[j];
        }
        double d = a[i * n + i];
        for (int64_t j = 0; j < nrhs; j++) bi[j] /= d;
    }
    *flops += 2.0 * (double)n * (double)n * (double)nrhs;
}

/* ---- QR ---------------------------------------------------------------------------------------- */

/* Householder QR in place on the m x n row-major a: R on and above the diagonal, the
 * reflectors' vectors (implicit leading 1) below it, their scalars in tau[0, min(m, n)). */
static void householder(double *a, int64_t m, int64_t n, double *tau, double *w,
                        double *flops) {
    int64_t kmax = m < n ? m : n;
    for (int64_t k = 0; k < kmax; k++) {
        double alpha = a[k * n + k], xs = 0;
        for (int64_t i = k + 1; i < m; i++) xs += a[i * n + k] * a[i * n + k];
        if (xs == 0) { /* already zero below the diagonal: H = I */
            tau[k] = 0;
            continue;
        }
        double beta = -copysign(sqrt(alpha * alpha + xs), alpha);
        tau[k] = (beta - alpha) / beta;
        double scale = 1.0 / (alpha - beta);
        for (int64_t i = k + 1; i < m; i++) a[i * n + k] *= scale;
        a[k * n + k] = beta;
        /* a[k:, k+1:] -= tau v (v^T a[k:, k+1:]), by rows */
        int64_t nc = n - k - 1;
        if (nc <= 0) continue;
        memcpy(w, a + k * n + k + 1, (size_t)nc * sizeof *w);
        for (int64_t i = k + 1; i < m; i++) {
            double v = a[i * n + k];
            const double *ri = a + i * n + k + 1;
            for (int64_t j = 0; j < nc; j++) w[j] += v * ri[j];
        }
        double t = tau[k];
        for (int64_t j = 0; j < nc; j++) a[k * n + k + 1 + j] -= t * w[j];
        for (int64_t i = k + 1; i < m; i++) {
            double tv = t * a[i * n + k];
            double *ri = a + i * n + k + 1;
            for (int64_t j = 0; j < nc; j++) ri[j] -= tv * w[j];
        }
        *flops += 3.0 * (double)(m - k) + 4.0 * (double)(m - k) * (double)nc;
    }
}

/* q (m x qc row-major) <- H_0 ... H_{kmax-1} I[:, :qc] from householder()'s factors */
static void form_q(const double *a, int64_t m, int64_t n, const double *tau, double *q,
                   int64_t qc, double *w, double *flops) {
    int64_t kmax = m < n ? m : n;
    memset(q, 0, (size_t)(m * qc) * sizeof *q);
    for (int64_t i = 0; i < m && i < qc; i++) q[i * qc + i] = 1;
    for (int64_t k = kmax - 1; k >= 0; k--) {
        double t = tau[k];
        if (t == 0) continue;
        int64_t nc = qc - k; /* columns < k are still e_j, zero in rows k: */
        memcpy(w, q + k * qc + k, (size_t)nc * sizeof *w);
        for (int64_t i = k + 1; i < m; i++) {
            double v = a[i * n + k];
            const double *ri = q + i * qc + k;
            for (int64_t j = 0; j < nc; j++) w[j] += v * ri[j];
        }
        for (int64_t j = 0; j < nc; j++) q[k * qc + k + j] -= t * w[j];
        for (int64_t i = k + 1; i < m; i++) {
            double tv = t * a[i * n + k];
            double *ri = q + i * qc + k;
            for (int64_t j = 0; j < nc; j++) ri[j] -= tv * w[j];
        }
        *flops += 4.0 * (double)(m - k) * (double)nc;
    }
}

/* ---- symmetric eigenproblem: cyclic Jacobi ----------------------------------------------------- */

/* The round-robin ("parallel") ordering of the Jacobi methods: a sweep visits every pair of
 * n indices once, in players - 1 rounds of up to players / 2 disjoint pairs (players: n
 * rounded up to even; pairs with the odd one out are skipped). The rotations of a round touch
 * disjoint rows/columns, so they commute and may run on several threads with identical
 * results. arr holds players indices: the circle method, player 0 fixed, the others turn. */
static int64_t rr_pairs(const int64_t *arr, int64_t n, int64_t *pp, int64_t *qq) {
    int64_t half = (n + 1) / 2, players = 2 * half, np = 0;
    for (int64_t i = 0; i < half; i++) {
        int64_t p = arr[i], q = arr[players - 1 - i];
        if (p >= n || q >= n) continue;
        pp[np] = p < q ? p : q;
        qq[np] = p < q ? q : p;
        np++;
    }
    return np;
}
static void rr_turn(int64_t *arr, int64_t n) {
    int64_t players = 2 * ((n + 1) / 2);
    if (players < 3) return;
    int64_t last = arr[players - 1];
    for (int64_t i = players - 1; i > 1; i--) arr[i] = arr[i - 1];
    arr[1] = last;
}

/* Run fn over [0, total) on `threads` host threads when there is enough work (each item about
 * `cost` flops), else on the calling thread. */
static void maybe_parallel(int threads, int64_t total, double cost, mk_range_fn fn, void *ctx) {
    if (threads > 1 && cost * (double)total >= 65536.0) {
        double g = 16384.0 / (cost > 1 ? cost : 1);
        mk_parallel_for(threads, total, g < 1 ? 1 : (int64_t)g, fn, ctx);
    } else {
        fn(ctx, 0, total);
    }
}

typedef struct jac_round {
    double *a, *vt, *w, *v;
    int64_t n, r, c, np;
    const int64_t *pp, *qq;
    double *cs, *sn; /* eigh: the round's rotations; svd: per pair flops */
    unsigned char *rotated;
    double tol;
} jac_round;

/* eigh: rows [r0, r1) of A <- A J */
static void eigh_cols(void *vc, int64_t r0, int64_t r1) {
    const jac_round *j = (const jac_round *)vc;
    for (int64_t r = r0; r < r1; r++) {
        double *row = j->a + r * j->n;
        for (int64_t k = 0; k < j->np; k++) {
            double x = row[j->pp[k]], y = row[j->qq[k]];
            row[j->pp[k]] = j->cs[k] * x - j->sn[k] * y;
            row[j->qq[k]] = j->sn[k] * x + j->cs[k] * y;
        }
    }
}
/* eigh: pairs [k0, k1): rows p, q of A <- J^T A, and of V^T <- (V J)^T */
static void eigh_rows(void *vc, int64_t k0, int64_t k1) {
    const jac_round *j = (const jac_round *)vc;
    int64_t n = j->n;
    for (int pass = 0; pass < (j->vt ? 2 : 1); pass++) {
        double *m = pass ? j->vt : j->a;
        for (int64_t k = k0; k < k1; k++) {
            double *rp = m + j->pp[k] * n, *rq = m + j->qq[k] * n, c = j->cs[k], s = j->sn[k];
            for (int64_t r = 0; r < n; r++) {
                double x = rp[r], y = rq[r];
                rp[r] = c * x - s * y;
                rq[r] = s * x + c * y;
            }
        }
    }
}

/* Diagonalizes the symmetric n x n row-major a in place (eigenvalues on the diagonal); vt, if
 * not NULL, receives the eigenvectors as its rows (n x n row-major: V^T). Returns 0, or 1 if
 * the off-diagonal norm did not reach LA_JACOBI_TOL of the Frobenius norm within the sweep
 * cap. a must be finite.
 *
 * Cyclic Jacobi in the round-robin ordering: a round is applied as A J (rotating columns, row
 * by row), then J^T (A J) (rotating rows) and V J (rotating rows of V^T), so every access runs
 * along rows; each pair's 2 x 2 block is then set to its exact rotated value. arr holds n + 1
 * indices, pp and qq n / 2 + 1, rot 4 (n / 2 + 1) doubles. */
static int jacobi_eigh(double *a, double *vt, int64_t n, int64_t *arr, int64_t *pp,
                       int64_t *qq, double *rot, int threads, int *sweeps, double *flops) {
    if (vt) {
        memset(vt, 0, (size_t)(n * n) * sizeof *vt);
        for (int64_t i = 0; i < n; i++) vt[i * n + i] = 1;
    }
    int64_t half = (n + 1) / 2, players = 2 * half;
    double *cs = rot, *sn = rot + half, *dp = rot + 2 * half, *dq = rot + 3 * half;
    double total = 0;
    for (int64_t i = 0; i < n * n; i++) total += a[i] * a[i];
    double tol2 = LA_JACOBI_TOL * LA_JACOBI_TOL * total;
    for (int64_t i = 0; i < players; i++) arr[i] = i;
    jac_round jr = {a, vt, NULL, NULL, n, 0, 0, 0, pp, qq, cs, sn, NULL, 0};
    for (int sweep = 0;; sweep++) {
        double off = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++)
                if (i != j) off += a[i * n + j] * a[i * n + j];
        *flops += 2.0 * (double)n * (double)n;
        *sweeps = sweep;
        if (off <= tol2) return 0;
        if (sweep == LA_EIGH_MAX_SWEEPS) return 1;
        int rotated = 0;
        for (int64_t round = 0; round < players - 1; round++, rr_turn(arr, n)) {
            int64_t all = rr_pairs(arr, n, pp, qq), np = 0;
            for (int64_t k = 0; k < all; k++) {
                int64_t p = pp[k], q = qq[k];
                double apq = a[p * n + q];
                if (apq == 0) continue;
                double app = a[p * n + p], aqq = a[q * n + q];
                double theta = (aqq - app) / (2 * apq), t;
                if (fabs(theta) > 1e150)
                    t = 0.5 / theta;
                else
                    t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1);
                pp[np] = p;
                qq[np] = q;
                cs[np] = c;
                sn[np] = t * c;
                dp[np] = app - t * apq;
                dq[np] = aqq + t * apq;
                np++;
            }
            if (!np) continue;
            rotated = 1;
            jr.np = np;
            maybe_parallel(threads, n, 6.0 * (double)np, eigh_cols, &jr);
            maybe_parallel(threads, np, (vt ? 12.0 : 6.0) * (double)n, eigh_rows, &jr);
            for (int64_t k = 0; k < np; k++) {
                int64_t p = pp[k], q = qq[k];
                a[p * n + p] = dp[k];
                a[q * n + q] = dq[k];
                a[p * n + q] = a[q * n + p] = 0;
            }
            *flops += (double)np * (double)n * (vt ? 18 : 12) + 30.0 * (double)np;
        }
        if (!rotated) return 0;
    }
}

/* order[0, n) <- indices of x sorted ascending (descending if desc); stable */
static void argsort(const double *x, int64_t n, int64_t *order, int desc) {
    for (int64_t i = 0; i < n; i++) {
        int64_t j = i;
        while (j > 0 && (desc ? x[order[j - 1]] < x[i] : x[order[j - 1]] > x[i])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

/* ---- SVD: one-sided Jacobi --------------------------------------------------------------------- */

/* svd: pairs [k0, k1) of a round: rotate columns p, q of W (and V) if not yet orthogonal */
static void svd_pairs(void *vc, int64_t k0, int64_t k1) {
    const jac_round *j = (const jac_round *)vc;
    int64_t r = j->r, c = j->c;
    for (int64_t k = k0; k < k1; k++) {
        double *wp = j->w + j->pp[k] * r, *wq = j->w + j->qq[k] * r;
        double alpha = 0, beta = 0, gamma = 0, fl = 6.0 * (double)r;
        for (int64_t i = 0; i < r; i++) {
            alpha += wp[i] * wp[i];
            beta += wq[i] * wq[i];
            gamma += wp[i] * wq[i];
        }
        j->rotated[k] = 0;
        if (gamma != 0 && fabs(gamma) > j->tol * sqrt(alpha) * sqrt(beta)) {
            j->rotated[k] = 1;
            double zeta = (beta - alpha) / (2 * gamma), t;
            if (fabs(zeta) > 1e150)
                t = 0.5 / zeta;
            else
                t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(zeta * zeta + 1));
            double cs = 1 / sqrt(t * t + 1), sn = t * cs;
            for (int64_t i = 0; i < r; i++) {
                double x = wp[i], y = wq[i];
                wp[i] = cs * x - sn * y;
                wq[i] = sn * x + cs * y;
            }
            fl += 6.0 * (double)r + 12;
            if (j->v) {
                double *vp = j->v + j->pp[k] * c, *vq = j->v + j->qq[k] * c;
                for (int64_t i = 0; i < c; i++) {
                    double x = vp[i], y = vq[i];
                    vp[i] = cs * x - sn * y;
                    vq[i] = sn * x + cs * y;
                }
                fl += 6.0 * (double)c;
            }
        }
        j->cs[k] = fl;
    }
}

/* Orthogonalizes the c columns (each r long, column j at w + j * r, r >= c) of w by one-sided
 * Jacobi in the round-robin ordering; v, if not NULL, accumulates the rotations (c x c, column
 * j at v + j * c). Returns 0, or 1 if some pair was still not orthogonal after the sweep cap.
 * w must be finite. arr holds c + 1 indices, pp and qq c / 2 + 1, fl c / 2 + 1 doubles,
 * rotated c / 2 + 1 bytes. */
static int hestenes(double *w, double *v, int64_t r, int64_t c, int64_t *arr, int64_t *pp,
                    int64_t *qq, double *fl, unsigned char *rotated, int threads, int *sweeps,
                    double *flops) {
    if (v) {
        memset(v, 0, (size_t)(c * c) * sizeof *v);
        for (int64_t i = 0; i < c; i++) v[i * c + i] = 1;
    }
    double tol = sqrt((double)r) * DBL_EPSILON;
    if (tol < LA_JACOBI_TOL) tol = LA_JACOBI_TOL;
    int64_t players = 2 * ((c + 1) / 2);
    for (int64_t i = 0; i < players; i++) arr[i] = i;
    jac_round jr = {NULL, NULL, w, v, 0, r, c, 0, pp, qq, fl, NULL, rotated, tol};
    for (int sweep = 0; sweep < LA_SVD_MAX_SWEEPS; sweep++) {
        int any = 0;
        *sweeps = sweep + 1;
        for (int64_t round = 0; round < players - 1; round++, rr_turn(arr, c)) {
            jr.np = rr_pairs(arr, c, pp, qq);
            maybe_parallel(threads, jr.np, 12.0 * (double)r + 6.0 * (double)c, svd_pairs, &jr);
            for (int64_t k = 0; k < jr.np; k++) {
                any |= rotated[k];
                *flops += fl[k];
            }
        }
        if (!any) return 0;
    }
    return 1;
}

/* Completes the orthonormal columns of the r x lc matrix l (column j at l + j * r) that have
 * set to an orthonormal basis of lc columns: each missing column is the first standard basis
 * vector (cycling) whose part orthogonal to the columns so far keeps at least half the mean
 * squared norm (one always does), orthogonalized twice and normalized. tmp holds r. */
static void complete_basis(double *l, int64_t r, int64_t lc, unsigned char *have, double *tmp,
                           double *best, double *flops) {
    int64_t nhave = 0, cursor = 0;
    for (int64_t j = 0; j < lc; j++) nhave += have[j] != 0;
    for (int64_t j = 0; j < lc; j++) {
        if (have[j]) continue;
        double need = 0.5 * (double)(r - nhave) / (double)r, bestn = -1;
        for (int64_t tries = 0; tries < r; tries++, cursor = (cursor + 1) % r) {
            memset(tmp, 0, (size_t)r * sizeof *tmp);
            tmp[cursor] = 1;
            for (int pass = 0; pass < 2; pass++)
                for (int64_t h = 0; h < lc; h++) {
                    if (!have[h]) continue;
                    const double *lh = l + h * r;
                    double d = dot(lh, tmp, r);
                    for (int64_t i = 0; i < r; i++) tmp[i] -= d * lh[i];
                }
            *flops += 8.0 * (double)nhave * (double)r;
            double nn = dot(tmp, tmp, r);
            if (nn > bestn) {
                bestn = nn;
                memcpy(best, tmp, (size_t)r * sizeof *tmp);
            }
            if (nn >= need) break;
        }
        cursor = (cursor + 1) % r;
        double s = bestn > 0 ? 1 / sqrt(bestn) : 0;
        double *lj = l + j * r;
        for (int64_t i = 0; i < r; i++) lj[i] = best[i] * s;
        have[j] = 1;
        nhave++;
    }
}

/* ---- one matrix of the stack ------------------------------------------------------------------- */

/* Runs op on the operands at p[]; 0, or 1 with the reason in why. */
static int run_one(const la_ctx *c, char **p, double *dw, int64_t *iw, double *flops, char *why,
                   size_t whylen) {
    int nin = c->nin;
    int o0 = nin, o1 = nin + 1, o2 = nin + 2; /* outputs */
    int64_t m = c->m, n = c->n;
    switch (c->op) {
    case LA_CHOLESKY: {
        double *a = dw;
        for (int64_t i = 0; i < n; i++) /* the lower triangle */
            for (int64_t j = 0; j <= i; j++)
                a[i * n + j] = ld(c->dt, p[0], i * c->rs[0] + j * c->cs[0]);
        double pivot = 0;
        int64_t bad = cholesky(a, n, &pivot, flops);
        if (bad) {
            snprintf(why, whylen,
                     "is not positive definite (its leading minor of order %lld is not "
                     "positive: pivot %g)",
                     (long long)bad, pivot);
            return 1;
        }
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double x = j <= i ? a[i * n + j] : 0; /* L[i][j] */
                int64_t off = c->upper ? j * c->rs[o0] + i * c->cs[o0]
                                       : i * c->rs[o0] + j * c->cs[o0];
                st(c->dt, p[o0], off, x);
            }
        return 0;
    }
    case LA_INV:
    case LA_SOLVE: {
        double *a = dw, *b = dw + n * n;
        int64_t nrhs = c->op == LA_INV ? n : c->nrhs;
        load(c, 0, p[0], n, n, a, n, 1);
        if (c->op == LA_INV) {
            memset(b, 0, (size_t)(n * n) * sizeof *b);
            for (int64_t i = 0; i < n; i++) b[i * n + i] = 1;
        } else {
            load(c, 1, p[1], n, nrhs, b, nrhs, 1);
        }
        int sign;
        int64_t zero = lu(a, n, iw, &sign, flops);
        if (zero) {
            snprintf(why, whylen,
                     "is singular (pivot %lld of its LU factorization with partial pivoting "
                     "is exactly zero)",
                     (long long)zero);
            return 1;
        }
        lu_solve(a, iw, n, b, nrhs, flops);
        store(c, o0, p[o0], n, nrhs, b, nrhs, 1);
        return 0;
    }
    case LA_DET:
    case LA_SLOGDET: {
        double *a = dw;
        load(c, 0, p[0], n, n, a, n, 1);
        int sign;
        int64_t zero = lu(a, n, iw, &sign, flops);
        double sgn = sign, logabs = 0, mant = 1;
        long exp2 = 0;
        if (zero) {
            sgn = 0;
            logabs = -INFINITY;
            mant = 0;
        } else {
            for (int64_t i = 0; i < n; i++) {
                double d = a[i * n + i];
                if (d < 0) sgn = -sgn;
                else if (isnan(d)) sgn = NAN;
                logabs += log(fabs(d));
                int e;
                mant = frexp(mant * d, &e); /* the product, kept in range */
                exp2 += e;
            }
            *flops += 3.0 * (double)n;
        }
        if (c->op == LA_DET) {
            double det = sign * mant;
            if (exp2 > 4096) det = det * INFINITY;
            else if (exp2 < -4096) det = det * 0.0;
            else det = ldexp(det, (int)exp2);
            st(c->dt, p[o0], 0, det);
        } else {
            st(c->dt, p[o0], 0, sgn);
            st(c->dt, p[o1], 0, isnan(sgn) ? NAN : logabs);
        }
        return 0;
    }
    case LA_QR: {
        int64_t k = c->k, qc = c->qc;
        double *a = dw, *q = a + m * n, *w = q + m * qc, *tau = w + (n > qc ? n : qc);
        load(c, 0, p[0], m, n, a, n, 1);
        householder(a, m, n, tau, w, flops);
        form_q(a, m, n, tau, q, qc, w, flops);
        store(c, o0, p[o0], m, qc, q, qc, 1);
        int64_t rr = qc; /* R's rows */
        for (int64_t i = 0; i < rr; i++)
            for (int64_t j = 0; j < n; j++)
                st(c->dt, p[o1], i * c->rs[o1] + j * c->cs[o1],
                   j >= i && i < k ? a[i * n + j] : 0);
        return 0;
    }
    case LA_EIGH:
    case LA_EIGVALSH: {
        int vecs = c->op == LA_EIGH;
        int64_t half = (n + 1) / 2;
        double *a = dw, *vals = a + n * n, *rot = vals + n, *vt = vecs ? rot + 4 * half : NULL;
        int64_t *order = iw, *arr = iw + n, *pp = arr + 2 * half, *qq = pp + half;
        int finite = 1;
        for (int64_t i = 0; i < n; i++) /* the lower triangle, mirrored */
            for (int64_t j = 0; j <= i; j++) {
                double x = ld(c->dt, p[0], i * c->rs[0] + j * c->cs[0]);
                if (!isfinite(x)) finite = 0;
                a[i * n + j] = a[j * n + i] = x;
            }
        if (!finite) {
            fill(c, o0, p[o0], n, 1, NAN); /* a vector: rows */
            if (vecs) fill(c, o1, p[o1], n, n, NAN);
            return 0;
        }
        int sweeps = 0;
        if (jacobi_eigh(a, vt, n, arr, pp, qq, rot, c->inner_threads, &sweeps, flops)) {
            snprintf(why, whylen,
                     "did not converge: Jacobi left the off-diagonal norm above %g of the "
                     "matrix's after %d sweeps",
                     LA_JACOBI_TOL, sweeps);
            return 1;
        }
        for (int64_t i = 0; i < n; i++) vals[i] = a[i * n + i];
        argsort(vals, n, order, 0);
        for (int64_t i = 0; i < n; i++) st(c->dt, p[o0], i * c->rs[o0], vals[order[i]]);
        if (vecs) /* V[i][j] = row order[j] of V^T */
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++)
                    st(c->dt, p[o1], i * c->rs[o1] + j * c->cs[o1], vt[order[j] * n + i]);
        return 0;
    }
    case LA_SVD:
    case LA_SVDVALS: {
        int vecs = c->op == LA_SVD;
        int64_t r = c->r, cc = c->c, lc = c->lc, k = c->k;
        int64_t half = (cc + 1) / 2;
        double *w = dw, *fl = w + r * cc, *sv = fl + half + 1, *v = NULL, *l = NULL,
               *tmp = NULL, *best = NULL;
        int64_t *order = iw, *arr = order + cc, *pp = arr + 2 * half + 1, *qq = pp + half + 1;
        unsigned char *rotated = (unsigned char *)(qq + half + 1);
        unsigned char *have = rotated + half + 1;
        if (vecs) {
            v = sv + cc;
            l = v + cc * cc;
            tmp = l + r * lc;
            best = tmp + r;
        }
        /* columns of the taller orientation: A's columns, or (m < n) A's rows */
        int finite = c->transposed ? load(c, 0, p[0], m, n, w, r, 1)
                                   : load(c, 0, p[0], m, n, w, 1, r);
        int so = vecs ? o1 : o0; /* S */
        if (!finite) {
            fill(c, so, p[so], k, 1, NAN);
            if (vecs) {
                fill(c, o0, p[o0], m, c->transposed ? m : lc, NAN);
                fill(c, o2, p[o2], c->transposed ? lc : n, n, NAN);
            }
            return 0;
        }
        int sweeps = 0;
        if (hestenes(w, v, r, cc, arr, pp, qq, fl, rotated, c->inner_threads, &sweeps, flops)) {
            snprintf(why, whylen,
                     "did not converge: one-sided Jacobi left columns with cosines above "
                     "%g after %d sweeps",
                     LA_JACOBI_TOL, sweeps);
            return 1;
        }
        for (int64_t j = 0; j < cc; j++) sv[j] = sqrt(dot(w + j * r, w + j * r, r));
        *flops += 2.0 * (double)r * (double)cc;
        argsort(sv, cc, order, 1);
        for (int64_t j = 0; j < k; j++) st(c->dt, p[so], j * c->rs[so], sv[order[j]]);
        if (!vecs) return 0;
        for (int64_t j = 0; j < lc; j++) {
            have[j] = 0;
            if (j >= cc) continue;
            double s = sv[order[j]];
            if (!(s > 0)) continue;
            const double *src = w + order[j] * r;
            double *dst = l + j * r;
            for (int64_t i = 0; i < r; i++) dst[i] = src[i] / s;
            have[j] = 1;
        }
        complete_basis(l, r, lc, have, tmp, best, flops);
        /* A = L S V^T (A^T = L S V^T when transposed); column j of V is v + order[j] * cc */
        if (!c->transposed) {
            store(c, o0, p[o0], m, lc, l, 1, r);      /* U[i][j] = l[j][i] */
            for (int64_t i = 0; i < cc; i++)             /* Vh[i][j] = V[j][order[i]] */
                for (int64_t j = 0; j < n; j++)
                    st(c->dt, p[o2], i * c->rs[o2] + j * c->cs[o2], v[order[i] * cc + j]);
        } else {
            for (int64_t i = 0; i < m; i++)              /* U[i][j] = V[i][order[j]] */
                for (int64_t j = 0; j < cc; j++)
                    st(c->dt, p[o0], i * c->rs[o0] + j * c->cs[o0], v[order[j] * cc + i]);
            store(c, o2, p[o2], lc, n, l, r, 1);       /* Vh[i][j] = l[i][j] */
        }
        return 0;
    }
    default:
        snprintf(why, whylen, "has no implementation of op %d", c->op);
        return 1;
    }
}

/* ---- the stack --------------------------------------------------------------------------------- */

static void record(la_ctx *c, int64_t bi, const char *why) {
    pthread_mutex_lock(&c->mu);
    if (!c->failed || bi < c->fail_index) {
        c->failed = 1;
        c->fail_index = bi;
        snprintf(c->fail_why, sizeof c->fail_why, "%s", why);
    }
    pthread_mutex_unlock(&c->mu);
}

static void la_range(void *vc, int64_t begin, int64_t end) {
    la_ctx *c = (la_ctx *)vc;
    double *dw = (double *)malloc((c->nd + 1) * sizeof(double));
    int64_t *iw = (int64_t *)malloc((c->ni + 1) * sizeof(int64_t));
    if (!dw || !iw) {
        char why[120];
        snprintf(why, sizeof why, "needs %.0f bytes of host work memory, which is not available",
                 (double)c->nd * 8 + (double)c->ni * 8);
        record(c, begin, why);
        free(dw);
        free(iw);
        return;
    }
    double flops = 0;
    for (int64_t bi = begin; bi < end; bi++) {
        char *p[LA_MAX_OPS];
        int64_t rem = bi;
        for (int o = 0; o < c->nops; o++) p[o] = c->base[o];
        for (int d = c->nb - 1; d >= 0; d--) {
            int64_t i = rem % c->bshape[d];
            rem /= c->bshape[d];
            for (int o = 0; o < c->nops; o++) p[o] += i * c->bstr[o][d] * (int64_t)c->es;
        }
        char why[160];
        why[0] = '\0';
        if (run_one(c, p, dw, iw, &flops, why, sizeof why)) record(c, bi, why);
    }
    pthread_mutex_lock(&c->mu);
    c->flops += flops;
    pthread_mutex_unlock(&c->mu);
    free(dw);
    free(iw);
}

/* "(3, 1)": batch index bi in C order */
static void batch_index(const la_ctx *c, int64_t bi, char *buf, size_t len) {
    int64_t idx[MAIA_MAX_DIMS];
    for (int d = c->nb - 1; d >= 0; d--) {
        idx[d] = bi % c->bshape[d];
        bi /= c->bshape[d];
    }
    size_t used = 0;
    buf[0] = '\0';
    for (int d = 0; d < c->nb && used + 1 < len; d++) {
        int w = snprintf(buf + used, len - used, "%s%lld", d ? ", " : "(", (long long)idx[d]);
        if (w < 0) break;
        used += (size_t)w;
    }
    if (used + 1 < len) snprintf(buf + used, len - used, "%s", c->nb == 1 ? ",)" : ")");
}

/* "(..., 3, 4)" */
static const char *trail(char *buf, size_t len, int nd, const int64_t *dims) {
    size_t used = (size_t)snprintf(buf, len, "(...");
    for (int d = 0; d < nd && used + 1 < len; d++) {
        int w = snprintf(buf + used, len - used, ", %lld", (long long)dims[d]);
        if (w < 0) break;
        used += (size_t)w;
    }
    if (used + 1 < len) snprintf(buf + used, len - used, ")");
    return buf;
}

/* operand `o` (a view) must be batch + `nd` trailing dims equal to dims */
static int check_operand(const la_ctx *c, const maia_view *v, const char *what, int nd,
                         const int64_t *dims, mk_status *st) {
    char want[96], got[96];
    int ok = v->ndim == c->nb + nd;
    for (int d = 0; ok && d < c->nb; d++)
        if (v->shape[d] != c->bshape[d]) ok = 0;
    for (int d = 0; ok && d < nd; d++)
        if (v->shape[c->nb + d] != dims[d]) ok = 0;
    if (ok) return MAIA_KERNEL_OK;
    if (v->ndim != c->nb + nd)
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "%s: %s needs %d dimensions (the input's %d batch dimensions and %s), "
                       "got %d",
                       c->name, what, c->nb + nd, c->nb, trail(want, sizeof want, nd, dims),
                       (int)v->ndim);
    for (int d = 0; d < c->nb; d++)
        if (v->shape[d] != c->bshape[d])
            return mk_fail(st, MAIA_KERNEL_INVALID,
                           "%s: %s's batch dimension %d is %lld, the input's is %lld", c->name,
                           what, d, (long long)v->shape[d], (long long)c->bshape[d]);
    return mk_fail(st, MAIA_KERNEL_INVALID, "%s: %s must be %s, got %s", c->name, what,
                   trail(want, sizeof want, nd, dims),
                   trail(got, sizeof got, nd, v->shape + c->nb));
}

static void set_operand(la_ctx *c, int o, const maia_view *v, int nd) {
    c->base[o] = (char *)v->data;
    for (int d = 0; d < c->nb; d++) c->bstr[o][d] = v->strides[d];
    c->rs[o] = nd >= 1 ? v->strides[c->nb] : 0;
    c->cs[o] = nd == 2 ? v->strides[c->nb + 1] : 0;
}

int mk_linalg(const maia_kernel_call *call, int op, maia_kernel_cost *cost, mk_status *st) {
    if (op < 0 || op >= LA_COUNT)
        return mk_fail(st, MAIA_KERNEL_UNKNOWN, "linalg: no op %d", op);
    static const int NIN[LA_COUNT] = {1, 1, 1, 1, 2, 1, 1, 1, 1, 1};
    static const int NOUT[LA_COUNT] = {1, 1, 1, 2, 1, 2, 2, 1, 3, 1};
    const char *name = LA_NAMES[op];
    if (mk_check_counts(call, NIN[op], NOUT[op], st)) return st->code;
    const maia_view *x = &call->inputs[0];
    int32_t dt = x->dtype;
    if (!mk_linalg_supports(dt))
        return mk_fail(st, MAIA_KERNEL_UNSUPPORTED,
                       "%s is not implemented for %s (maia's linalg kernels take float32, "
                       "float16 and bfloat16)",
                       name, mk_dtype_name(dt));
    for (int i = 0; i < NIN[op] + NOUT[op]; i++) {
        const maia_view *v = i < NIN[op] ? &call->inputs[i] : &call->outputs[i - NIN[op]];
        if (v->dtype != dt)
            return mk_fail(st, MAIA_KERNEL_INVALID,
                           "%s: %s %d is %s, the input is %s (every operand has its dtype)",
                           name, i < NIN[op] ? "input" : "output",
                           i < NIN[op] ? i : i - NIN[op], mk_dtype_name(v->dtype),
                           mk_dtype_name(dt));
    }
    if (x->ndim < 2)
        return mk_fail(st, MAIA_KERNEL_INVALID,
                       "%s needs a stack of matrices (..., M, N), got %d dimension(s)", name,
                       (int)x->ndim);

    la_ctx *c = (la_ctx *)calloc(1, sizeof *c);
    if (!c) return mk_fail(st, MAIA_KERNEL_INVALID, "%s: out of host memory", name);
    c->op = op;
    c->name = name;
    c->dt = dt;
    c->es = mk_elsize(dt);
    c->nin = NIN[op];
    c->nops = NIN[op] + NOUT[op];
    c->nb = x->ndim - 2;
    c->batch = 1;
    for (int d = 0; d < c->nb; d++) {
        c->bshape[d] = x->shape[d];
        c->batch *= x->shape[d];
    }
    int64_t m = x->shape[x->ndim - 2], n = x->shape[x->ndim - 1];
    c->m = m;
    c->n = n;
    c->k = m < n ? m : n;
    c->upper = call->attrs.upper != 0;
    c->full = call->attrs.full_matrices != 0;
    int rc = MAIA_KERNEL_OK;
    int square = op != LA_QR && op != LA_SVD && op != LA_SVDVALS;
    if (square && m != n) {
        rc = mk_fail(st, MAIA_KERNEL_INVALID,
                     "%s needs a stack of square matrices (..., M, M), got (..., %lld, %lld)",
                     name, (long long)m, (long long)n);
        goto done;
    }
    /* outputs' trailing dims */
    int64_t dims[3][2] = {{0, 0}, {0, 0}, {0, 0}};
    int nds[3] = {0, 0, 0};
    const char *what[3] = {"the output", NULL, NULL};
    /* sizes in double: an empty stack may have dimensions whose products overflow */
    double est, wd, wi; /* flops per matrix (for the thread split); work doubles, int64s */
    double dm = (double)m, dn = (double)n, dk = (double)c->k;
    switch (op) {
    case LA_CHOLESKY:
    case LA_INV:
        nds[0] = 2, dims[0][0] = n, dims[0][1] = n;
        wd = (op == LA_INV ? 2 : 1) * dn * dn;
        wi = dn;
        est = op == LA_INV ? 2.7 * dn * dn * dn : dn * dn * dn / 3;
        break;
    case LA_DET:
    case LA_SLOGDET:
        what[0] = op == LA_DET ? "the output" : "sign";
        what[1] = "logabsdet";
        wd = dn * dn;
        wi = dn;
        est = 2 * dn * dn * dn / 3;
        break;
    case LA_SOLVE: {
        const maia_view *b = &call->inputs[1];
        int ok = b->ndim == x->ndim && b->shape[b->ndim - 2] == n;
        for (int d = 0; ok && d < c->nb; d++)
            if (b->shape[d] != c->bshape[d]) ok = 0;
        if (!ok) {
            char want[96], got[96], had[96];
            int64_t wdims[2] = {n, b->ndim >= 1 ? b->shape[b->ndim - 1] : 0};
            rc = mk_fail(st, MAIA_KERNEL_INVALID,
                         "solve: x2 must have x1's batch dimensions and shape %s (K free) for "
                         "x1 %s, got %d dimensions%s%s",
                         trail(want, sizeof want, 2, wdims), trail(got, sizeof got, 2, x->shape + c->nb),
                         (int)b->ndim, b->ndim == x->ndim ? " ending in " : "",
                         b->ndim == x->ndim ? trail(had, sizeof had, 2, b->shape + c->nb) : "");
            goto done;
        }
        c->nrhs = b->shape[b->ndim - 1];
        nds[0] = 2, dims[0][0] = n, dims[0][1] = c->nrhs;
        wd = dn * dn + dn * (double)c->nrhs;
        wi = dn;
        est = 2 * dn * dn * dn / 3 + 2 * dn * dn * (double)c->nrhs;
        break;
    }
    case LA_QR: {
        c->qc = call->attrs.qr_complete ? m : c->k;
        double dq = (double)c->qc;
        what[0] = "Q", what[1] = "R";
        nds[0] = nds[1] = 2;
        dims[0][0] = m, dims[0][1] = c->qc;
        dims[1][0] = c->qc, dims[1][1] = n;
        wd = dm * dn + dm * dq + (dn > dq ? dn : dq) + dk;
        wi = 0;
        est = 4 * dm * dn * dk + 4 * dm * dq * dk;
        break;
    }
    case LA_EIGH:
    case LA_EIGVALSH:
        what[0] = "eigenvalues", what[1] = "eigenvectors";
        nds[0] = 1, dims[0][0] = n;
        if (op == LA_EIGH) nds[1] = 2, dims[1][0] = n, dims[1][1] = n;
        wd = (op == LA_EIGH ? 2 : 1) * dn * dn + dn + 4 * (dn + 1) / 2 + 4;
        wi = dn + 4 * ((dn + 1) / 2) + 4;
        est = 8 * 12 * dn * dn * dn;
        break;
    default: { /* svd, svdvals */
        c->transposed = m < n;
        c->r = m < n ? n : m;
        c->c = c->k;
        c->lc = c->full ? c->r : c->k;
        double dr = (double)c->r, dc = (double)c->c, dl = (double)c->lc;
        if (op == LA_SVD) {
            what[0] = "U", what[1] = "S", what[2] = "Vh";
            nds[0] = nds[2] = 2, nds[1] = 1;
            dims[0][0] = m, dims[0][1] = c->full ? m : c->k;
            dims[1][0] = c->k;
            dims[2][0] = c->full ? n : c->k, dims[2][1] = n;
            wd = dr * dc + dc + dc * dc + dr * dl + 2 * dr;
        } else {
            what[0] = "S";
            nds[0] = 1, dims[0][0] = c->k;
            wd = dr * dc + dc;
        }
        /* + the round-robin's per-pair flops; order, arr, pp, qq; rotated and have bytes */
        wd += dc / 2 + 2;
        wi = dc + (dc + 2) + 2 * (dc / 2 + 2) + (dc / 2 + 2 + dl) / 8 + 2;
        est = 8 * 12 * dr * dc * dc;
        break;
    }
    }
    if (op == LA_SLOGDET || op == LA_DET) nds[0] = nds[1] = 0;
    for (int i = 0; i < NOUT[op]; i++)
        if (check_operand(c, &call->outputs[i], what[i] ? what[i] : "output", nds[i], dims[i],
                          st)) {
            rc = st->code;
            if ((op == LA_QR || op == LA_SVD) && st->err && st->errlen > strlen(st->err))
                snprintf(st->err + strlen(st->err), st->errlen - strlen(st->err),
                         op == LA_QR ? " (mode '%s')" : " (full_matrices=%s)",
                         op == LA_QR ? (call->attrs.qr_complete ? "complete" : "reduced")
                                     : (c->full ? "true" : "false"));
            goto done;
        }
    set_operand(c, 0, x, 2);
    if (op == LA_SOLVE) set_operand(c, 1, &call->inputs[1], 2);
    for (int i = 0; i < NOUT[op]; i++) set_operand(c, c->nin + i, &call->outputs[i], nds[i]);

    double bytes = 0;
    for (int i = 0; i < NIN[op]; i++) bytes += mk_view_unique(&call->inputs[i]);
    for (int i = 0; i < NOUT[op]; i++) bytes += mk_view_unique(&call->outputs[i]);
    cost->bytes_moved = bytes * (double)c->es;
    cost->compute_dtype = dt;
    if (c->batch == 0) goto done;
    if (wd * 8 > 1e15 || wi * 8 > 1e15) {
        rc = mk_fail(st, MAIA_KERNEL_INVALID,
                     "%s: matrices of (%lld, %lld) are too large to factor (%.3g bytes of "
                     "work memory each)",
                     name, (long long)m, (long long)n, (wd + wi) * 8);
        goto done;
    }
    c->nd = (size_t)wd;
    c->ni = (size_t)wi;

    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        rc = mk_fail(st, MAIA_KERNEL_INVALID, "%s: cannot create a mutex", name);
        goto done;
    }
    int threads = call->threads < 1 ? 1 : call->threads;
    if (est < 1) est = 1;
    if (est * (double)c->batch < (double)(1 << 20)) threads = 1;
    double g = (double)(1 << 18) / est;
    int64_t grain = g > (double)c->batch ? c->batch : g < 1 ? 1 : (int64_t)g;
    c->inner_threads = 1;
    if (threads > 1 && c->batch < threads && op >= LA_EIGH && est >= (double)(1 << 22)) {
        c->inner_threads = threads; /* few large Jacobi problems: threads inside each */
        la_range(c, 0, c->batch);
    } else {
        mk_parallel_for(threads, c->batch, grain, la_range, c);
    }
    pthread_mutex_destroy(&c->mu);
    cost->flops = c->flops;
    if (c->failed) {
        char idx[200];
        if (c->nb) {
            batch_index(c, c->fail_index, idx, sizeof idx);
            rc = mk_fail(st, MAIA_KERNEL_INVALID, "%s: the matrix at batch index %s %s", name,
                         idx, c->fail_why);
        } else {
            rc = mk_fail(st, MAIA_KERNEL_INVALID, "%s: the matrix %s", name, c->fail_why);
        }
    }
done:
    free(c);
    return rc;
}
