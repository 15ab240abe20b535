// Dropout with the Philox-4x32-10 mask of bertj_philox.h, bit-identical to the CPU backend.
//
//   u_i  = bj_dropout_uniform(seed, offset + i)        in [0, 1), 24-bit
//   keep = u_i >= p;  scale = 1 / (1 - p) (computed once in fp32 on the host, as on the CPU)
//   forward:  out = keep ? x * scale : 0               (may alias x)
//   backward: dx  = keep ? dout * scale : 0            activation gradient ("="), may alias dout
//   philox_uniform: u[i] = u_i                         (for tests)
//
// sc != NULL: the seed is read from device memory by each thread before its elements (prepare).
// p = 0 is the identity (a copy when out != x). Elementwise and counter-based, float4 loads/stores
// when aligned; a float4 whose 4 elements form one Philox group (offset % 4 == 0) costs one Philox
// call, otherwise one per element.
#include "common.cuh"

namespace {
struct DropoutOp {
  float* y;
  const float* x;
  float p, scale;
  uint64_t seed, offset;
  const bj_step_scalars* sc;  // per-step seed in device memory, or NULL
  __device__ void prepare() { seed = bjc::step_seed(sc, seed); }
  __device__ float f(float v, int64_t i) const {
    return bj_dropout_uniform(seed, offset + (uint64_t)i) >= p ? v * scale : 0.0f;
  }
  __device__ void one(int64_t i) const { y[i] = f(x[i], i); }
  __device__ void vec4(int64_t i4) const {
    const float4 v = reinterpret_cast<const float4*>(x)[i4];
    const int64_t i = i4 * 4;
    if ((offset & 3) == 0) {
      float u[4];
      bj_dropout_uniform4(seed, (offset >> 2) + (uint64_t)i4, u);
      reinterpret_cast<float4*>(y)[i4] =
          make_float4(u[0] >= p ? v.x * scale : 0.0f, u[1] >= p ? v.y * scale : 0.0f,
                      u[2] >= p ? v.z * scale : 0.0f, u[3] >= p ? v.w * scale : 0.0f);
    } else {
      reinterpret_cast<float4*>(y)[i4] =
          make_float4(f(v.x, i), f(v.y, i + 1), f(v.z, i + 2), f(v.w, i + 3));
    }
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
  const bj_step_scalars* sc;  // per-step seed in device memory, or NULL
  __device__ void prepare() { seed = bjc::step_seed(sc, seed); }
  __device__ void one(int64_t i) const { u[i] = bj_dropout_uniform(seed, offset + (uint64_t)i); }
  __device__ void vec4(int64_t i4) const {
    const uint64_t i = offset + (uint64_t)(i4 * 4);
    if ((offset & 3) == 0) {
      float w[4];
      bj_dropout_uniform4(seed, i >> 2, w);
      reinterpret_cast<float4*>(u)[i4] = make_float4(w[0], w[1], w[2], w[3]);
      return;
    }
    reinterpret_cast<float4*>(u)[i4] =
        make_float4(bj_dropout_uniform(seed, i), bj_dropout_uniform(seed, i + 1),
                    bj_dropout_uniform(seed, i + 2), bj_dropout_uniform(seed, i + 3));
  }
};

int apply_mask(const char* op, float* y, const float* x, int64_t n, float p, uint64_t seed,
               uint64_t offset, const bj_step_scalars* sc, void* stream) {
  const bool vec = bjc::aligned16(y) && bjc::aligned16(x);
  if (p == 0.0f) {
    if (y == x) return BJ_OK;
    return bjc::launch_elementwise(op, CopyOp{y, x}, n, vec, stream);
  }
  const float scale = 1.0f / (1.0f - p);
  return bjc::launch_elementwise(op, DropoutOp{y, x, p, scale, seed, offset, sc}, n, vec, stream);
}
}  // namespace

extern "C" int bj_cuda_dropout_forward(float* out,      // (n), may alias x
                                       const float* x,  // (n)
                                       int64_t n, float p, uint64_t seed, uint64_t offset,
                                       const bj_step_scalars* sc, void* stream) {
  BJ_CHECK(out != nullptr && x != nullptr, "bj_cuda_dropout_forward", "out or x is NULL");
  BJ_CHECK(n > 0, "bj_cuda_dropout_forward", "n must be > 0 (got %lld)", (long long)n);
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cuda_dropout_forward", "p must be in [0, 1) (got %g)",
           (double)p);
  return apply_mask("bj_cuda_dropout_forward", out, x, n, p, seed, offset, sc, stream);
}

extern "C" int bj_cuda_dropout_backward(float* dx,          // (n), "=", may alias dout
                                        const float* dout,  // (n)
                                        int64_t n, float p, uint64_t seed, uint64_t offset,
                                        const bj_step_scalars* sc, void* stream) {
  BJ_CHECK(dx != nullptr && dout != nullptr, "bj_cuda_dropout_backward", "dx or dout is NULL");
  BJ_CHECK(n > 0, "bj_cuda_dropout_backward", "n must be > 0 (got %lld)", (long long)n);
  BJ_CHECK(p >= 0.0f && p < 1.0f, "bj_cuda_dropout_backward", "p must be in [0, 1) (got %g)",
           (double)p);
  return apply_mask("bj_cuda_dropout_backward", dx, dout, n, p, seed, offset, sc, stream);
}

extern "C" int bj_cuda_philox_uniform(float* u,  // (n)
                                      int64_t n, uint64_t seed, uint64_t offset,
                                      const bj_step_scalars* sc, void* stream) {
  BJ_CHECK(u != nullptr, "bj_cuda_philox_uniform", "u is NULL");
  BJ_CHECK(n > 0, "bj_cuda_philox_uniform", "n must be > 0 (got %lld)", (long long)n);
  return bjc::launch_elementwise("bj_cuda_philox_uniform", UniformOp{u, seed, offset, sc}, n,
                                 bjc::aligned16(u), stream);
}
