// Optimizer ops on the GPU: global gradient norm, torch-style clip factor, and AdamW.
//
//   sum_squares: out[0] = sum_i x[i]^2 in double, deterministic two-stage reduction:
//                stage 1: G = min(1024, ceil(n / 1024)) blocks of 256 threads, grid-stride (float4
//                when aligned), per-thread double sums, fixed tree per block -> G partials;
//                stage 2: one block adds the G partials in a fixed tree and writes out[0] (float).
//                The partition depends on n only, so the bits do not depend on timing.
//                Scratch: the partials live in a module-static device array of kSlots x 1024
//                doubles (256 KiB); each call takes the next slot (host-side atomic counter), so up
//                to kSlots sum_squares calls may be in flight at once on different streams.
//   clip_scale:  scale[0] = min(1, max_norm / (sqrt(norm_sq[0]) + 1e-6)); NaN stays NaN. One
//                thread, reads and writes device memory (no host round trip).
//   adamw:       torch.optim.AdamW on one flat buffer, g * (*grad_scale) (read on the device;
//                g untouched). Scalars as on the CPU: bias corrections bc = 1 - b^step in double,
//                then step_size = lr / bc1, bc2_sqrt = sqrt(bc2), decay = 1 - lr * wd in fp32
//                (AdamWOp::set_scalars). With per-step scalars (sc, bertj.h) each thread computes
//                them from sc->lr and sc->step before its elements, otherwise the host does, with
//                the same code and so the same bits: b^step by binary powering (IEEE double
//                products only; the CPU's std::pow may differ in the last bits of the double,
//                very rarely in the fp32 scalars) and no multiply-add contracted into an FMA:
//                  p *= decay (i in [decay_begin, decay_end)); m = b1 m + (1 - b1) g;
//                  v = b2 v + (1 - b2) g^2; p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)
//                p_low (optional): the bf16 bits of each updated p (bj_f32_to_bf16_bits, to_bf16's
//                bits), stored by the thread that stores p; in the float4 path the 4 bf16 go out
//                as one uint2 when p_low is 8-byte aligned, as 4 scalars otherwise.
#include <atomic>
#include <cmath>

#include "bertj_bf16.h"
#include "common.cuh"

