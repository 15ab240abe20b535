package org.bertj.model;

import org.bertj.io.BertConfig;
import org.bertj.backend.Backend;
import org.bertj.backend.Tensor;

/**
 * The shared body of {@link BertSelfOutput} and {@link BertOutput}:
 * out = LayerNorm(dropout(x W^T + b) + residual), the dropout fused into the LayerNorm op
 * ({@code Backend.dropoutLayerNormForward}, same mask and bits as dropout then LayerNorm).
 */
abstract class ResidualOutput {
  /** Saved activations. */
  public static final class Activations {
    /** (N, C) dense output, dropped, then normed in place: the module output. */
    public final Tensor out;
    /** (N, C) the LayerNorm input dropout(dense) + residual. */
    public final Tensor h;
    /** (N) LayerNorm statistics. */
    public final Tensor mean;
    /** (N) LayerNorm statistics. */
    public final Tensor rstd;
    float p;
    long offset;

    Activations(Arena a, int n, int c) {
      out = a.take(n, c);
      h = a.take(n, c);
      mean = a.take(n);
      rstd = a.take(n);
    }
  }

  final Backend be;
  final BertConfig config;
  final Linear dense;
  final LayerNorm layerNorm;

  ResidualOutput(Parameters ps, String prefix, BertConfig c, int in) {
    this.be = ps.backend();
    this.config = c;
    this.dense = new Linear(ps, prefix + ".dense", in, c.getHiddenSize());
    this.layerNorm = new LayerNorm(ps, prefix + ".LayerNorm", c.getHiddenSize(), c.getLayerNormEps());
  }

  static void declare(Parameters.Layout l, String prefix, int in, int c) {
    Linear.declare(l, prefix + ".dense", in, c);
    LayerNorm.declare(l, prefix + ".LayerNorm", c);
  }

  Activations activations(Arena a, int n) {
    return new Activations(a, n, config.getHiddenSize());
  }

  /** a.out = LN(dropout(x W^T + b) + residual); x (N, in), residual (N, C). */
  public void forward(Activations a, Tensor x, Tensor residual, int n, DropoutRng rng) {
    forward(a, x, null, residual, n, rng, null);
  }

  /**
   * As {@link #forward(Activations, Tensor, Tensor, int, DropoutRng)}; bf16 precision: xLow, when
   * not null, is the dense layer's {@link Linear#inputLow} holding bf16(x), and outLow, when not
   * null, receives bf16(a.out) (the next Linear's input) from the same pass.
   */
  void forward(Activations a, Tensor x, Tensor xLow, Tensor residual, int n, DropoutRng rng,
      Tensor outLow) {
    dense.forward(a.out, x, xLow, n);
    a.p = rng.p(config.getHiddenDropoutProb());
    a.offset = a.p > 0f ? rng.take((long) n * config.getHiddenSize()) : 0L;
    // one pass: dropout (the mask a separate dropoutForward would draw), residual add, LayerNorm
    // h (the pre-norm sum) is kept for the backward only
    layerNorm.forwardDropout(a.out, outLow, a.mean, a.rstd, rng.savesForBackward() ? a.h : null,
        a.out, residual, n, a.p, rng.seed(), a.offset);
  }

  /** The dense layer's bf16 input buffer (bf16 precision; null in fp32). */
  Tensor inputLow(int n) {
    return dense.inputLow(n);
  }

  /**
   * From dout (N, C): dh (N, C) = gradient of the LayerNorm input, which is also the residual's
   * gradient (written); dx (N, in) = gradient of x (written); tmp (N, C) scratch; parameter
   * gradients accumulated. With dropout (p > 0) the dense layer's bias gradient is summed by the
   * LayerNorm backward's pass ({@code Backend.dropoutLayerNormBackward}'s dbiasY), not by the
   * dense layer's backward.
   */
  public void backward(Activations a, Tensor x, Tensor dout, Tensor dh, Tensor tmp, Tensor dx,
      int n, DropoutRng rng) {
    if (a.p > 0f) {
      // one pass: LayerNorm backward, the dropout's backward into tmp (and its bf16 copy), and
      // the dense bias gradient (column sums of tmp); then the dense backward without it
      Tensor gLow = dense.gradLow(n);
      layerNorm.backwardDropout(dh, tmp, gLow, dense.bias.grad(), dout, a.h, a.mean, a.rstd, n,
          a.p, rng.seed(), a.offset);
      dense.backwardNoBias(dx, tmp, gLow, x, n, false);
    } else {
      layerNorm.backward(dh, dout, a.h, a.mean, a.rstd, n);
      dense.backward(dx, dh, null, x, n, false);
    }
  }
}
