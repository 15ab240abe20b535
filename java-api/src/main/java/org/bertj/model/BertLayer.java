package org.bertj.model;

import org.bertj.io.BertConfig;
import org.bertj.backend.Tensor;

/**
 * Hugging Face {@code BertLayer}: {@link BertAttention} ({@code <prefix>.attention}),
 * {@link BertIntermediate} ({@code <prefix>.intermediate}), {@link BertOutput}
 * ({@code <prefix>.output}); post-LN.
 */
public final class BertLayer {
  /** Saved activations. */
  public static final class Activations {
    final BertAttention.Activations attention;
    final BertIntermediate.Activations intermediate;
    final ResidualOutput.Activations output;

    Activations(BertAttention.Activations attention, BertIntermediate.Activations intermediate,
        ResidualOutput.Activations output) {
      this.attention = attention;
      this.intermediate = intermediate;
      this.output = output;
    }

    /** (N, C) the layer output. */
    public Tensor out() {
      return output.out;
    }
  }

  /** Gradient scratch shared by all layers of a backward pass. */
  static final class Scratch {
    /** (N, C) gradient of the layer output on entry, of the layer input on exit. */
    final Tensor g;
    /** (N, C) gradient of the attention output. */
    final Tensor gAttn;
    /** (N, C) dropout scratch. */
    final Tensor tmp;
    /** (N, C) gradient of the attention context. */
    final Tensor dctx;
    /** (N, 3C). */
    final Tensor dqkv;
    /** (N, I). */
    final Tensor dact;
    /** (B*T, C): the padded gradient of the model output (= g unless packed). */
    final Tensor gPad;
    /** (B*T, C): the attention core's padded dctx (= dctx unless packed). */
    final Tensor dctxPad;
    /** (B*T, 3C): the attention core's padded dqkv (= dqkv unless packed). */
    final Tensor dqkvPad;

    Scratch(Arena a, int n, int c, int i) {
      this(a, n, n, false, c, i);
    }

    /** For n token rows of a (B*T = bt)-row batch; packed: padding removal ({@link Packing}). */
    Scratch(Arena a, int n, int bt, boolean packed, int c, int i) {
      g = a.take(n, c);
      gAttn = a.take(n, c);
      tmp = a.take(n, c);
      dctx = a.take(n, c);
      dqkv = a.take(n, 3L * c);
      dact = a.take(n, i);
      gPad = packed ? a.take(bt, c) : g;
      dctxPad = packed ? a.take(bt, c) : dctx;
      dqkvPad = packed ? a.take(bt, 3L * c) : dqkv;
    }
  }

  private final BertAttention attention;
  private final BertIntermediate intermediate;
  private final BertOutput output;

  /** Binds to the parameters {@code <prefix>.*}. */
  public BertLayer(Parameters ps, String prefix, BertConfig c) {
    this.attention = new BertAttention(ps, prefix + ".attention", c);
    this.intermediate = new BertIntermediate(ps, prefix + ".intermediate", c);
    this.output = new BertOutput(ps, prefix + ".output", c);
  }

  static void declare(Parameters.Layout l, String prefix, BertConfig c) {
    BertAttention.declare(l, prefix + ".attention", c);
    BertIntermediate.declare(l, prefix + ".intermediate", c);
    ResidualOutput.declare(l, prefix + ".output", c.getIntermediateSize(), c.getHiddenSize());
  }

  Activations activations(Arena a, int b, int t) {
    return activations(a, b, t, b * t, false);
  }

  /** Activations for n token rows (packed: padding removal, see {@link Packing}). */
  Activations activations(Arena a, int b, int t, int n, boolean packed) {
    return new Activations(attention.activations(a, b, t, n, packed),
        intermediate.activations(a, n), output.activations(a, n));
  }

  public BertAttention attention() {
    return attention;
  }

  public BertIntermediate intermediate() {
    return intermediate;
  }

  public BertOutput output() {
    return output;
  }

  /** out (N, C) = output(intermediate(attention(x)), attention(x)). */
  public void forward(Activations a, Tensor x, Tensor mask, int b, int t, DropoutRng rng) {
    forward(a, x, null, mask, b, t, rng, null, null);
  }

  /**
   * As {@link #forward(Activations, Tensor, Tensor, int, int, DropoutRng)}; bf16 precision: xLow,
   * when not null, is {@link #inputLow} holding bf16(x), and outLow, when not null, receives
   * bf16(out) (the next layer's {@link #inputLow}). Each op writes the bf16 copy its consumer
   * Linear reads, so no separate conversion is queued. With padding removal (pk not null) x, out
   * and every activation have pk.n rows.
   */
  void forward(Activations a, Tensor x, Tensor xLow, Tensor mask, int b, int t, DropoutRng rng,
      Tensor outLow, Packing pk) {
    int n = Packing.rows(pk, b, t);
    Tensor attLow = intermediate.inputLow(n);
    attention.forward(a.attention, x, xLow, mask, b, t, rng, attLow, pk);
    Tensor att = a.attention.out();
    Tensor actLow = output.inputLow(n);
    intermediate.forward(a.intermediate, att, attLow, n, actLow, rng.savesForBackward());
    output.forward(a.output, a.intermediate.act, actLow, att, n, rng, outLow);
  }

  /** The first Linear's (query/key/value) bf16 input buffer (bf16 precision; null in fp32). */
  Tensor inputLow(int n) {
    return attention.inputLow(n);
  }

  /** s.g holds dLoss/d(out) on entry and dLoss/dx on exit; parameter gradients accumulated. */
  void backward(Activations a, Tensor x, Tensor mask, Scratch s, int b, int t, DropoutRng rng) {
    backward(a, x, mask, s, b, t, rng, null);
  }

  /** As above; with padding removal (pk not null) on pk.n rows (s laid out for them). */
  void backward(Activations a, Tensor x, Tensor mask, Scratch s, int b, int t, DropoutRng rng,
      Packing pk) {
    int n = Packing.rows(pk, b, t);
    Tensor att = a.attention.out();
    // gAttn = residual part of d(att); dact = d(gelu output)
    output.backward(a.output, a.intermediate.act, s.g, s.gAttn, s.tmp, s.dact, n, rng);
    // gAttn += FFN part of d(att)
    intermediate.backward(a.intermediate, att, s.dact, s.gAttn, n);
    // g = d(x): residual part, then += the QKV part
    attention.backward(a.attention, x, mask, s.gAttn, s.g, s.tmp, s.dctx, s.dqkv, b, t, rng, pk,
        s.dctxPad, s.dqkvPad);
  }
}
