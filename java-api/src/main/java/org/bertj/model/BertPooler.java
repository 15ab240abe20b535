package org.bertj.model;

import org.bertj.io.BertConfig;
import org.bertj.backend.Backend;
import org.bertj.backend.Tensor;

/**
 * Hugging Face {@code BertPooler}: pooled = tanh(W h_CLS + b) on each sequence's first token.
 * The h_CLS rows are read by a strided GEMM (lda = T*C), so nothing is gathered. Parameters
 * {@code <prefix>.dense.weight} (C, C), {@code dense.bias} (C).
 */
public final class BertPooler {
  /** Saved activations. */
  public static final class Activations {
    /** (B, C) the pooled output. */
    public final Tensor pooled;

    Activations(Arena a, int b, int c) {
      pooled = a.take(b, c);
    }
  }

  private final Backend be;
  private final BertConfig config;
  private final Linear dense;

  /** Binds to the parameters {@code <prefix>.*}. */
  public BertPooler(Parameters ps, String prefix, BertConfig c) {
    this.be = ps.backend();
    this.config = c;
    this.dense = new Linear(ps, prefix + ".dense", c.getHiddenSize(), c.getHiddenSize());
  }

  static void declare(Parameters.Layout l, String prefix, BertConfig c) {
    Linear.declare(l, prefix + ".dense", c.getHiddenSize(), c.getHiddenSize());
  }

  Activations activations(Arena a, int b) {
    return new Activations(a, b, config.getHiddenSize());
  }

  /** pooled (B, C) = tanh(hidden[:, 0] W^T + b); hidden (B*T, C). */
  public void forward(Activations a, Tensor hidden, int b, int t) {
    int c = config.getHiddenSize();
    be.gemm(false, true, b, c, c, 1f, hidden, t * c, dense.weight.value(), c, 0f, a.pooled, c);
    be.biasAdd(a.pooled, dense.bias.value(), b, c);
    be.tanhForward(a.pooled, a.pooled);
  }

  /**
   * From dpooled (B, C), overwritten: accumulates the parameter gradients and adds the gradient
   * of h_CLS into rows b*T of dhidden (B*T, C).
   */
  public void backward(Activations a, Tensor hidden, Tensor dpooled, Tensor dhidden, int b,
      int t) {
    int c = config.getHiddenSize();
    be.tanhBackward(dpooled, dpooled, a.pooled);
    be.gemm(true, false, c, c, b, 1f, dpooled, c, hidden, t * c, 1f, dense.weight.grad(), c);
    be.biasBackward(dense.bias.grad(), dpooled, b, c);
    be.gemm(false, false, b, c, c, 1f, dpooled, c, dense.weight.value(), c, 1f, dhidden, t * c);
  }
}
