// Self-attention core on the bf16 tensor cores ("tc"), forward and backward, for bertj's bf16
// mixed-precision mode. Semantics and rounding points: native/cpu/attention_tc.cpp (the readable
// reference) and bertj.h; layout, mask, dropout element index and lse as native/cuda/attention.cu.
//
// Supported: T <= 128, head dim D in {32, 64} (template parameter); anything else returns
// BJ_ERR_UNSUPPORTED and the caller uses the fp32 ops.
//
// One block of 256 threads (8 warps) per (head h, batch b): grid (NH, B). The block's keys and
// values (keys up to the last real key, rounded up to 16: KP = 16 * nkt) sit in shared memory as
// bf16 (row stride D + 8 bf16, 16 bytes of skew per row); queries are walked in chunks. Every
// product runs on WMMA 16x16x16 bf16 fragments with fp32 accumulators; softmax, dropout (Philox,
// the element index of the fp32 op) and dS are element-wise passes by all threads over fp32
// tiles in shared memory (row strides padded so that the threads of one row group hit distinct
// banks). Fragments are used only through load/store/mma/fill (never the per-thread element
// layout), which is what the CPU emulation in native/tests/emu/mma.h supports.
// With per-step scalars (sc, bertj.h) both kernels take their seed from sc->seed at their start.
//
// - k_attn_tc_fwd<D, QC>: query chunks of QC = 32 (default) or 64 rows. S = Q K^T (warp w: row
//   tile w % RT, key tiles w / RT + WPR n), then 256 / QC threads per row: max, sum, lse = m +
//   log(l), Pd = bf16(exp(s - lse) * keep / (1 - p)); O = Pd V (output tiles spread over the
//   warps) staged in fp32 shared memory (over the S tile) and written out. Dynamic shared memory
//   at D = 64: 66.6 KB with QC = 32 (80 registers: three blocks per SM), 97.9 KB with QC = 64
//   (two blocks per SM).
// - k_attn_tc_fwd_warp<D> ("warp-private rows", BJ_ATTN_TC_FWD=warp): the block loads K, V and
//   all of the slice's queries (bf16) and passes its one block barrier after key_setup's; then
//   warp w owns query rows 16w .. 16w + 15 (a warp whose rows start at or after T returns) and
//   runs them alone, with __syncwarp only: S = Q K^T (all key tiles in accumulator fragments, the
//   same k-order as k_attn_tc_fwd), the softmax with 8 lanes per row, four rows at a time (the
//   same lanes, key order and shuffle tree as k_attn_tc_fwd<D, 32>: the same bits), O = Pd V, and
//   the stores. Each warp has one region of 16 x 136 fp32 (8.5 KB) that holds in turn its bf16
//   queries, its scores (written once all lanes have read Q), bf16 P (row r over score rows <=
//   r / 2, written once the iteration's lanes have read their scores) and the fp32 output
//   staging (written once all lanes have read P). Dynamic shared memory: 104.6 KB at D = 64,
//   88.6 KB at D = 32; 128 registers (no spills): two blocks (16 warps) per SM at either D.
//   BJ_ATTN_TC_FWD_ROWS does not apply to it.
// - k_attn_tc_bwd<D>: warp w owns key tile w (keys 16w .. 16w + 15) and keeps dK, dV of it in
//   fp32 accumulator fragments across the query chunks (32 rows). Per chunk: Q, bf16(dO) and
//   D_i = bf16(dO_i) . out_i; S = Q K^T and dP = dO V^T for the warp's key tile; 8 threads per
//   row: P = exp(scale s - lse), dropout, dS = bf16(P (dP f - D_i)), Pd = bf16(P f); then
//   dV += Pd^T dO and dK += dS^T Q (col-major loads of the transposed tiles), and dQ = dS K (one
//   16 x 16 tile per warp) staged in shared memory and written with the scale. At the end dK (x
//   scale) and dV go through shared memory (over the S/dP tiles) to global memory; keys at or
//   after KP (padded) get 0. Dynamic shared memory at D = 64: 99.2 KB (two blocks per SM).
// Optional bf16 side outputs (out_low, dqkv_low; NULL = none): every thread that stores 4 fp32
// outputs (store_row4: the forward's epilogue, the dQ chunk stores, the final dK / dV stores and
// their padded zeros) also stores their bf16 bits (bj_f32_to_bf16_bits of the stored values, so
// to_bf16's bits), as one uint2 when the bf16 pointer is 8-byte aligned. Each block owns its
// (b, h) slice of out / dqkv and writes every element of it exactly once, at its final value
// (dK, dV are complete after the last query chunk), so no second pass is needed. The forward's
// out may be NULL when out_low is not (inference): k_attn_tc_fwd<D, QC, kOut = false> then stores
// only the bf16 bits of the same values (a template parameter: the default kOut = true kernel is
// the code it was).
// Deterministic: fixed tile order, no atomics. Keys after the last real key are neither loaded
// nor computed (16-key granularity); a batch without a real key attends uniformly to its T keys
// (P = 1/T, lse = log T, dS = 0).
#include <cuda_bf16.h>
#include <mma.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "bertj_bf16.h"
#include "common.cuh"

#ifdef BJ_CUDA_EMU
#define BJ_TC_SMEM(name) unsigned char* name = reinterpret_cast<unsigned char*>(::emu::dyn_smem())
#else
#define BJ_TC_SMEM(name) extern __shared__ __align__(128) unsigned char name[]
#endif

