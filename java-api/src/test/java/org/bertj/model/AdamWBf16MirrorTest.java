package org.bertj.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Random;
import org.bertj.backend.Backend;
import org.bertj.backend.CudaTests;
import org.bertj.backend.CpuBackend;
import org.bertj.backend.DType;
import org.bertj.backend.Precision;
import org.bertj.backend.Tensor;
import org.bertj.io.SafetensorsReader;
import org.bertj.train.AdamW;
import org.junit.jupiter.api.Test;

/**
 * In BF16 precision {@link AdamW} writes the bf16 copy of the parameters in the step itself (the
 * adamw op's bf16 side output) and marks it fresh, instead of leaving it stale for a refresh
 * (toBf16 of all values) before the next forward. The copy must have the bits that refresh
 * gives, step after step, so training is unchanged: checked against a second model trained the
 * old way (stale after each step) on the tiny-bert golden batch with dropout. With update ranges
 * the copy is written where it was fresh, and stays stale where it was stale.
 */
class AdamWBf16MirrorTest {

  @Test
  void fusedCopyEqualsStaleAndRefreshOnCpu() {
    try (CpuBackend be = new CpuBackend()) {
      run(be);
    }
  }

  @Test
  void fusedCopyEqualsStaleAndRefreshOnCuda() {
    try (Backend b = CudaTests.backendOrSkip()) {
      run(b);
    }
  }

  static void run(Backend be) {
    Path dir = TestUtil.tinyBert();
    try (SafetensorsReader golden = SafetensorsReader.open(dir.resolve("golden.safetensors"));
        BertForSequenceClassification fused =
            BertForSequenceClassification.fromPretrained(be, dir, 0L);
        BertForSequenceClassification stale =
            BertForSequenceClassification.fromPretrained(be, dir, 0L)) {
      Batch batch = GoldenParityTest.goldenBatch(golden);
      Parameters pf = fused.parameters();
      Parameters ps = stale.parameters();
      pf.setPrecision(Precision.BF16);
      ps.setPrecision(Precision.BF16);
      try (AdamW of = new AdamW(pf, 0.9f, 0.999f, 1e-8f, 0.01f);
          AdamW os = new AdamW(ps, 0.9f, 0.999f, 1e-8f, 0.01f)) {
        for (int s = 1; s <= 3; s++) {
          for (BertForSequenceClassification m : new BertForSequenceClassification[] {fused,
              stale}) {
            m.parameters().zeroGrad();
            m.forward(batch, true, 1234L + s);
            m.backward();
          }
          assertEquals(stale.loss(), fused.loss(), 0.0, "loss before step " + s);
          of.step(GoldenParityTest.LR);
          os.step(GoldenParityTest.LR);
          ps.markValuesChanged(); // the old path: stale after the step, refreshed on next use
          assertTrue(pf.isLowFresh(), "the fused step leaves the bf16 copy fresh");
          assertFalse(ps.isLowFresh());
          assertArrayEquals(bits(be, ps.values()), bits(be, pf.values()), "values, step " + s);
          ps.lowValue(ps.list().get(0)); // the refresh
          assertTrue(ps.isLowFresh());
          assertArrayEquals(lowBits(ps.lowValues()), lowBits(pf.lowValues()),
              "bf16 copy, step " + s);
          assertArrayEquals(toBf16Bits(pf.values()), lowBits(pf.lowValues()),
              "bf16 copy = toBf16(values), step " + s);
        }
      }
    }
    assertEquals(0, be.liveTensors(), "tensors left open");
  }

  @Test
  void updateRangesWriteTheCopyOnlyWhereItIsFresh() {
    try (CpuBackend be = new CpuBackend();
        Parameters ps = Parameters.allocate(be,
            new Parameters.Layout().decayed("w", 40, 3).notDecayed("b", 7))) {
      int n = (int) ps.size();
      Random r = new Random(5);
      be.upload(ps.values(), randn(r, n));
      be.upload(ps.grads(), randn(r, n));
      ps.setPrecision(Precision.BF16);
      try (AdamW opt = new AdamW(ps, 0.9f, 0.999f, 1e-8f, 0.01f)) {
        opt.updateRanges(new long[][] {{0, 50}, {90, n}});
        // never refreshed: a partial step cannot make the copy fresh
        opt.step(1e-2f);
        assertFalse(ps.isLowFresh(), "stale before a partial step: stale after it");
        ps.lowValue(ps.get("w"));
        assertTrue(ps.isLowFresh());
        float[] before = be.download(ps.values());
        opt.step(1e-2f);
        float[] after = be.download(ps.values());
        assertTrue(after[0] != before[0] && after[60] == before[60], "ranges stepped, gap frozen");
        assertTrue(ps.isLowFresh(), "fresh before a partial step: fresh after it");
        assertArrayEquals(toBf16Bits(ps.values()), lowBits(ps.lowValues()), "partial step");
        // a step over the whole store writes every element: fresh even when stale before
        opt.updateRanges(new long[][] {{0, n}});
        ps.markValuesChanged();
        opt.step(1e-2f);
        assertTrue(ps.isLowFresh(), "a whole step refreshes the copy");
        assertArrayEquals(toBf16Bits(ps.values()), lowBits(ps.lowValues()), "whole step");
      }
      // fp32 precision: no copy, the step as before
      ps.setPrecision(Precision.FP32);
      assertFalse(ps.isLowFresh());
      try (AdamW opt = new AdamW(ps, 0.9f, 0.999f, 1e-8f, 0.01f)) {
        opt.step(1e-2f);
      }
    }
  }

  private static float[] randn(Random r, int n) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) r.nextGaussian();
    }
    return v;
  }

  private static int[] bits(Backend be, Tensor x) {
    float[] v = be.download(x);
    int[] b = new int[v.length];
    for (int i = 0; i < v.length; i++) {
      b[i] = Float.floatToRawIntBits(v[i]);
    }
    return b;
  }

  /** A BF16 tensor widened exactly, as raw float bits (the bf16 bits << 16). */
  private static int[] lowBits(Tensor low) {
    Backend be = low.backend();
    try (Tensor wide = be.alloc(DType.F32, low.numel())) {
      be.fromBf16(wide, low);
      return bits(be, wide);
    }
  }

  private static int[] toBf16Bits(Tensor x) {
    Backend be = x.backend();
    try (Tensor low = be.alloc(DType.BF16, x.numel())) {
      be.toBf16(low, x);
      return lowBits(low);
    }
  }
}
