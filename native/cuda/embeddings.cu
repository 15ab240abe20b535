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
// Determinism, no float atomics. The default backward is "v2" (below, before the C API: rows
// grouped by id through an all-pairs rank, chunked sums, position/type column sums in one pass);
// BJ_KERNEL_V1=embeddings_backward (kernel_select.cuh), N > 8192 or more than 4 token types take
// the v1 kernels:
// - dwte: one block per row r; the block exits unless r is the first row with its id; the owner
//   then walks every later row with the same id in order (compacted 256 rows at a time) and adds
//   them to dwte[id] starting from its old value: the same order as the CPU's sequential walk.
//   Scratch: C floats of dynamic shared memory (C <= 12288).
// - dwpe: one thread per (t, c), adding rows b = 0..B-1 in order (the CPU's order).
// - dwtt: a fixed-order column reduction per type (k_colreduce, grid.y = type).
#include <cmath>

#include "common.cuh"
#include "kernel_select.cuh"
#include "rowsum.cuh"

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

// ---- v2 backward (the default; BJ_KERNEL_V1=embeddings_backward selects the kernels above) ----
// Four launches, all deterministic (fixed orders, integer bookkeeping only, no float atomics):
// 1. k_emb_rank: the rank of each row's key (id << 32 | row; an id outside [0, V) counts as
//    0xffffffff, so those rows rank last and are dropped) among all N keys, by counting smaller
//    keys: block (i tile, j slice) counts for its rows over one slice of the keys (shared memory),
//    writing one partial count per (slice, row). N^2 comparisons spread over the whole GPU
//    (~17 M for N = 4096), instead of a sort in one block.
// 2. k_emb_plan (one block): sums the partial counts, scatters the keys to their ranks (so the
//    rows of each id are consecutive, in increasing row order), cuts each id's run into chunks of
//    at most kChunk rows and writes the plan: per chunk {id, partial row or -1, first, end} and,
//    for runs longer than kChunk ("multi" runs, e.g. the padding id), per run its id and first
//    partial row.
// 3. k_emb_main: blocks [0, nb_wte) take chunks (grid-stride over the device-side count): a chunk
//    that is a whole run adds its rows in order onto dwte[id] (the CPU's order: old value, then
//    the rows in increasing order); a chunk of a multi run sums its rows in order into its
//    partial row. Blocks [nb_wte, ...) take (position t, column unit) items: dwpe[t] += rows
//    b = 0..B-1 in order (again the CPU's order), and the per-type sums over b of that position
//    go to a (T, TV * C) partial matrix (TV <= kMaxTypes).
// 4. k_emb_finish: blocks [0, nb_multi) add each multi run's partial rows in order (double) onto
//    dwte[id]; the others add the T type partials of each (type, column) in order onto dwtt.
// Traffic: dout is read twice (word chunks; position/type items), dwte's touched rows once each
// way, small partials. N > kPlanMaxRows, TV > kMaxTypes (when dwtt is wanted) or too little
// scratch take the v1 kernels.
constexpr int kPlanThreads = 1024;
constexpr int kPlanMaxRows = 8192;  // 64 KiB of keys in shared memory
constexpr int kRankThreads = 128;
constexpr int kRankMaxSlices = 16;
constexpr int kChunk = 32;
constexpr int kMaxTypes = 4;
constexpr int kMainThreads = 256;

// Scratch layout for N rows (ints, then floats from a 16-byte aligned offset):
//   plan[0] = chunks, plan[1] = multi runs, plan[2] = valid rows, plan[3] unused
//   chunk[N] (16 bytes each): {id, partial row or -1, first sorted index, end sorted index}
//   rows[N]: rows sorted by (id, row)
//   mpart[N + 1]: first partial row of each multi run (mpart[multi] = partial rows in all)
//   mid[N]: id of each multi run
//   rank_part[kRankMaxSlices * N]: k_emb_rank's partial counts
//   fpart: word partials (< 2 N / kChunk rows of C floats), then the type partials
struct alignas(16) EmbChunk {
  int id, part, first, end;
};
struct EmbPlan {
  int* plan;
  EmbChunk* chunk;
  int* rows;
  int* mpart;
  int* mid;
  int* rank_part;
  float* fpart;
  static int64_t int_count(int N) { return 4 + 4LL * N + 3LL * N + 1 + (int64_t)kRankMaxSlices * N; }
  static EmbPlan at(float* scratch, int N) {
    int* q = reinterpret_cast<int*>(scratch);  // scratch is 256-byte aligned (cudaMalloc)
    EmbPlan p;
    p.plan = q;
    p.chunk = reinterpret_cast<EmbChunk*>(q + 4);
    p.rows = q + 4 + 4LL * N;
    p.mpart = p.rows + N;
    p.mid = p.mpart + N + 1;
    p.rank_part = p.mid + N;
    p.fpart = scratch + (int_count(N) + 3) / 4 * 4;
    return p;
  }
};

