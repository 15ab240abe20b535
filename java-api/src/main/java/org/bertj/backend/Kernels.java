package org.bertj.backend;

/**
 * The raw C API of bertj.h without its prefix: one implementation per native library
 * ({@code bj_cpu_}, {@code bj_cuda_}). Addresses are raw pointers; {@link NativeBackend} checks
 * every argument before calling. Each method returns the native status (0 = ok). {@code sc}: the
 * address of a {@code bj_step_scalars} in backend memory, or 0 (the seed, lr and step arguments
 * count).
 */
interface Kernels {
  String lastError();

  int fill(long x, long n, float value, long stream);

  int axpy(long y, long x, long n, float alpha, long stream);

  int scaleBy(long x, long n, long scale, long stream);

  int toBf16(long out, long x, long n, long stream);

  int fromBf16(long out, long x, long n, long stream);

  int gatherRows(long out, long in, long idx, int m, int c, int nIn, long stream);

  int embeddingsForward(long out, long ids, long tt, long wte, long wpe, long wtt, int b, int t,
      int c, int v, int p, int tv, long stream);

  int embeddingsBackward(long dwte, long dwpe, long dwtt, long dout, long ids, long tt, int b,
      int t, int c, int v, int p, int tv, long stream);

  int layerNormForward(long out, long mean, long rstd, long hsave, long x, long residual,
      long gamma, long beta, int n, int c, float eps, long stream);

  int layerNormBackward(long dh, long dgamma, long dbeta, long dout, long h, long mean, long rstd,
      long gamma, int n, int c, long stream);

  int dropoutLayerNormForward(long out, long outLow, long mean, long rstd, long hsave, long y,
      long residual, long gamma, long beta, int n, int c, float eps, float p, long seed,
      long offset, long sc, long stream);

  int dropoutLayerNormBackward(long dh, long dy, long dyLow, long dgamma, long dbeta,
      long dbiasY, long dout, long h, long mean, long rstd, long gamma, int n, int c, float p,
      long seed, long offset, long sc, long stream);

  int biasAdd(long x, long bias, int n, int c, long stream);

  int biasBackward(long dbias, long dout, int n, int c, long stream);

  /** outLow: the BF16 copy of out, or 0; out (when outLow is not 0) and pre may be 0. */
  int biasGeluForward(long out, long outLow, long pre, long x, long bias, int n, int c,
      long stream);

  int biasGeluBackward(long dpre, long dpreLow, long dbias, long dout, long pre, int n, int c,
      long stream);

  int tanhForward(long out, long x, long n, long stream);

  int tanhBackward(long dx, long dout, long out, long n, long stream);

  int dropoutForward(long out, long x, long n, float p, long seed, long offset, long sc,
      long stream);

  int dropoutBackward(long dx, long dout, long n, float p, long seed, long offset, long sc,
      long stream);

  int philoxUniform(long u, long n, long seed, long offset, long sc, long stream);

  int attentionForward(long out, long lse, long qkv, long mask, int b, int t, int nh, int d,
      float p, long seed, long offset, long sc, long stream);

  int attentionBackward(long dqkv, long dout, long qkv, long out, long lse, long mask, int b,
      int t, int nh, int d, float p, long seed, long offset, long sc, long stream);

  /** outLow: the BF16 copy of out, or 0; out may be 0 when outLow is not. */
  int attentionTcForward(long out, long outLow, long lse, long qkv, long mask, int b, int t,
      int nh, int d, float p, long seed, long offset, long sc, long stream);

  /** dqkvLow: the BF16 copy of dqkv, or 0. */
  int attentionTcBackward(long dqkv, long dqkvLow, long dout, long qkv, long out, long lse,
      long mask, int b, int t, int nh, int d, float p, long seed, long offset, long sc,
      long stream);

  int crossEntropy(long losses, long dlogits, long logits, long labels, int b, int l,
      float gradScale, long stream);

  int bceWithLogits(long losses, long dlogits, long logits, long targets, long n, float gradScale,
      long stream);

  int mse(long losses, long dpred, long pred, long targets, long n, float gradScale, long stream);

  int sumSquares(long out, long x, long n, long stream);

  int clipScale(long scale, long normSq, float maxNorm, long stream);

  /** pLow: the BF16 copy of the updated p, or 0. */
  int adamw(long p, long pLow, long g, long m, long v, long n, long decayBegin, long decayEnd,
      float lr, float beta1, float beta2, float eps, float wd, int step, long sc, long gradScale,
      long stream);
}
