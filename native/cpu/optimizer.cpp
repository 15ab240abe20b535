// Optimizer ops: global gradient norm, torch-style clip factor, and AdamW.
//
//   sum_squares: out[0] = sum_i x[i]^2, accumulated in double. The range [0, n) is cut into
//                kChunks fixed chunks (their bounds depend on n only); each chunk is summed in
//                order and the partials are added in chunk order, so the bits do not depend on the
//                thread count. Within a chunk, kLanes interleaved double accumulators (element i
//                goes to lane i % kLanes, from the chunk start) are summed lane by lane and then
//                combined in a fixed order: a vectorizable loop, still one fixed order.
//   clip_scale:  scale[0] = min(1, max_norm / (sqrt(norm_sq[0]) + 1e-6)) (torch
//                clip_grad_norm_); a NaN norm gives a NaN scale (so the caller can see it).
//   adamw:       torch.optim.AdamW on one flat buffer, gradient g * (*grad_scale) (g untouched):
//                  p -= lr * wd * p                        for i in [decay_begin, decay_end)
//                  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//                  p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)
//                the bias corrections 1 - b^step in double, the rest in fp32. Updates p, m, v in
//                place (the optimizer state; no gradient is produced here). With p_low != NULL
//                each task then writes p_low = to_bf16(p) over its own elements (still in cache).
#include <cmath>

#include "common.h"

