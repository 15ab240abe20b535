// Memory helpers on device buffers: fill, axpy, scale_by, to_bf16, from_bf16 (and
// bjc::launch_to_bf16, to_bf16's kernel for the bf16 side outputs of other ops).
//
//   fill:     x[i] = value
//   axpy:     y[i] += alpha * x[i]
//   scale_by: x[i] *= scale[0]   (scale points at one float in device memory, e.g. a clip factor
//                                 from clip_scale; read by the kernel, so no host round trip)
//
// Elementwise, grid-stride, float4 when every pointer is 16-byte aligned (scalar tail).
#include "common.cuh"
#include "bertj_bf16.h"

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

struct ToBf16Op {
  uint16_t* out;
  const float* x;
  __device__ void one(int64_t i) const { out[i] = bj_f32_to_bf16_bits(x[i]); }
  __device__ void vec4(int64_t i) const {  // out 8-byte aligned: one uint2 store
    bjc::store_bf16(out + 4 * i, reinterpret_cast<const float4*>(x)[i]);
  }
};

struct FromBf16Op {
  float* out;
  const uint16_t* x;
  __device__ void one(int64_t i) const { out[i] = bj_bf16_bits_to_f32(x[i]); }
  __device__ void vec4(int64_t i) const {
    const uint2 v = reinterpret_cast<const uint2*>(x)[i];
    reinterpret_cast<float4*>(out)[i] =
        make_float4(bj_bf16_bits_to_f32((uint16_t)(v.x & 0xffffu)),
                    bj_bf16_bits_to_f32((uint16_t)(v.x >> 16)),
                    bj_bf16_bits_to_f32((uint16_t)(v.y & 0xffffu)),
                    bj_bf16_bits_to_f32((uint16_t)(v.y >> 16)));
  }
};
}  // namespace

int bjc::launch_to_bf16(const char* op, uint16_t* out, const float* x, int64_t n, void* stream) {
  return bjc::launch_elementwise(op, ToBf16Op{out, x}, n,
                                 bjc::aligned16(x) && bjc::aligned8(out), stream);
}

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

extern "C" int bj_cuda_to_bf16(uint16_t* out,   // (n) bf16 bits
                               const float* x,  // (n)
                               int64_t n, void* stream) {
  BJ_CHECK(out != nullptr, "bj_cuda_to_bf16", "out is NULL");
  BJ_CHECK(x != nullptr, "bj_cuda_to_bf16", "x is NULL");
  BJ_CHECK(n > 0, "bj_cuda_to_bf16", "n must be > 0 (got %lld)", (long long)n);
  return bjc::launch_to_bf16("bj_cuda_to_bf16", out, x, n, stream);
}

extern "C" int bj_cuda_from_bf16(float* out,         // (n)
                                 const uint16_t* x,  // (n) bf16 bits
                                 int64_t n, void* stream) {
  BJ_CHECK(out != nullptr, "bj_cuda_from_bf16", "out is NULL");
  BJ_CHECK(x != nullptr, "bj_cuda_from_bf16", "x is NULL");
  BJ_CHECK(n > 0, "bj_cuda_from_bf16", "n must be > 0 (got %lld)", (long long)n);
  return bjc::launch_elementwise("bj_cuda_from_bf16", FromBf16Op{out, x}, n,
                                 bjc::aligned16(out) && bjc::aligned8(x), stream);
}
