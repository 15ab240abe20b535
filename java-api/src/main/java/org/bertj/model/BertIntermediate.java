package org.bertj.model;

import org.bertj.io.BertConfig;
import org.bertj.backend.Backend;
import org.bertj.backend.Tensor;

/**
 * Hugging Face {@code BertIntermediate}: gelu(dense(x)) with exact (erf) GELU. Parameters
 * {@code <prefix>.dense.weight} (I, C), {@code dense.bias} (I).
 */
public final class BertIntermediate {
  /** Saved activations. */
  public static final class Activations {
    /** (N, I) dense output with bias, the GELU input. */
    public final Tensor pre;
    /** (N, I) GELU output. */
    public final Tensor act;

    Activations(Arena a, int n, int i) {
      pre = a.take(n, i);
      act = a.take(n, i);
    }
  }

  private final Backend be;
  private final BertConfig config;
  private final Linear dense;

  /** Binds to the parameters {@code <prefix>.*}. */
  public BertIntermediate(Parameters ps, String prefix, BertConfig c) {
    this.be = ps.backend();
    this.config = c;
    this.dense = new Linear(ps, prefix + ".dense", c.getHiddenSize(), c.getIntermediateSize());
  }

  static void declare(Parameters.Layout l, String prefix, BertConfig c) {
    Linear.declare(l, prefix + ".dense", c.getHiddenSize(), c.getIntermediateSize());
  }

  Activations activations(Arena a, int n) {
    return new Activations(a, n, config.getIntermediateSize());
  }

  /** act = gelu(x W^T + b); x (N, C). */
  public void forward(Activations a, Tensor x, int n) {
    forward(a, x, null, n, null, true);
  }

  /**
   * As {@link #forward(Activations, Tensor, int)}; bf16 precision: xLow, when not null, is
   * {@link #inputLow} holding bf16(x); actLow, when not null, receives bf16(a.act). Not keep
   * (an inference forward): a.pre keeps the dense output without the bias (the backward's GELU
   * input is not stored), and a.act is not written when actLow is (the next Linear reads that).
   */
  void forward(Activations a, Tensor x, Tensor xLow, int n, Tensor actLow, boolean keep) {
    dense.forwardNoBias(a.pre, x, xLow, n);
    be.biasGeluForward(keep || actLow == null ? a.act : null, actLow, keep ? a.pre : null, a.pre,
        dense.bias.value(), n, config.getIntermediateSize());
  }

  /** The dense layer's bf16 input buffer (bf16 precision; null in fp32). */
  Tensor inputLow(int n) {
    return dense.inputLow(n);
  }

  /**
   * dact (N, I) is overwritten with the GELU input gradient; dx (N, C) += its x gradient
   * (accumulated onto the residual gradient already there); parameter gradients accumulated.
   */
  public void backward(Activations a, Tensor x, Tensor dact, Tensor dx, int n) {
    Tensor dLow = dense.gradLow(n); // bf16: the GELU backward also writes bf16(dpre)
    be.biasGeluBackward(dact, dLow, dense.bias.grad(), dact, a.pre, n,
        config.getIntermediateSize());
    dense.backwardNoBias(dx, dact, dLow, x, n, true);
  }
}