namespace {
constexpr int kChunks = 256;  // fixed partition of sum_squares: 2 KiB of stack partials
constexpr int kLanes = 8;     // independent accumulators per chunk

// sum of x[i]^2 over [0, n) in double, kLanes interleaved accumulators, fixed combination order.
double sum_sq_chunk(const float* x, int64_t n) {
  double acc[kLanes] = {0.0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += (double)x[i + l] * x[i + l];
  for (int l = 0; i + l < n; ++l) acc[l] += (double)x[i + l] * x[i + l];
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

constexpr int64_t kAdamChunk = 1 << 14;  // elements per AdamW task

struct AdamScalars {
  float gs, beta1, beta2, eps, step_size, bc2_sqrt;
};

// One AdamW span [i0, i1) with the weight-decay factor dec (1 = no decay).
void adamw_span(float* p, const float* g, float* m, float* v, int64_t i0, int64_t i1, float dec,
                const AdamScalars& s) {
  const float gs = s.gs, beta1 = s.beta1, beta2 = s.beta2, eps = s.eps;
  const float step_size = s.step_size, bc2_sqrt = s.bc2_sqrt;
  for (int64_t i = i0; i < i1; ++i) {
    const float gi = g[i] * gs;
    const float pi = p[i] * dec;
    const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / bc2_sqrt + eps;
    p[i] = pi - step_size * (mi / denom);
  }
}
}

extern "C" int bj_cpu_sum_squares(float* out,      // (1)
                                  const float* x,  // (n)
                                  int64_t n, void* stream) {
  BJ_CHECK(out != nullptr && x != nullptr, "bj_cpu_sum_squares", "out or x is NULL");
  BJ_CHECK(n > 0, "bj_cpu_sum_squares", "n must be > 0 (got %lld)", (long long)n);
  double partial[kChunks];  // (kChunks) stack scratch
  const int64_t chunk = (n + kChunks - 1) / kChunks;
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int c = 0; c < kChunks; ++c) {
    const int64_t lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
    partial[c] = lo < hi ? sum_sq_chunk(x + lo, hi - lo) : 0.0;
  }
  double total = 0.0;
  for (int c = 0; c < kChunks; ++c) total += partial[c];
  out[0] = (float)total;
  return BJ_OK;
}

extern "C" int bj_cpu_clip_scale(float* scale,          // (1)
                                 const float* norm_sq,  // (1)
                                 float max_norm, void* stream) {
  BJ_CHECK(scale != nullptr && norm_sq != nullptr, "bj_cpu_clip_scale",
           "scale or norm_sq is NULL");
  BJ_CHECK(max_norm > 0.0f, "bj_cpu_clip_scale", "max_norm must be > 0 (got %g)",
           (double)max_norm);
  const float c = max_norm / (std::sqrt(norm_sq[0]) + 1e-6f);
  scale[0] = c > 1.0f ? 1.0f : c;  // NaN stays NaN
  return BJ_OK;
}

extern "C" int bj_cpu_adamw(float* p,         // (n), updated in place
                            uint16_t* p_low,  // (n) bf16 of the updated p, or NULL
                            const float* g,   // (n)
                            float* m,         // (n), first moment, updated
                            float* v,         // (n), second moment, updated
                            int64_t n, int64_t decay_begin, int64_t decay_end, float lr,
                            float beta1, float beta2, float eps, float wd, int step,
                            const bj_step_scalars* sc,  // lr and step when not NULL (bertj.h)
                            const float* grad_scale,    // (1) or NULL = 1
                            void* stream) {
  if (sc != nullptr) {
    lr = sc->lr;
    step = sc->step;
  }
  BJ_CHECK(p != nullptr && g != nullptr && m != nullptr && v != nullptr, "bj_cpu_adamw",
           "p, g, m or v is NULL");
  BJ_CHECK(n > 0, "bj_cpu_adamw", "n must be > 0 (got %lld)", (long long)n);
  BJ_CHECK(0 <= decay_begin && decay_begin <= decay_end && decay_end <= n, "bj_cpu_adamw",
           "need 0 <= decay_begin <= decay_end <= n (got %lld, %lld, n = %lld)",
           (long long)decay_begin, (long long)decay_end, (long long)n);
  BJ_CHECK(lr >= 0.0f, "bj_cpu_adamw", "lr must be >= 0 (got %g)", (double)lr);
  BJ_CHECK(beta1 >= 0.0f && beta1 < 1.0f, "bj_cpu_adamw", "beta1 must be in [0, 1) (got %g)",
           (double)beta1);
  BJ_CHECK(beta2 >= 0.0f && beta2 < 1.0f, "bj_cpu_adamw", "beta2 must be in [0, 1) (got %g)",
           (double)beta2);
  BJ_CHECK(eps >= 0.0f, "bj_cpu_adamw", "eps must be >= 0 (got %g)", (double)eps);
  BJ_CHECK(wd >= 0.0f, "bj_cpu_adamw", "wd must be >= 0 (got %g)", (double)wd);
  BJ_CHECK(step >= 1, "bj_cpu_adamw", "step must be >= 1 (got %d)", step);

  const float gs = grad_scale ? grad_scale[0] : 1.0f;
  const double bc1 = 1.0 - std::pow((double)beta1, step);
  const double bc2 = 1.0 - std::pow((double)beta2, step);
  // The same roundings as torch's single-tensor AdamW: scalars in double, then fp32.
  const float step_size = (float)((double)lr / bc1);      // lr / (1 - b1^step)
  const float bc2_sqrt = (float)std::sqrt(bc2);           // sqrt(1 - b2^step)
  const float decay = (float)(1.0 - (double)lr * wd);     // 1 - lr * wd
  // Fixed tasks of kAdamChunk elements, each split at decay_begin / decay_end into spans with a
  // constant decay factor (1 outside the decay range: p * 1 is exact), so the loop has no branch
  // and vectorizes.
  const int64_t tasks = (n + kAdamChunk - 1) / kAdamChunk;
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t i0 = t * kAdamChunk, i1 = i0 + kAdamChunk < n ? i0 + kAdamChunk : n;
    const int64_t a = decay_begin < i0 ? i0 : (decay_begin > i1 ? i1 : decay_begin);
    const int64_t b = decay_end < a ? a : (decay_end > i1 ? i1 : decay_end);
    const AdamScalars as = {gs, beta1, beta2, eps, step_size, bc2_sqrt};
    adamw_span(p, g, m, v, i0, a, 1.0f, as);
    adamw_span(p, g, m, v, a, b, decay, as);
    adamw_span(p, g, m, v, b, i1, 1.0f, as);
    if (p_low != nullptr) bj::to_bf16_span(p_low + i0, p + i0, i1 - i0);
  }
  return BJ_OK;
}
