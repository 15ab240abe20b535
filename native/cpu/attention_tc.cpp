// Self-attention core with bf16 rounding points ("tc"): the readable reference of the CUDA
// tensor-core kernels in native/cuda/attention_tc.cu, for bertj's bf16 mixed-precision mode.
//
// Semantics (layout, mask, uniform rows, dropout element index, lse, "=" into dqkv) are those of
// native/cpu/attention.cpp; only the numerics differ. With bf() = round to bf16, nearest even
// (bertj_bf16.h), and scale = 1 / sqrt(D), for each (b, h):
//   Forward   q = bf(q), k = bf(k), v = bf(v)
//             s_ij = scale * (q_i . k_j)             fp32 accumulation, real keys only
//             lse_i = m_i + log(sum_j exp(s_ij - m_i)), m_i = max_j s_ij
//             Pd_ij = bf(exp(s_ij - lse_i) * keep_ij / (1 - p))     (0 for padded keys)
//             out_i = sum_j Pd_ij v_j                fp32 accumulation
//   Backward  g = bf(dout); P_ij = exp(scale * (q_i . k_j) - lse_i) recomputed from lse;
//             D_i = g_i . out_i (fp32, out the saved forward output)
//             dP_ij = g_i . v_j (fp32);  dS_ij = bf(P_ij * (dP_ij * keep_ij / (1 - p) - D_i))
//             Pd_ij = bf(P_ij * keep_ij / (1 - p))
//             dq_i = scale * sum_j dS_ij k_j;  dk_j = scale * sum_i dS_ij q_i;
//             dv_j = sum_i Pd_ij g_i             (fp32 accumulation, then the scale in fp32)
// A row with no real key attends uniformly to all T keys (P = 1/T, lse = log T, dS = 0: only dv
// gets a gradient). Only T <= 128 and D in {32, 64} are accepted (the CUDA kernels' range),
// anything else returns BJ_ERR_UNSUPPORTED.
//
// out_low / dqkv_low (optional): each output row's bf16 copy (bj_f32_to_bf16_bits, the bits of
// to_bf16) is written by the thread that wrote the fp32 row, right after it. The forward's out
// may be NULL when out_low is not: each row is then summed in a buffer and only its bf16 copy
// stored (the same bits as out_low with out); lse is written either way.
//
// Every accumulation runs in fp32 in index order (d = 0, 1, ... or j = 0, 1, ...), so results
// are deterministic and independent of the thread count (OpenMP over (b, h) pairs, each pair
// owning its output elements). The CUDA kernels accumulate on tensor cores in another order; the
// differences are fp32 rounding (~1e-7 relative) plus the rare bf16 rounding flip they cause.
#include <cmath>
#include <vector>

#include "bertj_bf16.h"
#include "bertj_philox.h"
#include "common.h"

