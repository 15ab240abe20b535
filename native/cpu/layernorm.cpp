// Layer norm with a fused residual add (BERT's post-LN: LayerNorm(x + residual)).
//
// Forward, per row n of N:
//   h = x + residual                      (residual may be NULL: h = x)
//   mean = sum(h) / C;  var = sum((h - mean)^2) / C   (biased; both accumulated in double)
//   rstd = 1 / sqrt(var + eps);  xhat = (h - mean) * rstd
//   out = xhat * gamma + beta
// saving mean (N), rstd (N) and, when hsave != NULL, h (N, C) for the backward.
//
// Backward (g = dout * gamma):
//   dh = rstd * (g - mean(g) - xhat * mean(g * xhat))   activation gradient, written ("=")
//   dgamma += sum_n dout * xhat;  dbeta += sum_n dout    parameter gradients, accumulated ("+=")
// dh is the gradient of both x and residual.
//
// dropout_layernorm_{forward,backward}: the same with dropout fused in front of the residual add
// (BERT's BertSelfOutput / BertOutput): h = dropout(y) + residual, dropout(y)[i] = keep_i ? y[i] *
// scale : 0 with keep_i = bj_dropout_uniform(seed, offset + i) >= p, scale = 1 / (1 - p) (fp32),
// i = n * C + c. The backward also writes dy = keep ? dh * scale : 0 (in the row loop of dh).
// Same bits as dropout then layer norm (and layer norm backward then dropout backward):
// the same float operations in the same order; the draws are made per row, kDrawChunk at a time,
// into a stack buffer.
//
// bf16 side outputs (mixed precision): dropout_layernorm_forward's out_low and
// dropout_layernorm_backward's dy_low, when not NULL, get the bf16 bits of the row of out (dy)
// just written, with bj::to_bf16_span (the loop of to_bf16: the same bits), while the row is in L1.
//
// dropout_layernorm_backward's dbias_y (NULL = none; needs dy) += column sums of dy, the bias
// gradient of the Linear that produced y: bj_cpu_bias_backward on dy once the row pass has written
// it (dy is only known after each row's statistics, while the dgamma/dbeta pass must run before
// the rows since dh may alias dout), so the same bits as bias_backward afterwards.
//
// Determinism: rows are independent; dgamma/dbeta (and dbias_y) are reduced per column block of
// kColBlock channels, one thread per block walking rows in order with double partial sums, so the
// bits do not depend on the thread count.
#include <cmath>

#include "common.h"

