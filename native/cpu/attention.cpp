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
// Implementation: per (b, h) pair the keys are compacted (real keys only, in order; all T keys for
// a row with no real key) and copied to contiguous per-thread scratch, K^T (D, nr) and V (nr, D)
// padded with zeros to multiples of 16, so that every product is a small blocked matrix product
// (register tile 4 x 2W, contiguous inner loads): S = Q K^T, out = Pdrop V in the forward;
// S, dO V^T, dq = dS K, dk += dS^T q, dv += Pdrop^T dO in the backward. Softmax, exp (bj::vexp,
// ~1 ulp), the Philox draws (8 or 4 counters per vector) and dropout run on whole vectors of a
// score row. The kernels are compiled twice, for SSE4.2 (W = 4) and AVX2 + FMA (W = 8), and
// bj::use_avx2() picks one at run time.
//
// Parallelism and determinism: the forward is parallel over (b, h, block of 32 query rows) tasks;
// the backward over (b, h) pairs, a pair owning the dq/dk/dv channels of its head in its batch
// (dk and dv summed over the query rows in order). Every output element is computed by one
// thread in a fixed order that depends on the shapes (and the ISA path) only, so the bits do not
// depend on the thread count. Scratch: each thread allocates its buffers (std::vector, O(T D +
// 32 T) floats) once per call inside the parallel region.
#include <cmath>
#include <algorithm>
#include <cstring>
#include <vector>

#include "bertj_philox.h"
#include "common.h"

#pragma GCC diagnostic ignored "-Wpsabi"

namespace {
constexpr int kPad = 16;   // key counts and head widths are padded to a multiple of this
constexpr int kRows = 32;  // query rows per block (one forward task)

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// C (M x N) = A (M x K) * B (K x N), or C += A * B when kAcc. A element (m, k) at
// A[m * sam + k * sak] (so A may be read transposed); B and C row-major with leading dimensions
// ldb, ldc; N a multiple of 2W. Register tile 4 x 2W, k innermost in order: every C element is
// accumulated over k = 0, 1, ... in sequence, so the bits depend on W (and FMA) only.
template <int W, bool kAcc>
BJ_INLINE void mm(int M, int N, int K, const float* A, int64_t sam, int64_t sak, const float* B,
                  int64_t ldb, float* C, int64_t ldc) {
  typedef typename bj::Vec<W>::f F;
  for (int n0 = 0; n0 < N; n0 += 2 * W) {
    int m = 0;
    for (; m + 4 <= M; m += 4) {
      F c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};
      float* c = C + (int64_t)m * ldc + n0;
      if (kAcc) {
        c00 = bj::vload<W>(c), c01 = bj::vload<W>(c + W);
        c10 = bj::vload<W>(c + ldc), c11 = bj::vload<W>(c + ldc + W);
        c20 = bj::vload<W>(c + 2 * ldc), c21 = bj::vload<W>(c + 2 * ldc + W);
        c30 = bj::vload<W>(c + 3 * ldc), c31 = bj::vload<W>(c + 3 * ldc + W);
      }
      const float* a = A + (int64_t)m * sam;
      const float* b = B + n0;
      for (int k = 0; k < K; ++k, a += sak, b += ldb) {
        const F b0 = bj::vload<W>(b), b1 = bj::vload<W>(b + W);
        const float x0 = a[0], x1 = a[sam], x2 = a[2 * sam], x3 = a[3 * sam];
        c00 += x0 * b0;
        c01 += x0 * b1;
        c10 += x1 * b0;
        c11 += x1 * b1;
        c20 += x2 * b0;
        c21 += x2 * b1;
        c30 += x3 * b0;
        c31 += x3 * b1;
      }
      bj::vstore<W>(c, c00), bj::vstore<W>(c + W, c01);
      bj::vstore<W>(c + ldc, c10), bj::vstore<W>(c + ldc + W, c11);
      bj::vstore<W>(c + 2 * ldc, c20), bj::vstore<W>(c + 2 * ldc + W, c21);
      bj::vstore<W>(c + 3 * ldc, c30), bj::vstore<W>(c + 3 * ldc + W, c31);
    }
    for (; m < M; ++m) {
      F c0 = {}, c1 = {};
      float* c = C + (int64_t)m * ldc + n0;
      if (kAcc) c0 = bj::vload<W>(c), c1 = bj::vload<W>(c + W);
      const float* a = A + (int64_t)m * sam;
      const float* b = B + n0;
      for (int k = 0; k < K; ++k, a += sak, b += ldb) {
        c0 += a[0] * bj::vload<W>(b);
        c1 += a[0] * bj::vload<W>(b + W);
      }
      bj::vstore<W>(c, c0), bj::vstore<W>(c + W, c1);
    }
  }
}

