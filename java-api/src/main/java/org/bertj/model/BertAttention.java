package org.bertj.model;

import org.bertj.io.BertConfig;
import org.bertj.backend.Tensor;

/**
 * Hugging Face {@code BertAttention}: {@link BertSelfAttention} ({@code <prefix>.self}) then
 * {@link BertSelfOutput} ({@code <prefix>.output}).
 */
public final class BertAttention {
  /** Saved activations. */
  public static final class Activations {
    final BertSelfAttention.Activations self;
    final ResidualOutput.Activations output;

    Activations(BertSelfAttention.Activations self, ResidualOutput.Activations output) {
      this.self = self;
      this.output = output;
    }

    /** (N, C) the attention block's output. */
    public Tensor out() {
      return output.out;
    }
  }

  private final BertSelfAttention self;
  private final BertSelfOutput output;

  /** Binds to the parameters {@code <prefix>.*}. */
  public BertAttention(Parameters ps, String prefix, BertConfig c) {
    this.self = new BertSelfAttention(ps, prefix + ".self", c);
    this.output = new BertSelfOutput(ps, prefix + ".output", c);
  }

  static void declare(Parameters.Layout l, String prefix, BertConfig c) {
    BertSelfAttention.declare(l, prefix + ".self", c);
    ResidualOutput.declare(l, prefix + ".output", c.getHiddenSize(), c.getHiddenSize());
  }

  Activations activations(Arena a, int b, int t) {
    return activations(a, b, t, b * t, false);
  }

  /** Activations for n token rows (packed: padding removal, see {@link Packing}). */
  Activations activations(Arena a, int b, int t, int n, boolean packed) {
    return new Activations(self.activations(a, b, t, n, packed), output.activations(a, n));
  }

  public BertSelfAttention self() {
    return self;
  }

  public BertSelfOutput output() {
    return output;
  }

  /** out (N, C) = LN(dropout(dense(selfattention(x))) + x). */
  public void forward(Activations a, Tensor x, Tensor mask, int b, int t, DropoutRng rng) {
    forward(a, x, null, mask, b, t, rng, null, null);
  }

  /**
   * As {@link #forward(Activations, Tensor, Tensor, int, int, DropoutRng)}; bf16 precision: xLow,
   * when not null, is {@link #inputLow} holding bf16(x); outLow, when not null, receives bf16 of
   * the output; with padding removal (pk not null) on pk.n rows.
   */
  void forward(Activations a, Tensor x, Tensor xLow, Tensor mask, int b, int t, DropoutRng rng,
      Tensor outLow, Packing pk) {
    int n = Packing.rows(pk, b, t);
    Tensor ctxLow = self.forward(a.self, x, xLow, mask, b, t, rng, output.inputLow(n), pk);
    output.forward(a.output, a.self.ctx, ctxLow, x, n, rng, outLow);
  }

  /** The query/key/value projection's bf16 input buffer (bf16 precision; null in fp32). */
  Tensor inputLow(int n) {
    return self.inputLow(n);
  }

  /**
   * From dout (N, C): dx (N, C) written with the gradient of x; tmp, dctx (N, C) and dqkv
   * (N, 3C) scratch; dx must not alias dout.
   */
  public void backward(Activations a, Tensor x, Tensor mask, Tensor dout, Tensor dx, Tensor tmp,
      Tensor dctx, Tensor dqkv, int b, int t, DropoutRng rng) {
    backward(a, x, mask, dout, dx, tmp, dctx, dqkv, b, t, rng, null, null, null);
  }

  /**
   * As above; with padding removal (pk not null) on pk.n rows, dctxPad (B*T, C) and dqkvPad
   * (B*T, 3C) the attention core's padded scratch.
   */
  void backward(Activations a, Tensor x, Tensor mask, Tensor dout, Tensor dx, Tensor tmp,
      Tensor dctx, Tensor dqkv, int b, int t, DropoutRng rng, Packing pk, Tensor dctxPad,
      Tensor dqkvPad) {
    output.backward(a.output, a.self.ctx, dout, dx, tmp, dctx, Packing.rows(pk, b, t), rng);
    self.backward(a.self, x, mask, dctx, dqkv, dx, b, t, rng, pk, dctxPad, dqkvPad);
  }
}
