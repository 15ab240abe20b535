// Dropout with the Philox-4x32-10 mask of bertj_philox.h (bit-identical to the CUDA backend).
//
//   u_i  = bj_dropout_uniform(seed, offset + i)        in [0, 1), 24-bit
//   keep = u_i >= p;  scale = 1 / (1 - p) (computed once in fp32)
//   forward:  out = keep ? x * scale : 0               (may alias x)
//   backward: dx  = keep ? dout * scale : 0            activation gradient ("="), may alias dout
//   philox_uniform: u[i] = u_i                         (for tests)
//
// p = 0 is the identity (every u >= 0). Elementwise and counter-based: the result does not
// depend on the thread count.
#include "bertj_philox.h"
#include "common.h"

namespace {
// Shared by forward and backward: y = x * keep / (1 - p).
void apply_mask(float* y, const float* x, int64_t n, float p, uint64_t seed, uint64_t offset) {
  if (p == 0.0f) {
    if (y != x) {
#pragma omp parallel for if (n >= bj::kParallelMin)
      for (int64_t i = 0; i < n; ++i) y[i] = x[i];
    }
    return;
  }
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for if (n >= bj::kParallelMin / 16)
  for (int64_t i = 0; i < n; ++i) {
    const float u = bj_dropout_uniform(seed, offset + (uint64_t)i);
    y[i] = u >= p ? x[i] * scale : 0.0f;
  }
}
}  // namespace

extern "C" int bj_cpu_dropout_forward(float* out,      // (n), may alias x
                                      const float* x,  // (n)
                                      int64_t n, float p, uint64_t seed, uint64_t offset,
                                      void* stream) {
  BJ_CHECK(out != nullptr && x != nullptr, "bj_cpu_dropout_forward", "out or x is NULL");
  BJ_CHECK(n > 0, "bj_cpu_dropout_forward", "n must be > 0 (got %lld)", (long long)n);
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cpu_dropout_forward", "p must be in [0, 1) (got %g)",
           (double)p);
  apply_mask(out, x, n, p, seed, offset);
  return BJ_OK;
}

extern "C" int bj_cpu_dropout_backward(float* dx,          // (n), "=", may alias dout
                                       const float* dout,  // (n)
                                       int64_t n, float p, uint64_t seed, uint64_t offset,
                                       void* stream) {
  BJ_CHECK(dx != nullptr && dout != nullptr, "bj_cpu_dropout_backward", "dx or dout is NULL");
  BJ_CHECK(n > 0, "bj_cpu_dropout_backward", "n must be > 0 (got %lld)", (long long)n);
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cpu_dropout_backward", "p must be in [0, 1) (got %g)",
           (double)p);
  apply_mask(dx, dout, n, p, seed, offset);
  return BJ_OK;
}

extern "C" int bj_cpu_philox_uniform(float* u,  // (n)
                                     int64_t n, uint64_t seed, uint64_t offset, void* stream) {
  BJ_CHECK(u != nullptr, "bj_cpu_philox_uniform", "u is NULL");
  BJ_CHECK(n > 0, "bj_cpu_philox_uniform", "n must be > 0 (got %lld)", (long long)n);
#pragma omp parallel for if (n >= bj::kParallelMin / 16)
  for (int64_t i = 0; i < n; ++i) u[i] = bj_dropout_uniform(seed, offset + (uint64_t)i);
  return BJ_OK;
}
