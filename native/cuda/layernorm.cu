// Layer norm with a fused residual add (BERT's post-LN), on the GPU.
//
// Forward, per row n of N:
//   h = x + residual (residual may be NULL); mean = sum(h)/C; var = sum((h - mean)^2)/C
//   (both accumulated in double, two passes, as on the CPU); rstd = 1/sqrt(var + eps)
//   out = (h - mean) * rstd * gamma + beta; saves mean, rstd and (hsave != NULL) h.
//   out may alias x: each thread reads its elements of x before writing them.
// Backward (g = dout * gamma, xhat = (h - mean) * rstd):
//   dh = rstd * (g - mean(g) - xhat * mean(g * xhat))     activation gradient ("=")
//   dgamma += sum_n dout * xhat; dbeta += sum_n dout       parameter gradients ("+=")
//
// Dropout fused in front (dropout_layernorm_*): h = dropout(y) + residual with the Philox mask of
// (seed, offset) over element n * C + c (DropArgs below); its backward also writes dy = dh * keep /
// (1 - p). Same bits as bj_cuda_dropout_forward + layernorm_forward (layernorm_backward +
// dropout_backward): the same kernels with the mask applied in registers.
// dbias_y (dropout_layernorm_backward, NULL = none) += column sums of dy, the bias gradient of the
// Linear that produced y: the default v2 path (and v2l2, the same kernels) sums it in the same
// pass as a third column partial next to dgamma/dbeta (k_ln_bwd_v2<..., BIAS>: partial rows of 3C
// instead of 2C, added by the same k_ln_part_sum); every other path (v2np, v3, v3a, v3g, v3gp,
// the scalar and scratch-free paths) runs bj_cuda_bias_backward on dy after it, in the same entry
// point. Either way a fixed summation order (deterministic), the fused one: fp32 per thread over
// its rows, the teams' fixed tree in fp32, then the G block rows in double.
// bf16 side outputs (mixed precision): dropout_layernorm_forward's out_low and
// dropout_layernorm_backward's dy_low (NULL = none) are written by the row kernels next to out
// (dy), with bjc::store_bf16 (the bits of to_bf16; a float4 as one 8-byte store when aligned):
// k_ln_fwd_team, k_ln_fwd_gen, the v2 rows (so v2, v2np, v2l2 and every v3 variant) and
// k_ln_bwd_gen. v1 has no dy (it only runs for layernorm_backward), so every path writes them.
//
// Fast path (C % 4 == 0, C <= 8192 (forward) / 6144 (backward), 16-byte aligned pointers): a row
// is held in registers by a "team" of NW warps (NW = 1, 2, 4 or 8, the fewest that keep V4 <= 8
// float4 per thread, 6 in the backward; element float4 c4 = tl + 32 NW k belongs to team thread
// tl); 8 / NW teams per 256-thread block. Team sums are warp shuffles, then (NW > 1) the NW warp
// sums added in order through shared memory.
// - k_ln_fwd_team<V4, DROP>: one row per team; the row is read once and written once.
// - k_ln_bwd_v2<V4, DROP, PF, BIAS> (default): one block per SM (2 for V4 <= 3), each over a
//   contiguous range of rows, dgamma/dbeta (BIAS: and dbias_y) partials in registers, the next row
//   prefetched (PF; BJ_LN_IMPL=v2np drops the prefetch and runs 2 blocks per SM instead, v2l2 adds
//   an L2 prefetch of the row after next); the block's teams add their partials by a fixed tree in
//   shared memory and write one (2C, BIAS 3C) partial row per block to the per-stream scratch
//   (common.cuh, "Scratch"); k_ln_part_sum adds the G rows in order. ptxas (sm_90, CUDA 13.0): no
//   spills with BIAS, 123 registers at V4 = 3 (bound 128), 220 at V4 = 6 (bound 255).
// - v3 variants (BJ_LN_IMPL, opt-in, same dh/dy bits as v2; dgamma/dbeta the same bits as each
//   other): v3a = v2's row kernel + k_ln_part_sum2 (one L2 round trip per warp); v3 = the same two
//   kernels launched as programmatic dependents (PDL, sm_90+: each may be scheduled while its
//   predecessor drains, waiting in griddepcontrol.wait); v3g = both in one cooperative launch,
//   a grid barrier between the rows and the partial sum, every block adding column slices; v3gp =
//   v3g also launched as a programmatic dependent.
// - k_ln_bwd_team<V4> (v1, BJ_LN_IMPL=v1, layernorm_backward only): grid 3 blocks per SM, teams
//   walk rows in a grid-stride loop with their partials in shared memory; launch_sum_partials adds
//   the G rows.
// One pass over dout and h; deterministic (for a given device: G depends on the SM count); dh (and
// dy) may alias dout (a row is read before it is written, by the same threads).
// Otherwise (or without scratch: a first call inside CUDA graph capture) a scalar path: one warp
// per row re-reading the row (L1/L2 hits), and for the backward the parameter gradients first by
// k_colreduce (fixed order, double; deterministic), then the row kernel, so dh may alias dout.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "common.cuh"

