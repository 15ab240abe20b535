// Dropout with the Philox-4x32-10 mask of bertj_philox.h (bit-identical to the CUDA backend).
//
//   u_i  = bj_dropout_uniform(seed, offset + i)        in [0, 1), 24-bit
//   keep = u_i >= p;  scale = 1 / (1 - p) (computed once in fp32)
//   forward:  out = keep ? x * scale : 0               (may alias x)
//   backward: dx  = keep ? dout * scale : 0            activation gradient ("="), may alias dout
//   philox_uniform: u[i] = u_i                         (for tests)
//
// p = 0 is the identity (every u >= 0). Elementwise and counter-based: the result does not
// depend on the thread count. The draws are made kDrawChunk at a time into a stack buffer by
// bj::philox_uniforms_{avx2,sse} (8 or 4 Philox counters per vector, each giving the uniforms of 4
// consecutive elements; the same bits as the scalar bj_dropout_uniform), then the mask is applied
// over the chunk.
#include "bertj_philox.h"
#include "common.h"

namespace {
constexpr int64_t kDrawChunk = 1024;  // draws per task (a 4 KiB stack buffer)

// u (n) = the uniforms of elements offset .. offset + n - 1, in kDrawChunk tasks.
void draw(float* u, int64_t n, uint64_t seed, uint64_t offset) {
  const bool avx2 = bj::use_avx2();
  const int64_t tasks = (n + kDrawChunk - 1) / kDrawChunk;
#pragma omp parallel for if (n >= bj::kParallelMin / 16)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t i0 = t * kDrawChunk, m = i0 + kDrawChunk < n ? kDrawChunk : n - i0;
    if (avx2) bj::philox_uniforms_avx2(u + i0, seed, offset + (uint64_t)i0, m);
    else bj::philox_uniforms_sse(u + i0, seed, offset + (uint64_t)i0, m);
  }
}

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
  const bool avx2 = bj::use_avx2();
  const int64_t tasks = (n + kDrawChunk - 1) / kDrawChunk;
#pragma omp parallel for if (n >= bj::kParallelMin / 16)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t i0 = t * kDrawChunk, m = i0 + kDrawChunk < n ? kDrawChunk : n - i0;
    float u[kDrawChunk];  // (kDrawChunk) stack scratch: this chunk's uniforms
    if (avx2) bj::philox_uniforms_avx2(u, seed, offset + (uint64_t)i0, m);
    else bj::philox_uniforms_sse(u, seed, offset + (uint64_t)i0, m);
    float* yc = y + i0;
    const float* xc = x + i0;
    for (int64_t i = 0; i < m; ++i) yc[i] = u[i] >= p ? xc[i] * scale : 0.0f;
  }
}
}  // namespace

extern "C" int bj_cpu_dropout_forward(float* out,      // (n), may alias x
                                      const float* x,  // (n)
                                      int64_t n, float p, uint64_t seed, uint64_t offset,
                                      const bj_step_scalars* sc, void* stream) {
  if (sc != nullptr) seed = sc->seed;  // per-step scalars (bertj.h)
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
                                       const bj_step_scalars* sc, void* stream) {
  if (sc != nullptr) seed = sc->seed;  // per-step scalars (bertj.h)
  BJ_CHECK(dx != nullptr && dout != nullptr, "bj_cpu_dropout_backward", "dx or dout is NULL");
  BJ_CHECK(n > 0, "bj_cpu_dropout_backward", "n must be > 0 (got %lld)", (long long)n);
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cpu_dropout_backward", "p must be in [0, 1) (got %g)",
           (double)p);
  apply_mask(dx, dout, n, p, seed, offset);
  return BJ_OK;
}

extern "C" int bj_cpu_philox_uniform(float* u,  // (n)
                                     int64_t n, uint64_t seed, uint64_t offset,
                                     const bj_step_scalars* sc, void* stream) {
  if (sc != nullptr) seed = sc->seed;  // per-step scalars (bertj.h)
  BJ_CHECK(u != nullptr, "bj_cpu_philox_uniform", "u is NULL");
  BJ_CHECK(n > 0, "bj_cpu_philox_uniform", "n must be > 0 (got %lld)", (long long)n);
  draw(u, n, seed, offset);
  return BJ_OK;
}
