package org.bertj.model;

import org.bertj.io.BertConfig;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Arrays;
import org.bertj.backend.CpuBackend;
import org.bertj.io.SafetensorsReader;
import org.junit.jupiter.api.Test;

/** Dropout, loss types, input checks, workspace reuse and the bare BertModel. */
class ModelBehaviourTest {

  static Batch goldenBatch() {
    try (SafetensorsReader g =
        SafetensorsReader.open(TestUtil.tinyBert().resolve("golden.safetensors"))) {
      return GoldenParityTest.goldenBatch(g);
    }
  }

  /**
   * The directional derivative of the loss along the normalised gradient, by central differences
   * (all parameters moved together), against ||g||. Returns the relative error.
   */
  static double directionalCheck(CpuBackend be, BertForSequenceClassification m, Batch batch,
      boolean training, long seed, double eps) {
    Parameters ps = m.parameters();
    ps.zeroGrad();
    m.forward(batch, training, seed);
    m.backward();
    float[] g = be.download(ps.grads());
    float[] theta = be.download(ps.values());
    double gn = TestUtil.norm(g);
    float[] moved = new float[theta.length];
    double[] loss = new double[2];
    for (int s = 0; s < 2; s++) {
      double sign = s == 0 ? 1 : -1;
      for (int i = 0; i < theta.length; i++) {
        moved[i] = (float) (theta[i] + sign * eps * g[i] / gn);
      }
      be.upload(ps.values(), moved);
      m.forward(batch, training, seed);
      loss[s] = m.loss();
    }
    be.upload(ps.values(), theta);
    double fd = (loss[0] - loss[1]) / (2 * eps);
    double rel = Math.abs(fd - gn) / gn;
    System.out.printf("directional derivative: fd %.6e vs |g| %.6e (rel %.2e)%n", fd, gn, rel);
    return rel;
  }

  @Test
  void dropoutChangesTheForwardAndIsReproducibleBySeed() {
    Path dir = TestUtil.tinyBert();
    Batch batch = goldenBatch();
    try (CpuBackend be = new CpuBackend()) {
      BertConfig c = BertConfig.read(dir.resolve("config.json")).toBuilder()
          .optHiddenDropoutProb(0.1).optAttentionProbsDropoutProb(0.1).optClassifierDropout(0.2)
          .build();
      try (BertForSequenceClassification m =
          BertForSequenceClassification.fromPretrained(be, dir, c, 0L)) {
        m.forward(batch, false, 7L);
        float[] eval = m.logitsArray();
        m.forward(batch, false, 8L);
        assertArrayEquals(eval, m.logitsArray(), "evaluation must not depend on the seed");
        m.forward(batch, true, 7L);
        float[] a = m.logitsArray();
        m.forward(batch, true, 7L);
        float[] a2 = m.logitsArray();
        m.forward(batch, true, 8L);
        float[] b = m.logitsArray();
        assertFalse(Arrays.equals(eval, a), "dropout must change the training forward");
        assertArrayEquals(a, a2, "same seed, same masks");
        assertFalse(Arrays.equals(a, b), "another seed, other masks");
        // the backward reproduces every mask: the gradient is the derivative of that loss
        assertTrue(directionalCheck(be, m, batch, true, 7L, 1e-2) < 1e-2);
      }
      assertEquals(0, be.liveTensors());
    }
  }

  @Test
  void multiLabelBceLossAndGradient() {
    Path dir = TestUtil.tinyBert();
    Batch plain = goldenBatch();
    float[] y = {1, 0, 1, 0, 0, 1, 1, 1, 0};
    Batch batch = plain.withFloatLabels(y);
    try (CpuBackend be = new CpuBackend()) {
      BertConfig c = BertConfig.read(dir.resolve("config.json")).toBuilder()
          .optProblemType(BertConfig.ProblemType.MULTI_LABEL_CLASSIFICATION).build();
      try (BertForSequenceClassification m =
          BertForSequenceClassification.fromPretrained(be, dir, c, 0L)) {
        m.forward(batch, false, 0L);
        assertEquals(BertConfig.ProblemType.MULTI_LABEL_CLASSIFICATION, m.lastProblemType());
        float[] x = m.logitsArray();
        double ref = 0;
        for (int i = 0; i < x.length; i++) {
          ref += Math.max(x[i], 0) - x[i] * y[i] + Math.log1p(Math.exp(-Math.abs(x[i])));
        }
        ref /= x.length;
        assertEquals(ref, m.loss(), 1e-6 * ref);
        assertTrue(directionalCheck(be, m, batch, false, 0L, 1e-2) < 1e-2);
        // integer labels are not multi-label targets
        assertThrows(IllegalArgumentException.class,
            () -> m.forward(plain.withLabels(new int[] {0, 1, 2}), false, 0L));
      }
      assertEquals(0, be.liveTensors());
    }
  }

