// Memory helpers on host buffers: fill, axpy, scale_by, to_bf16, from_bf16, gather_rows.
//
//   fill:     x[i] = value
//   axpy:     y[i] += alpha * x[i]
//   scale_by: x[i] *= scale[0]   (scale points at one float, e.g. a clip factor from clip_scale)
//   gather_rows: out[r] = in[idx[r]] (rows of C floats), zeros where idx[r] < 0
//
// Elementwise, so the result does not depend on the thread count. No gradients here.
#include <cstring>

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
  // fixed chunks of kParallelMin elements (one span each; elementwise, so any split is exact)
  const int64_t chunks = (n + bj::kParallelMin - 1) / bj::kParallelMin;
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t lo = c * bj::kParallelMin;
    bj::to_bf16_span(out + lo, x + lo, n - lo < bj::kParallelMin ? n - lo : bj::kParallelMin);
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

// ---- row gather (padding removal): out[r] = in[idx[r]], or zeros for idx[r] < 0 ----

extern "C" int bj_cpu_gather_rows(float* out,           // (M, C)
                                  const float* in,      // (n_in, C)
                                  const int32_t* idx,   // (M)
                                  int M, int C, int n_in, void* stream) {
  BJ_CHECK(out != nullptr, "bj_cpu_gather_rows", "out is NULL");
  BJ_CHECK(in != nullptr, "bj_cpu_gather_rows", "in is NULL");
  BJ_CHECK(idx != nullptr, "bj_cpu_gather_rows", "idx is NULL");
  BJ_CHECK(M > 0 && C > 0 && n_in > 0, "bj_cpu_gather_rows",
           "M, C, n_in must be > 0 (got %d, %d, %d)", M, C, n_in);
  const uintptr_t o0 = reinterpret_cast<uintptr_t>(out), i0 = reinterpret_cast<uintptr_t>(in);
  const uintptr_t o1 = o0 + (uintptr_t)M * C * sizeof(float);
  const uintptr_t i1 = i0 + (uintptr_t)n_in * C * sizeof(float);
  BJ_CHECK(o1 <= i0 || i1 <= o0, "bj_cpu_gather_rows", "out overlaps in");
  for (int r = 0; r < M; ++r)  // every index first: nothing is written on an error
    BJ_CHECK(idx[r] < n_in, "bj_cpu_gather_rows", "idx[%d] = %d is >= n_in = %d", r, idx[r],
             n_in);
  const int64_t total = (int64_t)M * C;
#pragma omp parallel for if (total >= bj::kParallelMin)
  for (int r = 0; r < M; ++r) {
    float* dst = out + (int64_t)r * C;
    const int32_t j = idx[r];
    if (j >= 0) {
      std::memcpy(dst, in + (int64_t)j * C, (size_t)C * sizeof(float));
    } else {
      std::memset(dst, 0, (size_t)C * sizeof(float));
    }
  }
  return BJ_OK;
}
