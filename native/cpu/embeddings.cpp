// BERT embeddings: the sum of word, position and token-type embeddings (the LayerNorm and dropout
// that follow in BertEmbeddings are separate ops).
//
// Forward:  out[r, :] = wte[ids[r], :] + wpe[r % T, :] + wtt[tt[r], :]   for r in [0, B*T)
//           (tt == NULL means token type 0 everywhere).
// Backward: dwte[ids[r], :] += dout[r, :];  dwpe[r % T, :] += dout[r, :];
//           dwtt[tt[r], :] += dout[r, :]     (parameter gradients, accumulated with "+=").
//
// Determinism: several rows may hit the same id, so the backward is parallel over column blocks
// of kColBlock channels; the thread owning a block walks the rows r = 0, 1, ... in order. Every
// output element therefore sees its additions in the same order for any thread count.
#include "common.h"

namespace {
// Validates ids (B*T) in [0, V) and tt (B*T, may be NULL) in [0, TV); names the first bad row.
int check_ids(const char* op, const int32_t* ids, const int32_t* tt, int64_t N, int V, int TV) {
  for (int64_t r = 0; r < N; ++r) {
    if (ids[r] < 0 || ids[r] >= V)
      return bj::fail(BJ_ERR_INVALID, "%s: ids[%lld] = %d is outside [0, V = %d)", op,
                      (long long)r, ids[r], V);
    if (tt != nullptr && (tt[r] < 0 || tt[r] >= TV))
      return bj::fail(BJ_ERR_INVALID, "%s: tt[%lld] = %d is outside [0, TV = %d)", op,
                      (long long)r, tt[r], TV);
  }
  return BJ_OK;
}
}  // namespace

extern "C" int bj_cpu_embeddings_forward(float* out,          // (B*T, C)
                                         const int32_t* ids,  // (B, T)
                                         const int32_t* tt,   // (B, T) or NULL = type 0
                                         const float* wte,    // (V, C)
                                         const float* wpe,    // (P_, C)
                                         const float* wtt,    // (TV, C)
                                         int B, int T, int C, int V, int P_, int TV,
                                         void* stream) {
  const char* op = "bj_cpu_embeddings_forward";
  BJ_CHECK(out != nullptr && ids != nullptr, "bj_cpu_embeddings_forward", "out or ids is NULL");
  BJ_CHECK(wte != nullptr && wpe != nullptr && wtt != nullptr, "bj_cpu_embeddings_forward",
           "wte, wpe or wtt is NULL");
  BJ_CHECK(B > 0 && T > 0 && C > 0, "bj_cpu_embeddings_forward",
           "B, T, C must be > 0 (got %d, %d, %d)", B, T, C);
  BJ_CHECK(V > 0 && P_ > 0 && TV > 0, "bj_cpu_embeddings_forward",
           "V, P_, TV must be > 0 (got %d, %d, %d)", V, P_, TV);
  BJ_CHECK(T <= P_, "bj_cpu_embeddings_forward", "T = %d exceeds the %d positions", T, P_);
  const int64_t N = (int64_t)B * T;
  if (int rc = check_ids(op, ids, tt, N, V, TV)) return rc;

#pragma omp parallel for if (N * C >= bj::kParallelMin)
  for (int64_t r = 0; r < N; ++r) {
    const float* we = wte + (int64_t)ids[r] * C;           // (C)
    const float* pe = wpe + (int64_t)(r % T) * C;          // (C)
    const float* te = wtt + (int64_t)(tt ? tt[r] : 0) * C;  // (C)
    float* o = out + r * C;                                 // (C)
    for (int c = 0; c < C; ++c) o[c] = we[c] + pe[c] + te[c];
  }
  return BJ_OK;
}

extern "C" int bj_cpu_embeddings_backward(float* dwte,         // (V, C), +=
                                          float* dwpe,         // (P_, C), +=
                                          float* dwtt,         // (TV, C), +=, or NULL
                                          const float* dout,   // (B*T, C)
                                          const int32_t* ids,  // (B, T)
                                          const int32_t* tt,   // (B, T) or NULL = type 0
                                          int B, int T, int C, int V, int P_, int TV,
                                          void* stream) {
  const char* op = "bj_cpu_embeddings_backward";
  BJ_CHECK(dwte != nullptr && dwpe != nullptr, "bj_cpu_embeddings_backward",
           "dwte or dwpe is NULL");
  BJ_CHECK(dout != nullptr && ids != nullptr, "bj_cpu_embeddings_backward",
           "dout or ids is NULL");
  BJ_CHECK(B > 0 && T > 0 && C > 0, "bj_cpu_embeddings_backward",
           "B, T, C must be > 0 (got %d, %d, %d)", B, T, C);
  BJ_CHECK(V > 0 && P_ > 0 && TV > 0, "bj_cpu_embeddings_backward",
           "V, P_, TV must be > 0 (got %d, %d, %d)", V, P_, TV);
  BJ_CHECK(T <= P_, "bj_cpu_embeddings_backward", "T = %d exceeds the %d positions", T, P_);
  const int64_t N = (int64_t)B * T;
  // tt is read only for dwtt; without dwtt, TV says nothing (callers may pass 1), so tt is not
  // checked against it.
  if (int rc = check_ids(op, ids, dwtt != nullptr ? tt : nullptr, N, V, TV)) return rc;

  const int nblocks = (C + bj::kColBlock - 1) / bj::kColBlock;
#pragma omp parallel for schedule(static, 1) if (N * C >= bj::kParallelMin)
  for (int blk = 0; blk < nblocks; ++blk) {
    const int c0 = blk * bj::kColBlock;
    const int c1 = c0 + bj::kColBlock < C ? c0 + bj::kColBlock : C;
    for (int64_t r = 0; r < N; ++r) {  // rows in order: the fixed accumulation order
      const float* g = dout + r * C;
      float* we = dwte + (int64_t)ids[r] * C;
      float* pe = dwpe + (int64_t)(r % T) * C;
      for (int c = c0; c < c1; ++c) {
        we[c] += g[c];
        pe[c] += g[c];
      }
      if (dwtt != nullptr) {
        float* te = dwtt + (int64_t)(tt ? tt[r] : 0) * C;
        for (int c = c0; c < c1; ++c) te[c] += g[c];
      }
    }
  }
  return BJ_OK;
}
