/*
 * Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
 * counter-based generator behind every dropout mask in bertj. Header-only, usable from C++ and
 * CUDA (__host__ __device__), so that both backends draw bit-identical masks.
 *
 * bj_dropout_uniform(seed, idx): the uniform in [0, 1) for global element index idx
 * (= offset + i of a dropout call): counter (lo32(idx), hi32(idx), 0, 0), key (lo32(seed),
 * hi32(seed)), first output word u32, u = (u32 >> 8) * 2^-24 (exact in fp32).
 */
#ifndef BERTJ_PHILOX_H
#define BERTJ_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__)
#define BJ_HD __host__ __device__ __forceinline__
#else
#define BJ_HD static inline
#endif

BJ_HD void bj_philox_round(uint32_t* c, uint32_t k0, uint32_t k1) {
  const uint64_t p0 = (uint64_t)0xD2511F53u * c[0];
  const uint64_t p1 = (uint64_t)0xCD9E8D57u * c[2];
  const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
  const uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
  const uint32_t n0 = hi1 ^ c[1] ^ k0;
  const uint32_t n2 = hi0 ^ c[3] ^ k1;
  c[0] = n0;
  c[1] = lo1;
  c[2] = n2;
  c[3] = lo0;
}

/* Philox-4x32-10 on counter c (in place) with key (k0, k1). */
BJ_HD void bj_philox4x32_10(uint32_t* c, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    bj_philox_round(c, k0, k1);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

BJ_HD float bj_dropout_uniform(uint64_t seed, uint64_t idx) {
  uint32_t c[4] = {(uint32_t)idx, (uint32_t)(idx >> 32), 0u, 0u};
  bj_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
  return (float)(c[0] >> 8) * (1.0f / 16777216.0f);
}

#endif /* BERTJ_PHILOX_H */
