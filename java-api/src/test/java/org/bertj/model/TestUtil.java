package org.bertj.model;

import java.nio.file.Path;
import java.nio.file.Paths;

/** Shared helpers of the model tests. */
final class TestUtil {
  private TestUtil() {}

  /** The tiny-bert golden folder (system property bertj.golden.dir, set by surefire). */
  static Path tinyBert() {
    String dir = System.getProperty("bertj.golden.dir", "../../shared/golden");
    return Paths.get(dir).resolve("tiny-bert");
  }

  /**
   * A copy of a (B*T, C) reference with the rows whose mask is 0 set to zero: what the last
   * hidden state holds after a forward that removed the padding (BertModel: pad rows zero).
   */
  static double[] padRowsZeroed(double[] ref, int[] mask, int c) {
    double[] r = ref.clone();
    for (int i = 0; i < mask.length; i++) {
      if (mask[i] == 0) {
        java.util.Arrays.fill(r, i * c, (i + 1) * c, 0.0);
      }
    }
    return r;
  }

  /** ||ours - ref|| / ||ref|| in double. */
  static double relErr(float[] ours, double[] ref) {
    if (ours.length != ref.length) {
      throw new AssertionError("length " + ours.length + " != " + ref.length);
    }
    double num = 0;
    double den = 0;
    for (int i = 0; i < ours.length; i++) {
      double d = ours[i] - ref[i];
      num += d * d;
      den += ref[i] * ref[i];
    }
    double r = Math.sqrt(num) / Math.sqrt(den);
    return Double.isNaN(r) ? Double.POSITIVE_INFINITY : r;
  }

  static double norm(float[] x) {
    double s = 0;
    for (float v : x) {
      s += (double) v * v;
    }
    return Math.sqrt(s);
  }

  static double norm(double[] x) {
    double s = 0;
    for (double v : x) {
      s += v * v;
    }
    return Math.sqrt(s);
  }

  static double absDiff(float[] ours, double[] ref) {
    double s = 0;
    for (int i = 0; i < ours.length; i++) {
      double d = ours[i] - ref[i];
      s += d * d;
    }
    return Math.sqrt(s);
  }
}
