// Bias add and the exact (erf) GELU of BertIntermediate, fused with its bias.
//
//   bias_add:            x (N, C) += bias (C)
//   bias_backward:       dbias (C) += sum over rows of dout (N, C)           ("+=", parameter)
//   bias_gelu_forward:   pre = x + bias;  out = gelu(pre) = 0.5 * pre * (1 + erf(pre / sqrt(2)))
//   bias_gelu_backward:  dpre = dout * gelu'(pre)                             ("=", activation)
//                        gelu'(x) = 0.5 * (1 + erf(x / sqrt(2))) + x * exp(-x^2 / 2) / sqrt(2 pi)
//                        dbias += column sums of dpre                         ("+=", parameter)
//
// bf16 side outputs (mixed precision): bias_gelu_forward's out_low and bias_gelu_backward's
// dpre_low, when not NULL, get the bf16 bits of each task's rows (elements) of out (dpre) right
// after the task wrote them, with bj::to_bf16_span (the loop of to_bf16: the same bits).
// Optional forward outputs (inference): pre may be NULL (x + bias is not stored), and out may be
// NULL when out_low is not (gelu goes to a per-thread buffer of one task's rows and only its bf16
// copy is stored: the same bits as out_low with out).
//
// Determinism: elementwise parts are row-parallel; column sums are reduced per column block of
// kColBlock channels (one thread per block, rows in order, double partial sums).
//
// The erf is vectorized (bj::Vec lanes, SSE4.2 or AVX2 + FMA picked at run time): for
// |z| < 0.5 the Taylor series erf(z) = 2/sqrt(pi) sum (-1)^n z^(2n+1) / (n! (2n+1)) to z^15
// (relative error < 1e-9 before rounding), beyond it 1 + erf(z) = 2 - erfc(|z|) (z > 0) or
// erfc(|z|) (z < 0) with bj::verfc_pos (relative error a few 1e-7), which keeps 1 + erf
// accurate in the negative tail where it would cancel. Max error of gelu and gelu' against the
// double formulas: a few 1e-7 relative (with an absolute floor of ~1e-7 around the zero of gelu').
#include <cmath>
#include <vector>

#include "common.h"

#pragma GCC diagnostic ignored "-Wpsabi"

