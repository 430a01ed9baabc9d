#include "philox.h"
#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* One round: two 32x32->64 multiplies; the high halves are mixed with the key and the
 * other two words, the low halves become the new odd words. */
static void philox_round(uint32_t x[4], const uint32_t k[2]) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * x[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * x[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t y0 = hi1 ^ x[1] ^ k[0];
    uint32_t y1 = lo1;
    uint32_t y2 = hi0 ^ x[3] ^ k[1];
    uint32_t y3 = lo0;
    x[0] = y0, x[1] = y1, x[2] = y2, x[3] = y3;
}

void tl_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t x[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int r = 0; r < 10; r++) {
        if (r > 0) k[0] += PHILOX_W0, k[1] += PHILOX_W1;
        philox_round(x, k);
    }
    for (int i = 0; i < 4; i++) out[i] = x[i];
}

double tl_philox_u01(uint32_t x) { return (double)(x >> 8) * (1.0 / 16777216.0); }

double tl_philox_normal(uint32_t a, uint32_t b) {
    double u1 = ((double)(a >> 8) + 1.0) * (1.0 / 16777216.0); /* (0, 1]: log is finite */
    double u2 = tl_philox_u01(b);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925286766559 * u2);
}

static void stream_block(uint64_t seed, uint64_t offset, uint64_t block, uint32_t r[4]) {
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)offset,
                       (uint32_t)(offset >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    tl_philox4x32_10(ctr, key, r);
}

double tl_philox_uniform_at(uint64_t seed, uint64_t offset, uint64_t i) {
    uint32_t r[4];
    stream_block(seed, offset, i / 4, r);
    return tl_philox_u01(r[i % 4]);
}

double tl_philox_normal_at(uint64_t seed, uint64_t offset, uint64_t i) {
    uint32_t r[4];
    stream_block(seed, offset, i / 2, r);
    return i % 2 == 0 ? tl_philox_normal(r[0], r[1]) : tl_philox_normal(r[2], r[3]);
}
