// Losses of the classification head on the GPU: per-element loss values and the logit gradient in
// one pass. Gradients are activation gradients, written ("="); grad_scale folds in the reduction.
//
//   cross_entropy:   one warp per row b: lse = max + log(sum_l exp(x_l - max));
//                    losses[b] = lse - x[label]; dlogits[b, l] = (exp(x_l - lse) - [l == label])
//                    * grad_scale. label < 0: ignored (loss 0, gradient row 0).
//                    A label >= L cannot be reported without a host synchronization: the CPU
//                    returns BJ_ERR_INVALID; here that row gets a NaN loss and NaN gradients.
//   bce_with_logits: losses[i] = max(x, 0) - x*y + log1p(exp(-|x|));
//                    dlogits[i] = (sigmoid(x) - y) * grad_scale
//   mse:             losses[i] = (x - y)^2;  dpred[i] = 2 (x - y) * grad_scale
#include <cmath>

#include "common.cuh"

namespace {
constexpr int kRowsPerBlock = 8;

__global__ void __launch_bounds__(256)
    k_cross_entropy(float* losses, float* dlogits, const float* logits, const int32_t* labels,
                    int B, int L, float grad_scale) {
  const int lane = threadIdx.x & 31;
  const int b = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (b >= B) return;  // whole warp
  const float* x = logits + (int64_t)b * L;
  float* g = dlogits ? dlogits + (int64_t)b * L : nullptr;
  const int y = labels[b];
  if (y < 0 || y >= L) {
    const float v = y < 0 ? 0.0f : NAN;
    if (lane == 0) losses[b] = v;
    if (g)
      for (int l = lane; l < L; l += 32) g[l] = v;
    return;
  }
  float mx = -INFINITY;
  for (int l = lane; l < L; l += 32) mx = fmaxf(mx, x[l]);
  mx = bjc::warp_max(mx);
  float sum = 0.0f;
  for (int l = lane; l < L; l += 32) sum += expf(x[l] - mx);
  sum = bjc::warp_sum(sum);
  const float lse = mx + logf(sum);
  if (lane == 0) losses[b] = lse - x[y];
  if (g)
    for (int l = lane; l < L; l += 32)
      g[l] = (expf(x[l] - lse) - (l == y ? 1.0f : 0.0f)) * grad_scale;
}

struct BceOp {
  float* losses;
  float* dlogits;
  const float* logits;
  const float* targets;
  float gs;
  __device__ void one(int64_t i) const {
    const float x = logits[i], y = targets[i];
    const float e = expf(-fabsf(x));
    losses[i] = (x > 0.0f ? x : 0.0f) - x * y + log1pf(e);
    const float sig = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    if (dlogits) dlogits[i] = (sig - y) * gs;
  }
  __device__ void vec4(int64_t) const {}
};

struct MseOp {
  float* losses;
  float* dpred;
  const float* pred;
  const float* targets;
  float gs;
  __device__ void one(int64_t i) const {
    const float d = pred[i] - targets[i];
    losses[i] = d * d;
    if (dpred) dpred[i] = 2.0f * d * gs;
  }
  __device__ void vec4(int64_t) const {}
};
}  // namespace

extern "C" int bj_cuda_cross_entropy(float* losses,          // (B)
                                     float* dlogits,         // (B, L), "=", or NULL
                                     const float* logits,    // (B, L)
                                     const int32_t* labels,  // (B)
                                     int B, int L, float grad_scale, void* stream) {
  BJ_CHECK(losses != nullptr && logits != nullptr && labels != nullptr, "bj_cuda_cross_entropy",
           "losses, logits or labels is NULL");
  BJ_CHECK(B > 0, "bj_cuda_cross_entropy", "B must be > 0 (got %d)", B);
  BJ_CHECK(L > 0, "bj_cuda_cross_entropy", "L must be > 0 (got %d)", L);
  auto kern = &k_cross_entropy;
  BJ_LAUNCH(kern, (unsigned)((B + kRowsPerBlock - 1) / kRowsPerBlock), 32 * kRowsPerBlock, 0,
            bjc::as_stream(stream), losses, dlogits, logits, labels, B, L, grad_scale);
  return bjc::check_launch("bj_cuda_cross_entropy");
}

extern "C" int bj_cuda_bce_with_logits(float* losses,         // (n)
                                       float* dlogits,        // (n), "=", or NULL
                                       const float* logits,   // (n) = (B, L)
                                       const float* targets,  // (n)
                                       int64_t n, float grad_scale, void* stream) {
  BJ_CHECK(losses != nullptr, "bj_cuda_bce_with_logits", "losses is NULL");
  BJ_CHECK(logits != nullptr && targets != nullptr, "bj_cuda_bce_with_logits",
           "logits or targets is NULL");
  BJ_CHECK(n > 0, "bj_cuda_bce_with_logits", "n must be > 0 (got %lld)", (long long)n);
  return bjc::launch_elementwise("bj_cuda_bce_with_logits",
                                 BceOp{losses, dlogits, logits, targets, grad_scale}, n, false,
                                 stream);
}

extern "C" int bj_cuda_mse(float* losses,         // (n)
                           float* dpred,          // (n), "=", or NULL
                           const float* pred,     // (n)
                           const float* targets,  // (n)
                           int64_t n, float grad_scale, void* stream) {
  BJ_CHECK(losses != nullptr, "bj_cuda_mse", "losses is NULL");
  BJ_CHECK(pred != nullptr && targets != nullptr, "bj_cuda_mse", "pred or targets is NULL");
  BJ_CHECK(n > 0, "bj_cuda_mse", "n must be > 0 (got %lld)", (long long)n);
  return bjc::launch_elementwise("bj_cuda_mse", MseOp{losses, dpred, pred, targets, grad_scale},
                                 n, false, stream);
}