namespace {
constexpr int kDrawChunk = 1024;  // dropout draws per stack buffer (4 KiB)

// u (m) = the dropout uniforms of elements idx0 .. idx0 + m - 1.
void draw(float* u, uint64_t seed, uint64_t idx0, int64_t m) {
  if (bj::use_avx2()) bj::philox_uniforms_avx2(u, seed, idx0, m);
  else bj::philox_uniforms_sse(u, seed, idx0, m);
}

// The layer norm backward after the argument checks; with dy != NULL also dy = dh * keep / (1 - p)
// (dropout_layernorm_backward).
// With dy_low != NULL (needs dy) also dy_low = bf16 bits of dy.
void backward_rows(float* dh, float* dy, uint16_t* dy_low, float* dgamma, float* dbeta,
                   const float* dout, const float* h, const float* mean, const float* rstd,
                   const float* gamma, int N, int C, float p, uint64_t seed, uint64_t offset) {
  const float scale = 1.0f / (1.0f - p);
  const bool par = (int64_t)N * C >= bj::kParallelMin;

  // Parameter gradients first (dh may alias dout): column blocks, rows in order.
  const int nblocks = (C + bj::kColBlock - 1) / bj::kColBlock;
#pragma omp parallel for schedule(static, 1) if (par)
  for (int blk = 0; blk < nblocks; ++blk) {
    const int c0 = blk * bj::kColBlock;
    const int c1 = c0 + bj::kColBlock < C ? c0 + bj::kColBlock : C;
    double dg[bj::kColBlock] = {0.0};  // partial sums of this block (stack scratch)
    double db[bj::kColBlock] = {0.0};
    for (int n = 0; n < N; ++n) {
      const float* g = dout + (int64_t)n * C;
      const float* hr = h + (int64_t)n * C;
      const float m = mean[n], s = rstd[n];
      for (int c = c0; c < c1; ++c) {
        const float xhat = (hr[c] - m) * s;
        dg[c - c0] += (double)g[c] * xhat;
        db[c - c0] += g[c];
      }
    }
    for (int c = c0; c < c1; ++c) {
      dgamma[c] += (float)dg[c - c0];
      dbeta[c] += (float)db[c - c0];
    }
  }

  // Activation gradient, row by row.
#pragma omp parallel for if (par)
  for (int n = 0; n < N; ++n) {
    const float* g = dout + (int64_t)n * C;  // (C)
    const float* hr = h + (int64_t)n * C;    // (C)
    float* d = dh + (int64_t)n * C;          // (C)
    const float m = mean[n], s = rstd[n];
    double sum_g = 0.0, sum_gx = 0.0;
    for (int c = 0; c < C; ++c) {
      const float gg = g[c] * gamma[c];
      sum_g += gg;
      sum_gx += (double)gg * ((hr[c] - m) * s);
    }
    const float mg = (float)(sum_g / C), mgx = (float)(sum_gx / C);
    for (int c = 0; c < C; ++c) {
      const float xhat = (hr[c] - m) * s;
      d[c] = s * (g[c] * gamma[c] - mg - xhat * mgx);
    }
    if (dy == nullptr) continue;
    // dropout_layernorm: dy = dh * keep / (1 - p), while the row of dh is in L1. dy may alias
    // dout: this row of dout has been read.
    float* o = dy + (int64_t)n * C;  // (C)
    if (p == 0.0f) {
      for (int c = 0; c < C; ++c) o[c] = d[c];
    } else {
      for (int c0 = 0; c0 < C; c0 += kDrawChunk) {
        const int mm = C - c0 < kDrawChunk ? C - c0 : kDrawChunk;
        float u[kDrawChunk];  // (mm) stack scratch: this chunk's uniforms
        draw(u, seed, offset + (uint64_t)n * (uint64_t)C + (uint64_t)c0, mm);
        for (int j = 0; j < mm; ++j) o[c0 + j] = u[j] >= p ? d[c0 + j] * scale : 0.0f;
      }
    }
    if (dy_low != nullptr) bj::to_bf16_span(dy_low + (int64_t)n * C, o, C);
  }
}

// The layer norm forward after the argument checks; with out_low != NULL also out_low = bf16 bits
// of out (dropout_layernorm_forward with p = 0).
void forward_rows(float* out, uint16_t* out_low, float* mean, float* rstd, float* hsave,
                  const float* x, const float* residual, const float* gamma, const float* beta,
                  int N, int C, float eps) {
#pragma omp parallel for if ((int64_t)N * C >= bj::kParallelMin)
  for (int n = 0; n < N; ++n) {
    const float* xr = x + (int64_t)n * C;                                 // (C)
    const float* rr = residual ? residual + (int64_t)n * C : nullptr;     // (C)
    float* hr = hsave ? hsave + (int64_t)n * C : nullptr;                 // (C)
    float* o = out + (int64_t)n * C;                                      // (C)
    double sum = 0.0;
    for (int c = 0; c < C; ++c) {
      const float h = rr ? xr[c] + rr[c] : xr[c];
      if (hr) hr[c] = h;
      sum += h;
    }
    const float m = (float)(sum / C);
    double ss = 0.0;
    for (int c = 0; c < C; ++c) {
      const float h = rr ? xr[c] + rr[c] : xr[c];
      const double d = (double)h - m;
      ss += d * d;
    }
    const float s = (float)(1.0 / std::sqrt(ss / C + (double)eps));
    // Reads x (and residual) at c before writing out at c: safe when out aliases x.
    for (int c = 0; c < C; ++c) {
      const float h = rr ? xr[c] + rr[c] : xr[c];
      o[c] = (h - m) * s * gamma[c] + beta[c];
    }
    if (out_low != nullptr) bj::to_bf16_span(out_low + (int64_t)n * C, o, C);
    mean[n] = m;
    rstd[n] = s;
  }
}
}  // namespace