// The shapes and pointers of one call.
struct Attn {
  int B, T, NH, D;
  int64_t C, C3;
  int Tp, Dp;  // T and D rounded up to kPad
  float scale, p, inv_keep;
  uint64_t seed, offset;
  const int32_t* mask;
};

// Per-thread scratch (std::vector inside the parallel region: once per call and thread).
struct Scratch {
  std::vector<int> kidx;  // (T) real key -> token
  std::vector<float> Kt, Vt, Kc, Vc, dKc, dVc, Qc, dOc, S, dP, Ob, U, Ug;
  int bh = -1;  // the pair whose keys are loaded (forward)
  int nr = 0;   // its number of (compacted) keys
  bool uniform = false;
  Scratch(const Attn& a, bool backward) : kidx(a.T) {
    const int64_t Tp = a.Tp, Dp = a.Dp, D = a.D;
    Kt.assign(D * Tp, 0.0f);
    S.assign(kRows * Tp, 0.0f);
    U.assign(Tp, 0.0f);
    Ug.assign(Tp, 0.0f);
    Ob.assign(kRows * Dp, 0.0f);
    if (backward) {
      Vt.assign(D * Tp, 0.0f);
      Kc.assign(Tp * Dp, 0.0f);
      dKc.assign(Tp * Dp, 0.0f);
      dVc.assign(Tp * Dp, 0.0f);
      Qc.assign(kRows * Dp, 0.0f);
      dOc.assign(kRows * Dp, 0.0f);
      dP.assign(kRows * Tp, 0.0f);
    } else {
      Vc.assign(Tp * Dp, 0.0f);
    }
  }
};

// The keys of batch b: kidx = the real key tokens in order (all T for a row with no real key,
// then uniform = true); returns their count.
int load_keys(const Attn& a, int b, Scratch& s) {
  int nr = 0;
  const int32_t* mk = a.mask ? a.mask + (int64_t)b * a.T : nullptr;
  for (int j = 0; j < a.T; ++j)
    if (mk == nullptr || mk[j] != 0) s.kidx[nr++] = j;
  s.uniform = nr == 0;
  if (s.uniform) {
    for (int j = 0; j < a.T; ++j) s.kidx[j] = j;
    nr = a.T;
  }
  s.nr = nr;
  return nr;
}

// (nr x D) rows of one head, gathered by kidx, into dst (D x ldt) transposed (columns >= nr
// zero) or (nr x Dp) row-major (columns >= D zero).
void gather_t(float* dst, int64_t ldt, const float* src, int64_t ld, const int* kidx, int nr,
              int D) {
  for (int d = 0; d < D; ++d) {
    float* o = dst + (int64_t)d * ldt;
    for (int jj = 0; jj < nr; ++jj) o[jj] = src[(int64_t)kidx[jj] * ld + d];
    for (int jj = nr; jj < ldt; ++jj) o[jj] = 0.0f;
  }
}
void gather_rows(float* dst, int Dp, const float* src, int64_t ld, const int* kidx, int nr,
                 int D) {
  for (int jj = 0; jj < nr; ++jj) {
    const float* r = src + (int64_t)(kidx ? kidx[jj] : jj) * ld;
    float* o = dst + (int64_t)jj * Dp;
    std::memcpy(o, r, sizeof(float) * D);
    for (int d = D; d < Dp; ++d) o[d] = 0.0f;
  }
}

// Dropout draws of row `row` (B NH T index): s.U = the T uniforms, and Ur (returned) = them
// in compacted key order (s.U itself when no key is dropped by the mask), tail zero.
const float* row_uniforms(const Attn& a, Scratch& s, int64_t row, int W8) {
  const uint64_t idx0 = a.offset + (uint64_t)row * (uint64_t)a.T;
  if (W8) bj::philox_uniforms<8>(s.U.data(), a.seed, idx0, a.T);
  else bj::philox_uniforms<4>(s.U.data(), a.seed, idx0, a.T);
  if (s.nr == a.T) return s.U.data();
  for (int jj = 0; jj < s.nr; ++jj) s.Ug[jj] = s.U[s.kidx[jj]];
  return s.Ug.data();
}