__device__ __forceinline__ unsigned long long emb_key(const int32_t* ids, int i, int V) {
  const int id = ids[i];
  const unsigned hi = (id >= 0 && id < V) ? (unsigned)id : 0xffffffffu;
  return ((unsigned long long)hi << 32) | (unsigned)i;
}

// grid (ceil(N / kRankThreads), S): rank_part[s * N + i] = #{j in slice s : key_j < key_i}.
__global__ void __launch_bounds__(kRankThreads)
    k_emb_rank(int* rank_part, const int32_t* ids, int N, int V, int L) {
  __shared__ unsigned long long kj[kRankThreads];
  const int i = blockIdx.x * kRankThreads + threadIdx.x;
  const unsigned long long ki = i < N ? emb_key(ids, i, V) : 0ull;
  const int j0 = blockIdx.y * L;
  const int j1 = j0 + L < N ? j0 + L : N;
  int cnt = 0;
  for (int jb = j0; jb < j1; jb += kRankThreads) {
    const int nj = j1 - jb < kRankThreads ? j1 - jb : kRankThreads;
    __syncthreads();
    if ((int)threadIdx.x < nj) kj[threadIdx.x] = emb_key(ids, jb + threadIdx.x, V);
    __syncthreads();
    if (nj == kRankThreads) {
#pragma unroll 8
      for (int q = 0; q < kRankThreads; ++q) cnt += kj[q] < ki;
    } else {
      for (int q = 0; q < nj; ++q) cnt += kj[q] < ki;
    }
  }
  if (i < N) rank_part[(int64_t)blockIdx.y * N + i] = cnt;
}

// Exclusive scan over the block (kPlanThreads threads, one value each) with an associative op
// and its identity, through buf (2 kPlanThreads values of shared memory); *total gets the
// reduction of all values. All threads must call it.
template <class T, class Op>
__device__ __forceinline__ T block_scan_excl(T v, T identity, Op op, T* total, T* buf) {
  T(*sc)[kPlanThreads] = reinterpret_cast<T(*)[kPlanThreads]>(buf);
  const int tid = threadIdx.x;
  int cur = 0;
  sc[0][tid] = v;
  __syncthreads();
  for (int off = 1; off < kPlanThreads; off <<= 1) {  // Hillis-Steele, double-buffered
    sc[cur ^ 1][tid] = tid >= off ? op(sc[cur][tid - off], sc[cur][tid]) : sc[cur][tid];
    cur ^= 1;
    __syncthreads();
  }
  const T excl = tid > 0 ? sc[cur][tid - 1] : identity;
  *total = sc[cur][kPlanThreads - 1];
  __syncthreads();
  return excl;
}