namespace {
using namespace nvcuda;
typedef __nv_bfloat16 bf16;

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kMaxT = 128;  // longest sequence (keys and queries)
// Query rows per forward chunk: 32 (default: 66.6 KB of shared memory and at most 80 registers,
// three blocks per SM, so that B32 x NH12 = 384 blocks fit the 132 SMs of an H100/H200 in one
// wave) or 64 (97.9 KB, 128 registers, two blocks per SM, half the chunks and barriers). The
// environment variable BJ_ATTN_TC_FWD_ROWS=64 or 32 overrides the default (read per call: a
// benchmarking knob; bench_cuda_ops times both).
// The environment variable BJ_ATTN_TC_FWD=warp (read per call, also a benchmarking knob) selects
// the warp-private forward k_attn_tc_fwd_warp instead (BJ_ATTN_TC_FWD_ROWS is then ignored);
// unset or any other value: k_attn_tc_fwd as above.
constexpr int kFwdQDefault = 32;
constexpr int kBwdQ = 32;   // query rows per backward chunk
static_assert(kMaxT / 16 == kWarps, "the backward gives each warp one key tile");

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> FragAt;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> FragB;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> FragBt;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragC;

constexpr int align128(int x) { return (x + 127) / 128 * 128; }

// Shared memory of the forward with QC query rows per chunk (byte offsets; every buffer
// 128-byte aligned).
template <int D, int QC>
struct FwdLayout {
  static constexpr int kFwdQ = QC;
  static constexpr int LDH = D + 8;                // bf16 rows of Q, K, V
  static constexpr int TPR = kThreads / kFwdQ;     // threads per score row (4 or 8)
  static constexpr int LDS = kMaxT + TPR;          // fp32 scores
  static constexpr int LDP = kMaxT + 8;            // bf16 probabilities
  static constexpr int LDO = D + 4;                // fp32 output staging (over the scores)
  static constexpr int oQ = 0;
  static constexpr int oK = align128(oQ + kFwdQ * LDH * 2);
  static constexpr int oV = align128(oK + kMaxT * LDH * 2);
  static constexpr int oS = align128(oV + kMaxT * LDH * 2);
  static constexpr int oP = align128(oS + kFwdQ * LDS * 4);
  static constexpr int oValid = align128(oP + kFwdQ * LDP * 2);
  static constexpr int oRed = align128(oValid + kMaxT * 4);
  static constexpr int kBytes = align128(oRed + kWarps * 4);
  static_assert(LDO <= LDS, "output staging fits in the score tile");
};

// Shared memory of the backward.
template <int D>
struct BwdLayout {
  static constexpr int LDH = D + 8;             // bf16 rows of K, V, Q, dO
  static constexpr int TPR = kThreads / kBwdQ;  // threads per score row (8)
  static constexpr int LDS = kMaxT + TPR;       // fp32 S and dP
  static constexpr int LDP = kMaxT + 8;         // bf16 dS and Pd
  static constexpr int LDO = D + 4;             // fp32 staging of dQ, dK, dV (over S and dP)
  static constexpr int oK = 0;
  static constexpr int oV = align128(oK + kMaxT * LDH * 2);
  static constexpr int oQ = align128(oV + kMaxT * LDH * 2);
  static constexpr int oG = align128(oQ + kBwdQ * LDH * 2);
  static constexpr int oS = align128(oG + kBwdQ * LDH * 2);
  static constexpr int odP = oS + kBwdQ * LDS * 4;  // right after S: one staging area
  static constexpr int odS = align128(odP + kBwdQ * LDS * 4);
  static constexpr int oPd = align128(odS + kBwdQ * LDP * 2);
  static constexpr int oLse = align128(oPd + kBwdQ * LDP * 2);
  static constexpr int oDel = align128(oLse + kBwdQ * 4);
  static constexpr int oValid = align128(oDel + kBwdQ * 4);
  static constexpr int oRed = align128(oValid + kMaxT * 4);
  static constexpr int kBytes = align128(oRed + kWarps * 4);
  static_assert((kBwdQ * LDS * 4) % 32 == 0, "dP tile alignment");
  static_assert(kMaxT * LDO <= 2 * kBwdQ * LDS, "dK / dV staging fits over S and dP");
};

// s_valid[j] = key j is real (j < kMaxT; 0 from T on); returns one past the last real key (0
// when the batch has none). Block-wide: every thread gets the answer.
__device__ __forceinline__ int key_setup(const int32_t* mask, int b, int T, int* s_valid,
                                         int* s_red) {
  int last = 0;
  for (int j = threadIdx.x; j < kMaxT; j += kThreads) {
    int v = 0;
    if (j < T) v = mask == nullptr ? 1 : (mask[(int64_t)b * T + j] != 0 ? 1 : 0);
    s_valid[j] = v;
    if (v) last = j + 1;
  }
  last = bjc::warp_max(last);
  if ((threadIdx.x & 31) == 0) s_red[threadIdx.x >> 5] = last;
  __syncthreads();
  int r = 0;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) r = max(r, s_red[w]);
  return r;
}

