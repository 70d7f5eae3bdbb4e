/* The assertion macro, bit helpers and random generator the kernel tests share:
 * a failed CHECK reports (the first 60) and counts; each test binary prints its totals and
 * exits non-zero if any check failed. */
#ifndef KERNEL_CHECK_H
#define KERNEL_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../src/kernels/kernels_internal.h" /* f2u, u2f: the bits of a float32 */

static long g_checks, g_fail;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        g_checks++;                                                                            \
        if (!(cond)) {                                                                         \
            g_fail++;                                                                          \
            if (g_fail < 60) {                                                                 \
                fprintf(stderr, "%s:%d: FAIL (%s): ", __FILE__, __LINE__, #cond);              \
                fprintf(stderr, __VA_ARGS__);                                                  \
                fputc('\n', stderr);                                                           \
            }                                                                                  \
        }                                                                                      \
    } while (0)


/* A xorshift64 generator: the same pseudo-random sequence on every platform and run. Each
 * test binary may seed it (rng_state) differently. */
static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static inline uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

#endif
