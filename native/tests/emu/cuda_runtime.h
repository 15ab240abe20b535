// A small CPU emulation of the CUDA runtime subset bertj's kernels use, for checking their index
// math on machines without a GPU (native/tests/emu/run.sh). Not part of any shipped library.
//
// native/cuda/*.cu compile as C++ with -DBJ_CUDA_EMU and this folder first on the include path:
// __global__/__device__ vanish, __shared__ becomes `static` (blocks run one after another), and
// BJ_LAUNCH runs every block's threads as cooperative fibers (ucontext) on the calling thread.
// __syncthreads / __syncthreads_or / warp shuffles / __ballot_sync are real barriers between the
// fibers (a divergent barrier deadlocks and aborts with a message, where a GPU would hang or
// misbehave). Exited threads drop out of later barriers, as on sm_70+. "Device memory" is host
// memory, so AddressSanitizer sees out-of-bounds accesses of the kernels.
#ifndef BJ_EMU_CUDA_RUNTIME_H
#define BJ_EMU_CUDA_RUNTIME_H

#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#ifndef BJ_CUDA_EMU
#define BJ_CUDA_EMU 1
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }

typedef int cudaError_t;
enum {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNoDevice = 100
};
typedef struct bj_emu_stream* cudaStream_t;
typedef struct bj_emu_event* cudaEvent_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9
};
enum cudaSharedCarveout { cudaSharedmemCarveoutMaxShared = 100 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2
};

namespace emu {

enum State { RUN = 0, WAIT_BLOCK = 1, WAIT_WARP = 2, DONE = 3 };

struct Fiber {
  ucontext_t ctx;
  char* stack = nullptr;
  dim3 tid;
  int linear = 0;
  int state = RUN;
};

struct Sched {
  std::vector<Fiber> f;
  int n = 0, cur = 0;
  ucontext_t main_ctx;
  dim3 block, bdim, gdim;
  std::function<void()> body;
  std::vector<unsigned char> dyn;
  // block barrier
  int blk_arrived = 0, alive = 0, or_acc = 0, or_res = 0;
  // warp barriers and shuffle slots
  std::vector<int> warp_arrived, warp_alive;
  std::vector<uint64_t> slot;
  cudaError_t last_error = cudaSuccess;
};

inline Sched& S() {
  static Sched* s = new Sched;  // never destroyed: the fiber stacks stay reachable (LeakSanitizer)
  return *s;
}
inline Fiber& me() { return S().f[S().cur]; }

[[noreturn]] inline void die(const char* msg) {
  std::fprintf(stderr, "cuda emu: %s (block %u,%u,%u)\n", msg, S().block.x, S().block.y,
               S().block.z);
  std::abort();
}

// Order in which runnable fibers are picked: BJ_EMU_SCHED = forward (default), reverse or
// random. Other orders expose hazards that the in-order run hides (a thread reading what a later
// thread overwrites between the same two barriers).
inline int sched_mode() {
  static const int mode = [] {
    const char* e = std::getenv("BJ_EMU_SCHED");
    if (e && std::strcmp(e, "reverse") == 0) return 1;
    if (e && std::strcmp(e, "random") == 0) return 2;
    return 0;
  }();
  return mode;
}
inline unsigned next_random() {
  static uint64_t x = 0x9E3779B97F4A7C15ull;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return (unsigned)(x >> 11);
}

// Switches to the next runnable fiber, or back to main when all are done.
inline void schedule() {
  Sched& s = S();
  const int mode = sched_mode();
  const int start = mode == 2 ? (int)(next_random() % (unsigned)s.n) : 0;
  for (int k = 1; k <= s.n; ++k) {
    const int j = mode == 0   ? (s.cur + k) % s.n
                  : mode == 1 ? ((s.cur - k) % s.n + s.n) % s.n
                              : (s.cur + start + k) % s.n;
    if (s.f[j].state == RUN) {
      if (j == s.cur) return;
      const int from = s.cur;
      s.cur = j;
      swapcontext(&s.f[from].ctx, &s.f[j].ctx);
      return;
    }
  }
  bool all_done = true;
  for (int j = 0; j < s.n; ++j) all_done = all_done && s.f[j].state == DONE;
  if (!all_done) die("deadlock: a barrier or warp collective that not every thread reaches");
  swapcontext(&s.f[s.cur].ctx, &s.main_ctx);
}

inline void wait_until_run() {
  while (me().state != RUN) schedule();
}

inline void release_block() {
  Sched& s = S();
  s.or_res = s.or_acc;
  s.or_acc = 0;
  s.blk_arrived = 0;
  for (int j = 0; j < s.n; ++j)
    if (s.f[j].state == WAIT_BLOCK) s.f[j].state = RUN;
}

inline void release_warp(int w) {
  Sched& s = S();
  s.warp_arrived[w] = 0;
  for (int j = w * 32; j < s.n && j < w * 32 + 32; ++j)
    if (s.f[j].state == WAIT_WARP) s.f[j].state = RUN;
}

inline int sync_block(int pred) {
  Sched& s = S();
  s.or_acc |= pred ? 1 : 0;
  if (++s.blk_arrived == s.alive) {
    release_block();
  } else {
    me().state = WAIT_BLOCK;
    wait_until_run();
  }
  return s.or_res;
}

inline void sync_warp() {
  Sched& s = S();
  const int w = me().linear / 32;
  if (++s.warp_arrived[w] == s.warp_alive[w]) {
    release_warp(w);
  } else {
    me().state = WAIT_WARP;
    wait_until_run();
  }
}

template <class T>
inline T shfl_from(T v, int src_of_me_fn(int, int, int), int arg, int width) {
  static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
  Sched& s = S();
  const int lin = me().linear;
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  s.slot[lin] = bits;
  sync_warp();
  const int lane = lin & 31;
  const int src = (lin - lane) + src_of_me_fn(lane, arg, width);
  if (src >= s.n || s.f[src].state == DONE) die("shuffle from an exited or missing lane");
  T r;
  const uint64_t got = s.slot[src];
  std::memcpy(&r, &got, sizeof(T));
  sync_warp();
  return r;
}
inline int src_xor(int lane, int mask, int width) {
  const int base = lane - lane % width;
  return base + ((lane % width) ^ mask) % width;
}
inline int src_idx(int lane, int src, int width) { return lane - lane % width + src % width; }

inline unsigned ballot(int pred) {
  Sched& s = S();
  const int lin = me().linear, lane = lin & 31, base = lin - lane;
  s.slot[lin] = pred ? 1u : 0u;
  sync_warp();
  unsigned m = 0;
  for (int k = 0; k < 32 && base + k < s.n; ++k)
    if (s.f[base + k].state != DONE && s.slot[base + k]) m |= 1u << k;
  sync_warp();
  return m;
}

inline void fiber_exit() {
  Sched& s = S();
  Fiber& f = me();
  f.state = DONE;
  --s.alive;
  const int w = f.linear / 32;
  --s.warp_alive[w];
  if (s.alive > 0 && s.blk_arrived > 0 && s.blk_arrived == s.alive) release_block();
  if (s.warp_alive[w] > 0 && s.warp_arrived[w] > 0 && s.warp_arrived[w] == s.warp_alive[w])
    release_warp(w);
  schedule();
  die("a finished fiber was resumed");
}

inline void trampoline() {
  S().body();
  fiber_exit();
}

// Dynamic shared memory, 128-byte aligned (the WMMA loads and stores need 32-byte alignment).
inline void* dyn_smem() {
  const uintptr_t p = reinterpret_cast<uintptr_t>(S().dyn.data());
  return reinterpret_cast<void*>((p + 127) & ~uintptr_t(127));
}

inline void run_block() {
  Sched& s = S();
  const int n = (int)(s.bdim.x * s.bdim.y * s.bdim.z);
  constexpr size_t kStack = 256 * 1024;
  if ((int)s.f.size() < n) s.f.resize(n);
  s.n = n;
  s.alive = n;
  s.blk_arrived = 0;
  s.or_acc = s.or_res = 0;
  const int nw = (n + 31) / 32;
  s.warp_arrived.assign(nw, 0);
  s.warp_alive.assign(nw, 0);
  s.slot.assign(n, 0);
  for (int i = 0; i < n; ++i) {
    Fiber& f = s.f[i];
    if (!f.stack) f.stack = static_cast<char*>(std::malloc(kStack));
    f.linear = i;
    f.tid = dim3(i % s.bdim.x, (i / s.bdim.x) % s.bdim.y, i / (s.bdim.x * s.bdim.y));
    f.state = RUN;
    ++s.warp_alive[i / 32];
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, trampoline, 0);
  }
  s.cur = sched_mode() == 1 ? n - 1 : sched_mode() == 2 ? (int)(next_random() % (unsigned)n) : 0;
  swapcontext(&s.main_ctx, &s.f[s.cur].ctx);
}

