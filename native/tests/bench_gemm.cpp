// GEMM timings of one BERT layer's matrix multiplications on a GPU: cuBLAS fp32 (no TF32, the
// fp32 reference path), bf16 inputs with fp32 output (bertj's bf16 path: cublasGemmEx,
// CUBLAS_COMPUTE_32F) and bf16 in / bf16 out, for the forward, the input gradient and the weight
// gradient of each Linear, with bertj's row-major layout (the same cuBLAS calls as
// CudaBackend.gemm / gemmBf16). Prints one table; the per-layer sum times the layer count is
// the GEMM time of a training step. Two more columns: the fastest of cuBLASLt's heuristic
// candidates (up to 16, each timed like cuBLAS; what CudaBackend's -Dbertj.gemm.tune=true picks
// from) for fp32 and for bf16 -> fp32.
//   bench_gemm [tokens]     (default 4096 = batch 32 x seq 128)
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x)                                                                    \
  do {                                                                           \
    cudaError_t e_ = (x);                                                        \
    if (e_ != cudaSuccess) {                                                     \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(1);                                                              \
    }                                                                            \
  } while (0)
#define CB(x)                                                                    \
  do {                                                                           \
    cublasStatus_t s_ = (x);                                                     \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                           \
      std::printf("cuBLAS error %d at %s:%d\n", (int)s_, __FILE__, __LINE__);    \
      std::exit(1);                                                              \
    }                                                                            \
  } while (0)

enum Kind { F32, BF16_F32OUT, BF16_BF16OUT };

// Row-major C (m, n) = op(A) (m, k) op(B) (k, n) + beta C, as CudaBackend: column-major
// C^T = op(B)^T op(A)^T.
static void gemm(cublasHandle_t h, Kind kind, bool ta, bool tb, int m, int n, int k, const void* a,
                 int lda, const void* b, int ldb, float beta, void* c, int ldc) {
  const float alpha = 1.f;
  const cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (kind == F32) {
    CB(cublasSgemm(h, ob, oa, n, m, k, &alpha, (const float*)b, ldb, (const float*)a, lda, &beta,
                   (float*)c, ldc));
  } else {
    CB(cublasGemmEx(h, ob, oa, n, m, k, &alpha, b, CUDA_R_16BF, ldb, a, CUDA_R_16BF, lda, &beta, c,
                    kind == BF16_F32OUT ? CUDA_R_32F : CUDA_R_16BF, ldc, CUBLAS_COMPUTE_32F,
                    CUBLAS_GEMM_DEFAULT));
  }
}

// The fastest of cuBLASLt's candidates for the same row-major GEMM (us per call; 0 if none ran).
static double lt_best(cublasLtHandle_t lt, Kind kind, bool ta, bool tb, int m, int n, int k,
                      const void* a, int lda, const void* b, int ldb, float beta, void* c, int ldc,
                      void* ws, size_t wsBytes, cudaEvent_t e0, cudaEvent_t e1, int* count) {
  const cudaDataType_t in = kind == F32 ? CUDA_R_32F : CUDA_R_16BF;
  cublasLtMatmulDesc_t desc;
  CB(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t oa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, ob = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  CB(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &oa, sizeof(oa)));
  CB(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &ob, sizeof(ob)));
  cublasLtMatrixLayout_t la, lb, lc;
  // cuBLASLt's A is our B: (n, k) column-major untransposed, (k, n) transposed; its B is our A.
  CB(cublasLtMatrixLayoutCreate(&la, in, tb ? k : n, tb ? n : k, ldb));
  CB(cublasLtMatrixLayoutCreate(&lb, in, ta ? m : k, ta ? k : m, lda));
  CB(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, n, m, ldc));
  cublasLtMatmulPreference_t pref;
  CB(cublasLtMatmulPreferenceCreate(&pref));
  CB(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsBytes,
                                          sizeof(wsBytes)));
  cublasLtMatmulHeuristicResult_t res[16];
  int found = 0;
  if (cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, pref, 16, res, &found) !=
      CUBLAS_STATUS_SUCCESS)
    found = 0;
  const float alpha = 1.f;
  double best = 0;
  for (int i = 0; i < found; ++i) {
    bool ok = true;
    for (int w = 0; w < 2 && ok; ++w)
      ok = cublasLtMatmul(lt, desc, &alpha, b, la, a, lb, &beta, c, lc, c, lc, &res[i].algo, ws,
                          wsBytes, 0) == CUBLAS_STATUS_SUCCESS;
    if (!ok) continue;
    const int iters = 10;
    CK(cudaEventRecord(e0));
    for (int it = 0; it < iters; ++it)
      cublasLtMatmul(lt, desc, &alpha, b, la, a, lb, &beta, c, lc, c, lc, &res[i].algo, ws, wsBytes, 0);
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    const double us = ms * 1e3 / iters;
    if (best == 0 || us < best) best = us;
  }
  *count = found;
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(desc);
  return best;
}