// Forward of rows [i0, i1) of pair bh.
template <int W>
BJ_INLINE void forward_block(const Attn& a, Scratch& s, int bh, int i0, int i1, float* out,
                             float* lse, const float* qkv) {
  typedef typename bj::Vec<W>::f F;
  const int b = bh / a.NH, h = bh % a.NH, D = a.D, T = a.T;
  const float* base = qkv + (int64_t)b * T * a.C3 + (int64_t)h * D;  // q of token 0 of head h
  if (s.bh != bh) {  // load this pair's keys: K^T (D x nrp) and V (nr x Dp), compacted
    const int nr = load_keys(a, b, s);
    if (!s.uniform) gather_t(s.Kt.data(), round_up(nr, kPad), base + a.C, a.C3, s.kidx.data(), nr, D);
    gather_rows(s.Vc.data(), a.Dp, base + 2 * a.C, a.C3, s.kidx.data(), nr, D);
    s.bh = bh;
  }
  const int nr = s.nr, nrp = (int)round_up(nr, kPad), R = i1 - i0;
  float* S = s.S.data();
  if (!s.uniform)  // S = Q K^T (R x nrp)
    mm<W, false>(R, nrp, D, base + (int64_t)i0 * a.C3, a.C3, 1, s.Kt.data(), nrp, S, nrp);
  const F zero = {}, vkeep = bj::vsplat<W>(a.inv_keep), vp = bj::vsplat<W>(a.p);
  for (int r = 0; r < R; ++r) {
    const int64_t row = (int64_t)bh * T + i0 + r;
    float* sr = S + (int64_t)r * nrp;
    const float* Ur = a.p != 0.0f ? row_uniforms(a, s, row, W == 8) : nullptr;
    if (s.uniform) {  // P = 1/T for every key
      const F pu = bj::vsplat<W>(1.0f / (float)T);
      for (int jj = 0; jj < nrp; jj += W) {
        F w = pu;
        if (Ur) w = w * (bj::vload<W>(Ur + jj) >= vp ? vkeep : zero);
        bj::vstore<W>(sr + jj, w);
      }
      lse[row] = std::log((float)T);
      continue;
    }
    // scores: scale, padded keys -> -inf, max
    for (int jj = 0; jj < nrp; jj += W) bj::vstore<W>(sr + jj, bj::vload<W>(sr + jj) * a.scale);
    for (int jj = nr; jj < nrp; ++jj) sr[jj] = -INFINITY;
    F vm = bj::vload<W>(sr);
    for (int jj = W; jj < nrp; jj += W) vm = bj::vmax<W>(vm, bj::vload<W>(sr + jj));
    const float mx = bj::vhmax<W>(vm);
    F vs = {};
    for (int jj = 0; jj < nrp; jj += W) {
      const F e = bj::vexp<W>(bj::vload<W>(sr + jj) - mx);
      bj::vstore<W>(sr + jj, e);
      vs += e;
    }
    const float sum = bj::vhsum<W>(vs), inv_sum = 1.0f / sum;
    for (int jj = 0; jj < nrp; jj += W) {
      F w = bj::vload<W>(sr + jj) * inv_sum;
      if (Ur) w = w * (bj::vload<W>(Ur + jj) >= vp ? vkeep : zero);
      bj::vstore<W>(sr + jj, w);
    }
    lse[row] = mx + std::log(sum);
  }
  // out rows = Pdrop (R x nr) V (nr x Dp)
  mm<W, false>(R, a.Dp, nr, S, nrp, 1, s.Vc.data(), a.Dp, s.Ob.data(), a.Dp);
  for (int r = 0; r < R; ++r)
    std::memcpy(out + ((int64_t)b * T + i0 + r) * a.C + (int64_t)h * D,
                s.Ob.data() + (int64_t)r * a.Dp, sizeof(float) * D);
}

