// Memory helpers on device buffers: fill, axpy, scale_by, to_bf16, from_bf16, gather_rows (and
// bjc::launch_to_bf16, to_bf16's kernel for the bf16 side outputs of other ops).
//
//   fill:     x[i] = value
//   axpy:     y[i] += alpha * x[i]
//   scale_by: x[i] *= scale[0]   (scale points at one float in device memory, e.g. a clip factor
//                                 from clip_scale; read by the kernel, so no host round trip)
//   gather_rows: out[r] = in[idx[r]] (rows of C floats), zeros where idx[r] < 0; an index >= n_in
//                is not read: its row is filled with NaN (no device-side check can report an
//                error without a sync; the NaN surfaces the caller's bug downstream)
//
// Elementwise, grid-stride, float4 when every pointer is 16-byte aligned (scalar tail).
#include <cmath>

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
// Element i of out (M, C) (or float4 i of out (M, C/4) in vec4): row r = i / C reads in row
// idx[r] (one int load per element, served by L1: consecutive threads share a row).
struct GatherRowsOp {
  float* out;
  const float* in;
  const int32_t* idx;
  int C;  // floats per row
  int n_in;
  __device__ float value(int64_t r, int c) const {
    const int32_t j = idx[r];
    if (j < 0) return 0.0f;
    if (j >= n_in) return NAN;  // out of range: NaN, never read
    return in[(int64_t)j * C + c];
  }
  __device__ void one(int64_t i) const {
    int64_t r;
    int c;
    bjc::row_col(i, C, r, c);
    out[i] = value(r, c);
  }
  __device__ void vec4(int64_t i) const {  // C % 4 == 0
    const int c4 = C >> 2;
    int64_t r;
    int c;
    bjc::row_col(i, c4, r, c);
    const int32_t j = idx[r];
    float4 v;
    if (j < 0) {
      v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    } else if (j >= n_in) {
      const float nan = NAN;
      v = make_float4(nan, nan, nan, nan);
    } else {
      v = reinterpret_cast<const float4*>(in)[(int64_t)j * c4 + c];
    }
    reinterpret_cast<float4*>(out)[i] = v;
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

extern "C" int bj_cuda_gather_rows(float* out,          // (M, C)
                                   const float* in,     // (n_in, C)
                                   const int32_t* idx,  // (M), device memory
                                   int M, int C, int n_in, void* stream) {
  BJ_CHECK(out != nullptr, "bj_cuda_gather_rows", "out is NULL");
  BJ_CHECK(in != nullptr, "bj_cuda_gather_rows", "in is NULL");
  BJ_CHECK(idx != nullptr, "bj_cuda_gather_rows", "idx is NULL");
  BJ_CHECK(M > 0 && C > 0 && n_in > 0, "bj_cuda_gather_rows",
           "M, C, n_in must be > 0 (got %d, %d, %d)", M, C, n_in);
  const uintptr_t o0 = reinterpret_cast<uintptr_t>(out), i0 = reinterpret_cast<uintptr_t>(in);
  const uintptr_t o1 = o0 + (uintptr_t)M * C * sizeof(float);
  const uintptr_t i1 = i0 + (uintptr_t)n_in * C * sizeof(float);
  BJ_CHECK(o1 <= i0 || i1 <= o0, "bj_cuda_gather_rows", "out overlaps in");
  const bool vec = C % 4 == 0 && bjc::aligned16(out) && bjc::aligned16(in);
  return bjc::launch_elementwise("bj_cuda_gather_rows", GatherRowsOp{out, in, idx, C, n_in},
                                 (int64_t)M * C, vec, stream);
}
