package org.bertj.backend;

/**
 * Memory, GEMM and the fused ops of BERT on one device. Implementations: {@link CpuBackend}
 * (OpenMP kernels + OpenBLAS) and {@code CudaBackend} (CUDA kernels + cuBLAS).
 *
 * <p>Every op checks its tensors (non-null, open, this backend, dtype, element counts) and throws
 * {@link IllegalArgumentException} / {@link IllegalStateException} before native code runs; a
 * native error status becomes a {@link NativeException} naming the op. Shapes follow
 * {@code native/include/bertj.h}: row-major, N rows (tokens) of C channels; activation gradients
 * are written ("="), parameter gradients accumulated ("+=").
 */
public interface Backend extends AutoCloseable {

  /**
   * The backend for a device: {@code CPU}, {@code CUDA} (an error when no GPU answers), or
   * {@code AUTO} (CUDA when a device answers, else the CPU, said once on stderr). The system
   * property {@code bertj.device} overrides AUTO.
   */
  static Backend create(Device device) {
    return Backends.create(device);
  }

  /** {@code create(AUTO)}. */
  static Backend auto() {
    return Backends.create(Device.AUTO);
  }

  /** "cpu" or "cuda:0"... */
  String name();

  Device device();

  // ---- memory ----

  /** A new zero-filled tensor. */
  Tensor alloc(DType dtype, long... shape);

  /** Frees an owned tensor's memory; called by {@link Tensor#close()}. */
  void free(Tensor t);

  void upload(Tensor dst, float[] src);

  void upload(Tensor dst, int[] src);

  float[] download(Tensor src);

  int[] downloadInts(Tensor src);

  /** dst = src, both on this backend, same dtype and element count. */
  void copy(Tensor dst, Tensor src);

  /** x[:] = value (F32). */
  void fill(Tensor x, float value);

  /** x[:] = 0 (any dtype). */
  void zero(Tensor x);

  /** y += alpha * x. */
  void axpy(Tensor y, Tensor x, float alpha);

  /** x *= scale[0] (scale: one F32 element on this backend). */
  void scaleBy(Tensor x, Tensor scale);

  /** out (BF16) = x (F32) rounded to nearest even, element for element (same numel). */
  void toBf16(Tensor out, Tensor x);

  /** out (F32) = x (BF16), exactly. */
  void fromBf16(Tensor out, Tensor x);

  /**
   * Row gather (padding removal and its inverse): for r < m, row r of out (m, c) = row idx[r] of
   * in (F32, a whole number of rows of c) when idx[r] >= 0, else zeros. idx: I32, m elements,
   * each below in's row count (the CPU rejects a larger one with a {@link NativeException}; CUDA
   * does not read it and writes NaN into that row instead: validate indices before uploading).
   * out must not overlap in.
   */
  void gatherRows(Tensor out, Tensor in, Tensor idx, int m, int c);

  /** Tensors allocated by this backend and not closed yet (for leak checks). */
  long liveTensors();

  /** Bytes held by those tensors. */
  long liveBytes();

  /** Waits for all queued work (no-op on the CPU). */
  void synchronize();

  // ---- GEMM ----