// Backward of pair bh (all its rows): writes dq, dk, dv of head h, batch b.
template <int W>
BJ_INLINE void backward_pair(const Attn& a, Scratch& s, int bh, float* dqkv, const float* dout,
                             const float* qkv, const float* out, const float* lse) {
  typedef typename bj::Vec<W>::f F;
  const int b = bh / a.NH, h = bh % a.NH, D = a.D, T = a.T, Dp = a.Dp;
  const int64_t C = a.C, C3 = a.C3;
  const float* base = qkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const float* gbase = dout + (int64_t)b * T * C + (int64_t)h * D;
  const float* obase = out + (int64_t)b * T * C + (int64_t)h * D;
  float* dbase = dqkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const int nr = load_keys(a, b, s), nrp = (int)round_up(nr, kPad);
  const bool uni = s.uniform;
  if (!uni) {
    gather_t(s.Kt.data(), nrp, base + C, C3, s.kidx.data(), nr, D);
    gather_t(s.Vt.data(), nrp, base + 2 * C, C3, s.kidx.data(), nr, D);
    gather_rows(s.Kc.data(), Dp, base + C, C3, s.kidx.data(), nr, D);
  }
  std::fill(s.dKc.begin(), s.dKc.begin() + (int64_t)nr * Dp, 0.0f);
  std::fill(s.dVc.begin(), s.dVc.begin() + (int64_t)nr * Dp, 0.0f);
  float* S = s.S.data();   // scores, then dS
  float* dP = s.dP.data(); // dO V^T, then Pdrop
  const F zero = {}, vkeep = bj::vsplat<W>(a.inv_keep), vp = bj::vsplat<W>(a.p);
  for (int i0 = 0; i0 < T; i0 += kRows) {
    const int R = i0 + kRows < T ? kRows : T - i0;
    gather_rows(s.Qc.data(), Dp, base + (int64_t)i0 * C3, C3, nullptr, R, D);
    gather_rows(s.dOc.data(), Dp, gbase + (int64_t)i0 * C, C, nullptr, R, D);
    if (!uni) {
      mm<W, false>(R, nrp, D, base + (int64_t)i0 * C3, C3, 1, s.Kt.data(), nrp, S, nrp);
      mm<W, false>(R, nrp, D, gbase + (int64_t)i0 * C, C, 1, s.Vt.data(), nrp, dP, nrp);
    }
    for (int r = 0; r < R; ++r) {
      const int i = i0 + r;
      const int64_t row = (int64_t)bh * T + i;
      const float* Ur = a.p != 0.0f ? row_uniforms(a, s, row, W == 8) : nullptr;
      float* sr = S + (int64_t)r * nrp;
      float* pr = dP + (int64_t)r * nrp;
      if (uni) {  // P = 1/T: only dv gets a gradient
        const F pu = bj::vsplat<W>(1.0f / (float)T);
        for (int jj = 0; jj < nrp; jj += W) {
          F w = pu;
          if (Ur) w = w * (bj::vload<W>(Ur + jj) >= vp ? vkeep : zero);
          bj::vstore<W>(pr + jj, w);
          bj::vstore<W>(sr + jj, zero);
        }
        continue;
      }
      const float* go = gbase + (int64_t)i * C;
      const float* oi = obase + (int64_t)i * C;
      float Di = 0.0f;
      for (int d = 0; d < D; ++d) Di += go[d] * oi[d];
      const float l = lse[row];
      for (int jj = 0; jj < nrp; jj += W) {
        const F P = bj::vexp<W>(bj::vload<W>(sr + jj) * a.scale - l);
        F dPj = bj::vload<W>(pr + jj), Pd = P;
        if (Ur) {
          const F f = bj::vload<W>(Ur + jj) >= vp ? vkeep : zero;
          dPj = f * dPj;
          Pd = P * f;
        }
        bj::vstore<W>(sr + jj, a.scale * P * (dPj - Di));  // dS, with the 1/sqrt(D) of s
        bj::vstore<W>(pr + jj, Pd);
      }
    }
    // dq rows = dS (R x nr) K (nr x Dp)
    if (!uni) {
      mm<W, false>(R, Dp, nr, S, nrp, 1, s.Kc.data(), Dp, s.Ob.data(), Dp);
      for (int r = 0; r < R; ++r)
        std::memcpy(dbase + (int64_t)(i0 + r) * C3, s.Ob.data() + (int64_t)r * Dp,
                    sizeof(float) * D);
      // dk (nr x Dp) += dS^T Q,  dv += Pdrop^T dO
      mm<W, true>(nr, Dp, R, S, 1, nrp, s.Qc.data(), Dp, s.dKc.data(), Dp);
    } else {
      for (int r = 0; r < R; ++r)
        std::memset(dbase + (int64_t)(i0 + r) * C3, 0, sizeof(float) * D);
    }
    mm<W, true>(nr, Dp, R, dP, 1, nrp, s.dOc.data(), Dp, s.dVc.data(), Dp);
  }
  // scatter dk, dv to the real keys; padded keys get 0
  for (int t = 0; t < T; ++t) {
    float* g = dbase + (int64_t)t * C3;
    std::memset(g + C, 0, sizeof(float) * D);
    std::memset(g + 2 * C, 0, sizeof(float) * D);
  }
  for (int jj = 0; jj < nr; ++jj) {
    float* g = dbase + (int64_t)s.kidx[jj] * C3;
    std::memcpy(g + C, s.dKc.data() + (int64_t)jj * Dp, sizeof(float) * D);
    std::memcpy(g + 2 * C, s.dVc.data() + (int64_t)jj * Dp, sizeof(float) * D);
  }
}

