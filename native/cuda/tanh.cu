// tanh of the pooler on the GPU (BertPooler: tanh(W h_CLS + b); the GEMM and bias are separate).
//
//   forward:  out = tanh(x)                    (may alias x)
//   backward: dx = dout * (1 - out^2)          activation gradient ("="), may alias dout
//
// Elementwise, float4 when aligned.
#include "common.cuh"

namespace {
struct TanhFwdOp {
  float* out;
  const float* x;
  __device__ void one(int64_t i) const { out[i] = tanhf(x[i]); }
  __device__ void vec4(int64_t i) const {
    const float4 v = reinterpret_cast<const float4*>(x)[i];
    reinterpret_cast<float4*>(out)[i] = make_float4(tanhf(v.x), tanhf(v.y), tanhf(v.z), tanhf(v.w));
  }
};

struct TanhBwdOp {
  float* dx;
  const float* dout;
  const float* out;
  __device__ void one(int64_t i) const { dx[i] = dout[i] * (1.0f - out[i] * out[i]); }
  __device__ void vec4(int64_t i) const {
    const float4 d = reinterpret_cast<const float4*>(dout)[i];
    const float4 o = reinterpret_cast<const float4*>(out)[i];
    reinterpret_cast<float4*>(dx)[i] =
        make_float4(d.x * (1.0f - o.x * o.x), d.y * (1.0f - o.y * o.y), d.z * (1.0f - o.z * o.z),
                    d.w * (1.0f - o.w * o.w));
  }
};
}  // namespace

extern "C" int bj_cuda_tanh_forward(float* out,      // (n), may alias x
                                    const float* x,  // (n)
                                    int64_t n, void* stream) {
  BJ_CHECK(out != nullptr && x != nullptr, "bj_cuda_tanh_forward", "out or x is NULL");
  BJ_CHECK(n > 0, "bj_cuda_tanh_forward", "n must be > 0 (got %lld)", (long long)n);
  return bjc::launch_elementwise("bj_cuda_tanh_forward", TanhFwdOp{out, x}, n,
                                 bjc::aligned16(out) && bjc::aligned16(x), stream);
}

extern "C" int bj_cuda_tanh_backward(float* dx,          // (n), "=", may alias dout
                                     const float* dout,  // (n)
                                     const float* out,   // (n), the saved forward output
                                     int64_t n, void* stream) {
  BJ_CHECK(dx != nullptr && dout != nullptr && out != nullptr, "bj_cuda_tanh_backward",
           "dx, dout or out is NULL");
  BJ_CHECK(n > 0, "bj_cuda_tanh_backward", "n must be > 0 (got %lld)", (long long)n);
  return bjc::launch_elementwise(
      "bj_cuda_tanh_backward", TanhBwdOp{dx, dout, out}, n,
      bjc::aligned16(dx) && bjc::aligned16(dout) && bjc::aligned16(out), stream);
}
