package org.bertj.model;

import org.bertj.io.BertConfig;
import java.util.Arrays;
import org.bertj.backend.Backend;
import org.bertj.backend.Precision;
import org.bertj.backend.Tensor;

/**
 * Hugging Face {@code BertSelfAttention}: query, key, value projections and the attention core
 * softmax(q k^T / sqrt(D) + mask) v with dropout (attention_probs_dropout_prob) on the
 * probabilities. Parameters {@code <prefix>.query.weight}, {@code key.weight},
 * {@code value.weight} (C, C) and their biases (C).
 *
 * <p>The three weights are adjacent in the flat buffer and read as one (3C, C) matrix, their
 * biases as one (3C) vector, so the projection is ONE GEMM producing packed qkv (B*T, 3C), the
 * layout {@link Backend#attentionForward} takes.
 *
 * <p>With bf16 parameters ({@link Parameters#precision()} BF16) the attention core runs on the
 * bf16 tensor cores ({@link Backend#attentionForwardLowp}: q, k, v, P rounded to bf16, fp32
 * accumulation and softmax) when the backend supports the shape (T <= 128, head size 32 or 64),
 * and in fp32 otherwise; the backward follows whichever path the forward took. System property
 * {@code bertj.attention.tc=false} keeps the fp32 attention in the bf16 mode (for comparisons).
 */
public final class BertSelfAttention {
  /** Saved activations. */
  public static final class Activations {
    /** (N, 3C) packed [q | k | v] per token (N = B*T, or the real tokens with padding removal). */
    public final Tensor qkv;
    /** (N, C) attention output (the context layer), heads side by side. */
    public final Tensor ctx;
    /** (B, NH, T) log-sum-exp of the scores, for the backward. */
    public final Tensor lse;
    /** (B*T, 3C) qkv on the padded layout the attention core reads (= qkv unless packed). */
    final Tensor qkvPad;
    /** (B*T, C) the attention core's output on the padded layout (= ctx unless packed). */
    final Tensor ctxPad;
    float p;
    long offset;
    /** The forward ran the bf16 tensor-core op (so the backward must too). */
    boolean lowp;

    Activations(Arena a, int b, int t, int n, boolean packed, int c, int nh) {
      qkv = a.take(n, 3L * c);
      ctx = a.take(n, c);
      lse = a.take(b, nh, t);
      qkvPad = packed ? a.take((long) b * t, 3L * c) : qkv;
      ctxPad = packed ? a.take((long) b * t, c) : ctx;
    }
  }

  private final Backend be;
  private final BertConfig config;
  private final Parameters ps;
  /** bertj.attention.tc=false (read when the model is built): bf16 keeps the fp32 attention. */
  private final boolean tcOff = "false".equalsIgnoreCase(System.getProperty("bertj.attention.tc"));
  /** The packed (3C, C) projection, as one Linear (so it follows the parameters' precision). */
  private final Linear qkv;

  /** Binds to {@code <prefix>.{query,key,value}.{weight,bias}}, which must be adjacent. */
  public BertSelfAttention(Parameters ps, String prefix, BertConfig c) {
    this.be = ps.backend();
    this.config = c;
    this.ps = ps;
    long h = c.getHiddenSize();
    String[] names = {"query", "key", "value"};
    Parameter[] w = new Parameter[3];
    Parameter[] bias = new Parameter[3];
    for (int i = 0; i < 3; i++) {
      w[i] = ps.get(prefix + "." + names[i] + ".weight");
      bias[i] = ps.get(prefix + "." + names[i] + ".bias");
      if (w[i].offset() != w[0].offset() + i * h * h
          || bias[i].offset() != bias[0].offset() + i * h
          || !Arrays.equals(w[i].shape(), new long[] {h, h})) {
        throw new IllegalArgumentException(prefix + ": query, key and value must be adjacent "
            + "(C, C) weights and (C) biases in the parameter buffer");
      }
    }
    Parameter wqkv = new Parameter(prefix + ".{query,key,value}.weight", new long[] {3 * h, h},
        w[0].offset(), true, ps.valueView(w[0].offset(), 3 * h, h),
        ps.gradView(w[0].offset(), 3 * h, h));
    Parameter bqkv = new Parameter(prefix + ".{query,key,value}.bias", new long[] {3 * h},
        bias[0].offset(), false, ps.valueView(bias[0].offset(), 3 * h),
        ps.gradView(bias[0].offset(), 3 * h));
    this.qkv = new Linear(ps, wqkv, bqkv, (int) h, (int) (3 * h));
  }

  /** Declares query, key, value weights (adjacent) and biases (adjacent). */
  public static void declare(Parameters.Layout l, String prefix, BertConfig c) {
    int h = c.getHiddenSize();
    for (String n : new String[] {"query", "key", "value"}) {
      Linear.declare(l, prefix + "." + n, h, h);
    }
  }

  Activations activations(Arena a, int b, int t) {
    return activations(a, b, t, b * t, false);
  }

  /** Activations for n token rows; packed: also the padded (B*T) qkv and context. */
  Activations activations(Arena a, int b, int t, int n, boolean packed) {
    return new Activations(a, b, t, n, packed, config.getHiddenSize(),
        config.getNumAttentionHeads());
  }

