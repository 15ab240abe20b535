package org.bertj.backend;

/**
 * The shared half of the CPU and CUDA backends: checks every op's arguments in Java, then calls
 * the backend's {@link Kernels} and turns a failed status into a {@link NativeException}.
 * Subclasses provide memory, copies, GEMM and the stream.
 */
abstract class NativeBackend implements Backend {
  private final Kernels k;
  /** {@link #useStepScalars}: I32 (4), or null. */
  private Tensor stepScalars;

  NativeBackend(Kernels kernels) {
    this.k = kernels;
  }

  /** The stream ops are queued on (0 on the CPU). */
  abstract long stream();

  // ---- argument checks ----

  final Tensor f32(Tensor t, String name) {
    return Tensor.require(t, name, this, DType.F32);
  }

  final Tensor i32(Tensor t, String name) {
    return Tensor.require(t, name, this, DType.I32);
  }

  /** Requires an F32 tensor of exactly n elements. */
  final long f32(Tensor t, String name, long n) {
    return count(f32(t, name), name, n).address();
  }

  /** Like {@link #f32(Tensor, String, long)} but null gives address 0. */
  final long f32OrNull(Tensor t, String name, long n) {
    return t == null ? 0L : f32(t, name, n);
  }

  /** A BF16 tensor of exactly n elements, or null (address 0): the ops' optional bf16 copies. */
  final long bf16OrNull(Tensor t, String name, long n) {
    return t == null ? 0L : count(Tensor.require(t, name, this, DType.BF16), name, n).address();
  }

  final long i32(Tensor t, String name, long n) {
    return count(i32(t, name), name, n).address();
  }

  final long i32OrNull(Tensor t, String name, long n) {
    return t == null ? 0L : i32(t, name, n);
  }

  private static Tensor count(Tensor t, String name, long n) {
    if (t.numel() != n) {
      throw new IllegalArgumentException(name + " must have " + n + " elements, has " + t.numel()
          + " (" + t + ")");
    }
    return t;
  }

  static void positive(String name, long v) {
    if (v <= 0) {
      throw new IllegalArgumentException(name + " must be > 0, got " + v);
    }
  }

  /** The ops whose fp32 out is optional need it or its bf16 copy. */
  static void needOutOrLow(Tensor out, Tensor outLow) {
    if (out == null && outLow == null) {
      throw new IllegalArgumentException(
          "out and outLow are both null: at least one output is needed");
    }
  }

  static void probability(float p) {
    if (!(p >= 0f && p < 1f)) {
      throw new IllegalArgumentException("dropout probability must be in [0, 1), got " + p);
    }
  }

  final void ok(int status, String op) {
    if (status != 0) {
      throw new NativeException(op, status, k.lastError());
    }
    afterOp(op);
  }

  /** Called after every op is queued (the CUDA backend's profiler marks it there). */
  void afterOp(String op) {}

  // ---- memory helpers implemented by kernels ----

  @Override
  public void fill(Tensor x, float value) {
    f32(x, "x");
    ok(k.fill(x.address(), x.numel(), value, stream()), "fill");
  }

  @Override
  public void axpy(Tensor y, Tensor x, float alpha) {
    long n = f32(y, "y").numel();
    ok(k.axpy(y.address(), f32(x, "x", n), n, alpha, stream()), "axpy");
  }

  @Override
  public void scaleBy(Tensor x, Tensor scale) {
    f32(x, "x");
    ok(k.scaleBy(x.address(), x.numel(), f32(scale, "scale", 1), stream()), "scaleBy");
  }

  @Override
  public void toBf16(Tensor out, Tensor x) {
    long n = f32(x, "x").numel();
    Tensor.require(out, "out", this, DType.BF16);
    if (out.numel() != n) {
      throw new IllegalArgumentException("toBf16: out has " + out.numel() + " elements, x has " + n);
    }
    ok(k.toBf16(out.address(), x.address(), n, stream()), "toBf16");
  }

  @Override
  public void fromBf16(Tensor out, Tensor x) {
    long n = f32(out, "out").numel();
    Tensor.require(x, "x", this, DType.BF16);
    if (x.numel() != n) {
      throw new IllegalArgumentException("fromBf16: out has " + n + " elements, x has " + x.numel());
    }
    ok(k.fromBf16(out.address(), x.address(), n, stream()), "fromBf16");
  }

