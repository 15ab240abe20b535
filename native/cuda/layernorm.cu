// Layer norm with a fused residual add (BERT's post-LN), on the GPU.
//
// Forward, per row n of N (one warp per row, 8 rows per 256-thread block):
//   h = x + residual (residual may be NULL); mean = sum(h)/C; var = sum((h - mean)^2)/C
//   (both accumulated in double, two passes, as on the CPU); rstd = 1/sqrt(var + eps)
//   out = (h - mean) * rstd * gamma + beta; saves mean, rstd and (hsave != NULL) h.
//   out may alias x: each lane reads its elements of x before writing them.
// Backward (g = dout * gamma, xhat = (h - mean) * rstd):
//   dh = rstd * (g - mean(g) - xhat * mean(g * xhat))     activation gradient ("=")
//   dgamma += sum_n dout * xhat; dbeta += sum_n dout       parameter gradients ("+=")
// The parameter gradients run first (k_colreduce: fixed order, double partials, deterministic,
// no scratch), then the row kernel, so dh may alias dout.
//
// Fast path: C % 4 == 0, C <= 1024 and 16-byte aligned pointers keep the row in registers
// (float4, up to 8 per lane); otherwise a scalar path re-reads the row (L1/L2 hits).
#include <cmath>

#include "common.cuh"

namespace {
constexpr int kRowsPerBlock = 8;
constexpr int kMaxV4 = 8;  // float4 per lane in the register path: C <= 32 * 4 * 8 = 1024

__global__ void __launch_bounds__(256)
    k_ln_fwd_vec(float* out, float* mean, float* rstd, float* hsave, const float* x,
                 const float* residual, const float* gamma, const float* beta, int N, int C,
                 float eps) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= N) return;  // whole warp
  const int C4 = C >> 2;
  const float4* x4 = reinterpret_cast<const float4*>(x + (int64_t)row * C);
  const float4* r4 = residual ? reinterpret_cast<const float4*>(residual + (int64_t)row * C)
                              : nullptr;
  float4* h4 = hsave ? reinterpret_cast<float4*>(hsave + (int64_t)row * C) : nullptr;
  float4 hv[kMaxV4];
  double sum = 0.0;
#pragma unroll
  for (int k = 0; k < kMaxV4; ++k) {
    const int c4 = lane + 32 * k;
    if (c4 < C4) {
      float4 h = x4[c4];
      if (r4) {
        const float4 r = r4[c4];
        h.x += r.x;
        h.y += r.y;
        h.z += r.z;
        h.w += r.w;
      }
      hv[k] = h;
      if (h4) h4[c4] = h;
      sum += (double)h.x;
      sum += (double)h.y;
      sum += (double)h.z;
      sum += (double)h.w;
    }
  }
  sum = bjc::warp_sum(sum);
  const float m = (float)(sum / C);
  double ss = 0.0;
#pragma unroll
  for (int k = 0; k < kMaxV4; ++k) {
    if (lane + 32 * k < C4) {
      const double a = (double)hv[k].x - m, b = (double)hv[k].y - m;
      const double c = (double)hv[k].z - m, d = (double)hv[k].w - m;
      ss += a * a;
      ss += b * b;
      ss += c * c;
      ss += d * d;
    }
  }
  ss = bjc::warp_sum(ss);
  const float s = (float)(1.0 / sqrt(ss / C + (double)eps));
  float4* o4 = reinterpret_cast<float4*>(out + (int64_t)row * C);
  const float4* g4 = reinterpret_cast<const float4*>(gamma);
  const float4* b4 = reinterpret_cast<const float4*>(beta);
