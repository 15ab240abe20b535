package org.bertj.backend;

import java.util.HashMap;
import java.util.Map;
import org.bytedeco.cuda.cublas.cublasLtContext;
import org.bytedeco.cuda.cublas.cublasLtMatmulAlgo_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulDescOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulHeuristicResult_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulPreferenceOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;

/**
 * Linear layers with the bias fused into the GEMM (cuBLASLt's BIAS epilogue), for fp32 and for
 * bf16 inputs with fp32 output: y (n, out) = x (n, in) W^T + bias, one launch instead of a GEMM
 * and a bias kernel. One plan (descriptors and the heuristic's algorithm) per shape, made on
 * first use and kept; a shape cuBLASLt has no algorithm for reports false so that the caller
 * falls back to GEMM + bias. The plan is tuned on first use: the heuristic's candidate algorithms
 * and the caller's fallback (GEMM, then a bias kernel) are each timed on the real operands, and
 * the fastest is kept (measured on an H200: the heuristic's first choice for fp32 4096x768 ->
 * 2304 took 625 us where cublasSgemm took 381).
 */
final class CublasLt implements AutoCloseable {
  private static final long WORKSPACE = 32L << 20;

  private record Key(boolean bf16, int n, int in, int out) {}

  /** A plain GEMM's shape (row-major, as {@link Backend#gemm}) and whether it accumulates. */
  private record GemmKey(boolean bf16, boolean transA, boolean transB, int m, int n, int k,
      int lda, int ldb, int ldc, boolean accumulate) {}

  private static final class Plan {
    /** The fallback (GEMM + bias kernel) measured faster than every cuBLASLt algorithm. */
    boolean useFallback;
    cublasLtMatmulDescOpaque_t desc;
    cublasLtMatrixLayoutOpaque_t a;
    cublasLtMatrixLayoutOpaque_t b;
    cublasLtMatrixLayoutOpaque_t c;
    cublasLtMatmulHeuristicResult_t result;
    cublasLtMatmulAlgo_t algo;
  }

  private final cublasLtContext lt = new cublasLtContext();
  private final CUstream_st stream;
  private final Map<Object, Plan> plans = new HashMap<>();
  private final FloatPointer one = new FloatPointer(1f);
  private final FloatPointer zero = new FloatPointer(0f);
  private final LongPointer biasPtr = new LongPointer(1);
  private long workspace;
  private boolean closed;

  CublasLt(CUstream_st stream) {
    this.stream = stream;
    check(cublas.cublasLtCreate(lt), "cublasLtCreate");
    Pointer p = new Pointer();
    int st = cudart.cudaMalloc(p, WORKSPACE);
    if (st != 0) {
      cublas.cublasLtDestroy(lt);
      throw new NativeException("cudaMalloc(cuBLASLt workspace)", st,
          cudart.cudaGetErrorString(st).getString());
    }
    workspace = p.address();
  }

  private static void check(int status, String op) {
    if (status != 0) {
      throw new NativeException(op, status, cublas.cublasGetStatusString(status).getString());
    }
  }

  private static void setInt(cublasLtMatmulDescOpaque_t d, int attr, int v, String what) {
    try (IntPointer p = new IntPointer(1)) {
      p.put(0, v);
      check(cublas.cublasLtMatmulDescSetAttribute(d, attr, p, 4), "cublasLtMatmulDescSetAttribute("
          + what + ")");
    }
  }

  private static cublasLtMatrixLayoutOpaque_t layout(int type, long rows, long cols, long ld) {
    try (PointerPointer<cublasLtMatrixLayoutOpaque_t> pp = new PointerPointer<>(1)) {
      check(cublas.cublasLtMatrixLayoutCreate(pp, type, rows, cols, ld),
          "cublasLtMatrixLayoutCreate");
      return pp.get(cublasLtMatrixLayoutOpaque_t.class, 0);
    }
  }

  private static final int CANDIDATES = 8;
  /** Operand alignment the algorithms are chosen for (callers with less fall back). */
  private static final long ALIGN = 16;