namespace {
constexpr int kRowsPerBlock = 8;  // scalar path: one warp per row
constexpr int kThreadsLn = 256;
constexpr int kMaxV4 = 8;          // float4 per thread in the forward's register path
constexpr int kMaxV4Bwd = 6;       // the backward runs 3 blocks per SM: 6 avoids register spills
constexpr int kMaxVecC = 8192;     // 8 warps x 32 lanes x 4 x kMaxV4
constexpr int kMaxVecCBwd = 6144;  // 8 warps x 32 lanes x 4 x kMaxV4Bwd

// The dropout of the fused ops (dropout_layernorm_*): element i of the (N, C) matrix is kept when
// bj_dropout_uniform(seed, offset + i) >= p and then scaled by `scale` = 1 / (1 - p) (computed
// once in fp32 on the host): the same mask and the same bits as bj_cuda_dropout_forward. With
// sc (per-step scalars in device memory, bertj.h) the seed is sc->seed: every kernel taking a
// DropArgs calls load_seed() at its start when DROP (after pdl_wait in the PDL-launched rows).
struct DropArgs {
  float p, scale;
  uint64_t seed, offset;
  const bj_step_scalars* sc;  // or NULL: `seed`
  __device__ __forceinline__ void load_seed() { seed = bjc::step_seed(sc, seed); }
  __device__ __forceinline__ float apply(float v, int64_t i) const {
    if (p == 0.0f) return v;  // keeps all (scale 1): no draw
    // __fmul_rn: never contracted with the residual add into an FMA (the unfused path rounds the
    // product when it stores dropout's output)
    return bj_dropout_uniform(seed, offset + (uint64_t)i) >= p ? __fmul_rn(v, scale) : 0.0f;
  }
  __device__ __forceinline__ float4 apply4(float4 v, int64_t i) const {
    if (p == 0.0f) return v;
    const uint64_t idx = offset + (uint64_t)i;
    if ((idx & 3) == 0) {  // one Philox group: one call for the 4 (bertj_philox.h)
      float u[4];
      bj_dropout_uniform4(seed, idx >> 2, u);
      return make_float4(u[0] >= p ? __fmul_rn(v.x, scale) : 0.0f,
                         u[1] >= p ? __fmul_rn(v.y, scale) : 0.0f,
                         u[2] >= p ? __fmul_rn(v.z, scale) : 0.0f,
                         u[3] >= p ? __fmul_rn(v.w, scale) : 0.0f);
    }
    return make_float4(apply(v.x, i), apply(v.y, i + 1), apply(v.z, i + 2), apply(v.w, i + 3));
  }
};

// Warps per team for a row of C4 float4 (fast path): the fewest keeping <= maxv4 per thread.
inline int team_warps(int C4, int maxv4) {
  int nw = 1;
  while (nw < 8 && C4 > 32 * nw * maxv4) nw *= 2;
  return nw;
}

// v[i] = sum over the team (NW warps) of v[i], same bits in every team thread. red: shared, 8 x NR.
// Every thread of the block must call it (NW > 1 uses __syncthreads).
template <int NR>
__device__ __forceinline__ void team_sum(double (&v)[NR], int NW, double* red) {
#pragma unroll
  for (int i = 0; i < NR; ++i) v[i] = bjc::warp_sum(v[i]);
  if (NW > 1) {
    const int warp = threadIdx.x >> 5, first = warp - warp % NW;
    if ((threadIdx.x & 31) == 0) {
#pragma unroll
      for (int i = 0; i < NR; ++i) red[warp * NR + i] = v[i];
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < NR; ++i) {
      double s = 0.0;
      for (int w = 0; w < NW; ++w) s += red[(first + w) * NR + i];
      v[i] = s;
    }
    __syncthreads();  // red is reused by the next call
  }
}

template <int V4, bool DROP>
__global__ void __launch_bounds__(kThreadsLn)
    k_ln_fwd_team(float* out, uint16_t* out_low, float* mean, float* rstd, float* hsave,
                  const float* x, const float* residual, const float* gamma, const float* beta,
                  int N, int C, float eps, int NW, DropArgs drop) {
  __shared__ double red[8];
  if (DROP) drop.load_seed();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int teams = (kThreadsLn / 32) / NW, TT = 32 * NW;
  const int tl = (warp % NW) * 32 + lane;
  const int row = blockIdx.x * teams + warp / NW;
  const bool valid = row < N;  // uniform per team; invalid teams still join the barriers
  const int C4 = C >> 2;
  const float4* x4 = reinterpret_cast<const float4*>(x + (int64_t)row * C);
  const float4* r4 = residual ? reinterpret_cast<const float4*>(residual + (int64_t)row * C)
                              : nullptr;
  float4* h4 = hsave ? reinterpret_cast<float4*>(hsave + (int64_t)row * C) : nullptr;
  float4 hv[V4];
  double sum[1] = {0.0};
#pragma unroll
  for (int k = 0; k < V4; ++k) {
    const int c4 = tl + TT * k;
    hv[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (valid && c4 < C4) {
      float4 h = x4[c4];
      if (DROP) h = drop.apply4(h, (int64_t)row * C + 4 * c4);
      if (r4) {
        const float4 r = r4[c4];
        h.x += r.x;
        h.y += r.y;
        h.z += r.z;
        h.w += r.w;
      }
      hv[k] = h;
      if (h4) h4[c4] = h;
      sum[0] += (double)h.x;
      sum[0] += (double)h.y;
      sum[0] += (double)h.z;
      sum[0] += (double)h.w;
    }
  }
  team_sum<1>(sum, NW, red);
  const float m = (float)(sum[0] / C);
  double ss[1] = {0.0};
#pragma unroll
  for (int k = 0; k < V4; ++k) {
    if (valid && tl + TT * k < C4) {
      const double a = (double)hv[k].x - m, b = (double)hv[k].y - m;
      const double c = (double)hv[k].z - m, d = (double)hv[k].w - m;
      ss[0] += a * a;
      ss[0] += b * b;
      ss[0] += c * c;
      ss[0] += d * d;
    }
  }
  team_sum<1>(ss, NW, red);
  if (!valid) return;  // no barrier below
  const float s = (float)(1.0 / sqrt(ss[0] / C + (double)eps));
  float4* o4 = reinterpret_cast<float4*>(out + (int64_t)row * C);
  uint16_t* lo = out_low ? out_low + (int64_t)row * C : nullptr;
  const float4* g4 = reinterpret_cast<const float4*>(gamma);
  const float4* b4 = reinterpret_cast<const float4*>(beta);
#pragma unroll
  for (int k = 0; k < V4; ++k) {
    const int c4 = tl + TT * k;
    if (c4 < C4) {
      const float4 g = g4[c4], b = b4[c4], h = hv[k];
      const float4 o = make_float4((h.x - m) * s * g.x + b.x, (h.y - m) * s * g.y + b.y,
                                   (h.z - m) * s * g.z + b.z, (h.w - m) * s * g.w + b.w);
      o4[c4] = o;
      if (lo) bjc::store_bf16(lo + 4 * c4, o);
    }
  }
  if (tl == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

// Dynamic shared memory: per team 2 C4 float4 (its dgamma partials, then its dbeta partials); a
// thread only ever touches its own columns of its own team's region until the final barrier.
template <int V4>
__global__ void __launch_bounds__(kThreadsLn, 3)
    k_ln_bwd_team(float* dh, float* part, const float* dout, const float* h, const float* mean,
                  const float* rstd, const float* gamma, int N, int C, int NW) {
  __shared__ double red[16];
  BJ_DYN_SMEM(float4, acc4);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int teams = (kThreadsLn / 32) / NW, TT = 32 * NW;
  const int tl = (warp % NW) * 32 + lane, team = warp / NW;
  const int C4 = C >> 2;
  const float4* g4 = reinterpret_cast<const float4*>(gamma);
  float4* pg = acc4 + (int64_t)team * 2 * C4;  // this team's dgamma partials
  float4* pb = pg + C4;                        // and dbeta partials
#pragma unroll
  for (int k = 0; k < V4; ++k) {
    const int c4 = tl + TT * k;
    if (c4 < C4) pg[c4] = pb[c4] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }

  for (int base = blockIdx.x * teams; base < N; base += gridDim.x * teams) {
    const int row = base + team;
    const bool valid = row < N;  // uniform per team; every team runs the same iterations
    const float m = valid ? mean[row] : 0.0f, s = valid ? rstd[row] : 0.0f;
    const float4* d4 = reinterpret_cast<const float4*>(dout + (int64_t)row * C);
    const float4* h4 = reinterpret_cast<const float4*>(h + (int64_t)row * C);
    float4 dv[V4], xh[V4];
    double r[2] = {0.0, 0.0};
#pragma unroll
    for (int k = 0; k < V4; ++k) {
      const int c4 = tl + TT * k;
      dv[k] = xh[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (valid && c4 < C4) {
        dv[k] = d4[c4];
        xh[k] = h4[c4];
      }
    }
#pragma unroll
    for (int k = 0; k < V4; ++k) {
      const int c4 = tl + TT * k;
      if (valid && c4 < C4) {
        const float4 d = dv[k], hh = xh[k], ga = g4[c4];
        const float4 x = make_float4((hh.x - m) * s, (hh.y - m) * s, (hh.z - m) * s,
                                     (hh.w - m) * s);
        xh[k] = x;
        float4 a = pg[c4], b = pb[c4];
        a.x += d.x * x.x;
        a.y += d.y * x.y;
        a.z += d.z * x.z;
        a.w += d.w * x.w;
        b.x += d.x;
        b.y += d.y;
        b.z += d.z;
        b.w += d.w;
        pg[c4] = a;
        pb[c4] = b;
        const float4 g = make_float4(d.x * ga.x, d.y * ga.y, d.z * ga.z, d.w * ga.w);
        r[0] += (double)g.x;
        r[0] += (double)g.y;
        r[0] += (double)g.z;
        r[0] += (double)g.w;
        r[1] += (double)g.x * x.x;
        r[1] += (double)g.y * x.y;
        r[1] += (double)g.z * x.z;
        r[1] += (double)g.w * x.w;
      }
    }
    team_sum<2>(r, NW, red);
    const float mg = (float)(r[0] / C), mgx = (float)(r[1] / C);
    float4* o4 = reinterpret_cast<float4*>(dh + (int64_t)row * C);
#pragma unroll
    for (int k = 0; k < V4; ++k) {
      const int c4 = tl + TT * k;
      if (valid && c4 < C4) {
        const float4 d = dv[k], x = xh[k], ga = g4[c4];
        o4[c4] = make_float4(s * (d.x * ga.x - mg - x.x * mgx), s * (d.y * ga.y - mg - x.y * mgx),
                             s * (d.z * ga.z - mg - x.z * mgx), s * (d.w * ga.w - mg - x.w * mgx));
      }
    }
  }

  // The block's partial row: the teams' partials added in team order 0, 1, ...
  __syncthreads();
  float4* prow = reinterpret_cast<float4*>(part) + (int64_t)blockIdx.x * 2 * C4;
  for (int i = threadIdx.x; i < 2 * C4; i += kThreadsLn) {
    float4 a = acc4[i];
    for (int t = 1; t < teams; ++t) {
      const float4 b = acc4[(int64_t)t * 2 * C4 + i];
      a = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
    }
    prow[i] = a;
  }
}

using LnFwdFn = decltype(&k_ln_fwd_team<1, false>);
using LnBwdFn = decltype(&k_ln_bwd_team<1>);
const LnFwdFn kLnFwd[2][kMaxV4] = {
    {&k_ln_fwd_team<1, false>, &k_ln_fwd_team<2, false>, &k_ln_fwd_team<3, false>,
     &k_ln_fwd_team<4, false>, &k_ln_fwd_team<5, false>, &k_ln_fwd_team<6, false>,
     &k_ln_fwd_team<7, false>, &k_ln_fwd_team<8, false>},
    {&k_ln_fwd_team<1, true>, &k_ln_fwd_team<2, true>, &k_ln_fwd_team<3, true>,
     &k_ln_fwd_team<4, true>, &k_ln_fwd_team<5, true>, &k_ln_fwd_team<6, true>,
     &k_ln_fwd_team<7, true>, &k_ln_fwd_team<8, true>}};
const LnBwdFn kLnBwd[kMaxV4Bwd] = {&k_ln_bwd_team<1>, &k_ln_bwd_team<2>, &k_ln_bwd_team<3>,
                                   &k_ln_bwd_team<4>, &k_ln_bwd_team<5>, &k_ln_bwd_team<6>};
unsigned g_bwd_smem_done[kMaxV4Bwd] = {0};

template <bool DROP>
__global__ void __launch_bounds__(256)
    k_ln_fwd_gen(float* out, uint16_t* out_low, float* mean, float* rstd, float* hsave,
                 const float* x, const float* residual, const float* gamma, const float* beta,
                 int N, int C, float eps, DropArgs drop) {
  if (DROP) drop.load_seed();
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= N) return;
  const float* xr = x + (int64_t)row * C;
  const float* rr = residual ? residual + (int64_t)row * C : nullptr;
  float* hr = hsave ? hsave + (int64_t)row * C : nullptr;
  const int64_t i0 = (int64_t)row * C;
  // h of column c (the dropout draw is repeated in each of the three passes: this is the fallback)
  auto hval = [&](int c) {
    const float v = DROP ? drop.apply(xr[c], i0 + c) : xr[c];
    return rr ? v + rr[c] : v;
  };
  double sum = 0.0;
  for (int c = lane; c < C; c += 32) {
    const float h = hval(c);
    if (hr) hr[c] = h;
    sum += (double)h;
  }
  sum = bjc::warp_sum(sum);
  const float m = (float)(sum / C);
  double ss = 0.0;
  for (int c = lane; c < C; c += 32) {
    const float h = hval(c);
    const double d = (double)h - m;
    ss += d * d;
  }
  ss = bjc::warp_sum(ss);
  const float s = (float)(1.0 / sqrt(ss / C + (double)eps));
  float* o = out + (int64_t)row * C;
  uint16_t* lo = out_low ? out_low + (int64_t)row * C : nullptr;
  for (int c = lane; c < C; c += 32) {
    const float h = hval(c);
    const float v = (h - m) * s * gamma[c] + beta[c];
    o[c] = v;
    if (lo) bjc::store_bf16(lo + c, v);
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

template <bool DROP>
__global__ void __launch_bounds__(256)
    k_ln_bwd_gen(float* dh, float* dy, uint16_t* dy_low, const float* dout, const float* h,
                 const float* mean, const float* rstd, const float* gamma, int N, int C,
                 DropArgs drop) {
  if (DROP) drop.load_seed();
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
  // Reads g[c], hr[c] before writing d[c] (and dy[c]) in the same thread: dh or dy may alias dout.
  for (int c = lane; c < C; c += 32) {
    const float xhat = (hr[c] - m) * s;
    const float v = s * (g[c] * gamma[c] - mg - xhat * mgx);
    d[c] = v;
    if (DROP) {
      const float w = drop.apply(v, (int64_t)row * C + c);
      dy[(int64_t)row * C + c] = w;
      if (dy_low) bjc::store_bf16(dy_low + (int64_t)row * C + c, w);
    }
  }
}

// ---- v2 of the fused backward (the default; BJ_LN_IMPL=v1 selects k_ln_bwd_team above) ----
// Grid G = ceil(N / rpb) blocks of 256 threads, at most kV2BlocksPerSm(V4) per SM: block b owns
// the rows [b * rpb, (b + 1) * rpb), its teams (as above) take rows team, team + teams, ... of
// that range. Each thread keeps its columns' dgamma/dbeta partials in registers (no shared memory
// traffic per row) and loads the next row before reducing the current one (prefetch: two rows in
// flight per team). The per-row arithmetic (and so dh) is the same as k_ln_bwd_team's. At the end
// the teams' partials are added by a fixed tree in shared memory (team t += team t + half, half =
// teams/2, ..., 1) and team 0 writes the block's partial row (2C) to the scratch; k_ln_part_sum
// then adds the G rows in order, in double, into dgamma and dbeta. With DROP, dy = dh * keep / (1
// - p) is written too (the dropout_layernorm backward), the mask recomputed from (seed, offset),
// and with dy_low != NULL its bf16 bits. BIAS (with DROP; dropout_layernorm_backward's dbias_y):
// each thread also adds the dy it writes to a third register partial, the tree and the partial row
// carry it as a third C (rows of 3C; shared memory (teams / 2) x 3C floats <= 36 KiB) and
// k_ln_part_sum adds it into dbias_y with the same per-column order as dgamma/dbeta.
// PF = false (BJ_LN_IMPL=v2np, an alternative for the benchmark): no prefetch, so fewer registers
// (<= 128) and 2 blocks per SM for every V4.
// Programmatic dependent launch (sm_90+; BJ_LN_IMPL=v3): a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start while the previous kernel of the
// stream is still finishing, as soon as every block of that kernel has called pdl_trigger (or
// exited). pdl_wait (griddepcontrol.wait) then blocks until the previous grid has completed and
// its memory is visible, so a PDL kernel calls it before touching global memory. Both are no-ops
// in a kernel launched without the attribute, before sm_90 and in the CPU emulation.
__device__ __forceinline__ void pdl_wait() {
#if !defined(BJ_CUDA_EMU) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if !defined(BJ_CUDA_EMU) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

template <int V4, bool PF>
constexpr int kV2BlocksPerSm = (V4 <= 3 || !PF) ? 2 : 1;  // ~120 or ~190 registers per thread

template <int V4>
__device__ __forceinline__ void load_row(float4 (&dv)[V4], float4 (&hv)[V4], const float* dout,
                                         const float* h, int row, bool valid, int tl, int TT,
                                         int C) {
  const int C4 = C >> 2;
  const float4* d4 = reinterpret_cast<const float4*>(dout + (int64_t)row * C);
  const float4* h4 = reinterpret_cast<const float4*>(h + (int64_t)row * C);
#pragma unroll
  for (int k = 0; k < V4; ++k) {
    const int c4 = tl + TT * k;
    if (valid && c4 < C4) {
      dv[k] = d4[c4];
      hv[k] = h4[c4];
    } else {
      dv[k] = hv[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
  }
}

// L2 prefetch of this thread's float4 of a row of dout and h (no registers held; a no-op in the
// CPU emulation).
template <int V4>
__device__ __forceinline__ void prefetch_row_l2(const float* dout, const float* h, int row, int tl,
                                                int TT, int C) {
#ifndef BJ_CUDA_EMU
  const int C4 = C >> 2;
  const float4* d4 = reinterpret_cast<const float4*>(dout + (int64_t)row * C);
  const float4* h4 = reinterpret_cast<const float4*>(h + (int64_t)row * C);
#pragma unroll
  for (int k = 0; k < V4; ++k) {
    const int c4 = tl + TT * k;
    if (c4 < C4) {
      asm volatile("prefetch.global.L2 [%0];" ::"l"(d4 + c4));
      asm volatile("prefetch.global.L2 [%0];" ::"l"(h4 + c4));
    }
  }
#else
  (void)dout, (void)h, (void)row, (void)tl, (void)TT, (void)C;
#endif
}

// The body of k_ln_bwd_v2 (also phase 1 of k_ln_bwd_v3g). BIAS (needs DROP): also the column
// partials of dy (dropout_layernorm_backward's dbias_y), a third C of the block's partial row.
template <int V4, bool DROP, bool PF, bool BIAS = false>
__device__ __forceinline__ void ln_bwd_v2_rows(float* dh, float* dy, uint16_t* dy_low,
                                               float* part, const float* dout, const float* h,
                                               const float* mean, const float* rstd,
                                               const float* gamma, int N, int C, int NW, int rpb,
                                               int l2ahead, int pdl, DropArgs drop) {
  static_assert(DROP || !BIAS, "the dy column sums need dy");
  constexpr int NP = BIAS ? 3 : 2;  // partial rows: dgamma, dbeta (and dbias_y), C each
  __shared__ double red[16];
  BJ_DYN_SMEM(float4, acc4);  // (teams / 2) x NP C4: the upper half's partials in the tree
  if (pdl) {  // v3: launched as a programmatic dependent (see pdl_wait)
    pdl_wait();     // before any global memory access: the previous kernel's writes are visible
    pdl_trigger();  // k_ln_part_sum2 may be scheduled now (it waits for this grid's completion)
  }
  if (DROP) drop.load_seed();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int teams = (kThreadsLn / 32) / NW, TT = 32 * NW;
  const int tl = (warp % NW) * 32 + lane, team = warp / NW;
  const int C4 = C >> 2;
  const float4* g4 = reinterpret_cast<const float4*>(gamma);
  const int r0 = blockIdx.x * rpb;
  const int r1 = r0 + rpb < N ? r0 + rpb : N;
  const int iters = (r1 - r0 + teams - 1) / teams;  // the same for every team of the block

  float4 pg[V4], pb[V4];  // this thread's columns' dgamma and dbeta partials
  float4 py[BIAS ? V4 : 1];  // BIAS: and dbias_y's (the column sums of dy)
#pragma unroll
  for (int k = 0; k < V4; ++k) pg[k] = pb[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
  for (int k = 0; k < (BIAS ? V4 : 1); ++k) py[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);

  int row = r0 + team;
  float4 dv[V4], hv[V4];
  bool valid = row < r1;  // uniform per team
  float m = 0.0f, s = 0.0f;
  if constexpr (PF) {
    load_row<V4>(dv, hv, dout, h, row, valid, tl, TT, C);
    m = valid ? mean[row] : 0.0f;
    s = valid ? rstd[row] : 0.0f;
  }
  for (int it = 0; it < iters; ++it) {
    const int nrow = row + teams;
    const bool nvalid = nrow < r1;
    float4 nd[PF ? V4 : 1], nh[PF ? V4 : 1];
    float nm = 0.0f, ns = 0.0f;
    if (l2ahead > 0) {  // BJ_LN_IMPL=v2l2: also pull the row l2ahead rows ahead into L2
      const int frow = row + l2ahead * teams;
      if (frow < r1) prefetch_row_l2<V4>(dout, h, frow, tl, TT, C);
    }
    if constexpr (PF) {  // prefetch the team's next row
      load_row<V4>(nd, nh, dout, h, nrow, nvalid, tl, TT, C);
      nm = nvalid ? mean[nrow] : 0.0f;
      ns = nvalid ? rstd[nrow] : 0.0f;
    } else {
      load_row<V4>(dv, hv, dout, h, row, valid, tl, TT, C);
      m = valid ? mean[row] : 0.0f;
      s = valid ? rstd[row] : 0.0f;
    }

    double r[2] = {0.0, 0.0};
#pragma unroll
    for (int k = 0; k < V4; ++k) {
      const int c4 = tl + TT * k;
      if (valid && c4 < C4) {
        const float4 d = dv[k], hh = hv[k], ga = g4[c4];
        const float4 x = make_float4((hh.x - m) * s, (hh.y - m) * s, (hh.z - m) * s,
                                     (hh.w - m) * s);
        hv[k] = x;  // from here on hv holds xhat
        pg[k].x += d.x * x.x;
        pg[k].y += d.y * x.y;
        pg[k].z += d.z * x.z;
        pg[k].w += d.w * x.w;
        pb[k].x += d.x;
        pb[k].y += d.y;
        pb[k].z += d.z;
        pb[k].w += d.w;
        const float4 g = make_float4(d.x * ga.x, d.y * ga.y, d.z * ga.z, d.w * ga.w);
        r[0] += (double)g.x;
        r[0] += (double)g.y;
        r[0] += (double)g.z;
        r[0] += (double)g.w;
        r[1] += (double)g.x * x.x;
        r[1] += (double)g.y * x.y;
        r[1] += (double)g.z * x.z;
        r[1] += (double)g.w * x.w;
      }
    }
    team_sum<2>(r, NW, red);
    const float mg = (float)(r[0] / C), mgx = (float)(r[1] / C);
    if (valid) {
      float4* o4 = reinterpret_cast<float4*>(dh + (int64_t)row * C);
      float4* y4 = DROP ? reinterpret_cast<float4*>(dy + (int64_t)row * C) : nullptr;
      uint16_t* ylo = DROP && dy_low ? dy_low + (int64_t)row * C : nullptr;
#pragma unroll
      for (int k = 0; k < V4; ++k) {
        const int c4 = tl + TT * k;
        if (c4 < C4) {
          const float4 d = dv[k], x = hv[k], ga = g4[c4];
          const float4 v = make_float4(
              s * (d.x * ga.x - mg - x.x * mgx), s * (d.y * ga.y - mg - x.y * mgx),
              s * (d.z * ga.z - mg - x.z * mgx), s * (d.w * ga.w - mg - x.w * mgx));
          o4[c4] = v;
          if (DROP) {
            const float4 w = drop.apply4(v, (int64_t)row * C + 4 * c4);
            y4[c4] = w;
            if (ylo) bjc::store_bf16(ylo + 4 * c4, w);
            if constexpr (BIAS) {
              py[k].x += w.x;
              py[k].y += w.y;
              py[k].z += w.z;
              py[k].w += w.w;
            }
          }
        }
      }
    }
    row = nrow;
    valid = nvalid;
    if constexpr (PF) {
      m = nm;
      s = ns;
#pragma unroll
      for (int k = 0; k < V4; ++k) {
        dv[k] = nd[k];
        hv[k] = nh[k];
      }
    }
  }

  // The teams' partials, by a fixed tree: for half = teams/2, ..., 1: team t < half adds team
  // t + half's (which wrote them to shared memory region t).
  for (int half = teams / 2; half > 0; half /= 2) {
    if (team >= half && team < 2 * half) {
      float4* dst = acc4 + (int64_t)(team - half) * NP * C4;
#pragma unroll
      for (int k = 0; k < V4; ++k) {
        const int c4 = tl + TT * k;
        if (c4 < C4) {
          dst[c4] = pg[k];
          dst[C4 + c4] = pb[k];
          if constexpr (BIAS) dst[2 * C4 + c4] = py[k];
        }
      }
    }
    __syncthreads();
    if (team < half) {
      const float4* src = acc4 + (int64_t)team * NP * C4;
#pragma unroll
      for (int k = 0; k < V4; ++k) {
        const int c4 = tl + TT * k;
        if (c4 < C4) {
          const float4 a = src[c4], b = src[C4 + c4];
          pg[k] = make_float4(pg[k].x + a.x, pg[k].y + a.y, pg[k].z + a.z, pg[k].w + a.w);
          pb[k] = make_float4(pb[k].x + b.x, pb[k].y + b.y, pb[k].z + b.z, pb[k].w + b.w);
          if constexpr (BIAS) {
            const float4 y = src[2 * C4 + c4];
            py[k] = make_float4(py[k].x + y.x, py[k].y + y.y, py[k].z + y.z, py[k].w + y.w);
          }
        }
      }
    }
    __syncthreads();  // the region is rewritten by the next level
  }
  if (team == 0) {
    float4* prow = reinterpret_cast<float4*>(part) + (int64_t)blockIdx.x * NP * C4;
#pragma unroll
    for (int k = 0; k < V4; ++k) {
      const int c4 = tl + TT * k;
      if (c4 < C4) {
        prow[c4] = pg[k];
        prow[C4 + c4] = pb[k];
        if constexpr (BIAS) prow[2 * C4 + c4] = py[k];
      }
    }
  }
}

template <int V4, bool DROP, bool PF, bool BIAS = false>
__global__ void __launch_bounds__(kThreadsLn, (kV2BlocksPerSm<V4, PF>))
    k_ln_bwd_v2(float* dh, float* dy, uint16_t* dy_low, float* part, const float* dout,
                const float* h, const float* mean, const float* rstd, const float* gamma, int N,
                int C, int NW, int rpb, int l2ahead, int pdl, DropArgs drop) {
  ln_bwd_v2_rows<V4, DROP, PF, BIAS>(dh, dy, dy_low, part, dout, h, mean, rstd, gamma, N, C, NW,
                                     rpb, l2ahead, pdl, drop);
}

// ---- v3's sum of the partial rows (BJ_LN_IMPL=v3, v3a, v3g) ----
// Columns [32 slice, 32 slice + 32) of the (G, 2C) partial rows: like k_ln_part_sum (32 columns x
// 8 warps, double, fixed order) but warp j takes the contiguous rows [j R, (j + 1) R), R =
// ceil(G / 8), loading kPart2Ahead of them before adding any: one L2 round trip when R <= 16 (G <=
// 128), where k_ln_part_sum's `unroll 8` over rows j, j + 8, ... makes two. Then lane w of warp 0
// adds the 8 warp sums in order into dgamma (w < C) or dbeta. Every thread of the block (256)
// calls it. The partials are read through L2 (ld.global.cg): k_ln_bwd_v3g reads the rows other
// blocks wrote in the same launch.
constexpr int kPartCols2 = 32, kPartWarps2 = 8, kPart2Ahead = 16;
__device__ __forceinline__ float ld_cg(const float* p) {
#ifdef BJ_CUDA_EMU
  return *p;
#else
  return __ldcg(p);
#endif
}
__device__ __forceinline__ void part_sum_slice(float* dgamma, float* dbeta, const float* part,
                                               int G, int C, int slice,
                                               double (&sm)[kPartWarps2][kPartCols2]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int W = 2 * C, w = slice * kPartCols2 + lane;
  const int R = (G + kPartWarps2 - 1) / kPartWarps2;
  const int g0 = warp * R, g1 = g0 + R < G ? g0 + R : G;
  double acc = 0.0;
  if (w < W) {
    for (int g = g0; g < g1; g += kPart2Ahead) {
      float v[kPart2Ahead];
#pragma unroll
      for (int k = 0; k < kPart2Ahead; ++k)
        v[k] = g + k < g1 ? ld_cg(part + (int64_t)(g + k) * W + w) : 0.0f;
#pragma unroll
      for (int k = 0; k < kPart2Ahead; ++k) acc += (double)v[k];
    }
  }
  sm[warp][lane] = acc;
  __syncthreads();
  if (warp == 0 && w < W) {
    double s = 0.0;
#pragma unroll
    for (int j = 0; j < kPartWarps2; ++j) s += sm[j][lane];
    if (w < C)
      dgamma[w] += (float)s;
    else
      dbeta[w - C] += (float)s;
  }
  __syncthreads();  // sm is reused by the next slice
}

// Grid-wide barrier for k_ln_bwd_v3g (all blocks co-resident: a cooperative launch). bar[0] counts
// the arrivals (zero between launches: the last block resets it), bar[1] is a generation that the
// last arrival bumps; the others wait for it to change. Each block's writes before the barrier
// (its partial row) are visible to every block after it. Not used in the CPU emulation.
__device__ __forceinline__ void grid_barrier(unsigned* bar) {
#ifndef BJ_CUDA_EMU
  __syncthreads();
  if (threadIdx.x == 0) {
    volatile unsigned* vgen = bar + 1;
    const unsigned gen = *vgen;
    __threadfence();  // the block's partial row (and the generation read) before the arrival
    if (atomicAdd(bar, 1u) == gridDim.x - 1) {
      atomicExch(bar, 0u);
      __threadfence();
      atomicAdd(bar + 1, 1u);
    } else {
      while (*vgen == gen) __nanosleep(32);
    }
    __threadfence();
  }
  __syncthreads();
#else
  (void)bar;
#endif
}

// v3g (BJ_LN_IMPL=v3g): v2's rows and the partial sum in one cooperative launch. phase bit 0: the
// rows (v2's body; the block's partial row to `part`), bit 1: the partial sum, block b adding the
// column slices b, b + G, ... (part_sum_slice: the same bits as v3's k_ln_part_sum2); phase 3
// puts grid_barrier between them. The CPU emulation (blocks run one after another) launches phase
// 1, then phase 2 with the same grid. pdl (v3gp): also launched as a programmatic dependent
// (pdl_wait / pdl_trigger at the start of the rows, as in v3).
template <int V4, bool DROP>
__global__ void __launch_bounds__(kThreadsLn, (kV2BlocksPerSm<V4, true>))
    k_ln_bwd_v3g(float* dh, float* dy, uint16_t* dy_low, float* part, float* dgamma,
                 float* dbeta, unsigned* bar, const float* dout, const float* h, const float* mean,
                 const float* rstd, const float* gamma, int N, int C, int NW, int rpb, int phase,
                 int pdl, DropArgs drop) {
  __shared__ double sm[kPartWarps2][kPartCols2];
  if (phase & 1)
    ln_bwd_v2_rows<V4, DROP, true>(dh, dy, dy_low, part, dout, h, mean, rstd, gamma, N, C, NW,
                                   rpb, 0, pdl, drop);
  if (phase == 3) grid_barrier(bar);
  if (phase & 2) {
    const int slices = (2 * C + kPartCols2 - 1) / kPartCols2;
    for (int sl = blockIdx.x; sl < slices; sl += gridDim.x)
      part_sum_slice(dgamma, dbeta, part, (int)gridDim.x, C, sl, sm);
  }
}

// dgamma[w] (w < C), dbeta[w - C] (w < 2C) or dbias[w - 2C] (W = 3C: k_ln_bwd_v2 with BIAS) +=
// sum over the G rows of part (G, W): block = 32 columns x 8 warps; warp j adds rows j, j + 8, ...
// in order (double), then lane w of warp 0 adds the 8 warp sums in order. Deterministic; a
// column's bits do not depend on W.
constexpr int kPartCols = 32, kPartWarps = 8;
__global__ void __launch_bounds__(kPartCols* kPartWarps)
    k_ln_part_sum(float* dgamma, float* dbeta, float* dbias, const float* part, int G, int C,
                  int W) {
  __shared__ double sm[kPartWarps][kPartCols];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int w = blockIdx.x * kPartCols + lane;
  double acc = 0.0;
  if (w < W) {
#pragma unroll 8
    for (int g = warp; g < G; g += kPartWarps) acc += (double)part[(int64_t)g * W + w];
  }
  sm[warp][lane] = acc;
  __syncthreads();
  if (warp == 0 && w < W) {
    double s = 0.0;
#pragma unroll
    for (int j = 0; j < kPartWarps; ++j) s += sm[j][lane];
    if (w < C)
      dgamma[w] += (float)s;
    else if (w < 2 * C)
      dbeta[w - C] += (float)s;
    else
      dbias[w - 2 * C] += (float)s;
  }
}

// v3's partial sum as its own kernel (BJ_LN_IMPL=v3, v3a): block b adds column slice b
// (part_sum_slice). With pdl (launched as a programmatic dependent of k_ln_bwd_v2) it lets the next
// kernel of the stream launch at once, then waits for the row kernel's partials.
__global__ void __launch_bounds__(kPartCols2* kPartWarps2)
    k_ln_part_sum2(float* dgamma, float* dbeta, const float* part, int G, int C, int pdl) {
  __shared__ double sm[kPartWarps2][kPartCols2];
  if (pdl) {
    pdl_trigger();
    pdl_wait();
  }
  part_sum_slice(dgamma, dbeta, part, G, C, (int)blockIdx.x, sm);
}

// Launches k with the programmatic-stream-serialization attribute (PDL, see pdl_wait) when pdl,
// else as BJ_LAUNCH does. The CPU emulation launches plainly (the kernels' pdl_* are no-ops).
// coop: a cooperative launch (every block co-resident, or the launch fails: k_ln_bwd_v3g).
template <class... P, class... A>
void launch_ex(bool pdl, bool coop, void (*k)(P...), unsigned grid, unsigned block, int smem,
               void* stream, A... a) {
#ifdef BJ_CUDA_EMU
  (void)pdl, (void)coop;
  BJ_LAUNCH(k, grid, block, smem, bjc::as_stream(stream), a...);
#else
  if (!pdl && !coop) {
    BJ_LAUNCH(k, grid, block, smem, bjc::as_stream(stream), a...);
    return;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(grid);
  cfg.blockDim = dim3(block);
  cfg.dynamicSmemBytes = (size_t)smem;
  cfg.stream = bjc::as_stream(stream);
  cudaLaunchAttribute attr[2];
  unsigned na = 0;
  if (pdl) {
    attr[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[na].val.programmaticStreamSerializationAllowed = 1;
    ++na;
  }
  if (coop) {
    attr[na].id = cudaLaunchAttributeCooperative;
    attr[na].val.cooperative = 1;
    ++na;
  }
  cfg.attrs = attr;
  cfg.numAttrs = na;
  cudaLaunchKernelEx(&cfg, k, static_cast<P>(a)...);  // errors: check_launch
#endif
}
template <class... P, class... A>
void launch_maybe_pdl(bool pdl, void (*k)(P...), unsigned grid, unsigned block, int smem,
                      void* stream, A... a) {
  launch_ex(pdl, false, k, grid, block, smem, stream, a...);
}

// k_ln_bwd_v3g's barrier words (2 unsigned, zeroed) of (current device, stream), allocated on
// first use and never freed, or nullptr (stream capture, allocation failure: v3g then runs v3a).
// Like the scratch, one per stream, so concurrent streams never share one.
unsigned* barrier_for(void* stream) {
  struct Entry {
    int dev;
    void* stream;
    unsigned* bar;
  };
  static std::mutex mu;
  static std::vector<Entry>& entries = *new std::vector<Entry>;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(mu);
  for (const Entry& e : entries)
    if (e.dev == dev && e.stream == stream) return e.bar;
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(bjc::as_stream(stream), &cs) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  if (cs != cudaStreamCaptureStatusNone) return nullptr;
  void* p = nullptr;
  if (cudaMalloc(&p, 2 * sizeof(unsigned)) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  // zeroed on the caller's stream, so ordered before its first use even on a non-blocking stream
#ifdef BJ_CUDA_EMU
  const cudaError_t ze = cudaMemset(p, 0, 2 * sizeof(unsigned));
#else
  const cudaError_t ze = cudaMemsetAsync(p, 0, 2 * sizeof(unsigned), bjc::as_stream(stream));
#endif
  if (ze != cudaSuccess) {
    cudaGetLastError();
    cudaFree(p);
    return nullptr;
  }
  entries.push_back(Entry{dev, stream, static_cast<unsigned*>(p)});
  return static_cast<unsigned*>(p);
}

// Compute capability >= 9.0 (PDL) on the current device; cached per device.
bool device_has_pdl() {
  static int cached[64] = {0};  // 0 unknown, 1 no, 2 yes
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (dev >= 0 && dev < 64 && cached[dev] != 0) return cached[dev] == 2;
  bool yes = false;
#ifndef BJ_CUDA_EMU
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess)
    yes = major >= 9;
  else
    cudaGetLastError();
#endif
  if (dev >= 0 && dev < 64) cached[dev] = yes ? 2 : 1;
  return yes;
}

using LnBwdV2Fn = decltype(&k_ln_bwd_v2<1, false, true>);
// [prefetch][dropout][V4 - 1]
const LnBwdV2Fn kLnBwdV2[2][2][kMaxV4Bwd] = {
    {{&k_ln_bwd_v2<1, false, false>, &k_ln_bwd_v2<2, false, false>, &k_ln_bwd_v2<3, false, false>,
      &k_ln_bwd_v2<4, false, false>, &k_ln_bwd_v2<5, false, false>, &k_ln_bwd_v2<6, false, false>},
     {&k_ln_bwd_v2<1, true, false>, &k_ln_bwd_v2<2, true, false>, &k_ln_bwd_v2<3, true, false>,
      &k_ln_bwd_v2<4, true, false>, &k_ln_bwd_v2<5, true, false>, &k_ln_bwd_v2<6, true, false>}},
    {{&k_ln_bwd_v2<1, false, true>, &k_ln_bwd_v2<2, false, true>, &k_ln_bwd_v2<3, false, true>,
      &k_ln_bwd_v2<4, false, true>, &k_ln_bwd_v2<5, false, true>, &k_ln_bwd_v2<6, false, true>},
     {&k_ln_bwd_v2<1, true, true>, &k_ln_bwd_v2<2, true, true>, &k_ln_bwd_v2<3, true, true>,
      &k_ln_bwd_v2<4, true, true>, &k_ln_bwd_v2<5, true, true>, &k_ln_bwd_v2<6, true, true>}}};
// The default kernel (prefetch, dropout) that also makes dbias_y's column partials, [V4 - 1].
const LnBwdV2Fn kLnBwdV2Bias[kMaxV4Bwd] = {
    &k_ln_bwd_v2<1, true, true, true>, &k_ln_bwd_v2<2, true, true, true>,
    &k_ln_bwd_v2<3, true, true, true>, &k_ln_bwd_v2<4, true, true, true>,
    &k_ln_bwd_v2<5, true, true, true>, &k_ln_bwd_v2<6, true, true, true>};
using LnBwdV3gFn = decltype(&k_ln_bwd_v3g<1, false>);
const LnBwdV3gFn kLnBwdV3g[2][kMaxV4Bwd] = {  // [dropout][V4 - 1]
    {&k_ln_bwd_v3g<1, false>, &k_ln_bwd_v3g<2, false>, &k_ln_bwd_v3g<3, false>,
     &k_ln_bwd_v3g<4, false>, &k_ln_bwd_v3g<5, false>, &k_ln_bwd_v3g<6, false>},
    {&k_ln_bwd_v3g<1, true>, &k_ln_bwd_v3g<2, true>, &k_ln_bwd_v3g<3, true>,
     &k_ln_bwd_v3g<4, true>, &k_ln_bwd_v3g<5, true>, &k_ln_bwd_v3g<6, true>}};
// blocks per SM, [prefetch][V4 - 1]
constexpr int kV2Bps[2][kMaxV4Bwd] = {
    {kV2BlocksPerSm<1, false>, kV2BlocksPerSm<2, false>, kV2BlocksPerSm<3, false>,
     kV2BlocksPerSm<4, false>, kV2BlocksPerSm<5, false>, kV2BlocksPerSm<6, false>},
    {kV2BlocksPerSm<1, true>, kV2BlocksPerSm<2, true>, kV2BlocksPerSm<3, true>,
     kV2BlocksPerSm<4, true>, kV2BlocksPerSm<5, true>, kV2BlocksPerSm<6, true>}};

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

// Which fused backward bj_cuda_layernorm_backward runs: BJ_LN_IMPL=v1 the previous one
// (k_ln_bwd_team, shared-memory partials, 3 blocks per SM), anything else v2 (read per call, so
// that a benchmark can switch in one process).
// BJ_LN_IMPL=v2np: v2 without the next-row prefetch, 2 blocks per SM; BJ_LN_IMPL=v2l2: v2 that also
// prefetches the row after next into L2 (alternatives to compare).
// BJ_LN_IMPL=v3, v3a, v3g, v3gp: see the header comment.
// All also apply to the dropout_layernorm backward, except v1, which has no dy (v2 runs there).
bool use_impl(const char* name) {
  const char* e = std::getenv("BJ_LN_IMPL");
  return e != nullptr && std::strcmp(e, name) == 0;
}

// out_low != NULL: also its bf16 bits (dropout_layernorm_forward).
int ln_forward(const char* op, float* out, uint16_t* out_low, float* mean, float* rstd,
               float* hsave, const float* x, const float* residual, const float* gamma,
               const float* beta, int N, int C, float eps, bool drop_on, DropArgs drop,
               const char* xname, void* stream) {
#define LN_CHECK(cond, fmt, ...) \
  if (!(cond)) return ::bjc::fail(BJ_ERR_INVALID, "%s: " fmt, op, ##__VA_ARGS__)
  LN_CHECK(out != nullptr && x != nullptr, "out or %s is NULL", xname);
  LN_CHECK(mean != nullptr && rstd != nullptr, "mean or rstd is NULL");
  LN_CHECK(gamma != nullptr && beta != nullptr, "gamma or beta is NULL");
  LN_CHECK(N > 0, "N must be > 0 (got %d)", N);
  LN_CHECK(C > 0, "C must be > 0 (got %d)", C);
  LN_CHECK(eps >= 0.0f && std::isfinite(eps), "eps must be finite and >= 0 (got %g)", (double)eps);
#undef LN_CHECK
  const bool vec = C % 4 == 0 && C <= kMaxVecC && bjc::aligned16(out) &&
                   bjc::aligned16(hsave) && bjc::aligned16(x) && bjc::aligned16(residual) &&
                   bjc::aligned16(gamma) && bjc::aligned16(beta);
  if (vec) {
    const int C4 = C / 4, nw = team_warps(C4, kMaxV4), v4 = (C4 + 32 * nw - 1) / (32 * nw);
    const int teams = kThreadsLn / 32 / nw;
    const unsigned blocks = (unsigned)((N + teams - 1) / teams);
    BJ_LAUNCH(kLnFwd[drop_on ? 1 : 0][v4 - 1], blocks, kThreadsLn, 0, bjc::as_stream(stream), out,
              out_low, mean, rstd, hsave, x, residual, gamma, beta, N, C, eps, nw, drop);
    return bjc::check_launch(op);
  }
  const unsigned blocks = (unsigned)((N + kRowsPerBlock - 1) / kRowsPerBlock);
  auto gen = drop_on ? &k_ln_fwd_gen<true> : &k_ln_fwd_gen<false>;
  BJ_LAUNCH(gen, blocks, 32 * kRowsPerBlock, 0, bjc::as_stream(stream), out, out_low, mean, rstd,
            hsave, x, residual, gamma, beta, N, C, eps, drop);
  return bjc::check_launch(op);
}

// dy != NULL: the dropout_layernorm backward (dy = dh * keep / (1 - p) with `drop`; dy_low != NULL,
// which needs dy: also its bf16 bits). dbias != NULL (needs dy): the default v2 path (and v2l2,
// the same kernel) also adds dy's column sums to dbias in the same pass (a third C of partials)
// and sets *bias_done; every other path leaves both alone and the caller runs bias_backward.
int ln_backward(const char* op, float* dh, float* dy, uint16_t* dy_low, float* dgamma,
                float* dbeta, float* dbias, bool* bias_done, const float* dout, const float* h,
                const float* mean, const float* rstd, const float* gamma, int N, int C,
                DropArgs drop, bool allow_v1, void* stream) {
  const bool vec = C % 4 == 0 && C <= kMaxVecCBwd && bjc::aligned16(dh) &&
                   bjc::aligned16(dy) && bjc::aligned16(dout) && bjc::aligned16(h) &&
                   bjc::aligned16(gamma);
  float* part = vec ? bjc::scratch_for(stream) : nullptr;
  const int C4 = C / 4, nw = team_warps(C4, kMaxV4Bwd), v4 = (C4 + 32 * nw - 1) / (32 * nw);
  const int teams = kThreadsLn / 32 / nw;
  if (part != nullptr && allow_v1 && dy == nullptr && use_impl("v1")) {
    // v1: one pass, partials in shared memory then scratch, then their fixed-order sum
    int64_t G = 3LL * bjc::sm_count();
    const int64_t need = (N + teams - 1) / teams;
    if (G > need) G = need;
    if (G * 2 * C * 4 > bjc::kScratchBytes) G = bjc::kScratchBytes / (8LL * C);  // >= 512
    const int smem = teams * 2 * C * (int)sizeof(float);  // <= 48 KiB for NW = 1
    // (+ 1 KiB: the static `red` also counts against the 48 KiB that need no opt-in)
    BJ_TRY(bjc::allow_smem((const void*)kLnBwd[v4 - 1], smem + 1024, &g_bwd_smem_done[v4 - 1],
                           op));
    BJ_LAUNCH(kLnBwd[v4 - 1], (unsigned)G, kThreadsLn, smem, bjc::as_stream(stream), dh, part,
              dout, h, mean, rstd, gamma, N, C, nw);
    BJ_TRY(bjc::check_launch(op));
    return bjc::launch_sum_partials(op, dgamma, dbeta, part, (int)G, 2 * C, C, stream);
  }
  if (part != nullptr) {  // v2
    const int pf = use_impl("v2np") ? 0 : 1;
    const bool v3gp = use_impl("v3gp");
    unsigned* bar = v3gp || use_impl("v3g") ? barrier_for(stream) : nullptr;
    // v3: k_ln_part_sum2, both kernels launched as programmatic dependents (sm_90+); v3a:
    // k_ln_part_sum2 with plain launches
    const bool v3a = use_impl("v3a") || use_impl("v3g") || v3gp, v3 = !v3a && use_impl("v3");
    // dbias_y in the same pass: only with k_ln_part_sum (v2, v2l2), not v2np, v3*
    const bool bias = dbias != nullptr && dy != nullptr && pf == 1 && bar == nullptr && !v3 &&
                      !v3a;
    const int np = bias ? 3 : 2;  // partial rows of np C: dgamma, dbeta (, dbias_y)
    const int64_t G0 = (int64_t)kV2Bps[pf][v4 - 1] * bjc::sm_count();
    int64_t rpb = (N + G0 - 1) / G0;
    if (rpb < 1) rpb = 1;
    int64_t G = (N + rpb - 1) / rpb;
    // G <= 2 x SMs (C <= 1536) or SMs (C > 1536: V4 >= 4, one block per SM), so G partial rows
    // of np C floats fit the 16 MiB up to 227 SMs at C = 6144 with np = 3 (341 SMs at C = 4096;
    // H100 and H200 have 132); past that, fewer and longer row ranges (still one pass)
    if (G * np * C * 4 > bjc::kScratchBytes) {
      G = bjc::kScratchBytes / (4LL * np * C);
      rpb = (N + G - 1) / G;
      G = (N + rpb - 1) / rpb;
    }
    const int smem = (teams / 2) * np * C * (int)sizeof(float);  // <= 24 KiB (np = 3: 36 KiB)
    if (bar != nullptr) {  // v3g: one cooperative launch (the emulation: phase 1, then phase 2)
      const auto k = kLnBwdV3g[dy != nullptr ? 1 : 0][v4 - 1];
      const bool pdl = v3gp && device_has_pdl();  // v3gp: cooperative and PDL
#ifdef BJ_CUDA_EMU
      for (int phase = 1; phase <= 2; ++phase)
#else
      const int phase = 3;
#endif
        launch_ex(pdl, true, k, (unsigned)G, (unsigned)kThreadsLn, smem, stream, dh, dy, dy_low,
                  part, dgamma, dbeta, bar, dout, h, mean, rstd, gamma, N, C, nw, (int)rpb, phase,
                  pdl ? 1 : 0, drop);
      return bjc::check_launch(op);
    }
    const bool pdl = v3 && device_has_pdl();
    const LnBwdV2Fn k = bias ? kLnBwdV2Bias[v4 - 1] : kLnBwdV2[pf][dy != nullptr ? 1 : 0][v4 - 1];
    launch_maybe_pdl(pdl, k, (unsigned)G, (unsigned)kThreadsLn, smem, stream, dh, dy, dy_low, part,
                     dout, h, mean, rstd, gamma, N, C, nw, (int)rpb, use_impl("v2l2") ? 2 : 0,
                     pdl ? 1 : 0, drop);
    BJ_TRY(bjc::check_launch(op));
    const unsigned pblocks = (unsigned)((np * C + kPartCols - 1) / kPartCols);
    if (v3 || v3a)
      launch_maybe_pdl(pdl, &k_ln_part_sum2, pblocks, (unsigned)(kPartCols2 * kPartWarps2), 0,
                       stream, dgamma, dbeta, (const float*)part, (int)G, C, pdl ? 1 : 0);
    else
      BJ_LAUNCH(k_ln_part_sum, pblocks, kPartCols * kPartWarps, 0, bjc::as_stream(stream),
                dgamma, dbeta, dbias, part, (int)G, C, np * C);
    BJ_TRY(bjc::check_launch(op));
    if (bias) *bias_done = true;
    return BJ_OK;
  }
  // Parameter gradients first: dh (or dy) may alias dout.
  BJ_TRY(bjc::launch_colreduce<2>(op, LnParamGradOp{dgamma, dbeta, dout, h, mean, rstd, C}, N, C,
                                  1, stream));
  const unsigned blocks = (unsigned)((N + kRowsPerBlock - 1) / kRowsPerBlock);
  auto gen = dy != nullptr ? &k_ln_bwd_gen<true> : &k_ln_bwd_gen<false>;
  BJ_LAUNCH(gen, blocks, 32 * kRowsPerBlock, 0, bjc::as_stream(stream), dh, dy, dy_low, dout, h,
            mean, rstd, gamma, N, C, drop);
  return bjc::check_launch(op);
}
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
  return ln_forward("bj_cuda_layernorm_forward", out, nullptr, mean, rstd, hsave, x, residual,
                    gamma, beta, N, C, eps, false, DropArgs{0.0f, 1.0f, 0, 0, nullptr}, "x",
                    stream);
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
  bool unused = false;
  return ln_backward(op, dh, nullptr, nullptr, dgamma, dbeta, nullptr, &unused, dout, h, mean,
                     rstd, gamma, N, C, DropArgs{0.0f, 1.0f, 0, 0, nullptr}, true, stream);
}

extern "C" int bj_cuda_dropout_layernorm_forward(float* out,             // (N, C), may alias y
                                                 uint16_t* out_low,      // (N, C) bf16 or NULL
                                                 float* mean,            // (N)
                                                 float* rstd,            // (N)
                                                 float* hsave,           // (N, C) or NULL
                                                 const float* y,         // (N, C)
                                                 const float* residual,  // (N, C) or NULL
                                                 const float* gamma,     // (C)
                                                 const float* beta,      // (C)
                                                 int N, int C, float eps, float p, uint64_t seed,
                                                 uint64_t offset, const bj_step_scalars* sc,
                                                 void* stream) {
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cuda_dropout_layernorm_forward",
           "p must be in [0, 1) (got %g)", (double)p);
  const DropArgs drop{p, 1.0f / (1.0f - p), seed, offset, sc};
  return ln_forward("bj_cuda_dropout_layernorm_forward", out, out_low, mean, rstd, hsave, y,
                    residual, gamma, beta, N, C, eps, p > 0.0f, drop, "y", stream);
}

extern "C" int bj_cuda_dropout_layernorm_backward(float* dh,           // (N, C), "="
                                                  float* dy,           // (N, C), "=" or NULL
                                                  uint16_t* dy_low,    // (N, C) bf16 or NULL
                                                  float* dgamma,       // (C), +=
                                                  float* dbeta,        // (C), +=
                                                  float* dbias_y,      // (C), +=, or NULL
                                                  const float* dout,   // (N, C)
                                                  const float* h,      // (N, C), the saved h
                                                  const float* mean,   // (N)
                                                  const float* rstd,   // (N)
                                                  const float* gamma,  // (C)
                                                  int N, int C, float p, uint64_t seed,
                                                  uint64_t offset, const bj_step_scalars* sc,
                                                  void* stream) {
  const char* op = "bj_cuda_dropout_layernorm_backward";
  BJ_CHECK(dh != nullptr && dout != nullptr && h != nullptr, "bj_cuda_dropout_layernorm_backward",
           "dh, dout or h is NULL");
  BJ_CHECK(dgamma != nullptr && dbeta != nullptr, "bj_cuda_dropout_layernorm_backward",
           "dgamma or dbeta is NULL");
  BJ_CHECK(mean != nullptr && rstd != nullptr && gamma != nullptr,
           "bj_cuda_dropout_layernorm_backward", "mean, rstd or gamma is NULL");
  BJ_CHECK(dy == nullptr || dy != dh, "bj_cuda_dropout_layernorm_backward",
           "dy must not alias dh");
  BJ_CHECK(dy_low == nullptr || dy != nullptr, "bj_cuda_dropout_layernorm_backward",
           "dy_low needs dy (dy is NULL)");
  BJ_CHECK(dbias_y == nullptr || dy != nullptr, "bj_cuda_dropout_layernorm_backward",
           "dbias_y needs dy (dy is NULL)");
  BJ_CHECK(N > 0, "bj_cuda_dropout_layernorm_backward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cuda_dropout_layernorm_backward", "C must be > 0 (got %d)", C);
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cuda_dropout_layernorm_backward",
           "p must be in [0, 1) (got %g)", (double)p);
  // p = 0 keeps every element: dy = dh (the fused kernel with a mask that keeps all, scale 1)
  const DropArgs drop{p, 1.0f / (1.0f - p), seed, offset, sc};
  bool bias_done = false;
  BJ_TRY(ln_backward(op, dh, dy, dy_low, dgamma, dbeta, dbias_y, &bias_done, dout, h, mean, rstd,
                     gamma, N, C, drop, false, stream));
  // dbias_y on the paths that do not sum it in the pass (BJ_LN_IMPL=v2np, v3, v3a, v3g, v3gp; the
  // scalar and scratch-free paths): bias_backward's kernels on dy, queued right after
  if (dbias_y != nullptr && !bias_done) return bj_cuda_bias_backward(dbias_y, dy, N, C, stream);
  return BJ_OK;
}
