package org.bertj.model;

import org.bertj.io.BertConfig;

/**
 * Hugging Face {@code BertOutput}: LayerNorm(dropout(dense(intermediate)) + attention output).
 * Parameters {@code <prefix>.dense.weight} (C, I), {@code dense.bias}, {@code LayerNorm.weight},
 * {@code LayerNorm.bias} (C).
 */
public final class BertOutput extends ResidualOutput {
  /** Binds to the parameters {@code <prefix>.*} (prefix ends in {@code .output}). */
  public BertOutput(Parameters ps, String prefix, BertConfig c) {
    super(ps, prefix, c, c.getIntermediateSize());
  }
}