  @Override
  public void gatherRows(Tensor out, Tensor in, Tensor idx, int m, int c) {
    positive("m", m);
    positive("c", c);
    long outN = (long) m * c;
    long outAddr = f32(out, "out", outN);
    long inN = f32(in, "in").numel();
    if (inN % c != 0 || inN / c > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("gatherRows: in " + in + " is not a (rows, " + c
          + ") matrix");
    }
    long outEnd = outAddr + outN * Float.BYTES;
    long inEnd = in.address() + inN * Float.BYTES;
    if (outAddr < inEnd && in.address() < outEnd) {
      throw new IllegalArgumentException("gatherRows: out overlaps in");
    }
    ok(k.gatherRows(outAddr, in.address(), i32(idx, "idx", m), m, c, (int) (inN / c), stream()),
        "gatherRows");
  }

  // ---- embeddings ----

  @Override
  public void embeddingsForward(Tensor out, Tensor ids, Tensor tt, Tensor wte, Tensor wpe,
      Tensor wtt, int b, int t) {
    positive("batch", b);
    positive("seq", t);
    int c = (int) f32(wte, "wte").dim(-1);
    int v = rows(wte, "wte", c);
    int p = rows(f32(wpe, "wpe"), "wpe", c);
    int tv = rows(f32(wtt, "wtt"), "wtt", c);
    if (t > p) {
      throw new IllegalArgumentException("sequence length " + t + " exceeds the " + p
          + " position embeddings");
    }
    long n = (long) b * t;
    ok(k.embeddingsForward(f32(out, "out", n * c), i32(ids, "ids", n), i32OrNull(tt, "tt", n),
        wte.address(), wpe.address(), wtt.address(), b, t, c, v, p, tv, stream()),
        "embeddingsForward");
  }

  @Override
  public void embeddingsBackward(Tensor dwte, Tensor dwpe, Tensor dwtt, Tensor dout, Tensor ids,
      Tensor tt, int b, int t) {
    positive("batch", b);
    positive("seq", t);
    int c = (int) f32(dwte, "dwte").dim(-1);
    int v = rows(dwte, "dwte", c);
    int p = rows(f32(dwpe, "dwpe"), "dwpe", c);
    int tv = dwtt == null ? 1 : rows(f32(dwtt, "dwtt"), "dwtt", c);
    long n = (long) b * t;
    ok(k.embeddingsBackward(dwte.address(), dwpe.address(), dwtt == null ? 0L : dwtt.address(),
        f32(dout, "dout", n * c), i32(ids, "ids", n),
        dwtt == null ? 0L : i32OrNull(tt, "tt", n), b, t, c, v, p, tv, stream()),
        "embeddingsBackward");
  }

  private static int rows(Tensor table, String name, int c) {
    if (c <= 0 || table.numel() % c != 0) {
      throw new IllegalArgumentException(name + " " + table + " is not a (rows, " + c + ") table");
    }
    return Math.toIntExact(table.numel() / c);
  }

  // ---- layer norm ----

