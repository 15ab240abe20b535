// Bias add and the exact (erf) GELU of BertIntermediate, fused with its bias, on the GPU.
//
//   bias_add:            x (N, C) += bias (C)
//   bias_backward:       dbias (C) += sum over rows of dout (N, C)           ("+=", parameter)
//   bias_gelu_forward:   pre = x + bias (bias may be NULL); out = 0.5 pre (1 + erf(pre / sqrt 2))
//   bias_gelu_backward:  dpre = dout * gelu'(pre)                             ("=", activation)
//                        gelu'(x) = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi)
//                        dbias += column sums of dpre                         ("+=", parameter)
//
// Column sums (bias_backward, and bias_gelu_backward with dbias) run in one pass over the rows
// plus a small second pass over per-block partials in the per-stream scratch (common.cuh,
// "Scratch"):
// - v2 (default): k_bias_grad_part2, blocks of 64 column units (float4 when C % 4 == 0 and the
//   pointers are 16-byte aligned, else float) x 4 row lanes over a contiguous range of rows, one
//   wave of 4 blocks per SM; each thread issues the loads of 4 (GELU) or 8 rows before using them,
//   writes dpre on the way, and the block leaves one partial row (lanes added in order); then
//   k_sum_rows adds the G partial rows of each column in order (double) into dbias.
// - v1 (BJ_KERNEL_V1=bias_backward / bias_gelu_backward, kernel_select.cuh): k_bias_grad_part,
//   a thread owns one column unit and walks rows g, g + G, ... one at a time, then
//   launch_sum_partials (k_colreduce).
// Deterministic for a given device (G depends on N, C and the SM count), no atomics, compulsory
// traffic plus G x C partials. Without scratch (first call inside graph capture) they fall back to
// k_colreduce (fixed order, double partials, also deterministic). dpre may alias dout (each element
// is read, then written, by the same thread).
//
// bf16 side outputs (mixed precision): bias_gelu_forward's out_low and bias_gelu_backward's
// dpre_low (NULL = none) are written by the kernel that writes out (dpre), right after it, with
// bjc::store_bf16 (the bits of to_bf16; float4 units as one 8-byte store): BiasGeluFwdOp,
// GeluBwdOp (no dbias), k_bias_grad_part2 (v2, the default) and the scratch-free k_colreduce
// fallback (GeluBwdColOp). The v1 column partials (BJ_KERNEL_V1=bias_gelu_backward) do not: there
// the entry point launches to_bf16's kernel on dpre after them.
//
// Optional forward outputs (inference): bias_gelu_forward's pre may be NULL (x + bias not stored)
// and out may be NULL when out_low is not (only the bf16 copy stored, the same bits). The forward
// is one elementwise kernel (float4 units, then a scalar tail); BiasGeluFwdOp<kOut, kPre> drops
// the NULL outputs' stores at compile time, one instantiation per combination, so the training
// path <true, true> compiles to the code it had before (k_elementwise); the others run in
// k_elementwise_occ (32 registers, common.cuh).
#include "common.cuh"
#include "kernel_select.cuh"
#include "rowsum.cuh"

