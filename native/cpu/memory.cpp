// Memory helpers on host buffers: fill, axpy, scale_by.
//
//   fill:     x[i] = value
//   axpy:     y[i] += alpha * x[i]
//   scale_by: x[i] *= scale[0]   (scale points at one float, e.g. a clip factor from clip_scale)
//
// Elementwise, so the result does not depend on the thread count. No gradients here.
#include "common.h"
#include "bertj_bf16.h"

extern "C" int bj_cpu_fill(float* x,  // (n)
                           int64_t n, float value, void* stream) {
  BJ_CHECK(x != nullptr, "bj_cpu_fill", "x is NULL");
  BJ_CHECK(n > 0, "bj_cpu_fill", "n must be > 0 (got %lld)", (long long)n);
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t i = 0; i < n; ++i) x[i] = value;
  return BJ_OK;
}

extern "C" int bj_cpu_axpy(float* y,        // (n)
                           const float* x,  // (n)
                           int64_t n, float alpha, void* stream) {
  BJ_CHECK(y != nullptr, "bj_cpu_axpy", "y is NULL");
  BJ_CHECK(x != nullptr, "bj_cpu_axpy", "x is NULL");
  BJ_CHECK(n > 0, "bj_cpu_axpy", "n must be > 0 (got %lld)", (long long)n);
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
  return BJ_OK;
}

extern "C" int bj_cpu_scale_by(float* x,            // (n)
                               int64_t n,
                               const float* scale,  // (1)
                               void* stream) {
  BJ_CHECK(x != nullptr, "bj_cpu_scale_by", "x is NULL");
  BJ_CHECK(scale != nullptr, "bj_cpu_scale_by", "scale is NULL");
  BJ_CHECK(n > 0, "bj_cpu_scale_by", "n must be > 0 (got %lld)", (long long)n);
  const float s = *scale;
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
  return BJ_OK;
}

// ---- bf16 conversions (mixed precision): rounding shared with CUDA via bertj_bf16.h ----

extern "C" int bj_cpu_to_bf16(uint16_t* out,   // (n) bf16 bits
                              const float* x,  // (n)
                              int64_t n, void* stream) {
  BJ_CHECK(out != nullptr, "bj_cpu_to_bf16", "out is NULL");
  BJ_CHECK(x != nullptr, "bj_cpu_to_bf16", "x is NULL");
  BJ_CHECK(n > 0, "bj_cpu_to_bf16", "n must be > 0 (got %lld)", (long long)n);
  constexpr int64_t kChunk = 4096;  // elements per task
  const int64_t tasks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t i0 = t * kChunk, i1 = i0 + kChunk < n ? i0 + kChunk : n;
    bj::to_bf16_bits(out + i0, x + i0, i1 - i0);
  }
  return BJ_OK;
}

extern "C" int bj_cpu_from_bf16(float* out,         // (n)
                                const uint16_t* x,  // (n) bf16 bits
                                int64_t n, void* stream) {
  BJ_CHECK(out != nullptr, "bj_cpu_from_bf16", "out is NULL");
  BJ_CHECK(x != nullptr, "bj_cpu_from_bf16", "x is NULL");
  BJ_CHECK(n > 0, "bj_cpu_from_bf16", "n must be > 0 (got %lld)", (long long)n);
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t i = 0; i < n; ++i) out[i] = bj_bf16_bits_to_f32(x[i]);
  return BJ_OK;
}
