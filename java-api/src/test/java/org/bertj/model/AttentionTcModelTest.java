package org.bertj.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import org.bertj.backend.CpuBackend;
import org.bertj.backend.Precision;
import org.bertj.io.BertConfig;
import org.junit.jupiter.api.Test;

/**
 * The bf16 mode's attention core on the bf16 tensor-core op (attention_tc; its CPU reference
 * here) inside a training step: tiny-bert with 2 heads (head size 32, a supported shape) and
 * attention dropout, bf16 with the tc op against bf16 with the fp32 attention
 * ({@code bertj.attention.tc=false}). The tc path is taken (the results differ in their bits),
 * is reproducible, and stays close: logits within 1e-2 and gradients within 5e-2 relative (this
 * random model's gradients cancel over the batch and amplify rounding, see GoldenBf16Test).
 */
class AttentionTcModelTest {
  static final double LOGITS_TOL = 1e-2;
  static final double GRAD_TOL = 5e-2;

  /** logits, then loss, then every gradient of one bf16 training step. */
  static float[][] step(CpuBackend be, boolean tc) {
    Path dir = TestUtil.tinyBert();
    BertConfig c = BertConfig.read(dir.resolve("config.json")).toBuilder()
        .setNumAttentionHeads(2).optAttentionProbsDropoutProb(0.1).build();
    String key = "bertj.attention.tc";
    if (!tc) {
      System.setProperty(key, "false");
    }
    try (BertForSequenceClassification m =
        BertForSequenceClassification.fromPretrained(be, dir, c, 0L)) {
      Parameters ps = m.parameters();
      ps.setPrecision(Precision.BF16);
      ps.zeroGrad();
      m.forward(ModelBehaviourTest.goldenBatch(), true, 99L);
      m.backward();
      return new float[][] {m.logitsArray(), {(float) m.loss()}, be.download(ps.grads())};
    } finally {
      System.clearProperty(key);
    }
  }

  @Test
  void tcAttentionAgreesWithFp32AttentionInTheBf16Mode() {
    try (CpuBackend be = new CpuBackend()) {
      float[][] tc = step(be, true);
      float[][] tc2 = step(be, true);
      float[][] f32 = step(be, false);
      double el = TestUtil.relErr(tc[0], toDouble(f32[0]));
      double eg = TestUtil.relErr(tc[2], toDouble(f32[2]));
      System.out.printf(Locale.ROOT, "attention_tc vs fp32 attention (bf16 mode, tiny-bert 2 heads):"
          + " logits rel %.3e, loss %.6f vs %.6f, gradients rel %.3e%n", el, tc[1][0], f32[1][0],
          eg);
      assertArrayEquals(tc[2], tc2[2], "reproducible");
      assertFalse(Arrays.equals(tc[0], f32[0]), "the tc op must be used (results would be equal)");
      assertTrue(el < LOGITS_TOL, "logits " + el);
      assertTrue(eg < GRAD_TOL, "gradients " + eg);
      assertEquals(0, be.liveTensors());
    }
  }

  static double[] toDouble(float[] v) {
    double[] d = new double[v.length];
    for (int i = 0; i < v.length; i++) {
      d[i] = v[i];
    }
    return d;
  }
}
