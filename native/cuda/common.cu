// Backend-wide pieces of the CUDA library: the thread-local error message, backend info, the
// device count (safe without a driver), and the launch-check helpers of common.cuh.
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