// The ISA-specific entry points: the same code, compiled for SSE4.2 and for AVX2 + FMA.
void forward_block_sse(const Attn& a, Scratch& s, int bh, int i0, int i1, float* out, float* lse,
                       const float* qkv) {
  forward_block<4>(a, s, bh, i0, i1, out, lse, qkv);
}
BJ_TARGET_AVX2 void forward_block_avx2(const Attn& a, Scratch& s, int bh, int i0, int i1,
                                       float* out, float* lse, const float* qkv) {
  forward_block<8>(a, s, bh, i0, i1, out, lse, qkv);
}
void backward_pair_sse(const Attn& a, Scratch& s, int bh, float* dqkv, const float* dout,
                       const float* qkv, const float* out, const float* lse) {
  backward_pair<4>(a, s, bh, dqkv, dout, qkv, out, lse);
}
BJ_TARGET_AVX2 void backward_pair_avx2(const Attn& a, Scratch& s, int bh, float* dqkv,
                                       const float* dout, const float* qkv, const float* out,
                                       const float* lse) {
  backward_pair<8>(a, s, bh, dqkv, dout, qkv, out, lse);
}

Attn make_attn(int B, int T, int NH, int D, float p, uint64_t seed, uint64_t offset,
               const int32_t* mask) {
  Attn a;
  a.B = B, a.T = T, a.NH = NH, a.D = D;
  a.C = (int64_t)NH * D, a.C3 = 3 * a.C;
  a.Tp = (int)round_up(T, kPad), a.Dp = (int)round_up(D, kPad);
  a.scale = 1.0f / std::sqrt((float)D);
  a.p = p, a.inv_keep = 1.0f / (1.0f - p);
  a.seed = seed, a.offset = offset, a.mask = mask;
  return a;
}
}  // namespace

extern "C" int bj_cpu_attention_forward(float* out,            // (B, T, C)
                                        float* lse,            // (B, NH, T)
                                        const float* qkv,      // (B, T, 3C)
                                        const int32_t* mask,   // (B, T) or NULL
                                        int B, int T, int NH, int D, float p, uint64_t seed,
                                        uint64_t offset, const bj_step_scalars* sc,
                                        void* stream) {
  if (sc != nullptr) seed = sc->seed;  // per-step scalars (bertj.h)
  BJ_CHECK(out != nullptr && lse != nullptr && qkv != nullptr, "bj_cpu_attention_forward",
           "out, lse or qkv is NULL");
  {
    const int rc_ = bj::check_attention_args("bj_cpu_attention_forward", B, T, NH, D, p);
    if (rc_ != BJ_OK) return rc_;
  }
  const Attn a = make_attn(B, T, NH, D, p, seed, offset, mask);
  const int nblk = (T + kRows - 1) / kRows;
  const int64_t tasks = (int64_t)B * NH * nblk;
  const bool avx2 = bj::use_avx2();
#pragma omp parallel if ((int64_t)B * NH * T * T * D >= bj::kParallelMin)
  {
    Scratch s(a, false);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int bh = (int)(t / nblk), blk = (int)(t % nblk);
      const int i0 = blk * kRows, i1 = i0 + kRows < T ? i0 + kRows : T;
      if (avx2) forward_block_avx2(a, s, bh, i0, i1, out, lse, qkv);
      else forward_block_sse(a, s, bh, i0, i1, out, lse, qkv);
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
                                         uint64_t offset, const bj_step_scalars* sc,
                                         void* stream) {
  if (sc != nullptr) seed = sc->seed;  // per-step scalars (bertj.h)
  BJ_CHECK(dqkv != nullptr && dout != nullptr && qkv != nullptr, "bj_cpu_attention_backward",
           "dqkv, dout or qkv is NULL");
  BJ_CHECK(out != nullptr && lse != nullptr, "bj_cpu_attention_backward", "out or lse is NULL");
  {
    const int rc_ = bj::check_attention_args("bj_cpu_attention_backward", B, T, NH, D, p);
    if (rc_ != BJ_OK) return rc_;
  }
  const Attn a = make_attn(B, T, NH, D, p, seed, offset, mask);
  const int pairs = B * NH;
  const bool avx2 = bj::use_avx2();
#pragma omp parallel if ((int64_t)pairs * T * T * D >= bj::kParallelMin)
  {
    Scratch s(a, true);
#pragma omp for schedule(static, 1)
    for (int bh = 0; bh < pairs; ++bh) {
      if (avx2) backward_pair_avx2(a, s, bh, dqkv, dout, qkv, out, lse);
      else backward_pair_sse(a, s, bh, dqkv, dout, qkv, out, lse);
    }
  }
  return BJ_OK;
}
