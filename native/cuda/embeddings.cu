// BERT embeddings on the GPU: the sum of word, position and token-type embeddings.
//
// Forward:  out[r, :] = wte[ids[r], :] + wpe[r % T, :] + wtt[tt[r], :]    r in [0, N = B*T)
//           (tt == NULL: type 0). Added in that order, as on the CPU.
// Backward: dwte[ids[r], :] += dout[r, :];  dwpe[r % T, :] += dout[r, :];
//           dwtt[tt[r], :] += dout[r, :]     (parameter gradients, "+=")
//
// Ids are not validated on the device (that would need a host synchronization): the caller
// validates them (the CPU backend returns BJ_ERR_INVALID). An id outside [0, V) or a type outside
// [0, TV) makes that forward row NaN (visible, never an out-of-bounds read) and is skipped in the
// backward.
//
// Determinism, no float atomics:
// - dwte: one block per row r; the block exits unless r is the first row with its id; the owner
//   then walks every later row with the same id in order (compacted 256 rows at a time) and adds
//   them to dwte[id] starting from its old value: the same order as the CPU's sequential walk.
//   Scratch: C floats of dynamic shared memory (C <= 12288).
// - dwpe: one thread per (t, c), adding rows b = 0..B-1 in order (the CPU's order).
// - dwtt: a fixed-order column reduction per type (k_colreduce, grid.y = type).
#include <cmath>

#include "common.cuh"

namespace {
struct EmbFwdOp {
  float* out;
  const int32_t* ids;
  const int32_t* tt;
  const float* wte;
  const float* wpe;
  const float* wtt;
  int T, C, V, TV;
  __device__ void one(int64_t i) const {
    int64_t r;
    int c;
    bjc::row_col(i, C, r, c);
    const int id = ids[r];
    const int ty = tt ? tt[r] : 0;
    if (id < 0 || id >= V || ty < 0 || ty >= TV) {
      out[i] = NAN;
      return;
    }
    out[i] = wte[(int64_t)id * C + c] + wpe[(int64_t)(r % T) * C + c] + wtt[(int64_t)ty * C + c];
  }
  __device__ void vec4(int64_t i4) const {  // C % 4 == 0: the 4 elements share a row
    const int64_t i = i4 * 4;
    int64_t r;
    int c;
    bjc::row_col(i, C, r, c);
    const int id = ids[r];
    const int ty = tt ? tt[r] : 0;
    if (id < 0 || id >= V || ty < 0 || ty >= TV) {
      reinterpret_cast<float4*>(out)[i4] = make_float4(NAN, NAN, NAN, NAN);
      return;
    }
    const float4 a = *reinterpret_cast<const float4*>(wte + (int64_t)id * C + c);
    const float4 b = *reinterpret_cast<const float4*>(wpe + (int64_t)(r % T) * C + c);
    const float4 d = *reinterpret_cast<const float4*>(wtt + (int64_t)ty * C + c);
    reinterpret_cast<float4*>(out)[i4] =
        make_float4(a.x + b.x + d.x, a.y + b.y + d.y, a.z + b.z + d.z, a.w + b.w + d.w);
  }
};

// dwpe[t, c] += sum_b dout[b*T + t, c], b in order. Element i = t*C + c.
struct EmbPosBwdOp {
  float* dwpe;
  const float* dout;
  int B, T, C;
  __device__ void one(int64_t i) const {
    int64_t t;
    int c;
    bjc::row_col(i, C, t, c);
    float acc = dwpe[i];
    for (int b = 0; b < B; ++b) acc += dout[((int64_t)b * T + t) * C + c];
    dwpe[i] = acc;
  }
  __device__ void vec4(int64_t) const {}
};

// dwtt[type, c] += sum over rows r with tt[r] == type (type = blockIdx.y) of dout[r, c].
struct EmbTypeBwdOp {
  float* dwtt;
  const float* dout;
  const int32_t* tt;
  int C;
  __device__ void row(int r, int c, double (&acc)[1]) const {
    const int ty = tt ? tt[r] : 0;
    if (ty == (int)blockIdx.y) acc[0] += dout[(int64_t)r * C + c];
  }
  __device__ void finish(int c, const double (&s)[1]) const {
    float* p = dwtt + (int64_t)blockIdx.y * C + c;
    *p += (float)s[0];
  }
};

constexpr int kWteThreads = 256;

__global__ void __launch_bounds__(kWteThreads)
    k_emb_wte_bwd(float* dwte, const float* dout, const int32_t* ids, int N, int C, int V) {
  BJ_DYN_SMEM(float, acc);  // (C): this block's running dwte[id] row
  __shared__ int list[kWteThreads];
  __shared__ int warp_count[kWteThreads / 32];
  const int r = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int id = ids[r];
  if (id < 0 || id >= V) return;  // uniform over the block
  int dup = 0;
  for (int k = tid; k < r; k += kWteThreads) dup |= (ids[k] == id);
  if (__syncthreads_or(dup)) return;  // not the first row with this id: its owner adds it
  float* wrow = dwte + (int64_t)id * C;
  for (int c = tid; c < C; c += kWteThreads) acc[c] = wrow[c];
  for (int base = r; base < N; base += kWteThreads) {
    const int k = base + tid;
    const int match = (k < N) && ids[k] == id;
    const unsigned bal = __ballot_sync(bjc::kFull, match);
    if (lane == 0) warp_count[warp] = __popc(bal);
    __syncthreads();
    int off = 0, total = 0;
    for (int w = 0; w < kWteThreads / 32; ++w) {
      off += w < warp ? warp_count[w] : 0;
      total += warp_count[w];
    }
    if (match) list[off + __popc(bal & ((1u << lane) - 1u))] = k;
    __syncthreads();
    // Each thread owns channels c = tid (mod 256) of acc: rows are added in increasing order.
    for (int c = tid; c < C; c += kWteThreads) {
      float a = acc[c];
      int q = 0;
      for (; q + 8 <= total; q += 8) {  // 8 independent loads in flight, added in order
        float v[8];
#pragma unroll
        for (int u = 0; u < 8; ++u) v[u] = dout[(int64_t)list[q + u] * C + c];
#pragma unroll
        for (int u = 0; u < 8; ++u) a += v[u];
      }
      for (; q < total; ++q) a += dout[(int64_t)list[q] * C + c];
      acc[c] = a;
    }
    __syncthreads();  // list and warp_count are rewritten by the next chunk
  }
  for (int c = tid; c < C; c += kWteThreads) wrow[c] = acc[c];
}
}  // namespace

