package org.bertj.train;

import java.util.TreeSet;

/**
 * Evaluation metrics, with scikit-learn's definitions: accuracy, macro-F1 (the unweighted mean of
 * the per-class F1 scores over the classes that occur in the truth or the predictions; for
 * multi-label data over every label, a label never true nor predicted scoring 0), subset accuracy
 * for multi-label data, mean squared error and Pearson's correlation for regression.
 */
public final class Metrics {
  private Metrics() {}

  /** The index of the largest of {@code l} values in row {@code row} (the first on ties). */
  public static int argmax(float[] logits, int row, int l) {
    int best = 0;
    float bv = logits[row * l];
    for (int j = 1; j < l; j++) {
      float v = logits[row * l + j];
      if (v > bv) {
        bv = v;
        best = j;
      }
    }
    return best;
  }

  /** Fraction of equal entries (NaN for no entries). */
  public static double accuracy(int[] truth, int[] pred) {
    check(truth.length, pred.length);
    if (truth.length == 0) {
      return Double.NaN;
    }
    int ok = 0;
    for (int i = 0; i < truth.length; i++) {
      ok += truth[i] == pred[i] ? 1 : 0;
    }
    return (double) ok / truth.length;
  }

  /** Macro-F1 over the classes present in truth or predictions (sklearn's default labels). */
  public static double macroF1(int[] truth, int[] pred) {
    check(truth.length, pred.length);
    if (truth.length == 0) {
      return Double.NaN;
    }
    TreeSet<Integer> classes = new TreeSet<>();
    for (int i = 0; i < truth.length; i++) {
      classes.add(truth[i]);
      classes.add(pred[i]);
    }
    double sum = 0;
    for (int c : classes) {
      long tp = 0;
      long fp = 0;
      long fn = 0;
      for (int i = 0; i < truth.length; i++) {
        boolean t = truth[i] == c;
        boolean p = pred[i] == c;
        tp += t && p ? 1 : 0;
        fp += !t && p ? 1 : 0;
        fn += t && !p ? 1 : 0;
      }
      sum += f1(tp, fp, fn);
    }
    return sum / classes.size();
  }

  private static double f1(long tp, long fp, long fn) {
    long den = 2 * tp + fp + fn;
    return den == 0 ? 0.0 : 2.0 * tp / den;
  }

  /**
   * Multi-label subset accuracy: the fraction of rows whose whole label set is right.
   *
   * @param truth (n, l) 0/1 targets, row-major
   * @param pred (n, l) 0/1 predictions
   */
  public static double subsetAccuracy(float[] truth, float[] pred, int l) {
    check(truth.length, pred.length);
    int n = truth.length / l;
    if (n == 0) {
      return Double.NaN;
    }
    int ok = 0;
    for (int i = 0; i < n; i++) {
      boolean all = true;
      for (int j = 0; j < l && all; j++) {
        all = (truth[i * l + j] > 0.5f) == (pred[i * l + j] > 0.5f);
      }
      ok += all ? 1 : 0;
    }
    return (double) ok / n;
  }

  /** Multi-label macro-F1: the mean over all l labels of each label's binary F1. */
  public static double multiLabelMacroF1(float[] truth, float[] pred, int l) {
    check(truth.length, pred.length);
    int n = truth.length / l;
    if (n == 0) {
      return Double.NaN;
    }
    double sum = 0;
    for (int j = 0; j < l; j++) {
      long tp = 0;
      long fp = 0;
      long fn = 0;
      for (int i = 0; i < n; i++) {
        boolean t = truth[i * l + j] > 0.5f;
        boolean p = pred[i * l + j] > 0.5f;
        tp += t && p ? 1 : 0;
        fp += !t && p ? 1 : 0;
        fn += t && !p ? 1 : 0;
      }
      sum += f1(tp, fp, fn);
    }
    return sum / l;
  }

  /** Mean squared error over all entries. */
  public static double mse(float[] truth, float[] pred) {
    check(truth.length, pred.length);
    if (truth.length == 0) {
      return Double.NaN;
    }
    double s = 0;
    for (int i = 0; i < truth.length; i++) {
      double d = (double) pred[i] - truth[i];
      s += d * d;
    }
    return s / truth.length;
  }

  /** Pearson's correlation over all entries (NaN when either side is constant). */
  public static double pearson(float[] truth, float[] pred) {
    check(truth.length, pred.length);
    int n = truth.length;
    if (n < 2) {
      return Double.NaN;
    }
    double mt = 0;
    double mp = 0;
    for (int i = 0; i < n; i++) {
      mt += truth[i];
      mp += pred[i];
    }
    mt /= n;
    mp /= n;
    double stp = 0;
    double stt = 0;
    double spp = 0;
    for (int i = 0; i < n; i++) {
      double a = truth[i] - mt;
      double b = pred[i] - mp;
      stp += a * b;
      stt += a * a;
      spp += b * b;
    }
    if (stt == 0 || spp == 0) {
      return Double.NaN;
    }
    return stp / Math.sqrt(stt * spp);
  }

  private static void check(int a, int b) {
    if (a != b) {
      throw new IllegalArgumentException("truth has " + a + " entries, predictions " + b);
    }
  }
}