  /** The plan of a shape; null when cuBLASLt offers no algorithm for it. */
  private Plan plan(Key k, long y, long x, long w, Runnable fallback) {
    if (plans.containsKey(k)) {
      return plans.get(k);
    }
    Plan p = new Plan();
    try (PointerPointer<cublasLtMatmulDescOpaque_t> pp = new PointerPointer<>(1)) {
      check(cublas.cublasLtMatmulDescCreate(pp, cublas.CUBLAS_COMPUTE_32F, cudart.CUDA_R_32F),
          "cublasLtMatmulDescCreate");
      p.desc = pp.get(cublasLtMatmulDescOpaque_t.class, 0);
    }
    // Column-major view of the row-major y = x W^T: y^T (out, n) = W (out, in) x^T, with W's
    // storage a column-major (in, out) matrix used transposed and x's an (in, n) matrix.
    setInt(p.desc, cublas.CUBLASLT_MATMUL_DESC_TRANSA, cublas.CUBLAS_OP_T, "transa");
    setInt(p.desc, cublas.CUBLASLT_MATMUL_DESC_TRANSB, cublas.CUBLAS_OP_N, "transb");
    setInt(p.desc, cublas.CUBLASLT_MATMUL_DESC_EPILOGUE, cublas.CUBLASLT_EPILOGUE_BIAS, "epilogue");
    setInt(p.desc, cublas.CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, cudart.CUDA_R_32F, "bias type");
    setBias(p); // the caller's bias (biasPtr), for the tuning runs
    int in = k.bf16 ? cudart.CUDA_R_16BF : cudart.CUDA_R_32F;
    p.a = layout(in, k.in, k.out, k.in);
    p.b = layout(in, k.in, k.n, k.in);
    p.c = layout(cudart.CUDA_R_32F, k.out, k.n, k.out);
    p.result = new cublasLtMatmulHeuristicResult_t(CANDIDATES);
    int found = heuristic(p, CANDIDATES);
    if (found == 0) {
      destroy(p);
      plans.put(k, null);
      return null;
    }
    // Tune: time each candidate and the fallback on these operands (first use only).
    double best = Double.MAX_VALUE;
    int bestIdx = -1;
    for (int i = 0; i < found; i++) {
      cublasLtMatmulAlgo_t algo = p.result.getPointer(i).algo();
      final int idx = i;
      double t = time(() -> run(p, algo, y, x, w));
      if (t < best) {
        best = t;
        bestIdx = idx;
      }
    }
    double tf = time(fallback);
    if (tf < best || bestIdx < 0) {
      p.useFallback = true;
    } else {
      p.algo = p.result.getPointer(bestIdx).algo();
    }
    plans.put(k, p);
    return p;
  }