template <class... P, class... A>
void launch(void (*k)(P...), dim3 g, dim3 b, size_t smem, A... a) {
  Sched& s = S();
  const unsigned nthreads = b.x * b.y * b.z;
  if (nthreads == 0 || nthreads > 1024 || g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 ||
      g.z > 65535 || smem > 227 * 1024) {
    s.last_error = cudaErrorInvalidConfiguration;
    return;
  }
  s.body = [&]() { k(a...); };
  s.bdim = b;
  s.gdim = g;
  s.dyn.assign(smem + 16 + 128, 0xff);  // NaN-filled, like uninitialized shared memory
  for (unsigned z = 0; z < g.z; ++z)
    for (unsigned y = 0; y < g.y; ++y)
      for (unsigned x = 0; x < g.x; ++x) {
        s.block = dim3(x, y, z);
        run_block();
      }
  s.body = nullptr;
}

}  // namespace emu

#define threadIdx (::emu::me().tid)
#define blockIdx (::emu::S().block)
#define blockDim (::emu::S().bdim)
#define gridDim (::emu::S().gdim)

inline void __syncthreads() { emu::sync_block(0); }
inline int __syncthreads_or(int p) { return emu::sync_block(p); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::sync_warp(); }
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
  return emu::shfl_from(v, emu::src_xor, mask, width);
}
template <class T>
inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
  return emu::shfl_from(v, emu::src_idx, src, width);
}
inline unsigned __ballot_sync(unsigned, int p) { return emu::ballot(p); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline float __fmul_rn(float a, float b) { return a * b; }
template <class T>
inline T __ldg(const T* p) { return *p; }
inline void __threadfence() {}
using std::max;
using std::min;

// ---- runtime API subset ----
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::S().last_error;
  emu::S().last_error = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return emu::S().last_error; }
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    default: return "emulated error";
  }
}
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
// Two "SMs": small grids, so kernels sized by the SM count also run their grid-stride loops.
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  *v = 2;
  return cudaSuccess;
}
inline cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus* s) {
  *s = cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
inline cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int) { return cudaSuccess; }
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = std::malloc(bytes ? bytes : 1);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
template <class T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  std::memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind,
                                   cudaStream_t = nullptr) {
  std::memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* d, int v, size_t n) {
  std::memset(d, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamCreate(cudaStream_t* s) {
  static int dummy;
  *s = reinterpret_cast<cudaStream_t>(&dummy);
  return cudaSuccess;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }

#endif