extern "C" int bj_cpu_layernorm_forward(float* out,             // (N, C), may alias x
                                        float* mean,            // (N)
                                        float* rstd,            // (N)
                                        float* hsave,           // (N, C) or NULL
                                        const float* x,         // (N, C)
                                        const float* residual,  // (N, C) or NULL
                                        const float* gamma,     // (C)
                                        const float* beta,      // (C)
                                        int N, int C, float eps, void* stream) {
  BJ_CHECK(out != nullptr && x != nullptr, "bj_cpu_layernorm_forward", "out or x is NULL");
  BJ_CHECK(mean != nullptr && rstd != nullptr, "bj_cpu_layernorm_forward",
           "mean or rstd is NULL");
  BJ_CHECK(gamma != nullptr && beta != nullptr, "bj_cpu_layernorm_forward",
           "gamma or beta is NULL");
  BJ_CHECK(N > 0, "bj_cpu_layernorm_forward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cpu_layernorm_forward", "C must be > 0 (got %d)", C);
  BJ_CHECK(eps >= 0.0f && std::isfinite(eps), "bj_cpu_layernorm_forward",
           "eps must be finite and >= 0 (got %g)", (double)eps);
  forward_rows(out, nullptr, mean, rstd, hsave, x, residual, gamma, beta, N, C, eps);
  return BJ_OK;
}

extern "C" int bj_cpu_layernorm_backward(float* dh,           // (N, C), "="
                                         float* dgamma,       // (C), +=
                                         float* dbeta,        // (C), +=
                                         const float* dout,   // (N, C)
                                         const float* h,      // (N, C), the saved input
                                         const float* mean,   // (N)
                                         const float* rstd,   // (N)
                                         const float* gamma,  // (C)
                                         int N, int C, void* stream) {
  BJ_CHECK(dh != nullptr && dout != nullptr && h != nullptr, "bj_cpu_layernorm_backward",
           "dh, dout or h is NULL");
  BJ_CHECK(dgamma != nullptr && dbeta != nullptr, "bj_cpu_layernorm_backward",
           "dgamma or dbeta is NULL");
  BJ_CHECK(mean != nullptr && rstd != nullptr && gamma != nullptr, "bj_cpu_layernorm_backward",
           "mean, rstd or gamma is NULL");
  BJ_CHECK(N > 0, "bj_cpu_layernorm_backward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cpu_layernorm_backward", "C must be > 0 (got %d)", C);
  backward_rows(dh, nullptr, nullptr, dgamma, dbeta, dout, h, mean, rstd, gamma, N, C, 0.0f, 0,
                0);
  return BJ_OK;
}

extern "C" int bj_cpu_dropout_layernorm_forward(float* out,             // (N, C), may alias y
                                                uint16_t* out_low,      // (N, C) bf16 or NULL
                                                float* mean,            // (N)
                                                float* rstd,            // (N)
                                                float* hsave,           // (N, C) or NULL
                                                const float* y,         // (N, C)
                                                const float* residual,  // (N, C) or NULL
                                                const float* gamma,     // (C)
                                                const float* beta,      // (C)
                                                int N, int C, float eps, float p, uint64_t seed,
                                                uint64_t offset, const bj_step_scalars* sc,
                                                void* stream) {
  if (sc != nullptr) seed = sc->seed;  // per-step scalars (bertj.h)
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cpu_dropout_layernorm_forward",
           "p must be in [0, 1) (got %g)", (double)p);
  BJ_CHECK(out != nullptr && y != nullptr, "bj_cpu_dropout_layernorm_forward",
           "out or y is NULL");
  BJ_CHECK(mean != nullptr && rstd != nullptr, "bj_cpu_dropout_layernorm_forward",
           "mean or rstd is NULL");
  BJ_CHECK(gamma != nullptr && beta != nullptr, "bj_cpu_dropout_layernorm_forward",
           "gamma or beta is NULL");
  BJ_CHECK(N > 0, "bj_cpu_dropout_layernorm_forward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cpu_dropout_layernorm_forward", "C must be > 0 (got %d)", C);
  BJ_CHECK(eps >= 0.0f && std::isfinite(eps), "bj_cpu_dropout_layernorm_forward",
           "eps must be finite and >= 0 (got %g)", (double)eps);
  if (p == 0.0f) {  // keeps every element: the layer norm alone
    forward_rows(out, out_low, mean, rstd, hsave, y, residual, gamma, beta, N, C, eps);
    return BJ_OK;
  }
  const float scale = 1.0f / (1.0f - p);