__global__ void __launch_bounds__(kPlanThreads)
    k_emb_plan(EmbPlan P, const int32_t* ids, int N, int V, int S) {
  BJ_DYN_SMEM(unsigned long long, key);  // (N), sorted
  __shared__ unsigned long long scan_buf[2 * kPlanThreads];
  int* const iscan = reinterpret_cast<int*>(scan_buf);
  const int tid = threadIdx.x;
  int nvalid_local = 0;
  for (int i = tid; i < N; i += kPlanThreads) {
    int r = 0;
#pragma unroll
    for (int s = 0; s < kRankMaxSlices; ++s)  // all loads in flight at once (S <= 16)
      if (s < S) r += P.rank_part[(int64_t)s * N + i];
    const unsigned long long k = emb_key(ids, i, V);
    key[r] = k;  // the keys are distinct, so the ranks are a permutation of [0, N)
    nvalid_local += (k >> 32) != 0xffffffffull;
  }
  int nv;
  block_scan_excl(nvalid_local, 0, [](int x, int y) { return x + y; }, &nv, iscan);  // syncs
  // Thread tid owns sorted indices [i0, i1) (contiguous), so the scans are local then block-wide.
  const int per = (nv + kPlanThreads - 1) / kPlanThreads;
  const int i0 = tid * per < nv ? tid * per : nv;
  const int i1 = i0 + per < nv ? i0 + per : nv;
  auto id_at = [&](int i) { return (unsigned)(key[i] >> 32); };
  // The run start in effect at i0: a max-scan of the last run start in each thread's range.
  int last = 0;
  for (int i = i0; i < i1; ++i)
    if (i == 0 || id_at(i) != id_at(i - 1)) last = i;
  int ignored;
  const int carry = block_scan_excl(
      last, 0, [](int x, int y) { return x > y ? x : y; }, &ignored, iscan);
  // Counts per thread, in 21-bit fields: chunks | chunks of multi runs << 21 | multi runs << 42.
  auto run_start = [&](int i) { return i == 0 || id_at(i) != id_at(i - 1); };
  auto is_multi = [&](int i, int pos) {
    return pos > 0 || (i + kChunk < nv && id_at(i + kChunk) == id_at(i));
  };
  unsigned long long cnt = 0;
  {
    int rs = carry;
    for (int i = i0; i < i1; ++i) {
      if (run_start(i)) rs = i;
      const int pos = i - rs;
      if (pos % kChunk == 0) {
        const bool multi = is_multi(i, pos);
        cnt += 1ull + (multi ? (1ull << 21) : 0ull) + (multi && pos == 0 ? (1ull << 42) : 0ull);
      }
    }
  }
  unsigned long long total;
  const unsigned long long base = block_scan_excl(
      cnt, 0ull, [](unsigned long long x, unsigned long long y) { return x + y; }, &total,
      scan_buf);
  const unsigned long long mask = (1ull << 21) - 1;
  int c = (int)(base & mask), m = (int)((base >> 21) & mask), r = (int)(base >> 42);
  {
    int rs = carry;
    for (int i = i0; i < i1; ++i) {
      P.rows[i] = (int)(unsigned)key[i];
      if (run_start(i)) rs = i;
      const int pos = i - rs;
      if (pos % kChunk == 0) {
        const bool multi = is_multi(i, pos);
        int e = i + 1;  // the chunk ends at kChunk rows or at the end of the run
        while (e < nv && e - i < kChunk && id_at(e) == id_at(i)) ++e;
        P.chunk[c] = EmbChunk{(int)id_at(i), multi ? m : -1, i, e};
        if (multi && pos == 0) {
          P.mpart[r] = m;
          P.mid[r] = (int)id_at(i);
          ++r;
        }
        if (multi) ++m;
        ++c;
      }
    }
  }
  if (tid == 0) {
    P.mpart[(int)(total >> 42)] = (int)((total >> 21) & mask);
    P.plan[0] = (int)(total & mask);
    P.plan[1] = (int)(total >> 42);
    P.plan[2] = nv;
  }
}