namespace {
constexpr int kSsThreads = 256;
constexpr int kSsMaxBlocks = 1024;
constexpr int kSlots = 32;

__device__ double g_ss_partials[kSlots][kSsMaxBlocks];
std::atomic<unsigned> g_ss_next_slot{0};

__global__ void __launch_bounds__(kSsThreads)
    k_sum_squares_partial(const float* x, int64_t n, int vec, int slot) {
  __shared__ double sm[kSsThreads];
  const int64_t stride = (int64_t)gridDim.x * kSsThreads;
  const int64_t t0 = (int64_t)blockIdx.x * kSsThreads + threadIdx.x;
  double acc = 0.0;
  int64_t done = 0;
  if (vec) {
    const int64_t n4 = n >> 2;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    for (int64_t i = t0; i < n4; i += stride) {
      const float4 v = x4[i];
      acc += (double)v.x * v.x;
      acc += (double)v.y * v.y;
      acc += (double)v.z * v.z;
      acc += (double)v.w * v.w;
    }
    done = n4 << 2;
  }
  for (int64_t i = done + t0; i < n; i += stride) acc += (double)x[i] * x[i];
  sm[threadIdx.x] = acc;
  __syncthreads();
  for (int s = kSsThreads / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) sm[threadIdx.x] += sm[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) g_ss_partials[slot][blockIdx.x] = sm[0];
}

__global__ void __launch_bounds__(kSsMaxBlocks) k_sum_squares_final(float* out, int G, int slot) {
  __shared__ double sm[kSsMaxBlocks];
  const int t = threadIdx.x;
  sm[t] = t < G ? g_ss_partials[slot][t] : 0.0;
  __syncthreads();
  for (int s = kSsMaxBlocks / 2; s > 0; s >>= 1) {
    if (t < s) sm[t] += sm[t + s];
    __syncthreads();
  }
  if (t == 0) out[0] = (float)sm[0];
}

__global__ void k_clip_scale(float* scale, const float* norm_sq, float max_norm) {
  const float c = max_norm / (sqrtf(norm_sq[0]) + 1e-6f);
  scale[0] = c > 1.0f ? 1.0f : c;  // NaN stays NaN
}

struct AdamWOp {
  float* p;
  uint16_t* p_low;  // bf16 of the updated p, or NULL
  const float* g;
  float* m;
  float* v;
  const float* grad_scale;  // device scalar or NULL
  int64_t decay_begin, decay_end;
  float beta1, beta2, eps, wd;
  const bj_step_scalars* sc;  // per-step lr and step in device memory, or NULL
  float step_size, bc2_sqrt, decay;  // set_scalars
  // b^n (n >= 1) by binary powering: only IEEE double products, the same bits on host and device.
  __host__ __device__ static double pow_int(double b, int n) {
    double r = 1.0;
    for (; n > 0; n >>= 1) {
      if (n & 1) r *= b;
      b *= b;
    }
    return r;
  }
  __host__ __device__ void set_scalars(float lr, int step) {
    const double bc1 = 1.0 - pow_int((double)beta1, step);
    const double bc2 = 1.0 - pow_int((double)beta2, step);
    step_size = (float)((double)lr / bc1);
    bc2_sqrt = (float)sqrt(bc2);
#ifdef __CUDA_ARCH__
    decay = (float)(1.0 - __dmul_rn((double)lr, (double)wd));  // not fused into an FMA
#else
    decay = (float)(1.0 - (double)lr * wd);
#endif
  }
  __device__ void prepare() {
    if (sc != nullptr) set_scalars(sc->lr, sc->step);
  }
  __device__ float update(float pi, float gi, float& mi, float& vi, int64_t i) const {
    if (i >= decay_begin && i < decay_end) pi *= decay;
    mi = beta1 * mi + (1.0f - beta1) * gi;
    vi = beta2 * vi + (1.0f - beta2) * gi * gi;
    const float denom = sqrtf(vi) / bc2_sqrt + eps;
    return pi - step_size * (mi / denom);
  }
  __device__ void one(int64_t i) const {
    const float gs = grad_scale ? *grad_scale : 1.0f;
    float mi = m[i], vi = v[i];
    const float pi = update(p[i], g[i] * gs, mi, vi, i);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (p_low != nullptr) bjc::store_bf16(p_low + i, pi);
  }
  __device__ void vec4(int64_t i4) const {
    const float gs = grad_scale ? *grad_scale : 1.0f;
    float4 pv = reinterpret_cast<float4*>(p)[i4];
    const float4 gv = reinterpret_cast<const float4*>(g)[i4];
    float4 mv = reinterpret_cast<float4*>(m)[i4];
    float4 vv = reinterpret_cast<float4*>(v)[i4];
    const int64_t i = i4 * 4;
    pv.x = update(pv.x, gv.x * gs, mv.x, vv.x, i);
    pv.y = update(pv.y, gv.y * gs, mv.y, vv.y, i + 1);
    pv.z = update(pv.z, gv.z * gs, mv.z, vv.z, i + 2);
    pv.w = update(pv.w, gv.w * gs, mv.w, vv.w, i + 3);
    reinterpret_cast<float4*>(p)[i4] = pv;
    reinterpret_cast<float4*>(m)[i4] = mv;
    reinterpret_cast<float4*>(v)[i4] = vv;
    if (p_low != nullptr) bjc::store_bf16(p_low + i, pv);  // one uint2 when 8-byte aligned
  }
};
}  // namespace

