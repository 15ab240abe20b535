// Dropout with the Philox-4x32-10 mask of bertj_philox.h, bit-identical to the CPU backend.
//
//   u_i  = bj_dropout_uniform(seed, offset + i)        in [0, 1), 24-bit
//   keep = u_i >= p;  scale = 1 / (1 - p) (computed once in fp32 on the host, as on the CPU)
//   forward:  out = keep ? x * scale : 0               (may alias x)
//   backward: dx  = keep ? dout * scale : 0            activation gradient ("="), may alias dout
//   philox_uniform: u[i] = u_i                         (for tests)
//
// p = 0 is the identity (a copy when out != x). Elementwise and counter-based: one Philox call per
// element, float4 loads/stores when aligned.
#include <cmath>

#include "common.cuh"
#include "kernel_select.cuh"

namespace {
struct DropoutOp {
  float* y;
  const float* x;
  float p, scale;
  uint64_t seed, offset;
  __device__ float f(float v, int64_t i) const {
    return bj_dropout_uniform(seed, offset + (uint64_t)i) >= p ? v * scale : 0.0f;
  }
  __device__ void one(int64_t i) const { y[i] = f(x[i], i); }
  __device__ void vec4(int64_t i4) const {
    const float4 v = reinterpret_cast<const float4*>(x)[i4];
    const int64_t i = i4 * 4;
    reinterpret_cast<float4*>(y)[i4] =
        make_float4(f(v.x, i), f(v.y, i + 1), f(v.z, i + 2), f(v.w, i + 3));
  }
};

struct CopyOp {
  float* y;
  const float* x;
  __device__ void one(int64_t i) const { y[i] = x[i]; }
  __device__ void vec4(int64_t i) const {
    reinterpret_cast<float4*>(y)[i] = reinterpret_cast<const float4*>(x)[i];
  }
};

struct UniformOp {
  float* u;
  uint64_t seed, offset;
  __device__ void one(int64_t i) const { u[i] = bj_dropout_uniform(seed, offset + (uint64_t)i); }
  __device__ void vec4(int64_t i4) const {
    const uint64_t i = offset + (uint64_t)(i4 * 4);
    reinterpret_cast<float4*>(u)[i4] =
        make_float4(bj_dropout_uniform(seed, i), bj_dropout_uniform(seed, i + 1),
                    bj_dropout_uniform(seed, i + 2), bj_dropout_uniform(seed, i + 3));
  }
};

// ---- v2 (the default; BJ_KERNEL_V1=dropout selects DropoutOp above) ----
// Same mask, element for element (one Philox-4x32-10 call per element, its first word, as in
// bertj_philox.h; that convention is shared with the CPU backend and the attention kernels), with
// less integer work per element:
// - keep = u >= p is decided on the integer: u = m 2^-24 with m = word >> 8 (exact), so u >= p
//   iff m >= thr = ceil(p 2^24) (p 2^24 is exact in double): no int -> float conversion.
// - a thread takes 4 consecutive elements; when their counters share the high word (all but one
//   group in 2^30), the 4 Philox calls are written with that word as one value, so the compiler
//   shares the work that depends only on it (round 1's product of counter word 2 is 0 anyway,
//   round 2's product of word 1 = hi ^ k0 is common to the 4): 1 of ~17 wide multiplies saved.
// - the last round's unused outputs fold away (only word 0 is needed).
__device__ __forceinline__ void philox_first4(uint32_t lo, uint32_t hi, uint32_t k0, uint32_t k1,
                                              uint32_t (&w)[4]) {
  uint32_t c[4][4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    c[j][0] = lo + (uint32_t)j;
    c[j][1] = hi;
    c[j][2] = 0u;
    c[j][3] = 0u;
  }
#pragma unroll
  for (int r = 0; r < 10; ++r) {
#pragma unroll
    for (int j = 0; j < 4; ++j) bj_philox_round(c[j], k0, k1);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) w[j] = c[j][0];
}

template <bool VEC>
__global__ void __launch_bounds__(256)
    k_dropout4(float* y, const float* x, int64_t n, uint32_t thr, float scale, uint64_t seed,
               uint64_t offset) {
  const int64_t groups = (n + 3) >> 2;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += stride) {
    const int64_t i = g * 4;
    const uint64_t idx = offset + (uint64_t)i;
    float v[4];
    if (VEC && i + 4 <= n) {
      const float4 t = reinterpret_cast<const float4*>(x)[g];
      v[0] = t.x;
      v[1] = t.y;
      v[2] = t.z;
      v[3] = t.w;
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = i + j < n ? x[i + j] : 0.0f;
    }
    uint32_t w[4];
    if ((uint32_t)idx <= 0xFFFFFFFCu) {
      philox_first4((uint32_t)idx, (uint32_t)(idx >> 32), k0, k1, w);
    } else {  // the 4 counters cross a multiple of 2^32: one call each
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        uint32_t c[4] = {(uint32_t)(idx + j), (uint32_t)((idx + j) >> 32), 0u, 0u};
        bj_philox4x32_10(c, k0, k1);
        w[j] = c[0];
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = (w[j] >> 8) >= thr ? v[j] * scale : 0.0f;
    if (VEC && i + 4 <= n) {
      reinterpret_cast<float4*>(y)[g] = make_float4(v[0], v[1], v[2], v[3]);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (i + j < n) y[i + j] = v[j];
    }
  }
}

int apply_mask(const char* op, float* y, const float* x, int64_t n, float p, uint64_t seed,
               uint64_t offset, void* stream) {
  const bool vec = bjc::aligned16(y) && bjc::aligned16(x);
  if (p == 0.0f) {
    if (y == x) return BJ_OK;
    return bjc::launch_elementwise(op, CopyOp{y, x}, n, vec, stream);
  }
  const float scale = 1.0f / (1.0f - p);
  if (bjc::use_v1_kernel("dropout"))
    return bjc::launch_elementwise(op, DropoutOp{y, x, p, scale, seed, offset}, n, vec, stream);
  const uint32_t thr = (uint32_t)std::ceil((double)p * 16777216.0);
  auto kern = vec ? &k_dropout4<true> : &k_dropout4<false>;
  BJ_LAUNCH(kern, bjc::blocks_for((n + 3) / 4, 256), 256, 0, bjc::as_stream(stream), y, x, n, thr,
            scale, seed, offset);
  return bjc::check_launch(op);
}
}  // namespace

