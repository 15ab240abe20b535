// Bias add and the exact (erf) GELU of BertIntermediate, fused with its bias.
//
//   bias_add:            x (N, C) += bias (C)
//   bias_backward:       dbias (C) += sum over rows of dout (N, C)           ("+=", parameter)
//   bias_gelu_forward:   pre = x + bias;  out = gelu(pre) = 0.5 * pre * (1 + erf(pre / sqrt(2)))
//   bias_gelu_backward:  dpre = dout * gelu'(pre)                             ("=", activation)
//                        gelu'(x) = 0.5 * (1 + erf(x / sqrt(2))) + x * exp(-x^2 / 2) / sqrt(2 pi)
//                        dbias += column sums of dpre                         ("+=", parameter)
//
// Determinism: elementwise parts are row-parallel; column sums are reduced per column block of
// kColBlock channels (one thread per block, rows in order, double partial sums).
#include <cmath>

#include "common.h"

namespace {
constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

inline float gelu(float x) { return 0.5f * x * (1.0f + std::erf(x * kInvSqrt2)); }

inline float gelu_grad(float x) {
  return 0.5f * (1.0f + std::erf(x * kInvSqrt2)) + x * std::exp(-0.5f * x * x) * kInvSqrt2Pi;
}

// dbias (C) += column sums of d (N, C); deterministic for any thread count.
void column_sums_add(float* dbias, const float* d, int N, int C) {
  const int nblocks = (C + bj::kColBlock - 1) / bj::kColBlock;
#pragma omp parallel for schedule(static, 1) if ((int64_t)N * C >= bj::kParallelMin)
  for (int blk = 0; blk < nblocks; ++blk) {
    const int c0 = blk * bj::kColBlock;
    const int c1 = c0 + bj::kColBlock < C ? c0 + bj::kColBlock : C;
    double acc[bj::kColBlock] = {0.0};  // partial sums of this block (stack scratch)
    for (int n = 0; n < N; ++n) {
      const float* row = d + (int64_t)n * C;
      for (int c = c0; c < c1; ++c) acc[c - c0] += row[c];
    }
    for (int c = c0; c < c1; ++c) dbias[c] += (float)acc[c - c0];
  }
}
}  // namespace

extern "C" int bj_cpu_bias_add(float* x,           // (N, C)
                               const float* bias,  // (C)
                               int N, int C, void* stream) {
  BJ_CHECK(x != nullptr && bias != nullptr, "bj_cpu_bias_add", "x or bias is NULL");
  BJ_CHECK(N > 0, "bj_cpu_bias_add", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cpu_bias_add", "C must be > 0 (got %d)", C);
#pragma omp parallel for if ((int64_t)N * C >= bj::kParallelMin)
  for (int n = 0; n < N; ++n) {
    float* row = x + (int64_t)n * C;
    for (int c = 0; c < C; ++c) row[c] += bias[c];
  }
  return BJ_OK;
}

extern "C" int bj_cpu_bias_backward(float* dbias,       // (C), +=
                                    const float* dout,  // (N, C)
                                    int N, int C, void* stream) {
  BJ_CHECK(dbias != nullptr && dout != nullptr, "bj_cpu_bias_backward", "dbias or dout is NULL");
  BJ_CHECK(N > 0, "bj_cpu_bias_backward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cpu_bias_backward", "C must be > 0 (got %d)", C);
  column_sums_add(dbias, dout, N, C);
  return BJ_OK;
}

extern "C" int bj_cpu_bias_gelu_forward(float* out,         // (N, C), may alias x
                                        float* pre,         // (N, C), may alias x
                                        const float* x,     // (N, C)
                                        const float* bias,  // (C) or NULL
                                        int N, int C, void* stream) {
  BJ_CHECK(out != nullptr && pre != nullptr && x != nullptr, "bj_cpu_bias_gelu_forward",
           "out, pre or x is NULL");
  BJ_CHECK(N > 0, "bj_cpu_bias_gelu_forward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cpu_bias_gelu_forward", "C must be > 0 (got %d)", C);
#pragma omp parallel for if ((int64_t)N * C >= bj::kParallelMin)
  for (int n = 0; n < N; ++n) {
    const int64_t base = (int64_t)n * C;
    for (int c = 0; c < C; ++c) {
      const float p = bias ? x[base + c] + bias[c] : x[base + c];
      pre[base + c] = p;
      out[base + c] = gelu(p);
    }
  }
  return BJ_OK;
}

extern "C" int bj_cpu_bias_gelu_backward(float* dpre,        // (N, C), "=", may alias dout
                                         float* dbias,       // (C), +=, or NULL
                                         const float* dout,  // (N, C)
                                         const float* pre,   // (N, C)
                                         int N, int C, void* stream) {
  BJ_CHECK(dpre != nullptr && dout != nullptr && pre != nullptr, "bj_cpu_bias_gelu_backward",
           "dpre, dout or pre is NULL");
  BJ_CHECK(N > 0, "bj_cpu_bias_gelu_backward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cpu_bias_gelu_backward", "C must be > 0 (got %d)", C);
  const int64_t n = (int64_t)N * C;
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t i = 0; i < n; ++i) dpre[i] = dout[i] * gelu_grad(pre[i]);
  if (dbias != nullptr) column_sums_add(dbias, dpre, N, C);
  return BJ_OK;
}
