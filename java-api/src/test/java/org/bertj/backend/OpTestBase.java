package org.bertj.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Random;
import java.util.function.ToDoubleFunction;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

/**
 * Shared harness of the per-op tests (tier 1 of DESIGN.md): a fresh CPU backend per test that
 * must end with no live tensor, an {@link Arena} that closes what a test allocates, the
 * relative-norm comparison ({@code ||ours - ref|| / ||ref||}, NaN never passes), random fills and
 * central finite differences. The double-precision references live in {@link OpRef}.
 *
 * <p>Every comparison prints {@code relerr <label> <value>} to stdout (surefire keeps it in
 * {@code target/surefire-reports/*-output.txt}), so the largest errors can be read off a run.
 */
abstract class OpTestBase {
  /** fp32 forward vs the double reference. */
  static final double FWD_TOL = 1e-5;
  /** fp32 backward vs the double reference gradient. */
  static final double BWD_TOL = 1e-4;
  /** Analytic fp32 gradient vs central differences of the fp32 op. */
  static final double FD_TOL = 1e-2;

  CpuBackend be;

  @BeforeEach
  void openBackend() {
    be = new CpuBackend();
  }

  @AfterEach
  void noLeaks() {
    assertEquals(0, be.liveTensors(), "tensors left open");
    assertEquals(0, be.liveBytes(), "bytes left allocated");
    be.close();
  }

  /** Owns the tensors of one test; closes them in reverse order. */
  static final class Arena implements AutoCloseable {
    private final Backend be;
    private final Deque<Tensor> owned = new ArrayDeque<>();

    Arena(Backend be) {
      this.be = be;
    }

    /** A zero-filled F32 tensor. */
    Tensor f32(long... shape) {
      Tensor t = be.alloc(DType.F32, shape);
      owned.push(t);
      return t;
    }

    /** An F32 tensor holding v (1-D). */
    Tensor of(float[] v) {
      return f32(v.length).copyFrom(v);
    }

    /** A zero-filled BF16 tensor. */
    Tensor bf16(long... shape) {
      Tensor t = be.alloc(DType.BF16, shape);
      owned.push(t);
      return t;
    }

    /** An I32 tensor holding v (1-D). */
    Tensor of(int[] v) {
      Tensor t = be.alloc(DType.I32, v.length);
      owned.push(t);
      return t.copyFrom(v);
    }

    @Override
    public void close() {
      while (!owned.isEmpty()) {
        owned.pop().close();
      }
    }
  }

  // ---- comparisons ----

  /**
   * ||ours - ref|| / ||ref|| in double; when ref is all zeros, the absolute ||ours||. Any NaN or
   * infinity in ours (where ref is finite) gives +infinity, so it never passes a tolerance.
   */
  static double relErr(float[] ours, double[] ref) {
    assertEquals(ref.length, ours.length, "length");
    double num = 0, den = 0;
    for (int i = 0; i < ours.length; i++) {
      if (!Float.isFinite(ours[i])) {
        return Double.POSITIVE_INFINITY;
      }
      double d = ours[i] - ref[i];
      num += d * d;
      den += ref[i] * ref[i];
    }
    return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
  }

  static double relErr(float[] ours, float[] ref) {
    return relErr(ours, toDouble(ref));
  }

  /** Asserts relErr(ours, ref) <= tol (NaN fails), and logs the error. */
  static double assertClose(String label, float[] ours, double[] ref, double tol) {
    for (double r : ref) {
      assertTrue(Double.isFinite(r), label + ": reference is not finite");
    }
    double e = relErr(ours, ref);
    System.out.printf("relerr %s %.3e%n", label, e);
    if (!(e <= tol)) {
      fail(String.format("%s: relative error %.3e > %.1e", label, e, tol));
    }
    return e;
  }

  static double assertClose(String label, float[] ours, float[] ref, double tol) {
    return assertClose(label, ours, toDouble(ref), tol);
  }

  // ---- bits ----

  /** The raw bits of each float (NaN payloads kept). */
  static int[] rawBits(float[] v) {
    int[] b = new int[v.length];
    for (int i = 0; i < v.length; i++) {
      b[i] = Float.floatToRawIntBits(v[i]);
    }
    return b;
  }

  /** A BF16 tensor's values widened exactly to fp32, as raw bits (the bf16 bits << 16). */
  static int[] bf16Bits(Tensor low) {
    Backend b = low.backend();
    try (Tensor wide = b.alloc(DType.F32, low.numel())) {
      b.fromBf16(wide, low);
      return rawBits(wide.toFloatArray());
    }
  }