#pragma unroll
  for (int k = 0; k < kMaxV4; ++k) {
    const int c4 = lane + 32 * k;
    if (c4 < C4) {
      const float4 g = g4[c4], b = b4[c4], h = hv[k];
      o4[c4] = make_float4((h.x - m) * s * g.x + b.x, (h.y - m) * s * g.y + b.y,
                           (h.z - m) * s * g.z + b.z, (h.w - m) * s * g.w + b.w);
    }
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

__global__ void __launch_bounds__(256)
    k_ln_fwd_gen(float* out, float* mean, float* rstd, float* hsave, const float* x,
                 const float* residual, const float* gamma, const float* beta, int N, int C,
                 float eps) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= N) return;
  const float* xr = x + (int64_t)row * C;
  const float* rr = residual ? residual + (int64_t)row * C : nullptr;
  float* hr = hsave ? hsave + (int64_t)row * C : nullptr;
  double sum = 0.0;
  for (int c = lane; c < C; c += 32) {
    const float h = rr ? xr[c] + rr[c] : xr[c];
    if (hr) hr[c] = h;
    sum += (double)h;
  }
  sum = bjc::warp_sum(sum);
  const float m = (float)(sum / C);
  double ss = 0.0;
  for (int c = lane; c < C; c += 32) {
    const float h = rr ? xr[c] + rr[c] : xr[c];
    const double d = (double)h - m;
    ss += d * d;
  }
  ss = bjc::warp_sum(ss);
  const float s = (float)(1.0 / sqrt(ss / C + (double)eps));
  float* o = out + (int64_t)row * C;
  for (int c = lane; c < C; c += 32) {
    const float h = rr ? xr[c] + rr[c] : xr[c];
    o[c] = (h - m) * s * gamma[c] + beta[c];
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

__global__ void __launch_bounds__(256)
    k_ln_bwd_vec(float* dh, const float* dout, const float* h, const float* mean,
                 const float* rstd, const float* gamma, int N, int C) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= N) return;
  const int C4 = C >> 2;
  const float4* d4 = reinterpret_cast<const float4*>(dout + (int64_t)row * C);
  const float4* h4 = reinterpret_cast<const float4*>(h + (int64_t)row * C);
  const float4* g4 = reinterpret_cast<const float4*>(gamma);
  const float m = mean[row], s = rstd[row];
  float4 gg[kMaxV4], xh[kMaxV4];
  double sg = 0.0, sgx = 0.0;
#pragma unroll
  for (int k = 0; k < kMaxV4; ++k) {
    const int c4 = lane + 32 * k;
    if (c4 < C4) {
      const float4 d = d4[c4], hh = h4[c4], ga = g4[c4];
      gg[k] = make_float4(d.x * ga.x, d.y * ga.y, d.z * ga.z, d.w * ga.w);
      xh[k] = make_float4((hh.x - m) * s, (hh.y - m) * s, (hh.z - m) * s, (hh.w - m) * s);
      sg += (double)gg[k].x;
      sg += (double)gg[k].y;
      sg += (double)gg[k].z;
      sg += (double)gg[k].w;
      sgx += (double)gg[k].x * xh[k].x;
      sgx += (double)gg[k].y * xh[k].y;
      sgx += (double)gg[k].z * xh[k].z;
      sgx += (double)gg[k].w * xh[k].w;
    }
  }
  sg = bjc::warp_sum(sg);
  sgx = bjc::warp_sum(sgx);
  const float mg = (float)(sg / C), mgx = (float)(sgx / C);
  float4* o4 = reinterpret_cast<float4*>(dh + (int64_t)row * C);
#pragma unroll
  for (int k = 0; k < kMaxV4; ++k) {
    const int c4 = lane + 32 * k;
    if (c4 < C4) {
      const float4 g = gg[k], x = xh[k];
      o4[c4] = make_float4(s * (g.x - mg - x.x * mgx), s * (g.y - mg - x.y * mgx),
                           s * (g.z - mg - x.z * mgx), s * (g.w - mg - x.w * mgx));
    }
  }
}

__global__ void __launch_bounds__(256)
    k_ln_bwd_gen(float* dh, const float* dout, const float* h, const float* mean,
                 const float* rstd, const float* gamma, int N, int C) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= N) return;
  const float* g = dout + (int64_t)row * C;
  const float* hr = h + (int64_t)row * C;
  float* d = dh + (int64_t)row * C;
  const float m = mean[row], s = rstd[row];
  double sg = 0.0, sgx = 0.0;
  for (int c = lane; c < C; c += 32) {
    const float gg = g[c] * gamma[c];
    sg += (double)gg;
    sgx += (double)gg * ((hr[c] - m) * s);
  }
  sg = bjc::warp_sum(sg);
  sgx = bjc::warp_sum(sgx);
  const float mg = (float)(sg / C), mgx = (float)(sgx / C);
  // Reads g[c], hr[c] before writing d[c] in the same thread: dh may alias dout.
  for (int c = lane; c < C; c += 32) {
    const float xhat = (hr[c] - m) * s;
    d[c] = s * (g[c] * gamma[c] - mg - xhat * mgx);
  }
}