extern "C" int bj_cuda_dropout_forward(float* out,      // (n), may alias x
                                       const float* x,  // (n)
                                       int64_t n, float p, uint64_t seed, uint64_t offset,
                                       void* stream) {
  BJ_CHECK(out != nullptr && x != nullptr, "bj_cuda_dropout_forward", "out or x is NULL");
  BJ_CHECK(n > 0, "bj_cuda_dropout_forward", "n must be > 0 (got %lld)", (long long)n);
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cuda_dropout_forward", "p must be in [0, 1) (got %g)",
           (double)p);
  return apply_mask("bj_cuda_dropout_forward", out, x, n, p, seed, offset, stream);
}

extern "C" int bj_cuda_dropout_backward(float* dx,          // (n), "=", may alias dout
                                        const float* dout,  // (n)
                                        int64_t n, float p, uint64_t seed, uint64_t offset,
                                        void* stream) {
  BJ_CHECK(dx != nullptr && dout != nullptr, "bj_cuda_dropout_backward", "dx or dout is NULL");
  BJ_CHECK(n > 0, "bj_cuda_dropout_backward", "n must be > 0 (got %lld)", (long long)n);
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cuda_dropout_backward", "p must be in [0, 1) (got %g)",
           (double)p);
  return apply_mask("bj_cuda_dropout_backward", dx, dout, n, p, seed, offset, stream);
}

extern "C" int bj_cuda_philox_uniform(float* u,  // (n)
                                      int64_t n, uint64_t seed, uint64_t offset, void* stream) {
  BJ_CHECK(u != nullptr, "bj_cuda_philox_uniform", "u is NULL");
  BJ_CHECK(n > 0, "bj_cuda_philox_uniform", "n must be > 0 (got %lld)", (long long)n);
  return bjc::launch_elementwise("bj_cuda_philox_uniform", UniformOp{u, seed, offset}, n,
                                 bjc::aligned16(u), stream);
}