  /** {@link #bf16Bits} of {@link Backend#toBf16} of an F32 tensor x. */
  static int[] toBf16Bits(Tensor x) {
    Backend b = x.backend();
    try (Tensor low = b.alloc(DType.BF16, x.numel())) {
      b.toBf16(low, x);
      return bf16Bits(low);
    }
  }

  /**
   * Fills a BF16 tensor with bf16(v) (through an F32 copy and toBf16); with NaN a sentinel that
   * shows which elements an op left unwritten.
   */
  static void fillBf16(Tensor low, float v) {
    Backend b = low.backend();
    try (Tensor wide = b.alloc(DType.F32, low.numel())) {
      b.fill(wide, v);
      b.toBf16(low, wide);
    }
  }

  /** Asserts that low (a bf16 side output) holds the bits of toBf16 of f32 (the output it copies). */
  static void assertIsToBf16Of(String label, Tensor low, Tensor f32) {
    assertArrayEquals(toBf16Bits(f32), bf16Bits(low), label + ": side output = toBf16(fp32 output)");
  }

  // ---- random data ----

  /** n standard normals times scale. */
  static float[] randn(Random r, int n, double scale) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (r.nextGaussian() * scale);
    }
    return v;
  }

  static float[] randn(Random r, int n) {
    return randn(r, n, 1.0);
  }

  /** n uniforms in [lo, hi). */
  static float[] uniform(Random r, int n, double lo, double hi) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (lo + (hi - lo) * r.nextDouble());
    }
    return v;
  }

  /** n ints in [0, bound). */
  static int[] randInts(Random r, int n, int bound) {
    int[] v = new int[n];
    for (int i = 0; i < n; i++) {
      v[i] = r.nextInt(bound);
    }
    return v;
  }

  static double[] toDouble(float[] v) {
    double[] d = new double[v.length];
    for (int i = 0; i < v.length; i++) {
      d[i] = v[i];
    }
    return d;
  }

  /** sum_i r[i] * out[i] in double: the random projection loss of the FD checks. */
  static double dot(double[] r, float[] out) {
    double s = 0;
    for (int i = 0; i < r.length; i++) {
      s += r[i] * out[i];
    }
    return s;
  }

  // ---- finite differences ----

  /** k distinct indices of [0, n) (all of them, in order, when n <= k). */
  static int[] sample(Random r, int n, int k) {
    if (n <= k) {
      int[] all = new int[n];
      for (int i = 0; i < n; i++) {
        all[i] = i;
      }
      return all;
    }
    int[] perm = new int[n];
    for (int i = 0; i < n; i++) {
      perm[i] = i;
    }
    for (int i = 0; i < k; i++) {
      int j = i + r.nextInt(n - i);
      int t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    return java.util.Arrays.copyOf(perm, k);
  }

  /**
   * Central differences (L(x + e) - L(x - e)) / (actual step) of loss at x[idx[k]], perturbing x
   * in place in fp32 and restoring it. loss sees the perturbed array.
   */
  static double[] centralDiff(float[] x, int[] idx, float eps, ToDoubleFunction<float[]> loss) {
    double[] g = new double[idx.length];
    for (int k = 0; k < idx.length; k++) {
      int i = idx[k];
      float x0 = x[i];
      float xp = x0 + eps, xm = x0 - eps;
      x[i] = xp;
      double lp = loss.applyAsDouble(x);
      x[i] = xm;
      double lm = loss.applyAsDouble(x);
      x[i] = x0;
      g[k] = (lp - lm) / ((double) xp - (double) xm);
    }
    return g;
  }

  /** v[idx[k]]. */
  static float[] pick(float[] v, int[] idx) {
    float[] out = new float[idx.length];
    for (int k = 0; k < idx.length; k++) {
      out[k] = v[idx[k]];
    }
    return out;
  }

  /**
   * Checks an analytic gradient (full array) against central differences of loss at a sample of
   * up to maxPoints indices: relative norm within {@link #FD_TOL}.
   */
  static double assertGradFd(String label, float[] analytic, float[] x, float eps, int maxPoints,
      Random r, ToDoubleFunction<float[]> loss) {
    int[] idx = sample(r, x.length, maxPoints);
    double[] fd = centralDiff(x, idx, eps, loss);
    return assertClose(label + " vs FD", pick(analytic, idx), fd, FD_TOL);
  }
}
