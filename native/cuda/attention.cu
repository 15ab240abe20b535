// Fused self-attention core (flash-attention style, fp32), forward and backward.
//
// Layout: qkv (B, T, 3C) holds per token [q (C) | k (C) | v (C)], C = NH * D, head h at channels
// [h*D, (h+1)*D) of each part; out (B, T, C); lse (B, NH, T); mask (B, T) int32, 0 = padded key
// (NULL = all real). Semantics are those of native/cpu/attention.cpp:
//   s_ij = scale * q_i . k_j (scale = 1/sqrt(D)) over real keys; lse_i = log sum_j exp(s_ij);
//   P_ij = exp(s_ij - lse_i); Pdrop_ij = P_ij * keep_ij / (1 - p) with the Philox uniform of
//   element offset + ((b*NH + h)*T + i)*T + j; out_i = sum_j Pdrop_ij v_j.
//   A batch with no real key attends uniformly: P_ij = 1/T, lse_i = log(T), and its rows add
//   nothing to dq or dk (only dv_j += Pdrop_ij dout_i).
// Backward ("=" into dqkv): D_i = dout_i . out_i; dP_ij = keep_ij/(1-p) * dout_i . v_j;
//   dS_ij = P_ij (dP_ij - D_i); dq_i = scale sum_j dS_ij k_j; dk_j = scale sum_i dS_ij q_i;
//   dv_j = sum_i Pdrop_ij dout_i.
//
// Kernels (256 threads = 16 x 16, tx = tid % 16, ty = tid / 16; head dim D in {16, 32, 64, 128}
// is a template parameter, any other D returns BJ_ERR_UNSUPPORTED; tiles in shared memory with
// row stride D + 4 floats, which makes the float4 reads of 8 different rows by a quarter warp
// conflict-free):
// - k_attn_fwd<D, BQ, BK>: grid (ceil(T/BQ), NH, B). The block keeps its BQ query rows in shared
//   memory and walks key tiles of BK: S = Q K^T as a 16x16 grid of (BQ/16 x BK/16) register
//   micro-tiles (rows ty + 16i, keys tx + 16j), online softmax per row (max/sum over the 16 tx
//   lanes by shuffles), dropout, P (BQ x BK) through shared memory, O += P V with each thread
//   owning rows ty + 16i x D/16 channels. The T x T scores never reach global memory; the
//   output is O / l and lse = m + log(l). Keys after the batch's last real key are not visited
//   (16-key granularity: the tile body is instantiated for 1..BK/16 key micro-tiles), and key
//   tiles without a real key are skipped.
// - k_attn_bwd_fused<D, BQ = 32>: the backward for D in {32, 64} and T <= 128: grid (NH, B), one
//   block owns every key of its head (K, V in shared memory, dK, dV in registers), walks the query
//   tiles and computes P once per element: S^T, dP^T, then dV += Pdrop^T dO, dK += dS^T Q and
//   dQ = dS K of the tile (written directly). Keys after the last real key are not computed (the
//   body is instantiated per 16-key count). 153 KB of shared memory at D = 64, 224 registers:
//   one block per SM. Deterministic (fixed summation order, no atomics).
//   The two kernels below remain the backward for other D or T (or BJ_ATTN_FUSED_BWD=0).
// - k_attn_bwd_kv<D, BK, BQ>: grid (ceil(T/BK), NH, B). The block owns BK keys (K, V in shared
//   memory, dK and dV in registers) and walks all query tiles in order: recompute S^T and dP^T,
//   P = exp(S - lse) (lse from the forward), dS, then dV += Pdrop^T dO and dK += dS^T Q. D_i is
//   recomputed per query tile from dout and out while loading dO (no scratch). Deterministic: each
//   dK/dV element is owned by one thread and summed in a fixed order; no atomics.
// - k_attn_bwd_q<D, BQ, BK>: grid (ceil(T/BQ), NH, B). The block owns BQ queries and walks the
//   key tiles: recompute S and dP, dS through shared memory, dQ += dS K. Also deterministic.
// Dynamic shared memory per block at D = 64: fwd 72.7 KB, bwd_kv 110.6 KB (76.8 KB with a query
// tile of 32), bwd_q 90.1 KB (opted in above 48 KB once per device). No global scratch.
//
// Two implementations, picked per call by the environment variable BJ_ATTN_IMPL:
// - "v1": the kernels above, as they were before the v2 work (one Philox call per dropout
//   element in the forward and the fused backward; backward k_attn_bwd_fused for D in {32, 64},
//   T <= 128); "v1fwd" / "v1bwd": v1 for that direction only, v2 for the other.
// - default ("v2"): for D <= 64 and T <= 128 the forward k_attn_fwd2 (K, V and the mask loaded
//   once per block, all loads in flight together; 107.5 KB at D = 64, two blocks per SM); other
//   shapes k_attn_fwd. With dropout, both forwards draw one Philox call per 4 elements when
//   (offset | T) % 4 == 0 (whole Philox groups per row; keep bits move between lanes by
//   shuffles). Backward for D in {32, 64}, T <= 128: k_attn_bwd2 (512 threads, see there;
//   161.8 KB at D = 64, one block of 16 warps per SM); other shapes the two-kernel backward.
//   v2 and v1 agree up to fp32 rounding (same masks, same semantics, both deterministic).
// - "v3" / "v3bwd": the backward k_attn_bwd3 for D = 64, T <= 128 (register micro-tiles with
//   fewer shared-memory loads per FMA, see there; other shapes the v2 backward), the forward of
//   v2. Same semantics and masks as v2, deterministic. The DEFAULT backward since 2026-11-26
//   (measured faster on an H200, see attn_v3_bwd); "v2" / "v2bwd" select v2's backward.
// Dropout element e (the index above) uses word e & 3 of the Philox call at counter e >> 2
// (bertj_philox.h), so a row's 4-aligned groups of keys share one call.
// sc (per-step scalars in device memory, bertj.h), when not NULL: every kernel above replaces its
// seed argument with sc->seed at its start (bjc::step_seed), so every variant draws the same masks.
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common.cuh"

namespace {
constexpr int kThreads = 256;

// Tile sizes per head dim: forward (FQ queries x FK keys), dK/dV kernel (KK keys x KQ queries),
// dQ kernel (QQ queries x QK keys). BJ_ATTN_D64_KV_QTILE (64 or 32) picks the dK/dV kernel's
// query tile at D = 64: 64 gives more FMAs per shared-memory load but spills ~14 registers at two
// blocks per SM; 32 does not spill (a build-time knob for benchmarking both).
// BJ_ATTN_FUSED_BWD (default 1): D in {32, 64} with T <= 128 use the one-kernel backward
// k_attn_bwd_fused; 0 keeps the two-kernel path everywhere (for benchmarking both).
#ifndef BJ_ATTN_FUSED_BWD
#define BJ_ATTN_FUSED_BWD 1
#endif
#ifndef BJ_ATTN_D64_KV_QTILE
#define BJ_ATTN_D64_KV_QTILE 64
#endif
template <int D>
struct Tiles {
  static constexpr int FQ = 64, FK = 64, KK = 64, QQ = 64, QK = 64;
  static constexpr int KQ = D == 64 ? BJ_ATTN_D64_KV_QTILE : 64;
};
template <>
struct Tiles<128> {
  static constexpr int FQ = 64, FK = 32, KK = 32, KQ = 32, QQ = 64, QK = 32;
};

// Channel of value v (of D/16) owned by lane tx in the P V and dS K products.
template <int D>
__device__ __forceinline__ int dim_of(int tx, int v) {
  if constexpr (D >= 64) {
    return (v >> 2) * 64 + tx * 4 + (v & 3);
  } else {
    return tx * (D / 16) + v;
  }
}

// o[v] = row[dim_of(tx, v)] from a shared-memory row (16-byte aligned).
template <int D>
__device__ __forceinline__ void load_dims(const float* row, int tx, float (&o)[D / 16]) {
  if constexpr (D >= 64) {
#pragma unroll
    for (int g = 0; g < D / 64; ++g) {
      const float4 t = *reinterpret_cast<const float4*>(row + g * 64 + tx * 4);
      o[4 * g] = t.x;
      o[4 * g + 1] = t.y;
      o[4 * g + 2] = t.z;
      o[4 * g + 3] = t.w;
    }
  } else if constexpr (D == 32) {
    const float2 t = *reinterpret_cast<const float2*>(row + tx * 2);
    o[0] = t.x;
    o[1] = t.y;
  } else {
    static_assert(D == 16, "head dim");
    o[0] = row[tx];
  }
}

// row[dim_of(tx, v)] = o[v] * mul into global memory; vec: row is 16-byte aligned.
template <int D>
__device__ __forceinline__ void store_dims(float* row, int tx, const float (&o)[D / 16], float mul,
                                           bool vec) {
  if (vec) {
    if constexpr (D >= 64) {
#pragma unroll
      for (int g = 0; g < D / 64; ++g)
        *reinterpret_cast<float4*>(row + g * 64 + tx * 4) =
            make_float4(o[4 * g] * mul, o[4 * g + 1] * mul, o[4 * g + 2] * mul,
                        o[4 * g + 3] * mul);
    } else if constexpr (D == 32) {
      *reinterpret_cast<float2*>(row + tx * 2) = make_float2(o[0] * mul, o[1] * mul);
    } else {
      row[tx] = o[0] * mul;
    }
  } else {
#pragma unroll
    for (int v = 0; v < D / 16; ++v) row[dim_of<D>(tx, v)] = o[v] * mul;
  }
}

// dst[r * LD + c] = src[r * gstride + c] for r < nvalid, c < D; zero rows in [nvalid, ROWS).
template <int D, int ROWS, int LD, int NT = kThreads>
__device__ __forceinline__ void load_tile(float* dst, const float* src, int64_t gstride,
                                          int nvalid, bool vec) {
  constexpr int C4 = D / 4;
  for (int e = threadIdx.x; e < ROWS * C4; e += NT) {
    const int r = e / C4, c = (e % C4) * 4;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r < nvalid) {
      const float* p = src + r * gstride + c;
      v = vec ? *reinterpret_cast<const float4*>(p) : make_float4(p[0], p[1], p[2], p[3]);
    }
    *reinterpret_cast<float4*>(dst + r * LD + c) = v;
  }
}

// dO tile into shared memory (like load_tile, global row stride C) and sD[r] = dout_r . out_r.
// The D/4 lanes of one row are consecutive lanes of one warp: reduced by shuffles.
template <int D, int ROWS, int LD>
__device__ __forceinline__ void load_dout_and_delta(float* dOs, float* sD, const float* dout_rows,
                                                    const float* out_rows, int C, int nvalid,
                                                    bool vec) {
  constexpr int C4 = D / 4;
  static_assert((ROWS * C4) % kThreads == 0, "every thread must run the same iterations");
  static_assert(32 % C4 == 0, "a row's lanes must sit in one warp");
  for (int e = threadIdx.x; e < ROWS * C4; e += kThreads) {
    const int r = e / C4, c = (e % C4) * 4;
    float4 g = make_float4(0.0f, 0.0f, 0.0f, 0.0f), o = g;
    if (r < nvalid) {
      const float* gp = dout_rows + (int64_t)r * C + c;
      const float* op = out_rows + (int64_t)r * C + c;
      if (vec) {
        g = *reinterpret_cast<const float4*>(gp);
        o = *reinterpret_cast<const float4*>(op);
      } else {
        g = make_float4(gp[0], gp[1], gp[2], gp[3]);
        o = make_float4(op[0], op[1], op[2], op[3]);
      }
    }
    *reinterpret_cast<float4*>(dOs + r * LD + c) = g;
    float part = g.x * o.x;
    part = fmaf(g.y, o.y, part);
    part = fmaf(g.z, o.z, part);
    part = fmaf(g.w, o.w, part);
#pragma unroll
    for (int off = C4 / 2; off > 0; off >>= 1) part += __shfl_xor_sync(bjc::kFull, part, off);
    if (e % C4 == 0) sD[r] = part;
  }
}

// Whether batch b has a real key (block-wide; every thread gets the answer).
__device__ __forceinline__ bool batch_has_real_key(const int32_t* mask, int b, int T) {
  int any = mask == nullptr ? 1 : 0;
  if (mask != nullptr)
    for (int j = threadIdx.x; j < T; j += kThreads) any |= (mask[(int64_t)b * T + j] != 0);
  return __syncthreads_or(any) != 0;
}

// One past the last real key of batch b (block-wide; every thread gets it): 0 when the batch has
// no real key, T without a mask. Keys at or after it are padded and contribute exactly 0.
__device__ __forceinline__ int key_end(const int32_t* mask, int b, int T) {
  if (mask == nullptr) return T;
  __shared__ int s_kend[kThreads / 32];
  int last = 0;
  for (int j = threadIdx.x; j < T; j += kThreads)
    if (mask[(int64_t)b * T + j] != 0) last = j + 1;
  last = bjc::warp_max(last);
  if ((threadIdx.x & 31) == 0) s_kend[threadIdx.x >> 5] = last;
  __syncthreads();
  int r = 0;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) r = max(r, s_kend[w]);
  return r;
}

__device__ __forceinline__ int key_ok(const int32_t* mask, int b, int T, int j, bool uniform) {
  return j < T && (uniform || mask == nullptr || mask[(int64_t)b * T + j] != 0);
}

__device__ __forceinline__ float max16(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(bjc::kFull, v, o));
  return v;
}
__device__ __forceinline__ float sum16(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(bjc::kFull, v, o);
  return v;
}

__device__ __forceinline__ float dot4(const float4 a, const float4 b, float acc) {
  acc = fmaf(a.x, b.x, acc);
  acc = fmaf(a.y, b.y, acc);
  acc = fmaf(a.z, b.z, acc);
  return fmaf(a.w, b.w, acc);
}