namespace {
constexpr int kMaxT = 128;

inline float bf(float x) { return bj_bf16_bits_to_f32(bj_f32_to_bf16_bits(x)); }

struct TcArgs {
  int B, T, NH, D;
  int64_t C, C3;
  float scale, p, inv_keep;
  uint64_t seed, offset;
  const int32_t* mask;
};

TcArgs make_args(int B, int T, int NH, int D, float p, uint64_t seed, uint64_t offset,
                 const int32_t* mask) {
  TcArgs a;
  a.B = B, a.T = T, a.NH = NH, a.D = D;
  a.C = (int64_t)NH * D, a.C3 = 3 * a.C;
  a.scale = 1.0f / std::sqrt((float)D);
  a.p = p, a.inv_keep = 1.0f / (1.0f - p);
  a.seed = seed, a.offset = offset, a.mask = mask;
  return a;
}

// keep / (1 - p) of element (b*NH + h, i, j) of the dropout on P (1 when p = 0).
inline float drop_factor(const TcArgs& a, int64_t bh, int i, int j) {
  if (a.p == 0.0f) return 1.0f;
  const uint64_t idx = a.offset + ((uint64_t)bh * a.T + (uint64_t)i) * a.T + (uint64_t)j;
  return bj_dropout_uniform(a.seed, idx) >= a.p ? a.inv_keep : 0.0f;
}

// dst (T, D) = bf(rows of one head), row t at src + t * ld.
void load_bf16(std::vector<float>& dst, const float* src, int64_t ld, int T, int D) {
  for (int t = 0; t < T; ++t)
    for (int d = 0; d < D; ++d) dst[(size_t)t * D + d] = bf(src[(int64_t)t * ld + d]);
}

// real[j] = key j takes part (every key when the batch has none: returns true = uniform).
bool real_keys(const TcArgs& a, int b, std::vector<char>& real) {
  bool any = false;
  for (int j = 0; j < a.T; ++j) {
    real[j] = a.mask == nullptr || a.mask[(int64_t)b * a.T + j] != 0;
    any = any || real[j];
  }
  return !any;
}

float dot(const float* x, const float* y, int D) {
  float s = 0.0f;
  for (int d = 0; d < D; ++d) s += x[d] * y[d];
  return s;
}

// Scaled scores of row i (s[j] for real keys) and their log-sum-exp.
float row_lse(const TcArgs& a, const std::vector<float>& Q, const std::vector<float>& K,
              const std::vector<char>& real, int i, float* s) {
  const int T = a.T, D = a.D;
  float m = -INFINITY;
  for (int j = 0; j < T; ++j) {
    if (!real[j]) continue;
    s[j] = a.scale * dot(&Q[(size_t)i * D], &K[(size_t)j * D], D);
    m = std::fmax(m, s[j]);
  }
  float l = 0.0f;
  for (int j = 0; j < T; ++j)
    if (real[j]) l += std::exp(s[j] - m);
  return m + std::log(l);
}

void forward_pair(const TcArgs& a, int64_t bh, float* out, uint16_t* out_low, float* lse,
                  const float* qkv) {
  const int b = (int)(bh / a.NH), h = (int)(bh % a.NH), T = a.T, D = a.D;
  const float* base = qkv + (int64_t)b * T * a.C3 + (int64_t)h * D;
  std::vector<float> Q((size_t)T * D), K((size_t)T * D), V((size_t)T * D), s(T), pd(T);
  std::vector<float> row(out == nullptr ? D : 0);  // out == NULL: each output row, for out_low
  std::vector<char> real(T);
  load_bf16(Q, base, a.C3, T, D);
  load_bf16(K, base + a.C, a.C3, T, D);
  load_bf16(V, base + 2 * a.C, a.C3, T, D);
  const bool uniform = real_keys(a, b, real);
  if (uniform)
    for (int j = 0; j < T; ++j) real[j] = 1;
  for (int i = 0; i < T; ++i) {
    float l;
    if (uniform) {
      l = std::log((float)T);
      for (int j = 0; j < T; ++j) pd[j] = bf(1.0f / (float)T * drop_factor(a, bh, i, j));
    } else {
      l = row_lse(a, Q, K, real, i, s.data());
      for (int j = 0; j < T; ++j)
        pd[j] = real[j] ? bf(std::exp(s[j] - l) * drop_factor(a, bh, i, j)) : 0.0f;
    }
    lse[bh * T + i] = l;
    const int64_t o0 = ((int64_t)b * T + i) * a.C + (int64_t)h * D;
    float* o = out != nullptr ? out + o0 : row.data();  // sum over j in order
    for (int d = 0; d < D; ++d) o[d] = 0.0f;
    for (int j = 0; j < T; ++j)
      for (int d = 0; d < D; ++d) o[d] += pd[j] * V[(size_t)j * D + d];
    if (out_low != nullptr) bj::to_bf16_span(out_low + o0, o, D);
  }
}

void backward_pair(const TcArgs& a, int64_t bh, float* dqkv, uint16_t* dqkv_low,
                   const float* dout, const float* qkv, const float* out, const float* lse) {
  const int b = (int)(bh / a.NH), h = (int)(bh % a.NH), T = a.T, D = a.D;
  const int64_t C = a.C, C3 = a.C3;
  const float* base = qkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const float* gbase = dout + (int64_t)b * T * C + (int64_t)h * D;
  const float* obase = out + (int64_t)b * T * C + (int64_t)h * D;
  const int64_t dbase0 = (int64_t)b * T * C3 + (int64_t)h * D;  // this head's dq, row 0
  float* dbase = dqkv + dbase0;
  std::vector<float> Q((size_t)T * D), K((size_t)T * D), V((size_t)T * D), G((size_t)T * D);
  std::vector<float> dS((size_t)T * T), Pd((size_t)T * T);  // (query, key)
  std::vector<char> real(T);
  load_bf16(Q, base, C3, T, D);
  load_bf16(K, base + C, C3, T, D);
  load_bf16(V, base + 2 * C, C3, T, D);
  load_bf16(G, gbase, C, T, D);
  const bool uniform = real_keys(a, b, real);
  for (int i = 0; i < T; ++i) {
    const float Di = dot(&G[(size_t)i * D], obase + (int64_t)i * C, D);
    const float l = lse[bh * T + i];
    for (int j = 0; j < T; ++j) {
      float P = 0.0f, ds = 0.0f, f = 1.0f;
      if (uniform) {
        P = 1.0f / (float)T;
        f = drop_factor(a, bh, i, j);
      } else if (real[j]) {
        P = std::exp(a.scale * dot(&Q[(size_t)i * D], &K[(size_t)j * D], D) - l);
        f = drop_factor(a, bh, i, j);
        const float dP = dot(&G[(size_t)i * D], &V[(size_t)j * D], D);
        ds = P * (dP * f - Di);
      }
      dS[(size_t)i * T + j] = bf(ds);
      Pd[(size_t)i * T + j] = bf(P * f);
    }
  }
  // dq_i = scale * sum_j dS_ij k_j; dk_j = scale * sum_i dS_ij q_i; dv_j = sum_i Pd_ij g_i
  // (every sum in index order: j for dq, i for dk and dv)
  std::vector<float> acc(D), dK((size_t)T * D, 0.0f), dV((size_t)T * D, 0.0f);
  for (int i = 0; i < T; ++i) {
    for (int d = 0; d < D; ++d) acc[d] = 0.0f;
    for (int j = 0; j < T; ++j) {
      const float ds = dS[(size_t)i * T + j], pd = Pd[(size_t)i * T + j];
      for (int d = 0; d < D; ++d) {
        acc[d] += ds * K[(size_t)j * D + d];
        dK[(size_t)j * D + d] += ds * Q[(size_t)i * D + d];
        dV[(size_t)j * D + d] += pd * G[(size_t)i * D + d];
      }
    }
    float* dq = dbase + (int64_t)i * C3;
    for (int d = 0; d < D; ++d) dq[d] = a.scale * acc[d];
    if (dqkv_low != nullptr) bj::to_bf16_span(dqkv_low + dbase0 + (int64_t)i * C3, dq, D);
  }
  for (int j = 0; j < T; ++j) {
    float* dk = dbase + (int64_t)j * C3 + C;
    float* dv = dk + C;
    for (int d = 0; d < D; ++d) {
      dk[d] = a.scale * dK[(size_t)j * D + d];
      dv[d] = dV[(size_t)j * D + d];
    }
    if (dqkv_low != nullptr) {  // dk and dv of key j
      uint16_t* low = dqkv_low + dbase0 + (int64_t)j * C3 + C;
      bj::to_bf16_span(low, dk, D);
      bj::to_bf16_span(low + C, dv, D);
    }
  }
}

int supported(const char* op, int T, int D) {
  if (T > kMaxT || (D != 32 && D != 64))
    return bj::fail(BJ_ERR_UNSUPPORTED, "%s: T = %d, D = %d (supported: T <= %d, D in {32, 64})",
                    op, T, D, kMaxT);
  return BJ_OK;
}
}  // namespace