#pragma omp parallel for if ((int64_t)N * C >= bj::kParallelMin / 16)
  for (int n = 0; n < N; ++n) {
    const float* yr = y + (int64_t)n * C;                              // (C)
    const float* rr = residual ? residual + (int64_t)n * C : nullptr;  // (C)
    float* hr = hsave ? hsave + (int64_t)n * C : nullptr;              // (C)
    float* o = out + (int64_t)n * C;                                   // (C)
    // Pass 1: h = dropout(y) + residual, kept in the out row (reads y[c] before writing out[c],
    // so out may alias y), and its sum.
    double sum = 0.0;
    for (int c0 = 0; c0 < C; c0 += kDrawChunk) {
      const int m = C - c0 < kDrawChunk ? C - c0 : kDrawChunk;
      float u[kDrawChunk];  // (m) stack scratch: this chunk's uniforms
      draw(u, seed, offset + (uint64_t)n * (uint64_t)C + (uint64_t)c0, m);
      for (int j = 0; j < m; ++j) {
        const int c = c0 + j;
        const float d = u[j] >= p ? yr[c] * scale : 0.0f;
        const float h = rr ? d + rr[c] : d;
        o[c] = h;
        sum += h;
      }
    }
    const float mu = (float)(sum / C);
    double ss = 0.0;
    for (int c = 0; c < C; ++c) {
      const double d = (double)o[c] - mu;
      ss += d * d;
    }
    const float s = (float)(1.0 / std::sqrt(ss / C + (double)eps));
    for (int c = 0; c < C; ++c) {
      const float h = o[c];
      if (hr) hr[c] = h;
      o[c] = (h - mu) * s * gamma[c] + beta[c];
    }
    if (out_low != nullptr) bj::to_bf16_span(out_low + (int64_t)n * C, o, C);
    mean[n] = mu;
    rstd[n] = s;
  }
  return BJ_OK;
}

extern "C" int bj_cpu_dropout_layernorm_backward(float* dh,           // (N, C), "="
                                                 float* dy,           // (N, C), "=" or NULL
                                                 uint16_t* dy_low,    // (N, C) bf16 or NULL
                                                 float* dgamma,       // (C), +=
                                                 float* dbeta,        // (C), +=
                                                 float* dbias_y,      // (C), +=, or NULL
                                                 const float* dout,   // (N, C)
                                                 const float* h,      // (N, C), the saved h
                                                 const float* mean,   // (N)
                                                 const float* rstd,   // (N)
                                                 const float* gamma,  // (C)
                                                 int N, int C, float p, uint64_t seed,
                                                 uint64_t offset, const bj_step_scalars* sc,
                                                 void* stream) {
  if (sc != nullptr) seed = sc->seed;  // per-step scalars (bertj.h)
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cpu_dropout_layernorm_backward",
           "p must be in [0, 1) (got %g)", (double)p);
  BJ_CHECK(dh != nullptr && dout != nullptr && h != nullptr, "bj_cpu_dropout_layernorm_backward",
           "dh, dout or h is NULL");
  BJ_CHECK(dgamma != nullptr && dbeta != nullptr, "bj_cpu_dropout_layernorm_backward",
           "dgamma or dbeta is NULL");
  BJ_CHECK(mean != nullptr && rstd != nullptr && gamma != nullptr,
           "bj_cpu_dropout_layernorm_backward", "mean, rstd or gamma is NULL");
  BJ_CHECK(dy == nullptr || dy != dh, "bj_cpu_dropout_layernorm_backward",
           "dy must not alias dh");
  BJ_CHECK(dy_low == nullptr || dy != nullptr, "bj_cpu_dropout_layernorm_backward",
           "dy_low needs dy (dy is NULL)");
  BJ_CHECK(dbias_y == nullptr || dy != nullptr, "bj_cpu_dropout_layernorm_backward",
           "dbias_y needs dy (dy is NULL)");
  BJ_CHECK(N > 0, "bj_cpu_dropout_layernorm_backward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cpu_dropout_layernorm_backward", "C must be > 0 (got %d)", C);
  backward_rows(dh, dy, dy_low, dgamma, dbeta, dout, h, mean, rstd, gamma, N, C, p, seed,
                offset);
  // the Linear's bias gradient: bias_backward's column sums of the dy just written
  if (dbias_y != nullptr) return bj_cpu_bias_backward(dbias_y, dy, N, C, stream);
  return BJ_OK;
}