namespace {
constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

__device__ __forceinline__ float gelu(float x) { return 0.5f * x * (1.0f + erff(x * kInvSqrt2)); }
__device__ __forceinline__ float gelu_grad(float x) {
  return 0.5f * (1.0f + erff(x * kInvSqrt2)) + x * expf(-0.5f * x * x) * kInvSqrt2Pi;
}

struct BiasAddOp {
  float* x;
  const float* bias;
  int C;
  __device__ void one(int64_t i) const {
    int64_t r;
    int c;
    bjc::row_col(i, C, r, c);
    x[i] += bias[c];
  }
  __device__ void vec4(int64_t i4) const {  // C % 4 == 0
    int64_t r;
    int c;
    bjc::row_col(i4 * 4, C, r, c);
    float4 v = reinterpret_cast<float4*>(x)[i4];
    const float4 b = *reinterpret_cast<const float4*>(bias + c);
    v.x += b.x;
    v.y += b.y;
    v.z += b.z;
    v.w += b.w;
    reinterpret_cast<float4*>(x)[i4] = v;
  }
};

struct ColSumOp {
  float* dbias;
  const float* d;
  int C;
  __device__ void row(int r, int c, double (&acc)[1]) const {
    acc[0] += (double)d[(int64_t)r * C + c];
  }
  __device__ void finish(int c, const double (&s)[1]) const { dbias[c] += (float)s[0]; }
};

// kOut: out is stored (else only out_low, which is then not NULL); kPre: pre is stored. The
// default <true, true> is the training path; the others skip the fp32 stores that inference does
// not read (a template parameter, not a runtime branch, so <true, true> keeps its code).
template <bool kOut, bool kPre>
struct BiasGeluFwdOp {
  float* out;         // or NULL when !kOut
  uint16_t* out_low;  // or NULL (not NULL when !kOut)
  float* pre;         // or NULL when !kPre
  const float* x;
  const float* bias;  // or NULL
  int C;
  __device__ void one(int64_t i) const {
    float p = x[i];
    if (bias) {
      int64_t r;
      int c;
      bjc::row_col(i, C, r, c);
      p += bias[c];
    }
    if constexpr (kPre) pre[i] = p;
    const float g = gelu(p);
    if constexpr (kOut) out[i] = g;
    if (!kOut || out_low) bjc::store_bf16(out_low + i, g);
  }
  __device__ void vec4(int64_t i4) const {
    float4 p = reinterpret_cast<const float4*>(x)[i4];
    if (bias) {
      int64_t r;
      int c;
      bjc::row_col(i4 * 4, C, r, c);
      const float4 b = *reinterpret_cast<const float4*>(bias + c);
      p.x += b.x;
      p.y += b.y;
      p.z += b.z;
      p.w += b.w;
    }
    if constexpr (kPre) reinterpret_cast<float4*>(pre)[i4] = p;
    const float4 g = make_float4(gelu(p.x), gelu(p.y), gelu(p.z), gelu(p.w));
    if constexpr (kOut) reinterpret_cast<float4*>(out)[i4] = g;
    if (!kOut || out_low) bjc::store_bf16(out_low + 4 * i4, g);
  }
};

struct GeluBwdOp {
  float* dpre;
  uint16_t* dpre_low;  // or NULL
  const float* dout;
  const float* pre;
  __device__ void one(int64_t i) const {
    const float d = dout[i] * gelu_grad(pre[i]);
    dpre[i] = d;
    if (dpre_low) bjc::store_bf16(dpre_low + i, d);
  }
  __device__ void vec4(int64_t i4) const {
    const float4 d = reinterpret_cast<const float4*>(dout)[i4];
    const float4 p = reinterpret_cast<const float4*>(pre)[i4];
    const float4 v = make_float4(d.x * gelu_grad(p.x), d.y * gelu_grad(p.y), d.z * gelu_grad(p.z),
                                 d.w * gelu_grad(p.w));
    reinterpret_cast<float4*>(dpre)[i4] = v;
    if (dpre_low) bjc::store_bf16(dpre_low + 4 * i4, v);
  }
};

// Fused: dpre = dout * gelu'(pre) and dbias += column sums of dpre.
struct GeluBwdColOp {
  float* dpre;
  uint16_t* dpre_low;  // or NULL
  float* dbias;
  const float* dout;
  const float* pre;
  int C;
  __device__ void row(int r, int c, double (&acc)[1]) const {
    const int64_t i = (int64_t)r * C + c;
    const float d = dout[i] * gelu_grad(pre[i]);
    dpre[i] = d;
    if (dpre_low) bjc::store_bf16(dpre_low + i, d);
    acc[0] += (double)d;
  }
  __device__ void finish(int c, const double (&s)[1]) const { dbias[c] += (float)s[0]; }
};
// Column partials of d = GELU ? dout * gelu'(pre) (also stored to dpre) : dout, see the header.
// VEC: float4 columns (C % 4 == 0, 16-byte aligned pointers).
template <bool GELU, bool VEC>
__global__ void __launch_bounds__(256)
    k_bias_grad_part(float* dpre, float* part, const float* dout, const float* pre, int N, int C) {
  const int CV = VEC ? C / 4 : C;
  const int u = blockIdx.x * blockDim.x + threadIdx.x;
  if (u >= CV) return;
  const int G = gridDim.y;
  if constexpr (VEC) {
    const float4* d4 = reinterpret_cast<const float4*>(dout);
    const float4* p4 = reinterpret_cast<const float4*>(pre);
    float4* o4 = reinterpret_cast<float4*>(dpre);
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
    for (int r = blockIdx.y; r < N; r += G) {
      const int64_t i = (int64_t)r * CV + u;
      float4 d = d4[i];
      if constexpr (GELU) {
        const float4 p = p4[i];
        d = make_float4(d.x * gelu_grad(p.x), d.y * gelu_grad(p.y), d.z * gelu_grad(p.z),
                        d.w * gelu_grad(p.w));
        o4[i] = d;
      }
      acc.x += d.x;
      acc.y += d.y;
      acc.z += d.z;
      acc.w += d.w;
    }
    reinterpret_cast<float4*>(part)[(int64_t)blockIdx.y * CV + u] = acc;
  } else {
    float acc = 0.0f;
#pragma unroll 4
    for (int r = blockIdx.y; r < N; r += G) {
      const int64_t i = (int64_t)r * C + u;
      float d = dout[i];
      if constexpr (GELU) {
        d *= gelu_grad(pre[i]);
        dpre[i] = d;
      }
      acc += d;
    }
    part[(int64_t)blockIdx.y * C + u] = acc;
  }
}

// ---- v2 column partials (the default; BJ_KERNEL_V1 names bias_backward / bias_gelu_backward
// to get k_bias_grad_part above) ----
// Block = kTX column units (float4 or float) x kTY row lanes; block (x, g) covers column units
// [x kTX, x kTX + kTX) of rows [g R, g R + R). Lane ty walks rows r0 + ty, r0 + ty + kTY, ... in
// order, UNROLL rows per step with all loads issued before the first use (explicitly, since dpre
// may alias dout the compiler could not hoist them past the stores), so a thread keeps UNROLL x
// 16-32 bytes in flight. The kTY lane sums are then added in lane order and row g of part gets the
// block's partial; k_sum_rows adds the G partials of each column in order (double) into dbias.
// With GELU and low != NULL also low = bf16 bits of dpre (bias_gelu_backward's dpre_low).
constexpr int kTX = 64, kTY = 4;
__device__ __forceinline__ float4 gelu_bwd4(const float4& d, const float4& p) {
  return make_float4(d.x * gelu_grad(p.x), d.y * gelu_grad(p.y), d.z * gelu_grad(p.z),
                     d.w * gelu_grad(p.w));
}
__device__ __forceinline__ float gelu_bwd4(float d, float p) { return d * gelu_grad(p); }

template <bool GELU, bool VEC, int UNROLL>
__global__ void __launch_bounds__(kTX* kTY, 4)
    k_bias_grad_part2(float* dpre, uint16_t* low, float* part, const float* dout, const float* pre,
                      int N, int C, int R) {
  using U = bjc::Unit<VEC>;
  using T = typename U::T;
  const int CU = VEC ? C / 4 : C;
  const int tx = threadIdx.x % kTX, ty = threadIdx.x / kTX;
  const int u = blockIdx.x * kTX + tx;
  const int r0 = blockIdx.y * R;
  const int r1 = r0 + R < N ? r0 + R : N;
  T acc = U::zero();
  if (u < CU) {
    const T* D = reinterpret_cast<const T*>(dout) + u;
    const T* P = reinterpret_cast<const T*>(pre) + u;
    T* O = reinterpret_cast<T*>(dpre) + u;
    for (int r = r0 + ty; r < r1; r += UNROLL * kTY) {
      T d[UNROLL], p[UNROLL];
#pragma unroll
      for (int k = 0; k < UNROLL; ++k) {
        const int rr = r + k * kTY;
        if (rr < r1) {
          d[k] = D[(int64_t)rr * CU];
          if constexpr (GELU) p[k] = P[(int64_t)rr * CU];
        }
      }
#pragma unroll
      for (int k = 0; k < UNROLL; ++k) {
        const int rr = r + k * kTY;
        if (rr < r1) {
          if constexpr (GELU) {
            d[k] = gelu_bwd4(d[k], p[k]);
            O[(int64_t)rr * CU] = d[k];
            if (low) bjc::store_bf16(low + ((int64_t)rr * CU + u) * (VEC ? 4 : 1), d[k]);
          }
          U::add(acc, d[k]);
        }
      }
    }
  }
  __shared__ T sm[kTY][kTX];
  sm[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && u < CU) {
    T s = sm[0][tx];
#pragma unroll
    for (int k = 1; k < kTY; ++k) U::add(s, sm[k][tx]);
    reinterpret_cast<T*>(part)[(int64_t)blockIdx.y * CU + u] = s;
  }
}

int bias_grad_fused2(const char* op, bool gelu, float* dpre, uint16_t* low, float* dbias,
                     const float* dout, const float* pre, int N, int C, float* part,
                     void* stream) {
  const bool vec = C % 4 == 0 && bjc::aligned16(dout) && bjc::aligned16(part) &&
                   (!gelu || (bjc::aligned16(dpre) && bjc::aligned16(pre)));
  const int CU = vec ? C / 4 : C;
  const int bx = (CU + kTX - 1) / kTX;
  // One wave of 4 blocks (1024 threads) per SM; each block a contiguous range of R rows.
  int64_t G = (int64_t)bjc::sm_count() * 4 / bx;
  if (G < 1) G = 1;
  if (G > N) G = N;
  if (G > 65535) G = 65535;
  if (G * C * 4 > bjc::kScratchBytes) G = bjc::kScratchBytes / (4LL * C);
  const int R = (int)((N + G - 1) / G);
  G = (N + R - 1) / R;  // no empty row groups
  void (*kern)(float*, uint16_t*, float*, const float*, const float*, int, int, int) =
      gelu ? (vec ? &k_bias_grad_part2<true, true, 4> : &k_bias_grad_part2<true, false, 4>)
           : (vec ? &k_bias_grad_part2<false, true, 8> : &k_bias_grad_part2<false, false, 8>);
  BJ_LAUNCH(kern, dim3((unsigned)bx, (unsigned)G, 1), kTX * kTY, 0, bjc::as_stream(stream), dpre,
            low, part, dout, pre, N, C, R);
  BJ_TRY(bjc::check_launch(op));
  return bjc::launch_sum_rows(op, dbias, part, (int)G, C, stream);
}

// dbias += column sums (and dpre = dout * gelu'(pre), low = bf16 bits of dpre when not NULL, when
// gelu) through per-block partials; returns -1 (nothing launched) when no scratch is available,
// so the caller takes k_colreduce.
int bias_grad_fused(const char* op, bool gelu, float* dpre, uint16_t* low, float* dbias,
                    const float* dout, const float* pre, int N, int C, void* stream) {
  if ((int64_t)C * 4 > bjc::kScratchBytes) return -1;
  float* part = bjc::scratch_for(stream);
  if (part == nullptr) return -1;
  if (!bjc::use_v1_kernel(gelu ? "bias_gelu_backward" : "bias_backward"))
    return bias_grad_fused2(op, gelu, dpre, low, dbias, dout, pre, N, C, part, stream);
  const bool vec = C % 4 == 0 && bjc::aligned16(dout) && bjc::aligned16(part) &&
                   (!gelu || (bjc::aligned16(dpre) && bjc::aligned16(pre)));
  const int CV = vec ? C / 4 : C;
  const int threads = CV >= 256 ? 256 : (CV + 31) / 32 * 32;
  const int bx = (CV + threads - 1) / threads;
  int64_t G = (int64_t)bjc::sm_count() * 4 / bx;
  if (G < 1) G = 1;
  if (G > N) G = N;
  if (G > 65535) G = 65535;
  if (G * C * 4 > bjc::kScratchBytes) G = bjc::kScratchBytes / (4LL * C);
  auto kern = gelu ? (vec ? &k_bias_grad_part<true, true> : &k_bias_grad_part<true, false>)
                   : (vec ? &k_bias_grad_part<false, true> : &k_bias_grad_part<false, false>);
  BJ_LAUNCH(kern, dim3((unsigned)bx, (unsigned)G, 1), threads, 0, bjc::as_stream(stream), dpre,
            part, dout, pre, N, C);
  BJ_TRY(bjc::check_launch(op));
  BJ_TRY(bjc::launch_sum_partials(op, dbias, nullptr, part, (int)G, C, C, stream));
  // v1 (a kept variant, for timing) does not write the bf16 copy itself: to_bf16's kernel on dpre
  if (low != nullptr) return bjc::launch_to_bf16(op, low, dpre, (int64_t)N * C, stream);
  return BJ_OK;
}
}  // namespace