// For each of the NS sources s: dst[s][r * LDH + c] = bf16(src[s][r * gstride + c]) for
// r < nvalid, c < D, and zero rows [nvalid, nrows) (nrows <= MAXR). The loop counts are constants
// and every load is issued before the first conversion, so a thread keeps up to
// NS * MAXR * D / (4 * kThreads) loads in flight (the latency, not the bandwidth, bounds a block).
template <int D, int LDH, int MAXR, int NS>
__device__ __forceinline__ void load_bf16_rows(bf16* const* dst, const float* const* src,
                                               int64_t gstride, int nvalid, int nrows, int vec) {
  constexpr int C4 = D / 4, IT = (MAXR * C4 + kThreads - 1) / kThreads;
  float4 v[NS][IT];
#pragma unroll
  for (int i = 0; i < IT; ++i) {
    const int e = threadIdx.x + i * kThreads, r = e / C4, c = (e % C4) * 4;
#pragma unroll
    for (int k = 0; k < NS; ++k) {
      v[k][i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (r < nvalid) {
        const float* p = src[k] + r * gstride + c;
        v[k][i] = vec ? *reinterpret_cast<const float4*>(p) : make_float4(p[0], p[1], p[2], p[3]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < IT; ++i) {
    const int e = threadIdx.x + i * kThreads, r = e / C4, c = (e % C4) * 4;
    if (r < nrows) {
#pragma unroll
      for (int k = 0; k < NS; ++k) {
        __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(dst[k] + r * LDH + c);
        o[0] = __floats2bfloat162_rn(v[k][i].x, v[k][i].y);
        o[1] = __floats2bfloat162_rn(v[k][i].z, v[k][i].w);
      }
    }
  }
}

// Reduction over the TPR consecutive lanes of one row group (TPR a power of two <= 32).
template <int TPR>
__device__ __forceinline__ float group_max(float v) {
#pragma unroll
  for (int o = TPR / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(bjc::kFull, v, o));
  return v;
}
template <int TPR>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int o = TPR / 2; o > 0; o >>= 1) v += __shfl_xor_sync(bjc::kFull, v, o);
  return v;
}

// The log-sum-exp of one score row (unscaled scores srow, keys j < KP with s_valid[j]): the max
// and the sum of exp over the TPR lanes of the row's group (this lane: tl), then m + log(sum);
// log T for a batch without a real key (uniform). live: the row exists and is not uniform.
template <int TPR>
__device__ __forceinline__ float row_lse(const float* srow, const int* s_valid, int KP, int T,
                                         float scale, bool live, bool uniform, int tl) {
  float mx = -INFINITY;
  if (live)
    for (int j = tl; j < KP; j += TPR)
      if (s_valid[j]) mx = fmaxf(mx, scale * srow[j]);
  mx = group_max<TPR>(mx);
  float sum = 0.0f;
  if (live)
    for (int j = tl; j < KP; j += TPR)
      if (s_valid[j]) sum += expf(scale * srow[j] - mx);
  sum = group_sum<TPR>(sum);
  return uniform ? logf((float)T) : mx + logf(sum);
}

// keep / (1 - p) of dropout element idx (p > 0).
__device__ __forceinline__ float drop_factor(float p, float dscale, uint64_t seed, uint64_t idx) {
  return bj_dropout_uniform(seed, idx) >= p ? dscale : 0.0f;
}

// P of key j in a row of lse l (uniform: 1/T over the T keys), times its dropout factor (p > 0;
// element idx0 + j).
__device__ __forceinline__ float row_prob(const float* srow, const int* s_valid, int j, int T,
                                          float scale, float l, bool uniform, float inv_t, float p,
                                          float dscale, uint64_t seed, uint64_t idx0) {
  float pv = 0.0f;
  if (uniform) pv = j < T ? inv_t : 0.0f;
  else if (s_valid[j]) pv = expf(scale * srow[j] - l);
  if (p > 0.0f && pv != 0.0f) pv *= drop_factor(p, dscale, seed, idx0 + j);
  return pv;
}

// The bf16 bits of 4 floats at low (4 uint16_t): one uint2 when vec_low (8-byte aligned).
__device__ __forceinline__ void store_low4(uint16_t* low, float4 v, int vec_low) {
  const uint16_t a = bj_f32_to_bf16_bits(v.x), b = bj_f32_to_bf16_bits(v.y);
  const uint16_t c = bj_f32_to_bf16_bits(v.z), d = bj_f32_to_bf16_bits(v.w);
  if (vec_low) {
    uint2 o;
    o.x = (uint32_t)a | ((uint32_t)b << 16);
    o.y = (uint32_t)c | ((uint32_t)d << 16);
    *reinterpret_cast<uint2*>(low) = o;
  } else {
    low[0] = a;
    low[1] = b;
    low[2] = c;
    low[3] = d;
  }
}

// 4 floats of a row: dst (global) = src (shared, fp32) * mul, float4 when vec; and when low is
// not NULL, low (global, 4 bf16) = the bits of the stored values. kF32 = false: dst is not
// stored (nor used) and low must not be NULL; only the bf16 bits of the same values are stored.
template <bool kF32 = true>
__device__ __forceinline__ void store_row4(float* dst, uint16_t* low, const float* src, float mul,
                                           int vec, int vec_low) {
  const float4 s = *reinterpret_cast<const float4*>(src);
  const float4 v = make_float4(s.x * mul, s.y * mul, s.z * mul, s.w * mul);
  if constexpr (kF32) {
    if (vec) {
      *reinterpret_cast<float4*>(dst) = v;
    } else {
      dst[0] = v.x;
      dst[1] = v.y;
      dst[2] = v.z;
      dst[3] = v.w;
    }
  }
  if (!kF32 || low != nullptr) store_low4(low, v, vec_low);
}

// ---------------------------------------------------------------------------------------------
// kOut: out is stored (the default); false: out is NULL and only out_low (not NULL) is stored.
template <int D, int QC, bool kOut>
__global__ void __launch_bounds__(kThreads, QC == 64 ? 2 : 3)
    k_attn_tc_fwd(float* out, uint16_t* out_low, float* lse, const float* qkv, const int32_t* mask,
                  int T, int NH, float scale, float p, float dscale, uint64_t seed, uint64_t offset,
                  const bj_step_scalars* sc, int vec_in, int vec_out, int vec_low) {
  seed = bjc::step_seed(sc, seed);  // per-step seed (bertj.h), before any draw
  typedef FwdLayout<D, QC> L;
  constexpr int LDH = L::LDH, LDS = L::LDS, LDP = L::LDP, LDO = L::LDO, TPR = L::TPR;
  constexpr int NCT = D / 16, C4 = D / 4, kFwdQ = QC;
  constexpr int RT = kFwdQ / 16;   // row tiles per chunk (4 or 2)
  constexpr int WPR = kWarps / RT;  // warps per row tile in S = Q K^T (2 or 4)
  constexpr int KPW = kMaxT / 16 / WPR;  // key tiles per warp (4 or 2)
  BJ_TC_SMEM(smem);
  bf16* Qs = reinterpret_cast<bf16*>(smem + L::oQ);       // (kFwdQ, LDH) query chunk
  bf16* Ks = reinterpret_cast<bf16*>(smem + L::oK);       // (kMaxT, LDH)
  bf16* Vs = reinterpret_cast<bf16*>(smem + L::oV);       // (kMaxT, LDH)
  float* Sf = reinterpret_cast<float*>(smem + L::oS);     // (kFwdQ, LDS) unscaled scores
  float* Of = Sf;                                         // (kFwdQ, LDO) output staging
  bf16* Pb = reinterpret_cast<bf16*>(smem + L::oP);       // (kFwdQ, LDP) bf16(Pdrop)
  int* s_valid = reinterpret_cast<int*>(smem + L::oValid);
  int* s_red = reinterpret_cast<int*>(smem + L::oRed);
  const int tid = threadIdx.x, warp = tid >> 5;
  const int h = blockIdx.x, b = blockIdx.y;
  const int C = NH * D;
  const int64_t C3 = 3LL * C;
  const float* qkv_b = qkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const uint64_t bh = (uint64_t)b * NH + h;
  const float inv_t = 1.0f / (float)T;

  int kend = key_setup(mask, b, T, s_valid, s_red);
  const bool uniform = kend == 0;
  if (uniform) kend = T;  // no real key: every key attends uniformly
  const int nkt = (kend + 15) / 16, KP = 16 * nkt;
  if constexpr (QC == 64) {
    bf16* const dst[2] = {Ks, Vs};
    const float* const src[2] = {qkv_b + C, qkv_b + 2 * C};
    load_bf16_rows<D, LDH, kMaxT, 2>(dst, src, C3, kend, KP, vec_in);
  } else {  // fewer loads in flight: 80 registers
    bf16* const dk[1] = {Ks};
    bf16* const dv[1] = {Vs};
    const float* const sk[1] = {qkv_b + C};
    const float* const sv[1] = {qkv_b + 2 * C};
    load_bf16_rows<D, LDH, kMaxT, 1>(dk, sk, C3, kend, KP, vec_in);
    load_bf16_rows<D, LDH, kMaxT, 1>(dv, sv, C3, kend, KP, vec_in);
  }

  for (int q0 = 0; q0 < T; q0 += kFwdQ) {
    const int nq = min(kFwdQ, T - q0), nqt = (nq + 15) / 16;
    {
      bf16* const dst[1] = {Qs};
      const float* const src[1] = {qkv_b + (int64_t)q0 * C3};
      load_bf16_rows<D, LDH, kFwdQ, 1>(dst, src, C3, nq, 16 * nqt, vec_in);
    }
    __syncthreads();  // (the first one also orders the K, V loads)

    // S = Q K^T: warp -> row tile warp % RT, key tiles warp / RT + WPR n (n < KPW)
    if (!uniform) {
      const int rt = warp % RT;
      if (rt < nqt) {
        FragC acc[KPW];
#pragma unroll
        for (int n = 0; n < KPW; ++n) wmma::fill_fragment(acc[n], 0.0f);
#pragma unroll
        for (int d = 0; d < D; d += 16) {
          FragA a;
          wmma::load_matrix_sync(a, Qs + rt * 16 * LDH + d, LDH);
#pragma unroll
          for (int n = 0; n < KPW; ++n) {
            const int kt = warp / RT + WPR * n;
            if (kt < nkt) {
              FragBt bk;
              wmma::load_matrix_sync(bk, Ks + kt * 16 * LDH + d, LDH);
              wmma::mma_sync(acc[n], a, bk, acc[n]);
            }
          }
        }
#pragma unroll
        for (int n = 0; n < KPW; ++n) {
          const int kt = warp / RT + WPR * n;
          if (kt < nkt)
            wmma::store_matrix_sync(Sf + rt * 16 * LDS + kt * 16, acc[n], LDS,
                                    wmma::mem_row_major);
        }
      }
    }
    __syncthreads();

    // softmax statistics, dropout, bf16(Pdrop): TPR threads per row, keys lane + TPR k
    {
      const int r = tid / TPR, lane = tid % TPR, qi = q0 + r;
      const bool row_ok = qi < T, live = row_ok && !uniform;
      const float* srow = Sf + r * LDS;
      bf16* prow = Pb + r * LDP;
      const float l = row_lse<TPR>(srow, s_valid, KP, T, scale, live, uniform, lane);
      const uint64_t idx0 = offset + (bh * (uint64_t)T + (uint64_t)qi) * (uint64_t)T;
      for (int j = lane; j < KP; j += TPR) {
        const float pv =
            row_ok ? row_prob(srow, s_valid, j, T, scale, l, uniform, inv_t, p, dscale, seed, idx0)
                   : 0.0f;
        prow[j] = __float2bfloat16_rn(pv);
      }
      if (row_ok && lane == 0) lse[bh * (uint64_t)T + qi] = l;
    }
    __syncthreads();

    // O = Pdrop V: output tiles t = warp + kWarps u (row tile t / NCT, channel tile t % NCT)
    constexpr int NT = RT * NCT;
#pragma unroll
    for (int u = 0; u < (NT + kWarps - 1) / kWarps; ++u) {
      const int t = warp + kWarps * u, rt = t / NCT, ct = t % NCT;
      if (t < NT && rt < nqt) {
        FragC acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int kt = 0; kt < nkt; ++kt) {
          FragA a;
          FragB bv;
          wmma::load_matrix_sync(a, Pb + rt * 16 * LDP + kt * 16, LDP);
          wmma::load_matrix_sync(bv, Vs + kt * 16 * LDH + ct * 16, LDH);
          wmma::mma_sync(acc, a, bv, acc);
        }
        wmma::store_matrix_sync(Of + rt * 16 * LDO + ct * 16, acc, LDO, wmma::mem_row_major);
      }
    }
    __syncthreads();
    for (int e = tid; e < nq * C4; e += kThreads) {
      const int r = e / C4, c = (e % C4) * 4;
      const int64_t o = ((int64_t)b * T + q0 + r) * C + (int64_t)h * D + c;
      if constexpr (kOut)
        store_row4(out + o, out_low != nullptr ? out_low + o : nullptr, Of + r * LDO + c, 1.0f,
                   vec_out, vec_low);
      else
        store_row4<false>(nullptr, out_low + o, Of + r * LDO + c, 1.0f, vec_out, vec_low);
    }
    __syncthreads();  // Qs, Sf/Of, Pb are rewritten by the next chunk
  }
}

// ---------------------------------------------------------------------------------------------
// The warp-private forward (BJ_ATTN_TC_FWD=warp): all of the slice's queries are loaded with K
// and V; after that one block barrier each warp runs its 16 query rows alone.
template <int D>
struct FwdWarpLayout {
  static constexpr int LDH = D + 8;        // bf16 rows of Q, K, V
  static constexpr int TPR = 8;            // threads per score row (4 rows of a warp at a time)
  static constexpr int LDS = kMaxT + TPR;  // fp32 scores
  static constexpr int LDP = kMaxT + 8;    // bf16 probabilities (over the scores)
  static constexpr int LDO = D + 4;        // fp32 output staging (over the probabilities)
  // one warp's region: its 16 query rows (bf16), then its scores, then P, then the output
  static constexpr int kRegion = align128(16 * LDS * 4);
  static constexpr int oK = 0;
  static constexpr int oV = align128(oK + kMaxT * LDH * 2);
  static constexpr int oW = align128(oV + kMaxT * LDH * 2);
  static constexpr int oValid = align128(oW + kWarps * kRegion);
  static constexpr int oRed = align128(oValid + kMaxT * 4);
  static constexpr int kBytes = align128(oRed + kWarps * 4);
  static_assert(16 * LDH * 2 <= kRegion && 16 * LDP * 2 <= kRegion && 16 * LDO * 4 <= kRegion,
                "Q, P and the output staging fit in a warp's score region");
  static_assert(kMaxT == 16 * kWarps, "one 16-row query tile per warp");
  static_assert(LDP * 2 <= LDS * 4, "a bf16 P row is no longer than an fp32 score row");
};

// All queries of the slice (rows r < nvalid of src, row stride gstride) as bf16 into the warps'
// regions: row r at dst + (r / 16) * RS + (r % 16) * LDH (RS, LDH in bf16); rows [nvalid, nrows)
// zero. Every load is issued before the first conversion (as load_bf16_rows).
template <int D, int LDH, int RS>
__device__ __forceinline__ void load_q_tiles(bf16* dst, const float* src, int64_t gstride,
                                             int nvalid, int nrows, int vec) {
  constexpr int C4 = D / 4, IT = kMaxT * C4 / kThreads;
  static_assert(kMaxT * C4 % kThreads == 0, "whole iterations");
  float4 v[IT];
#pragma unroll
  for (int i = 0; i < IT; ++i) {
    const int e = threadIdx.x + i * kThreads, r = e / C4, c = (e % C4) * 4;
    v[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r < nvalid) {
      const float* p = src + r * gstride + c;
      v[i] = vec ? *reinterpret_cast<const float4*>(p) : make_float4(p[0], p[1], p[2], p[3]);
    }
  }
#pragma unroll
  for (int i = 0; i < IT; ++i) {
    const int e = threadIdx.x + i * kThreads, r = e / C4, c = (e % C4) * 4;
    if (r < nrows) {
      __nv_bfloat162* o =
          reinterpret_cast<__nv_bfloat162*>(dst + (r >> 4) * RS + (r & 15) * LDH + c);
      o[0] = __floats2bfloat162_rn(v[i].x, v[i].y);
      o[1] = __floats2bfloat162_rn(v[i].z, v[i].w);
    }
  }
}

// kOut as k_attn_tc_fwd. The same values as k_attn_tc_fwd<D, 32, kOut> (the same products in
// the same order, the same 8 threads per softmax row with the same per-thread key order and
// shuffle tree, the same expressions).
template <int D, bool kOut>
__global__ void __launch_bounds__(kThreads, 2)
    k_attn_tc_fwd_warp(float* out, uint16_t* out_low, float* lse, const float* qkv,
                       const int32_t* mask, int T, int NH, float scale, float p, float dscale,
                       uint64_t seed, uint64_t offset, const bj_step_scalars* sc, int vec_in,
                       int vec_out, int vec_low) {
  seed = bjc::step_seed(sc, seed);  // per-step seed (bertj.h), before any draw
  typedef FwdWarpLayout<D> L;
  constexpr int LDH = L::LDH, LDS = L::LDS, LDP = L::LDP, LDO = L::LDO, TPR = L::TPR;
  constexpr int NCT = D / 16, C4 = D / 4, NKT = kMaxT / 16;
  constexpr int RPI = 32 / TPR;     // rows of the warp per softmax iteration (4)
  constexpr int KPL = kMaxT / TPR;  // keys per lane and row (16)
  BJ_TC_SMEM(smem);
  bf16* Ks = reinterpret_cast<bf16*>(smem + L::oK);  // (kMaxT, LDH)
  bf16* Vs = reinterpret_cast<bf16*>(smem + L::oV);  // (kMaxT, LDH)
  int* s_valid = reinterpret_cast<int*>(smem + L::oValid);
  int* s_red = reinterpret_cast<int*>(smem + L::oRed);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  unsigned char* region = smem + L::oW + warp * L::kRegion;
  bf16* Qw = reinterpret_cast<bf16*>(region);   // (16, LDH) the warp's query rows
  float* Sw = reinterpret_cast<float*>(region);  // (16, LDS) unscaled scores, over Qw
  bf16* Pw = reinterpret_cast<bf16*>(region);    // (16, LDP) bf16(Pdrop), over Sw
  float* Ow = reinterpret_cast<float*>(region);  // (16, LDO) output staging, over Pw
  const int h = blockIdx.x, b = blockIdx.y;
  const int C = NH * D;
  const int64_t C3 = 3LL * C;
  const float* qkv_b = qkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const uint64_t bh = (uint64_t)b * NH + h;
  const float inv_t = 1.0f / (float)T;

  int kend = key_setup(mask, b, T, s_valid, s_red);
  const bool uniform = kend == 0;
  if (uniform) kend = T;  // no real key: every key attends uniformly
  const int nkt = (kend + 15) / 16, KP = 16 * nkt;
  {
    bf16* const dst[2] = {Ks, Vs};
    const float* const src[2] = {qkv_b + C, qkv_b + 2 * C};
    load_bf16_rows<D, LDH, kMaxT, 2>(dst, src, C3, kend, KP, vec_in);
  }
  if (!uniform)  // (the uniform case needs no scores)
    load_q_tiles<D, LDH, L::kRegion / 2>(reinterpret_cast<bf16*>(smem + L::oW), qkv_b, C3, T,
                                         16 * ((T + 15) / 16), vec_in);
  __syncthreads();  // the only block barrier after key_setup's

  const int r0 = 16 * warp;  // the warp's query rows r0 .. r0 + 15
  if (r0 >= T) return;

  // S = Q K^T for the warp's rows, all key tiles in registers (Q's region is overwritten)
  if (!uniform) {
    FragC acc[NKT];
#pragma unroll
    for (int n = 0; n < NKT; ++n) wmma::fill_fragment(acc[n], 0.0f);
#pragma unroll 1  // (unrolled, the hoisted fragment loads spill at D = 64 and 128 registers)
    for (int d = 0; d < D; d += 16) {
      FragA a;
      wmma::load_matrix_sync(a, Qw + d, LDH);
#pragma unroll
      for (int n = 0; n < NKT; ++n) {
        if (n < nkt) {
          FragBt bk;
          wmma::load_matrix_sync(bk, Ks + n * 16 * LDH + d, LDH);
          wmma::mma_sync(acc[n], a, bk, acc[n]);
        }
      }
    }
    __syncwarp();  // every lane has read Qw before the scores overwrite it
#pragma unroll
    for (int n = 0; n < NKT; ++n)
      if (n < nkt) wmma::store_matrix_sync(Sw + n * 16, acc[n], LDS, wmma::mem_row_major);
    __syncwarp();
  }

  // softmax statistics, dropout, bf16(Pdrop): TPR lanes per row, RPI rows at a time, keys
  // lane + TPR k. P row r (LDP bf16) lies over score rows <= r / 2, read in this or an earlier
  // iteration: the P values wait in registers until every lane has read its scores.
  {
    const int sub = lane / TPR, tl = lane % TPR;
#pragma unroll 1
    for (int it = 0; it < 16 / RPI; ++it) {
      const int r = RPI * it + sub, qi = r0 + r;
      const bool row_ok = qi < T, live = row_ok && !uniform;
      const float* srow = Sw + r * LDS;
      const float l = row_lse<TPR>(srow, s_valid, KP, T, scale, live, uniform, tl);
      const uint64_t idx0 = offset + (bh * (uint64_t)T + (uint64_t)qi) * (uint64_t)T;
      bf16 pb[KPL];
#pragma unroll
      for (int k = 0; k < KPL; ++k) {
        const int j = tl + TPR * k;
        const float pv = row_ok && j < KP ? row_prob(srow, s_valid, j, T, scale, l, uniform,
                                                     inv_t, p, dscale, seed, idx0)
                                          : 0.0f;
        pb[k] = __float2bfloat16_rn(pv);
      }
      if (row_ok && tl == 0) lse[bh * (uint64_t)T + qi] = l;
      __syncwarp();  // this iteration's score rows are read before P overwrites them
      bf16* prow = Pw + r * LDP;
#pragma unroll
      for (int k = 0; k < KPL; ++k) {
        const int j = tl + TPR * k;
        if (j < KP) prow[j] = pb[k];
      }
    }
    __syncwarp();
  }

  // O = Pdrop V for the warp's rows, all channel tiles in registers, staged over P
  {
    FragC acc[NCT];
#pragma unroll
    for (int c = 0; c < NCT; ++c) wmma::fill_fragment(acc[c], 0.0f);
    for (int kt = 0; kt < nkt; ++kt) {
      FragA a;
      wmma::load_matrix_sync(a, Pw + kt * 16, LDP);
#pragma unroll
      for (int c = 0; c < NCT; ++c) {
        FragB bv;
        wmma::load_matrix_sync(bv, Vs + kt * 16 * LDH + c * 16, LDH);
        wmma::mma_sync(acc[c], a, bv, acc[c]);
      }
    }
    __syncwarp();  // every lane has read Pw before the output overwrites it
#pragma unroll
    for (int c = 0; c < NCT; ++c)
      wmma::store_matrix_sync(Ow + c * 16, acc[c], LDO, wmma::mem_row_major);
    __syncwarp();
  }
  const int nq = min(16, T - r0);
  for (int e = lane; e < nq * C4; e += 32) {
    const int r = e / C4, c = (e % C4) * 4;
    const int64_t o = ((int64_t)b * T + r0 + r) * C + (int64_t)h * D + c;
    if constexpr (kOut)
      store_row4(out + o, out_low != nullptr ? out_low + o : nullptr, Ow + r * LDO + c, 1.0f,
                 vec_out, vec_low);
    else
      store_row4<false>(nullptr, out_low + o, Ow + r * LDO + c, 1.0f, vec_out, vec_low);
  }
}

// ---------------------------------------------------------------------------------------------
template <int D>
__global__ void __launch_bounds__(kThreads, 2)
    k_attn_tc_bwd(float* dqkv, uint16_t* dqkv_low, const float* dout, const float* qkv,
                  const float* out, const float* lse, const int32_t* mask, int T, int NH,
                  float scale, float p, float dscale, uint64_t seed, uint64_t offset,
                  const bj_step_scalars* sc, int vec_in, int vec_o, int vec_out, int vec_low) {
  seed = bjc::step_seed(sc, seed);  // per-step seed (bertj.h), before any draw
  typedef BwdLayout<D> L;
  constexpr int LDH = L::LDH, LDS = L::LDS, LDP = L::LDP, LDO = L::LDO, TPR = L::TPR;
  constexpr int NCT = D / 16, C4 = D / 4;
  BJ_TC_SMEM(smem);
  bf16* Ks = reinterpret_cast<bf16*>(smem + L::oK);    // (kMaxT, LDH)
  bf16* Vs = reinterpret_cast<bf16*>(smem + L::oV);    // (kMaxT, LDH)
  bf16* Qs = reinterpret_cast<bf16*>(smem + L::oQ);    // (kBwdQ, LDH) query chunk
  bf16* Gs = reinterpret_cast<bf16*>(smem + L::oG);    // (kBwdQ, LDH) bf16(dout) chunk
  float* Sf = reinterpret_cast<float*>(smem + L::oS);  // (kBwdQ, LDS) unscaled scores
  float* dPf = reinterpret_cast<float*>(smem + L::odP);  // (kBwdQ, LDS) dO V^T
  float* Stage = Sf;  // fp32 staging of dQ (kBwdQ, LDO), then dK, dV (kMaxT, LDO) over Sf, dPf
  bf16* dSb = reinterpret_cast<bf16*>(smem + L::odS);  // (kBwdQ, LDP) bf16(dS)
  bf16* Pdb = reinterpret_cast<bf16*>(smem + L::oPd);  // (kBwdQ, LDP) bf16(Pdrop)
  float* s_lse = reinterpret_cast<float*>(smem + L::oLse);
  float* s_D = reinterpret_cast<float*>(smem + L::oDel);
  int* s_valid = reinterpret_cast<int*>(smem + L::oValid);
  int* s_red = reinterpret_cast<int*>(smem + L::oRed);
  const int tid = threadIdx.x, warp = tid >> 5;
  const int h = blockIdx.x, b = blockIdx.y;
  const int C = NH * D;
  const int64_t C3 = 3LL * C;
  const float* qkv_b = qkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const float* dout_b = dout + (int64_t)b * T * C + (int64_t)h * D;
  const float* out_b = out + (int64_t)b * T * C + (int64_t)h * D;
  float* dqkv_b = dqkv + (int64_t)b * T * C3 + (int64_t)h * D;
  // dqkv_low's element for a dqkv address x is dqkv_low + (x - dqkv), derived at each store: a
  // pointer of its own kept live across the chunk loop makes ptxas spill at D = 64
  const uint64_t bh = (uint64_t)b * NH + h;
  const float inv_t = 1.0f / (float)T;

  int kend = key_setup(mask, b, T, s_valid, s_red);
  const bool uniform = kend == 0;
  if (uniform) kend = T;
  const int nkt = (kend + 15) / 16, KP = 16 * nkt;
  const bool own = warp < nkt;  // this warp's key tile (keys 16 warp ..) is computed
  {
    bf16* const dst[2] = {Ks, Vs};
    const float* const src[2] = {qkv_b + C, qkv_b + 2 * C};
    load_bf16_rows<D, LDH, kMaxT, 2>(dst, src, C3, kend, KP, vec_in);
  }

  FragC dk[NCT], dv[NCT];
#pragma unroll
  for (int c = 0; c < NCT; ++c) {
    wmma::fill_fragment(dk[c], 0.0f);
    wmma::fill_fragment(dv[c], 0.0f);
  }

  for (int q0 = 0; q0 < T; q0 += kBwdQ) {
    const int nq = min(kBwdQ, T - q0), nqt = (nq + 15) / 16;
    // bf16(dO) chunk and D_i = bf16(dO_i) . out_i (the C4 lanes of a row are adjacent lanes of
    // one warp); the dO, out and Q loads are all issued before the first use
    constexpr int GIT = kBwdQ * C4 / kThreads;
    static_assert(GIT * kThreads == kBwdQ * C4, "every thread runs the same iterations");
    static_assert(32 % C4 == 0, "a row's lanes sit in one warp");
    float4 g[GIT], o[GIT];
#pragma unroll
    for (int i = 0; i < GIT; ++i) {
      const int e = tid + i * kThreads, r = e / C4, c = (e % C4) * 4;
      g[i] = o[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (r < nq) {
        const float* gp = dout_b + (int64_t)(q0 + r) * C + c;
        const float* op = out_b + (int64_t)(q0 + r) * C + c;
        if (vec_o) {
          g[i] = *reinterpret_cast<const float4*>(gp);
          o[i] = *reinterpret_cast<const float4*>(op);
        } else {
          g[i] = make_float4(gp[0], gp[1], gp[2], gp[3]);
          o[i] = make_float4(op[0], op[1], op[2], op[3]);
        }
      }
    }
    {
      bf16* const dst[1] = {Qs};
      const float* const src[1] = {qkv_b + (int64_t)q0 * C3};
      load_bf16_rows<D, LDH, kBwdQ, 1>(dst, src, C3, nq, 16 * nqt, vec_in);
    }
#pragma unroll
    for (int i = 0; i < GIT; ++i) {
      const int e = tid + i * kThreads, r = e / C4, c = (e % C4) * 4;
      const __nv_bfloat162 g01 = __floats2bfloat162_rn(g[i].x, g[i].y);
      const __nv_bfloat162 g23 = __floats2bfloat162_rn(g[i].z, g[i].w);
      __nv_bfloat162* gs = reinterpret_cast<__nv_bfloat162*>(Gs + r * LDH + c);
      gs[0] = g01;
      gs[1] = g23;
      float part = __bfloat162float(g01.x) * o[i].x;
      part = fmaf(__bfloat162float(g01.y), o[i].y, part);
      part = fmaf(__bfloat162float(g23.x), o[i].z, part);
      part = fmaf(__bfloat162float(g23.y), o[i].w, part);
      part = group_sum<C4>(part);
      if (e % C4 == 0) s_D[r] = part;
    }
    if (tid < kBwdQ) s_lse[tid] = tid < nq ? lse[bh * (uint64_t)T + q0 + tid] : 0.0f;
    __syncthreads();  // (the first one also orders the K, V loads)

    // S = Q K^T and dP = dO V^T for the warp's key tile, one row tile of the chunk at a time
    // (two live accumulators besides dK, dV: no register spills at 128 registers)
    if (own) {
#pragma unroll
      for (int rt = 0; rt < kBwdQ / 16; ++rt) {
        if (rt < nqt) {
          FragC s, dp;
          wmma::fill_fragment(s, 0.0f);
          wmma::fill_fragment(dp, 0.0f);
#pragma unroll
          for (int d = 0; d < D; d += 16) {
            FragBt bk, bv;
            FragA aq, ag;
            wmma::load_matrix_sync(bk, Ks + warp * 16 * LDH + d, LDH);
            wmma::load_matrix_sync(aq, Qs + rt * 16 * LDH + d, LDH);
            wmma::mma_sync(s, aq, bk, s);
            wmma::load_matrix_sync(bv, Vs + warp * 16 * LDH + d, LDH);
            wmma::load_matrix_sync(ag, Gs + rt * 16 * LDH + d, LDH);
            wmma::mma_sync(dp, ag, bv, dp);
          }
          wmma::store_matrix_sync(Sf + rt * 16 * LDS + warp * 16, s, LDS, wmma::mem_row_major);
          wmma::store_matrix_sync(dPf + rt * 16 * LDS + warp * 16, dp, LDS, wmma::mem_row_major);
        }
      }
    }
    __syncthreads();

    // P from lse, dropout, dS = bf16(P (dP f - D_i)), Pd = bf16(P f): TPR threads per row
    {
      const int r = tid / TPR, lane = tid % TPR, qi = q0 + r;
      const bool row_ok = qi < T;
      const float l = s_lse[r], Di = s_D[r];
      const float* srow = Sf + r * LDS;
      const float* prow = dPf + r * LDS;
      const uint64_t idx0 = offset + (bh * (uint64_t)T + (uint64_t)qi) * (uint64_t)T;
#pragma unroll 1
      for (int j = lane; j < KP; j += TPR) {
        float P = 0.0f, f = 1.0f, ds = 0.0f;
        if (row_ok) {
          if (uniform) P = j < T ? inv_t : 0.0f;
          else if (s_valid[j]) P = expf(scale * srow[j] - l);
          if (p > 0.0f && P != 0.0f) f = drop_factor(p, dscale, seed, idx0 + j);
          if (!uniform && P != 0.0f) ds = P * (prow[j] * f - Di);
        }
        dSb[r * LDP + j] = __float2bfloat16_rn(ds);
        Pdb[r * LDP + j] = __float2bfloat16_rn(P * f);
      }
    }
    __syncthreads();

    // dV += Pd^T dO, dK += dS^T Q for the warp's key tile (the transposed tiles are col-major)
    if (own) {
#pragma unroll
      for (int ks = 0; ks < kBwdQ / 16; ++ks) {
        if (ks < nqt) {
          FragAt as, ap;
          wmma::load_matrix_sync(as, dSb + ks * 16 * LDP + warp * 16, LDP);
          wmma::load_matrix_sync(ap, Pdb + ks * 16 * LDP + warp * 16, LDP);
#pragma unroll
          for (int c = 0; c < NCT; ++c) {
            FragB bq, bg;
            wmma::load_matrix_sync(bq, Qs + ks * 16 * LDH + c * 16, LDH);
            wmma::load_matrix_sync(bg, Gs + ks * 16 * LDH + c * 16, LDH);
            wmma::mma_sync(dk[c], as, bq, dk[c]);
            wmma::mma_sync(dv[c], ap, bg, dv[c]);
          }
        }
      }
    }
    // dQ = dS K: tile `warp` (row tile warp / NCT, channel tile warp % NCT), staged over Sf
    {
      const int rt = warp / NCT, ct = warp % NCT;
      if (rt < nqt && rt < kBwdQ / 16) {
        FragC acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int kt = 0; kt < nkt; ++kt) {
          FragA a;
          FragB bk;
          wmma::load_matrix_sync(a, dSb + rt * 16 * LDP + kt * 16, LDP);
          wmma::load_matrix_sync(bk, Ks + kt * 16 * LDH + ct * 16, LDH);
          wmma::mma_sync(acc, a, bk, acc);
        }
        wmma::store_matrix_sync(Stage + rt * 16 * LDO + ct * 16, acc, LDO, wmma::mem_row_major);
      }
    }
    __syncthreads();
    for (int e = tid; e < nq * C4; e += kThreads) {
      const int r = e / C4, c = (e % C4) * 4;
      const int64_t o = (int64_t)(q0 + r) * C3 + c;
      float* row = dqkv_b + o;
      store_row4(row, dqkv_low != nullptr ? dqkv_low + (row - dqkv) : nullptr, Stage + r * LDO + c,
                 scale, vec_out, vec_low);
    }
    __syncthreads();  // Qs, Gs, Sf, dPf, dSb, Pdb, s_lse, s_D are rewritten by the next chunk
  }

  // dK (x scale), then dV, through the staging area; keys from KP on are padded: 0
#pragma unroll  // (pass must be a constant: a runtime choice of dk / dv puts them in local memory)
  for (int pass = 0; pass < 2; ++pass) {
    if (own) {
#pragma unroll
      for (int c = 0; c < NCT; ++c)
        wmma::store_matrix_sync(Stage + warp * 16 * LDO + c * 16, pass == 0 ? dk[c] : dv[c], LDO,
                                wmma::mem_row_major);
    }
    __syncthreads();
    const float mul = pass == 0 ? scale : 1.0f;
    const int64_t cofs = pass == 0 ? C : 2 * C;
    for (int e = tid; e < T * C4; e += kThreads) {
      const int j = e / C4, c = (e % C4) * 4;
      const int64_t o = cofs + (int64_t)j * C3 + c;
      float* row = dqkv_b + o;
      uint16_t* low = dqkv_low != nullptr ? dqkv_low + (row - dqkv) : nullptr;
      if (j < KP) {
        store_row4(row, low, Stage + j * LDO + c, mul, vec_out, vec_low);
      } else {
        const float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (vec_out) {
          *reinterpret_cast<float4*>(row) = z;
        } else {
          row[0] = row[1] = row[2] = row[3] = 0.0f;
        }
        if (low != nullptr) store_low4(low, z, vec_low);
      }
    }
    __syncthreads();
  }
}

// ---------------------------------------------------------------------------------------------
int unsupported(const char* op, int T, int D) {
  return bjc::fail(BJ_ERR_UNSUPPORTED, "%s: T = %d, D = %d (supported: T <= %d, D in {32, 64})",
                   op, T, D, kMaxT);
}

// Opts `kernel` in to `bytes` of dynamic shared memory and asks for the largest shared-memory
// carveout (a hint: two or three blocks per SM need more than the default split may give), once
// per device. BJ_OK or BJ_ERR_CUDA naming `op`.
int prepare(const void* kernel, int bytes, unsigned* done_smem, unsigned* done_carveout,
            const char* op) {
  BJ_TRY(bjc::allow_smem(kernel, bytes, done_smem, op));
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return bjc::fail(BJ_ERR_CUDA, "%s: %s", op, cudaGetErrorString(e));
  const unsigned bit = dev < 32 ? (1u << dev) : 0u;
  if (bit != 0 && (__atomic_load_n(done_carveout, __ATOMIC_ACQUIRE) & bit)) return BJ_OK;
  e = cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                           (int)cudaSharedmemCarveoutMaxShared);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return bjc::fail(BJ_ERR_CUDA, "%s: %s (shared memory carveout)", op, cudaGetErrorString(e));
  }
  if (bit != 0) __atomic_fetch_or(done_carveout, bit, __ATOMIC_RELEASE);
  return BJ_OK;
}

