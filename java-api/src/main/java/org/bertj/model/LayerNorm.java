package org.bertj.model;

import org.bertj.backend.Backend;
import org.bertj.backend.Tensor;

/** nn.LayerNorm over the last dimension C with a fused residual add. */
final class LayerNorm {
  final Backend be;
  final Parameter weight;
  final Parameter bias;
  final int c;
  final float eps;

  LayerNorm(Parameters ps, String prefix, int c, double eps) {
    this.be = ps.backend();
    this.weight = ps.get(prefix + ".weight");
    this.bias = ps.get(prefix + ".bias");
    this.c = c;
    this.eps = (float) eps;
  }

  static void declare(Parameters.Layout l, String prefix, int c) {
    l.notDecayed(prefix + ".weight", c);
    l.notDecayed(prefix + ".bias", c);
  }

  /** out = LN(x + residual) (residual may be null, out may be x); saves mean, rstd, h. */
  void forward(Tensor out, Tensor mean, Tensor rstd, Tensor hsave, Tensor x, Tensor residual,
      int n) {
    be.layerNormForward(out, mean, rstd, hsave, x, residual, weight.value(), bias.value(), n, c,
        eps);
  }

  /**
   * out = LN(dropout(y) + residual) with the dropout mask of (seed, offset) over y's elements
   * (out may be y; p = 0: no dropout); saves mean, rstd, h = dropout(y) + residual. The same bits
   * as dropoutForward then {@link #forward}. outLow, when not null, receives bf16(out).
   */
  void forwardDropout(Tensor out, Tensor outLow, Tensor mean, Tensor rstd, Tensor hsave, Tensor y,
      Tensor residual, int n, float p, long seed, long offset) {
    be.dropoutLayerNormForward(out, outLow, mean, rstd, hsave, y, residual, weight.value(),
        bias.value(), n, c, eps, p, seed, offset);
  }

  /**
   * Backward of {@link #forwardDropout}: dh = dLoss/dh (the residual's gradient) and dy =
   * dLoss/dy = dh * keep / (1 - p) (both written; neither may alias the other); gamma, beta
   * gradients accumulated. dyLow, when not null, receives bf16(dy) from the same pass. dbiasY,
   * when not null (c elements), accumulates the column sums of dy: the bias gradient of the
   * Linear that produced y (whose backward then runs without it).
   */
  void backwardDropout(Tensor dh, Tensor dy, Tensor dyLow, Tensor dbiasY, Tensor dout, Tensor h,
      Tensor mean, Tensor rstd, int n, float p, long seed, long offset) {
    be.dropoutLayerNormBackward(dh, dy, dyLow, weight.grad(), bias.grad(), dbiasY, dout, h, mean,
        rstd, weight.value(), n, c, p, seed, offset);
  }

  /** dh = dLoss/dh (written; dh must not alias dout); gamma, beta gradients accumulated. */
  void backward(Tensor dh, Tensor dout, Tensor h, Tensor mean, Tensor rstd, int n) {
    be.layerNormBackward(dh, weight.grad(), bias.grad(), dout, h, mean, rstd, weight.value(), n,
        c);
  }
}
