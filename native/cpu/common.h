// Shared helpers of the CPU kernels: argument checks, the thread-local error message, and the
// vector building blocks of the hot loops (exp, erfc, batched Philox draws, ISA dispatch).
#ifndef BERTJ_CPU_COMMON_H
#define BERTJ_CPU_COMMON_H

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "bertj.h"
#include "bertj_bf16.h"
#include "bertj_philox.h"

// bj_step_scalars is 16 bytes with this layout: the Java side packs it as 4 int32 (StepScalars).
static_assert(sizeof(bj_step_scalars) == 16 && offsetof(bj_step_scalars, lr) == 8 &&
                  offsetof(bj_step_scalars, step) == 12,
              "bj_step_scalars layout");

namespace bj {
// Work below which an elementwise loop stays on the calling thread (OpenMP `if` clause): a
// fork/join costs more than touching a few thousand floats.
constexpr int64_t kParallelMin = 1 << 14;
// Column block of the deterministic column reductions (dgamma, dbeta, dbias, embedding grads):
// each block is owned by one thread, which walks the rows in order, so the result has the same
// bits for any thread count. 32 floats = one 128-byte stretch of a row.
constexpr int kColBlock = 32;

// Records a message for bj_cpu_last_error() and returns `code`.
int fail(int code, const char* fmt, ...);

// The size and probability checks every attention op (fp32 and tensor-core, forward and
// backward) starts with: BJ_OK, or BJ_ERR_INVALID naming `op`.
inline int check_attention_args(const char* op, int B, int T, int NH, int D, float p) {
  if (!(B > 0 && T > 0 && NH > 0 && D > 0))
    return fail(BJ_ERR_INVALID, "%s: B, T, NH, D must be > 0 (got %d, %d, %d, %d)", op, B, T, NH,
                D);
  if (!(p >= 0.0f && p < 1.0f))
    return fail(BJ_ERR_INVALID, "%s: p must be in [0, 1) (got %g)", op, (double)p);
  return BJ_OK;
}

// out[i] = bj_f32_to_bf16_bits(x[i]) for i in [0, n), on the calling thread: the loop of
// bj_cpu_to_bf16, also used by the ops with a bf16 side output (out_low, dy_low, dpre_low,
// dqkv_low, p_low) on a row or chunk they have just written, so that the copy has the same bits
// as to_bf16 of the fp32 output.
inline void to_bf16_span(uint16_t* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = bj_f32_to_bf16_bits(x[i]);
}

// ISA dispatch. The library is compiled for x86-64-v2 (SSE4.2); the hot kernels are compiled a
// second time inside a function marked BJ_TARGET_AVX2 (AVX2 + FMA) and picked at run time when
// the CPU has both. Setting the environment variable BERTJ_CPU_NO_AVX2 (to anything) forces the
// SSE path (for tests). Both paths are deterministic; they may differ from each other in the last
// bits (FMA contraction), never from one call to the next on the same machine.
bool use_avx2();
}  // namespace bj

#if defined(__x86_64__) || defined(__i386__)
#define BJ_X86 1
#define BJ_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define BJ_X86 0
#define BJ_TARGET_AVX2
#endif
// Helpers used by the dispatched kernels are always inlined, so that they are compiled for the
// ISA of the kernel that calls them.
#define BJ_INLINE inline __attribute__((always_inline))

// Returns BJ_ERR_INVALID from the calling function, with a message naming the op, when cond fails.
#define BJ_CHECK(cond, op, ...)                                                 \
  do {                                                                          \
    if (!(cond)) return bj::fail(BJ_ERR_INVALID, op ": " __VA_ARGS__);          \
  } while (0)