int main(int argc, char** argv) {
  const int N = argc > 1 ? std::atoi(argv[1]) : 4096;
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    std::printf("SKIP: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  cublasHandle_t h;
  CB(cublasCreate(&h));
  cublasLtHandle_t lt;
  CB(cublasLtCreate(&lt));
  const size_t wsBytes = 32u << 20;
  void* ws;
  CK(cudaMalloc(&ws, wsBytes));
  CB(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
  const size_t maxEl = (size_t)N * 3072 + 3072 * 3072;
  void *a, *b, *c;
  CK(cudaMalloc(&a, maxEl * 4));
  CK(cudaMalloc(&b, maxEl * 4));
  CK(cudaMalloc(&c, maxEl * 4));
  {  // small random-ish values (bf16 and fp32 views of the same bytes are both finite)
    std::vector<unsigned short> h16(maxEl * 2);
    for (size_t i = 0; i < h16.size(); ++i) h16[i] = (unsigned short)(0x3c00 + (i * 2654435761u >> 24) % 256);
    CK(cudaMemcpy(a, h16.data(), maxEl * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(b, h16.data(), maxEl * 4, cudaMemcpyHostToDevice));
    CK(cudaMemset(c, 0, maxEl * 4));
  }
  struct Lin {
    const char* name;
    int in, out;
  };
  const Lin lins[] = {{"qkv", 768, 2304}, {"attn-out", 768, 768}, {"ffn1", 768, 3072},
                      {"ffn2", 3072, 768}};
  const char* kinds[] = {"fp32", "bf16->fp32", "bf16->bf16"};
  std::printf("bench_gemm on %s, N=%d tokens (one BERT-base layer's Linears)\n\n", prop.name, N);
  std::printf("| linear   | gemm | m x n x k            | %-18s | %-18s | %-18s | %-13s | %-13s |\n",
              "fp32 us (TF/s)", "bf16->fp32 us", "bf16->bf16 us", "Lt fp32 best", "Lt bf16 best");
  std::printf("|----------|------|----------------------|--------------------|--------------------|--------------------|---------------|---------------|\n");
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  double total[3] = {0, 0, 0};
  double ltTotal[2] = {0, 0};  // per GEMM: min(cuBLAS, Lt best), fp32 and bf16->fp32
  for (const Lin& l : lins) {
    for (int g = 0; g < 3; ++g) {
      // fwd: y (N, out) = x (N, in) W^T; dx: (N, in) = dy (N, out) W (out, in);
      // dW (out, in) += dy^T (out, N) x (N, in)
      const char* gn = g == 0 ? "fwd" : g == 1 ? "dx" : "dW";
      int m, n, k, lda, ldb;
      bool ta, tb;
      float beta;
      if (g == 0) { m = N; n = l.out; k = l.in; ta = false; tb = true; lda = l.in; ldb = l.in; beta = 0; }
      else if (g == 1) { m = N; n = l.in; k = l.out; ta = false; tb = false; lda = l.out; ldb = l.in; beta = 0; }
      else { m = l.out; n = l.in; k = N; ta = true; tb = false; lda = l.out; ldb = l.in; beta = 1; }
      double flop = 2.0 * m * n * k;
      std::printf("| %-8s | %-4s | %5d x %5d x %5d  |", l.name, gn, m, n, k);
      double cub[3] = {0, 0, 0};
      for (int kind = 0; kind < 3; ++kind) {
        for (int w = 0; w < 3; ++w) gemm(h, (Kind)kind, ta, tb, m, n, k, a, lda, b, ldb, beta, c, n);
        const int iters = 20;
        CK(cudaEventRecord(e0));
        for (int i = 0; i < iters; ++i) gemm(h, (Kind)kind, ta, tb, m, n, k, a, lda, b, ldb, beta, c, n);
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        double us = ms * 1e3 / iters;
        total[kind] += us;
        std::printf(" %8.1f (%6.1f)  |", us, flop / us * 1e-6);
        cub[kind] = us;
        if (kind < 2) ltTotal[kind] += us;
      }
      for (int kind = 0; kind < 2; ++kind) {
        int cnt = 0;
        const double us = lt_best(lt, (Kind)kind, ta, tb, m, n, k, a, lda, b, ldb, beta, c, n, ws,
                                  wsBytes, e0, e1, &cnt);
        std::printf(" %7.1f (%2d)  |", us, cnt);
        // the tuned path keeps cuBLAS unless an Lt candidate is faster
        if (us > 0 && us < cub[kind]) ltTotal[kind] -= cub[kind] - us;
      }
      std::printf("\n");
    }
  }
  std::printf("| per layer (sum)               |");
  for (int kind = 0; kind < 3; ++kind) std::printf(" %8.1f           |", total[kind]);
  std::printf("\n(%s; x12 layers = %.2f / %.2f / %.2f ms of GEMM per BERT-base training step)\n",
              kinds[0], total[0] * 12e-3, total[1] * 12e-3, total[2] * 12e-3);
  std::printf("(the faster of cuBLAS and cuBLASLt's best per GEMM, x12 layers: fp32 %.2f ms, "
              "bf16->fp32 %.2f ms)\n", ltTotal[0] * 12e-3, ltTotal[1] * 12e-3);
  cudaFree(ws);
  cublasLtDestroy(lt);
  cublasDestroy(h);
  return 0;
}
