// Backend-wide pieces of the CUDA library: the thread-local error message, backend info, the
// device count (safe without a driver), the launch-check helpers of common.cuh, the per-(device,
// stream) scratch buffers and the partial-sum reduction kernel (see common.cuh, "Scratch").
#include <mutex>
#include <vector>

#include "common.cuh"

namespace {
thread_local char g_last_error[512] = "";
}

namespace bjc {
int fail(int code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
  va_end(ap);
  return code;
}

int check_launch(const char* op) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return fail(BJ_ERR_CUDA, "%s: %s", op, cudaGetErrorString(e));
  return BJ_OK;
}

int allow_smem(const void* kernel, int bytes, unsigned* done_mask, const char* op) {
  if (bytes <= 48 * 1024) return BJ_OK;
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return fail(BJ_ERR_CUDA, "%s: %s", op, cudaGetErrorString(e));
  const unsigned bit = dev < 32 ? (1u << dev) : 0u;
  if (bit != 0 && (__atomic_load_n(done_mask, __ATOMIC_ACQUIRE) & bit)) return BJ_OK;
  e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return fail(BJ_ERR_CUDA, "%s: %s (%d bytes of shared memory)", op, cudaGetErrorString(e),
                bytes);
  }
  if (bit != 0) __atomic_fetch_or(done_mask, bit, __ATOMIC_RELEASE);
  return BJ_OK;
}
int sm_count() {
  static int cached[64] = {0};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return 1;
  }
  if (dev >= 0 && dev < 64 && cached[dev] > 0) return cached[dev];
  int n = 0;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1) {
    cudaGetLastError();
    n = 1;
  }
  if (dev >= 0 && dev < 64) cached[dev] = n;
  return n;
}

namespace {
struct ScratchEntry {
  int dev;
  void* stream;
  float* buf;
};
std::mutex g_scratch_mu;
// Never destroyed (nor its buffers freed): they live until the process ends.
std::vector<ScratchEntry>& g_scratch = *new std::vector<ScratchEntry>;
}  // namespace

float* scratch_for(void* stream) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(g_scratch_mu);
  for (const ScratchEntry& e : g_scratch)
    if (e.dev == dev && e.stream == stream) return e.buf;
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(as_stream(stream), &cs) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  if (cs != cudaStreamCaptureStatusNone) return nullptr;  // no cudaMalloc while capturing
  void* p = nullptr;
  if (cudaMalloc(&p, (size_t)kScratchBytes) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  g_scratch.push_back(ScratchEntry{dev, stream, static_cast<float*>(p)});
  return static_cast<float*>(p);
}

namespace {
// dst0[w] (w < C) or dst1[w - C] += sum over the G rows of part (G, W), via k_colreduce.
struct PartialSumOp {
  float* dst0;
  float* dst1;
  const float* part;
  int W, C;
  __device__ void row(int g, int w, double (&acc)[1]) const {
    acc[0] += (double)part[(int64_t)g * W + w];
  }
  __device__ void finish(int w, const double (&s)[1]) const {
    if (w < C)
      dst0[w] += (float)s[0];
    else
      dst1[w - C] += (float)s[0];
  }
};
}  // namespace

int launch_sum_partials(const char* op, float* dst0, float* dst1, const float* part, int G, int W,
                        int C, void* stream) {
  return launch_colreduce<1>(op, PartialSumOp{dst0, dst1, part, W, C}, G, W, 1, stream);
}
}  // namespace bjc

extern "C" const char* bj_cuda_last_error(void) { return g_last_error; }

extern "C" int bj_cuda_num_threads(void) { return 0; }

extern "C" int bj_cuda_device_count(void) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear it: no driver / no device is an answer, not a sticky failure
    bjc::fail(BJ_ERR_CUDA, "bj_cuda_device_count: %s", cudaGetErrorString(e));
    return -(int)e;
  }
  return n;
}