// QC = kFwdWarp selects k_attn_tc_fwd_warp (BJ_ATTN_TC_FWD=warp), else k_attn_tc_fwd<D, QC>.
constexpr int kFwdWarp = 0;
template <int D, int QC>
constexpr int forward_smem() {
  if constexpr (QC == kFwdWarp) return FwdWarpLayout<D>::kBytes;
  else return FwdLayout<D, QC>::kBytes;
}
template <int D, int QC, bool kOut>
constexpr auto forward_fn() {
  if constexpr (QC == kFwdWarp) return &k_attn_tc_fwd_warp<D, kOut>;
  else return &k_attn_tc_fwd<D, QC, kOut>;
}

// (One instantiation per kernel: its statics remember that kernel's shared-memory opt-in.)
template <int D, int QC, bool kOut>
int forward_kernel(const char* op, float* out, uint16_t* out_low, float* lse, const float* qkv,
                   const int32_t* mask, int B, int T, int NH, float scale, float p, float dscale,
                   uint64_t seed, uint64_t offset, const bj_step_scalars* sc, void* stream) {
  constexpr int smem = forward_smem<D, QC>();
  auto kern = forward_fn<D, QC, kOut>();
  static unsigned done = 0, done_carveout = 0;
  BJ_TRY(prepare((const void*)kern, smem, &done, &done_carveout, op));
  const dim3 grid((unsigned)NH, (unsigned)B);
  BJ_LAUNCH(kern, grid, kThreads, smem, bjc::as_stream(stream), out, out_low, lse, qkv, mask, T,
            NH, scale, p, dscale, seed, offset, sc, bjc::aligned16(qkv) ? 1 : 0,
            bjc::aligned16(out) ? 1 : 0, bjc::aligned8(out_low) ? 1 : 0);
  return bjc::check_launch(op);
}