// keep / (1 - p) of dropout element idx (p > 0).
__device__ __forceinline__ float drop_factor(float p, float dscale, uint64_t seed, uint64_t idx) {
  return bj_dropout_uniform(seed, idx) >= p ? dscale : 0.0f;
}

// Keep bits of one row's keys tx + 16j (j < NJ; bit j) for lanes tx of a 16-lane group, the row's
// key 0 having element index idx0 (p > 0). al4 (idx0 % 4 == 0, the same for the whole group):
// lane tx draws the Philox group of keys 4tx .. 4tx + 3 and the bits move by shuffles (one call per
// 4 elements); otherwise one call per element, in a loop that is not unrolled (registers).
template <int NJ>
__device__ __forceinline__ unsigned row_keep_bits(float p, uint64_t seed, uint64_t idx0, int tx,
                                                  bool al4) {
  unsigned r = 0;
  if (al4) {
    unsigned bits = 0;
    if (4 * tx < 16 * NJ) {
      float u[4];
      bj_dropout_uniform4(seed, (idx0 >> 2) + (uint64_t)tx, u);
      bits = (u[0] >= p ? 1u : 0u) | (u[1] >= p ? 2u : 0u) | (u[2] >= p ? 4u : 0u) |
             (u[3] >= p ? 8u : 0u);
    }
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      const unsigned kb = __shfl_sync(bjc::kFull, bits, (tx >> 2) + 4 * j, 16);
      r |= ((kb >> (tx & 3)) & 1u) << j;
    }
  } else {
#pragma unroll 1
    for (int j = 0; j < NJ; ++j)
      r |= (bj_dropout_uniform(seed, idx0 + (uint64_t)(tx + 16 * j)) >= p ? 1u : 0u) << j;
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// One key tile of the forward: keys k0 + tx + 16j for j < NJ only (the tile's keys from 16 * NJ
// on are padded: NJ is a template parameter so that the loops carry no guards).
template <int D, int BQ, int BK, int NJ, bool G4>
__device__ __forceinline__ void fwd_tile(const float* Qs, const float* Ks, const float* Vs,
                                         float* Ps, const int* s_valid, float (&m)[BQ / 16],
                                         float (&l)[BQ / 16], float (&o)[BQ / 16][D / 16],
                                         int q0, int k0, int T, uint64_t bh, bool uniform,
                                         float scale, float p, float dscale, uint64_t seed,
                                         uint64_t offset, bool al4) {
  constexpr int LD = D + 4, LP = BK + 16, RM = BQ / 16, NV = D / 16, KP = 16 * NJ;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  float s[RM][NJ];
#pragma unroll
  for (int i = 0; i < RM; ++i)
#pragma unroll
    for (int j = 0; j < NJ; ++j) s[i][j] = 0.0f;
#pragma unroll 4
  for (int d = 0; d < D; d += 4) {
    float4 qa[RM], kb[NJ];
#pragma unroll
    for (int i = 0; i < RM; ++i)
      qa[i] = *reinterpret_cast<const float4*>(Qs + (ty + 16 * i) * LD + d);
#pragma unroll
    for (int j = 0; j < NJ; ++j)
      kb[j] = *reinterpret_cast<const float4*>(Ks + (tx + 16 * j) * LD + d);
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < NJ; ++j) s[i][j] = dot4(qa[i], kb[j], s[i][j]);
  }

  int kvj[NJ];
#pragma unroll
  for (int j = 0; j < NJ; ++j) kvj[j] = s_valid[tx + 16 * j];
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      s[i][j] = kvj[j] ? (uniform ? 0.0f : scale * s[i][j]) : -INFINITY;
      mx = fmaxf(mx, s[i][j]);
    }
    mx = max16(mx);
    const float mnew = fmaxf(m[i], mx);  // finite: this tile has a real key
    const float corr = expf(m[i] - mnew);
    const int qi = q0 + ty + 16 * i;
    const uint64_t idx0 = offset + (bh * (uint64_t)T + (uint64_t)qi) * (uint64_t)T + k0;
    if (G4 && p > 0.0f && al4) {
      // idx0 % 4 == 0: lane tx draws the group of keys 4tx .. 4tx + 3 (one Philox call) and the
      // lane of key tx + 16j takes bit (tx & 3) of lane (tx >> 2) + 4j's keep bits.
      unsigned bits = 0;
      if (4 * tx < KP) {
        float u[4];
        bj_dropout_uniform4(seed, (idx0 >> 2) + (uint64_t)tx, u);
        bits = (u[0] >= p ? 1u : 0u) | (u[1] >= p ? 2u : 0u) | (u[2] >= p ? 4u : 0u) |
               (u[3] >= p ? 8u : 0u);
      }
      float rs = 0.0f;
#pragma unroll
      for (int j = 0; j < NJ; ++j) {
        const unsigned kb = __shfl_sync(bjc::kFull, bits, (tx >> 2) + 4 * j, 16);
        const float e = kvj[j] ? expf(s[i][j] - mnew) : 0.0f;
        rs += e;
        Ps[(ty + 16 * i) * LP + tx + 16 * j] = ((kb >> (tx & 3)) & 1u) ? e * dscale : 0.0f;
      }
      rs = sum16(rs);
      l[i] = l[i] * corr + rs;
      m[i] = mnew;
#pragma unroll
      for (int v = 0; v < NV; ++v) o[i][v] *= corr;
      continue;
    }
    float rs = 0.0f;
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      const float e = kvj[j] ? expf(s[i][j] - mnew) : 0.0f;
      rs += e;
      float pd = e;
      if (p > 0.0f && e != 0.0f) pd = e * drop_factor(p, dscale, seed, idx0 + tx + 16 * j);
      Ps[(ty + 16 * i) * LP + tx + 16 * j] = pd;
    }
    rs = sum16(rs);
    l[i] = l[i] * corr + rs;
    m[i] = mnew;
#pragma unroll
    for (int v = 0; v < NV; ++v) o[i][v] *= corr;
  }
  __syncthreads();

#pragma unroll 2
  for (int c = 0; c < KP; c += 4) {
    float4 pa[RM];
#pragma unroll
    for (int i = 0; i < RM; ++i)
      pa[i] = *reinterpret_cast<const float4*>(Ps + (ty + 16 * i) * LP + c);
    float vv[4][NV];
#pragma unroll
    for (int cc = 0; cc < 4; ++cc) load_dims<D>(Vs + (c + cc) * LD, tx, vv[cc]);
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int v = 0; v < NV; ++v) {
        float a = o[i][v];
        a = fmaf(pa[i].x, vv[0][v], a);
        a = fmaf(pa[i].y, vv[1][v], a);
        a = fmaf(pa[i].z, vv[2][v], a);
        a = fmaf(pa[i].w, vv[3][v], a);
        o[i][v] = a;
      }
  }
}

