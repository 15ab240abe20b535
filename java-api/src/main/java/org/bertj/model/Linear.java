package org.bertj.model;

import org.bertj.backend.Backend;
import org.bertj.backend.Precision;
import org.bertj.backend.Tensor;

/** nn.Linear over rows: y (n, out) = x (n, in) W^T + b, with W (out, in) a parameter view. */
final class Linear {
  final Backend be;
  final Parameter weight;
  final Parameter bias;
  final int in;
  final int out;

  final Parameters ps;

  Linear(Parameters ps, String prefix, int in, int out) {
    this(ps, ps.get(prefix + ".weight"), ps.get(prefix + ".bias"), in, out);
  }

  /** Over given weight (out, in) and bias (out) slices of ps (e.g. a packed q|k|v). */
  Linear(Parameters ps, Parameter weight, Parameter bias, int in, int out) {
    this.be = ps.backend();
    this.ps = ps;
    this.weight = weight;
    this.bias = bias;
    this.in = in;
    this.out = out;
  }

  static void declare(Parameters.Layout l, String prefix, int in, int out) {
    l.decayed(prefix + ".weight", out, in);
    l.notDecayed(prefix + ".bias", out);
  }

  /** y = x W^T + b. */
  void forward(Tensor y, Tensor x, int n) {
    forward(y, x, n, true);
  }

  /** y = x W^T (the bias is applied by a fused op). */
  void forwardNoBias(Tensor y, Tensor x, int n) {
    forward(y, x, n, false);
  }

  /** Rows of the bf16 copy of the last forward's input that {@link #savedInput} holds (-1: none). */
  private int savedRows = -1;
  /** That copy's tensor (a view of this Linear's buffer in ps), for the backward's dW GEMM. */
  private Tensor savedInput;

  private void forward(Tensor y, Tensor x, int n, boolean withBias) {
    if (ps.precision() == Precision.BF16) {
      // The bf16 input is kept for the backward (dW = dy^T x), which then skips a conversion;
      // like every saved activation it belongs to the last forward.
      Tensor xl = ps.lowBuffer(this, (long) n * in);
      be.toBf16(xl, rows(x, n, in));
      savedInput = xl;
      savedRows = n;
      be.linearBf16(y, xl, ps.lowValue(weight), withBias ? bias.value() : null, n, in, out);
    } else {
      be.linear(y, x, weight.value(), withBias ? bias.value() : null, n, in, out);
    }
  }

  /** dx = dy W (added when accumulate; dx may be null); dW += dy^T x; db += colsum(dy). */
  void backward(Tensor dx, Tensor dy, Tensor x, int n, boolean accumulate) {
    backward(dx, dy, x, n, accumulate, true);
  }

  /** Like {@link #backward} without the bias gradient (a fused op accumulated it). */
  void backwardNoBias(Tensor dx, Tensor dy, Tensor x, int n, boolean accumulate) {
    backward(dx, dy, x, n, accumulate, false);
  }

  private void backward(Tensor dx, Tensor dy, Tensor x, int n, boolean accumulate,
      boolean withBias) {
    if (ps.precision() == Precision.BF16) {
      Tensor dyl = ps.lowScratch(0, (long) n * out);
      be.toBf16(dyl, rows(dy, n, out));
      if (dx != null) {
        be.gemmBf16(false, false, n, in, out, 1f, dyl, out, ps.lowValue(weight), in,
            accumulate ? 1f : 0f, dx, in);
      }
      Tensor xl;
      if (savedRows == n && savedInput != null && !savedInput.isClosed()) {
        xl = savedInput;
      } else {
        xl = ps.lowScratch(1, (long) n * in);
        be.toBf16(xl, rows(x, n, in));
      }
      be.gemmBf16(true, false, out, in, n, 1f, dyl, out, xl, in, 1f, weight.grad(), in);
      if (withBias) {
        be.biasBackward(bias.grad(), dy, n, out);
      }
    } else {
      be.linearBackward(dx, weight.grad(), withBias ? bias.grad() : null, dy, x, weight.value(),
          n, in, out, accumulate);
    }
  }

  /** The first n rows of a contiguous (rows, cols) tensor. */
  private static Tensor rows(Tensor t, int n, int cols) {
    long numel = (long) n * cols;
    return t.numel() == numel ? t : t.view(0, numel);
  }
}