// NT: type accumulators per item (0 without dwtt, else >= TVp).
template <bool VEC, int NT>
__global__ void __launch_bounds__(kMainThreads, 3)
    k_emb_main(EmbPlan P, float* dwte, float* dwpe, const float* dout, float* tpart,
               const int32_t* tt, int B, int T, int C, int TVp, int nb_wte) {
  using U = bjc::Unit<VEC>;
  using Tv = typename U::T;
  const int CU = VEC ? C / 4 : C;
  const Tv* D = reinterpret_cast<const Tv*>(dout);
  if ((int)blockIdx.x < nb_wte) {
    const int nchunks = P.plan[0];
    Tv* W = reinterpret_cast<Tv*>(dwte);
    Tv* PART = reinterpret_cast<Tv*>(P.fpart);
    for (int j = blockIdx.x; j < nchunks; j += nb_wte) {
      const EmbChunk ch = P.chunk[j];
      const int id = ch.id, pr = ch.part, s = ch.first, e = ch.end;
      for (int u = threadIdx.x; u < CU; u += kMainThreads) {
        Tv acc = pr < 0 ? W[(int64_t)id * CU + u] : U::zero();
        for (int q = s; q < e; q += 8) {  // 8 loads in flight, added in row order
          Tv v[8];
#pragma unroll
          for (int k = 0; k < 8; ++k)
            if (q + k < e) v[k] = D[(int64_t)P.rows[q + k] * CU + u];
#pragma unroll
          for (int k = 0; k < 8; ++k)
            if (q + k < e) U::add(acc, v[k]);
        }
        if (pr < 0)
          W[(int64_t)id * CU + u] = acc;
        else
          PART[(int64_t)pr * CU + u] = acc;
      }
    }
    return;
  }
  // (t, u) items: dwpe[t] += rows b*T + t in order of b; type sums into the (T, TVp*C) partials.
  const int64_t items = (int64_t)T * CU;
  const int64_t stride = (int64_t)(gridDim.x - nb_wte) * kMainThreads;
  Tv* WP = reinterpret_cast<Tv*>(dwpe);
  Tv* TP = reinterpret_cast<Tv*>(tpart);  // (T, TVp, CU)
  for (int64_t it = (int64_t)(blockIdx.x - nb_wte) * kMainThreads + threadIdx.x; it < items;
       it += stride) {
    const int t = (int)(it / CU), u = (int)(it - (int64_t)t * CU);
    Tv acc = WP[it];
    Tv ta[NT > 0 ? NT : 1];
#pragma unroll
    for (int k = 0; k < NT; ++k) ta[k] = U::zero();
    for (int b = 0; b < B; b += 8) {
      Tv v[8];
      int ty[8];
#pragma unroll
      for (int k = 0; k < 8; ++k)
        if (b + k < B) {
          const int64_t r = (int64_t)(b + k) * T + t;
          v[k] = D[r * CU + u];
          if (NT > 0) ty[k] = tt ? tt[r] : 0;
        }
#pragma unroll
      for (int k = 0; k < 8; ++k)
        if (b + k < B) {
          U::add(acc, v[k]);
#pragma unroll
          for (int q = 0; q < NT; ++q)
            if (q < TVp && ty[k] == q) U::add(ta[q], v[k]);
        }
    }
    WP[it] = acc;
    if (NT > 0) {
      Tv* row = TP + (int64_t)t * TVp * CU + u;
#pragma unroll
      for (int q = 0; q < NT; ++q)
        if (q < TVp) row[(int64_t)q * CU] = ta[q];
    }
  }
}

// Blocks [0, nb_multi): (multi run, 32-column tile) items, dwte[id] += the run's partial rows in
// order (sum_rows_tile); blocks [nb_multi, ...): the 32-column tiles of dwtt (TVp x C) += the T
// type partial rows in order.
__global__ void __launch_bounds__(bjc::kSumThreads)
    k_emb_finish(EmbPlan P, float* dwte, float* dwtt, const float* tpart, int T, int C, int TVp,
                 int nb_multi) {
  if ((int)blockIdx.x < nb_multi) {
    const int tiles = (C + 31) / 32;
    const int64_t items = (int64_t)P.plan[1] * tiles;
    for (int64_t it = blockIdx.x; it < items; it += nb_multi) {
      const int m = (int)(it / tiles), tile = (int)(it - (int64_t)m * tiles);
      const int p0 = P.mpart[m];
      bjc::sum_rows_tile(dwte + (int64_t)P.mid[m] * C, P.fpart + (int64_t)p0 * C,
                         P.mpart[m + 1] - p0, C, tile);
    }
    return;
  }
  if (TVp > 0) bjc::sum_rows_tile(dwtt, tpart, T, TVp * C, blockIdx.x - nb_multi);
}

unsigned g_plan_smem_ok = 0;

