package org.bertj.model;

import java.util.Locale;
import org.bertj.io.BertConfig;

/** Named BERT shapes for benchmarks and tests (random weights; vocab of the uncased WordPiece). */
public final class ModelShapes {
  private ModelShapes() {}

  /**
   * {@code bert-base} (12 layers, hidden 768, 12 heads, FFN 3072), {@code bert-large} (24, 1024,
   * 16, 4096) or {@code minilm} (all-MiniLM-L6-v2: 6, 384, 12, 1536), with numLabels labels.
   */
  public static BertConfig named(String name, int numLabels) {
    BertConfig.Builder b = BertConfig.builder().setVocabSize(30522).optMaxPositionEmbeddings(512)
        .optTypeVocabSize(2).optNumLabels(numLabels);
    switch (name.toLowerCase(Locale.ROOT)) {
      case "bert-base":
        return b.setHiddenSize(768).setNumHiddenLayers(12).setNumAttentionHeads(12)
            .setIntermediateSize(3072).build();
      case "bert-large":
        return b.setHiddenSize(1024).setNumHiddenLayers(24).setNumAttentionHeads(16)
            .setIntermediateSize(4096).build();
      case "minilm":
        return b.setHiddenSize(384).setNumHiddenLayers(6).setNumAttentionHeads(12)
            .setIntermediateSize(1536).build();
      default:
        throw new IllegalArgumentException("unknown model shape '" + name
            + "': expected bert-base, bert-large or minilm (or a model folder)");
    }
  }
}
