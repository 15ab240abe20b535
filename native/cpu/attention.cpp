// Self-attention core: softmax(q k^T / sqrt(D) + mask) with dropout, times v, per head.
//
// Layout: qkv (B, T, 3C) holds per token [q (C) | k (C) | v (C)], C = NH * D, head h at channels
// [h*D, (h+1)*D) of each part; out (B, T, C) uses the same head layout; lse (B, NH, T).
// mask (B, T): nonzero = real key, 0 = padded key; NULL = all real. The mask applies to keys
// only: queries at padded positions are computed like any other row.
//
// Forward, for each (b, h, i), with scale = 1 / sqrt(D):
//   s_j   = scale * q_i . k_j                 for real keys j
//   lse_i = log(sum_j exp(s_j))               over real keys (as max + log(sum exp(s - max)))
//   P_ij  = exp(s_j - lse_i) for real j, 0 for padded j
//   Pdrop_ij = P_ij * keep_ij / (1 - p), keep_ij = (u >= p), u = Philox uniform of element
//              offset + ((b*NH + h)*T + i)*T + j
//   out_i = sum_j Pdrop_ij v_j
// A row with no real key (an all-padding sequence) attends uniformly to all T keys, as Hugging
// Face's additive mask gives: P_ij = 1/T for every j and lse_i = log(T) (the log-sum-exp of T
// zero scores, so that P = exp(0 - lse) holds). That output does not depend on q or k.
//
// Backward (activation gradient dqkv, written "="): recompute P from lse, with D_i = dout_i . out_i
//   dP_ij = keep_ij / (1 - p) * (dout_i . v_j);  dS_ij = P_ij * (dP_ij - D_i)
//   dq_i  = scale * sum_j dS_ij k_j;  dk_j += scale * dS_ij q_i;  dv_j += Pdrop_ij dout_i
// For a row with no real key the output is independent of q and k, so it adds nothing to dq or
// dk and only dv_j += Pdrop_ij dout_i with P_ij = 1/T.
//
// Parallelism and determinism: the forward is parallel over (b, h, i) rows, each row independent.
// Scratch: each thread of the forward allocates one std::vector<float> of T scores inside the
// parallel region (once per call and thread, not per row). The backward is parallel over (b, h)
// pairs; a pair owns the dq/dk/dv channels of its head in its batch, walks i and j in order, so
// the accumulations are race-free and the bits do not depend on the thread count. It needs no
// scratch.
#include <cmath>
#include <vector>

#include "bertj_philox.h"
#include "common.h"

namespace {
inline float dot(const float* a, const float* b, int D) {
  float s = 0.0f;
  for (int d = 0; d < D; ++d) s += a[d] * b[d];
  return s;
}

// keep_ij / (1 - p) for dropout element idx (1 when p == 0).
inline float drop_factor(float p, float inv_keep, uint64_t seed, uint64_t idx) {
  if (p == 0.0f) return 1.0f;
  return bj_dropout_uniform(seed, idx) >= p ? inv_keep : 0.0f;
}
}  // namespace

extern "C" int bj_cpu_attention_forward(float* out,            // (B, T, C)
                                        float* lse,            // (B, NH, T)
                                        const float* qkv,      // (B, T, 3C)
                                        const int32_t* mask,   // (B, T) or NULL
                                        int B, int T, int NH, int D, float p, uint64_t seed,
                                        uint64_t offset, void* stream) {
  BJ_CHECK(out != nullptr && lse != nullptr && qkv != nullptr, "bj_cpu_attention_forward",
           "out, lse or qkv is NULL");
  BJ_CHECK(B > 0 && T > 0 && NH > 0 && D > 0, "bj_cpu_attention_forward",
           "B, T, NH, D must be > 0 (got %d, %d, %d, %d)", B, T, NH, D);
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cpu_attention_forward", "p must be in [0, 1) (got %g)",
           (double)p);
  const int64_t C = (int64_t)NH * D, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt((float)D);
  const float inv_keep = 1.0f / (1.0f - p);
  const int64_t rows = (int64_t)B * NH * T;

#pragma omp parallel if (rows * T * D >= bj::kParallelMin)
  {
    std::vector<float> s(T);  // (T) per-thread scratch: scores, then exp(s - max)
#pragma omp for
    for (int64_t row = 0; row < rows; ++row) {
      const int i = (int)(row % T);
      const int64_t bh = row / T;
      const int h = (int)(bh % NH), b = (int)(bh / NH);
      const float* q = qkv + ((int64_t)b * T + i) * C3 + (int64_t)h * D;  // (D)
      const int32_t* mk = mask ? mask + (int64_t)b * T : nullptr;        // (T)
      float* o = out + ((int64_t)b * T + i) * C + (int64_t)h * D;         // (D)
      const uint64_t idx0 = offset + (uint64_t)row * (uint64_t)T;         // element (row, j=0)

      float mx = -INFINITY;
      int nreal = 0;
      for (int j = 0; j < T; ++j) {
        if (mk && mk[j] == 0) continue;
        const float* k = qkv + ((int64_t)b * T + j) * C3 + C + (int64_t)h * D;
        s[j] = scale * dot(q, k, D);
        mx = s[j] > mx ? s[j] : mx;
        ++nreal;
      }
      for (int d = 0; d < D; ++d) o[d] = 0.0f;
      if (nreal == 0) {  // no real key: uniform over all T keys
        const float pu = 1.0f / (float)T;
        for (int j = 0; j < T; ++j) {
          const float w = pu * drop_factor(p, inv_keep, seed, idx0 + (uint64_t)j);
          if (w == 0.0f) continue;
          const float* v = qkv + ((int64_t)b * T + j) * C3 + 2 * C + (int64_t)h * D;
          for (int d = 0; d < D; ++d) o[d] += w * v[d];
        }
        lse[row] = std::log((float)T);
        continue;
      }
      float sum = 0.0f;
      for (int j = 0; j < T; ++j) {
        if (mk && mk[j] == 0) continue;
        s[j] = std::exp(s[j] - mx);
        sum += s[j];
      }
      const float inv_sum = 1.0f / sum;
      for (int j = 0; j < T; ++j) {
        if (mk && mk[j] == 0) continue;
        const float w = s[j] * inv_sum * drop_factor(p, inv_keep, seed, idx0 + (uint64_t)j);
        if (w == 0.0f) continue;
        const float* v = qkv + ((int64_t)b * T + j) * C3 + 2 * C + (int64_t)h * D;
        for (int d = 0; d < D; ++d) o[d] += w * v[d];
      }
      lse[row] = mx + std::log(sum);
    }
  }
  return BJ_OK;
}