  /** ctx (N, C) = attention(x Wqkv^T + bqkv); mask (B*T) I32 1 = real key, may be null. */
  public void forward(Activations a, Tensor x, Tensor mask, int b, int t, DropoutRng rng) {
    forward(a, x, null, mask, b, t, rng, null, null);
  }

  /**
   * As {@link #forward(Activations, Tensor, Tensor, int, int, DropoutRng)}; bf16 precision: xLow,
   * when not null, is {@link #inputLow} holding bf16(x); ctxLow, when not null, is offered for
   * bf16(a.ctx); returns ctxLow when the attention wrote it (the tensor-core path), else null. With
   * padding removal (pk not null) x, a.qkv and a.ctx have pk.n rows: qkv is unpacked into
   * a.qkvPad (pad rows zero), the attention core runs on the padded layout into a.ctxPad, which
   * is packed into a.ctx. The core's bf16 copy of ctx would be padded, so none is written (null
   * returned: the consumer Linear converts a.ctx itself).
   */
  Tensor forward(Activations a, Tensor x, Tensor xLow, Tensor mask, int b, int t, DropoutRng rng,
      Tensor ctxLow, Packing pk) {
    int n = Packing.rows(pk, b, t);
    int nh = config.getNumAttentionHeads();
    int c = config.getHiddenSize();
    qkv.forward(a.qkv, x, xLow, n);
    if (pk != null) {
      be.gatherRows(a.qkvPad, a.qkv, pk.inv, b * t, 3 * c);
      ctxLow = null;
    }
    a.p = rng.p(config.getAttentionProbsDropoutProb());
    a.offset = a.p > 0f ? rng.take((long) b * nh * t * t) : 0L;
    int d = config.getHeadSize();
    // an inference forward whose consumer reads the bf16 copy skips the fp32 context
    Tensor out = ctxLow != null && !rng.savesForBackward() ? null : a.ctxPad;
    a.lowp = ps.precision() == Precision.BF16 && !tcOff
        && be.attentionForwardLowp(out, ctxLow, a.lse, a.qkvPad, mask, b, t, nh, d, a.p,
            rng.seed(), a.offset);
    if (!a.lowp) {
      be.attentionForward(a.ctxPad, a.lse, a.qkvPad, mask, b, t, nh, d, a.p, rng.seed(),
          a.offset);
      ctxLow = null;
    }
    if (pk != null) {
      be.gatherRows(a.ctx, a.ctxPad, pk.idx, n, c);
    }
    return ctxLow;
  }

  /** The projection's bf16 input buffer (bf16 precision; null in fp32). */
  Tensor inputLow(int n) {
    return qkv.inputLow(n);
  }

  /**
   * From dctx (N, C): dqkv (N, 3C) scratch (written), dx (N, C) += the gradient of x
   * (accumulated onto the residual gradient already there); parameter gradients accumulated.
   */
  public void backward(Activations a, Tensor x, Tensor mask, Tensor dctx, Tensor dqkv, Tensor dx,
      int b, int t, DropoutRng rng) {
    backward(a, x, mask, dctx, dqkv, dx, b, t, rng, null, null, null);
  }

  /**
   * As {@link #backward(Activations, Tensor, Tensor, Tensor, Tensor, Tensor, int, int,
   * DropoutRng)}; with padding removal (pk not null) dctx, dqkv and x have pk.n rows, and dctxPad
   * (B*T, C), dqkvPad (B*T, 3C) are scratch for the padded layout: dctx is unpacked (pad rows
   * zero, so that pad queries add nothing to the real keys' and values' gradients), the core's
   * backward runs padded, and its dqkv is packed. No bf16 copy of dqkv then (it would be
   * padded): the projection converts dqkv itself.
   */
  void backward(Activations a, Tensor x, Tensor mask, Tensor dctx, Tensor dqkv, Tensor dx, int b,
      int t, DropoutRng rng, Packing pk, Tensor dctxPad, Tensor dqkvPad) {
    int n = Packing.rows(pk, b, t);
    int nh = config.getNumAttentionHeads();
    int d = config.getHeadSize();
    int c = config.getHiddenSize();
    Tensor dOut = dctx;
    Tensor dQkv = dqkv;
    if (pk != null) {
      be.gatherRows(dctxPad, dctx, pk.inv, b * t, c);
      dOut = dctxPad;
      dQkv = dqkvPad;
    }
    // the tensor-core backward also writes bf16(dqkv) for the projection's GEMMs
    Tensor dLow = a.lowp && pk == null ? qkv.gradLow(n) : null;
    if (!(a.lowp && be.attentionBackwardLowp(dQkv, dLow, dOut, a.qkvPad, a.ctxPad, a.lse, mask,
        b, t, nh, d, a.p, rng.seed(), a.offset))) {
      be.attentionBackward(dQkv, dOut, a.qkvPad, a.ctxPad, a.lse, mask, b, t, nh, d, a.p,
          rng.seed(), a.offset);
      dLow = null;
    }
    if (pk != null) {
      be.gatherRows(dqkv, dqkvPad, pk.idx, n, 3 * c);
    }
    qkv.backward(dx, dqkv, dLow, x, n, true);
  }
}
