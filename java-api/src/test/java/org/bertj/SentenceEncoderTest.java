package org.bertj;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.bertj.backend.CpuBackend;
import org.bertj.backend.Device;
import org.bertj.io.BertConfig;
import org.bertj.io.CheckpointException;
import org.bertj.io.EncodingBatch;
import org.bertj.io.SafetensorsReader;
import org.bertj.io.SafetensorsWriter;
import org.bertj.model.Batch;
import org.bertj.model.BertForSequenceClassification;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The library facades on tiny random models: order, padding, pooling, probabilities, closing. */
class SentenceEncoderTest {
  @TempDir static Path tmp;
  static Path encoderDir;

  static final List<String> TEXTS = List.of(
      "a",
      "the longest sentence of them all, with quite a few more words than the others",
      "",
      "a film",
      "an unexpectedly moving , funny and well acted film",
      "ok",
      "it 's a charming and often affecting journey .");

  @BeforeAll
  static void models() throws IOException {
    encoderDir = TinyModels.encoder(tmp.resolve("enc"));
  }

  private static SentenceEncoder.Builder builder() {
    return SentenceEncoder.builder().optModel(encoderDir).optDevice(Device.CPU);
  }

  static double rel(float[] a, float[] b) {
    double num = 0;
    double den = 0;
    for (int i = 0; i < a.length; i++) {
      num += (a[i] - b[i]) * (double) (a[i] - b[i]);
      den += (double) b[i] * b[i];
    }
    return Math.sqrt(num / den);
  }

  @Test
  void batchedEqualsOneByOneInInputOrder() {
    float[][] batched;
    float[][] single = new float[TEXTS.size()][];
    List<Integer> progress = new ArrayList<>();
    try (SentenceEncoder enc = builder().optBatchSize(3).build()) {
      assertEquals(16, enc.dimension());
      assertEquals(64, enc.maxLength());
      assertEquals(Pooling.MEAN, enc.pooling());
      batched = enc.embed(TEXTS, progress::add);
      for (int i = 0; i < TEXTS.size(); i++) {
        single[i] = enc.embed(TEXTS.get(i));
      }
      // batches: longest first, at most 3 rows, each padded to its longest
      List<LengthBatcher.Chunk> plan = enc.plan(TEXTS);
      assertEquals(3, plan.size());
      assertEquals(1, plan.get(0).rows()[0]);
      int prev = Integer.MAX_VALUE;
      for (LengthBatcher.Chunk c : plan) {
        for (int i = 0; i < c.rows().length; i++) {
          assertTrue(c.batch().length(i) <= prev);
          prev = c.batch().length(i);
        }
      }
      assertEquals(0, enc.embed(List.of()).length);
    }
    assertEquals(List.of(3, 6, 7), progress);
    for (int i = 0; i < TEXTS.size(); i++) {
      assertTrue(rel(batched[i], single[i]) < 1e-5, i + ": " + rel(batched[i], single[i]));
    }
  }

  @Test
  void poolingAndNormalization() {
    try (SentenceEncoder mean = builder().build();
        SentenceEncoder cls = builder().optPooling(Pooling.CLS).build();
        SentenceEncoder unit = builder().optNormalize(true).build()) {
      EncodingBatch b = mean.encode(List.of("a film", "a much longer film than that"));
      float[] h = mean.lastHiddenState(b);
      int t = b.seqLen();
      float[][] m = mean.embed(List.of("a film", "a much longer film than that"));
      float[][] c = cls.embed(List.of("a film", "a much longer film than that"));
      float[][] u = unit.embed(List.of("a film", "a much longer film than that"));
      for (int row = 0; row < 2; row++) {
        int n = b.length(row);
        float[] expMean = new float[16];
        for (int j = 0; j < n; j++) {
          for (int k = 0; k < 16; k++) {
            expMean[k] += h[(row * t + j) * 16 + k] / n;
          }
        }
        assertTrue(rel(m[row], expMean) < 1e-5);
        float[] expCls = java.util.Arrays.copyOfRange(h, row * t * 16, row * t * 16 + 16);
        assertTrue(rel(c[row], expCls) < 1e-5);
        double norm = 0;
        double dot = 0;
        for (int k = 0; k < 16; k++) {
          norm += u[row][k] * (double) u[row][k];
          dot += u[row][k] * (double) m[row][k];
        }
        assertEquals(1.0, norm, 1e-6);
        assertTrue(dot > 0);
      }
    }
  }

  @Test
  void closeFreesNativeMemory() {
    SentenceEncoder enc = builder().build();
    CpuBackend be = (CpuBackend) enc.backend();
    enc.embed(TEXTS);
    assertTrue(be.liveBytes() > 0);
    enc.close();
    assertEquals(0, be.liveTensors());
    assertEquals(0, be.liveBytes());
    enc.close(); // idempotent
    assertThrows(IllegalStateException.class, () -> enc.embed("x"));
  }