  /** Asks cuBLASLt for up to max algorithms for p's descriptors (into p.result); returns the count. */
  private int heuristic(Plan p, int max) {
    try (PointerPointer<cublasLtMatmulPreferenceOpaque_t> pp = new PointerPointer<>(1)) {
      check(cublas.cublasLtMatmulPreferenceCreate(pp), "cublasLtMatmulPreferenceCreate");
      cublasLtMatmulPreferenceOpaque_t pref = pp.get(cublasLtMatmulPreferenceOpaque_t.class, 0);
      try (SizeTPointer ws = new SizeTPointer(1)) {
        ws.put(0, WORKSPACE);
        check(cublas.cublasLtMatmulPreferenceSetAttribute(pref,
            cublas.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, ws, 8), "preference workspace");
        try (IntPointer al = new IntPointer(1)) {
          al.put(0, (int) ALIGN);
          for (int attr : new int[] {cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
              cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
              cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
              cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
            check(cublas.cublasLtMatmulPreferenceSetAttribute(pref, attr, al, 4),
                "preference alignment");
          }
        }
        int[] count = new int[1];
        int st = cublas.cublasLtMatmulAlgoGetHeuristic(lt, p.desc, p.a, p.b, p.c, p.c, pref,
            max, p.result, count);
        return st == 0 ? count[0] : 0;
      } finally {
        cublas.cublasLtMatmulPreferenceDestroy(pref);
      }
    }
  }

  /** Device milliseconds of one run of r (2 warm-up runs, then the mean of 5); Inf on error. */
  private double time(Runnable r) {
    CUevent_st a = new CUevent_st();
    CUevent_st b = new CUevent_st();
    try {
      if (cudart.cudaEventCreate(a) != 0 || cudart.cudaEventCreate(b) != 0) {
        return Double.POSITIVE_INFINITY;
      }
      r.run();
      r.run();
      cudart.cudaEventRecord(a, stream);
      for (int i = 0; i < 5; i++) {
        r.run();
      }
      cudart.cudaEventRecord(b, stream);
      cudart.cudaEventSynchronize(b);
      float[] ms = new float[1];
      return cudart.cudaEventElapsedTime(ms, a, b) == 0 ? ms[0] / 5 : Double.POSITIVE_INFINITY;
    } catch (NativeException e) {
      cudart.cudaStreamSynchronize(stream);
      return Double.POSITIVE_INFINITY;
    } finally {
      cudart.cudaEventDestroy(a);
      cudart.cudaEventDestroy(b);
    }
  }

  private void run(Plan p, cublasLtMatmulAlgo_t algo, long y, long x, long w) {
    check(cublas.cublasLtMatmul(lt, p.desc, one, new Raw.B(w), p.a, new Raw.B(x), p.b, zero,
        new Raw.B(y), p.c, new Raw.B(y), p.c, algo, new Raw.B(workspace), WORKSPACE, stream),
        "cublasLtMatmul");
  }

  /**
   * y (n, out) = x (n, in) w^T + bias, all device addresses; x and w are bf16 when bf16, else
   * fp32; y and bias fp32. False (nothing queued) when cuBLASLt has no algorithm for the shape.
   */
  boolean linearBias(boolean bf16, long y, long x, long w, long bias, int n, int in, int out,
      Runnable fallback) {
    if (closed) {
      throw new IllegalStateException("cuBLASLt handle closed");
    }
    if (((y | x | w | bias) & (ALIGN - 1)) != 0 || (long) n * in * out < TUNE_MIN_MACS) {
      return false; // the plans assume ALIGN-byte aligned operands; small shapes: see TUNE_MIN_MACS
    }
    biasPtr.put(0, bias);
    Key key = new Key(bf16, n, in, out);
    if (!plans.containsKey(key) && !tuningAllowed) {
      return false;
    }
    Plan p = plans.containsKey(key) ? plans.get(key) : plan(key, y, x, w, fallback);
    if (p == null || p.useFallback) {
      return false;
    }
    setBias(p);
    check(cublas.cublasLtMatmul(lt, p.desc, one, new Raw.B(w), p.a, new Raw.B(x), p.b, zero,
        new Raw.B(y), p.c, new Raw.B(y), p.c, p.algo, new Raw.B(workspace), WORKSPACE, stream),
        "cublasLtMatmul(" + (bf16 ? "bf16" : "fp32") + " linear+bias " + n + "x" + in + "->" + out
            + ")");
    return true;
  }

  /**
   * GEMMs (and linear layers) smaller than this many multiply-adds use the caller's fallback
   * (cuBLAS): tuning a shape costs about a hundred runs of it, which small GEMMs, typically of
   * fine-tuning's many sequence lengths, do not earn back. 2^31: BERT-base's smallest GEMM at
   * batch 32 x 128 tokens (4096 x 768 x 768) is tuned; MiniLM's at SST-2's lengths are not.
   */
  static final long TUNE_MIN_MACS = 1L << 31;
  /** False while a CUDA graph is captured: tuning synchronises, so untuned shapes use cuBLAS. */
  private boolean tuningAllowed = true;

  void setTuningAllowed(boolean allowed) {
    this.tuningAllowed = allowed;
  }
  /** Candidates asked of the heuristic for a plain GEMM. */
  private static final int GEMM_CANDIDATES = 16;
  /** A cuBLASLt algorithm replaces the fallback only when this much faster (timing noise). */
  private static final double GEMM_MARGIN = 0.97;

  /**
   * Row-major c (m, n) = alpha op(a) op(b) + beta c like {@link Backend#gemm} (a, b fp32, or bf16
   * when bf16; c fp32), through the fastest of cuBLASLt's candidate algorithms when that beat the
   * caller's fallback (cuBLAS; it takes the output address) by 3% when this shape was first seen;
   * false (nothing queued) when the fallback is to be used: an untuned small GEMM, unaligned
   * operands, no faster algorithm. The tuning runs (both kinds) write a scratch output, so c is
   * never touched by them.
   */
  boolean gemm(boolean bf16, boolean transA, boolean transB, int m, int n, int k, float alpha,
      long a, int lda, long b, int ldb, float beta, long c, int ldc,
      java.util.function.LongConsumer fallback) {
    if (closed) {
      throw new IllegalStateException("cuBLASLt handle closed");
    }
    if ((long) m * n * k < TUNE_MIN_MACS || ((a | b | c) & (ALIGN - 1)) != 0
        || ((long) lda * (bf16 ? 2 : 4)) % ALIGN != 0 || ((long) ldb * (bf16 ? 2 : 4)) % ALIGN != 0
        || (4L * ldc) % ALIGN != 0) {
      return false;
    }
    GemmKey key = new GemmKey(bf16, transA, transB, m, n, k, lda, ldb, ldc, beta != 0f);
    Plan p;
    if (plans.containsKey(key)) {
      p = plans.get(key);
    } else if (!tuningAllowed) {
      return false;
    } else {
      p = gemmPlan(key, a, b, fallback);
      plans.put(key, p);
    }
    if (p == null || p.useFallback) {
      return false;
    }
    gemmAlpha.put(0, alpha);
    gemmBeta.put(0, beta);
    runGemm(p, p.algo, a, b, c);
    return true;
  }

  private final FloatPointer gemmAlpha = new FloatPointer(1);
  private final FloatPointer gemmBeta = new FloatPointer(1);

  private void runGemm(Plan p, cublasLtMatmulAlgo_t algo, long a, long b, long c) {
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLASLt's A is our B.
    check(cublas.cublasLtMatmul(lt, p.desc, gemmAlpha, new Raw.B(b), p.a, new Raw.B(a), p.b,
        gemmBeta, new Raw.B(c), p.c, new Raw.B(c), p.c, algo, new Raw.B(workspace), WORKSPACE,
        stream), "cublasLtMatmul(gemm)");
  }

  private Plan gemmPlan(GemmKey k, long a, long b, java.util.function.LongConsumer fallback) {
    Plan p = new Plan();
    try (PointerPointer<cublasLtMatmulDescOpaque_t> pp = new PointerPointer<>(1)) {
      check(cublas.cublasLtMatmulDescCreate(pp, cublas.CUBLAS_COMPUTE_32F, cudart.CUDA_R_32F),
          "cublasLtMatmulDescCreate");
      p.desc = pp.get(cublasLtMatmulDescOpaque_t.class, 0);
    }
    setInt(p.desc, cublas.CUBLASLT_MATMUL_DESC_TRANSA, k.transB ? cublas.CUBLAS_OP_T
        : cublas.CUBLAS_OP_N, "transa");
    setInt(p.desc, cublas.CUBLASLT_MATMUL_DESC_TRANSB, k.transA ? cublas.CUBLAS_OP_T
        : cublas.CUBLAS_OP_N, "transb");
    int in = k.bf16 ? cudart.CUDA_R_16BF : cudart.CUDA_R_32F;
    // column-major storage: our B is (n, k) untransposed or (k, n) transposed, our A (k, m) or (m, k)
    p.a = k.transB ? layout(in, k.k, k.n, k.ldb) : layout(in, k.n, k.k, k.ldb);
    p.b = k.transA ? layout(in, k.m, k.k, k.lda) : layout(in, k.k, k.m, k.lda);
    p.c = layout(cudart.CUDA_R_32F, k.n, k.m, k.ldc);
    p.result = new cublasLtMatmulHeuristicResult_t(GEMM_CANDIDATES);
    int found = heuristic(p, GEMM_CANDIDATES);
    if (found == 0) {
      destroy(p);
      return null;
    }
    // Time every candidate and the fallback into a scratch output (c keeps its values).
    long bytes = 4L * k.ldc * k.m;
    Pointer scratch = new Pointer();
    if (cudart.cudaMalloc(scratch, bytes) != 0) {
      destroy(p);
      return null;
    }
    try {
      long sc = scratch.address();
      check(cudart.cudaMemsetAsync(new Raw.B(sc), 0, bytes, stream), "cudaMemsetAsync");
      gemmAlpha.put(0, 1f);
      gemmBeta.put(0, k.accumulate ? 1f : 0f);
      double best = Double.MAX_VALUE;
      int bestIdx = -1;
      for (int i = 0; i < found; i++) {
        cublasLtMatmulAlgo_t algo = p.result.getPointer(i).algo();
        double t = time(() -> runGemm(p, algo, a, b, sc));
        if (t < best) {
          best = t;
          bestIdx = i;
        }
      }
      double tf = time(() -> fallback.accept(sc));
      if (bestIdx < 0 || best > GEMM_MARGIN * tf) {
        p.useFallback = true;
      } else {
        p.algo = p.result.getPointer(bestIdx).algo();
      }
      if (TRACE) {
        System.err.printf("bertj: cuBLASLt tuning %s: cublas %.1f us, best of %d candidates %.1f us%s%n",
            k, tf * 1000, found, best * 1000, p.useFallback ? " (cublas kept)" : "");
      }
    } finally {
      cudart.cudaStreamSynchronize(stream);
      cudart.cudaFree(scratch);
    }
    return p;
  }

  private static final boolean TRACE = Boolean.getBoolean("bertj.gemm.trace");

  private void setBias(Plan p) {
    check(cublas.cublasLtMatmulDescSetAttribute(p.desc, cublas.CUBLASLT_MATMUL_DESC_BIAS_POINTER,
        biasPtr, 8), "cublasLtMatmulDescSetAttribute(bias)");
  }

  private static void destroy(Plan p) {
    if (p.a != null) {
      cublas.cublasLtMatrixLayoutDestroy(p.a);
    }
    if (p.b != null) {
      cublas.cublasLtMatrixLayoutDestroy(p.b);
    }
    if (p.c != null) {
      cublas.cublasLtMatrixLayoutDestroy(p.c);
    }
    if (p.desc != null) {
      cublas.cublasLtMatmulDescDestroy(p.desc);
    }
    if (p.result != null) {
      p.result.close();
    }
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (Plan p : plans.values()) {
      if (p != null) {
        destroy(p);
      }
    }
    plans.clear();
    cudart.cudaFree(new Raw.B(workspace));
    cublas.cublasLtDestroy(lt);
    one.close();
    zero.close();
    biasPtr.close();
    gemmAlpha.close();
    gemmBeta.close();
  }
}
