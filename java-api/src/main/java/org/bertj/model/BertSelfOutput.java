package org.bertj.model;

import org.bertj.io.BertConfig;

/**
 * Hugging Face {@code BertSelfOutput}: LayerNorm(dropout(dense(context)) + input). Parameters
 * {@code <prefix>.dense.weight} (C, C), {@code dense.bias}, {@code LayerNorm.weight},
 * {@code LayerNorm.bias} (C).
 */
public final class BertSelfOutput extends ResidualOutput {
  /** Binds to the parameters {@code <prefix>.*} (prefix ends in {@code attention.output}). */
  public BertSelfOutput(Parameters ps, String prefix, BertConfig c) {
    super(ps, prefix, c, c.getHiddenSize());
  }
}