  @Test
  void regressionMseLossAndGradient() {
    Path dir = TestUtil.tinyBert();
    Batch plain = goldenBatch();
    float[] y = {0.5f, -1.25f, 2f};
    try (CpuBackend be = new CpuBackend()) {
      // num_labels 1 and problem_type null: transformers picks regression
      BertConfig c = BertConfig.read(dir.resolve("config.json")).toBuilder()
          .optNumLabels(1).optProblemType(null).build();
      try (BertForSequenceClassification m = BertForSequenceClassification.create(be, c, 42L)) {
        Batch batch = plain.withFloatLabels(y);
        m.forward(batch, false, 0L);
        assertEquals(BertConfig.ProblemType.REGRESSION, m.lastProblemType());
        float[] x = m.logitsArray();
        double ref = 0;
        for (int i = 0; i < x.length; i++) {
          ref += (x[i] - y[i]) * (double) (x[i] - y[i]);
        }
        ref /= x.length;
        assertEquals(ref, m.loss(), 1e-6 * ref);
        assertTrue(directionalCheck(be, m, batch, false, 0L, 1e-2) < 1e-2);
        // integer labels are accepted for regression with one label (as floats)
        m.forward(plain.withLabels(new int[] {1, 0, 2}), false, 0L);
        assertEquals(BertConfig.ProblemType.REGRESSION, m.lastProblemType());
      }
      assertEquals(0, be.liveTensors());
    }
  }

  @Test
  void crossEntropyIgnoresNegativeLabels() {
    Path dir = TestUtil.tinyBert();
    Batch plain = goldenBatch();
    try (CpuBackend be = new CpuBackend();
        BertForSequenceClassification m =
            BertForSequenceClassification.fromPretrained(be, dir, 0L)) {
      m.forward(plain.withLabels(new int[] {0, -100, 1}), false, 0L);
      assertEquals(BertConfig.ProblemType.SINGLE_LABEL_CLASSIFICATION, m.lastProblemType());
      float[] x = m.logitsArray();
      double ref = (ce(x, 0, 0) + ce(x, 2, 1)) / 2;
      assertEquals(ref, m.loss(), 1e-6 * ref);
      assertTrue(directionalCheck(be, m, plain.withLabels(new int[] {0, -100, 1}), false, 0L,
          1e-2) < 1e-2);
      m.forward(plain.withLabels(new int[] {-100, -100, -100}), false, 0L);
      assertTrue(Double.isNaN(m.loss()), "all labels ignored gives NaN, as torch");
      assertThrows(IllegalArgumentException.class,
          () -> m.forward(plain.withLabels(new int[] {0, 3, 1}), false, 0L));
      m.close();
      assertEquals(0, be.liveTensors());
    }
  }

  private static double ce(float[] x, int row, int label) {
    double max = Double.NEGATIVE_INFINITY;
    for (int j = 0; j < 3; j++) {
      max = Math.max(max, x[row * 3 + j]);
    }
    double s = 0;
    for (int j = 0; j < 3; j++) {
      s += Math.exp(x[row * 3 + j] - max);
    }
    return -(x[row * 3 + label] - max - Math.log(s));
  }

