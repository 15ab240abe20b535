/*
 * bertj_bf16.h: fp32 <-> bf16 conversion shared by the CPU and CUDA kernels, so both backends
 * round identically. bf16 travels as its uint16_t bit pattern (the top half of an IEEE float).
 * Rounding is to nearest, ties to even; NaN stays a (quiet) NaN; overflow rounds to infinity as
 * IEEE rounding does.
 */
#ifndef BERTJ_BF16_H
#define BERTJ_BF16_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define BJ_HD __host__ __device__ __forceinline__
#else
#define BJ_HD static inline
#endif

BJ_HD uint16_t bj_f32_to_bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

BJ_HD float bj_bf16_bits_to_f32(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

#undef BJ_HD
#endif