// dgamma[c] += sum_r dout[r, c] * xhat[r, c];  dbeta[c] += sum_r dout[r, c]
struct LnParamGradOp {
  float* dgamma;
  float* dbeta;
  const float* dout;
  const float* h;
  const float* mean;
  const float* rstd;
  int C;
  __device__ void row(int r, int c, double (&acc)[2]) const {
    const int64_t i = (int64_t)r * C + c;
    const float g = dout[i];
    const float xhat = (h[i] - mean[r]) * rstd[r];
    acc[0] += (double)g * xhat;
    acc[1] += (double)g;
  }
  __device__ void finish(int c, const double (&s)[2]) const {
    dgamma[c] += (float)s[0];
    dbeta[c] += (float)s[1];
  }
};
}  // namespace

extern "C" int bj_cuda_layernorm_forward(float* out,             // (N, C), may alias x
                                         float* mean,            // (N)
                                         float* rstd,            // (N)
                                         float* hsave,           // (N, C) or NULL
                                         const float* x,         // (N, C)
                                         const float* residual,  // (N, C) or NULL
                                         const float* gamma,     // (C)
                                         const float* beta,      // (C)
                                         int N, int C, float eps, void* stream) {
  const char* op = "bj_cuda_layernorm_forward";
  BJ_CHECK(out != nullptr && x != nullptr, "bj_cuda_layernorm_forward", "out or x is NULL");
  BJ_CHECK(mean != nullptr && rstd != nullptr, "bj_cuda_layernorm_forward",
           "mean or rstd is NULL");
  BJ_CHECK(gamma != nullptr && beta != nullptr, "bj_cuda_layernorm_forward",
           "gamma or beta is NULL");
  BJ_CHECK(N > 0, "bj_cuda_layernorm_forward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cuda_layernorm_forward", "C must be > 0 (got %d)", C);
  BJ_CHECK(eps >= 0.0f && std::isfinite(eps), "bj_cuda_layernorm_forward",
           "eps must be finite and >= 0 (got %g)", (double)eps);
  const bool vec = C % 4 == 0 && C <= 32 * 4 * kMaxV4 && bjc::aligned16(out) &&
                   bjc::aligned16(hsave) && bjc::aligned16(x) && bjc::aligned16(residual) &&
                   bjc::aligned16(gamma) && bjc::aligned16(beta);
  const unsigned blocks = (unsigned)((N + kRowsPerBlock - 1) / kRowsPerBlock);
  auto kern = vec ? &k_ln_fwd_vec : &k_ln_fwd_gen;
  BJ_LAUNCH(kern, blocks, 32 * kRowsPerBlock, 0, bjc::as_stream(stream), out, mean, rstd, hsave,
            x, residual, gamma, beta, N, C, eps);
  return bjc::check_launch(op);
}

extern "C" int bj_cuda_layernorm_backward(float* dh,           // (N, C), "="
                                          float* dgamma,       // (C), +=
                                          float* dbeta,        // (C), +=
                                          const float* dout,   // (N, C)
                                          const float* h,      // (N, C), the saved input
                                          const float* mean,   // (N)
                                          const float* rstd,   // (N)
                                          const float* gamma,  // (C)
                                          int N, int C, void* stream) {
  const char* op = "bj_cuda_layernorm_backward";
  BJ_CHECK(dh != nullptr && dout != nullptr && h != nullptr, "bj_cuda_layernorm_backward",
           "dh, dout or h is NULL");
  BJ_CHECK(dgamma != nullptr && dbeta != nullptr, "bj_cuda_layernorm_backward",
           "dgamma or dbeta is NULL");
  BJ_CHECK(mean != nullptr && rstd != nullptr && gamma != nullptr, "bj_cuda_layernorm_backward",
           "mean, rstd or gamma is NULL");
  BJ_CHECK(N > 0, "bj_cuda_layernorm_backward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cuda_layernorm_backward", "C must be > 0 (got %d)", C);
  // Parameter gradients first: dh may alias dout.
  BJ_TRY(bjc::launch_colreduce<2>(op, LnParamGradOp{dgamma, dbeta, dout, h, mean, rstd, C}, N, C,
                                  1, stream));
  const bool vec = C % 4 == 0 && C <= 32 * 4 * kMaxV4 && bjc::aligned16(dh) &&
                   bjc::aligned16(dout) && bjc::aligned16(h) && bjc::aligned16(gamma);
  const unsigned blocks = (unsigned)((N + kRowsPerBlock - 1) / kRowsPerBlock);
  auto kern = vec ? &k_ln_bwd_vec : &k_ln_bwd_gen;
  BJ_LAUNCH(kern, blocks, 32 * kRowsPerBlock, 0, bjc::as_stream(stream), dh, dout, h, mean, rstd,
            gamma, N, C);
  return bjc::check_launch(op);
}