// out == NULL (inference: only out_low, not NULL) takes the kernel without the fp32 stores.
template <int D, int QC>
int forward_impl(const char* op, float* out, uint16_t* out_low, float* lse, const float* qkv,
                 const int32_t* mask, int B, int T, int NH, float scale, float p, float dscale,
                 uint64_t seed, uint64_t offset, const bj_step_scalars* sc, void* stream) {
  if (out != nullptr)
    return forward_kernel<D, QC, true>(op, out, out_low, lse, qkv, mask, B, T, NH, scale, p,
                                       dscale, seed, offset, sc, stream);
  return forward_kernel<D, QC, false>(op, out, out_low, lse, qkv, mask, B, T, NH, scale, p, dscale,
                                      seed, offset, sc, stream);
}

template <int D>
int backward_impl(const char* op, float* dqkv, uint16_t* dqkv_low, const float* dout,
                  const float* qkv, const float* out, const float* lse, const int32_t* mask, int B,
                  int T, int NH, float scale, float p, float dscale, uint64_t seed,
                  uint64_t offset, const bj_step_scalars* sc, void* stream) {
  constexpr int smem = BwdLayout<D>::kBytes;
  auto kern = &k_attn_tc_bwd<D>;
  static unsigned done = 0, done_carveout = 0;
  BJ_TRY(prepare((const void*)kern, smem, &done, &done_carveout, op));
  const dim3 grid((unsigned)NH, (unsigned)B);
  BJ_LAUNCH(kern, grid, kThreads, smem, bjc::as_stream(stream), dqkv, dqkv_low, dout, qkv, out,
            lse, mask, T, NH, scale, p, dscale, seed, offset, sc, bjc::aligned16(qkv) ? 1 : 0,
            bjc::aligned16(dout) && bjc::aligned16(out) ? 1 : 0, bjc::aligned16(dqkv) ? 1 : 0,
            bjc::aligned8(dqkv_low) ? 1 : 0);
  return bjc::check_launch(op);
}
}  // namespace

