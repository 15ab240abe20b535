// Thread-local error message, backend info, ISA dispatch and the batched Philox draws of the CPU
// library.
#include "common.h"

#include <omp.h>

#include <cstdlib>

#if BJ_X86
#include <immintrin.h>
#endif

namespace {
thread_local char g_last_error[512] = "";

#if BJ_X86
// Philox-4x32-10 on vector lanes: G vectors of 4 (SSE4.1) or 8 (AVX2) consecutive counters (element
// groups, bertj_philox.h) per call, interleaved so that the rounds' multiply latencies overlap; each
// lane's 4 output words are the uniforms of its group's 4 elements (a 4 x 4 transpose per 4 lanes
// before the store). The 32x32 -> 64 products come from pmuludq on the even lanes and on the odd
// lanes shifted down, and are blended back into 32-bit hi / lo words.
// philox_sse<G>: groups g0 .. g0 + 4G - 1 -> u[0 .. 16G).
template <int G>
inline void philox_sse(float* u, const uint32_t* rk, uint64_t g0) {
  __m128i c0[G], c1[G], c2[G], c3[G];
  for (int g = 0; g < G; ++g) {
    alignas(16) uint32_t lo[4], hi[4];
    for (int l = 0; l < 4; ++l) {
      const uint64_t idx = g0 + (uint64_t)(4 * g + l);
      lo[l] = (uint32_t)idx;
      hi[l] = (uint32_t)(idx >> 32);
    }
    c0[g] = _mm_load_si128((const __m128i*)lo);
    c1[g] = _mm_load_si128((const __m128i*)hi);
    c2[g] = c3[g] = _mm_setzero_si128();
  }
  const __m128i m0 = _mm_set1_epi32((int)0xD2511F53u), m1 = _mm_set1_epi32((int)0xCD9E8D57u);
  for (int r = 0; r < 10; ++r) {
    const __m128i k0 = _mm_set1_epi32((int)rk[2 * r]), k1 = _mm_set1_epi32((int)rk[2 * r + 1]);
    for (int g = 0; g < G; ++g) {
      const __m128i p0e = _mm_mul_epu32(c0[g], m0);
      const __m128i p0o = _mm_mul_epu32(_mm_srli_epi64(c0[g], 32), m0);
      const __m128i p1e = _mm_mul_epu32(c2[g], m1);
      const __m128i p1o = _mm_mul_epu32(_mm_srli_epi64(c2[g], 32), m1);
      const __m128i hi0 = _mm_blend_epi16(_mm_srli_epi64(p0e, 32), p0o, 0xCC);
      const __m128i lo0 = _mm_blend_epi16(p0e, _mm_slli_epi64(p0o, 32), 0xCC);
      const __m128i hi1 = _mm_blend_epi16(_mm_srli_epi64(p1e, 32), p1o, 0xCC);
      const __m128i lo1 = _mm_blend_epi16(p1e, _mm_slli_epi64(p1o, 32), 0xCC);
      c0[g] = _mm_xor_si128(_mm_xor_si128(hi1, c1[g]), k0);
      c2[g] = _mm_xor_si128(_mm_xor_si128(hi0, c3[g]), k1);
      c1[g] = lo1;
      c3[g] = lo0;
    }
  }
  const __m128 sc = _mm_set1_ps(1.0f / 16777216.0f);
  for (int g = 0; g < G; ++g) {
    __m128 f0 = _mm_mul_ps(_mm_cvtepi32_ps(_mm_srli_epi32(c0[g], 8)), sc);
    __m128 f1 = _mm_mul_ps(_mm_cvtepi32_ps(_mm_srli_epi32(c1[g], 8)), sc);
    __m128 f2 = _mm_mul_ps(_mm_cvtepi32_ps(_mm_srli_epi32(c2[g], 8)), sc);
    __m128 f3 = _mm_mul_ps(_mm_cvtepi32_ps(_mm_srli_epi32(c3[g], 8)), sc);
    _MM_TRANSPOSE4_PS(f0, f1, f2, f3);  // f_l = the 4 words of lane (group) l
    _mm_storeu_ps(u + 16 * g, f0);
    _mm_storeu_ps(u + 16 * g + 4, f1);
    _mm_storeu_ps(u + 16 * g + 8, f2);
    _mm_storeu_ps(u + 16 * g + 12, f3);
  }
}

// philox_avx2<G>: groups g0 .. g0 + 8G - 1 -> u[0 .. 32G).
template <int G>
BJ_TARGET_AVX2 inline void philox_avx2(float* u, const uint32_t* rk, uint64_t g0) {
  __m256i c0[G], c1[G], c2[G], c3[G];
  for (int g = 0; g < G; ++g) {
    alignas(32) uint32_t lo[8], hi[8];
    for (int l = 0; l < 8; ++l) {
      const uint64_t idx = g0 + (uint64_t)(8 * g + l);
      lo[l] = (uint32_t)idx;
      hi[l] = (uint32_t)(idx >> 32);
    }
    c0[g] = _mm256_load_si256((const __m256i*)lo);
    c1[g] = _mm256_load_si256((const __m256i*)hi);
    c2[g] = c3[g] = _mm256_setzero_si256();
  }
  const __m256i m0 = _mm256_set1_epi32((int)0xD2511F53u);
  const __m256i m1 = _mm256_set1_epi32((int)0xCD9E8D57u);
  for (int r = 0; r < 10; ++r) {
    const __m256i k0 = _mm256_set1_epi32((int)rk[2 * r]);
    const __m256i k1 = _mm256_set1_epi32((int)rk[2 * r + 1]);
    for (int g = 0; g < G; ++g) {
      const __m256i p0e = _mm256_mul_epu32(c0[g], m0);
      const __m256i p0o = _mm256_mul_epu32(_mm256_srli_epi64(c0[g], 32), m0);
      const __m256i p1e = _mm256_mul_epu32(c2[g], m1);
      const __m256i p1o = _mm256_mul_epu32(_mm256_srli_epi64(c2[g], 32), m1);
      const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(p0e, 32), p0o, 0xAA);
      const __m256i lo0 = _mm256_blend_epi32(p0e, _mm256_slli_epi64(p0o, 32), 0xAA);
      const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(p1e, 32), p1o, 0xAA);
      const __m256i lo1 = _mm256_blend_epi32(p1e, _mm256_slli_epi64(p1o, 32), 0xAA);
      c0[g] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[g]), k0);
      c2[g] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[g]), k1);
      c1[g] = lo1;
      c3[g] = lo0;
    }
  }
  const __m256 sc = _mm256_set1_ps(1.0f / 16777216.0f);
  for (int g = 0; g < G; ++g) {
    const __m256 f0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(c0[g], 8)), sc);
    const __m256 f1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(c1[g], 8)), sc);
    const __m256 f2 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(c2[g], 8)), sc);
    const __m256 f3 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(c3[g], 8)), sc);
    // 4 x 4 transposes inside each 128-bit half: r_l = lanes l | l + 4, then halves regrouped.
    const __m256 t0 = _mm256_unpacklo_ps(f0, f1), t1 = _mm256_unpackhi_ps(f0, f1);
    const __m256 t2 = _mm256_unpacklo_ps(f2, f3), t3 = _mm256_unpackhi_ps(f2, f3);
    const __m256 r0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 r1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 r2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 r3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    _mm256_storeu_ps(u + 32 * g, _mm256_permute2f128_ps(r0, r1, 0x20));
    _mm256_storeu_ps(u + 32 * g + 8, _mm256_permute2f128_ps(r2, r3, 0x20));
    _mm256_storeu_ps(u + 32 * g + 16, _mm256_permute2f128_ps(r0, r1, 0x31));
    _mm256_storeu_ps(u + 32 * g + 24, _mm256_permute2f128_ps(r2, r3, 0x31));
  }
}