extern "C" int bj_cpu_attention_tc_forward(float* out,            // (B, T, C) or NULL
                                           uint16_t* out_low,     // (B, T, C) bf16 or NULL
                                           float* lse,            // (B, NH, T)
                                           const float* qkv,      // (B, T, 3C)
                                           const int32_t* mask,   // (B, T) or NULL
                                           int B, int T, int NH, int D, float p, uint64_t seed,
                                           uint64_t offset, const bj_step_scalars* sc,
                                           void* stream) {
  (void)stream;
  if (sc != nullptr) seed = sc->seed;  // per-step scalars (bertj.h)
  BJ_CHECK(lse != nullptr && qkv != nullptr, "bj_cpu_attention_tc_forward", "lse or qkv is NULL");
  BJ_CHECK(out != nullptr || out_low != nullptr, "bj_cpu_attention_tc_forward",
           "out and out_low are both NULL (at least one output is needed)");
  {
    const int rc_ = bj::check_attention_args("bj_cpu_attention_tc_forward", B, T, NH, D, p);
    if (rc_ != BJ_OK) return rc_;
  }
  const int rc = supported("bj_cpu_attention_tc_forward", T, D);
  if (rc != BJ_OK) return rc;
  const TcArgs a = make_args(B, T, NH, D, p, seed, offset, mask);
  const int64_t pairs = (int64_t)B * NH;
#pragma omp parallel for schedule(static) if (pairs * T * T * D >= bj::kParallelMin)
  for (int64_t bh = 0; bh < pairs; ++bh) forward_pair(a, bh, out, out_low, lse, qkv);
  return BJ_OK;
}

extern "C" int bj_cpu_attention_tc_backward(float* dqkv,          // (B, T, 3C), "="
                                            uint16_t* dqkv_low,   // (B, T, 3C) bf16 or NULL
                                            const float* dout,    // (B, T, C)
                                            const float* qkv,     // (B, T, 3C)
                                            const float* out,     // (B, T, C), saved
                                            const float* lse,     // (B, NH, T), saved
                                            const int32_t* mask,  // (B, T) or NULL
                                            int B, int T, int NH, int D, float p, uint64_t seed,
                                            uint64_t offset, const bj_step_scalars* sc,
                                            void* stream) {
  (void)stream;
  if (sc != nullptr) seed = sc->seed;  // per-step scalars (bertj.h)
  BJ_CHECK(dqkv != nullptr && dout != nullptr && qkv != nullptr, "bj_cpu_attention_tc_backward",
           "dqkv, dout or qkv is NULL");
  BJ_CHECK(out != nullptr && lse != nullptr, "bj_cpu_attention_tc_backward",
           "out or lse is NULL");
  {
    const int rc_ = bj::check_attention_args("bj_cpu_attention_tc_backward", B, T, NH, D, p);
    if (rc_ != BJ_OK) return rc_;
  }
  const int rc = supported("bj_cpu_attention_tc_backward", T, D);
  if (rc != BJ_OK) return rc;
  const TcArgs a = make_args(B, T, NH, D, p, seed, offset, mask);
  const int64_t pairs = (int64_t)B * NH;
#pragma omp parallel for schedule(static) if (pairs * T * T * D >= bj::kParallelMin)
  for (int64_t bh = 0; bh < pairs; ++bh)
    backward_pair(a, bh, dqkv, dqkv_low, dout, qkv, out, lse);
  return BJ_OK;
}
