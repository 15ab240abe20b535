package org.bertj.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Locale;
import java.util.Random;
import org.bertj.backend.CpuBackend;
import org.bertj.backend.Precision;
import org.bertj.io.BertConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;

/**
 * Padding removal (BertModel's packed path) against the padded path ({@code bertj.pack=false},
 * a second model with the same parameters): random right-padded batches at dropout 0, one
 * training step each (logits, loss, every parameter gradient) and the real rows of the last
 * hidden state; fp32 within 1e-5 relative, bf16 (tensor-core attention: head size 32) within
 * 1e-2. Batches with pads below 10% of the tokens, or a pad at some sequence's position 0
 * (left padding), take the padded path.
 */
class PackingTest {
  static final int HIDDEN = 64;

  static BertConfig config() {
    return BertConfig.builder().setVocabSize(97).setHiddenSize(HIDDEN).setNumHiddenLayers(2)
        .setNumAttentionHeads(2).setIntermediateSize(128).optMaxPositionEmbeddings(32)
        .optHiddenDropoutProb(0.0).optAttentionProbsDropoutProb(0.0).optClassifierDropout(0.0)
        .optInitializerRange(0.2).optNumLabels(3).build();
  }

  /** Two classifiers with the same parameters: packing on (default) and bertj.pack=false. */
  static BertForSequenceClassification[] models(CpuBackend be, Precision p) {
    BertForSequenceClassification packed = BertForSequenceClassification.create(be, config(), 7);
    BertForSequenceClassification padded;
    System.setProperty("bertj.pack", "false");
    try {
      padded = BertForSequenceClassification.create(be, config(), 7);
    } finally {
      System.clearProperty("bertj.pack");
    }
    packed.parameters().setPrecision(p);
    padded.parameters().setPrecision(p);
    return new BertForSequenceClassification[] {packed, padded};
  }

  /** A batch with these sequence lengths, right-padded (or left-padded) to t. */
  static Batch batch(Random r, int[] len, int t, boolean left) {
    int b = len.length;
    int[] ids = new int[b * t];
    int[] types = new int[b * t];
    int[] mask = new int[b * t];
    int[] labels = new int[b];
    for (int i = 0; i < b; i++) {
      labels[i] = r.nextInt(3);
      for (int j = 0; j < t; j++) {
        boolean real = left ? j >= t - len[i] : j < len[i];
        ids[i * t + j] = real ? 1 + r.nextInt(96) : 0;
        types[i * t + j] = real && j > len[i] / 2 ? 1 : 0;
        mask[i * t + j] = real ? 1 : 0;
      }
    }
    return new Batch(ids, types, mask, b, t, labels, null);
  }

  /** One training step on each model; returns the worst relative errors (logits, grads, hidden). */
  static double[] compare(CpuBackend be, BertForSequenceClassification[] m, Batch batch,
      boolean wantPacked, double tol, String tag) {
    float[][] logits = new float[2][];
    float[][] grads = new float[2][];
    float[][] hidden = new float[2][];
    double[] loss = new double[2];
    for (int k = 0; k < 2; k++) {
      m[k].parameters().zeroGrad();
      m[k].forward(batch, true, 11L);
      logits[k] = m[k].logitsArray();
      loss[k] = m[k].loss();
      hidden[k] = be.download(m[k].bert().lastHiddenState());
      m[k].backward();
      grads[k] = be.download(m[k].parameters().grads());
    }
    assertEquals(wantPacked, m[0].bert().lastForwardPacked(), tag + ": packed path");
    assertFalse(m[1].bert().lastForwardPacked(), tag + ": bertj.pack=false never packs");
    int[] mask = batch.attentionMask();
    double[] refHidden = TestUtil.padRowsZeroed(toDouble(hidden[1]), mask, HIDDEN);
    float[] oursHidden = hidden[0].clone();
    if (!wantPacked) { // padded path: pad rows hold the pad tokens' states, compare real rows
      for (int i = 0; i < mask.length; i++) {
        if (mask[i] == 0) {
          java.util.Arrays.fill(oursHidden, i * HIDDEN, (i + 1) * HIDDEN, 0f);
        }
      }
    }
    double el = TestUtil.relErr(logits[0], toDouble(logits[1]));
    double eg = TestUtil.relErr(grads[0], toDouble(grads[1]));
    double eh = TestUtil.relErr(oursHidden, refHidden);
    double eloss = Math.abs(loss[0] - loss[1]) / Math.abs(loss[1]);
    System.out.printf(Locale.ROOT, "packing %s: logits %.2e loss %.2e grads %.2e hidden %.2e%n",
        tag, el, eloss, eg, eh);
    assertTrue(el <= tol, tag + ": logits rel " + el);
    assertTrue(eloss <= tol, tag + ": loss rel " + eloss);
    assertTrue(eh <= tol, tag + ": last hidden state (real rows) rel " + eh);
    assertTrue(eg <= tol, tag + ": gradients rel " + eg);
    // per parameter as well (a small tensor's error would hide in the flat norm)
    for (Parameter p : m[0].parameters().list()) {
      float[] a = be.download(p.grad());
      float[] b = be.download(m[1].parameters().get(p.name()).grad());
      if (p.name().endsWith("attention.self.key.bias")) {
        // 0 analytically (softmax is shift-invariant): round-off only, bounded absolutely
        double bound = tol * TestUtil.norm(grads[1]);
        assertTrue(TestUtil.norm(a) <= bound && TestUtil.norm(b) <= bound,
            tag + ": grad " + p.name() + " is not ~0");
      } else {
        double e = TestUtil.relErr(a, toDouble(b));
        assertTrue(e <= tol, tag + ": grad " + p.name() + " rel " + e);
      }
    }
    return new double[] {el, eg, eh};
  }

