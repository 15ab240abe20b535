package org.bertj.model;

import org.bertj.io.BertConfig;
import org.bertj.backend.Backend;
import org.bertj.backend.Tensor;

/**
 * Hugging Face {@code BertEmbeddings}: word + position + token-type embeddings, LayerNorm, dropout
 * (hidden_dropout_prob). Parameters {@code <prefix>.word_embeddings.weight} (V, C),
 * {@code position_embeddings.weight} (P, C), {@code token_type_embeddings.weight} (TV, C),
 * {@code LayerNorm.weight}, {@code LayerNorm.bias} (C).
 */
public final class BertEmbeddings {
  /** Saved activations of one forward (views into the model's workspace). */
  public static final class Activations {
    /** (N, C) the embedding sum, the LayerNorm input. */
    public final Tensor sum;
    /** (N) LayerNorm statistics. */
    public final Tensor mean;
    /** (N) LayerNorm statistics. */
    public final Tensor rstd;
    /** (N, C) the output (after LayerNorm and dropout). */
    public final Tensor out;
    float p;
    long offset;

    Activations(Arena a, int n, int c) {
      sum = a.take(n, c);
      mean = a.take(n);
      rstd = a.take(n);
      out = a.take(n, c);
    }
  }

  private final Backend be;
  private final BertConfig config;
  private final Parameter word;
  private final Parameter position;
  private final Parameter tokenType;
  private final LayerNorm layerNorm;

  /** Binds to the parameters {@code <prefix>.*} of a store. */
  public BertEmbeddings(Parameters ps, String prefix, BertConfig c) {
    this.be = ps.backend();
    this.config = c;
    this.word = ps.get(prefix + ".word_embeddings.weight");
    this.position = ps.get(prefix + ".position_embeddings.weight");
    this.tokenType = ps.get(prefix + ".token_type_embeddings.weight");
    this.layerNorm = new LayerNorm(ps, prefix + ".LayerNorm", c.getHiddenSize(), c.getLayerNormEps());
  }

  /** Declares the parameters. */
  public static void declare(Parameters.Layout l, String prefix, BertConfig c) {
    int h = c.getHiddenSize();
    l.decayed(prefix + ".word_embeddings.weight", c.getVocabSize(), h);
    l.decayed(prefix + ".position_embeddings.weight", c.getMaxPositionEmbeddings(), h);
    l.decayed(prefix + ".token_type_embeddings.weight", c.getTypeVocabSize(), h);
    LayerNorm.declare(l, prefix + ".LayerNorm", h);
  }

  Activations activations(Arena a, int n) {
    return new Activations(a, n, config.getHiddenSize());
  }

  /** out (B*T, C) = dropout(LN(wte[ids] + wpe[t] + wtt[tt])); ids, tt (B*T) I32 (tt may be null). */
  public void forward(Activations a, Tensor ids, Tensor tt, int b, int t, DropoutRng rng) {
    int n = b * t;
    be.embeddingsForward(a.sum, ids, tt, word.value(), position.value(), tokenType.value(), b, t);
    layerNorm.forward(a.out, a.mean, a.rstd, null, a.sum, null, n);
    a.p = rng.p(config.getHiddenDropoutProb());
    if (a.p > 0f) {
      a.offset = rng.take((long) n * config.getHiddenSize());
      be.dropoutForward(a.out, a.out, a.p, rng.seed(), a.offset);
    }
  }

  /**
   * Accumulates the embedding and LayerNorm gradients from dout (B*T, C), which is overwritten;
   * dh (B*T, C) is scratch.
   */
  public void backward(Activations a, Tensor dout, Tensor dh, Tensor ids, Tensor tt, int b, int t,
      DropoutRng rng) {
    int n = b * t;
    if (a.p > 0f) {
      be.dropoutBackward(dout, dout, a.p, rng.seed(), a.offset);
    }
    layerNorm.backward(dh, dout, a.sum, a.mean, a.rstd, n);
    be.embeddingsBackward(word.grad(), position.grad(), tokenType.grad(), dh, ids, tt, b, t);
  }
}