namespace {
constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

// 1 + erf(z), lane-wise.
template <int W> BJ_INLINE typename bj::Vec<W>::f one_plus_erf(const typename bj::Vec<W>::f& z) {
  typedef typename bj::Vec<W>::f F;
  typedef typename bj::Vec<W>::i I;
  const F az = (F)((I)z & 0x7fffffff);
  // small |z|: Taylor, 2/sqrt(pi) * z * P(z^2)
  const F z2 = z * z;
  F p = bj::vsplat<W>(-1.0f / 75600.0f);
  p = p * z2 + 1.0f / 9360.0f;
  p = p * z2 + -1.0f / 1320.0f;
  p = p * z2 + 1.0f / 216.0f;
  p = p * z2 + -1.0f / 42.0f;
  p = p * z2 + 1.0f / 10.0f;
  p = p * z2 + -1.0f / 3.0f;
  p = p * z2 + 1.0f;
  const F small = 1.0f + (z * 1.12837916709551257390f) * p;
  // large |z|: erfc
  const F e = bj::verfc_pos<W>(az);
  const F large = z > 0.0f ? 2.0f - e : e;
  return az < 0.5f ? small : large;
}

template <int W> BJ_INLINE typename bj::Vec<W>::f gelu_v(const typename bj::Vec<W>::f& x) {
  return 0.5f * x * one_plus_erf<W>(x * kInvSqrt2);
}

template <int W> BJ_INLINE typename bj::Vec<W>::f gelu_grad_v(const typename bj::Vec<W>::f& x) {
  return 0.5f * one_plus_erf<W>(x * kInvSqrt2) +
         x * bj::vexp<W>(-0.5f * x * x) * kInvSqrt2Pi;
}

// Rows [0, rows) of the forward: pre = x + bias, out = gelu(pre), row r of each at r * C (the
// caller passes the task's first row). pre may be NULL (not stored). Element by element, pre is
// stored before out, so any aliasing of out / pre / x gives what the scalar loop gives.
template <int W>
BJ_INLINE void gelu_fwd_rows(float* out, float* pre, const float* x, const float* bias, int rows,
                             int C) {
  typedef typename bj::Vec<W>::f F;
  for (int n = 0; n < rows; ++n) {
    const int64_t base = (int64_t)n * C;
    int c = 0;
    for (; c + W <= C; c += W) {
      F v = bj::vload<W>(x + base + c);
      if (bias) v += bj::vload<W>(bias + c);
      if (pre) bj::vstore<W>(pre + base + c, v);
      bj::vstore<W>(out + base + c, gelu_v<W>(v));
    }
    if (c < C) {  // tail through a lane buffer
      float t[W] = {};
      for (int k = c; k < C; ++k) t[k - c] = bias ? x[base + k] + bias[k] : x[base + k];
      const F g = gelu_v<W>(bj::vload<W>(t));
      for (int k = c; k < C; ++k) {
        if (pre) pre[base + k] = t[k - c];
        out[base + k] = g[k - c];
      }
    }
  }
}

// dpre[i] = dout[i] * gelu'(pre[i]) over [i0, i1).
template <int W>
BJ_INLINE void gelu_bwd_range(float* dpre, const float* dout, const float* pre, int64_t i0,
                              int64_t i1) {
  typedef typename bj::Vec<W>::f F;
  int64_t i = i0;
  for (; i + W <= i1; i += W)
    bj::vstore<W>(dpre + i, bj::vload<W>(dout + i) * gelu_grad_v<W>(bj::vload<W>(pre + i)));
  if (i < i1) {
    float t[W] = {};
    for (int64_t k = i; k < i1; ++k) t[k - i] = pre[k];
    const F g = gelu_grad_v<W>(bj::vload<W>(t));
    for (int64_t k = i; k < i1; ++k) dpre[k] = dout[k] * g[k - i];
  }
}

void gelu_fwd_sse(float* out, float* pre, const float* x, const float* bias, int rows, int C) {
  gelu_fwd_rows<4>(out, pre, x, bias, rows, C);
}
BJ_TARGET_AVX2 void gelu_fwd_avx2(float* out, float* pre, const float* x, const float* bias,
                                  int rows, int C) {
  gelu_fwd_rows<8>(out, pre, x, bias, rows, C);
}
void gelu_bwd_sse(float* dpre, const float* dout, const float* pre, int64_t i0, int64_t i1) {
  gelu_bwd_range<4>(dpre, dout, pre, i0, i1);
}
BJ_TARGET_AVX2 void gelu_bwd_avx2(float* dpre, const float* dout, const float* pre, int64_t i0,
                                  int64_t i1) {
  gelu_bwd_range<8>(dpre, dout, pre, i0, i1);
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

extern "C" int bj_cpu_bias_gelu_forward(float* out,         // (N, C), may alias x, or NULL
                                        uint16_t* out_low,  // (N, C) bf16 or NULL
                                        float* pre,         // (N, C), may alias x, or NULL
                                        const float* x,     // (N, C)
                                        const float* bias,  // (C) or NULL
                                        int N, int C, void* stream) {
  BJ_CHECK(x != nullptr, "bj_cpu_bias_gelu_forward", "x is NULL");
  BJ_CHECK(out != nullptr || out_low != nullptr, "bj_cpu_bias_gelu_forward",
           "out and out_low are both NULL (at least one output is needed)");
  BJ_CHECK(N > 0, "bj_cpu_bias_gelu_forward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cpu_bias_gelu_forward", "C must be > 0 (got %d)", C);
  const bool avx2 = bj::use_avx2();
  constexpr int kRowsPerTask = 8;
  const int tasks = (N + kRowsPerTask - 1) / kRowsPerTask;
#pragma omp parallel if ((int64_t)N * C >= bj::kParallelMin)
  {
    // out == NULL: each thread's tasks compute gelu into this buffer, then only its bf16 copy
    // is stored (the same values, so the same bits as out_low with out)
    std::vector<float> buf(out == nullptr ? (size_t)kRowsPerTask * C : 0);
#pragma omp for
    for (int t = 0; t < tasks; ++t) {
      const int n0 = t * kRowsPerTask, n1 = n0 + kRowsPerTask < N ? n0 + kRowsPerTask : N;
      const int64_t i0 = (int64_t)n0 * C;
      float* o = out != nullptr ? out + i0 : buf.data();
      float* p = pre != nullptr ? pre + i0 : nullptr;
      if (avx2) gelu_fwd_avx2(o, p, x + i0, bias, n1 - n0, C);
      else gelu_fwd_sse(o, p, x + i0, bias, n1 - n0, C);
      if (out_low != nullptr) bj::to_bf16_span(out_low + i0, o, (int64_t)(n1 - n0) * C);
    }
  }
  return BJ_OK;
}

extern "C" int bj_cpu_bias_gelu_backward(float* dpre,        // (N, C), "=", may alias dout
                                         uint16_t* dpre_low, // (N, C) bf16 or NULL
                                         float* dbias,       // (C), +=, or NULL
                                         const float* dout,  // (N, C)
                                         const float* pre,   // (N, C)
                                         int N, int C, void* stream) {
  BJ_CHECK(dpre != nullptr && dout != nullptr && pre != nullptr, "bj_cpu_bias_gelu_backward",
           "dpre, dout or pre is NULL");
  BJ_CHECK(N > 0, "bj_cpu_bias_gelu_backward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cpu_bias_gelu_backward", "C must be > 0 (got %d)", C);
  const int64_t n = (int64_t)N * C;
  const bool avx2 = bj::use_avx2();
  constexpr int64_t kChunk = 4096;  // elements per task
  const int64_t tasks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t i0 = t * kChunk, i1 = i0 + kChunk < n ? i0 + kChunk : n;
    if (avx2) gelu_bwd_avx2(dpre, dout, pre, i0, i1);
    else gelu_bwd_sse(dpre, dout, pre, i0, i1);
    if (dpre_low != nullptr) bj::to_bf16_span(dpre_low + i0, dpre + i0, i1 - i0);
  }
  if (dbias != nullptr) column_sums_add(dbias, dpre, N, C);
  return BJ_OK;
}
