/*
 * Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
 * counter-based generator behind every dropout mask in bertj. Header-only, usable from C++ and
 * CUDA (__host__ __device__), so that both backends draw bit-identical masks.
 *
 * bj_dropout_uniform(seed, idx): the uniform in [0, 1) for global element index idx
 * (= offset + i of a dropout call): one Philox call serves the 4 elements of a group,
 * g = idx >> 2: counter (lo32(g), hi32(g), 0, 0), key (lo32(seed), hi32(seed)), output word
 * idx & 3 is u32, u = (u32 >> 8) * 2^-24 (exact in fp32). bj_dropout_uniform4(seed, g, u) gives the
 * 4 uniforms of elements 4g .. 4g + 3 from one call (what the batched CPU and GPU kernels use).
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

/* The 4 uniforms of elements 4g .. 4g + 3 (group g). */
BJ_HD void bj_dropout_uniform4(uint64_t seed, uint64_t g, float* u) {
  uint32_t c[4] = {(uint32_t)g, (uint32_t)(g >> 32), 0u, 0u};
  bj_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
  for (int w = 0; w < 4; ++w) u[w] = (float)(c[w] >> 8) * (1.0f / 16777216.0f);
}

BJ_HD float bj_dropout_uniform(uint64_t seed, uint64_t idx) {
  uint32_t c[4] = {(uint32_t)(idx >> 2), (uint32_t)(idx >> 34), 0u, 0u};
  bj_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
  const uint32_t w = (idx & 1) ? ((idx & 2) ? c[3] : c[1]) : ((idx & 2) ? c[2] : c[0]);
  return (float)(w >> 8) * (1.0f / 16777216.0f);
}

#endif /* BERTJ_PHILOX_H */