template <int D, int BQ, int BK, bool G4>
__global__ void __launch_bounds__(kThreads)
    k_attn_fwd(float* out, float* lse, const float* qkv, const int32_t* mask, int T, int NH,
               float scale, float p, float dscale, uint64_t seed, uint64_t offset,
               const bj_step_scalars* sc, int vec_in, int vec_out) {
  seed = bjc::step_seed(sc, seed);  // per-step seed (bertj.h), before any draw
  constexpr int LD = D + 4, RM = BQ / 16, RN = BK / 16, NV = D / 16;
  static_assert(RN >= 1 && RN <= 4, "key micro-tiles per tile");
  BJ_DYN_SMEM(float, smem);
  float* Qs = smem;          // (BQ, LD)
  float* Ks = Qs + BQ * LD;  // (BK, LD)
  float* Vs = Ks + BK * LD;  // (BK, LD)
  float* Ps = Vs + BK * LD;  // (BQ, BK + 16) dropped, unnormalized probabilities of this key tile
  __shared__ int s_valid[BK];
  const int tid = threadIdx.x;
  const int q0 = blockIdx.x * BQ, h = blockIdx.y, b = blockIdx.z;
  const int C = NH * D;
  const int64_t C3 = 3LL * C;
  const float* qkv_b = qkv + (int64_t)b * T * C3 + (int64_t)h * D;  // q of token 0, head h
  const uint64_t bh = (uint64_t)b * NH + h;
  const bool al4 = ((offset | (uint64_t)T) & 3u) == 0;  // every tile row starts a Philox group
  // keys from kend on are padded (P = 0): not visited
  int kend = key_end(mask, b, T);
  const bool uniform = kend == 0;
  if (uniform) kend = T;

  load_tile<D, BQ, LD>(Qs, qkv_b + (int64_t)q0 * C3, C3, min(BQ, T - q0), vec_in);

  float m[RM], l[RM], o[RM][NV];
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int v = 0; v < NV; ++v) o[i][v] = 0.0f;
  }

  for (int k0 = 0; k0 < kend; k0 += BK) {
    int kv = 0;
    if (tid < BK) {
      kv = key_ok(mask, b, T, k0 + tid, uniform);
      s_valid[tid] = kv;
    }
    if (!__syncthreads_or(kv)) continue;  // no real key in this tile (also orders Qs loads)
    const int nk = min(BK, kend - k0);
    load_tile<D, BK, LD>(Ks, qkv_b + (int64_t)k0 * C3 + C, C3, nk, vec_in);
    load_tile<D, BK, LD>(Vs, qkv_b + (int64_t)k0 * C3 + 2 * C, C3, nk, vec_in);
    __syncthreads();
    const int nj = (nk + 15) / 16;
    if (nj >= RN)
      fwd_tile<D, BQ, BK, RN, G4>(Qs, Ks, Vs, Ps, s_valid, m, l, o, q0, k0, T, bh, uniform, scale,
                              p, dscale, seed, offset, al4);
    else if (nj == 1)
      fwd_tile<D, BQ, BK, 1, G4>(Qs, Ks, Vs, Ps, s_valid, m, l, o, q0, k0, T, bh, uniform, scale, p,
                             dscale, seed, offset, al4);
    else if (nj == 2)
      fwd_tile<D, BQ, BK, (RN > 2 ? 2 : 1), G4>(Qs, Ks, Vs, Ps, s_valid, m, l, o, q0, k0, T, bh,
                                            uniform, scale, p, dscale, seed, offset, al4);
    else
      fwd_tile<D, BQ, BK, (RN > 3 ? 3 : 1), G4>(Qs, Ks, Vs, Ps, s_valid, m, l, o, q0, k0, T, bh,
                                            uniform, scale, p, dscale, seed, offset, al4);
    __syncthreads();  // Ks, Vs, Ps, s_valid are rewritten by the next tile
  }

  const int tx = tid & 15, ty = tid >> 4;
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int qi = q0 + ty + 16 * i;
    if (qi < T) {
      store_dims<D>(out + ((int64_t)b * T + qi) * C + (int64_t)h * D, tx, o[i], 1.0f / l[i],
                    vec_out != 0);
      if (tx == 0) lse[bh * (uint64_t)T + qi] = m[i] + logf(l[i]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
template <int D, int BK, int BQ>
__global__ void __launch_bounds__(kThreads, 2)
    k_attn_bwd_kv(float* dqkv, const float* dout, const float* qkv, const float* out,
                  const float* lse, const int32_t* mask, int T, int NH, float scale, float p,
                  float dscale, uint64_t seed, uint64_t offset, const bj_step_scalars* sc,
                  int vec_in, int vec_o, int vec_out) {
  seed = bjc::step_seed(sc, seed);  // per-step seed (bertj.h), before any draw
  constexpr int LD = D + 4, LS = BQ + 16, RK = BK / 16, RQ = BQ / 16, NV = D / 16;
  BJ_DYN_SMEM(float, smem);
  float* Ks = smem;            // (BK, LD)
  float* Vs = Ks + BK * LD;    // (BK, LD)
  float* Qs = Vs + BK * LD;    // (BQ, LD)
  float* dOs = Qs + BQ * LD;   // (BQ, LD)
  float* PdT = dOs + BQ * LD;  // (BK, LS) Pdrop^T of the current query tile
  float* dST = PdT + BK * LS;  // (BK, LS) dS^T
  __shared__ float s_lse[BQ], s_D[BQ];
  // dropout keep bits of the query tile: thread t draws keys kb EPT .. kb EPT + EPT - 1 (kb = t %
  // TPQ) of query t / TPQ, bit e in s_keep[(t / TPQ) * TPQ + kb]
  constexpr int EPT = BQ * BK / kThreads, TPQ = BK / EPT;
  static_assert(EPT % 4 == 0 && EPT <= 16 && BK % EPT == 0, "keep-bit layout");
  __shared__ unsigned short s_keep[BQ * TPQ];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int k0 = blockIdx.x * BK, h = blockIdx.y, b = blockIdx.z;
  const int C = NH * D;
  const int64_t C3 = 3LL * C;
  const float* qkv_b = qkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const float* dout_b = dout + (int64_t)b * T * C + (int64_t)h * D;
  const float* out_b = out + (int64_t)b * T * C + (int64_t)h * D;
  float* dqkv_b = dqkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const uint64_t bh = (uint64_t)b * NH + h;
  const bool uniform = !batch_has_real_key(mask, b, T);
  const float inv_t = 1.0f / (float)T;
  const bool al4 = ((offset | (uint64_t)T) & 3u) == 0;  // rows start whole Philox groups

  int kval[RK];
  int anyk = 0;
#pragma unroll
  for (int a = 0; a < RK; ++a) {
    kval[a] = key_ok(mask, b, T, k0 + ty + 16 * a, uniform);
    anyk |= kval[a];
  }
  float dk[RK][NV], dv[RK][NV];
#pragma unroll
  for (int a = 0; a < RK; ++a)
#pragma unroll
    for (int v = 0; v < NV; ++v) dk[a][v] = dv[a][v] = 0.0f;

  if (__syncthreads_or(anyk)) {  // else every key of the tile is padded: dk = dv = 0
    const int nk = min(BK, T - k0);
    load_tile<D, BK, LD>(Ks, qkv_b + (int64_t)k0 * C3 + C, C3, nk, vec_in);
    load_tile<D, BK, LD>(Vs, qkv_b + (int64_t)k0 * C3 + 2 * C, C3, nk, vec_in);
    for (int q0 = 0; q0 < T; q0 += BQ) {
      const int nq = min(BQ, T - q0);
      load_tile<D, BQ, LD>(Qs, qkv_b + (int64_t)q0 * C3, C3, nq, vec_in);
      load_dout_and_delta<D, BQ, LD>(dOs, s_D, dout_b + (int64_t)q0 * C, out_b + (int64_t)q0 * C,
                                     C, nq, vec_o != 0);
      if (tid < BQ) s_lse[tid] = tid < nq ? lse[bh * (uint64_t)T + q0 + tid] : 0.0f;
      if (p > 0.0f) {
        const int kq = tid / TPQ, kb = tid % TPQ;
        const uint64_t i0 =
            offset + (bh * (uint64_t)T + (uint64_t)(q0 + kq)) * (uint64_t)T + k0 + kb * EPT;
        unsigned bits = 0;
        if (al4) {  // whole Philox groups: one call per 4 elements
#pragma unroll
          for (int g = 0; g < EPT / 4; ++g) {
            float u[4];
            bj_dropout_uniform4(seed, (i0 >> 2) + (uint64_t)g, u);
#pragma unroll
            for (int w = 0; w < 4; ++w) bits |= (u[w] >= p ? 1u : 0u) << (4 * g + w);
          }
        } else {
#pragma unroll 1
          for (int w = 0; w < EPT; ++w)
            bits |= (bj_dropout_uniform(seed, i0 + (uint64_t)w) >= p ? 1u : 0u) << w;
        }
        s_keep[kq * TPQ + kb] = (unsigned short)bits;
      }
      __syncthreads();

      float st[RK][RQ], dpt[RK][RQ];
#pragma unroll
      for (int a = 0; a < RK; ++a)
#pragma unroll
        for (int q = 0; q < RQ; ++q) st[a][q] = dpt[a][q] = 0.0f;
#pragma unroll 1
      for (int d = 0; d < D; d += 4) {
        float4 ka[RK], va[RK], qb[RQ], ob[RQ];
#pragma unroll
        for (int a = 0; a < RK; ++a) {
          ka[a] = *reinterpret_cast<const float4*>(Ks + (ty + 16 * a) * LD + d);
          va[a] = *reinterpret_cast<const float4*>(Vs + (ty + 16 * a) * LD + d);
        }
#pragma unroll
        for (int q = 0; q < RQ; ++q) {
          qb[q] = *reinterpret_cast<const float4*>(Qs + (tx + 16 * q) * LD + d);
          ob[q] = *reinterpret_cast<const float4*>(dOs + (tx + 16 * q) * LD + d);
        }
#pragma unroll
        for (int a = 0; a < RK; ++a)
#pragma unroll
          for (int q = 0; q < RQ; ++q) {
            st[a][q] = dot4(ka[a], qb[q], st[a][q]);
            dpt[a][q] = dot4(va[a], ob[q], dpt[a][q]);
          }
      }
#pragma unroll
      for (int a = 0; a < RK; ++a) {
        const int kl = ty + 16 * a;  // key k0 + kl
#pragma unroll
        for (int q = 0; q < RQ; ++q) {
          const int ql = tx + 16 * q, qi = q0 + ql;
          float P = 0.0f;
          if (kval[a] && qi < T) P = uniform ? inv_t : expf(scale * st[a][q] - s_lse[ql]);
          float f = 1.0f;
          if (p > 0.0f) f = ((s_keep[ql * TPQ + kl / EPT] >> (kl % EPT)) & 1) ? dscale : 0.0f;
          PdT[(ty + 16 * a) * LS + ql] = P * f;
          dST[(ty + 16 * a) * LS + ql] = uniform ? 0.0f : P * (dpt[a][q] * f - s_D[ql]);
        }
      }
      __syncthreads();

#pragma unroll 1
      for (int c = 0; c < BQ; c += 4) {
        float4 pa[RK], sa[RK];
#pragma unroll
        for (int a = 0; a < RK; ++a) {
          pa[a] = *reinterpret_cast<const float4*>(PdT + (ty + 16 * a) * LS + c);
          sa[a] = *reinterpret_cast<const float4*>(dST + (ty + 16 * a) * LS + c);
        }
        float ov[4][NV], qv[4][NV];
#pragma unroll
        for (int cc = 0; cc < 4; ++cc) {
          load_dims<D>(dOs + (c + cc) * LD, tx, ov[cc]);
          load_dims<D>(Qs + (c + cc) * LD, tx, qv[cc]);
        }
#pragma unroll
        for (int a = 0; a < RK; ++a)
#pragma unroll
          for (int v = 0; v < NV; ++v) {
            float x = dv[a][v], y = dk[a][v];
            x = fmaf(pa[a].x, ov[0][v], x);
            x = fmaf(pa[a].y, ov[1][v], x);
            x = fmaf(pa[a].z, ov[2][v], x);
            x = fmaf(pa[a].w, ov[3][v], x);
            y = fmaf(sa[a].x, qv[0][v], y);
            y = fmaf(sa[a].y, qv[1][v], y);
            y = fmaf(sa[a].z, qv[2][v], y);
            y = fmaf(sa[a].w, qv[3][v], y);
            dv[a][v] = x;
            dk[a][v] = y;
          }
      }
      __syncthreads();  // Qs, dOs, PdT, dST, s_lse, s_D are rewritten by the next query tile
    }
  }

#pragma unroll
  for (int a = 0; a < RK; ++a) {
    const int kj = k0 + ty + 16 * a;
    if (kj < T) {
      float* row = dqkv_b + (int64_t)kj * C3;
      store_dims<D>(row + C, tx, dk[a], scale, vec_out != 0);
      store_dims<D>(row + 2 * C, tx, dv[a], 1.0f, vec_out != 0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
template <int D, int BQ, int BK>
__global__ void __launch_bounds__(kThreads)
    k_attn_bwd_q(float* dqkv, const float* dout, const float* qkv, const float* out,
                 const float* lse, const int32_t* mask, int T, int NH, float scale, float p,
                 float dscale, uint64_t seed, uint64_t offset, const bj_step_scalars* sc,
                 int vec_in, int vec_o, int vec_out) {
  seed = bjc::step_seed(sc, seed);  // per-step seed (bertj.h), before any draw
  constexpr int LD = D + 4, LS = BK + 16, RM = BQ / 16, RN = BK / 16, NV = D / 16;
  BJ_DYN_SMEM(float, smem);
  float* Qs = smem;           // (BQ, LD)
  float* dOs = Qs + BQ * LD;  // (BQ, LD)
  float* Ks = dOs + BQ * LD;  // (BK, LD)
  float* Vs = Ks + BK * LD;   // (BK, LD)
  float* dSs = Vs + BK * LD;  // (BQ, LS) dS of the current key tile
  __shared__ float s_lse[BQ], s_D[BQ];
  __shared__ int s_valid[BK];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int q0 = blockIdx.x * BQ, h = blockIdx.y, b = blockIdx.z;
  const int C = NH * D;
  const int64_t C3 = 3LL * C;
  const float* qkv_b = qkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const float* dout_b = dout + (int64_t)b * T * C + (int64_t)h * D;
  const float* out_b = out + (int64_t)b * T * C + (int64_t)h * D;
  float* dqkv_b = dqkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const uint64_t bh = (uint64_t)b * NH + h;
  const bool al4 = ((offset | (uint64_t)T) & 3u) == 0;  // rows start whole Philox groups
  const bool uniform = !batch_has_real_key(mask, b, T);

  float dq[RM][NV];
#pragma unroll
  for (int a = 0; a < RM; ++a)
#pragma unroll
    for (int v = 0; v < NV; ++v) dq[a][v] = 0.0f;

  if (!uniform) {  // a uniform batch's output does not depend on q: dq = 0
    const int nq = min(BQ, T - q0);
    load_tile<D, BQ, LD>(Qs, qkv_b + (int64_t)q0 * C3, C3, nq, vec_in);
    load_dout_and_delta<D, BQ, LD>(dOs, s_D, dout_b + (int64_t)q0 * C, out_b + (int64_t)q0 * C, C,
                                   nq, vec_o != 0);
    if (tid < BQ) s_lse[tid] = tid < nq ? lse[bh * (uint64_t)T + q0 + tid] : 0.0f;

    for (int k0 = 0; k0 < T; k0 += BK) {
      int kv = 0;
      if (tid < BK) {
        kv = key_ok(mask, b, T, k0 + tid, false);
        s_valid[tid] = kv;
      }
      if (!__syncthreads_or(kv)) continue;  // (the first one also orders the loads above)
      const int nk = min(BK, T - k0);
      load_tile<D, BK, LD>(Ks, qkv_b + (int64_t)k0 * C3 + C, C3, nk, vec_in);
      load_tile<D, BK, LD>(Vs, qkv_b + (int64_t)k0 * C3 + 2 * C, C3, nk, vec_in);
      __syncthreads();

      float s[RM][RN], dp[RM][RN];
#pragma unroll
      for (int a = 0; a < RM; ++a)
#pragma unroll
        for (int j = 0; j < RN; ++j) s[a][j] = dp[a][j] = 0.0f;
#pragma unroll 2
      for (int d = 0; d < D; d += 4) {
        float4 qa[RM], oa[RM], kb[RN], vb[RN];
#pragma unroll
        for (int a = 0; a < RM; ++a) {
          qa[a] = *reinterpret_cast<const float4*>(Qs + (ty + 16 * a) * LD + d);
          oa[a] = *reinterpret_cast<const float4*>(dOs + (ty + 16 * a) * LD + d);
        }
#pragma unroll
        for (int j = 0; j < RN; ++j) {
          kb[j] = *reinterpret_cast<const float4*>(Ks + (tx + 16 * j) * LD + d);
          vb[j] = *reinterpret_cast<const float4*>(Vs + (tx + 16 * j) * LD + d);
        }
#pragma unroll
        for (int a = 0; a < RM; ++a)
#pragma unroll
          for (int j = 0; j < RN; ++j) {
            s[a][j] = dot4(qa[a], kb[j], s[a][j]);
            dp[a][j] = dot4(oa[a], vb[j], dp[a][j]);
          }
      }
#pragma unroll
      for (int a = 0; a < RM; ++a) {
        const int ql = ty + 16 * a, qi = q0 + ql;
        const float lq = s_lse[ql], Dq = s_D[ql];
        const uint64_t idx0 = offset + (bh * (uint64_t)T + (uint64_t)qi) * (uint64_t)T + k0;
        const unsigned keep = p > 0.0f ? row_keep_bits<RN>(p, seed, idx0, tx, al4) : ~0u;
#pragma unroll
        for (int j = 0; j < RN; ++j) {
          const int kl = tx + 16 * j;
          float P = 0.0f;
          if (s_valid[kl] && qi < T) P = expf(scale * s[a][j] - lq);
          float f = 1.0f;
          if (p > 0.0f) f = ((keep >> j) & 1u) ? dscale : 0.0f;
          dSs[ql * LS + kl] = P * (dp[a][j] * f - Dq);
        }
      }
      __syncthreads();

#pragma unroll 2
      for (int c = 0; c < BK; c += 4) {
        float4 sa[RM];
#pragma unroll
        for (int a = 0; a < RM; ++a)
          sa[a] = *reinterpret_cast<const float4*>(dSs + (ty + 16 * a) * LS + c);
        float kv4[4][NV];
#pragma unroll
        for (int cc = 0; cc < 4; ++cc) load_dims<D>(Ks + (c + cc) * LD, tx, kv4[cc]);
#pragma unroll
        for (int a = 0; a < RM; ++a)
#pragma unroll
          for (int v = 0; v < NV; ++v) {
            float x = dq[a][v];
            x = fmaf(sa[a].x, kv4[0][v], x);
            x = fmaf(sa[a].y, kv4[1][v], x);
            x = fmaf(sa[a].z, kv4[2][v], x);
            x = fmaf(sa[a].w, kv4[3][v], x);
            dq[a][v] = x;
          }
      }
      __syncthreads();  // Ks, Vs, dSs, s_valid are rewritten by the next key tile
    }
  }

#pragma unroll
  for (int a = 0; a < RM; ++a) {
    const int qi = q0 + ty + 16 * a;
    if (qi < T) store_dims<D>(dqkv_b + (int64_t)qi * C3, tx, dq[a], scale, vec_out != 0);
  }
}


// ---------------------------------------------------------------------------------------------
// Fused backward for T <= kFusedT (one block per (b, h), owning every key). K, V of the head stay
// in shared memory; the block walks query tiles of BQ: S^T and dP^T (keys x queries) in
// registers, P = exp(S - lse) once, Pdrop^T and dS^T (key-major) and dS (query-major) through
// shared memory, then dV += Pdrop^T dO and dK += dS^T Q in registers (each element owned by one
// thread, summed over the query tiles in order: deterministic) and dQ = dS K of the tile written
// directly. Only the first NA * 16 keys are computed, NA = ceil(key_end / 16) (a template
// parameter, so the loops carry no guards): keys after the last real key are padded, their P is
// exactly 0, and they add nothing to any sum; their dk = dv = 0 are still written.
constexpr int kFusedT = 128;

template <int D, int BQ, int NA>
__device__ __forceinline__ void bwd_fused_body(float* smem, float* s_lse, float* s_D,
                                               float* dqkv_b, const float* dout_b,
                                               const float* qkv_b, const float* out_b,
                                               const float* lse_bh, const int32_t* mask, int b,
                                               int T, int C, int64_t C3, float scale, float p,
                                               float dscale, uint64_t seed, uint64_t idx_bh,
                                               bool uniform, int vec_in, int vec_o,
                                               int vec_out) {
  constexpr int TK = kFusedT, LD = D + 4, LS = BQ + 16, LK = TK + 4, RQ = BQ / 16, NV = D / 16;
  constexpr int KP = 16 * NA;  // keys computed
  float* Ks = smem;
  float* Vs = Ks + TK * LD;
  float* Qs = Vs + TK * LD;
  float* dOs = Qs + BQ * LD;
  float* PdT = dOs + BQ * LD;  // (TK, LS) Pdrop^T of the current query tile
  float* dST = PdT + TK * LS;  // (TK, LS) dS^T
  float* dSq = dST + TK * LS;  // (BQ, LK) dS
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const float inv_t = 1.0f / (float)T;

  int kval[NA];
#pragma unroll
  for (int a = 0; a < NA; ++a) kval[a] = key_ok(mask, b, T, ty + 16 * a, uniform);
  float dk[NA][NV], dv[NA][NV];
#pragma unroll
  for (int a = 0; a < NA; ++a)
#pragma unroll
    for (int v = 0; v < NV; ++v) dk[a][v] = dv[a][v] = 0.0f;

  for (int q0 = 0; q0 < T; q0 += BQ) {
    const int nq = min(BQ, T - q0);
    load_tile<D, BQ, LD>(Qs, qkv_b + (int64_t)q0 * C3, C3, nq, vec_in);
    load_dout_and_delta<D, BQ, LD>(dOs, s_D, dout_b + (int64_t)q0 * C, out_b + (int64_t)q0 * C, C,
                                   nq, vec_o != 0);
    if (tid < BQ) s_lse[tid] = tid < nq ? lse_bh[q0 + tid] : 0.0f;
    __syncthreads();  // (the first one also orders the K, V loads)

    // S^T, dP^T: keys ty + 16a (a < NA) x queries tx + 16q (q < RQ)
    float st[NA][RQ], dpt[NA][RQ];
#pragma unroll
    for (int a = 0; a < NA; ++a)
#pragma unroll
      for (int q = 0; q < RQ; ++q) st[a][q] = dpt[a][q] = 0.0f;
#pragma unroll 2
    for (int d = 0; d < D; d += 4) {
      float4 qb[RQ], ob[RQ];
#pragma unroll
      for (int q = 0; q < RQ; ++q) {
        qb[q] = *reinterpret_cast<const float4*>(Qs + (tx + 16 * q) * LD + d);
        ob[q] = *reinterpret_cast<const float4*>(dOs + (tx + 16 * q) * LD + d);
      }
#pragma unroll
      for (int a = 0; a < NA; ++a) {
        const float4 ka = *reinterpret_cast<const float4*>(Ks + (ty + 16 * a) * LD + d);
        const float4 va = *reinterpret_cast<const float4*>(Vs + (ty + 16 * a) * LD + d);
#pragma unroll
        for (int q = 0; q < RQ; ++q) {
          st[a][q] = dot4(ka, qb[q], st[a][q]);
          dpt[a][q] = dot4(va, ob[q], dpt[a][q]);
        }
      }
    }
#pragma unroll
    for (int a = 0; a < NA; ++a) {
      const int kj = ty + 16 * a;
#pragma unroll
      for (int q = 0; q < RQ; ++q) {
        const int ql = tx + 16 * q, qi = q0 + ql;
        float P = 0.0f;
        if (kval[a] && qi < T) P = uniform ? inv_t : expf(scale * st[a][q] - s_lse[ql]);
        float f = 1.0f;
        if (p > 0.0f && P != 0.0f)
          f = drop_factor(p, dscale, seed, idx_bh + (uint64_t)qi * (uint64_t)T + kj);
        const float ds = uniform ? 0.0f : P * (dpt[a][q] * f - s_D[ql]);
        PdT[kj * LS + ql] = P * f;
        dST[kj * LS + ql] = ds;
        dSq[ql * LK + kj] = ds;
      }
    }
    __syncthreads();

    // dV += Pdrop^T dO, dK += dS^T Q: keys ty + 16a x channels dim_of(tx, v)
#pragma unroll 1
    for (int c = 0; c < BQ; c += 4) {
      float ov[4][NV], qv[4][NV];
#pragma unroll
      for (int cc = 0; cc < 4; ++cc) {
        load_dims<D>(dOs + (c + cc) * LD, tx, ov[cc]);
        load_dims<D>(Qs + (c + cc) * LD, tx, qv[cc]);
      }
#pragma unroll
      for (int a = 0; a < NA; ++a) {
        const float4 pa = *reinterpret_cast<const float4*>(PdT + (ty + 16 * a) * LS + c);
        const float4 sa = *reinterpret_cast<const float4*>(dST + (ty + 16 * a) * LS + c);
#pragma unroll
        for (int v = 0; v < NV; ++v) {
          float x = dv[a][v], y = dk[a][v];
          x = fmaf(pa.x, ov[0][v], x);
          x = fmaf(pa.y, ov[1][v], x);
          x = fmaf(pa.z, ov[2][v], x);
          x = fmaf(pa.w, ov[3][v], x);
          y = fmaf(sa.x, qv[0][v], y);
          y = fmaf(sa.y, qv[1][v], y);
          y = fmaf(sa.z, qv[2][v], y);
          y = fmaf(sa.w, qv[3][v], y);
          dv[a][v] = x;
          dk[a][v] = y;
        }
      }
    }

    // dQ of this tile = scale * dS K: queries ty + 16i x channels dim_of(tx, v)
    float dq[RQ][NV];
#pragma unroll
    for (int i = 0; i < RQ; ++i)
#pragma unroll
      for (int v = 0; v < NV; ++v) dq[i][v] = 0.0f;
#pragma unroll 2
    for (int c = 0; c < KP; c += 4) {
      float4 sa[RQ];
#pragma unroll
      for (int i = 0; i < RQ; ++i)
        sa[i] = *reinterpret_cast<const float4*>(dSq + (ty + 16 * i) * LK + c);
      float kv4[4][NV];
#pragma unroll
      for (int cc = 0; cc < 4; ++cc) load_dims<D>(Ks + (c + cc) * LD, tx, kv4[cc]);
#pragma unroll
      for (int i = 0; i < RQ; ++i)
#pragma unroll
        for (int v = 0; v < NV; ++v) {
          float x = dq[i][v];
          x = fmaf(sa[i].x, kv4[0][v], x);
          x = fmaf(sa[i].y, kv4[1][v], x);
          x = fmaf(sa[i].z, kv4[2][v], x);
          x = fmaf(sa[i].w, kv4[3][v], x);
          dq[i][v] = x;
        }
    }
#pragma unroll
    for (int i = 0; i < RQ; ++i) {
      const int qi = q0 + ty + 16 * i;
      if (qi < T) store_dims<D>(dqkv_b + (int64_t)qi * C3, tx, dq[i], scale, vec_out != 0);
    }
    __syncthreads();  // Qs, dOs, PdT, dST, dSq, s_lse, s_D are rewritten by the next query tile
  }

  // keys ty + 16a: computed for a < NA, zero (padded) for the rest
  float zero[NV];
#pragma unroll
  for (int v = 0; v < NV; ++v) zero[v] = 0.0f;
#pragma unroll
  for (int a = 0; a < TK / 16; ++a) {
    const int kj = ty + 16 * a;
    if (kj < T) {
      float* row = dqkv_b + (int64_t)kj * C3;
      if (a < NA) {
        store_dims<D>(row + C, tx, dk[a < NA ? a : 0], scale, vec_out != 0);
        store_dims<D>(row + 2 * C, tx, dv[a < NA ? a : 0], 1.0f, vec_out != 0);
      } else {
        store_dims<D>(row + C, tx, zero, 1.0f, vec_out != 0);
        store_dims<D>(row + 2 * C, tx, zero, 1.0f, vec_out != 0);
      }
    }
  }
}

template <int D, int BQ>
__global__ void __launch_bounds__(kThreads, 1)
    k_attn_bwd_fused(float* dqkv, const float* dout, const float* qkv, const float* out,
                     const float* lse, const int32_t* mask, int T, int NH, float scale, float p,
                     float dscale, uint64_t seed, uint64_t offset, const bj_step_scalars* sc,
                     int vec_in, int vec_o, int vec_out) {
  seed = bjc::step_seed(sc, seed);  // per-step seed (bertj.h), before any draw
  constexpr int TK = kFusedT, LD = D + 4;
  BJ_DYN_SMEM(float, smem);
  __shared__ float s_lse[BQ], s_D[BQ];
  const int h = blockIdx.x, b = blockIdx.y;
  const int C = NH * D;
  const int64_t C3 = 3LL * C;
  const float* qkv_b = qkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const float* dout_b = dout + (int64_t)b * T * C + (int64_t)h * D;
  const float* out_b = out + (int64_t)b * T * C + (int64_t)h * D;
  float* dqkv_b = dqkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const uint64_t bh = (uint64_t)b * NH + h;
  int kend = key_end(mask, b, T);
  const bool uniform = kend == 0;
  if (uniform) kend = T;  // no real key: every key attends uniformly
  float* Ks = smem;
  float* Vs = Ks + TK * LD;
  load_tile<D, TK, LD>(Ks, qkv_b + C, C3, kend, vec_in);
  load_tile<D, TK, LD>(Vs, qkv_b + 2 * C, C3, kend, vec_in);
  const float* lse_bh = lse + bh * (uint64_t)T;
  const uint64_t idx_bh = offset + bh * (uint64_t)T * (uint64_t)T;
#define BJ_FUSED_CASE(NA)                                                                       \
  case NA:                                                                                      \
    bwd_fused_body<D, BQ, NA>(smem, s_lse, s_D, dqkv_b, dout_b, qkv_b, out_b, lse_bh, mask, b,  \
                              T, C, C3, scale, p, dscale, seed, idx_bh, uniform, vec_in, vec_o, \
                              vec_out);                                                         \
    break;
  switch ((kend + 15) / 16) {
    BJ_FUSED_CASE(1)
    BJ_FUSED_CASE(2)
    BJ_FUSED_CASE(3)
    BJ_FUSED_CASE(4)
    BJ_FUSED_CASE(5)
    BJ_FUSED_CASE(6)
    BJ_FUSED_CASE(7)
    default:
      BJ_FUSED_CASE(8)
  }
#undef BJ_FUSED_CASE
}

// ---------------------------------------------------------------------------------------------
// v2 forward for T <= kFusedT (D <= 64): as k_attn_fwd, but K and V of every key before key_end
// are loaded once, together, with all loads in flight before the first store, and the mask is
// read once (valid flags, key_end and the per-tile "has a real key" flags in one pass). The key
// tiles are then walked from shared memory without global-memory waits in between (k_attn_fwd
// waits for the mask and for K, V at every tile). 107.5 KB of shared memory at D = 64: two blocks
// per SM, as k_attn_fwd (registers allow two).
constexpr int kFusedFwdT = 128;

template <int D, int BQ, int BK, bool G4>
__global__ void __launch_bounds__(kThreads, 2)
    k_attn_fwd2(float* out, float* lse, const float* qkv, const int32_t* mask, int T, int NH,
                float scale, float p, float dscale, uint64_t seed, uint64_t offset,
                const bj_step_scalars* sc, int vec_in, int vec_out) {
  seed = bjc::step_seed(sc, seed);  // per-step seed (bertj.h), before any draw
  constexpr int TK = kFusedFwdT, LD = D + 4, RM = BQ / 16, RN = BK / 16, NV = D / 16, C4 = D / 4;
  constexpr int NW = kThreads / 32, WPT = BK / 32;  // warps; warps per key tile (mask pass)
  static_assert(RN >= 1 && RN <= 4 && BK % 32 == 0 && TK <= kThreads, "tiles");
  BJ_DYN_SMEM(float, smem);
  float* Qs = smem;          // (BQ, LD)
  float* Ks = Qs + BQ * LD;  // (TK, LD)
  float* Vs = Ks + TK * LD;  // (TK, LD)
  float* Ps = Vs + TK * LD;  // (BQ, BK + 16) dropped, unnormalized probabilities of a key tile
  __shared__ int s_valid[TK];
  __shared__ int s_wlast[NW], s_wany[NW];
  const int tid = threadIdx.x;
  const int q0 = blockIdx.x * BQ, h = blockIdx.y, b = blockIdx.z;
  const int C = NH * D;
  const int64_t C3 = 3LL * C;
  const float* qkv_b = qkv + (int64_t)b * T * C3 + (int64_t)h * D;  // q of token 0, head h
  const uint64_t bh = (uint64_t)b * NH + h;
  const bool al4 = ((offset | (uint64_t)T) & 3u) == 0;  // every tile row starts a Philox group

  // mask pass (threads < TK: key tid) while the Q tile loads
  int kv = 0;
  if (tid < TK) kv = tid < T && (mask == nullptr || mask[(int64_t)b * T + tid] != 0);
  load_tile<D, BQ, LD>(Qs, qkv_b + (int64_t)q0 * C3, C3, min(BQ, T - q0), vec_in);
  {
    const int last = bjc::warp_max(kv ? tid + 1 : 0);
    const unsigned any = __ballot_sync(bjc::kFull, kv);
    if ((tid & 31) == 0) {
      s_wlast[tid >> 5] = last;
      s_wany[tid >> 5] = any != 0u;
    }
  }
  __syncthreads();
  int kend = 0;
#pragma unroll
  for (int w = 0; w < NW; ++w) kend = max(kend, s_wlast[w]);
  const bool uniform = kend == 0;  // no real key: every key attends uniformly
  if (uniform) kend = T;
  if (tid < TK) s_valid[tid] = uniform ? (tid < T ? 1 : 0) : kv;

  // K, V rows < kend (zero rows up to the 16-key boundary): all loads in flight, then the stores
  {
    constexpr int IT = (TK * C4 + kThreads - 1) / kThreads;
    const int rows = (kend + 15) & ~15;
    float4 kr[IT], vr[IT];
#pragma unroll
    for (int it = 0; it < IT; ++it) {
      const int e = tid + it * kThreads, r = e / C4, c = (e % C4) * 4;
      kr[it] = vr[it] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (r < kend) {
        const float* kp = qkv_b + (int64_t)r * C3 + C + c;
        const float* vp = kp + C;
        if (vec_in) {
          kr[it] = *reinterpret_cast<const float4*>(kp);
          vr[it] = *reinterpret_cast<const float4*>(vp);
        } else {
          kr[it] = make_float4(kp[0], kp[1], kp[2], kp[3]);
          vr[it] = make_float4(vp[0], vp[1], vp[2], vp[3]);
        }
      }
    }
#pragma unroll
    for (int it = 0; it < IT; ++it) {
      const int e = tid + it * kThreads, r = e / C4, c = (e % C4) * 4;
      if (r < rows) {
        *reinterpret_cast<float4*>(Ks + r * LD + c) = kr[it];
        *reinterpret_cast<float4*>(Vs + r * LD + c) = vr[it];
      }
    }
  }
  __syncthreads();

  float m[RM], l[RM], o[RM][NV];
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int v = 0; v < NV; ++v) o[i][v] = 0.0f;
  }

  for (int k0 = 0; k0 < kend; k0 += BK) {
    if (!uniform) {
      int any = 0;
#pragma unroll
      for (int w = 0; w < WPT; ++w) any |= s_wany[k0 / 32 + w];
      if (!any) continue;  // no real key in this tile (block-uniform)
    }
    const int nj = (min(BK, kend - k0) + 15) / 16;
    const float* Kt = Ks + k0 * LD;
    const float* Vt = Vs + k0 * LD;
    const int* vt = s_valid + k0;
    if (nj >= RN)
      fwd_tile<D, BQ, BK, RN, G4>(Qs, Kt, Vt, Ps, vt, m, l, o, q0, k0, T, bh, uniform, scale, p,
                                  dscale, seed, offset, al4);
    else if (nj == 1)
      fwd_tile<D, BQ, BK, 1, G4>(Qs, Kt, Vt, Ps, vt, m, l, o, q0, k0, T, bh, uniform, scale, p,
                                 dscale, seed, offset, al4);
    else if (nj == 2)
      fwd_tile<D, BQ, BK, (RN > 2 ? 2 : 1), G4>(Qs, Kt, Vt, Ps, vt, m, l, o, q0, k0, T, bh,
                                                uniform, scale, p, dscale, seed, offset, al4);
    else
      fwd_tile<D, BQ, BK, (RN > 3 ? 3 : 1), G4>(Qs, Kt, Vt, Ps, vt, m, l, o, q0, k0, T, bh,
                                                uniform, scale, p, dscale, seed, offset, al4);
    __syncthreads();  // Ps is rewritten by the next tile
  }

  const int tx = tid & 15, ty = tid >> 4;
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int qi = q0 + ty + 16 * i;
    if (qi < T) {
      store_dims<D>(out + ((int64_t)b * T + qi) * C + (int64_t)h * D, tx, o[i], 1.0f / l[i],
                    vec_out != 0);
      if (tx == 0) lse[bh * (uint64_t)T + qi] = m[i] + logf(l[i]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// v2 fused backward for T <= kFusedT, D in {32, 64}: one block of 512 threads per (b, h), 16
// warps per SM (the v1 kernel has 8: 224 registers at 256 threads). Same shared-memory tiles as
// k_attn_bwd_fused plus a dQ partial tile and the dropout keep bits; the threads form two groups
// of 256 (z = tid / 256, whole warps), (tx, ty) = 16 x 16 inside a group:
// - once: K, V (keys < key_end), lse_i and D_i = dO_i . out_i of all T queries into shared memory.
// - query tile q0 (BQ = 32): Q, dO come from registers loaded during the previous tile's dQ
//   product (software prefetch, placed where registers are free); with dropout the 512 threads
//   draw the tile's keep bits (8 keys each) into shared memory before the products: with whole
//   Philox groups ((offset | T) % 4 == 0) two Philox calls per thread (one per 4 elements),
//   otherwise one per element. The keep bits of every element are drawn exactly once.
// - S^T, dP^T: keys ty + 16a (a < NA) x query tx + 16z (S^T and dP^T in separate passes over d:
//   128 registers, no spills at D = 64); P, Pdrop, dS written as in v1.
// - dK += dS^T Q (group 0) and dV += Pdrop^T dO (group 1): keys ty + 16a x channels dim_of(tx).
// - dQ = dS K: query rows ty, ty + 16 x channels dim_of(tx), group z summing the keys of its half
//   [z KP/2, (z + 1) KP/2); group 1 hands its partial over through shared memory and group 0 adds
//   it (fixed order) and stores. Deterministic: no atomics, fixed summation order.
constexpr int kThreads2 = 512;

template <int D, int BQ, int NA>
__device__ __forceinline__ void bwd2_body(float* smem, float* s_lse, float* s_D, uint8_t* s_keep,
                                          float* dqkv_b, const float* dout_b, const float* qkv_b,
                                          const float* out_b, const float* lse_bh,
                                          const int32_t* mask, int b, int T, int C, int64_t C3,
                                          float scale, float p, float dscale, uint64_t seed,
                                          uint64_t idx_bh, bool uniform, bool al4, int vec_in,
                                          int vec_o, int vec_out) {
  constexpr int TK = kFusedT, LD = D + 4, LS = BQ + 16, LK = TK + 4, NV = D / 16, C4 = D / 4;
  constexpr int KP = 16 * NA, KH = 8 * NA;  // keys computed; dQ key split
  static_assert(BQ == 32, "one query micro-tile per thread group; 16 keep-bit bytes per query");
  static_assert(BQ * C4 <= kThreads2 && (BQ * C4) % 32 == 0, "one float4 per loading thread");
  float* Ks = smem;
  float* Vs = Ks + TK * LD;
  float* Qs = Vs + TK * LD;
  float* dOs = Qs + BQ * LD;
  float* PdT = dOs + BQ * LD;  // (TK, LS) Pdrop^T of the current query tile
  float* dST = PdT + TK * LS;  // (TK, LS) dS^T
  float* dSq = dST + TK * LS;  // (BQ, LK) dS
  float* dQp = dSq + BQ * LK;  // (BQ, LD) group 1's dQ partial
  const int tid = threadIdx.x, z = tid >> 8, tx = tid & 15, ty = (tid >> 4) & 15;
  const float inv_t = 1.0f / (float)T;
  const bool drop = p > 0.0f;

  unsigned kval = 0;  // bit a: key ty + 16a is real (or attended uniformly)
#pragma unroll
  for (int a = 0; a < NA; ++a) kval |= key_ok(mask, b, T, ty + 16 * a, uniform) ? 1u << a : 0u;
  float acc[NA][NV];  // dK (group 0) or dV (group 1) of keys ty + 16a
#pragma unroll
  for (int a = 0; a < NA; ++a)
#pragma unroll
    for (int v = 0; v < NV; ++v) acc[a][v] = 0.0f;

  // s_lse[i], s_D[i] = dO_i . out_i of every query (all T, before the first tile's barrier)
  for (int i = tid; i < T; i += kThreads2) s_lse[i] = lse_bh[i];
  for (int e = tid; e < ((T * C4 + 31) & ~31); e += kThreads2) {  // whole warps (shuffles)
    const int r = e / C4, c = (e % C4) * 4;
    float4 g = make_float4(0.0f, 0.0f, 0.0f, 0.0f), o = g;
    if (r < T) {
      const float* gp = dout_b + (int64_t)r * C + c;
      const float* op = out_b + (int64_t)r * C + c;
      if (vec_o) {
        g = *reinterpret_cast<const float4*>(gp);
        o = *reinterpret_cast<const float4*>(op);
      } else {
        g = make_float4(gp[0], gp[1], gp[2], gp[3]);
        o = make_float4(op[0], op[1], op[2], op[3]);
      }
    }
    float part = g.x * o.x;
    part = fmaf(g.y, o.y, part);
    part = fmaf(g.z, o.z, part);
    part = fmaf(g.w, o.w, part);
#pragma unroll
    for (int off = C4 / 2; off > 0; off >>= 1) part += __shfl_xor_sync(bjc::kFull, part, off);
    if (r < T && c == 0) s_D[r] = part;
  }

  // prefetch registers: row lr, channels lc .. lc + 3 of Q and dO of the next query tile
  const int lr = tid / C4, lc = (tid % C4) * 4;
  const bool lact = tid < BQ * C4;
  float4 gq, gd;
  auto fetch = [&](int q0) {
    gq = gd = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    const int qi = q0 + lr;
    if (lact && qi < T) {
      const float* qp = qkv_b + (int64_t)qi * C3 + lc;
      const float* dp = dout_b + (int64_t)qi * C + lc;
      gq = vec_in ? *reinterpret_cast<const float4*>(qp) : make_float4(qp[0], qp[1], qp[2], qp[3]);
      gd = vec_o ? *reinterpret_cast<const float4*>(dp) : make_float4(dp[0], dp[1], dp[2], dp[3]);
    }
  };
  fetch(0);

  for (int q0 = 0; q0 < T; q0 += BQ) {
    // ---- tile in: Q, dO, keep bits ----
    if (lact) {
      *reinterpret_cast<float4*>(Qs + lr * LD + lc) = gq;
      *reinterpret_cast<float4*>(dOs + lr * LD + lc) = gd;
    }
    if (drop) {  // keep bits of keys 8 kb .. 8 kb + 7 of query q0 + kq in s_keep[kq * 16 + kb]
      const int kq = tid >> 4, kb = tid & 15;
      if (8 * kb < KP) {
        const uint64_t i0 = idx_bh + (uint64_t)(q0 + kq) * (uint64_t)T + 8u * kb;
        unsigned bits = 0;
        if (al4) {  // two whole Philox groups
          float u[4], w[4];
          bj_dropout_uniform4(seed, i0 >> 2, u);
          bj_dropout_uniform4(seed, (i0 >> 2) + 1, w);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            bits |= (u[e] >= p ? 1u : 0u) << e;
            bits |= (w[e] >= p ? 1u : 0u) << (e + 4);
          }
        } else {  // groups straddle the rows: one Philox call per element
#pragma unroll 1
          for (int e = 0; e < 8; ++e) bits |= (bj_dropout_uniform(seed, i0 + e) >= p ? 1u : 0u) << e;
        }
        s_keep[kq * 16 + kb] = (uint8_t)bits;
      }
    }
    __syncthreads();

    // ---- S^T, dP^T: keys ty + 16a x query ql = tx + 16z ----
    {
      const int ql = tx + 16 * z, qi = q0 + ql;
      float st[NA], dpt[NA];
#pragma unroll
      for (int a = 0; a < NA; ++a) st[a] = dpt[a] = 0.0f;
      // S^T, then dP^T (one pass each: NA float4 of K or V in flight, not 2 NA; registers)
#pragma unroll 1
      for (int d = 0; d < D; d += 4) {
        const float4 qb = *reinterpret_cast<const float4*>(Qs + ql * LD + d);
#pragma unroll
        for (int a = 0; a < NA; ++a)
          st[a] = dot4(*reinterpret_cast<const float4*>(Ks + (ty + 16 * a) * LD + d), qb, st[a]);
      }
#pragma unroll 1
      for (int d = 0; d < D; d += 4) {
        const float4 ob = *reinterpret_cast<const float4*>(dOs + ql * LD + d);
#pragma unroll
        for (int a = 0; a < NA; ++a)
          dpt[a] = dot4(*reinterpret_cast<const float4*>(Vs + (ty + 16 * a) * LD + d), ob, dpt[a]);
      }
      const float lq = s_lse[qi < T ? qi : 0], Dq = s_D[qi < T ? qi : 0];
#pragma unroll
      for (int a = 0; a < NA; ++a) {
        const int kj = ty + 16 * a;
        float P = 0.0f;
        if (((kval >> a) & 1u) && qi < T) P = uniform ? inv_t : expf(scale * st[a] - lq);
        float f = 1.0f;
        if (drop) f = ((s_keep[ql * 16 + (kj >> 3)] >> (kj & 7)) & 1) ? dscale : 0.0f;
        const float ds = uniform ? 0.0f : P * (dpt[a] * f - Dq);
        PdT[kj * LS + ql] = P * f;
        dST[kj * LS + ql] = ds;
        dSq[ql * LK + kj] = ds;
      }
    }
    __syncthreads();

    // ---- dK += dS^T Q (z = 0), dV += Pdrop^T dO (z = 1) ----
    {
      const float* X = z ? dOs : Qs;
      const float* W = z ? PdT : dST;
#pragma unroll 1
      for (int c = 0; c < BQ; c += 4) {
        float xv[4][NV];
#pragma unroll
        for (int cc = 0; cc < 4; ++cc) load_dims<D>(X + (c + cc) * LD, tx, xv[cc]);
#pragma unroll
        for (int a = 0; a < NA; ++a) {
          const float4 wa = *reinterpret_cast<const float4*>(W + (ty + 16 * a) * LS + c);
#pragma unroll
          for (int v = 0; v < NV; ++v) {
            float x = acc[a][v];
            x = fmaf(wa.x, xv[0][v], x);
            x = fmaf(wa.y, xv[1][v], x);
            x = fmaf(wa.z, xv[2][v], x);
            x = fmaf(wa.w, xv[3][v], x);
            acc[a][v] = x;
          }
        }
      }
    }

    // the next tile's Q, dO: in flight during the dQ product (loaded here, not earlier: the
    // registers are scarce in the products above)
    if (q0 + BQ < T) fetch(q0 + BQ);

    // ---- dQ = scale * dS K: rows ty, ty + 16 x channels dim_of(tx), keys of half z ----
    {
      float dq[2][NV];
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int v = 0; v < NV; ++v) dq[i][v] = 0.0f;
      const int c0 = z * KH;
#pragma unroll 1
      for (int c = c0; c < c0 + KH; c += 4) {
        float4 sa[2];
#pragma unroll
        for (int i = 0; i < 2; ++i)
          sa[i] = *reinterpret_cast<const float4*>(dSq + (ty + 16 * i) * LK + c);
        float kv4[4][NV];
#pragma unroll
        for (int cc = 0; cc < 4; ++cc) load_dims<D>(Ks + (c + cc) * LD, tx, kv4[cc]);
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int v = 0; v < NV; ++v) {
            float x = dq[i][v];
            x = fmaf(sa[i].x, kv4[0][v], x);
            x = fmaf(sa[i].y, kv4[1][v], x);
            x = fmaf(sa[i].z, kv4[2][v], x);
            x = fmaf(sa[i].w, kv4[3][v], x);
            dq[i][v] = x;
          }
      }
      if (z == 1) {
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int v = 0; v < NV; ++v) dQp[(ty + 16 * i) * LD + dim_of<D>(tx, v)] = dq[i][v];
      }
      __syncthreads();
      if (z == 0) {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const int qi = q0 + ty + 16 * i;
#pragma unroll
          for (int v = 0; v < NV; ++v) dq[i][v] += dQp[(ty + 16 * i) * LD + dim_of<D>(tx, v)];
          if (qi < T) store_dims<D>(dqkv_b + (int64_t)qi * C3, tx, dq[i], scale, vec_out != 0);
        }
      }
    }
    __syncthreads();  // every tile buffer is rewritten by the next query tile
  }

  // dK (group 0) / dV (group 1) of keys ty + 16a: computed for a < NA, zero for the rest
  float zero[NV];
#pragma unroll
  for (int v = 0; v < NV; ++v) zero[v] = 0.0f;
  const int part = z ? 2 * C : C;
  const float mul = z ? 1.0f : scale;
#pragma unroll
  for (int a = 0; a < TK / 16; ++a) {
    const int kj = ty + 16 * a;
    if (kj < T) {
      float* row = dqkv_b + (int64_t)kj * C3 + part;
      if (a < NA)
        store_dims<D>(row, tx, acc[a < NA ? a : 0], mul, vec_out != 0);
      else
        store_dims<D>(row, tx, zero, 1.0f, vec_out != 0);
    }
  }
}

template <int D, int BQ>
__global__ void __launch_bounds__(kThreads2, 1)
    k_attn_bwd2(float* dqkv, const float* dout, const float* qkv, const float* out,
                const float* lse, const int32_t* mask, int T, int NH, float scale, float p,
                float dscale, uint64_t seed, uint64_t offset, const bj_step_scalars* sc, int vec_in,
                int vec_o, int vec_out) {
  seed = bjc::step_seed(sc, seed);  // per-step seed (bertj.h), before any draw
  constexpr int TK = kFusedT, LD = D + 4;
  BJ_DYN_SMEM(float, smem);
  __shared__ float s_lse[kFusedT], s_D[kFusedT];
  __shared__ uint8_t s_keep[BQ * 16];
  __shared__ int s_kend[kThreads2 / 32];
  const int h = blockIdx.x, b = blockIdx.y;
  const int C = NH * D;
  const int64_t C3 = 3LL * C;
  const float* qkv_b = qkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const float* dout_b = dout + (int64_t)b * T * C + (int64_t)h * D;
  const float* out_b = out + (int64_t)b * T * C + (int64_t)h * D;
  float* dqkv_b = dqkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const uint64_t bh = (uint64_t)b * NH + h;
  int kend = T;  // one past the last real key (0: none)
  if (mask != nullptr) {
    int last = 0;
    for (int j = threadIdx.x; j < T; j += kThreads2)
      if (mask[(int64_t)b * T + j] != 0) last = j + 1;
    last = bjc::warp_max(last);
    if ((threadIdx.x & 31) == 0) s_kend[threadIdx.x >> 5] = last;
    __syncthreads();
    kend = 0;
#pragma unroll
    for (int w = 0; w < kThreads2 / 32; ++w) kend = max(kend, s_kend[w]);
  }
  const bool uniform = kend == 0;
  if (uniform) kend = T;  // no real key: every key attends uniformly
  float* Ks = smem;
  float* Vs = Ks + TK * LD;
  load_tile<D, TK, LD, kThreads2>(Ks, qkv_b + C, C3, kend, vec_in);
  load_tile<D, TK, LD, kThreads2>(Vs, qkv_b + 2 * C, C3, kend, vec_in);
  const float* lse_bh = lse + bh * (uint64_t)T;
  const uint64_t idx_bh = offset + bh * (uint64_t)T * (uint64_t)T;
  const bool al4 = ((offset | (uint64_t)T) & 3u) == 0;
#define BJ_BWD2_CASE(NA)                                                                     \
  case NA:                                                                                   \
    bwd2_body<D, BQ, NA>(smem, s_lse, s_D, s_keep, dqkv_b, dout_b, qkv_b, out_b, lse_bh, \
                             mask, b, T, C, C3, scale, p, dscale, seed, idx_bh, uniform, al4, \
                             vec_in, vec_o, vec_out);                                        \
    break;
  switch ((kend + 15) / 16) {
    BJ_BWD2_CASE(1)
    BJ_BWD2_CASE(2)
    BJ_BWD2_CASE(3)
    BJ_BWD2_CASE(4)
    BJ_BWD2_CASE(5)
    BJ_BWD2_CASE(6)
    BJ_BWD2_CASE(7)
    default:
      BJ_BWD2_CASE(8)
  }
#undef BJ_BWD2_CASE
}

// ---------------------------------------------------------------------------------------------
// v3 fused backward (BJ_ATTN_IMPL=v3 or v3bwd) for D = 64, T <= kFusedT: one block of 512
// threads per (b, h) like k_attn_bwd2, with register micro-tiles that need fewer shared-memory
// wavefronts per FMA in the two products that dominated v2's shared-memory traffic:
// - S^T and dP^T (keys x queries of the tile, BQ = 32): thread (lane, warp w) owns the 4 x 2
//   micro-tile keys 4 (w >> 1) + (lane >> 3) + 32j (j < NR) x queries (lane & 7) + 8 (w & 1) +
//   16i (i < 2). A warp's Q (dO) float4 load reads 8 consecutive rows (one wavefront, no
//   conflict at row stride D + 4), its K (V) load 4 rows (broadcast): 6 loads per 32 FMAs per
//   pass (v2: 9 loads, 10 wavefronts per 32 FMAs). Keys are computed up to KP = 16 NA,
//   NA = ceil(key_end / 16) a template parameter (keys in [key_end, KP) have P = 0); with NA odd
//   the last key slot is computed by warps 0..7 only (every SM sub-partition keeps half its
//   warps busy there), so the issued work follows key_end in steps of 16 keys as in v2.
// - Pdrop^T and dS^T go to shared memory key-major with row stride 40 (the 4 key rows x 8
//   queries of a warp's store hit 32 different banks). There is no query-major dS copy: dQ reads
//   dS^T directly.
// - dK += dS^T Q (threads 0..255), dV += Pdrop^T dO (256..511): as v2 (keys ty + 16a, a < NA).
// - dQ = scale dS K: 4 key quarters (z = tid / 128) x 4 x 4 micro-tiles (queries 4qg .. 4qg + 3 x
//   channels 4cg .. 4cg + 3, one float4 of dS^T and one of K per key: 2 loads, 3 wavefronts per
//   16 FMAs; v2 6 loads, 10 wavefronts per 32). The 4 partials go through shared memory and are
//   added in the fixed order z = 0, 1, 2, 3 by all 512 threads (one float4 each), which store
//   whole rows. Deterministic: no atomics, fixed summation order everywhere.
// Three barriers per query tile (v2: four). The prologue issues its global loads in two rounds
// with every load of a round in flight (mask, lse, dO and out of all queries for D_i, the first
// Q/dO tile; then K, V before key_end), where v2 loads inside the loops of load_tile and of D_i
// (whether nvcc overlaps those iterations was not checked). Dropout keep bits, the Q/dO prefetch
// and the stores of dK/dV are v2's. 162.8 KB of shared memory: one block per SM (as v2); 128
// registers, no spills (sm_90). Other D or T fall back to the v2 backward.
constexpr int kLS3 = 40;  // row stride of Pdrop^T / dS^T in the v3 backward

template <int D, int BQ, int NA>
__device__ __forceinline__ void bwd3_body(float* smem, const float* s_lse, const float* s_D,
                                          uint8_t* s_keep, float* dqkv_b, const float* dout_b,
                                          const float* qkv_b, float4 gq, float4 gd,
                                          const int32_t* mask, int b, int T, int C, int64_t C3,
                                          float scale, float p, float dscale, uint64_t seed,
                                          uint64_t idx_bh, bool uniform, bool al4, int vec_in,
                                          int vec_o, int vec_out) {
  constexpr int TK = kFusedT, LD = D + 4, LS = kLS3, NV = D / 16, C4 = D / 4;
  // keys computed (KP = 16 NA); S^T micro-tile key slots (32 keys each; with NA odd the last slot
  // holds keys only for ka < 16, i.e. warps 0..7); keys per dQ quarter
  constexpr int KP = 16 * NA, NR = (NA + 1) / 2, KQ = KP / 4;
  static_assert(D == 64 && BQ == 32, "v3 tiles: 16 channel groups of 4, 32 queries per tile");
  static_assert(BQ * C4 == kThreads2, "one float4 per thread for the Q/dO tile and dQ rows");
  float* Ks = smem;
  float* Vs = Ks + TK * LD;
  float* Qs = Vs + TK * LD;
  float* dOs = Qs + BQ * LD;
  float* PdT = dOs + BQ * LD;  // (TK, LS) Pdrop^T of the current query tile
  float* dST = PdT + TK * LS;  // (TK, LS) dS^T
  float* dQp = dST + TK * LS;  // (4, BQ, LD) dQ partials of the 4 key quarters
  const int tid = threadIdx.x, z = tid >> 8, tx = tid & 15, ty = (tid >> 4) & 15;
  const int lane = tid & 31, w = tid >> 5;
  const int qa = (lane & 7) + 8 * (w & 1), ka = 4 * (w >> 1) + (lane >> 3);  // S^T micro-tile
  const float inv_t = 1.0f / (float)T;
  const bool drop = p > 0.0f;

  // slot j of this thread holds a key below KP (warp-uniform: ka / 16 depends on the warp only)
  // (the full slots j < NF run in plain unrolled loops, the half slot behind one branch: a
  // "continue" inside the unrolled loops made ptxas spill)
  constexpr int NF = NA / 2;
  const bool lo16 = ka < 16;
  unsigned kval = 0;  // bit j: key ka + 32j is real (or attended uniformly)
#pragma unroll
  for (int j = 0; j < NR; ++j) kval |= key_ok(mask, b, T, ka + 32 * j, uniform) ? 1u << j : 0u;
  float acc[NA][NV];  // dK (z = 0) or dV (z = 1) of keys ty + 16a
#pragma unroll
  for (int a = 0; a < NA; ++a)
#pragma unroll
    for (int v = 0; v < NV; ++v) acc[a][v] = 0.0f;

  // row lr, channels lc .. lc + 3: the thread's float4 of the Q/dO tile and of the dQ rows
  const int lr = tid / C4, lc = (tid % C4) * 4;
  auto fetch = [&](int q0) {
    gq = gd = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    const int qi = q0 + lr;
    if (qi < T) {
      const float* qp = qkv_b + (int64_t)qi * C3 + lc;
      const float* dp = dout_b + (int64_t)qi * C + lc;
      gq = vec_in ? *reinterpret_cast<const float4*>(qp) : make_float4(qp[0], qp[1], qp[2], qp[3]);
      gd = vec_o ? *reinterpret_cast<const float4*>(dp) : make_float4(dp[0], dp[1], dp[2], dp[3]);
    }
  };

  for (int q0 = 0; q0 < T; q0 += BQ) {
    // ---- tile in: Q, dO (the first tile's loaded by the kernel's prologue), keep bits ----
    *reinterpret_cast<float4*>(Qs + lr * LD + lc) = gq;
    *reinterpret_cast<float4*>(dOs + lr * LD + lc) = gd;
    if (drop) {  // keep bits of keys 8 kb .. 8 kb + 7 of query q0 + kq in s_keep[kq * 16 + kb]
      const int kq = tid >> 4, kb = tid & 15;
      if (8 * kb < KP) {
        const uint64_t i0 = idx_bh + (uint64_t)(q0 + kq) * (uint64_t)T + 8u * kb;
        unsigned bits = 0;
        if (al4) {  // two whole Philox groups
          float u[4], v[4];
          bj_dropout_uniform4(seed, i0 >> 2, u);
          bj_dropout_uniform4(seed, (i0 >> 2) + 1, v);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            bits |= (u[e] >= p ? 1u : 0u) << e;
            bits |= (v[e] >= p ? 1u : 0u) << (e + 4);
          }
        } else {  // groups straddle the rows: one Philox call per element
#pragma unroll 1
          for (int e = 0; e < 8; ++e) bits |= (bj_dropout_uniform(seed, i0 + e) >= p ? 1u : 0u) << e;
        }
        s_keep[kq * 16 + kb] = (uint8_t)bits;
      }
    }
    __syncthreads();

    // ---- S^T, dP^T: keys ka + 32j x queries qa + 16i ----
    {
      float st[NR][2], dpt[NR][2];
#pragma unroll
      for (int j = 0; j < NR; ++j) st[j][0] = st[j][1] = dpt[j][0] = dpt[j][1] = 0.0f;
#pragma unroll 2
      for (int d = 0; d < D; d += 4) {
        const float4 q0v = *reinterpret_cast<const float4*>(Qs + qa * LD + d);
        const float4 q1v = *reinterpret_cast<const float4*>(Qs + (qa + 16) * LD + d);
#pragma unroll
        for (int j = 0; j < NF; ++j) {
          const float4 kv = *reinterpret_cast<const float4*>(Ks + (ka + 32 * j) * LD + d);
          st[j][0] = dot4(kv, q0v, st[j][0]);
          st[j][1] = dot4(kv, q1v, st[j][1]);
        }
        if constexpr (NF < NR) {
          if (lo16) {
            const float4 kv = *reinterpret_cast<const float4*>(Ks + (ka + 32 * NF) * LD + d);
            st[NF][0] = dot4(kv, q0v, st[NF][0]);
            st[NF][1] = dot4(kv, q1v, st[NF][1]);
          }
        }
      }
      // (S^T is live here: unrolled by 2 at NA = 8 the pass spilled 3 registers)
#pragma unroll(NA >= 8 ? 1 : 2)
      for (int d = 0; d < D; d += 4) {
        const float4 o0v = *reinterpret_cast<const float4*>(dOs + qa * LD + d);
        const float4 o1v = *reinterpret_cast<const float4*>(dOs + (qa + 16) * LD + d);
#pragma unroll
        for (int j = 0; j < NF; ++j) {
          const float4 vv = *reinterpret_cast<const float4*>(Vs + (ka + 32 * j) * LD + d);
          dpt[j][0] = dot4(vv, o0v, dpt[j][0]);
          dpt[j][1] = dot4(vv, o1v, dpt[j][1]);
        }
        if constexpr (NF < NR) {
          if (lo16) {
            const float4 vv = *reinterpret_cast<const float4*>(Vs + (ka + 32 * NF) * LD + d);
            dpt[NF][0] = dot4(vv, o0v, dpt[NF][0]);
            dpt[NF][1] = dot4(vv, o1v, dpt[NF][1]);
          }
        }
      }
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int ql = qa + 16 * i, qi = q0 + ql;
        const float lq = s_lse[qi < T ? qi : 0], Dq = s_D[qi < T ? qi : 0];
#pragma unroll
        for (int j = 0; j < NR; ++j) {
          // (half slot with ka >= 16: keys in [KP, 128), P = 0, written but never read)
          const int kj = ka + 32 * j;
          float P = 0.0f;
          if (((kval >> j) & 1u) && qi < T) P = uniform ? inv_t : expf(scale * st[j][i] - lq);
          float f = 1.0f;
          if (drop) f = ((s_keep[ql * 16 + (kj >> 3)] >> (kj & 7)) & 1) ? dscale : 0.0f;
          PdT[kj * LS + ql] = P * f;
          dST[kj * LS + ql] = uniform ? 0.0f : P * (dpt[j][i] * f - Dq);
        }
      }
    }
    __syncthreads();

    // ---- dK += dS^T Q (z = 0), dV += Pdrop^T dO (z = 1) ----
    {
      const float* X = z ? dOs : Qs;
      const float* W = z ? PdT : dST;
#pragma unroll 1
      for (int c = 0; c < BQ; c += 4) {
        float xv[4][NV];
#pragma unroll
        for (int cc = 0; cc < 4; ++cc) load_dims<D>(X + (c + cc) * LD, tx, xv[cc]);
#pragma unroll
        for (int a = 0; a < NA; ++a) {
          const float4 wa = *reinterpret_cast<const float4*>(W + (ty + 16 * a) * LS + c);
#pragma unroll
          for (int v = 0; v < NV; ++v) {
            float x = acc[a][v];
            x = fmaf(wa.x, xv[0][v], x);
            x = fmaf(wa.y, xv[1][v], x);
            x = fmaf(wa.z, xv[2][v], x);
            x = fmaf(wa.w, xv[3][v], x);
            acc[a][v] = x;
          }
        }
      }
    }

    // the next tile's Q, dO: in flight during the dQ product
    if (q0 + BQ < T) fetch(q0 + BQ);

    // ---- dQ partial of key quarter zq: queries 4qg + r x channels 4cg .. 4cg + 3 ----
    {
      const int zq = tid >> 7, cg = tid & 15, qg = (tid >> 4) & 7;
      float dq[4][4];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) dq[r][c] = 0.0f;
      const float* sp = dST + zq * KQ * LS + 4 * qg;
      const float* kp = Ks + zq * KQ * LD + 4 * cg;
#pragma unroll 4
      for (int k = 0; k < KQ; ++k) {
        const float4 s = *reinterpret_cast<const float4*>(sp + k * LS);
        const float4 kk = *reinterpret_cast<const float4*>(kp + k * LD);
        const float sv[4] = {s.x, s.y, s.z, s.w};
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          dq[r][0] = fmaf(sv[r], kk.x, dq[r][0]);
          dq[r][1] = fmaf(sv[r], kk.y, dq[r][1]);
          dq[r][2] = fmaf(sv[r], kk.z, dq[r][2]);
          dq[r][3] = fmaf(sv[r], kk.w, dq[r][3]);
        }
      }
      float* pp = dQp + zq * BQ * LD + 4 * cg;
#pragma unroll
      for (int r = 0; r < 4; ++r)
        *reinterpret_cast<float4*>(pp + (4 * qg + r) * LD) =
            make_float4(dq[r][0], dq[r][1], dq[r][2], dq[r][3]);
    }
    __syncthreads();
    {  // dQ row q0 + lr, channels lc .. lc + 3: the 4 partials in order z = 0, 1, 2, 3
      float4 s = *reinterpret_cast<const float4*>(dQp + lr * LD + lc);
#pragma unroll
      for (int zz = 1; zz < 4; ++zz) {
        const float4 t = *reinterpret_cast<const float4*>(dQp + zz * BQ * LD + lr * LD + lc);
        s.x += t.x;
        s.y += t.y;
        s.z += t.z;
        s.w += t.w;
      }
      const int qi = q0 + lr;
      if (qi < T) {
        float* row = dqkv_b + (int64_t)qi * C3 + lc;
        if (vec_out) {
          *reinterpret_cast<float4*>(row) =
              make_float4(s.x * scale, s.y * scale, s.z * scale, s.w * scale);
        } else {
          row[0] = s.x * scale;
          row[1] = s.y * scale;
          row[2] = s.z * scale;
          row[3] = s.w * scale;
        }
      }
    }
    // no barrier here: the next writes of Qs, dOs, s_keep (tile start) and PdT, dST (after the
    // next tile's first barrier) come after this tile's last readers passed the barrier above,
    // and dQp is rewritten only after the next tile's second barrier
  }

  // dK (z = 0) / dV (z = 1) of keys ty + 16a: computed for a < NA, zero for the rest
  float zero[NV];
