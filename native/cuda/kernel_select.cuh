// Run-time choice between a kernel and the one it replaced, so that both can be timed in one
// process (native/tests/bench_cuda_ops.cpp) and an old kernel can be brought back without a
// rebuild: BJ_KERNEL_V1 = "all", or a comma-separated list of op names (e.g.
// "bias_gelu_backward,embeddings_backward"), selects the previous (v1) kernel of those ops. Unset
// or empty: the current kernels. Read on every call (getenv is cheap next to a launch), so a
// process may switch between calls.
#ifndef BERTJ_CUDA_KERNEL_SELECT_CUH
#define BERTJ_CUDA_KERNEL_SELECT_CUH

#include <cstdlib>
#include <cstring>

namespace bjc {
inline bool use_v1_kernel(const char* op) {
  const char* s = std::getenv("BJ_KERNEL_V1");
  if (s == nullptr || *s == '\0') return false;
  const size_t n = std::strlen(op);
  while (*s != '\0') {
    const char* e = std::strchr(s, ',');
    const size_t len = e ? (size_t)(e - s) : std::strlen(s);
    if ((len == 3 && std::strncmp(s, "all", 3) == 0) || (len == n && std::strncmp(s, op, n) == 0))
      return true;
    if (e == nullptr) break;
    s = e + 1;
  }
  return false;
}
}  // namespace bjc

#endif