extern "C" int bj_cuda_attention_tc_forward(float* out,            // (B, T, C) or NULL
                                            uint16_t* out_low,     // (B, T, C) bf16 or NULL
                                            float* lse,            // (B, NH, T)
                                            const float* qkv,      // (B, T, 3C)
                                            const int32_t* mask,   // (B, T) or NULL
                                            int B, int T, int NH, int D, float p, uint64_t seed,
                                            uint64_t offset, const bj_step_scalars* sc,
                                            void* stream) {
  const char* op = "bj_cuda_attention_tc_forward";
  BJ_CHECK(lse != nullptr && qkv != nullptr, "bj_cuda_attention_tc_forward",
           "lse or qkv is NULL");
  BJ_CHECK(out != nullptr || out_low != nullptr, "bj_cuda_attention_tc_forward",
           "out and out_low are both NULL (at least one output is needed)");
  {
    const int rc_ = bjc::check_attention_args("bj_cuda_attention_tc_forward", B, T, NH, D, p);
    if (rc_ != BJ_OK) return rc_;
  }
  if (T > kMaxT || (D != 32 && D != 64)) return unsupported(op, T, D);
  if (B > 65535 || NH > 65535)
    return bjc::fail(BJ_ERR_UNSUPPORTED, "%s: B = %d or NH = %d exceeds 65535", op, B, NH);
  const float scale = 1.0f / std::sqrt((float)D);
  const float dscale = 1.0f / (1.0f - p);
  const char* impl = std::getenv("BJ_ATTN_TC_FWD");
  if (impl != nullptr && std::strcmp(impl, "warp") == 0)
    return D == 32 ? forward_impl<32, kFwdWarp>(op, out, out_low, lse, qkv, mask, B, T, NH, scale,
                                                p, dscale, seed, offset, sc, stream)
                   : forward_impl<64, kFwdWarp>(op, out, out_low, lse, qkv, mask, B, T, NH, scale,
                                                p, dscale, seed, offset, sc, stream);
  const char* rows = std::getenv("BJ_ATTN_TC_FWD_ROWS");
  const bool r32 = rows != nullptr ? std::atoi(rows) == 32 : kFwdQDefault == 32;
  if (D == 32)
    return r32 ? forward_impl<32, 32>(op, out, out_low, lse, qkv, mask, B, T, NH, scale, p, dscale,
                                      seed, offset, sc, stream)
               : forward_impl<32, 64>(op, out, out_low, lse, qkv, mask, B, T, NH, scale, p, dscale,
                                      seed, offset, sc, stream);
  return r32 ? forward_impl<64, 32>(op, out, out_low, lse, qkv, mask, B, T, NH, scale, p, dscale,
                                    seed, offset, sc, stream)
             : forward_impl<64, 64>(op, out, out_low, lse, qkv, mask, B, T, NH, scale, p, dscale,
                                    seed, offset, sc, stream);
}