extern "C" int bj_cpu_attention_backward(float* dqkv,          // (B, T, 3C), "="
                                         const float* dout,    // (B, T, C)
                                         const float* qkv,     // (B, T, 3C)
                                         const float* out,     // (B, T, C), saved forward output
                                         const float* lse,     // (B, NH, T), saved
                                         const int32_t* mask,  // (B, T) or NULL
                                         int B, int T, int NH, int D, float p, uint64_t seed,
                                         uint64_t offset, void* stream) {
  BJ_CHECK(dqkv != nullptr && dout != nullptr && qkv != nullptr, "bj_cpu_attention_backward",
           "dqkv, dout or qkv is NULL");
  BJ_CHECK(out != nullptr && lse != nullptr, "bj_cpu_attention_backward", "out or lse is NULL");
  BJ_CHECK(B > 0 && T > 0 && NH > 0 && D > 0, "bj_cpu_attention_backward",
           "B, T, NH, D must be > 0 (got %d, %d, %d, %d)", B, T, NH, D);
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cpu_attention_backward", "p must be in [0, 1) (got %g)",
           (double)p);
  const int64_t C = (int64_t)NH * D, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt((float)D);
  const float inv_keep = 1.0f / (1.0f - p);
  const int pairs = B * NH;

#pragma omp parallel for schedule(static, 1) if ((int64_t)pairs * T * T * D >= bj::kParallelMin)
  for (int bh = 0; bh < pairs; ++bh) {
    const int h = bh % NH, b = bh / NH;
    const int32_t* mk = mask ? mask + (int64_t)b * T : nullptr;  // (T)
    int nreal = 0;
    for (int j = 0; j < T; ++j) nreal += (mk == nullptr || mk[j] != 0);

    // This pair owns dq, dk, dv of head h for every token of batch b: zero them ("=").
    for (int t = 0; t < T; ++t) {
      float* g = dqkv + ((int64_t)b * T + t) * C3 + (int64_t)h * D;
      for (int d = 0; d < D; ++d) g[d] = g[C + d] = g[2 * C + d] = 0.0f;
    }

    for (int i = 0; i < T; ++i) {
      const int64_t row = (int64_t)bh * T + i;
      const float* q = qkv + ((int64_t)b * T + i) * C3 + (int64_t)h * D;   // (D)
      float* dq = dqkv + ((int64_t)b * T + i) * C3 + (int64_t)h * D;       // (D)
      const float* go = dout + ((int64_t)b * T + i) * C + (int64_t)h * D;  // (D)
      const uint64_t idx0 = offset + (uint64_t)row * (uint64_t)T;

      if (nreal == 0) {  // uniform row: only dv gets a gradient
        const float pu = 1.0f / (float)T;
        for (int j = 0; j < T; ++j) {
          const float w = pu * drop_factor(p, inv_keep, seed, idx0 + (uint64_t)j);
          if (w == 0.0f) continue;
          float* dv = dqkv + ((int64_t)b * T + j) * C3 + 2 * C + (int64_t)h * D;
          for (int d = 0; d < D; ++d) dv[d] += w * go[d];
        }
        continue;
      }

      const float Di = dot(go, out + ((int64_t)b * T + i) * C + (int64_t)h * D, D);
      const float l = lse[row];
      for (int j = 0; j < T; ++j) {
        if (mk && mk[j] == 0) continue;
        const float* k = qkv + ((int64_t)b * T + j) * C3 + C + (int64_t)h * D;      // (D)
        const float* v = qkv + ((int64_t)b * T + j) * C3 + 2 * C + (int64_t)h * D;  // (D)
        float* dk = dqkv + ((int64_t)b * T + j) * C3 + C + (int64_t)h * D;          // (D)
        float* dv = dqkv + ((int64_t)b * T + j) * C3 + 2 * C + (int64_t)h * D;      // (D)
        const float P = std::exp(scale * dot(q, k, D) - l);
        const float f = drop_factor(p, inv_keep, seed, idx0 + (uint64_t)j);
        const float dP = f == 0.0f ? 0.0f : f * dot(go, v, D);
        const float dS = scale * P * (dP - Di);  // includes the 1/sqrt(D) of s = scale * q.k
        for (int d = 0; d < D; ++d) {
          dq[d] += dS * k[d];
          dk[d] += dS * q[d];
        }
        const float w = P * f;
        if (w != 0.0f)
          for (int d = 0; d < D; ++d) dv[d] += w * go[d];
      }
    }
  }
  return BJ_OK;
}