  /**
   * Row-major C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C, with leading dimensions
   * (row strides in elements) lda, ldb, ldc; op(X) = X^T when trans.
   */
  void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, Tensor a, int lda,
      Tensor b, int ldb, float beta, Tensor c, int ldc);

  /**
   * Mixed-precision GEMM: like {@link #gemm} with A and B in BF16 and C in F32; products and
   * sums in fp32 (on CUDA, bf16 tensor cores with fp32 accumulation).
   */
  void gemmBf16(boolean transA, boolean transB, int m, int n, int k, float alpha, Tensor a,
      int lda, Tensor b, int ldb, float beta, Tensor c, int ldc);

  /**
   * A linear layer on rows: y (n, out) = x (n, in) * w^T (w: (out, in)) + bias (bias may be null);
   * beta = 1 accumulates into y instead.
   */
  default void linear(Tensor y, Tensor x, Tensor w, Tensor bias, int n, int in, int out) {
    gemm(false, true, n, out, in, 1f, x, in, w, in, 0f, y, out);
    if (bias != null) {
      biasAdd(y, bias, n, out);
    }
  }

  /**
   * {@link #linear} with bf16 inputs: y (n, out, F32) = xLow (n, in, BF16) * wLow^T (out, in,
   * BF16) + bias (F32, may be null), fp32 accumulation.
   */
  default void linearBf16(Tensor y, Tensor xLow, Tensor wLow, Tensor bias, int n, int in,
      int out) {
    gemmBf16(false, true, n, out, in, 1f, xLow, in, wLow, in, 0f, y, out);
    if (bias != null) {
      biasAdd(y, bias, n, out);
    }
  }

  /**
   * Backward of {@link #linear}: dx (n, in) = dy * w (written when accumulate is false, else
   * added; dx may be null), dw (out, in) += dy^T x, dbias (out) += column sums of dy (may be null).
   */
  default void linearBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dy, Tensor x, Tensor w,
      int n, int in, int out, boolean accumulate) {
    if (dx != null) {
      gemm(false, false, n, in, out, 1f, dy, out, w, in, accumulate ? 1f : 0f, dx, in);
    }
    gemm(true, false, out, in, n, 1f, dy, out, x, in, 1f, dw, in);
    if (dbias != null) {
      biasBackward(dbias, dy, n, out);
    }
  }

  /**
   * Backward of {@link #linearBf16}: dx (n, in) = dyLow * wLow (written when accumulate is false,
   * else added; dx may be null), dw (out, in) += dyLow^T xLow, dbias (out) += column sums of the
   * fp32 dy (may be null). dyLow, xLow, wLow BF16; dy, dx, dw, dbias F32.
   */
  default void linearBackwardBf16(Tensor dx, Tensor dw, Tensor dbias, Tensor dy, Tensor dyLow,
      Tensor xLow, Tensor wLow, int n, int in, int out, boolean accumulate) {
    if (dx != null) {
      gemmBf16(false, false, n, in, out, 1f, dyLow, out, wLow, in, accumulate ? 1f : 0f, dx, in);
    }
    gemmBf16(true, false, out, in, n, 1f, dyLow, out, xLow, in, 1f, dw, in);
    if (dbias != null) {
      biasBackward(dbias, dy, n, out);
    }
  }

  // ---- embeddings ----

  /** out (B*T, C) = wte[ids] + wpe[pos] + wtt[tt]; ids, tt (B*T) I32, tt may be null. */
  void embeddingsForward(Tensor out, Tensor ids, Tensor tt, Tensor wte, Tensor wpe, Tensor wtt,
      int b, int t);

  /** Scatter-adds dout into dwte, dwpe, dwtt (dwtt may be null); deterministic. */
  void embeddingsBackward(Tensor dwte, Tensor dwpe, Tensor dwtt, Tensor dout, Tensor ids,
      Tensor tt, int b, int t);

  // ---- layer norm ----

  /**
   * h = x + residual (residual may be null); out = LN(h) * gamma + beta; saves mean, rstd (n)
   * and h (n, c) into hsave when not null.
   */
  void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor hsave, Tensor x,
      Tensor residual, Tensor gamma, Tensor beta, int n, int c, float eps);

  /** dh = dLoss/dh (written); dgamma, dbeta accumulated. */
  void layerNormBackward(Tensor dh, Tensor dgamma, Tensor dbeta, Tensor dout, Tensor h,
      Tensor mean, Tensor rstd, Tensor gamma, int n, int c);

  /**
   * Dropout fused into the residual layer norm (BERT's BertSelfOutput / BertOutput): h =
   * dropout(y) + residual (residual may be null), out = LN(h) * gamma + beta; saves mean, rstd
   * (n) and h (n, c) into hsave when not null; out may be y. The dropout mask of (seed, offset) is
   * the one {@link #dropoutForward} draws for y (element i = row * c + col), and the result has the
   * same bits as {@code dropoutForward} then {@link #layerNormForward}; p = 0 is the layer norm
   * alone. outLow (BF16, n * c elements, or null) also gets out rounded to bf16, the same bits as
   * {@link #toBf16} of out (the next Linear's bf16 input, written in the same pass).
   */
  void dropoutLayerNormForward(Tensor out, Tensor outLow, Tensor mean, Tensor rstd, Tensor hsave,
      Tensor y, Tensor residual, Tensor gamma, Tensor beta, int n, int c, float eps, float p,
      long seed, long offset);

  /** {@link #dropoutLayerNormForward} without the bf16 copy (outLow null). */
  default void dropoutLayerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor hsave,
      Tensor y, Tensor residual, Tensor gamma, Tensor beta, int n, int c, float eps, float p,
      long seed, long offset) {
    dropoutLayerNormForward(out, null, mean, rstd, hsave, y, residual, gamma, beta, n, c, eps, p,
        seed, offset);
  }

  /**
   * Its backward: dh = dLoss/dh, the residual's gradient (written); dy = dh * keep / (1 - p), y's
   * gradient with the same mask (written; may be null); dgamma, dbeta accumulated. dh and dy may
   * be dout, not each other. Same bits as {@link #layerNormBackward} then {@link
   * #dropoutBackward}. dyLow (BF16, n * c elements, or null; needs dy) also gets dy rounded to
   * bf16, the same bits as {@link #toBf16} of dy. dbiasY (F32, c elements, or null; needs dy)
   * accumulates the column sums of dy, the bias gradient of the Linear that produced y: the same
   * as {@link #biasBackward}(dbiasY, dy, n, c) afterwards, up to the (fixed, deterministic)
   * summation order; the CUDA backend's default kernels sum it in the same pass.
   */
  void dropoutLayerNormBackward(Tensor dh, Tensor dy, Tensor dyLow, Tensor dgamma, Tensor dbeta,
      Tensor dbiasY, Tensor dout, Tensor h, Tensor mean, Tensor rstd, Tensor gamma, int n, int c,
      float p, long seed, long offset);

  /** {@link #dropoutLayerNormBackward} without the bias gradient (dbiasY null). */
  default void dropoutLayerNormBackward(Tensor dh, Tensor dy, Tensor dyLow, Tensor dgamma,
      Tensor dbeta, Tensor dout, Tensor h, Tensor mean, Tensor rstd, Tensor gamma, int n, int c,
      float p, long seed, long offset) {
    dropoutLayerNormBackward(dh, dy, dyLow, dgamma, dbeta, null, dout, h, mean, rstd, gamma, n, c,
        p, seed, offset);
  }

  /** {@link #dropoutLayerNormBackward} without the bf16 copy and the bias gradient. */
  default void dropoutLayerNormBackward(Tensor dh, Tensor dy, Tensor dgamma, Tensor dbeta,
      Tensor dout, Tensor h, Tensor mean, Tensor rstd, Tensor gamma, int n, int c, float p,
      long seed, long offset) {
    dropoutLayerNormBackward(dh, dy, null, dgamma, dbeta, null, dout, h, mean, rstd, gamma, n, c,
        p, seed, offset);
  }

  // ---- bias, GELU, tanh ----

  void biasAdd(Tensor x, Tensor bias, int n, int c);

  void biasBackward(Tensor dbias, Tensor dout, int n, int c);

  /**
   * pre = x + bias (bias may be null; pre may be x); out = gelu(pre) (exact erf); out may be x.
   * outLow (BF16, n * c elements, or null) also gets out rounded to bf16, the same bits as
   * {@link #toBf16} of out (the next Linear's bf16 input, written in the same pass).
   *
   * <p>For inference, the outputs only the backward (or nobody) reads may be skipped: pre may be
   * null (x + bias is not stored, and x is not written unless out is x), and out may be null when
   * outLow is not (only outLow is written, with the same bits as when out is given). out and
   * outLow both null is an {@link IllegalArgumentException}. {@link #biasGeluBackward} needs the
   * pre of a call that stored it.
   */
  void biasGeluForward(Tensor out, Tensor outLow, Tensor pre, Tensor x, Tensor bias, int n, int c);

  /** {@link #biasGeluForward} without the bf16 copy (outLow null; so out must not be null). */
  default void biasGeluForward(Tensor out, Tensor pre, Tensor x, Tensor bias, int n, int c) {
    biasGeluForward(out, null, pre, x, bias, n, c);
  }

  /**
   * dpre = dout * gelu'(pre); dbias += column sums (dbias may be null). dpreLow (BF16, n * c
   * elements, or null) also gets dpre rounded to bf16, the same bits as {@link #toBf16} of dpre.
   */
  void biasGeluBackward(Tensor dpre, Tensor dpreLow, Tensor dbias, Tensor dout, Tensor pre, int n,
      int c);

  /** {@link #biasGeluBackward} without the bf16 copy (dpreLow null). */
  default void biasGeluBackward(Tensor dpre, Tensor dbias, Tensor dout, Tensor pre, int n,
      int c) {
    biasGeluBackward(dpre, null, dbias, dout, pre, n, c);
  }

  void tanhForward(Tensor out, Tensor x);

  void tanhBackward(Tensor dx, Tensor dout, Tensor out);

  // ---- per-step scalars ----

  /**
   * While set (non-null), every op that takes a dropout seed, and adamw's learning rate and step,
   * read those from this tensor instead of their arguments: an I32 tensor of 4 elements of this
   * backend holding {@link StepScalars#pack}. For CUDA graphs: a captured step replays with the
   * values uploaded into it before each replay. null restores the arguments.
   */
  void useStepScalars(Tensor scalars);

  /** The tensor set by {@link #useStepScalars}, or null. */
  Tensor stepScalars();

  // ---- dropout ----

  void dropoutForward(Tensor out, Tensor x, float p, long seed, long offset);

  void dropoutBackward(Tensor dx, Tensor dout, float p, long seed, long offset);

  /** The uniforms dropout draws for (seed, offset), one per element of u. */
  void philoxUniform(Tensor u, long seed, long offset);

  // ---- attention ----

  /**
   * Self-attention core from packed qkv (B, T, 3C) with C = nh * d; mask (B*T) I32 1 = real key
   * (may be null); out (B, T, C); lse (B, nh, T) saved for the backward.
   */
  void attentionForward(Tensor out, Tensor lse, Tensor qkv, Tensor mask, int b, int t, int nh,
      int d, float p, long seed, long offset);

  /** dqkv (B, T, 3C) from dout (B, T, C), recomputing the probabilities. */
  void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse,
      Tensor mask, int b, int t, int nh, int d, float p, long seed, long offset);

  /**
   * {@link #attentionForward} on bf16 tensor cores (CUDA; the CPU computes the same rounding):
   * q, k, v rounded to bf16, fp32 accumulation and softmax, P rounded to bf16 before P v
   * ({@code attention_tc} in bertj.h). Same arguments and outputs, plus outLow: null, or a BF16
   * tensor of out's element count (B*T*C) that receives {@link #toBf16} of out in the same pass
   * (for a bf16 GEMM that reads the context; out itself is unchanged by passing it). For
   * inference out may be null when outLow is not: only outLow (the same bits as when out is
   * given) and lse are written; out and outLow both null is an {@link IllegalArgumentException}.
   * {@link #attentionBackwardLowp} needs the out of a call that stored it. Returns false,
   * computing nothing, when the shape is not supported (t > 128 or d not in {32, 64}); the caller
   * then uses {@link #attentionForward} (which needs an fp32 out).
   */
  boolean attentionForwardLowp(Tensor out, Tensor outLow, Tensor lse, Tensor qkv, Tensor mask,
      int b, int t, int nh, int d, float p, long seed, long offset);

  /**
   * {@link #attentionForwardLowp} without the bf16 copy of out (outLow = null; so out must not be
   * null).
   */
  default boolean attentionForwardLowp(Tensor out, Tensor lse, Tensor qkv, Tensor mask, int b,
      int t, int nh, int d, float p, long seed, long offset) {
    return attentionForwardLowp(out, null, lse, qkv, mask, b, t, nh, d, p, seed, offset);
  }

  /**
   * {@link #attentionBackward} with the rounding of {@link #attentionForwardLowp} (dout, dS and P
   * rounded to bf16 before their products); for an out and lse from that forward. dqkvLow: null,
   * or a BF16 tensor of dqkv's element count (B*T*3C) that receives {@link #toBf16} of dqkv in
   * the same pass. Returns false, computing nothing, when the shape is not supported.
   */
  boolean attentionBackwardLowp(Tensor dqkv, Tensor dqkvLow, Tensor dout, Tensor qkv, Tensor out,
      Tensor lse, Tensor mask, int b, int t, int nh, int d, float p, long seed, long offset);

  /** {@link #attentionBackwardLowp} without the bf16 copy of dqkv (dqkvLow = null). */
  default boolean attentionBackwardLowp(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out,
      Tensor lse, Tensor mask, int b, int t, int nh, int d, float p, long seed, long offset) {
    return attentionBackwardLowp(dqkv, null, dout, qkv, out, lse, mask, b, t, nh, d, p, seed,
        offset);
  }

  // ---- losses ----

  /** Per-row cross-entropy losses (b) and dlogits (b, l) * gradScale (dlogits may be null). */
  void crossEntropy(Tensor losses, Tensor dlogits, Tensor logits, Tensor labels, int b, int l,
      float gradScale);

  void bceWithLogits(Tensor losses, Tensor dlogits, Tensor logits, Tensor targets,
      float gradScale);

  void mse(Tensor losses, Tensor dpred, Tensor pred, Tensor targets, float gradScale);

  // ---- optimizer ----

  /** out[0] = sum of squares of x. */
  void sumSquares(Tensor out, Tensor x);

  /** scale[0] = min(1, maxNorm / (sqrt(normSq[0]) + 1e-6)). */
  void clipScale(Tensor scale, Tensor normSq, float maxNorm);

  /**
   * torch.optim.AdamW step over flat p, g, m, v; weight decay only on [decayBegin, decayEnd);
   * gradScale (one element, may be null) multiplies g. pLow: null, or a BF16 tensor of p's
   * element count that receives {@link #toBf16} of the updated p in the same pass (the bf16
   * mirror of the parameters in mixed precision).
   */
  void adamw(Tensor p, Tensor pLow, Tensor g, Tensor m, Tensor v, long decayBegin, long decayEnd,
      float lr, float beta1, float beta2, float eps, float weightDecay, int step,
      Tensor gradScale);

  /** {@link #adamw(Tensor, Tensor, Tensor, Tensor, Tensor, long, long, float, float, float,
   * float, float, int, Tensor) adamw} without the bf16 copy (pLow = null). */
  default void adamw(Tensor p, Tensor g, Tensor m, Tensor v, long decayBegin, long decayEnd,
      float lr, float beta1, float beta2, float eps, float weightDecay, int step,
      Tensor gradScale) {
    adamw(p, null, g, m, v, decayBegin, decayEnd, lr, beta1, beta2, eps, weightDecay, step,
        gradScale);
  }

  /**
   * Captures the ops that body queues into a {@link DeviceGraph}, WITHOUT running them: the work
   * happens at {@link DeviceGraph#replay}. Inside body only ops may be queued: allocating or
   * freeing a tensor, uploading, downloading or synchronizing throws
   * {@link GraphCaptureException}, as does a nested capture; so does any op that cannot be
   * captured. Whatever body throws is rethrown after the capture has been ended and nothing is
   * kept. Java state that body changes is changed once, at capture; a replay changes only backend
   * memory.
   */
  default DeviceGraph captureGraph(Runnable body) {
    throw new UnsupportedOperationException(name() + " cannot capture graphs");
  }

  /** Whether a {@link #captureGraph} is in progress. */
  default boolean isCapturing() {
    return false;
  }

  /**
   * Starts recording how long each queued op takes on the device (CUDA: an event after every
   * op; the CPU backend does not profile and returns false). For benchmarks: it adds work.
   */
  default boolean startProfile() {
    return false;
  }

  /**
   * Stops recording, waits for the device and returns {op: [milliseconds, count]} summed since
   * {@link #startProfile()}, in descending time (empty where profiling is not supported). An op's
   * time is from the end of the op queued before it to its own end, so it includes any idle gap.
   */
  default java.util.Map<String, double[]> stopProfile() {
    return java.util.Map.of();
  }

  /** Releases backend-wide resources (handles, streams, cached memory). */
  @Override
  void close();
}
