// Shared helpers of the CUDA kernels: error reporting, argument checks, launch helpers, warp
// reductions, and two generic kernels (elementwise with float4, deterministic column reduction).
//
// Every op launches on the caller's stream (void* -> cudaStream_t), checks cudaGetLastError after
// each launch and never synchronizes. Argument checks mirror the CPU backend (BJ_ERR_INVALID
// naming the op).
//
// Scratch (the one exception to "allocates nothing"): ops whose parameter gradients are column
// sums fused into a row pass (layernorm_backward, bias_gelu_backward with dbias, bias_backward)
// write per-block partial sums into a scratch buffer and reduce them with launch_sum_partials,
// in a fixed order (deterministic, no float atomics). scratch_for() hands out one buffer of
// kScratchBytes (16 MiB) per (device, stream), cudaMalloc'ed on first use and never freed before
// the process ends. Distinct streams get distinct buffers, so concurrent streams do not race; calls
// on one stream are ordered by the stream. No allocation happens during CUDA graph capture: if the
// capturing stream has no buffer yet, scratch_for() returns null and the op falls back to its
// scratch-free path (k_colreduce; also deterministic, slower). Warm up each stream once outside
// capture to get the fast path in a graph.
//
// The kernels also compile as plain C++ against native/tests/emu/cuda_runtime.h (BJ_CUDA_EMU), a
// small CPU emulation used to test the index math on machines without a GPU; hence the
// BJ_LAUNCH / BJ_DYN_SMEM macros instead of raw <<<>>> and extern __shared__.
#ifndef BERTJ_CUDA_COMMON_CUH
#define BERTJ_CUDA_COMMON_CUH

#include <cuda_runtime.h>

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "bertj.h"
#include "bertj_bf16.h"
#include "bertj_philox.h"

#ifdef BJ_CUDA_EMU
#define BJ_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::emu::launch(kernel, dim3(grid), dim3(block), (size_t)(smem), __VA_ARGS__)
#define BJ_DYN_SMEM(T, name) T* name = reinterpret_cast<T*>(::emu::dyn_smem())
#else
// `kernel` may be a function pointer variable (templated kernels: take &k<...> first).
#define BJ_LAUNCH(kernel, grid, block, smem, stream, ...) \
  kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#define BJ_DYN_SMEM(T, name)                                 \
  extern __shared__ __align__(16) unsigned char bj_smem_raw[]; \
  T* name = reinterpret_cast<T*>(bj_smem_raw)
#endif

// bj_step_scalars is 16 bytes with this layout: the Java side packs it as 4 int32 (StepScalars).
static_assert(sizeof(bj_step_scalars) == 16 && offsetof(bj_step_scalars, lr) == 8 &&
                  offsetof(bj_step_scalars, step) == 12,
              "bj_step_scalars layout");

namespace bjc {

// Records a message for bj_cuda_last_error() and returns `code`.
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
// cudaGetLastError after a launch: BJ_OK, or BJ_ERR_CUDA with "<op>: <cuda error string>".
int check_launch(const char* op);
// Lets `kernel` use `bytes` of dynamic shared memory (opt-in above 48 KiB), once per device.
// Returns BJ_OK or BJ_ERR_CUDA naming `op`.
int allow_smem(const void* kernel, int bytes, unsigned* done_mask, const char* op);

// Streaming multiprocessors of the current device (cached per device; 1 if unknown).
int sm_count();

// The scratch buffer of (current device, stream), kScratchBytes long, or nullptr when there is
// none and none may be allocated now (stream capture, allocation failure; the CUDA error is
// cleared). See the header comment.
constexpr int64_t kScratchBytes = 16LL << 20;
float* scratch_for(void* stream);

inline cudaStream_t as_stream(void* s) { return reinterpret_cast<cudaStream_t>(s); }
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
inline bool aligned8(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 7u) == 0; }