  @Test
  void settingsAreChecked() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> builder().optMaxLength(65).build());
    assertTrue(e.getMessage().contains("max_position_embeddings"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> builder().optBatchSize(0));
    assertEquals(Pooling.CLS, Pooling.parse("CLS"));
    assertThrows(IllegalArgumentException.class, () -> Pooling.parse("max"));
    // truncation: a long text is cut to maxLength tokens
    try (SentenceEncoder enc = builder().optMaxLength(8).build()) {
      assertEquals(8, enc.encode(List.of("word ".repeat(100))).seqLen());
    }
  }

  @Test
  void classifierProbabilities() throws IOException {
    Path dir = TinyModels.classifier(tmp.resolve("clf"), List.of("negative", "positive"), null);
    List<String> texts = List.of("a great film", "a dull , lifeless film that goes on and on", "ok");
    List<Prediction> ps;
    try (TextClassifier clf = TextClassifier.builder().setModel(dir).optDevice(Device.CPU)
        .optBatchSize(2).build()) {
      assertEquals(List.of("negative", "positive"), clf.labels());
      assertEquals(BertConfig.ProblemType.SINGLE_LABEL_CLASSIFICATION, clf.problemType());
      ps = clf.predict(texts);
      List<Prediction> pairs = clf.predict(texts, List.of("x", "y", "z"));
      assertEquals(3, pairs.size());
      CpuBackend be = (CpuBackend) clf.backend();
      clf.close();
      assertEquals(0, be.liveBytes());
    }
    // the same logits as the model run on each text alone
    try (CpuBackend be = new CpuBackend();
        BertForSequenceClassification m = BertForSequenceClassification.fromPretrained(be, dir, 0);
        org.bertj.io.BertTokenizer tok = org.bertj.io.BertTokenizer.forModel(dir)) {
      for (int i = 0; i < texts.size(); i++) {
        EncodingBatch b = tok.encodeBatch(List.of(texts.get(i)));
        m.forward(Batch.of(b.inputIds(), b.tokenTypeIds(), b.attentionMask(), 1, b.seqLen()));
        float[] z = m.logitsArray();
        Prediction p = ps.get(i);
        assertTrue(rel(p.logits(), z) < 1e-5);
        assertEquals(1.0, p.probabilities()[0] + p.probabilities()[1], 1e-6);
        int best = z[1] > z[0] ? 1 : 0;
        assertEquals(best, p.index());
        assertEquals(List.of("negative", "positive").get(best), p.label());
        assertEquals(p.probabilities()[1], p.probability("positive"));
      }
    }
  }

  @Test
  void multiLabelAndRegression() throws IOException {
    Path ml = TinyModels.classifier(tmp.resolve("ml"), List.of("a", "b", "c"),
        BertConfig.ProblemType.MULTI_LABEL_CLASSIFICATION);
    try (TextClassifier clf = TextClassifier.builder().setModel(ml).optDevice(Device.CPU).build()) {
      Prediction p = clf.predict("some text");
      for (int k = 0; k < 3; k++) {
        assertEquals(1 / (1 + Math.exp(-p.logits()[k])), p.probabilities()[k], 1e-6);
      }
      assertTrue(p.labelsAbove(0f).size() == 3);
    }
    Path reg = TinyModels.classifier(tmp.resolve("reg"), List.of("LABEL_0"),
        BertConfig.ProblemType.REGRESSION);
    try (TextClassifier clf = TextClassifier.builder().setModel(reg).optDevice(Device.CPU).build()) {
      Prediction p = clf.predict("some text");
      assertNull(p.probabilities());
      assertEquals(-1, p.index());
      assertEquals(p.logits()[0], p.value());
    }
  }

  @Test
  void classifierNeedsClassifierWeights() throws IOException {
    // a bare encoder folder is not a fine-tuned classifier
    Path dir = tmp.resolve("noclf");
    java.nio.file.Files.createDirectories(dir);
    java.nio.file.Files.copy(encoderDir.resolve("config.json"), dir.resolve("config.json"));
    java.nio.file.Files.copy(encoderDir.resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
    SafetensorsWriter w = new SafetensorsWriter();
    try (SafetensorsReader r = SafetensorsReader.open(encoderDir.resolve("model.safetensors"))) {
      for (String k : r.names()) {
        w.putF32(k, r.readFloats(k), r.shape(k));
      }
    }
    w.write(dir.resolve("model.safetensors"));
    CheckpointException e = assertThrows(CheckpointException.class, () -> TextClassifier.load(dir));
    assertTrue(e.getMessage().contains(dir.resolve("model.safetensors").toString())
        && e.getMessage().contains("classifier.weight"), e.getMessage());
  }
}