extern "C" int bj_cuda_bias_add(float* x,           // (N, C)
                                const float* bias,  // (C)
                                int N, int C, void* stream) {
  BJ_CHECK(x != nullptr && bias != nullptr, "bj_cuda_bias_add", "x or bias is NULL");
  BJ_CHECK(N > 0, "bj_cuda_bias_add", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cuda_bias_add", "C must be > 0 (got %d)", C);
  const bool vec = C % 4 == 0 && bjc::aligned16(x) && bjc::aligned16(bias);
  return bjc::launch_elementwise("bj_cuda_bias_add", BiasAddOp{x, bias, C}, (int64_t)N * C, vec,
                                 stream);
}

extern "C" int bj_cuda_bias_backward(float* dbias,       // (C), +=
                                     const float* dout,  // (N, C)
                                     int N, int C, void* stream) {
  BJ_CHECK(dbias != nullptr && dout != nullptr, "bj_cuda_bias_backward", "dbias or dout is NULL");
  BJ_CHECK(N > 0, "bj_cuda_bias_backward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cuda_bias_backward", "C must be > 0 (got %d)", C);
  const int rc = bias_grad_fused("bj_cuda_bias_backward", false, nullptr, nullptr, dbias, dout,
                                 nullptr, N, C, stream);
  if (rc >= 0) return rc;
  return bjc::launch_colreduce<1>("bj_cuda_bias_backward", ColSumOp{dbias, dout, C}, N, C, 1,
                                  stream);
}

extern "C" int bj_cuda_bias_gelu_forward(float* out,         // (N, C), may alias x, or NULL
                                         uint16_t* out_low,  // (N, C) bf16 or NULL
                                         float* pre,         // (N, C), may alias x, or NULL
                                         const float* x,     // (N, C)
                                         const float* bias,  // (C) or NULL
                                         int N, int C, void* stream) {
  const char* op = "bj_cuda_bias_gelu_forward";  // (BJ_CHECK takes the literal)
  BJ_CHECK(x != nullptr, "bj_cuda_bias_gelu_forward", "x is NULL");
  BJ_CHECK(out != nullptr || out_low != nullptr, "bj_cuda_bias_gelu_forward",
           "out and out_low are both NULL (at least one output is needed)");
  BJ_CHECK(N > 0, "bj_cuda_bias_gelu_forward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cuda_bias_gelu_forward", "C must be > 0 (got %d)", C);
  const bool vec = C % 4 == 0 && bjc::aligned16(out) && bjc::aligned16(pre) &&
                   bjc::aligned16(x) && bjc::aligned16(bias);  // (NULL counts as aligned)
  const int64_t n = (int64_t)N * C;
  // training: every output (k_elementwise, 32 registers); the variants without fp32 outputs
  // take k_elementwise_occ (else 37 to 39 registers, 6 blocks of 256 threads per SM)
  if (out != nullptr && pre != nullptr)
    return bjc::launch_elementwise(op, BiasGeluFwdOp<true, true>{out, out_low, pre, x, bias, C}, n,
                                   vec, stream);
  if (out != nullptr)
    return bjc::launch_elementwise<true>(
        op, BiasGeluFwdOp<true, false>{out, out_low, pre, x, bias, C}, n, vec, stream);
  if (pre != nullptr)
    return bjc::launch_elementwise<true>(
        op, BiasGeluFwdOp<false, true>{out, out_low, pre, x, bias, C}, n, vec, stream);
  return bjc::launch_elementwise<true>(
      op, BiasGeluFwdOp<false, false>{out, out_low, pre, x, bias, C}, n, vec, stream);
}

extern "C" int bj_cuda_bias_gelu_backward(float* dpre,        // (N, C), "=", may alias dout
                                          uint16_t* dpre_low, // (N, C) bf16 or NULL
                                          float* dbias,       // (C), +=, or NULL
                                          const float* dout,  // (N, C)
                                          const float* pre,   // (N, C)
                                          int N, int C, void* stream) {
  BJ_CHECK(dpre != nullptr && dout != nullptr && pre != nullptr, "bj_cuda_bias_gelu_backward",
           "dpre, dout or pre is NULL");
  BJ_CHECK(N > 0, "bj_cuda_bias_gelu_backward", "N must be > 0 (got %d)", N);
  BJ_CHECK(C > 0, "bj_cuda_bias_gelu_backward", "C must be > 0 (got %d)", C);
  if (dbias != nullptr) {
    const int rc = bias_grad_fused("bj_cuda_bias_gelu_backward", true, dpre, dpre_low, dbias,
                                   dout, pre, N, C, stream);
    if (rc >= 0) return rc;
    return bjc::launch_colreduce<1>("bj_cuda_bias_gelu_backward",
                                    GeluBwdColOp{dpre, dpre_low, dbias, dout, pre, C}, N, C, 1,
                                    stream);
  }
  const bool vec = bjc::aligned16(dpre) && bjc::aligned16(dout) && bjc::aligned16(pre);
  return bjc::launch_elementwise("bj_cuda_bias_gelu_backward",
                                 GeluBwdOp{dpre, dpre_low, dout, pre}, (int64_t)N * C, vec, stream);
}
