// tanh of the pooler (BertPooler: tanh(W h_CLS + b); the GEMM and bias are separate ops).
//
//   forward:  out = tanh(x)                    (may alias x)
//   backward: dx = dout * (1 - out^2)          activation gradient, written ("="), may alias dout
//
// Elementwise, so the result does not depend on the thread count.
#include <cmath>

#include "common.h"

extern "C" int bj_cpu_tanh_forward(float* out,      // (n), may alias x
                                   const float* x,  // (n)
                                   int64_t n, void* stream) {
  BJ_CHECK(out != nullptr && x != nullptr, "bj_cpu_tanh_forward", "out or x is NULL");
  BJ_CHECK(n > 0, "bj_cpu_tanh_forward", "n must be > 0 (got %lld)", (long long)n);
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(x[i]);
  return BJ_OK;
}

extern "C" int bj_cpu_tanh_backward(float* dx,          // (n), "=", may alias dout
                                    const float* dout,  // (n)
                                    const float* out,   // (n), the saved forward output
                                    int64_t n, void* stream) {
  BJ_CHECK(dx != nullptr && dout != nullptr && out != nullptr, "bj_cpu_tanh_backward",
           "dx, dout or out is NULL");
  BJ_CHECK(n > 0, "bj_cpu_tanh_backward", "n must be > 0 (got %lld)", (long long)n);
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] = dout[i] * (1.0f - out[i] * out[i]);
  return BJ_OK;
}
