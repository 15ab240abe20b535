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
    forward(y, x, null, n, true);
  }

  /**
   * y = x W^T + b, where xLow, when not null, is {@link #inputLow}(n) already holding the bf16
   * copy of x (written by the op that produced x), so no conversion is queued.
   */
  void forward(Tensor y, Tensor x, Tensor xLow, int n) {
    forward(y, x, xLow, n, true);
  }

  /** y = x W^T (the bias is applied by a fused op); xLow as in {@link #forward(Tensor, Tensor, Tensor, int)}. */
  void forwardNoBias(Tensor y, Tensor x, Tensor xLow, int n) {
    forward(y, x, xLow, n, false);
  }

  /**
   * In bf16 precision: the buffer for the bf16 copy of this Linear's next forward input (n rows),
   * for the producing op to write (then passed as xLow); null in fp32. It is also the copy the
   * backward's weight-gradient GEMM reads, so it must not be rewritten between the forward and the
   * backward.
   */
  Tensor inputLow(int n) {
    return ps.precision() == Precision.BF16 ? ps.lowBuffer(this, (long) n * in) : null;
  }

  /**
   * In bf16 precision: the buffer for the bf16 copy of the gradient of this Linear's output (n
   * rows), for the producing op to write right before {@link #backward} (then passed as dyLow);
   * null in fp32. A scratch shared by all Linears: valid only until the next Linear's backward.
   */
  Tensor gradLow(int n) {
    return ps.precision() == Precision.BF16 ? ps.lowScratch(0, (long) n * out) : null;
  }

  /** Rows of the bf16 copy of the last forward's input that {@link #savedInput} holds (-1: none). */
  private int savedRows = -1;
  /** That copy's tensor (a view of this Linear's buffer in ps), for the backward's dW GEMM. */
  private Tensor savedInput;

  private void forward(Tensor y, Tensor x, Tensor xLow, int n, boolean withBias) {
    if (ps.precision() == Precision.BF16) {
      // The bf16 input is kept for the backward (dW = dy^T x), which then skips a conversion;
      // like every saved activation it belongs to the last forward.
      Tensor xl = inputLow(n);
      if (xLow == null) {
        be.toBf16(xl, rows(x, n, in));
      } else if (xLow.address() != xl.address() || xLow.numel() != xl.numel()) {
        throw new IllegalArgumentException("xLow must be inputLow(" + n + ") of this Linear");
      }
      savedInput = xl;
      savedRows = n;
      be.linearBf16(y, xl, ps.lowValue(weight), withBias ? bias.value() : null, n, in, out);
    } else {
      be.linear(y, x, weight.value(), withBias ? bias.value() : null, n, in, out);
    }
  }

  /** dx = dy W (added when accumulate; dx may be null); dW += dy^T x; db += colsum(dy). */
  void backward(Tensor dx, Tensor dy, Tensor x, int n, boolean accumulate) {
    backward(dx, dy, null, x, n, accumulate, true);
  }

  /**
   * Like {@link #backward(Tensor, Tensor, Tensor, int, boolean)}, where dyLow, when not null, is
   * {@link #gradLow}(n) already holding the bf16 copy of dy.
   */
  void backward(Tensor dx, Tensor dy, Tensor dyLow, Tensor x, int n, boolean accumulate) {
    backward(dx, dy, dyLow, x, n, accumulate, true);
  }

  /** Like {@link #backward(Tensor, Tensor, Tensor, Tensor, int, boolean)} without the bias gradient (a fused op accumulated it). */
  void backwardNoBias(Tensor dx, Tensor dy, Tensor dyLow, Tensor x, int n, boolean accumulate) {
    backward(dx, dy, dyLow, x, n, accumulate, false);
  }

  private void backward(Tensor dx, Tensor dy, Tensor dyLow, Tensor x, int n, boolean accumulate,
      boolean withBias) {
    if (ps.precision() == Precision.BF16) {
      Tensor dyl = gradLow(n);
      if (dyLow == null) {
        be.toBf16(dyl, rows(dy, n, out));
      } else if (dyLow.address() != dyl.address() || dyLow.numel() != dyl.numel()) {
        throw new IllegalArgumentException("dyLow must be gradLow(" + n + ") of this Linear");
      }
      Tensor xl;
      if (savedRows == n && savedInput != null && !savedInput.isClosed()) {
        xl = savedInput;
      } else {
        xl = ps.lowScratch(1, (long) n * in);
        be.toBf16(xl, rows(x, n, in));
      }
      be.linearBackwardBf16(dx, weight.grad(), withBias ? bias.grad() : null, rows(dy, n, out),
          dyl, xl, ps.lowValue(weight), n, in, out, accumulate);
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