#pragma unroll
  for (int v = 0; v < NV; ++v) zero[v] = 0.0f;
  const int part = z ? 2 * C : C;
  const float mul = z ? 1.0f : scale;
#pragma unroll
  for (int a = 0; a < TK / 16; ++a) {
    const int kj = ty + 16 * a;
    if (kj < T) {
      float* row = dqkv_b + (int64_t)kj * C3 + part;
      if (a < NA)
        store_dims<D>(row, tx, acc[a < NA ? a : 0], mul, vec_out != 0);
      else
        store_dims<D>(row, tx, zero, 1.0f, vec_out != 0);
    }
  }
}

template <int D, int BQ>
__global__ void __launch_bounds__(kThreads2, 1)
    k_attn_bwd3(float* dqkv, const float* dout, const float* qkv, const float* out,
                const float* lse, const int32_t* mask, int T, int NH, float scale, float p,
                float dscale, uint64_t seed, uint64_t offset, const bj_step_scalars* sc, int vec_in,
                int vec_o, int vec_out) {
  seed = bjc::step_seed(sc, seed);  // per-step seed (bertj.h), before any draw
  constexpr int TK = kFusedT, LD = D + 4, C4 = D / 4, NW = kThreads2 / 32;
  constexpr int IT = TK * C4 / kThreads2;  // float4 per thread of a (TK, D) matrix
  static_assert(TK <= kThreads2 && TK * C4 % kThreads2 == 0 && kThreads2 % C4 == 0, "prologue");
  BJ_DYN_SMEM(float, smem);
  __shared__ float s_lse[kFusedT], s_D[kFusedT];
  __shared__ uint8_t s_keep[BQ * 16];
  __shared__ int s_kend[NW];
  const int tid = threadIdx.x;
  const int h = blockIdx.x, b = blockIdx.y;
  const int C = NH * D;
  const int64_t C3 = 3LL * C;
  const float* qkv_b = qkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const float* dout_b = dout + (int64_t)b * T * C + (int64_t)h * D;
  const float* out_b = out + (int64_t)b * T * C + (int64_t)h * D;
  float* dqkv_b = dqkv + (int64_t)b * T * C3 + (int64_t)h * D;
  const uint64_t bh = (uint64_t)b * NH + h;
  const float* lse_bh = lse + bh * (uint64_t)T;

  // Prologue in two rounds of global loads, every load of a round in flight together:
  // (1) the mask (thread j: key j), lse, dO and out of every query (for D_i) and the first
  // query tile's Q and dO (row tid / C4, channels 4 (tid % C4) ..: the body's prefetch layout);
  // (2) after key_end is known, K and V of the keys before it.
  const bool inT = tid < T;
  const int mk = inT && (mask == nullptr || mask[(int64_t)b * T + tid] != 0) ? 1 : 0;
  const float lsev = inT ? lse_bh[tid] : 0.0f;
  float4 g[IT], o[IT];
#pragma unroll
  for (int it = 0; it < IT; ++it) {
    const int e = tid + it * kThreads2, r = e / C4, c = (e % C4) * 4;
    g[it] = o[it] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r < T) {
      const float* gp = dout_b + (int64_t)r * C + c;
      const float* op = out_b + (int64_t)r * C + c;
      if (vec_o) {
        g[it] = *reinterpret_cast<const float4*>(gp);
        o[it] = *reinterpret_cast<const float4*>(op);
      } else {
        g[it] = make_float4(gp[0], gp[1], gp[2], gp[3]);
        o[it] = make_float4(op[0], op[1], op[2], op[3]);
      }
    }
  }
  float4 gq = make_float4(0.0f, 0.0f, 0.0f, 0.0f), gd = gq;
  {
    const int r = tid / C4, c = (tid % C4) * 4;
    if (r < BQ && r < T) {
      const float* qp = qkv_b + (int64_t)r * C3 + c;
      gq = vec_in ? *reinterpret_cast<const float4*>(qp) : make_float4(qp[0], qp[1], qp[2], qp[3]);
      gd = g[0];  // row r of dO: e = tid in iteration 0
    }
  }
  const int last = bjc::warp_max(mk ? tid + 1 : 0);
  if ((tid & 31) == 0) s_kend[tid >> 5] = last;
  if (inT) s_lse[tid] = lsev;