  @Test
  void outOfRangeTokenIdsAreRejectedBeforeNativeCode() {
    Batch plain = goldenBatch();
    try (CpuBackend be = new CpuBackend();
        BertForSequenceClassification m =
            BertForSequenceClassification.fromPretrained(be, TestUtil.tinyBert(), 0L)) {
      int[] ids = plain.inputIds().clone();
      ids[16 + 3] = 512;
      Batch bad = Batch.of(ids, plain.tokenTypeIds(), plain.attentionMask(), 3, 16);
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, () -> m.forward(bad));
      assertTrue(e.getMessage().contains("batch row 1, position 3"), e.getMessage());
      ids[16 + 3] = -1;
      assertThrows(IllegalArgumentException.class, () -> m.forward(bad));
      int[] tt = plain.tokenTypeIds().clone();
      tt[2 * 16 + 5] = 2;
      IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class,
          () -> m.forward(Batch.of(plain.inputIds(), tt, plain.attentionMask(), 3, 16)));
      assertTrue(e2.getMessage().contains("batch row 2, position 5"), e2.getMessage());
      assertThrows(IllegalArgumentException.class,
          () -> m.forward(Batch.of(new int[65], null, null, 1, 65)), "T > max positions");
      m.close();
      assertEquals(0, be.liveTensors());
    }
  }

  @Test
  void inferenceForwardGivesTheSameOutputsAndKeepsNothingForBackward() {
    // fp32 and bf16, padded path and padding removal (the golden batch has 1/3 pads)
    // and 2 heads (head size 32: the bf16 mode's tensor-core attention, whose fp32 context an
    // inference forward skips, as it does GELU's fp32 output and saved input)
    Batch labelled = goldenBatch().withLabels(new int[] {0, 1, 2});
    Path dir = TestUtil.tinyBert();
    BertConfig base = BertConfig.read(dir.resolve("config.json"));
    for (BertConfig c : new BertConfig[] {base, base.toBuilder().setNumAttentionHeads(2).build()})
    for (org.bertj.backend.Precision p : org.bertj.backend.Precision.values()) {
      for (double minPads : new double[] {0.10, 2.0}) {
        try (CpuBackend be = new CpuBackend();
            BertForSequenceClassification m =
                BertForSequenceClassification.fromPretrained(be, dir, c, 0L)) {
          m.parameters().setPrecision(p);
          m.bert().packMinPadFraction = minPads;
          m.forward(labelled, false, 0L);
          float[] logits = m.logitsArray();
          double loss = m.loss();
          float[] hidden = be.download(m.bert().lastHiddenState());
          m.forwardInference(labelled);
          String what = p + (minPads < 1 ? " packed" : " padded") + ", heads "
              + c.getNumAttentionHeads();
          assertArrayEquals(logits, m.logitsArray(), what);
          assertEquals(loss, m.loss(), 0.0, what);
          assertArrayEquals(hidden, be.download(m.bert().lastHiddenState()), what);
          assertThrows(IllegalStateException.class, m::backward);
          m.forward(labelled); // without the labels
          assertArrayEquals(logits, m.logitsArray(), what);
          m.forward(labelled, true, 3L); // a training forward keeps what the backward needs again
          m.backward();
        }
      }
    }
  }

  @Test
  void workspaceIsReusedAcrossShapes() {
    Batch big = goldenBatch();
    int[] ids = Arrays.copyOf(big.inputIds(), 16); // row 0, 8 tokens x 2 rows
    Batch small = Batch.of(ids, null, null, 2, 8);
    try (CpuBackend be = new CpuBackend();
        BertForSequenceClassification m =
            BertForSequenceClassification.fromPretrained(be, TestUtil.tinyBert(), 0L)) {
      m.forward(big, true, 1L);
      m.backward();
      float[] first = m.logitsArray();
      long tensors = be.liveTensors();
      long bytes = be.liveBytes();
      m.parameters().zeroGrad();
      m.forward(small.withLabels(new int[] {0, 1}), true, 1L);
      m.backward();
      assertEquals(tensors, be.liveTensors(), "a smaller shape allocates nothing");
      assertEquals(bytes, be.liveBytes());
      m.forward(big, true, 1L);
      m.backward();
      assertArrayEquals(first, m.logitsArray());
      assertEquals(tensors, be.liveTensors());
      // a null mask and token types equal all-ones and all-zeros
      int[] ones = new int[16];
      Arrays.fill(ones, 1);
      m.forward(small);
      float[] a = m.logitsArray();
      m.forward(Batch.of(ids, new int[16], ones, 2, 8));
      assertArrayEquals(a, m.logitsArray());
      m.close();
      assertEquals(0, be.liveTensors());
    }
  }

  @Test
  void bareBertModelGivesFeatures() {
    Path dir = TestUtil.tinyBert();
    Batch batch = goldenBatch();
    try (CpuBackend be = new CpuBackend();
        SafetensorsReader g = SafetensorsReader.open(dir.resolve("golden.safetensors"))) {
      try (BertModel m = BertModel.fromPretrained(be, dir, 0L)) {
        assertTrue(m.parameters().find("encoder.layer.0.attention.self.query.weight").isPresent());
        m.forward(batch);
        assertTrue(m.lastForwardPacked(), "the golden batch (1/3 pads) takes the packed path");
        assertArrayEquals(new long[] {3, 16, 64}, m.lastHiddenState().shape());
        assertArrayEquals(new long[] {3, 64}, m.pooledOutput().shape());
        // packed: pad rows of the last hidden state are zero
        double e = TestUtil.relErr(be.download(m.lastHiddenState()),
            TestUtil.padRowsZeroed(g.readDoubles("last_hidden_state"), batch.attentionMask(), 64));
        assertTrue(e < 1e-5, "last_hidden_state rel " + e);
      }
      assertEquals(0, be.liveTensors());
    }
  }
}