extern "C" int bj_cuda_attention_tc_backward(float* dqkv,          // (B, T, 3C), "="
                                             uint16_t* dqkv_low,   // (B, T, 3C) bf16 or NULL
                                             const float* dout,    // (B, T, C)
                                             const float* qkv,     // (B, T, 3C)
                                             const float* out,     // (B, T, C), saved
                                             const float* lse,     // (B, NH, T), saved
                                             const int32_t* mask,  // (B, T) or NULL
                                             int B, int T, int NH, int D, float p, uint64_t seed,
                                             uint64_t offset, const bj_step_scalars* sc,
                                             void* stream) {
  const char* op = "bj_cuda_attention_tc_backward";
  BJ_CHECK(dqkv != nullptr && dout != nullptr && qkv != nullptr, "bj_cuda_attention_tc_backward",
           "dqkv, dout or qkv is NULL");
  BJ_CHECK(out != nullptr && lse != nullptr, "bj_cuda_attention_tc_backward",
           "out or lse is NULL");
  {
    const int rc_ = bjc::check_attention_args("bj_cuda_attention_tc_backward", B, T, NH, D, p);
    if (rc_ != BJ_OK) return rc_;
  }
  if (T > kMaxT || (D != 32 && D != 64)) return unsupported(op, T, D);
  if (B > 65535 || NH > 65535)
    return bjc::fail(BJ_ERR_UNSUPPORTED, "%s: B = %d or NH = %d exceeds 65535", op, B, NH);
  const float scale = 1.0f / std::sqrt((float)D);
  const float dscale = 1.0f / (1.0f - p);
  if (D == 32)
    return backward_impl<32>(op, dqkv, dqkv_low, dout, qkv, out, lse, mask, B, T, NH, scale, p,
                             dscale, seed, offset, sc, stream);
  return backward_impl<64>(op, dqkv, dqkv_low, dout, qkv, out, lse, mask, B, T, NH, scale, p,
                           dscale, seed, offset, sc, stream);
}