#pragma unroll
  for (int it = 0; it < IT; ++it) {
    const int e = tid + it * kThreads2, r = e / C4, c = (e % C4) * 4;
    float part = g[it].x * o[it].x;
    part = fmaf(g[it].y, o[it].y, part);
    part = fmaf(g[it].z, o[it].z, part);
    part = fmaf(g[it].w, o[it].w, part);
#pragma unroll
    for (int off = C4 / 2; off > 0; off >>= 1) part += __shfl_xor_sync(bjc::kFull, part, off);
    if (r < T && c == 0) s_D[r] = part;
  }
  __syncthreads();
  int kend = 0;  // one past the last real key (0: none)
#pragma unroll
  for (int w = 0; w < NW; ++w) kend = max(kend, s_kend[w]);
  const bool uniform = kend == 0;
  if (uniform) kend = T;  // no real key: every key attends uniformly
  float* Ks = smem;
  float* Vs = Ks + TK * LD;
  {  // K, V rows < kend, zero rows up to TK
    float4 kr[IT], vr[IT];
#pragma unroll
    for (int it = 0; it < IT; ++it) {
      const int e = tid + it * kThreads2, r = e / C4, c = (e % C4) * 4;
      kr[it] = vr[it] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (r < kend) {
        const float* kp = qkv_b + (int64_t)r * C3 + C + c;
        const float* vp = kp + C;
        if (vec_in) {
          kr[it] = *reinterpret_cast<const float4*>(kp);
          vr[it] = *reinterpret_cast<const float4*>(vp);
        } else {
          kr[it] = make_float4(kp[0], kp[1], kp[2], kp[3]);
          vr[it] = make_float4(vp[0], vp[1], vp[2], vp[3]);
        }
      }
    }
#pragma unroll
    for (int it = 0; it < IT; ++it) {
      const int e = tid + it * kThreads2, r = e / C4, c = (e % C4) * 4;
      *reinterpret_cast<float4*>(Ks + r * LD + c) = kr[it];
      *reinterpret_cast<float4*>(Vs + r * LD + c) = vr[it];
    }
  }
  const uint64_t idx_bh = offset + bh * (uint64_t)T * (uint64_t)T;
  const bool al4 = ((offset | (uint64_t)T) & 3u) == 0;
