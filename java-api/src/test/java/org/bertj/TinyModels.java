package org.bertj;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.bertj.backend.CpuBackend;
import org.bertj.io.BertConfig;
import org.bertj.io.MiniLmConverter;
import org.bertj.model.BertForSequenceClassification;
import org.bertj.model.BertModel;

/** Small random BERT folders with the MiniLM tokenizer (vocabulary 30522), for fast tests. */
public final class TinyModels {
  private TinyModels() {}

  /** A tiny config: hidden 16, 2 layers, 2 heads, max 64 positions. */
  public static BertConfig.Builder config() {
    return BertConfig.builder().setVocabSize(30522).setHiddenSize(16).setNumHiddenLayers(2)
        .setNumAttentionHeads(2).setIntermediateSize(32).optMaxPositionEmbeddings(64)
        .optInitializerRange(0.5);
  }

  /** A BertModel folder (no pooler is needed by embeddings; it is saved anyway). */
  public static Path encoder(Path dir) throws IOException {
    Files.createDirectories(dir);
    try (CpuBackend be = new CpuBackend();
        BertModel m = BertModel.create(be, config().build(), true, 42)) {
      m.save(dir);
    }
    tokenizer(dir);
    return dir;
  }

  /** A BertForSequenceClassification folder with the given labels and problem type. */
  public static Path classifier(Path dir, List<String> labels, BertConfig.ProblemType pt)
      throws IOException {
    Files.createDirectories(dir);
    BertConfig c = config().optLabels(labels).optProblemType(pt)
        .optArchitectures(List.of("BertForSequenceClassification")).build();
    try (CpuBackend be = new CpuBackend();
        BertForSequenceClassification m = BertForSequenceClassification.create(be, c, 7)) {
      m.save(dir);
    }
    tokenizer(dir);
    return dir;
  }

  static void tokenizer(Path dir) throws IOException {
    try (InputStream in = TinyModels.class.getClassLoader()
        .getResourceAsStream(MiniLmConverter.TOKENIZER_RESOURCE)) {
      Files.copy(in, dir.resolve("tokenizer.json"),
          java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }
  }
}
