// Small pieces shared by the column-sum kernels of gelu.cu and embeddings.cu:
// - Unit<VEC>: a float4 (VEC, 16-byte aligned, C % 4 == 0) or a float column unit, with add/zero.
// - sum_rows_tile / k_sum_rows: dst[w] += sum over r of part[r, w] for a (R, W) row-major matrix
//   of partials, in a fixed order (lane ty of kSumLanes adds rows ty, ty + kSumLanes, ... in
//   order, in double; then lanes 0, 1, ... in order): the same bits on every run, no atomics.
//   A block is 32 columns x kSumLanes lanes; one block per 32 columns (tile = blockIdx.x).
#ifndef BERTJ_CUDA_ROWSUM_CUH
#define BERTJ_CUDA_ROWSUM_CUH

#include "common.cuh"

namespace bjc {

template <bool VEC>
struct Unit;
template <>
struct Unit<true> {
  using T = float4;
  static __device__ __forceinline__ T zero() { return make_float4(0.0f, 0.0f, 0.0f, 0.0f); }
  static __device__ __forceinline__ void add(T& a, const T& b) {
    a.x += b.x;
    a.y += b.y;
    a.z += b.z;
    a.w += b.w;
  }
};
template <>
struct Unit<false> {
  using T = float;
  static __device__ __forceinline__ T zero() { return 0.0f; }
  static __device__ __forceinline__ void add(T& a, const T& b) { a += b; }
};

constexpr int kSumLanes = 16;
constexpr int kSumThreads = 32 * kSumLanes;

// One 32-column tile of dst += column sums of part (R, W). All kSumThreads threads must call it
// (it has a barrier).
__device__ __forceinline__ void sum_rows_tile(float* dst, const float* part, int R, int W,
                                              int tile) {
  __shared__ double sm[kSumLanes][33];
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  const int w = tile * 32 + tx;
  double acc = 0.0;
  if (w < W) {
    for (int r = ty; r < R; r += 8 * kSumLanes) {  // 8 loads in flight, added in order
      float v[8];
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const int rr = r + k * kSumLanes;
        v[k] = rr < R ? part[(int64_t)rr * W + w] : 0.0f;
      }
#pragma unroll
      for (int k = 0; k < 8; ++k)
        if (r + k * kSumLanes < R) acc += (double)v[k];
    }
  }
  sm[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && w < W) {
    double s = sm[0][tx];
    for (int k = 1; k < kSumLanes; ++k) s += sm[k][tx];
    dst[w] += (float)s;
  }
  __syncthreads();  // sm may be reused by the caller's next tile
}

template <int UNUSED = 0>
__global__ void __launch_bounds__(kSumThreads)
    k_sum_rows(float* dst, const float* part, int R, int W) {
  sum_rows_tile(dst, part, R, W, blockIdx.x);
}

inline int launch_sum_rows(const char* op, float* dst, const float* part, int R, int W,
                           void* stream) {
  auto kern = &k_sum_rows<0>;
  BJ_LAUNCH(kern, (unsigned)((W + 31) / 32), kSumThreads, 0, as_stream(stream), dst, part, R, W);
  return check_launch(op);
}

}  // namespace bjc

#endif