#define BJ_BWD3_CASE(NA)                                                                      \
  case NA:                                                                                    \
    bwd3_body<D, BQ, NA>(smem, s_lse, s_D, s_keep, dqkv_b, dout_b, qkv_b, gq, gd, mask, b, T, \
                         C, C3, scale, p, dscale, seed, idx_bh, uniform, al4, vec_in, vec_o,   \
                         vec_out);                                                             \
    break;
  switch ((kend + 15) / 16) {
    BJ_BWD3_CASE(1)
    BJ_BWD3_CASE(2)
    BJ_BWD3_CASE(3)
    BJ_BWD3_CASE(4)
    BJ_BWD3_CASE(5)
    BJ_BWD3_CASE(6)
    BJ_BWD3_CASE(7)
    default:
      BJ_BWD3_CASE(8)
  }
#undef BJ_BWD3_CASE
}

// ---------------------------------------------------------------------------------------------
// BJ_ATTN_IMPL (read at every call): "v1" selects the kernels as they were before the v2 work for
// both directions (forward k_attn_fwd with one Philox call per dropout element, backward
// k_attn_bwd_fused at 256 threads), "v1fwd" only for the forward, "v1bwd" only for the backward;
// anything else, or unset, the v2 kernels (see the file header). Both give the same results up to
// fp32 rounding (same masks, same semantics).
bool attn_v1(bool fwd) {
  const char* e = std::getenv("BJ_ATTN_IMPL");
  if (e == nullptr) return false;
  if (std::strcmp(e, "v1") == 0) return true;
  if (std::strcmp(e, "v1fwd") == 0) return fwd;
  if (std::strcmp(e, "v1bwd") == 0) return !fwd;
  return false;
}