// The 10 round keys (k0, k1) of seed.
inline void round_keys(uint32_t* rk, uint64_t seed) {
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    rk[2 * r] = k0;
    rk[2 * r + 1] = k1;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}
#endif
}  // namespace

namespace bj {
int fail(int code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
  va_end(ap);
  return code;
}

bool use_avx2() {
#if BJ_X86
  static const bool ok = std::getenv("BERTJ_CPU_NO_AVX2") == nullptr &&
                         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
#else
  return false;
#endif
}

// Elements before the first whole group of 4 (idx0 not a multiple of 4): from one scalar call.
// Returns how many were written.
static int64_t philox_head(float* u, uint64_t seed, uint64_t idx0, int64_t n) {
  const int64_t head = (int64_t)((4u - (unsigned)(idx0 & 3u)) & 3u);
  if (head == 0) return 0;
  float t[4];
  bj_dropout_uniform4(seed, idx0 >> 2, t);
  int64_t l = 0;
  for (; l < head && l < n; ++l) u[l] = t[(idx0 & 3u) + (uint64_t)l];
  return l;
}

void philox_uniforms_sse(float* u, uint64_t seed, uint64_t idx0, int64_t n) {
#if BJ_X86
  uint32_t rk[20];
  round_keys(rk, seed);
  int64_t j = philox_head(u, seed, idx0, n);
  for (; j + 64 <= n; j += 64) philox_sse<4>(u + j, rk, (idx0 + (uint64_t)j) >> 2);
  for (; j + 16 <= n; j += 16) philox_sse<1>(u + j, rk, (idx0 + (uint64_t)j) >> 2);
  if (j < n) {
    float t[16];
    philox_sse<1>(t, rk, (idx0 + (uint64_t)j) >> 2);
    for (int l = 0; j + l < n; ++l) u[j + l] = t[l];
  }
#else
  for (int64_t j = 0; j < n; ++j) u[j] = bj_dropout_uniform(seed, idx0 + (uint64_t)j);
#endif
}

#if BJ_X86
BJ_TARGET_AVX2 void philox_uniforms_avx2(float* u, uint64_t seed, uint64_t idx0, int64_t n) {
  uint32_t rk[20];
  round_keys(rk, seed);
  int64_t j = philox_head(u, seed, idx0, n);
  for (; j + 128 <= n; j += 128) philox_avx2<4>(u + j, rk, (idx0 + (uint64_t)j) >> 2);
  for (; j + 32 <= n; j += 32) philox_avx2<1>(u + j, rk, (idx0 + (uint64_t)j) >> 2);
  if (j < n) {
    float t[32];
    philox_avx2<1>(t, rk, (idx0 + (uint64_t)j) >> 2);
    for (int l = 0; j + l < n; ++l) u[j + l] = t[l];
  }
}
#else
void philox_uniforms_avx2(float* u, uint64_t seed, uint64_t idx0, int64_t n) {
  philox_uniforms_sse(u, seed, idx0, n);
}
#endif
}  // namespace bj

extern "C" const char* bj_cpu_last_error(void) { return g_last_error; }

extern "C" int bj_cpu_num_threads(void) { return omp_get_max_threads(); }
