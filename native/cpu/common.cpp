// Thread-local error message and backend info for the CPU library.
#include "common.h"

#include <omp.h>

namespace {
thread_local char g_last_error[512] = "";
}

namespace bj {
int fail(int code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
  va_end(ap);
  return code;
}
}  // namespace bj

extern "C" const char* bj_cpu_last_error(void) { return g_last_error; }

extern "C" int bj_cpu_num_threads(void) { return omp_get_max_threads(); }