// ---- W-lane vectors (GCC vector extensions) ----
// The kernels are templates on the lane count W: W = 8 (256-bit) inside the AVX2 kernels, W = 4
// (SSE) in the baseline ones. Vector values are only passed to always-inline helpers, so no real
// function boundary sees them (hence no ABI concern; -Wpsabi is silenced below).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
namespace bj {
template <int W> struct Vec;
template <> struct Vec<4> {
  typedef float f __attribute__((vector_size(16)));
  typedef int32_t i __attribute__((vector_size(16)));
  typedef float fu __attribute__((vector_size(16), aligned(4), may_alias));  // unaligned access
};
template <> struct Vec<8> {
  typedef float f __attribute__((vector_size(32)));
  typedef int32_t i __attribute__((vector_size(32)));
  typedef float fu __attribute__((vector_size(32), aligned(4), may_alias));
};

template <int W> BJ_INLINE typename Vec<W>::f vload(const float* p) {
  return *(const typename Vec<W>::fu*)p;
}
template <int W> BJ_INLINE void vstore(float* p, const typename Vec<W>::f& v) {
  *(typename Vec<W>::fu*)p = v;
}
template <int W> BJ_INLINE typename Vec<W>::f vsplat(float x) {
  typename Vec<W>::f v;
  for (int l = 0; l < W; ++l) v[l] = x;
  return v;
}
template <int W> BJ_INLINE typename Vec<W>::f vmax(const typename Vec<W>::f& a,
                                                 const typename Vec<W>::f& b) {
  return a > b ? a : b;
}
// Lane sum / max in a fixed order (pairwise halves), so the bits depend on W only.
template <int W> BJ_INLINE float vhsum(const typename Vec<W>::f& v) {
  float a[W];
  for (int l = 0; l < W; ++l) a[l] = v[l];
  for (int h = W / 2; h >= 1; h /= 2)
    for (int l = 0; l < h; ++l) a[l] = a[l] + a[l + h];
  return a[0];
}
template <int W> BJ_INLINE float vhmax(const typename Vec<W>::f& v) {
  float m = v[0];
  for (int l = 1; l < W; ++l) m = v[l] > m ? v[l] : m;
  return m;
}

// expf, Cephes-style: 2^n * exp(r), |r| <= ln2/2, degree-5 polynomial; max relative error about
// 1.4 ulp. Returns 0 for x < -87.3365 (no subnormal results), +inf for x > 88.376, NaN for NaN.
template <int W> BJ_INLINE typename Vec<W>::f vexp(const typename Vec<W>::f& x) {
  typedef typename Vec<W>::f F;
  typedef typename Vec<W>::i I;
  const F lo = vsplat<W>(-87.33654f), hi = vsplat<W>(88.3762626647949f);
  F xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  const F magic = vsplat<W>(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const F kf = xc * 1.44269504088896341f + magic;
  const F n = kf - magic;
  F r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  F p = vsplat<W>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const F y = p * (r * r) + r + 1.0f;
  const I e = ((I)kf - (I)magic + 127) << 23;  // 2^n as float bits
  F res = y * (F)e;
  res = x < lo ? vsplat<W>(0.0f) : res;
  res = x > hi ? vsplat<W>(__builtin_inff()) : res;
  return res;
}

// erfc(z) for z >= 0 (Numerical Recipes' erfcc, a Chebyshev fit of erfc(z) exp(z^2)): fractional
// error < 1.2e-7 in exact arithmetic, within a few 1e-7 in fp32 for z < 4 (the exp(-z^2)
// argument rounding grows it to ~4e-6 at z = 8, where erfc is 1e-29). Relative accuracy in the
// tail, so 1 + erf(-z) = erfc(z) keeps its digits where 1 + erf would cancel.
template <int W> BJ_INLINE typename Vec<W>::f verfc_pos(const typename Vec<W>::f& z) {
  typedef typename Vec<W>::f F;
  const F t = 1.0f / (1.0f + 0.5f * z);
  F p = vsplat<W>(0.17087277f);
  p = p * t + -0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t + -1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t + -0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t + -1.26551223f;
  return t * vexp<W>(p - z * z);
}
}  // namespace bj
#pragma GCC diagnostic pop

// ---- batched Philox draws ----
namespace bj {
// u[j] = bj_dropout_uniform(seed, idx0 + j) for j in [0, n): the same bits as the scalar
// function, with the 10 Philox rounds of 4 (SSE4.1) or 8 (AVX2; only when use_avx2()) counters
// on vector lanes. Out-of-line (common.cpp): one call per row of draws.
void philox_uniforms_sse(float* u, uint64_t seed, uint64_t idx0, int64_t n);
void philox_uniforms_avx2(float* u, uint64_t seed, uint64_t idx0, int64_t n);
template <int W> BJ_INLINE void philox_uniforms(float* u, uint64_t seed, uint64_t idx0, int64_t n) {
  if constexpr (W == 8) philox_uniforms_avx2(u, seed, idx0, n);
  else philox_uniforms_sse(u, seed, idx0, n);
}
}  // namespace bj

#endif