// ---- bf16 side outputs (mixed precision) ----
// Some ops also write the bf16 copy of an fp32 output (the next GEMM's input or output gradient)
// in the pass that produces it: bj_f32_to_bf16_bits of each value, the same bits as to_bf16 of
// the fp32 output. store_bf16(p, v) writes the bf16 bits of v at p; for a float4 (4 consecutive
// elements) one 8-byte uint2 store when p is 8-byte aligned (the elements of a float4 start at a
// multiple of 4, so that holds for every float4 of a launch or none), else 4 scalar stores.
__device__ __forceinline__ void store_bf16(uint16_t* p, float v) { *p = bj_f32_to_bf16_bits(v); }
__device__ __forceinline__ void store_bf16(uint16_t* p, const float4& v) {
  if ((reinterpret_cast<uintptr_t>(p) & 7u) == 0) {
    uint2 o;
    o.x = (uint32_t)bj_f32_to_bf16_bits(v.x) | ((uint32_t)bj_f32_to_bf16_bits(v.y) << 16);
    o.y = (uint32_t)bj_f32_to_bf16_bits(v.z) | ((uint32_t)bj_f32_to_bf16_bits(v.w) << 16);
    *reinterpret_cast<uint2*>(p) = o;
  } else {
    p[0] = bj_f32_to_bf16_bits(v.x);
    p[1] = bj_f32_to_bf16_bits(v.y);
    p[2] = bj_f32_to_bf16_bits(v.z);
    p[3] = bj_f32_to_bf16_bits(v.w);
  }
}
// out (n) = bf16 bits of x (n) with to_bf16's kernel (memory.cu), errors naming `op`: the
// bf16 side output of a kernel variant that does not write it itself.
int launch_to_bf16(const char* op, uint16_t* out, const float* x, int64_t n, void* stream);

// Blocks of `threads` for `work` items, capped (the kernels loop grid-stride beyond the cap).
inline unsigned blocks_for(int64_t work, int threads) {
#ifdef BJ_CUDA_EMU
  const int64_t cap = 7;  // small grids in the emulator also exercise the grid-stride loops
#else
  const int64_t cap = 1 << 16;
#endif
  int64_t b = (work + threads - 1) / threads;
  if (b < 1) b = 1;
  return (unsigned)(b < cap ? b : cap);
}

constexpr unsigned kFull = 0xffffffffu;

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
template <class T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const T w = __shfl_xor_sync(kFull, v, o);
    v = w > v ? w : v;
  }
  return v;
}

// r = i / C and c = i % C, in 32-bit arithmetic when i fits (64-bit division is slow).
__device__ __forceinline__ void row_col(int64_t i, int C, int64_t& r, int& c) {
  if (i <= 0x7fffffffLL) {
    const unsigned q = (unsigned)i / (unsigned)C;
    r = q;
    c = (int)((unsigned)i - q * (unsigned)C);
  } else {
    r = i / C;
    c = (int)(i - r * C);
  }
}

// ---- per-step scalars (bertj.h, bj_step_scalars): device memory, read by the kernels ----
// The dropout seed of a kernel: sc->seed when sc is given, else the launch argument. Called once
// at kernel start, before the first draw.
__device__ __forceinline__ uint64_t step_seed(const bj_step_scalars* sc, uint64_t seed) {
  return sc != nullptr ? sc->seed : seed;
}

// Calls op.prepare() when Op has one (ops reading per-step scalars: once per thread, before the
// elements); otherwise nothing.
template <class Op>
__device__ __forceinline__ auto prepare_op(Op& op, int) -> decltype(op.prepare()) {
  return op.prepare();
}
template <class Op>
__device__ __forceinline__ void prepare_op(Op&, long) {}

// ---- elementwise: Op has __device__ one(i) for element i and vec4(i4) for elements
// [4*i4, 4*i4 + 4) (float4 access, used only when every pointer is 16-byte aligned), and
// optionally prepare() (see prepare_op). ----
template <class Op>
__device__ __forceinline__ void elementwise_loop(Op& op, int64_t n, int vec) {
  prepare_op(op, 0);
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t t0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if (vec) {
    const int64_t n4 = n >> 2;
    for (int64_t i = t0; i < n4; i += stride) op.vec4(i);
    done = n4 << 2;
  }
  for (int64_t i = done + t0; i < n; i += stride) op.one(i);
}
template <class Op>
__global__ void __launch_bounds__(256) k_elementwise(Op op, int64_t n, int vec) {
  elementwise_loop(op, n, vec);
}
// The same with at most 32 registers (8 blocks of 256 threads per SM: full occupancy), for ops
// whose register count would otherwise rise past 32 (bias_gelu_forward's variants without the
// fp32 outputs: 37 to 39 registers, so 6 blocks per SM; none spills at 32).
template <class Op>
__global__ void __launch_bounds__(256, 8) k_elementwise_occ(Op op, int64_t n, int vec) {
  elementwise_loop(op, n, vec);
}

