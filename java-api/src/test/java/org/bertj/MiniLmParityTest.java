package org.bertj;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.util.PairList;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.bertj.backend.Device;
import org.bertj.io.BertTokenizer;
import org.bertj.io.Dataset;
import org.bertj.io.EncodingBatch;
import org.bertj.io.MiniLmConverter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * all-MiniLM-L6-v2, real weights: bertj's last hidden state vs ONNX Runtime Java running the same
 * ONNX, on 64 SST-2 test sentences batched with padding; and the pipeline's token ids vs DJL's own
 * truncation and padding.
 */
class MiniLmParityTest {
  static Path model;
  static List<String> sentences;
  static SentenceEncoder enc;
  static OrtMiniLm ort;

  @BeforeAll
  static void setUp() throws Exception {
    model = MiniLmConverter.ensureConverted();
    Path data = Path.of(System.getProperty("bertj.data.dir", "../../shared/data"), "sst2",
        "test.tsv");
    sentences = Dataset.read(data).texts().subList(0, 64);
    enc = SentenceEncoder.builder().optModel(model).optDevice(Device.CPU).optBatchSize(16).build();
    ort = new OrtMiniLm();
  }

  @AfterAll
  static void tearDown() throws Exception {
    if (enc != null) {
      enc.close();
    }
    if (ort != null) {
      ort.close();
    }
  }

  /** Per sentence, over its real tokens: ||ours - ort|| / ||ort||. */
  @Test
  void lastHiddenStateMatchesOnnxRuntime() throws Exception {
    int c = enc.dimension();
    double maxRel = 0;
    int worst = -1;
    int padded = 0;
    // input order, 16 per batch: each batch padded to its longest sentence
    for (int s = 0; s < sentences.size(); s += 16) {
      EncodingBatch b = enc.encode(sentences.subList(s, s + 16));
      float[] ours = enc.lastHiddenState(b);
      float[] ref = ort.lastHiddenState(b);
      assertEquals(ref.length, ours.length);
      int t = b.seqLen();
      for (int i = 0; i < b.batchSize(); i++) {
        int n = b.length(i);
        padded += t - n;
        double num = 0;
        double den = 0;
        for (int j = 0; j < n; j++) {
          for (int k = 0; k < c; k++) {
            int idx = (i * t + j) * c + k;
            double d = ours[idx] - ref[idx];
            num += d * d;
            den += (double) ref[idx] * ref[idx];
          }
        }
        double rel = Math.sqrt(num / den);
        assertTrue(!Double.isNaN(rel), "NaN for sentence " + (s + i));
        if (rel > maxRel) {
          maxRel = rel;
          worst = s + i;
        }
      }
    }
    System.out.printf(Locale.ROOT, "MiniLM last_hidden_state vs ONNX Runtime, 64 SST-2 test "
        + "sentences (%d padded positions): max relative error %.3e (sentence %d)%n", padded,
        maxRel, worst);
    assertTrue(padded > 0, "the batches should need padding");
    assertTrue(maxRel < 1e-5, "max relative error " + maxRel + " at sentence " + worst);
  }

  /** The embeddings (length-sorted batches, mean pooling) vs ORT's hidden state pooled the same way. */
  @Test
  void embeddingsMatchOnnxRuntime() throws Exception {
    float[][] ours = enc.embed(sentences);
    double maxRel = 0;
    for (int s = 0; s < sentences.size(); s += 8) {
      EncodingBatch b = enc.encode(sentences.subList(s, s + 8));
      float[][] ref = enc.pool(b, ort.lastHiddenState(b));
      for (int i = 0; i < 8; i++) {
        maxRel = Math.max(maxRel, SentenceEncoderTest.rel(ours[s + i], ref[i]));
      }
    }
    System.out.printf(Locale.ROOT, "MiniLM mean-pooled embeddings vs ONNX Runtime: max relative "
        + "error %.3e%n", maxRel);
    assertTrue(maxRel < 1e-5, "max relative error " + maxRel);
  }

  private static HuggingFaceTokenizer djl(int maxLength) throws Exception {
    return HuggingFaceTokenizer.builder().optTokenizerPath(model.resolve("tokenizer.json"))
        .optAddSpecialTokens(true).optTruncation(true).optMaxLength(maxLength).optPadding(true)
        .build();
  }

  private static void assertSame(EncodingBatch ours, ai.djl.huggingface.tokenizers.Encoding[] ref,
      String what) {
    assertEquals(ref.length, ours.batchSize(), what);
    for (int i = 0; i < ref.length; i++) {
      assertArrayEquals(ints(ref[i].getIds()), ours.inputIds(i), what + " row " + i + " ids");
      assertArrayEquals(ints(ref[i].getTypeIds()), ours.tokenTypeIds(i), what + " row " + i
          + " types");
      assertArrayEquals(ints(ref[i].getAttentionMask()), ours.attentionMask(i), what + " row "
          + i + " mask");
    }
  }

  private static int[] ints(long[] a) {
    int[] r = new int[a.length];
    for (int i = 0; i < a.length; i++) {
      r[i] = Math.toIntExact(a[i]);
    }
    return r;
  }

  /** Single texts: the embed pipeline's batches (truncated to 16 tokens, padded) are DJL's. */
  @Test
  void pipelineTokenIdsEqualDjl() throws Exception {
    int truncated = 0;
    try (SentenceEncoder short16 = SentenceEncoder.builder().optModel(model)
        .optDevice(Device.CPU).optMaxLength(16).optBatchSize(16).build();
        HuggingFaceTokenizer djl = djl(16)) {
      for (LengthBatcher.Chunk c : short16.plan(sentences)) {
        List<String> texts = new ArrayList<>();
        for (int r : c.rows()) {
          texts.add(sentences.get(r));
        }
        assertSame(c.batch(), djl.batchEncode(texts), "texts " + texts);
        for (int i = 0; i < c.rows().length; i++) {
          truncated += c.batch().length(i) == 16 ? 1 : 0;
        }
      }
    }
    assertTrue(truncated > 5, "only " + truncated + " sentences reached the 16-token cap");
    // and untruncated, as the parity test batches them
    try (HuggingFaceTokenizer djl = djl(512)) {
      for (int s = 0; s < sentences.size(); s += 16) {
        List<String> part = sentences.subList(s, s + 16);
        assertSame(enc.encode(part), djl.batchEncode(part), "batch at " + s);
      }
    }
  }

  /** Pairs (as TextClassifier batches them): longest-first truncation, token types, padding. */
  @Test
  void pairTokenIdsEqualDjl() throws Exception {
    List<String> first = sentences.subList(0, 32);
    List<String> second = new ArrayList<>(sentences.subList(32, 64));
    second.set(0, "short");
    second.set(1, "a b c d e f g h i j k l m n o p q r s t u v w x y z");
    for (int maxLength : new int[] {12, 24, 512}) {
      try (BertTokenizer tok = BertTokenizer.forModel(model);
          HuggingFaceTokenizer djl = djl(maxLength)) {
        for (LengthBatcher.Chunk c : new LengthBatcher(tok, maxLength, 8).plan(first, second)) {
          PairList<String, String> pairs = new PairList<>();
          for (int r : c.rows()) {
            pairs.add(first.get(r), second.get(r));
          }
          assertSame(c.batch(), djl.batchEncode(pairs), "pairs, max " + maxLength);
        }
      }
    }
  }
}
