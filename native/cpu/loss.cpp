// Losses of the classification head, per-element loss values and the logit gradient in one pass.
// grad_scale folds in the reduction (e.g. 1 / number of counted rows for a mean); the gradients
// are activation gradients, written ("=").
//
//   cross_entropy:   per row b:  lse = max + log(sum_l exp(x_l - max))    (stable log-softmax)
//                    losses[b] = lse - x[label]
//                    dlogits[b, l] = (softmax_l - [l == label]) * grad_scale
//                    label < 0: ignored (loss 0, gradient row 0); label >= L: BJ_ERR_INVALID.
//   bce_with_logits: losses[i] = max(x, 0) - x*y + log(1 + exp(-|x|))
//                    dlogits[i] = (sigmoid(x) - y) * grad_scale
//   mse:             losses[i] = (x - y)^2;  dpred[i] = 2 (x - y) * grad_scale
//
// Row- or element-parallel, so the result does not depend on the thread count.
#include <cmath>

#include "common.h"

extern "C" int bj_cpu_cross_entropy(float* losses,          // (B)
                                    float* dlogits,         // (B, L), "=", or NULL
                                    const float* logits,    // (B, L)
                                    const int32_t* labels,  // (B)
                                    int B, int L, float grad_scale, void* stream) {
  BJ_CHECK(losses != nullptr && logits != nullptr && labels != nullptr, "bj_cpu_cross_entropy",
           "losses, logits or labels is NULL");
  BJ_CHECK(B > 0, "bj_cpu_cross_entropy", "B must be > 0 (got %d)", B);
  BJ_CHECK(L > 0, "bj_cpu_cross_entropy", "L must be > 0 (got %d)", L);
  for (int b = 0; b < B; ++b)  // validate before writing anything
    BJ_CHECK(labels[b] < L, "bj_cpu_cross_entropy", "labels[%d] = %d is >= L = %d", b, labels[b],
             L);

#pragma omp parallel for if ((int64_t)B * L >= bj::kParallelMin)
  for (int b = 0; b < B; ++b) {
    const float* x = logits + (int64_t)b * L;             // (L)
    float* g = dlogits ? dlogits + (int64_t)b * L : nullptr;  // (L)
    const int y = labels[b];
    if (y < 0) {
      losses[b] = 0.0f;
      if (g)
        for (int l = 0; l < L; ++l) g[l] = 0.0f;
      continue;
    }
    float mx = x[0];
    for (int l = 1; l < L; ++l) mx = x[l] > mx ? x[l] : mx;
    float sum = 0.0f;
    for (int l = 0; l < L; ++l) sum += std::exp(x[l] - mx);
    const float lse = mx + std::log(sum);
    losses[b] = lse - x[y];
    if (g)
      for (int l = 0; l < L; ++l)
        g[l] = (std::exp(x[l] - lse) - (l == y ? 1.0f : 0.0f)) * grad_scale;
  }
  return BJ_OK;
}

extern "C" int bj_cpu_bce_with_logits(float* losses,         // (n)
                                      float* dlogits,        // (n), "=", or NULL
                                      const float* logits,   // (n) = (B, L)
                                      const float* targets,  // (n)
                                      int64_t n, float grad_scale, void* stream) {
  BJ_CHECK(losses != nullptr, "bj_cpu_bce_with_logits", "losses is NULL");
  BJ_CHECK(logits != nullptr && targets != nullptr, "bj_cpu_bce_with_logits",
           "logits or targets is NULL");
  BJ_CHECK(n > 0, "bj_cpu_bce_with_logits", "n must be > 0 (got %lld)", (long long)n);
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float x = logits[i], y = targets[i];
    const float e = std::exp(-std::fabs(x));  // in (0, 1]: no overflow
    losses[i] = (x > 0.0f ? x : 0.0f) - x * y + std::log1p(e);
    const float sig = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    if (dlogits) dlogits[i] = (sig - y) * grad_scale;
  }
  return BJ_OK;
}

extern "C" int bj_cpu_mse(float* losses,         // (n)
                          float* dpred,          // (n), "=", or NULL
                          const float* pred,     // (n)
                          const float* targets,  // (n)
                          int64_t n, float grad_scale, void* stream) {
  BJ_CHECK(losses != nullptr, "bj_cpu_mse", "losses is NULL");
  BJ_CHECK(pred != nullptr && targets != nullptr, "bj_cpu_mse", "pred or targets is NULL");
  BJ_CHECK(n > 0, "bj_cpu_mse", "n must be > 0 (got %lld)", (long long)n);
#pragma omp parallel for if (n >= bj::kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float d = pred[i] - targets[i];
    losses[i] = d * d;
    if (dpred) dpred[i] = 2.0f * d * grad_scale;
  }
  return BJ_OK;
}