extern "C" int bj_cuda_embeddings_forward(float* out,          // (B*T, C)
                                          const int32_t* ids,  // (B, T)
                                          const int32_t* tt,   // (B, T) or NULL = type 0
                                          const float* wte,    // (V, C)
                                          const float* wpe,    // (P_, C)
                                          const float* wtt,    // (TV, C)
                                          int B, int T, int C, int V, int P_, int TV,
                                          void* stream) {
  BJ_CHECK(out != nullptr && ids != nullptr, "bj_cuda_embeddings_forward", "out or ids is NULL");
  BJ_CHECK(wte != nullptr && wpe != nullptr && wtt != nullptr, "bj_cuda_embeddings_forward",
           "wte, wpe or wtt is NULL");
  BJ_CHECK(B > 0 && T > 0 && C > 0, "bj_cuda_embeddings_forward",
           "B, T, C must be > 0 (got %d, %d, %d)", B, T, C);
  BJ_CHECK(V > 0 && P_ > 0 && TV > 0, "bj_cuda_embeddings_forward",
           "V, P_, TV must be > 0 (got %d, %d, %d)", V, P_, TV);
  BJ_CHECK(T <= P_, "bj_cuda_embeddings_forward", "T = %d exceeds the %d positions", T, P_);
  const int64_t n = (int64_t)B * T * C;
  const bool vec = C % 4 == 0 && bjc::aligned16(out) && bjc::aligned16(wte) &&
                   bjc::aligned16(wpe) && bjc::aligned16(wtt);
  return bjc::launch_elementwise("bj_cuda_embeddings_forward",
                                 EmbFwdOp{out, ids, tt, wte, wpe, wtt, T, C, V, TV}, n, vec,
                                 stream);
}

extern "C" int bj_cuda_embeddings_backward(float* dwte,         // (V, C), +=
                                           float* dwpe,         // (P_, C), +=
                                           float* dwtt,         // (TV, C), +=, or NULL
                                           const float* dout,   // (B*T, C)
                                           const int32_t* ids,  // (B, T)
                                           const int32_t* tt,   // (B, T) or NULL = type 0
                                           int B, int T, int C, int V, int P_, int TV,
                                           void* stream) {
  const char* op = "bj_cuda_embeddings_backward";
  BJ_CHECK(dwte != nullptr && dwpe != nullptr, "bj_cuda_embeddings_backward",
           "dwte or dwpe is NULL");
  BJ_CHECK(dout != nullptr && ids != nullptr, "bj_cuda_embeddings_backward",
           "dout or ids is NULL");
  BJ_CHECK(B > 0 && T > 0 && C > 0, "bj_cuda_embeddings_backward",
           "B, T, C must be > 0 (got %d, %d, %d)", B, T, C);
  BJ_CHECK(V > 0 && P_ > 0 && TV > 0, "bj_cuda_embeddings_backward",
           "V, P_, TV must be > 0 (got %d, %d, %d)", V, P_, TV);
  BJ_CHECK(T <= P_, "bj_cuda_embeddings_backward", "T = %d exceeds the %d positions", T, P_);
  if (C > 12288)
    return bjc::fail(BJ_ERR_UNSUPPORTED, "%s: C = %d exceeds 12288 (shared-memory row)", op, C);
  const int N = B * T;
  auto kern = &k_emb_wte_bwd;
  BJ_LAUNCH(kern, (unsigned)N, kWteThreads, (size_t)C * sizeof(float), bjc::as_stream(stream),
            dwte, dout, ids, N, C, V);
  BJ_TRY(bjc::check_launch(op));
  BJ_TRY(bjc::launch_elementwise(op, EmbPosBwdOp{dwpe, dout, B, T, C}, (int64_t)T * C, false,
                                 stream));
  if (dwtt != nullptr)
    BJ_TRY(bjc::launch_colreduce<1>(op, EmbTypeBwdOp{dwtt, dout, tt, C}, N, C, TV, stream));
  return BJ_OK;
}