  @Override
  public void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor hsave, Tensor x,
      Tensor residual, Tensor gamma, Tensor beta, int n, int c, float eps) {
    positive("n", n);
    positive("c", c);
    long nc = (long) n * c;
    ok(k.layerNormForward(f32(out, "out", nc), f32(mean, "mean", n), f32(rstd, "rstd", n),
        f32OrNull(hsave, "hsave", nc), f32(x, "x", nc), f32OrNull(residual, "residual", nc),
        f32(gamma, "gamma", c), f32(beta, "beta", c), n, c, eps, stream()), "layerNormForward");
  }

  @Override
  public void layerNormBackward(Tensor dh, Tensor dgamma, Tensor dbeta, Tensor dout, Tensor h,
      Tensor mean, Tensor rstd, Tensor gamma, int n, int c) {
    positive("n", n);
    positive("c", c);
    long nc = (long) n * c;
    ok(k.layerNormBackward(f32(dh, "dh", nc), f32(dgamma, "dgamma", c), f32(dbeta, "dbeta", c),
        f32(dout, "dout", nc), f32(h, "h", nc), f32(mean, "mean", n), f32(rstd, "rstd", n),
        f32(gamma, "gamma", c), n, c, stream()), "layerNormBackward");
  }

  @Override
  public void dropoutLayerNormForward(Tensor out, Tensor outLow, Tensor mean, Tensor rstd,
      Tensor hsave, Tensor y, Tensor residual, Tensor gamma, Tensor beta, int n, int c, float eps,
      float p, long seed, long offset) {
    positive("n", n);
    positive("c", c);
    probability(p);
    long nc = (long) n * c;
    ok(k.dropoutLayerNormForward(f32(out, "out", nc), bf16OrNull(outLow, "outLow", nc),
        f32(mean, "mean", n), f32(rstd, "rstd", n), f32OrNull(hsave, "hsave", nc),
        f32(y, "y", nc), f32OrNull(residual, "residual", nc), f32(gamma, "gamma", c),
        f32(beta, "beta", c), n, c, eps, p, seed, offset, sc(), stream()),
        "dropoutLayerNormForward");
  }

  @Override
  public void dropoutLayerNormBackward(Tensor dh, Tensor dy, Tensor dyLow, Tensor dgamma,
      Tensor dbeta, Tensor dbiasY, Tensor dout, Tensor h, Tensor mean, Tensor rstd, Tensor gamma,
      int n, int c, float p, long seed, long offset) {
    positive("n", n);
    positive("c", c);
    probability(p);
    long nc = (long) n * c;
    long dhA = f32(dh, "dh", nc);
    long dyA = f32OrNull(dy, "dy", nc);
    if (dyA != 0L && dyA == dhA) {
      throw new IllegalArgumentException("dy must not alias dh (both " + dh + ")");
    }
    long dyLowA = bf16OrNull(dyLow, "dyLow", nc);
    if (dyLowA != 0L && dyA == 0L) {
      throw new IllegalArgumentException("dyLow needs dy (dy is null)");
    }
    long dbiasYA = f32OrNull(dbiasY, "dbiasY", c);
    if (dbiasYA != 0L && dyA == 0L) {
      throw new IllegalArgumentException("dbiasY needs dy (dy is null)");
    }
    ok(k.dropoutLayerNormBackward(dhA, dyA, dyLowA,
        f32(dgamma, "dgamma", c), f32(dbeta, "dbeta", c), dbiasYA, f32(dout, "dout", nc),
        f32(h, "h", nc), f32(mean, "mean", n), f32(rstd, "rstd", n), f32(gamma, "gamma", c), n, c,
        p, seed, offset, sc(), stream()), "dropoutLayerNormBackward");
  }

  // ---- bias, GELU, tanh ----

  @Override
  public void biasAdd(Tensor x, Tensor bias, int n, int c) {
    positive("n", n);
    positive("c", c);
    ok(k.biasAdd(f32(x, "x", (long) n * c), f32(bias, "bias", c), n, c, stream()), "biasAdd");
  }

  @Override
  public void biasBackward(Tensor dbias, Tensor dout, int n, int c) {
    positive("n", n);
    positive("c", c);
    ok(k.biasBackward(f32(dbias, "dbias", c), f32(dout, "dout", (long) n * c), n, c, stream()),
        "biasBackward");
  }

  @Override
  public void biasGeluForward(Tensor out, Tensor outLow, Tensor pre, Tensor x, Tensor bias, int n,
      int c) {
    positive("n", n);
    positive("c", c);
    long nc = (long) n * c;
    needOutOrLow(out, outLow);
    ok(k.biasGeluForward(f32OrNull(out, "out", nc), bf16OrNull(outLow, "outLow", nc),
        f32OrNull(pre, "pre", nc), f32(x, "x", nc), f32OrNull(bias, "bias", c), n, c, stream()),
        "biasGeluForward");
  }

  @Override
  public void biasGeluBackward(Tensor dpre, Tensor dpreLow, Tensor dbias, Tensor dout, Tensor pre,
      int n, int c) {
    positive("n", n);
    positive("c", c);
    long nc = (long) n * c;
    ok(k.biasGeluBackward(f32(dpre, "dpre", nc), bf16OrNull(dpreLow, "dpreLow", nc),
        f32OrNull(dbias, "dbias", c), f32(dout, "dout", nc), f32(pre, "pre", nc), n, c,
        stream()), "biasGeluBackward");
  }

  @Override
  public void tanhForward(Tensor out, Tensor x) {
    long n = f32(x, "x").numel();
    ok(k.tanhForward(f32(out, "out", n), x.address(), n, stream()), "tanhForward");
  }

  @Override
  public void tanhBackward(Tensor dx, Tensor dout, Tensor out) {
    long n = f32(out, "out").numel();
    ok(k.tanhBackward(f32(dx, "dx", n), f32(dout, "dout", n), out.address(), n, stream()),
        "tanhBackward");
  }

  // ---- per-step scalars ----

  @Override
  public void useStepScalars(Tensor scalars) {
    if (scalars != null) {
      count(i32(scalars, "step scalars"), "step scalars", StepScalars.INTS);
      // bj_step_scalars starts with a uint64 (an 8-byte load on the device)
      if (scalars.address() % 8 != 0) {
        throw new IllegalArgumentException("step scalars must be 8-byte aligned (" + scalars
            + " is a view at an odd element)");
      }
    }
    stepScalars = scalars;
  }

  @Override
  public Tensor stepScalars() {
    return stepScalars;
  }

  /** The ops' sc argument: the step scalars' address, or 0 when none are set. */
  private long sc() {
    if (stepScalars == null) {
      return 0L;
    }
    if (stepScalars.isClosed()) {
      throw new IllegalStateException("the step scalars " + stepScalars
          + " were closed while in use (call useStepScalars(null) first)");
    }
    return stepScalars.address();
  }

  // ---- dropout ----

  @Override
  public void dropoutForward(Tensor out, Tensor x, float p, long seed, long offset) {
    probability(p);
    long n = f32(x, "x").numel();
    ok(k.dropoutForward(f32(out, "out", n), x.address(), n, p, seed, offset, sc(), stream()),
        "dropoutForward");
  }

  @Override
  public void dropoutBackward(Tensor dx, Tensor dout, float p, long seed, long offset) {
    probability(p);
    long n = f32(dout, "dout").numel();
    ok(k.dropoutBackward(f32(dx, "dx", n), dout.address(), n, p, seed, offset, sc(), stream()),
        "dropoutBackward");
  }

  @Override
  public void philoxUniform(Tensor u, long seed, long offset) {
    f32(u, "u");
    ok(k.philoxUniform(u.address(), u.numel(), seed, offset, sc(), stream()), "philoxUniform");
  }

  // ---- attention ----

  private static void attentionDims(int b, int t, int nh, int d) {
    positive("batch", b);
    positive("seq", t);
    positive("heads", nh);
    positive("head dim", d);
  }

  @Override
  public void attentionForward(Tensor out, Tensor lse, Tensor qkv, Tensor mask, int b, int t,
      int nh, int d, float p, long seed, long offset) {
    attentionDims(b, t, nh, d);
    probability(p);
    long bt = (long) b * t;
    long c = (long) nh * d;
    ok(k.attentionForward(f32(out, "out", bt * c), f32(lse, "lse", bt * nh),
        f32(qkv, "qkv", bt * 3 * c), i32OrNull(mask, "mask", bt), b, t, nh, d, p, seed, offset,
        sc(), stream()), "attentionForward");
  }

  @Override
  public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse,
      Tensor mask, int b, int t, int nh, int d, float p, long seed, long offset) {
    attentionDims(b, t, nh, d);
    probability(p);
    long bt = (long) b * t;
    long c = (long) nh * d;
    ok(k.attentionBackward(f32(dqkv, "dqkv", bt * 3 * c), f32(dout, "dout", bt * c),
        f32(qkv, "qkv", bt * 3 * c), f32(out, "out", bt * c), f32(lse, "lse", bt * nh),
        i32OrNull(mask, "mask", bt), b, t, nh, d, p, seed, offset, sc(), stream()),
        "attentionBackward");
  }

  /** The status code of an unsupported shape or option (BJ_ERR_UNSUPPORTED). */
  private static final int ERR_UNSUPPORTED = 3;

  /**
   * The shapes both backends' tensor-core attention kernels take (T <= 128, head dim 32 or 64,
   * B and NH <= 65535; the kernels check it too). Answered here, before the call, so that the
   * answer is the same while a graph is captured (a captured call is not run, so its status
   * cannot choose the path).
   */
  private static boolean tcSupports(int b, int t, int nh, int d) {
    return t <= 128 && (d == 32 || d == 64) && b <= 65535 && nh <= 65535;
  }

  @Override
  public boolean attentionForwardLowp(Tensor out, Tensor outLow, Tensor lse, Tensor qkv,
      Tensor mask, int b, int t, int nh, int d, float p, long seed, long offset) {
    attentionDims(b, t, nh, d);
    probability(p);
    needOutOrLow(out, outLow);
    long bt = (long) b * t;
    long c = (long) nh * d;
    if (!tcSupports(b, t, nh, d)) {
      return false;
    }
    int status = k.attentionTcForward(f32OrNull(out, "out", bt * c),
        bf16OrNull(outLow, "outLow", bt * c), f32(lse, "lse", bt * nh),
        f32(qkv, "qkv", bt * 3 * c), i32OrNull(mask, "mask", bt), b, t, nh, d, p, seed, offset,
        sc(), stream());
    if (status == ERR_UNSUPPORTED) {
      return false;
    }
    ok(status, "attentionForwardLowp");
    return true;
  }

  @Override
  public boolean attentionBackwardLowp(Tensor dqkv, Tensor dqkvLow, Tensor dout, Tensor qkv,
      Tensor out, Tensor lse, Tensor mask, int b, int t, int nh, int d, float p, long seed,
      long offset) {
    attentionDims(b, t, nh, d);
    probability(p);
    long bt = (long) b * t;
    long c = (long) nh * d;
    if (!tcSupports(b, t, nh, d)) {
      return false;
    }
    int status = k.attentionTcBackward(f32(dqkv, "dqkv", bt * 3 * c),
        bf16OrNull(dqkvLow, "dqkvLow", bt * 3 * c), f32(dout, "dout", bt * c),
        f32(qkv, "qkv", bt * 3 * c), f32(out, "out", bt * c), f32(lse, "lse", bt * nh),
        i32OrNull(mask, "mask", bt), b, t, nh, d, p, seed, offset, sc(), stream());
    if (status == ERR_UNSUPPORTED) {
      return false;
    }
    ok(status, "attentionBackwardLowp");
    return true;
  }

  // ---- losses ----

  @Override
  public void crossEntropy(Tensor losses, Tensor dlogits, Tensor logits, Tensor labels, int b,
      int l, float gradScale) {
    positive("batch", b);
    positive("labels", l);
    long bl = (long) b * l;
    ok(k.crossEntropy(f32(losses, "losses", b), f32OrNull(dlogits, "dlogits", bl),
        f32(logits, "logits", bl), i32(labels, "labels", b), b, l, gradScale, stream()),
        "crossEntropy");
  }

  @Override
  public void bceWithLogits(Tensor losses, Tensor dlogits, Tensor logits, Tensor targets,
      float gradScale) {
    long n = f32(logits, "logits").numel();
    ok(k.bceWithLogits(f32(losses, "losses", n), f32OrNull(dlogits, "dlogits", n),
        logits.address(), f32(targets, "targets", n), n, gradScale, stream()), "bceWithLogits");
  }

  @Override
  public void mse(Tensor losses, Tensor dpred, Tensor pred, Tensor targets, float gradScale) {
    long n = f32(pred, "pred").numel();
    ok(k.mse(f32(losses, "losses", n), f32OrNull(dpred, "dpred", n), pred.address(),
        f32(targets, "targets", n), n, gradScale, stream()), "mse");
  }

  // ---- optimizer ----

  @Override
  public void sumSquares(Tensor out, Tensor x) {
    f32(x, "x");
    ok(k.sumSquares(f32(out, "out", 1), x.address(), x.numel(), stream()), "sumSquares");
  }

  @Override
  public void clipScale(Tensor scale, Tensor normSq, float maxNorm) {
    if (!(maxNorm > 0f)) {
      throw new IllegalArgumentException("max grad norm must be > 0, got " + maxNorm);
    }
    ok(k.clipScale(f32(scale, "scale", 1), f32(normSq, "normSq", 1), maxNorm, stream()),
        "clipScale");
  }

  @Override
  public void adamw(Tensor p, Tensor pLow, Tensor g, Tensor m, Tensor v, long decayBegin,
      long decayEnd, float lr, float beta1, float beta2, float eps, float weightDecay, int step,
      Tensor gradScale) {
    long n = f32(p, "p").numel();
    long low = bf16OrNull(pLow, "pLow", n);
    if (decayBegin < 0 || decayBegin > decayEnd || decayEnd > n) {
      throw new IllegalArgumentException("decay range [" + decayBegin + ", " + decayEnd
          + ") is not inside [0, " + n + ")");
    }
    if (step < 1) {
      throw new IllegalArgumentException("AdamW step counts from 1, got " + step);
    }
    if (!(beta1 >= 0f && beta1 < 1f && beta2 >= 0f && beta2 < 1f)) {
      throw new IllegalArgumentException("AdamW betas must be in [0, 1), got " + beta1 + ", " + beta2);
    }
    ok(k.adamw(p.address(), low, f32(g, "g", n), f32(m, "m", n), f32(v, "v", n), n, decayBegin,
        decayEnd, lr, beta1, beta2, eps, weightDecay, step, sc(),
        f32OrNull(gradScale, "gradScale", 1), stream()), "adamw");
  }
}