// The v3 backward k_attn_bwd3 (D = 64, T <= kFusedT; other shapes the v2 backward) is the
// default since the H200 measurement of 2026-11-26 (B32 T128 NH12 D64, padding mask: 160.6 us
// against v2's 191.3 at p = 0, 169.0 against 200.9 at p = 0.1); BJ_ATTN_IMPL=v2 (or v2bwd) selects
// the v2 backward, "v1"/"v1bwd" the v1 one.
bool attn_v3_bwd() {
  const char* e = std::getenv("BJ_ATTN_IMPL");
  if (e == nullptr) return true;
  return !(std::strcmp(e, "v1") == 0 || std::strcmp(e, "v1bwd") == 0 || std::strcmp(e, "v2") == 0
           || std::strcmp(e, "v2bwd") == 0);
}

template <int D, bool G4>
int forward_launch(const char* op, float* out, float* lse, const float* qkv, const int32_t* mask,
                   int B, int T, int NH, float scale, float p, float dscale, uint64_t seed,
                   uint64_t offset, const bj_step_scalars* sc, void* stream) {
  constexpr int BQ = Tiles<D>::FQ, BK = Tiles<D>::FK, LD = D + 4, LP = BK + 16;
  constexpr int smem = (BQ * LD + 2 * BK * LD + BQ * LP) * (int)sizeof(float);
  auto kern = &k_attn_fwd<D, BQ, BK, G4>;
  static unsigned done = 0;
  BJ_TRY(bjc::allow_smem((const void*)kern, smem, &done, op));
  const dim3 grid((unsigned)((T + BQ - 1) / BQ), (unsigned)NH, (unsigned)B);
  BJ_LAUNCH(kern, grid, kThreads, smem, bjc::as_stream(stream), out, lse, qkv, mask, T, NH, scale,
            p, dscale, seed, offset, sc, bjc::aligned16(qkv) ? 1 : 0, bjc::aligned16(out) ? 1 : 0);
  return bjc::check_launch(op);
}

