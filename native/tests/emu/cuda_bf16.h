// Emulation of the part of CUDA's <cuda_bf16.h> that bertj's kernels use (BJ_CUDA_EMU builds
// only: native/tests/emu is first on the include path there; nvcc builds get the real header).
// __nv_bfloat16 holds the bf16 bit pattern; conversions round to nearest even like the device's
// cvt.rn.bf16.f32 (bertj_bf16.h).
#ifndef BJ_EMU_CUDA_BF16_H
#define BJ_EMU_CUDA_BF16_H

#ifndef BJ_CUDA_EMU
#error "native/tests/emu/cuda_bf16.h is the CPU emulation; real builds use CUDA's header"
#endif

#include <cstdint>

#include "bertj_bf16.h"

struct __nv_bfloat16 {
  uint16_t bits;
};
struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x, y;
};

inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{bj_f32_to_bf16_bits(f)}; }
inline float __bfloat162float(__nv_bfloat16 h) { return bj_bf16_bits_to_f32(h.bits); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
  return __nv_bfloat162{__float2bfloat16_rn(a), __float2bfloat16_rn(b)};
}

#endif
