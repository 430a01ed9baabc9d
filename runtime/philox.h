/* philox.h — Philox4x32-10, the counter-based random number generator of Salmon et al.,
 * "Parallel Random Numbers: As Easy as 1, 2, 3" (SC'11, the Random123 library).
 *
 * A counter-based generator is a pure function (counter, key) -> 128 random bits, so the
 * n-th number of a stream is computed without the n-1 before it. That is what makes
 * dropout masks reproducible and independent of how many threads (or GPU blocks) generate
 * them: element i of a random tensor always uses counter block i/4 (or i/2 for normals).
 *
 * The element-wise stream used by Graph IR's `random` op is defined here, once, and is
 * shared by the interpreter, the CPU runtime and (by the same formulas) the GPU kernels:
 *
 *   key     = { lo32(seed), hi32(seed) }
 *   uniform element i: bits = philox({ lo32(i/4), hi32(i/4), lo32(offset), hi32(offset) },
 *                                     key)[i % 4];  u = tl_philox_u01(bits)      in [0, 1)
 *   normal element i:  r = philox({ lo32(i/2), hi32(i/2), lo32(offset), hi32(offset) }, key);
 *                      (a, b) = i % 2 == 0 ? (r[0], r[1]) : (r[2], r[3]);
 *                      z = sqrt(-2 ln u1) * cos(2 pi u2),  u1 = (hi24(a) + 1) / 2^24 in (0, 1],
 *                                                          u2 = hi24(b) / 2^24      in [0, 1)
 * Pure C, no dependencies, no global state. */
#ifndef TL_PHILOX_H
#define TL_PHILOX_H
#include <stdint.h>

/* out = Philox4x32-10(ctr, key): 10 rounds, multipliers 0xD2511F53 and 0xCD9E8D57, key
 * bumps 0x9E3779B9 and 0xBB67AE85 (the Random123 reference constants). */
void tl_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The top 24 bits of x scaled to [0, 1): exact in f32, so f32 and f64 agree. */
double tl_philox_u01(uint32_t x);

/* Box–Muller on two 32-bit words (cosine branch): a standard normal sample. */
double tl_philox_normal(uint32_t a, uint32_t b);

/* Element i of the streams defined above. */
double tl_philox_uniform_at(uint64_t seed, uint64_t offset, uint64_t i);
double tl_philox_normal_at(uint64_t seed, uint64_t offset, uint64_t i);

#endif