extern "C" int bj_cuda_sum_squares(float* out,      // (1), device
                                   const float* x,  // (n)
                                   int64_t n, void* stream) {
  const char* op = "bj_cuda_sum_squares";
  BJ_CHECK(out != nullptr && x != nullptr, "bj_cuda_sum_squares", "out or x is NULL");
  BJ_CHECK(n > 0, "bj_cuda_sum_squares", "n must be > 0 (got %lld)", (long long)n);
  int64_t g = (n + 4 * kSsThreads - 1) / (4 * kSsThreads);
  const int G = (int)(g < kSsMaxBlocks ? g : kSsMaxBlocks);
  const int slot = (int)(g_ss_next_slot.fetch_add(1, std::memory_order_relaxed) % kSlots);
  auto k1 = &k_sum_squares_partial;
  BJ_LAUNCH(k1, (unsigned)G, kSsThreads, 0, bjc::as_stream(stream), x, n,
            bjc::aligned16(x) ? 1 : 0, slot);
  BJ_TRY(bjc::check_launch(op));
  auto k2 = &k_sum_squares_final;
  BJ_LAUNCH(k2, 1u, kSsMaxBlocks, 0, bjc::as_stream(stream), out, G, slot);
  return bjc::check_launch(op);
}

extern "C" int bj_cuda_clip_scale(float* scale,          // (1), device
                                  const float* norm_sq,  // (1), device
                                  float max_norm, void* stream) {
  BJ_CHECK(scale != nullptr && norm_sq != nullptr, "bj_cuda_clip_scale",
           "scale or norm_sq is NULL");
  BJ_CHECK(max_norm > 0.0f, "bj_cuda_clip_scale", "max_norm must be > 0 (got %g)",
           (double)max_norm);
  auto kern = &k_clip_scale;
  BJ_LAUNCH(kern, 1u, 1u, 0, bjc::as_stream(stream), scale, norm_sq, max_norm);
  return bjc::check_launch("bj_cuda_clip_scale");
}

extern "C" int bj_cuda_adamw(float* p,         // (n), updated in place
                             uint16_t* p_low,  // (n) bf16 of the updated p, or NULL
                             const float* g,   // (n)
                             float* m,         // (n), first moment, updated
                             float* v,         // (n), second moment, updated
                             int64_t n, int64_t decay_begin, int64_t decay_end, float lr,
                             float beta1, float beta2, float eps, float wd, int step,
                             const bj_step_scalars* sc,  // (1) device: lr and step, or NULL
                             const float* grad_scale,    // (1) device, or NULL = 1
                             void* stream) {
  BJ_CHECK(p != nullptr && g != nullptr && m != nullptr && v != nullptr, "bj_cuda_adamw",
           "p, g, m or v is NULL");
  BJ_CHECK(n > 0, "bj_cuda_adamw", "n must be > 0 (got %lld)", (long long)n);
  BJ_CHECK(0 <= decay_begin && decay_begin <= decay_end && decay_end <= n, "bj_cuda_adamw",
           "need 0 <= decay_begin <= decay_end <= n (got %lld, %lld, n = %lld)",
           (long long)decay_begin, (long long)decay_end, (long long)n);
  // lr and step are checked when they are the arguments; sc's are the caller's (bertj.h)
  BJ_CHECK(sc != nullptr || lr >= 0.0f, "bj_cuda_adamw", "lr must be >= 0 (got %g)", (double)lr);
  BJ_CHECK(beta1 >= 0.0f && beta1 < 1.0f, "bj_cuda_adamw", "beta1 must be in [0, 1) (got %g)",
           (double)beta1);
  BJ_CHECK(beta2 >= 0.0f && beta2 < 1.0f, "bj_cuda_adamw", "beta2 must be in [0, 1) (got %g)",
           (double)beta2);
  BJ_CHECK(eps >= 0.0f, "bj_cuda_adamw", "eps must be >= 0 (got %g)", (double)eps);
  BJ_CHECK(wd >= 0.0f, "bj_cuda_adamw", "wd must be >= 0 (got %g)", (double)wd);
  BJ_CHECK(sc != nullptr || step >= 1, "bj_cuda_adamw", "step must be >= 1 (got %d)", step);
  AdamWOp op{p, p_low, g, m, v, grad_scale, decay_begin, decay_end, beta1, beta2, eps, wd, sc,
             0.0f, 0.0f, 0.0f};
  if (sc == nullptr) op.set_scalars(lr, step);  // else each thread does (prepare)
  const bool vec = bjc::aligned16(p) && bjc::aligned16(g) && bjc::aligned16(m) &&
                   bjc::aligned16(v);
  return bjc::launch_elementwise("bj_cuda_adamw", op, n, vec, stream);
}