// Returns -1 (nothing launched) when the v2 path does not apply; see the comment above.
int emb_backward2(const char* op, float* dwte, float* dwpe, float* dwtt, const float* dout,
                  const int32_t* ids, const int32_t* tt, int B, int T, int C, int V, int TV,
                  void* stream) {
  const int N = B * T;
  const int TVp = dwtt != nullptr ? TV : 0;
  if (N > kPlanMaxRows || TVp > kMaxTypes) return -1;
  float* scratch = bjc::scratch_for(stream);
  if (scratch == nullptr) return -1;
  const EmbPlan P = EmbPlan::at(scratch, N);
  const int64_t word_floats = ((int64_t)(2 * N / kChunk + 1) * C + 3) / 4 * 4;
  float* tpart = P.fpart + word_floats;
  const int64_t end = (tpart - scratch) + (int64_t)T * TVp * C;
  if (end * 4 > bjc::kScratchBytes) return -1;
  const bool vec = C % 4 == 0 && bjc::aligned16(dwte) && bjc::aligned16(dwpe) &&
                   bjc::aligned16(dout) && bjc::aligned16(P.fpart) && bjc::aligned16(tpart);
  const int CU = vec ? C / 4 : C;
  const int sms = bjc::sm_count();
  cudaStream_t st = bjc::as_stream(stream);

  // 1. ranks: enough (tile, slice) blocks for ~4 per SM, slices of at least kRankThreads keys
  const int tiles = (N + kRankThreads - 1) / kRankThreads;
  int S = (sms * 4 + tiles - 1) / tiles;
  if (S > kRankMaxSlices) S = kRankMaxSlices;
  if (S > tiles) S = tiles;
  if (S < 1) S = 1;
  const int L = (N + S - 1) / S;
  auto rank = &k_emb_rank;
  BJ_LAUNCH(rank, dim3((unsigned)tiles, (unsigned)S, 1), kRankThreads, 0, st, P.rank_part, ids, N,
            V, L);
  BJ_TRY(bjc::check_launch(op));

  // 2. plan
  const int smem = N * (int)sizeof(unsigned long long);
  const int static_smem = 2 * kPlanThreads * (int)sizeof(unsigned long long);
  auto plan = &k_emb_plan;
  if (smem + static_smem > 48 * 1024)  // opt in once, for the largest N
    BJ_TRY(bjc::allow_smem(reinterpret_cast<const void*>(plan),
                           kPlanMaxRows * (int)sizeof(unsigned long long), &g_plan_smem_ok, op));
  BJ_LAUNCH(plan, 1, kPlanThreads, (size_t)smem, st, P, ids, N, V, S);
  BJ_TRY(bjc::check_launch(op));

  // 3. word chunks and position/type items
  const int nb_wte = N < sms * 4 ? N : sms * 4;
  const int nb_pos = (int)bjc::blocks_for((int64_t)T * CU, kMainThreads);
  void (*mainv)(EmbPlan, float*, float*, const float*, float*, const int32_t*, int, int, int, int,
                int) = TVp == 0  ? (vec ? &k_emb_main<true, 0> : &k_emb_main<false, 0>)
                       : TVp <= 2 ? (vec ? &k_emb_main<true, 2> : &k_emb_main<false, 2>)
                                  : (vec ? &k_emb_main<true, 4> : &k_emb_main<false, 4>);
  BJ_LAUNCH(mainv, (unsigned)(nb_wte + nb_pos), kMainThreads, 0, st, P, dwte, dwpe, dout, tpart,
            tt, B, T, C, TVp, nb_wte);
  BJ_TRY(bjc::check_launch(op));

  // 4. multi runs and dwtt
  const int64_t max_items = (int64_t)(N / (kChunk + 1)) * ((C + 31) / 32);
  const int nb_multi = (int)(max_items < 1 ? 1 : max_items < sms * 4 ? max_items : sms * 4);
  const int nb_tt = TVp > 0 ? (TVp * C + 31) / 32 : 0;
  auto fin = &k_emb_finish;
  BJ_LAUNCH(fin, (unsigned)(nb_multi + nb_tt), bjc::kSumThreads, 0, st, P, dwte, dwtt, tpart, T,
            C, TVp, nb_multi);
  return bjc::check_launch(op);
}
}  // namespace

extern "C" int bj_cuda_embeddings_forward(
float* out,          // (B*T, C)
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
  if (!bjc::use_v1_kernel("embeddings_backward")) {
    const int rc = emb_backward2(op, dwte, dwpe, dwtt, dout, ids, tt, B, T, C, V, TV, stream);
    if (rc >= 0) return rc;
  }
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
