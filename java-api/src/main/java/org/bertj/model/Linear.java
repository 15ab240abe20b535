package org.bertj.model;

import org.bertj.backend.Backend;
import org.bertj.backend.Tensor;

/** nn.Linear over rows: y (n, out) = x (n, in) W^T + b, with W (out, in) a parameter view. */
final class Linear {
  final Backend be;
  final Parameter weight;
  final Parameter bias;
  final int in;
  final int out;

  Linear(Parameters ps, String prefix, int in, int out) {
    this.be = ps.backend();
    this.weight = ps.get(prefix + ".weight");
    this.bias = ps.get(prefix + ".bias");
    this.in = in;
    this.out = out;
  }

  static void declare(Parameters.Layout l, String prefix, int in, int out) {
    l.decayed(prefix + ".weight", out, in);
    l.notDecayed(prefix + ".bias", out);
  }

  /** y = x W^T + b. */
  void forward(Tensor y, Tensor x, int n) {
    be.linear(y, x, weight.value(), bias.value(), n, in, out);
  }

  /** y = x W^T (the bias is applied by a fused op). */
  void forwardNoBias(Tensor y, Tensor x, int n) {
    be.linear(y, x, weight.value(), null, n, in, out);
  }

  /** dx = dy W (added when accumulate; dx may be null); dW += dy^T x; db += colsum(dy). */
  void backward(Tensor dx, Tensor dy, Tensor x, int n, boolean accumulate) {
    be.linearBackward(dx, weight.grad(), bias.grad(), dy, x, weight.value(), n, in, out,
        accumulate);
  }

  /** Like {@link #backward} without the bias gradient (a fused op accumulated it). */
  void backwardNoBias(Tensor dx, Tensor dy, Tensor x, int n, boolean accumulate) {
    be.linearBackward(dx, weight.grad(), null, dy, x, weight.value(), n, in, out, accumulate);
  }
}
