package org.bertj.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Values checked by hand (and against scikit-learn's documented examples). */
class MetricsTest {

  @Test
  void accuracyAndMacroF1() {
    // sklearn's f1_score docstring example: macro 0.2666...
    int[] t = {0, 1, 2, 0, 1, 2};
    int[] p = {0, 2, 1, 0, 0, 1};
    assertEquals(2.0 / 6, Metrics.accuracy(t, p), 1e-12);
    assertEquals(0.26666666666666666, Metrics.macroF1(t, p), 1e-12);
    // a class only predicted counts (F1 0); classes in neither are ignored
    assertEquals((2.0 / 3 + 0.0) / 2, Metrics.macroF1(new int[] {0, 0}, new int[] {0, 5}), 1e-12);
    assertEquals(1.0, Metrics.macroF1(new int[] {1, 1, 0}, new int[] {1, 1, 0}));
    assertTrue(Double.isNaN(Metrics.accuracy(new int[0], new int[0])));
    assertEquals(1, Metrics.argmax(new float[] {0f, 3f, 1f, 9f, 2f, 2f}, 0, 3));
    assertEquals(0, Metrics.argmax(new float[] {0f, 3f, 1f, 9f, 2f, 2f}, 1, 3));
  }

  @Test
  void multiLabel() {
    // 3 rows, 3 labels
    float[] t = {1, 0, 1, 0, 1, 0, 1, 1, 0};
    float[] p = {1, 0, 1, 0, 0, 0, 1, 1, 1};
    assertEquals(1.0 / 3, Metrics.subsetAccuracy(t, p, 3), 1e-12);
    // label 0: tp2 -> 1; label 1: tp1 fn1 -> 2/3; label 2: tp1 fp1 -> 2/3
    assertEquals((1.0 + 2.0 / 3 + 2.0 / 3) / 3, Metrics.multiLabelMacroF1(t, p, 3), 1e-12);
    // a label never true nor predicted scores 0 (sklearn's zero_division)
    assertEquals(0.5, Metrics.multiLabelMacroF1(new float[] {1, 0}, new float[] {1, 0}, 2), 1e-12);
  }

  @Test
  void regression() {
    float[] t = {1, 2, 3, 4};
    float[] p = {1.5f, 2, 2.5f, 5};
    assertEquals((0.25 + 0 + 0.25 + 1) / 4, Metrics.mse(t, p), 1e-12);
    // Pearson by hand: means 2.5, 2.75; co-deviation sum 5.5; squared deviation sums 5, 7.25
    assertEquals(5.5 / Math.sqrt(5 * 7.25), Metrics.pearson(t, p), 1e-9);
    assertEquals(1.0, Metrics.pearson(t, new float[] {2, 4, 6, 8}), 1e-12);
    assertEquals(-1.0, Metrics.pearson(t, new float[] {4, 3, 2, 1}), 1e-12);
    assertTrue(Double.isNaN(Metrics.pearson(t, new float[] {1, 1, 1, 1})));
  }
}