template <int D, bool G4>
int forward2_launch(const char* op, float* out, float* lse, const float* qkv,
                    const int32_t* mask, int B, int T, int NH, float scale, float p, float dscale,
                    uint64_t seed, uint64_t offset, const bj_step_scalars* sc, void* stream) {
  constexpr int BQ = Tiles<D>::FQ, BK = Tiles<D>::FK, TK = kFusedFwdT, LD = D + 4, LP = BK + 16;
  constexpr int smem = (BQ * LD + 2 * TK * LD + BQ * LP) * (int)sizeof(float);
  auto kern = &k_attn_fwd2<D, BQ, BK, G4>;
  static unsigned done = 0;
  BJ_TRY(bjc::allow_smem((const void*)kern, smem, &done, op));
  const dim3 grid((unsigned)((T + BQ - 1) / BQ), (unsigned)NH, (unsigned)B);
  BJ_LAUNCH(kern, grid, kThreads, smem, bjc::as_stream(stream), out, lse, qkv, mask, T, NH, scale,
            p, dscale, seed, offset, sc, bjc::aligned16(qkv) ? 1 : 0, bjc::aligned16(out) ? 1 : 0);
  return bjc::check_launch(op);
}

template <int D>
int forward_impl(const char* op, float* out, float* lse, const float* qkv, const int32_t* mask,
                 int B, int T, int NH, float scale, float p, float dscale, uint64_t seed,
                 uint64_t offset, const bj_step_scalars* sc, void* stream) {
  if constexpr (D <= 64) {
    if (T <= kFusedFwdT && !attn_v1(true)) {
      if (p > 0.0f)
        return forward2_launch<D, true>(op, out, lse, qkv, mask, B, T, NH, scale, p, dscale, seed,
                                        offset, sc, stream);
      return forward2_launch<D, false>(op, out, lse, qkv, mask, B, T, NH, scale, p, dscale, seed,
                                       offset, sc, stream);
    }
  }
  if (attn_v1(true) || p == 0.0f)  // (at p = 0 both instantiations run the same code)
    return forward_launch<D, false>(op, out, lse, qkv, mask, B, T, NH, scale, p, dscale, seed,
                                    offset, sc, stream);
  return forward_launch<D, true>(op, out, lse, qkv, mask, B, T, NH, scale, p, dscale, seed,
                                 offset, sc, stream);
}

template <int D>
int backward_impl(const char* op, float* dqkv, const float* dout, const float* qkv,
                  const float* out, const float* lse, const int32_t* mask, int B, int T, int NH,
                  float scale, float p, float dscale, uint64_t seed, uint64_t offset,
                  const bj_step_scalars* sc, void* stream) {
  const int vec_in = bjc::aligned16(qkv) ? 1 : 0;
  const int vec_o = bjc::aligned16(dout) && bjc::aligned16(out) ? 1 : 0;
  const int vec_out = bjc::aligned16(dqkv) ? 1 : 0;
  if constexpr (D == 64) {
    if (T <= kFusedT && attn_v3_bwd()) {
      constexpr int BQ = 32, TK = kFusedT, LD = D + 4;
      constexpr int smem = (2 * TK * LD + 2 * BQ * LD + 2 * TK * kLS3 + 4 * BQ * LD) *
                           (int)sizeof(float);
      const dim3 grid((unsigned)NH, (unsigned)B);
      auto kern = &k_attn_bwd3<D, BQ>;
      static unsigned done = 0;
      BJ_TRY(bjc::allow_smem((const void*)kern, smem, &done, op));
      BJ_LAUNCH(kern, grid, kThreads2, smem, bjc::as_stream(stream), dqkv, dout, qkv, out, lse,
                mask, T, NH, scale, p, dscale, seed, offset, sc, vec_in, vec_o, vec_out);
      return bjc::check_launch(op);
    }
  }
  if constexpr (D == 32 || D == 64) {
    if (T <= kFusedT && !attn_v1(false)) {
      constexpr int BQ = 32, TK = kFusedT, LD = D + 4, LS = BQ + 16, LK = TK + 4;
      constexpr int smem =
          (2 * TK * LD + 3 * BQ * LD + 2 * TK * LS + BQ * LK) * (int)sizeof(float);
      const dim3 grid((unsigned)NH, (unsigned)B);
      auto kern = &k_attn_bwd2<D, BQ>;
      static unsigned done = 0;
      BJ_TRY(bjc::allow_smem((const void*)kern, smem, &done, op));
      BJ_LAUNCH(kern, grid, kThreads2, smem, bjc::as_stream(stream), dqkv, dout, qkv, out, lse,
                mask, T, NH, scale, p, dscale, seed, offset, sc, vec_in, vec_o, vec_out);
      return bjc::check_launch(op);
    }
  }
#if BJ_ATTN_FUSED_BWD
  if constexpr (D == 32 || D == 64) {
    if (T <= kFusedT) {
      constexpr int BQ = 32, TK = kFusedT, LD = D + 4, LS = BQ + 16, LK = TK + 4;
      constexpr int smem =
          (2 * TK * LD + 2 * BQ * LD + 2 * TK * LS + BQ * LK) * (int)sizeof(float);
      auto kern = &k_attn_bwd_fused<D, BQ>;
      static unsigned done = 0;
      BJ_TRY(bjc::allow_smem((const void*)kern, smem, &done, op));
      const dim3 grid((unsigned)NH, (unsigned)B);
      BJ_LAUNCH(kern, grid, kThreads, smem, bjc::as_stream(stream), dqkv, dout, qkv, out, lse,
                mask, T, NH, scale, p, dscale, seed, offset, sc, vec_in, vec_o, vec_out);
      return bjc::check_launch(op);
    }
  }
#endif
  {
    constexpr int BK = Tiles<D>::KK, BQ = Tiles<D>::KQ, LD = D + 4, LS = BQ + 16;
    constexpr int smem = (2 * BK * LD + 2 * BQ * LD + 2 * BK * LS) * (int)sizeof(float);
    auto kern = &k_attn_bwd_kv<D, BK, BQ>;
    static unsigned done = 0;
    BJ_TRY(bjc::allow_smem((const void*)kern, smem, &done, op));
    const dim3 grid((unsigned)((T + BK - 1) / BK), (unsigned)NH, (unsigned)B);
    BJ_LAUNCH(kern, grid, kThreads, smem, bjc::as_stream(stream), dqkv, dout, qkv, out, lse, mask,
              T, NH, scale, p, dscale, seed, offset, sc, vec_in, vec_o, vec_out);
    BJ_TRY(bjc::check_launch(op));
  }
  {
    constexpr int BQ = Tiles<D>::QQ, BK = Tiles<D>::QK, LD = D + 4, LS = BK + 16;
    constexpr int smem = (2 * BQ * LD + 2 * BK * LD + BQ * LS) * (int)sizeof(float);
    auto kern = &k_attn_bwd_q<D, BQ, BK>;
    static unsigned done = 0;
    BJ_TRY(bjc::allow_smem((const void*)kern, smem, &done, op));
    const dim3 grid((unsigned)((T + BQ - 1) / BQ), (unsigned)NH, (unsigned)B);
    BJ_LAUNCH(kern, grid, kThreads, smem, bjc::as_stream(stream), dqkv, dout, qkv, out, lse, mask,
              T, NH, scale, p, dscale, seed, offset, sc, vec_in, vec_o, vec_out);
    BJ_TRY(bjc::check_launch(op));
  }
  return BJ_OK;
}
}  // namespace

extern "C" int bj_cuda_attention_forward(float* out,            // (B, T, C)
                                         float* lse,            // (B, NH, T)
                                         const float* qkv,      // (B, T, 3C)
                                         const int32_t* mask,   // (B, T) or NULL
                                         int B, int T, int NH, int D, float p, uint64_t seed,
                                         uint64_t offset, const bj_step_scalars* sc, void* stream) {
  const char* op = "bj_cuda_attention_forward";
  BJ_CHECK(out != nullptr && lse != nullptr && qkv != nullptr, "bj_cuda_attention_forward",
           "out, lse or qkv is NULL");
  {
    const int rc_ = bjc::check_attention_args("bj_cuda_attention_forward", B, T, NH, D, p);
    if (rc_ != BJ_OK) return rc_;
  }
  if (B > 65535 || NH > 65535)
    return bjc::fail(BJ_ERR_UNSUPPORTED, "%s: B = %d or NH = %d exceeds 65535", op, B, NH);
  const float scale = 1.0f / std::sqrt((float)D);
  const float dscale = 1.0f / (1.0f - p);
  switch (D) {
    case 16:
      return forward_impl<16>(op, out, lse, qkv, mask, B, T, NH, scale, p, dscale, seed, offset,
                              sc, stream);
    case 32:
      return forward_impl<32>(op, out, lse, qkv, mask, B, T, NH, scale, p, dscale, seed, offset,
                              sc, stream);
    case 64:
      return forward_impl<64>(op, out, lse, qkv, mask, B, T, NH, scale, p, dscale, seed, offset,
                              sc, stream);
    case 128:
      return forward_impl<128>(op, out, lse, qkv, mask, B, T, NH, scale, p, dscale, seed, offset,
                               sc, stream);
    default:
      return bjc::fail(BJ_ERR_UNSUPPORTED, "%s: head dim D = %d (supported: 16, 32, 64, 128)", op,
                       D);
  }
}

extern "C" int bj_cuda_attention_backward(float* dqkv,          // (B, T, 3C), "="
                                          const float* dout,    // (B, T, C)
                                          const float* qkv,     // (B, T, 3C)
                                          const float* out,     // (B, T, C), saved
                                          const float* lse,     // (B, NH, T), saved
                                          const int32_t* mask,  // (B, T) or NULL
                                          int B, int T, int NH, int D, float p, uint64_t seed,
                                          uint64_t offset, const bj_step_scalars* sc,
                                          void* stream) {
  const char* op = "bj_cuda_attention_backward";
  BJ_CHECK(dqkv != nullptr && dout != nullptr && qkv != nullptr, "bj_cuda_attention_backward",
           "dqkv, dout or qkv is NULL");
  BJ_CHECK(out != nullptr && lse != nullptr, "bj_cuda_attention_backward", "out or lse is NULL");
  {
    const int rc_ = bjc::check_attention_args("bj_cuda_attention_backward", B, T, NH, D, p);
    if (rc_ != BJ_OK) return rc_;
  }
  if (B > 65535 || NH > 65535)
    return bjc::fail(BJ_ERR_UNSUPPORTED, "%s: B = %d or NH = %d exceeds 65535", op, B, NH);
  const float scale = 1.0f / std::sqrt((float)D);
  const float dscale = 1.0f / (1.0f - p);
  switch (D) {
    case 16:
      return backward_impl<16>(op, dqkv, dout, qkv, out, lse, mask, B, T, NH, scale, p, dscale,
                               seed, offset, sc, stream);
    case 32:
      return backward_impl<32>(op, dqkv, dout, qkv, out, lse, mask, B, T, NH, scale, p, dscale,
                               seed, offset, sc, stream);
    case 64:
      return backward_impl<64>(op, dqkv, dout, qkv, out, lse, mask, B, T, NH, scale, p, dscale,
                               seed, offset, sc, stream);
    case 128:
      return backward_impl<128>(op, dqkv, dout, qkv, out, lse, mask, B, T, NH, scale, p, dscale,
                                seed, offset, sc, stream);
    default:
      return bjc::fail(BJ_ERR_UNSUPPORTED, "%s: head dim D = %d (supported: 16, 32, 64, 128)", op,
                       D);
  }
}
