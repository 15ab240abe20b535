// Shared helpers of the CPU kernels: argument checks and the thread-local error message.
#ifndef BERTJ_CPU_COMMON_H
#define BERTJ_CPU_COMMON_H

#include <cstdarg>
#include <cstdint>
#include <cstdio>

#include "bertj.h"

namespace bj {
// Work below which an elementwise loop stays on the calling thread (OpenMP `if` clause): a
// fork/join costs more than touching a few thousand floats.
constexpr int64_t kParallelMin = 1 << 14;
// Column block of the deterministic column reductions (dgamma, dbeta, dbias, embedding grads):
// each block is owned by one thread, which walks the rows in order, so the result has the same
// bits for any thread count. 32 floats = one 128-byte stretch of a row.
constexpr int kColBlock = 32;

// Records a message for bj_cpu_last_error() and returns `code`.
int fail(int code, const char* fmt, ...);
}  // namespace bj

// Returns BJ_ERR_INVALID from the calling function, with a message naming the op, when cond fails.
#define BJ_CHECK(cond, op, ...)                                                 \
  do {                                                                          \
    if (!(cond)) return bj::fail(BJ_ERR_INVALID, op ": " __VA_ARGS__);          \
  } while (0)

#endif
