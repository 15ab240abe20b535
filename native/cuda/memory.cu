// Memory helpers on device buffers: fill, axpy, scale_by.
//
//   fill:     x[i] = value
//   axpy:     y[i] += alpha * x[i]
//   scale_by: x[i] *= scale[0]   (scale points at one float in device memory, e.g. a clip factor
//                                 from clip_scale; read by the kernel, so no host round trip)
//
// Elementwise, grid-stride, float4 when every pointer is 16-byte aligned (scalar tail).
#include "common.cuh"

namespace {
struct FillOp {
  float* x;
  float v;
  __device__ void one(int64_t i) const { x[i] = v; }
  __device__ void vec4(int64_t i) const {
    reinterpret_cast<float4*>(x)[i] = make_float4(v, v, v, v);
  }
};

struct AxpyOp {
  float* y;
  const float* x;
  float a;
  __device__ void one(int64_t i) const { y[i] += a * x[i]; }
  __device__ void vec4(int64_t i) const {
    float4 yv = reinterpret_cast<float4*>(y)[i];
    const float4 xv = reinterpret_cast<const float4*>(x)[i];
    yv.x += a * xv.x;
    yv.y += a * xv.y;
    yv.z += a * xv.z;
    yv.w += a * xv.w;
    reinterpret_cast<float4*>(y)[i] = yv;
  }
};

struct ScaleByOp {
  float* x;
  const float* s;
  __device__ void one(int64_t i) const { x[i] *= *s; }
  __device__ void vec4(int64_t i) const {
    const float sv = *s;
    float4 v = reinterpret_cast<float4*>(x)[i];
    v.x *= sv;
    v.y *= sv;
    v.z *= sv;
    v.w *= sv;
    reinterpret_cast<float4*>(x)[i] = v;
  }
};
}  // namespace

extern "C" int bj_cuda_fill(float* x,  // (n)
                            int64_t n, float value, void* stream) {
  BJ_CHECK(x != nullptr, "bj_cuda_fill", "x is NULL");
  BJ_CHECK(n > 0, "bj_cuda_fill", "n must be > 0 (got %lld)", (long long)n);
  return bjc::launch_elementwise("bj_cuda_fill", FillOp{x, value}, n, bjc::aligned16(x), stream);
}

extern "C" int bj_cuda_axpy(float* y,        // (n)
                            const float* x,  // (n)
                            int64_t n, float alpha, void* stream) {
  BJ_CHECK(y != nullptr, "bj_cuda_axpy", "y is NULL");
  BJ_CHECK(x != nullptr, "bj_cuda_axpy", "x is NULL");
  BJ_CHECK(n > 0, "bj_cuda_axpy", "n must be > 0 (got %lld)", (long long)n);
  return bjc::launch_elementwise("bj_cuda_axpy", AxpyOp{y, x, alpha}, n,
                                 bjc::aligned16(y) && bjc::aligned16(x), stream);
}

extern "C" int bj_cuda_scale_by(float* x,            // (n)
                                int64_t n,
                                const float* scale,  // (1), device memory
                                void* stream) {
  BJ_CHECK(x != nullptr, "bj_cuda_scale_by", "x is NULL");
  BJ_CHECK(scale != nullptr, "bj_cuda_scale_by", "scale is NULL");
  BJ_CHECK(n > 0, "bj_cuda_scale_by", "n must be > 0 (got %lld)", (long long)n);
  return bjc::launch_elementwise("bj_cuda_scale_by", ScaleByOp{x, scale}, n, bjc::aligned16(x),
                                 stream);
}
