// Emulation of the WMMA API of CUDA's <mma.h> (nvcuda::wmma) for BJ_CUDA_EMU builds: bf16
// 16x16x16 fragments with fp32 accumulators (also fp32 / bf16 accumulator loads and stores).
//
// On a GPU a fragment is spread over the 32 threads of a warp in an unspecified layout. Here
// every emulated thread holds the WHOLE tile (num_elements = 256, row-major in x[]), and
// load/store/mma work on the whole tile: all threads of a warp compute identical fragments and
// store identical values (benign). Kernels must therefore use fragments only through these
// calls and uniform element-wise loops over x[0 .. num_elements); code that relies on the
// device's per-thread element layout is not portable anyway.
// The checks of the real API's preconditions are enforced (abort with a message): pointers
// 32-byte aligned, ldm a multiple of 16 bytes.
#ifndef BJ_EMU_MMA_H
#define BJ_EMU_MMA_H

#ifndef BJ_CUDA_EMU
#error "native/tests/emu/mma.h is the CPU emulation; real builds use CUDA's header"
#endif

#include <cstdint>
#include <type_traits>

#include "cuda_bf16.h"
#include "cuda_runtime.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulation has 16x16x16 tiles only");
  static constexpr int num_elements = 256;
  T x[num_elements];  // element (r, c) at x[r * 16 + c] (matrix_b: (k, n) at x[k * 16 + n])
};

namespace detail {
inline float to_f(float v) { return v; }
inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T> inline T from_f(float v);
template <> inline float from_f<float>(float v) { return v; }
template <> inline __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <class T>
inline void check(const T* p, unsigned ldm, const char* what) {
  if ((reinterpret_cast<uintptr_t>(p) & 31u) != 0) ::emu::die(what);
  if ((ldm * sizeof(T)) % 16 != 0) ::emu::die(what);
}
// element (r, c) of a 16x16 tile at p, row-major or column-major with leading dimension ldm
template <class T>
inline T at(const T* p, unsigned ldm, int r, int c, bool col) {
  return col ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c];
}
}  // namespace detail

template <class Use, class T, class L>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, L>& f, T v) {
  for (int i = 0; i < 256; ++i) f.x[i] = v;
}

// matrix_a / matrix_b with the layout in the type
template <class Use, class T, class L>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, L>& f, const T* p, unsigned ldm) {
  static_assert(std::is_same<L, row_major>::value || std::is_same<L, col_major>::value,
                "matrix_a / matrix_b fragments carry their layout");
  detail::check(p, ldm, "wmma::load_matrix_sync: pointer not 32-byte aligned or bad ldm");
  const bool col = std::is_same<L, col_major>::value;
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = detail::at(p, ldm, r, c, col);
}
// accumulator with the layout as an argument
template <class T>
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, T, void>& f, const T* p,
                             unsigned ldm, layout_t layout) {
  detail::check(p, ldm, "wmma::load_matrix_sync: pointer not 32-byte aligned or bad ldm");
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c)
      f.x[r * 16 + c] = detail::at(p, ldm, r, c, layout == mem_col_major);
}
template <class T>
inline void store_matrix_sync(T* p, const fragment<accumulator, 16, 16, 16, T, void>& f,
                              unsigned ldm, layout_t layout) {
  detail::check(p, ldm, "wmma::store_matrix_sync: pointer not 32-byte aligned or bad ldm");
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) {
      T* q = layout == mem_col_major ? p + (size_t)c * ldm + r : p + (size_t)r * ldm + c;
      *q = f.x[r * 16 + c];
    }
}

// d = a b + c, products summed in fp32 in k order, then c added
template <class TA, class LA, class LB, class TC>
inline void mma_sync(fragment<accumulator, 16, 16, 16, TC, void>& d,
                     const fragment<matrix_a, 16, 16, 16, TA, LA>& a,
                     const fragment<matrix_b, 16, 16, 16, TA, LB>& b,
                     const fragment<accumulator, 16, 16, 16, TC, void>& c) {
  float out[256];
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 16; ++n) {
      float s = 0.0f;
      for (int k = 0; k < 16; ++k)
        s += detail::to_f(a.x[r * 16 + k]) * detail::to_f(b.x[k * 16 + n]);
      out[r * 16 + n] = s + detail::to_f(c.x[r * 16 + n]);
    }
  for (int i = 0; i < 256; ++i) d.x[i] = detail::from_f<TC>(out[i]);
}

}  // namespace wmma
}  // namespace nvcuda

#endif
