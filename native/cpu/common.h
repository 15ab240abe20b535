// Shared helpers of the CPU kernels: argument checks and the thread-local error message.
#ifndef BERTJ_CPU_COMMON_H
#define BERTJ_CPU_COMMON_H

#include <cstdarg>
#include <cstdint>
#include <cstdio>

#include "bertj.h"

namespace bj {
// Records a message for bj_cpu_last_error() and returns `code`.
int fail(int code, const char* fmt, ...);
}  // namespace bj

// Returns BJ_ERR_INVALID from the calling function, with a message naming the op, when cond fails.
#define BJ_CHECK(cond, op, ...)                                                 \
  do {                                                                          \
    if (!(cond)) return bj::fail(BJ_ERR_INVALID, op ": " __VA_ARGS__);          \
  } while (0)

#endif