// kFullOccupancy: k_elementwise_occ instead of k_elementwise.
template <bool kFullOccupancy = false, class Op>
int launch_elementwise(const char* name, const Op& op, int64_t n, bool vec, void* stream) {
  const int64_t work = vec ? (n + 3) / 4 : n;
  void (*kern)(Op, int64_t, int);
  if constexpr (kFullOccupancy) kern = &k_elementwise_occ<Op>;  // (only the one used is built)
  else kern = &k_elementwise<Op>;
  BJ_LAUNCH(kern, blocks_for(work, 256), 256, 0, as_stream(stream), op, n, vec ? 1 : 0);
  return check_launch(name);
}

// ---- deterministic column reduction over the rows of an (N, C) matrix ----
// Block = 8 columns x 128 row lanes (1024 threads; a warp covers 4 rows x 8 columns = one
// 32-byte sector per row). Lane ty accumulates rows ty, ty + 128, ... in order (in double), then a
// fixed tree over the 128 lanes. So each column's sum has the same bits on every run. F provides
//   __device__ void row(int r, int c, double (&acc)[NOUT])  (may also write elementwise outputs)
//   __device__ void finish(int c, const double (&sum)[NOUT])
// gridDim.x = ceil(C / 8); gridDim.y is free for the functor (e.g. a token type).
constexpr int kColsPerBlock = 8;
constexpr int kRowLanes = 128;

template <int NOUT, class F>
__global__ void __launch_bounds__(kColsPerBlock* kRowLanes) k_colreduce(F f, int N, int C) {
  __shared__ double sm[NOUT][kRowLanes][kColsPerBlock + 1];
  const int tx = threadIdx.x % kColsPerBlock, ty = threadIdx.x / kColsPerBlock;
  const int c = blockIdx.x * kColsPerBlock + tx;
  double acc[NOUT];
#pragma unroll
  for (int k = 0; k < NOUT; ++k) acc[k] = 0.0;
  if (c < C) {
#pragma unroll 4
    for (int r = ty; r < N; r += kRowLanes) f.row(r, c, acc);
  }
#pragma unroll
  for (int k = 0; k < NOUT; ++k) sm[k][ty][tx] = acc[k];
  __syncthreads();
  for (int s = kRowLanes / 2; s > 0; s >>= 1) {
    if (ty < s) {
#pragma unroll
      for (int k = 0; k < NOUT; ++k) sm[k][ty][tx] += sm[k][ty + s][tx];
    }
    __syncthreads();
  }
  if (ty == 0 && c < C) {
    double sum[NOUT];
#pragma unroll
    for (int k = 0; k < NOUT; ++k) sum[k] = sm[k][0][tx];
    f.finish(c, sum);
  }
}

template <int NOUT, class F>
int launch_colreduce(const char* name, const F& f, int N, int C, int grid_y, void* stream) {
  auto kern = &k_colreduce<NOUT, F>;
  const dim3 grid((unsigned)((C + kColsPerBlock - 1) / kColsPerBlock), (unsigned)grid_y, 1);
  BJ_LAUNCH(kern, grid, kColsPerBlock * kRowLanes, 0, as_stream(stream), f, N, C);
  return check_launch(name);
}

// ---- reduction of per-block partials (see "Scratch" above) ----
// part (G, W) row-major; for w < W: s = sum over g of part[g, w] by k_colreduce (double, fixed
// order: the same bits on every run); w < C: dst0[w] += s, else dst1[w - C] += s.
int launch_sum_partials(const char* op, float* dst0, float* dst1, const float* part, int G, int W,
                        int C, void* stream);

}  // namespace bjc

// Returns BJ_ERR_INVALID from the calling function, with a message naming the op, when cond fails.
#define BJ_CHECK(cond, op, ...)                                           \
  do {                                                                    \
    if (!(cond)) return ::bjc::fail(BJ_ERR_INVALID, op ": " __VA_ARGS__); \
  } while (0)

// Returns from the calling function when rc (an int status) is not BJ_OK.
#define BJ_TRY(expr)                 \
  do {                               \
    const int bj_rc_ = (expr);       \
    if (bj_rc_ != BJ_OK) return bj_rc_; \
  } while (0)

#endif