  @ParameterizedTest
  @EnumSource(value = Precision.class, names = {"FP32", "BF16"})
  void packedAgreesWithPadded(Precision prec) {
    double tol = prec == Precision.FP32 ? 1e-5 : 1e-2;
    Random r = new Random(prec.ordinal() * 1000 + 17);
    try (CpuBackend be = new CpuBackend()) {
      BertForSequenceClassification[] m = models(be, prec);
      try {
        int packedRuns = 0;
        for (int it = 0; it < 8; it++) {
          int b = 3 + r.nextInt(3);
          int t = 4 + r.nextInt(21);
          int[] len = new int[b];
          int real = 0;
          for (int i = 0; i < b; i++) {
            len[i] = 1 + r.nextInt(t);
            real += len[i];
          }
          len[r.nextInt(b)] = t; // the longest fills T, as dynamic padding gives
          real = 0;
          for (int l : len) {
            real += l;
          }
          boolean want = b * t - real >= 0.10 * b * t;
          packedRuns += want ? 1 : 0;
          compare(be, m, batch(r, len, t, false), want, tol,
              String.format(Locale.ROOT, "%s B=%d T=%d real=%d", prec, b, t, real));
        }
        assertTrue(packedRuns >= 4, "most random batches take the packed path: " + packedRuns);
        // pads below 10%: the padded path (2 pads of 96 tokens)
        compare(be, m, batch(r, new int[] {24, 24, 22, 24}, 24, false), false, tol,
            prec + " few pads");
        // left padding ([CLS] of a row is a pad): the padded path
        compare(be, m, batch(r, new int[] {12, 5, 9}, 12, true), false, tol, prec + " left");
        // and back to a packed shape seen before (views re-laid by N)
        compare(be, m, batch(r, new int[] {10, 3, 7}, 10, false), true, tol, prec + " again");
      } finally {
        m[0].close();
        m[1].close();
      }
      assertEquals(0, be.liveTensors(), "tensors left open");
    }
  }

  @Test
  void noMaskOrNoPadsTakeThePaddedPath() {
    try (CpuBackend be = new CpuBackend();
        BertForSequenceClassification m = BertForSequenceClassification.create(be, config(), 3)) {
      int[] ids = {2, 5, 7, 9, 3, 4, 8, 1};
      m.forward(Batch.of(ids, null, null, 2, 4));
      assertFalse(m.bert().lastForwardPacked(), "no mask");
      m.forward(Batch.of(ids, null, new int[] {1, 1, 1, 1, 1, 1, 1, 1}, 2, 4));
      assertFalse(m.bert().lastForwardPacked(), "no pads");
      m.forward(Batch.of(ids, null, new int[] {1, 1, 1, 1, 1, 1, 0, 0}, 2, 4));
      assertTrue(m.bert().lastForwardPacked(), "25% pads");
      m.bert().packMinPadFraction = 0.3;
      m.forward(Batch.of(ids, null, new int[] {1, 1, 1, 1, 1, 1, 0, 0}, 2, 4));
      assertFalse(m.bert().lastForwardPacked(), "25% pads, threshold 30%");
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
